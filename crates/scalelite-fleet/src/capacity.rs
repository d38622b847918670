//! The autoscaler interface: how much capacity is left per tag, per region
//! and per capability, and which servers may be deleted now (`GET /scalelite/api/capacity`,
//! `scalelite-admin capacity --json`).

use std::collections::{BTreeMap, HashMap};

use futures::stream::{self, StreamExt};
use scalelite_bbb_client::Target;
use scalelite_core::ServerId;
use serde::Serialize;

use crate::drain::{self, DrainStatus};
use crate::{Fleet, FleetError, state_name};

/// The recording states a server still works on (or has not published):
/// a server holding any of them must not be deleted.
pub const PENDING_RECORDING_STATES: &str = "processing,processed";

/// The counters of a group of servers (a tag, a region, a capability or
/// the whole pool).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CapacityCounts {
    /// Servers in total.
    pub servers: usize,
    /// Enabled and online: they take new meetings.
    pub online: usize,
    /// Cordoned (draining), online or not.
    pub cordoned: usize,
    /// Disabled.
    pub disabled: usize,
    /// Enabled or cordoned but offline (unreachable).
    pub offline: usize,
    /// Sum of the load of online servers (× their multipliers).
    pub load: f64,
    /// Participants on online servers.
    pub users: u64,
    /// Meetings on online servers (breakouts included).
    pub meetings: u64,
    /// `online` × `CAPACITY_PER_SERVER`.
    pub capacity: f64,
    /// What the servers taking new meetings can still take: the sum over
    /// them of `CAPACITY_PER_SERVER` − load (not below 0).
    pub headroom: f64,
    /// `headroom` / `capacity`; 0 when nothing takes new meetings.
    pub headroom_ratio: f64,
}

/// Capacity of the servers sharing one tag (or of the whole pool).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TagCapacity {
    /// The tag; `null` for untagged servers (and for the pool).
    pub tag: Option<String>,
    /// Its counters.
    #[serde(flatten)]
    pub counts: CapacityCounts,
}

/// Capacity of the servers of one region.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RegionCapacity {
    /// The region; `null` for the servers without one.
    pub region: Option<String>,
    /// Its counters.
    #[serde(flatten)]
    pub counts: CapacityCounts,
}

/// Capacity of the servers offering one capability, declared or automatic
/// (`bbb-3.0`); a server offering several counts in each.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CapabilityCapacity {
    /// The capability.
    pub capability: String,
    /// Its counters.
    #[serde(flatten)]
    pub counts: CapacityCounts,
}

impl CapacityCounts {
    fn add(&mut self, server: &scalelite_store::Server, per_server: f64) {
        self.servers += 1;
        let state = server.effective_state();
        match state {
            scalelite_store::ServerState::Disabled => self.disabled += 1,
            scalelite_store::ServerState::Cordoned => self.cordoned += 1,
            scalelite_store::ServerState::Enabled if server.online => self.online += 1,
            scalelite_store::ServerState::Enabled => {}
        }
        if state != scalelite_store::ServerState::Disabled && !server.online {
            self.offline += 1;
        }
        if server.online {
            self.load += server.load.unwrap_or(0.0);
            self.users += server.stats.users.unwrap_or(0);
            self.meetings += server.stats.meetings.unwrap_or(0);
        }
        if server.online && state == scalelite_store::ServerState::Enabled {
            self.capacity += per_server;
            self.headroom += (per_server - server.load.unwrap_or(0.0)).max(0.0);
        }
        self.headroom_ratio = if self.capacity > 0.0 { self.headroom / self.capacity } else { 0.0 };
    }
}

/// One server in the capacity report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServerCapacity {
    /// Server id.
    pub id: String,
    /// API base URL (tells a scaler which machine it is).
    pub url: String,
    /// Tag, `null` when untagged.
    pub tag: Option<String>,
    /// Region, `null` when it has none.
    pub region: Option<String>,
    /// Capabilities the operator declared (`livekit`).
    pub capabilities: Vec<String>,
    /// Capabilities learned from the poller (`bbb-3.0`).
    pub automatic_capabilities: Vec<String>,
    /// `enabled`, `cordoned` or `disabled`.
    pub state: String,
    /// Whether the poller sees it online.
    pub online: bool,
    /// Load, `null` when out of the pool.
    pub load: Option<f64>,
    /// Participants at the last poll.
    pub users: u64,
    /// Meetings at the last poll (breakouts included).
    pub meetings: u64,
    /// Meetings the balancer routes to it.
    pub meeting_records: usize,
    /// Its drain with notice, if any.
    pub drain: Option<DrainStatus>,
    /// Recordings the server is processing or has processed but not
    /// published (its own `getRecordings`), asked only of servers that are
    /// otherwise removable; `null` when not asked or not answered.
    pub recordings_pending: Option<u64>,
    /// Whether the server may be deleted now: disabled (or drained), no
    /// meetings, and no recording processing or waiting on it.
    pub safe_to_remove: bool,
    /// Why it may not be removed (empty when it may).
    pub reason: String,
}

