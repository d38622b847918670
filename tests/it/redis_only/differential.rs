//! One operator's and front-end's story told on both backends at once, every
//! answer compared: what `scalelite-admin`, the management API and the BBB
//! API say must not depend on where the state lives.

use std::collections::HashMap;

use scalelite_store::recordings::{ImportPolicy, ImportedFormat, RecordingImport};
use scalelite_tests::{MeetingSeed, Mode, Reply, TestApp, TestBackend};
use serde_json::Value;

use crate::support::admin_with;

/// The steps of a story with their answers, made comparable: the fleet's
/// URLs and secrets, the API's origin and ids minted at random are named.
struct Transcript<'a> {
    app: &'a TestApp,
    names: Vec<(String, String)>,
    steps: Vec<(String, String)>,
}

impl<'a> Transcript<'a> {
    fn new(app: &'a TestApp) -> Self {
        let mut names = vec![(app.origin(), "<origin>".to_owned())];
        for (i, server) in app.fleet.iter().enumerate() {
            names.push((server.url(), format!("<url-{}>", i + 1)));
            names.push((server.secret(), format!("<secret-{}>", i + 1)));
        }
        Self { app, names, steps: Vec::new() }
    }

    fn name(&mut self, value: &str, name: &str) {
        self.names.push((value.to_owned(), format!("<{name}>")));
    }

    fn record(&mut self, step: &str, text: &str) {
        let mut text = text.to_owned();
        for (value, name) in &self.names {
            text = text.replace(value, name);
        }
        self.steps.push((step.to_owned(), text));
    }

    async fn admin(&mut self, step: &str, args: &[&str], input: &str) -> String {
        let run = admin_with(&self.app.state.config, args, input).await;
        let out = format!("exit {}\n{}{}", run.code, run.out, run.err);
        self.record(step, &out);
        run.out
    }

    /// `admin` whose lines come in a set's order (Redis has none), sorted.
    async fn admin_unordered(&mut self, step: &str, args: &[&str]) {
        let run = admin_with(&self.app.state.config, args, "").await;
        let mut lines: Vec<&str> = run.out.lines().chain(run.err.lines()).collect();
        lines.sort_unstable();
        self.record(step, &format!("exit {}\n{}", run.code, lines.join("\n")));
    }

    /// `admin` with `--json`, without keys whose values are timings, and
    /// with lists in a set's order (Redis has none) sorted.
    async fn admin_json(&mut self, step: &str, args: &[&str]) -> Value {
        let json = Self::run_json(self.app, step, args).await;
        self.record(step, &serde_json::to_string_pretty(&json).unwrap());
        json
    }

    async fn run_json(app: &TestApp, step: &str, args: &[&str]) -> Value {
        let run = admin_with(&app.state.config, args, "").await;
        assert_eq!(run.code, 0, "{step}: {}", run.err);
        let mut json: Value = serde_json::from_str(&run.out).unwrap_or_else(|e| panic!("{step}: {e}: {}", run.out));
        sorted(&mut json);
        if let Some(object) = json.as_object_mut() {
            object.remove("duration_ms");
            object.get_mut("transitions").map(sorted);
        }
        json
    }

    fn reply(&mut self, step: &str, reply: &Reply) {
        self.record(step, &format!("{}\n{}", reply.status, reply.body));
    }
}

/// Sorts a JSON array by each element's text.
fn sorted(json: &mut Value) {
    if let Some(list) = json.as_array_mut() {
        list.sort_by_key(Value::to_string);
    }
}

/// A management API reply with its JSON list sorted.
fn sorted_reply(reply: &Reply) -> String {
    let mut json: Value = serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {}", reply.body));
    sorted(&mut json);
    format!("{}\n{json}", reply.status)
}

async fn management(app: &TestApp, call: &str, params: &[(&str, &str)]) -> Reply {
    let client = app.client().host("sl.test");
    let query = client.query(params);
    let checksum = client.checksum(call, &query);
    let sep = if query.is_empty() { "" } else { "&" };
    let url = format!("/scalelite/api/{call}?{query}{sep}checksum={checksum}");
    client.send(http::Method::GET, &url, None, bytes::Bytes::new()).await.unwrap()
}

fn recording(record_id: &str, meeting_id: &str, start_ms: i64, tenant: Option<&str>) -> RecordingImport {
    let mut metadata =
        vec![("bbb-origin".to_owned(), "Greenlight".to_owned()), ("gl-listed".to_owned(), " ".to_owned())];
    metadata.extend(tenant.map(|t| ("tenant-id".to_owned(), t.to_owned())));
    RecordingImport {
        record_id: record_id.into(),
        meeting_id: meeting_id.into(),
        name: Some(format!("Vorlesung {meeting_id} – Übung")),
        published: Some(true),
        participants: Some(7),
        state: Some("published".into()),
        start_ms: Some(start_ms),
        end_ms: Some(start_ms + 1_800_000),
        metadata,
        formats: vec![ImportedFormat {
            format: "presentation".into(),
            url: format!("/playback/presentation/2.3/{record_id}"),
            length: Some(30),
            thumbnails: vec![],
        }],
    }
}

