//! The records the store reads and writes, as Scalelite models them.

use std::collections::HashMap;
use std::time::Duration;

use scalelite_core::load::parse_multiplier;
use scalelite_core::selection::{Needs, TagSpec, version_capability};
use scalelite_core::{MeetingId, Secret, ServerId, TenantId};

/// An administrative server state (`state` field of `server:<id>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ServerState {
    /// Takes new meetings and joins.
    Enabled,
    /// Draining: joins to existing meetings only.
    Cordoned,
    /// Off: no new meetings, no joins.
    Disabled,
}

impl ServerState {
    /// The stored string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Cordoned => "cordoned",
            Self::Disabled => "disabled",
        }
    }

    /// Parses a stored state.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "enabled" => Some(Self::Enabled),
            "cordoned" => Some(Self::Cordoned),
            "disabled" => Some(Self::Disabled),
            _ => None,
        }
    }
}

/// A BigBlueButton server as stored by Scalelite.
#[derive(Clone, Debug, PartialEq)]
pub struct Server {
    /// Server id.
    pub id: ServerId,
    /// API base URL, e.g. `https://bbb1.example.com/bigbluebutton/api`.
    pub url: String,
    /// The server's shared secret.
    pub secret: Secret,
    /// Tag, `None` when untagged.
    pub tag: Option<String>,
    /// `online` field equals `true`.
    pub online: bool,
    /// The raw `state` field; `None` on legacy and freshly added servers.
    pub state: Option<String>,
    /// Membership of `server_enabled` (decides the state of legacy servers).
    pub in_enabled_set: bool,
    /// The raw `load_multiplier` field (kept verbatim so it is re-emitted as
    /// Ruby wrote it).
    pub load_multiplier: Option<String>,
    /// Load from `server_load` or `cordoned_server_load`, as Scalelite reads it.
    pub load: Option<f64>,
    /// Poller statistics (`meetings`, `users`, `largest_meeting`, `videos`).
    pub stats: ServerStats,
    /// `bbb_version`.
    pub bbb_version: Option<String>,
    /// The server's region (`server_placement:<id>` in Redis, a key Ruby
    /// ignores), `None` when it has none. Read by the server listings and
    /// for a newly placed meeting's server; the Redis store leaves it (and
    /// [`Self::capabilities`]) empty in join routes and existing meetings'
    /// routes, which do not need it.
    pub region: Option<String>,
    /// Capabilities the operator declared (e.g. `livekit`), in order.
    pub capabilities: Vec<String>,
}

/// Statistics the poller stores in the server hash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Number of meetings (breakouts included).
    pub meetings: Option<u64>,
    /// Sum of participants.
    pub users: Option<u64>,
    /// Largest participant count.
    pub largest_meeting: Option<u64>,
    /// Sum of video streams.
    pub videos: Option<u64>,
}

impl Server {
    /// Builds a server from the fields of its `server:<id>` hash.
    pub fn from_hash(id: ServerId, hash: &HashMap<String, String>, in_enabled_set: bool) -> Option<Self> {
        let url = hash.get("url")?.clone();
        let number = |name: &str| hash.get(name).and_then(|v| v.parse().ok());
        Some(Self {
            id,
            url,
            secret: Secret::new(hash.get("secret").cloned().unwrap_or_default()),
            tag: hash.get("tag").filter(|t| !t.is_empty()).cloned(),
            online: hash.get("online").is_some_and(|v| v == "true"),
            state: hash.get("state").filter(|s| !s.is_empty()).cloned(),
            in_enabled_set,
            load_multiplier: hash.get("load_multiplier").filter(|s| !s.is_empty()).cloned(),
            load: None,
            stats: ServerStats {
                meetings: number("meetings"),
                users: number("users"),
                largest_meeting: number("largest_meeting"),
                videos: number("videos"),
            },
            bbb_version: hash.get("bbb_version").cloned(),
            region: None,
            capabilities: Vec::new(),
        })
    }

    /// Sets the region and declared capabilities from the fields of
    /// `server_placement:<id>` (`region`, `capabilities` `;`-joined).
    pub fn set_placement_fields(&mut self, hash: &HashMap<String, String>) {
        self.region = hash.get("region").map(|r| r.trim()).filter(|r| !r.is_empty()).map(str::to_owned);
        self.capabilities = scalelite_core::selection::parse_list(hash.get("capabilities").map(String::as_str));
    }

