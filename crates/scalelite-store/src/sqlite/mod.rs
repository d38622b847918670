//! The embedded backend: [`Store`] on one SQLite file, so a single host runs
//! `scalelite-api` without Redis (and without PostgreSQL once recordings
//! follow).
//!
//! Every method behaves as its Redis counterpart (the Lua scripts in
//! `redis/lua` are the reference). Operations that write run in one
//! `BEGIN IMMEDIATE` transaction, so placement, join routing, poll saves
//! fenced by the lease and prune stay atomic across processes sharing the
//! file (the api and `scalelite-admin`). The database is opened in WAL mode
//! with a busy timeout, so readers never block and writers queue.
//!
//! # Schema
//!
//! Created at [`SqliteStore::open`] by embedded migrations; `PRAGMA
//! user_version` counts the migrations applied. Times are epoch
//! milliseconds. A row whose `expires_at` is past is absent for every read
//! (Redis' key expiry) and is deleted lazily by the next write that meets it
//! or by [`PollerStore::prune`].
//!
//! - `servers`: one row per server, the `server:<id>` hash and the set
//!   memberships Scalelite derives state from: `in_enabled_set`
//!   (`server_enabled`), `load` (the score in `server_load`, NULL when not in
//!   the placement pool) and `cordoned_load` (`cordoned_server_load`), plus
//!   the poller's `healthy_counter`/`unhealthy_counter` (Redis keeps those in
//!   a separate hash that survives deleting the server; here they go with
//!   the row).
//! - `meetings`: `meeting:<id>` (`server_id`, `moderator_pw`,
//!   `voice_bridge`, `tenant_id` with `''` for none) and `expires_at`. No
//!   foreign key to `servers`: a meeting outlives its server's record, as in
//!   Scalelite.
//! - `voice_bridges`: the `voice_bridges` hash, pin → meeting id. Entries may
//!   outlive their meeting; [`PollerStore::prune`] removes such orphans two rounds
//!   in a row, as the Redis store does.
//! - `leases`: named leases (`token`, `expires_at`).
//! - `recording_ready_urls`, `playback_tokens`, `analytics_callbacks`: the
//!   short-lived keys, each with `expires_at`.
//! - `tenants` (`lrs` holds the set LRS/Keycloak fields as a JSON object),
//!   `tenant_names` (the `tenant_name:<name>` index: last writer wins, names
//!   are not unique) and `tenant_settings`. Settings are not tied to an
//!   existing tenant and stay when it is deleted, as in Scalelite; a setting
//!   id is unique across tenants.
//! - `health_check`: one row written and read back by
//!   [`Store::health_check`].
//!
//! Version 2 adds the recording tables of [`crate::RecordingStore`]
//! (`recordings`, `metadata`, `playback_formats`, `thumbnails`,
//! `callback_data`, `recording_imports`, `recording_ready_deliveries`), the
//! columns of Scalelite's PostgreSQL schema with times as epoch milliseconds
//! (see the `recordings` submodule).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use scalelite_core::selection::{Candidate, Selection, select};
use scalelite_core::{MeetingId, Secret, ServerId, TenantId};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use crate::model::{
    AnalyticsCallback, JoinRoute, Meeting, MeetingRecord, MeetingRoute, NewServer, Placement, PlacementRequest,
    PollResult, PollSave, PollSaved, Pruned, Server, ServerStats, ServerUpdate, Transition,
};
use crate::tenants::{LRS_FIELDS, Tenant, TenantRecord, TenantSetting, TenantUpdate};
use crate::{KeyStore, Lease, LeaseStore, MeetingStore, PollerStore, ServerStore, Store, StoreError, TenantStore};

/// How long a statement waits for another writer before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Read-only connections per process.
const READERS: u32 = 4;

mod recordings;

/// The schema, one entry per version (`PRAGMA user_version` = entries applied).
const MIGRATIONS: &[&str] = &[SCHEMA_V1, recordings::SCHEMA];

