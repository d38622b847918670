//! The operator's probes: Scalelite's health check (`GET /health_check`
//! and `/`) and the Prometheus scrape (`GET /metrics`).

use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};

use crate::state::AppState;

/// Checks the meeting store and, when recordings are stored, the
/// recordings store (which fails while a migration is pending). Answers
/// `success`; on failure `Health Check Failure: <error>` with HTTP 503 (Scalelite uses 200, which status-based probes cannot see).
pub(crate) async fn health_check(State(state): State<AppState>) -> Response {
    let result = check(&state).await;
    let (status, body) = match result {
        Ok(()) => (StatusCode::OK, "success".to_owned()),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, format!("Health Check Failure: {error}")),
    };
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
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
    scalelite_poller::metrics::scrape(&state.registry, state.config.metrics_bearer_token.as_ref(), &headers)
}
