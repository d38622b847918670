//! The middleware stack, outermost first: request log, host authorization.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use tracing::{debug, info};

use crate::response::Outcome;
use crate::state::AppState;

/// One log line per request: method, matched route, status, outcome key and
/// duration, at `info` for failures and `debug` for successes (a busy
/// balancer answers tens of thousands of joins a second; nginx in front keeps
/// the access log). The query string is never logged: it carries checksums
/// and passwords.
pub async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("(unmatched)", MatchedPath::as_str);
    let response = next.run(request).await;
    let duration_us = started.elapsed().as_micros() as u64;
    let status = response.status().as_u16();
    match response.extensions().get::<Outcome>() {
        Some(Outcome(key)) => info!(
            target: "http", method = %method, route, status, outcome = %key, duration_us, "request failed"
        ),
        None => debug!(target: "http", method = %method, route, status, duration_us, "request"),
    }
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
    let forwarded = headers
        .get_all("x-forwarded-host")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .next_back();
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

fn strip_port(host: &str) -> &str {
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
    fn hosts() {
        assert!(host_matches("sl.example.com", "sl.example.com", false));
        assert!(host_matches("SL.example.com:443", "sl.example.com", false));
        assert!(!host_matches("evil.com", "sl.example.com", false));
        assert!(!host_matches("a.sl.example.com", "sl.example.com", false));
        assert!(host_matches("a.sl.example.com", "sl.example.com", true));
        assert!(!host_matches("xsl.example.com", "sl.example.com", true));
    }
}
