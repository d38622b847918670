//! Drains with notice (`servers drain`, `drainServer`): the server is
//! cordoned, its meetings are warned in chat through `sendChatMessage` at
//! the start and every `DRAIN_NOTICE_INTERVAL` (by whichever poller holds
//! the lease), ended at the deadline, and the drain shows in `servers
//! drains`, `status`, `getDrains` and the poller's metrics.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use scalelite_poller::PollerMetrics;
use scalelite_poller::metrics::ServerLabel;
use scalelite_tests::{ApiClient, Reply, TestApp, eventually_with, server_id};
use serde_json::{Value, json};

use crate::support::{Run, admin_with, create};

/// Long enough for any await below on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);

async fn admin(app: &TestApp, args: &[&str]) -> Run {
    admin_with(&app.state.config, args, "").await
}

/// An app whose drains notice every 200 ms.
async fn app() -> TestApp {
    TestApp::builder().env("DRAIN_NOTICE_INTERVAL", "0.2").start().await
}

/// Creates `id` with three participants, then polls (so the poller knows
/// each server's BBB version); the index of its fake server.
async fn class(app: &TestApp, id: &str) -> usize {
    create(app, id).await;
    let on = app.placed_on(id).await.unwrap();
    assert!(app.fleet[on].add_attendees(id, 3));
    app.poll().await;
    on
}

/// The chat messages the fake server received for `meeting`.
fn chat(app: &TestApp, on: usize, meeting: &str) -> Vec<String> {
    app.fleet[on].meeting(meeting).map(|m| m.chat.into_iter().map(|(_, text)| text).collect()).unwrap_or_default()
}

fn management_url(client: &ApiClient, call: &str, params: &[(&str, &str)]) -> String {
    let query = client.query(params);
    let checksum = client.checksum(call, &query);
    let sep = if query.is_empty() { "" } else { "&" };
    format!("/scalelite/api/{call}?{query}{sep}checksum={checksum}")
}

async fn management_get(app: &TestApp, call: &str, params: &[(&str, &str)]) -> Reply {
    let client = app.client();
    client.send(Method::GET, &management_url(&client, call, params), None, Bytes::new()).await.unwrap()
}

async fn management_post(app: &TestApp, call: &str, params: &[(&str, &str)], body: &Value) -> Reply {
    let client = app.client();
    let body = Bytes::from(serde_json::to_vec(body).unwrap());
    client.send(Method::POST, &management_url(&client, call, params), Some("application/json"), body).await.unwrap()
}

fn json_of(reply: &Reply) -> Value {
    serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {}", reply.body))
}

