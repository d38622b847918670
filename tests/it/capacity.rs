//! The autoscaler interface: `GET /scalelite/api/capacity` and
//! `scalelite-admin capacity --json`: capacity and headroom per tag, per
//! region and per capability, and
//! which servers may be deleted now (disabled or drained, no meetings, no
//! recording processing or waiting on the server itself).

use bytes::Bytes;
use http::Method;
use scalelite_tests::{Mode, TestApp, server_id};
use serde_json::Value;

use crate::support::{Run, admin_with, create};

async fn admin(app: &TestApp, args: &[&str]) -> Run {
    admin_with(&app.state.config, args, "").await
}

/// The report through the management API.
async fn capacity(app: &TestApp) -> Value {
    let client = app.client();
    let checksum = client.checksum("capacity", "");
    let reply =
        client.send(Method::GET, &format!("/scalelite/api/capacity?checksum={checksum}"), None, Bytes::new()).await;
    let reply = reply.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.content_type(), Some("application/json; charset=utf-8"));
    serde_json::from_str(&reply.body).unwrap()
}

fn server<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["servers"].as_array().unwrap().iter().find(|s| s["id"] == id).unwrap_or_else(|| panic!("{id}: {report}"))
}

#[tokio::test]
async fn capacity_per_tag_and_which_servers_may_be_removed() {
    let app = TestApp::builder().servers(3).env("CAPACITY_PER_SERVER", "100").start().await;
    create(&app, "busy").await;
    let on = app.placed_on("busy").await.unwrap();
    assert!(app.fleet[on].add_attendees("busy", 20));
    let (busy, idle, gpu) = (server_id(on), server_id((on + 1) % 3), server_id((on + 2) % 3));
    admin(&app, &["servers", "tag", &gpu, "gpu"]).await.ok();
    app.poll().await;

    let report = capacity(&app).await;
    assert_eq!(report["capacity_per_server"], 100.0);
    let pool = &report["pool"];
    assert_eq!(
        (pool["servers"].as_u64(), pool["online"].as_u64(), pool["offline"].as_u64()),
        (Some(3), Some(3), Some(0))
    );
    assert_eq!((pool["users"].as_u64(), pool["meetings"].as_u64()), (Some(20), Some(1)));
    assert_eq!(pool["capacity"], 300.0);
    let busy_load = app.server(&busy).await.unwrap().load.unwrap();
    assert!(busy_load >= 20.0);
    assert_eq!(pool["load"].as_f64().unwrap(), busy_load);
    assert_eq!(pool["headroom"].as_f64().unwrap(), 300.0 - busy_load);
    // Untagged first, then by tag.
    let tags = report["tags"].as_array().unwrap();
    assert_eq!(tags.len(), 2);
    assert_eq!((tags[0]["tag"].clone(), tags[0]["servers"].as_u64()), (Value::Null, Some(2)));
    assert_eq!((tags[1]["tag"].as_str(), tags[1]["servers"].as_u64()), (Some("gpu"), Some(1)));
    assert_eq!(tags[1]["headroom_ratio"], 1.0);
    // Enabled servers are never to be removed, and nobody asked them for recordings.
    for id in [&busy, &idle, &gpu] {
        let entry = server(&report, id);
        assert_eq!((entry["safe_to_remove"].as_bool(), entry["reason"].as_str()), (Some(false), Some("enabled")));
    }
    assert_eq!(app.fleet.call_count("getRecordings"), 0);

    // A disabled, empty server whose recordings are still processing stays.
    let idle_index = (on + 1) % 3;
    let recording = app.fleet[idle_index].add_recording("earlier-class", "processing");
    admin(&app, &["servers", "disable", &idle, "-y"]).await.ok();
    let report = capacity(&app).await;
    let entry = server(&report, &idle);
    assert_eq!(entry["state"], "disabled");
    assert_eq!(entry["safe_to_remove"], false);
    assert_eq!(entry["recordings_pending"], 1);
    assert_eq!(entry["reason"], "1 recordings processing or waiting");
    let asked = app.fleet[idle_index].calls_to("getRecordings");
    assert_eq!(asked.last().unwrap().param("state"), Some("processing,processed"));
    assert!(asked.last().unwrap().checksum_valid);
    assert_eq!((report["pool"]["online"].as_u64(), report["pool"]["disabled"].as_u64()), (Some(2), Some(1)));
    assert_eq!(report["pool"]["capacity"], 200.0);

    // Processed but not yet published still counts; published does not.
    assert!(app.fleet[idle_index].set_recording_state(&recording, "processed"));
    assert_eq!(server(&capacity(&app).await, &idle)["safe_to_remove"], false);
    assert!(app.fleet[idle_index].set_recording_state(&recording, "published"));
    let report = capacity(&app).await;
    let entry = server(&report, &idle);
    assert_eq!((entry["safe_to_remove"].as_bool(), entry["reason"].as_str()), (Some(true), Some("")));
    assert_eq!(entry["recordings_pending"], 0);

    // The admin CLI answers the same.
    let cli = admin(&app, &["capacity", "--json"]).await.ok().json();
    assert_eq!(cli["servers"], report["servers"]);
    assert_eq!(cli["tags"], report["tags"]);
    let text = admin(&app, &["capacity"]).await.ok().out;
    assert!(text.contains(&format!("{idle}: safe to remove")), "{text}");
    assert!(text.contains(&format!("{busy}: keep (enabled)")), "{text}");
    assert!(text.contains("(untagged)") && text.contains("gpu") && text.contains("(all)"), "{text}");

    // A draining server holding a meeting is not removable until drained
    // and empty.
    admin(&app, &["servers", "drain", &busy]).await.ok();
    let entry = server(&capacity(&app).await, &busy).clone();
    assert_eq!(
        (entry["safe_to_remove"].as_bool(), entry["reason"].as_str()),
        (Some(false), Some("draining: not disabled yet"))
    );
    assert_eq!(entry["drain"]["state"], "draining");
    assert_eq!(entry["meeting_records"], 1);

    // A server that cannot be asked is kept.
    app.fleet[idle_index].set_mode(Mode::Down);
    let entry = server(&capacity(&app).await, &idle).clone();
    assert_eq!(entry["safe_to_remove"], false);
    assert!(entry["reason"].as_str().unwrap().starts_with("cannot ask for its recordings"), "{entry}");
    // Once the poller has it offline, it is not even asked.
    app.poll().await;
    app.poll().await;
    let asked = app.fleet[idle_index].call_count("getRecordings");
    let entry = server(&capacity(&app).await, &idle).clone();
    assert_eq!((entry["online"].as_bool(), entry["safe_to_remove"].as_bool()), (Some(false), Some(false)));
    assert_eq!(entry["reason"], "offline: its recordings cannot be asked for");
    assert_eq!(app.fleet[idle_index].call_count("getRecordings"), asked);
}