    /// The capabilities placement derives from what the poller learned:
    /// `bbb-<major>.<minor>` from `bbb_version`.
    pub fn automatic_capabilities(&self) -> Vec<String> {
        self.bbb_version.as_deref().and_then(version_capability).into_iter().collect()
    }

    /// Every capability the server offers: declared, then automatic.
    pub fn all_capabilities(&self) -> Vec<String> {
        let mut all = self.capabilities.clone();
        for auto in self.automatic_capabilities() {
            if !all.contains(&auto) {
                all.push(auto);
            }
        }
        all
    }

    /// The effective state: the stored one, else enabled/disabled from the
    /// legacy `server_enabled` set.
    pub fn effective_state(&self) -> ServerState {
        match self.state.as_deref() {
            Some("disabled") => ServerState::Disabled,
            Some("cordoned") => ServerState::Cordoned,
            Some("enabled") => ServerState::Enabled,
            // An unknown stored value is neither disabled nor cordoned for
            // Scalelite's predicates; treat it as enabled.
            Some(_) => ServerState::Enabled,
            None if self.in_enabled_set => ServerState::Enabled,
            None => ServerState::Disabled,
        }
    }

    /// Scalelite's `disabled?`.
    pub fn is_disabled(&self) -> bool {
        self.effective_state() == ServerState::Disabled
    }

    /// Scalelite's `cordoned?`.
    pub fn is_cordoned(&self) -> bool {
        self.effective_state() == ServerState::Cordoned
    }

    /// The load multiplier as a number (1.0 when unset or zero).
    pub fn multiplier(&self) -> f64 {
        parse_multiplier(self.load_multiplier.as_deref())
    }

    /// Whether meetings on this server can be joined and inspected.
    pub fn is_available(&self) -> bool {
        self.online && !self.is_disabled()
    }
}

/// A meeting's routing record (`meeting:<id>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meeting {
    /// The front-end's meeting id.
    pub id: MeetingId,
    /// The server hosting it.
    pub server_id: ServerId,
    /// The moderator password sent at creation.
    pub moderator_pw: String,
    /// The dial-in number.
    pub voice_bridge: String,
    /// Owning tenant (`None` when stored empty).
    pub tenant_id: Option<TenantId>,
}

impl Meeting {
    /// Builds a meeting from its hash; `None` if the hash is empty or has no
    /// server.
    pub fn from_hash(id: MeetingId, hash: &HashMap<String, String>) -> Option<Self> {
        let server_id = hash.get("server_id").filter(|s| !s.is_empty())?;
        Some(Self {
            id,
            server_id: ServerId::new(server_id.clone()),
            moderator_pw: hash.get("moderator_pw").cloned().unwrap_or_default(),
            voice_bridge: hash.get("voice_bridge").cloned().unwrap_or_default(),
            tenant_id: hash.get("tenant_id").filter(|t| !t.is_empty()).map(|t| TenantId::new(t.clone())),
        })
    }
}

/// A meeting together with its server record (`None` when the server was
/// deleted while the meeting mapping remained).
#[derive(Clone, Debug, PartialEq)]
pub struct MeetingRoute {
    /// The meeting.
    pub meeting: Meeting,
    /// Its server, if the record still exists.
    pub server: Option<Server>,
}

/// The outcome of routing a join.
#[derive(Clone, Debug, PartialEq)]
pub enum JoinRoute {
    /// No such meeting (or its server record is gone).
    NotFound,
    /// The server is offline or disabled; nothing was counted.
    Unavailable,
    /// The tenant's participant limit is reached; nothing was counted.
    LimitReached,
    /// Join here; the server's load was incremented by its multiplier.
    Ready {
        /// The server's API base URL.
        url: String,
        /// The server's secret, to sign the join URL.
        secret: Secret,
        /// The server (the API's join route cache counts later joins
        /// routed there with [`crate::MeetingStore::add_load`]).
        server_id: ServerId,
        /// The server's load multiplier (1.0 when unset or zero): what
        /// each join adds to its load.
        multiplier: f64,
    },
}

