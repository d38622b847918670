//! The join route cache (`JOIN_ROUTE_CACHE_TTL`): where this process sent
//! the last join of a meeting, reused for the meeting's next joins for a
//! short time, and the load those joins add, sent to the store in batches.
//!
//! A join the cache answers makes no store round trip: its server's load
//! is added to a per-server sum that a background task sends with
//! `MeetingStore::add_load` every [`FLUSH_INTERVAL`] (sooner past
//! [`FLUSH_JOINS`] joins, and when the process stops). What may be stale and
//! for how long is decided in docs/COMPATIBILITY.md ("Join route cache"):
//!
//! - only routes the store answered `Ready` are kept (never "not found",
//!   "unavailable" or a participant limit), for at most the TTL;
//! - joins of a tenant with a participant limit always ask the store (it
//!   counts them against the limit);
//! - this process's own create, end and re-homing forget the meeting, and its
//!   server changes (management API) forget every route; a look-up that
//!   raced such a change is not kept ([`Shard::epoch`]);
//! - other processes' changes show within the TTL.
//!
//! Memory is bounded ([`CAPACITY`] routes); nothing is held across an
//! `.await`.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use scalelite_core::{MeetingId, Secret, ServerId, TenantId};
use scalelite_store::MeetingStore;
use tokio::sync::Notify;
use tracing::warn;

/// Routes kept at most (all shards).
pub(crate) const CAPACITY: usize = 16_384;
/// Shards, each its own lock.
const SHARDS: usize = 32;
/// How often the load of cached joins is sent to the store.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// Joins counted since the last flush that start one at once.
const FLUSH_JOINS: u32 = 1_000;
/// The longest TTL taken (a longer `JOIN_ROUTE_CACHE_TTL` is this).
pub(crate) const MAX_TTL: Duration = Duration::from_secs(60);

/// Where a join goes: a server's URL and secret, and what it adds to the
/// server's load.
#[derive(Debug)]
pub(crate) struct Route {
    /// The server.
    pub(crate) server_id: ServerId,
    /// The server's API base URL.
    pub(crate) url: String,
    /// The server's secret.
    pub(crate) secret: Secret,
    /// What one join adds to the server's load.
    pub(crate) multiplier: f64,
}

/// A kept route.
#[derive(Debug)]
struct Entry {
    /// The tenant the route was looked up for (the store checked the
    /// meeting belongs to it); another tenant's look-up misses.
    tenant: Option<TenantId>,
    route: Arc<Route>,
    expires: Instant,
}

/// One lock's part of the routes.
#[derive(Debug, Default)]
struct Shard {
    routes: HashMap<Box<str>, Entry>,
    /// Bumped by every forget: a look-up that started before it does not
    /// keep its answer, which may predate the change.
    epoch: u64,
}

/// A look-up that missed: keeping its answer is allowed only if nothing
/// was forgotten in its shard meanwhile.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    shard: usize,
    epoch: u64,
}

/// Load counted by cached joins, not yet sent to the store.
#[derive(Debug, Default)]
struct Pending {
    loads: HashMap<ServerId, f64>,
}

/// The cache and its batched load.
#[derive(Debug)]
pub(crate) struct JoinRoutes {
    ttl: Duration,
    shards: Box<[Mutex<Shard>]>,
    hasher: std::collections::hash_map::RandomState,
    pending: Mutex<Pending>,
    pending_joins: AtomicU32,
    flush_now: Notify,
    store: Arc<dyn MeetingStore>,
    flusher: std::sync::Once,
    hits: Counter,
    misses: Counter,
}

impl JoinRoutes {
    /// A cache keeping routes for `ttl` (0: off), counting in `hits` and
    /// `misses`, sending load to `store`.
    pub(crate) fn new(ttl: Duration, store: Arc<dyn MeetingStore>, hits: Counter, misses: Counter) -> Self {
        Self {
            ttl: ttl.min(MAX_TTL),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            pending: Mutex::default(),
            pending_joins: AtomicU32::new(0),
            flush_now: Notify::new(),
            store,
            flusher: std::sync::Once::new(),
            hits,
            misses,
        }
    }

