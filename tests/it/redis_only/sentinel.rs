//! `REDIS_URL=redis+sentinel://...`: the API follows the master that Redis
//! Sentinel names through a planned switchover and a crash of the master,
//! without a restart and without losing replicated state.

use std::time::{Duration, Instant};

use scalelite_tests::seed::{self, SeedServer};
use scalelite_tests::sentinel::MASTER_NAME;
use scalelite_tests::{NS, SentinelGroup, TestApp, TestBackend, TestRedis, server_id};

/// `REDIS_TIMEOUT` of these tests.
const REDIS_TIMEOUT: &str = "1";
/// How long any one request may take, failover or not.
const MAX_LATENCY: Duration = Duration::from_secs(4);

/// An API whose `REDIS_URL` names the group's master through its sentinels,
/// with its fleet registered there.
async fn app_on(group: &SentinelGroup) -> TestApp {
    let app = TestApp::builder()
        .backend(TestBackend::Redis)
        .unseeded()
        .env("REDIS_URL", group.url())
        .env("REDIS_TIMEOUT", REDIS_TIMEOUT)
        .start()
        .await;
    let master = group.master().await;
    for (i, server) in app.fleet.iter().enumerate() {
        seed::seed_server(master, NS, &SeedServer::enabled(server_id(i), server.url(), server.secret())).await;
    }
    app
}

async fn meeting(redis: &TestRedis, id: &str) -> std::collections::BTreeMap<String, String> {
    seed::hash(redis, &format!("{NS}:meeting:{id}")).await
}

/// Creates meetings `<prefix>-1`, `<prefix>-2`, ... until one succeeds
/// (within 15 s); every attempt must fail fast with `internalError` if it
/// fails. Returns the id created.
async fn create_until_success(app: &TestApp, prefix: &str) -> String {
    let client = app.client().timeout(Duration::from_secs(10));
    let deadline = Instant::now() + Duration::from_secs(15);
    for n in 1.. {
        let id = format!("{prefix}-{n}");
        let sent = Instant::now();
        let reply = client.get("create", &[("meetingID", &id), ("name", "Room")]).await;
        assert!(sent.elapsed() < MAX_LATENCY, "create took {:?}", sent.elapsed());
        if reply.is_success() {
            return id;
        }
        assert_eq!(reply.message_key().as_deref(), Some("internalError"), "{}", reply.body);
        assert!(Instant::now() < deadline, "no create succeeded within 15 s: {}", reply.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    unreachable!()
}

#[tokio::test]
async fn the_api_follows_a_sentinel_switchover() {
    let group = SentinelGroup::start(1).await;
    let app = app_on(&group).await;
    let before = create_until_success(&app, "before").await;
    let old = group.master_port().await;
    assert!(meeting(group.server(old), &before).await.contains_key("server_id"));
    group.await_replication().await;

    assert_eq!(group.sentinels[0].cmd(&["SENTINEL", "FAILOVER", MASTER_NAME]).await.as_str(), Some("OK"));
    let new = group.await_new_master(old, Duration::from_secs(15)).await;
    // The old master still takes writes until Sentinel reconfigures it,
    // seconds later: a client that kept writing there would lose them.
    assert_eq!(group.role(old).await.as_deref(), Some("master"));

    // Same process, new master: writes land there at once, and what was
    // written before the switchover still routes joins.
    let after = create_until_success(&app, "after").await;
    assert!(meeting(group.server(new), &after).await.contains_key("server_id"), "{after} not on the new master");
    let join = app.client().get("join", &[("meetingID", &before), ("fullName", "Ada")]).await;
    assert_eq!(join.status, 302, "{}", join.body);
    assert_eq!(app.client().raw_get("/health_check").await.body, "success");
}

#[tokio::test]
async fn the_api_follows_sentinel_when_the_master_crashes() {
    let group = SentinelGroup::start(3).await;
    let app = app_on(&group).await;
    let before = create_until_success(&app, "before").await;
    group.await_replication().await;
    // The first sentinel in REDIS_URL is gone too: the others are asked.
    group.sentinels[0].stop().await;
    let old = group.master_port().await;

    let crashed = Instant::now();
    group.server(old).stop().await;
    // While no master is elected, calls fail quickly with a BBB error.
    let sent = Instant::now();
    let reply = app.client().get("isMeetingRunning", &[("meetingID", &before)]).await;
    assert_eq!(reply.message_key().as_deref(), Some("internalError"), "{}", reply.body);
    assert!(sent.elapsed() < MAX_LATENCY, "took {:?}", sent.elapsed());
    let new = group.await_new_master(old, Duration::from_secs(20)).await;
    let after = create_until_success(&app, "after").await;
    let outage = crashed.elapsed();
    assert!(outage < Duration::from_secs(15), "the API was down for {outage:?}");

    assert!(meeting(group.server(new), &after).await.contains_key("server_id"));
    assert!(meeting(group.server(new), &before).await.contains_key("server_id"), "replicated state survives");
    let join = app.client().get("join", &[("meetingID", &before), ("fullName", "Ada")]).await;
    assert_eq!(join.status, 302, "{}", join.body);
}