#[tokio::test]
async fn a_drain_warns_every_meeting_at_intervals_and_ends_them_at_the_deadline() {
    let app = app().await;
    let on = class(&app, "class-a").await;
    let id = server_id(on);
    create(&app, "class-b").await;
    let other = app.placed_on("class-b").await.unwrap();
    assert_ne!(other, on);
    app.poll().await;

    let run =
        admin(&app, &["servers", "drain", &id, "--deadline", "1h", "--message", "Back at 14:00.", "--json"]).await.ok();
    let status = run.json();
    assert_eq!(status["state"], "draining");
    assert_eq!(status["meetings"], 1);
    assert_eq!(status["notices"], "chat");
    assert_eq!(status["notices_sent"], 1);
    assert_eq!(status["message"], "Back at 14:00.");
    assert!(status["seconds_left"].as_u64().unwrap() > 3590);

    // Cordoned, so Ruby Scalelite and new creates see it as draining; the
    // first notice went out at once, with the time left and the message.
    assert_eq!(app.server(&id).await.unwrap().state.as_deref(), Some("cordoned"));
    let first = chat(&app, on, "class-a");
    assert_eq!(first.len(), 1);
    assert!(first[0].contains("will be ended in 60 minutes") && first[0].ends_with("Back at 14:00."), "{first:?}");
    assert!(chat(&app, other, "class-b").is_empty(), "meetings elsewhere are not warned");
    create(&app, "class-c").await;
    assert_ne!(app.placed_on("class-c").await, Some(on));
    // Joins to the running meeting still work.
    let reply = app.client().get("join", &[("meetingID", "class-a"), ("fullName", "Late"), ("role", "viewer")]).await;
    assert_eq!(reply.status, 302, "{}", reply.body);

    // The poller repeats the notice once the interval has passed (each
    // round here is a new poller: the drain lives in the store).
    eventually_with(PATIENCE, "a second notice", || async {
        app.poll().await;
        chat(&app, on, "class-a").len() >= 2
    })
    .await;

    // Shorten the deadline: the meeting is warned again and then ended.
    admin(&app, &["servers", "drain", &id, "--deadline", "1s"]).await.ok();
    assert!(chat(&app, on, "class-a").last().unwrap().contains("will be ended in 1 second"));
    let metrics = Arc::new(PollerMetrics::new());
    eventually_with(PATIENCE, "the meeting ended at the deadline", || async {
        app.poller(Arc::clone(&metrics)).poll_once().await.unwrap();
        app.fleet[on].ended_meetings().iter().any(|m| m.meeting_id == "class-a" && m.forcibly_ended)
    })
    .await;
    assert!(app.meeting("class-a").await.is_none());
    assert_eq!(metrics.drain_meetings_ended.get(), 1);
    assert!(app.fleet[other].has_meeting("class-b"), "other servers are left alone");

    // Empty, the poller disables it and the drain is finished.
    eventually_with(PATIENCE, "the server drained", || async {
        app.poller(Arc::clone(&metrics)).poll_once().await.unwrap();
        app.server(&id).await.unwrap().state.as_deref() == Some("disabled")
    })
    .await;
    app.poller(Arc::clone(&metrics)).poll_once().await.unwrap();
    let label = ServerLabel { server: id.clone() };
    assert_eq!(metrics.draining.get_or_create(&label).get(), 0);
    let drains = admin(&app, &["servers", "drains", "--json"]).await.ok().json();
    assert_eq!(drains.as_array().unwrap().len(), 1);
    assert_eq!(drains[0]["server_id"], id.as_str());
    assert_eq!(drains[0]["state"], "drained");
    assert_eq!(drains[0]["meetings_ended"], 1);
    assert!(drains[0]["finished_at"].is_string());
    let text = admin(&app, &["servers", "drains"]).await.ok().out;
    assert!(text.contains(&format!("{id}: drained")), "{text}");

    // `status` keeps Scalelite's table and lists the drain below it.
    let status = admin(&app, &["status"]).await.ok().out;
    assert!(status.contains("DRAINS") && status.contains(&format!("{id}: drained")), "{status}");
    let rows = admin(&app, &["status", "--json"]).await.ok().json();
    let row = rows.as_array().unwrap().iter().find(|r| r["drain"]["server_id"] == id.as_str()).unwrap();
    assert_eq!(row["state"], "disabled");

    // Enabling it again ends the drain.
    admin(&app, &["servers", "enable", &id]).await.ok();
    assert_eq!(admin(&app, &["servers", "drains", "--json"]).await.ok().json(), json!([]));
}

#[tokio::test]
async fn the_poller_reports_a_drain_in_progress_in_its_metrics() {
    let app = app().await;
    let on = class(&app, "m").await;
    let id = server_id(on);
    admin(&app, &["servers", "drain", &id, "--deadline", "2h"]).await.ok();
    let metrics = Arc::new(PollerMetrics::new());
    app.poller(Arc::clone(&metrics)).poll_once().await.unwrap();
    let label = ServerLabel { server: id.clone() };
    assert_eq!(metrics.draining.get_or_create(&label).get(), 1);
    let left = metrics.drain_seconds_left.get_or_create(&label).get();
    assert!((7000..=7200).contains(&left), "{left}");
    // A cancelled drain leaves no series behind.
    admin(&app, &["servers", "enable", &id]).await.ok();
    app.poller(Arc::clone(&metrics)).poll_once().await.unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(!text.contains("server_draining{"), "{text}");
}

#[tokio::test]
async fn without_a_deadline_the_drain_waits_for_the_meetings_to_end() {
    let app = app().await;
    let on = class(&app, "seminar").await;
    let id = server_id(on);
    let status = admin(&app, &["servers", "drain", &id, "--json"]).await.ok().json();
    assert_eq!((status["deadline"].clone(), status["seconds_left"].clone()), (Value::Null, Value::Null));
    let notice = chat(&app, on, "seminar");
    assert_eq!(notice.len(), 1);
    assert!(notice[0].contains("please end this meeting when you can"), "{notice:?}");
    // Rounds go by: reminders, never an end.
    eventually_with(PATIENCE, "a reminder", || async {
        app.poll().await;
        chat(&app, on, "seminar").len() >= 2
    })
    .await;
    assert_eq!(app.fleet[on].call_count("end"), 0);
    assert!(app.fleet[on].has_meeting("seminar"));

    // The class ends by itself: the server is drained.
    app.fleet[on].remove_meeting("seminar");
    app.age_meeting("seminar", Duration::from_secs(3600)).await;
    eventually_with(PATIENCE, "the server drained", || async {
        app.poll().await;
        let drains = admin(&app, &["servers", "drains", "--json"]).await.ok().json();
        drains[0]["state"] == "drained"
    })
    .await;
    assert_eq!(app.server(&id).await.unwrap().state.as_deref(), Some("disabled"));
    assert_eq!(app.fleet[on].call_count("end"), 0);
}

