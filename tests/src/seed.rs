//! Writes Redis records exactly as Ruby Scalelite does, so tests prove that
//! state created by Scalelite is read as it is.
//!
//! The field names, value formats (`online` as `true`/`false`, multipliers
//! as Ruby floats such as `1.0`) and set memberships follow Scalelite's
//! `Server#save` and `Meeting.find_or_create_with_server!`.

use std::collections::BTreeMap;

use crate::redis::TestRedis;

/// A server record as Scalelite stores it.
#[derive(Clone, Debug)]
pub struct SeedServer {
    /// Server id (UUID in Scalelite, any string here).
    pub id: String,
    /// API base URL.
    pub url: String,
    /// Server secret.
    pub secret: String,
    /// `state` field: `Some("enabled" | "cordoned" | "disabled")`, or `None`
    /// for legacy/new servers whose state comes from `server_enabled`.
    pub state: Option<String>,
    /// Membership of `server_enabled` for legacy (state-less) servers.
    pub legacy_enabled: bool,
    /// `online` field.
    pub online: bool,
    /// Load score, stored in `server_load` (enabled) or
    /// `cordoned_server_load` (cordoned) when the server is online.
    pub load: Option<f64>,
    /// `load_multiplier` field, verbatim (`None` leaves it out).
    pub load_multiplier: Option<String>,
    /// `tag` field (`None` leaves it out).
    pub tag: Option<String>,
}

impl SeedServer {
    /// An enabled, online server with load 0 and multiplier `1.0`.
    pub fn enabled(id: impl Into<String>, url: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            url: url.into(),
            secret: secret.into(),
            state: Some("enabled".into()),
            legacy_enabled: false,
            online: true,
            load: Some(0.0),
            load_multiplier: Some("1.0".into()),
            tag: None,
        }
    }

    /// Sets the state (`enabled`, `cordoned`, `disabled`).
    pub fn state(mut self, state: &str) -> Self {
        self.state = Some(state.into());
        self
    }

    /// Makes the record a legacy one without `state`, enabled or not.
    pub fn legacy(mut self, enabled: bool) -> Self {
        self.state = None;
        self.legacy_enabled = enabled;
        self
    }

    /// Sets `online`.
    pub fn online(mut self, online: bool) -> Self {
        self.online = online;
        self
    }

    /// Sets the load score (`None`: not in any load set).
    pub fn load(mut self, load: Option<f64>) -> Self {
        self.load = load;
        self
    }

    /// Sets the stored multiplier string.
    pub fn multiplier(mut self, multiplier: Option<&str>) -> Self {
        self.load_multiplier = multiplier.map(str::to_owned);
        self
    }

    /// Sets the tag.
    pub fn tag(mut self, tag: &str) -> Self {
        self.tag = Some(tag.into());
        self
    }
}

/// Writes `server` under `<ns>:` the way Scalelite's `Server#save` leaves
/// it (replacing an earlier record of the same id, set memberships included).
pub async fn seed_server(redis: &TestRedis, ns: &str, server: &SeedServer) {
    let key = |name: &str| format!("{ns}:{name}");
    let hash = key(&format!("server:{}", server.id));
    redis.cmd(&["DEL", &hash]).await;
    redis.cmd(&["SREM", &key("server_enabled"), &server.id]).await;
    redis.cmd(&["ZREM", &key("server_load"), &server.id]).await;
    redis.cmd(&["ZREM", &key("cordoned_server_load"), &server.id]).await;
    let mut fields: Vec<(&str, String)> = vec![("url", server.url.clone()), ("secret", server.secret.clone())];
    if let Some(tag) = &server.tag {
        fields.push(("tag", tag.clone()));
    }
    if let Some(multiplier) = &server.load_multiplier {
        fields.push(("load_multiplier", multiplier.clone()));
    }
    fields.push(("online", server.online.to_string()));
    if let Some(state) = &server.state {
        fields.push(("state", state.clone()));
    }
    let mut args: Vec<&str> = vec!["HSET", &hash];
    for (k, v) in &fields {
        args.push(k);
        args.push(v);
    }
    redis.cmd(&args).await;
    redis.cmd(&["SADD", &key("servers"), &server.id]).await;

    let enabled = match server.state.as_deref() {
        Some("enabled") => true,
        Some(_) => false,
        None => server.legacy_enabled,
    };
    if enabled {
        redis.cmd(&["SADD", &key("server_enabled"), &server.id]).await;
    }
    if let (Some(load), true) = (server.load, server.online) {
        let load = format!("{load:?}");
        match server.state.as_deref() {
            Some("cordoned") => {
                redis.cmd(&["ZADD", &key("cordoned_server_load"), &load, &server.id]).await;
            }
            _ if enabled => {
                redis.cmd(&["ZADD", &key("server_load"), &load, &server.id]).await;
            }
            _ => {}
        }
    }
}

/// Writes a meeting record the way `Meeting.find_or_create_with_server!`
/// does (with its TTL) and registers the voice bridge.
pub async fn seed_meeting(
    redis: &TestRedis,
    ns: &str,
    id: &str,
    server_id: &str,
    moderator_pw: &str,
    voice_bridge: &str,
) {
    let hash = format!("{ns}:meeting:{id}");
    redis
        .cmd(&[
            "HSET",
            &hash,
            "server_id",
            server_id,
            "moderator_pw",
            moderator_pw,
            "voice_bridge",
            voice_bridge,
            "tenant_id",
            "",
        ])
        .await;
    redis.cmd(&["EXPIRE", &hash, "86400"]).await;
    redis.cmd(&["SADD", &format!("{ns}:meetings"), id]).await;
    redis.cmd(&["HSET", &format!("{ns}:voice_bridges"), voice_bridge, id]).await;
}

/// The fields of a hash.
pub async fn hash(redis: &TestRedis, key: &str) -> BTreeMap<String, String> {
    redis.cmd(&["HGETALL", key]).await.as_map()
}

/// The score of `member` in a sorted set.
pub async fn score(redis: &TestRedis, key: &str, member: &str) -> Option<f64> {
    redis.cmd(&["ZSCORE", key, member]).await.as_str().and_then(|s| s.parse().ok())
}