/// Servers, meetings, leases, short-lived keys and tenants.
const SCHEMA_V1: &str = "
CREATE TABLE servers (
    id TEXT PRIMARY KEY NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    tag TEXT,
    load_multiplier TEXT,
    online INTEGER NOT NULL DEFAULT 0,
    state TEXT,
    in_enabled_set INTEGER NOT NULL DEFAULT 0,
    load REAL,
    cordoned_load REAL,
    meetings INTEGER,
    users INTEGER,
    largest_meeting INTEGER,
    videos INTEGER,
    bbb_version TEXT,
    healthy_counter INTEGER NOT NULL DEFAULT 0,
    unhealthy_counter INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX servers_pool ON servers (load, id) WHERE load IS NOT NULL;
CREATE TABLE meetings (
    id TEXT PRIMARY KEY NOT NULL,
    server_id TEXT NOT NULL,
    moderator_pw TEXT NOT NULL,
    voice_bridge TEXT NOT NULL,
    tenant_id TEXT NOT NULL DEFAULT '',
    expires_at INTEGER
) STRICT;
CREATE INDEX meetings_expiry ON meetings (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE voice_bridges (
    voice_bridge TEXT PRIMARY KEY NOT NULL,
    meeting_id TEXT NOT NULL
) STRICT;
CREATE TABLE leases (
    name TEXT PRIMARY KEY NOT NULL,
    token TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE TABLE recording_ready_urls (
    meeting_id TEXT PRIMARY KEY NOT NULL,
    url TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE TABLE playback_tokens (
    token TEXT PRIMARY KEY NOT NULL,
    payload TEXT NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE TABLE analytics_callbacks (
    meeting_id TEXT PRIMARY KEY NOT NULL,
    url TEXT NOT NULL,
    tenant_id TEXT,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE TABLE tenants (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    secrets TEXT NOT NULL,
    lrs TEXT NOT NULL DEFAULT '{}'
) STRICT;
CREATE TABLE tenant_names (
    name TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL
) STRICT;
CREATE TABLE tenant_settings (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL,
    param TEXT NOT NULL,
    value TEXT NOT NULL,
    override_flag TEXT NOT NULL
) STRICT;
CREATE INDEX tenant_settings_tenant ON tenant_settings (tenant_id);
CREATE TABLE health_check (
    id INTEGER PRIMARY KEY NOT NULL,
    checked_at INTEGER NOT NULL
) STRICT;
";

macro_rules! server_columns {
    () => {
        "id, url, secret, tag, load_multiplier, online, state, in_enabled_set, load, cordoned_load, meetings, users, \
         largest_meeting, videos, bbb_version"
    };
    // The same columns of the table aliased `s`.
    (s) => {
        "s.id, s.url, s.secret, s.tag, s.load_multiplier, s.online, s.state, s.in_enabled_set, s.load, \
         s.cordoned_load, s.meetings, s.users, s.largest_meeting, s.videos, s.bbb_version"
    };
}

macro_rules! meeting_columns {
    () => {
        "id, server_id, moderator_pw, voice_bridge, tenant_id, expires_at"
    };
}

/// Live rows only (`?2` is now).
macro_rules! live {
    () => {
        "(expires_at IS NULL OR expires_at > ?2)"
    };
}

/// [`Store`] on an SQLite file.
///
/// Cheap to clone: clones share the connection pools.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// Read-only connections.
    readers: SqlitePool,
    /// The one connection this process writes with.
    writer: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, in WAL mode with a
    /// busy timeout and foreign keys on, and brings its schema up to date.
    ///
    /// Writes go through one connection, so the writers of this process
    /// queue for it without ever meeting SQLite's busy handler (which sleeps
    /// whole milliseconds between retries); reads run on read-only
    /// connections beside it, never blocked in WAL mode. Another process on
    /// the same file (`scalelite-admin`) still waits on the busy timeout.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // A local file has no connection to lose: no ping before each use.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(options.clone())
            .await
            .map_err(sq)?;
        migrate(&writer).await.map_err(sq)?;
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS)
            .test_before_acquire(false)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(options.create_if_missing(false).read_only(true))
            .await
            .map_err(sq)?;
        Ok(Self { readers, writer })
    }

    /// Writes a consistent copy of the database to `target` (which must not
    /// exist) while the database stays in use (`VACUUM INTO`).
    pub async fn backup_to(&self, target: &Path) -> Result<(), StoreError> {
        let target = target
            .to_str()
            .ok_or_else(|| StoreError::Unexpected(format!("{} is not a UTF-8 path", target.display())))?;
        sqlx::query("VACUUM INTO ?1").bind(target).execute(&self.readers).await.map_err(sq)?;
        Ok(())
    }

    /// The connection that may write (statements outside the [`Store`]
    /// traits: tests seeding records, maintenance).
    pub fn pool(&self) -> &SqlitePool {
        &self.writer
    }

    /// A write transaction: takes the database's write lock up front, so it
    /// never has to upgrade a read lock (which could fail with `SQLITE_BUSY`).
    async fn write(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(sq)
    }

    /// A read transaction: one consistent snapshot for several statements.
    async fn read(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.readers.begin().await.map_err(sq)
    }

    async fn read_tenants(&self, filter: TenantFilter<'_>) -> Result<Vec<TenantRecord>, StoreError> {
        let mut tx = self.read().await?;
        let rows = match filter {
            TenantFilter::All => {
                sqlx::query("SELECT id, name, secrets, lrs FROM tenants ORDER BY id").fetch_all(&mut *tx)
            }
            TenantFilter::Id(id) => {
                sqlx::query("SELECT id, name, secrets, lrs FROM tenants WHERE id = ?1").bind(id).fetch_all(&mut *tx)
            }
            TenantFilter::Name(name) => sqlx::query(
                "SELECT t.id, t.name, t.secrets, t.lrs FROM tenant_names n JOIN tenants t ON t.id = n.tenant_id \
                 WHERE n.name = ?1",
            )
            .bind(name)
            .fetch_all(&mut *tx),
        }
        .await
        .map_err(sq)?;
        let mut records = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get("id").map_err(sq)?;
            let lrs_json: String = row.try_get("lrs").map_err(sq)?;
            let lrs = parse_lrs(&lrs_json)?;
            let tenant = Tenant {
                id: TenantId::new(id.clone()),
                name: row.try_get("name").map_err(sq)?,
                secrets: row.try_get("secrets").map_err(sq)?,
                lrs: LRS_FIELDS.iter().filter_map(|f| lrs.get(*f).map(|v| ((*f).to_owned(), v.clone()))).collect(),
            };
            let settings = sqlx::query(
                "SELECT id, tenant_id, param, value, override_flag FROM tenant_settings WHERE tenant_id = ?1 \
                 ORDER BY id",
            )
            .bind(&id)
            .fetch_all(&mut *tx)
            .await
            .map_err(sq)?
            .iter()
            .map(setting_of)
            .collect::<Result<_, _>>()
            .map_err(sq)?;
            records.push(TenantRecord { tenant, settings });
        }
        tx.commit().await.map_err(sq)?;
        Ok(records)
    }

    async fn lease_op(&self, lease: &Lease, op: LeaseOp, ttl: Duration) -> Result<bool, StoreError> {
        let now = now_ms();
        let expires = now.saturating_add(i64::try_from(ttl.as_millis().max(1)).unwrap_or(i64::MAX));
        let mut tx = self.write().await?;
        let current = lease_token(&mut tx, &lease.name, now).await.map_err(sq)?;
        let ours = current.as_deref() == Some(lease.token.as_str());
        let done = match op {
            LeaseOp::Acquire if current.is_none() => {
                sqlx::query("INSERT OR REPLACE INTO leases (name, token, expires_at) VALUES (?1, ?2, ?3)")
                    .bind(&lease.name)
                    .bind(&lease.token)
                    .bind(expires)
                    .execute(&mut *tx)
                    .await
                    .map_err(sq)?;
                true
            }
            LeaseOp::Acquire | LeaseOp::Renew if ours => {
                sqlx::query("UPDATE leases SET expires_at = ?2 WHERE name = ?1")
                    .bind(&lease.name)
                    .bind(expires)
                    .execute(&mut *tx)
                    .await
                    .map_err(sq)?;
                true
            }
            LeaseOp::Release if ours => {
                sqlx::query("DELETE FROM leases WHERE name = ?1")
                    .bind(&lease.name)
                    .execute(&mut *tx)
                    .await
                    .map_err(sq)?;
                true
            }
            _ => false,
        };
        tx.commit().await.map_err(sq)?;
        Ok(done)
    }
}

#[derive(Clone, Copy)]
enum TenantFilter<'a> {
    All,
    Id(&'a str),
    Name(&'a str),
}

#[derive(Clone, Copy)]
enum LeaseOp {
    Acquire,
    Renew,
    Release,
}

async fn migrate(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let version: i64 = sqlx::query_scalar("PRAGMA user_version").fetch_one(&mut *tx).await?;
    let applied = usize::try_from(version).unwrap_or(0);
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        sqlx::raw_sql(*sql).execute(&mut *tx).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PRAGMA user_version = {}", index + 1))).execute(&mut *tx).await?;
    }
    tx.commit().await
}

fn sq(e: sqlx::Error) -> StoreError {
    StoreError::Sqlite(e)
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// When a key set now with `ttl` expires (whole seconds, at least one, as
/// Redis' `EX`).
fn expiry(now: i64, ttl: Duration) -> i64 {
    let secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX / 1000);
    now.saturating_add(secs.saturating_mul(1000))
}

fn tenant_str(tenant: Option<&TenantId>) -> &str {
    tenant.map_or("", TenantId::as_str)
}

/// Whether `meeting` is hidden from `tenant` (no check when it is blank).
fn hidden_from(meeting: &Meeting, tenant: &str) -> bool {
    !tenant.is_empty() && tenant_str(meeting.tenant_id.as_ref()) != tenant
}

fn parse_lrs(json: &str) -> Result<HashMap<String, String>, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Unexpected(format!("tenant lrs fields: {e}")))
}

