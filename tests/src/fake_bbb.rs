//! A fake BigBlueButton server (and fleet of them) that behaves like bbb-web
//! on the wire: checksum validation over the raw query string, compact XML
//! replies in bbb-web's element order, `join` redirects, and switchable
//! failure modes for exercising the load balancer.
//!
//! Served by hyper directly (one task per connection, all owned by the
//! server task), so [`FakeBbb::stop`] really closes every connection,
//! including idle keep-alive ones and hung requests.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::Index;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::client::{Algo, ApiClient};
use crate::util::{ALNUM, ALNUM_LOWER, random_string};

/// The API path prefix.
pub const API_PATH: &str = "/bigbluebutton/api";
/// The `bbbVersion` a new fake reports.
pub const DEFAULT_BBB_VERSION: &str = "3.0.4";
/// The dial number of meetings created without one (bbb-web's default).
pub const DEFAULT_DIAL_NUMBER: &str = "613-555-1234";

const XML_CONTENT_TYPE: &str = "text/xml;charset=utf-8";

/// How the fake answers requests; switch with [`FakeBbb::set_mode`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Behave like bbb-web.
    #[default]
    Normal,
    /// HTTP 503 with body `Service Unavailable` for every request.
    Down,
    /// Accept every request and never answer, until the mode changes (then
    /// the request is answered in the new mode) or the fake is stopped or
    /// dropped (then the connection is closed).
    Hung,
    /// Wait this long, then answer normally.
    Slow(Duration),
    /// HTTP 200 with the non-XML body `<html><body>Bad Gateway`.
    Garbage,
    /// Every checksummed call (everything but the API root) answers
    /// `FAILED` with this messageKey and message, after checksum validation.
    Failed {
        /// The `messageKey`.
        key: String,
        /// The `message`.
        message: String,
    },
}

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct RecordedCall {
    /// HTTP method.
    pub method: Method,
    /// Request path.
    pub path: String,
    /// API call name: the path segment after `/bigbluebutton/api/` (`""` for
    /// the API root); the whole path for requests outside the API.
    pub call: String,
    /// The raw query string as received (`""` when absent).
    pub raw_query: String,
    /// Decoded query parameters in order, followed by decoded form-body
    /// parameters for `application/x-www-form-urlencoded` bodies.
    pub params: Vec<(String, String)>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The request body.
    pub body: Bytes,
    /// Whether the checksum was valid (computed for every API request,
    /// including the root, which does not require one).
    pub checksum_valid: bool,
}

impl RecordedCall {
    /// The first value of parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        first_param(&self.params, name)
    }

    /// The `checksum` parameter of the query, if any.
    pub fn checksum(&self) -> Option<String> {
        form_urlencoded::parse(self.raw_query.as_bytes()).find(|(k, _)| k == "checksum").map(|(_, v)| v.into_owned())
    }

    /// The algorithm of the checksum, inferred from its length like bbb-web.
    pub fn checksum_algo(&self) -> Option<Algo> {
        self.checksum().and_then(|c| Algo::from_hex_len(c.len()))
    }

    /// The body as (lossy) UTF-8 text.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One user in a fake meeting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeAttendee {
    /// `userID` (from the join call, or generated `w_…`).
    pub user_id: String,
    /// `fullName`.
    pub full_name: String,
    /// `MODERATOR` or `VIEWER`.
    pub role: String,
    /// Whether the user shares a webcam (counts in `videoCount`).
    pub has_video: bool,
    /// Whether the user listens only (counts in `listenerCount`).
    pub is_listening_only: bool,
    /// Whether the user joined voice (counts in `voiceParticipantCount`).
    pub has_joined_voice: bool,
    /// The session token handed out by `join` (empty for seeded users).
    pub session_token: String,
}

impl FakeAttendee {
    /// A viewer with a generated user id.
    pub fn viewer(full_name: impl Into<String>) -> Self {
        Self {
            user_id: format!("w_{}", random_string(12, ALNUM_LOWER)),
            full_name: full_name.into(),
            role: "VIEWER".into(),
            has_video: false,
            is_listening_only: false,
            has_joined_voice: false,
            session_token: String::new(),
        }
    }

    /// A moderator with a generated user id.
    pub fn moderator(full_name: impl Into<String>) -> Self {
        Self { role: "MODERATOR".into(), ..Self::viewer(full_name) }
    }
}

/// A snapshot of a meeting on a fake server.
///
/// Reported counts are the joined [`FakeMeeting::attendees`] plus the
/// `extra_*` counters, which tests set directly (see
/// [`FakeBbb::set_counts`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeMeeting {
    /// External `meetingID`.
    pub meeting_id: String,
    /// `name` (defaults to the meeting ID).
    pub name: String,
    /// `sha1hex(meetingID) + "-" + createTime`.
    pub internal_meeting_id: String,
    /// Creation time, ms since the epoch.
    pub create_time: u64,
    /// Creation time like Java's `Date.toString()`.
    pub create_date: String,
    /// Five-digit voice bridge, unique on this server.
    pub voice_bridge: String,
    /// `dialNumber`.
    pub dial_number: String,
    /// `attendeePW` (generated if absent).
    pub attendee_pw: String,
    /// `moderatorPW` (generated if absent).
    pub moderator_pw: String,
    /// `duration` in minutes.
    pub duration: u64,
    /// `record`.
    pub record: bool,
    /// Every `meta_*` parameter, key without the prefix, lower-cased.
    pub metadata: BTreeMap<String, String>,
    /// `isBreakout`.
    pub is_breakout: bool,
    /// `parentMeetingID` of a breakout (the parent's internal ID).
    pub parent_meeting_id: Option<String>,
    /// `maxParticipants`.
    pub max_users: u64,
    /// Joined users.
    pub attendees: Vec<FakeAttendee>,
    /// Participants added on top of `attendees`.
    pub extra_participants: u64,
    /// Moderators added on top of `attendees`.
    pub extra_moderators: u64,
    /// Video streams added on top of `attendees`.
    pub extra_video: u64,
    /// Listen-only users added on top of `attendees`.
    pub extra_listeners: u64,
    /// Voice users added on top of `attendees`.
    pub extra_voice: u64,
    /// Whether anybody ever joined.
    pub has_user_joined: bool,
    /// Whether the meeting was ended by an `end` call.
    pub forcibly_ended: bool,
    /// All parameters of the create call that made the meeting (decoded).
    pub create_params: Vec<(String, String)>,
    /// Body of a POST create (for example the presentation XML).
    pub create_body: Option<Bytes>,
    /// Bodies of insertDocument calls, in order.
    pub documents: Vec<Bytes>,
    /// Messages posted by sendChatMessage, in order: (sender, text).
    pub chat: Vec<(String, String)>,
}

