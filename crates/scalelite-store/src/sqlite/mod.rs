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
//! Join routing, placement and deleting a meeting run on a connection
//! thread of their own (`thread`): one message per operation instead of one
//! sqlx round trip per statement, and one commit per group of queued
//! operations.
//!
//! One submodule per part of [`Store`]: `meetings` (with `placement`, the
//! server selection), `servers` (with the state and poll bookkeeping of a
//! server row), `poller` (poll saves, prune and leases), `tenants`, `keys`
//! (the short-lived keys) and `recordings` ([`crate::RecordingStore`]);
//! this module opens the database and holds its schema.
//!
//! # Schema
//!
//! Created at [`SqliteStore::open`] by embedded migrations; `PRAGMA
//! user_version` counts the migrations applied. Times are epoch
//! milliseconds. A row whose `expires_at` is past is absent for every read
//! (Redis' key expiry) and is deleted lazily by the next write that meets it
//! or by [`crate::PollerStore::prune`].
//!
//! - `servers`: one row per server, the `server:<id>` hash and the set
//!   memberships Scalelite derives state from: `in_enabled_set`
//!   (`server_enabled`), `load` (the score in `server_load`, NULL when not in
//!   the placement pool) and `cordoned_load` (`cordoned_server_load`), plus
//!   the poller's `healthy_counter`/`unhealthy_counter` (Redis keeps those in
//!   a separate hash that survives deleting the server; here they go with
//!   the row).
//! - `meetings`: `meeting:<id>` (`server_id`, `moderator_pw`,
//!   `voice_bridge`, `tenant_id` with `''` for none) and `expires_at`
//!   (indexed by tenant since version 6, for per-tenant limits). No
//!   foreign key to `servers`: a meeting outlives its server's record, as in
//!   Scalelite.
//! - `voice_bridges`: the `voice_bridges` hash, pin → meeting id. Entries may
//!   outlive their meeting; [`crate::PollerStore::prune`] removes such orphans two rounds
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
//! (see the `recordings` submodule). Version 3 adds `servers_pool_by_tag`,
//! the pool by tag, load and id, from which a placement reads the least
//! loaded server of each wanted tag instead of the whole pool (see the
//! `placement` submodule). Version 4 adds `server_drains`, the drains with
//! notice (server id → the record as JSON, see the `drains` submodule).
//! Version 5 adds `meeting_creates`, the create parameters kept for
//! re-homing a meeting (the Redis store's `meeting_create:<id>`: `params`,
//! `origin`, `server_id`, `rehomed_from` and the record's `expires_at`; see
//! the `meetings` submodule). Version 6 indexes meetings by tenant and adds
//! `tenant_participants` (per-tenant limits). Version 7 adds `usage_hours` and
//! `usage_accounting`, the usage accounting (see the `usage` submodule).
//! Version 8 adds `servers.region` and `servers.capabilities` (the operator's
//! region and declared capabilities, `;`-joined; see the `placement`
//! submodule).

use std::ops::{Deref, DerefMut};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::{Store, StoreError};

/// How long a statement waits for another writer before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Read-only connections per process.
const READERS: u32 = 4;

/// The schema, one entry per version (`PRAGMA user_version` = entries applied).
const MIGRATIONS: &[&str] = &[
    SCHEMA_V1,
    recordings::SCHEMA,
    placement::SCHEMA,
    drains::SCHEMA,
    meetings::SCHEMA,
    meetings::TENANT_SCHEMA,
    usage::SCHEMA,
    placement::NEEDS_SCHEMA,
];

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
         largest_meeting, videos, bbb_version, region, capabilities"
    };
    // The same columns of the table aliased `s`.
    (s) => {
        "s.id, s.url, s.secret, s.tag, s.load_multiplier, s.online, s.state, s.in_enabled_set, s.load, \
         s.cordoned_load, s.meetings, s.users, s.largest_meeting, s.videos, s.bbb_version, s.region, s.capabilities"
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

mod drains;
mod keys;
mod meetings;
mod placement;
mod poller;
mod recordings;
mod servers;
mod tenants;
mod thread;
mod usage;

use thread::{ConnectionThread, WriteGate};

/// [`Store`] on an SQLite file.
///
/// Cheap to clone: clones share the connection pools and the connection
/// thread.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// Read-only connections.
    readers: SqlitePool,
    /// The sqlx connection this process writes with (everything but the
    /// operations of [`Self::thread`]).
    writer: SqlitePool,
    /// The connection thread: join routing, placement, deleting a meeting.
    thread: ConnectionThread,
    /// Held by whichever of `writer` and `thread` is writing.
    gate: WriteGate,
}

/// A write transaction on the sqlx writer, holding the write gate.
struct WriteTx {
    tx: Transaction<'static, Sqlite>,
    _gate: OwnedMutexGuard<()>,
}

impl WriteTx {
    async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl Deref for WriteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.tx
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

/// The sqlx writer connection, holding the write gate (for statements run
/// outside a transaction).
struct WriterConn {
    conn: PoolConnection<Sqlite>,
    _gate: OwnedMutexGuard<()>,
}

impl Deref for WriterConn {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.conn
    }
}

impl DerefMut for WriterConn {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, in WAL mode with a
    /// busy timeout and foreign keys on, and brings its schema up to date.
    ///
    /// Writes go through two connections: the connection thread (join
    /// routing, placement, deleting a meeting) and one sqlx connection
    /// (everything else). Both take the store's write gate before writing,
    /// so the writers of this process queue in the process without ever
    /// meeting SQLite's busy handler (which sleeps whole milliseconds
    /// between retries); reads run on read-only connections beside them,
    /// never blocked in WAL mode. Another process on the same file
    /// (`scalelite-admin`) still waits on the busy timeout.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
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
        let gate: WriteGate = Arc::new(Mutex::new(()));
        let thread = ConnectionThread::start(path, Arc::clone(&gate))?;
        Ok(Self { readers, writer, thread, gate })
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
    async fn write(&self) -> Result<WriteTx, StoreError> {
        let gate = Arc::clone(&self.gate).lock_owned().await;
        let tx = self.writer.begin_with("BEGIN IMMEDIATE").await.map_err(sq)?;
        Ok(WriteTx { tx, _gate: gate })
    }

    /// The writer connection for one statement outside a transaction.
    async fn writer(&self) -> Result<WriterConn, StoreError> {
        let gate = Arc::clone(&self.gate).lock_owned().await;
        let conn = self.writer.acquire().await.map_err(sq)?;
        Ok(WriterConn { conn, _gate: gate })
    }

    /// A read transaction: one consistent snapshot for several statements.
    async fn read(&self) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.readers.begin().await.map_err(sq)
    }
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
