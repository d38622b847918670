//! Deleting, publishing and unpublishing one recording: its files in the
//! publish/unpublish trees first, then its rows. The BBB API's
//! `deleteRecordings` and `publishRecordings` and the retention rules
//! ([`crate::retention`]) all go through here. With `S3_RECORDING` the
//! files are objects in the bucket ([`crate::s3`]) instead.

use std::io;
use std::path::PathBuf;

use crate::StoreError;
use crate::recordings::{RecordingStore, RecordingSummary};
use crate::s3::S3Storage;
use crate::trees::{self, Trees};

/// Where recording files live: the recording trees, owned (they move into
/// blocking file tasks), or the bucket when `S3_RECORDING` is on.
#[derive(Clone, Debug)]
pub struct TreeDirs {
    /// `RECORDING_PUBLISH_DIR`.
    pub publish: PathBuf,
    /// `RECORDING_UNPUBLISH_DIR`.
    pub unpublish: PathBuf,
    /// The bucket (`S3_RECORDING`): the trees are then not used.
    pub s3: Option<S3Storage>,
}

impl TreeDirs {
    /// The trees alone (no bucket).
    pub fn local(publish: PathBuf, unpublish: PathBuf) -> Self {
        Self { publish, unpublish, s3: None }
    }

    /// Borrowed, for the functions of [`crate::trees`].
    pub fn trees(&self) -> Trees<'_> {
        Trees { publish: &self.publish, unpublish: &self.unpublish }
    }
}

/// Why a recording could not be changed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActionError {
    /// Its files could not be moved or removed (the rows are unchanged).
    #[error("files: {0}")]
    Files(io::Error),
    /// The files changed, but the database could not record it.
    #[error("database: {0}")]
    Store(StoreError),
}

/// Runs a file operation on the trees off the async runtime.
async fn on_files(
    dirs: &TreeDirs,
    work: impl FnOnce(Trees<'_>) -> io::Result<()> + Send + 'static,
) -> Result<(), ActionError> {
    let dirs = dirs.clone();
    tokio::task::spawn_blocking(move || work(dirs.trees()))
        .await
        .map_err(io::Error::other)
        .and_then(|r| r)
        .map_err(ActionError::Files)
}

/// Removes a recording's files from both trees, then its metadata, formats
/// and thumbnails, keeping the row as `state = 'deleted'` (Scalelite's
/// `deleteRecordings`; Scalelite cleans only the publish tree).
/// With S3, every format's objects under both the published and the
/// unpublished prefix are deleted (Scalelite: the current state's only).
pub async fn delete(
    store: &dyn RecordingStore,
    dirs: &TreeDirs,
    recording: &RecordingSummary,
) -> Result<(), ActionError> {
    if let Some(s3) = &dirs.s3 {
        let tenant = recording.tenant_id.as_deref();
        for format in &recording.formats {
            for published in [true, false] {
                let prefix = s3.recording_prefix(tenant, published, format, &recording.record_id);
                s3.delete_prefix(&prefix).await.map_err(|e| ActionError::Files(e.into()))?;
            }
        }
        return store.mark_deleted(recording.id).await.map_err(ActionError::Store);
    }
    let record_id = recording.record_id.clone();
    on_files(dirs, move |trees| trees::delete_recording(trees, &record_id)).await?;
    store.mark_deleted(recording.id).await.map_err(ActionError::Store)
}

/// Moves the formats a failed publish or unpublish moved back where they
/// were (best effort: a failure is logged, the next publish or unpublish
/// of the recording moves what is left).
async fn move_back(s3: &S3Storage, record_id: &str, moved: &[(String, String)]) {
    for (from, to) in moved.iter().rev() {
        if let Err(error) = s3.move_prefix(to, from).await {
            tracing::warn!(record_id, from = %to, to = %from, %error, "could not move a format back after a failed move");
        }
    }
}

/// Moves every format of a recording into the publish tree (`publish`) or
/// the unpublish tree, then records `published`, `publish_updated` and
/// `state` (Scalelite's `publishRecordings`). With S3 the objects move
/// between the `published/` and `unpublished/` prefixes (server-side copy,
/// then delete); a format with objects under neither is an error, as a
/// format missing from both trees is. When a format fails to move, the
/// formats moved before it are moved back and the state is not changed.
pub async fn set_published(
    store: &dyn RecordingStore,
    dirs: &TreeDirs,
    recording: &RecordingSummary,
    publish: bool,
) -> Result<(), ActionError> {
    if let Some(s3) = &dirs.s3 {
        let tenant = recording.tenant_id.as_deref();
        // Formats moved so far, to move back when a later one fails: the
        // recording keeps its state with every format where playback looks.
        let mut moved_formats: Vec<(String, String)> = Vec::new();
        for format in &recording.formats {
            let from = s3.recording_prefix(tenant, !publish, format, &recording.record_id);
            let to = s3.recording_prefix(tenant, publish, format, &recording.record_id);
            let outcome = match s3.move_prefix(&from, &to).await {
                Ok(0) => match s3.list(&to).await {
                    Ok(objects) if objects.is_empty() => Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("recording {} has no {format} objects in the bucket", recording.record_id),
                    )),
                    Ok(_) => Ok(()),
                    Err(e) => Err(e.into()),
                },
                Ok(_) => {
                    moved_formats.push((from, to));
                    Ok(())
                }
                Err(e) => Err(e.into()),
            };
            if let Err(error) = outcome {
                move_back(s3, &recording.record_id, &moved_formats).await;
                return Err(ActionError::Files(error));
            }
        }
        return store.set_published(recording.id, publish).await.map_err(ActionError::Store);
    }
    let (formats, record_id) = (recording.formats.clone(), recording.record_id.clone());
    on_files(dirs, move |trees| {
        formats.iter().try_for_each(|format| trees::move_format(trees, format, &record_id, publish))
    })
    .await?;
    store.set_published(recording.id, publish).await.map_err(ActionError::Store)
}