fn count(value: Option<i64>) -> Option<u64> {
    value.and_then(|n| u64::try_from(n).ok())
}

fn server_of(row: &SqliteRow, with_load: bool) -> Result<Server, sqlx::Error> {
    let state: Option<String> = row.try_get::<Option<String>, _>("state")?.filter(|s| !s.is_empty());
    let in_enabled_set = row.try_get::<i64, _>("in_enabled_set")? != 0;
    let load = if with_load {
        match state.as_deref() {
            Some("cordoned") => row.try_get("cordoned_load")?,
            Some("disabled") => None,
            Some(_) => row.try_get("load")?,
            None if in_enabled_set => row.try_get("load")?,
            None => None,
        }
    } else {
        None
    };
    Ok(Server {
        id: ServerId::new(row.try_get::<String, _>("id")?),
        url: row.try_get("url")?,
        secret: Secret::new(row.try_get::<String, _>("secret")?),
        tag: row.try_get::<Option<String>, _>("tag")?.filter(|t| !t.is_empty()),
        online: row.try_get::<i64, _>("online")? != 0,
        state,
        in_enabled_set,
        load_multiplier: row.try_get::<Option<String>, _>("load_multiplier")?.filter(|m| !m.is_empty()),
        load,
        stats: ServerStats {
            meetings: count(row.try_get("meetings")?),
            users: count(row.try_get("users")?),
            largest_meeting: count(row.try_get("largest_meeting")?),
            videos: count(row.try_get("videos")?),
        },
        bbb_version: row.try_get("bbb_version")?,
    })
}

fn meeting_of(row: &SqliteRow) -> Result<Meeting, sqlx::Error> {
    Ok(Meeting {
        id: MeetingId::new(row.try_get::<String, _>("id")?),
        server_id: ServerId::new(row.try_get::<String, _>("server_id")?),
        moderator_pw: row.try_get("moderator_pw")?,
        voice_bridge: row.try_get("voice_bridge")?,
        tenant_id: row.try_get::<String, _>("tenant_id").map(|t| (!t.is_empty()).then(|| TenantId::new(t)))?,
    })
}

fn setting_of(row: &SqliteRow) -> Result<TenantSetting, sqlx::Error> {
    Ok(TenantSetting {
        id: row.try_get("id")?,
        tenant_id: TenantId::new(row.try_get::<String, _>("tenant_id")?),
        param: row.try_get("param")?,
        value: row.try_get("value")?,
        override_flag: row.try_get("override_flag")?,
    })
}

/// One server (its load left out, as a route carries it in Redis too).
async fn read_server(conn: &mut SqliteConnection, id: &str, with_load: bool) -> Result<Option<Server>, sqlx::Error> {
    sqlx::query(concat!("SELECT ", server_columns!(), " FROM servers WHERE id = ?1"))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| server_of(&row, with_load))
        .transpose()
}

/// A meeting whose record has not expired.
async fn live_meeting(conn: &mut SqliteConnection, id: &str, now: i64) -> Result<Option<Meeting>, sqlx::Error> {
    sqlx::query(concat!("SELECT ", meeting_columns!(), " FROM meetings WHERE id = ?1 AND ", live!()))
        .bind(id)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?
        .map(|row| meeting_of(&row))
        .transpose()
}

async fn route_of(conn: &mut SqliteConnection, meeting: Meeting) -> Result<MeetingRoute, sqlx::Error> {
    let server = read_server(conn, meeting.server_id.as_str(), false).await?;
    Ok(MeetingRoute { meeting, server })
}

