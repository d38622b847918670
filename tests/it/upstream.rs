//! Broken BBB servers: down (503), hung, garbage, refusing connections, or
//! answering FAILED. Every case is an XML error with HTTP 200, within the
//! configured timeout.

use std::time::{Duration, Instant};

use scalelite_tests::{Mode, SeedServer, TestApp};

use crate::support::{assert_failed, create};

async fn calls_on_broken_server(app: &TestApp, expect: &[(&str, &str)]) {
    let doc = r#"<modules><module name="presentation"><document url="https://example.org/b.pdf"/></module></modules>"#;
    let client = app.client();
    let replies = [
        ("getMeetingInfo", client.get("getMeetingInfo", &[("meetingID", "m")]).await),
        ("isMeetingRunning", client.get("isMeetingRunning", &[("meetingID", "m")]).await),
        ("insertDocument", client.post_xml("insertDocument", &[("meetingID", "m")], doc).await),
        ("create", client.get("create", &[("meetingID", "m"), ("name", "x")]).await),
    ];
    for ((call, reply), (expected_call, message)) in replies.iter().zip(expect) {
        assert_eq!(call, expected_call);
        assert_failed(reply, "internalError");
        assert_eq!(reply.message().as_deref(), Some(*message), "{call}");
    }
}

#[tokio::test]
async fn transport_failures_become_internal_errors() {
    let app = TestApp::builder().servers(1).env("RESPONSE_TIMEOUT", "0.5").start().await;
    create(&app, "m").await;
    let transport = [
        ("getMeetingInfo", "Unable to access meeting on server."),
        ("isMeetingRunning", "Unable to access meeting on server."),
        ("insertDocument", "Unable to insert document on server."),
        ("create", "Unable to create meeting on server."),
    ];
    app.fleet[0].set_mode(Mode::Hung);
    let started = Instant::now();
    calls_on_broken_server(&app, &transport).await;
    assert!(started.elapsed() < Duration::from_secs(4), "four calls bounded by the timeout: {:?}", started.elapsed());
    app.fleet[0].set_mode(Mode::Normal);
    app.fleet[0].stop().await;
    calls_on_broken_server(&app, &transport).await;
}

#[tokio::test]
async fn non_xml_answers_have_no_returncode() {
    let app = TestApp::builder().servers(1).start().await;
    create(&app, "m").await;
    let no_returncode = [
        ("getMeetingInfo", "Response did not include returncode"),
        ("isMeetingRunning", "Response did not include returncode"),
        ("insertDocument", "Response did not include returncode"),
        ("create", "Response did not include returncode"),
    ];
    for mode in [Mode::Down, Mode::Garbage] {
        app.fleet[0].set_mode(mode);
        calls_on_broken_server(&app, &no_returncode).await;
    }
}

#[tokio::test]
async fn failed_replies_keep_bbb_keys() {
    let app = TestApp::builder().servers(1).start().await;
    create(&app, "m").await;
    app.fleet[0].set_mode(Mode::Failed { key: "checksumError".into(), message: "Checksums do not match".into() });
    let reply = app.client().get("getMeetingInfo", &[("meetingID", "m")]).await;
    assert_failed(&reply, "checksumError");
    insta::assert_snapshot!(reply.body, @r#"
    <?xml version="1.0"?>
    <response>
      <returncode>FAILED</returncode>
      <messageKey>checksumError</messageKey>
      <message>Checksums do not match</message>
    </response>
    "#);
}

#[tokio::test]
async fn an_offline_server_gets_short_timeouts() {
    // RESPONSE_TIMEOUT 5 s; for a server marked offline Scalelite waits a
    // tenth of it (at least 0.5 s) on user calls. (With re-homing on,
    // getMeetingInfo would not ask an offline server at all.)
    let app = TestApp::builder().servers(1).env("RESPONSE_TIMEOUT", "5").env("REHOME_MEETINGS", "false").start().await;
    create(&app, "m").await;
    let offline = SeedServer::enabled("bbb-1", app.fleet[0].url(), app.fleet[0].secret()).online(false);
    app.seed_server(&offline).await;
    assert_eq!(app.placed_on("m").await, Some(0), "the meeting stays mapped to its server");
    app.fleet[0].set_mode(Mode::Hung);
    let started = Instant::now();
    let reply = app.client().get("getMeetingInfo", &[("meetingID", "m")]).await;
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    assert_failed(&reply, "internalError");
    app.fleet[0].set_mode(Mode::Normal);
}
