//! The Prometheus scrape over HTTP: the reply the API's `/metrics` gives,
//! and the small server the poller and the importer run for it.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use scalelite_core::Secret;

/// The metrics endpoint of the processes without an API (the poller on
/// `POLLER_METRICS_BIND`, the importer on `RECORDING_IMPORTER_METRICS_BIND`):
/// `GET /metrics` with `registry`; with `token` (`METRICS_BEARER_TOKEN`) set,
/// only for `Authorization: Bearer <token>`, else HTTP 401.
pub fn endpoint(registry: Arc<Registry>, token: Option<Secret>) -> Router {
    let token = Arc::new(token);
    Router::new().route(
        "/metrics",
        get(move |headers: HeaderMap| {
            let (registry, token) = (Arc::clone(&registry), Arc::clone(&token));
            async move { scrape(&registry, token.as_ref().as_ref(), &headers) }
        }),
    )
}

/// Serves [`endpoint`] on `listener`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    registry: Arc<Registry>,
    token: Option<Secret>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, endpoint(registry, token)).with_graceful_shutdown(shutdown).await
}

/// The reply to a scrape of `registry`: the Prometheus text, or with
/// `token` (`METRICS_BEARER_TOKEN`) set and not sent as
/// `Authorization: Bearer <token>`, HTTP 401 with the bearer challenge.
/// The API's `/metrics` answers with the same function.
pub fn scrape(registry: &Registry, token: Option<&Secret>, headers: &HeaderMap) -> Response {
    if let Some(token) = token {
        let authorization = headers.get(header::AUTHORIZATION).map(HeaderValue::as_bytes);
        if !crate::bearer_authorized(authorization, token.expose()) {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, crate::METRICS_CHALLENGE), (header::CACHE_CONTROL, "no-store")],
                "Unauthorized\n",
            )
                .into_response();
        }
    }
    ([(header::CONTENT_TYPE, crate::METRICS_CONTENT_TYPE)], crate::encode(registry)).into_response()
}