async fn lease_token(conn: &mut SqliteConnection, name: &str, now: i64) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT token FROM leases WHERE name = ?1 AND expires_at > ?2")
        .bind(name)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await
}

/// The columns of a server that state changes and polls rewrite.
struct ServerRow {
    online: bool,
    state: Option<String>,
    in_enabled_set: bool,
    load: Option<f64>,
    cordoned_load: Option<f64>,
    stats: [Option<i64>; 4],
    bbb_version: Option<String>,
    healthy: i64,
    unhealthy: i64,
}

impl ServerRow {
    async fn read(conn: &mut SqliteConnection, id: &str) -> Result<Option<Self>, sqlx::Error> {
        let row = sqlx::query(
            "SELECT online, state, in_enabled_set, load, cordoned_load, meetings, users, largest_meeting, videos, \
             bbb_version, healthy_counter, unhealthy_counter FROM servers WHERE id = ?1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(Self {
            online: row.try_get::<i64, _>("online")? != 0,
            state: row.try_get::<Option<String>, _>("state")?.filter(|s| !s.is_empty()),
            in_enabled_set: row.try_get::<i64, _>("in_enabled_set")? != 0,
            load: row.try_get("load")?,
            cordoned_load: row.try_get("cordoned_load")?,
            stats: [
                row.try_get("meetings")?,
                row.try_get("users")?,
                row.try_get("largest_meeting")?,
                row.try_get("videos")?,
            ],
            bbb_version: row.try_get("bbb_version")?,
            healthy: row.try_get("healthy_counter")?,
            unhealthy: row.try_get("unhealthy_counter")?,
        }))
    }

    async fn write(&self, conn: &mut SqliteConnection, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE servers SET online = ?2, state = ?3, in_enabled_set = ?4, load = ?5, cordoned_load = ?6, \
             meetings = ?7, users = ?8, largest_meeting = ?9, videos = ?10, bbb_version = ?11, \
             healthy_counter = ?12, unhealthy_counter = ?13 WHERE id = ?1",
        )
        .bind(id)
        .bind(i64::from(self.online))
        .bind(&self.state)
        .bind(i64::from(self.in_enabled_set))
        .bind(self.load)
        .bind(self.cordoned_load)
        .bind(self.stats[0])
        .bind(self.stats[1])
        .bind(self.stats[2])
        .bind(self.stats[3])
        .bind(&self.bbb_version)
        .bind(self.healthy)
        .bind(self.unhealthy)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// The load Scalelite's `Server.find` reads for the current state.
    fn visible_load(&self) -> Option<f64> {
        match self.state.as_deref() {
            Some("cordoned") => self.cordoned_load,
            Some("disabled") => None,
            Some(_) => self.load,
            None if self.in_enabled_set => self.load,
            None => None,
        }
    }

    /// The state bookkeeping of Scalelite's `Server#save` (`update_server.lua`).
    fn set_state(&mut self, new: &str) {
        if self.state.as_deref() == Some(new) {
            return;
        }
        let mut load = self.visible_load();
        self.state = Some(new.to_owned());
        match new {
            "enabled" => {
                load = load.or(self.cordoned_load);
                self.in_enabled_set = true;
                if load.is_some() {
                    self.load = load;
                }
                self.cordoned_load = None;
            }
            "cordoned" => {
                load = load.or(self.load);
                if load.is_some() {
                    self.cordoned_load = load;
                }
                self.load = None;
                self.in_enabled_set = false;
            }
            _ => {
                self.in_enabled_set = false;
                self.load = None;
                self.cordoned_load = None;
            }
        }
    }

    /// Applies a poll result with the health hysteresis (`poll_save.lua`).
    fn apply_poll(&mut self, save: &PollSave) -> Option<Transition> {
        if let Some(version) = &save.bbb_version {
            self.bbb_version = Some(version.clone());
        }
        let PollResult::Reachable { load, stats } = &save.result else {
            self.healthy = 0;
            if !self.online {
                return None;
            }
            self.unhealthy += 1;
            if self.unhealthy < i64::from(save.unhealthy_threshold) {
                return None;
            }
            self.healthy = 0;
            self.unhealthy = 0;
            self.online = false;
            self.stats = [Some(0); 4];
            self.load = None;
            self.cordoned_load = None;
            return Some(Transition::WentOffline);
        };
        self.unhealthy = 0;
        let mut transition = None;
        if !self.online {
            self.healthy += 1;
            if self.healthy < i64::from(save.healthy_threshold) {
                return None;
            }
            self.healthy = 0;
            self.unhealthy = 0;
            self.online = true;
            transition = Some(Transition::CameOnline);
        }
        if self.state.as_deref() == Some("cordoned") && *load == 0.0 {
            self.state = Some("disabled".to_owned());
            self.in_enabled_set = false;
            self.load = None;
            self.cordoned_load = None;
            transition.get_or_insert(Transition::Drained);
        }
        let number = |n: u64| Some(i64::try_from(n).unwrap_or(i64::MAX));
        self.stats = [number(stats.meetings), number(stats.users), number(stats.largest_meeting), number(stats.videos)];
        match self.state.as_deref() {
            Some("cordoned") => self.cordoned_load = Some(*load),
            Some("disabled") => {}
            Some(_) => self.load = Some(*load),
            None if self.in_enabled_set => self.load = Some(*load),
            None => {}
        }
        transition
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn health_check(&self) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.write().await?;
        sqlx::query("INSERT OR REPLACE INTO health_check (id, checked_at) VALUES (1, ?1)")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(sq)?;
        let read: Option<i64> = sqlx::query_scalar("SELECT checked_at FROM health_check WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await
            .map_err(sq)?;
        tx.commit().await.map_err(sq)?;
        match read {
            Some(value) if value == now => Ok(()),
            other => Err(StoreError::Unexpected(format!("health check row read back as {other:?}"))),
        }
    }
}