    /// Whether routes are kept at all.
    pub(crate) fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    fn shard_of(&self, id: &str) -> usize {
        // The modulo keeps the index below SHARDS, a small constant.
        (self.hasher.hash_one(id) % SHARDS as u64) as usize
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard> {
        // A panic while holding a shard lock leaves a map that is still
        // consistent (every change is a single insert or remove).
        self.shards[shard].lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The kept route of `id` for `tenant`, its join counted (load batched);
    /// otherwise a ticket for [`JoinRoutes::keep`].
    pub(crate) fn route(self: &Arc<Self>, id: &MeetingId, tenant: Option<&TenantId>) -> Result<Arc<Route>, Ticket> {
        self.route_at(id, tenant, Instant::now())
    }

    fn route_at(
        self: &Arc<Self>,
        id: &MeetingId,
        tenant: Option<&TenantId>,
        now: Instant,
    ) -> Result<Arc<Route>, Ticket> {
        let shard = self.shard_of(id.as_str());
        let hit = {
            let guard = self.lock(shard);
            match guard.routes.get(id.as_str()) {
                Some(entry) if entry.expires > now && entry.tenant.as_ref() == tenant => Ok(Arc::clone(&entry.route)),
                _ => Err(Ticket { shard, epoch: guard.epoch }),
            }
        };
        match &hit {
            Ok(route) => {
                self.hits.inc();
                self.count_join(route);
            }
            Err(_) => {
                self.misses.inc();
            }
        }
        hit
    }

    /// Keeps the route the store answered for a join of `id` by `tenant`
    /// (the store counted that join), unless the ticket's shard forgot
    /// something since the look-up.
    pub(crate) fn keep(&self, ticket: Ticket, id: &MeetingId, tenant: Option<&TenantId>, route: Arc<Route>) {
        self.keep_at(ticket, id, tenant, route, Instant::now());
    }

    fn keep_at(&self, ticket: Ticket, id: &MeetingId, tenant: Option<&TenantId>, route: Arc<Route>, now: Instant) {
        let mut shard = self.lock(ticket.shard);
        if shard.epoch != ticket.epoch {
            return;
        }
        if shard.routes.len() >= CAPACITY / SHARDS && !shard.routes.contains_key(id.as_str()) {
            shard.routes.retain(|_, entry| entry.expires > now);
            if shard.routes.len() >= CAPACITY / SHARDS {
                return;
            }
        }
        let entry = Entry { tenant: tenant.cloned(), route, expires: now + self.ttl };
        shard.routes.insert(id.as_str().into(), entry);
    }

    /// Forgets the route of `id` (this process created, ended or re-homed
    /// the meeting).
    pub(crate) fn forget(&self, id: &MeetingId) {
        if !self.enabled() {
            return;
        }
        let mut shard = self.lock(self.shard_of(id.as_str()));
        shard.routes.remove(id.as_str());
        shard.epoch = shard.epoch.wrapping_add(1);
    }

    /// Forgets every route (this process changed a server).
    pub(crate) fn forget_all(&self) {
        if !self.enabled() {
            return;
        }
        for index in 0..SHARDS {
            let mut shard = self.lock(index);
            shard.routes.clear();
            shard.epoch = shard.epoch.wrapping_add(1);
        }
    }

    /// Adds a cached join's load to the next batch; starts the flusher
    /// the first time.
    fn count_join(self: &Arc<Self>, route: &Route) {
        {
            let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(load) = pending.loads.get_mut(&route.server_id) {
                *load += route.multiplier;
            } else {
                pending.loads.insert(route.server_id.clone(), route.multiplier);
            }
        }
        if self.pending_joins.fetch_add(1, Ordering::Relaxed) + 1 == FLUSH_JOINS {
            self.flush_now.notify_one();
        }
        self.flusher.call_once(|| {
            tokio::spawn(flush_loop(Arc::downgrade(self)));
        });
    }

    /// Sends the load counted so far to the store (one round trip); a
    /// failure is logged and that load dropped (the poller's next round
    /// recomputes every load).
    pub(crate) async fn flush(&self) {
        let loads: Vec<(ServerId, f64)> = {
            let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            self.pending_joins.store(0, Ordering::Relaxed);
            pending.loads.drain().collect()
        };
        if loads.is_empty() {
            return;
        }
        if let Err(error) = self.store.add_load(&loads).await {
            warn!(%error, servers = loads.len(), "could not add the load of cached joins; the next poll recomputes it");
        }
    }
}

/// Flushes every [`FLUSH_INTERVAL`] or when asked, while the cache lives.
async fn flush_loop(routes: Weak<JoinRoutes>) {
    let mut interval = tokio::time::interval(FLUSH_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let Some(routes) = routes.upgrade() else { return };
        tokio::select! {
            _ = interval.tick() => {}
            () = routes.flush_now.notified() => {}
        }
        routes.flush().await;
    }
}

#[cfg(test)]
mod tests {
    use scalelite_store::SqliteStore;

    use super::*;

    async fn cache(ttl: Duration) -> (Arc<JoinRoutes>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("scalelite.sqlite3")).await.unwrap();
        let routes = JoinRoutes::new(ttl, Arc::new(store), Counter::default(), Counter::default());
        (Arc::new(routes), dir)
    }

    fn route(server: &str, multiplier: f64) -> Arc<Route> {
        Arc::new(Route {
            server_id: ServerId::from(server),
            url: format!("https://{server}/bigbluebutton/api"),
            secret: Secret::new("s"),
            multiplier,
        })
    }

    fn pending(routes: &JoinRoutes) -> Vec<(String, f64)> {
        let pending = routes.pending.lock().unwrap();
        let mut loads: Vec<(String, f64)> =
            pending.loads.iter().map(|(id, load)| (id.as_str().to_owned(), *load)).collect();
        loads.sort_by(|a, b| a.0.cmp(&b.0));
        loads
    }

    #[tokio::test]
    async fn a_kept_route_serves_its_tenant_until_the_ttl_and_counts_each_join() {
        let (routes, _dir) = cache(Duration::from_secs(1)).await;
        let (id, t1, t2) = (MeetingId::from("m"), TenantId::from("t1"), TenantId::from("t2"));
        let start = Instant::now();
        let ticket = routes.route_at(&id, Some(&t1), start).unwrap_err();
        routes.keep_at(ticket, &id, Some(&t1), route("a", 1.5), start);
        for _ in 0..2 {
            let hit = routes.route_at(&id, Some(&t1), start + Duration::from_millis(999)).unwrap();
            assert_eq!(hit.server_id.as_str(), "a");
        }
        // Another tenant (or none) never gets it; past the TTL nobody does.
        assert!(routes.route_at(&id, Some(&t2), start).is_err());
        assert!(routes.route_at(&id, None, start).is_err());
        assert!(routes.route_at(&id, Some(&t1), start + Duration::from_secs(1)).is_err());
        assert_eq!(pending(&routes), [("a".to_owned(), 3.0)]);
        assert_eq!((routes.hits.get(), routes.misses.get()), (2, 4));
    }

    #[tokio::test]
    async fn a_forget_keeps_out_answers_looked_up_before_it() {
        let (routes, _dir) = cache(Duration::from_secs(60)).await;
        let id = MeetingId::from("m");
        let before = routes.route(&id, None).unwrap_err();
        routes.forget(&id);
        routes.keep(before, &id, None, route("old", 1.0));
        assert!(routes.route(&id, None).is_err());
        let after = routes.route(&id, None).unwrap_err();
        routes.keep(after, &id, None, route("new", 1.0));
        assert_eq!(routes.route(&id, None).unwrap().server_id.as_str(), "new");
        routes.forget_all();
        assert!(routes.route(&id, None).is_err());
    }

    #[tokio::test]
    async fn routes_are_bounded_and_expired_ones_make_room() {
        let (routes, _dir) = cache(Duration::from_secs(60)).await;
        for n in 0..CAPACITY * 2 {
            let id = MeetingId::new(format!("m{n}"));
            let ticket = routes.route(&id, None).unwrap_err();
            routes.keep(ticket, &id, None, route("a", 1.0));
        }
        let kept: usize = (0..SHARDS).map(|i| routes.lock(i).routes.len()).sum();
        assert!(kept <= CAPACITY, "{kept}");
        assert!(kept > CAPACITY / 2, "{kept}");
        let later = Instant::now() + Duration::from_secs(61);
        let id = MeetingId::from("fresh");
        let ticket = routes.route_at(&id, None, later).unwrap_err();
        routes.keep_at(ticket, &id, None, route("b", 1.0), later);
        assert_eq!(routes.route_at(&id, None, later).unwrap().server_id.as_str(), "b");
    }

    #[tokio::test]
    async fn a_ttl_of_0_is_off_and_long_ones_are_capped() {
        let (off, _dir) = cache(Duration::ZERO).await;
        assert!(!off.enabled());
        let (long, _dir) = cache(Duration::from_secs(86_400)).await;
        assert_eq!(long.ttl, MAX_TTL);
    }
}
