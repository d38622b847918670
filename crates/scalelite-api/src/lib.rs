#![doc = include_str!("../README.md")]

mod api;
mod body;
mod console;
pub mod embedded;
mod fsapi;
mod health;
mod host;
mod join_routes;
mod limits;
mod lrs;
mod management;
mod meetings_cache;
mod metrics;
mod middleware;
mod origin;
mod outbound;
mod playback;
pub mod request;
mod response;
mod serve;
mod state;
mod tenancy;
mod upload;
mod upstream;

use std::future::Future;

use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;
use tower::{Layer, ServiceBuilder};
use tower_http::normalize_path::NormalizePathLayer;

use crate::api::unsupported;
pub use crate::body::BodyBudget;
pub use crate::metrics::ApiMetrics;
pub use crate::outbound::Outbound;
pub use crate::state::{AppState, DATABASE_POOL_SIZE, Shared};

/// The routes: the BBB API ([`api::CALLS`]), the management API, playback,
/// `/fsapi`, recording uploads, the health check, `/metrics` and the operator
/// console (when enabled). Every path answers unknown
/// methods with `unsupportedRequest`; HEAD is served like GET.
pub(crate) fn router(state: AppState) -> Router {
    use unsupported::unsupported as fallback;
    Router::new()
        .merge(api::routes(&state))
        .merge(management::routes(&state))
        .merge(playback::routes(&state))
        .merge(console::routes(&state))
        .route("/fsapi", axum::routing::post(fsapi::fsapi).fallback(fallback))
        .route(upload::ROUTE, axum::routing::put(upload::upload).fallback(fallback))
        .route("/health_check", get(health::health_check).fallback(fallback))
        .route("/livez", get(health::livez).fallback(fallback))
        .route("/readyz", get(health::readyz).fallback(fallback))
        .route("/metrics", get(health::metrics).fallback(fallback))
        .route("/", get(health::health_check).fallback(health::root_refused))
        .fallback(fallback)
        .layer(
            // Outermost first.
            ServiceBuilder::new()
                .layer(axum::middleware::from_fn(middleware::request_id))
                .layer(axum::middleware::from_fn(middleware::security_headers))
                .layer(axum::middleware::from_fn_with_state(state.clone(), middleware::observe))
                // Host authorization costs nothing unless URL_HOST is set.
                .option_layer(
                    state
                        .config
                        .url_host
                        .is_some()
                        .then(|| axum::middleware::from_fn_with_state(state.clone(), middleware::authorize_host)),
                ),
        )
        .with_state(state)
}

/// Serves the API on `listener` until `shutdown` resolves, then finishes
/// the requests in flight.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.config.edge.clone();
    serve::log_limits(&limits);
    if state.config.meeting_id_scope == scalelite_core::scope::MeetingIdScope::Tenant {
        tracing::warn!(
            "MULTITENANCY_MEETING_ID_SCOPE=tenant: meeting records are keyed <tenant id>:<meetingID>; \
             Ruby Scalelite must not share this Redis (it would not find these meetings)"
        );
    }
    // The console's plots sample the fleet for as long as the API serves.
    let sampler = state.console.is_some().then(|| {
        tracing::info!(path = %state.config.console.path, "operator console enabled");
        tokio::spawn(console::sample(state.clone()))
    });
    if state.config.recordings.upload_enabled {
        let spool = state.config.recordings.spool_dir.clone();
        tokio::task::spawn_blocking(move || upload::remove_stale_temp_files(&spool));
    }
    // On a stop: readiness goes down first, and the listener stays open for
    // HTTP_SHUTDOWN_DELAY so load balancers stop sending before it closes.
    let shutdown = {
        let state = state.clone();
        let delay = limits.shutdown_delay;
        async move {
            shutdown.await;
            state.draining.store(true, std::sync::atomic::Ordering::SeqCst);
            if !delay.is_zero() {
                tracing::info!(
                    delay_s = delay.as_secs_f64(),
                    "stopping: /readyz answers 503 until the listener closes"
                );
                tokio::time::sleep(delay).await;
            }
        }
    };
    let join_routes = std::sync::Arc::clone(&state.join_routes);
    // Trailing slashes are trimmed before routing (Rails tolerates them).
    let app = NormalizePathLayer::trim_trailing_slash().layer(router(state));
    // Playback resources need the path as sent (a trailing slash selects a directory's index).
    let app = tower::util::MapRequestLayer::new(playback::keep_original_uri).layer(app);
    let served = serve::serve(listener, app, limits, shutdown).await;
    if let Some(sampler) = sampler {
        sampler.abort();
    }
    // The load of the last cached joins.
    join_routes.flush().await;
    served
}
