//! The recording importer on the backend under test (a real PostgreSQL, or
//! the embedded SQLite file), real directories and archives packed the way
//! Scalelite's post-publish script packs them.

mod callbacks;
mod end_to_end;
mod hostile;
mod order;
pub(crate) mod outage;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use scalelite_core::config::{Backend, Config, Env};
use scalelite_recording_importer::{ArchiveOutcome, Backoff, Importer, Settings};
use scalelite_store::recordings::{
    ImportLogEntry, ImportedThumbnail, RecordingQuery, RecordingStore, RecordingView, StateFilter,
};
use scalelite_store::{PgStore, RedisStore, SqliteStore, Store};
use scalelite_tests::{
    Format, LB_SECRET, NS, RecordingArchive, RecordingDirs, TestBackend, TestPostgres, TestRedis, eventually_with,
};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Recording directories and the recordings store of the backend under
/// test: a migrated PostgreSQL, or an SQLite file in a data directory.
pub(crate) struct Rig {
    pub backend: TestBackend,
    pub dirs: RecordingDirs,
    pub store: Arc<dyn RecordingStore>,
    pg: Option<TestPostgres>,
    sqlite: Option<SqliteStore>,
    data_dir: Option<TempDir>,
}

/// The store of servers, meetings and tenants an importer reads
/// recording-ready URLs and tenants from, with what keeps it alive.
pub(crate) struct Meetings {
    pub store: Arc<dyn Store>,
    _redis: Option<TestRedis>,
}

impl Rig {
    pub async fn start() -> Self {
        Self::on(TestBackend::from_env()).await
    }

    pub async fn on(backend: TestBackend) -> Self {
        let dirs = RecordingDirs::new();
        match backend {
            TestBackend::Redis => {
                let pg = TestPostgres::start().await;
                let store = PgStore::open(&pg.url(), 4).unwrap();
                store.migrate().await.unwrap();
                Self { backend, dirs, store: Arc::new(store), pg: Some(pg), sqlite: None, data_dir: None }
            }
            TestBackend::Embedded => {
                let data_dir = tempfile::Builder::new().prefix("scalelite-data-").tempdir().unwrap();
                let store = SqliteStore::open(data_dir.path().join(Backend::DATABASE_FILE)).await.unwrap();
                let sqlite = Some(store.clone());
                Self { backend, dirs, store: Arc::new(store), pg: None, sqlite, data_dir: Some(data_dir) }
            }
        }
    }

    /// The PostgreSQL of a rig on Redis (tests of PostgreSQL outages).
    pub fn pg(&self) -> &TestPostgres {
        self.pg.as_ref().expect("a PostgreSQL rig: Rig::on(TestBackend::Redis)")
    }

    /// The meetings store next to this rig's recordings: a Redis of its own,
    /// or the same SQLite file.
    pub async fn meetings(&self) -> Meetings {
        match &self.sqlite {
            Some(sqlite) => Meetings { store: Arc::new(sqlite.clone()), _redis: None },
            None => {
                let redis = TestRedis::start().await;
                let store = RedisStore::open(&redis.url(), NS).unwrap();
                Meetings { store: Arc::new(store), _redis: Some(redis) }
            }
        }
    }

    /// Runs `sql` on the recordings database, rendered as `psql -At` does.
    pub async fn sql(&self, sql: &str) -> String {
        match (&self.pg, &self.sqlite) {
            (Some(pg), _) => pg.psql(sql).await,
            (None, Some(sqlite)) => scalelite_tests::sqlite::query_text(sqlite, sql).await,
            (None, None) => unreachable!("a rig has a database"),
        }
    }