#[tokio::test]
async fn a_disabled_server_still_holding_a_meeting_is_kept() {
    let app = TestApp::builder().servers(1).start().await;
    create(&app, "left-over").await;
    // Disabled through the API's store write, as Ruby's `servers:disable`
    // would leave it with the meeting still recorded.
    let reply = {
        let client = app.client();
        let body = Bytes::from(r#"{"server": {"state": "disable"}}"#);
        let query = client.query(&[("id", "bbb-1")]);
        let checksum = client.checksum("updateServer", &query);
        client
            .send(
                Method::POST,
                &format!("/scalelite/api/updateServer?{query}&checksum={checksum}"),
                Some("application/json"),
                body,
            )
            .await
            .unwrap()
    };
    assert_eq!(reply.status, 200, "{}", reply.body);
    let entry = server(&capacity(&app).await, "bbb-1").clone();
    assert_eq!((entry["safe_to_remove"].as_bool(), entry["reason"].as_str()), (Some(false), Some("holds meetings")));
    assert_eq!(app.fleet.call_count("getRecordings"), 0);
}

/// Creates `id` preferring `region`; the index of the fake it landed on.
async fn create_in(app: &TestApp, id: &str, region: &str) -> usize {
    let reply =
        app.client().get("create", &[("meetingID", id), ("name", "Room"), ("meta_server-region", region)]).await;
    assert!(reply.is_success(), "create {id}: {}", reply.body);
    app.placed_on(id).await.unwrap()
}

/// The entry named `name` under `key` (`"region"` in `regions`, ...).
fn group<'a>(report: &'a Value, list: &str, key: &str, name: Value) -> &'a Value {
    report[list]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g[key] == name)
        .unwrap_or_else(|| panic!("no {key} {name} in {}", report[list]))
}

