//! The import of one archive, start to end.
//!
//! Order, and what a crash after each step leaves:
//!
//! 1. Extract into a fresh hidden directory `<work>/.import-<name>-<random>`
//!    (files and directories flushed). Crash: a leftover directory, removed
//!    at the next start; the archive is still in the spool.
//! 2. Parse every `metadata.xml`. A format whose `metadata.xml` is missing
//!    or cannot be used is skipped (logged with its reason); the archive is
//!    rejected only when no format is left.
//! 3. Store the recording and its files, files first: the store previews
//!    what the upsert (on `record_id`) will decide (`published`, the
//!    `tenant-id`; the same statements, rolled back), the files go where
//!    that decision puts them, then one database transaction creates or
//!    updates the recording with all its formats, then what earlier imports
//!    left is removed. `getRecordings` lists the recording only once its
//!    files are where playback looks; a failure to store them leaves
//!    nothing listed and the archive in the spool. Where the files live:
//!    - in the recording trees: each format is renamed into the publish or
//!      unpublish tree, replacing an earlier import's copy there (see
//!      [`scalelite_store::trees`]); after the commit, a copy in the other
//!      tree is removed. Crash before the commit: files without a row (not
//!      listed), replaced by the next import; crash after it: a stale copy
//!      in the other tree, removed by the next import. If an administrator
//!      publishes or unpublishes the recording between the preview and the
//!      commit, the files are moved to the tree the commit decided (or, if
//!      the administrator's move replaced them with an earlier copy, the
//!      archive is imported again). A commit that certainly failed (not
//!      [`StoreError::Unconfirmed`]) for a recording the database did not
//!      have removes the directories this import placed.
//!    - in the bucket (`S3_RECORDING`): every file goes up under its final
//!      key; after the commit, what earlier imports left under the
//!      recording's prefixes is removed. Crash before the commit: objects
//!      without a row, overwritten under the same keys by the next import;
//!      crash after it: stale objects, removed by the next import. Staging
//!      the objects under another prefix and copying them into place after
//!      the commit would list the recording before its files are where
//!      playback looks, so the key is decided first; if an administrator
//!      publishes or unpublishes the recording between the preview and the
//!      commit, the files are uploaded again under the prefix the commit
//!      decided. A commit that certainly failed for a recording the
//!      database did not have deletes the objects this import uploaded.
//! 4. Remember the meeting's recording-ready URL in `callback_data` and
//!    queue the callback. Crash before step 5: the callback is queued again
//!    by the next import (callbacks are delivered at least once).
//! 5. Delete the archive from the spool, then log the import.
//!
//! Only the database knows whether the recording is published (an
//! administrator may have unpublished it, `publish_updated`), hence the
//! preview; the files are stored before the archive is deleted so nothing
//! is lost. A failure in steps 1–2 caused by the archive quarantines it;
//! the database or the bucket being unreachable, or a directory not being
//! writable, keeps it in the spool for a later attempt.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use scalelite_store::StoreError;
use scalelite_store::recordings::{ImportLogEntry, ImportPreview, Imported, RecordingImport};
use scalelite_store::s3::S3Storage;
use scalelite_store::trees::{self, Trees};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::Importer;
use crate::extract::{self, ExtractError};
use crate::metadata::{FormatMetadata, parse_metadata, recording_from};
use crate::spool::{self, Candidate};

/// Prefix of extraction directories in the work directory.
pub(crate) const WORK_PREFIX: &str = ".import-";
/// How long the store lookup of a callback URL may take.
const KEY_LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// An archive that was imported.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportedArchive {
    /// The archive's file name.
    pub archive: String,
    /// The recording id.
    pub record_id: String,
    /// The meeting id (`meta/meetingId`; with meeting ids scoped per
    /// tenant, the front-end's id within it).
    pub meeting_id: String,
    /// Its formats, in name order.
    pub formats: Vec<String>,
    /// Formats of the archive that could not be imported, in name order;
    /// their files were not published.
    pub skipped: Vec<SkippedFormat>,
    /// Whether its files went to the publish tree (else the unpublish tree).
    pub published: bool,
    /// Bytes of file content extracted.
    pub bytes: u64,
    /// Time from opening the archive to deleting it.
    pub duration: Duration,
    /// Whether a recording-ready callback was queued.
    pub callback_queued: bool,
}

/// A format of an archive that was not imported.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SkippedFormat {
    /// The format's directory name.
    pub format: String,
    /// Why it was skipped.
    pub reason: String,
}

/// What happened to one archive.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArchiveOutcome {
    /// Imported and deleted from the spool.
    Imported(ImportedArchive),
    /// Malformed, truncated or hostile: moved to `<spool>/failed/` with a
    /// `.reason` file.
    Quarantined {
        /// The archive's file name.
        archive: String,
        /// Why.
        reason: String,
        /// Where it is now (`None` if it could not be moved).
        moved_to: Option<PathBuf>,
    },
    /// Kept in the spool for a later attempt: the database is unreachable or a
    /// directory cannot be written.
    Deferred {
        /// The archive's file name.
        archive: String,
        /// Why.
        reason: String,
    },
    /// The archive changed while it was read (still being written); it is
    /// imported once it has settled.
    Changed {
        /// The archive's file name.
        archive: String,
    },
    /// Abandoned on shutdown; the archive stays in the spool.
    Cancelled {
        /// The archive's file name.
        archive: String,
    },
    /// The archive disappeared before it could be read.
    Vanished {
        /// The archive's file name.
        archive: String,
    },
}

