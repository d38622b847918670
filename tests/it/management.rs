//! The management API at `/scalelite/api/*`: shapes, status codes, auth.

use bytes::Bytes;
use http::Method;
use scalelite_tests::{ApiClient, LB_SECRET, MeetingSeed, Mode, Reply, TestApp};
use serde_json::{Value, json};

use crate::support::assert_failed;

/// Signs `call` over `params` (the query only, as Scalelite's clients do).
fn url(client: &ApiClient, call: &str, params: &[(&str, &str)]) -> String {
    let query = client.query(params);
    let checksum = client.checksum(call, &query);
    let sep = if query.is_empty() { "" } else { "&" };
    format!("/scalelite/api/{call}?{query}{sep}checksum={checksum}")
}

async fn get(client: &ApiClient, call: &str, params: &[(&str, &str)]) -> Reply {
    client.send(Method::GET, &url(client, call, params), None, Bytes::new()).await.unwrap()
}

async fn post(client: &ApiClient, call: &str, params: &[(&str, &str)], body: &Value) -> Reply {
    let body = Bytes::from(serde_json::to_vec(body).unwrap());
    client.send(Method::POST, &url(client, call, params), Some("application/json"), body).await.unwrap()
}

fn json_of(reply: &Reply) -> Value {
    assert_eq!(reply.content_type(), Some("application/json; charset=utf-8"), "{}", reply.body);
    serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {}", reply.body))
}