    /// The environment of an importer on this rig: no settle time, a scan
    /// every 200 ms, plus `vars`.
    pub fn env(&self, vars: &[(&str, &str)]) -> Env {
        let mut env = self.dirs.env(Env::default());
        env = match (&self.pg, &self.data_dir) {
            (Some(pg), _) => env.with("DATABASE_URL", pg.url()),
            (None, Some(dir)) => env.with("SCALELITE_DATA_DIR", dir.path().display().to_string()),
            (None, None) => unreachable!("a rig has a database"),
        };
        let mut env = env
            .with("LOADBALANCER_SECRET", LB_SECRET)
            .with("RECORDING_IMPORT_SETTLE_TIME", "0")
            .with("RECORDING_IMPORT_POLL_INTERVAL", "0.2");
        for (name, value) in vars {
            env = env.with(name, *value);
        }
        env
    }

    /// Settings with short pauses (outages: 50–200 ms; callback retries: 1 s).
    pub fn settings(&self, vars: &[(&str, &str)]) -> Settings {
        let mut settings = Settings::from_config(&Config::from_env(&self.env(vars)).unwrap());
        settings.outage_backoff = Backoff { initial: Duration::from_millis(50), max: Duration::from_millis(200) };
        settings.callbacks.retry = Backoff { initial: Duration::from_secs(1), max: Duration::from_secs(1) };
        settings.callbacks.poll_interval = Duration::from_millis(100);
        settings
    }

    pub fn importer(&self, vars: &[(&str, &str)]) -> Importer {
        Importer::new(self.settings(vars), Arc::clone(&self.store), None)
    }

    pub async fn recording(&self, record_id: &str) -> Option<RecordingView> {
        let query = RecordingQuery {
            record_id_prefixes: Some(vec![record_id.to_owned()]),
            states: StateFilter::Any,
            ..RecordingQuery::default()
        };
        self.store.find_recordings(&query).await.unwrap().recordings.into_iter().find(|r| r.record_id == record_id)
    }

    pub async fn import_log(&self) -> Vec<ImportLogEntry> {
        self.store.recent_imports(100).await.unwrap()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        self.sql(sql).await.trim().parse().unwrap()
    }

    /// Files below the rig, without the spool lock.
    pub fn files(&self) -> Vec<String> {
        self.dirs.files().into_iter().filter(|f| f != "spool/.scalelite-importer.lock").collect()
    }

    pub fn in_spool(&self, name: &str) -> bool {
        self.dirs.spool().join(name).exists()
    }
}

/// `<tree>/<format>/<record_id>/<path>` of every file of `rec`.
pub(crate) fn tree_files(rec: &RecordingArchive, tree: &str) -> Vec<String> {
    rec.members().into_iter().map(|(path, _)| format!("{tree}/{path}")).collect()
}

