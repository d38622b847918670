//! `GET|POST /bigbluebutton/api`: the version document.

use bytes::Bytes;
use http::Method;
use scalelite_tests::{ApiClient, LB_SECRET, TestApp};

#[tokio::test]
async fn version_document_needs_no_checksum() {
    let app = TestApp::start().await;
    let reply = app.client().raw_get("/bigbluebutton/api").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.content_type(), Some("application/xml; charset=utf-8"));
    insta::assert_snapshot!(reply.body, @r#"
    <?xml version="1.0"?>
    <response>
      <returncode>SUCCESS</returncode>
      <version>2.0</version>
    </response>
    "#);
    // Trailing slash, and Moodle's probe with an empty call name.
    let moodle = ApiClient::new(app.api_url(), LB_SECRET);
    let probe = format!("/bigbluebutton/api/?&checksum={}", moodle.checksum("", ""));
    let reply = app.client().raw_get(&probe).await;
    assert_eq!(reply.text_at("version").as_deref(), Some("2.0"));
    // POST and HEAD.
    let reply = app.client().send(Method::POST, "/bigbluebutton/api", None, Bytes::new()).await.unwrap();
    assert!(reply.is_success());
    let reply = app.client().send(Method::HEAD, "/bigbluebutton/api", None, Bytes::new()).await.unwrap();
    assert_eq!(reply.status, 200);
    assert!(reply.body.is_empty());
}

#[tokio::test]
async fn build_number_is_shown() {
    let app = TestApp::builder().env("BUILD_NUMBER", "v1.2.3").start().await;
    let reply = app.client().raw_get("/bigbluebutton/api").await;
    assert_eq!(reply.text_at("build").as_deref(), Some("v1.2.3"));
}
