//! Automatic re-homing (`REHOME_MEETINGS`): a meeting whose server went
//! offline is created again on a healthy server by its next join or
//! create, from the parameters its first create left; the old server's
//! copy is ended when it comes back.

use scalelite_core::MeetingId;
use scalelite_tests::{FakeBbb, Mode, Reply, TestApp, http_get, server_id};

use crate::support::{assert_failed, create};

/// The value of a series on the API's `/metrics` (`None`: not exported).
async fn api_metric(app: &TestApp, series: &str) -> Option<f64> {
    let text = app.client().raw_get("/metrics").await.body;
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
}

/// The parameters a fake server's `n`th create carried, sorted, without the
/// checksum.
fn create_params(server: &FakeBbb, n: usize) -> Vec<(String, String)> {
    let mut params: Vec<(String, String)> =
        server.calls_to("create")[n].params.iter().filter(|(k, _)| k != "checksum").cloned().collect();
    params.sort();
    params
}

/// Two failed polls take the server offline (`SERVER_UNHEALTHY_THRESHOLD`).
async fn poll_until_offline(app: &TestApp, index: usize) {
    app.poll().await;
    app.poll().await;
    assert!(!app.server(&server_id(index)).await.unwrap().online, "{} is offline", server_id(index));
}

/// The other server of a two-server fleet.
fn other(index: usize) -> usize {
    1 - index
}

const CLASS: [(&str, &str); 10] = [
    ("meetingID", "class-7b"),
    ("name", "Physics 7b"),
    ("moderatorPW", "teach"),
    ("attendeePW", "learn"),
    ("welcome", "Welcome to <b>Physics</b>"),
    ("record", "true"),
    ("logoutURL", "https://lms.example/course/7"),
    ("meta_endCallbackUrl", "https://lms.example/ended?room=7b"),
    ("meta_bbb-context", "Physics & Chemistry"),
    ("meta_bbb-origin", "Moodle"),
];

fn join_as(reply: &Reply, server: &FakeBbb) -> String {
    assert_eq!(reply.status, 302, "{}", reply.body);
    let location = reply.location.clone().unwrap();
    assert!(location.starts_with(&format!("{}/join?", server.url())), "{location}");
    location
}