/// Asserts that `tree` holds exactly the files of `rec`, byte for byte.
#[track_caller]
pub(crate) fn assert_published(rec: &RecordingArchive, tree: &Path) {
    for (path, content) in rec.members() {
        let on_disk = std::fs::read(tree.join(&path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(on_disk == content, "{path} differs");
    }
}

/// An importer running as the service does, until stopped.
pub(crate) struct Running {
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Running {
    pub fn start(importer: &Importer) -> Self {
        let (tx, rx) = oneshot::channel();
        let importer = importer.clone();
        let task = tokio::spawn(async move {
            importer
                .run(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Self { shutdown: Some(tx), task: Some(task) }
    }

    /// Sends the shutdown signal (SIGTERM).
    pub fn signal(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Sends the shutdown signal and waits for `run` to return.
    pub async fn stop(mut self) {
        self.signal();
        tokio::time::timeout(Duration::from_secs(30), self.task.take().unwrap())
            .await
            .expect("the importer stops within 30 s")
            .expect("the importer task does not panic");
    }
}

impl Running {
    /// Kills the importer where it is, as a crash would (nothing after its
    /// current step runs), and waits until its task is gone (the spool
    /// lock released).
    pub async fn crash(mut self) {
        let task = self.task.take().unwrap();
        task.abort();
        let _ = task.await;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[tokio::test]
async fn imports_every_format_with_all_fields_and_files() {
    let rig = Rig::start().await;
    let rec = RecordingArchive::new("vorlesung-42", "Vorlesung Grundlagen – Übung 3 日本語")
        .formats(&Format::ALL)
        .meta("bbb-recording-tags", "Mathe, Übung")
        .meta("bbb-context-label", "");
    // Packed by GNU tar, exactly as scalelite_post_publish.rb does.
    rec.pack_with_gnu_tar(&rig.dirs.spool().join(rec.file_name()));
    let size = std::fs::metadata(rig.dirs.spool().join(rec.file_name())).unwrap().len();

    let report = rig.importer(&[]).import_pending_once().await.unwrap();
    assert_eq!(report.imported(), 1, "{report:?}");
    let ArchiveOutcome::Imported(imported) = &report.outcomes[0] else { unreachable!() };
    assert_eq!(imported.formats, ["notes", "podcast", "presentation", "screenshare", "video"]);
    assert!(imported.published);

    let view = rig.recording(&rec.record_id).await.expect("the recording is in the database");
    assert_eq!(view.meeting_id, "vorlesung-42");
    assert_eq!(view.name.as_deref(), Some("Vorlesung Grundlagen – Übung 3 日本語"));
    assert!(view.published);
    assert!(!view.protected);
    // Screenshare says `available`; Scalelite reads it as published.
    assert_eq!(view.state.as_deref(), Some("published"));
    assert_eq!((view.start_ms, view.end_ms), (rec.start_ms, rec.end_ms));
    assert_eq!(view.participants, Some(3));
    assert_eq!(view.metadata, rec.meta, "every meta element but isBreakout, meetingId and meetingName");

    let formats: Vec<&str> = view.formats.iter().map(|f| f.format.as_str()).collect();
    assert_eq!(formats, ["notes", "podcast", "presentation", "screenshare", "video"]);
    for format in &view.formats {
        let kind = Format::ALL.into_iter().find(|f| f.name() == format.format).unwrap();
        let link = rec.link(kind);
        let path = link.split_once("example.edu").unwrap().1;
        assert_eq!(format.url, path, "url is the path of the link");
        // 3,596,310 ms is 59.9 minutes.
        assert_eq!(format.length, Some(60));
    }
    let presentation = view.formats.iter().find(|f| f.format == "presentation").unwrap();
    let expected: Vec<ImportedThumbnail> = rec
        .thumbnails()
        .into_iter()
        .map(|(w, h, alt, url)| ImportedThumbnail {
            width: Some(w as i32),
            height: Some(h as i32),
            alt: Some(alt),
            url: url.split_once("example.edu").unwrap().1.to_owned(),
        })
        .collect();
    assert_eq!(presentation.thumbnails, expected, "thumbnails keep their order, size, alt text and path");

    assert_published(&rec, &rig.dirs.published());
    let mut expected_files = tree_files(&rec, "published");
    expected_files.sort();
    assert_eq!(rig.files(), expected_files, "the archive is gone and nothing else was written");

    let log = rig.import_log().await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].status, "imported");
    assert_eq!(log[0].record_id.as_deref(), Some(rec.record_id.as_str()));
    assert_eq!((log[0].formats, log[0].size_bytes), (Some(5), Some(size as i64)));
}

#[tokio::test]
async fn unpublished_recordings_and_import_unpublished_go_to_the_unpublish_tree() {
    let rig = Rig::start().await;
    let unpublished = RecordingArchive::new("room-a", "Room A").unpublished();
    let published = RecordingArchive::new("room-b", "Room B").formats(&[Format::Presentation, Format::Podcast]);

    unpublished.drop_into(&rig.dirs.spool());
    assert_eq!(rig.importer(&[]).import_pending_once().await.unwrap().imported(), 1);
    published.drop_into(&rig.dirs.spool());
    let report = rig.importer(&[("RECORDING_IMPORT_UNPUBLISHED", "true")]).import_pending_once().await.unwrap();
    assert_eq!(report.imported(), 1);

    let a = rig.recording(&unpublished.record_id).await.unwrap();
    assert_eq!((a.published, a.state.as_deref()), (false, Some("unpublished")));
    let b = rig.recording(&published.record_id).await.unwrap();
    // RECORDING_IMPORT_UNPUBLISHED: playback is off, the state stays as BBB said.
    assert_eq!((b.published, b.state.as_deref()), (false, Some("published")));

    assert_published(&unpublished, &rig.dirs.unpublished());
    assert_published(&published, &rig.dirs.unpublished());
    let mut expected = [tree_files(&unpublished, "unpublished"), tree_files(&published, "unpublished")].concat();
    expected.sort();
    assert_eq!(rig.files(), expected);
}

#[tokio::test]
async fn reimport_updates_in_place_without_duplicates() {
    let rig = Rig::start().await;
    let first = RecordingArchive::new("room-42", "Room 42").meta("gl-listed", "false");
    first.drop_into(&rig.dirs.spool());
    assert_eq!(rig.importer(&[]).import_pending_once().await.unwrap().imported(), 1);

    // BBB re-processed the recording: new name, a video format, new files,
    // one meta value changed.
    let mut second =
        first.clone().formats(&[Format::Presentation, Format::Video]).revision(1).meta("gl-listed", "true");
    second.name = "Room 42 (renamed)".into();
    second.drop_into(&rig.dirs.spool());
    let report = rig.importer(&[]).import_pending_once().await.unwrap();
    assert_eq!(report.imported(), 1, "{report:?}");

    let view = rig.recording(&first.record_id).await.unwrap();
    assert_eq!(view.name.as_deref(), Some("Room 42 (renamed)"));
    let formats: Vec<&str> = view.formats.iter().map(|f| f.format.as_str()).collect();
    assert_eq!(formats, ["presentation", "video"]);
    assert!(view.metadata.contains(&("gl-listed".to_owned(), "true".to_owned())));
    let id = &first.record_id;
    assert_eq!(rig.count(&format!("SELECT count(*) FROM recordings WHERE record_id = '{id}'")).await, 1);
    assert_eq!(rig.count("SELECT count(*) FROM playback_formats").await, 2);
    assert_eq!(rig.count("SELECT count(*) FROM thumbnails").await, 3);
    assert_eq!(rig.count("SELECT count(*) FROM metadata").await, second.meta.len() as i64);

    // The files are the new ones, with no trace of the old directory.
    assert_published(&second, &rig.dirs.published());
    let mut expected = tree_files(&second, "published");
    expected.sort();
    assert_eq!(rig.files(), expected);
    let names: Vec<_> = std::fs::read_dir(rig.dirs.published().join("presentation"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, [first.record_id.as_str()]);
}

#[tokio::test]
async fn reimport_keeps_an_administrators_unpublish() {
    let rig = Rig::start().await;
    let rec = RecordingArchive::new("room-7", "Room 7");
    rec.drop_into(&rig.dirs.spool());
    rig.importer(&[]).import_pending_once().await.unwrap();
    let id = rig.recording(&rec.record_id).await.unwrap().id;
    // publishRecordings(publish=false) sets publish_updated.
    rig.store.set_published(id, false).await.unwrap();

    rec.clone().revision(2).drop_into(&rig.dirs.spool());
    assert_eq!(rig.importer(&[]).import_pending_once().await.unwrap().imported(), 1);
    assert!(!rig.recording(&rec.record_id).await.unwrap().published);
    let mut expected = tree_files(&rec, "unpublished");
    expected.sort();
    assert_eq!(rig.files(), expected, "the files moved to the unpublish tree; no copy is left in the publish tree");
}

#[tokio::test]
async fn breakout_protected_and_screenshare_recordings() {
    let rig = Rig::start().await;
    let parent = RecordingArchive::new("seminar", "Seminar");
    let breakout = RecordingArchive::new("seminar-room-1", "Seminar (Room 1)").breakout_of(&parent, 1);
    let screenshare = RecordingArchive::new("screens", "Screens").formats(&[Format::Screenshare]);
    for rec in [&parent, &breakout, &screenshare] {
        rec.drop_into(&rig.dirs.spool());
    }
    let report = rig.importer(&[("PROTECTED_RECORDINGS_ENABLED", "true")]).import_pending_once().await.unwrap();
    assert_eq!(report.imported(), 3, "{report:?}");

    let view = rig.recording(&breakout.record_id).await.unwrap();
    assert_eq!(view.meeting_id, "seminar-room-1");
    let keys: Vec<&str> = view.metadata.iter().map(|(k, _)| k.as_str()).collect();
    assert!(!keys.contains(&"isBreakout") && !keys.contains(&"meetingId") && !keys.contains(&"meetingName"));
    assert_eq!(view.metadata, breakout.meta);
    for rec in [&parent, &breakout, &screenshare] {
        assert!(rig.recording(&rec.record_id).await.unwrap().protected, "PROTECTED_RECORDINGS_ENABLED");
    }
    let view = rig.recording(&screenshare.record_id).await.unwrap();
    assert_eq!(view.state.as_deref(), Some("published"), "`available` is read as published");
    assert_published(&screenshare, &rig.dirs.published());
}

#[tokio::test]
async fn the_watcher_imports_an_archive_dropped_while_running() {
    let rig = Rig::start().await;
    // Scans only every hour: only the file-system event can start the import.
    let importer = rig.importer(&[("RECORDING_IMPORT_POLL_INTERVAL", "3600")]);
    let running = Running::start(&importer);
    // The importer is up once it holds the spool lock.
    eventually_with(Duration::from_secs(10), "the importer holds the lock", || async {
        rig.dirs.spool().join(".scalelite-importer.lock").exists()
    })
    .await;
    let rec = RecordingArchive::new("room-9", "Room 9");
    rec.drop_into(&rig.dirs.spool());
    eventually_with(Duration::from_secs(15), "the dropped archive is imported", || async {
        rig.recording(&rec.record_id).await.is_some() && !rig.in_spool(&rec.file_name())
    })
    .await;
    running.stop().await;
    assert_published(&rec, &rig.dirs.published());
}

#[tokio::test]
async fn a_growing_archive_waits_for_the_settle_time() {
    let rig = Rig::start().await;
    let importer = rig.importer(&[("RECORDING_IMPORT_SETTLE_TIME", "1"), ("RECORDING_IMPORT_POLL_INTERVAL", "0.05")]);
    let running = Running::start(&importer);
    let rec = RecordingArchive::new("slow-upload", "Slow upload");
    let bytes = rec.tar();
    // Written in place, a piece at a time, as rsync --inplace or an NFS
    // client would: each piece comes well within the settle time.
    let path = rig.dirs.spool().join(rec.file_name());
    let pieces = 8;
    let piece = bytes.len().div_ceil(pieces);
    let mut file = std::fs::File::create(&path).unwrap();
    for chunk in bytes.chunks(piece) {
        use std::io::Write as _;
        file.write_all(chunk).unwrap();
        file.sync_data().unwrap();
        // Pacing of the simulated writer, not synchronisation.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(rig.recording(&rec.record_id).await.is_none(), "imported before it settled");
        assert!(!rig.dirs.spool().join("failed").exists(), "a growing archive was quarantined");
    }
    drop(file);
    eventually_with(Duration::from_secs(15), "the settled archive is imported", || async {
        rig.recording(&rec.record_id).await.is_some() && !rig.in_spool(&rec.file_name())
    })
    .await;
    running.stop().await;
    assert_published(&rec, &rig.dirs.published());
    assert!(rig.import_log().await.iter().all(|e| e.status == "imported"));
}

#[tokio::test]
async fn startup_repairs_interrupted_imports() {
    let rig = Rig::start().await;
    let (published, unpublished, work) = (rig.dirs.published(), rig.dirs.unpublished(), rig.dirs.work());
    let write = |path: &Path, content: &str| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    };
    // A crash during extraction.
    write(&work.join(".import-r-1-00ff/presentation/r-1/shapes.svg"), "half");
    // Not ours (BBB's post-publish script may share the work directory).
    write(&work.join("r-9.tar"), "being packed by BBB");
    // A crash between moving the old directory aside and the swap.
    write(&published.join("presentation/.r-2.old-0a0b/metadata.xml"), "old r-2");
    // A crash while deleting the replaced directory.
    write(&published.join("presentation/r-3/metadata.xml"), "new r-3");
    write(&published.join("presentation/.r-3.old-0c0d/metadata.xml"), "old r-3");
    // A half-copied incoming directory and a half-removed stale copy.
    write(&published.join("video/.r-4.incoming-0e0f/video-0.m4v"), "half");
    write(&unpublished.join("video/.r-5.removing-1a1b/video-0.m4v"), "stale");

    let report = rig.importer(&[]).import_pending_once().await.unwrap();
    assert!(report.outcomes.is_empty());
    assert_eq!(
        rig.files(),
        ["published/presentation/r-2/metadata.xml", "published/presentation/r-3/metadata.xml", "work/r-9.tar",]
    );
    assert_eq!(std::fs::read_to_string(published.join("presentation/r-2/metadata.xml")).unwrap(), "old r-2");
    assert_eq!(std::fs::read_to_string(published.join("presentation/r-3/metadata.xml")).unwrap(), "new r-3");
}

#[tokio::test]
async fn work_and_publish_directories_on_different_file_systems() {
    use std::os::unix::fs::MetadataExt as _;
    let rig = Rig::start().await;
    // /dev/shm is a tmpfs on Debian; the rig lives on the disk.
    let Ok(work) = tempfile::tempdir_in("/dev/shm") else { return };
    if std::fs::metadata(work.path()).unwrap().dev() == std::fs::metadata(rig.dirs.root()).unwrap().dev() {
        return;
    }
    let rec = RecordingArchive::new("exdev", "Across file systems").formats(&[Format::Presentation, Format::Notes]);
    rec.drop_into(&rig.dirs.spool());
    let mut settings = rig.settings(&[]);
    settings.work_dir = work.path().to_path_buf();
    let report = Importer::new(settings, Arc::clone(&rig.store), None).import_pending_once().await.unwrap();
    assert_eq!(report.imported(), 1, "{report:?}");
    assert_published(&rec, &rig.dirs.published());
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0, "the work directory is clean");
    let mut expected = tree_files(&rec, "published");
    expected.sort();
    let files: Vec<String> = rig.files().into_iter().filter(|f| !f.starts_with("work/")).collect();
    assert_eq!(files, expected);
}

#[tokio::test]
async fn a_one_shot_run_waits_briefly_for_the_spool_lock_and_leaves_a_held_spool_alone() {
    let rig = Rig::start().await;
    let rec = RecordingArchive::new("locked-room", "Locked");
    rec.drop_into(&rig.dirs.spool());
    let lock_path = rig.dirs.spool().join(".scalelite-importer.lock");
    let lock = std::fs::File::options().create(true).truncate(false).write(true).open(&lock_path).unwrap();
    lock.lock().unwrap();

    // Another importer keeps the lock: the run answers Busy and imports nothing.
    let error = rig.importer(&[]).import_pending_once().await.unwrap_err();
    assert!(error.to_string().contains("another importer"), "{error}");
    assert!(rig.in_spool(&rec.file_name()));
    assert!(rig.recording(&rec.record_id).await.is_none());

    // A lock released a moment after the run starts (a child process
    // forked elsewhere in this process shares the lock's file until it
    // executes its program) does not turn the run away.
    let importer = rig.importer(&[]);
    let run = tokio::spawn(async move { importer.import_pending_once().await });
    // Pacing of the simulated holder, not synchronisation.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(lock);
    let report = run.await.unwrap().unwrap();
    assert_eq!(report.imported(), 1, "{report:?}");
    assert!(!rig.in_spool(&rec.file_name()));
}