/// The whole report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CapacityReport {
    /// `CAPACITY_PER_SERVER`.
    pub capacity_per_server: f64,
    /// The pool as a whole.
    pub pool: TagCapacity,
    /// Per tag, untagged (`null`) first, then by name.
    pub tags: Vec<TagCapacity>,
    /// Per region, the servers without one (`null`) first, then by name.
    pub regions: Vec<RegionCapacity>,
    /// Per capability (declared or automatic), by name; only capabilities
    /// some server offers.
    pub capabilities: Vec<CapabilityCapacity>,
    /// Every server, by id.
    pub servers: Vec<ServerCapacity>,
}

impl Fleet {
    /// The capacity report with `per_server` as each server's capacity.
    /// Asks `getRecordings` (with the pending states) of each server that
    /// is disabled, online and holds no meetings, concurrently, each bounded
    /// by the client's timeouts. An offline server is not asked (and not
    /// removable: what it still holds is unknown).
    pub async fn capacity(&self, per_server: f64) -> Result<CapacityReport, FleetError> {
        let mut servers = self.store.servers().await?;
        servers.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        let now = drain::now_ms();
        let mut records: HashMap<ServerId, usize> = HashMap::new();
        for record in self.store.meetings().await? {
            *records.entry(record.meeting.server_id).or_default() += 1;
        }
        let drains: HashMap<ServerId, scalelite_store::Drain> =
            self.store.drains().await?.into_iter().map(|d| (d.server_id.clone(), d)).collect();
        let mut pool = CapacityCounts::default();
        let mut tags: BTreeMap<Option<String>, CapacityCounts> = BTreeMap::new();
        let mut regions: BTreeMap<Option<String>, CapacityCounts> = BTreeMap::new();
        let mut capabilities: BTreeMap<String, CapacityCounts> = BTreeMap::new();
        let mut report = Vec::with_capacity(servers.len());
        for server in &servers {
            pool.add(server, per_server);
            tags.entry(server.tag.clone()).or_default().add(server, per_server);
            regions.entry(server.region.clone()).or_default().add(server, per_server);
            let automatic = server.automatic_capabilities();
            for capability in server.all_capabilities() {
                capabilities.entry(capability).or_default().add(server, per_server);
            }
            let meeting_records = records.get(&server.id).copied().unwrap_or(0);
            let meetings = server.stats.meetings.unwrap_or(0);
            let reason = if !server.is_disabled() {
                if server.is_cordoned() { "draining: not disabled yet" } else { "enabled" }
            } else if meetings > 0 || meeting_records > 0 {
                "holds meetings"
            } else if !server.online {
                "offline: its recordings cannot be asked for"
            } else {
                ""
            };
            report.push(ServerCapacity {
                id: server.id.to_string(),
                url: server.url.clone(),
                tag: server.tag.clone(),
                region: server.region.clone(),
                capabilities: server.capabilities.clone(),
                automatic_capabilities: automatic,
                state: state_name(server),
                online: server.online,
                load: server.load,
                users: server.stats.users.unwrap_or(0),
                meetings,
                meeting_records,
                drain: drains.get(&server.id).map(|d| DrainStatus::of(d, Some(server), meeting_records, now)),
                recordings_pending: None,
                safe_to_remove: false,
                reason: reason.to_owned(),
            });
        }
        // Ask the candidates for their pending recordings.
        let by_id: HashMap<&str, &scalelite_store::Server> = servers.iter().map(|s| (s.id.as_str(), s)).collect();
        let calls: Vec<_> = report
            .iter()
            .enumerate()
            .filter(|(_, s)| s.reason.is_empty())
            .filter_map(|(i, s)| by_id.get(s.id.as_str()).map(|server| (i, *server)))
            .map(|(i, server)| async move { (i, self.pending_recordings(server).await) })
            .collect();
        let answers: Vec<(usize, Result<u64, String>)> =
            stream::iter(calls).buffer_unordered(self.settings.concurrency.max(1)).collect().await;
        for (i, answer) in answers {
            let entry = &mut report[i];
            match answer {
                Ok(0) => {
                    entry.recordings_pending = Some(0);
                    entry.safe_to_remove = true;
                }
                Ok(n) => {
                    entry.recordings_pending = Some(n);
                    entry.reason = format!("{n} recordings processing or waiting");
                }
                Err(error) => entry.reason = format!("cannot ask for its recordings: {error}"),
            }
        }
        Ok(CapacityReport {
            capacity_per_server: per_server,
            pool: TagCapacity { tag: None, counts: pool },
            tags: tags.into_iter().map(|(tag, counts)| TagCapacity { tag, counts }).collect(),
            regions: regions.into_iter().map(|(region, counts)| RegionCapacity { region, counts }).collect(),
            capabilities: capabilities
                .into_iter()
                .map(|(capability, counts)| CapabilityCapacity { capability, counts })
                .collect(),
            servers: report,
        })
    }

    /// How many recordings `server` is processing or holds processed but
    /// unpublished (its `getRecordings` with `state=processing,processed`).
    async fn pending_recordings(&self, server: &scalelite_store::Server) -> Result<u64, String> {
        let target = Target { url: &server.url, secret: &server.secret, online: server.online };
        let mut query = String::from("state=");
        scalelite_core::params::encode_component_into(&mut query, PENDING_RECORDING_STATES);
        let reply = self.bbb.get(&target, "getRecordings", &query).await.map_err(|e| e.to_string())?;
        Ok(reply.doc.child("recordings").map_or(0, |r| r.children_named("recording").count() as u64))
    }
}
