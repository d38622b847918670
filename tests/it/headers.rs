//! The public edge: Rails' default security headers and a request id on
//! every reply, whatever answered it.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use scalelite_tests::{Reply, TestApp, http_request};

use crate::support::create;

/// What Rails 7.2 (`config.load_defaults 7.2`) adds to every reply.
const RAILS_HEADERS: [(&str, &str); 5] = [
    ("x-frame-options", "SAMEORIGIN"),
    ("x-xss-protection", "0"),
    ("x-content-type-options", "nosniff"),
    ("x-permitted-cross-domain-policies", "none"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
];

async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Reply {
    let url = format!("{}{path}", app.origin());
    http_request(Method::GET, &url, headers, Bytes::new(), Duration::from_secs(10)).await.unwrap()
}

#[track_caller]
fn assert_edge_headers(what: &str, reply: &Reply) {
    for (name, value) in RAILS_HEADERS {
        assert_eq!(reply.header(name), Some(value), "{what}: {name} in {:?}", reply.headers);
    }
    let id = reply.header("x-request-id").unwrap_or_else(|| panic!("{what}: no X-Request-Id in {:?}", reply.headers));
    assert!(is_uuid(id), "{what}: {id}");
}

/// `xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx`, lower-case hex.
fn is_uuid(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| g.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        && groups[2].starts_with('4')
}

#[tokio::test]
async fn every_reply_carries_the_security_headers_and_a_request_id() {
    let app = TestApp::builder().servers(1).recordings().start().await;
    create(&app, "m").await;
    let client = app.client();
    let servers = client.checksum("getServers", "");
    let replies = [
        ("version", client.raw_get("/bigbluebutton/api").await),
        ("BBB error", client.get("getMeetingInfo", &[("meetingID", "nope")]).await),
        ("join redirect", client.get("join", &[("meetingID", "m"), ("fullName", "A")]).await),
        ("unsupported", client.raw_get("/nope").await),
        ("health check", client.raw_get("/health_check").await),
        ("metrics", client.raw_get("/metrics").await),
        ("management JSON", client.raw_get(&format!("/scalelite/api/getServers?checksum={servers}")).await),
        ("playback refusal", get(&app, "/recording/nope/presentation", &[]).await),
    ];
    let mut ids = BTreeSet::new();
    for (what, reply) in &replies {
        assert_edge_headers(what, reply);
        ids.insert(reply.header("x-request-id").unwrap().to_owned());
    }
    assert_eq!(replies[2].1.status, 302);
    assert_eq!(ids.len(), replies.len(), "every request gets its own id");
}

#[tokio::test]
async fn host_authorization_refusals_carry_them_too() {
    let app = TestApp::builder().env("URL_HOST", "sl.example.org").start().await;
    let reply = get(&app, "/bigbluebutton/api", &[("host", "evil.example")]).await;
    assert_eq!(reply.status, 403);
    assert_edge_headers("403", &reply);
}

#[tokio::test]
async fn a_sane_request_id_from_the_proxy_is_kept() {
    let app = TestApp::start().await;
    let id = |reply: &Reply| reply.header("x-request-id").map(str::to_owned);
    // nginx's $request_id: 32 hex digits.
    let reply = get(&app, "/bigbluebutton/api", &[("x-request-id", "3f9a0c1e5b7d42e8a6c4f2b0d8e6a4c2")]).await;
    assert_eq!(id(&reply).as_deref(), Some("3f9a0c1e5b7d42e8a6c4f2b0d8e6a4c2"));
    // Anything but letters, digits, `_`, `-` and `@` is dropped (Rails' rule),
    // and at most 255 characters are kept.
    let reply = get(&app, "/bigbluebutton/api", &[("x-request-id", "abc def\t<script>=1;")]).await;
    assert_eq!(id(&reply).as_deref(), Some("abcdefscript1"));
    let long = "a".repeat(400);
    assert_eq!(id(&get(&app, "/bigbluebutton/api", &[("x-request-id", &long)]).await).map(|i| i.len()), Some(255));
    // Nothing usable left: a fresh UUID.
    let reply = get(&app, "/bigbluebutton/api", &[("x-request-id", "<>;:")]).await;
    assert!(is_uuid(&id(&reply).unwrap()), "{:?}", reply.headers);
}