/// Why an import did not complete.
enum Failure {
    /// The archive's fault: quarantine it.
    Reject(String),
    /// Ours or the database's: keep the archive.
    Defer(String),
    Changed,
    Cancelled,
}

impl From<ExtractError> for Failure {
    fn from(e: ExtractError) -> Self {
        match e {
            ExtractError::Rejected(reason) => Failure::Reject(reason),
            ExtractError::Io(reason) => Failure::Defer(reason),
            ExtractError::Cancelled => Failure::Cancelled,
        }
    }
}

/// Whether a store error is the recording's fault (invalid data, a
/// constraint) rather than the database being unreachable or unready.
fn store_failure(e: &StoreError) -> Failure {
    match e {
        StoreError::Conflict(reason) | StoreError::NotFound(reason) => {
            Failure::Reject(format!("the database refused the recording: {reason}"))
        }
        StoreError::Postgres(inner) => {
            let code = inner.as_database_error().and_then(|db| db.code()).map(|c| c.into_owned());
            match code {
                // A unique race the store could not settle: try again later.
                Some(code) if code == "23505" => Failure::Defer(format!("PostgreSQL: {e}")),
                // Class 22: data exception; 23: integrity constraint violation.
                Some(code) if code.starts_with("22") || code.starts_with("23") => {
                    Failure::Reject(format!("the database refused the recording: {e}"))
                }
                _ => Failure::Defer(format!("PostgreSQL: {e}")),
            }
        }
        other => Failure::Defer(format!("store: {other}")),
    }
}

/// A blocking file-system job on the blocking pool.
async fn blocking<T: Send + 'static>(job: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    tokio::task::spawn_blocking(job).await.map_err(|e| format!("file-system task failed: {e}"))
}