async fn story(backend: TestBackend) -> Vec<(String, String)> {
    let app = TestApp::builder()
        .backend(backend)
        .servers(3)
        .unseeded()
        .recordings()
        .env("RESPONSE_TIMEOUT", "0.5")
        .env("MULTITENANCY_ENABLED", "true")
        .env("URL_HOST", "sl.test")
        .start()
        .await;
    let mut t = Transcript::new(&app);
    let fleet = &app.fleet;

    // The operator registers the fleet from a document, then polls.
    let doc = format!(
        "servers:\n  bbb-1:\n    url: {}\n    secret: {}\n    tag: gpu\n  bbb-2:\n    url: {}\n    secret: {}\n    \
         load_multiplier: 2.0\n  bbb-3:\n    url: {}\n    secret: {}\n",
        fleet[0].url(),
        fleet[0].secret(),
        fleet[1].url(),
        fleet[1].secret(),
        fleet[2].url(),
        fleet[2].secret()
    );
    t.admin("sync", &["servers", "sync", "-"], &doc).await;
    t.admin_json("servers before a poll", &["servers", "--json"]).await;
    t.admin_json("status before a poll", &["status", "--json"]).await;
    t.admin("yaml before a poll", &["servers", "yaml", "--verbose"], "").await;
    fleet[1].set_bbb_version("2.7.3");
    fleet[0].seed_meeting(MeetingSeed::new("running").name("Running").counts(4, 1, 2));
    let poll = t.admin_json("first poll", &["poll", "--json"]).await;
    assert_eq!(poll["reachable"], 3, "{poll}");
    t.admin_json("status", &["status", "--json"]).await;
    t.admin("status table", &["status"], "").await;
    t.admin_json("servers", &["servers", "--json"]).await;
    t.record("getServers", &sorted_reply(&management(&app, "getServers", &[]).await));

    // A tenant, whose front-end makes the calls below.
    let added = Transcript::run_json(&app, "add tenant", &["tenants", "add", "acme", "s1:s2", "--json"]).await;
    let acme = added["id"].as_str().unwrap().to_owned();
    t.name(&acme, "acme");
    t.record("add tenant", &added.to_string());
    let args = ["tenant-settings", "add", &acme, "record", "true", "true", "--json"];
    let setting = Transcript::run_json(&app, "add setting", &args).await;
    t.name(setting["id"].as_str().unwrap(), "setting");
    t.record("add setting", &setting.to_string());
    t.admin("tenants", &["tenants"], "").await;
    t.admin("tenant settings", &["tenant-settings"], "").await;
    t.record("getTenants", &sorted_reply(&management(&app, "getTenants", &[]).await));
    let client = app.client().with_secret("s2").host("acme.sl.test");

    // The front-end creates and joins.
    let mut placed = Vec::new();
    for (id, tag, created) in [
        ("a", "", true),
        ("b", "gpu", true),
        ("c", "", true),
        ("d", "none!", true),
        ("e", "zz!", false),
        ("f", "", true),
    ] {
        let mut params = vec![("meetingID", id), ("name", "Room"), ("moderatorPW", "mp"), ("attendeePW", "ap")];
        if !tag.is_empty() {
            params.push(("meta_server-tag", tag));
        }
        let reply = client.get("create", &params).await;
        assert_eq!(reply.is_success(), created, "create {id}: {}", reply.body);
        t.record(&format!("create {id}"), &format!("{:?} {:?}", reply.returncode(), reply.message_key()));
        placed.push(format!("{id}: {:?}", app.placed_on(id).await));
    }
    t.record("placements", &placed.join("\n"));
    let forwarded = fleet.iter().flat_map(|s| s.calls_to("create")).find(|c| c.param("meetingID") == Some("a"));
    t.record(
        "the tenant's setting is applied",
        &format!("{:?}", forwarded.and_then(|c| c.param("record").map(str::to_owned))),
    );
    for (id, name, joined) in [("a", "Ada", true), ("a", "Bob", true), ("b", "Cy", true), ("zz", "Dee", false)] {
        let reply = client.get("join", &[("meetingID", id), ("fullName", name), ("password", "ap")]).await;
        assert_eq!(reply.status == 302, joined, "join {id}: {}", reply.body);
        t.record(&format!("join {id} {name}"), &format!("{} {:?}", reply.status, reply.message_key()));
    }
    t.admin_json("servers after joins", &["servers", "--json"]).await;
    let meetings = client.get("getMeetings", &[]).await;
    let mut ids: Vec<String> = meetings
        .xml()
        .child("meetings")
        .map(|list| list.children_named("meeting").map(|m| m.text_at("meetingID").unwrap_or_default()).collect())
        .unwrap_or_default();
    ids.sort();
    assert_eq!(ids, ["a", "b", "c", "d", "f"]);
    t.record("getMeetings", &ids.join(","));
    t.admin_json("meetings", &["meetings", "--json"]).await;
    t.reply("isMeetingRunning", &client.get("isMeetingRunning", &[("meetingID", "a")]).await);
    let end = client.get("end", &[("meetingID", "c"), ("password", "mp")]).await;
    assert!(end.is_success(), "{}", end.body);
    t.reply("end", &end);
    t.reply("end again", &client.get("end", &[("meetingID", "c"), ("password", "mp")]).await);

    // Draining, losing and panicking servers.
    t.admin("cordon", &["servers", "cordon", "bbb-2"], "").await;
    t.admin_json("poll while cordoned", &["poll", "--json"]).await;
    fleet[2].set_mode(Mode::Down);
    t.admin_json("poll with bbb-3 down", &["poll", "--json"]).await;
    t.admin_json("poll with bbb-3 down again", &["poll", "--json"]).await;
    t.admin_json("status after the outage", &["status", "--json"]).await;
    t.reply("getServerInfo", &management(&app, "getServerInfo", &[("id", "bbb-3")]).await);
    // Untagged servers are cordoned or offline: only an untagged create fails.
    let create = client.get("create", &[("meetingID", "g"), ("name", "Room")]).await;
    t.reply("create after the outage", &create);
    let create = client.get("create", &[("meetingID", "g"), ("name", "Room"), ("meta_server-tag", "gpu")]).await;
    assert!(create.is_success(), "{}", create.body);
    t.record("placement of g", &format!("{:?}", app.placed_on("g").await));
    fleet[2].set_mode(Mode::Normal);
    t.admin_json("poll with bbb-3 back", &["poll", "--json"]).await;
    t.admin_unordered("panic", &["servers", "panic", "bbb-1", "--yes"]).await;
    t.admin_json("meetings after the panic", &["meetings", "--json"]).await;
    t.admin_json("servers at the end", &["servers", "--json"]).await;
    t.admin("yaml at the end", &["servers", "yaml", "--verbose"], "").await;

    // Recordings: two of the tenant, one of nobody's.
    let store = app.recording_store();
    for (id, meeting, start, tenant) in [
        ("r1-1700000000000", "a", 1_700_000_000_000, Some(acme.as_str())),
        ("r2-1700000100000", "a", 1_700_000_100_000, Some(acme.as_str())),
        ("r3-1700000200000", "t1", 1_700_000_200_000, None),
    ] {
        store.import_recording(&recording(id, meeting, start, tenant), ImportPolicy::default()).await.unwrap();
    }
    let all = client.get("getRecordings", &[]).await;
    assert_eq!(all.xml().child("recordings").map(|l| l.children_named("recording").count()), Some(2), "{}", all.body);
    let recordings = [
        ("all", vec![]),
        ("of a", vec![("meetingID", "a")]),
        ("by prefix", vec![("recordID", "r2,r9")]),
        ("any state", vec![("state", "any")]),
        ("by meta", vec![("meta_bbb-origin", "Greenlight")]),
        ("paged", vec![("limit", "1"), ("offset", "1")]),
    ];
    for (step, params) in &recordings {
        t.reply(&format!("getRecordings {step}"), &client.get("getRecordings", params).await);
    }
    t.reply(
        "unpublish",
        &client.get("publishRecordings", &[("recordID", "r1-1700000000000"), ("publish", "false")]).await,
    );
    t.reply("update", &client.get("updateRecordings", &[("recordID", "r2-1700000100000"), ("meta_x", "y")]).await);
    t.reply("getRecordings after changes", &client.get("getRecordings", &[("state", "any")]).await);
    t.reply("delete", &client.get("deleteRecordings", &[("recordID", "r2-1700000100000")]).await);
    t.reply("getRecordings after delete", &client.get("getRecordings", &[("state", "any")]).await);
    t.admin("add to tenant", &["recordings", "add-to-tenant", &acme], "").await;
    t.reply("getRecordings after linking", &client.get("getRecordings", &[("state", "any")]).await);
    t.steps
}

#[tokio::test]
async fn both_backends_answer_the_same_story_alike() {
    let (redis, embedded) = tokio::join!(story(TestBackend::Redis), story(TestBackend::Embedded));
    let embedded: HashMap<&str, &str> = embedded.iter().map(|(s, o)| (s.as_str(), o.as_str())).collect();
    let mut differences = Vec::new();
    for (step, on_redis) in &redis {
        let on_embedded = embedded.get(step.as_str()).copied().unwrap_or("<missing>");
        if on_redis != on_embedded {
            differences.push(format!("== {step}\n-- redis:\n{on_redis}\n-- embedded:\n{on_embedded}"));
        }
    }
    assert!(differences.is_empty(), "{} step(s) differ:\n{}", differences.len(), differences.join("\n"));
}
