#![doc = include_str!("../README.md")]

mod error;
pub mod model;
pub mod redis;

use async_trait::async_trait;
use scalelite_core::{MeetingId, ServerId, TenantId};

pub use crate::error::StoreError;
pub use crate::model::{
    JoinRoute, Meeting, MeetingRoute, Placement, PlacementRequest, Server, ServerState, ServerStats,
};
pub use crate::redis::RedisStore;

/// Storage of servers and meeting routes.
///
/// The Redis implementation keeps Scalelite's exact layout so Ruby and Rust
/// processes can share one Redis. Every method is one round trip to the
/// store; `route_join` and `place_meeting` are atomic.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Finds a meeting (visible to `tenant` when given) and its server.
    async fn find_meeting(&self, id: &MeetingId, tenant: Option<&TenantId>)
    -> Result<Option<MeetingRoute>, StoreError>;

    /// Routes a join: refuses offline/disabled servers and counts the join
    /// on the server's load.
    async fn route_join(&self, id: &MeetingId, tenant: Option<&TenantId>) -> Result<JoinRoute, StoreError>;

    /// Returns the existing meeting, or places a new one on the least loaded
    /// eligible server and reserves load there, atomically.
    async fn place_meeting(&self, request: &PlacementRequest) -> Result<Placement, StoreError>;

    /// Deletes a meeting record (only if it still points to `only_on` when
    /// given). Returns whether a record was deleted.
    async fn delete_meeting(&self, id: &MeetingId, only_on: Option<&ServerId>) -> Result<bool, StoreError>;

    /// Every server, with its load as Scalelite derives it.
    async fn servers(&self) -> Result<Vec<Server>, StoreError>;

    /// Writes and reads a short-lived key (Scalelite's health check).
    async fn health_check(&self) -> Result<(), StoreError>;
}
