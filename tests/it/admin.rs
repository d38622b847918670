//! `scalelite-admin` in-process on the app's store and the fake fleet: every
//! command's output, exit code and effect on the stored records.

use std::time::Duration;

use scalelite_admin::servers::DISABLE_WARNING;
use scalelite_core::config::Config;
use scalelite_store::{Lease, POLLER_LEASE, Server, ServerState};
use scalelite_tests::fake_bbb::DEFAULT_BBB_VERSION;
use scalelite_tests::seed::SeedServer;
use scalelite_tests::{MeetingSeed, Mode, TestApp, eventually, server_id};
use serde_json::Value;

use crate::support::{Run, admin_with};

const PROMPT: &str = "If you still wish to continue please enter `yes`";
const MULTIPLIER_WARNING: &str = "WARNING! Load-multiplier was not readable or 0, so it is now 1";

async fn admin(app: &TestApp, args: &[&str]) -> Run {
    admin_with(&app.state.config, args, "").await
}

async fn admin_input(app: &TestApp, args: &[&str], input: &str) -> Run {
    admin_with(&app.state.config, args, input).await
}

/// The id printed by `servers add` (`OK` then `id: <id>`).
fn added_id(run: &Run) -> String {
    let id = run.out.lines().find_map(|l| l.strip_prefix("id: ")).unwrap_or_else(|| panic!("no id in {:?}", run.out));
    id.to_owned()
}

/// The ids of every server, sorted.
async fn server_ids(app: &TestApp) -> Vec<String> {
    let mut ids: Vec<String> = app.store().servers().await.unwrap().into_iter().map(|s| s.id.into_string()).collect();
    ids.sort();
    ids
}

/// Server `id` as stored.
async fn server(app: &TestApp, id: &str) -> Server {
    app.server(id).await.unwrap_or_else(|| panic!("no server {id}"))
}

/// The stored state of server `id` (`""` when it has none).
async fn state(app: &TestApp, id: &str) -> String {
    server(app, id).await.state.unwrap_or_default()
}

/// The server meeting `id` is recorded on (`""` when there is no record).
async fn meeting_server(app: &TestApp, id: &str) -> String {
    app.meeting(id).await.map(|m| m.server_id.into_string()).unwrap_or_default()
}

/// Seeds fake `i` as `bbb-<i+1>` with `record` changes applied.
async fn seed(app: &TestApp, i: usize, change: impl FnOnce(SeedServer) -> SeedServer) {
    let record = change(SeedServer::enabled(server_id(i), app.fleet[i].url(), app.fleet[i].secret()));
    app.seed_server(&record).await;
}

