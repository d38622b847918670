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
        needs: scalelite_core::selection::Needs::default(),
        moderator_pw: "mp".into(),
        voice_bridges: scalelite_core::voice_bridge::candidates(id, 9, None),
        ttl: Duration::from_secs(600),
        reserve_users: 15,
        create: None,
        replace_on: None,
        max_meetings: None,
    }
}

/// The tag specs a placement is tried with against each generated pool:
/// none, one, several (in both orders, with `none`, repeated), required and
/// optional, tags no server carries, a lone `!`.
pub const TAG_SPECS: [&str; 18] = [
    "",
    "gpu",
    "gpu!",
    "eu;gpu",
    "gpu;eu",
    "gpu;eu!",
    "none",
    "none!",
    "zz",
    "zz!",
    "!",
    "eu;none",
    "none;gpu",
    "zz;eu!",
    "eu;gpu;none",
    "gpu;gpu",
    "zz;none!",
    "eu",
];

/// One server of a generated placement pool.
#[derive(Clone, Debug)]
pub struct PoolServer {
    /// Server id; pools order ties by it, as `ZRANGE` does.
    pub id: String,
    /// Its score in the pool.
    pub load: f64,
    /// Its tag (`none` is a tag a server may carry, too).
    pub tag: Option<&'static str>,
    /// Whether its record (`server:<id>`) exists: only Redis can hold a
    /// pool member without one (whose tag is then `None`).
    pub exists: bool,
}

