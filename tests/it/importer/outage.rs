//! Database outages (PostgreSQL) and shutdowns: archives stay in the spool
//! and are imported exactly once when the database is back.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};

use async_trait::async_trait;
use scalelite_store::StoreError;
use scalelite_store::recordings::{
    AgedQuery, AgedRecording, Delivery, DeliveryOutcome, ImportPolicy, ImportPreview, Imported, PlaybackTarget,
    RecordingImport, RecordingPage, RecordingStore, RecordingSummary,
};
use scalelite_tests::archive::{RawTar, drop_bytes};
use tokio::sync::Notify;

use super::*;

/// The real store, counting commits attempted and failed imports (at the
/// preview or the commit), with gates that can hold an import at its
/// database step (the commit) or right after the preview of its decision,
/// and a switch that fails the next commit without reaching the database.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    pub attempts: AtomicUsize,
    pub failures: AtomicUsize,
    pub gate_armed: AtomicBool,
    pub preview_gate_armed: AtomicBool,
    pub entered: Notify,
    pub release: Notify,
    /// The next commit fails: [`CommitFailure`] as `u8`, taken once.
    pub fail_commit: AtomicU8,
}

/// How [`Observed::fail_commit`] fails the next commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum CommitFailure {
    /// The database could not be reached: nothing was committed.
    Unreachable = 1,
    /// The connection failed at the COMMIT: whether it was made is unknown.
    Unconfirmed = 2,
}

impl Observed {
    /// Fails the next commit as `failure`.
    pub(crate) fn fail_next_commit(&self, failure: CommitFailure) {
        self.fail_commit.store(failure as u8, Ordering::SeqCst);
    }
}

impl Observed {
    /// Holds the caller if `armed` was set (once), until released.
    async fn gate(&self, armed: &AtomicBool) {
        if armed.swap(false, Ordering::SeqCst) {
            let released = self.release.notified();
            self.entered.notify_one();
            released.await;
        }
    }
}

#[derive(Debug)]
pub(crate) struct ObservedStore {
    inner: Arc<dyn RecordingStore>,
    seen: Arc<Observed>,
}

impl ObservedStore {
    /// `inner`, observed through `seen`.
    pub(crate) fn new(inner: Arc<dyn RecordingStore>, seen: Arc<Observed>) -> Self {
        Self { inner, seen }
    }
}

