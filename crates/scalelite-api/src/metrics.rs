//! The API's Prometheus metrics (documented in docs/METRICS.md; served at
//! `GET /metrics` by [`crate::health::metrics`]).

use std::borrow::Cow;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use scalelite_bbb_client::CallError;

/// Labels of request counts: the BBB or management call, and the outcome
/// (`SUCCESS`, a known `messageKey` (see [`outcome_label`]), `other`, or
/// `http_<status>` for JSON errors).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    /// Call name (`join`, `getServers`, `health_check`, `unsupported`, ...).
    pub(crate) call: Cow<'static, str>,
    /// Outcome.
    pub(crate) outcome: Cow<'static, str>,
}

/// Outcome keys that are metric labels as they are: ours (the BBB error
/// catalogue, the playback refusals) and the `messageKey`s bbb-web answers.
/// Any other key a BBB server sends counts as [`OTHER_OUTCOME`], so a
/// hostile or broken server cannot grow the label set.
pub(crate) const KNOWN_OUTCOMES: [&str; 40] = [
    "SUCCESS",
    // Scalelite's catalogue (reference §3.3) and ours.
    "checksumError",
    "notFound",
    "missingParamMeetingID",
    "missingParamRecordID",
    "missingParamPublish",
    "missingParameters",
    "unsupportedRequest",
    "unsupportedContentType",
    "serverUnavailable",
    "serverTagUnavailable",
    "serverCapabilityUnavailable",
    "internalError",
    "validationError",
    // Per-tenant limits (`maxParticipantsReached` is bbb-web's, below).
    "maxMeetingsReached",
    "rateLimitExceeded",
    // Playback refusals.
    "unpublished",
    "invalidPath",
    "invalidToken",
    "invalidCookie",
    "noSecretKeyBase",
    // bbb-web.
    "idNotUnique",
    "duplicateWarning",
    "NotUniqueMeetingID",
    "nonUniqueVoiceBridge",
    "invalidMeetingId",
    "meetingForciblyEnded",
    "invalidPassword",
    "mismatchCreateTime",
    "mismatchCreateTimeParam",
    "recordingNotFound",
    "configNotFound",
    "noConfigFound",
    "maxParticipantsReached",
    "guestDeniedAccess",
    "parentMeetingIdMissing",
    "MissingParam",
    "missingParamFullName",
    "Params required",
    "sentEndMeetingRequest",
];

/// The outcome label of keys outside [`KNOWN_OUTCOMES`].
pub(crate) const OTHER_OUTCOME: &str = "other";

/// The metric label of an outcome key: the key itself when it is one of
/// [`KNOWN_OUTCOMES`], else [`OTHER_OUTCOME`].
pub(crate) fn outcome_label(key: &str) -> &'static str {
    KNOWN_OUTCOMES.iter().find(|known| **known == key).copied().unwrap_or(OTHER_OUTCOME)
}

/// Labels of per-call histograms.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CallLabel {
    /// Call name.
    pub(crate) call: Cow<'static, str>,
}

/// Labels of upstream errors.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct UpstreamLabels {
    /// The BBB call that failed (`create`, `getMeetings`, ...).
    pub(crate) call: String,
    /// `transport`, `timeout`, `no_returncode` or `failed`.
    pub(crate) kind: String,
}

/// Labels of re-homing attempts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RehomeLabels {
    /// `create` or `join`: the call that found the meeting's server offline.
    pub(crate) trigger: &'static str,
    /// `rehomed`, `no_parameters`, `no_server` or `failed`.
    pub(crate) outcome: &'static str,
}

