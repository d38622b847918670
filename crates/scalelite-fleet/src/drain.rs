//! Drains with notice: a server is cordoned, its meetings are warned in
//! chat (BBB 3.0's `sendChatMessage`) when the drain starts and every
//! `DRAIN_NOTICE_INTERVAL`, and at the deadline (if any) they are ended.
//!
//! The drain record ([`Drain`]) lives in the store, so the timed work is
//! done by whichever poller holds the leader lease ([`drain_tick`], once
//! per round) and survives restarts and failover. The poller's own health
//! bookkeeping disables the server once its load is zero (Scalelite's
//! cordon), which finishes the drain.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::stream::{self, StreamExt};
use scalelite_bbb_client::{BbbClient, CallError, Target};
use scalelite_core::config::DrainConfig;
use scalelite_core::params::encode_component_into;
use scalelite_core::{MeetingId, ServerId};
use scalelite_store::{Drain, Meeting, Server, ServerState, Store, StoreError};
use serde::Serialize;
use tracing::{info, warn};

use crate::Cleared;

/// bbb-web's limit on a chat message (UTF-16 code units).
pub const MAX_NOTICE_LEN: usize = 500;

/// Settings of drains: the notice interval and templates.
#[derive(Clone, Debug, PartialEq)]
pub struct DrainSettings {
    /// Pause between notices to the meetings of a draining server.
    pub notice_interval: Duration,
    /// The notice of a drain with a deadline.
    pub template: String,
    /// The notice of a drain without one.
    pub template_no_deadline: String,
}

impl DrainSettings {
    /// The settings `DRAIN_NOTICE_*` name.
    pub fn from_config(config: &DrainConfig) -> Self {
        Self {
            notice_interval: config.notice_interval,
            template: config.template.clone(),
            template_no_deadline: config.template_no_deadline.clone(),
        }
    }
}

/// Now, in epoch milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Reads a drain deadline given as a duration from now: `30m`, `1h30m`,
/// `90s`, `2h` (a unit is required).
pub fn parse_deadline(raw: &str) -> Result<Duration, String> {
    let raw = raw.trim();
    if raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("deadline {raw:?} needs a unit, e.g. {raw}m or {raw}s"));
    }
    let deadline = humantime::parse_duration(raw).map_err(|e| format!("deadline {raw:?}: {e}"))?;
    if deadline > Duration::from_secs(366 * 86_400) {
        return Err(format!("deadline {raw:?}: more than a year"));
    }
    Ok(deadline)
}

/// Whether the server offers `sendChatMessage` (BBB 3.0 or newer, from the
/// `bbbVersion` the poller stored): `None` until the poller has asked it
/// (an empty version is a BBB too old to tell it).
pub fn supports_chat(server: &Server) -> Option<bool> {
    let version = server.bbb_version.as_deref()?.trim();
    let major: String = version.chars().take_while(char::is_ascii_digit).collect();
    Some(major.parse::<u32>().is_ok_and(|major| major >= 3))
}

/// `ms` as `2026-12-06T13:45:00Z`.
fn rfc3339(ms: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(time).to_string()
}

/// `ms` as `13:45 UTC`.
fn clock(ms: i64) -> String {
    let day_secs = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02} UTC", day_secs / 3600, day_secs % 3600 / 60)
}

/// Seconds from `now_ms` to the deadline (rounded up, 0 once past).
fn seconds_left(deadline_ms: i64, now_ms: i64) -> u64 {
    u64::try_from(deadline_ms.saturating_sub(now_ms)).map_or(0, |ms| ms.div_ceil(1000))
}

/// "12 minutes", "1 minute", "45 seconds", "1 second".
fn time_left_text(seconds: u64) -> String {
    let plural = |n: u64, unit: &str| if n == 1 { format!("1 {unit}") } else { format!("{n} {unit}s") };
    if seconds < 60 { plural(seconds, "second") } else { plural(seconds.div_ceil(60), "minute") }
}

