//! The middleware stack, outermost first: the request id, Rails' default
//! security headers, observation (log line and metrics), host
//! authorization.

use std::borrow::Cow;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, StatusCode, header};
use tracing::{Instrument as _, debug, info, info_span};

use crate::api;
use crate::host::{forwarded_host, host_matches};
use crate::management;
use crate::metrics::{CallLabel, OTHER_OUTCOME, RequestLabels, outcome_label};
use crate::response::Outcome;
use crate::state::AppState;

/// The `call` label of unmatched requests.
const UNSUPPORTED: &str = "unsupported";

/// The metric label of a matched route: a BBB call's name
/// ([`api::call_label`]), a management call's ([`management::call_label`]),
/// or one fixed label for each other route. A fixed set, never an id or a
/// raw path.
pub(crate) fn call_label(route: Option<&str>) -> &'static str {
    let Some(route) = route else {
        return UNSUPPORTED;
    };
    match route {
        "/" | "/health_check" => "health_check",
        "/livez" => "livez",
        "/readyz" => "readyz",
        "/metrics" => "metrics",
        "/fsapi" => "fsapi",
        crate::upload::ROUTE => "recording_upload",
        // Playback routes carry the record id: one label each, never the path.
        path if path.starts_with("/recording/{") => "playback",
        path if path.contains("/{record_id}") => "playback_resource",
        path => api::call_label(path).or_else(|| management::call_label(path)).unwrap_or(UNSUPPORTED),
    }
}

/// `X-Request-Id`.
pub(crate) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of a request (a request extension): the `X-Request-Id` nginx or
/// another proxy sent, when usable, else a fresh UUID. Every reply carries
/// it back in `X-Request-Id`, and the request's log lines carry it as
/// `request_id`.
#[derive(Clone, Debug)]
pub(crate) struct RequestId(HeaderValue);

impl RequestId {
    /// The id: Rails' `ActionDispatch::RequestId` rule. An incoming id keeps
    /// its ASCII letters, digits, `_`, `-` and `@` (anything else is
    /// dropped, so it cannot forge log lines) and at most 255 of them; an
    /// id that is missing or has nothing left is replaced by a random
    /// UUID (Rails keeps an empty one).
    pub(crate) fn from_incoming(incoming: Option<&HeaderValue>) -> Self {
        let kept: Option<String> = incoming.map(|value| {
            value
                .as_bytes()
                .iter()
                .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'@'))
                .take(255)
                .map(|b| char::from(*b))
                .collect()
        });
        let id = match kept.filter(|id| !id.is_empty()) {
            Some(id) => id,
            None => uuid::Builder::from_random_bytes(rand::random()).into_uuid().to_string(),
        };
        // Only ASCII letters, digits and `_-@`: always a valid header value.
        Self(HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid")))
    }

    /// The id as text.
    pub(crate) fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }
}

/// Gives every request its [`RequestId`] and every reply its
/// `X-Request-Id`.
pub(crate) async fn request_id(mut request: Request, next: Next) -> Response {
    let id = RequestId::from_incoming(request.headers().get(X_REQUEST_ID));
    let value = id.0.clone();
    request.extensions_mut().insert(id);
    let mut response = next.run(request).await;
    response.headers_mut().insert(X_REQUEST_ID, value);
    response
}

/// The headers Rails 7.2 adds to every reply (`config.load_defaults 7.2`:
/// `action_dispatch.default_headers`), as Scalelite sends them.
pub(crate) const SECURITY_HEADERS: [(HeaderName, &str); 5] = [
    (header::X_FRAME_OPTIONS, "SAMEORIGIN"),
    (header::X_XSS_PROTECTION, "0"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (HeaderName::from_static("x-permitted-cross-domain-policies"), "none"),
    (header::REFERRER_POLICY, "strict-origin-when-cross-origin"),
];

/// Adds [`SECURITY_HEADERS`] to every reply (a handler's own value of one
/// of them wins).
pub(crate) async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    }
    response
}

