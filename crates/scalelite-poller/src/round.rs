//! One poll round.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::stream::{self, StreamExt};
use scalelite_bbb_client::{BbbClient, CallError, Target};
use scalelite_core::load::{LoadModel, MeetingSample};
use scalelite_core::params::encode_component_into;
use scalelite_core::xml::Element;
use scalelite_core::{MeetingId, ServerId, TenantId};
use scalelite_store::usage::TenantUsage;
use scalelite_store::{
    Lease, Meeting, MeetingRecord, PollResult, PollSave, PollSaved, PollStats, Pruned, Server, Store, StoreError,
    Transition,
};
use tracing::{debug, info, warn};

use crate::metrics::{PollerMetrics, ServerLabel, StateLabels};

/// Settings of a round.
#[derive(Clone, Debug)]
pub struct RoundSettings {
    /// Servers polled at once (`POLLER_THREADS`).
    pub concurrency: usize,
    /// `SERVER_HEALTHY_THRESHOLD`.
    pub healthy_threshold: u32,
    /// `SERVER_UNHEALTHY_THRESHOLD`.
    pub unhealthy_threshold: u32,
    /// `LOAD_MIN_USER_COUNT`, `LOAD_JOIN_BUFFER_TIME`.
    pub load: LoadModel,
    /// `DEFAULT_MEETING_TTL`, to tell a meeting record's age from its TTL.
    pub meeting_ttl: Duration,
    /// How long a create may take to reach its server
    /// (`CONNECT_TIMEOUT` + `RESPONSE_TIMEOUT`): younger records are never
    /// removed, even if their server does not list them yet.
    pub create_grace: Duration,
    /// Drains with notice: the notice interval and templates.
    pub drain: scalelite_fleet::DrainSettings,
}

/// What a round did.
#[derive(Clone, Debug, Default)]
pub struct RoundReport {
    /// How long it took.
    pub duration: Duration,
    /// Servers polled.
    pub servers: usize,
    /// Servers that answered `getMeetings`.
    pub reachable: usize,
    /// Status changes.
    pub transitions: Vec<(ServerId, Transition)>,
    /// Meeting records checked with `getMeetingInfo`.
    pub meetings_checked: usize,
    /// Meeting records removed (ended, or their server is gone).
    pub meetings_removed: usize,
    /// Stale copies of re-homed meetings ended.
    pub stale_copies_ended: usize,
    /// Housekeeping.
    pub pruned: Pruned,
    /// The lease was lost during the round; its remaining writes were refused.
    pub lost_lease: bool,
    /// What the round did for drains with notice.
    pub drains: scalelite_fleet::drain::DrainTick,
    /// Meetings and participants per tenant on the servers that answered,
    /// for usage accounting (tenant `""`: no tenant or no record).
    pub usage: Vec<TenantUsage>,
}

impl RoundReport {
    /// The one `info` line a round leaves in the log.
    pub fn log(&self) {
        info!(
            servers = self.servers,
            reachable = self.reachable,
            meetings_removed = self.meetings_removed,
            duration_ms = self.duration.as_millis() as u64,
            "poll round"
        );
    }
}