/// What a create asks the store to do for a meeting that may not exist yet.
#[derive(Clone, Debug)]
pub struct PlacementRequest {
    /// The meeting id.
    pub meeting_id: MeetingId,
    /// The tenant creating it.
    pub tenant_id: Option<TenantId>,
    /// The effective `meta_server-tag`.
    pub tags: TagSpec,
    /// Capabilities and preferred regions (`Needs::default()`: Scalelite's
    /// selection alone).
    pub needs: Needs,
    /// Moderator password to store for a new meeting.
    pub moderator_pw: String,
    /// Voice-bridge candidates, tried in order.
    pub voice_bridges: Vec<String>,
    /// TTL of the meeting record.
    pub ttl: Duration,
    /// Users reserved on the chosen server (× its multiplier).
    pub reserve_users: u32,
    /// The create parameters to keep for re-homing (`meeting_create:<id>`),
    /// written with a new record and with the same TTL; `None` keeps none
    /// (and removes what an earlier meeting of that id left). Its
    /// `placed_on` and `rehomed_from` are not read: the store keeps those itself.
    pub create: Option<StoredCreate>,
    /// Re-homing: an existing record still pointing to this server is
    /// replaced by a new placement (keeping the record's tenant), as if it
    /// did not exist, and the server is added to the stored create's
    /// `rehomed_from`. Nothing is written when no server can take it.
    pub replace_on: Option<ServerId>,
    /// The tenant's most concurrent meetings (`None`: no limit): a new
    /// meeting of `tenant_id` is refused ([`Placement::TenantLimit`]) when
    /// the tenant has that many meeting records already. An existing
    /// meeting, or one being re-homed, is never refused.
    pub max_meetings: Option<u32>,
}

/// A meeting's create parameters as the balancer keeps them for
/// re-homing: enough to create the meeting again, on another server, as
/// its first create did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredCreate {
    /// The create's parameters as the client sent them, URL-encoded
    /// (without `checksum`).
    pub params: String,
    /// The origin the create came in on (for the analytics callback URL),
    /// when `URL_HOST` does not fix it.
    pub origin: Option<String>,
    /// The server the record was placed on with these parameters (written
    /// by the store; ignored in a [`PlacementRequest`]). Parameters whose
    /// server differs from the record's belong to an earlier meeting of
    /// that id (the record was replaced by Ruby Scalelite) and are not used.
    pub placed_on: Option<ServerId>,
    /// Servers the meeting was re-homed away from, oldest first: a copy of
    /// the meeting one of them still runs is stale.
    pub rehomed_from: Vec<ServerId>,
}

impl StoredCreate {
    /// The stored `rehomed_from` list (`;`-joined ids) parsed.
    pub fn parse_rehomed_from(raw: &str) -> Vec<ServerId> {
        raw.split(';').filter(|s| !s.is_empty()).map(|s| ServerId::new(s.to_owned())).collect()
    }
}

/// The outcome of [`crate::MeetingStore::place_meeting`].
#[derive(Clone, Debug, PartialEq)]
pub enum Placement {
    /// The meeting already existed; nothing was written.
    Existing(MeetingRoute),
    /// A new meeting was recorded on `server` and load reserved there.
    Placed {
        /// The new record.
        meeting: Meeting,
        /// The chosen server.
        server: Server,
    },
    /// No server can take a meeting.
    NoServer,
    /// Required tags matched no server.
    TagUnavailable,
    /// The pool has servers, but none offers every needed capability.
    CapabilityUnavailable,
    /// The meeting id belongs to another tenant.
    TenantConflict,
    /// Every voice-bridge candidate was taken.
    VoiceBridgesExhausted,
    /// The tenant has [`PlacementRequest::max_meetings`] meetings already;
    /// nothing was written.
    TenantLimit,
}

/// A server to create (Scalelite's `Server.create!`): no `state` field and
/// not in `server_enabled`, so it starts disabled and offline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewServer {
    /// Its id.
    pub id: ServerId,
    /// API base URL.
    pub url: String,
    /// Secret.
    pub secret: Secret,
    /// `load_multiplier`, written verbatim (Scalelite writes `1.0` by default).
    pub load_multiplier: Option<String>,
    /// Tag, `None` for untagged.
    pub tag: Option<String>,
}

