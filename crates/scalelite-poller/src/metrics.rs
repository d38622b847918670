//! The poller's Prometheus metrics (documented in docs/METRICS.md).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use scalelite_store::Transition;
use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

/// Labels of per-server metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabel {
    /// Server id.
    pub server: String,
}

/// Labels of the state metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabels {
    /// Server id.
    pub server: String,
    /// `enabled`, `cordoned` or `disabled`.
    pub state: String,
}

/// Labels of usage metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TenantLabel {
    /// Tenant id, `-` for meetings without a tenant, `*` for the whole pool.
    pub tenant: String,
}

impl TenantLabel {
    /// The label of a usage row's tenant key (`""` becomes `-`).
    pub fn of(key: &str) -> Self {
        Self { tenant: if key.is_empty() { "-".to_owned() } else { key.to_owned() } }
    }
}

/// Labels of transition counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransitionLabel {
    /// `online`, `offline` or `drained`.
    pub transition: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;
type FloatCounter = Counter<f64, AtomicU64>;

/// Every metric the poller exports.
#[derive(Debug)]
pub struct PollerMetrics {
    /// 1 when the server is online.
    pub online: Family<ServerLabel, Gauge>,
    /// 1 for the server's current state, 0 for the others.
    pub state: Family<StateLabels, Gauge>,
    /// Load score as stored for placement.
    pub load: Family<ServerLabel, FloatGauge>,
    /// Meetings (breakouts included).
    pub meetings: Family<ServerLabel, Gauge>,
    /// Participants.
    pub users: Family<ServerLabel, Gauge>,
    /// Largest meeting's participants.
    pub largest_meeting: Family<ServerLabel, Gauge>,
    /// Video streams.
    pub videos: Family<ServerLabel, Gauge>,
    /// Duration of the last poll of the server.
    pub poll_seconds: Family<ServerLabel, FloatGauge>,
    /// Failed polls.
    pub poll_failures: Family<ServerLabel, Counter>,
    /// Duration of rounds.
    pub round_seconds: Histogram,
    /// Rounds run.
    pub rounds: Counter,
    /// Servers in the last round.
    pub servers: Gauge,
    /// 1 while this poller holds the lease.
    pub leader: Gauge,
    /// Meeting records removed because their meeting ended.
    pub meetings_removed: Counter,
    /// Stale copies of re-homed meetings ended on a server that came back.
    pub stale_copies_ended: Counter,
    /// Status changes caused by polls.
    pub transitions: Family<TransitionLabel, Counter>,
    /// 1 while the server is being drained with notice (0 once drained).
    pub draining: Family<ServerLabel, Gauge>,
    /// Seconds until the deadline of the server's drain.
    pub drain_seconds_left: Family<ServerLabel, Gauge>,
    /// Chat notices sent to meetings of draining servers.
    pub drain_notices: Counter,
    /// Meetings ended at a drain's deadline.
    pub drain_meetings_ended: Counter,
    /// Drains that finished (their server was disabled).
    pub drains_finished: Counter,
    /// Meeting-seconds accounted by this poller, per tenant.
    pub usage_meeting_seconds: Family<TenantLabel, FloatCounter>,
    /// Participant-seconds accounted by this poller, per tenant.
    pub usage_participant_seconds: Family<TenantLabel, FloatCounter>,
    /// Participants per tenant in the last accounted round.
    pub usage_participants: Family<TenantLabel, Gauge>,
    /// Rounds whose usage could not be written (store down, timed out).
    pub usage_failures: Counter,
    /// Tenants with a participants gauge.
    usage_known: Mutex<HashSet<String>>,
    /// Servers with drain series.
    drain_known: Mutex<HashSet<String>>,
    /// Servers that have per-server series.
    known: Mutex<HashSet<String>>,
}

impl Default for PollerMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl PollerMetrics {
    /// Fresh metrics.
    pub fn new() -> Self {
        Self {
            online: Family::default(),
            state: Family::default(),
            load: Family::default(),
            meetings: Family::default(),
            users: Family::default(),
            largest_meeting: Family::default(),
            videos: Family::default(),
            poll_seconds: Family::default(),
            poll_failures: Family::default(),
            round_seconds: Histogram::new([0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0]),
            rounds: Counter::default(),
            servers: Gauge::default(),
            leader: Gauge::default(),
            meetings_removed: Counter::default(),
            stale_copies_ended: Counter::default(),
            transitions: Family::default(),
            draining: Family::default(),
            drain_seconds_left: Family::default(),
            drain_notices: Counter::default(),
            drain_meetings_ended: Counter::default(),
            drains_finished: Counter::default(),
            usage_meeting_seconds: Family::default(),
            usage_participant_seconds: Family::default(),
            usage_participants: Family::default(),
            usage_failures: Counter::default(),
            usage_known: Mutex::new(HashSet::new()),
            drain_known: Mutex::new(HashSet::new()),
            known: Mutex::new(HashSet::new()),
        }
    }