#[async_trait]
impl MeetingStore for SqliteStore {
    async fn find_meeting(
        &self,
        id: &MeetingId,
        tenant: Option<&TenantId>,
    ) -> Result<Option<MeetingRoute>, StoreError> {
        let mut tx = self.read().await?;
        let Some(meeting) = live_meeting(&mut tx, id.as_str(), now_ms()).await.map_err(sq)? else {
            return Ok(None);
        };
        if hidden_from(&meeting, tenant_str(tenant)) {
            return Ok(None);
        }
        let route = route_of(&mut tx, meeting).await.map_err(sq)?;
        tx.commit().await.map_err(sq)?;
        Ok(Some(route))
    }

    async fn route_join(&self, id: &MeetingId, tenant: Option<&TenantId>) -> Result<JoinRoute, StoreError> {
        // The hot path: one read of the meeting with its server on a reader,
        // then one statement on the writer (each statement is a hop to the
        // connection's thread; a transaction would add three). The load is
        // only added while the server is in the pool (`load IS NOT NULL`),
        // as the Redis script adds it only to a `server_load` member.
        let row = sqlx::query(concat!(
            "SELECT m.tenant_id AS meeting_tenant_id, ",
            server_columns!(s),
            " FROM meetings m JOIN servers s ON s.id = m.server_id \
             WHERE m.id = ?1 AND (m.expires_at IS NULL OR m.expires_at > ?2)"
        ))
        .bind(id.as_str())
        .bind(now_ms())
        .fetch_optional(&self.readers)
        .await
        .map_err(sq)?;
        let Some(row) = row else { return Ok(JoinRoute::NotFound) };
        let meeting_tenant: String = row.try_get("meeting_tenant_id").map_err(sq)?;
        let tenant = tenant_str(tenant);
        if !tenant.is_empty() && meeting_tenant != tenant {
            return Ok(JoinRoute::NotFound);
        }
        let server = server_of(&row, false).map_err(sq)?;
        if !server.online || server.is_disabled() {
            return Ok(JoinRoute::Unavailable);
        }
        sqlx::query("UPDATE servers SET load = load + ?2 WHERE id = ?1 AND load IS NOT NULL")
            .bind(server.id.as_str())
            .bind(server.multiplier())
            .execute(&self.writer)
            .await
            .map_err(sq)?;
        Ok(JoinRoute::Ready { url: server.url, secret: server.secret })
    }

    async fn place_meeting(&self, request: &PlacementRequest) -> Result<Placement, StoreError> {
        let now = now_ms();
        let id = request.meeting_id.as_str();
        let tenant = tenant_str(request.tenant_id.as_ref());
        let mut tx = self.write().await?;
        if let Some(meeting) = live_meeting(&mut tx, id, now).await.map_err(sq)? {
            // A tenant never takes over another tenant's meeting, nor one
            // stored without tenant.
            if !tenant.is_empty() && tenant_str(meeting.tenant_id.as_ref()) != tenant {
                return Ok(Placement::TenantConflict);
            }
            let route = route_of(&mut tx, meeting).await.map_err(sq)?;
            tx.commit().await.map_err(sq)?;
            return Ok(Placement::Existing(route));
        }

        // The pool in `ZRANGE server_load` order: load, then id.
        let pool: Vec<(String, f64, Option<String>)> =
            sqlx::query_as("SELECT id, load, tag FROM servers WHERE load IS NOT NULL ORDER BY load, id")
                .fetch_all(&mut *tx)
                .await
                .map_err(sq)?;
        let candidates: Vec<Candidate<'_>> = pool
            .iter()
            .map(|(id, load, tag)| Candidate {
                id,
                load: *load,
                tag: tag.as_deref().filter(|t| !t.is_empty()),
                exists: true,
            })
            .collect();
        let chosen = match select(&candidates, &request.tags) {
            Selection::Chosen(index) => candidates[index].id.to_owned(),
            Selection::NoServer => return Ok(Placement::NoServer),
            Selection::TagUnavailable => return Ok(Placement::TagUnavailable),
        };

        // Voice bridge: the first candidate that is free or already ours.
        let mut voice_bridge = None;
        for candidate in &request.voice_bridges {
            let owner: Option<String> =
                sqlx::query_scalar("SELECT meeting_id FROM voice_bridges WHERE voice_bridge = ?1")
                    .bind(candidate)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(sq)?;
            match owner {
                None => {
                    sqlx::query("INSERT INTO voice_bridges (voice_bridge, meeting_id) VALUES (?1, ?2)")
                        .bind(candidate)
                        .bind(id)
                        .execute(&mut *tx)
                        .await
                        .map_err(sq)?;
                    voice_bridge = Some(candidate.clone());
                    break;
                }
                Some(owner) if owner == id => {
                    voice_bridge = Some(candidate.clone());
                    break;
                }
                Some(_) => {}
            }
        }
        let Some(voice_bridge) = voice_bridge else {
            return Ok(Placement::VoiceBridgesExhausted);
        };

        sqlx::query(
            "INSERT OR REPLACE INTO meetings (id, server_id, moderator_pw, voice_bridge, tenant_id, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .bind(id)
        .bind(&chosen)
        .bind(&request.moderator_pw)
        .bind(&voice_bridge)
        .bind(tenant)
        .bind(expiry(now, request.ttl))
        .execute(&mut *tx)
        .await
        .map_err(sq)?;
        let server = read_server(&mut tx, &chosen, false)
            .await
            .map_err(sq)?
            .ok_or_else(|| StoreError::Unexpected(format!("chosen server {chosen} has no record")))?;
        let reserve = f64::from(request.reserve_users) * server.multiplier();
        if reserve > 0.0 {
            sqlx::query("UPDATE servers SET load = load + ?2 WHERE id = ?1 AND load IS NOT NULL")
                .bind(&chosen)
                .bind(reserve)
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
        }
        tx.commit().await.map_err(sq)?;
        let meeting = Meeting {
            id: request.meeting_id.clone(),
            server_id: server.id.clone(),
            moderator_pw: request.moderator_pw.clone(),
            voice_bridge,
            tenant_id: request.tenant_id.clone().filter(|t| !t.as_str().is_empty()),
        };
        Ok(Placement::Placed { meeting, server })
    }

    async fn delete_meeting(&self, id: &MeetingId, only_on: Option<&ServerId>) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let Some(meeting) = live_meeting(&mut tx, id.as_str(), now_ms()).await.map_err(sq)? else {
            // An expired record goes now (its voice bridge is prune's).
            sqlx::query("DELETE FROM meetings WHERE id = ?1").bind(id.as_str()).execute(&mut *tx).await.map_err(sq)?;
            tx.commit().await.map_err(sq)?;
            return Ok(false);
        };
        if only_on.is_some_and(|expected| *expected != meeting.server_id) {
            return Ok(false);
        }
        sqlx::query("DELETE FROM meetings WHERE id = ?1").bind(id.as_str()).execute(&mut *tx).await.map_err(sq)?;
        if !meeting.voice_bridge.is_empty() {
            sqlx::query("DELETE FROM voice_bridges WHERE voice_bridge = ?1 AND meeting_id = ?2")
                .bind(&meeting.voice_bridge)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
        }
        tx.commit().await.map_err(sq)?;
        Ok(true)
    }