#[async_trait]
impl RecordingStore for ObservedStore {
    async fn health_check(&self) -> Result<(), StoreError> {
        self.inner.health_check().await
    }
    async fn import_recording(&self, import: &RecordingImport, policy: ImportPolicy) -> Result<Imported, StoreError> {
        self.seen.gate(&self.seen.gate_armed).await;
        self.seen.attempts.fetch_add(1, Ordering::SeqCst);
        let unreachable = || StoreError::Postgres(sqlx::Error::PoolTimedOut);
        let result = match self.seen.fail_commit.swap(0, Ordering::SeqCst) {
            1 => Err(unreachable()),
            2 => Err(StoreError::Unconfirmed(Box::new(unreachable()))),
            _ => self.inner.import_recording(import, policy).await,
        };
        if result.is_err() {
            self.seen.failures.fetch_add(1, Ordering::SeqCst);
        }
        result
    }
    async fn preview_import(
        &self,
        import: &RecordingImport,
        policy: ImportPolicy,
    ) -> Result<ImportPreview, StoreError> {
        let preview = self.inner.preview_import(import, policy).await;
        if preview.is_err() {
            // The attempt ends here, before its commit.
            self.seen.failures.fetch_add(1, Ordering::SeqCst);
        }
        self.seen.gate(&self.seen.preview_gate_armed).await;
        preview
    }
    async fn log_import(&self, entry: &ImportLogEntry) -> Result<(), StoreError> {
        self.inner.log_import(entry).await
    }
    async fn recent_imports(&self, limit: i64) -> Result<Vec<ImportLogEntry>, StoreError> {
        self.inner.recent_imports(limit).await
    }
    async fn recording_ready_url(&self, meeting_id: &str) -> Result<Option<String>, StoreError> {
        self.inner.recording_ready_url(meeting_id).await
    }
    async fn analytics_callback_url(&self, meeting_id: &str) -> Result<Option<String>, StoreError> {
        self.inner.analytics_callback_url(meeting_id).await
    }
    async fn save_recording_ready_url(&self, m: &str, url: &str, id: Option<i64>) -> Result<(), StoreError> {
        self.inner.save_recording_ready_url(m, url, id).await
    }
    async fn enqueue_delivery(
        &self,
        recording_id: i64,
        record_id: &str,
        meeting_id: &str,
        url: &str,
        tenant_id: Option<&str>,
    ) -> Result<(), StoreError> {
        self.inner.enqueue_delivery(recording_id, record_id, meeting_id, url, tenant_id).await
    }
    async fn claim_deliveries(&self, limit: i64, lease_secs: i64) -> Result<Vec<Delivery>, StoreError> {
        self.inner.claim_deliveries(limit, lease_secs).await
    }
    async fn finish_delivery(&self, id: i64, outcome: DeliveryOutcome, error: Option<&str>) -> Result<(), StoreError> {
        self.inner.finish_delivery(id, outcome, error).await
    }
    async fn find_recordings(&self, query: &RecordingQuery) -> Result<RecordingPage, StoreError> {
        self.inner.find_recordings(query).await
    }
    async fn recordings_by_ids(
        &self,
        ids: &[String],
        tenant_id: Option<&str>,
        published_or_unpublished: bool,
    ) -> Result<Vec<RecordingSummary>, StoreError> {
        self.inner.recordings_by_ids(ids, tenant_id, published_or_unpublished).await
    }
    async fn set_published(&self, id: i64, publish: bool) -> Result<(), StoreError> {
        self.inner.set_published(id, publish).await
    }
    async fn update_recordings(
        &self,
        ids: &[String],
        upserts: &[(String, String)],
        deletes: &[String],
        protect: Option<bool>,
    ) -> Result<(), StoreError> {
        self.inner.update_recordings(ids, upserts, deletes, protect).await
    }
    async fn mark_deleted(&self, id: i64) -> Result<(), StoreError> {
        self.inner.mark_deleted(id).await
    }
    async fn playback(&self, record_id: &str, format: &str) -> Result<Option<PlaybackTarget>, StoreError> {
        self.inner.playback(record_id, format).await
    }
    async fn unpublished(&self) -> Result<Vec<RecordingSummary>, StoreError> {
        self.inner.unpublished().await
    }
    async fn published(&self) -> Result<Vec<RecordingSummary>, StoreError> {
        self.inner.published().await
    }
    async fn add_to_tenant(&self, tenant_id: &str) -> Result<u64, StoreError> {
        self.inner.add_to_tenant(tenant_id).await
    }
    async fn recordings_started_before(&self, query: &AgedQuery) -> Result<Vec<AgedRecording>, StoreError> {
        self.inner.recordings_started_before(query).await
    }
}

pub(super) fn observed_importer(rig: &Rig) -> (Importer, Arc<Observed>) {
    let seen = Arc::new(Observed::default());
    let store = ObservedStore { inner: Arc::clone(&rig.store), seen: Arc::clone(&seen) };
    (Importer::new(rig.settings(&[]), Arc::new(store), None), seen)
}

pub(super) fn no_extraction_dirs(rig: &Rig) -> bool {
    std::fs::read_dir(rig.dirs.work())
        .unwrap()
        .all(|e| !e.unwrap().file_name().to_string_lossy().starts_with(".import-"))
}