/// The chat notice for `drain` at `now_ms`: the template with `{time_left}`
/// ("12 minutes"), `{minutes}` (whole minutes left, rounded up),
/// `{seconds}`, `{deadline}` ("13:45 UTC") and `{message}` (the
/// operator's text) filled in, trimmed and cut to bbb-web's 500 characters.
pub fn notice_text(settings: &DrainSettings, drain: &Drain, now_ms: i64) -> String {
    let message = drain.message.as_deref().unwrap_or_default();
    let text = match drain.deadline_ms {
        Some(deadline) => {
            let left = seconds_left(deadline, now_ms);
            settings
                .template
                .replace("{time_left}", &time_left_text(left))
                .replace("{minutes}", &left.div_ceil(60).to_string())
                .replace("{seconds}", &left.to_string())
                .replace("{deadline}", &clock(deadline))
                .replace("{message}", message)
        }
        None => settings.template_no_deadline.replace("{message}", message),
    };
    let text = text.trim();
    let mut units = 0;
    let mut cut = String::with_capacity(text.len());
    for c in text.chars() {
        units += c.len_utf16();
        if units > MAX_NOTICE_LEN {
            break;
        }
        cut.push(c);
    }
    cut
}

/// A drain as `servers drains`, `status`, `drainServer` and the capacity
/// report show it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DrainStatus {
    /// The server.
    pub server_id: String,
    /// `draining`, or `drained` once the server is disabled.
    pub state: &'static str,
    /// When the drain started (RFC 3339, UTC).
    pub started_at: String,
    /// When its meetings are ended; `null` waits for them to end.
    pub deadline: Option<String>,
    /// Seconds until the deadline (0 once past); `null` without one.
    pub seconds_left: Option<u64>,
    /// The operator's text in the notices.
    pub message: Option<String>,
    /// Meetings the balancer still routes to the server.
    pub meetings: usize,
    /// `chat` (BBB 3.0+: notices through `sendChatMessage`), `none` (an
    /// older server: drained without notices) or `unknown` (the poller has
    /// not learnt its version yet; notices start once it has).
    pub notices: &'static str,
    /// Chat notices sent (one per meeting and round).
    pub notices_sent: u64,
    /// When the last round of notices went out.
    pub last_notice_at: Option<String>,
    /// Meetings ended at the deadline.
    pub meetings_ended: u64,
    /// When the server was found drained.
    pub finished_at: Option<String>,
}

impl DrainStatus {
    /// The status of `drain` on `server` with `meetings` routed there.
    pub fn of(drain: &Drain, server: Option<&Server>, meetings: usize, now_ms: i64) -> Self {
        Self {
            server_id: drain.server_id.to_string(),
            state: if drain.finished_ms.is_some() { "drained" } else { "draining" },
            started_at: rfc3339(drain.started_ms),
            deadline: drain.deadline_ms.map(rfc3339),
            seconds_left: drain.deadline_ms.map(|d| seconds_left(d, now_ms)),
            message: drain.message.clone(),
            meetings,
            notices: match server.and_then(supports_chat) {
                Some(true) => "chat",
                Some(false) => "none",
                None => "unknown",
            },
            notices_sent: drain.notices_sent,
            last_notice_at: drain.last_notice_ms.map(rfc3339),
            meetings_ended: drain.meetings_ended,
            finished_at: drain.finished_ms.map(rfc3339),
        }
    }

    /// One line for the text output: `bbb-1: draining, 3 meetings, ends in
    /// 12 minutes (2026-…), 6 notices sent`.
    pub fn line(&self) -> String {
        let mut line = format!("{}: {}", self.server_id, self.state);
        if self.state == "draining" {
            line.push_str(&format!(", {} meeting{}", self.meetings, if self.meetings == 1 { "" } else { "s" }));
            match (&self.deadline, self.seconds_left) {
                (Some(deadline), Some(left)) => {
                    line.push_str(&format!(", meetings end in {} ({deadline})", time_left_text(left)));
                }
                _ => line.push_str(", no deadline (waits for the meetings to end)"),
            }
        }
        match self.notices {
            "chat" => line.push_str(&format!(", {} notices sent", self.notices_sent)),
            "none" => line.push_str(", no chat notices (BBB < 3.0)"),
            _ => line.push_str(", chat notices once the poller knows its BBB version"),
        }
        if self.meetings_ended > 0 {
            line.push_str(&format!(", {} meetings ended at the deadline", self.meetings_ended));
        }
        line
    }
}

