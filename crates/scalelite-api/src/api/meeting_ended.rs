//! The meeting-ended callback of a meeting whose id is scoped per tenant
//! (`MULTITENANCY_MEETING_ID_SCOPE=tenant`).
//!
//! BBB calls a meeting's `meta_endCallbackUrl` when it ends, adding
//! `recordingmarks` and `meetingID` (the id it knows, so the scoped one).
//! With scoping on, create replaces each such URL with this balancer's
//! `…/bigbluebutton/api/meeting_ended?token=…`: an HS256 token, signed with
//! the tenant's first secret, naming the scoped meeting id and the
//! front-end's URL. Nothing is stored.
//!
//! **`GET /bigbluebutton/api/meeting_ended`** (from BBB, no checksum): on a
//! tenant host (else `checksumError`, as the analytics callback), a token
//! signed with one of that tenant's secrets for exactly the `meetingID`
//! sent, a scoped id of that tenant: the front-end's URL is then called
//! with `recordingmarks` and its own `meetingID` appended as BBB appends
//! them, from a spawned task (one attempt, bounded by `RESPONSE_TIMEOUT`).
//! BBB gets HTTP 200 at once, whatever the outcome; what is refused is
//! logged.
//!
//! Replies show the front-end its own URL, read back from the token
//! ([`scope::show_front_end_metadata`]): getMeetingInfo and getMeetings in
//! `metadata/endcallbackurl`, and the importer stores it in the
//! recording's metadata.

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Request, StatusCode, header};
use scalelite_bbb_client::redacted_url;
use scalelite_core::params::encode_component_into;
use scalelite_core::{MeetingId, Params, scope};
use tracing::{info, warn};

use super::analytics_callback::balancer_origin;
use crate::outbound::http_url;
use crate::state::AppState;
use crate::tenancy::ResolvedTenant;

/// The path BBB is sent to.
pub(crate) const PATH: &str = scope::END_CALLBACK_RELAY_PATH;

/// The create's part, on the forwarded parameters of a scoped meeting:
/// every `meta_endCallbackUrl` (BBB reads the key in any case) points here.
pub(crate) fn take_urls(
    state: &AppState,
    id: &MeetingId,
    tenant: &ResolvedTenant,
    origin: Option<&str>,
    params: &mut Params,
) {
    let Some(secret) = tenant.secrets.first() else { return };
    let names: Vec<(String, String)> = params
        .iter()
        .filter(|(name, value)| name.eq_ignore_ascii_case("meta_endCallbackUrl") && !value.trim().is_empty())
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
    for (name, url) in names {
        let token = scalelite_core::jwt::end_callback(id.as_str(), &url, secret);
        let mut relay = balancer_origin(state.config.url_host.as_deref(), origin, Some(tenant));
        relay.push_str(PATH);
        relay.push_str("?token=");
        encode_component_into(&mut relay, &token);
        params.set(&name, relay);
    }
}

/// `GET /bigbluebutton/api/meeting_ended`.
pub(crate) async fn meeting_ended(State(state): State<AppState>, request: Request<Body>) -> Response {
    let (parts, _) = request.into_parts();
    let tenant = match state.request_tenant(&parts.headers, &parts.uri).await {
        Ok(tenant) => tenant,
        Err(error) => return error.into_response(),
    };
    let params = Params::parse(parts.uri.query().unwrap_or(""));
    match front_end_call(&state, tenant.as_deref(), &params) {
        Ok((url, meeting_id)) => match state.outbound.delivery_slot() {
            Some(slot) => {
                let outbound = state.outbound.clone();
                tokio::spawn(async move {
                    let shown = redacted_url(&url.to_string());
                    let agent = [(header::USER_AGENT, HeaderValue::from_static("BigBlueButton"))];
                    match outbound.get(&url, &agent).await {
                        Ok(answer) => {
                            info!(meeting.id = %meeting_id, url = %shown, status = answer.status, "meeting-ended callback relayed")
                        }
                        Err(error) => {
                            warn!(meeting.id = %meeting_id, url = %shown, error, "meeting-ended callback failed")
                        }
                    }
                    drop(slot);
                });
            }
            None => warn!(meeting.id = %meeting_id, "meeting-ended callback dropped: too many deliveries in flight"),
        },
        Err(reason) => info!(reason, "meeting-ended callback ignored"),
    }
    StatusCode::OK.into_response()
}

/// The front-end's URL to call for a relay request, and the meeting id BBB
/// sent; or why nothing is called.
fn front_end_call(
    state: &AppState,
    tenant: Option<&ResolvedTenant>,
    params: &Params,
) -> Result<(http::Uri, String), String> {
    let tenant = tenant.ok_or("no tenant")?;
    if state.config.meeting_scope(Some(tenant.id())).is_none() {
        return Err("meeting ids are not scoped".into());
    }
    let meeting_id = params.get("meetingID").ok_or("no meetingID")?;
    let own = scope::unscoped(tenant.id().as_str(), meeting_id)
        .ok_or_else(|| format!("meeting {meeting_id:?} is not one of the tenant's"))?;
    let token = params.get("token").ok_or("no token")?;
    let url = scalelite_core::jwt::verify_end_callback(token, meeting_id, &tenant.secrets)
        .ok_or_else(|| format!("the token is not the tenant's for meeting {meeting_id:?}"))?;
    let mut target = url;
    target.push(if target.contains('?') { '&' } else { '?' });
    target.push_str("recordingmarks=");
    encode_component_into(&mut target, params.get("recordingmarks").unwrap_or("false"));
    target.push_str("&meetingID=");
    encode_component_into(&mut target, own);
    let uri = http_url(&target).ok_or_else(|| format!("the URL of meeting {meeting_id:?} is not http(s)"))?;
    Ok((uri, meeting_id.to_owned()))
}