/// Removes an extraction directory (gone already is fine).
pub(crate) fn remove_work_dir(dir: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl Importer {
    /// Imports one settled archive.
    pub(crate) async fn import_candidate(&self, candidate: &Candidate, cancel: &Arc<AtomicBool>) -> ArchiveOutcome {
        let archive = candidate.name.clone();
        if !candidate.path.exists() {
            return ArchiveOutcome::Vanished { archive };
        }
        let started = Instant::now();
        let settings = &self.inner.settings;
        let stem = archive.strip_suffix(".tar").unwrap_or(&archive);
        let work = settings.work_dir.join(format!("{WORK_PREFIX}{stem}-{:016x}", rand::random::<u64>()));
        if let Err(e) = std::fs::create_dir_all(&settings.work_dir).and_then(|()| std::fs::create_dir(&work)) {
            let reason = format!("cannot create {}: {e}", work.display());
            warn!(archive, reason, "recording import postponed");
            return ArchiveOutcome::Deferred { archive, reason };
        }
        let result = self.import_into(candidate, &work, cancel, started).await;
        let cleanup = work.clone();
        match blocking(move || remove_work_dir(&cleanup)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(path = %work.display(), error = %e, "cannot remove the extraction directory"),
            Err(e) => warn!(path = %work.display(), error = %e, "cannot remove the extraction directory"),
        }
        match result {
            Ok(imported) => imported,
            Err(Failure::Reject(reason)) => self.reject(candidate, reason).await,
            Err(Failure::Defer(reason)) => {
                warn!(archive, reason, "recording import postponed; the archive stays in the spool");
                ArchiveOutcome::Deferred { archive, reason }
            }
            Err(Failure::Changed) => {
                info!(archive, "archive changed while it was imported; waiting for it to settle");
                ArchiveOutcome::Changed { archive }
            }
            Err(Failure::Cancelled) => {
                info!(archive, "recording import abandoned on shutdown; the archive stays in the spool");
                ArchiveOutcome::Cancelled { archive }
            }
        }
    }

    async fn import_into(
        &self,
        candidate: &Candidate,
        work: &Path,
        cancel: &Arc<AtomicBool>,
        started: Instant,
    ) -> Result<ArchiveOutcome, Failure> {
        let settings = &self.inner.settings;
        let extracted = {
            let (path, into, limit, cancel) =
                (candidate.path.clone(), work.to_path_buf(), settings.max_metadata_bytes, Arc::clone(cancel));
            blocking(move || extract::extract(&path, &into, limit, &cancel)).await.map_err(Failure::Defer)?
        };
        let extracted = match extracted {
            Ok(extracted) => extracted,
            // A growing file looks truncated: not the archive's fault.
            Err(ExtractError::Rejected(_)) if !candidate.unchanged().unwrap_or(false) => return Err(Failure::Changed),
            Err(e) => return Err(e.into()),
        };
        if !candidate.unchanged().unwrap_or(false) {
            return Err(Failure::Changed);
        }
        // A format that cannot be imported is skipped (Scalelite 1.8.3); the
        // archive is rejected only when no format is left.
        let record_id = &extracted.record_id;
        let mut skipped: Vec<SkippedFormat> = extracted
            .missing
            .iter()
            .map(|format| SkippedFormat {
                format: format.clone(),
                reason: format!("{format}/{record_id}/metadata.xml is missing"),
            })
            .collect();
        let mut formats = Vec::with_capacity(extracted.formats.len());
        for (format, xml) in &extracted.formats {
            match check_format(format, xml, record_id) {
                Ok(parsed) => formats.push(parsed),
                Err(reason) => skipped.push(SkippedFormat { format: format.clone(), reason }),
            }
        }
        skipped.sort_by(|a, b| a.format.cmp(&b.format));
        if formats.is_empty() {
            let reasons: Vec<&str> = skipped.iter().map(|s| s.reason.as_str()).collect();
            return Err(Failure::Reject(reasons.join("; ")));
        }
        let mut import = recording_from(formats).map_err(|e| Failure::Reject(e.0))?;
        // What BBB called the meeting: the key of its recording-ready URL.
        let bbb_meeting_id = import.meeting_id.clone();
        if settings.scoped_meeting_ids
            && let Some(own) = front_end_meeting_id(&import)
        {
            import.meeting_id = own;
            show_front_end_metadata(&mut import, &bbb_meeting_id);
        }
        for skip in &skipped {
            warn!(
                archive = %candidate.name,
                record_id = %import.record_id,
                format = %skip.format,
                reason = %skip.reason,
                "recording format skipped; the other formats are imported"
            );
        }
        if cancel.load(Ordering::Relaxed) {
            return Err(Failure::Cancelled);
        }

        let stored = match &settings.s3 {
            Some(s3) => self.store_in_bucket(s3, work, &import, cancel).await?,
            None => self.store_in_trees(work, &import, cancel).await?,
        };

        let callback_queued =
            self.queue_callback(&import, &bbb_meeting_id, stored.id, stored.tenant_id.as_deref()).await?;

        let archive = candidate.name.clone();
        let removed = match std::fs::remove_file(&candidate.path) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            Err(e) => {
                warn!(archive, error = %e, "imported, but cannot delete the archive from the spool");
                false
            }
        };
        let imported = ImportedArchive {
            archive: archive.clone(),
            record_id: import.record_id.clone(),
            meeting_id: import.meeting_id.clone(),
            formats: import.formats.iter().map(|f| f.format.clone()).collect(),
            skipped,
            published: stored.published,
            bytes: extracted.bytes,
            duration: started.elapsed(),
            callback_queued,
        };
        let mut notes: Vec<String> =
            imported.skipped.iter().map(|s| format!("format {} skipped: {}", s.format, s.reason)).collect();
        if !removed {
            notes.push("the archive could not be deleted from the spool".into());
        }
        let entry = ImportLogEntry {
            filename: archive,
            record_id: Some(imported.record_id.clone()),
            status: "imported".into(),
            reason: (!notes.is_empty()).then(|| notes.join("; ")),
            size_bytes: Some(candidate.size as i64),
            formats: Some(imported.formats.len() as i32),
            finished_ms: 0,
        };
        if let Err(e) = self.inner.recordings.log_import(&entry).await {
            warn!(error = %e, "cannot write the import log");
        }
        let secs = imported.duration.as_secs_f64();
        info!(
            archive = %imported.archive,
            record_id = %imported.record_id,
            meeting_id = %imported.meeting_id,
            formats = %imported.formats.join(","),
            files = extracted.files,
            bytes = imported.bytes,
            duration_ms = imported.duration.as_millis() as u64,
            mb_per_s = format!("{:.1}", candidate.size as f64 / 1e6 / secs.max(1e-6)),
            published = imported.published,
            callback = imported.callback_queued,
            "recording imported"
        );
        if !removed {
            self.inner
                .stuck
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(candidate.path.clone(), (candidate.size, candidate.modified));
        }
        self.inner.deliveries_wake.notify_one();
        Ok(ArchiveOutcome::Imported(imported))
    }

    /// Stores a recording whose files live in the bucket: the objects go up
    /// under the key the import will give them (the store previews its
    /// decision), then the database commits, then what earlier imports left
    /// is removed. `getRecordings` lists the recording only once its
    /// objects are in the bucket; a failed upload leaves nothing listed.
    async fn store_in_bucket(
        &self,
        s3: &S3Storage,
        work: &Path,
        import: &RecordingImport,
        cancel: &AtomicBool,
    ) -> Result<Imported, Failure> {
        let (store, policy) = (&self.inner.recordings, self.inner.settings.policy);
        let preview = store.preview_import(import, policy).await.map_err(|e| store_failure(&e))?;
        let mut uploaded =
            upload_formats(s3, work, import, preview.published, preview.tenant_id.as_deref(), cancel).await?;
        // From here on the import completes.
        let stored = match store.import_recording(import, policy).await {
            Ok(stored) => stored,
            Err(e) => {
                if preview.new_recording && !e.unconfirmed() {
                    remove_uploaded(s3, &import.record_id, &uploaded).await;
                }
                return Err(store_failure(&e));
            }
        };
        if !preview.matches(&stored) {
            // The recording changed between the preview and the commit (an
            // administrator published or unpublished it meanwhile).
            warn!(
                record_id = %import.record_id,
                published = stored.published,
                "the recording changed during its import; storing its files again under the decided prefix"
            );
            uploaded = upload_formats(
                s3,
                work,
                import,
                stored.published,
                stored.tenant_id.as_deref(),
                &AtomicBool::new(false),
            )
            .await?;
        }
        tidy_bucket(s3, &import.record_id, &uploaded, &stored, &preview).await.map_err(Failure::Defer)?;
        Ok(stored)
    }

    /// Stores a recording whose files live in the recording trees: each
    /// format is renamed into the tree the import will choose (the store
    /// previews its decision), then the database commits, then the files
    /// follow the commit if it decided otherwise and copies an earlier
    /// import left in the other tree are removed. `getRecordings` lists the
    /// recording only once its files are in place; a failed move leaves
    /// nothing listed.
    async fn store_in_trees(
        &self,
        work: &Path,
        import: &RecordingImport,
        cancel: &Arc<AtomicBool>,
    ) -> Result<Imported, Failure> {
        let (store, settings) = (&self.inner.recordings, &self.inner.settings);
        let preview = store.preview_import(import, settings.policy).await.map_err(|e| store_failure(&e))?;
        let dirs = TreeDirs { publish: settings.publish_dir.clone(), unpublish: settings.unpublish_dir.clone() };
        let record_id = import.record_id.clone();
        let sources: Vec<(PathBuf, String)> =
            import.formats.iter().map(|f| (work.join(&f.format).join(&import.record_id), f.format.clone())).collect();
        let placed = {
            let (dirs, record_id, cancel, published) =
                (dirs.clone(), record_id.clone(), Arc::clone(cancel), preview.published);
            blocking(move || place_formats(sources, &record_id, &dirs, published, &cancel))
                .await
                .map_err(Failure::Defer)??
        };
        // From here on the import completes.
        let stored = match store.import_recording(import, settings.policy).await {
            Ok(stored) => stored,
            Err(e) => {
                if preview.new_recording && !e.unconfirmed() {
                    let published = preview.published;
                    let removed = blocking(move || remove_placed(&placed, &record_id, &dirs, published)).await;
                    if let Err(error) = removed {
                        warn!(record_id = %import.record_id, error, "cannot remove the files of a failed import");
                    }
                }
                return Err(store_failure(&e));
            }
        };
        let (previewed, decided) = (preview.published, stored.published);
        if previewed != decided {
            // An administrator published or unpublished the recording
            // between the preview and the commit.
            warn!(
                record_id = %import.record_id,
                published = decided,
                "the recording changed during its import; moving its files to the tree the import decided"
            );
        }
        blocking(move || settle_formats(&placed, &record_id, &dirs, previewed, decided))
            .await
            .map_err(Failure::Defer)?
            .map_err(Failure::Defer)?;
        Ok(stored)
    }

    /// Looks up the meeting's recording-ready URL (the recording store
    /// first, then what the API remembered in the store of meetings), stores
    /// it where Ruby Scalelite reads it, and queues the callback.
    ///
    /// `meeting_id` is the id BBB knew the meeting by (the URL's key); the
    /// callback carries the recording's (the front-end's) id.
    async fn queue_callback(
        &self,
        import: &RecordingImport,
        meeting_id: &str,
        id: i64,
        tenant_id: Option<&str>,
    ) -> Result<bool, Failure> {
        let store = &self.inner.recordings;
        let mut url = store.recording_ready_url(meeting_id).await.map_err(|e| store_failure(&e))?;
        if url.is_none()
            && let Some(keys) = &self.inner.keys
        {
            match tokio::time::timeout(KEY_LOOKUP_TIMEOUT, keys.recording_ready_url(meeting_id)).await {
                Ok(Ok(found)) => url = found,
                Ok(Err(e)) => warn!(meeting_id, error = %e, "cannot read the recording-ready URL from the store"),
                Err(_) => warn!(meeting_id, "the store did not answer the recording-ready URL lookup in time"),
            }
        }
        let Some(url) = url else {
            return Ok(false);
        };
        store.save_recording_ready_url(meeting_id, &url, Some(id)).await.map_err(|e| store_failure(&e))?;
        if self.inner.settings.multitenancy && tenant_id.is_none() {
            info!(meeting_id, "no recording-ready callback: multitenancy is on and the recording has no tenant");
            return Ok(false);
        }
        store
            .enqueue_delivery(id, &import.record_id, &import.meeting_id, &url, tenant_id)
            .await
            .map_err(|e| store_failure(&e))?;
        Ok(true)
    }

    /// Quarantines an archive the importer cannot use.
    async fn reject(&self, candidate: &Candidate, reason: String) -> ArchiveOutcome {
        let archive = candidate.name.clone();
        let (spool, path, why, size) =
            (self.inner.settings.spool_dir.clone(), candidate.path.clone(), reason.clone(), candidate.size);
        let moved = blocking(move || spool::quarantine(&spool, &path, &why, size)).await;
        let moved_to = match moved {
            Ok(Ok(path)) => Some(path),
            Ok(Err(e)) => {
                warn!(archive, error = %e, "cannot move the archive to the quarantine; it is skipped until it changes");
                None
            }
            Err(e) => {
                warn!(archive, error = %e, "cannot move the archive to the quarantine; it is skipped until it changes");
                None
            }
        };
        if moved_to.is_none() {
            self.inner
                .stuck
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(candidate.path.clone(), (candidate.size, candidate.modified));
        }
        warn!(
            archive,
            reason,
            quarantined = %moved_to.as_deref().map(Path::display).map(|d| d.to_string()).unwrap_or_default(),
            "recording archive rejected"
        );
        let entry = ImportLogEntry {
            filename: archive.clone(),
            record_id: archive.strip_suffix(".tar").filter(|id| extract::is_record_id(id)).map(str::to_owned),
            status: "failed".into(),
            reason: Some(reason.clone()),
            size_bytes: Some(candidate.size as i64),
            formats: None,
            finished_ms: 0,
        };
        if let Err(e) = self.inner.recordings.log_import(&entry).await {
            warn!(error = %e, "cannot write the import log");
        }
        ArchiveOutcome::Quarantined { archive, reason, moved_to }
    }
}