/// Observes every request: one log line (method, matched route, status,
/// outcome key, duration; `info` for failures, `debug` for successes, since
/// a busy balancer answers tens of thousands of joins a second and nginx in
/// front keeps the access log) and the request metrics. The query string is
/// never logged: it carries checksums and passwords. The handler runs in a
/// `request` span holding the [`RequestId`], so whatever it logs carries
/// the id too.
pub(crate) async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map(MatchedPath::as_str);
    let call = match route {
        Some(route) if crate::console::is_console_route(&state, route) => "console",
        _ => call_label(route),
    };
    let request_id = request.extensions().get::<RequestId>().cloned();
    let request_id = request_id.as_ref().map_or("", RequestId::as_str);
    let in_flight = state.metrics.count_in_flight();
    let response = next.run(request).instrument(info_span!("request", request_id)).await;
    drop(in_flight);
    let elapsed = started.elapsed();
    let status = response.status();
    // The label set is bounded: a key a BBB server made up counts as `other`
    // (and is logged, escaped and shortened, as `key`).
    let key = response.extensions().get::<Outcome>().map(|Outcome(key)| key.as_str());
    let outcome: Cow<'static, str> = match key {
        Some(key) => Cow::Borrowed(outcome_label(key)),
        None if status.is_client_error() || status.is_server_error() => Cow::Owned(format!("http_{}", status.as_u16())),
        None => Cow::Borrowed("SUCCESS"),
    };
    let unknown_key = key.filter(|_| outcome == OTHER_OUTCOME).map(|key| key.chars().take(64).collect::<String>());
    let duration_us = elapsed.as_micros() as u64;
    let route = route.unwrap_or("(unmatched)");
    if outcome == "SUCCESS" {
        debug!(target: "http", method = %method, route, status = status.as_u16(), duration_us, request_id, "request");
    } else {
        info!(
            target: "http",
            method = %method,
            route,
            status = status.as_u16(),
            outcome = %outcome,
            key = unknown_key.as_ref().map(tracing::field::debug),
            duration_us,
            request_id,
            "request failed"
        );
    }
    state.metrics.requests.get_or_create(&RequestLabels { call: Cow::Borrowed(call), outcome }).inc();
    state.metrics.duration.get_or_create(&CallLabel { call: Cow::Borrowed(call) }).observe(elapsed.as_secs_f64());
    response
}

/// Scalelite's host authorization: with `URL_HOST` set, only that host (and,
/// in multitenant mode, its sub-domains) is served; others get HTTP 403 with
/// an empty body. Paths containing `health_check`, and the probes `/livez`
/// and `/readyz`, are exempt (probes come with an address, not a name). The router
/// installs this layer only when `URL_HOST` is set.
pub(crate) async fn authorize_host(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(url_host) = state.config.url_host.as_deref() else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    if path.contains("health_check") || path == "/livez" || path == "/readyz" {
        return next.run(request).await;
    }
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).or_else(|| request.uri().host());
    let forwarded = forwarded_host(headers);
    let allowed = |candidate: &str| host_matches(candidate, url_host, state.config.multitenancy);
    let ok = host.is_some_and(allowed) && forwarded.is_none_or(allowed);
    if ok { next.run(request).await } else { StatusCode::FORBIDDEN.into_response() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_has_its_own_label() {
        let bbb = api::CALLS.iter().map(|call| (format!("{}/{}", api::PREFIX, call.name), call.name));
        let management = management::CALLS.iter().flat_map(|call| {
            [format!("/scalelite/api/{}", call.name), format!("/scalelite/api/{}.json", call.name)]
                .map(|path| (path, call.name))
        });
        let fixed = [
            ("/bigbluebutton/api", "index"),
            ("/", "health_check"),
            ("/health_check", "health_check"),
            ("/livez", "livez"),
            ("/readyz", "readyz"),
            ("/metrics", "metrics"),
            ("/fsapi", "fsapi"),
            ("/scalelite/upload/{name}", "recording_upload"),
            ("/recording/{record_id}/{format}", "playback"),
            ("/presentation/{record_id}", "playback_resource"),
            ("/presentation/{record_id}/{*path}", "playback_resource"),
        ]
        .map(|(path, label)| (path.to_owned(), label));
        let mut labels = std::collections::HashSet::new();
        for (path, label) in bbb.chain(management).chain(fixed) {
            assert_eq!(call_label(Some(&path)), label, "{path}");
            labels.insert(label);
        }
        // The recordings calls, which a hand-kept list once missed.
        for call in ["getRecordings", "publishRecordings", "updateRecordings", "deleteRecordings"] {
            assert!(labels.contains(call), "{call}");
        }
        assert!(!labels.contains(UNSUPPORTED));
        assert_eq!(call_label(None), UNSUPPORTED);
        assert_eq!(call_label(Some("/bigbluebutton/api/nope")), UNSUPPORTED);
        assert_eq!(call_label(Some("/bigbluebutton/apijoin")), UNSUPPORTED);
    }

    #[test]
    fn request_ids_follow_rails() {
        let incoming = |raw: &str| RequestId::from_incoming(Some(&HeaderValue::from_str(raw).unwrap()));
        assert_eq!(incoming("7f3e1d2c-4b5a-6978_8796@lb").as_str(), "7f3e1d2c-4b5a-6978_8796@lb");
        assert_eq!(incoming("a b\tc;d=\"e\"").as_str(), "abcde");
        assert_eq!(incoming(&"x".repeat(300)).as_str().len(), 255);
        let generated = [RequestId::from_incoming(None), incoming("  ;;  ")];
        for id in &generated {
            assert!(uuid::Uuid::parse_str(id.as_str()).is_ok_and(|u| u.get_version_num() == 4), "{id:?}");
        }
        assert_ne!(generated[0].as_str(), generated[1].as_str());
    }
}
