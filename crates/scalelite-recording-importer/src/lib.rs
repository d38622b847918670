#![doc = include_str!("../README.md")]

pub mod callback;
mod extract;
mod import;
pub mod metadata;
pub mod metrics;
pub mod settings;
pub mod spool;
mod watch;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use scalelite_store::recording_actions::TreeDirs;
use scalelite_store::recordings::RecordingStore;
use scalelite_store::retention;
use scalelite_store::trees::{self, Trees};
use scalelite_store::{KeyStore, Store, StoreError, TenantStore};
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{error, info, warn};

pub use crate::callback::{CallbackSecrets, DeliveryReport, LoadBalancerSecrets, TenantSecrets};
pub use crate::import::{ArchiveOutcome, ImportedArchive, SkippedFormat};
pub use crate::settings::{Backoff, CallbackSettings, Settings};
pub use scalelite_store::retention::RetentionReport;

use crate::callback::Deliverer;
use crate::metrics::RetentionMetrics;
use crate::spool::{Candidate, Settle, SpoolLock};

/// Extracts the spool archive `archive` into the empty directory `into`
/// with every check and limit of an import (`max_metadata`: the largest
/// `metadata.xml`), but imports nothing. Returns each format's name and
/// `metadata.xml` (in name order; a format directory without one is left
/// out), or why the archive would be quarantined or kept. For the fuzz
/// targets (`fuzz/`).
pub fn extract_archive(archive: &Path, into: &Path, max_metadata: u64) -> Result<Vec<(String, Vec<u8>)>, String> {
    match extract::extract(archive, into, max_metadata, &AtomicBool::new(false)) {
        Ok(extracted) => Ok(extracted.formats),
        Err(extract::ExtractError::Rejected(reason) | extract::ExtractError::Io(reason)) => Err(reason),
        Err(extract::ExtractError::Cancelled) => Err("cancelled".to_owned()),
    }
}

/// How long a `--once` run waits for the spool's lock before it answers
/// [`ImporterError::Busy`].
const ONCE_LOCK_WAIT: Duration = Duration::from_secs(2);

/// Why the importer cannot work at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImporterError {
    /// Another importer holds the spool's lock (`--once` only, after
    /// waiting 2 s for it; the service waits for the lock instead).
    #[error("another importer is working on {0}")]
    Busy(PathBuf),
    /// A directory cannot be created, listed or locked.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: io::Error,
    },
}

/// What [`Importer::import_pending_once`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OnceReport {
    /// One outcome per settled archive, in import order.
    pub outcomes: Vec<ArchiveOutcome>,
    /// Archives left in the spool because they were still changing.
    pub waiting: usize,
    /// Callbacks delivered, retrying or given up.
    pub deliveries: DeliveryReport,
    /// Why due callbacks could not be read, if so.
    pub delivery_error: Option<String>,
}

impl OnceReport {
    /// Archives imported.
    pub fn imported(&self) -> usize {
        self.count(|o| matches!(o, ArchiveOutcome::Imported(_)))
    }

    /// Archives quarantined.
    pub fn quarantined(&self) -> usize {
        self.count(|o| matches!(o, ArchiveOutcome::Quarantined { .. }))
    }

    /// Archives kept in the spool because the database or a directory failed.
    pub fn deferred(&self) -> usize {
        self.count(|o| matches!(o, ArchiveOutcome::Deferred { .. }))
    }

    fn count(&self, f: impl Fn(&ArchiveOutcome) -> bool) -> usize {
        self.outcomes.iter().filter(|o| f(o)).count()
    }
}

/// Imports recording archives from the spool and delivers recording-ready
/// callbacks. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Importer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: Settings,
    recordings: Arc<dyn RecordingStore>,
    /// Where the API remembers recording-ready URLs (Redis, or the embedded
    /// database), when it can be reached.
    keys: Option<Arc<dyn KeyStore>>,
    /// Where the tenants' retention overrides are (multitenant mode).
    tenants: Option<Arc<dyn TenantStore>>,
    /// Counters of the retention runs.
    retention_metrics: Arc<RetentionMetrics>,
    deliverer: Deliverer,
    /// Woken after each import, so its callback goes out at once.
    deliveries_wake: Notify,
    /// Archives that could be neither deleted nor quarantined, with the
    /// size and time they had: skipped until they change.
    stuck: Mutex<HashMap<PathBuf, (u64, SystemTime)>>,
}

/// A shutdown flag that blocking work can poll and async work can await.
#[derive(Clone, Debug, Default)]
struct Stop {
    flag: Arc<AtomicBool>,
    notify: Arc<Notify>,
}