/// Every metric the API exports.
#[derive(Debug)]
pub struct ApiMetrics {
    /// Requests by call and outcome.
    pub(crate) requests: Family<RequestLabels, Counter>,
    /// Request latency by call.
    pub(crate) duration: Family<CallLabel, Histogram>,
    /// Requests being served.
    pub in_flight: Gauge,
    /// Failed calls to BBB servers by call and kind.
    pub(crate) upstream_errors: Family<UpstreamLabels, Counter>,
    /// getMeetings fan-outs actually sent to the servers.
    pub(crate) get_meetings_fanouts: Counter,
    /// getMeetings calls answered from a copy past its TTL while a refresh
    /// runs behind it.
    pub(crate) get_meetings_stale_replies: Counter,
    /// getMeetings calls that waited for a fan-out.
    pub(crate) get_meetings_waits: Counter,
    /// Re-homing attempts by trigger and outcome.
    pub(crate) rehomes: Family<RehomeLabels, Counter>,
    /// Creates whose parameters were too large to keep for re-homing.
    pub(crate) rehome_params_too_large: Counter,
    /// Meetings placed outside every region their create preferred.
    pub(crate) region_fallbacks: Counter,
    /// Joins routed from the join route cache (no store round trip).
    pub(crate) join_route_cache_hits: Counter,
    /// Joins the join route cache could not route (asked the store).
    pub(crate) join_route_cache_misses: Counter,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiMetrics {
    /// Fresh metrics.
    pub(crate) fn new() -> Self {
        let rehomes = Family::<RehomeLabels, Counter>::default();
        // Every series from the start, so rates and alerts see a zero first.
        for trigger in ["create", "join"] {
            for outcome in ["rehomed", "no_parameters", "no_server", "failed"] {
                let _series = rehomes.get_or_create(&RehomeLabels { trigger, outcome });
            }
        }
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0])
            }),
            in_flight: Gauge::default(),
            upstream_errors: Family::default(),
            get_meetings_fanouts: Counter::default(),
            get_meetings_stale_replies: Counter::default(),
            get_meetings_waits: Counter::default(),
            rehomes,
            rehome_params_too_large: Counter::default(),
            region_fallbacks: Counter::default(),
            join_route_cache_hits: Counter::default(),
            join_route_cache_misses: Counter::default(),
        }
    }

    /// A registry holding these metrics under the `scalelite_api` prefix.
    pub(crate) fn registry(&self) -> Registry {
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
        r.register(
            "get_meetings_stale_replies",
            "getMeetings calls answered from a copy past its TTL while a refresh runs",
            self.get_meetings_stale_replies.clone(),
        );
        r.register(
            "get_meetings_waits",
            "getMeetings calls that waited for a fan-out",
            self.get_meetings_waits.clone(),
        );
        r.register(
            "rehomes",
            "Meetings whose server was offline, created again elsewhere (outcome rehomed) or not, by trigger",
            self.rehomes.clone(),
        );
        r.register(
            "rehome_params_too_large",
            "Creates whose parameters were over the cap kept for re-homing",
            self.rehome_params_too_large.clone(),
        );
        r.register(
            "placement_region_fallbacks",
            "Meetings placed outside every region their create preferred (each down or full)",
            self.region_fallbacks.clone(),
        );
        r.register(
            "join_route_cache_hits",
            "Joins routed from this process's join route cache, without a store round trip",
            self.join_route_cache_hits.clone(),
        );
        r.register(
            "join_route_cache_misses",
            "Joins the join route cache could not route, which asked the store",
            self.join_route_cache_misses.clone(),
        );
        registry
    }

    /// Counts a request in flight until the returned guard is dropped: when
    /// the request is answered, or when its client went away and the
    /// server dropped the request unanswered.
    pub(crate) fn count_in_flight(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(&self.in_flight)
    }

    /// Counts a re-homing attempt.
    pub(crate) fn rehome(&self, trigger: &'static str, outcome: &'static str) {
        self.rehomes.get_or_create(&RehomeLabels { trigger, outcome }).inc();
    }

    /// Counts a meeting placed outside its preferred regions.
    pub(crate) fn region_fallback(&self) {
        self.region_fallbacks.inc();
    }

    /// Counts a failed call to a BBB server.
    pub(crate) fn upstream_error(&self, call: &str, error: &CallError) {
        let kind = match error {
            CallError::Transport(_) => "transport",
            CallError::Timeout(_) => "timeout",
            CallError::NoReturncode => "no_returncode",
            CallError::Failed { .. } => "failed",
        };
        self.upstream_errors.get_or_create(&UpstreamLabels { call: call.to_owned(), kind: kind.to_owned() }).inc();
    }
}

/// A request counted in [`ApiMetrics::in_flight`] while this lives.
#[derive(Debug)]
pub(crate) struct InFlight<'a>(&'a Gauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_labels_are_bounded() {
        assert_eq!(outcome_label("checksumError"), "checksumError");
        assert_eq!(outcome_label("idNotUnique"), "idNotUnique");
        assert_eq!(outcome_label("invalidCookie"), "invalidCookie");
        assert_eq!(outcome_label("attacker-key-1"), OTHER_OUTCOME);
        assert_eq!(outcome_label(""), OTHER_OUTCOME);
        assert_eq!(outcome_label("CHECKSUMERROR"), OTHER_OUTCOME);
        // Every key our own errors produce is known.
        for error in [
            scalelite_core::BbbError::ChecksumError,
            scalelite_core::BbbError::MeetingNotFound,
            scalelite_core::BbbError::MissingParamMeetingId,
            scalelite_core::BbbError::InvalidMeetingId,
            scalelite_core::BbbError::MissingParamRecordId,
            scalelite_core::BbbError::MissingParamPublish,
            scalelite_core::BbbError::MissingParameters,
            scalelite_core::BbbError::UnsupportedRequest,
            scalelite_core::BbbError::UnsupportedContentType,
            scalelite_core::BbbError::ServerUnavailable,
            scalelite_core::BbbError::ServerTagUnavailable(String::new()),
            scalelite_core::BbbError::ServerCapabilityUnavailable(String::new()),
            scalelite_core::BbbError::internal("x"),
        ] {
            assert_ne!(outcome_label(error.message_key()), OTHER_OUTCOME, "{error:?}");
        }
        for refusal in [
            crate::playback::Refusal::NotFound,
            crate::playback::Refusal::Unpublished,
            crate::playback::Refusal::InvalidPath,
            crate::playback::Refusal::InvalidToken,
            crate::playback::Refusal::InvalidCookie,
            crate::playback::Refusal::NoSecretKeyBase,
        ] {
            assert_ne!(outcome_label(refusal.key()), OTHER_OUTCOME, "{refusal:?}");
        }
    }
}
