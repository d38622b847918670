//! `POST /fsapi`: the dialplan FreeSWITCH's `mod_xml_curl` fetches for
//! dial-in calls (Scalelite's `FsapiController`).
//!
//! No checksum and no content-type check: parameters are the form body
//! (when it has no content type or a form one) and the query, the query
//! winning. Every answer is HTTP 200 XML except the 401 of a failed
//! authentication and an HTTP 500 when the store cannot be reached (FreeSWITCH
//! then falls back to its other bindings).
//!
//! # Authentication
//!
//! HTTP Basic with user `fsapi`:
//!
//! * the password `FSAPI_PASSWORD` (default: the first load-balancer
//!   secret) reaches every meeting, on any host. When it is set to the
//!   empty string there is no authentication at all (every request reaches
//!   every meeting, as in Scalelite). When neither variable is set no
//!   password works (Scalelite would then not ask for one);
//! * in multitenant mode, on a tenant's host (`<tenant>.<URL_HOST>`), one
//!   of that tenant's secrets also works, for a tenant running its own
//!   FreeSWITCH; it only reaches that tenant's meetings: another tenant's
//!   pin gets the reprompt, as an unknown pin does. A tenant secret never
//!   works on the bare `URL_HOST`, on another tenant's host, or without
//!   `URL_HOST`.
//!
//! Secrets are compared in constant time. The realm is `URL_HOST`, or
//! `Application` when it is unset.
//!
//! The documents and the rules that keep request values from injecting
//! anything into FreeSWITCH are in [`scalelite_core::fsapi`].

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Request, StatusCode, Uri, header};
use scalelite_core::Params;
use scalelite_core::fsapi::{self, BridgeTarget, Credentials, Pin, PromptSettings, SipHost};
use scalelite_core::params::is_blank;
use scalelite_store::{MeetingRoute, StoreError};
use tracing::{debug, info, warn};

use crate::host::{request_host, tenant_name};
use crate::response::{Outcome, xml};
use crate::state::AppState;
use crate::tenancy::ResolvedTenant;

/// Which meetings an authenticated request reaches.
#[derive(Debug)]
enum Scope {
    /// Every meeting (`FSAPI_PASSWORD`, or no authentication).
    All,
    /// Only this tenant's meetings (one of its secrets on its host).
    Tenant(Arc<ResolvedTenant>),
}

impl Scope {
    fn reaches(&self, route: &MeetingRoute) -> bool {
        match self {
            Self::All => true,
            Self::Tenant(tenant) => route.meeting.tenant_id.as_ref() == Some(tenant.id()),
        }
    }
}

/// `POST /fsapi`.
pub(crate) async fn fsapi(State(state): State<AppState>, request: Request<Body>) -> Response {
    let (parts, body) = request.into_parts();
    let scope = match authenticate(&state, &parts.headers, &parts.uri).await {
        Ok(Some(scope)) => scope,
        Ok(None) => return access_denied(state.config.url_host.as_deref()),
        Err(error) => return store_unavailable(&error),
    };
    let Ok(body) = crate::body::read(body, &parts.headers, state.authenticated_body()).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let Some(params) = parameters(&parts, &body.bytes, state.config.edge.max_params) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    match answer(&state, &scope, &params).await {
        Ok(document) => xml(document),
        Err(error) => store_unavailable(&error),
    }
}

/// The form body's parameters, then the query's (so the query wins);
/// `None` when there are more than `max`.
fn parameters(parts: &Parts, body: &[u8], max: usize) -> Option<Params> {
    let form = match parts.headers.get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap_or("")) {
        None => true,
        Some(value) => {
            value.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/x-www-form-urlencoded")
        }
    };
    let mut params = if form { Params::parse_limited(body, max).ok()? } else { Params::new() };
    let room = max.saturating_sub(params.len());
    params.extend(Params::parse_limited(parts.uri.query().unwrap_or("").as_bytes(), room).ok()?);
    Some(params)
}

/// The request's scope, `None` when its credentials open nothing.
async fn authenticate(state: &AppState, headers: &HeaderMap, uri: &Uri) -> Result<Option<Scope>, StoreError> {
    let password = state.config.fsapi_password.as_ref();
    if password.is_some_and(|p| p.expose().is_empty()) {
        return Ok(Some(Scope::All));
    }
    let Some(credentials) = headers.get(header::AUTHORIZATION).and_then(|v| Credentials::parse(v.as_bytes())) else {
        return Ok(None);
    };
    if password.is_some_and(|p| credentials.matches(p)) {
        return Ok(Some(Scope::All));
    }
    let Some(name) = tenant_host(state, headers, uri) else {
        return Ok(None);
    };
    let cached = match state.tenants.by_name(name).await? {
        Some(tenant) => Some(tenant),
        None => state.tenants.refresh(name).await?,
    };
    let Some(tenant) = cached else {
        return Ok(None);
    };
    if opens(&credentials, &tenant) {
        return Ok(Some(Scope::Tenant(tenant)));
    }
    // A secret may have been added since the tenant was cached.
    Ok(state.tenants.refresh(name).await?.filter(|fresh| opens(&credentials, fresh)).map(Scope::Tenant))
}

/// Whether `credentials` carry one of the tenant's (non-empty) secrets.
fn opens(credentials: &Credentials, tenant: &ResolvedTenant) -> bool {
    // Every secret is compared, so the time taken does not tell which matched.
    tenant.secrets.iter().filter(|s| !s.expose().is_empty()).fold(false, |found, s| found | credentials.matches(s))
}

