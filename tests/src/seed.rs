//! Seeds servers and meetings.
//!
//! On Redis the records are written exactly as Ruby Scalelite does, so tests
//! prove that state created by Scalelite is read as it is: the field names,
//! value formats (`online` as `true`/`false`, multipliers as Ruby floats
//! such as `1.0`) and set memberships follow Scalelite's `Server#save` and
//! `Meeting.find_or_create_with_server!`.
//!
//! On the embedded backend servers are made through the public [`Store`]
//! trait (created, enabled, polled online, then given their state), and
//! meeting records, which only a create can make through the store, are
//! written as a create writes them.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use scalelite_core::{Secret, ServerId};
use scalelite_store::{
    Lease, NewServer, PollResult, PollSave, PollSaved, PollStats, ServerState, ServerUpdate, SqliteStore, Store,
};

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

/// Makes `server` through the store as an operator and the poller would: a
/// server of that id is deleted first; the new one is enabled, polled once
/// (when online) under a lease of its own, so its load enters the pool, and
/// then given its state (cordoning keeps the load, disabling drops it).
///
/// # Panics
///
/// Panics for records only Ruby Scalelite's Redis layout can hold: legacy
/// servers (no `state`), and online servers without a load.
pub async fn seed_server_through_store(store: &dyn Store, server: &SeedServer) {
    let Some(state) = server.state.as_deref() else {
        panic!(
            "{}: a legacy server (no state field) exists only in Ruby Scalelite's Redis layout; pin the test to \
             TestBackend::Redis",
            server.id
        );
    };
    let state = ServerState::parse(state).unwrap_or_else(|| panic!("unknown state {state:?}"));
    let id = ServerId::from(server.id.as_str());
    store.delete_server(&id).await.expect("delete_server");
    let new = NewServer {
        id: id.clone(),
        url: server.url.clone(),
        secret: Secret::new(server.secret.clone()),
        load_multiplier: server.load_multiplier.clone(),
        tag: server.tag.clone(),
    };
    store.create_server(&new).await.expect("create_server");
    let enable = ServerUpdate { state: Some(ServerState::Enabled), ..ServerUpdate::default() };
    store.update_server(&id, &enable).await.expect("enable");
    if server.online {
        let Some(load) = server.load else {
            panic!("{}: an online server out of the pool exists only in Redis; pin the test to Redis", server.id);
        };
        let lease = Lease { name: format!("test-seed:{}", server.id), token: format!("{:x}", rand::random::<u64>()) };
        assert!(store.acquire_lease(&lease, Duration::from_secs(30)).await.expect("lease"), "seed lease taken");
        let save = PollSave {
            server_id: id.clone(),
            result: PollResult::Reachable { load, stats: PollStats::default() },
            bbb_version: None,
            healthy_threshold: 1,
            unhealthy_threshold: 1,
        };
        let saved = store.save_poll(&lease, &save).await.expect("save_poll");
        assert!(matches!(saved, PollSaved::Saved { online: true, .. }), "{saved:?}");
        store.release_lease(&lease).await.expect("release lease");
    }
    if state != ServerState::Enabled {
        let update = ServerUpdate { state: Some(state), ..ServerUpdate::default() };
        store.update_server(&id, &update).await.expect("state");
    }
}

/// How long a seeded meeting record lives (Scalelite's default TTL).
const MEETING_TTL: Duration = Duration::from_secs(86_400);

fn now_ms() -> i64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    i64::try_from(since_epoch.as_millis()).expect("time")
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).expect("duration")
}

/// Writes a meeting record and its voice bridge into the embedded file as a
/// create does (no tenant, a day to live).
pub async fn seed_meeting_sqlite(
    store: &SqliteStore,
    id: &str,
    server_id: &str,
    moderator_pw: &str,
    voice_bridge: &str,
) {
    let mut tx = store.pool().begin().await.expect("transaction");
    sqlx::query(
        "INSERT OR REPLACE INTO meetings (id, server_id, moderator_pw, voice_bridge, tenant_id, expires_at) \
         VALUES (?1, ?2, ?3, ?4, '', ?5)",
    )
    .bind(id)
    .bind(server_id)
    .bind(moderator_pw)
    .bind(voice_bridge)
    .bind(now_ms() + millis(MEETING_TTL))
    .execute(&mut *tx)
    .await
    .expect("meeting row");
    sqlx::query("INSERT OR REPLACE INTO voice_bridges (voice_bridge, meeting_id) VALUES (?1, ?2)")
        .bind(voice_bridge)
        .bind(id)
        .execute(&mut *tx)
        .await
        .expect("voice bridge row");
    tx.commit().await.expect("commit");
}

/// Brings the expiry of meeting `id` `age` closer.
pub async fn age_meeting_sqlite(store: &SqliteStore, id: &str, age: Duration) {
    let done = sqlx::query("UPDATE meetings SET expires_at = expires_at - ?2 WHERE id = ?1 AND expires_at IS NOT NULL")
        .bind(id)
        .bind(millis(age))
        .execute(store.pool())
        .await
        .expect("age meeting");
    assert_eq!(done.rows_affected(), 1, "meeting {id} has no expiry to bring closer");
}

/// Lets meeting `id` expire now (the row stays until pruned, as an expired
/// Redis key leaves its set member).
pub async fn expire_meeting_sqlite(store: &SqliteStore, id: &str) {
    let done = sqlx::query("UPDATE meetings SET expires_at = ?2 WHERE id = ?1")
        .bind(id)
        .bind(now_ms() - 1)
        .execute(store.pool())
        .await
        .expect("expire meeting");
    assert_eq!(done.rows_affected(), 1, "no meeting {id}");
}

/// The time to live of the live row of `table` whose `column` is `value`.
pub async fn ttl_sqlite(store: &SqliteStore, table: &str, column: &str, value: &str) -> Option<Duration> {
    let sql = format!("SELECT expires_at FROM {table} WHERE {column} = ?1");
    let expires: Option<i64> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(value).fetch_optional(store.pool()).await.expect("expiry");
    let left = expires? - now_ms();
    u64::try_from(left).ok().filter(|ms| *ms > 0).map(Duration::from_millis)
}