/// Placement pools to compare a store's choice with the reference on: the
/// empty pool; random pools, small and larger than the Redis script's first
/// two windows (4 and 16 members), with few distinct loads (many ties); and
/// pools where stopping the walk early gives a wrong answer: the eligible
/// servers after 350 others, a group of equal load spanning windows whose
/// earlier-named tag comes last, a tagged-only pool. With
/// `missing_records`, some members have no record (and so no tag), in one
/// pool the first 18.
pub fn placement_pools(missing_records: bool) -> Vec<Vec<PoolServer>> {
    const TAGS: [Option<&str>; 5] = [None, None, Some("gpu"), Some("eu"), Some("none")];
    let mut seed: u64 = 0x5eed;
    let mut next = move |n: u64| {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let server =
        |i: usize, load: f64, tag: Option<&'static str>| PoolServer { id: format!("s{i:03}"), load, tag, exists: true };
    let mut pools = vec![Vec::new()];
    for round in 0..24 {
        let count = if round % 2 == 0 { 1 + next(7) as usize } else { 17 + next(60) as usize };
        let loads = 1 + next(if round % 3 == 0 { 2 } else { 6 });
        let pool = (0..count)
            .map(|i| {
                let mut s = server(i, next(loads) as f64 * 2.5, TAGS[next(TAGS.len() as u64) as usize]);
                if missing_records && next(5) == 0 {
                    // Without a record a member has no tag either.
                    (s.exists, s.tag) = (false, None);
                }
                s
            })
            .collect();
        pools.push(pool);
    }
    // The only untagged, `gpu` and `eu` servers come after 350 others
    // (beyond the script's first four windows).
    let mut late: Vec<_> = (0..350).map(|i| server(i, 1.0 + (i / 3) as f64, Some("x"))).collect();
    late.extend([server(350, 900.0, Some("eu")), server(351, 950.0, None), server(352, 990.0, Some("gpu"))]);
    pools.push(late);
    // One load shared by 40 servers: `eu` first, `gpu` last, untagged between.
    let mut tie: Vec<_> = (0..40).map(|i| server(i, 5.0, Some("eu"))).collect();
    tie[30].tag = None;
    tie[39].tag = Some("gpu");
    tie.push(server(40, 1.0, Some("x")));
    tie.push(server(41, 6.0, Some("gpu")));
    pools.push(tie);
    // Tagged servers only.
    pools.push((0..30).map(|i| server(i, (i % 4) as f64, Some(if i % 2 == 0 { "gpu" } else { "eu" }))).collect());
    if missing_records {
        // The first 18 members have no record; untagged, then `gpu` servers follow.
        let tag = |i: usize| if i < 25 { None } else { Some("gpu") };
        pools.push((0..30).map(|i| PoolServer { exists: i >= 18, ..server(i, i as f64, tag(i)) }).collect());
        // Every member matching `none` lacks a record.
        pools.push(vec![
            PoolServer { exists: false, ..server(0, 0.0, None) },
            server(1, 1.0, Some("gpu")),
            server(2, 2.0, Some("eu")),
        ]);
    }
    pools
}

/// Places one meeting per [`TAG_SPECS`] entry on `store`, whose placement
/// pool is `pool`, and asserts each lands where
/// `scalelite_core::selection::select` (the reference) says.
pub async fn assert_placements_follow_the_reference(store: &dyn Store, pool: &mut [PoolServer], round: usize) {
    // ZRANGE order: load ascending, ties by member.
    pool.sort_by(|a, b| a.load.total_cmp(&b.load).then_with(|| a.id.cmp(&b.id)));
    let candidates: Vec<Candidate<'_>> =
        pool.iter().map(|s| Candidate { id: &s.id, load: s.load, tag: s.tag, exists: s.exists }).collect();
    for (n, spec) in TAG_SPECS.iter().enumerate() {
        let tag_spec = TagSpec::parse(Some(spec));
        let expected = match select(&candidates, &tag_spec) {
            Selection::Chosen(i) => Some(candidates[i].id.to_owned()),
            Selection::NoServer => None,
            Selection::TagUnavailable => Some("tag-unavailable".to_owned()),
            Selection::CapabilityUnavailable => Some("capability-unavailable".to_owned()),
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
        assert_eq!(got, expected, "round {round}, spec {spec:?}, pool {pool:?}");
    }
}

/// The region and declared capabilities [`assert_needs_follow_the_reference`]
/// gives the `i`th server of a pool (its `bbb_version` is `3.0.0`, or
/// `2.7.3` for every seventh).
pub fn pool_traits(i: usize) -> (Option<&'static str>, Vec<&'static str>, &'static str) {
    let region = [Some("eu"), Some("us"), None, Some("eu"), Some("de")][i % 5];
    let capabilities = match i % 6 {
        0 | 3 => vec!["livekit"],
        4 => vec!["livekit", "sip"],
        _ => vec![],
    };
    (region, capabilities, if i % 7 == 3 { "2.7.3" } else { "3.0.0" })
}

/// The needs a placement is tried with (capabilities, regions, capacity).
pub const NEEDS: [(&str, &str, f64); 10] = [
    ("", "de", 100.0),
    ("livekit", "", 1000.0),
    ("bbb-2.7", "", 1000.0),
    ("livekit;bbb-3.0", "eu", 1000.0),
    ("", "eu", 1000.0),
    ("", "de;us", 1000.0),
    ("", "mars;de", 1000.0),
    ("", "eu", 5.0),
    ("sip", "us;eu", 7.5),
    ("nothing", "", 1000.0),
];

/// [`assert_placements_follow_the_reference`] with [`NEEDS`] (each with
/// every tag spec of [`TAG_SPECS`]) against `select_for`; server `i` of
/// `pool` (in its given order) has [`pool_traits`]`(i)`.
pub async fn assert_needs_follow_the_reference(store: &dyn Store, pool: &[PoolServer], round: usize) {
    use scalelite_core::selection::{Needs, Traits, select_for};
    let mut order: Vec<usize> = (0..pool.len()).collect();
    order.sort_by(|&a, &b| pool[a].load.total_cmp(&pool[b].load).then_with(|| pool[a].id.cmp(&pool[b].id)));
    let candidates: Vec<Candidate<'_>> = order
        .iter()
        .map(|&i| Candidate { id: &pool[i].id, load: pool[i].load, tag: pool[i].tag, exists: pool[i].exists })
        .collect();
    let traits: Vec<Traits<'_>> = order
        .iter()
        .map(|&i| {
            let (region, mut capabilities, version) = pool_traits(i);
            capabilities.push(if version == "2.7.3" { "bbb-2.7" } else { "bbb-3.0" });
            if pool[i].exists { Traits { region, capabilities } } else { Traits::default() }
        })
        .collect();
    for (k, (capabilities, regions, capacity)) in NEEDS.iter().enumerate() {
        let needs = Needs {
            capabilities: scalelite_core::selection::parse_list(Some(capabilities)),
            regions: scalelite_core::selection::parse_list(Some(regions)),
            capacity: *capacity,
        };
        for (n, spec) in TAG_SPECS.iter().enumerate() {
            let tag_spec = TagSpec::parse(Some(spec));
            let expected = match select_for(&candidates, &traits, &tag_spec, &needs) {
                Selection::Chosen(i) => Some(candidates[i].id.to_owned()),
                Selection::NoServer => None,
                Selection::TagUnavailable => Some("tag-unavailable".to_owned()),
                Selection::CapabilityUnavailable => Some("capability-unavailable".to_owned()),
            };
            let mut req = placement_request(&format!("n-{round}-{k}-{n}"));
            req.tags = tag_spec;
            req.needs = needs.clone();
            req.reserve_users = 0;
            let got = match store.place_meeting(&req).await.unwrap() {
                Placement::Placed { server, .. } => Some(server.id.into_string()),
                Placement::NoServer => None,
                Placement::TagUnavailable => Some("tag-unavailable".to_owned()),
                Placement::CapabilityUnavailable => Some("capability-unavailable".to_owned()),
                other => panic!("unexpected {other:?}"),
            };
            assert_eq!(got, expected, "round {round}, needs {needs:?}, spec {spec:?}, pool {pool:?}");
        }
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
