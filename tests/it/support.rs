//! Helpers shared by the integration tests.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser as _;
use scalelite_admin::{Cli, Io};
use scalelite_core::MeetingId;
use scalelite_core::config::Config;
use scalelite_core::selection::{Candidate, Selection, TagSpec, select};
use scalelite_store::recordings::{ImportedFormat, ImportedThumbnail, RecordingImport};
use scalelite_store::{Placement, PlacementRequest, SqliteStore, Store, Stores};
use scalelite_tests::{ApiClient, Reply, TestApp};
use serde_json::Value;

/// Creates `id` through the API like Greenlight would and asserts success.
pub async fn create(app: &TestApp, id: &str) -> Reply {
    let reply = app.client().get("create", &[("meetingID", id), ("name", "Room")]).await;
    assert!(reply.is_success(), "create {id}: {}", reply.body);
    reply
}

/// A second `scalelite-api` process on the app's configuration and stores
/// (its own connections, or its own handle on the SQLite file), as another
/// replica behind the same load balancer; it stops when the sender is
/// dropped or sent to.
pub async fn second_api(app: &TestApp) -> (ApiClient, tokio::sync::oneshot::Sender<()>) {
    api_with((*app.state.config).clone()).await
}

/// An API on `config` (its own stores), as [`second_api`].
pub async fn api_with(config: Config) -> (ApiClient, tokio::sync::oneshot::Sender<()>) {
    let stores = Stores::open(&config, 2).await.unwrap();
    let state = scalelite_api::AppState::with_recordings(config, stores.meetings, stores.recordings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/bigbluebutton/api", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(scalelite_api::run(listener, state, async move {
        let _ = stopped.await;
    }));
    (ApiClient::new(url, scalelite_tests::LB_SECRET), stop)
}

/// Whether dial-in number `pin` is free: a new meeting offered only that
/// voice bridge gets it (the probe meeting is removed again).
pub async fn voice_bridge_is_free(store: &dyn Store, pin: &str) -> bool {
    let probe = format!("voice-bridge-probe-{pin}");
    let mut request = placement_request(&probe);
    request.voice_bridges = vec![pin.to_owned()];
    request.reserve_users = 0;
    match store.place_meeting(&request).await.unwrap() {
        Placement::Placed { meeting, .. } => {
            assert!(store.delete_meeting(&meeting.id, None).await.unwrap());
            meeting.voice_bridge == pin
        }
        Placement::VoiceBridgesExhausted => false,
        other => panic!("probing voice bridge {pin}: {other:?}"),
    }
}

/// A `SUCCESS` `getMeetings` reply whose `<meetings>` holds elements nested
/// `depth` deep: well-formed, and far deeper than any BBB document
/// (`scalelite_core::xml::MAX_DEPTH`). Before the limit a tree this deep
/// overflowed the stack of whichever process dropped it.
pub fn deeply_nested_get_meetings(depth: usize) -> String {
    format!(
        "<response><returncode>SUCCESS</returncode><meetings>{}{}</meetings></response>",
        "<m>".repeat(depth),
        "</m>".repeat(depth)
    )
}

/// Asserts a BBB `FAILED` reply with `key`, HTTP 200 and the XML type.
#[track_caller]
pub fn assert_failed(reply: &Reply, key: &str) {
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.returncode().as_deref(), Some("FAILED"), "{}", reply.body);
    assert_eq!(reply.message_key().as_deref(), Some(key), "{}", reply.body);
    assert_eq!(reply.content_type(), Some("application/xml; charset=utf-8"));
}

/// What one in-process `scalelite-admin` run printed and returned.
#[derive(Debug)]
pub struct Run {
    pub code: u8,
    pub out: String,
    pub err: String,
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "exit code; stdout:\n{}\nstderr:\n{}", self.out, self.err);
        self
    }

    /// Exit 1 with exactly `line` on stderr and nothing on stdout.
    #[track_caller]
    pub fn fails_with(self, line: &str) {
        assert_eq!((self.code, self.out.as_str(), self.err.as_str()), (1, "", format!("{line}\n").as_str()));
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.out)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", self.out))
    }

    /// The id after `prefix` on a line of stdout.
    pub fn id_after(&self, prefix: &str) -> String {
        let id = self.out.lines().find_map(|l| l.strip_prefix(prefix));
        id.unwrap_or_else(|| panic!("no {prefix:?} in {:?}", self.out)).to_owned()
    }
}