impl FakeMeeting {
    /// `participantCount`.
    pub fn participant_count(&self) -> u64 {
        self.attendees.len() as u64 + self.extra_participants
    }

    /// `moderatorCount`.
    pub fn moderator_count(&self) -> u64 {
        self.attendees.iter().filter(|a| a.role == "MODERATOR").count() as u64 + self.extra_moderators
    }

    /// `videoCount`.
    pub fn video_count(&self) -> u64 {
        self.attendees.iter().filter(|a| a.has_video).count() as u64 + self.extra_video
    }

    /// `listenerCount`.
    pub fn listener_count(&self) -> u64 {
        self.attendees.iter().filter(|a| a.is_listening_only).count() as u64 + self.extra_listeners
    }

    /// `voiceParticipantCount`.
    pub fn voice_participant_count(&self) -> u64 {
        self.attendees.iter().filter(|a| a.has_joined_voice).count() as u64 + self.extra_voice
    }

    /// `running`: at least one participant.
    pub fn running(&self) -> bool {
        self.participant_count() > 0
    }
}

/// Builder for a meeting placed directly on a fake server with
/// [`FakeBbb::seed_meeting`], bypassing the API.
#[derive(Clone, Debug)]
pub struct MeetingSeed {
    meeting_id: String,
    name: Option<String>,
    attendee_pw: Option<String>,
    moderator_pw: Option<String>,
    voice_bridge: Option<String>,
    create_time: Option<u64>,
    duration: u64,
    record: bool,
    metadata: BTreeMap<String, String>,
    parent_meeting_id: Option<String>,
    attendees: Vec<FakeAttendee>,
    counts: (u64, u64, u64),
}

impl MeetingSeed {
    /// A meeting with `meeting_id` and defaults for everything else.
    pub fn new(meeting_id: impl Into<String>) -> Self {
        Self {
            meeting_id: meeting_id.into(),
            name: None,
            attendee_pw: None,
            moderator_pw: None,
            voice_bridge: None,
            create_time: None,
            duration: 0,
            record: false,
            metadata: BTreeMap::new(),
            parent_meeting_id: None,
            attendees: Vec::new(),
            counts: (0, 0, 0),
        }
    }

    /// Sets the name.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Sets both passwords.
    #[must_use]
    pub fn passwords(mut self, attendee: impl Into<String>, moderator: impl Into<String>) -> Self {
        self.attendee_pw = Some(attendee.into());
        self.moderator_pw = Some(moderator.into());
        self
    }

    /// Sets the voice bridge.
    #[must_use]
    pub fn voice_bridge(mut self, voice_bridge: impl Into<String>) -> Self {
        self.voice_bridge = Some(voice_bridge.into());
        self
    }

    /// Sets the creation time (ms since the epoch).
    #[must_use]
    pub fn create_time(mut self, ms: u64) -> Self {
        self.create_time = Some(ms);
        self
    }

    /// Sets the duration (minutes).
    #[must_use]
    pub fn duration(mut self, minutes: u64) -> Self {
        self.duration = minutes;
        self
    }

    /// Sets the record flag.
    #[must_use]
    pub fn record(mut self, record: bool) -> Self {
        self.record = record;
        self
    }

    /// Adds a metadata entry (key without `meta_`; lower-cased).
    #[must_use]
    pub fn metadata(mut self, key: &str, value: impl Into<String>) -> Self {
        self.metadata.insert(key.to_lowercase(), value.into());
        self
    }

    /// Makes it a breakout room of the meeting with this internal ID.
    #[must_use]
    pub fn breakout_of(mut self, parent_internal_id: impl Into<String>) -> Self {
        self.parent_meeting_id = Some(parent_internal_id.into());
        self
    }

    /// Adds a joined user.
    #[must_use]
    pub fn attendee(mut self, attendee: FakeAttendee) -> Self {
        self.attendees.push(attendee);
        self
    }

    /// Adds `n` joined viewers.
    #[must_use]
    pub fn attendees(mut self, n: usize) -> Self {
        let start = self.attendees.len();
        self.attendees.extend((start..start + n).map(|i| FakeAttendee::viewer(format!("User {}", i + 1))));
        self
    }

    /// Sets the extra participant, moderator and video counters.
    #[must_use]
    pub fn counts(mut self, participants: u64, moderators: u64, videos: u64) -> Self {
        self.counts = (participants, moderators, videos);
        self
    }
}

/// A recording a fake server holds (its `getRecordings` lists it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeRecording {
    /// `recordID`.
    pub record_id: String,
    /// External `meetingID`.
    pub meeting_id: String,
    /// `processing`, `processed`, `published`, `unpublished` or `deleted`.
    pub state: String,
}

#[derive(Debug)]
struct State {
    secret: String,
    bbb_version: String,
    meetings: Vec<FakeMeeting>,
    recordings: Vec<FakeRecording>,
    ended: Vec<FakeMeeting>,
    calls: Vec<RecordedCall>,
    /// Bodies that answer a call instead of bbb-web's reply.
    raw_replies: BTreeMap<String, Bytes>,
}

#[derive(Debug)]
struct Shared {
    addr: SocketAddr,
    state: Mutex<State>,
    mode: watch::Sender<Mode>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[derive(Debug)]
struct ServerTask {
    shutdown: oneshot::Sender<()>,
    handle: JoinHandle<()>,
}

/// A fake bbb-web on 127.0.0.1. Dropping it closes the listener and every
/// connection.
#[derive(Debug)]
pub struct FakeBbb {
    shared: Arc<Shared>,
    server: Mutex<Option<ServerTask>>,
}

impl FakeBbb {
    /// Starts a fake with `secret` on a free port.
    ///
    /// # Panics
    ///
    /// Panics if no port can be bound.
    pub async fn start(secret: impl Into<String>) -> Self {
        Self::start_on(Ipv4Addr::LOCALHOST.into(), secret).await
    }

    /// Starts a fake with `secret` on a free port of `ip` (for clients
    /// outside this host's loopback, such as containers on a bridge network
    /// whose gateway is `ip`).
    ///
    /// # Panics
    ///
    /// Panics if no port can be bound.
    pub async fn start_on(ip: IpAddr, secret: impl Into<String>) -> Self {
        let listener = TcpListener::bind((ip, 0)).await.expect("cannot bind the fake BBB server");
        let addr = listener.local_addr().expect("local address");
        let (mode, _) = watch::channel(Mode::Normal);
        let shared = Arc::new(Shared {
            addr,
            state: Mutex::new(State {
                secret: secret.into(),
                bbb_version: DEFAULT_BBB_VERSION.into(),
                meetings: Vec::new(),
                recordings: Vec::new(),
                ended: Vec::new(),
                calls: Vec::new(),
                raw_replies: BTreeMap::new(),
            }),
            mode,
        });
        let server = spawn_server(listener, shared.clone());
        Self { shared, server: Mutex::new(Some(server)) }
    }

