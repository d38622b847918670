//! The shared state handed to every handler.

use std::sync::Arc;

use prometheus_client::registry::Registry;
use scalelite_bbb_client::{BbbClient, Timeouts};
use scalelite_core::config::Config;
use scalelite_fleet::{Fleet, FleetSettings};
use scalelite_store::Store;

use crate::api::get_meetings::MeetingsCache;
use crate::metrics::ApiMetrics;

/// Everything a request needs. Cloning (once per request, by axum) costs a
/// single reference-count increment.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
#[derive(Debug)]
pub struct Shared {
    /// Configuration read at start-up.
    pub config: Arc<Config>,
    /// Servers and meeting routes.
    pub store: Arc<dyn Store>,
    /// Client for BBB servers.
    pub bbb: BbbClient,
    /// Single-flight cache of the getMeetings fan-out.
    pub meetings_cache: Arc<MeetingsCache>,
    /// PostgreSQL pool, when `DATABASE_URL` is set (health check only, for now).
    pub database: Option<sqlx::PgPool>,
    /// Server administration for the management API.
    pub fleet: Fleet,
    /// Request and upstream metrics.
    pub metrics: Arc<ApiMetrics>,
    /// The registry `/metrics` encodes.
    pub registry: Arc<Registry>,
}

impl AppState {
    /// Builds the state from a configuration and a store.
    pub fn new(config: Config, store: Arc<dyn Store>) -> anyhow::Result<Self> {
        let bbb = BbbClient::new(
            Timeouts { connect: config.connect_timeout, response: config.response_timeout },
            config.checksum_algorithms.outgoing(),
        );
        let database = match &config.database_url {
            Some(url) => Some(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(std::time::Duration::from_secs(2))
                    .connect_lazy(url.expose())?,
            ),
            None => None,
        };
        let meetings_cache = Arc::new(MeetingsCache::new(config.get_meetings_cache_ttl));
        let settings = FleetSettings {
            server_id_is_hostname: config.server_id_is_hostname,
            concurrency: config.poller_concurrency,
        };
        let fleet = Fleet::new(Arc::clone(&store), bbb.clone(), settings);
        let metrics = Arc::new(ApiMetrics::new());
        let registry = Arc::new(metrics.registry());
        Ok(Self(Arc::new(Shared {
            config: Arc::new(config),
            store,
            bbb,
            meetings_cache,
            database,
            fleet,
            metrics,
            registry,
        })))
    }
}
