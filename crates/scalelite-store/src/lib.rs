#![doc = include_str!("../README.md")]

mod error;
pub mod limits;
pub mod model;
pub mod postgres;
pub mod recording_actions;
mod recording_flow;
pub mod recordings;
pub mod redis;
pub mod retention;
pub mod s3;
mod select;
pub mod sqlite;
pub mod tenants;
pub mod trees;
pub mod usage;

use std::time::Duration;

use async_trait::async_trait;
use scalelite_core::{MeetingId, ServerId, TenantId};

pub use crate::error::StoreError;
pub use crate::model::{
    AnalyticsCallback, Drain, JoinRoute, Meeting, MeetingRecord, MeetingRoute, NewServer, Placement, PlacementRequest,
    PollResult, PollSave, PollSaved, PollStats, Pruned, RoundNote, Server, ServerState, ServerStats, ServerUpdate,
    StoredCreate, Transition,
};
pub use crate::postgres::PgStore;
pub use crate::recordings::RecordingStore;
pub use crate::redis::{RedisConnection, RedisOptions, RedisStore};
pub use crate::select::{Stores, create_private_dir};
pub use crate::sqlite::SqliteStore;
pub use crate::tenants::{Tenant, TenantRecord, TenantSetting, TenantUpdate};
pub use crate::usage::UsageStore;

/// Storage of servers, meeting routes, the poller's state, tenants and
/// short-lived keys: every part below, and a health check.
///
/// A consumer that needs one part takes that trait instead (an
/// `Arc<dyn Store>` upcasts to any of them). The Redis implementation keeps
/// Scalelite's exact layout so Ruby and Rust processes can share one Redis;
/// every method is one round trip to the store.
#[async_trait]
pub trait Store:
    MeetingStore
    + ServerStore
    + PollerStore
    + LeaseStore
    + TenantStore
    + KeyStore
    + DrainStore
    + Send
    + Sync
    + std::fmt::Debug
    + 'static
{
    /// Writes and reads a short-lived key (Scalelite's health check).
    async fn health_check(&self) -> Result<(), StoreError>;
}

/// Meeting routing: the records the API's create, join, end and lookups
/// read and write. `route_join` and `place_meeting` are atomic.
#[async_trait]
pub trait MeetingStore: Send + Sync + std::fmt::Debug + 'static {
    /// Finds a meeting (visible to `tenant` when given) and its server.
    async fn find_meeting(&self, id: &MeetingId, tenant: Option<&TenantId>)
    -> Result<Option<MeetingRoute>, StoreError>;

    /// Routes a join: refuses offline/disabled servers and counts the join
    /// on the server's load. With `max_participants` (and a tenant), a
    /// join is refused ([`JoinRoute::LimitReached`]) when the tenant's
    /// participants (as the poller last counted them, plus the joins
    /// routed since) reach it, and counted otherwise.
    async fn route_join(
        &self,
        id: &MeetingId,
        tenant: Option<&TenantId>,
        max_participants: Option<u32>,
    ) -> Result<JoinRoute, StoreError>;

    /// Adds joins counted elsewhere to their servers' loads, as
    /// `route_join` adds each (only to a server in the placement pool):
    /// the API's join route cache routes joins without the store and
    /// sends their load here in batches, one round trip per batch.
    async fn add_load(&self, loads: &[(ServerId, f64)]) -> Result<(), StoreError>;

    /// Returns the existing meeting, or places a new one on the least loaded
    /// eligible server and reserves load there, atomically.
    async fn place_meeting(&self, request: &PlacementRequest) -> Result<Placement, StoreError>;

    /// Deletes a meeting record (only if it still points to `only_on` when
    /// given). Returns whether a record was deleted.
    async fn delete_meeting(&self, id: &MeetingId, only_on: Option<&ServerId>) -> Result<bool, StoreError>;

    /// The meeting dial-in number `pin` belongs to, and its server (no tenant
    /// check). A stale `voice_bridges` entry (its meeting record expired or
    /// holds another voice bridge) counts as unknown.
    async fn find_meeting_by_voice_bridge(&self, pin: &str) -> Result<Option<MeetingRoute>, StoreError>;

    /// Every meeting record with its remaining TTL.
    async fn meetings(&self) -> Result<Vec<MeetingRecord>, StoreError>;

    /// The create parameters kept for re-homing a meeting (see
    /// [`PlacementRequest::create`]); `None` when none were kept (a meeting
    /// Ruby Scalelite created, re-homing off, parameters over the cap) or
    /// they expired with the record.
    async fn stored_create(&self, id: &MeetingId) -> Result<Option<StoredCreate>, StoreError>;
}