/// Changes to a server; `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerUpdate {
    /// New API base URL.
    pub url: Option<String>,
    /// New secret.
    pub secret: Option<Secret>,
    /// New `load_multiplier` string.
    pub load_multiplier: Option<String>,
    /// New tag: `Some(None)` removes it.
    pub tag: Option<Option<String>>,
    /// New state, with Scalelite's load bookkeeping (§6.1).
    pub state: Option<ServerState>,
    /// New region: `Some(None)` removes it.
    pub region: Option<Option<String>>,
    /// New declared capabilities (replacing the old ones; empty removes them).
    pub capabilities: Option<Vec<String>>,
}

impl ServerUpdate {
    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A meeting record with its remaining lifetime in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeetingRecord {
    /// The record.
    pub meeting: Meeting,
    /// Remaining TTL; `None` when the key has no expiry.
    pub ttl: Option<Duration>,
}

/// What one poll of a server found.
#[derive(Clone, Debug, PartialEq)]
pub enum PollResult {
    /// `getMeetings` answered `SUCCESS`.
    Reachable {
        /// The computed load (already × the multiplier).
        load: f64,
        /// `meetings`, `users`, `largest_meeting`, `videos`.
        stats: PollStats,
    },
    /// Transport error, timeout, non-XML or `FAILED`.
    Unreachable,
}

/// The statistics a successful poll stores.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PollStats {
    /// Meetings (breakouts included).
    pub meetings: u64,
    /// Sum of participants.
    pub users: u64,
    /// Largest participant count.
    pub largest_meeting: u64,
    /// Sum of video streams.
    pub videos: u64,
}

/// A poll result to save, with Scalelite's health hysteresis.
#[derive(Clone, Debug, PartialEq)]
pub struct PollSave {
    /// The server polled.
    pub server_id: ServerId,
    /// What the poll found.
    pub result: PollResult,
    /// `bbb_version` to store (`None` leaves it unchanged, e.g. after an error).
    pub bbb_version: Option<String>,
    /// `SERVER_HEALTHY_THRESHOLD`.
    pub healthy_threshold: u32,
    /// `SERVER_UNHEALTHY_THRESHOLD`.
    pub unhealthy_threshold: u32,
}

/// What saving a poll result did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PollSaved {
    /// The lease was lost: nothing was written.
    NotLeader,
    /// The server was deleted meanwhile: nothing was written.
    Gone,
    /// Saved. `online` and `state` are the values after the save.
    Saved {
        /// Whether the server is online now.
        online: bool,
        /// The state field after the save (`None` for legacy records).
        state: Option<String>,
        /// A transition this save caused.
        transition: Option<Transition>,
    },
}

/// A change of a server's status caused by the poller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    /// Offline → online (healthy threshold reached).
    CameOnline,
    /// Online → offline (unhealthy threshold reached).
    WentOffline,
    /// Cordoned with zero load → disabled.
    Drained,
}

/// What housekeeping removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// `meetings` members whose record had expired.
    pub stale_members: u64,
    /// `voice_bridges` entries pointing to no (or another) meeting.
    pub orphan_voice_bridges: u64,
}

/// A front-end's analytics callback, taken off a create
/// (`meta_analytics-callback-url`) and relayed when BBB posts the meeting's
/// analytics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnalyticsCallback {
    /// Where the front-end wants the analytics.
    pub url: String,
    /// The tenant whose create named the URL (multitenant mode).
    pub tenant_id: Option<TenantId>,
}

/// A drain with notice of one server (`scalelite-admin servers drain`): the
/// server is cordoned, its meetings are warned in chat at intervals and, at
/// the deadline, ended. Kept in the store so a poller that takes over the
/// lease carries it on. Times are epoch milliseconds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drain {
    /// The server drained.
    pub server_id: ServerId,
    /// When the drain started.
    pub started_ms: i64,
    /// When its meetings are ended; `None` waits for them to end.
    pub deadline_ms: Option<i64>,
    /// The operator's text, put into the notice template.
    pub message: Option<String>,
    /// When the last round of chat notices went out.
    pub last_notice_ms: Option<i64>,
    /// Chat notices sent so far (one per meeting and round).
    pub notices_sent: u64,
    /// Whether the log already said that the server has no
    /// `sendChatMessage` (so it says it once per drain).
    pub no_chat_logged: bool,
    /// Meetings ended at the deadline.
    pub meetings_ended: u64,
    /// When the server was found drained (disabled); `None` while draining.
    pub finished_ms: Option<i64>,
}

