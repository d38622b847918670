//! `end`.

use std::time::{Duration, Instant};

use scalelite_tests::{Mode, TestApp};

use crate::support::{assert_failed, create, voice_bridge_is_free};

#[tokio::test]
async fn end_forgets_the_meeting_and_forwards_the_password() {
    let app = TestApp::start().await;
    create(&app, "m").await;
    let on = app.placed_on("m").await.unwrap();
    let vb = app.meeting("m").await.unwrap().voice_bridge;
    let reply = app.client().get("end", &[("meetingID", "m"), ("password", "mp pw")]).await;
    assert!(reply.is_success(), "{}", reply.body);
    assert_eq!(reply.message_key().as_deref(), Some("sentEndMeetingRequest"));
    assert!(!app.fleet[on].has_meeting("m"));
    assert_eq!(app.meeting("m").await, None);
    assert!(app.store().meetings().await.unwrap().is_empty());
    let call = app.fleet[on].calls_to("end").pop().unwrap();
    assert!(call.checksum_valid);
    assert_eq!(call.raw_query.split("&checksum=").next(), Some("meetingID=m&password=mp+pw"));
    // Ended meetings are unknown afterwards, and their dial-in number is free.
    assert_failed(&app.client().get("end", &[("meetingID", "m")]).await, "notFound");
    assert!(voice_bridge_is_free(app.store().as_ref(), &vb).await);
}

#[tokio::test]
async fn end_without_password_sends_a_bare_key() {
    let app = TestApp::start().await;
    create(&app, "m").await;
    let on = app.placed_on("m").await.unwrap();
    assert!(app.client().get("end", &[("meetingID", "m")]).await.is_success());
    let call = app.fleet[on].calls_to("end").pop().unwrap();
    assert!(call.checksum_valid);
    assert_eq!(call.raw_query.split("&checksum=").next(), Some("meetingID=m&password"));
}

#[tokio::test]
async fn end_on_a_hung_server_times_out_but_forgets_the_meeting() {
    let app = TestApp::builder().env("RESPONSE_TIMEOUT", "0.5").start().await;
    create(&app, "m").await;
    let on = app.placed_on("m").await.unwrap();
    app.fleet[on].set_mode(Mode::Hung);
    let started = Instant::now();
    let reply = app.client().get("end", &[("meetingID", "m")]).await;
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert_failed(&reply, "internalError");
    assert_eq!(reply.message().as_deref(), Some("Unable to access meeting on server."));
    assert_eq!(app.meeting("m").await, None);
    app.fleet[on].set_mode(Mode::Normal);
}

/// Ruby Scalelite's records, on its Redis layout.
mod redis_only {
    use scalelite_tests::{TestApp, TestBackend};

    use crate::support::create;

    #[tokio::test]
    async fn end_removes_the_hash_the_set_member_and_the_voice_bridge_entry() {
        let app = TestApp::builder().backend(TestBackend::Redis).start().await;
        create(&app, "m").await;
        let vb = app.meeting_record("m").await["voice_bridge"].clone();
        assert!(app.client().get("end", &[("meetingID", "m")]).await.is_success());
        assert!(app.meeting_record("m").await.is_empty());
        assert_eq!(app.redis().cmd(&["SISMEMBER", &app.key("meetings"), "m"]).await.as_int(), Some(0));
        assert!(app.redis().cmd(&["HGET", &app.key("voice_bridges"), &vb]).await.is_nil());
    }
}