/// What [`settle_in_bucket`] found and did for one format of a recording.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BucketRepair {
    /// Nothing under the prefix the recording's state does not select.
    InPlace,
    /// Its objects were only under the other prefix: this many moved to
    /// the prefix its state selects.
    Moved(usize),
    /// Both prefixes held it and the one its state selects was complete:
    /// this many objects under the other one were deleted.
    RemovedCopy(usize),
    /// Both prefixes held it but the one its state selects lacks objects
    /// the other has (or has them with other sizes): nothing was changed.
    Differs {
        /// Relative keys under the other prefix missing (or of another
        /// size) under the selected one, at most ten.
        missing: Vec<String>,
    },
}

/// Puts one format of a recording under the bucket prefix its state
/// selects (`published`), as `recordings update` does: objects found only
/// under the other prefix are moved (server-side copy, then delete); when
/// both prefixes hold the format, the other prefix's objects are deleted
/// only if the selected prefix is complete — it has every relative key the
/// other has, with the same size (contents are not compared: a copy the
/// bucket made has its source's bytes, and which import wrote them the
/// keys cannot tell) — else both are left as they are
/// ([`BucketRepair::Differs`]).
pub async fn settle_in_bucket(
    s3: &S3Storage,
    tenant: Option<&str>,
    record_id: &str,
    format: &str,
    published: bool,
) -> Result<BucketRepair, crate::s3::S3Error> {
    let wrong = s3.recording_prefix(tenant, !published, format, record_id);
    let right = s3.recording_prefix(tenant, published, format, record_id);
    let stray = s3.list_sized(&wrong).await?;
    if stray.is_empty() {
        return Ok(BucketRepair::InPlace);
    }
    let kept = s3.list_sized(&right).await?;
    if kept.is_empty() {
        return Ok(BucketRepair::Moved(s3.move_prefix(&wrong, &right).await?));
    }
    let kept: std::collections::HashMap<&str, u64> =
        kept.iter().filter_map(|(key, size)| key.strip_prefix(&right).map(|rest| (rest, *size))).collect();
    let missing: Vec<String> = stray
        .iter()
        .filter_map(|(key, size)| {
            let rest = key.strip_prefix(&wrong)?;
            (kept.get(rest) != Some(size)).then(|| rest.to_owned())
        })
        .take(10)
        .collect();
    if !missing.is_empty() {
        return Ok(BucketRepair::Differs { missing });
    }
    let keys: Vec<String> = stray.into_iter().map(|(key, _)| key).filter(|key| key.starts_with(&wrong)).collect();
    s3.delete_keys(&keys).await?;
    Ok(BucketRepair::RemovedCopy(keys.len()))
}