/// What one [`drain_tick`] did.
#[derive(Clone, Debug, Default)]
pub struct DrainTick {
    /// The drains after the tick, with their servers (`None` when gone).
    pub drains: Vec<DrainStatus>,
    /// Chat notices sent.
    pub notices_sent: u64,
    /// Meetings ended at a deadline.
    pub meetings_ended: u64,
    /// Drains that finished (their server is disabled now).
    pub finished: u64,
}

/// Sends `end` for each meeting (concurrently, failures collected) after
/// forgetting its record.
pub async fn end_meetings(
    store: &dyn Store,
    bbb: &BbbClient,
    server: &Server,
    meetings: Vec<Meeting>,
    send_end: bool,
    concurrency: usize,
) -> Result<Vec<Cleared>, StoreError> {
    for meeting in &meetings {
        store.delete_meeting(&meeting.id, Some(&server.id)).await?;
        info!(meeting.id = %meeting.id, server.id = %server.id, "meeting cleared");
    }
    // The futures are built first: a stream mapping with a closure that
    // borrows would not be `Send` for every lifetime (the poller spawns this).
    let calls: Vec<_> = meetings
        .into_iter()
        .map(|meeting| async move {
            let error =
                if send_end { end_meeting(bbb, server, &meeting).await.err().map(|e| e.to_string()) } else { None };
            (meeting.id, error)
        })
        .collect();
    let results: Vec<(MeetingId, Option<String>)> = stream::iter(calls).buffered(concurrency.max(1)).collect().await;
    Ok(results.into_iter().map(|(id, end_error)| Cleared { id, end_error }).collect())
}

/// Sends `end` for `meeting` with its stored moderator password.
pub async fn end_meeting(bbb: &BbbClient, server: &Server, meeting: &Meeting) -> Result<(), CallError> {
    let mut query = String::from("meetingID=");
    encode_component_into(&mut query, meeting.id.as_str());
    query.push_str("&password=");
    encode_component_into(&mut query, &meeting.moderator_pw);
    let target = Target { url: &server.url, secret: &server.secret, online: server.online };
    bbb.get(&target, "end", &query).await.map(|_| ())
}

/// Sends the notice to every meeting (concurrently); returns how many
/// were accepted. Failures are logged.
async fn send_notices(bbb: &BbbClient, server: &Server, meetings: &[Meeting], text: &str, concurrency: usize) -> u64 {
    let calls: Vec<_> = meetings
        .iter()
        .map(|meeting| async move {
            let mut query = String::from("meetingID=");
            encode_component_into(&mut query, meeting.id.as_str());
            query.push_str("&message=");
            encode_component_into(&mut query, text);
            let target = Target { url: &server.url, secret: &server.secret, online: server.online };
            match bbb.get(&target, "sendChatMessage", &query).await {
                Ok(_) => true,
                Err(error) => {
                    warn!(meeting.id = %meeting.id, server.id = %server.id, %error, "drain notice not delivered");
                    false
                }
            }
        })
        .collect();
    let sent: Vec<bool> = stream::iter(calls).buffer_unordered(concurrency.max(1)).collect().await;
    sent.into_iter().filter(|ok| *ok).count() as u64
}

/// Notices `meetings` of `server` for `drain` if one is due at `now_ms`
/// (none sent yet, or the interval has passed); updates the record's
/// notice fields (not saved). Returns the notices sent and whether the
/// record changed.
pub async fn notify_if_due(
    bbb: &BbbClient,
    settings: &DrainSettings,
    server: &Server,
    drain: &mut Drain,
    meetings: &[Meeting],
    concurrency: usize,
    now_ms: i64,
) -> (u64, bool) {
    let interval_ms = i64::try_from(settings.notice_interval.as_millis()).unwrap_or(i64::MAX);
    let due = drain.last_notice_ms.is_none_or(|last| now_ms.saturating_sub(last) >= interval_ms);
    if !due || meetings.is_empty() || !server.online {
        return (0, false);
    }
    let Some(chat) = supports_chat(server) else {
        // The poller learns the version in its next round.
        return (0, false);
    };
    if !chat {
        if drain.no_chat_logged {
            return (0, false);
        }
        info!(
            server.id = %server.id,
            bbb_version = server.bbb_version.as_deref().unwrap_or_default(),
            "server has no sendChatMessage (BBB < 3.0): draining it without chat notices"
        );
        drain.no_chat_logged = true;
        return (0, true);
    }
    let text = notice_text(settings, drain, now_ms);
    let sent = send_notices(bbb, server, meetings, &text, concurrency).await;
    info!(server.id = %server.id, meetings = meetings.len(), sent, "drain notice sent");
    drain.last_notice_ms = Some(now_ms);
    drain.notices_sent = drain.notices_sent.saturating_add(sent);
    (sent, true)
}