    /// The API base, `http://127.0.0.1:P/bigbluebutton/api` (the form
    /// Scalelite stores as a server URL).
    pub fn url(&self) -> String {
        format!("{}{API_PATH}", self.origin())
    }

    /// `http://127.0.0.1:P`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.shared.addr.port()
    }

    /// The shared secret.
    pub fn secret(&self) -> String {
        self.shared.lock().secret.clone()
    }

    /// Changes the secret (simulates a reconfigured server).
    pub fn set_secret(&self, secret: impl Into<String>) {
        self.shared.lock().secret = secret.into();
    }

    /// Changes the `bbbVersion` of the API root reply.
    pub fn set_bbb_version(&self, version: impl Into<String>) {
        self.shared.lock().bbb_version = version.into();
    }

    /// Answers `call` (`""` for the API root) with HTTP 200 and `body` as
    /// `text/xml`, whatever the request and its checksum, instead of
    /// bbb-web's reply: a broken or hostile server. Failure modes other than
    /// [`Mode::Normal`] still come first. Undone by
    /// [`FakeBbb::clear_raw_replies`].
    pub fn set_raw_reply(&self, call: &str, body: impl Into<Bytes>) {
        self.shared.lock().raw_replies.insert(call.to_owned(), body.into());
    }

    /// Answers every call like bbb-web again.
    pub fn clear_raw_replies(&self) {
        self.shared.lock().raw_replies.clear();
    }

    /// A SHA-1 [`ApiClient`] for this server with its secret.
    pub fn client(&self) -> ApiClient {
        ApiClient::new(self.url(), self.secret()).algorithm(Algo::Sha1)
    }

    /// Switches the failure mode (requests waiting in [`Mode::Hung`] are
    /// released into the new mode).
    pub fn set_mode(&self, mode: Mode) {
        self.shared.mode.send_replace(mode);
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.shared.mode.borrow().clone()
    }

    /// Closes the listener and every open connection; new connections are
    /// refused until [`FakeBbb::start_again`]. State is kept.
    pub async fn stop(&self) {
        let server = self.server.lock().unwrap().take();
        if let Some(server) = server {
            let _ = server.shutdown.send(());
            let _ = server.handle.await;
        }
    }

    /// Whether the server is listening.
    pub fn is_running(&self) -> bool {
        self.server.lock().unwrap().is_some()
    }

