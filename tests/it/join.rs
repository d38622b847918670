//! `join`: the 302 to the meeting's server, availability and load.

use bytes::Bytes;
use http::Method;
use scalelite_tests::{SeedServer, TestApp, http_get, server_id};

use crate::support::{assert_failed, create};

#[tokio::test]
async fn join_redirects_to_the_meetings_server_with_a_valid_checksum() {
    let app = TestApp::start().await;
    create(&app, "m").await;
    let on = app.placed_on("m").await.unwrap();
    let before = app.load(&server_id(on)).await.unwrap();
    let reply = app
        .client()
        .get("join", &[("meetingID", "m"), ("fullName", "Zoë Ünïcode"), ("role", "VIEWER"), ("userdata-bbb_x", "a b")])
        .await;
    assert_eq!(reply.status, 302, "{}", reply.body);
    let location = reply.location.clone().unwrap();
    assert!(location.starts_with(&format!("{}/join?", app.fleet[on].url())), "{location}");
    assert!(!location.contains(scalelite_tests::LB_SECRET));
    // The server accepts our checksum and the user lands in the meeting.
    let landed = http_get(&location).await;
    assert_eq!(landed.status, 302, "{}", landed.body);
    let call = app.fleet[on].calls_to("join").pop().unwrap();
    assert!(call.checksum_valid);
    assert_eq!(call.param("fullName"), Some("Zoë Ünïcode"));
    assert_eq!(call.param("userdata-bbb_x"), Some("a b"));
    assert_eq!(app.fleet[on].meeting("m").unwrap().participant_count(), 1);
    assert_eq!(app.load(&server_id(on)).await, Some(before + 1.0));
}

#[tokio::test]
async fn join_counts_the_load_multiplier_and_head_acts_like_get() {
    let app = TestApp::builder().unseeded().servers(1).start().await;
    let record =
        SeedServer::enabled("s7", app.fleet[0].url(), app.fleet[0].secret()).multiplier(Some("7")).load(Some(0.0));
    app.seed_server(&record).await;
    app.seed_meeting("ruby-made", "s7", "mp", "987654321").await;
    let reply = app.client().get("join", &[("meetingID", "ruby-made"), ("fullName", "A")]).await;
    assert_eq!(reply.status, 302);
    assert_eq!(app.load("s7").await, Some(7.0));
    let reply = app.client().head("join", &[("meetingID", "ruby-made"), ("fullName", "A")]).await;
    assert_eq!(reply.status, 302);
    assert_eq!(app.load("s7").await, Some(14.0));
}

#[tokio::test]
async fn a_server_url_a_header_cannot_carry_is_percent_encoded_in_the_redirect() {
    let app = TestApp::builder().unseeded().servers(1).start().await;
    // addServer takes any URL: here an internationalised host and a space.
    let record = SeedServer::enabled("idn", "https://bbb.b\u{fc}ro.example/big blue/api", app.fleet[0].secret());
    app.seed_server(&record).await;
    app.seed_meeting("m", "idn", "mp", "123456789").await;
    let reply = app.client().get("join", &[("meetingID", "m"), ("fullName", "A")]).await;
    assert_eq!(reply.status, 302, "{}", reply.body);
    let location = reply.location.expect("a 302 always has a Location");
    assert!(location.starts_with("https://bbb.b%C3%BCro.example/big%20blue/api/join?"), "{location}");
    assert!(location.bytes().all(|b| b.is_ascii_graphic()), "{location}");
}

