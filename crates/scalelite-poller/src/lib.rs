#![doc = include_str!("../README.md")]

pub mod metrics;
pub mod round;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use scalelite_bbb_client::{BbbClient, Timeouts};
use scalelite_core::config::Config;
use scalelite_store::usage::{Accounted, UsageSample};
use scalelite_store::{Lease, LeaseStore, RoundNote, Store, StoreError, UsageStore};
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use crate::metrics::PollerMetrics;
pub use crate::round::{RoundReport, RoundSettings, poll_round};

/// The poller: rounds every `interval` while holding the leader lease.
#[derive(Debug)]
pub struct Poller {
    store: Arc<dyn Store>,
    bbb: BbbClient,
    settings: RoundSettings,
    interval: Duration,
    lease: Lease,
    metrics: Arc<PollerMetrics>,
    /// Where usage is accounted (`None`: not accounted).
    usage: Option<Arc<dyn UsageStore>>,
    clock: Clock,
}

/// The wall clock usage accounting reads (epoch milliseconds); tests set
/// their own with [`Poller::with_clock`].
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    /// A clock reading `now`.
    pub fn new(now: impl Fn() -> i64 + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    /// The system clock.
    pub fn system() -> Self {
        Self::new(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
        })
    }

    /// Now, in epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

impl Poller {
    /// A poller over `store`; `holder` names this process in the lease.
    pub fn new(
        store: Arc<dyn Store>,
        bbb: BbbClient,
        settings: RoundSettings,
        interval: Duration,
        holder: &str,
        metrics: Arc<PollerMetrics>,
    ) -> Self {
        Self {
            store,
            bbb,
            settings,
            interval,
            lease: Lease::poller(holder),
            metrics,
            usage: None,
            clock: Clock::system(),
        }
    }

    /// Accounts usage in `usage` after every round (see
    /// [`Stores::usage`](scalelite_store::Stores::usage)).
    #[must_use]
    pub fn with_usage(mut self, usage: Option<Arc<dyn UsageStore>>) -> Self {
        self.usage = usage;
        self
    }

    /// Reads `clock` instead of the system clock for usage accounting.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Accounts a round's usage: one transaction, bounded by a quarter of
    /// the poll interval (between 0.5 and 5 seconds). A failure is logged and counted, never fails
    /// the round: the next round credits the time since the last accounted
    /// one (up to two intervals), so one lost write loses nothing.
    pub async fn account(&self, report: &RoundReport) -> Option<Accounted> {
        let usage = self.usage.as_ref()?;
        let sample = UsageSample {
            at_ms: self.clock.now_ms(),
            interval_ms: i64::try_from(self.interval.as_millis()).unwrap_or(i64::MAX),
            tenants: report.usage.clone(),
        };
        let limit = (self.interval / 4).clamp(Duration::from_millis(500), Duration::from_secs(5));
        match tokio::time::timeout(limit, usage.account_usage(&sample)).await {
            Ok(Ok(accounted)) => {
                if accounted.credited_ms > 0 {
                    self.metrics.record_usage(&sample.rows(), accounted.credited_ms);
                }
                Some(accounted)
            }
            Ok(Err(error)) => {
                self.metrics.usage_failures.inc();
                warn!(%error, "usage accounting: the database failed; the next round catches up");
                None
            }
            Err(_) => {
                self.metrics.usage_failures.inc();
                warn!(timeout = ?limit, "usage accounting: the database did not answer; the next round catches up");
                None
            }
        }
    }

    /// A poller configured from Scalelite's variables.
    pub fn from_config(config: &Config, store: Arc<dyn Store>, metrics: Arc<PollerMetrics>) -> Self {
        let timeouts = Timeouts { connect: config.connect_timeout, response: config.response_timeout };
        let bbb = BbbClient::new(timeouts, config.checksum_algorithms.outgoing());
        let settings = RoundSettings {
            concurrency: config.poller_concurrency,
            healthy_threshold: config.healthy_threshold,
            unhealthy_threshold: config.unhealthy_threshold,
            load: config.load,
            meeting_ttl: config.meeting_ttl,
            create_grace: config.connect_timeout + config.response_timeout,
            drain: scalelite_fleet::DrainSettings::from_config(&config.drain),
        };
        Self::new(store, bbb, settings, config.poll_interval, &holder_name(), metrics)
    }

    /// How long the lease lasts without renewal: 1.5 intervals, so a standby
    /// (checking every half interval) takes over within two intervals.
    pub fn lease_ttl(&self) -> Duration {
        self.interval.mul_f64(1.5).max(Duration::from_millis(300))
    }