#[tokio::test]
async fn a_join_after_the_server_died_recreates_the_meeting_elsewhere_and_the_returning_server_does_not_split_it() {
    let app = TestApp::builder().servers(2).env("RESPONSE_TIMEOUT", "0.5").start().await;
    let reply = app.client().get("create", &CLASS).await;
    assert!(reply.is_success(), "{}", reply.body);
    let a = app.placed_on("class-7b").await.unwrap();
    let b = other(a);
    let first = create_params(&app.fleet[a], 0);
    let voice_bridge = app.meeting("class-7b").await.unwrap().voice_bridge;
    let joined =
        app.client().get("join", &[("meetingID", "class-7b"), ("fullName", "Ada"), ("password", "learn")]).await;
    assert_eq!(http_get(&join_as(&joined, &app.fleet[a])).await.status, 302);

    // A stops answering mid-meeting (its users still in there: a partition).
    app.fleet[a].set_mode(Mode::Down);
    poll_until_offline(&app, a).await;

    // Meanwhile the meeting is truthfully not running (nowhere to join it
    // yet), and nobody asked B for anything.
    let running = app.client().get("isMeetingRunning", &[("meetingID", "class-7b")]).await;
    assert_eq!(running.text_at("running").as_deref(), Some("false"), "{}", running.body);
    let info = app.client().get("getMeetingInfo", &[("meetingID", "class-7b")]).await;
    assert_failed(&info, "notFound");
    assert_eq!(app.fleet[b].call_count("create"), 0);

    // The next join re-creates it on B and sends the user there.
    let reply =
        app.client().get("join", &[("meetingID", "class-7b"), ("fullName", "Bob"), ("password", "learn")]).await;
    let location = join_as(&reply, &app.fleet[b]);
    assert_eq!(http_get(&location).await.status, 302, "B accepts the attendee password");
    // B got exactly the create A got: name, passwords, voice bridge,
    // metadata, callbacks.
    assert_eq!(create_params(&app.fleet[b], 0), first);
    let on_b = app.fleet[b].meeting("class-7b").unwrap();
    assert_eq!((on_b.name.as_str(), on_b.voice_bridge.as_str()), ("Physics 7b", voice_bridge.as_str()));
    assert_eq!(on_b.metadata.get("endcallbackurl").map(String::as_str), Some("https://lms.example/ended?room=7b"));
    assert_eq!(on_b.participant_count(), 1);
    let record = app.meeting("class-7b").await.unwrap();
    assert_eq!(
        (record.server_id.as_str(), record.voice_bridge.as_str()),
        (server_id(b).as_str(), voice_bridge.as_str())
    );
    let running = app.client().get("isMeetingRunning", &[("meetingID", "class-7b")]).await;
    assert_eq!(running.text_at("running").as_deref(), Some("true"));

    // Later joins go straight to B: no second create.
    let reply = app.client().get("join", &[("meetingID", "class-7b"), ("fullName", "Cy"), ("password", "teach")]).await;
    join_as(&reply, &app.fleet[b]);
    assert_eq!(app.fleet[b].call_count("create"), 1);
    assert_eq!(api_metric(&app, "scalelite_api_rehomes_total{trigger=\"join\",outcome=\"rehomed\"}").await, Some(1.0));

    // A comes back still running its copy: the poller ends it (once), so
    // Ada rejoins through the front-end and lands on B.
    app.fleet[a].set_mode(Mode::Normal);
    let report = app.poll().await;
    assert_eq!(report.stale_copies_ended, 1);
    assert!(!app.fleet[a].has_meeting("class-7b"));
    let end = app.fleet[a].calls_to("end").pop().unwrap();
    assert_eq!((end.param("meetingID"), end.param("password")), (Some("class-7b"), Some("teach")));
    assert!(app.fleet[b].meeting("class-7b").unwrap().running(), "B's meeting goes on");
    assert_eq!(app.poll().await.stale_copies_ended, 0);
    assert_eq!(app.fleet[a].call_count("end"), 1);
    let reply =
        app.client().get("join", &[("meetingID", "class-7b"), ("fullName", "Ada"), ("password", "learn")]).await;
    join_as(&reply, &app.fleet[b]);

    // Ending the meeting forgets its parameters too.
    assert!(app.store().stored_create(&MeetingId::from("class-7b")).await.unwrap().is_some());
    assert!(app.client().get("end", &[("meetingID", "class-7b"), ("password", "teach")]).await.is_success());
    assert_eq!(app.store().stored_create(&MeetingId::from("class-7b")).await.unwrap(), None);
}

#[tokio::test]
async fn a_create_after_the_server_crashed_recreates_the_meeting_with_its_first_passwords() {
    let app = TestApp::builder().servers(2).env("RESPONSE_TIMEOUT", "0.5").start().await;
    // As Greenlight: no passwords; the balancer and BBB choose them.
    let first = app.client().get("create", &[("meetingID", "room-1"), ("name", "Team room")]).await;
    assert!(first.is_success(), "{}", first.body);
    let a = app.placed_on("room-1").await.unwrap();
    let b = other(a);
    app.fleet[a].crash().await;
    poll_until_offline(&app, a).await;

    let again = app.client().get("create", &[("meetingID", "room-1"), ("name", "Renamed room")]).await;
    assert!(again.is_success(), "{}", again.body);
    assert_eq!(app.placed_on("room-1").await, Some(b));
    // Same meeting: the passwords and dial-in number front-ends already
    // handed out still work, and its first create's name.
    for field in ["attendeePW", "moderatorPW", "voiceBridge"] {
        assert_eq!(again.text_at(field), first.text_at(field), "{field}");
    }
    assert_eq!(app.fleet[b].meeting("room-1").unwrap().name, "Team room");
    let password = first.text_at("attendeePW").unwrap();
    let reply =
        app.client().get("join", &[("meetingID", "room-1"), ("fullName", "Eve"), ("password", &password)]).await;
    assert_eq!(http_get(&join_as(&reply, &app.fleet[b])).await.status, 302);
    assert_eq!(
        api_metric(&app, "scalelite_api_rehomes_total{trigger=\"create\",outcome=\"rehomed\"}").await,
        Some(1.0)
    );

    // A reboots empty: nothing to end, the meeting stays on B.
    app.fleet[a].start_again().await;
    assert_eq!(app.poll().await.stale_copies_ended, 0);
    assert_eq!(app.fleet[a].call_count("end"), 0);
    assert_eq!(app.placed_on("room-1").await, Some(b));
}