/// A running meeting on fake `i`, recorded in the store as placed there.
async fn meeting_on(app: &TestApp, i: usize, id: &str, seed: MeetingSeed) {
    let meeting = app.fleet[i].seed_meeting(seed.passwords(format!("ap-{id}"), format!("mp-{id}")));
    app.seed_meeting(id, &server_id(i), &meeting.moderator_pw, &meeting.voice_bridge).await;
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

// === servers, servers add ===

#[tokio::test]
async fn add_prints_ok_and_the_id_and_stores_what_scalelite_stores() {
    let app = TestApp::builder().servers(1).unseeded().start().await;
    let empty = admin(&app, &["servers"]).await.ok();
    assert_eq!((empty.out.as_str(), empty.err.as_str()), ("", "No servers are configured\n"));

    let (url, secret) = (app.fleet[0].url(), app.fleet[0].secret());
    let run = admin(&app, &["servers", "add", &url, &secret]).await.ok();
    let id = added_id(&run);
    assert_eq!(run.out, format!("OK\nid: {id}\n"));
    assert_eq!(run.err, "");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let added = server(&app, &id).await;
    assert_eq!(
        (added.url.as_str(), added.secret.expose(), added.load_multiplier.as_deref()),
        (url.as_str(), secret.as_str(), Some("1.0"))
    );
    assert_eq!((added.online, added.state.as_deref(), added.tag.as_deref(), added.load), (false, None, None, None));
    assert_eq!(server_ids(&app).await, [id.as_str()]);
    assert_eq!(added.effective_state(), ServerState::Disabled, "added disabled");

    let list = admin(&app, &["servers"]).await.ok();
    assert_eq!(
        list.out,
        format!(
            "id: {id}\n\turl: {url}\n\tsecret: {secret}\n\tdisabled\n\tload: unavailable\n\tload multiplier: 1.0\n\
             \tbbb version: \n\ttag: \n\toffline\n"
        )
    );

    let tagged = admin(&app, &["servers", "add", &url, "s2", "--load-multiplier", "2.5", "--tag", "gpu"]).await.ok();
    let record = server(&app, &added_id(&tagged)).await;
    assert_eq!((record.load_multiplier.as_deref(), record.tag.as_deref()), (Some("2.5"), Some("gpu")));

    // SERVER_ID_IS_HOSTNAME: the URL's host is the id.
    let mut config = (*app.state.config).clone();
    config.server_id_is_hostname = true;
    let run =
        admin_with(&config, &["servers", "add", "https://BBB9.Example.com/bigbluebutton/api", "s"], "").await.ok();
    assert_eq!(run.out, "OK\nid: bbb9.example.com\n");
    let again = admin_with(&config, &["servers", "add", "https://bbb9.example.com/bigbluebutton/api", "s"], "").await;
    assert_eq!(again.code, 1);
    assert!(again.err.starts_with("ERROR: "), "{}", again.err);
}

#[tokio::test]
async fn add_refuses_a_url_without_http_scheme() {
    let app = TestApp::builder().servers(0).unseeded().start().await;
    for url in ["bbb.example.com/bigbluebutton/api", "ftp://bbb.example.com/"] {
        let run = admin(&app, &["servers", "add", url, "secret"]).await;
        assert_eq!(run.code, 1);
        assert_eq!(run.out, "");
        assert_eq!(run.err, "Error: Server URL must start with http:// or https://\n");
    }
    assert!(server_ids(&app).await.is_empty());
}

#[tokio::test]
async fn a_zero_multiplier_is_replaced_by_one_with_scalelites_warning() {
    let app = TestApp::builder().servers(0).unseeded().start().await;
    for given in ["0", "abc", "0.0"] {
        let run = admin(
            &app,
            &["servers", "add", "https://b.example.com/bigbluebutton/api", "s", "--load-multiplier", given],
        )
        .await
        .ok();
        let id = added_id(&run);
        assert_eq!(run.out, format!("{MULTIPLIER_WARNING}\nOK\nid: {id}\n"), "{given}");
        assert_eq!(server(&app, &id).await.load_multiplier.unwrap_or_default(), "1.0");
    }
}

// === servers update, tag, load-multiplier ===

#[tokio::test]
async fn update_tag_and_load_multiplier_change_only_what_is_given() {
    let app = TestApp::builder().servers(1).unseeded().start().await;
    seed(&app, 0, |s| s.tag("old")).await;
    let id = server_id(0);

    let run = admin(&app, &["servers", "update", &id, "--secret", "new-secret", "--load-multiplier", "1.5"]).await.ok();
    assert_eq!(run.out, format!("Updating server {id}...\nOK\n"));
    let record = server(&app, &id).await;
    assert_eq!(
        (record.secret.expose(), record.load_multiplier.as_deref(), record.tag.as_deref()),
        ("new-secret", Some("1.5"), Some("old"))
    );
    assert_eq!(record.state.as_deref(), Some("enabled"), "state untouched");
    assert_eq!(app.load(&id).await, Some(0.0), "load untouched");

    let run = admin(&app, &["servers", "update", &id, "--load-multiplier", "0"]).await.ok();
    assert_eq!(run.out, format!("Updating server {id}...\n{MULTIPLIER_WARNING}\nOK\n"));
    assert_eq!(server(&app, &id).await.load_multiplier.unwrap_or_default(), "1.0");

    admin(&app, &["servers", "update", &id, "--tag", ""]).await.ok();
    let record = server(&app, &id).await;
    assert_eq!(record.tag, None, "--tag \"\" removes the tag");
    assert_eq!(record.secret.expose(), "new-secret");

    let run = admin(&app, &["servers", "tag", &id, "gpu"]).await.ok();
    assert_eq!(run.out, "OK\n");
    assert_eq!(server(&app, &id).await.tag.unwrap_or_default(), "gpu");
    admin(&app, &["servers", "update", &id, "--secret", "third"]).await.ok();
    assert_eq!(server(&app, &id).await.tag.unwrap_or_default(), "gpu", "an omitted --tag keeps it");
    admin(&app, &["servers", "tag", &id]).await.ok();
    assert!(server(&app, &id).await.tag.is_none());
    admin(&app, &["servers", "tag", &id, "x"]).await.ok();
    admin(&app, &["servers", "tag", &id, ""]).await.ok();
    assert!(server(&app, &id).await.tag.is_none());

    let run = admin(&app, &["servers", "load-multiplier", &id, "2"]).await.ok();
    assert_eq!(run.out, "OK\n");
    assert_eq!(server(&app, &id).await.load_multiplier.unwrap_or_default(), "2.0");
    let run = admin(&app, &["servers", "load-multiplier", &id, "0"]).await.ok();
    assert_eq!(run.out, format!("{MULTIPLIER_WARNING}\nOK\n"));
    assert_eq!(server(&app, &id).await.load_multiplier.unwrap_or_default(), "1.0");
    admin(&app, &["servers", "loadMultiplier", &id, "7.25"]).await.ok();

    let list = admin(&app, &["servers"]).await.ok();
    assert!(list.out.contains("\tload multiplier: 7.25\n"), "{}", list.out);
    assert!(list.out.contains("\tload: 0.0\n\t"), "{}", list.out);
    assert!(list.out.contains("\tsecret: third\n\tenabled\n"), "{}", list.out);
}

// === state changes ===

#[tokio::test]
async fn enable_cordon_disable() {
    let app = TestApp::builder().servers(1).unseeded().start().await;
    let id = added_id(&admin(&app, &["servers", "add", &app.fleet[0].url(), &app.fleet[0].secret()]).await.ok());

    let run = admin(&app, &["servers", "enable", &id]).await.ok();
    assert_eq!(run.out, format!("Enabling server {id}...\nOK\n"));
    assert_eq!(state(&app, &id).await, "enabled");
    assert_eq!(server(&app, &id).await.effective_state(), ServerState::Enabled);

    let run = admin(&app, &["servers", "cordon", &id]).await.ok();
    assert_eq!(run.out, format!("Cordoning server {id}...\nOK\n"));
    assert_eq!(state(&app, &id).await, "cordoned");
    assert_eq!(server(&app, &id).await.effective_state(), ServerState::Cordoned);

    // No load: nothing to ask.
    let run = admin(&app, &["servers", "disable", &id]).await.ok();
    assert_eq!(run.out, format!("Disabling server {id}...\nOK\n"));
    assert_eq!(state(&app, &id).await, "disabled");
    let list = admin(&app, &["servers"]).await.ok();
    assert!(list.out.contains("\tdisabled\n"), "{}", list.out);
}

#[tokio::test]
async fn operator_story_add_enable_poll_status_cordon_drain() {
    let app = TestApp::builder().servers(3).unseeded().start().await;
    let mut ids = Vec::new();
    for (i, server) in app.fleet.iter().enumerate() {
        let tag = format!("t{i}");
        let run = admin(&app, &["servers", "add", &server.url(), &server.secret(), "--tag", &tag]).await.ok();
        ids.push(added_id(&run));
    }
    for id in &ids {
        admin(&app, &["servers", "enable", id]).await.ok();
    }
    // Enabled but never polled: offline, blank statistics.
    let status = admin(&app, &["status"]).await.ok();
    let table = lines(&status.out);
    assert_eq!(table[0], "");
    assert_eq!(
        table[1],
        " HOSTNAME    STATE   STATUS   MEETINGS  USERS  LARGEST MEETING  VIDEOS  LOAD  BBB VERSION  TAG "
    );
    assert_eq!(table.len(), 5);
    for row in &table[2..] {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&cells[..3], ["127.0.0.1", "enabled", "offline"], "{row}");
    }

    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    app.fleet[0].seed_meeting(MeetingSeed::new("class").name("Class").create_time(now_ms - 3_600_000).counts(4, 1, 2));
    let poll = admin(&app, &["poll"]).await.ok();
    assert!(poll.out.starts_with("Polled 3 servers: 3 reachable, 0 meetings removed, in "), "{}", poll.out);
    assert_eq!(poll.out.lines().count(), 1);

    let status = admin(&app, &["status"]).await.ok();
    let rows: Vec<Vec<&str>> = lines(&status.out)[2..].iter().map(|r| r.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 3);
    for row in &rows {
        assert_eq!(&row[..3], ["127.0.0.1", "enabled", "online"], "{row:?}");
        assert_eq!(row[8], DEFAULT_BBB_VERSION);
    }
    // Rows of one host name are ordered by id; find fake 0's by its tag.
    let busy = rows.iter().find(|r| r[9] == "t0").unwrap();
    assert_eq!(&busy[3..8], ["1", "4", "4", "2", "5.0"], "meetings, users, largest, videos, load");
    let idle = rows.iter().find(|r| r[9] == "t1").unwrap();
    assert_eq!(&idle[3..8], ["0", "0", "0", "0", "0.0"]);
    // Aligned as Scalelite's Tabulo table: its counters are strings (left),
    // the load a number (right).
    let table = lines(&status.out);
    let busy_line = table.iter().find(|r| r.trim_end().ends_with(" t0")).unwrap();
    let at = |header: &str| table[1].find(header).unwrap();
    for (header, cell) in
        [("MEETINGS", "1 "), ("USERS", "4 "), ("LARGEST MEETING", "4 "), ("VIDEOS", "2 "), ("LOAD", " 5.0")]
    {
        assert_eq!(&busy_line[at(header)..at(header) + cell.len()], cell, "{header}: {busy_line}");
    }

    let json = admin(&app, &["status", "--json"]).await.ok().json();
    let busy = json.as_array().unwrap().iter().find(|r| r["tag"] == "t0").unwrap();
    assert_eq!(busy["hostname"], "127.0.0.1");
    assert_eq!((busy["state"].as_str(), busy["status"].as_str()), (Some("enabled"), Some("online")));
    assert_eq!((busy["meetings"].as_u64(), busy["users"].as_u64()), (Some(1), Some(4)));
    assert_eq!((busy["largest_meeting"].as_u64(), busy["videos"].as_u64()), (Some(4), Some(2)));
    assert_eq!((busy["load"].as_f64(), busy["bbb_version"].as_str()), (Some(5.0), Some(DEFAULT_BBB_VERSION)));

    // Drain the busy server: cordoned while the class runs, disabled by the
    // poller once it is empty.
    let busy_id = &ids[0];
    admin(&app, &["servers", "cordon", busy_id]).await.ok();
    admin(&app, &["poll"]).await.ok();
    assert_eq!(state(&app, busy_id).await, "cordoned");
    assert_eq!(app.load(busy_id).await, Some(5.0), "a cordoned server keeps its load");
    app.fleet[0].remove_meeting("class");
    eventually(Duration::from_secs(10), || async {
        admin(&app, &["poll"]).await.ok();
        state(&app, busy_id).await == "disabled"
    })
    .await;
    let status = admin(&app, &["status"]).await.ok();
    let row = lines(&status.out).into_iter().find(|r| r.trim_end().ends_with(" t0")).unwrap().to_owned();
    assert_eq!(&row.split_whitespace().collect::<Vec<_>>()[..3], ["127.0.0.1", "disabled", "online"], "{row}");
}

