//! The per-tenant request rate (`scalelite-limit-rate`, requests per
//! minute): a token bucket per tenant in this process, so the rate holds
//! **per API replica** (N replicas behind a load balancer let a tenant make
//! up to N times as many requests). Only authenticated requests are
//! counted, so nobody can use up a tenant's budget without its secret.
//!
//! The bucket holds a minute's worth of requests and refills continuously;
//! work per request is one lookup under a short lock, never held across an
//! `.await`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use scalelite_core::TenantId;

/// Buckets not touched for this long are dropped (they would be full).
const IDLE: Duration = Duration::from_secs(120);

/// Token buckets by tenant.
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    buckets: Mutex<Buckets>,
}

#[derive(Debug, Default)]
struct Buckets {
    by_tenant: HashMap<TenantId, Bucket>,
    /// When idle buckets were last dropped.
    swept: Option<Instant>,
}

#[derive(Debug)]
struct Bucket {
    /// Requests that may still be made now.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Instant,
}

impl RateLimiter {
    /// Takes one request from `tenant`'s budget of `per_minute`; `false`
    /// when it is used up.
    pub(crate) fn allow(&self, tenant: &TenantId, per_minute: u32) -> bool {
        self.allow_at(tenant, per_minute, Instant::now())
    }

    fn allow_at(&self, tenant: &TenantId, per_minute: u32, now: Instant) -> bool {
        let capacity = f64::from(per_minute.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Tenants are authenticated, so the map is bounded by their number;
        // still, forget idle ones (at most once per IDLE, so the sweep is
        // not paid per request).
        if buckets.swept.is_none_or(|at| now.saturating_duration_since(at) >= IDLE) {
            buckets.by_tenant.retain(|_, b| now.saturating_duration_since(b.at) < IDLE);
            buckets.swept = Some(now);
        }
        let bucket = buckets.by_tenant.entry(tenant.clone()).or_insert(Bucket { tokens: capacity, at: now });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * capacity / 60.0).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_of_requests_then_a_steady_rate() {
        let limiter = RateLimiter::default();
        let (a, b) = (TenantId::new("a"), TenantId::new("b"));
        let start = Instant::now();
        assert!((0..3).all(|_| limiter.allow_at(&a, 3, start)));
        assert!(!limiter.allow_at(&a, 3, start));
        // Another tenant has its own budget.
        assert!(limiter.allow_at(&b, 3, start));
        // One request every 20 s at 3 a minute.
        assert!(!limiter.allow_at(&a, 3, start + Duration::from_secs(19)));
        assert!(limiter.allow_at(&a, 3, start + Duration::from_secs(21)));
        // Never more than the capacity after a long pause.
        let later = start + Duration::from_secs(3600);
        assert!((0..3).all(|_| limiter.allow_at(&a, 3, later)));
        assert!(!limiter.allow_at(&a, 3, later));
    }
}