#[tokio::test]
async fn concurrent_joins_rehome_the_meeting_once() {
    let app = TestApp::builder().servers(3).env("RESPONSE_TIMEOUT", "0.5").start().await;
    create(&app, "busy").await;
    let a = app.placed_on("busy").await.unwrap();
    app.fleet[a].set_mode(Mode::Down);
    poll_until_offline(&app, a).await;
    let joins: Vec<_> = (0..12)
        .map(|i| {
            let client = app.client();
            tokio::spawn(async move {
                client.get("join", &[("meetingID", "busy"), ("fullName", &format!("u{i}")), ("role", "viewer")]).await
            })
        })
        .collect();
    let mut locations = Vec::new();
    for join in joins {
        let reply = join.await.unwrap();
        assert_eq!(reply.status, 302, "{}", reply.body);
        locations.push(reply.location.unwrap());
    }
    // One new home, every user sent there; A's unreachable copy aside.
    let b = app.placed_on("busy").await.unwrap();
    assert_ne!(b, a);
    let elsewhere: Vec<usize> = app.fleet.servers_with_meeting("busy").into_iter().filter(|i| *i != a).collect();
    assert_eq!(elsewhere, vec![b]);
    for location in &locations {
        assert!(location.starts_with(&app.fleet[b].url()), "{location}");
    }
    assert_eq!(api_metric(&app, "scalelite_api_rehomes_total{trigger=\"join\",outcome=\"rehomed\"}").await, Some(1.0));
}

#[tokio::test]
async fn with_rehoming_off_a_join_is_refused_and_a_create_starts_afresh_as_before() {
    let app =
        TestApp::builder().servers(2).env("RESPONSE_TIMEOUT", "0.5").env("REHOME_MEETINGS", "false").start().await;
    let first = app.client().get("create", &[("meetingID", "plain"), ("name", "Plain")]).await;
    assert!(first.is_success());
    assert_eq!(app.store().stored_create(&MeetingId::from("plain")).await.unwrap(), None, "nothing kept");
    let a = app.placed_on("plain").await.unwrap();
    app.fleet[a].set_mode(Mode::Down);
    poll_until_offline(&app, a).await;
    let reply = app.client().get("join", &[("meetingID", "plain"), ("fullName", "A")]).await;
    assert_failed(&reply, "serverUnavailable");
    assert_eq!(app.fleet[other(a)].call_count("create"), 0);
    // A create replaces the record with a new meeting from its own
    // parameters: a new moderator password.
    let again = app.client().get("create", &[("meetingID", "plain"), ("name", "Plain again")]).await;
    assert!(again.is_success());
    assert_eq!(app.placed_on("plain").await, Some(other(a)));
    assert_ne!(again.text_at("moderatorPW"), first.text_at("moderatorPW"));
    assert_eq!(app.fleet[other(a)].meeting("plain").unwrap().name, "Plain again");
    for trigger in ["create", "join"] {
        let series = format!("scalelite_api_rehomes_total{{trigger=\"{trigger}\",outcome=\"rehomed\"}}");
        assert_eq!(api_metric(&app, &series).await, Some(0.0), "{series}");
    }
}

#[tokio::test]
async fn meetings_without_kept_parameters_are_not_rehomed() {
    let app = TestApp::builder().servers(2).env("RESPONSE_TIMEOUT", "0.5").start().await;
    // Created by Ruby Scalelite: a record, no parameters.
    app.seed_meeting("ruby-made", &server_id(0), "mp", "712345678").await;
    // Over the cap: served, but nothing kept.
    let welcome = "w".repeat(40 * 1024);
    let reply = app.client().get("create", &[("meetingID", "huge"), ("name", "Huge"), ("welcome", &welcome)]).await;
    assert!(reply.is_success(), "{}", reply.body);
    assert_eq!(app.store().stored_create(&MeetingId::from("huge")).await.unwrap(), None);
    assert_eq!(api_metric(&app, "scalelite_api_rehome_params_too_large_total").await, Some(1.0));
    let huge_on = app.placed_on("huge").await.unwrap();
    for index in [0, huge_on] {
        app.fleet[index].set_mode(Mode::Down);
    }
    poll_until_offline(&app, 0).await;
    poll_until_offline(&app, huge_on).await;
    for id in ["ruby-made", "huge"] {
        let reply = app.client().get("join", &[("meetingID", id), ("fullName", "A")]).await;
        assert_failed(&reply, "serverUnavailable");
    }
    assert_eq!(
        api_metric(&app, "scalelite_api_rehomes_total{trigger=\"join\",outcome=\"no_parameters\"}").await,
        Some(2.0)
    );
    assert_eq!(app.fleet.call_count("create"), 1, "only the first create of huge");
}