/// Parses one format's `metadata.xml` and checks that it describes this
/// recording and this format.
fn check_format(format: &str, xml: &[u8], record_id: &str) -> Result<FormatMetadata, String> {
    let parsed = parse_metadata(xml).map_err(|e| format!("{format}: {e}"))?;
    if parsed.record_id != record_id {
        return Err(format!("{format}/{record_id}/metadata.xml describes recording {}", parsed.record_id));
    }
    if parsed.format.format != format {
        return Err(format!("{format}/{record_id}/metadata.xml describes format {:?}", parsed.format.format));
    }
    Ok(parsed)
}

/// The keys one format was uploaded to.
struct UploadedFormat {
    format: String,
    /// `[<tenant prefix>]<state>/<format>/<record_id>/`.
    prefix: String,
    keys: BTreeSet<String>,
}

/// Uploads every extracted format to the bucket under `published` and
/// `tenant`'s prefix, overwriting what an earlier import stored there. The
/// extracted files stay in the work directory, which is removed
/// afterwards. Checks `cancel` before each format (shutdown).
async fn upload_formats(
    s3: &S3Storage,
    work: &Path,
    import: &RecordingImport,
    published: bool,
    tenant: Option<&str>,
    cancel: &AtomicBool,
) -> Result<Vec<UploadedFormat>, Failure> {
    let record_id = &import.record_id;
    let mut uploaded = Vec::with_capacity(import.formats.len());
    for format in import.formats.iter().map(|f| f.format.as_str()) {
        if cancel.load(Ordering::Relaxed) {
            return Err(Failure::Cancelled);
        }
        let prefix = s3.recording_prefix(tenant, published, format, record_id);
        let keys = s3
            .upload_dir(&work.join(format).join(record_id), &prefix)
            .await
            .map_err(|e| Failure::Defer(format!("cannot store {format}/{record_id} in the bucket: {e}")))?;
        info!(format, record_id, files = keys.len(), bucket = s3.bucket(), prefix, "stored in the bucket");
        uploaded.push(UploadedFormat { format: format.to_owned(), prefix, keys });
    }
    Ok(uploaded)
}

