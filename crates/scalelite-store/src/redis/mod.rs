//! The Redis backend, on Scalelite's key layout.
//!
//! One submodule per part of [`Store`]: `meetings`, `servers`, `poller`
//! (poll saves, prune and leases), `tenants`, `keys` (the short-lived
//! keys) and `drains`; the Lua scripts they run are in `redis/lua`. This module holds
//! the store, its scripts and the reply decoding they share.

use std::collections::HashMap;
use std::fmt;

use async_trait::async_trait;
use redis::{Script, Value};

use crate::{Store, StoreError};

mod connection;
mod drains;
mod keys;
mod meetings;
mod poller;
mod servers;
mod tenants;

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
    tenant_participants: Script,
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
            tenant_participants: script!("tenant_participants.lua"),
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
    /// `url` is `redis://`, `rediss://` (TLS), `unix://`,
    /// `redis+sentinel://` or `rediss+sentinel://` (the master a set of
    /// Sentinels names; see [`RedisConnection`]). The connection is
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

    /// The store `REDIS_URL`, `REDIS_NAMESPACE`, `REDIS_TIMEOUT` and
    /// `REDIS_CA_FILE` describe.
    pub fn from_config(config: &scalelite_core::config::Config) -> Result<Self, StoreError> {
        let options = RedisOptions { timeout: config.redis_timeout, ca_file: config.redis_ca_file.clone() };
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