/// The outcome of polling one server.
struct Polled {
    server: Server,
    result: PollResult,
    /// Meeting ids the server listed (when reachable).
    listed: Option<HashSet<String>>,
    /// Participants of each meeting the server listed.
    participants: HashMap<String, u64>,
    /// Participants per listed meeting, breakout rooms left out.
    counts: Vec<(String, u64)>,
    version: Option<String>,
    elapsed: Duration,
    error: Option<CallError>,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn number(element: &Element, name: &str) -> u64 {
    element.text_at(name).and_then(|t| t.trim().parse().ok()).unwrap_or(0)
}

/// Participants per meeting of a `getMeetings` reply, for usage
/// accounting. Breakout rooms are left out: their participants are users
/// of the parent meeting, which BBB keeps listing.
pub fn participant_counts(doc: &Element) -> Vec<(String, u64)> {
    let Some(meetings) = doc.child("meetings") else { return Vec::new() };
    meetings
        .children_named("meeting")
        .filter(|m| m.text_at("isBreakout").is_none_or(|b| b.trim() != "true"))
        .filter_map(|m| Some((m.text_at("meetingID")?, number(m, "participantCount"))))
        .collect()
}

/// Statistics and load from a `getMeetings` reply (Scalelite's formula).
/// Sums saturate: the counts are whatever the server sent.
pub fn measure(doc: &Element, load: &LoadModel, multiplier: f64, now_ms: i64) -> (f64, PollStats, HashSet<String>) {
    let meetings: Vec<&Element> =
        doc.child("meetings").map(|m| m.children_named("meeting").collect()).unwrap_or_default();
    let mut stats = PollStats { meetings: meetings.len() as u64, ..Default::default() };
    let mut samples = Vec::with_capacity(meetings.len());
    let mut ids = HashSet::with_capacity(meetings.len());
    for meeting in meetings {
        let participants = number(meeting, "participantCount");
        stats.users = stats.users.saturating_add(participants);
        stats.largest_meeting = stats.largest_meeting.max(participants);
        let videos = number(meeting, "videoCount");
        stats.videos = stats.videos.saturating_add(videos);
        samples.push(MeetingSample {
            participants,
            moderators: number(meeting, "moderatorCount"),
            videos,
            created_ms: meeting.text_at("createTime").and_then(|t| t.trim().parse().ok()),
            is_breakout: meeting.text_at("isBreakout").is_some_and(|b| b.trim() == "true"),
        });
        if let Some(id) = meeting.text_at("meetingID") {
            ids.insert(id);
        }
    }
    (load.server_load(&samples, now_ms, multiplier), stats, ids)
}

/// The participants of each meeting of a `getMeetings` reply, by id.
fn participants_by_meeting(doc: &Element) -> HashMap<String, u64> {
    doc.child("meetings")
        .map(|m| {
            m.children_named("meeting")
                .filter_map(|meeting| Some((meeting.text_at("meetingID")?, number(meeting, "participantCount"))))
                .collect()
        })
        .unwrap_or_default()
}

/// The participants in each tenant's meetings: the meetings each online
/// server listed, attributed through their records (a meeting without a
/// tenant, or not listed, counts for nobody).
fn tenant_participants(
    records: &[MeetingRecord],
    participants: &HashMap<ServerId, HashMap<String, u64>>,
) -> Vec<(TenantId, u64)> {
    let mut totals: HashMap<&TenantId, u64> = HashMap::new();
    for record in records {
        let Some(tenant) = &record.meeting.tenant_id else { continue };
        let count = participants
            .get(&record.meeting.server_id)
            .and_then(|listed| listed.get(record.meeting.id.as_str()))
            .copied()
            .unwrap_or(0);
        let total = totals.entry(tenant).or_default();
        *total = total.saturating_add(count);
    }
    let mut totals: Vec<(TenantId, u64)> =
        totals.into_iter().filter(|(_, n)| *n > 0).map(|(t, n)| (t.clone(), n)).collect();
    totals.sort();
    totals
}

async fn poll_server(bbb: &BbbClient, server: Server, load: &LoadModel) -> Polled {
    let started = Instant::now();
    // The poller always uses the normal timeouts.
    let target = Target { url: &server.url, secret: &server.secret, online: true };
    let (meetings, version) = tokio::join!(bbb.get(&target, "getMeetings", ""), bbb.get(&target, "", ""));
    let version = version.ok().map(|reply| reply.doc.text_at("bbbVersion").unwrap_or_default());
    let elapsed = started.elapsed();
    match meetings {
        Ok(reply) => {
            let (load, stats, ids) = measure(&reply.doc, load, server.multiplier(), now_ms());
            Polled {
                server,
                result: PollResult::Reachable { load, stats },
                listed: Some(ids),
                participants: participants_by_meeting(&reply.doc),
                counts: participant_counts(&reply.doc),
                version,
                elapsed,
                error: None,
            }
        }
        Err(error) => Polled {
            server,
            result: PollResult::Unreachable,
            listed: None,
            participants: HashMap::new(),
            counts: Vec::new(),
            version,
            elapsed,
            error: Some(error),
        },
    }
}

/// Runs one round while holding `lease`. `orphans` carries the orphan voice
/// bridges seen last round (see `PollerStore::prune`).
pub async fn poll_round(
    store: &dyn Store,
    bbb: &BbbClient,
    settings: &RoundSettings,
    lease: &Lease,
    metrics: &PollerMetrics,
    orphans: &mut Vec<String>,
) -> Result<RoundReport, StoreError> {
    let started = Instant::now();
    let servers = store.servers().await?;
    let mut report = RoundReport { servers: servers.len(), ..Default::default() };
    metrics.servers.set(servers.len() as i64);
    let ids: HashSet<String> = servers.iter().map(|s| s.id.to_string()).collect();
    metrics.retain_servers(ids.clone());

    let mut polled = stream::iter(servers)
        .map(|server| poll_server(bbb, server, &settings.load))
        .buffer_unordered(settings.concurrency.max(1));
    let mut listed: HashMap<ServerId, HashSet<String>> = HashMap::new();
    let mut participants: HashMap<ServerId, HashMap<String, u64>> = HashMap::new();
    let mut counts: Vec<(String, u64)> = Vec::new();
    while let Some(p) = polled.next().await {
        let save = PollSave {
            server_id: p.server.id.clone(),
            result: p.result.clone(),
            bbb_version: p.version.clone(),
            healthy_threshold: settings.healthy_threshold,
            unhealthy_threshold: settings.unhealthy_threshold,
        };
        let label = ServerLabel { server: p.server.id.to_string() };
        metrics.poll_seconds.get_or_create(&label).set(p.elapsed.as_secs_f64());
        if let Some(error) = &p.error {
            metrics.poll_failures.get_or_create(&label).inc();
            warn!(server.id = %p.server.id, %error, "poll failed");
        }
        match store.save_poll(lease, &save).await? {
            PollSaved::NotLeader => {
                warn!("lost the poller lease during a round; stopping it");
                report.lost_lease = true;
                return Ok(report);
            }
            PollSaved::Gone => continue,
            PollSaved::Saved { online, state, transition } => {
                if let PollResult::Reachable { .. } = p.result {
                    report.reachable += 1;
                    // Every server that answered counts for usage, online yet or not.
                    counts.extend(p.counts);
                    // Only servers that are online now are checked for ended meetings.
                    if online {
                        listed.insert(p.server.id.clone(), p.listed.unwrap_or_default());
                        participants.insert(p.server.id.clone(), p.participants);
                    }
                }
                if let Some(transition) = transition {
                    info!(server.id = %p.server.id, ?transition, "server status changed");
                    metrics.transition(transition);
                    report.transitions.push((p.server.id.clone(), transition));
                }
                record_server(metrics, &label, &p.server, &p.result, online, state.as_deref());
            }
        }
    }
    drop(polled);

    let records = store.meetings().await?;
    // Per-tenant participant limits: the count joins are checked against.
    if !store.save_tenant_participants(lease, &tenant_participants(&records, &participants)).await? {
        warn!("lost the poller lease during a round; stopping it");
        report.lost_lease = true;
        return Ok(report);
    }
    report.usage = usage_by_tenant(&counts, &records);
    let stale = end_stale_copies(store, bbb, settings, &listed, &records).await?;
    report.stale_copies_ended = stale;
    metrics.stale_copies_ended.inc_by(stale as u64);
    let (checked, removed) = clean_meetings(store, bbb, settings, records, &listed, &ids, started).await?;
    report.meetings_checked = checked;
    report.meetings_removed = removed;
    metrics.meetings_removed.inc_by(removed as u64);
    let (pruned, now_orphans) = store.prune(orphans).await?;
    *orphans = now_orphans;
    report.pruned = pruned;
    // Drains with notice: after the saves, so a server the round disabled
    // finishes its drain now. A failure here does not fail the round (its
    // polls are saved); the next round tries again.
    let now = scalelite_fleet::drain::now_ms();
    match scalelite_fleet::drain::drain_tick(store, bbb, &settings.drain, settings.concurrency, now).await {
        Ok(tick) => {
            metrics.record_drains(&tick);
            report.drains = tick;
        }
        Err(error) => warn!(%error, "drains: the store failed; retried next round"),
    }
    report.duration = started.elapsed();
    metrics.rounds.inc();
    metrics.round_seconds.observe(report.duration.as_secs_f64());
    debug!(?report, "poll round done");
    Ok(report)
}

/// Meetings and participants per tenant: a listed meeting belongs to the
/// tenant of its record (`""` without a tenant or a record).
fn usage_by_tenant(counts: &[(String, u64)], records: &[MeetingRecord]) -> Vec<TenantUsage> {
    let tenants: HashMap<&str, &str> = records
        .iter()
        .map(|r| (r.meeting.id.as_str(), r.meeting.tenant_id.as_ref().map_or("", |t| t.as_str())))
        .collect();
    let mut by_tenant: HashMap<&str, TenantUsage> = HashMap::new();
    for (id, participants) in counts {
        let tenant = tenants.get(id.as_str()).copied().unwrap_or("");
        let usage =
            by_tenant.entry(tenant).or_insert_with(|| TenantUsage { tenant: tenant.to_owned(), ..Default::default() });
        usage.meetings += 1;
        usage.participants = usage.participants.saturating_add(*participants);
    }
    let mut usage: Vec<TenantUsage> = by_tenant.into_values().collect();
    usage.sort_by(|a, b| a.tenant.cmp(&b.tenant));
    usage
}

fn record_server(
    metrics: &PollerMetrics,
    label: &ServerLabel,
    server: &Server,
    result: &PollResult,
    online: bool,
    state: Option<&str>,
) {
    metrics.online.get_or_create(label).set(i64::from(online));
    let state = match state {
        Some(s) => s.to_owned(),
        None if server.in_enabled_set => "enabled".to_owned(),
        None => "disabled".to_owned(),
    };
    for name in ["enabled", "cordoned", "disabled"] {
        let labels = StateLabels { server: label.server.clone(), state: name.into() };
        metrics.state.get_or_create(&labels).set(i64::from(state == name));
    }
    match result {
        PollResult::Reachable { load, stats } if online => {
            metrics.load.get_or_create(label).set(if state == "disabled" { 0.0 } else { *load });
            metrics.meetings.get_or_create(label).set(stats.meetings as i64);
            metrics.users.get_or_create(label).set(stats.users as i64);
            metrics.largest_meeting.get_or_create(label).set(stats.largest_meeting as i64);
            metrics.videos.get_or_create(label).set(stats.videos as i64);
        }
        _ if !online => {
            metrics.load.get_or_create(label).set(0.0);
            metrics.meetings.get_or_create(label).set(0);
            metrics.users.get_or_create(label).set(0);
            metrics.largest_meeting.get_or_create(label).set(0);
            metrics.videos.get_or_create(label).set(0);
        }
        _ => {}
    }
}

/// Removes the records of meetings that ended: a reachable server no longer
/// lists them and `getMeetingInfo` answers `notFound`. Records younger than
/// the round plus `create_grace` are left alone (a create may still be on
/// its way to the server), and records of deleted servers are removed.
async fn clean_meetings(
    store: &dyn Store,
    bbb: &BbbClient,
    settings: &RoundSettings,
    records: Vec<MeetingRecord>,
    listed: &HashMap<ServerId, HashSet<String>>,
    known_servers: &HashSet<String>,
    round_started: Instant,
) -> Result<(usize, usize), StoreError> {
    let min_age = round_started.elapsed() + settings.create_grace;
    let mut removed = 0;
    let mut candidates: Vec<MeetingRecord> = Vec::new();
    for record in records {
        let server_id = &record.meeting.server_id;
        let old_enough = match record.ttl {
            Some(left) => settings.meeting_ttl.saturating_sub(left) > min_age,
            None => true,
        };
        if !known_servers.contains(server_id.as_str()) {
            if old_enough
                && store.server(server_id).await?.is_none()
                && store.delete_meeting(&record.meeting.id, Some(server_id)).await?
            {
                info!(meeting.id = %record.meeting.id, server.id = %server_id, "removed meeting of a deleted server");
                removed += 1;
            }
            continue;
        }
        match listed.get(server_id) {
            Some(ids) if !ids.contains(record.meeting.id.as_str()) && old_enough => candidates.push(record),
            _ => {}
        }
    }
    let checked = candidates.len();
    if checked == 0 {
        return Ok((0, removed));
    }
    let servers: HashMap<ServerId, Server> = store.servers().await?.into_iter().map(|s| (s.id.clone(), s)).collect();
    let ended: Vec<(MeetingId, ServerId)> = stream::iter(candidates)
        .filter_map(|record| {
            let server = servers.get(&record.meeting.server_id).cloned();
            async move { server.map(|s| (record, s)) }
        })
        .map(|(record, server)| async move {
            let mut query = String::from("meetingID=");
            encode_component_into(&mut query, record.meeting.id.as_str());
            let target = Target { url: &server.url, secret: &server.secret, online: true };
            let ended = matches!(
                bbb.get(&target, "getMeetingInfo", &query).await,
                Err(CallError::Failed { ref key, .. }) if key == "notFound"
            );
            ended.then_some((record.meeting.id, server.id))
        })
        .buffer_unordered(settings.concurrency.max(1))
        .filter_map(|x| async move { x })
        .collect()
        .await;
    for (meeting, server) in ended {
        if store.delete_meeting(&meeting, Some(&server)).await? {
            info!(meeting.id = %meeting, server.id = %server, "meeting ended");
            removed += 1;
        }
    }
    Ok((checked, removed))
}

/// Ends the stale copies of re-homed meetings: a meeting an online server
/// lists while its record points to another server, when the meeting was
/// re-homed away from that server (it was offline and came back with the
/// meeting still running). Its participants are sent out, so the meeting
/// is not split: rejoining through the front-end lands them on the new
/// server. Meetings listed elsewhere for other reasons (another balancer
/// sharing the server, say) are left alone. Returns how many were ended.
async fn end_stale_copies(
    store: &dyn Store,
    bbb: &BbbClient,
    settings: &RoundSettings,
    listed: &HashMap<ServerId, HashSet<String>>,
    records: &[MeetingRecord],
) -> Result<usize, StoreError> {
    let by_id: HashMap<&str, &MeetingRecord> = records.iter().map(|r| (r.meeting.id.as_str(), r)).collect();
    let mut stale: Vec<(ServerId, &MeetingRecord)> = Vec::new();
    for (server_id, ids) in listed {
        for id in ids {
            if let Some(record) = by_id.get(id.as_str())
                && record.meeting.server_id != *server_id
                && let Some(kept) = store.stored_create(&record.meeting.id).await?
                && kept.rehomed_from.contains(server_id)
            {
                stale.push((server_id.clone(), record));
            }
        }
    }
    if stale.is_empty() {
        return Ok(0);
    }
    let servers: HashMap<ServerId, Server> = store.servers().await?.into_iter().map(|s| (s.id.clone(), s)).collect();
    // Owned, so the calls' futures borrow nothing.
    let calls: Vec<(Server, Meeting)> = stale
        .into_iter()
        .filter_map(|(server_id, record)| servers.get(&server_id).map(|s| (s.clone(), record.meeting.clone())))
        .collect();
    let ended = stream::iter(calls)
        .map(|(server, meeting)| async move {
            let mut query = String::from("meetingID=");
            encode_component_into(&mut query, meeting.id.as_str());
            query.push_str("&password=");
            encode_component_into(&mut query, &meeting.moderator_pw);
            let target = Target { url: &server.url, secret: &server.secret, online: true };
            match bbb.get(&target, "end", &query).await {
                Ok(_) => {
                    info!(
                        meeting.id = %meeting.id,
                        server.id = %server.id,
                        now_on = %meeting.server_id,
                        "ended the stale copy of a re-homed meeting"
                    );
                    true
                }
                Err(error) => {
                    warn!(meeting.id = %meeting.id, server.id = %server.id, %error, "could not end a stale copy");
                    false
                }
            }
        })
        .buffer_unordered(settings.concurrency.max(1))
        .filter(|ended| std::future::ready(*ended))
        .count()
        .await;
    Ok(ended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_like_scalelite() {
        let now = 1_000_000_000;
        let doc = scalelite_core::xml::parse(
            format!(
                "<response><returncode>SUCCESS</returncode><meetings>\
                 <meeting><meetingID>a</meetingID><participantCount>3</participantCount><moderatorCount>1</moderatorCount>\
                 <videoCount>2</videoCount><createTime>{}</createTime><isBreakout>false</isBreakout></meeting>\
                 <meeting><meetingID>b</meetingID><participantCount>30</participantCount><moderatorCount>2</moderatorCount>\
                 <videoCount>0</videoCount><createTime>{}</createTime><isBreakout>false</isBreakout></meeting>\
                 <meeting><meetingID>b-1</meetingID><participantCount>5</participantCount><moderatorCount>0</moderatorCount>\
                 <videoCount>1</videoCount><createTime>{}</createTime><isBreakout>true</isBreakout></meeting>\
                 </meetings></response>",
                now - 60_000,
                now - 3_600_000,
                now - 60_000
            )
            .as_bytes(),
        )
        .unwrap();
        let (load, stats, ids) = measure(&doc, &LoadModel::default(), 2.0, now);
        // a: young, max(3+1, 15) = 15; b: 30+2 = 32; breakout excluded; ×2.
        assert_eq!(load, 94.0);
        assert_eq!(stats, PollStats { meetings: 3, users: 38, largest_meeting: 30, videos: 3 });
        assert_eq!(ids.len(), 3);
        let empty =
            scalelite_core::xml::parse(b"<response><returncode>SUCCESS</returncode><meetings/></response>").unwrap();
        assert_eq!(measure(&empty, &LoadModel::default(), 1.0, now).0, 0.0);
    }

    #[test]
    fn usage_counts_leave_breakouts_out_and_go_to_the_records_tenant() {
        let doc = scalelite_core::xml::parse(
            b"<response><returncode>SUCCESS</returncode><meetings>\
              <meeting><meetingID>a</meetingID><participantCount>3</participantCount></meeting>\
              <meeting><meetingID>a-1</meetingID><participantCount>2</participantCount><isBreakout>true</isBreakout></meeting>\
              <meeting><meetingID>x</meetingID><participantCount>junk</participantCount></meeting>\
              <meeting><participantCount>9</participantCount></meeting>\
              </meetings></response>",
        )
        .unwrap();
        let counts = participant_counts(&doc);
        assert_eq!(counts, vec![("a".to_owned(), 3), ("x".to_owned(), 0)]);
        let record = |id: &str, tenant: Option<&str>| MeetingRecord {
            meeting: Meeting {
                id: MeetingId::from(id),
                server_id: ServerId::from("s"),
                moderator_pw: String::new(),
                voice_bridge: String::new(),
                tenant_id: tenant.map(|t| TenantId::new(t.to_owned())),
            },
            ttl: None,
        };
        let usage = usage_by_tenant(&counts, &[record("a", Some("t1")), record("b", Some("t2"))]);
        assert_eq!(
            usage,
            vec![
                TenantUsage { tenant: String::new(), meetings: 1, participants: 0 },
                TenantUsage { tenant: "t1".into(), meetings: 1, participants: 3 },
            ]
        );
    }

    #[test]
    fn absurd_counts_saturate() {
        // Reproduced with the bbb_reply fuzz target: two meetings whose
        // counts add up past u64::MAX panicked (overflow checks) or wrapped.
        let max = u64::MAX;
        let doc = scalelite_core::xml::parse(
            format!(
                "<response><returncode>SUCCESS</returncode><meetings>\
                 <meeting><participantCount>{max}</participantCount><moderatorCount>{max}</moderatorCount>\
                 <videoCount>{max}</videoCount></meeting>\
                 <meeting><participantCount>1</participantCount><videoCount>1</videoCount></meeting>\
                 </meetings></response>"
            )
            .as_bytes(),
        )
        .unwrap();
        let (load, stats, _) = measure(&doc, &LoadModel::default(), 1.0, 0);
        assert_eq!(stats, PollStats { meetings: 2, users: max, largest_meeting: max, videos: max });
        assert_eq!(load, max as f64);
    }
}