/// After the commit: removes what earlier imports left of the recording
/// that this one did not overwrite — objects under the new prefix it does
/// not have, and everything under the other state's prefix (and under the
/// previewed prefix when the commit decided otherwise).
async fn tidy_bucket(
    s3: &S3Storage,
    record_id: &str,
    uploaded: &[UploadedFormat],
    stored: &Imported,
    preview: &ImportPreview,
) -> Result<(), String> {
    for UploadedFormat { format, prefix, keys } in uploaded {
        let fail = |e: scalelite_store::s3::S3Error| format!("cannot tidy {format}/{record_id} in the bucket: {e}");
        let current = s3.list(prefix).await.map_err(fail)?;
        let leftover: Vec<String> = current.into_iter().filter(|k| !keys.contains(k)).collect();
        s3.delete_keys(&leftover).await.map_err(fail)?;
        let tenant = stored.tenant_id.as_deref();
        let mut stale = vec![s3.recording_prefix(tenant, !stored.published, format, record_id)];
        if !preview.matches(stored) {
            let previewed = preview.tenant_id.as_deref();
            stale.push(s3.recording_prefix(previewed, preview.published, format, record_id));
            stale.push(s3.recording_prefix(previewed, !preview.published, format, record_id));
        }
        for other in stale.iter().filter(|p| *p != prefix) {
            s3.delete_prefix(other).await.map_err(fail)?;
        }
    }
    Ok(())
}

