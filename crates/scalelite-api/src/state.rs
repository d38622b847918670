//! The shared state handed to every handler.

use std::sync::Arc;

use http::{HeaderMap, Uri};
use prometheus_client::registry::Registry;
use scalelite_bbb_client::{BbbClient, Timeouts};
use scalelite_core::config::Config;
use scalelite_fleet::{Fleet, FleetSettings};
use scalelite_store::{RecordingStore, Store};

use crate::body::{BodyBudget, BodyLimits};
use crate::join_routes::JoinRoutes;
use crate::meetings_cache::MeetingsCache;
use crate::metrics::ApiMetrics;
use crate::outbound::Outbound;
use crate::response::ApiError;
use crate::tenancy::{ResolvedTenant, TenantDirectory};

/// Connections per API process to the recordings database (PostgreSQL;
/// recordings calls only, the meeting calls never touch it), for
/// `Stores::open`.
pub const DATABASE_POOL_SIZE: u32 = 8;

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
    pub(crate) bbb: BbbClient,
    /// Single-flight cache of the getMeetings fan-out.
    pub(crate) meetings_cache: Arc<MeetingsCache>,
    /// Where the last joins of a meeting went (`JOIN_ROUTE_CACHE_TTL`), and
    /// the load of the joins routed from it, sent in batches.
    pub(crate) join_routes: Arc<JoinRoutes>,
    /// The recordings store, when there is one (`DATABASE_URL`, or the
    /// embedded mode's file); without it the recordings API answers as with
    /// `RECORDING_DISABLED`.
    pub recordings: Option<Arc<dyn RecordingStore>>,
    /// The bucket recordings live in (`S3_RECORDING`).
    pub(crate) recording_bucket: Option<scalelite_store::s3::S3Storage>,
    /// The CloudFront distribution in front of it (`CLOUDFRONT_URL`).
    pub(crate) cloudfront: Option<scalelite_core::cloudfront::CloudFrontSigner>,
    /// Server administration for the management API.
    pub(crate) fleet: Fleet,
    /// Request and upstream metrics.
    pub metrics: Arc<ApiMetrics>,
    /// The registry `/metrics` encodes.
    pub(crate) registry: Arc<Registry>,
    /// Tenants by name (multitenant mode).
    pub(crate) tenants: TenantDirectory,
    /// The per-tenant request rates (per process).
    pub(crate) rates: crate::limits::RateLimiter,
    /// Calls to front-ends and Keycloak (analytics callbacks, LRS tokens).
    pub outbound: Outbound,
    /// Bytes of request bodies read before authentication, for all requests.
    pub body_budget: BodyBudget,
    /// Room in the spool promised to the recording uploads in progress.
    pub(crate) upload_pending: crate::upload::room::PendingBytes,
    /// Set when a stop was asked for: `/readyz` answers 503 from then on.
    pub(crate) draining: std::sync::atomic::AtomicBool,
    /// The operator console, when `CONSOLE_ENABLED`.
    pub(crate) console: Option<Arc<crate::console::live::Console>>,
}

impl Shared {
    /// How a body is read before its request is authenticated.
    pub(crate) fn unauthenticated_body(&self) -> BodyLimits {
        BodyLimits {
            max_bytes: self.config.max_body_bytes,
            stall: self.config.edge.header_read_timeout,
            budget: Some(self.body_budget.clone()),
        }
    }

    /// The tenant of a request in multitenant mode (see
    /// [`TenantDirectory::of_request`]); `None` when multitenancy is off.
    pub(crate) async fn request_tenant(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
    ) -> Result<Option<Arc<ResolvedTenant>>, ApiError> {
        if !self.config.multitenancy {
            return Ok(None);
        }
        Ok(Some(self.tenants.of_request(headers, uri).await?))
    }

    /// How a body is read once its request is authenticated.
    pub(crate) fn authenticated_body(&self) -> BodyLimits {
        BodyLimits { budget: None, ..self.unauthenticated_body() }
    }
}

impl AppState {
    /// Lets the console show the rounds of the poller running in this
    /// process (the embedded mode).
    pub(crate) fn watch_poller(&self, metrics: Arc<scalelite_poller::PollerMetrics>) {
        if let Some(console) = &self.console {
            console.watch_poller(metrics);
        }
    }

    /// Lets the console show each tenant's usage of the last 24 hours from
    /// where the poller accounts it (PostgreSQL or the embedded database).
    pub fn watch_usage(&self, usage: Option<Arc<dyn scalelite_store::UsageStore>>) {
        if let (Some(console), Some(usage)) = (&self.console, usage) {
            console.watch_usage(usage);
        }
    }

    /// Builds the state from a configuration and the stores (see
    /// `scalelite_store::Stores::open`).
    pub fn with_recordings(config: Config, store: Arc<dyn Store>, recordings: Option<Arc<dyn RecordingStore>>) -> Self {
        Self::with_metrics(config, store, recordings, |_| {})
    }

    /// [`AppState::with_recordings`], with `register` adding more metrics to
    /// what `/metrics` serves (the embedded mode's poller).
    pub(crate) fn with_metrics(
        config: Config,
        store: Arc<dyn Store>,
        recordings: Option<Arc<dyn RecordingStore>>,
        register: impl FnOnce(&mut Registry),
    ) -> Self {
        let bbb = BbbClient::new(
            Timeouts { connect: config.connect_timeout, response: config.response_timeout },
            config.checksum_algorithms.outgoing(),
        );
        let meetings_cache = Arc::new(MeetingsCache::new(config.get_meetings_cache_ttl));
        let settings = FleetSettings {
            server_id_is_hostname: config.server_id_is_hostname,
            concurrency: config.poller_concurrency,
        };
        let fleet = Fleet::new(Arc::clone(&store), bbb.clone(), settings);
        let metrics = Arc::new(ApiMetrics::new());
        let join_routes = Arc::new(JoinRoutes::new(
            config.join_route_cache_ttl,
            Arc::<dyn Store>::clone(&store),
            metrics.join_route_cache_hits.clone(),
            metrics.join_route_cache_misses.clone(),
        ));
        let mut registry = metrics.registry();
        register(&mut registry);
        let registry = Arc::new(registry);
        let tenants = TenantDirectory::new(Arc::<dyn Store>::clone(&store), config.tenant_cache_ttl);
        let outbound = Outbound::new(&config);
        let body_budget = BodyBudget::new(config.edge.unauthenticated_body_budget);
        let console = crate::console::live::Console::new(&config);
        let recording_bucket = scalelite_store::s3::S3Storage::from_recordings(&config.recordings);
        let cloudfront = config.recordings.s3.as_ref().and_then(|s3| s3.cloudfront.as_ref()).and_then(|cf| {
            scalelite_core::cloudfront::CloudFrontSigner::new(&cf.url, &cf.key_pair_id, cf.private_key_b64.expose())
                .map_err(|e| tracing::error!(error = %e, "CLOUDFRONT_URL: cannot sign cookies; presigned URLs instead"))
                .ok()
        });
        Self(Arc::new(Shared {
            recording_bucket,
            cloudfront,
            config: Arc::new(config),
            store,
            bbb,
            meetings_cache,
            join_routes,
            recordings,
            fleet,
            metrics,
            registry,
            tenants,
            rates: crate::limits::RateLimiter::default(),
            outbound,
            body_budget,
            upload_pending: crate::upload::room::PendingBytes::default(),
            draining: std::sync::atomic::AtomicBool::new(false),
            console,
        }))
    }
}