/// Server administration (Scalelite's `Server#save` semantics) and the
/// server list every consumer reads.
#[async_trait]
pub trait ServerStore: Send + Sync + std::fmt::Debug + 'static {
    /// Every server, with its load as Scalelite derives it.
    async fn servers(&self) -> Result<Vec<Server>, StoreError>;

    /// One server by id (`None` when it has no record).
    async fn server(&self, id: &ServerId) -> Result<Option<Server>, StoreError>;

    /// Creates a server (disabled, offline). `Conflict` if the id is taken.
    async fn create_server(&self, server: &NewServer) -> Result<(), StoreError>;

    /// Applies changes to a server. `NotFound` if it does not exist.
    async fn update_server(&self, id: &ServerId, update: &ServerUpdate) -> Result<(), StoreError>;

    /// Deletes a server record and its set entries (its meetings stay).
    /// Returns whether it existed.
    async fn delete_server(&self, id: &ServerId) -> Result<bool, StoreError>;
}

/// What the poller writes after polling servers.
#[async_trait]
pub trait PollerStore: Send + Sync + std::fmt::Debug + 'static {
    /// Saves a poll result, only while `lease` is held.
    async fn save_poll(&self, lease: &Lease, save: &PollSave) -> Result<PollSaved, StoreError>;

    /// Removes `meetings` members whose record expired and voice bridges that
    /// were orphans already in `previous_orphans`; returns what it removed and
    /// the orphans seen now.
    async fn prune(&self, previous_orphans: &[String]) -> Result<(Pruned, Vec<String>), StoreError>;

    /// Replaces the participants counted in each tenant's meetings (the
    /// base of [`MeetingStore::route_join`]'s participant limit), only
    /// while `lease` is held; `false` when it is not.
    async fn save_tenant_participants(&self, lease: &Lease, counts: &[(TenantId, u64)]) -> Result<bool, StoreError>;
}

/// Named leases (the poller's leader election).
#[async_trait]
pub trait LeaseStore: Send + Sync + std::fmt::Debug + 'static {
    /// Takes (or extends) the lease when it is free or already ours.
    async fn acquire_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, StoreError>;

    /// Extends the lease if it is still ours.
    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, StoreError>;

    /// Gives the lease up if it is ours.
    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError>;

    /// The token of the lease's current holder.
    async fn lease_holder(&self, name: &str) -> Result<Option<String>, StoreError>;

    /// Notes what the poller's last round did ([`ROUND_NOTE`]), kept for
    /// `ttl`; the operator console shows it.
    async fn note_round(&self, note: &RoundNote, ttl: Duration) -> Result<(), StoreError>;

    /// The poller's last noted round, unless it expired or does not read.
    async fn last_round(&self) -> Result<Option<RoundNote>, StoreError>;
}

/// Tenants and their settings (Scalelite's `Tenant` and `TenantSetting`
/// semantics).
#[async_trait]
pub trait TenantStore: Send + Sync + std::fmt::Debug + 'static {
    /// Every tenant with its settings.
    async fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError>;

    /// One tenant with its settings, by id.
    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>, StoreError>;

    /// The tenant the `tenant_name:<name>` index points to, with its settings.
    async fn tenant_by_name(&self, name: &str) -> Result<Option<TenantRecord>, StoreError>;

    /// Creates a tenant. `Conflict` if the id is taken.
    async fn create_tenant(&self, tenant: &Tenant) -> Result<(), StoreError>;

    /// Applies changes to a tenant. `NotFound` if it does not exist.
    async fn update_tenant(&self, id: &TenantId, update: &TenantUpdate) -> Result<(), StoreError>;

    /// Deletes a tenant and its name index (its settings stay, as in
    /// Scalelite). Returns whether it existed.
    async fn delete_tenant(&self, id: &TenantId) -> Result<bool, StoreError>;

    /// Adds a tenant setting. `Conflict` if the id is taken.
    async fn create_tenant_setting(&self, setting: &TenantSetting) -> Result<(), StoreError>;

    /// Deletes a tenant setting. Returns whether it existed.
    async fn delete_tenant_setting(&self, id: &str) -> Result<bool, StoreError>;
}