    async fn find_meeting_by_voice_bridge(&self, pin: &str) -> Result<Option<MeetingRoute>, StoreError> {
        let mut tx = self.read().await?;
        let owner: Option<String> = sqlx::query_scalar("SELECT meeting_id FROM voice_bridges WHERE voice_bridge = ?1")
            .bind(pin)
            .fetch_optional(&mut *tx)
            .await
            .map_err(sq)?;
        let Some(owner) = owner else {
            return Ok(None);
        };
        let Some(meeting) = live_meeting(&mut tx, &owner, now_ms()).await.map_err(sq)? else {
            return Ok(None);
        };
        if meeting.voice_bridge != pin || meeting.server_id.as_str().is_empty() {
            return Ok(None);
        }
        let route = route_of(&mut tx, meeting).await.map_err(sq)?;
        tx.commit().await.map_err(sq)?;
        Ok(Some(route))
    }

    async fn meetings(&self) -> Result<Vec<MeetingRecord>, StoreError> {
        let now = now_ms();
        let rows = sqlx::query(concat!(
            "SELECT ",
            meeting_columns!(),
            " FROM meetings WHERE expires_at IS NULL OR expires_at > ?1 ORDER BY id"
        ))
        .bind(now)
        .fetch_all(&self.readers)
        .await
        .map_err(sq)?;
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            let meeting = meeting_of(row).map_err(sq)?;
            let expires: Option<i64> = row.try_get("expires_at").map_err(sq)?;
            let ttl = expires.map(|at| Duration::from_millis(u64::try_from(at - now).unwrap_or(0)));
            records.push(MeetingRecord { meeting, ttl });
        }
        Ok(records)
    }
}

#[async_trait]
impl ServerStore for SqliteStore {
    async fn servers(&self) -> Result<Vec<Server>, StoreError> {
        let rows = sqlx::query(concat!("SELECT ", server_columns!(), " FROM servers ORDER BY id"))
            .fetch_all(&self.readers)
            .await
            .map_err(sq)?;
        rows.iter().map(|row| server_of(row, true)).collect::<Result<_, _>>().map_err(sq)
    }

    async fn server(&self, id: &ServerId) -> Result<Option<Server>, StoreError> {
        let mut conn = self.readers.acquire().await.map_err(sq)?;
        read_server(&mut conn, id.as_str(), true).await.map_err(sq)
    }

    async fn create_server(&self, server: &NewServer) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM servers WHERE id = ?1")
            .bind(server.id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(sq)?;
        if exists.is_some() {
            return Err(StoreError::Conflict(format!("Server already exists with id '{}'", server.id)));
        }
        sqlx::query(
            "INSERT INTO servers (id, url, secret, tag, load_multiplier, online) VALUES (?1, ?2, ?3, ?4, ?5, 0)",
        )
        .bind(server.id.as_str())
        .bind(&server.url)
        .bind(server.secret.expose())
        .bind(server.tag.as_deref().filter(|t| !t.is_empty()))
        .bind(server.load_multiplier.as_deref().filter(|m| !m.is_empty()))
        .execute(&mut *tx)
        .await
        .map_err(sq)?;
        tx.commit().await.map_err(sq)
    }

    async fn update_server(&self, id: &ServerId, update: &ServerUpdate) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let Some(mut row) = ServerRow::read(&mut tx, id.as_str()).await.map_err(sq)? else {
            return Err(StoreError::NotFound(format!("Couldn't find Server with id={id}")));
        };
        if let Some(url) = &update.url {
            sqlx::query("UPDATE servers SET url = ?2 WHERE id = ?1")
                .bind(id.as_str())
                .bind(url)
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
        }
        if let Some(secret) = &update.secret {
            sqlx::query("UPDATE servers SET secret = ?2 WHERE id = ?1")
                .bind(id.as_str())
                .bind(secret.expose())
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
        }
        if let Some(multiplier) = &update.load_multiplier {
            sqlx::query("UPDATE servers SET load_multiplier = ?2 WHERE id = ?1")
                .bind(id.as_str())
                .bind(multiplier)
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
        }
        if let Some(tag) = &update.tag {
            sqlx::query("UPDATE servers SET tag = ?2 WHERE id = ?1")
                .bind(id.as_str())
                .bind(tag.as_deref())
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
        }
        if let Some(state) = update.state {
            row.set_state(state.as_str());
            row.write(&mut tx, id.as_str()).await.map_err(sq)?;
        }
        tx.commit().await.map_err(sq)
    }

    async fn delete_server(&self, id: &ServerId) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let deleted =
            sqlx::query("DELETE FROM servers WHERE id = ?1").bind(id.as_str()).execute(&mut *tx).await.map_err(sq)?;
        tx.commit().await.map_err(sq)?;
        Ok(deleted.rows_affected() > 0)
    }
}

