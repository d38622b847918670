//! `join` (GET only): the hot path.
//!
//! One store round trip finds the meeting and its server, refuses an offline
//! or disabled server and counts the join; the answer is a 302 to the
//! server's own join URL, re-signed with the server's secret. The meeting's
//! next joins within `JOIN_ROUTE_CACHE_TTL` reuse that route without the
//! store (`join_routes`). A meeting whose server is offline is re-homed
//! first when it can be (the rare path, `REHOME_MEETINGS`; see
//! `create::rehome`).

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Request, StatusCode, header};
use scalelite_core::error::internal::ACCESS_MEETING;
use scalelite_core::params::forwarded_params;
use scalelite_core::sign::signed_url;
use scalelite_core::{BbbError, MeetingId};
use scalelite_store::JoinRoute;
use tracing::info;

use super::create::rehome::{Trigger, rehome};
use super::meeting_id;
use crate::join_routes::Route;
use crate::request::{ApiCall, ApiRequest, BodyKind};
use crate::response::{ApiError, ApiResult};
use crate::state::AppState;

const CALL: ApiCall = ApiCall { name: "join", body: BodyKind::Any };

/// Redirects the user to the meeting's server.
pub(crate) async fn join(State(state): State<AppState>, request: Request<Body>) -> ApiResult {
    let request = ApiRequest::read(&state, &CALL, request).await?;
    let id = meeting_id(&state, &request)?;
    let route = route(&state, &id, &request).await?;
    let Route { url, secret, .. } = &*route;
    let policy = &state.config.join_params;
    // Tenant settings apply to join too, in create's precedence order, except
    // a tenant's server tag (as in Scalelite).
    let (empty, no_names) = (Vec::new(), Vec::new());
    let tenant = request.tenant.as_deref();
    let (tenant_defaults, tenant_overrides) =
        tenant.map_or((&empty, &empty), |t| (&t.join_defaults, &t.join_overrides));
    let tenant_exclude = tenant.map_or(&no_names, |t| &t.join_exclude);
    let mut params = forwarded_params(
        &request.params,
        &[&policy.exclude, tenant_exclude],
        &[&policy.defaults, tenant_defaults],
        &[&policy.overrides, tenant_overrides],
        &[],
    );
    if state.config.meeting_scope(request.tenant_id()).is_some() {
        params.set("meetingID", id.as_str());
    }
    let location = signed_url(url, CALL.name, &params.encode(), secret, state.bbb.algorithm());
    redirect(&location).map_err(Into::into)
}

/// Where the join goes: the route this process kept for the meeting
/// (`join_routes`: no store round trip, the load counted in a batch), or
/// the store's answer, kept when it may be. Joins of a tenant with a
/// participant limit always ask the store, which counts them.
async fn route(state: &AppState, id: &MeetingId, request: &ApiRequest) -> Result<Arc<Route>, ApiError> {
    let limit = max_participants(request);
    let cache = &state.join_routes;
    let ticket = if cache.enabled() && limit.is_none() {
        match cache.route(id, request.tenant_id()) {
            Ok(route) => return Ok(route),
            Err(ticket) => Some(ticket),
        }
    } else {
        None
    };
    let route = match state.store.route_join(id, request.tenant_id(), limit).await? {
        JoinRoute::Ready { url, secret, server_id, multiplier } => {
            Arc::new(Route { server_id, url, secret, multiplier })
        }
        JoinRoute::NotFound => return Err(BbbError::MeetingNotFound.into()),
        JoinRoute::Unavailable => return rehome_and_route(state, id, request).await,
        JoinRoute::LimitReached => return Err(participants_refused(id, limit)),
    };
    if let Some(ticket) = ticket {
        cache.keep(ticket, id, request.tenant_id(), Arc::clone(&route));
    }
    Ok(route)
}

/// Routes a join whose meeting's server is offline or disabled: re-homes
/// the meeting (offline servers only) and routes the join again;
/// `serverUnavailable` when it cannot be re-homed.
async fn rehome_and_route(state: &AppState, id: &MeetingId, request: &ApiRequest) -> Result<Arc<Route>, ApiError> {
    if state.config.rehome_meetings
        && let Some(route) = state.store.find_meeting(id, request.tenant_id()).await?
        && let Some(server) = route.server
    {
        let rehomed = rehome(state, &route.meeting, &server, request.tenant.as_deref(), Trigger::Join).await?;
        // Re-homed now, or available again since the first look-up.
        if rehomed.is_some() || server.is_available() {
            let limit = max_participants(request);
            match state.store.route_join(id, request.tenant_id(), limit).await? {
                JoinRoute::Ready { url, secret, server_id, multiplier } => {
                    return Ok(Arc::new(Route { server_id, url, secret, multiplier }));
                }
                JoinRoute::LimitReached => return Err(participants_refused(id, limit)),
                JoinRoute::NotFound | JoinRoute::Unavailable => {}
            }
        }
    }
    Err(BbbError::ServerUnavailable.into())
}

/// The caller's tenant's participant limit, if any.
fn max_participants(request: &ApiRequest) -> Option<u32> {
    request.tenant.as_deref().and_then(|t| t.limits.max_participants)
}

/// A join refused by the tenant's participant limit: the `FAILED` XML
/// every refused join gets (the user's browser shows it, as for
/// `notFound`), with bbb-web's own key for a full meeting.
fn participants_refused(id: &MeetingId, limit: Option<u32>) -> ApiError {
    let limit = limit.unwrap_or_default();
    info!(meeting.id = %id, limit, "join refused: the tenant's participants are at its limit");
    scalelite_core::error::limit::max_participants(limit).into()
}

/// A 302 to `location`, never without a `Location`: the query is encoded
/// already, but the server's URL is stored as an operator typed it, so bytes
/// a header cannot carry (spaces, control characters, non-ASCII letters of
/// an internationalised host or path) are percent-encoded; browsers decode
/// them again (hosts through IDNA). The checksum covers only the query, so
/// it stays valid.
fn redirect(location: &str) -> Result<Response, BbbError> {
    let location = header_safe(location);
    let value = HeaderValue::from_str(&location).map_err(|_| BbbError::internal(ACCESS_MEETING))?;
    let mut response = StatusCode::FOUND.into_response();
    response.headers_mut().insert(header::LOCATION, value);
    Ok(response)
}

/// `url` with every byte outside printable ASCII (and the space)
/// percent-encoded.
fn header_safe(url: &str) -> Cow<'_, str> {
    if url.bytes().all(|b| b.is_ascii_graphic()) {
        return Cow::Borrowed(url);
    }
    let mut out = String::with_capacity(url.len() + 16);
    for byte in url.bytes() {
        if byte.is_ascii_graphic() {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_redirect_has_a_valid_location() {
        let plain = "https://bbb.example/bigbluebutton/api/join?fullName=A&checksum=ab";
        assert_eq!(header_safe(plain), plain);
        let typed = "https://bbb.b\u{fc}ro.example/big blue\tbutton/api/join?checksum=ab\u{7f}";
        assert_eq!(header_safe(typed), "https://bbb.b%C3%BCro.example/big%20blue%09button/api/join?checksum=ab%7F");
        let response = redirect(typed).unwrap();
        assert_eq!(response.status(), StatusCode::FOUND);
        assert_eq!(
            response.headers().get(header::LOCATION).unwrap(),
            "https://bbb.b%C3%BCro.example/big%20blue%09button/api/join?checksum=ab%7F"
        );
    }
}
