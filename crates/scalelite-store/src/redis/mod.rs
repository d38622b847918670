//! The Redis backend, on Scalelite's key layout.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use redis::{Script, Value};
use scalelite_core::{MeetingId, ServerId, TenantId};

use crate::model::{
    AnalyticsCallback, JoinRoute, Meeting, MeetingRecord, MeetingRoute, NewServer, Placement, PlacementRequest,
    PollResult, PollSave, PollSaved, Pruned, Server, ServerState, ServerUpdate, Transition,
};
use crate::tenants::{Tenant, TenantRecord, TenantSetting, TenantUpdate};
use crate::{KeyStore, Lease, LeaseStore, MeetingStore, PollerStore, ServerStore, Store, StoreError, TenantStore};

mod connection;

pub use connection::{DEFAULT_SENTINEL_PORT, RedisConnection, RedisOptions};

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
    create_server: Script,
    update_server: Script,
    delete_server: Script,
    meetings: Script,
    poll_save: Script,
    prune: Script,
    lease: Script,
    tenants: Script,
    save_tenant: Script,
    delete_tenant: Script,
    tenant_setting: Script,
    voice_bridge: Script,
}

impl Scripts {
    fn load() -> Self {
        Self {
            lookup: script!("lookup.lua"),
            join: Script::new(include_str!("lua/join.lua")),
            place: script!("place.lua"),
            delete_meeting: script!("delete_meeting.lua"),
            servers: script!("servers.lua"),
            create_server: script!("create_server.lua"),
            update_server: script!("update_server.lua"),
            delete_server: script!("delete_server.lua"),
            meetings: script!("meetings.lua"),
            poll_save: script!("poll_save.lua"),
            prune: script!("prune.lua"),
            lease: script!("lease.lua"),
            tenants: script!("tenants.lua"),
            save_tenant: script!("save_tenant.lua"),
            delete_tenant: script!("delete_tenant.lua"),
            tenant_setting: script!("tenant_setting.lua"),
            voice_bridge: script!("voice_bridge.lua"),
        }
    }
}

/// Scalelite's Redis store.
///
/// Cheap to clone: clones share one multiplexed, self-repairing
/// [`RedisConnection`], so concurrent requests are pipelined on it.
#[derive(Clone)]
pub struct RedisStore {
    conn: RedisConnection,
    prefix: String,
    scripts: std::sync::Arc<Scripts>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Creates a store for `url` with keys under `<namespace>:`, with the
    /// default [`RedisOptions`].
    ///
    /// `url` is `redis://`, `unix://` or `redis+sentinel://` (the master a
    /// set of Sentinels names; see [`RedisConnection`]). The connection is
    /// made lazily and re-made after failures, so the process starts (and
    /// keeps running) while Redis is down; calls fail until it is back.
    pub fn open(url: &str, namespace: &str) -> Result<Self, StoreError> {
        Self::open_with(url, namespace, RedisOptions::default())
    }

    /// [`RedisStore::open`] with explicit options.
    pub fn open_with(url: &str, namespace: &str, options: RedisOptions) -> Result<Self, StoreError> {
        let conn = RedisConnection::open(url, options)?;
        Ok(Self { conn, prefix: format!("{namespace}:"), scripts: std::sync::Arc::new(Scripts::load()) })
    }

    /// The store `REDIS_URL`, `REDIS_NAMESPACE` and `REDIS_TIMEOUT` describe.
    pub fn from_config(config: &scalelite_core::config::Config) -> Result<Self, StoreError> {
        let options = RedisOptions { timeout: config.redis_timeout };
        Self::open_with(config.redis_url.expose(), &config.redis_namespace, options)
    }

    /// The key prefix, e.g. `scalelite:`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A handle on the shared connection, for administrative commands.
    pub fn connection(&self) -> RedisConnection {
        self.conn.clone()
    }