#[tokio::test]
async fn shutdown_after_the_database_step_completes_the_import() {
    let rig = Rig::start().await;
    let (importer, seen) = observed_importer(&rig);
    seen.gate_armed.store(true, Ordering::SeqCst);
    let entered = seen.entered.notified();
    let running = Running::start(&importer);
    let rec = RecordingArchive::new("finish", "Finish");
    rec.drop_into(&rig.dirs.spool());
    tokio::time::timeout(Duration::from_secs(20), entered).await.expect("the import reaches the database");
    // SIGTERM arrives while the import is at its database step: let the
    // importer's task see it (the test runtime has one thread) before the
    // database answers.
    let mut running = running;
    running.signal();
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    seen.release.notify_one();
    running.stop().await;
    assert!(rig.recording(&rec.record_id).await.is_some());
    assert!(!rig.in_spool(&rec.file_name()));
    assert_published(&rec, &rig.dirs.published());
    assert!(no_extraction_dirs(&rig));
}

#[tokio::test]
async fn shutdown_during_extraction_abandons_the_import_cleanly() {
    let rig = Rig::start().await;
    let rec = RecordingArchive::new("big", "Big");
    // Large enough that extraction takes a while (writing and flushing).
    let webcams = vec![0x5a_u8; 256 * 1024 * 1024];
    let bytes = RawTar::new()
        .recording(&rec)
        .file(&format!("presentation/{}/video/webcams-hd.webm", rec.record_id), &webcams)
        .finish();
    drop(webcams);
    drop_bytes(&rig.dirs.spool(), &rec.file_name(), &bytes);
    let size = bytes.len() as u64;
    drop(bytes);

    let running = Running::start(&rig.importer(&[]));
    eventually_with(Duration::from_secs(20), "extraction started", || async { !no_extraction_dirs(&rig) }).await;
    running.stop().await;

    assert!(no_extraction_dirs(&rig), "the extraction directory is removed");
    assert_eq!(std::fs::metadata(rig.dirs.spool().join(rec.file_name())).unwrap().len(), size);
    assert!(rig.recording(&rec.record_id).await.is_none());
    assert_eq!(rig.files(), [format!("spool/{}", rec.file_name())]);
}

#[tokio::test]
async fn a_failed_commit_removes_the_files_of_a_new_recording_only() {
    let rig = Rig::start().await;
    let (importer, seen) = observed_importer(&rig);
    // The database cannot be reached at the commit of a new recording: the
    // files placed for it are removed, the archive waits in the spool.
    let rec = RecordingArchive::new("failed-commit", "Failed commit").formats(&[Format::Presentation, Format::Video]);
    rec.drop_into(&rig.dirs.spool());
    seen.fail_next_commit(CommitFailure::Unreachable);
    let report = importer.import_pending_once().await.unwrap();
    assert_eq!(report.deferred(), 1, "{report:?}");
    assert_eq!(seen.attempts.load(Ordering::SeqCst), 1, "the commit was attempted");
    assert_eq!(rig.files(), [format!("spool/{}", rec.file_name())]);
    let report = importer.import_pending_once().await.unwrap();
    assert_eq!(report.imported(), 1, "{report:?}");
    assert_published(&rec, &rig.dirs.published());

    // A re-import of a recording the database has: its files stay.
    rec.drop_into(&rig.dirs.spool());
    seen.fail_next_commit(CommitFailure::Unreachable);
    let report = importer.import_pending_once().await.unwrap();
    assert_eq!(report.deferred(), 1, "{report:?}");
    assert_published(&rec, &rig.dirs.published());
    importer.import_pending_once().await.unwrap();

    // A commit whose outcome is unknown: the files stay (the recording may
    // be listed).
    let other = RecordingArchive::new("unknown-commit", "Unknown commit");
    other.drop_into(&rig.dirs.spool());
    seen.fail_next_commit(CommitFailure::Unconfirmed);
    let report = importer.import_pending_once().await.unwrap();
    assert_eq!(report.deferred(), 1, "{report:?}");
    assert_published(&other, &rig.dirs.published());
    let report = importer.import_pending_once().await.unwrap();
    assert_eq!(report.imported(), 1, "{report:?}");
    assert!(rig.recording(&other.record_id).await.is_some());
}

