//! The tenant calls. Multitenancy is not available yet, so they answer as
//! Scalelite does with `MULTITENANCY_ENABLED` unset (after the checksum).

use axum::body::Body;
use axum::extract::{MatchedPath, State};
use axum::response::Response;
use http::{Request, StatusCode};
use serde_json::json;

use super::{ManagementRequest, json_reply};
use crate::state::AppState;

/// HTTP 412 `{"message":"Multitenancy is disabled"}`.
pub async fn multitenancy_disabled(State(state): State<AppState>, request: Request<Body>) -> Response {
    let path = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let call = crate::middleware::call_label(Some(&path));
    if let Err(response) = ManagementRequest::read(&state, call, request).await {
        return response;
    }
    json_reply(StatusCode::PRECONDITION_FAILED, json!({ "message": "Multitenancy is disabled" }))
}