/// The meeting records of each server.
async fn meetings_by_server(store: &dyn Store) -> Result<HashMap<ServerId, Vec<Meeting>>, StoreError> {
    let mut by_server: HashMap<ServerId, Vec<Meeting>> = HashMap::new();
    for record in store.meetings().await? {
        by_server.entry(record.meeting.server_id.clone()).or_default().push(record.meeting);
    }
    Ok(by_server)
}

/// Writes back what a tick changed in `drain`, unless the drain was
/// restarted (`servers drain` again) or removed (enabled, deleted) while the
/// tick sent notices or ended meetings: the operator's latest word wins.
/// Returns whether it was written.
async fn write_back(store: &dyn Store, drain: &Drain) -> Result<bool, StoreError> {
    let current = store.drains().await?.into_iter().find(|d| d.server_id == drain.server_id);
    if current.is_none_or(|current| current.started_ms != drain.started_ms) {
        info!(server.id = %drain.server_id, "drain changed meanwhile: leaving it as the operator set it");
        return Ok(false);
    }
    store.put_drain(drain).await?;
    Ok(true)
}

/// Every drain with its status.
pub async fn drain_statuses(store: &dyn Store, now_ms: i64) -> Result<Vec<DrainStatus>, StoreError> {
    let drains = store.drains().await?;
    if drains.is_empty() {
        return Ok(Vec::new());
    }
    let servers: HashMap<ServerId, Server> = store.servers().await?.into_iter().map(|s| (s.id.clone(), s)).collect();
    let meetings = meetings_by_server(store).await?;
    Ok(drains
        .iter()
        .map(|drain| {
            let count = meetings.get(&drain.server_id).map_or(0, Vec::len);
            DrainStatus::of(drain, servers.get(&drain.server_id), count, now_ms)
        })
        .collect())
}