    /// Registers every metric under the `scalelite_poller` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("scalelite_poller");
        r.register("server_online", "1 when the server is online", self.online.clone());
        r.register("server_state", "1 for the server's state (enabled, cordoned, disabled)", self.state.clone());
        r.register("server_load", "Load score used for placing new meetings", self.load.clone());
        r.register("server_meetings", "Meetings on the server (breakouts included)", self.meetings.clone());
        r.register("server_users", "Participants on the server", self.users.clone());
        r.register(
            "server_largest_meeting",
            "Participants in the server's largest meeting",
            self.largest_meeting.clone(),
        );
        r.register("server_videos", "Video streams on the server", self.videos.clone());
        r.register("server_poll_duration_seconds", "Duration of the server's last poll", self.poll_seconds.clone());
        r.register("server_poll_failures", "Failed polls of the server", self.poll_failures.clone());
        r.register("round_duration_seconds", "Duration of poll rounds", self.round_seconds.clone());
        r.register("rounds", "Poll rounds run by this poller", self.rounds.clone());
        r.register("servers", "Servers polled in the last round", self.servers.clone());
        r.register("leader", "1 while this poller holds the leader lease", self.leader.clone());
        r.register(
            "meetings_removed",
            "Meeting records removed because the meeting ended",
            self.meetings_removed.clone(),
        );
        r.register(
            "stale_copies_ended",
            "Copies of re-homed meetings ended on a server they were re-homed away from",
            self.stale_copies_ended.clone(),
        );
        r.register("transitions", "Server status changes caused by polls", self.transitions.clone());
        r.register("server_draining", "1 while the server is drained with notice", self.draining.clone());
        r.register(
            "server_drain_seconds_left",
            "Seconds until the deadline of the server's drain",
            self.drain_seconds_left.clone(),
        );
        r.register("drain_notices", "Chat notices sent to meetings of draining servers", self.drain_notices.clone());
        r.register(
            "drain_meetings_ended",
            "Meetings ended at the deadline of a drain",
            self.drain_meetings_ended.clone(),
        );
        r.register("drains_finished", "Drains whose server was found disabled", self.drains_finished.clone());
        r.register(
            "usage_meeting_seconds",
            "Meeting-seconds accounted by this poller per tenant (- no tenant, * the pool)",
            self.usage_meeting_seconds.clone(),
        );
        r.register(
            "usage_participant_seconds",
            "Participant-seconds accounted by this poller per tenant (- no tenant, * the pool)",
            self.usage_participant_seconds.clone(),
        );
        r.register(
            "usage_participants",
            "Participants per tenant in the last accounted round (- no tenant, * the pool)",
            self.usage_participants.clone(),
        );
        r.register("usage_failures", "Rounds whose usage could not be written", self.usage_failures.clone());
    }

    /// Records an accounted round: `rows` are the sample's (tenant key,
    /// meetings, participants) rows, credited `credited_ms` each. Gauges of
    /// tenants absent from the round are removed.
    pub fn record_usage(&self, rows: &[(String, i64, i64)], credited_ms: i64) {
        let seconds = credited_ms as f64 / 1000.0;
        let mut now = HashSet::with_capacity(rows.len());
        for (tenant, meetings, participants) in rows {
            let label = TenantLabel::of(tenant);
            self.usage_meeting_seconds.get_or_create(&label).inc_by(seconds * *meetings as f64);
            self.usage_participant_seconds.get_or_create(&label).inc_by(seconds * *participants as f64);
            self.usage_participants.get_or_create(&label).set(*participants);
            now.insert(label.tenant);
        }
        let gone: Vec<String> = {
            let mut known = self.usage_known.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let gone = known.difference(&now).cloned().collect();
            *known = now;
            gone
        };
        for tenant in gone {
            self.usage_participants.remove(&TenantLabel { tenant });
        }
    }

    /// Records what a round did for drains: the per-server gauges of the
    /// drains that exist now (series of drains gone are removed) and the
    /// counters.
    pub fn record_drains(&self, tick: &scalelite_fleet::drain::DrainTick) {
        self.drain_notices.inc_by(tick.notices_sent);
        self.drain_meetings_ended.inc_by(tick.meetings_ended);
        self.drains_finished.inc_by(tick.finished);
        let now: HashSet<String> = tick.drains.iter().map(|d| d.server_id.clone()).collect();
        for drain in &tick.drains {
            let label = ServerLabel { server: drain.server_id.clone() };
            self.draining.get_or_create(&label).set(i64::from(drain.state == "draining"));
            match drain.seconds_left {
                Some(left) if drain.state == "draining" => {
                    self.drain_seconds_left.get_or_create(&label).set(i64::try_from(left).unwrap_or(i64::MAX));
                }
                _ => {
                    self.drain_seconds_left.remove(&label);
                }
            }
        }
        let gone: Vec<String> = {
            let mut known = self.drain_known.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let gone = known.difference(&now).cloned().collect();
            *known = now;
            gone
        };
        for server in gone {
            let label = ServerLabel { server };
            self.draining.remove(&label);
            self.drain_seconds_left.remove(&label);
        }
    }

    /// Counts a transition.
    pub fn transition(&self, transition: Transition) {
        let name = match transition {
            Transition::CameOnline => "online",
            Transition::WentOffline => "offline",
            Transition::Drained => "drained",
        };
        self.transitions.get_or_create(&TransitionLabel { transition: name.into() }).inc();
    }

    /// Drops the per-server series of servers that no longer exist; `keep`
    /// is the current server list.
    pub fn retain_servers(&self, keep: HashSet<String>) {
        let gone: Vec<String> = {
            let mut known = self.known.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let gone = known.difference(&keep).cloned().collect();
            *known = keep;
            gone
        };
        for server in gone {
            let label = ServerLabel { server: server.clone() };
            self.online.remove(&label);
            self.load.remove(&label);
            self.meetings.remove(&label);
            self.users.remove(&label);
            self.largest_meeting.remove(&label);
            self.videos.remove(&label);
            self.poll_seconds.remove(&label);
            self.poll_failures.remove(&label);
            for state in ["enabled", "cordoned", "disabled"] {
                self.state.remove(&StateLabels { server: server.clone(), state: state.into() });
            }
        }
    }
}