#[async_trait]
impl PollerStore for SqliteStore {
    async fn save_poll(&self, lease: &Lease, save: &PollSave) -> Result<PollSaved, StoreError> {
        let mut tx = self.write().await?;
        let holder = lease_token(&mut tx, &lease.name, now_ms()).await.map_err(sq)?;
        if holder.as_deref() != Some(lease.token.as_str()) {
            return Ok(PollSaved::NotLeader);
        }
        let Some(mut row) = ServerRow::read(&mut tx, save.server_id.as_str()).await.map_err(sq)? else {
            return Ok(PollSaved::Gone);
        };
        let transition = row.apply_poll(save);
        row.write(&mut tx, save.server_id.as_str()).await.map_err(sq)?;
        tx.commit().await.map_err(sq)?;
        Ok(PollSaved::Saved { online: row.online, state: row.state, transition })
    }

    async fn prune(&self, previous_orphans: &[String]) -> Result<(Pruned, Vec<String>), StoreError> {
        let now = now_ms();
        let mut tx = self.write().await?;
        let stale = sqlx::query("DELETE FROM meetings WHERE expires_at IS NOT NULL AND expires_at <= ?1")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(sq)?
            .rows_affected();
        for table in ["leases", "recording_ready_urls", "playback_tokens", "analytics_callbacks"] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE expires_at <= ?1")))
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
        }
        // Expired meetings are gone now, so a voice bridge is an orphan when
        // no meeting row holds it.
        const ORPHAN: &str = "SELECT v.voice_bridge FROM voice_bridges v LEFT JOIN meetings m ON m.id = v.meeting_id \
                              WHERE m.voice_bridge IS NOT v.voice_bridge";
        let mut removed = 0;
        for vb in previous_orphans {
            let orphan: Option<String> = sqlx::query_scalar(concat!(
                "SELECT v.voice_bridge FROM voice_bridges v LEFT JOIN meetings m ON m.id = v.meeting_id ",
                "WHERE m.voice_bridge IS NOT v.voice_bridge AND v.voice_bridge = ?1"
            ))
            .bind(vb)
            .fetch_optional(&mut *tx)
            .await
            .map_err(sq)?;
            if orphan.is_some() {
                sqlx::query("DELETE FROM voice_bridges WHERE voice_bridge = ?1")
                    .bind(vb)
                    .execute(&mut *tx)
                    .await
                    .map_err(sq)?;
                removed += 1;
            }
        }
        let current: Vec<String> = sqlx::query_scalar(ORPHAN).fetch_all(&mut *tx).await.map_err(sq)?;
        tx.commit().await.map_err(sq)?;
        Ok((Pruned { stale_members: stale, orphan_voice_bridges: removed }, current))
    }
}

#[async_trait]
impl LeaseStore for SqliteStore {
    async fn acquire_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, StoreError> {
        self.lease_op(lease, LeaseOp::Acquire, ttl).await
    }

    async fn renew_lease(&self, lease: &Lease, ttl: Duration) -> Result<bool, StoreError> {
        self.lease_op(lease, LeaseOp::Renew, ttl).await
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), StoreError> {
        self.lease_op(lease, LeaseOp::Release, Duration::ZERO).await.map(|_| ())
    }

    async fn lease_holder(&self, name: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.readers.acquire().await.map_err(sq)?;
        lease_token(&mut conn, name, now_ms()).await.map_err(sq)
    }
}

#[async_trait]
impl TenantStore for SqliteStore {
    async fn tenants(&self) -> Result<Vec<TenantRecord>, StoreError> {
        self.read_tenants(TenantFilter::All).await
    }

    async fn tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>, StoreError> {
        Ok(self.read_tenants(TenantFilter::Id(id.as_str())).await?.into_iter().next())
    }

    async fn tenant_by_name(&self, name: &str) -> Result<Option<TenantRecord>, StoreError> {
        Ok(self.read_tenants(TenantFilter::Name(name)).await?.into_iter().next())
    }

