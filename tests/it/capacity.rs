//! The autoscaler interface: `GET /scalelite/api/capacity` and
//! `scalelite-admin capacity --json`: capacity and headroom per tag, and
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

/// An executable shell script `name` in `dir` running `body`; its path.
fn command(dir: &std::path::Path, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}
