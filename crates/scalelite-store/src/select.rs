//! Opening the stores the configuration selects.

use std::path::Path;
use std::sync::Arc;

use scalelite_core::config::{Backend, Config};

use crate::{PgStore, RecordingStore, RedisStore, SqliteStore, Store, StoreError, UsageStore};

/// The stores one process works with.
#[derive(Clone, Debug)]
pub struct Stores {
    /// Servers, meetings, tenants (Redis or SQLite).
    pub meetings: Arc<dyn Store>,
    /// Recordings (PostgreSQL or SQLite); `None` on the services backend
    /// without `DATABASE_URL`.
    pub recordings: Option<Arc<dyn RecordingStore>>,
    /// The PostgreSQL database, for schema administration (`db migrate`).
    pub postgres: Option<PgStore>,
    /// The embedded database, for its administration (`db backup`).
    pub embedded: Option<SqliteStore>,
}

impl Stores {
    /// Opens what `config.backend` names: Redis and (with `DATABASE_URL`)
    /// PostgreSQL with at most `pool_size` connections, both connected
    /// lazily; or the embedded SQLite file, created with its directory on
    /// first use.
    pub async fn open(config: &Config, pool_size: u32) -> Result<Self, StoreError> {
        match &config.backend {
            Backend::Services => {
                let meetings = RedisStore::from_config(config)?;
                let postgres = match &config.database_url {
                    Some(url) => Some(PgStore::open(url.expose(), pool_size)?),
                    None => None,
                };
                Ok(Self {
                    meetings: Arc::new(meetings),
                    recordings: postgres.clone().map(|pg| Arc::new(pg) as Arc<dyn RecordingStore>),
                    postgres,
                    embedded: None,
                })
            }
            Backend::Embedded { data_dir } => {
                create_private_dir(data_dir)
                    .map_err(|e| StoreError::Unexpected(format!("cannot create {}: {e}", data_dir.display())))?;
                let store = SqliteStore::open(data_dir.join(Backend::DATABASE_FILE)).await?;
                Ok(Self::embedded(store))
            }
        }
    }

    /// Where usage is accounted: PostgreSQL, or the embedded database;
    /// `None` on the services backend without `DATABASE_URL`.
    pub fn usage(&self) -> Option<Arc<dyn UsageStore>> {
        match (&self.postgres, &self.embedded) {
            (Some(pg), _) => Some(Arc::new(pg.clone())),
            (None, Some(sqlite)) => Some(Arc::new(sqlite.clone())),
            (None, None) => None,
        }
    }

    /// Both roles on one SQLite store.
    pub fn embedded(store: SqliteStore) -> Self {
        Self {
            meetings: Arc::new(store.clone()),
            recordings: Some(Arc::new(store.clone())),
            postgres: None,
            embedded: Some(store),
        }
    }
}

/// Creates `dir` (and its parents) if missing; a directory created here is
/// readable by its owner only, as it holds the database and the generated
/// secret.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}
