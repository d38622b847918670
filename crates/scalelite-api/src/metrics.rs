//! The API's Prometheus metrics (documented in docs/METRICS.md) and
//! `GET /metrics`.

use std::borrow::Cow;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::header;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use scalelite_bbb_client::CallError;

use crate::state::AppState;

/// Labels of request counts: the BBB or management call, and the outcome
/// (`SUCCESS`, a BBB `messageKey`, or `http_<status>` for JSON errors).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Call name (`join`, `getServers`, `health_check`, `unsupported`, ...).
    pub call: Cow<'static, str>,
    /// Outcome.
    pub outcome: Cow<'static, str>,
}

/// Labels of per-call histograms.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabel {
    /// Call name.
    pub call: Cow<'static, str>,
}

/// Labels of upstream errors.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabels {
    /// The BBB call that failed (`create`, `getMeetings`, ...).
    pub call: String,
    /// `transport`, `timeout`, `no_returncode` or `failed`.
    pub kind: String,
}

/// Every metric the API exports.
#[derive(Debug)]
pub struct ApiMetrics {
    /// Requests by call and outcome.
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency by call.
    pub duration: Family<CallLabel, Histogram>,
    /// Requests being served.
    pub in_flight: Gauge,
    /// Failed calls to BBB servers by call and kind.
    pub upstream_errors: Family<UpstreamLabels, Counter>,
    /// getMeetings fan-outs actually sent to the servers.
    pub get_meetings_fanouts: Counter,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiMetrics {
    /// Fresh metrics.
    pub fn new() -> Self {
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
            }),
            in_flight: Gauge::default(),
            upstream_errors: Family::default(),
            get_meetings_fanouts: Counter::default(),
        }
    }

    /// A registry holding these metrics under the `scalelite_api` prefix.
    pub fn registry(&self) -> Registry {
        let mut registry = Registry::default();
        let r = registry.sub_registry_with_prefix("scalelite_api");
        r.register("requests", "Requests by call and outcome", self.requests.clone());
        r.register("request_duration_seconds", "Request latency by call", self.duration.clone());
        r.register("requests_in_flight", "Requests being served", self.in_flight.clone());
        r.register("upstream_errors", "Failed calls to BBB servers by call and kind", self.upstream_errors.clone());
        r.register(
            "get_meetings_fanouts",
            "getMeetings fan-outs sent to the servers",
            self.get_meetings_fanouts.clone(),
        );
        registry
    }

    /// Counts a failed call to a BBB server.
    pub fn upstream_error(&self, call: &str, error: &CallError) {
        let kind = match error {
            CallError::Transport(_) => "transport",
            CallError::Timeout(_) => "timeout",
            CallError::NoReturncode => "no_returncode",
            CallError::Failed { .. } => "failed",
        };
        self.upstream_errors.get_or_create(&UpstreamLabels { call: call.to_owned(), kind: kind.to_owned() }).inc();
    }
}

/// `GET /metrics` in the Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, scalelite_telemetry::METRICS_CONTENT_TYPE)], scalelite_telemetry::encode(&state.registry))
        .into_response()
}