/// After a commit that certainly failed for a recording the database did
/// not have: deletes the objects this import uploaded (nothing lists them,
/// and an archive the next attempt quarantines would leave them behind).
/// Only keys this import wrote are deleted; a failure is logged (the next
/// import overwrites them).
async fn remove_uploaded(s3: &S3Storage, record_id: &str, uploaded: &[UploadedFormat]) {
    let keys: Vec<String> = uploaded.iter().flat_map(|f| f.keys.iter().cloned()).collect();
    match s3.delete_keys(&keys).await {
        Ok(()) => info!(record_id, objects = keys.len(), "removed the objects of a recording whose import failed"),
        Err(error) => warn!(record_id, %error, "cannot remove the objects of a recording whose import failed"),
    }
}

/// After a commit that certainly failed for a recording the database did
/// not have: removes the format directories this import placed (still the
/// same directories, by identity), as the other tree's copies are removed
/// after a commit. A failure is logged (the next import replaces them).
fn remove_placed(placed: &[PlacedFormat], record_id: &str, dirs: &TreeDirs, published: bool) {
    for PlacedFormat { format, identity } in placed {
        if dir_identity(&dirs.path(published, format, record_id)) != Some(*identity) {
            continue;
        }
        match trees::remove_other(dirs.trees(), format, record_id, !published) {
            Ok(()) => info!(format, record_id, "removed the files of a recording whose import failed"),
            Err(error) => {
                warn!(format, record_id, %error, "cannot remove the files of a recording whose import failed")
            }
        }
    }
}

/// `RECORDING_PUBLISH_DIR` and `RECORDING_UNPUBLISH_DIR`, owned for the
/// blocking pool.
#[derive(Clone, Debug)]
struct TreeDirs {
    publish: PathBuf,
    unpublish: PathBuf,
}

impl TreeDirs {
    fn trees(&self) -> Trees<'_> {
        Trees { publish: &self.publish, unpublish: &self.unpublish }
    }

    /// `<tree>/<format>/<record_id>` in the publish tree (`published`) or
    /// the unpublish tree.
    fn path(&self, published: bool, format: &str, record_id: &str) -> PathBuf {
        let tree = if published { &self.publish } else { &self.unpublish };
        tree.join(format).join(record_id)
    }
}

/// Which directory a format's files were placed as: its device and inode,
/// which renames keep. It tells the files this import placed from a copy
/// of an earlier import after an administrator moved things around.
type DirIdentity = (u64, u64);

fn dir_identity(path: &Path) -> Option<DirIdentity> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::symlink_metadata(path).ok().filter(std::fs::Metadata::is_dir).map(|m| (m.dev(), m.ino()))
}

/// A format renamed into a tree before the commit.
struct PlacedFormat {
    format: String,
    identity: DirIdentity,
}

/// Moves every extracted format into the publish tree (`published`) or
/// the unpublish tree, replacing what an earlier import placed there
/// (copies in the other tree stay until the commit has decided). Checks
/// `cancel` before each format (shutdown).
fn place_formats(
    sources: Vec<(PathBuf, String)>,
    record_id: &str,
    dirs: &TreeDirs,
    published: bool,
    cancel: &AtomicBool,
) -> Result<Vec<PlacedFormat>, Failure> {
    let mut placed = Vec::with_capacity(sources.len());
    for (source, format) in sources {
        if cancel.load(Ordering::Relaxed) {
            return Err(Failure::Cancelled);
        }
        let fail = |e: io::Error| Failure::Defer(format!("cannot move {format}/{record_id} into place: {e}"));
        if trees::place_format(&source, &format, record_id, dirs.trees(), published).map_err(fail)? {
            info!(format, record_id, "copied across file systems (work and publish directories differ)");
        }
        let identity = dir_identity(&dirs.path(published, &format, record_id)).ok_or_else(|| {
            fail(io::Error::new(io::ErrorKind::NotFound, "the directory is gone right after it was placed"))
        })?;
        placed.push(PlacedFormat { format, identity });
    }
    Ok(placed)
}

/// What to do with a format placed in the previewed tree when the commit
/// decided the other one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fixup {
    /// The placed directory is still in the previewed tree: move it.
    Move,
    /// The administrator's publish/unpublish already moved it where the
    /// commit decided.
    InPlace,
    /// Neither tree holds the placed directory (the administrator's move
    /// removed it in favour of an earlier copy): import the archive again.
    Redo,
}

fn fixup(placed: DirIdentity, at_previewed: Option<DirIdentity>, at_decided: Option<DirIdentity>) -> Fixup {
    if at_previewed == Some(placed) {
        Fixup::Move
    } else if at_decided == Some(placed) {
        Fixup::InPlace
    } else {
        Fixup::Redo
    }
}