#[tokio::test]
async fn capacity_per_region_and_per_capability_shows_where_headroom_is_missing() {
    let app = TestApp::builder().servers(4).env("CAPACITY_PER_SERVER", "100").start().await;
    // bbb-1: eu, LiveKit; bbb-2: eu; bbb-3: us; bbb-4: no region, still BBB 2.7.
    app.fleet[3].set_bbb_version("2.7.3");
    admin(&app, &["servers", "update", "bbb-1", "--region", "eu", "--capabilities", "livekit"]).await.ok();
    admin(&app, &["servers", "update", "bbb-2", "--region", "eu"]).await.ok();
    admin(&app, &["servers", "update", "bbb-3", "--region", "us"]).await.ok();
    app.poll().await;
    // A full class in eu; the us server is being drained.
    let on = create_in(&app, "eu-class", "eu").await;
    assert!(on < 2, "placed on bbb-{}", on + 1);
    assert!(app.fleet[on].add_attendees("eu-class", 90));
    app.poll().await;
    // (After the poll, which would disable it: it is empty.)
    admin(&app, &["servers", "cordon", "bbb-3"]).await.ok();
    let eu_load = app.server(&server_id(on)).await.unwrap().load.unwrap();
    assert!(eu_load >= 90.0);

    let report = capacity(&app).await;
    // What Scalelite-style tags show: one untagged group with room to spare.
    let tags = report["tags"].as_array().unwrap();
    assert_eq!((tags.len(), tags[0]["tag"].clone(), tags[0]["servers"].as_u64()), (1, Value::Null, Some(4)));
    assert_eq!(report["pool"]["headroom"].as_f64().unwrap(), 300.0 - eu_load);
    // Per region: eu is nearly full, us takes nothing, the rest has room.
    let regions: Vec<Value> = report["regions"].as_array().unwrap().iter().map(|r| r["region"].clone()).collect();
    assert_eq!(regions, [Value::Null, "eu".into(), "us".into()], "servers without a region first");
    let eu = group(&report, "regions", "region", "eu".into());
    assert_eq!((eu["servers"].as_u64(), eu["online"].as_u64(), eu["cordoned"].as_u64()), (Some(2), Some(2), Some(0)));
    assert_eq!((eu["users"].as_u64(), eu["meetings"].as_u64()), (Some(90), Some(1)));
    assert_eq!(eu["load"].as_f64().unwrap(), eu_load);
    assert_eq!(eu["capacity"], 200.0);
    assert_eq!(eu["headroom"].as_f64().unwrap(), 200.0 - eu_load);
    let us = group(&report, "regions", "region", "us".into());
    assert_eq!((us["servers"].as_u64(), us["online"].as_u64(), us["cordoned"].as_u64()), (Some(1), Some(0), Some(1)));
    assert_eq!((us["capacity"].as_f64(), us["headroom_ratio"].as_f64()), (Some(0.0), Some(0.0)));
    let none = group(&report, "regions", "region", Value::Null);
    assert_eq!((none["servers"].as_u64(), none["headroom_ratio"].as_f64()), (Some(1), Some(1.0)));
    // Per capability, declared and learned; a server counts in each of its own.
    let names: Vec<&str> =
        report["capabilities"].as_array().unwrap().iter().map(|c| c["capability"].as_str().unwrap()).collect();
    assert_eq!(names, ["bbb-2.7", "bbb-3.0", "livekit"]);
    let bbb30 = group(&report, "capabilities", "capability", "bbb-3.0".into());
    assert_eq!(
        (bbb30["servers"].as_u64(), bbb30["online"].as_u64(), bbb30["cordoned"].as_u64()),
        (Some(3), Some(2), Some(1))
    );
    assert_eq!(bbb30["headroom"].as_f64().unwrap(), 200.0 - eu_load);
    let livekit = group(&report, "capabilities", "capability", "livekit".into());
    assert_eq!(livekit["servers"], 1);
    let livekit_load = if on == 0 { eu_load } else { 0.0 };
    assert_eq!(livekit["headroom"].as_f64().unwrap(), 100.0 - livekit_load);
    assert_eq!(group(&report, "capabilities", "capability", "bbb-2.7".into())["servers"], 1);
    // Each server with its region and capabilities, declared apart from learned.
    let first = server(&report, "bbb-1");
    assert_eq!(first["region"], "eu");
    assert_eq!(first["capabilities"], serde_json::json!(["livekit"]));
    assert_eq!(first["automatic_capabilities"], serde_json::json!(["bbb-3.0"]));
    let last = server(&report, "bbb-4");
    assert_eq!((last["region"].clone(), last["capabilities"].clone()), (Value::Null, serde_json::json!([])));
    assert_eq!(last["automatic_capabilities"], serde_json::json!(["bbb-2.7"]));

    // The admin CLI answers the same, and shows the tables.
    let cli = admin(&app, &["capacity", "--json"]).await.ok().json();
    for key in ["tags", "regions", "capabilities", "servers"] {
        assert_eq!(cli[key], report[key], "{key}");
    }
    let text = admin(&app, &["capacity"]).await.ok().out;
    let table = |header: &str| {
        let start = text.find(header).unwrap_or_else(|| panic!("no {header} table in\n{text}"));
        text[start..].split("\n\n").next().unwrap().to_owned()
    };
    let regions = table("REGION");
    // Columns: name, online, cordoned, disabled, offline, meetings, users, load, headroom (ratio).
    let row = |table: &str, name: &str| -> Vec<String> {
        let line = table.lines().find(|l| l.split_whitespace().next() == Some(name));
        line.unwrap_or_else(|| panic!("{name}: {table}")).split_whitespace().map(str::to_owned).collect()
    };
    let us = row(&regions, "us");
    assert_eq!((us[1].as_str(), us[2].as_str(), us[9].as_str()), ("0", "1", "(0%)"), "{regions}");
    assert_eq!(row(&regions, "eu")[6], "90", "{regions}");
    assert!(regions.contains(" (no region) "), "{regions}");
    let capabilities = table("CAPABILITY");
    assert_eq!(row(&capabilities, "livekit")[1], "1", "{capabilities}");
    assert_eq!(row(&capabilities, "bbb-3.0")[1..3], ["2", "1"], "{capabilities}");
    assert!(text.contains("bbb-1: keep (enabled) [region eu; livekit, bbb-3.0 (auto)]\n"), "{text}");
    assert!(text.contains("bbb-3: keep (draining: not disabled yet) [region us; bbb-3.0 (auto)]\n"), "{text}");
    assert!(text.contains("bbb-4: keep (enabled)\n"), "{text}");
}