// === unknown ids ===

#[tokio::test]
async fn every_per_id_command_refuses_an_unknown_id() {
    let app = TestApp::builder().servers(1).start().await;
    let error = "ERROR: No server found with id: nope\n";
    let cases: [(&[&str], &str); 10] = [
        (&["servers", "update", "nope", "--secret", "s"], "Updating server nope...\n"),
        (&["servers", "remove", "nope"], "Removing server nope...\n"),
        (&["servers", "enable", "nope"], "Enabling server nope...\n"),
        (&["servers", "cordon", "nope"], "Cordoning server nope...\n"),
        (&["servers", "disable", "nope"], "Disabling server nope...\n"),
        (&["servers", "panic", "nope"], "Panicking server nope...\n"),
        (&["servers", "load-multiplier", "nope", "0"], ""),
        (&["servers", "tag", "nope", "gpu"], ""),
        (&["servers", "meeting-list", "bbb-1:nope"], ""),
        (&["servers", "update", "nope"], "Updating server nope...\n"),
    ];
    for (args, out) in cases {
        let run = admin_input(&app, args, "yes\n").await;
        assert_eq!((run.code, run.out.as_str(), run.err.as_str()), (1, out, error), "{args:?}");
    }
    for args in [&["meetings", "info", "nope"][..], &["meetings", "list", "nope"], &["meetings", "nope"]] {
        let run = admin(&app, args).await;
        assert_eq!((run.code, run.err.as_str()), (1, "ERROR: No meeting found with id: nope\n"), "{args:?}");
    }
    let run = admin(&app, &["meetings", "end", "nope", "--yes"]).await;
    assert_eq!((run.code, run.err.as_str()), (1, "ERROR: No meeting found with id: nope\n"));
    // Nothing was created or changed on the way.
    assert_eq!(server_ids(&app).await, ["bbb-1"]);
    assert!(server(&app, "bbb-1").await.tag.is_none());
}

// === disable with load, panic ===

#[tokio::test]
async fn disable_with_load_asks_and_clears_only_on_yes() {
    let app = TestApp::builder().servers(2).unseeded().start().await;
    seed(&app, 0, |s| s.load(Some(12.0))).await;
    seed(&app, 1, |s| s).await;
    meeting_on(&app, 0, "m1", MeetingSeed::new("m1").attendees(3)).await;
    meeting_on(&app, 0, "m2", MeetingSeed::new("m2")).await;
    meeting_on(&app, 1, "other", MeetingSeed::new("other")).await;
    let id = server_id(0);
    let asked = format!("Disabling server {id}...\n{DISABLE_WARNING}\n{PROMPT}\n");

    for answer in ["no\n", "", "yess\n"] {
        let run = admin_input(&app, &["servers", "disable", &id], answer).await.ok();
        assert_eq!(run.out, format!("{asked}OK\n"), "{answer:?}");
        assert_eq!(state(&app, &id).await, "enabled");
        assert_eq!(app.load(&id).await, Some(12.0));
        assert_eq!(meeting_server(&app, "m1").await, id);
        assert_eq!(app.fleet[0].call_count("end"), 0);
    }

    let run = admin_input(&app, &["servers", "disable", &id], " YES \n").await.ok();
    assert!(run.out.starts_with(&asked), "{}", run.out);
    let mut cleared: Vec<&str> = run.out.lines().filter(|l| l.starts_with("Clearing Meeting id=")).collect();
    cleared.sort_unstable();
    assert_eq!(cleared, ["Clearing Meeting id=m1", "Clearing Meeting id=m2"]);
    assert!(run.out.ends_with("OK\n"));
    assert_eq!(run.err, "");
    assert_eq!(state(&app, &id).await, "disabled");
    assert_eq!(app.load(&id).await, None);
    assert!(app.meeting("m1").await.is_none() && app.meeting("m2").await.is_none());
    assert_eq!(meeting_server(&app, "other").await, server_id(1), "other servers' meetings stay");
    let ends = app.fleet[0].calls_to("end");
    assert_eq!(ends.len(), 2);
    assert!(ends.iter().any(|c| c.param("meetingID") == Some("m1") && c.param("password") == Some("mp-m1")));
    assert!(app.fleet[0].meetings().is_empty());
    assert_eq!(app.fleet[1].call_count("end"), 0);
}

#[tokio::test]
async fn panic_forgets_and_ends_meetings_and_disables() {
    let app = TestApp::builder().servers(2).unseeded().start().await;
    seed(&app, 0, |s| s.load(Some(3.0))).await;
    seed(&app, 1, |s| s).await;
    meeting_on(&app, 0, "p1", MeetingSeed::new("p1")).await;
    meeting_on(&app, 0, "p2", MeetingSeed::new("p2")).await;
    let id = server_id(0);

    // Declined: nothing happens.
    let run = admin(&app, &["servers", "panic", &id]).await.ok();
    assert_eq!(
        run.out,
        format!(
            "Panicking server {id}...\nWARNING: You are about to panic server {id} ({}): forget its 2 meeting(s), \
             end them on the server and disable it.\n{PROMPT}\nServer {id} was not panicked\n",
            app.fleet[0].url()
        )
    );
    assert_eq!(meeting_server(&app, "p1").await, id);

    let run = admin_input(&app, &["servers", "panic", &id], "yes\n").await.ok();
    let mut cleared: Vec<&str> = run.out.lines().filter(|l| l.starts_with("Clearing Meeting")).collect();
    cleared.sort_unstable();
    assert_eq!(cleared, ["Clearing Meeting id=p1", "Clearing Meeting id=p2"]);
    assert!(run.out.ends_with("OK\n"));
    assert!(app.meeting("p1").await.is_none() && app.meeting("p2").await.is_none());
    assert_eq!(app.fleet[0].call_count("end"), 2);
    assert_eq!(state(&app, &id).await, "disabled");
    assert_eq!(app.load(&id).await, None);
}

#[tokio::test]
async fn panic_flags_and_a_down_server() {
    let app = TestApp::builder().servers(2).unseeded().start().await;
    seed(&app, 0, |s| s).await;
    seed(&app, 1, |s| s).await;
    meeting_on(&app, 0, "k1", MeetingSeed::new("k1")).await;
    meeting_on(&app, 1, "d1", MeetingSeed::new("d1")).await;

    // --skip-end-calls --keep-state: forgotten only.
    let run = admin(&app, &["servers", "panic", "bbb-1", "--keep-state", "--skip-end-calls", "--yes"]).await.ok();
    assert_eq!(run.out, "Panicking server bbb-1...\nClearing Meeting id=k1\nOK\n");
    assert!(app.meeting("k1").await.is_none());
    assert_eq!(app.fleet[0].call_count("end"), 0);
    assert!(app.fleet[0].has_meeting("k1"), "no end call was sent");
    assert_eq!(state(&app, "bbb-1").await, "enabled");

    // A server that is down is still panicked; the failed end is a warning.
    app.fleet[1].set_mode(Mode::Down);
    let run = admin(&app, &["servers", "panic", "bbb-2", "--yes", "--json"]).await.ok();
    assert!(run.err.starts_with("WARNING: Could not end meeting id=d1: "), "{}", run.err);
    let json = run.json();
    assert_eq!(json["ok"], true);
    assert_eq!(json["cleared"], serde_json::json!(["d1"]));
    assert_eq!(json["end_failures"][0]["id"], "d1");
    assert!(app.meeting("d1").await.is_none());
    assert_eq!(state(&app, "bbb-2").await, "disabled");
}