    /// Runs one round now, if no other poller holds the lease. Returns
    /// `None` (and does nothing) when another poller does.
    pub async fn poll_once(&self) -> Result<Option<RoundReport>, StoreError> {
        let ttl = self.lease_ttl().max(self.settings.create_grace * 2);
        if !self.store.acquire_lease(&self.lease, ttl).await? {
            return Ok(None);
        }
        let leading = Arc::new(AtomicBool::new(true));
        let renewer = self.spawn_renewal(ttl, Arc::clone(&leading));
        let result =
            poll_round(&*self.store, &self.bbb, &self.settings, &self.lease, &self.metrics, &mut Vec::new()).await;
        drop(renewer);
        if let Ok(report) = &result
            && !report.lost_lease
        {
            self.note(report).await;
            self.account(report).await;
        }
        self.store.release_lease(&self.lease).await?;
        result.map(Some)
    }

    /// Polls until `shutdown` resolves: waits for the lease, then runs a
    /// round, sleeps `POLL_INTERVAL`, and so on; gives the lease up on
    /// shutdown. Store outages are logged and retried, never fatal.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let ttl = self.lease_ttl();
        let check = (self.interval / 2).min(ttl / 3).max(Duration::from_millis(50));
        let leading = Arc::new(AtomicBool::new(false));
        let mut renewer: Option<Renewal> = None;
        let mut orphans = Vec::new();
        info!(interval = ?self.interval, holder = %self.lease.token, "poller started");
        loop {
            if !leading.load(Ordering::SeqCst) {
                renewer = None;
                match self.store.acquire_lease(&self.lease, ttl).await {
                    Ok(true) => {
                        info!("holding the poller lease: polling");
                        leading.store(true, Ordering::SeqCst);
                        self.metrics.leader.set(1);
                        renewer = Some(self.spawn_renewal(ttl, Arc::clone(&leading)));
                    }
                    Ok(false) => {}
                    Err(error) => warn!(%error, "cannot reach the store to take the poller lease"),
                }
            }
            let wait = if leading.load(Ordering::SeqCst) {
                match poll_round(&*self.store, &self.bbb, &self.settings, &self.lease, &self.metrics, &mut orphans)
                    .await
                {
                    Ok(report) if report.lost_lease => leading.store(false, Ordering::SeqCst),
                    Ok(report) => {
                        report.log();
                        self.note(&report).await;
                        self.account(&report).await;
                    }
                    Err(error) => warn!(%error, "poll round failed"),
                }
                if !leading.load(Ordering::SeqCst) {
                    self.metrics.leader.set(0);
                }
                self.interval
            } else {
                check
            };
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(wait) => {}
            }
        }
        drop(renewer);
        if leading.load(Ordering::SeqCst) {
            if let Err(error) = self.store.release_lease(&self.lease).await {
                warn!(%error, "could not release the poller lease (it expires by itself)");
            }
            self.metrics.leader.set(0);
        }
        info!("poller stopped");
    }

    /// Notes the round for the operator console (`poller:last_round`),
    /// kept for ten intervals (at least an hour); a failure is only logged.
    async fn note(&self, report: &RoundReport) {
        let note = RoundNote {
            holder: self.lease.token.clone(),
            at_ms: Clock::system().now_ms(),
            duration_ms: u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX),
            servers: report.servers as u64,
            reachable: report.reachable as u64,
        };
        let keep = (self.interval * 10).max(Duration::from_secs(3600));
        if let Err(error) = self.store.note_round(&note, keep).await {
            warn!(%error, "could not note the poll round for the console");
        }
    }

    fn spawn_renewal(&self, ttl: Duration, leading: Arc<AtomicBool>) -> Renewal {
        let store: Arc<dyn LeaseStore> = Arc::clone(&self.store) as _;
        let lease = self.lease.clone();
        let metrics = Arc::clone(&self.metrics);
        Renewal(tokio::spawn(async move {
            loop {
                tokio::time::sleep(ttl / 3).await;
                match store.renew_lease(&lease, ttl).await {
                    Ok(true) => {}
                    Ok(false) => {
                        warn!("lost the poller lease");
                        leading.store(false, Ordering::SeqCst);
                        metrics.leader.set(0);
                        return;
                    }
                    Err(error) => warn!(%error, "could not renew the poller lease"),
                }
            }
        }))
    }
}

/// The lease renewal task; it stops when this is dropped, so a cancelled
/// poller cannot keep a lease alive.
#[derive(Debug)]
struct Renewal(JoinHandle<()>);

impl Drop for Renewal {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `host:pid:random`, naming this process in the lease.
pub fn holder_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default();
    format!("{host}:{}:{:08x}", std::process::id(), rand::random::<u32>())
}
