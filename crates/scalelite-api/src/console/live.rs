//! The console's state in the API process: sign-in keys, the load and
//! users sampled per server, and what it watches of this process's poller
//! and the usage accounting. Apart from the console's pages so that the
//! application state can hold it without depending on them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use scalelite_core::config::Config;
use scalelite_poller::PollerMetrics;
use scalelite_store::UsageStore;
use scalelite_store::usage::{HOUR_MS, UsageQuery};

use super::auth::Keys;
use super::samples::Samples;

/// The console's state in the API process.
#[derive(Debug)]
pub(crate) struct Console {
    pub(super) keys: Keys,
    pub(super) samples: Samples,
    /// The metrics of the poller in this process (the embedded mode).
    poller: OnceLock<Arc<PollerMetrics>>,
    /// The poller's round count when the sampler last saw it change, and when.
    last_round: Mutex<Option<(u64, i64)>>,
    /// Where the poller accounts usage, for the tenants' last 24 hours.
    usage: OnceLock<Arc<dyn UsageStore>>,
}

impl Console {
    /// The console of `config`, `None` unless `CONSOLE_ENABLED`.
    pub(crate) fn new(config: &Config) -> Option<Arc<Self>> {
        config.console.enabled.then(|| {
            Arc::new(Self {
                keys: Keys::new(config),
                samples: Samples::default(),
                poller: OnceLock::new(),
                last_round: Mutex::new(None),
                usage: OnceLock::new(),
            })
        })
    }

    /// Shows the rounds of the poller running in this process.
    pub(crate) fn watch_poller(&self, metrics: Arc<PollerMetrics>) {
        let _ = self.poller.set(metrics);
    }

    /// Shows the tenants' usage from `usage`.
    pub(crate) fn watch_usage(&self, usage: Arc<dyn UsageStore>) {
        let _ = self.usage.set(usage);
    }

    /// Per tenant key: participant-milliseconds and the peak of concurrent
    /// participants over the hours of the last 24 hours; `None` without a
    /// usage store or when it does not answer.
    pub(super) async fn usage_last_day(&self, now_ms: i64) -> Option<HashMap<String, (i64, i64)>> {
        let usage = self.usage.get()?;
        let since = (now_ms - 24 * HOUR_MS).div_euclid(HOUR_MS) * HOUR_MS;
        let rows = usage.usage(&UsageQuery { tenant: None, from_ms: Some(since), to_ms: None }).await.ok()?;
        let mut by_tenant: HashMap<String, (i64, i64)> = HashMap::new();
        for row in rows {
            let entry = by_tenant.entry(row.tenant).or_default();
            entry.0 = entry.0.saturating_add(row.participant_ms);
            entry.1 = entry.1.max(row.peak_participants);
        }
        Some(by_tenant)
    }

    /// Notes when the poller's round count changed (at the sampler's
    /// resolution).
    pub(super) fn observe_rounds(&self, now_ms: i64) {
        let Some(poller) = self.poller.get() else { return };
        let rounds = poller.rounds.get();
        if let Ok(mut last) = self.last_round.lock()
            && last.is_none_or(|(seen, _)| seen != rounds)
            && rounds > 0
        {
            *last = Some((rounds, now_ms));
        }
    }

    /// What the page says about this process's poller, `None` without one.
    pub(super) fn poller_text(&self, now_ms: i64) -> Option<String> {
        let poller = self.poller.get()?;
        let leading = poller.leader.get() == 1;
        let last = self.last_round.lock().ok().and_then(|last| *last);
        let mut text = format!(
            "This process's poller {} the lease; {} rounds so far",
            if leading { "holds" } else { "does not hold" },
            poller.rounds.get()
        );
        if let Some((_, at_ms)) = last {
            let ago = now_ms.saturating_sub(at_ms).max(0) / 1000;
            text.push_str(&format!(
                ", the last seen {ago} s ago (to the nearest sample), {} servers polled in it",
                poller.servers.get()
            ));
        }
        text.push('.');
        Some(text)
    }
}