#[tokio::test]
async fn a_tenants_meeting_is_rehomed_for_that_tenant_only() {
    let app = TestApp::builder()
        .servers(2)
        .env("RESPONSE_TIMEOUT", "0.5")
        .env("MULTITENANCY_ENABLED", "true")
        .env("URL_HOST", "sl.test")
        .start()
        .await;
    let tenant_a = scalelite_store::Tenant::new("a", "secret-a");
    app.state.store.create_tenant(&tenant_a).await.unwrap();
    app.state.store.create_tenant(&scalelite_store::Tenant::new("b", "secret-b")).await.unwrap();
    let tenant_id = tenant_a.id.as_str();
    let a = app.client().with_secret("secret-a").host("a.sl.test");
    let b = app.client().with_secret("secret-b").host("b.sl.test");
    assert!(a.get("create", &[("meetingID", "t-room"), ("name", "A's room")]).await.is_success());
    let on = app.placed_on("t-room").await.unwrap();
    let first = create_params(&app.fleet[on], 0);
    app.fleet[on].set_mode(Mode::Down);
    poll_until_offline(&app, on).await;

    // Another tenant neither sees it nor moves it.
    assert_failed(&b.get("join", &[("meetingID", "t-room"), ("fullName", "Mallory")]).await, "notFound");
    assert_eq!(app.fleet[other(on)].call_count("create"), 0);
    // Its own tenant's join moves it, with the tenant's metadata.
    let reply = a.get("join", &[("meetingID", "t-room"), ("fullName", "Ann"), ("role", "viewer")]).await;
    join_as(&reply, &app.fleet[other(on)]);
    assert_eq!(create_params(&app.fleet[other(on)], 0), first);
    let moved = app.fleet[other(on)].meeting("t-room").unwrap();
    assert_eq!(moved.metadata.get("tenant-id").map(String::as_str), Some(tenant_id));
    assert_eq!(moved.metadata.get("tenant-name").map(String::as_str), Some("a"));
    assert_eq!(app.meeting("t-room").await.unwrap().tenant_id.as_ref().map(|t| t.as_str()), Some(tenant_id));
}

/// What Ruby Scalelite sharing the Redis sees: its keys untouched, one new
/// key per meeting with the record's TTL, gone with the record.
mod redis_only {
    use scalelite_tests::{TestApp, TestBackend};

    use crate::support::create;

    #[tokio::test]
    async fn the_kept_parameters_are_one_key_beside_the_record_with_its_ttl() {
        let app = TestApp::builder().backend(TestBackend::Redis).servers(1).start().await;
        create(&app, "m1").await;
        let redis = app.redis();
        let key = app.key("meeting_create:m1");
        let fields = redis.cmd(&["HGETALL", &key]).await.as_map();
        assert_eq!(
            fields.keys().map(String::as_str).collect::<Vec<_>>(),
            ["origin", "params", "rehomed_from", "server_id"]
        );
        assert!(fields["params"].contains("meetingID=m1"), "{fields:?}");
        assert!(!fields["params"].contains("checksum"), "{fields:?}");
        let ttl = redis.cmd(&["TTL", &key]).await.as_int().unwrap();
        let record_ttl = redis.cmd(&["TTL", &app.key("meeting:m1")]).await.as_int().unwrap();
        assert!(ttl > 0 && (record_ttl - ttl).abs() <= 1, "{ttl} vs {record_ttl}");
        // The meeting record holds exactly Ruby's four fields.
        assert_eq!(
            app.meeting_record("m1").await.keys().map(String::as_str).collect::<Vec<_>>(),
            ["moderator_pw", "server_id", "tenant_id", "voice_bridge"]
        );
        assert!(app.client().get("end", &[("meetingID", "m1"), ("password", "x")]).await.is_success());
        assert_eq!(redis.cmd(&["EXISTS", &key]).await.as_int(), Some(0));
    }
}
