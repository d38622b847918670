//! The middleware stack, outermost first: observation (log line and
//! metrics), host authorization.

use std::borrow::Cow;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use tracing::{debug, info};

use crate::metrics::{CallLabel, OTHER_OUTCOME, RequestLabels, outcome_label};
use crate::response::Outcome;
use crate::state::AppState;

/// Call names used as metric labels (a fixed set: never ids or raw paths).
const CALLS: [&str; 19] = [
    "create",
    "join",
    "end",
    "isMeetingRunning",
    "getMeetingInfo",
    "getMeetings",
    "insertDocument",
    "analytics_callback",
    "getServers",
    "getServerInfo",
    "addServer",
    "updateServer",
    "deleteServer",
    "panicServer",
    "getTenants",
    "getTenantInfo",
    "addTenant",
    "updateTenant",
    "deleteTenant",
];

/// The metric label of a matched route.
pub fn call_label(route: Option<&str>) -> &'static str {
    match route {
        None => "unsupported",
        Some("/" | "/health_check") => "health_check",
        Some("/bigbluebutton/api") => "index",
        Some("/metrics") => "metrics",
        Some("/fsapi") => "fsapi",
        // Playback routes carry the record id: one label each, never the path.
        Some(path) if path.starts_with("/recording/{") => "playback",
        Some(path) if path.contains("/{record_id}") => "playback_resource",
        Some(path) => {
            let last = path.rsplit('/').next().unwrap_or("");
            let last = last.strip_suffix(".json").unwrap_or(last);
            CALLS.iter().find(|c| **c == last).copied().unwrap_or("unsupported")
        }
    }
}

/// Observes every request: one log line (method, matched route, status,
/// outcome key, duration; `info` for failures, `debug` for successes, since
/// a busy balancer answers tens of thousands of joins a second and nginx in
/// front keeps the access log) and the request metrics. The query string is
/// never logged: it carries checksums and passwords.
pub async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map(MatchedPath::as_str);
    let call = call_label(route);
    state.metrics.in_flight.inc();
    let response = next.run(request).await;
    state.metrics.in_flight.dec();
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
        debug!(target: "http", method = %method, route, status = status.as_u16(), duration_us, "request");
    } else {
        info!(
            target: "http",
            method = %method,
            route,
            status = status.as_u16(),
            outcome = %outcome,
            key = unknown_key.as_ref().map(tracing::field::debug),
            duration_us,
            "request failed"
        );
    }
    state.metrics.requests.get_or_create(&RequestLabels { call: Cow::Borrowed(call), outcome }).inc();
    state.metrics.duration.get_or_create(&CallLabel { call: Cow::Borrowed(call) }).observe(elapsed.as_secs_f64());
    response
}

/// Scalelite's host authorization: with `URL_HOST` set, only that host (and,
/// in multitenant mode, its sub-domains) is served; others get HTTP 403 with
/// an empty body. Paths containing `health_check` are exempt. The router
/// installs this layer only when `URL_HOST` is set.
pub async fn authorize_host(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(url_host) = state.config.url_host.as_deref() else {
        return next.run(request).await;
    };
    if request.uri().path().contains("health_check") {
        return next.run(request).await;
    }
    let headers = request.headers();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).or_else(|| request.uri().host());
    let forwarded = crate::origin::forwarded_host(headers);
    let allowed = |candidate: &str| host_matches(candidate, url_host, state.config.multitenancy);
    let ok = host.is_some_and(allowed) && forwarded.is_none_or(allowed);
    if ok { next.run(request).await } else { StatusCode::FORBIDDEN.into_response() }
}

fn host_matches(candidate: &str, url_host: &str, subdomains: bool) -> bool {
    let name = strip_port(candidate);
    name.eq_ignore_ascii_case(url_host)
        || (subdomains
            && name.len() > url_host.len() + 1
            && name[name.len() - url_host.len()..].eq_ignore_ascii_case(url_host)
            && name.as_bytes()[name.len() - url_host.len() - 1] == b'.')
}

pub(crate) fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split(']').next().map_or(host, |h| &h[1..]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_labels() {
        assert_eq!(call_label(Some("/bigbluebutton/api/join")), "join");
        assert_eq!(call_label(Some("/bigbluebutton/api")), "index");
        assert_eq!(call_label(Some("/bigbluebutton/api/analytics_callback")), "analytics_callback");
        assert_eq!(call_label(Some("/scalelite/api/getServers.json")), "getServers");
        assert_eq!(call_label(Some("/")), "health_check");
        assert_eq!(call_label(Some("/fsapi")), "fsapi");
        assert_eq!(call_label(None), "unsupported");
        assert_eq!(call_label(Some("/recording/{record_id}/{format}")), "playback");
        assert_eq!(call_label(Some("/presentation/{record_id}/{*path}")), "playback_resource");
    }

    #[test]
    fn hosts() {
        assert!(host_matches("sl.example.com", "sl.example.com", false));
        assert!(host_matches("SL.example.com:443", "sl.example.com", false));
        assert!(!host_matches("evil.com", "sl.example.com", false));
        assert!(!host_matches("a.sl.example.com", "sl.example.com", false));
        assert!(host_matches("a.sl.example.com", "sl.example.com", true));
        assert!(!host_matches("xsl.example.com", "sl.example.com", true));
    }
}
