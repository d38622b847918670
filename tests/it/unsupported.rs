//! The catch-all, methods each call refuses, and content types.

use bytes::Bytes;
use http::Method;
use scalelite_tests::TestApp;

use crate::support::assert_failed;

#[tokio::test]
async fn unknown_calls_paths_and_methods_are_unsupported() {
    let app = TestApp::start().await;
    let client = app.client();
    for target in [
        client.url("getJoinUrl", &[("sessionToken", "t")]),
        client.url("create.xml", &[("meetingID", "m")]),
        client.url("GetMeetings", &[]),
        "/nope".to_owned(),
        "/bigbluebutton".to_owned(),
    ] {
        let reply = client.raw_get(&target).await;
        assert_failed(&reply, "unsupportedRequest");
        assert_eq!(reply.message().as_deref(), Some("This request is not supported."));
    }
    // join is GET only; insertDocument is POST only; PUT/DELETE go nowhere.
    let join = client.url("join", &[("meetingID", "m"), ("fullName", "x")]);
    let reply = client.send(Method::POST, &join, None, Bytes::new()).await.unwrap();
    assert_failed(&reply, "unsupportedRequest");
    let reply = client.get("insertDocument", &[("meetingID", "m")]).await;
    assert_failed(&reply, "unsupportedRequest");
    for method in [Method::PUT, Method::DELETE, Method::OPTIONS] {
        let reply =
            client.send(method, &client.url("create", &[("meetingID", "m")]), None, Bytes::new()).await.unwrap();
        assert_failed(&reply, "unsupportedRequest");
    }
    insta::assert_snapshot!(client.raw_get("/nope").await.body, @r#"
    <?xml version="1.0"?>
    <response>
      <returncode>FAILED</returncode>
      <messageKey>unsupportedRequest</messageKey>
      <message>This request is not supported.</message>
    </response>
    "#);
    // Nothing reached a BBB server.
    assert_eq!(app.fleet.iter().map(|s| s.total_calls()).sum::<usize>(), 0);
}

#[tokio::test]
async fn content_type_is_checked_before_the_checksum() {
    let app = TestApp::start().await;
    let client = app.client();
    let reply = client.post_raw("getMeetingInfo", "meetingID=m", Some("application/json"), "{}").await;
    assert_failed(&reply, "unsupportedContentType");
    insta::assert_snapshot!(reply.body, @r#"
    <?xml version="1.0"?>
    <response>
      <returncode>FAILED</returncode>
      <messageKey>unsupportedContentType</messageKey>
      <message>POST request Content-Type is missing or unsupported</message>
    </response>
    "#);
    // A body without any content type is refused too, even with a bad checksum.
    let url = format!("{}?meetingID=m&checksum=bad", client.call_url("getMeetingInfo"));
    let reply = client.send(Method::POST, &url, None, Bytes::from_static(b"x=1")).await.unwrap();
    assert_failed(&reply, "unsupportedContentType");
    // create accepts XML, insertDocument only XML.
    let reply =
        client.post_raw("insertDocument", "meetingID=m", Some("application/x-www-form-urlencoded"), "a=1").await;
    assert_failed(&reply, "unsupportedContentType");
    let reply = client.post_raw("create", "meetingID=m", Some("text/plain"), "hello").await;
    assert_failed(&reply, "unsupportedContentType");
}

/// BBB 3.0 (A7): each call's media types as bbb-web takes them, compared
/// case-insensitively with their parameters ignored.
#[tokio::test]
async fn content_types_per_call_as_bbb_web_takes_them() {
    let app = TestApp::start().await;
    let client = app.client();
    let xml = "<modules><module name=\"presentation\"><document url=\"https://x.test/a.pdf\"/></module></modules>";
    for content_type in ["application/xml", "TEXT/XML; charset=UTF-8", "Application/Xml;charset=utf-8"] {
        let reply = client.post_raw("create", "meetingID=m&name=Room", Some(content_type), xml).await;
        assert!(reply.is_success(), "{content_type}: {}", reply.body);
        let reply = client.post_raw("insertDocument", "meetingID=m", Some(content_type), xml).await;
        assert!(reply.is_success(), "{content_type}: {}", reply.body);
    }
    for content_type in ["Application/X-WWW-Form-Urlencoded; charset=UTF-8", "application/x-www-form-urlencoded"] {
        let reply = client.post_raw("getMeetingInfo", "meetingID=m", Some(content_type), "other=1").await;
        assert!(reply.is_success(), "{content_type}: {}", reply.body);
    }
    // Rails' XML synonym is not one of bbb-web's; XML is not a form.
    let reply = client.post_raw("create", "meetingID=m&name=Room", Some("application/x-xml"), xml).await;
    assert_failed(&reply, "unsupportedContentType");
    for call in ["getMeetingInfo", "end", "isMeetingRunning", "getMeetings"] {
        let reply = client.post_raw(call, "meetingID=m", Some("application/xml"), xml).await;
        assert_failed(&reply, "unsupportedContentType");
    }
    let reply =
        client.post_raw("insertDocument", "meetingID=m", Some("multipart/form-data; boundary=x"), "--x--").await;
    assert_failed(&reply, "unsupportedContentType");
}

#[tokio::test]
async fn host_authorization_with_url_host() {
    let app = TestApp::builder().env("URL_HOST", "sl.example.com").start().await;
    let client = app.client();
    let url = client.url("isMeetingRunning", &[("meetingID", "m")]);
    let full = client.resolve(&url);
    let wrong = scalelite_tests::http_request(Method::GET, &full, &[], Bytes::new(), std::time::Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(wrong.status, 403);
    assert!(wrong.body.is_empty());
    let right = scalelite_tests::http_request(
        Method::GET,
        &full,
        &[("host", "sl.example.com")],
        Bytes::new(),
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert!(right.is_success(), "{}", right.body);
    // A forwarded host must match too; health checks are exempt.
    let forwarded = scalelite_tests::http_request(
        Method::GET,
        &full,
        &[("host", "sl.example.com"), ("x-forwarded-host", "evil.example.org")],
        Bytes::new(),
        std::time::Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(forwarded.status, 403);
    let health = client.raw_get("/health_check").await;
    assert_eq!(health.status, 200);
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_an_xml_error() {
    let app = TestApp::builder().servers(1).env("MAX_REQUEST_BODY_BYTES", "1024").start().await;
    let slides = format!("<modules>{}</modules>", "x".repeat(4096));
    let reply = app.client().post_xml("create", &[("meetingID", "m"), ("name", "x")], &slides).await;
    // HTTP 413 with the FAILED envelope: proxies see the refusal, BBB
    // clients can still read it.
    assert_eq!(reply.status, 413, "{}", reply.body);
    assert_eq!(reply.returncode().as_deref(), Some("FAILED"));
    assert_eq!(reply.message_key().as_deref(), Some("internalError"));
    assert_eq!(reply.message().as_deref(), Some("The request body is too large."));
    assert_eq!(app.fleet[0].call_count("create"), 0);
}