    async fn create_tenant(&self, tenant: &Tenant) -> Result<(), StoreError> {
        let lrs: HashMap<&str, &str> = tenant.lrs_fields().collect();
        let lrs = serde_json::to_string(&lrs).map_err(|e| StoreError::Unexpected(e.to_string()))?;
        let mut tx = self.write().await?;
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM tenants WHERE id = ?1")
            .bind(tenant.id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(sq)?;
        if exists.is_some() {
            return Err(StoreError::Conflict(format!("Tenant already exists with id '{}'", tenant.id)));
        }
        sqlx::query("INSERT INTO tenants (id, name, secrets, lrs) VALUES (?1, ?2, ?3, ?4)")
            .bind(tenant.id.as_str())
            .bind(&tenant.name)
            .bind(&tenant.secrets)
            .bind(lrs)
            .execute(&mut *tx)
            .await
            .map_err(sq)?;
        sqlx::query("INSERT OR REPLACE INTO tenant_names (name, tenant_id) VALUES (?1, ?2)")
            .bind(&tenant.name)
            .bind(tenant.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(sq)?;
        tx.commit().await.map_err(sq)
    }

    async fn update_tenant(&self, id: &TenantId, update: &TenantUpdate) -> Result<(), StoreError> {
        let mut tx = self.write().await?;
        let current: Option<(String, String)> = sqlx::query_as("SELECT name, lrs FROM tenants WHERE id = ?1")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(sq)?;
        let Some((old_name, lrs)) = current else {
            return Err(StoreError::NotFound(format!("Couldn't find Tenant with id={id}")));
        };
        if let Some(name) = &update.name {
            if *name != old_name {
                // The old index entry goes, whomever it points to (as Scalelite).
                sqlx::query("DELETE FROM tenant_names WHERE name = ?1")
                    .bind(&old_name)
                    .execute(&mut *tx)
                    .await
                    .map_err(sq)?;
            }
            sqlx::query("INSERT OR REPLACE INTO tenant_names (name, tenant_id) VALUES (?1, ?2)")
                .bind(name)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
            sqlx::query("UPDATE tenants SET name = ?2 WHERE id = ?1")
                .bind(id.as_str())
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
        }
        if let Some(secrets) = &update.secrets {
            sqlx::query("UPDATE tenants SET secrets = ?2 WHERE id = ?1")
                .bind(id.as_str())
                .bind(secrets)
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
        }
        if !update.lrs.is_empty() {
            let mut fields = parse_lrs(&lrs)?;
            fields.extend(update.lrs.iter().cloned());
            let json = serde_json::to_string(&fields).map_err(|e| StoreError::Unexpected(e.to_string()))?;
            sqlx::query("UPDATE tenants SET lrs = ?2 WHERE id = ?1")
                .bind(id.as_str())
                .bind(json)
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
        }
        tx.commit().await.map_err(sq)
    }

    async fn delete_tenant(&self, id: &TenantId) -> Result<bool, StoreError> {
        let mut tx = self.write().await?;
        let name: Option<String> = sqlx::query_scalar("DELETE FROM tenants WHERE id = ?1 RETURNING name")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(sq)?;
        if let Some(name) = &name {
            sqlx::query("DELETE FROM tenant_names WHERE name = ?1").bind(name).execute(&mut *tx).await.map_err(sq)?;
        }
        tx.commit().await.map_err(sq)?;
        Ok(name.is_some())
    }

    async fn create_tenant_setting(&self, setting: &TenantSetting) -> Result<(), StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO tenant_settings (id, tenant_id, param, value, override_flag) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&setting.id)
        .bind(setting.tenant_id.as_str())
        .bind(&setting.param)
        .bind(&setting.value)
        .bind(&setting.override_flag)
        .execute(&self.writer)
        .await
        .map_err(sq)?;
        if inserted.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!("TenantSetting already exists with id '{}'", setting.id)));
        }
        Ok(())
    }

    async fn delete_tenant_setting(&self, id: &str) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM tenant_settings WHERE id = ?1")
            .bind(id)
            .execute(&self.writer)
            .await
            .map_err(sq)?;
        Ok(deleted.rows_affected() > 0)
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn remember_recording_ready_url(
        &self,
        meeting_id: &MeetingId,
        url: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT OR REPLACE INTO recording_ready_urls (meeting_id, url, expires_at) VALUES (?1, ?2, ?3)")
            .bind(meeting_id.as_str())
            .bind(url)
            .bind(expiry(now_ms(), ttl))
            .execute(&self.writer)
            .await
            .map_err(sq)?;
        Ok(())
    }

    async fn recording_ready_url(&self, meeting_id: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT url FROM recording_ready_urls WHERE meeting_id = ?1 AND expires_at > ?2")
            .bind(meeting_id)
            .bind(now_ms())
            .fetch_optional(&self.readers)
            .await
            .map_err(sq)
    }

    async fn create_playback_tokens(&self, tokens: &[(String, String)], ttl: Duration) -> Result<(), StoreError> {
        if tokens.is_empty() {
            return Ok(());
        }
        let expires = expiry(now_ms(), ttl);
        let mut tx = self.write().await?;
        for (token, payload) in tokens {
            sqlx::query("INSERT OR REPLACE INTO playback_tokens (token, payload, expires_at) VALUES (?1, ?2, ?3)")
                .bind(token)
                .bind(payload)
                .bind(expires)
                .execute(&mut *tx)
                .await
                .map_err(sq)?;
        }
        tx.commit().await.map_err(sq)
    }

    async fn consume_playback_token(&self, token: &str) -> Result<Option<String>, StoreError> {
        let taken: Option<(String, i64)> =
            sqlx::query_as("DELETE FROM playback_tokens WHERE token = ?1 RETURNING payload, expires_at")
                .bind(token)
                .fetch_optional(&self.writer)
                .await
                .map_err(sq)?;
        let now = now_ms();
        Ok(taken.filter(|(_, expires)| *expires > now).map(|(payload, _)| payload))
    }

    async fn remember_analytics_callback(
        &self,
        meeting_id: &MeetingId,
        callback: &AnalyticsCallback,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT OR REPLACE INTO analytics_callbacks (meeting_id, url, tenant_id, expires_at) VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(meeting_id.as_str())
        .bind(&callback.url)
        .bind(callback.tenant_id.as_ref().map(TenantId::as_str))
        .bind(expiry(now_ms(), ttl))
        .execute(&self.writer)
        .await
        .map_err(sq)?;
        Ok(())
    }

    async fn analytics_callback(&self, meeting_id: &str) -> Result<Option<AnalyticsCallback>, StoreError> {
        let row: Option<(String, Option<String>)> =
            sqlx::query_as("SELECT url, tenant_id FROM analytics_callbacks WHERE meeting_id = ?1 AND expires_at > ?2")
                .bind(meeting_id)
                .bind(now_ms())
                .fetch_optional(&self.readers)
                .await
                .map_err(sq)?;
        Ok(row.map(|(url, tenant)| AnalyticsCallback {
            url,
            tenant_id: tenant.filter(|t| !t.is_empty()).map(TenantId::new),
        }))
    }
}
