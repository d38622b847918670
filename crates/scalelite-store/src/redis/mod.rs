//! The Redis backend, on Scalelite's key layout.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Script, Value};
use scalelite_core::{MeetingId, ServerId, TenantId};

use crate::model::{JoinRoute, Meeting, MeetingRoute, Placement, PlacementRequest, Server, ServerState};
use crate::{Store, StoreError};

macro_rules! script {
    ($file:literal) => {
        Script::new(concat!(include_str!("lua/prelude.lua"), include_str!(concat!("lua/", $file))))
    };
}

struct Scripts {
    lookup: Script,
    join: Script,
    place: Script,
    delete_meeting: Script,
    servers: Script,
}

impl Scripts {
    fn load() -> Self {
        Self {
            lookup: script!("lookup.lua"),
            join: Script::new(include_str!("lua/join.lua")),
            place: script!("place.lua"),
            delete_meeting: script!("delete_meeting.lua"),
            servers: script!("servers.lua"),
        }
    }
}

/// Scalelite's Redis store.
///
/// Cheap to clone: clones share one multiplexed, self-reconnecting
/// connection, so concurrent requests are pipelined on it.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
    scripts: std::sync::Arc<Scripts>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Creates a store for `url` with keys under `<namespace>:`.
    ///
    /// The connection is made lazily and re-made after failures, so the
    /// process starts (and keeps running) while Redis is down; calls fail
    /// until it is back.
    pub fn open(url: &str, namespace: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Self { conn, prefix: format!("{namespace}:"), scripts: std::sync::Arc::new(Scripts::load()) })
    }

    /// The key prefix, e.g. `scalelite:`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A handle on the shared connection, for administrative commands.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    async fn run(&self, script: &Script, args: &[&str]) -> Result<Value, StoreError> {
        let mut invocation = script.prepare_invoke();
        invocation.arg(&self.prefix);
        for arg in args {
            invocation.arg(*arg);
        }
        let mut conn = self.conn.clone();
        Ok(invocation.invoke_async(&mut conn).await?)
    }
}

#[async_trait]
impl Store for RedisStore {
    async fn find_meeting(
        &self,
        id: &MeetingId,
        tenant: Option<&TenantId>,
    ) -> Result<Option<MeetingRoute>, StoreError> {
        let reply = self.run(&self.scripts.lookup, &[id.as_str(), tenant_arg(tenant)]).await?;
        let parts = array(reply)?;
        if parts.is_empty() {
            return Ok(None);
        }
        route_from(id, parts).map(Some)
    }

    async fn route_join(&self, id: &MeetingId, tenant: Option<&TenantId>) -> Result<JoinRoute, StoreError> {
        let reply = self.run(&self.scripts.join, &[id.as_str(), tenant_arg(tenant)]).await?;
        match reply {
            Value::Int(0) => Ok(JoinRoute::NotFound),
            Value::Int(1) => Ok(JoinRoute::Unavailable),
            Value::Array(parts) => {
                let mut parts = parts.into_iter();
                let url = string(parts.next().unwrap_or(Value::Nil))?;
                let secret = string(parts.next().unwrap_or(Value::Nil))?;
                Ok(JoinRoute::Ready { url, secret: secret.as_str().into() })
            }
            other => Err(StoreError::Unexpected(format!("join script answered {other:?}"))),
        }
    }

    async fn place_meeting(&self, request: &PlacementRequest) -> Result<Placement, StoreError> {
        let tags = request.tags.tags.join(";");
        let ttl = request.ttl.as_secs().max(1).to_string();
        let reserve = request.reserve_users.to_string();
        let mut args: Vec<&str> = vec![
            request.meeting_id.as_str(),
            tenant_arg(request.tenant_id.as_ref()),
            &tags,
            if request.tags.required { "1" } else { "0" },
            &request.moderator_pw,
            &ttl,
            &reserve,
        ];
        args.extend(request.voice_bridges.iter().map(String::as_str));
        let reply = self.run(&self.scripts.place, &args).await?;
        let mut parts = array(reply)?;
        if parts.is_empty() {
            return Err(StoreError::Unexpected("empty placement reply".into()));
        }
        let status = string(parts.remove(0))?;
        Ok(match status.as_str() {
            "existing" => Placement::Existing(route_from(&request.meeting_id, parts)?),
            "placed" => {
                let route = route_from(&request.meeting_id, parts)?;
                let server =
                    route.server.ok_or_else(|| StoreError::Unexpected("placed meeting without server".into()))?;
                Placement::Placed { meeting: route.meeting, server }
            }
            "noserver" => Placement::NoServer,
            "tagunavailable" => Placement::TagUnavailable,
            "tenant_conflict" => Placement::TenantConflict,
            "vb_exhausted" => Placement::VoiceBridgesExhausted,
            other => {
                return Err(StoreError::Unexpected(format!("placement script answered {other:?}")));
            }
        })
    }