#[tokio::test]
async fn a_pool_without_regions_reports_one_region_group_and_the_cli_keeps_one_table() {
    let app = TestApp::builder().servers(2).env("CAPACITY_PER_SERVER", "100").start().await;
    app.poll().await;
    let report = capacity(&app).await;
    let regions = report["regions"].as_array().unwrap();
    assert_eq!(
        (regions.len(), regions[0]["region"].clone(), regions[0]["servers"].as_u64()),
        (1, Value::Null, Some(2))
    );
    assert_eq!(regions[0]["capacity"], report["pool"]["capacity"]);
    assert_eq!(report["capabilities"][0]["capability"], "bbb-3.0");
    let text = admin(&app, &["capacity"]).await.ok().out;
    assert!(!text.contains("REGION"), "{text}");
    assert!(text.contains("bbb-1: keep (enabled)\n"), "{text}");
}

/// Runs deploy/autoscale/scalelite-autoscale.py against `app`; its stdout.
async fn hook(app: &TestApp, args: &[&str], env: &[(&str, &str)]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/autoscale/scalelite-autoscale.py");
    let output = tokio::process::Command::new("python3")
        .arg(script)
        .args(args)
        .env("SCALELITE_URL", app.origin())
        .env("SCALELITE_SECRET", scalelite_tests::LB_SECRET)
        .env("DRAIN_DEADLINE", "10m")
        .envs(env.iter().copied())
        .output()
        .await
        .expect("python3 runs the hook (scripts/test installs it)");
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

#[tokio::test]
async fn the_reference_hook_drains_an_idle_server_deletes_it_once_drained_and_scales_out_when_full() {
    let app = TestApp::builder().servers(3).env("CAPACITY_PER_SERVER", "100").start().await;
    app.poll().await;

    // An idle pool: the dry run names the server it would drain, changes nothing.
    assert_eq!(hook(&app, &["--dry-run"], &[]).await, "drain bbb-1 (untagged)\n");
    assert_eq!(app.server("bbb-1").await.unwrap().state.as_deref(), Some("enabled"));
    // For real: drained with the deadline, one at a time.
    assert_eq!(hook(&app, &[], &[]).await, "drain bbb-1 (untagged)\n");
    assert_eq!(app.server("bbb-1").await.unwrap().state.as_deref(), Some("cordoned"));
    let report = capacity(&app).await;
    assert!(server(&report, "bbb-1")["drain"]["seconds_left"].as_u64().unwrap() > 590);
    assert_eq!(hook(&app, &[], &[]).await, "");

    // Once the poller found it empty (disabled), the hook deletes the
    // machine (DELETE_COMMAND with id and URL), then the pool entry.
    app.poll().await;
    let dir = tempfile::tempdir().unwrap();
    let delete = command(dir.path(), "delete-machine", "echo \"$1 $2\" > \"$(dirname \"$0\")/deleted\"");
    let out = hook(&app, &[], &[("DELETE_COMMAND", &delete)]).await;
    // Still idle: the next server is drained (MIN_SERVERS=1 keeps one).
    assert_eq!(out, "delete bbb-1 (untagged)\ndrain bbb-2 (untagged)\n");
    assert!(app.server("bbb-1").await.is_none());
    let machine = std::fs::read_to_string(dir.path().join("deleted")).unwrap();
    assert_eq!(machine.trim(), format!("bbb-1 {}", app.fleet[0].url()));
    assert!(app.fleet[0].calls_to("getRecordings").iter().all(|c| c.param("state") == Some("processing,processed")));

    // Classes fill the last server: the drain is cancelled first.
    for id in ["a", "b"] {
        create(&app, id).await;
        assert_eq!(app.placed_on(id).await, Some(2));
        assert!(app.fleet[2].add_attendees(id, 90));
    }
    app.poll().await;
    assert_eq!(hook(&app, &[], &[]).await, "undrain bbb-2 (untagged)\n");
    assert_eq!(app.server("bbb-2").await.unwrap().state.as_deref(), Some("enabled"));
    // Back in the pool after its next poll. Full again: less than 20 %
    // headroom left, the hook asks for a server.
    app.poll().await;
    create(&app, "c").await;
    assert_eq!(app.placed_on("c").await, Some(1));
    assert!(app.fleet[1].add_attendees("c", 90));
    app.poll().await;
    let start = command(dir.path(), "start-machine", "echo \"starting a server tagged [$1]\"");
    let out = hook(&app, &[], &[("SCALE_OUT_COMMAND", &start)]).await;
    assert_eq!(out, "scale-out (untagged)\nstarting a server tagged []\n");
}

#[tokio::test]
async fn the_reference_hook_scales_per_region_out_where_full_and_deletes_a_drained_server_elsewhere() {
    let app = TestApp::builder().servers(4).env("CAPACITY_PER_SERVER", "100").start().await;
    // eu: bbb-1 and bbb-2 (both LiveKit); us: bbb-3 and bbb-4.
    for (id, region) in [("bbb-1", "eu"), ("bbb-2", "eu"), ("bbb-3", "us"), ("bbb-4", "us")] {
        let mut args = vec!["servers", "update", id, "--region", region];
        if region == "eu" {
            args.extend(["--capabilities", "livekit"]);
        }
        admin(&app, &args).await.ok();
    }
    app.poll().await;

    // Idle: per tag the pool is one group, one drain; per region one in each.
    assert_eq!(hook(&app, &["--dry-run"], &[]).await, "drain bbb-1 (untagged)\n");
    assert_eq!(
        hook(&app, &["--dry-run", "--by", "region"], &[]).await,
        "drain bbb-1 (region eu)\ndrain bbb-3 (region us)\n"
    );
    let livekit = [("AUTOSCALE_BY", "capability"), ("AUTOSCALE_CAPABILITIES", "livekit")];
    assert_eq!(hook(&app, &["--dry-run"], &livekit).await, "drain bbb-1 (capability livekit)\n");
    // Every capability: bbb-1 offers both; drained once, which its other group waits for.
    let every = [("AUTOSCALE_BY", "capability")];
    assert_eq!(hook(&app, &["--dry-run"], &every).await, "drain bbb-1 (capability bbb-3.0)\n");
    // For real, us only.
    let us_only = [("AUTOSCALE_BY", "region"), ("AUTOSCALE_REGIONS", "us")];
    assert_eq!(hook(&app, &[], &us_only).await, "drain bbb-3 (region us)\n");
    assert_eq!(app.server("bbb-3").await.unwrap().state.as_deref(), Some("cordoned"));
    assert_eq!(app.server("bbb-1").await.unwrap().state.as_deref(), Some("enabled"));
    app.poll().await;

    // Classes fill eu while us is idle: eu gets a server, us loses the drained one.
    // (Polled after each, so the second goes to the other eu server.)
    let mut used = Vec::new();
    for id in ["eu-a", "eu-b"] {
        let on = create_in(&app, id, "eu").await;
        assert!(on < 2 && !used.contains(&on), "{id} on bbb-{}", on + 1);
        used.push(on);
        assert!(app.fleet[on].add_attendees(id, 90));
        app.poll().await;
    }
    let report = capacity(&app).await;
    assert!(group(&report, "regions", "region", "eu".into())["headroom_ratio"].as_f64().unwrap() < 0.2, "{report}");
    assert_eq!(server(&report, "bbb-3")["safe_to_remove"], true);
    let dir = tempfile::tempdir().unwrap();
    let delete = command(dir.path(), "delete-machine", "echo \"$1 $2\" > \"$(dirname \"$0\")/deleted\"");
    let start = command(dir.path(), "start-machine", "echo \"starting a server in [$1] by $AUTOSCALE_BY\"");
    let env = [("AUTOSCALE_BY", "region"), ("DELETE_COMMAND", delete.as_str()), ("SCALE_OUT_COMMAND", start.as_str())];
    let out = hook(&app, &[], &env).await;
    assert_eq!(out, "scale-out (region eu)\nstarting a server in [eu] by region\ndelete bbb-3 (region us)\n");
    assert!(app.server("bbb-3").await.is_none());
    let machine = std::fs::read_to_string(dir.path().join("deleted")).unwrap();
    assert_eq!(machine.trim(), format!("bbb-3 {}", app.fleet[2].url()));
    // The last us server stays (MIN_SERVERS), eu servers are untouched.
    for id in ["bbb-1", "bbb-2", "bbb-4"] {
        assert_eq!(app.server(id).await.unwrap().state.as_deref(), Some("enabled"), "{id}");
    }
}

/// An executable shell script `name` in `dir` running `body`; its path.
fn command(dir: &std::path::Path, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}