impl Stop {
    fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }

    /// Sleeps until `deadline`; `true` when stopped meanwhile.
    async fn sleep_until(&self, deadline: Instant) -> bool {
        tokio::select! {
            () = self.wait() => true,
            () = tokio::time::sleep_until(deadline) => self.is_set(),
        }
    }
}

impl Importer {
    /// An importer with `settings`, writing recordings to `recordings` and
    /// reading the recording-ready URLs the API remembered from `store`
    /// (optional: Redis, or the embedded database). Callbacks are signed
    /// with the load-balancer secrets, in multitenant mode with the secrets
    /// of the recording's tenant (read from `store`).
    pub fn new(settings: Settings, recordings: Arc<dyn RecordingStore>, store: Option<Arc<dyn Store>>) -> Self {
        let fallback = settings.callbacks.secrets.clone();
        let secrets: Arc<dyn CallbackSecrets> = match (&store, settings.multitenancy) {
            (Some(store), true) => Arc::new(TenantSecrets { store: Arc::<dyn Store>::clone(store), fallback }),
            _ => Arc::new(LoadBalancerSecrets(fallback)),
        };
        let deliverer = Deliverer::new(settings.callbacks.clone(), secrets);
        Self {
            inner: Arc::new(Inner {
                settings,
                recordings,
                tenants: store.clone().map(|store| store as Arc<dyn TenantStore>),
                retention_metrics: Arc::new(RetentionMetrics::new()),
                keys: store.map(|store| store as Arc<dyn KeyStore>),
                deliverer,
                deliveries_wake: Notify::new(),
                stuck: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The counters of the periodic retention runs, to register on a
    /// metrics endpoint.
    pub fn retention_metrics(&self) -> Arc<RetentionMetrics> {
        Arc::clone(&self.inner.retention_metrics)
    }

    /// The settings in use.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Runs until `shutdown` resolves: takes the spool's lock (waiting while
    /// another importer holds it), repairs what an interrupted import left,
    /// then imports archives one at a time as they settle, woken by
    /// file-system events and scanning every poll interval, and delivers
    /// recording-ready callbacks alongside.
    ///
    /// On shutdown an extraction in progress is abandoned (its directory is
    /// removed, the archive stays in the spool), and so is an upload to the
    /// bucket before its next format (the next import overwrites what went
    /// up); an import past its database commit is completed first.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        let stop = Stop::default();
        let work = self.run_until(stop.clone());
        tokio::pin!(work, shutdown);
        tokio::select! {
            () = &mut work => return,
            () = &mut shutdown => stop.trigger(),
        }
        info!("recording importer stopping");
        work.await;
    }

    async fn run_until(&self, stop: Stop) {
        let settings = &self.inner.settings;
        if settings.disabled {
            info!("RECORDING_DISABLED is set: recording archives stay in the spool");
            stop.wait().await;
            return;
        }
        let mut standby_logged = false;
        let _lock = loop {
            match self.prepare() {
                Ok(lock) => break lock,
                Err(ImporterError::Busy(spool)) if !standby_logged => {
                    info!(spool = %spool.display(), "another importer holds the spool lock; standing by");
                    standby_logged = true;
                }
                Err(ImporterError::Busy(_)) => {}
                Err(e) => error!(error = %e, "recording importer cannot start; retrying"),
            }
            let retry = settings.poll_interval.min(Duration::from_secs(10));
            if stop.sleep_until(Instant::now() + retry).await {
                return;
            }
        };
        self.recover().await;
        let wake = Arc::new(Notify::new());
        let watcher = match watch::watch(&settings.spool_dir, Arc::clone(&wake)) {
            Ok(watcher) => Some(watcher),
            Err(e) => {
                warn!(error = %e, "cannot watch the spool; scanning it every poll interval only");
                None
            }
        };
        info!(
            spool = %settings.spool_dir.display(),
            poll_interval_s = settings.poll_interval.as_secs_f64(),
            settle_time_s = settings.settle_time.as_secs_f64(),
            watching = watcher.is_some(),
            "recording importer started"
        );
        tokio::join!(self.import_loop(&stop, &wake), self.delivery_loop(&stop), self.retention_loop(&stop));
        drop(watcher);
        info!("recording importer stopped");
    }

    /// Creates the spool and work directories and takes the spool's lock.
    fn prepare(&self) -> Result<SpoolLock, ImporterError> {
        let settings = &self.inner.settings;
        for dir in [&settings.spool_dir, &settings.work_dir] {
            std::fs::create_dir_all(dir)
                .map_err(|source| ImporterError::Io { context: format!("cannot create {}", dir.display()), source })?;
        }
        match spool::try_lock(&settings.spool_dir) {
            Ok(Some(lock)) => Ok(lock),
            Ok(None) => Err(ImporterError::Busy(settings.spool_dir.clone())),
            Err(source) => Err(ImporterError::Io {
                context: format!("cannot lock {}", settings.spool_dir.join(spool::LOCK_FILE).display()),
                source,
            }),
        }
    }

    /// [`Self::prepare`], trying again for up to `wait` while the lock is
    /// held. Another process forked by this one (any child it starts, until
    /// that child has executed its program) briefly shares the lock's open
    /// file, so a lock just released can look held for a moment; another
    /// importer at work holds it for longer than `wait`.
    async fn prepare_waiting(&self, wait: Duration) -> Result<SpoolLock, ImporterError> {
        let deadline = Instant::now() + wait;
        loop {
            match self.prepare() {
                Err(ImporterError::Busy(_)) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                result => return result,
            }
        }
    }

    /// Removes extraction directories of interrupted imports and repairs
    /// interrupted moves in the publish trees. Runs under the spool lock.
    async fn recover(&self) {
        let settings = self.inner.settings.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut removed = 0;
            for entry in std::fs::read_dir(&settings.work_dir)? {
                let entry = entry?;
                if entry.file_name().to_str().is_some_and(|n| n.starts_with(import::WORK_PREFIX)) {
                    import::remove_work_dir(&entry.path())?;
                    removed += 1;
                }
            }
            let trees = Trees { publish: &settings.publish_dir, unpublish: &settings.unpublish_dir };
            trees::recover(trees).map(|_| removed)
        })
        .await;
        match result {
            Ok(Ok(0)) => {}
            Ok(Ok(removed)) => info!(removed, "removed extraction directories of interrupted imports"),
            Ok(Err(e)) => warn!(error = %e, "cannot clean up after interrupted imports"),
            Err(e) => warn!(error = %e, "cannot clean up after interrupted imports"),
        }
    }

    /// Settled archives of a listing, minus the stuck ones.
    fn observe(&self, settle: &mut Settle, now: Instant) -> spool::Observed {
        let listing = match spool::list(&self.inner.settings.spool_dir) {
            Ok(listing) => listing,
            Err(e) => {
                warn!(error = %e, spool = %self.inner.settings.spool_dir.display(), "cannot list the spool");
                Vec::new()
            }
        };
        let stuck = self.inner.stuck.lock().unwrap_or_else(PoisonError::into_inner);
        let listing: Vec<Candidate> =
            listing.into_iter().filter(|c| stuck.get(&c.path) != Some(&(c.size, c.modified))).collect();
        drop(stuck);
        settle.observe(listing, now)
    }

    async fn import_loop(&self, stop: &Stop, wake: &Notify) {
        let settings = &self.inner.settings;
        let mut settle = Settle::new(settings.settle_time);
        let mut failures = 0u32;
        while !stop.is_set() {
            let now = Instant::now();
            let observed = self.observe(&mut settle, now);
            let mut next =
                observed.next_check.map_or(now + settings.poll_interval, |c| c.min(now + settings.poll_interval));
            let mut paused = false;
            for candidate in observed.ready {
                if stop.is_set() {
                    return;
                }
                match self.import_candidate(&candidate, &stop.flag).await {
                    ArchiveOutcome::Deferred { .. } => {
                        failures += 1;
                        let pause = settings.outage_backoff.after(failures);
                        info!(pause_ms = pause.as_millis() as u64, "pausing imports");
                        next = Instant::now() + pause;
                        paused = true;
                        break;
                    }
                    ArchiveOutcome::Changed { .. } => settle.forget(&candidate.path),
                    ArchiveOutcome::Cancelled { .. } => return,
                    ArchiveOutcome::Imported(_) | ArchiveOutcome::Quarantined { .. } => failures = 0,
                    ArchiveOutcome::Vanished { .. } => {}
                }
            }
            if paused {
                // File-system events do not end a pause: the outage does not
                // care how many archives are waiting.
                if stop.sleep_until(next).await {
                    return;
                }
            } else {
                tokio::select! {
                    () = stop.wait() => return,
                    () = wake.notified() => {}
                    () = tokio::time::sleep_until(next) => {}
                }
            }
        }
    }

    async fn delivery_loop(&self, stop: &Stop) {
        let settings = &self.inner.settings;
        let mut failures = 0u32;
        while !stop.is_set() {
            let pause = match self.deliver_due_callbacks().await {
                Ok(_) => {
                    failures = 0;
                    settings.callbacks.poll_interval
                }
                Err(e) => {
                    failures += 1;
                    warn!(error = %e, "cannot read due recording-ready callbacks");
                    settings.outage_backoff.after(failures).max(settings.callbacks.poll_interval)
                }
            };
            tokio::select! {
                () = stop.wait() => return,
                () = self.inner.deliveries_wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Applies the retention rules every `RECORDING_RETENTION_INTERVAL`
    /// (only this importer does: it holds the spool lock).
    async fn retention_loop(&self, stop: &Stop) {
        let interval = self.inner.settings.retention_interval;
        loop {
            if stop.sleep_until(Instant::now() + interval).await {
                return;
            }
            match self.retention_run(&|| stop.is_set()).await {
                Ok(None) => {}
                Ok(Some(report)) => {
                    self.inner.retention_metrics.record(&report);
                    if report.deleted + report.unpublished > 0 || !report.failed.is_empty() {
                        info!(
                            deleted = report.deleted,
                            unpublished = report.unpublished,
                            bytes_deleted = report.bytes_deleted,
                            failed = report.failed.len(),
                            "recording retention run finished"
                        );
                    }
                }
                Err(e) => {
                    self.inner.retention_metrics.run_failed();
                    warn!(error = %e, "recording retention run failed; trying again next interval");
                }
            }
        }
    }

    /// Deletes or unpublishes the recordings the retention rules
    /// (`RECORDING_RETENTION_DAYS`, `RECORDING_RETENTION_ACTION` and, in
    /// multitenant mode, the tenants' overrides) select now. `None` when no
    /// rule is set. Nothing is done when the tenants cannot be read (their
    /// overrides are unknown) or while `RECORDING_DISABLED` is set.
    pub async fn apply_retention(&self) -> Result<Option<RetentionReport>, StoreError> {
        self.retention_run(&|| false).await
    }

    /// [`Self::apply_retention`], stopping between two recordings once
    /// `stopped` says so.
    async fn retention_run(
        &self,
        stopped: &(dyn Fn() -> bool + Send + Sync),
    ) -> Result<Option<RetentionReport>, StoreError> {
        let settings = &self.inner.settings;
        if settings.disabled {
            return Ok(None);
        }
        let tenants = match (&self.inner.tenants, settings.multitenancy) {
            (_, false) => Vec::new(),
            (Some(store), true) => store.tenants().await?,
            (None, true) => {
                return Err(StoreError::Unexpected("the tenants (and their retention settings) cannot be read".into()));
            }
        };
        let rules = retention::rules(settings.retention, &tenants, None);
        for problem in &rules.problems {
            warn!(problem = %problem, "invalid recording retention setting; that tenant's recordings are left alone");
        }
        if rules.rules.is_empty() {
            return Ok(None);
        }
        let dirs = TreeDirs {
            publish: settings.publish_dir.clone(),
            unpublish: settings.unpublish_dir.clone(),
            s3: settings.s3.clone(),
        };
        let now_ms = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        retention::enforce(&*self.inner.recordings, &dirs, &rules.rules, now_ms, stopped).await.map(Some)
    }

    /// Attempts every due recording-ready callback once.
    pub async fn deliver_due_callbacks(&self) -> Result<DeliveryReport, StoreError> {
        self.inner.deliverer.deliver_due(&*self.inner.recordings).await
    }

    /// Imports what is in the spool now and delivers due callbacks, then
    /// returns (`scalelite-recording-importer --once`).
    ///
    /// Archives are listed, and after the settle time listed again; those
    /// unchanged in between are imported one at a time. An archive still
    /// changing is left for a later run. When the database is unreachable the
    /// remaining archives are left in the spool.
    pub async fn import_pending_once(&self) -> Result<OnceReport, ImporterError> {
        let settings = &self.inner.settings;
        let mut report = OnceReport::default();
        if settings.disabled {
            info!("RECORDING_DISABLED is set: nothing imported");
            return Ok(report);
        }
        let _lock = self.prepare_waiting(ONCE_LOCK_WAIT).await?;
        self.recover().await;
        let stop = Stop::default();
        let mut settle = Settle::new(settings.settle_time);
        let mut observed = self.observe(&mut settle, Instant::now());
        if let Some(check) = observed.next_check {
            tokio::time::sleep_until(check).await;
            observed = self.observe(&mut settle, Instant::now());
        }
        report.waiting = observed.waiting;
        for candidate in observed.ready {
            let outcome = self.import_candidate(&candidate, &stop.flag).await;
            let deferred = matches!(outcome, ArchiveOutcome::Deferred { .. });
            report.outcomes.push(outcome);
            if deferred {
                break;
            }
        }
        match self.deliver_due_callbacks().await {
            Ok(deliveries) => report.deliveries = deliveries,
            Err(e) => report.delivery_error = Some(e.to_string()),
        }
        Ok(report)
    }
}