/// The tenant name of a request made to `<tenant>.<URL_HOST>` in
/// multitenant mode.
fn tenant_host<'a>(state: &AppState, headers: &'a HeaderMap, uri: &'a Uri) -> Option<&'a str> {
    if !state.config.multitenancy {
        return None;
    }
    let url_host = state.config.url_host.as_deref()?;
    let host = request_host(headers, uri)?;
    let split = host.len().checked_sub(url_host.len() + 1)?;
    let is_subdomain = host.is_char_boundary(split)
        && host.as_bytes()[split] == b'.'
        && host[split + 1..].eq_ignore_ascii_case(url_host)
        && split > 0;
    is_subdomain.then(|| tenant_name(host)).filter(|name| !name.is_empty())
}

/// Scalelite's decision flow (the module documentation of
/// [`scalelite_core::fsapi`] has the documents).
async fn answer(state: &AppState, scope: &Scope, params: &Params) -> Result<String, StoreError> {
    if params.get("section") != Some("dialplan") {
        debug!(target: "fsapi", "request for a section other than the dialplan");
        return Ok(fsapi::reject());
    }
    let destination = params.get("Caller-Destination-Number").unwrap_or("");
    if is_blank(destination) {
        debug!(target: "fsapi", "request without Caller-Destination-Number");
        return Ok(fsapi::reject());
    }
    let config = &state.config;
    let settings = PromptSettings {
        min_digits: config.voice_bridge_min,
        max_digits: config.voice_bridge_max,
        max_duration_secs: config.fsapi_max_duration.saturating_mul(60),
    };
    let raw_pin = params.get("variable_pin").unwrap_or("");
    if is_blank(raw_pin) {
        debug!(target: "fsapi", "prompting for a pin");
        return Ok(fsapi::pin_prompt(destination, &settings));
    }
    let Some(pin) = Pin::parse(raw_pin) else {
        debug!(target: "fsapi", "pin is not made of digits, reprompting");
        return Ok(fsapi::reprompt(destination, &settings));
    };
    let Some(route) = find(state, scope, &pin).await? else {
        debug!(target: "fsapi", "pin matches no meeting, reprompting");
        return Ok(fsapi::reprompt(destination, &settings));
    };
    let Some(host) = route.server.as_ref().and_then(|server| SipHost::from_url(&server.url)) else {
        warn!(
            target: "fsapi",
            meeting = %route.meeting.id,
            server = %route.meeting.server_id,
            "the meeting's server is gone or its URL has no usable host; reprompting"
        );
        return Ok(fsapi::reprompt(destination, &settings));
    };
    let caller_id = fsapi::caller_id(
        params.get("Caller-Caller-ID-Name"),
        params.get("Caller-Privacy-Hide-Name"),
        params.get("Caller-Privacy-Hide-Number"),
    );
    info!(target: "fsapi", meeting = %route.meeting.id, server = %route.meeting.server_id, "bridging a dial-in call");
    Ok(fsapi::bridge(&BridgeTarget {
        destination,
        meeting_id: route.meeting.id.as_str(),
        caller_id: &caller_id,
        pin: &pin,
        host: &host,
    }))
}

/// The meeting of `pin`, or of its breakout parent, that `scope` reaches.
async fn find(state: &AppState, scope: &Scope, pin: &Pin) -> Result<Option<MeetingRoute>, StoreError> {
    for voice_bridge in std::iter::once(pin.as_str()).chain(pin.breakout_parent()) {
        if let Some(route) = state.store.find_meeting_by_voice_bridge(voice_bridge).await?
            && scope.reaches(&route)
        {
            return Ok(Some(route));
        }
    }
    Ok(None)
}

/// HTTP 401 asking for Basic credentials (Rails' answer).
fn access_denied(url_host: Option<&str>) -> Response {
    let challenge = format!("Basic realm=\"{}\"", fsapi::realm(url_host));
    let challenge =
        HeaderValue::from_str(&challenge).unwrap_or_else(|_| HeaderValue::from_static("Basic realm=\"Application\""));
    let mut response = (StatusCode::UNAUTHORIZED, fsapi::ACCESS_DENIED).into_response();
    response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response
}

/// HTTP 500 when the store cannot be reached.
fn store_unavailable(error: &StoreError) -> Response {
    warn!(target: "fsapi", %error, "meeting store unavailable");
    let mut response = StatusCode::INTERNAL_SERVER_ERROR.into_response();
    response.extensions_mut().insert(Outcome("internalError".to_owned()));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_wins_over_the_form_body() {
        let request = Request::post("/fsapi?section=dialplan&variable_pin=1").body(()).unwrap();
        let (parts, ()) = request.into_parts();
        let params = parameters(&parts, b"section=directory&variable_pin=2&Caller-Destination-Number=5+5", 10).unwrap();
        assert_eq!(params.get("section"), Some("dialplan"));
        assert_eq!(params.get("variable_pin"), Some("1"));
        assert_eq!(params.get("Caller-Destination-Number"), Some("5 5"));
        // A JSON (or any other non-form) body is not read as parameters.
        let request = Request::post("/fsapi").header("content-type", "application/json").body(()).unwrap();
        let (parts, ()) = request.into_parts();
        assert!(parameters(&parts, b"section=dialplan", 10).unwrap().is_empty());
        let request = Request::post("/fsapi")
            .header("content-type", "Application/X-WWW-Form-Urlencoded; charset=utf-8")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        assert_eq!(parameters(&parts, b"section=dialplan", 10).unwrap().get("section"), Some("dialplan"));
    }

    #[test]
    fn challenges() {
        let response = access_denied(Some("sl.example.com"));
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Basic realm=\"sl.example.com\"");
        assert_eq!(access_denied(None).headers()[header::WWW_AUTHENTICATE], "Basic realm=\"Application\"");
        assert_eq!(access_denied(Some("a\nb")).headers()[header::WWW_AUTHENTICATE], "Basic realm=\"Application\"");
    }
}
