//! `join` (GET only): the hot path.
//!
//! One Redis round trip finds the meeting and its server, refuses an offline
//! or disabled server and counts the join; the answer is a 302 to the
//! server's own join URL, re-signed with the server's secret.

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Request, StatusCode, header};
use scalelite_core::BbbError;
use scalelite_core::params::forwarded_params;
use scalelite_core::sign::signed_url;
use scalelite_store::JoinRoute;

use super::meeting_id;
use crate::request::{ApiCall, ApiRequest, BodyKind};
use crate::response::ApiResult;
use crate::state::AppState;

const CALL: ApiCall = ApiCall { name: "join", body: BodyKind::Any };

/// Redirects the user to the meeting's server.
pub async fn join(State(state): State<AppState>, request: Request<Body>) -> ApiResult {
    let request = ApiRequest::read(&state, &CALL, request).await?;
    let id = meeting_id(&request)?;
    let (url, secret) = match state.store.route_join(&id, request.tenant_id()).await? {
        JoinRoute::Ready { url, secret } => (url, secret),
        JoinRoute::NotFound => return Err(BbbError::MeetingNotFound.into()),
        JoinRoute::Unavailable => return Err(BbbError::ServerUnavailable.into()),
    };
    let policy = &state.config.join_params;
    // Tenant settings apply to join too, in create's precedence order.
    let empty = Vec::new();
    let tenant = request.tenant.as_deref();
    let (tenant_defaults, tenant_overrides) = tenant.map_or((&empty, &empty), |t| (&t.defaults, &t.overrides));
    let params = forwarded_params(
        &request.params,
        &[&policy.exclude],
        &[&policy.defaults, tenant_defaults],
        &[&policy.overrides, tenant_overrides],
        &[],
    );
    let location = signed_url(&url, CALL.name, &params.encode(), &secret, state.bbb.algorithm());
    Ok(redirect(&location))
}

fn redirect(location: &str) -> Response {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}
