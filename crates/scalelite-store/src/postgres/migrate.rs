//! Applying the schema, with Rails' own bookkeeping (`schema_migrations`,
//! `ar_internal_metadata`), so Ruby and Rust agree on what is applied.

use sqlx::{Executor, PgPool, Row};

/// One migration: Rails version and SQL.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Version (Rails timestamp), also the file name prefix.
    pub version: &'static str,
    /// Name from the file.
    pub name: &'static str,
    /// SQL (several statements).
    pub sql: &'static str,
}

macro_rules! migrations {
    ($($version:literal $name:literal),* $(,)?) => {
        &[$(Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../migrations/", $version, "_", $name, ".sql")),
        }),*]
    };
}

/// Every migration, oldest first. The first six are Scalelite's.
pub const MIGRATIONS: &[Migration] = migrations![
    "20181123180008" "init",
    "20210425184558" "create_callback_data",
    "20210630205630" "add_protected_to_recordings",
    "20210725200414" "add_publish_updated_to_recordings",
    "20221111194252" "create_tenant_model",
    "20230627141045" "drop_tenants",
    "20261123000001" "recording_query_indexes",
    "20261123000002" "recording_imports",
    "20261123000003" "recording_ready_deliveries",
    "20261206000001" "usage_hours",
];

/// An arbitrary, fixed advisory-lock key so two `db migrate` runs serialise.
const LOCK_KEY: i64 = 0x5ca1_e11e;

/// Applies every migration not yet recorded in `schema_migrations`, each in
/// its own transaction. Returns the versions applied.
pub async fn migrate(pool: &PgPool) -> Result<Vec<&'static str>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)").bind(LOCK_KEY).execute(&mut *conn).await?;
    let result = async {
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version character varying NOT NULL PRIMARY KEY);
             CREATE TABLE IF NOT EXISTS ar_internal_metadata (
                 key character varying NOT NULL PRIMARY KEY,
                 value character varying,
                 created_at timestamp(6) without time zone NOT NULL,
                 updated_at timestamp(6) without time zone NOT NULL);
             INSERT INTO ar_internal_metadata (key, value, created_at, updated_at)
                 VALUES ('environment', 'production', now(), now()) ON CONFLICT (key) DO NOTHING;",
        )
        .await?;
        let applied: Vec<String> = sqlx::query("SELECT version FROM schema_migrations")
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut done = Vec::new();
        for migration in MIGRATIONS.iter().filter(|m| !applied.iter().any(|v| v == m.version)) {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            tx.execute(migration.sql).await?;
            sqlx::query("INSERT INTO schema_migrations (version) VALUES ($1)")
                .bind(migration.version)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            done.push(migration.version);
        }
        Ok(done)
    }
    .await;
    let _ = sqlx::query("SELECT pg_advisory_unlock($1)").bind(LOCK_KEY).execute(&mut *conn).await;
    result
}

/// Versions of known migrations that are not applied yet (also when the
/// bookkeeping table does not exist).
pub async fn pending(pool: &PgPool) -> Result<Vec<&'static str>, sqlx::Error> {
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('schema_migrations') IS NOT NULL").fetch_one(pool).await?;
    let applied: Vec<String> = if exists {
        sqlx::query_scalar("SELECT version FROM schema_migrations").fetch_all(pool).await?
    } else {
        Vec::new()
    };
    Ok(MIGRATIONS.iter().filter(|m| !applied.iter().any(|v| v == m.version)).map(|m| m.version).collect())
}