#[tokio::test]
async fn notices_start_once_the_poller_knows_the_bbb_version() {
    let app = app().await;
    create(&app, "early").await;
    let on = app.placed_on("early").await.unwrap();
    assert!(app.fleet[on].add_attendees("early", 2));
    let id = server_id(on);
    // Never polled: its version is not known yet.
    let status = admin(&app, &["servers", "drain", &id, "--json"]).await.ok().json();
    assert_eq!((status["notices"].as_str(), status["notices_sent"].as_u64()), (Some("unknown"), Some(0)));
    let text = admin(&app, &["servers", "drains"]).await.ok().out;
    assert!(text.contains("chat notices once the poller knows its BBB version"), "{text}");
    app.poll().await;
    assert_eq!(chat(&app, on, "early").len(), 1);
    assert_eq!(admin(&app, &["servers", "drains", "--json"]).await.ok().json()[0]["notices"], "chat");
}

#[tokio::test]
async fn a_server_older_than_bbb_3_is_drained_without_notices() {
    let app = app().await;
    let on = class(&app, "old").await;
    let id = server_id(on);
    app.fleet[on].set_bbb_version("2.7.3");
    app.poll().await;
    let status = admin(&app, &["servers", "drain", &id, "--deadline", "1s", "--json"]).await.ok().json();
    assert_eq!(status["notices"], "none");
    assert_eq!(status["notices_sent"], 0);
    let text = admin(&app, &["servers", "drains"]).await.ok().out;
    assert!(text.contains("no chat notices (BBB < 3.0)"), "{text}");
    eventually_with(PATIENCE, "the meeting ended at the deadline", || async {
        app.poll().await;
        !app.fleet[on].has_meeting("old")
    })
    .await;
    assert_eq!(app.fleet[on].call_count("sendChatMessage"), 0);
    // The log says it once per drain: the record remembers it was said.
    let drains = app.store().drains().await.unwrap();
    assert!(drains[0].no_chat_logged);
}