/// After the commit: moves each placed format to the tree the commit
/// decided when that is not the previewed one, then removes what earlier
/// imports left of it in the other tree. An error defers the archive: its
/// next import places the files again and commits once more (the same
/// row).
fn settle_formats(
    placed: &[PlacedFormat],
    record_id: &str,
    dirs: &TreeDirs,
    previewed: bool,
    decided: bool,
) -> Result<(), String> {
    let mut redo = Vec::new();
    for PlacedFormat { format, identity } in placed {
        if previewed != decided {
            let at_previewed = dirs.path(previewed, format, record_id);
            let at_decided = dirs.path(decided, format, record_id);
            match fixup(*identity, dir_identity(&at_previewed), dir_identity(&at_decided)) {
                Fixup::Move => {
                    trees::place_format(&at_previewed, format, record_id, dirs.trees(), decided)
                        .map_err(|e| format!("cannot move {format}/{record_id} to the decided tree: {e}"))?;
                }
                Fixup::InPlace => {}
                Fixup::Redo => {
                    redo.push(format.as_str());
                    continue;
                }
            }
        }
        trees::remove_other(dirs.trees(), format, record_id, decided)
            .map_err(|e| format!("cannot remove the stale copy of {format}/{record_id}: {e}"))?;
    }
    if !redo.is_empty() {
        return Err(format!(
            "the files of {record_id} ({}) were moved by a publish or unpublish during its import; \
             the archive is imported again",
            redo.join(", ")
        ));
    }
    Ok(())
}

/// The front-end's meeting id of a recording made with meeting ids scoped
/// per tenant: `meta/meetingId` without the `<tenant id>:` of the
/// recording's `tenant-id` metadata. `None` when the recording has no
/// tenant or its id is not scoped (a meeting from before scoping).
fn front_end_meeting_id(import: &RecordingImport) -> Option<String> {
    let (_, tenant) = import.metadata.iter().rev().find(|(key, _)| key == "tenant-id")?;
    let own = scalelite_core::scope::unscoped(tenant.trim(), &import.meeting_id)?;
    (!tenant.trim().is_empty() && !own.is_empty()).then(|| own.to_owned())
}

/// The front-end's own end callback URL in the metadata of a recording
/// made with meeting ids scoped per tenant (BBB recorded the balancer's
/// relay URL, [`scalelite_core::scope::front_end_end_callback`]), so that
/// getRecordings shows what the front-end sent.
fn show_front_end_metadata(import: &mut RecordingImport, bbb_meeting_id: &str) {
    for (key, value) in &mut import.metadata {
        if key.eq_ignore_ascii_case(scalelite_core::scope::END_CALLBACK_METADATA_KEY)
            && let Some(url) = scalelite_core::scope::front_end_end_callback(value, bbb_meeting_id)
        {
            *value = url;
        }
    }
}

#[cfg(test)]
mod scope_tests {
    use super::*;

    fn import(meeting_id: &str, tenant: Option<&str>) -> RecordingImport {
        let metadata = tenant.map(|t| vec![("tenant-id".to_owned(), t.to_owned())]).unwrap_or_default();
        RecordingImport { meeting_id: meeting_id.to_owned(), metadata, ..RecordingImport::default() }
    }

    #[test]
    fn only_the_recordings_own_tenant_prefix_is_taken_off() {
        assert_eq!(front_end_meeting_id(&import("t1:room", Some("t1"))).as_deref(), Some("room"));
        assert_eq!(front_end_meeting_id(&import("t1:t2:room", Some("t1"))).as_deref(), Some("t2:room"));
        assert_eq!(front_end_meeting_id(&import("t1:room", Some("t2"))), None);
        assert_eq!(front_end_meeting_id(&import("t1:room", None)), None);
        assert_eq!(front_end_meeting_id(&import("room", Some("t1"))), None);
        assert_eq!(front_end_meeting_id(&import(":room", Some(""))), None);
        assert_eq!(front_end_meeting_id(&import("t1:", Some("t1"))), None);
    }

    #[test]
    fn the_end_callback_url_is_the_front_ends() {
        let token = scalelite_core::jwt::end_callback("t1:room", "https://fe.example/ended", &"s".into());
        let relay = format!("https://t1.sl.test/bigbluebutton/api/meeting_ended?token={token}");
        let mut recording = import("t1:room", Some("t1"));
        recording.metadata.push(("endcallbackurl".to_owned(), relay.clone()));
        recording.metadata.push(("other".to_owned(), relay.clone()));
        show_front_end_metadata(&mut recording, "t1:other");
        assert_eq!(recording.metadata[1].1, relay, "another meeting's token is left alone");
        show_front_end_metadata(&mut recording, "t1:room");
        assert_eq!(recording.metadata[1].1, "https://fe.example/ended");
        assert_eq!(recording.metadata[2].1, relay, "only the end callback key");
    }
}

#[cfg(test)]
mod tree_tests {
    use super::*;

    const ID: &str = "r-1";

    struct Rig {
        _root: tempfile::TempDir,
        work: PathBuf,
        dirs: TreeDirs,
    }

    impl Rig {
        fn new() -> Self {
            let root = tempfile::tempdir().unwrap();
            let dirs = TreeDirs { publish: root.path().join("published"), unpublish: root.path().join("unpublished") };
            Self { work: root.path().join("work"), dirs, _root: root }
        }