/// PostgreSQL stopping and starting.
mod redis_only {
    use super::*;
    use scalelite_tests::TestBackend;

    #[tokio::test]
    async fn postgres_down_keeps_the_archive_until_it_is_back() {
        let rig = Rig::on(TestBackend::Redis).await;
        let rec = RecordingArchive::new("outage", "Outage");
        rec.drop_into(&rig.dirs.spool());
        rig.pg().stop().await;

        let report = rig.importer(&[]).import_pending_once().await.unwrap();
        assert_eq!(report.deferred(), 1, "{report:?}");
        assert!(report.delivery_error.is_some());
        assert!(rig.in_spool(&rec.file_name()), "the archive stays in the spool");
        assert_eq!(rig.files(), [format!("spool/{}", rec.file_name())], "not quarantined, nothing published");

        // The service keeps retrying with a backoff while the database is down.
        let (importer, seen) = observed_importer(&rig);
        let running = Running::start(&importer);
        eventually_with(Duration::from_secs(20), "several attempts while PostgreSQL is down", || async {
            seen.failures.load(Ordering::SeqCst) >= 3
        })
        .await;
        assert!(rig.in_spool(&rec.file_name()));
        assert!(!rig.dirs.spool().join("failed").exists());

        rig.pg().start_again().await;
        eventually_with(Duration::from_secs(20), "imported once PostgreSQL is back", || async {
            !rig.in_spool(&rec.file_name()) && rig.recording(&rec.record_id).await.is_some()
        })
        .await;
        running.stop().await;
        assert_eq!(rig.count("SELECT count(*) FROM recordings").await, 1);
        assert_eq!(rig.count("SELECT count(*) FROM playback_formats").await, 1);
        let log = rig.import_log().await;
        assert_eq!(log.len(), 1, "{log:?}");
        assert_eq!(log[0].status, "imported");
        assert_published(&rec, &rig.dirs.published());
        assert!(no_extraction_dirs(&rig));
    }

    #[tokio::test]
    async fn postgres_stopping_during_an_import_loses_nothing() {
        let rig = Rig::on(TestBackend::Redis).await;
        let (importer, seen) = observed_importer(&rig);
        seen.gate_armed.store(true, Ordering::SeqCst);
        let entered = seen.entered.notified();
        let running = Running::start(&importer);
        let rec = RecordingArchive::new("mid-import", "Mid import").formats(&[Format::Presentation, Format::Video]);
        rec.drop_into(&rig.dirs.spool());

        // The archive is extracted and parsed; the database step is held.
        tokio::time::timeout(Duration::from_secs(20), entered).await.expect("the import reaches the database");
        rig.pg().stop().await;
        seen.release.notify_one();
        eventually_with(Duration::from_secs(20), "the failed attempt is cleaned up", || async {
            seen.failures.load(Ordering::SeqCst) >= 1 && no_extraction_dirs(&rig)
        })
        .await;
        assert!(rig.in_spool(&rec.file_name()));
        assert!(!rig.dirs.spool().join("failed").exists(), "an outage is not the archive's fault");
        // The files went into place before the commit that failed; the
        // recording was new, so they are removed again.
        assert_eq!(rig.files(), [format!("spool/{}", rec.file_name())]);

        rig.pg().start_again().await;
        eventually_with(Duration::from_secs(20), "imported after the restart", || async {
            !rig.in_spool(&rec.file_name()) && rig.recording(&rec.record_id).await.is_some()
        })
        .await;
        running.stop().await;
        assert_eq!(rig.count("SELECT count(*) FROM recordings").await, 1);
        assert_eq!(rig.count("SELECT count(*) FROM playback_formats").await, 2);
        assert_published(&rec, &rig.dirs.published());
    }
}
