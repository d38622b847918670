//! `isMeetingRunning`, `getMeetingInfo` and `insertDocument`.

use scalelite_tests::TestApp;

use crate::support::{assert_failed, create};

#[tokio::test]
async fn is_meeting_running() {
    let app = TestApp::start().await;
    let reply = app.client().get("isMeetingRunning", &[("meetingID", "unknown")]).await;
    insta::assert_snapshot!(reply.body, @r#"
    <?xml version="1.0"?>
    <response>
      <returncode>SUCCESS</returncode>
      <running>false</running>
    </response>
    "#);
    assert_eq!(app.fleet.iter().map(|s| s.total_calls()).sum::<usize>(), 0, "unknown meetings cost no BBB call");
    create(&app, "m").await;
    let on = app.placed_on("m").await.unwrap();
    assert_eq!(
        app.client().get("isMeetingRunning", &[("meetingID", "m")]).await.text_at("running").as_deref(),
        Some("false")
    );
    app.fleet[on].add_attendees("m", 1);
    assert_eq!(
        app.client().get("isMeetingRunning", &[("meetingID", "m")]).await.text_at("running").as_deref(),
        Some("true")
    );
    assert_failed(&app.client().get("isMeetingRunning", &[]).await, "missingParamMeetingID");
}

#[tokio::test]
async fn get_meeting_info_forwards_only_the_meeting_id() {
    let app = TestApp::start().await;
    assert_failed(&app.client().get("getMeetingInfo", &[("meetingID", "nope")]).await, "notFound");
    create(&app, "Café 42").await;
    let on = app.placed_on("Café 42").await.unwrap();
    let reply =
        app.client().get("getMeetingInfo", &[("meetingID", "Café 42"), ("password", "x"), ("offset", "3")]).await;
    assert!(reply.is_success(), "{}", reply.body);
    assert_eq!(reply.text_at("meetingID").as_deref(), Some("Café 42"));
    let call = app.fleet[on].calls_to("getMeetingInfo").pop().unwrap();
    assert!(call.checksum_valid);
    assert_eq!(
        call.params,
        vec![("meetingID".to_owned(), "Café 42".to_owned()), ("checksum".to_owned(), call.checksum().unwrap())]
    );
    // POST with form data works like GET.
    let reply = app
        .client()
        .post_form("getMeetingInfo", &[("meetingID", "Café 42")], &[], scalelite_tests::BodySigning::QueryOnly)
        .await;
    assert!(reply.is_success());
}

#[tokio::test]
async fn a_meeting_of_a_deleted_server_is_forgotten() {
    let app = TestApp::start().await;
    app.seed_meeting("orphan", "no-such-server", "pw", "555555555").await;
    assert!(app.meeting("orphan").await.is_some());
    assert_failed(&app.client().get("getMeetingInfo", &[("meetingID", "orphan")]).await, "notFound");
    assert_eq!(app.meeting("orphan").await, None);
}

#[tokio::test]
async fn insert_document() {
    let app = TestApp::start().await;
    let doc = r#"<modules><module name="presentation"><document url="https://example.org/b.pdf" filename="b.pdf"/></module></modules>"#;
    assert_failed(&app.client().post_xml("insertDocument", &[("meetingID", "nope")], doc).await, "notFound");
    create(&app, "m").await;
    let on = app.placed_on("m").await.unwrap();
    let reply = app.client().post_xml("insertDocument", &[("meetingID", "m")], doc).await;
    assert!(reply.is_success(), "{}", reply.body);
    let call = app.fleet[on].calls_to("insertDocument").pop().unwrap();
    assert_eq!(call.method, "POST");
    assert_eq!(call.body_text(), doc);
    assert!(call.checksum_valid);
}