    async fn delete_meeting(&self, id: &MeetingId, only_on: Option<&ServerId>) -> Result<bool, StoreError> {
        let expected = only_on.map_or("", ServerId::as_str);
        let reply = self.run(&self.scripts.delete_meeting, &[id.as_str(), expected]).await?;
        Ok(matches!(reply, Value::Int(1)))
    }

    async fn servers(&self) -> Result<Vec<Server>, StoreError> {
        let reply = self.run(&self.scripts.servers, &[]).await?;
        let mut servers = Vec::new();
        for entry in array(reply)? {
            let mut fields = array(entry)?.into_iter();
            let mut next = || fields.next().unwrap_or(Value::Nil);
            let id = ServerId::new(string(next())?);
            let hash = pairs(next())?;
            let enabled = matches!(next(), Value::Int(1));
            let load = string(next())?;
            let cordoned_load = string(next())?;
            let Some(mut server) = Server::from_hash(id, &hash, enabled) else {
                continue;
            };
            let score = match (server.state.as_deref().and_then(ServerState::parse), server.state.is_some()) {
                (Some(ServerState::Cordoned), _) => cordoned_load,
                (Some(ServerState::Disabled), _) => String::new(),
                (_, true) => load,
                (_, false) if enabled => load,
                _ => String::new(),
            };
            server.load = score.parse().ok();
            servers.push(server);
        }
        Ok(servers)
    }

    async fn health_check(&self) -> Result<(), StoreError> {
        let key = format!("{}__health_check_set__", self.prefix);
        let mut conn = self.conn.clone();
        let (_, value): ((), Option<String>) = redis::pipe()
            .cmd("SET")
            .arg(&key)
            .arg("true")
            .arg("EX")
            .arg(10)
            .cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await?;
        match value.as_deref() {
            Some("true") => Ok(()),
            other => Err(StoreError::Unexpected(format!("health check key read back as {other:?}"))),
        }
    }
}

fn tenant_arg(tenant: Option<&TenantId>) -> &str {
    tenant.map_or("", TenantId::as_str)
}

fn route_from(id: &MeetingId, parts: Vec<Value>) -> Result<MeetingRoute, StoreError> {
    let mut parts = parts.into_iter();
    let meeting_hash = pairs(parts.next().unwrap_or(Value::Nil))?;
    let server_hash = pairs(parts.next().unwrap_or(Value::Nil))?;
    let enabled = matches!(parts.next(), Some(Value::Int(1)));
    let meeting = Meeting::from_hash(id.clone(), &meeting_hash)
        .ok_or_else(|| StoreError::Unexpected(format!("meeting {id} has no server_id")))?;
    let server = Server::from_hash(meeting.server_id.clone(), &server_hash, enabled);
    Ok(MeetingRoute { meeting, server })
}

fn array(value: Value) -> Result<Vec<Value>, StoreError> {
    match value {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(StoreError::Unexpected(format!("expected an array, got {other:?}"))),
    }
}

fn string(value: Value) -> Result<String, StoreError> {
    match value {
        Value::BulkString(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Value::SimpleString(s) => Ok(s),
        Value::Okay => Ok("OK".into()),
        Value::Int(i) => Ok(i.to_string()),
        Value::Double(d) => Ok(d.to_string()),
        Value::Nil => Ok(String::new()),
        other => Err(StoreError::Unexpected(format!("expected a string, got {other:?}"))),
    }
}

fn pairs(value: Value) -> Result<HashMap<String, String>, StoreError> {
    let items = array(value)?;
    let mut map = HashMap::with_capacity(items.len() / 2);
    let mut iter = items.into_iter();
    while let (Some(k), Some(v)) = (iter.next(), iter.next()) {
        map.insert(string(k)?, string(v)?);
    }
    Ok(map)
}