#[tokio::test]
async fn drains_through_the_management_api() {
    let app = app().await;
    let on = class(&app, "api-class").await;
    let id = server_id(on);

    let reply = management_post(
        &app,
        "drainServer",
        &[("id", &id)],
        &json!({"server": {"deadline": "30m", "message": "Wartung"}}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.content_type(), Some("application/json; charset=utf-8"));
    let status = json_of(&reply);
    assert_eq!((status["state"].as_str(), status["notices_sent"].as_u64()), (Some("draining"), Some(1)));
    assert!(chat(&app, on, "api-class")[0].ends_with("Wartung"));
    let info = json_of(&management_get(&app, "getServerInfo", &[("id", &id)]).await);
    assert_eq!(info["state"], "cordoned");
    let drains = json_of(&management_get(&app, "getDrains", &[]).await);
    assert_eq!(drains[0]["server_id"], id.as_str());
    assert_eq!(drains[0]["message"], "Wartung");

    // Bad input changes nothing.
    let reply = management_post(&app, "drainServer", &[("id", &id)], &json!({"deadline": "30"})).await;
    assert_eq!(reply.status, 400);
    assert!(json_of(&reply)["error"].as_str().unwrap().contains("needs a unit"));
    let reply = management_post(&app, "drainServer", &[("id", &id)], &json!({"message": "x".repeat(501)})).await;
    assert_eq!(reply.status, 400);
    let reply = management_post(&app, "drainServer", &[("id", "nope")], &json!({})).await;
    assert_eq!(reply.status, 404);
    assert_eq!(json_of(&management_get(&app, "getDrains", &[]).await)[0]["message"], "Wartung");

    // updateServer enable cancels it.
    let reply = management_post(&app, "updateServer", &[("id", &id)], &json!({"server": {"state": "enable"}})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(json_of(&management_get(&app, "getDrains", &[]).await), json!([]));
    // A wrong checksum is refused like every management call.
    let reply = app.client().raw_get("/scalelite/api/getDrains?checksum=0000").await;
    assert_eq!(reply.message_key().as_deref(), Some("checksumError"));
}

#[tokio::test]
async fn removing_a_draining_server_forgets_its_drain() {
    let app = app().await;
    let on = class(&app, "gone").await;
    let id = server_id(on);
    admin(&app, &["servers", "drain", &id]).await.ok();
    admin(&app, &["servers", "remove", "--yes", &id]).await.ok();
    assert_eq!(admin(&app, &["servers", "drains", "--json"]).await.ok().json(), json!([]));
    // Removed behind our back (as Ruby's `servers:remove` does): the poller
    // drops the drain.
    let on = class(&app, "gone-too").await;
    let id = server_id(on);
    admin(&app, &["servers", "drain", &id]).await.ok();
    assert!(app.store().delete_server(&scalelite_core::ServerId::from(id.as_str())).await.unwrap());
    app.poll().await;
    assert_eq!(admin(&app, &["servers", "drains", "--json"]).await.ok().json(), json!([]));
}

#[tokio::test]
async fn draining_an_unknown_server_or_with_a_bad_deadline_fails() {
    let app = app().await;
    admin(&app, &["servers", "drain", "nope"]).await.fails_with("ERROR: No server found with id: nope");
    let run = admin(&app, &["servers", "drain", "bbb-1", "--deadline", "soon"]).await;
    assert_eq!(run.code, 1);
    assert!(run.err.starts_with("ERROR: deadline \"soon\""), "{}", run.err);
    admin(&app, &["servers", "drain", "bbb-1", "--deadline", "30"])
        .await
        .fails_with("ERROR: deadline \"30\" needs a unit, e.g. 30m or 30s");
    assert_eq!(app.server("bbb-1").await.unwrap().state.as_deref(), Some("enabled"));
}

/// What Ruby Scalelite sharing the Redis sees of a drain.
mod redis_only {
    use scalelite_tests::{TestApp, TestBackend, server_id};

    use super::{admin, class};

    #[tokio::test]
    async fn ruby_sees_a_draining_server_as_cordoned_and_the_drain_in_a_key_of_its_own() {
        let app = TestApp::builder().backend(TestBackend::Redis).env("DRAIN_NOTICE_INTERVAL", "0.2").start().await;
        let on = class(&app, "m").await;
        let id = server_id(on);
        let before = app.server_record(&id).await;
        admin(&app, &["servers", "drain", &id, "--deadline", "30m", "--message", "bye"]).await.ok();

        // The server hash changes exactly as for `servers:cordon`: the
        // state field, nothing Ruby does not know.
        let after = app.server_record(&id).await;
        let mut expected = before.clone();
        expected.insert("state".into(), "cordoned".into());
        assert_eq!(after, expected);
        let redis = app.redis();
        let cordoned = redis.cmd(&["ZRANGE", &app.key("cordoned_server_load"), "0", "-1"]).await.as_vec();
        assert_eq!(cordoned, std::slice::from_ref(&id));
        let pool = redis.cmd(&["ZRANGE", &app.key("server_load"), "0", "-1"]).await.as_vec();
        assert!(!pool.contains(&id));
        // The drain itself: one field of `server_drains`, a JSON record.
        let drains = redis.cmd(&["HGETALL", &app.key("server_drains")]).await.as_map();
        let record: serde_json::Value = serde_json::from_str(&drains[&id]).unwrap();
        assert_eq!(record["message"], "bye");
        assert_eq!(record["notices_sent"], 1);

        // A record that is not ours (junk written by hand) is ignored,
        // by the poller and the admin alike.
        redis.cmd(&["HSET", &app.key("server_drains"), "junk", "{not json"]).await;
        app.poll().await;
        let listed = admin(&app, &["servers", "drains", "--json"]).await.ok().json();
        assert_eq!(listed.as_array().unwrap().len(), 1);
        assert_eq!(listed[0]["server_id"], id.as_str());
        redis.cmd(&["HDEL", &app.key("server_drains"), "junk"]).await;

        // Ruby's `servers:enable` (state field and sets) ends the drain at
        // the next round; Ruby's `servers:remove` would too.
        redis.cmd(&["HSET", &app.key(&format!("server:{id}")), "state", "enabled"]).await;
        app.poll().await;
        let drains = redis.cmd(&["HGETALL", &app.key("server_drains")]).await.as_map();
        assert!(drains.is_empty(), "{drains:?}");
    }
}