#[tokio::test]
async fn servers_lifecycle_through_the_api() {
    let app = TestApp::builder().unseeded().start().await;
    let client = app.client();
    let reply = get(&client, "getServers", &[]).await;
    assert_eq!(reply.status, 404);
    assert_eq!(json_of(&reply), json!({"error": "No servers are configured"}));

    // Add with the `server` wrapper, and without (Rails parameter wrapping).
    let reply = post(&client, "addServer", &[], &json!({"server": {"url": app.fleet[0].url(), "secret": app.fleet[0].secret(), "load_multiplier": 1.5, "tag": "gpu"}})).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let added = json_of(&reply);
    let id = added["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "a UUID");
    let mut redacted = added.clone();
    redacted["id"] = json!("<uuid>");
    redacted["url"] = json!("<url>");
    redacted["secret"] = json!("<secret>");
    insta::assert_snapshot!(redacted.to_string(), @r#"{"id":"<uuid>","url":"<url>","secret":"<secret>","tag":"gpu","bbb_version":"","state":"disabled","load":"unavailable","load_multiplier":"1.5","online":"offline","region":"","capabilities":[],"automatic_capabilities":[]}"#);
    let reply = post(
        &client,
        "addServer",
        &[],
        &json!({"url": app.fleet[1].url(), "secret": app.fleet[1].secret(), "load_multiplier": 0, "tag": ""}),
    )
    .await;
    assert_eq!(reply.status, 201);
    let second = json_of(&reply);
    assert_eq!((second["load_multiplier"].as_str(), second["tag"].as_str()), (Some("1.0"), Some("")));
    // Stored as Scalelite stores a new server: disabled (no state), offline.
    let server = app.server(&id).await.unwrap();
    assert_eq!((server.load_multiplier.as_deref(), server.tag.as_deref()), (Some("1.5"), Some("gpu")));
    assert_eq!((server.online, server.state.as_deref(), server.load), (false, None, None));
    assert_eq!(server.url, app.fleet[0].url());

    let reply = post(&client, "addServer", &[], &json!({"server": {"url": "https://x/bigbluebutton/api"}})).await;
    assert_eq!((reply.status, json_of(&reply)), (400, json!({"error": "Server needs a URL and a secret"})));

    // Enable, poll, and see it online with its load.
    let reply = post(&client, "updateServer", &[("id", &id)], &json!({"server": {"state": "enable"}})).await;
    assert_eq!(json_of(&reply)["state"], "enabled");
    app.poll().await;
    let info = json_of(&get(&client, "getServerInfo", &[("id", &id)]).await);
    assert_eq!((info["online"].as_str(), info["load"].as_f64()), (Some("online"), Some(0.0)));
    assert_eq!(info["bbb_version"], "3.0.4");
    let all = json_of(&get(&client, "getServers", &[]).await);
    assert_eq!(all.as_array().unwrap().len(), 2);

    // Invalid updates change nothing.
    let reply =
        post(&client, "updateServer", &[("id", &id)], &json!({"server": {"state": "melt", "secret": "new"}})).await;
    assert_eq!((reply.status, json_of(&reply)), (400, json!({"error": "Invalid state parameter: melt"})));
    let reply = post(&client, "updateServer", &[("id", &id)], &json!({"server": {"load_multiplier": "0"}})).await;
    assert_eq!(json_of(&reply), json!({"error": "Load-multiplier must be a non-zero number"}));
    // Without a `server` object (or with an empty one): Rails' ParameterMissing, rescued by the action.
    let missing = json!({"error": "param is missing or the value is empty: server"});
    for body in [json!({}), json!({"server": {}})] {
        let reply = post(&client, "updateServer", &[("id", &id)], &body).await;
        assert_eq!((reply.status, json_of(&reply)), (400, missing.clone()), "{body}");
    }
    assert_eq!(app.server(&id).await.unwrap().secret.expose(), app.fleet[0].secret());
    // Cordon, multiplier, tag removal, secret.
    let reply = post(
        &client,
        "updateServer",
        &[],
        &json!({"id": id, "server": {"state": "cordon", "load_multiplier": 2, "tag": ""}}),
    )
    .await;
    let updated = json_of(&reply);
    assert_eq!(
        (updated["state"].as_str(), updated["load_multiplier"].as_str(), updated["tag"].as_str()),
        (Some("cordoned"), Some("2.0"), Some(""))
    );
    let server = app.server(&id).await.unwrap();
    assert_eq!((server.state.as_deref(), server.load), (Some("cordoned"), Some(0.0)), "its load is kept");

    let reply = get(&client, "getServerInfo", &[("id", "nope")]).await;
    assert_eq!((reply.status, json_of(&reply)), (404, json!({"error": "Couldn't find server with id=nope"})));
    let reply = post(&client, "deleteServer", &[("id", &id)], &json!({})).await;
    assert_eq!(json_of(&reply), json!({"success": format!("Server id={id} was destroyed")}));
    assert_eq!(app.server(&id).await, None);
    let reply = post(&client, "deleteServer", &[("id", &id)], &json!({})).await;
    assert_eq!(reply.status, 404);
}

#[tokio::test]
async fn panic_clears_meetings_and_disables_even_when_the_server_is_down() {
    let app = TestApp::start().await;
    let client = app.client();
    app.fleet[0].seed_meeting(MeetingSeed::new("m1").passwords("ap", "mp"));
    app.seed_meeting("m1", "bbb-1", "mp", "100000001").await;
    app.seed_meeting("m2", "bbb-1", "mp", "100000002").await;
    let reply = post(&client, "panicServer", &[("id", "bbb-1")], &json!({"keep_state": true})).await;
    assert_eq!(
        json_of(&reply),
        json!({"success": "Server id=bbb-1 has been disabled and the meetings have been destroyed"})
    );
    assert_eq!((app.meeting("m1").await, app.meeting("m2").await), (None, None));
    assert_eq!(app.fleet[0].call_count("end"), 2);
    assert!(!app.fleet[0].has_meeting("m1"));
    assert_eq!(app.server("bbb-1").await.unwrap().state.as_deref(), Some("enabled"), "keep_state");

    // A dead server is panicked too; "false" means false here.
    app.seed_meeting("m3", "bbb-2", "mp", "100000003").await;
    app.fleet[1].set_mode(Mode::Down);
    let reply = post(&client, "panicServer", &[("id", "bbb-2")], &json!({"keep_state": "false"})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(app.server("bbb-2").await.unwrap().state.as_deref(), Some("disabled"));
    assert_eq!(app.meeting("m3").await, None);
    assert_eq!(get(&client, "getServerInfo", &[("id", "bbb-2")]).await.status, 200);
    let reply = post(&client, "panicServer", &[("id", "nope")], &json!({})).await;
    assert_eq!(reply.status, 404);
}

/// `skip_end_calls` (the rake task's third argument) forgets the meetings
/// without calling the server, which stays unaware and keeps them running.
#[tokio::test]
async fn panic_can_skip_the_end_calls() {
    let app = TestApp::start().await;
    let client = app.client();
    for (i, body) in [json!({"skip_end_calls": true}), json!({"server": {"skip_end_calls": "true", "keep_state": "1"}})]
        .into_iter()
        .enumerate()
    {
        let id = format!("skip-{i}");
        app.fleet[0].seed_meeting(MeetingSeed::new(&id).passwords("ap", "mp"));
        app.seed_meeting(&id, "bbb-1", "mp", &format!("20000000{i}")).await;
        let reply = post(&client, "panicServer", &[("id", "bbb-1")], &body).await;
        assert_eq!(reply.status, 200, "{body}: {}", reply.body);
        assert_eq!(app.meeting(&id).await, None, "{body}: forgotten by the balancer");
        assert!(app.fleet[0].has_meeting(&id), "{body}: still running on the server");
        assert_eq!(app.fleet[0].call_count("end"), 0, "{body}: no end call");
    }
    // The first disabled it, the second kept that state.
    assert_eq!(app.server("bbb-1").await.unwrap().state.as_deref(), Some("disabled"));
    // "false" sends the end calls.
    app.seed_meeting("ended", "bbb-2", "mp", "300000001").await;
    app.fleet[1].seed_meeting(MeetingSeed::new("ended").passwords("ap", "mp"));
    let reply = post(&client, "panicServer", &[("id", "bbb-2")], &json!({"skip_end_calls": "false"})).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(app.fleet[1].call_count("end"), 1);
    assert!(!app.fleet[1].has_meeting("ended"));
}

#[tokio::test]
async fn auth_content_type_and_suffix() {
    let app = TestApp::start().await;
    let client = app.client();
    // Checksum and content-type failures are XML, as in Scalelite.
    let bad = client.clone().with_secret("wrong");
    assert_failed(&get(&bad, "getServers", &[]).await, "checksumError");
    let target = url(&client, "addServer", &[]);
    let reply = client
        .send(Method::POST, &target, Some("application/x-www-form-urlencoded"), Bytes::from_static(b"url=x"))
        .await
        .unwrap();
    assert_failed(&reply, "unsupportedContentType");
    // A call signed for another call name fails.
    let forged = url(&client, "getServers", &[]).replace("getServers", "getServerInfo");
    assert_failed(&client.send(Method::GET, &forged, None, Bytes::new()).await.unwrap(), "checksumError");
    // `.json` suffix, and the wrong method.
    let suffixed = url(&client, "getServers", &[]).replace("/getServers?", "/getServers.json?");
    assert_eq!(client.send(Method::GET, &suffixed, None, Bytes::new()).await.unwrap().status, 200);
    let reply = client.send(Method::POST, &url(&client, "getServers", &[]), None, Bytes::new()).await.unwrap();
    assert_failed(&reply, "unsupportedRequest");
    // Tenants: 412 after the checksum while multitenancy is off.
    let reply = get(&client, "getTenants", &[]).await;
    assert_eq!((reply.status, json_of(&reply)), (412, json!({"message": "Multitenancy is disabled"})));
    assert_failed(&get(&bad, "getTenants", &[]).await, "checksumError");
    let reply = post(&client, "addTenant", &[], &json!({"tenant": {"name": "a", "secrets": "s"}})).await;
    assert_eq!(reply.status, 412);
}

#[tokio::test]
async fn a_separate_management_secret_keeps_front_ends_out() {
    let app = TestApp::builder().env("MANAGEMENT_API_SECRETS", "ops-secret-1:ops-secret-2").start().await;
    let front_end = app.client();
    assert_failed(&get(&front_end, "getServers", &[]).await, "checksumError");
    let ops = ApiClient::new(app.api_url(), "ops-secret-2");
    assert_eq!(get(&ops, "getServers", &[]).await.status, 200);
    // The BBB API still takes the front-end secret, not the operators'.
    assert!(front_end.get("isMeetingRunning", &[("meetingID", "m")]).await.is_success());
    assert_failed(&ops.get("isMeetingRunning", &[("meetingID", "m")]).await, "checksumError");
}

#[tokio::test]
async fn bodies_can_be_signed_and_must_be_when_required() {
    let app = TestApp::builder().unseeded().env("MANAGEMENT_API_SIGNED_BODY", "true").start().await;
    let client = ApiClient::new(app.api_url(), LB_SECRET);
    let body = serde_json::to_string(&json!({"server": {"url": app.fleet[0].url(), "secret": "s"}})).unwrap();
    // Scalelite-style: only the (empty) query signed. Refused in this mode.
    let target = url(&client, "addServer", &[]);
    let reply = client.send(Method::POST, &target, Some("application/json"), Bytes::from(body.clone())).await.unwrap();
    assert_failed(&reply, "checksumError");
    // Signed over query + body.
    let target = format!("/scalelite/api/addServer?checksum={}", client.checksum("addServer", &body));
    let reply = client.send(Method::POST, &target, Some("application/json"), Bytes::from(body.clone())).await.unwrap();
    assert_eq!(reply.status, 201, "{}", reply.body);
    // Bodiless GETs are unaffected.
    assert_eq!(get(&client, "getServers", &[]).await.status, 200);
    // By default both forms are accepted (Scalelite's clients sign only the query).
    let app = TestApp::builder().unseeded().start().await;
    let client = ApiClient::new(app.api_url(), LB_SECRET);
    let target = format!("/scalelite/api/addServer?checksum={}", client.checksum("addServer", &body));
    let reply = client.send(Method::POST, &target, Some("application/json"), Bytes::from(body)).await.unwrap();
    assert_eq!(reply.status, 201, "{}", reply.body);
}

/// The operator's story of the issue, through the management API, with the
/// poller's metrics reflecting each change.
#[tokio::test]
async fn operator_story_through_the_management_api_with_metrics() {
    use std::sync::Arc;

    let app = TestApp::builder().unseeded().env("RESPONSE_TIMEOUT", "0.5").start().await;
    let client = app.client();
    let metrics = Arc::new(scalelite_poller::PollerMetrics::new());
    let poller = app.poller(Arc::clone(&metrics));
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let metric = |series: String| {
        let text = scalelite_telemetry::encode(&registry);
        text.lines().find_map(|l| l.strip_prefix(series.as_str()).and_then(|v| v.trim().parse::<f64>().ok()))
    };

    // Add three servers and enable them.
    let mut ids = Vec::new();
    for server in app.fleet.iter() {
        let reply =
            post(&client, "addServer", &[], &json!({"server": {"url": server.url(), "secret": server.secret()}})).await;
        ids.push(json_of(&reply)["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let reply = post(&client, "updateServer", &[("id", id)], &json!({"server": {"state": "enable"}})).await;
        assert_eq!(reply.status, 200);
    }
    // One round: all online.
    poller.poll_once().await.unwrap().unwrap();
    let servers = json_of(&get(&client, "getServers", &[]).await);
    assert!(servers.as_array().unwrap().iter().all(|s| s["online"] == "online" && s["state"] == "enabled"));
    for id in &ids {
        assert_eq!(metric(format!("scalelite_poller_server_online{{server=\"{id}\"}}")), Some(1.0));
    }

    // Drain one: cordon it while it hosts a meeting; it disables itself once empty.
    let reply = client.get("create", &[("meetingID", "lecture"), ("name", "Lecture")]).await;
    assert!(reply.is_success());
    let on = app.placed_on_any(&ids, "lecture").await;
    let draining = ids[on].clone();
    post(&client, "updateServer", &[("id", &draining)], &json!({"server": {"state": "cordon"}})).await;
    poller.poll_once().await.unwrap().unwrap();
    assert_eq!(json_of(&get(&client, "getServerInfo", &[("id", &draining)]).await)["state"], "cordoned");
    assert_eq!(metric(format!("scalelite_poller_server_state{{server=\"{draining}\",state=\"cordoned\"}}")), Some(1.0));
    let reply = client.get("join", &[("meetingID", "lecture"), ("fullName", "A")]).await;
    assert_eq!(reply.status, 302, "a cordoned server still takes joins");
    app.fleet[on].remove_meeting("lecture");
    poller.poll_once().await.unwrap().unwrap();
    assert_eq!(json_of(&get(&client, "getServerInfo", &[("id", &draining)]).await)["state"], "disabled");
    assert_eq!(metric("scalelite_poller_transitions_total{transition=\"drained\"}".into()), Some(1.0));

    // Lose one: offline after two failed rounds, new meetings avoid it.
    let lost_index = (on + 1) % 3;
    let lost = ids[lost_index].clone();
    app.fleet[lost_index].set_mode(Mode::Down);
    poller.poll_once().await.unwrap().unwrap();
    poller.poll_once().await.unwrap().unwrap();
    assert_eq!(json_of(&get(&client, "getServerInfo", &[("id", &lost)]).await)["online"], "offline");
    assert_eq!(metric(format!("scalelite_poller_server_online{{server=\"{lost}\"}}")), Some(0.0));
    for i in 0..3 {
        let id = format!("after-loss-{i}");
        assert!(client.get("create", &[("meetingID", &id), ("name", "x")]).await.is_success());
        assert_ne!(app.meeting(&id).await.unwrap().server_id.as_str(), lost);
    }
    // ... and gets it back.
    app.fleet[lost_index].set_mode(Mode::Normal);
    poller.poll_once().await.unwrap().unwrap();
    assert_eq!(json_of(&get(&client, "getServerInfo", &[("id", &lost)]).await)["online"], "online");
    assert_eq!(metric(format!("scalelite_poller_server_online{{server=\"{lost}\"}}")), Some(1.0));
    assert_eq!(metric("scalelite_poller_transitions_total{transition=\"online\"}".into()), Some(4.0));
    assert_eq!(metric("scalelite_poller_transitions_total{transition=\"offline\"}".into()), Some(1.0));
}

/// Ruby Scalelite's Redis layout, and Redis outages.
mod redis_only {
    use scalelite_tests::{SeedServer, TestApp, TestBackend};
    use serde_json::json;

    use super::{get, json_of, post};

    #[tokio::test]
    async fn an_added_server_is_stored_exactly_as_scalelite_stores_it() {
        let app = TestApp::builder().backend(TestBackend::Redis).unseeded().start().await;
        let body = json!({"server": {"url": app.fleet[0].url(), "secret": "s", "load_multiplier": 1.5, "tag": "gpu"}});
        let reply = post(&app.client(), "addServer", &[], &body).await;
        let id = json_of(&reply)["id"].as_str().unwrap().to_owned();
        let record = app.server_record(&id).await;
        assert_eq!(
            record.keys().map(String::as_str).collect::<Vec<_>>(),
            ["load_multiplier", "online", "secret", "tag", "url"]
        );
        assert_eq!((record["load_multiplier"].as_str(), record["online"].as_str()), ("1.5", "false"));
        assert_eq!(app.redis().cmd(&["SISMEMBER", &app.key("servers"), &id]).await.as_int(), Some(1));
        assert_eq!(app.redis().cmd(&["SISMEMBER", &app.key("server_enabled"), &id]).await.as_int(), Some(0));
    }

    #[tokio::test]
    async fn store_failures_answer_500_without_the_store_error() {
        let app = TestApp::builder()
            .backend(TestBackend::Redis)
            .env("REDIS_TIMEOUT", "1")
            .env("MULTITENANCY_ENABLED", "true")
            .start()
            .await;
        let client = app.client();
        app.redis().stop().await;
        let replies = [
            get(&client, "getServers", &[]).await,
            get(&client, "getServerInfo", &[("id", "s1")]).await,
            post(&client, "deleteServer", &[("id", "s1")], &json!({})).await,
            get(&client, "getTenants", &[]).await,
        ];
        for reply in replies {
            // What failed (hosts, ports, keys) stays in the log.
            assert_eq!(reply.status, 500, "{}", reply.body);
            assert_eq!(json_of(&reply), json!({"error": "Internal server error"}));
            assert!(reply.header("x-request-id").is_some(), "{:?}", reply.headers);
        }
    }

    #[tokio::test]
    async fn legacy_servers_render_like_scalelite() {
        let app = TestApp::builder().backend(TestBackend::Redis).unseeded().servers(1).start().await;
        let legacy =
            SeedServer::enabled("legacy", app.fleet[0].url(), "s").legacy(true).multiplier(None).load(Some(21.0));
        app.seed_server(&legacy).await;
        let info = json_of(&get(&app.client(), "getServerInfo", &[("id", "legacy")]).await);
        assert_eq!(info["state"], "enabled");
        assert_eq!(info["load"], json!(21.0));
        assert_eq!(info["load_multiplier"], json!(1.0), "a number when the field is absent");
    }
}