impl Drain {
    /// The record as stored (a JSON object).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "server_id": self.server_id.as_str(),
            "started_ms": self.started_ms,
            "deadline_ms": self.deadline_ms,
            "message": self.message,
            "last_notice_ms": self.last_notice_ms,
            "notices_sent": self.notices_sent,
            "no_chat_logged": self.no_chat_logged,
            "meetings_ended": self.meetings_ended,
            "finished_ms": self.finished_ms,
        })
        .to_string()
    }

    /// Reads the stored `(server id, record)` pairs of a backend, in server
    /// id order; a record that does not read, or names another server, is
    /// left out with a warning.
    pub(crate) fn from_stored(rows: impl IntoIterator<Item = (String, String)>) -> Vec<Self> {
        let mut drains: Vec<Self> = rows
            .into_iter()
            .filter_map(|(id, record)| {
                let drain = Self::from_json(&record).filter(|d| d.server_id.as_str() == id);
                if drain.is_none() {
                    tracing::warn!(server.id = %id, "ignoring an unreadable drain record");
                }
                drain
            })
            .collect();
        drains.sort_by(|a, b| a.server_id.as_str().cmp(b.server_id.as_str()));
        drains
    }

    /// Reads a stored record; `None` when it is not one (a missing or
    /// mistyped member other than the server id and start reads as unset).
    pub fn from_json(raw: &str) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_str(raw).ok()?;
        let int = |name: &str| value.get(name).and_then(serde_json::Value::as_i64);
        let count = |name: &str| value.get(name).and_then(serde_json::Value::as_u64).unwrap_or(0);
        Some(Self {
            server_id: ServerId::new(value.get("server_id")?.as_str().filter(|s| !s.is_empty())?.to_owned()),
            started_ms: int("started_ms")?,
            deadline_ms: int("deadline_ms"),
            message: value.get("message").and_then(serde_json::Value::as_str).map(str::to_owned),
            last_notice_ms: int("last_notice_ms"),
            notices_sent: count("notices_sent"),
            no_chat_logged: value.get("no_chat_logged").and_then(serde_json::Value::as_bool).unwrap_or(false),
            meetings_ended: count("meetings_ended"),
            finished_ms: int("finished_ms"),
        })
    }
}

#[cfg(test)]
mod drain_tests {
    use super::*;

    #[test]
    fn drains_round_trip_and_junk_is_refused() {
        let drain = Drain {
            server_id: ServerId::from("bbb-1"),
            started_ms: 1,
            deadline_ms: Some(2),
            message: Some("Wartung \"heute\"".into()),
            last_notice_ms: None,
            notices_sent: 3,
            no_chat_logged: true,
            meetings_ended: 4,
            finished_ms: None,
        };
        assert_eq!(Drain::from_json(&drain.to_json()), Some(drain));
        for junk in ["", "[]", "{}", r#"{"server_id":"","started_ms":1}"#, r#"{"server_id":"x","started_ms":"1"}"#] {
            assert_eq!(Drain::from_json(junk), None, "{junk}");
        }
    }
}

/// What the poller's last round did, noted by the lease holder after each
/// round (`poller:last_round`; not part of Scalelite's layout) for the
/// operator console.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundNote {
    /// The lease holder that ran it (host and process id).
    pub holder: String,
    /// When it finished (epoch milliseconds).
    pub at_ms: i64,
    /// How long it took (milliseconds).
    pub duration_ms: u64,
    /// Servers polled.
    pub servers: u64,
    /// Servers that answered.
    pub reachable: u64,
}

impl RoundNote {
    /// The note as stored (a JSON object).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "holder": self.holder,
            "at_ms": self.at_ms,
            "duration_ms": self.duration_ms,
            "servers": self.servers,
            "reachable": self.reachable,
        })
        .to_string()
    }

    /// Reads a stored note; `None` when it is not one.
    pub fn from_json(raw: &str) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_str(raw).ok()?;
        let count = |name: &str| value.get(name).and_then(serde_json::Value::as_u64);
        Some(Self {
            holder: value.get("holder")?.as_str()?.to_owned(),
            at_ms: value.get("at_ms")?.as_i64()?,
            duration_ms: count("duration_ms")?,
            servers: count("servers")?,
            reachable: count("reachable")?,
        })
    }
}
