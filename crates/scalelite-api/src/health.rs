//! The operator's probes: Scalelite's health check (`GET /health_check`
//! and `/`), liveness (`GET /livez`) and readiness (`GET /readyz`) for
//! orchestrators and load balancers, and the Prometheus scrape
//! (`GET /metrics`).

use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::state::AppState;

/// Checks the meeting store and, when recordings are stored, the
/// recordings store (which fails while a migration is pending). Answers
/// `success`; on failure `Health Check Failure: <error>` with HTTP 503 (Scalelite uses 200, which status-based probes cannot see).
pub(crate) async fn health_check(State(state): State<AppState>) -> Response {
    match check(&state).await {
        Ok(()) => plain(StatusCode::OK, "success".to_owned()),
        Err(error) => plain(StatusCode::SERVICE_UNAVAILABLE, format!("Health Check Failure: {error}")),
    }
}

/// `/` with any method but GET and HEAD: HTTP 422 with an empty
/// `text/html` body, as Scalelite answers (its root route runs the health
/// check for every method, but Rails' CSRF protection refuses a POST, PUT,
/// DELETE or OPTIONS there before it runs, and Scalelite ships no
/// `public/422.html`).
pub(crate) async fn root_refused() -> Response {
    let mut response = StatusCode::UNPROCESSABLE_ENTITY.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response
}

/// `GET /livez`: `alive` while the process answers requests. It checks
/// nothing else, so an orchestrator restarts a process that hangs, never
/// one whose Redis or PostgreSQL is down (a restart would not help).
pub(crate) async fn livez() -> Response {
    plain(StatusCode::OK, "alive".to_owned())
}

/// `GET /readyz`: `ready` when this process can serve creates and joins:
/// the meeting store answers (within 3 s) and no stop has been asked for.
/// PostgreSQL is not checked: joins do not need it (`/health_check` shows
/// a recordings outage). Otherwise HTTP 503 `not ready: <reason>`.
pub(crate) async fn readyz(State(state): State<AppState>) -> Response {
    if state.draining.load(std::sync::atomic::Ordering::SeqCst) {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "not ready: shutting down".to_owned());
    }
    match tokio::time::timeout(Duration::from_secs(3), state.store.health_check()).await {
        Ok(Ok(())) => plain(StatusCode::OK, "ready".to_owned()),
        Ok(Err(e)) => plain(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: meeting store: {e}")),
        Err(_) => plain(StatusCode::SERVICE_UNAVAILABLE, "not ready: meeting store: timed out".to_owned()),
    }
}

/// A `text/plain` reply that is never cached.
fn plain(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn check(state: &AppState) -> Result<(), String> {
    state.store.health_check().await.map_err(|e| e.to_string())?;
    if let Some(recordings) = &state.recordings {
        match tokio::time::timeout(Duration::from_secs(3), recordings.health_check()).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("database: {e}")),
            Err(_) => return Err("database: timed out".into()),
        }
    }
    Ok(())
}

/// `GET /metrics` in the Prometheus text format; with
/// `METRICS_BEARER_TOKEN` set, only for `Authorization: Bearer <token>`
/// (else HTTP 401), as the poller's.
pub(crate) async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    scalelite_telemetry::scrape::scrape(&state.registry, state.config.metrics_bearer_token.as_ref(), &headers)
}