#[tokio::test]
async fn join_errors() {
    let app = TestApp::start().await;
    assert_failed(&app.client().get("join", &[("fullName", "A")]).await, "missingParamMeetingID");
    let reply = app.client().get("join", &[("meetingID", "nope"), ("fullName", "A")]).await;
    assert_failed(&reply, "notFound");
    insta::assert_snapshot!(reply.body, @r#"
    <?xml version="1.0"?>
    <response>
      <returncode>FAILED</returncode>
      <messageKey>notFound</messageKey>
      <message>We could not find a meeting with that meeting ID - perhaps the meeting is not yet running?</message>
    </response>
    "#);
    let url = app.client().url("join", &[("meetingID", "nope"), ("fullName", "A")]);
    let reply = app.client().send(Method::POST, &url, None, Bytes::new()).await.unwrap();
    assert_failed(&reply, "unsupportedRequest");
}

#[tokio::test]
async fn join_refuses_offline_and_disabled_servers_but_not_cordoned_ones() {
    let app = TestApp::builder().unseeded().servers(1).start().await;
    let url = app.fleet[0].url();
    let secret = app.fleet[0].secret();
    // (server, joinable, its load after one join attempt)
    let cases: [(SeedServer, bool, Option<f64>); 4] = [
        (SeedServer::enabled("s", &url, &secret).online(false), false, None),
        (SeedServer::enabled("s", &url, &secret).state("disabled"), false, None),
        // Cordoned servers keep their load out of the placement pool: a join
        // there counts nothing.
        (SeedServer::enabled("s", &url, &secret).state("cordoned"), true, Some(0.0)),
        (SeedServer::enabled("s", &url, &secret), true, Some(1.0)),
    ];
    app.seed_meeting("m", "s", "mp", "111111111").await;
    for (record, joinable, load) in cases {
        app.seed_server(&record).await;
        let reply = app.client().get("join", &[("meetingID", "m"), ("fullName", "A")]).await;
        if joinable {
            assert_eq!(reply.status, 302, "{record:?}");
        } else {
            assert_failed(&reply, "serverUnavailable");
            assert_eq!(reply.message().as_deref(), Some("The server for this meeting is disabled/offline."));
        }
        assert_eq!(app.load("s").await, load, "{record:?}");
    }
}

#[tokio::test]
async fn join_parameter_policy() {
    let app = TestApp::builder()
        .servers(1)
        .env("DEFAULT_JOIN_PARAMS", "userdata-bbb_auto_join_audio=true,role=VIEWER")
        .env("OVERRIDE_JOIN_PARAMS", "userdata-bbb_listen_only_mode=false")
        .env("JOIN_EXCLUDE_PARAMS", "avatarURL")
        .start()
        .await;
    create(&app, "m").await;
    let reply = app
        .client()
        .get(
            "join",
            &[
                ("meetingID", "m"),
                ("fullName", "A"),
                ("role", "MODERATOR"),
                ("avatarURL", "https://x/a.png"),
                ("userdata-bbb_listen_only_mode", "true"),
            ],
        )
        .await;
    let location = reply.location.unwrap();
    let landed = http_get(&location).await;
    assert_eq!(landed.status, 302);
    let call = app.fleet[0].calls_to("join").pop().unwrap();
    assert!(call.checksum_valid);
    assert_eq!(call.param("userdata-bbb_auto_join_audio"), Some("true"));
    assert_eq!(call.param("role"), Some("MODERATOR"));
    assert_eq!(call.param("userdata-bbb_listen_only_mode"), Some("false"));
    assert_eq!(call.param("avatarURL"), None);
    assert_eq!(call.param("checksum").map(str::len), Some(64));
}

/// Legacy server records (Ruby Scalelite's Redis layout, no `state`).
mod redis_only {
    use scalelite_tests::{SeedServer, TestApp, TestBackend};

    use crate::support::assert_failed;

    #[tokio::test]
    async fn legacy_servers_are_joinable_by_their_server_enabled_membership() {
        let app = TestApp::builder().backend(TestBackend::Redis).unseeded().servers(1).start().await;
        let (url, secret) = (app.fleet[0].url(), app.fleet[0].secret());
        app.seed_meeting("m", "s", "mp", "111111111").await;
        app.seed_server(&SeedServer::enabled("s", &url, &secret).legacy(false)).await;
        let reply = app.client().get("join", &[("meetingID", "m"), ("fullName", "A")]).await;
        assert_failed(&reply, "serverUnavailable");
        app.seed_server(&SeedServer::enabled("s", &url, &secret).legacy(true)).await;
        let reply = app.client().get("join", &[("meetingID", "m"), ("fullName", "A")]).await;
        assert_eq!(reply.status, 302);
        assert_eq!(app.load("s").await, Some(1.0));
        assert_eq!(scalelite_tests::seed::score(app.redis(), &app.key("cordoned_server_load"), "s").await, None);
    }
}
