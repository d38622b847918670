#![doc = include_str!("../README.md")]

use std::io::IsTerminal;

pub mod process;
pub mod scrape;

use prometheus_client::registry::Registry;
use tracing_subscriber::EnvFilter;

/// `Content-Type` of [`encode`]'s output.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Installs the global subscriber for a service: `RUST_LOG` filters
/// (default `info`), `json` writes one JSON object per line. Logs go to
/// stderr.
pub fn init_logging(json: bool) {
    init_logging_with(json, "info");
}

/// [`init_logging`] with another default filter (the admin CLI uses `warn`,
/// so its output is not mixed with progress logs).
pub fn init_logging_with(json: bool, default_filter: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// `WWW-Authenticate` of a `/metrics` reply refused for want of the bearer
/// token (`METRICS_BEARER_TOKEN`).
pub const METRICS_CHALLENGE: &str = "Bearer realm=\"metrics\"";

/// Whether an `Authorization` header value is `Bearer <token>` (scheme in
/// any case, as RFC 9110 says; what Prometheus sends for `authorization:
/// {credentials: ...}` or `bearer_token_file`). Compared in constant time
/// over SHA-256 digests, so neither the token nor its length leaks.
pub fn bearer_authorized(authorization: Option<&[u8]>, token: &str) -> bool {
    use sha2::{Digest as _, Sha256};
    use subtle::ConstantTimeEq as _;
    let Some(given) = authorization.and_then(|value| {
        let value = value.trim_ascii();
        let split = value.iter().position(|b| *b == b' ')?;
        let (scheme, credentials) = value.split_at(split);
        scheme.eq_ignore_ascii_case(b"bearer").then(|| credentials.trim_ascii())
    }) else {
        return false;
    };
    let (given, wanted) = (Sha256::digest(given), Sha256::digest(token.as_bytes()));
    given.as_slice().ct_eq(wanted.as_slice()).into()
}

/// The registry in the Prometheus/OpenMetrics text format.
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM: the graceful-shutdown trigger of
/// every long-running binary. Tells systemd the service is stopping.
///
/// The handlers are installed when this is called, not when the future is
/// first polled, so a signal that arrives before then (a `kill` right after
/// the process answered its first request) still stops it gracefully
/// instead of killing it. Call it inside the runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        let wait = |installed: std::io::Result<tokio::signal::unix::Signal>| async move {
            match installed {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = wait(interrupt) => {},
            () = wait(terminate) => {},
        }
        process::notify_stopping();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        let ok = |header: &str| bearer_authorized(Some(header.as_bytes()), "s3cr3t-token");
        assert!(ok("Bearer s3cr3t-token"));
        assert!(ok("bearer  s3cr3t-token "));
        assert!(!ok("Bearer s3cr3t-toke"));
        assert!(!ok("Bearer s3cr3t-token2"));
        assert!(!ok("Basic s3cr3t-token"));
        assert!(!ok("s3cr3t-token"));
        assert!(!ok("Bearer"));
        assert!(!bearer_authorized(None, "s3cr3t-token"));
    }
}