        /// An extracted `presentation` format whose file says `content`.
        fn extracted(&self, content: &str) -> Vec<(PathBuf, String)> {
            let dir = self.work.join("presentation").join(ID);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("metadata.xml"), content).unwrap();
            vec![(dir, "presentation".to_owned())]
        }

        /// An earlier import's copy in a tree.
        fn copy(&self, published: bool, content: &str) {
            let dir = self.dirs.path(published, "presentation", ID);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("metadata.xml"), content).unwrap();
        }

        /// What each tree holds: `(published, unpublished)`.
        fn held(&self) -> (Option<String>, Option<String>) {
            let read = |published| {
                std::fs::read_to_string(self.dirs.path(published, "presentation", ID).join("metadata.xml")).ok()
            };
            (read(true), read(false))
        }

        fn place(&self, content: &str, published: bool) -> Vec<PlacedFormat> {
            match place_formats(self.extracted(content), ID, &self.dirs, published, &AtomicBool::new(false)) {
                Ok(placed) => placed,
                Err(_) => panic!("placing failed"),
            }
        }

        /// Hidden working directories left in both trees.
        fn leftovers(&self) -> usize {
            [&self.dirs.publish, &self.dirs.unpublish]
                .iter()
                .filter_map(|tree| std::fs::read_dir(tree.join("presentation")).ok())
                .flatten()
                .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with('.'))
                .count()
        }
    }

    #[test]
    fn the_decision_follows_where_the_placed_directory_is() {
        let (ours, theirs) = ((1, 10), (1, 11));
        assert_eq!(fixup(ours, Some(ours), None), Fixup::Move);
        assert_eq!(fixup(ours, Some(ours), Some(theirs)), Fixup::Move);
        assert_eq!(fixup(ours, None, Some(ours)), Fixup::InPlace);
        assert_eq!(fixup(ours, Some(theirs), Some(ours)), Fixup::InPlace);
        assert_eq!(fixup(ours, None, Some(theirs)), Fixup::Redo);
        assert_eq!(fixup(ours, None, None), Fixup::Redo);
    }

    #[test]
    fn a_reimport_replaces_its_tree_and_removes_the_other_only_after_the_commit() {
        let rig = Rig::new();
        rig.copy(true, "old published");
        rig.copy(false, "old unpublished");
        let placed = rig.place("new", true);
        // Before the commit: the previewed tree has the new files, the
        // other tree's copy is still there.
        assert_eq!(rig.held(), (Some("new".into()), Some("old unpublished".into())));
        settle_formats(&placed, ID, &rig.dirs, true, true).unwrap();
        assert_eq!(rig.held(), (Some("new".into()), None));
        assert_eq!(rig.leftovers(), 0);
    }

    #[test]
    fn the_commit_deciding_the_other_tree_moves_the_files_there() {
        // The administrator unpublished the old copy before the files were
        // placed in the published tree (the preview said published).
        let rig = Rig::new();
        rig.copy(false, "old");
        let placed = rig.place("new", true);
        settle_formats(&placed, ID, &rig.dirs, true, false).unwrap();
        assert_eq!(rig.held(), (None, Some("new".into())));
        assert_eq!(rig.leftovers(), 0);
    }

    #[test]
    fn files_the_administrator_already_moved_stay() {
        let rig = Rig::new();
        let placed = rig.place("new", true);
        // publishRecordings (unpublish) moved the placed directory.
        let trees = rig.dirs.trees();
        trees::move_format(trees, "presentation", ID, false).unwrap();
        settle_formats(&placed, ID, &rig.dirs, true, false).unwrap();
        assert_eq!(rig.held(), (None, Some("new".into())));
    }

    #[test]
    fn files_replaced_by_an_earlier_copy_ask_for_another_import() {
        let rig = Rig::new();
        rig.copy(false, "old");
        let placed = rig.place("new", true);
        // An unpublish with a copy in both trees keeps the target's (the
        // old one) and removes the placed files.
        let trees = rig.dirs.trees();
        trees::move_format(trees, "presentation", ID, false).unwrap();
        assert_eq!(rig.held(), (None, Some("old".into())));
        let error = settle_formats(&placed, ID, &rig.dirs, true, false).unwrap_err();
        assert!(error.contains("imported again"), "{error}");
        // The next import previews the administrator's decision.
        let placed = rig.place("new", false);
        settle_formats(&placed, ID, &rig.dirs, false, false).unwrap();
        assert_eq!(rig.held(), (None, Some("new".into())));
    }

    #[test]
    fn a_blocked_tree_fails_the_placement_and_keeps_the_source() {
        let rig = Rig::new();
        std::fs::create_dir_all(&rig.dirs.publish).unwrap();
        std::fs::write(rig.dirs.publish.join("presentation"), "in the way").unwrap();
        let sources = rig.extracted("new");
        let result = place_formats(sources.clone(), ID, &rig.dirs, true, &AtomicBool::new(false));
        assert!(matches!(result, Err(Failure::Defer(ref reason)) if reason.contains("cannot move presentation/r-1")));
        assert!(sources[0].0.join("metadata.xml").exists());
    }
}
