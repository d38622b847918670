//! `GET /health_check` and `/`: Scalelite's health check.

use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::state::AppState;

/// Writes and reads a Redis key and, when `DATABASE_URL` is set, queries
/// PostgreSQL (and fails while a migration is pending). Answers `success`; on failure `Health Check Failure: <error>`
/// with HTTP 503 (Scalelite uses 200, which status-based probes cannot see).
pub async fn health_check(State(state): State<AppState>) -> Response {
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