/// Short-lived keys: recording-ready URLs, one-time playback tokens and
/// analytics callbacks, each kept for a TTL.
#[async_trait]
pub trait KeyStore: Send + Sync + std::fmt::Debug + 'static {
    /// Remembers a meeting's recording-ready callback URL (taken off the
    /// create call) until its recording is imported.
    async fn remember_recording_ready_url(
        &self,
        meeting_id: &MeetingId,
        url: &str,
        ttl: Duration,
    ) -> Result<(), StoreError>;

    /// The remembered recording-ready URL of a meeting.
    async fn recording_ready_url(&self, meeting_id: &str) -> Result<Option<String>, StoreError>;

    /// Stores one-time playback tokens (`protector_token_<token>` = payload).
    async fn create_playback_tokens(&self, tokens: &[(String, String)], ttl: Duration) -> Result<(), StoreError>;

    /// Takes a playback token (read and deleted atomically); its payload.
    async fn consume_playback_token(&self, token: &str) -> Result<Option<String>, StoreError>;

    /// Remembers a meeting's analytics callback (replacing an older one)
    /// until BBB posts the meeting's analytics.
    async fn remember_analytics_callback(
        &self,
        meeting_id: &MeetingId,
        callback: &AnalyticsCallback,
        ttl: Duration,
    ) -> Result<(), StoreError>;

    /// The remembered analytics callback of a meeting.
    async fn analytics_callback(&self, meeting_id: &str) -> Result<Option<AnalyticsCallback>, StoreError>;

    /// Marks `mark` (a recording upload's signature or its received
    /// archive) for `ttl`: `true` when this call set it, `false` when it was
    /// already set and not expired. Atomic across API replicas sharing the
    /// store. Redis: `<ns>:recording_upload:<mark>` (`SET NX EX`, a key Ruby
    /// Scalelite ignores); SQLite: a row of the `leases` table named
    /// `recording_upload:<mark>`.
    async fn claim_upload_mark(&self, mark: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Whether `mark` is set and not expired (see
    /// [`KeyStore::claim_upload_mark`]).
    async fn upload_mark_exists(&self, mark: &str) -> Result<bool, StoreError>;
}

/// Drains with notice (`servers drain`): one record per server being (or
/// found) drained. Not part of Scalelite's layout; Ruby Scalelite ignores
/// it and sees the drained server as cordoned.
#[async_trait]
pub trait DrainStore: Send + Sync + std::fmt::Debug + 'static {
    /// Every drain record.
    async fn drains(&self) -> Result<Vec<Drain>, StoreError>;

    /// Writes (creates or replaces) the drain record of `drain.server_id`.
    async fn put_drain(&self, drain: &Drain) -> Result<(), StoreError>;

    /// Deletes the drain record of a server. Returns whether it existed.
    async fn delete_drain(&self, server_id: &ServerId) -> Result<bool, StoreError>;
}

/// A named lease held with a random token (the poller's leader election).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Key name below the namespace, e.g. `poller:leader`.
    pub name: String,
    /// This holder's token.
    pub token: String,
}

impl Lease {
    /// The poller's lease with a fresh token naming this process.
    pub fn poller(holder: &str) -> Self {
        Self { name: POLLER_LEASE.to_owned(), token: holder.to_owned() }
    }
}

/// Where the poller notes its last round (`<ns>:poller:last_round`; on
/// SQLite a row of the `leases` table, which maps names to values that
/// expire).
pub const ROUND_NOTE: &str = "poller:last_round";

/// Name of the poller's leader lease (`<ns>:poller:leader`).
pub const POLLER_LEASE: &str = "poller:leader";