#[tokio::test]
async fn remove_asks_then_deletes_the_record_only() {
    let app = TestApp::builder().servers(2).start().await;
    meeting_on(&app, 0, "r1", MeetingSeed::new("r1")).await;
    let run = admin_input(&app, &["servers", "remove", "bbb-1"], "no\n").await.ok();
    assert!(
        run.out.starts_with("Removing server bbb-1...\nWARNING: You are about to remove server bbb-1"),
        "{}",
        run.out
    );
    assert!(run.out.ends_with(&format!("{PROMPT}\nServer bbb-1 was not removed\n")), "{}", run.out);
    assert_eq!(server_ids(&app).await, ["bbb-1", "bbb-2"]);

    let run = admin_input(&app, &["servers", "remove", "bbb-1"], "yes\n").await.ok();
    assert!(run.out.ends_with(&format!("{PROMPT}\nOK\n")), "{}", run.out);
    assert_eq!(server_ids(&app).await, ["bbb-2"]);
    assert!(app.server("bbb-1").await.is_none());
    assert_eq!(app.load("bbb-1").await, None);
    assert_eq!(meeting_server(&app, "r1").await, "bbb-1", "meetings are left alone");
    assert_eq!(app.fleet[0].call_count("end"), 0);

    let run = admin(&app, &["servers", "remove", "bbb-2", "--yes"]).await.ok();
    assert_eq!(run.out, "Removing server bbb-2...\nOK\n");
    assert!(server_ids(&app).await.is_empty());
}

// === sync, yaml ===

