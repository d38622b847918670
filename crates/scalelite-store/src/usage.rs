//! Usage accounting: meeting-milliseconds, participant-milliseconds and the
//! peak of concurrent participants per tenant and hour, written by the
//! poller once per round (see `docs/ARCHITECTURE.md`, "Usage accounting").
//!
//! No double counting across poller failover: the store keeps one
//! "accounted up to" time (the watermark). A round sampled at `at` credits
//! `at - watermark` (at most two poll intervals, so the time the pool went
//! unpolled is not counted as usage; the first round ever credits one
//! interval) and moves the watermark to `at`, in the same transaction as
//! the hour buckets. A second poller accounting the same period (a standby
//! taking over, a leader whose write was late) credits nothing for it.

use async_trait::async_trait;

use crate::StoreError;

/// The tenant key of the whole pool's rows (no tenant id is `*`: ids are
/// UUID-like and names never reach this column).
pub const POOL: &str = "*";

/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;

/// What one poll round saw for one tenant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TenantUsage {
    /// The tenant id, `""` for meetings without a tenant (single-tenant
    /// mode, or meetings the store has no record of).
    pub tenant: String,
    /// Meetings running (breakout rooms excluded).
    pub meetings: u64,
    /// Participants in them.
    pub participants: u64,
}

/// What one poll round saw, to account.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageSample {
    /// When the round sampled the servers (epoch milliseconds).
    pub at_ms: i64,
    /// The poll interval (milliseconds).
    pub interval_ms: i64,
    /// Per tenant; a tenant appears at most once.
    pub tenants: Vec<TenantUsage>,
}

impl UsageSample {
    /// The hour bucket the sample falls into (epoch milliseconds).
    pub fn hour_ms(&self) -> i64 {
        self.at_ms.div_euclid(HOUR_MS) * HOUR_MS
    }

    /// The rows to add to: one per tenant with meetings or participants, and
    /// the pool's (when anything runs), as (tenant key, meetings,
    /// participants), saturating.
    pub fn rows(&self) -> Vec<(String, i64, i64)> {
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let mut rows: Vec<(String, i64, i64)> = self
            .tenants
            .iter()
            .filter(|t| t.meetings > 0 || t.participants > 0)
            .map(|t| (t.tenant.clone(), clamp(t.meetings), clamp(t.participants)))
            .collect();
        if !rows.is_empty() {
            let meetings = rows.iter().fold(0i64, |a, r| a.saturating_add(r.1));
            let participants = rows.iter().fold(0i64, |a, r| a.saturating_add(r.2));
            rows.push((POOL.to_owned(), meetings, participants));
        }
        rows
    }
}

/// How much time a sample at `at_ms` accounts, given the stored watermark:
/// the time since the watermark, at most two intervals; one interval when
/// nothing was accounted yet; nothing when the period is accounted already.
pub fn credit_ms(watermark: Option<i64>, at_ms: i64, interval_ms: i64) -> i64 {
    let interval = interval_ms.max(0);
    match watermark {
        None => interval,
        Some(w) => at_ms.saturating_sub(w).clamp(0, interval.saturating_mul(2)),
    }
}

/// What [`UsageStore::account_usage`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accounted {
    /// Milliseconds credited to every row of the sample (0: the period was
    /// accounted already).
    pub credited_ms: i64,
}

/// One hour of one tenant (or of the pool, [`POOL`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageRow {
    /// Tenant id, `""` for no tenant, [`POOL`] for the whole pool.
    pub tenant: String,
    /// Start of the hour (epoch milliseconds).
    pub hour_ms: i64,
    /// Meeting-milliseconds.
    pub meeting_ms: i64,
    /// Participant-milliseconds.
    pub participant_ms: i64,
    /// Highest number of participants one round saw at once.
    pub peak_participants: i64,
}

impl From<(String, i64, i64, i64, i64)> for UsageRow {
    /// A row as both SQL backends select it: tenant, hour, meeting-ms,
    /// participant-ms, peak participants.
    fn from((tenant, hour_ms, meeting_ms, participant_ms, peak_participants): (String, i64, i64, i64, i64)) -> Self {
        Self { tenant, hour_ms, meeting_ms, participant_ms, peak_participants }
    }
}

/// Which rows [`UsageStore::usage`] returns: hours starting in
/// `[from_ms, to_ms)`, of one tenant key or all (the pool's included).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsageQuery {
    /// A tenant key (`""`, [`POOL`] or an id); `None` for every row.
    pub tenant: Option<String>,
    /// Inclusive start (epoch milliseconds).
    pub from_ms: Option<i64>,
    /// Exclusive end (epoch milliseconds).
    pub to_ms: Option<i64>,
}

/// The durable usage accounting: PostgreSQL (`usage_hours`,
/// `usage_accounting`) or the embedded database.
#[async_trait]
pub trait UsageStore: Send + Sync + std::fmt::Debug + 'static {
    /// Adds a round's sample to its hour, crediting the time since the
    /// watermark (see [`credit_ms`]), and moves the watermark; atomically.
    async fn account_usage(&self, sample: &UsageSample) -> Result<Accounted, StoreError>;

    /// Hour rows, ordered by hour then tenant key.
    async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credits_the_time_since_the_watermark_capped_at_two_intervals() {
        assert_eq!(credit_ms(None, 1_000, 10_000), 10_000);
        assert_eq!(credit_ms(Some(0), 10_000, 10_000), 10_000);
        assert_eq!(credit_ms(Some(0), 3_000, 10_000), 3_000);
        assert_eq!(credit_ms(Some(0), 1_000_000, 10_000), 20_000);
        assert_eq!(credit_ms(Some(5_000), 5_000, 10_000), 0);
        assert_eq!(credit_ms(Some(9_000), 5_000, 10_000), 0);
        assert_eq!(credit_ms(Some(i64::MIN), i64::MAX, i64::MAX), i64::MAX);
    }

    #[test]
    fn rows_add_the_pool_and_skip_idle_tenants() {
        let sample = UsageSample {
            at_ms: HOUR_MS * 5 + 17,
            interval_ms: 10_000,
            tenants: vec![
                TenantUsage { tenant: "a".into(), meetings: 2, participants: 7 },
                TenantUsage { tenant: "b".into(), meetings: 0, participants: 0 },
                TenantUsage { tenant: String::new(), meetings: 1, participants: u64::MAX },
            ],
        };
        assert_eq!(sample.hour_ms(), HOUR_MS * 5);
        assert_eq!(sample.rows(), vec![("a".into(), 2, 7), (String::new(), 1, i64::MAX), (POOL.into(), 3, i64::MAX)]);
        assert!(UsageSample::default().rows().is_empty());
    }
}
