//! docs/MIGRATING.md's order, checked against Ruby Scalelite's `create`
//! replayed on the Redis state our processes leave. Our poller keeps the
//! meetings of a server that goes offline (Ruby's deletes them), and Ruby's
//! `create` sends a meeting it finds to that meeting's server whatever the
//! server's state: beside our poller, a Ruby API would answer "Unable to
//! create meeting on server" for that room until the record expires (a
//! day). So the order replaces every Ruby API before our poller starts, and
//! rolls the poller back before the APIs.

use std::collections::BTreeMap;

use scalelite_tests::{Mode, TestApp, TestBackend, server_id};

/// The server Ruby Scalelite's `create` sends `id` to (reference §5.5 step
/// 3: a found meeting is created again on its server, whatever that
/// server's state or online flag; only a cordoned server is asked whether
/// the meeting still runs), with that server's record; `None` when Ruby
/// finds no meeting and places it anew on an online server.
async fn ruby_create_target(app: &TestApp, id: &str) -> Option<(String, BTreeMap<String, String>)> {
    let server = app.meeting_record(id).await.get("server_id")?.clone();
    let record = app.server_record(&server).await;
    Some((server, record))
}

#[tokio::test]
async fn ruby_create_beside_our_poller_would_reach_an_offline_server() {
    let app = TestApp::builder().backend(TestBackend::Redis).servers(2).start().await;
    let created = app.client().get("create", &[("meetingID", "room"), ("name", "Room")]).await;
    assert_eq!(created.returncode().as_deref(), Some("SUCCESS"), "{}", created.body);
    let on = app.placed_on("room").await.expect("placed");

    // The server fails; two of our poller's rounds take it offline.
    app.fleet[on].set_mode(Mode::Down);
    app.poll().await;
    app.poll().await;
    assert_eq!(app.server_record(&server_id(on)).await["online"], "false");

    let (target, record) = ruby_create_target(&app, "room").await.expect("our poller keeps the meeting record");
    assert_eq!(target, server_id(on));
    assert_eq!(
        record["online"], "false",
        "a Ruby API would create this room on the offline server: docs/MIGRATING.md must replace the APIs first"
    );

    // Our API replaces the stale record on create, after which a Ruby API
    // (during a rollback) would reach an online server too.
    let again = app.client().get("create", &[("meetingID", "room"), ("name", "Room")]).await;
    assert_eq!(again.returncode().as_deref(), Some("SUCCESS"), "{}", again.body);
    let (target, record) = ruby_create_target(&app, "room").await.expect("placed again");
    assert_ne!(target, server_id(on));
    assert_eq!(record["online"], "true");
}

/// The handbook says so: APIs before the poller, and the poller rolled back
/// before the APIs.
#[test]
fn migrating_md_replaces_the_apis_before_the_poller() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/MIGRATING.md")).unwrap();
    let section = |heading: &str| {
        let start = text.find(heading).unwrap_or_else(|| panic!("MIGRATING.md has no {heading:?}"));
        let rest = &text[start + heading.len()..];
        rest[..rest.find("\n## ").unwrap_or(rest.len())].to_owned()
    };
    let order = section("## The order");
    let position = |what: &str| order.find(what).unwrap_or_else(|| panic!("no {what:?} step in The order"));
    assert!(position("**API.**") < position("**Poller**"), "the APIs are replaced before the poller");
    let rollback = section("## Rolling back");
    assert!(rollback.contains("(importer, poller, API)"), "{rollback}");
}
