//! Helpers shared by the integration tests.

use scalelite_tests::{Reply, TestApp};

/// Creates `id` through the API like Greenlight would and asserts success.
pub async fn create(app: &TestApp, id: &str) -> Reply {
    let reply = app.client().get("create", &[("meetingID", id), ("name", "Room")]).await;
    assert!(reply.is_success(), "create {id}: {}", reply.body);
    reply
}

/// Asserts a BBB `FAILED` reply with `key`, HTTP 200 and the XML type.
#[track_caller]
pub fn assert_failed(reply: &Reply, key: &str) {
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.returncode().as_deref(), Some("FAILED"), "{}", reply.body);
    assert_eq!(reply.message_key().as_deref(), Some(key), "{}", reply.body);
    assert_eq!(reply.content_type(), Some("application/xml; charset=utf-8"));
}