    /// Listens again on the same port after [`FakeBbb::stop`], with the same
    /// state (meetings, calls, mode). Does nothing if it is running.
    ///
    /// # Panics
    ///
    /// Panics if the port cannot be bound again within a few seconds.
    pub async fn start_again(&self) {
        if self.is_running() {
            return;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(self.shared.addr).await {
                Ok(listener) => break listener,
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    panic!("cannot rebind the fake BBB on {}: {e}", self.shared.addr)
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let server = spawn_server(listener, self.shared.clone());
        *self.server.lock().unwrap() = Some(server);
    }

    /// Every recorded request, oldest first.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.shared.lock().calls.clone()
    }

    /// Recorded requests for `call` (`"create"`, `"join"`, `""` for the root…).
    pub fn calls_to(&self, call: &str) -> Vec<RecordedCall> {
        self.shared.lock().calls.iter().filter(|c| c.call == call).cloned().collect()
    }

    /// Number of recorded requests for `call`.
    pub fn call_count(&self, call: &str) -> usize {
        self.shared.lock().calls.iter().filter(|c| c.call == call).count()
    }

    /// Number of recorded requests.
    pub fn total_calls(&self) -> usize {
        self.shared.lock().calls.len()
    }

    /// Forgets recorded requests.
    pub fn clear_calls(&self) {
        self.shared.lock().calls.clear();
    }

    /// A snapshot of the meeting with this external (or internal) ID.
    pub fn meeting(&self, meeting_id: &str) -> Option<FakeMeeting> {
        let state = self.shared.lock();
        find_meeting(&state.meetings, meeting_id).map(|i| state.meetings[i].clone())
    }

    /// Snapshots of every meeting, in creation order.
    pub fn meetings(&self) -> Vec<FakeMeeting> {
        self.shared.lock().meetings.clone()
    }

    /// External IDs of every meeting, in creation order.
    pub fn meeting_ids(&self) -> Vec<String> {
        self.shared.lock().meetings.iter().map(|m| m.meeting_id.clone()).collect()
    }

    /// Whether a meeting with this ID exists.
    pub fn has_meeting(&self, meeting_id: &str) -> bool {
        self.meeting(meeting_id).is_some()
    }

    /// Meetings that were ended by an `end` call (`forcibly_ended`) or
    /// removed with [`FakeBbb::remove_meeting`], oldest first.
    pub fn ended_meetings(&self) -> Vec<FakeMeeting> {
        self.shared.lock().ended.clone()
    }

    /// Creates a meeting directly with default settings.
    ///
    /// # Panics
    ///
    /// Panics if the meeting already exists.
    pub fn add_meeting(&self, meeting_id: &str, name: &str) -> FakeMeeting {
        self.seed_meeting(MeetingSeed::new(meeting_id).name(name))
    }

    /// Creates a meeting directly from a [`MeetingSeed`].
    ///
    /// # Panics
    ///
    /// Panics if the meeting already exists.
    pub fn seed_meeting(&self, seed: MeetingSeed) -> FakeMeeting {
        let mut state = self.shared.lock();
        assert!(
            find_meeting(&state.meetings, &seed.meeting_id).is_none(),
            "meeting {} already exists on the fake",
            seed.meeting_id
        );
        let create_time = seed.create_time.unwrap_or_else(now_ms);
        let voice_bridge = seed.voice_bridge.unwrap_or_else(|| unused_voice_bridge(&state.meetings));
        let meeting = FakeMeeting {
            internal_meeting_id: internal_id(&seed.meeting_id, create_time),
            name: seed.name.unwrap_or_else(|| seed.meeting_id.clone()),
            meeting_id: seed.meeting_id,
            create_time,
            create_date: java_date(create_time / 1000),
            voice_bridge,
            dial_number: DEFAULT_DIAL_NUMBER.into(),
            attendee_pw: seed.attendee_pw.unwrap_or_else(password),
            moderator_pw: seed.moderator_pw.unwrap_or_else(password),
            duration: seed.duration,
            record: seed.record,
            metadata: seed.metadata,
            is_breakout: seed.parent_meeting_id.is_some(),
            parent_meeting_id: seed.parent_meeting_id,
            max_users: 0,
            has_user_joined: !seed.attendees.is_empty() || seed.counts.0 > 0,
            attendees: seed.attendees,
            extra_participants: seed.counts.0,
            extra_moderators: seed.counts.1,
            extra_video: seed.counts.2,
            extra_listeners: 0,
            extra_voice: 0,
            forcibly_ended: false,
            create_params: Vec::new(),
            create_body: None,
            documents: Vec::new(),
            chat: Vec::new(),
        };
        state.meetings.push(meeting.clone());
        meeting
    }

    /// Applies `change` to the meeting; returns whether it exists.
    pub fn update_meeting(&self, meeting_id: &str, change: impl FnOnce(&mut FakeMeeting)) -> bool {
        let mut state = self.shared.lock();
        match find_meeting(&state.meetings, meeting_id) {
            Some(i) => {
                let meeting = &mut state.meetings[i];
                change(meeting);
                if meeting.participant_count() > 0 {
                    meeting.has_user_joined = true;
                }
                true
            }
            None => false,
        }
    }

    /// Adds `n` joined viewers; returns whether the meeting exists.
    pub fn add_attendees(&self, meeting_id: &str, n: usize) -> bool {
        self.update_meeting(meeting_id, |m| {
            let start = m.attendees.len();
            m.attendees.extend((start..start + n).map(|i| FakeAttendee::viewer(format!("User {}", i + 1))));
        })
    }

    /// Sets the extra participant, moderator and video counters (reported
    /// counts are joined attendees plus these); returns whether the meeting
    /// exists.
    pub fn set_counts(&self, meeting_id: &str, participants: u64, moderators: u64, videos: u64) -> bool {
        self.update_meeting(meeting_id, |m| {
            m.extra_participants = participants;
            m.extra_moderators = moderators;
            m.extra_video = videos;
        })
    }

    /// Sets the extra listen-only and voice counters; returns whether the
    /// meeting exists.
    pub fn set_audio_counts(&self, meeting_id: &str, listeners: u64, voice: u64) -> bool {
        self.update_meeting(meeting_id, |m| {
            m.extra_listeners = listeners;
            m.extra_voice = voice;
        })
    }

    /// Removes a meeting as if it had ended on the server by itself.
    pub fn remove_meeting(&self, meeting_id: &str) -> Option<FakeMeeting> {
        let mut state = self.shared.lock();
        let i = find_meeting(&state.meetings, meeting_id)?;
        let meeting = state.meetings.remove(i);
        state.ended.push(meeting.clone());
        Some(meeting)
    }

    /// Adds a recording of `meeting_id` in `state` (`processing`,
    /// `processed`, `published`…); returns its record id.
    pub fn add_recording(&self, meeting_id: &str, state: &str) -> String {
        let record_id = format!("{}-{}", internal_id(meeting_id, now_ms()), random_string(6, ALNUM_LOWER));
        self.shared.lock().recordings.push(FakeRecording {
            record_id: record_id.clone(),
            meeting_id: meeting_id.to_owned(),
            state: state.to_owned(),
        });
        record_id
    }

    /// Moves a recording to `state` (for example `published` once processing
    /// is done); returns whether it exists.
    pub fn set_recording_state(&self, record_id: &str, state: &str) -> bool {
        let mut shared = self.shared.lock();
        let found = shared.recordings.iter_mut().find(|r| r.record_id == record_id);
        found.map(|r| r.state = state.to_owned()).is_some()
    }

    /// The recordings the server holds.
    pub fn recordings(&self) -> Vec<FakeRecording> {
        self.shared.lock().recordings.clone()
    }

    /// Removes every meeting (without recording them as ended).
    pub fn clear_meetings(&self) {
        self.shared.lock().meetings.clear();
    }

    /// A crash mid-meeting: the server stops answering (connections
    /// refused, as [`FakeBbb::stop`]) and its meetings are lost, as when
    /// BigBlueButton's processes die. [`FakeBbb::start_again`] brings it back
    /// empty, as a rebooted server.
    pub async fn crash(&self) {
        self.stop().await;
        self.clear_meetings();
    }
}

impl Drop for FakeBbb {
    fn drop(&mut self) {
        let server = self.server.get_mut().map(Option::take).ok().flatten();
        if let Some(server) = server {
            server.handle.abort();
        }
    }
}

/// Several fake servers with distinct random secrets.
#[derive(Debug)]
pub struct FakeFleet {
    servers: Vec<FakeBbb>,
}

impl FakeFleet {
    /// Starts `n` fakes.
    pub async fn start(n: usize) -> Self {
        let mut servers = Vec::with_capacity(n);
        for _ in 0..n {
            servers.push(FakeBbb::start(random_string(42, ALNUM)).await);
        }
        Self { servers }
    }

    /// Wraps existing fakes.
    pub fn from_servers(servers: Vec<FakeBbb>) -> Self {
        Self { servers }
    }

    /// The servers.
    pub fn servers(&self) -> &[FakeBbb] {
        &self.servers
    }

    /// Iterates over the servers.
    pub fn iter(&self) -> std::slice::Iter<'_, FakeBbb> {
        self.servers.iter()
    }

    /// Number of servers.
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// Whether the fleet is empty.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// Index of the (first) server hosting the meeting.
    pub fn server_with_meeting(&self, meeting_id: &str) -> Option<usize> {
        self.servers.iter().position(|s| s.has_meeting(meeting_id))
    }

    /// Indices of every server hosting the meeting.
    pub fn servers_with_meeting(&self, meeting_id: &str) -> Vec<usize> {
        (0..self.servers.len()).filter(|&i| self.servers[i].has_meeting(meeting_id)).collect()
    }

    /// Recorded requests for `call` over all servers.
    pub fn call_count(&self, call: &str) -> usize {
        self.servers.iter().map(|s| s.call_count(call)).sum()
    }

    /// Forgets recorded requests on every server.
    pub fn clear_calls(&self) {
        for server in &self.servers {
            server.clear_calls();
        }
    }
}

impl Index<usize> for FakeFleet {
    type Output = FakeBbb;

    fn index(&self, index: usize) -> &FakeBbb {
        &self.servers[index]
    }
}

impl<'a> IntoIterator for &'a FakeFleet {
    type Item = &'a FakeBbb;
    type IntoIter = std::slice::Iter<'a, FakeBbb>;

    fn into_iter(self) -> Self::IntoIter {
        self.servers.iter()
    }
}

// ---------------------------------------------------------------------------
// Server.

fn spawn_server(listener: TcpListener, shared: Arc<Shared>) -> ServerTask {
    let (shutdown, mut shutdown_rx) = oneshot::channel();
    let handle = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut shutdown_rx => break,
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let shared = shared.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |req| handle(shared.clone(), req));
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(listener);
        connections.shutdown().await;
    });
    ServerTask { shutdown, handle }
}