    /// Reads servers (all members of `servers` when `ids` is empty) with the
    /// load Scalelite derives from their state.
    async fn read_servers(&self, ids: &[&str]) -> Result<Vec<Server>, StoreError> {
        let reply = self.run(&self.scripts.servers, ids).await?;
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
            let score = match server.state.as_deref() {
                Some("cordoned") => cordoned_load,
                Some("disabled") => String::new(),
                Some(_) => load,
                None if enabled => load,
                None => String::new(),
            };
            server.load = score.parse().ok();
            servers.push(server);
        }
        Ok(servers)
    }

    async fn read_tenants(&self, mode: &str, arg: &str) -> Result<Vec<TenantRecord>, StoreError> {
        let reply = self.run(&self.scripts.tenants, &[mode, arg]).await?;
        let mut records = Vec::new();
        for entry in array(reply)? {
            let mut fields = array(entry)?.into_iter();
            let mut next = || fields.next().unwrap_or(Value::Nil);
            let id = TenantId::new(string(next())?);
            let Some(tenant) = Tenant::from_hash(id, &pairs(next())?) else {
                continue;
            };
            let mut settings = Vec::new();
            for setting in array(next())? {
                let mut parts = array(setting)?.into_iter();
                let sid = string(parts.next().unwrap_or(Value::Nil))?;
                settings.extend(TenantSetting::from_hash(sid, &pairs(parts.next().unwrap_or(Value::Nil))?));
            }
            records.push(TenantRecord { tenant, settings });
        }
        Ok(records)
    }

    async fn save_tenant(&self, mode: &str, id: &TenantId, fields: &[(&str, &str)]) -> Result<String, StoreError> {
        let mut args = vec![mode, id.as_str()];
        for (field, value) in fields {
            args.push(field);
            args.push(value);
        }
        string(self.run(&self.scripts.save_tenant, &args).await?)
    }

    async fn lease_op(&self, lease: &Lease, op: &str, ttl: Duration) -> Result<bool, StoreError> {
        let ttl_ms = ttl.as_millis().max(1).to_string();
        let reply = self.run(&self.scripts.lease, &[&lease.name, op, &lease.token, &ttl_ms]).await?;
        Ok(matches!(reply, Value::Int(1)))
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

#[async_trait]
impl MeetingStore for RedisStore {
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

    async fn find_meeting_by_voice_bridge(&self, pin: &str) -> Result<Option<MeetingRoute>, StoreError> {
        let mut parts = array(self.run(&self.scripts.voice_bridge, &[pin]).await?)?;
        if parts.is_empty() {
            return Ok(None);
        }
        let id = MeetingId::new(string(parts.remove(0))?);
        route_from(&id, parts).map(Some)
    }

    async fn meetings(&self) -> Result<Vec<MeetingRecord>, StoreError> {
        let mut records = Vec::new();
        for entry in array(self.run(&self.scripts.meetings, &[]).await?)? {
            let mut fields = array(entry)?.into_iter();
            let id = MeetingId::new(string(fields.next().unwrap_or(Value::Nil))?);
            let hash = pairs(fields.next().unwrap_or(Value::Nil))?;
            let ttl = match fields.next() {
                Some(Value::Int(ms)) if ms >= 0 => Some(Duration::from_millis(ms as u64)),
                _ => None,
            };
            if let Some(meeting) = Meeting::from_hash(id, &hash) {
                records.push(MeetingRecord { meeting, ttl });
            }
        }
        Ok(records)
    }
}

#[async_trait]
impl ServerStore for RedisStore {
    async fn servers(&self) -> Result<Vec<Server>, StoreError> {
        self.read_servers(&[]).await
    }

    async fn server(&self, id: &ServerId) -> Result<Option<Server>, StoreError> {
        Ok(self.read_servers(&[id.as_str()]).await?.pop())
    }

    async fn create_server(&self, server: &NewServer) -> Result<(), StoreError> {
        let reply = self
            .run(
                &self.scripts.create_server,
                &[
                    server.id.as_str(),
                    &server.url,
                    server.secret.expose(),
                    server.load_multiplier.as_deref().unwrap_or(""),
                    server.tag.as_deref().unwrap_or(""),
                ],
            )
            .await?;
        match string(reply)?.as_str() {
            "ok" => Ok(()),
            "exists" => Err(StoreError::Conflict(format!("Server already exists with id '{}'", server.id))),
            other => Err(StoreError::Unexpected(format!("create_server answered {other:?}"))),
        }
    }

    async fn update_server(&self, id: &ServerId, update: &ServerUpdate) -> Result<(), StoreError> {
        let flag = |set: bool| if set { "1" } else { "0" };
        let (tag_op, tag) = match &update.tag {
            None => ("0", ""),
            Some(Some(tag)) => ("1", tag.as_str()),
            Some(None) => ("2", ""),
        };
        let reply = self
            .run(
                &self.scripts.update_server,
                &[
                    id.as_str(),
                    flag(update.url.is_some()),
                    update.url.as_deref().unwrap_or(""),
                    flag(update.secret.is_some()),
                    update.secret.as_ref().map_or("", |s| s.expose()),
                    flag(update.load_multiplier.is_some()),
                    update.load_multiplier.as_deref().unwrap_or(""),
                    tag_op,
                    tag,
                    update.state.map_or("", ServerState::as_str),
                ],
            )
            .await?;
        match string(reply)?.as_str() {
            "ok" => Ok(()),
            "missing" => Err(StoreError::NotFound(format!("Couldn't find Server with id={id}"))),
            other => Err(StoreError::Unexpected(format!("update_server answered {other:?}"))),
        }
    }

    async fn delete_server(&self, id: &ServerId) -> Result<bool, StoreError> {
        Ok(matches!(self.run(&self.scripts.delete_server, &[id.as_str()]).await?, Value::Int(1)))
    }
}

#[async_trait]
impl PollerStore for RedisStore {
    async fn save_poll(&self, lease: &Lease, save: &PollSave) -> Result<PollSaved, StoreError> {
        let (reachable, load, stats) = match &save.result {
            PollResult::Reachable { load, stats } => ("1", *load, *stats),
            PollResult::Unreachable => ("0", 0.0, Default::default()),
        };
        let numbers = [
            format!("{load:?}"),
            stats.meetings.to_string(),
            stats.users.to_string(),
            stats.largest_meeting.to_string(),
            stats.videos.to_string(),
            save.healthy_threshold.to_string(),
            save.unhealthy_threshold.to_string(),
        ];
        let reply = self
            .run(
                &self.scripts.poll_save,
                &[
                    &lease.name,
                    &lease.token,
                    save.server_id.as_str(),
                    reachable,
                    &numbers[0],
                    &numbers[1],
                    &numbers[2],
                    &numbers[3],
                    &numbers[4],
                    if save.bbb_version.is_some() { "1" } else { "0" },
                    save.bbb_version.as_deref().unwrap_or(""),
                    &numbers[5],
                    &numbers[6],
                ],
            )
            .await?;
        let mut parts = array(reply)?.into_iter();
        let first = string(parts.next().unwrap_or(Value::Nil))?;
        Ok(match first.as_str() {
            "not_leader" => PollSaved::NotLeader,
            "gone" => PollSaved::Gone,
            online => {
                let state = string(parts.next().unwrap_or(Value::Nil))?;
                let transition = match string(parts.next().unwrap_or(Value::Nil))?.as_str() {
                    "online" => Some(Transition::CameOnline),
                    "offline" => Some(Transition::WentOffline),
                    "drained" => Some(Transition::Drained),
                    _ => None,
                };
                PollSaved::Saved { online: online == "1", state: (!state.is_empty()).then_some(state), transition }
            }
        })
    }

    async fn prune(&self, previous_orphans: &[String]) -> Result<(Pruned, Vec<String>), StoreError> {
        let args: Vec<&str> = previous_orphans.iter().map(String::as_str).collect();
        let mut parts = array(self.run(&self.scripts.prune, &args).await?)?.into_iter();
        let mut count = || match parts.next() {
            Some(Value::Int(n)) => n.max(0) as u64,
            _ => 0,
        };
        let pruned = Pruned { stale_members: count(), orphan_voice_bridges: count() };
        let orphans = array(parts.next().unwrap_or(Value::Nil))?.into_iter().map(string).collect::<Result<_, _>>()?;
        Ok((pruned, orphans))
    }
}

#[async_trait]
impl LeaseStore for RedisStore {
    async fn acquire_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, StoreError> {
        self.lease_op(lease, "acquire", ttl).await
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, StoreError> {
        self.lease_op(lease, "renew", ttl).await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.lease_op(lease, "release", Duration::ZERO).await.map(|_| ())
    }

    async fn lease_holder(&self, name: &str) -> Result<Option<String>, StoreError> {
        let reply = self.run(&self.scripts.lease, &[name, "holder", "", "0"]).await?;
        Ok(match reply {
            Value::Nil => None,
            other => Some(string(other)?),
        })
    }
}

#[async_trait]
impl TenantStore for RedisStore {
    async fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        self.read_tenants("all", "").await
    }

    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
        Ok(self.read_tenants("id", id.as_str()).await?.into_iter().next())
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<TenantRecord>, StoreError> {
        Ok(self.read_tenants("name", name).await?.into_iter().next())
    }

    async fn create_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        let mut fields = vec![("name", tenant.name.as_str()), ("secrets", tenant.secrets.as_str())];
        fields.extend(tenant.lrs_fields());
        match self.save_tenant("create", &tenant.id, &fields).await?.as_str() {
            "ok" => Ok(()),
            _ => Err(StoreError::Conflict(format!("Tenant already exists with id '{}'", tenant.id))),
        }
    }

    async fn update_tenant(&self, id: &TenantId, update: &TenantUpdate) -> Result<(), StoreError> {
        let mut fields: Vec<(&str, &str)> = Vec::new();
        if let Some(name) = &update.name {
            fields.push(("name", name));
        }
        if let Some(secrets) = &update.secrets {
            fields.push(("secrets", secrets));
        }
        fields.extend(update.lrs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        match self.save_tenant("update", id, &fields).await?.as_str() {
            "ok" => Ok(()),
            _ => Err(StoreError::NotFound(format!("Couldn't find Tenant with id={id}"))),
        }
    }

    async fn delete_tenant(&self, id: &TenantId) -> Result<bool, StoreError> {
        Ok(matches!(self.run(&self.scripts.delete_tenant, &[id.as_str()]).await?, Value::Int(1)))
    }

    async fn create_tenant_setting(&self, setting: &TenantSetting) -> Result<(), StoreError> {
        let args = [
            "create",
            setting.id.as_str(),
            setting.tenant_id.as_str(),
            setting.param.as_str(),
            setting.value.as_str(),
            setting.override_flag.as_str(),
        ];
        match string(self.run(&self.scripts.tenant_setting, &args).await?)?.as_str() {
            "ok" => Ok(()),
            _ => Err(StoreError::Conflict(format!("TenantSetting already exists with id '{}'", setting.id))),
        }
    }

    async fn delete_tenant_setting(&self, id: &str) -> Result<bool, StoreError> {
        Ok(matches!(self.run(&self.scripts.tenant_setting, &["delete", id]).await?, Value::Int(1)))
    }
}

#[async_trait]
impl KeyStore for RedisStore {
    async fn remember_recording_ready_url(
        &self,
        meeting_id: &MeetingId,
        url: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let key = format!("{}recording_ready:{meeting_id}", self.prefix);
        let mut conn = self.conn.clone();
        redis::cmd("SET").arg(&key).arg(url).arg("EX").arg(ttl.as_secs().max(1)).query_async::<()>(&mut conn).await?;
        Ok(())
    }

    async fn recording_ready_url(&self, meeting_id: &str) -> Result<Option<String>, StoreError> {
        let key = format!("{}recording_ready:{meeting_id}", self.prefix);
        let mut conn = self.conn.clone();
        Ok(redis::cmd("GET").arg(&key).query_async(&mut conn).await?)
    }

    async fn create_playback_tokens(&self, tokens: &[(String, String)], ttl: Duration) -> Result<(), StoreError> {
        if tokens.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (token, payload) in tokens {
            pipe.cmd("SET")
                .arg(format!("{}protector_token_{token}", self.prefix))
                .arg(payload)
                .arg("EX")
                .arg(ttl.as_secs().max(1))
                .ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn).await?;
        Ok(())
    }

    async fn consume_playback_token(&self, token: &str) -> Result<Option<String>, StoreError> {
        let key = format!("{}protector_token_{token}", self.prefix);
        let mut conn = self.conn.clone();
        let (value, _): (Option<String>, i64) =
            redis::pipe().atomic().cmd("GET").arg(&key).cmd("DEL").arg(&key).query_async(&mut conn).await?;
        Ok(value)
    }

    async fn remember_analytics_callback(
        &self,
        meeting_id: &MeetingId,
        callback: &AnalyticsCallback,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let key = format!("{}analytics_callback:{meeting_id}", self.prefix);
        let tenant = callback.tenant_id.as_ref().map_or("", TenantId::as_str);
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .cmd("DEL")
            .arg(&key)
            .ignore()
            .cmd("HSET")
            .arg(&key)
            .arg("url")
            .arg(&callback.url)
            .arg("tenant_id")
            .arg(tenant)
            .ignore()
            .cmd("EXPIRE")
            .arg(&key)
            .arg(ttl.as_secs().max(1))
            .ignore()
            .query_async::<()>(&mut conn)
            .await?;
        Ok(())
    }

    async fn analytics_callback(&self, meeting_id: &str) -> Result<Option<AnalyticsCallback>, StoreError> {
        let key = format!("{}analytics_callback:{meeting_id}", self.prefix);
        let mut conn = self.conn.clone();
        let mut hash: HashMap<String, String> = redis::cmd("HGETALL").arg(&key).query_async(&mut conn).await?;
        Ok(hash.remove("url").map(|url| AnalyticsCallback {
            url,
            tenant_id: hash.remove("tenant_id").filter(|t| !t.is_empty()).map(TenantId::new),
        }))
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