fn document(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Every server as stored, to compare before and after.
async fn snapshot(app: &TestApp) -> Vec<Server> {
    let mut all = app.store().servers().await.unwrap();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    all
}

#[tokio::test]
async fn sync_keep_and_cordon() {
    let app = TestApp::builder().servers(3).start().await;
    let dir = tempfile::tempdir().unwrap();
    meeting_on(&app, 1, "busy", MeetingSeed::new("busy")).await;
    let keep = document(
        &dir,
        "keep.yml",
        &format!(
            "servers:\n  bbb-1:\n    url: {}\n    secret: {}\n    tag: gpu\n  extra:\n    url: {}\n    secret: x\n    load_multiplier: 2.5\n",
            app.fleet[0].url(),
            app.fleet[0].secret(),
            app.fleet[2].url()
        ),
    );
    let run = admin(&app, &["servers", "sync", &keep, "--mode", "keep"]).await.ok();
    let actions = lines(&run.out);
    assert_eq!(actions[..3], ["[bbb-1] Server updated: tag=gpu", "[extra] Server created", "[extra] Server enabled"]);
    let mut kept: Vec<&str> = run.out.lines().filter(|l| l.contains("not removed")).collect();
    kept.sort_unstable();
    assert_eq!(kept, ["[bbb-2] Server not removed", "[bbb-3] Server not removed"]);
    assert_eq!(server(&app, "bbb-1").await.tag.unwrap_or_default(), "gpu");
    let extra = server(&app, "extra").await;
    assert_eq!((extra.state.as_deref(), extra.load_multiplier.as_deref()), (Some("enabled"), Some("2.5")));
    assert_eq!(server_ids(&app).await, ["bbb-1", "bbb-2", "bbb-3", "extra"]);

    // cordon (the default): bbb-3 and extra are empty and go, bbb-2 has a meeting.
    let only_one = document(
        &dir,
        "one.yml",
        &format!(
            "servers:\n  bbb-1:\n    url: {}\n    secret: {}\n    tag: gpu\n",
            app.fleet[0].url(),
            app.fleet[0].secret()
        ),
    );
    let run = admin(&app, &["servers", "sync", &only_one]).await.ok();
    let mut actions = lines(&run.out);
    actions.sort_unstable();
    assert_eq!(
        actions,
        ["[bbb-2] Server not empty. Cordoned for removal", "[bbb-3] Server removed", "[extra] Server removed"]
    );
    assert_eq!(server_ids(&app).await, ["bbb-1", "bbb-2"]);
    assert_eq!(state(&app, "bbb-2").await, "cordoned");
    assert_eq!(meeting_server(&app, "busy").await, "bbb-2");
    assert_eq!(app.fleet[1].call_count("end"), 0);
}

#[tokio::test]
async fn sync_force_asks_ends_and_removes_and_dry_run_changes_nothing() {
    let app = TestApp::builder().servers(2).start().await;
    let dir = tempfile::tempdir().unwrap();
    meeting_on(&app, 1, "f1", MeetingSeed::new("f1")).await;
    let doc = format!("servers:\n  bbb-1:\n    url: {}\n    secret: {}\n", app.fleet[0].url(), app.fleet[0].secret());
    let path = document(&dir, "one.yml", &doc);
    let before = snapshot(&app).await;

    // Dry run: the plan, and nothing changes (no prompt either).
    let run = admin(&app, &["servers", "sync", &path, "--mode", "force", "--dry-run"]).await.ok();
    let plan = [
        "[bbb-2] Server not empty. Cordoned for removal",
        "[bbb-2] Server not empty. Ending meetings now...",
        "[bbb-2] Try to end meeting id=f1",
        "[bbb-2] Server removed",
    ];
    assert_eq!(lines(&run.out), plan);
    assert_eq!(snapshot(&app).await, before);
    assert_eq!(meeting_server(&app, "f1").await, "bbb-2");
    assert_eq!(app.fleet[1].call_count("end"), 0);

    // Declined.
    let run = admin_input(&app, &["servers", "sync", &path, "--mode", "force"], "no\n").await.ok();
    assert!(run.out.contains("\t[bbb-2] Server not empty. Ending meetings now...\n"), "{}", run.out);
    assert!(run.out.ends_with(&format!("{PROMPT}\nNothing was changed\n")), "{}", run.out);
    assert_eq!(snapshot(&app).await, before);
    assert_eq!(app.fleet[1].call_count("end"), 0);

    // From stdin the answer cannot be read: --yes is required.
    let run = admin_input(&app, &["servers", "sync", "-", "--mode", "force"], &doc).await;
    assert_eq!(run.code, 1);
    assert!(run.err.starts_with("ERROR: --mode force"), "{}", run.err);
    assert_eq!(snapshot(&app).await, before);

    let run = admin_input(&app, &["servers", "sync", &path, "--mode", "force"], "yes\n").await.ok();
    assert!(run.out.ends_with(&format!("{PROMPT}\n{}\n", plan.join("\n"))), "{}", run.out);
    assert_eq!(server_ids(&app).await, ["bbb-1"]);
    assert!(app.meeting("f1").await.is_none());
    assert_eq!(app.fleet[1].call_count("end"), 1);
    assert!(!app.fleet[1].has_meeting("f1"));
}

#[tokio::test]
async fn sync_validation_errors_exit_1_and_change_nothing() {
    let app = TestApp::builder().servers(2).start().await;
    let dir = tempfile::tempdir().unwrap();
    let before = snapshot(&app).await;
    let cases = [
        ("servers:\n  'bad id':\n    secret: s\n", "ERROR: Server id=bad id contains invalid characters\n"),
        ("servers:\n  a:\n    url: https://a/bigbluebutton/api\n", "ERROR: Server id=a has no secret\n"),
        (
            "servers:\n  a:\n    secret: s\n    load_multiplier: 0\n",
            "ERROR: Server id=a has invalid load_multiplier=0\n",
        ),
        ("- a\n", "ERROR: Invalid YAML document\n"),
    ];
    for (doc, error) in cases {
        let path = document(&dir, "bad.yml", doc);
        let run = admin(&app, &["servers", "sync", &path, "--mode", "force", "--yes"]).await;
        assert_eq!((run.code, run.out.as_str(), run.err.as_str()), (1, "", error), "{doc}");
    }
    let run = admin(&app, &["servers", "sync", "-", "--mode", "nope"]).await;
    assert_eq!((run.code, run.err.as_str()), (1, "ERROR: Unknown sync mode 'nope' (choose: keep cordon force)\n"));
    let run = admin(&app, &["servers", "sync", "/nonexistent/servers.yml"]).await;
    assert_eq!(run.code, 1);
    assert!(run.err.starts_with("ERROR: /nonexistent/servers.yml: "), "{}", run.err);
    assert_eq!(snapshot(&app).await, before);
}

#[tokio::test]
async fn yaml_round_trips_through_sync() {
    let app = TestApp::builder().servers(2).start().await;
    seed(&app, 1, |s| s.tag("gpu").multiplier(Some("1.5"))).await;
    let dump = admin(&app, &["servers", "yaml"]).await.ok().out;
    assert_eq!(
        dump,
        format!(
            "---\nservers:\n  bbb-1:\n    url: {}\n    secret: {}\n    load_multiplier: 1.0\n    tag: ''\n    enabled: true\n  \
             bbb-2:\n    url: {}\n    secret: {}\n    load_multiplier: 1.5\n    tag: gpu\n    enabled: true\n",
            app.fleet[0].url(),
            app.fleet[0].secret(),
            app.fleet[1].url(),
            app.fleet[1].secret()
        )
    );
    let verbose = admin(&app, &["servers", "yaml", "--verbose"]).await.ok().out;
    assert!(
        verbose.contains("    state: enabled\n    load: 0.0\n    bbb_version: ''\n    online: true\n"),
        "{verbose}"
    );
    let json = admin(&app, &["servers", "yaml", "--json"]).await.ok().json();
    assert_eq!(json["servers"]["bbb-2"]["load_multiplier"], 1.5);
    assert_eq!(json["servers"]["bbb-2"]["tag"], "gpu");
    assert_eq!(json["servers"]["bbb-1"]["enabled"], true);

    // Empty the pool, then feed the dump back (on stdin): the same pool again.
    let run = admin_input(&app, &["servers", "sync", "-"], "servers: {}\n").await.ok();
    assert_eq!(run.out.lines().count(), 2);
    assert!(server_ids(&app).await.is_empty());
    let run = admin_input(&app, &["servers", "sync", "-"], &dump).await.ok();
    let mut actions = lines(&run.out);
    actions.sort_unstable();
    assert_eq!(
        actions,
        ["[bbb-1] Server created", "[bbb-1] Server enabled", "[bbb-2] Server created", "[bbb-2] Server enabled"]
    );
    assert_eq!(admin(&app, &["servers", "yaml"]).await.ok().out, dump);
    // A second sync of the same document changes nothing.
    assert_eq!(admin_input(&app, &["servers", "sync", "-"], &dump).await.ok().out, "");
}

// === meeting-list ===

#[tokio::test]
async fn meeting_list_asks_each_server() {
    let app = TestApp::builder().servers(3).start().await;
    app.fleet[0].seed_meeting(MeetingSeed::new("a").name("Room A"));
    app.fleet[0].seed_meeting(MeetingSeed::new("b").name("Room B"));
    app.fleet[2].set_mode(Mode::Down);
    let (u1, u2, u3) = (app.fleet[0].url(), app.fleet[1].url(), app.fleet[2].url());

    let run = admin(&app, &["servers", "meeting-list"]).await.ok();
    assert_eq!(
        run.out,
        format!(
            "\nServer ID: bbb-1\nServer Url: {u1}\nMeetingIDs: \n\tRoom A\n\tRoom B\n\
             \nServer ID: bbb-2\nServer Url: {u2}\nMeetingIDs: \n\t\n\
             \nServer ID: bbb-3\nServer Url: {u3}\n"
        )
    );
    assert!(run.err.starts_with("\tNo meetings to display\n\nFailed to get server id=bbb-3 status: "), "{}", run.err);

    let run = admin(&app, &["servers", "meeting_list", "bbb-2:bbb-1"]).await.ok();
    assert!(run.out.starts_with("\nServer ID: bbb-2\n"), "{}", run.out);
    assert!(run.out.ends_with("\tRoom A\n\tRoom B\n"), "{}", run.out);

    let json = admin(&app, &["servers", "meeting-list", "--json"]).await.ok().json();
    let servers = json.as_array().unwrap();
    assert_eq!(servers.len(), 3);
    assert_eq!(servers[0]["server_id"], "bbb-1");
    assert_eq!(servers[0]["meetings"][1]["meeting_name"], "Room B");
    assert_eq!(servers[0]["meetings"][1]["meeting_id"], "b");
    assert_eq!(servers[1]["meetings"], serde_json::json!([]));
    assert_eq!(servers[2]["meetings"], Value::Null);
    assert!(servers[2]["error"].is_string());
}

// === meetings ===

#[tokio::test]
async fn meetings_list_and_info() {
    let app = TestApp::builder().servers(2).start().await;
    let seed = MeetingSeed::new("m1")
        .name("Physics")
        .record(true)
        .metadata("bbb-origin", "Greenlight")
        .metadata("bbb-context-name", "Course 7")
        .metadata("analytics-callback-url", "https://gl.example.com/cb");
    meeting_on(&app, 0, "m1", seed).await;
    meeting_on(&app, 1, "m2", MeetingSeed::new("m2")).await;
    // Recorded but no longer on its server.
    app.seed_meeting("gone", "bbb-2", "mp", "70001").await;
    let (u1, u2) = (app.fleet[0].url(), app.fleet[1].url());

    let run = admin(&app, &["meetings"]).await.ok();
    assert_eq!(
        run.out,
        format!(
            "\nMeetingID: m1\n\tServer ID: bbb-1\n\tServer Url: {u1}\n\nMeetingID: m2\n\tServer ID: bbb-2\n\tServer Url: {u2}\n"
        )
    );
    assert!(run.err.starts_with("Failed to get meeting id=gone status: server answered notFound"), "{}", run.err);
    let run = admin(&app, &["meetings", "list", "m2"]).await.ok();
    assert_eq!(run.out, format!("\nMeetingID: m2\n\tServer ID: bbb-2\n\tServer Url: {u2}\n"));
    assert_eq!(admin(&app, &["meetings", "m2:m1"]).await.ok().out.matches("MeetingID: ").count(), 2);

    let json = admin(&app, &["meetings", "--json"]).await.ok().json();
    let list = json.as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!((list[1]["meeting_id"].as_str(), list[1]["server_id"].as_str()), (Some("m1"), Some("bbb-1")));
    assert!(list[0]["error"].is_string(), "gone: {}", list[0]);

    let info = app.fleet[0].meeting("m1").unwrap();
    let run = admin(&app, &["meetings", "info", "m1"]).await.ok();
    assert_eq!(
        run.out,
        format!(
            "\nMeeting ID: m1\n\tMeeting Name: Physics\n\tInternal MeetingID: {}\n\tCreated Date: {}\n\
             \tRecording Enabled: true\n\tServer id: bbb-1\n\tSerevr url: {u1}\n\tMetaData:\n\
             \t\tbbb-context-name: Course 7\n\t\tanalytics-callback-url: https://gl.example.com/cb\n\
             \t\tbbb-recording-tags: \n\t\tbbb-origin-server-common-name: \n\t\tbbb-context-label: \n\
             \t\tbbb-origin: Greenlight\n\t\tbbb-context: \n\t\tbbb-context-id: \n\t\tbbb-recording-name: \n\
             \t\tbbb-origin-server-name: \n\t\tbbb-recording-description: \n\t\tbbb-origin-tag: \n",
            info.internal_meeting_id, info.create_date
        )
    );
    let json = admin(&app, &["meetings", "info", "m1", "--json"]).await.ok().json();
    assert_eq!(json["meeting_name"], "Physics");
    assert_eq!(json["server_url"], u1);
    assert_eq!(json["metadata"]["bbb-origin"], "Greenlight");

    // A server error is a warning, as in Scalelite.
    let run = admin(&app, &["meetings", "info", "gone"]).await.ok();
    assert_eq!(run.out, "");
    assert!(run.err.starts_with("WARNING: Could not get info for meeting id=gone: "), "{}", run.err);
}

#[tokio::test]
async fn meetings_end_asks_then_forgets_and_ends() {
    let app = TestApp::builder().servers(2).start().await;
    meeting_on(&app, 0, "e1", MeetingSeed::new("e1")).await;
    meeting_on(&app, 1, "e2", MeetingSeed::new("e2")).await;
    meeting_on(&app, 1, "e3", MeetingSeed::new("e3")).await;
    let asked = format!("WARNING: You are trying to clear active meetings.\n{PROMPT}\n");

    let run = admin_input(&app, &["meetings", "end"], "no\n").await.ok();
    assert_eq!((run.out.clone(), run.err.as_str()), (format!("{asked}OK\n"), ""));
    assert_eq!(meeting_server(&app, "e1").await, "bbb-1");

    let run = admin_input(&app, &["meetings", "end", "e1:e2"], "yes\n").await.ok();
    assert_eq!(run.out, format!("{asked}OK\n"));
    assert_eq!(run.err, "Clearing Meeting id=e1\nClearing Meeting id=e2\n");
    assert!(app.meeting("e1").await.is_none() && app.meeting("e2").await.is_none());
    assert_eq!(meeting_server(&app, "e3").await, "bbb-2");
    assert!(!app.fleet[0].has_meeting("e1") && !app.fleet[1].has_meeting("e2") && app.fleet[1].has_meeting("e3"));
    let end = &app.fleet[1].calls_to("end")[0];
    assert_eq!((end.param("meetingID"), end.param("password")), (Some("e2"), Some("mp-e2")));

    // All of them, with --yes and --json; then none are left.
    let json = admin(&app, &["meetings", "end", "--yes", "--json"]).await.ok().json();
    assert_eq!(json, serde_json::json!({ "ok": true, "cleared": ["e3"], "end_failures": [] }));
    let run = admin(&app, &["meetings", "end", "-y"]).await.ok();
    assert_eq!((run.out.as_str(), run.err.as_str()), ("OK\n", "No meetings to clear\n"));
}

// === JSON ===

#[tokio::test]
async fn json_output_of_servers_and_write_commands() {
    let app = TestApp::builder().servers(2).start().await;
    seed(&app, 1, |s| s.state("cordoned").load(Some(4.0)).tag("gpu").multiplier(Some("2"))).await;
    let json = admin(&app, &["--json", "servers"]).await.ok().json();
    let servers = json.as_array().unwrap();
    assert_eq!(servers.len(), 2);
    assert_eq!(servers[0]["id"], "bbb-1");
    assert_eq!((servers[0]["state"].as_str(), servers[0]["online"].as_str()), (Some("enabled"), Some("online")));
    assert_eq!(servers[0]["load"], 0.0);
    assert_eq!(servers[1]["load"], 4.0);
    assert_eq!(servers[1]["load_multiplier"], "2.0");
    assert_eq!((servers[1]["state"].as_str(), servers[1]["tag"].as_str()), (Some("cordoned"), Some("gpu")));
    assert_eq!(servers[1]["secret"], app.fleet[1].secret());

    let run = admin(
        &app,
        &["servers", "add", "https://x.example.com/bigbluebutton/api", "s", "--load-multiplier", "0", "--json"],
    )
    .await
    .ok();
    let json = run.json();
    assert_eq!(json["ok"], true);
    let id = json["id"].as_str().unwrap().to_owned();
    assert_eq!(run.err, format!("{MULTIPLIER_WARNING}\n"), "warnings leave stdout to the JSON");
    let json = admin(&app, &["servers", "enable", &id, "--json"]).await.ok().json();
    assert_eq!(json, serde_json::json!({ "ok": true, "id": id, "state": "enabled" }));
    let json = admin(&app, &["servers", "tag", &id, "t", "--json"]).await.ok().json();
    assert_eq!(json, serde_json::json!({ "ok": true, "id": id, "tag": "t" }));
    let json = admin(&app, &["servers", "remove", &id, "--json"]).await.ok().json();
    assert_eq!(json, serde_json::json!({ "ok": false, "declined": true, "id": id }));
    let json = admin(&app, &["servers", "remove", &id, "--json", "--yes"]).await.ok().json();
    assert_eq!(json, serde_json::json!({ "ok": true, "id": id }));

    let run = admin(&app, &["servers", "enable", "nope", "--json"]).await;
    assert_eq!((run.code, run.out.as_str(), run.err.as_str()), (1, "", "ERROR: No server found with id: nope\n"));

    let dir = tempfile::tempdir().unwrap();
    let path = document(&dir, "s.yml", "servers: {}\n");
    let json = admin(&app, &["servers", "sync", &path, "--dry-run", "--json"]).await.ok().json();
    assert_eq!(json["ok"], true);
    assert_eq!(json["dry_run"], true);
    assert_eq!(json["actions"].as_array().unwrap().len(), 2);
}

// === servers add-all (rake servers:addAll) ===

#[tokio::test]
async fn add_all_adds_each_server_of_a_yaml_list() {
    let app = TestApp::builder().servers(2).unseeded().start().await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (&app.fleet[0], &app.fleet[1]);
    let yaml = format!(
        "servers:\n  - url: {}\n    secret: {}\n  - url: {}\n    secret: {}\n",
        a.url(),
        a.secret(),
        b.url(),
        b.secret()
    );
    let path = document(&dir, "servers.yml", &yaml);
    let run = admin(&app, &["servers", "addAll", &path]).await.ok();
    let out = lines(&run.out);
    assert_eq!(out.len(), 4, "{}", run.out);
    assert_eq!((out[0], out[2]), (format!("server: {}", a.url()).as_str(), format!("server: {}", b.url()).as_str()));
    let ids: Vec<&str> = [out[1], out[3]].iter().map(|l| l.strip_prefix("id: ").unwrap()).collect();
    for (id, fake) in ids.iter().zip([a, b]) {
        let stored = server(&app, id).await;
        assert_eq!((stored.url.as_str(), stored.secret.expose()), (fake.url().as_str(), fake.secret().as_str()));
        assert_eq!((stored.tag.as_deref(), stored.online, stored.load_multiplier.as_deref()), (None, false, None));
        assert_eq!(state(&app, id).await, "", "added without a state (disabled), like servers add");
    }

    // --json, from stdin; a bad entry stops the command with exit 1 and
    // keeps what was added before it.
    let yaml = format!("servers:\n  - url: {}\n    secret: s3\n  - url: ftp://x\n    secret: s\n", a.url());
    let run = admin_input(&app, &["servers", "add-all", "-", "--json"], &yaml).await;
    assert_eq!(run.code, 1);
    assert_eq!(run.err, "ERROR: servers[1]: Server URL must start with http:// or https://\n");
    let json: Value = serde_json::from_str(&run.out).unwrap();
    assert_eq!(json["ok"], false);
    assert_eq!(json["added"].as_array().unwrap().len(), 1);
    assert_eq!(server_ids(&app).await.len(), 3);
    let run = admin_input(&app, &["servers", "add-all", "-"], "other: []\n").await;
    assert_eq!((run.code, run.err.as_str()), (1, "ERROR: -: no `servers` list\n"));
}

// === poll ===

#[tokio::test]
async fn poll_parts_of_the_rake_tasks_run_the_round() {
    let app = TestApp::builder().servers(1).unseeded().start().await;
    seed(&app, 0, |s| s.online(false).load(None)).await;
    for (round, part) in ["servers", "meetings", "versions", "all"].into_iter().enumerate() {
        let json = admin(&app, &["poll", part, "--json"]).await.ok().json();
        assert_eq!((json["polled"].as_bool(), json["servers"].as_u64()), (Some(true), Some(1)), "{part}");
        assert_eq!(app.fleet[0].call_count("getMeetings"), round + 1, "{part}");
    }
    assert!(server(&app, "bbb-1").await.online);
    assert_eq!(server(&app, "bbb-1").await.bbb_version.as_deref(), Some(DEFAULT_BBB_VERSION));
    assert!(<scalelite_admin::Cli as clap::Parser>::try_parse_from(["scalelite-admin", "poll", "recordings"]).is_err());
}

#[tokio::test]
async fn poll_runs_one_round_or_leaves_it_to_the_lease_holder() {
    let app = TestApp::builder().servers(1).unseeded().start().await;
    seed(&app, 0, |s| s.online(false).load(None)).await;

    let store = app.store();
    let other = Lease { name: POLLER_LEASE.to_owned(), token: "poller-elsewhere".to_owned() };
    assert!(store.acquire_lease(&other, Duration::from_secs(60)).await.unwrap());
    let run = admin(&app, &["poll"]).await.ok();
    assert_eq!(
        run.out,
        "Another poller (poller-elsewhere) holds the lease and polls on its own schedule; nothing was polled\n"
    );
    let json = admin(&app, &["poll", "--json"]).await.ok().json();
    assert_eq!(json, serde_json::json!({ "polled": false, "holder": "poller-elsewhere" }));
    assert_eq!(app.fleet[0].call_count("getMeetings"), 0, "nothing was polled");
    assert!(!server(&app, "bbb-1").await.online);

    store.release_lease(&other).await.unwrap();
    let json = admin(&app, &["poll", "--json"]).await.ok().json();
    assert_eq!(
        (json["polled"].as_bool(), json["servers"].as_u64(), json["reachable"].as_u64()),
        (Some(true), Some(1), Some(1))
    );
    assert_eq!(json["transitions"], serde_json::json!([{ "server_id": "bbb-1", "transition": "came_online" }]));
    assert!(server(&app, "bbb-1").await.online);
    assert_eq!(store.lease_holder(POLLER_LEASE).await.unwrap(), None, "the lease is given back");
}

// === db and recordings ===

#[tokio::test]
async fn recordings_add_to_tenant_links_unowned_recordings() {
    use scalelite_store::recordings::{ImportPolicy, RecordingImport, RecordingQuery, StateFilter};
    let app = TestApp::builder().servers(0).recordings().start().await;
    let store = app.recording_store();
    for (id, tenant) in [("r1", None), ("r2", Some("other"))] {
        let mut metadata = vec![];
        if let Some(tenant) = tenant {
            metadata.push(("tenant-id".to_owned(), tenant.to_owned()));
        }
        let import = RecordingImport {
            record_id: id.into(),
            meeting_id: "m".into(),
            state: Some("published".into()),
            metadata,
            ..Default::default()
        };
        store.import_recording(&import, ImportPolicy::default()).await.unwrap();
    }
    let run = admin(&app, &["recordings", "add-to-tenant"]).await;
    assert_eq!((run.code, run.err.as_str()), (1, "No tenant ID was provided\n"));
    let run = admin(&app, &["recordings", "add-to-tenant", "t1"]).await.ok();
    assert_eq!(run.out, "All existing recordings have been successfully linked to tenant t1\n");
    let query = RecordingQuery { states: StateFilter::Any, ..RecordingQuery::default() };
    let mut owners: Vec<String> = store
        .find_recordings(&query)
        .await
        .unwrap()
        .recordings
        .iter()
        .flat_map(|r| r.metadata.iter().filter(|(k, _)| k == "tenant-id").map(|(_, v)| format!("{}={v}", r.record_id)))
        .collect();
    owners.sort();
    assert_eq!(owners, ["r1=t1", "r2=other"], "recordings of another tenant keep their owner");
    let json = admin(&app, &["recordings", "add-to-tenant", "t1", "--json"]).await.ok().json();
    assert_eq!(json["recordings_linked"], 0);
}

#[tokio::test]
async fn recordings_import_status_shows_pending_failed_and_recent() {
    use scalelite_store::recordings::ImportLogEntry;
    let app = TestApp::builder().servers(0).recordings().start().await;
    let spool = app.dirs().spool();
    std::fs::write(spool.join("waiting-1.tar"), vec![0_u8; 2048]).unwrap();
    std::fs::write(spool.join("ignored.txt"), "x").unwrap();
    std::fs::create_dir_all(spool.join("failed")).unwrap();
    std::fs::write(spool.join("failed/broken-2.tar"), "junk").unwrap();
    std::fs::write(spool.join("failed/broken-2.tar.reason"), "not a tar archive: unexpected EOF\nmore detail\n")
        .unwrap();
    let store = app.recording_store();
    let entry = |status: &str, record_id: Option<&str>, reason: Option<&str>| ImportLogEntry {
        filename: "x.tar".into(),
        record_id: record_id.map(str::to_owned),
        status: status.into(),
        reason: reason.map(str::to_owned),
        size_bytes: Some(10),
        formats: record_id.map(|_| 2),
        finished_ms: 0,
    };
    store.log_import(&entry("imported", Some("rec-ok"), None)).await.unwrap();
    store.log_import(&entry("failed", None, Some("metadata.xml has no <id>"))).await.unwrap();

    let run = admin(&app, &["recordings", "import-status"]).await.ok();
    let out = run.out;
    assert!(out.contains(&format!("Pending in {}: 1", spool.display())), "{out}");
    assert!(out.contains("waiting-1.tar") && out.contains("2.0 KiB"), "{out}");
    assert!(!out.contains("ignored.txt"));
    assert!(
        out.contains("Failed (kept in")
            && out.contains("broken-2.tar")
            && out.contains("not a tar archive: unexpected EOF"),
        "{out}"
    );
    assert!(
        out.contains("Recent imports: 2") && out.contains("rec-ok") && out.contains("metadata.xml has no <id>"),
        "{out}"
    );

    let json = admin(&app, &["recordings", "import-status", "--json"]).await.ok().json();
    assert_eq!(json["pending"][0]["file"], "waiting-1.tar");
    assert_eq!(json["pending"][0]["size_bytes"], 2048);
    assert_eq!(json["failed"][0]["reason"], "not a tar archive: unexpected EOF");
    assert_eq!(json["recent"][0]["status"], "failed", "newest first");
    assert_eq!(json["recent"][1]["record_id"], "rec-ok");
}

#[tokio::test]
async fn recordings_update_moves_unpublished_recordings_out_of_the_publish_tree() {
    use scalelite_store::recordings::{ImportPolicy, ImportedFormat, RecordingImport};
    let app = TestApp::builder().servers(0).recordings().start().await;
    let store = app.recording_store();
    let (published, unpublished) = (app.dirs().published(), app.dirs().unpublished());
    // r-hidden is unpublished in the database but its files are still public
    // (an unpublish done before files moved, or a restored backup); r-both
    // already has an unpublished copy; r-open is published.
    for (id, publish) in [("r-hidden", false), ("r-both", false), ("r-open", true)] {
        let import = RecordingImport {
            record_id: id.into(),
            meeting_id: "m".into(),
            published: Some(true),
            state: Some("published".into()),
            formats: ["presentation", "video"]
                .map(|f| ImportedFormat { format: f.into(), url: format!("/{f}/{id}/"), ..Default::default() })
                .to_vec(),
            ..Default::default()
        };
        store.import_recording(&import, ImportPolicy { import_unpublished: !publish, protected: false }).await.unwrap();
        for format in ["presentation", "video"] {
            std::fs::create_dir_all(published.join(format).join(id)).unwrap();
            std::fs::write(published.join(format).join(id).join("index.html"), id).unwrap();
        }
    }
    std::fs::create_dir_all(unpublished.join("presentation/r-both")).unwrap();

    let run = admin(&app, &["recordings", "update"]).await.ok();
    assert_eq!(
        lines(&run.out),
        [
            "Moved presentation of recording r-hidden to the unpublished directory",
            "Moved video of recording r-hidden to the unpublished directory",
            "Moved video of recording r-both to the unpublished directory",
            "2 unpublished recordings checked, 3 formats moved, 0 failed",
        ]
    );
    for format in ["presentation", "video"] {
        assert_eq!(std::fs::read_to_string(unpublished.join(format).join("r-hidden/index.html")).unwrap(), "r-hidden");
        assert!(!published.join(format).join("r-hidden").exists());
        assert!(published.join(format).join("r-open/index.html").is_file(), "published recordings stay");
    }
    // An existing unpublished copy is never overwritten.
    assert!(published.join("presentation/r-both/index.html").is_file());
    assert!(!unpublished.join("presentation/r-both/index.html").exists());

    let json = admin(&app, &["recordings", "update", "--json"]).await.ok().json();
    assert_eq!((json["checked"].as_u64(), json["moved"].as_array().map(Vec::len)), (Some(2), Some(0)));
}

#[tokio::test]
async fn recordings_import_runs_the_importer_once() {
    use scalelite_tests::{Format, RecordingArchive};
    let app = TestApp::builder().servers(0).recordings().env("RECORDING_IMPORT_SETTLE_TIME", "0").start().await;
    let spool = app.dirs().spool();
    let rec = RecordingArchive::new("room-1", "Seminar");
    rec.drop_into(&spool);
    scalelite_tests::archive::drop_bytes(&spool, "broken.tar", b"not a tar archive at all");

    let run = admin(&app, &["recordings", "import"]).await.ok();
    let out = lines(&run.out);
    assert!(out.contains(&format!("imported  {} {}", rec.file_name(), rec.record_id).as_str()), "{out:?}");
    assert!(out.iter().any(|l| l.starts_with("failed    broken.tar ")), "{out:?}");
    assert!(out.last().unwrap().starts_with("Imported 1, failed 1, deferred 0"), "{out:?}");
    assert!(app.dirs().published().join("presentation").join(&rec.record_id).join("metadata.xml").is_file());
    assert!(spool.join("failed/broken.tar").is_file() && spool.join("failed/broken.tar.reason").is_file());

    // import-status now shows the quarantined archive and both imports.
    let json = admin(&app, &["recordings", "import-status", "--json"]).await.ok().json();
    assert_eq!(json["failed"][0]["file"], "broken.tar");
    assert_eq!(json["recent"].as_array().map(Vec::len), Some(2));
    assert_eq!(json["pending"].as_array().map(Vec::len), Some(0));

    // A format without its metadata.xml is skipped; the line says so.
    let partial = RecordingArchive::new("room-2", "Partial").formats(&[Format::Presentation, Format::Video]);
    let id = &partial.record_id;
    let tar = partial
        .members()
        .into_iter()
        .filter(|(path, _)| *path != format!("video/{id}/metadata.xml"))
        .fold(scalelite_tests::archive::RawTar::new(), |tar, (path, content)| tar.file(&path, &content))
        .finish();
    scalelite_tests::archive::drop_bytes(&spool, &partial.file_name(), &tar);
    let run = admin(&app, &["recordings", "import"]).await.ok();
    let expected =
        format!("imported  {} {id}; format video skipped: video/{id}/metadata.xml is missing", partial.file_name());
    assert!(lines(&run.out).contains(&expected.as_str()), "{}", run.out);
    let json = admin(&app, &["recordings", "import-status", "--json"]).await.ok().json();
    let recent = json["recent"].as_array().unwrap();
    assert!(
        recent.iter().any(|e| e["reason"] == format!("format video skipped: video/{id}/metadata.xml is missing")),
        "{recent:?}"
    );
}

/// PostgreSQL's schema administration, Redis' layout, and the services
/// backend without `DATABASE_URL`.
mod redis_only {
    use super::*;
    use scalelite_tests::TestBackend;

    async fn members(app: &TestApp, set: &str) -> Vec<String> {
        let mut members = app.redis().cmd(&["SMEMBERS", &app.key(set)]).await.as_vec();
        members.sort();
        members
    }

    #[tokio::test]
    async fn servers_are_stored_on_scalelites_keys() {
        let app = TestApp::builder().backend(TestBackend::Redis).servers(1).unseeded().start().await;
        let (url, secret) = (app.fleet[0].url(), app.fleet[0].secret());
        let id = added_id(&admin(&app, &["servers", "add", &url, &secret]).await.ok());
        let record = app.server_record(&id).await;
        let expected =
            [("load_multiplier", "1.0"), ("online", "false"), ("secret", secret.as_str()), ("url", url.as_str())];
        assert_eq!(record, expected.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
        assert_eq!(members(&app, "servers").await, [id.as_str()]);
        assert!(members(&app, "server_enabled").await.is_empty(), "added disabled");
        admin(&app, &["servers", "enable", &id]).await.ok();
        assert_eq!(members(&app, "server_enabled").await, [id.as_str()]);
        admin(&app, &["servers", "cordon", &id]).await.ok();
        assert!(members(&app, "server_enabled").await.is_empty());
        assert_eq!(app.server_record(&id).await["state"], "cordoned");
        admin(&app, &["servers", "remove", &id, "--yes"]).await.ok();
        assert!(members(&app, "servers").await.is_empty());
        assert!(app.server_record(&id).await.is_empty());
    }

    /// A configuration with only `DATABASE_URL` (and the test's Redis).
    fn db_config(app: &TestApp, database_url: &str) -> Config {
        let env = scalelite_core::config::Env::default()
            .with("REDIS_URL", app.redis().url())
            .with("DATABASE_URL", database_url);
        Config::from_env(&env).unwrap()
    }

    #[tokio::test]
    async fn db_migrate_applies_once_and_status_reports_it() {
        let app = TestApp::builder().backend(TestBackend::Redis).servers(0).start().await;
        let pg = scalelite_tests::TestPostgres::start().await;
        let config = db_config(&app, &pg.url());

        let status = admin_with(&config, &["db", "status"], "").await;
        assert_eq!(status.code, 1, "pending migrations fail the status");
        assert!(status.out.contains("pending  20181123180008  init"), "{}", status.out);
        assert!(status.err.contains("10 migration(s) pending: run `scalelite-admin db migrate`"), "{}", status.err);

        let run = admin_with(&config, &["db", "migrate"], "").await.ok();
        assert_eq!(lines(&run.out).len(), 10, "{}", run.out);
        assert_eq!(lines(&run.out)[0], "migrated 20181123180008");
        let again = admin_with(&config, &["db", "migrate"], "").await.ok();
        assert_eq!(again.out, "Database is up to date\n");
        let json = admin_with(&config, &["db", "status", "--json"], "").await.ok().json();
        assert!(json["migrations"].as_array().unwrap().iter().all(|m| m["applied"] == true), "{json}");

        // Without DATABASE_URL: a clear error.
        let run = admin(&app, &["db", "migrate"]).await;
        assert_eq!((run.code, run.err.as_str()), (1, "ERROR: DATABASE_URL is not set\n"));
        let run = admin(&app, &["recordings", "import"]).await;
        assert_eq!((run.code, run.err.as_str()), (1, "ERROR: DATABASE_URL is not set\n"));
    }
    /// Scalelite's docs show `DATABASE_URL` without a database; Rails takes
    /// `scalelite` from `database.yml`, and so do we (not the user's name).
    #[tokio::test]
    async fn a_database_url_without_a_database_migrates_scalelite() {
        let app = TestApp::builder().backend(TestBackend::Redis).servers(0).start().await;
        let pg = scalelite_tests::TestPostgres::start().await;
        let config = db_config(&app, &format!("postgres://postgres@127.0.0.1:{}", pg.port()));

        admin_with(&config, &["db", "migrate"], "").await.ok();
        let tables = "SELECT count(*) FROM information_schema.tables WHERE table_name = 'recordings'";
        assert_eq!(pg.psql(tables).await.trim(), "1", "the schema is in the scalelite database");
        let elsewhere = pg.try_psql_on("postgres", tables).await.unwrap();
        assert_eq!(elsewhere.trim(), "0", "nothing was written to the user's default database");
        admin_with(&config, &["db", "status"], "").await.ok();
    }
}