type HttpResponse = Response<Full<Bytes>>;

fn response(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> HttpResponse {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("cache-control", "no-cache")
        .body(Full::new(body.into()))
        .expect("valid response")
}

fn xml_response(body: String) -> HttpResponse {
    response(StatusCode::OK, XML_CONTENT_TYPE, body)
}

fn failed(key: &str, message: &str) -> HttpResponse {
    let mut x = Xml::response("FAILED");
    x.leaf("messageKey", key);
    x.leaf("message", message);
    xml_response(x.finish())
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<HttpResponse, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(http_body_util::Collected::to_bytes).unwrap_or_default();
    let path = parts.uri.path().to_owned();
    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let content_type = parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let call = api_call_name(&path);

    let mut params: Vec<(String, String)> = form_urlencoded::parse(raw_query.as_bytes()).into_owned().collect();
    if content_type.as_deref().is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded")) {
        params.extend(form_urlencoded::parse(&body).into_owned());
    }

    let recorded = {
        let mut state = shared.lock();
        let checksum_valid = call.as_deref().is_some_and(|call| checksum_valid(call, &raw_query, &state.secret));
        let recorded = RecordedCall {
            method: parts.method.clone(),
            path: path.clone(),
            call: call.clone().unwrap_or_else(|| path.clone()),
            raw_query,
            params,
            content_type,
            body,
            checksum_valid,
        };
        state.calls.push(recorded.clone());
        recorded
    };

    // Failure modes.
    let mut mode_rx = shared.mode.subscribe();
    let mode = loop {
        let mode = mode_rx.borrow_and_update().clone();
        match mode {
            Mode::Hung => {
                if mode_rx.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            Mode::Slow(delay) => {
                tokio::time::sleep(delay).await;
                break Mode::Normal;
            }
            other => break other,
        }
    };
    match mode {
        Mode::Down => {
            return Ok(response(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "Service Unavailable"));
        }
        Mode::Garbage => {
            return Ok(response(StatusCode::OK, "text/html", "<html><body>Bad Gateway"));
        }
        _ => {}
    }

    let Some(call) = call else {
        return Ok(non_api(&shared, &recorded));
    };
    let mut state = shared.lock();
    if let Some(body) = state.raw_replies.get(&call) {
        return Ok(response(StatusCode::OK, XML_CONTENT_TYPE, body.clone()));
    }
    if call.is_empty() {
        let mut x = Xml::response("SUCCESS");
        x.leaf("version", "2.0");
        x.leaf("apiVersion", "2.0");
        x.leaf("bbbVersion", &state.bbb_version);
        return Ok(xml_response(x.finish()));
    }
    if let Some(refusal) = post_refusal(&call, &recorded) {
        return Ok(refusal);
    }
    if !recorded.checksum_valid {
        return Ok(failed("checksumError", "Checksums do not match"));
    }
    if let Mode::Failed { key, message } = &mode {
        return Ok(failed(key, message));
    }
    let origin = format!("http://{}", shared.addr);
    Ok(dispatch(&mut state, &origin, &call, &recorded))
}

/// bbb-web 3.0's rules for a POST with a body: its media type (compared
/// case-insensitively, parameters ignored) must be one the call takes
/// (`create`: forms or XML; `insertDocument`: XML; the rest: forms), and a
/// parameter may not be in both the query and a form body.
fn post_refusal(call: &str, req: &RecordedCall) -> Option<HttpResponse> {
    if req.method != Method::POST || req.body.is_empty() {
        return None;
    }
    let media = req.content_type.as_deref().map(|ct| ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    let form = matches!(media.as_deref(), Some("application/x-www-form-urlencoded" | "multipart/form-data"));
    let xml = matches!(media.as_deref(), Some("application/xml" | "text/xml"));
    let allowed = match call {
        "create" => form || xml,
        "insertDocument" => xml,
        _ => form,
    };
    if !allowed {
        return Some(failed("unsupportedContentType", "POST request Content-Type is missing or unsupported"));
    }
    if media.as_deref() == Some("application/x-www-form-urlencoded") {
        let query: Vec<String> =
            form_urlencoded::parse(req.raw_query.as_bytes()).map(|(k, _)| k.into_owned()).collect();
        if form_urlencoded::parse(&req.body).any(|(k, _)| query.iter().any(|q| *q == k)) {
            return Some(failed("checksumError", "Checksums do not match"));
        }
    }
    None
}

/// Pages outside the API: the HTML5 client a join redirect points to.
fn non_api(shared: &Shared, call: &RecordedCall) -> HttpResponse {
    if call.path == "/html5client/join" {
        let token = call.param("sessionToken").unwrap_or_default();
        let state = shared.lock();
        let found = state
            .meetings
            .iter()
            .find_map(|m| m.attendees.iter().find(|a| !token.is_empty() && a.session_token == token).map(|a| (m, a)));
        if let Some((meeting, attendee)) = found {
            let body = format!(
                "<html><body>fake html5 client: meetingID={} fullName={} role={} sessionToken={token}</body></html>",
                xml_escape(&meeting.meeting_id),
                xml_escape(&attendee.full_name),
                attendee.role
            );
            return response(StatusCode::OK, "text/html;charset=utf-8", body);
        }
    }
    response(StatusCode::NOT_FOUND, "text/plain", "Not Found")
}

/// The API call name of `path`: `Some("")` for the API root, the last
/// segment below it otherwise, `None` outside the API.
fn api_call_name(path: &str) -> Option<String> {
    if path == API_PATH || path == "/bigbluebutton/" || path == "/bigbluebutton" {
        return Some(String::new());
    }
    let rest = path.strip_prefix(API_PATH)?.strip_prefix('/')?;
    Some(rest.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_owned())
}

/// bbb-web's validation: strip the checksum pair textually from the raw
/// query, pick the algorithm by length, compare case-insensitively.
fn checksum_valid(call: &str, raw_query: &str, secret: &str) -> bool {
    // bbb-web reads the (first) decoded `checksum` parameter, then removes
    // its pair textually from the raw query.
    let Some(checksum) =
        form_urlencoded::parse(raw_query.as_bytes()).find(|(k, _)| k == "checksum").map(|(_, v)| v.into_owned())
    else {
        return false;
    };
    let Some(algo) = Algo::from_hex_len(checksum.len()) else {
        return false;
    };
    let stripped = raw_query
        .replace(&format!("&checksum={checksum}"), "")
        .replace(&format!("checksum={checksum}&"), "")
        .replace(&format!("checksum={checksum}"), "");
    let expected = algo.hex_digest(format!("{call}{stripped}{secret}").as_bytes());
    expected.eq_ignore_ascii_case(&checksum)
}

fn first_param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn dispatch(state: &mut State, origin: &str, call: &str, req: &RecordedCall) -> HttpResponse {
    let get_or_post = matches!(req.method, Method::GET | Method::HEAD | Method::POST);
    match call {
        "create" if get_or_post => create(state, req),
        "join" if matches!(req.method, Method::GET | Method::HEAD) => join(state, origin, req),
        "end" if get_or_post => end(state, req),
        "isMeetingRunning" if get_or_post => is_meeting_running(state, req),
        "getMeetingInfo" if get_or_post => get_meeting_info(state, req),
        "getMeetings" if get_or_post => get_meetings(state),
        "insertDocument" if req.method == Method::POST => insert_document(state, req),
        "sendChatMessage" if matches!(req.method, Method::GET | Method::HEAD) => send_chat_message(state, req),
        "getRecordings" if get_or_post => get_recordings(state, req),
        _ => failed("unsupportedRequest", "This request is not supported."),
    }
}

const NOT_FOUND_MESSAGE: &str = "We could not find a meeting with that meeting ID";

fn create(state: &mut State, req: &RecordedCall) -> HttpResponse {
    let Some(meeting_id) = req.param("meetingID").filter(|id| !id.is_empty()) else {
        return failed("missingParamMeetingID", "You must specify a meeting ID for the meeting.");
    };
    let attendee_pw = req.param("attendeePW").filter(|p| !p.is_empty());
    let moderator_pw = req.param("moderatorPW").filter(|p| !p.is_empty());
    if let Some(i) = find_meeting(&state.meetings, meeting_id) {
        let existing = &state.meetings[i];
        let same = attendee_pw.is_none_or(|p| p == existing.attendee_pw)
            && moderator_pw.is_none_or(|p| p == existing.moderator_pw);
        if !same {
            return failed(
                "idNotUnique",
                "A meeting already exists with that meeting ID.  Please use a different meeting ID.",
            );
        }
        return xml_response(create_reply(
            existing,
            "duplicateWarning",
            "This conference was already in existence and may currently be in progress.",
        ));
    }
    let voice_bridge = match req.param("voiceBridge").filter(|v| !v.is_empty()) {
        Some(bridge) => {
            if state.meetings.iter().any(|m| m.voice_bridge == bridge) {
                return failed("nonUniqueVoiceBridge", "The selected voice bridge is already in use.");
            }
            bridge.to_owned()
        }
        None => unused_voice_bridge(&state.meetings),
    };
    let is_breakout = req.param("isBreakout").is_some_and(is_true);
    let parent_meeting_id = if is_breakout {
        let Some(parent) = req.param("parentMeetingID").filter(|p| !p.is_empty()) else {
            return failed("parentMeetingIDMissing", "No parent meeting ID was provided for the breakout room");
        };
        if find_meeting(&state.meetings, parent).is_none() {
            return failed("parentMeetingDoesNotExist", "No parent meeting exists for the breakout room");
        }
        Some(parent.to_owned())
    } else {
        None
    };
    let metadata = req
        .params
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("meta_").map(|key| (key.to_lowercase(), v.clone())))
        .fold(BTreeMap::new(), |mut map, (k, v)| {
            map.entry(k).or_insert(v);
            map
        });
    let create_time = now_ms();
    let is_form = req.content_type.as_deref().is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let meeting = FakeMeeting {
        meeting_id: meeting_id.to_owned(),
        name: req.param("name").filter(|n| !n.is_empty()).unwrap_or(meeting_id).to_owned(),
        internal_meeting_id: internal_id(meeting_id, create_time),
        create_time,
        create_date: java_date(create_time / 1000),
        voice_bridge,
        dial_number: req.param("dialNumber").unwrap_or(DEFAULT_DIAL_NUMBER).to_owned(),
        attendee_pw: attendee_pw.map_or_else(password, str::to_owned),
        moderator_pw: moderator_pw.map_or_else(password, str::to_owned),
        duration: req.param("duration").and_then(|d| d.parse().ok()).unwrap_or(0),
        record: req.param("record").is_some_and(is_true),
        metadata,
        is_breakout,
        parent_meeting_id,
        max_users: req.param("maxParticipants").and_then(|d| d.parse().ok()).unwrap_or(0),
        attendees: Vec::new(),
        extra_participants: 0,
        extra_moderators: 0,
        extra_video: 0,
        extra_listeners: 0,
        extra_voice: 0,
        has_user_joined: false,
        forcibly_ended: false,
        create_params: req.params.clone(),
        create_body: (req.method == Method::POST && !req.body.is_empty() && !is_form).then(|| req.body.clone()),
        documents: Vec::new(),
        chat: Vec::new(),
    };
    let reply = create_reply(&meeting, "", "");
    state.meetings.push(meeting);
    xml_response(reply)
}

fn create_reply(m: &FakeMeeting, key: &str, message: &str) -> String {
    let mut x = Xml::response("SUCCESS");
    x.leaf("meetingID", &m.meeting_id);
    x.leaf("internalMeetingID", &m.internal_meeting_id);
    x.leaf("parentMeetingID", m.parent_meeting_id.as_deref().unwrap_or("bbb-none"));
    x.leaf("attendeePW", &m.attendee_pw);
    x.leaf("moderatorPW", &m.moderator_pw);
    x.leaf("createTime", &m.create_time.to_string());
    x.leaf("voiceBridge", &m.voice_bridge);
    x.leaf("dialNumber", &m.dial_number);
    x.leaf("createDate", &m.create_date);
    x.leaf("hasUserJoined", bool_str(m.has_user_joined));
    x.leaf("duration", &m.duration.to_string());
    x.leaf("hasBeenForciblyEnded", bool_str(m.forcibly_ended));
    x.leaf("messageKey", key);
    x.leaf("message", message);
    x.finish()
}

fn join(state: &mut State, origin: &str, req: &RecordedCall) -> HttpResponse {
    let Some(meeting_id) = req.param("meetingID").filter(|id| !id.is_empty()) else {
        return failed("missingParamMeetingID", "You must specify a meeting ID for the meeting.");
    };
    let Some(full_name) = req.param("fullName").filter(|n| !n.is_empty()) else {
        return failed(
            "missingParamFullName",
            "You must specify a name for the attendee who will be joining the meeting.",
        );
    };
    let Some(i) = find_meeting(&state.meetings, meeting_id) else {
        return failed("notFound", NOT_FOUND_MESSAGE);
    };
    let meeting = &mut state.meetings[i];
    let role = match req.param("role").map(str::to_ascii_uppercase).as_deref() {
        Some("MODERATOR") => "MODERATOR",
        Some("VIEWER") => "VIEWER",
        _ if req.param("password") == Some(meeting.moderator_pw.as_str()) => "MODERATOR",
        _ => "VIEWER",
    };
    let session_token = random_string(16, ALNUM_LOWER);
    let attendee = FakeAttendee {
        user_id: req
            .param("userID")
            .filter(|u| !u.is_empty())
            .map_or_else(|| format!("w_{}", random_string(12, ALNUM_LOWER)), str::to_owned),
        full_name: full_name.to_owned(),
        role: role.to_owned(),
        has_video: false,
        is_listening_only: false,
        has_joined_voice: false,
        session_token: session_token.clone(),
    };
    let url = format!("{origin}/html5client/join?sessionToken={session_token}");
    let redirect = !req.param("redirect").is_some_and(|r| r.eq_ignore_ascii_case("false"));
    let reply = if redirect {
        Response::builder()
            .status(StatusCode::FOUND)
            .header("location", &url)
            .header("cache-control", "no-cache")
            .body(Full::new(Bytes::new()))
            .expect("valid response")
    } else {
        let mut x = Xml::response("SUCCESS");
        x.leaf("messageKey", "successfullyJoined");
        x.leaf("message", "You have joined successfully.");
        x.leaf("meeting_id", &meeting.internal_meeting_id);
        x.leaf("user_id", &attendee.user_id);
        x.leaf("auth_token", &random_string(12, ALNUM_LOWER));
        x.leaf("session_token", &session_token);
        x.leaf("guestStatus", "ALLOW");
        x.leaf("url", &url);
        xml_response(x.finish())
    };
    meeting.attendees.push(attendee);
    meeting.has_user_joined = true;
    reply
}

fn end(state: &mut State, req: &RecordedCall) -> HttpResponse {
    let Some(meeting_id) = req.param("meetingID").filter(|id| !id.is_empty()) else {
        return failed("missingParamMeetingID", "You must specify a meeting ID for the meeting.");
    };
    let Some(i) = find_meeting(&state.meetings, meeting_id) else {
        return failed(
            "notFound",
            "We could not find a meeting with that meeting ID - perhaps the meeting is not yet running?",
        );
    };
    let mut meeting = state.meetings.remove(i);
    meeting.forcibly_ended = true;
    state.ended.push(meeting);
    let mut x = Xml::response("SUCCESS");
    x.leaf("messageKey", "sentEndMeetingRequest");
    x.leaf(
        "message",
        "A request to end the meeting was sent.  Please wait a few seconds, and then use the \
         getMeetingInfo or isMeetingRunning API calls to verify that it was ended.",
    );
    xml_response(x.finish())
}

/// bbb-web 3.0's sendChatMessage: without `meetingID` it fails with an
/// HTTP 500 page; `message` is `@NotNull` (`nullError`) and 1–500 long,
/// `userName` at most 255 (`sizeError`), lengths in UTF-16 units as Java
/// counts them; the sender defaults to "System".
fn send_chat_message(state: &mut State, req: &RecordedCall) -> HttpResponse {
    let Some(meeting_id) = req.param("meetingID").filter(|id| !id.is_empty()) else {
        return response(StatusCode::INTERNAL_SERVER_ERROR, "text/html", "<html><body>Internal Server Error");
    };
    let java_length = |value: &str| value.encode_utf16().count();
    let Some(message) = req.param("message") else {
        return failed("nullError", "You must provide the param message");
    };
    if !(1..=500).contains(&java_length(message)) {
        return failed("sizeError", "Param message must be between 1 and 500 characters");
    }
    let user_name = req.param("userName");
    if user_name.is_some_and(|name| java_length(name) > 255) {
        return failed("sizeError", "Param userName must not exceed 255 characters");
    }
    let Some(i) = find_meeting(&state.meetings, meeting_id) else {
        return failed("notFound", NOT_FOUND_MESSAGE);
    };
    state.meetings[i].chat.push((user_name.unwrap_or("System").to_owned(), message.to_owned()));
    let mut x = Xml::response("SUCCESS");
    x.leaf("messageKey", "");
    x.leaf("message", "");
    xml_response(x.finish())
}

/// The server's own recordings (not the balancer's): filtered by
/// `meetingID` (comma-separated) and `state` (comma-separated; bbb-web's
/// default is `published,unpublished`, `any` lists all).
fn get_recordings(state: &State, req: &RecordedCall) -> HttpResponse {
    let states: Vec<&str> = req.param("state").unwrap_or("published,unpublished").split(',').map(str::trim).collect();
    let meetings: Option<Vec<&str>> =
        req.param("meetingID").filter(|m| !m.is_empty()).map(|m| m.split(',').map(str::trim).collect());
    let listed: Vec<&FakeRecording> = state
        .recordings
        .iter()
        .filter(|r| states.contains(&"any") || states.contains(&r.state.as_str()))
        .filter(|r| meetings.as_ref().is_none_or(|ids| ids.contains(&r.meeting_id.as_str())))
        .collect();
    let mut x = Xml::response("SUCCESS");
    x.open("recordings");
    for recording in &listed {
        x.open("recording");
        x.leaf("recordID", &recording.record_id);
        x.leaf("meetingID", &recording.meeting_id);
        x.leaf("state", &recording.state);
        x.leaf("published", bool_str(recording.state == "published"));
        x.close("recording");
    }
    x.close("recordings");
    if listed.is_empty() {
        x.leaf("messageKey", "noRecordings");
        x.leaf("message", "There are no recordings for the meeting(s).");
    }
    xml_response(x.finish())
}

fn is_meeting_running(state: &State, req: &RecordedCall) -> HttpResponse {
    let Some(meeting_id) = req.param("meetingID").filter(|id| !id.is_empty()) else {
        return failed("missingParamMeetingID", "You must specify a meeting ID for the meeting.");
    };
    let running = find_meeting(&state.meetings, meeting_id).is_some_and(|i| state.meetings[i].running());
    let mut x = Xml::response("SUCCESS");
    x.leaf("running", bool_str(running));
    xml_response(x.finish())
}

fn get_meeting_info(state: &State, req: &RecordedCall) -> HttpResponse {
    let Some(meeting_id) = req.param("meetingID").filter(|id| !id.is_empty()) else {
        return failed("missingParamMeetingID", "You must specify a meeting ID for the meeting.");
    };
    let Some(i) = find_meeting(&state.meetings, meeting_id) else {
        return failed("notFound", NOT_FOUND_MESSAGE);
    };
    let mut x = Xml::response("SUCCESS");
    meeting_fields(&mut x, &state.meetings[i], &state.meetings);
    xml_response(x.finish())
}

fn get_meetings(state: &State) -> HttpResponse {
    let mut x = Xml::response("SUCCESS");
    if state.meetings.is_empty() {
        x.raw("<meetings/>");
        x.leaf("messageKey", "noMeetings");
        x.leaf("message", "no meetings were found on this server");
    } else {
        x.open("meetings");
        for meeting in &state.meetings {
            x.open("meeting");
            meeting_fields(&mut x, meeting, &state.meetings);
            x.close("meeting");
        }
        x.close("meetings");
    }
    xml_response(x.finish())
}

fn insert_document(state: &mut State, req: &RecordedCall) -> HttpResponse {
    let Some(meeting_id) = req.param("meetingID").filter(|id| !id.is_empty()) else {
        return failed("missingParamMeetingID", "You must specify a meeting ID for the meeting.");
    };
    let Some(i) = find_meeting(&state.meetings, meeting_id) else {
        return failed("notFound", &format!("Meeting with id [{meeting_id}] not found."));
    };
    state.meetings[i].documents.push(req.body.clone());
    let mut x = Xml::response("SUCCESS");
    x.leaf("message", "Presentation is being uploaded");
    xml_response(x.finish())
}

/// The meeting document of getMeetingInfo / getMeetings, in bbb-web's order.
fn meeting_fields(x: &mut Xml, m: &FakeMeeting, all: &[FakeMeeting]) {
    x.leaf("meetingName", &m.name);
    x.leaf("meetingID", &m.meeting_id);
    x.leaf("internalMeetingID", &m.internal_meeting_id);
    x.leaf("createTime", &m.create_time.to_string());
    x.leaf("createDate", &m.create_date);
    x.leaf("voiceBridge", &m.voice_bridge);
    x.leaf("dialNumber", &m.dial_number);
    x.leaf("attendeePW", &m.attendee_pw);
    x.leaf("moderatorPW", &m.moderator_pw);
    x.leaf("running", bool_str(m.running()));
    x.leaf("duration", &m.duration.to_string());
    x.leaf("hasUserJoined", bool_str(m.has_user_joined));
    x.leaf("recording", bool_str(m.record));
    x.leaf("hasBeenForciblyEnded", bool_str(m.forcibly_ended));
    x.leaf("startTime", &m.create_time.to_string());
    x.leaf("endTime", "0");
    x.leaf("participantCount", &m.participant_count().to_string());
    x.leaf("listenerCount", &m.listener_count().to_string());
    x.leaf("voiceParticipantCount", &m.voice_participant_count().to_string());
    x.leaf("videoCount", &m.video_count().to_string());
    x.leaf("maxUsers", &m.max_users.to_string());
    x.leaf("moderatorCount", &m.moderator_count().to_string());
    x.open("attendees");
    for a in &m.attendees {
        x.open("attendee");
        x.leaf("userID", &a.user_id);
        x.leaf("fullName", &a.full_name);
        x.leaf("role", &a.role);
        x.leaf("isPresenter", bool_str(a.role == "MODERATOR"));
        x.leaf("isListeningOnly", bool_str(a.is_listening_only));
        x.leaf("hasJoinedVoice", bool_str(a.has_joined_voice));
        x.leaf("hasVideo", bool_str(a.has_video));
        x.leaf("clientType", "HTML5");
        x.close("attendee");
    }
    x.close("attendees");
    x.open("metadata");
    for (key, value) in &m.metadata {
        x.leaf(key, value);
    }
    x.close("metadata");
    x.leaf("isBreakout", bool_str(m.is_breakout));
    if let Some(parent) = &m.parent_meeting_id {
        x.leaf("parentMeetingID", parent);
        x.leaf("sequence", "1");
        x.leaf("freeJoin", "false");
    }
    let rooms: Vec<&FakeMeeting> =
        all.iter().filter(|b| b.parent_meeting_id.as_deref() == Some(m.internal_meeting_id.as_str())).collect();
    if !rooms.is_empty() {
        x.open("breakoutRooms");
        for room in rooms {
            x.leaf("breakout", &room.internal_meeting_id);
        }
        x.close("breakoutRooms");
    }
}

/// Finds a meeting by external ID, then by internal ID (or a prefix of at
/// least 40 hex digits of one, as bbb-web's lookup accepts).
fn find_meeting(meetings: &[FakeMeeting], id: &str) -> Option<usize> {
    meetings
        .iter()
        .position(|m| m.meeting_id == id)
        .or_else(|| meetings.iter().position(|m| m.internal_meeting_id == id))
        .or_else(|| {
            let looks_internal = id.len() >= 40 && id[..40].bytes().all(|b| b.is_ascii_hexdigit());
            if looks_internal { meetings.iter().position(|m| m.internal_meeting_id.starts_with(id)) } else { None }
        })
}

fn internal_id(meeting_id: &str, create_time: u64) -> String {
    format!("{}-{create_time}", Algo::Sha1.hex_digest(meeting_id.as_bytes()))
}

fn unused_voice_bridge(meetings: &[FakeMeeting]) -> String {
    loop {
        let candidate = rand::random_range(10_000u32..100_000).to_string();
        if meetings.iter().all(|m| m.voice_bridge != candidate) {
            return candidate;
        }
    }
}

fn password() -> String {
    random_string(12, ALNUM_LOWER)
}

fn is_true(value: &str) -> bool {
    value.eq_ignore_ascii_case("true")
}

fn bool_str(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Formats epoch seconds like Java's `Date.toString()` in UTC:
/// `Mon Jul 09 17:03:29 UTC 2018`.
fn java_date(epoch_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = epoch_secs / 86_400;
    let secs = epoch_secs % 86_400;
    // Civil-from-days (Howard Hinnant), for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{} {} {day:02} {:02}:{:02}:{:02} UTC {year}",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

// ---------------------------------------------------------------------------
// Compact XML writer (FreeMarker `<#compress>` output: no declaration, no
// whitespace between elements).

struct Xml(String);

impl Xml {
    fn response(returncode: &str) -> Self {
        let mut x = Self(String::with_capacity(512));
        x.open("response");
        x.leaf("returncode", returncode);
        x
    }

    fn open(&mut self, name: &str) {
        let _ = write!(self.0, "<{name}>");
    }

    fn close(&mut self, name: &str) {
        let _ = write!(self.0, "</{name}>");
    }

    fn leaf(&mut self, name: &str, text: &str) {
        self.open(name);
        self.0.push_str(&xml_escape(text));
        self.close(name);
    }

    fn raw(&mut self, text: &str) {
        self.0.push_str(text);
    }

    fn finish(mut self) -> String {
        self.close("response");
        self.0
    }
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

#[cfg(test)]
mod tests;