/// The poller's drain work, once per round: drops drains of removed or
/// re-enabled servers, marks drains finished once their server is
/// disabled, ends the meetings of drains past their deadline and sends
/// the notices that are due.
pub async fn drain_tick(
    store: &dyn Store,
    bbb: &BbbClient,
    settings: &DrainSettings,
    concurrency: usize,
    now_ms: i64,
) -> Result<DrainTick, StoreError> {
    let mut tick = DrainTick::default();
    let drains = store.drains().await?;
    if drains.is_empty() {
        return Ok(tick);
    }
    let servers: HashMap<ServerId, Server> = store.servers().await?.into_iter().map(|s| (s.id.clone(), s)).collect();
    let mut meetings = meetings_by_server(store).await?;
    for mut drain in drains {
        let Some(server) = servers.get(&drain.server_id) else {
            store.delete_drain(&drain.server_id).await?;
            info!(server.id = %drain.server_id, "drain dropped: the server was removed");
            continue;
        };
        let on_server = meetings.remove(&server.id).unwrap_or_default();
        let mut changed = false;
        let mut ended_now = false;
        match server.effective_state() {
            ServerState::Enabled => {
                store.delete_drain(&drain.server_id).await?;
                info!(server.id = %server.id, "drain cancelled: the server is enabled again");
                continue;
            }
            ServerState::Disabled => {
                if drain.finished_ms.is_none() {
                    drain.finished_ms = Some(now_ms);
                    changed = true;
                    tick.finished += 1;
                    info!(server.id = %server.id, "server drained");
                }
            }
            ServerState::Cordoned => {
                if drain.deadline_ms.is_some_and(|deadline| now_ms >= deadline) && !on_server.is_empty() {
                    let count = on_server.len() as u64;
                    let cleared = end_meetings(store, bbb, server, on_server.clone(), true, concurrency).await?;
                    for failure in cleared.iter().filter(|c| c.end_error.is_some()) {
                        warn!(meeting.id = %failure.id, server.id = %server.id, error = ?failure.end_error, "drain: end call failed");
                    }
                    info!(server.id = %server.id, meetings = count, "drain deadline reached: meetings ended");
                    drain.meetings_ended = drain.meetings_ended.saturating_add(count);
                    tick.meetings_ended += count;
                    changed = true;
                    ended_now = true;
                } else {
                    let (sent, noted) =
                        notify_if_due(bbb, settings, server, &mut drain, &on_server, concurrency, now_ms).await;
                    tick.notices_sent += sent;
                    changed |= noted;
                }
            }
        }
        if changed && !write_back(store, &drain).await? {
            continue;
        }
        let left = if ended_now { 0 } else { on_server.len() };
        tick.drains.push(DrainStatus::of(&drain, Some(server), left, now_ms));
    }
    Ok(tick)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> DrainSettings {
        let config = scalelite_core::config::Config::from_env(&scalelite_core::config::Env::default()).unwrap();
        DrainSettings::from_config(&config.drain)
    }

    fn drain(deadline_ms: Option<i64>, message: Option<&str>) -> Drain {
        Drain {
            server_id: ServerId::from("bbb-1"),
            started_ms: 0,
            deadline_ms,
            message: message.map(str::to_owned),
            last_notice_ms: None,
            notices_sent: 0,
            no_chat_logged: false,
            meetings_ended: 0,
            finished_ms: None,
        }
    }

    #[test]
    fn deadlines_need_a_unit() {
        assert_eq!(parse_deadline("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_deadline("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_deadline("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_deadline("30").unwrap_err().contains("needs a unit"));
        assert!(parse_deadline("soon").is_err());
        assert!(parse_deadline("400days").is_err());
    }

    #[test]
    fn notices_fill_the_template() {
        let s = settings();
        // Deadline at 13:45:00 UTC, 12 minutes and a bit ahead.
        let deadline = 13 * 3_600_000 + 45 * 60_000;
        let text = notice_text(&s, &drain(Some(deadline), Some("Back at 14:00.")), deadline - 11 * 60_000 - 1);
        assert_eq!(
            text,
            "This server is going down for maintenance: this meeting will be ended in 12 minutes (at 13:45 UTC). \
             Back at 14:00."
        );
        let text = notice_text(&s, &drain(Some(deadline), None), deadline - 30_000);
        assert!(text.ends_with("ended in 30 seconds (at 13:45 UTC)."), "{text}");
        let german = DrainSettings { template: "Ende in {minutes} Min. ({seconds} s) {message}".into(), ..s.clone() };
        assert_eq!(notice_text(&german, &drain(Some(120_000), Some("!")), 0), "Ende in 2 Min. (120 s) !");
        let open = notice_text(&s, &drain(None, None), 0);
        assert!(open.starts_with("This server is going down") && open.ends_with("another server."), "{open}");
        let long = notice_text(&s, &drain(None, Some(&"é".repeat(600))), 0);
        assert_eq!(long.encode_utf16().count(), MAX_NOTICE_LEN);
        let emoji = DrainSettings { template_no_deadline: "😀".repeat(300), ..s };
        assert_eq!(notice_text(&emoji, &drain(None, None), 0).encode_utf16().count(), 500);
    }

    #[test]
    fn chat_needs_bbb_3() {
        let mut server = Server::from_hash(
            ServerId::from("x"),
            &[("url".to_owned(), "http://x".to_owned())].into_iter().collect(),
            true,
        )
        .unwrap();
        for (version, chat) in [("3.0.4", true), ("3.1", true), ("2.7.3", false), ("", false), ("x", false)] {
            server.bbb_version = Some(version.into());
            assert_eq!(supports_chat(&server), Some(chat), "{version}");
        }
        server.bbb_version = None;
        assert_eq!(supports_chat(&server), None);
    }

    #[test]
    fn times_read_well() {
        assert_eq!(time_left_text(1), "1 second");
        assert_eq!(time_left_text(59), "59 seconds");
        assert_eq!(time_left_text(60), "1 minute");
        assert_eq!(time_left_text(61), "2 minutes");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(seconds_left(1000, 2000), 0);
    }
}