/// Runs `scalelite-admin <args>` in-process with `config` and `input` on
/// stdin.
pub async fn admin_with(config: &Config, args: &[&str], input: &str) -> Run {
    let cli = Cli::try_parse_from(std::iter::once("scalelite-admin").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let (mut out, mut err, mut input) = (Vec::new(), Vec::new(), Cursor::new(input.as_bytes().to_vec()));
    let mut io = Io { out: &mut out, err: &mut err, input: &mut input };
    let code = scalelite_admin::run(cli, config, &mut io).await;
    Run { code, out: String::from_utf8(out).unwrap(), err: String::from_utf8(err).unwrap() }
}

/// A store under contract test and whatever keeps its backend alive.
pub struct Fixture<S: ?Sized> {
    pub store: Arc<S>,
    pub _guard: Box<dyn std::any::Any + Send>,
}

/// An embedded SQLite store in a temporary directory (it implements both
/// store traits, so `S` is `dyn Store` or `dyn RecordingStore`).
pub async fn sqlite_fixture<S: ?Sized>(coerce: impl FnOnce(Arc<SqliteStore>) -> Arc<S>) -> Fixture<S> {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("scalelite.db")).await.unwrap();
    Fixture { store: coerce(Arc::new(store)), _guard: Box::new(dir) }
}

/// Runs every listed test body (`async fn name(store: Arc<dyn Trait>)` in
/// the calling module) once per backend, as `<backend>::<name>`, each with
/// a fresh `super::<fixture>()`.
macro_rules! contract {
    (@backend $backend:ident, $fixture:ident, [$($name:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test]
                async fn $name() {
                    let fixture = super::$fixture().await;
                    super::$name(std::sync::Arc::clone(&fixture.store)).await;
                }
            )*
        }
    };
    ([$($backend:ident => $fixture:ident),+ $(,)?], $names:tt) => {
        $( $crate::support::contract!(@backend $backend, $fixture, $names); )+
    };
}
pub(crate) use contract;

/// A placement request for `id` with nine voice-bridge candidates, a
/// ten-minute TTL and a reservation of 15 users.
pub fn placement_request(id: &str) -> PlacementRequest {
    PlacementRequest {
        meeting_id: MeetingId::from(id),
        tenant_id: None,
        tags: TagSpec::default(),
        moderator_pw: "mp".into(),
        voice_bridges: scalelite_core::voice_bridge::candidates(id, 9, None),
        ttl: Duration::from_secs(600),
        reserve_users: 15,
    }
}

/// The tag specs a placement is tried with against a random pool.
pub const TAG_SPECS: [&str; 10] = ["", "gpu", "gpu!", "eu;gpu", "gpu;eu!", "none", "none!", "zz", "zz!", "!"];

/// Places one meeting per [`TAG_SPECS`] entry on `store`, whose placement
/// pool is `pool` (id, load, tag), and asserts each lands where
/// `scalelite_core::selection::select` (the reference) says.
pub async fn assert_placements_follow_the_reference(
    store: &dyn Store,
    pool: &mut [(String, f64, Option<&str>)],
    round: usize,
) {
    // ZRANGE order: load ascending, ties by member.
    pool.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
    let candidates: Vec<Candidate<'_>> =
        pool.iter().map(|(id, load, tag)| Candidate { id, load: *load, tag: *tag, exists: true }).collect();
    for (n, spec) in TAG_SPECS.iter().enumerate() {
        let tag_spec = TagSpec::parse(Some(spec));
        let expected = match select(&candidates, &tag_spec) {
            Selection::Chosen(i) => Some(candidates[i].id.to_owned()),
            Selection::NoServer => None,
            Selection::TagUnavailable => Some("tag-unavailable".to_owned()),
        };
        let mut req = placement_request(&format!("m-{round}-{n}"));
        req.tags = tag_spec;
        req.reserve_users = 0;
        let got = match store.place_meeting(&req).await.unwrap() {
            Placement::Placed { server, .. } => Some(server.id.into_string()),
            Placement::NoServer => None,
            Placement::TagUnavailable => Some("tag-unavailable".to_owned()),
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(got, expected, "pool {pool:?}, spec {spec:?}");
    }
}

/// A published presentation recording of `meeting_id` starting at
/// `start_ms`, one hour long, with two metadata entries and two thumbnails
/// (one with every field, one with the URL only).
pub fn recording(record_id: &str, meeting_id: &str, start_ms: i64) -> RecordingImport {
    RecordingImport {
        record_id: record_id.into(),
        meeting_id: meeting_id.into(),
        name: Some(format!("Name {meeting_id}")),
        published: Some(true),
        participants: Some(3),
        state: Some("published".into()),
        start_ms: Some(start_ms),
        end_ms: Some(start_ms + 3_600_000),
        metadata: vec![("bbb-origin".into(), "greenlight".into()), ("gl-listed".into(), String::new())],
        formats: vec![ImportedFormat {
            format: "presentation".into(),
            url: format!("/playback/presentation/2.3/{record_id}"),
            length: Some(3),
            thumbnails: vec![
                ImportedThumbnail {
                    width: Some(176),
                    height: Some(136),
                    alt: Some("Welcome".into()),
                    url: "/t/1.png".into(),
                },
                ImportedThumbnail { width: None, height: None, alt: None, url: "/t/2.png".into() },
            ],
        }],
    }
}
