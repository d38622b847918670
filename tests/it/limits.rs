//! Per-tenant limits, set with `scalelite-admin tenants update … --max-meetings
//! N --max-participants N --rate R`: a create beyond the tenant's concurrent
//! meetings, a join beyond its participants and a request beyond its rate
//! are each refused with a `FAILED` XML answer of their own `messageKey`
//! (HTTP 200, as every BBB error), and other tenants go on unaffected.

use scalelite_core::config::Config;
use scalelite_store::Tenant;
use scalelite_tests::{ApiClient, Reply, TestApp, TestAppBuilder};

use crate::support::{Run, admin_with, assert_failed};

const URL_HOST: &str = "sl.test";

struct Tenants {
    app: TestApp,
    a: Tenant,
}

impl Tenants {
    /// Tenants `a` and `b`; tenant changes reach the API at once.
    async fn start(builder: TestAppBuilder) -> Self {
        let app = builder
            .env("MULTITENANCY_ENABLED", "true")
            .env("URL_HOST", URL_HOST)
            .env("TENANT_CACHE_TTL", "0")
            .start()
            .await;
        let a = Tenant::new("a", "secret-a");
        let b = Tenant::new("b", "secret-b");
        app.state.store.create_tenant(&a).await.unwrap();
        app.state.store.create_tenant(&b).await.unwrap();
        Self { app, a }
    }

    fn a(&self) -> ApiClient {
        self.app.client().with_secret("secret-a").host(format!("a.{URL_HOST}"))
    }

    fn b(&self) -> ApiClient {
        self.app.client().with_secret("secret-b").host(format!("b.{URL_HOST}"))
    }

    /// `scalelite-admin tenants update <a> <args…>`.
    async fn limit_a(&self, args: &[&str]) -> Run {
        let config = Config::from_env(&self.app.store_env().with("MULTITENANCY_ENABLED", "true")).unwrap();
        let mut all = vec!["tenants", "update", self.a.id.as_str()];
        all.extend_from_slice(args);
        admin_with(&config, &all, "").await
    }

    /// Create calls that reached any BBB server.
    fn creates_forwarded(&self) -> usize {
        self.app.fleet.iter().map(|server| server.calls_to("create").len()).sum()
    }
}

async fn create(client: &ApiClient, id: &str) -> Reply {
    client.get("create", &[("meetingID", id), ("name", "Room"), ("moderatorPW", "mp"), ("attendeePW", "ap")]).await
}

async fn join(client: &ApiClient, id: &str) -> Reply {
    client.get("join", &[("meetingID", id), ("fullName", "Student"), ("password", "ap")]).await
}

#[tokio::test]
async fn a_create_beyond_the_tenants_concurrent_meetings_is_refused() {
    let t = Tenants::start(TestApp::builder().servers(2)).await;
    let run = t.limit_a(&["--max-meetings", "2"]).await.ok();
    assert!(run.out.contains("scalelite-limit-max-meetings: 2"), "{}", run.out);
    let (a, b) = (t.a(), t.b());

    assert!(create(&a, "r1").await.is_success());
    assert!(create(&a, "r2").await.is_success());
    let refused = create(&a, "r3").await;
    assert_failed(&refused, "maxMeetingsReached");
    assert!(refused.text_at("message").unwrap().contains("(2)"), "{}", refused.body);
    assert_eq!(t.creates_forwarded(), 2, "a refused create reaches no server");
    assert_eq!(t.app.meeting("r3").await, None);
    // Creating a running meeting again is not a new meeting.
    assert!(create(&a, "r1").await.is_success());
    // Another tenant has no limit.
    for id in ["b1", "b2", "b3"] {
        assert!(create(&b, id).await.is_success());
    }

    // An ended meeting frees its place.
    assert!(a.get("end", &[("meetingID", "r1"), ("password", "mp")]).await.is_success());
    assert!(create(&a, "r3").await.is_success());
    assert_failed(&create(&a, "r4").await, "maxMeetingsReached");
    // So does a meeting the poller finds ended on its server.
    let server = &t.app.fleet[t.app.placed_on("r2").await.unwrap()];
    assert!(server.remove_meeting("r2").is_some());
    // (Older than a create can take to reach its server.)
    t.app.age_meeting("r2", std::time::Duration::from_secs(3600)).await;
    t.app.poll().await;
    assert_eq!(t.app.meeting("r2").await, None);
    assert!(create(&a, "r4").await.is_success());

    // 0 lifts the limit.
    t.limit_a(&["--max-meetings", "0"]).await.ok();
    assert!(create(&a, "r5").await.is_success());
    // Nonsense is refused by the command and changes nothing.
    let bad = t.limit_a(&["--max-meetings", "lots"]).await;
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(create(&a, "r6").await.is_success());
}

#[tokio::test]
async fn requests_beyond_the_tenants_rate_are_refused_with_xml() {
    let t = Tenants::start(TestApp::builder().servers(1)).await;
    t.limit_a(&["--rate", "2"]).await.ok();
    let (a, b) = (t.a(), t.b());
    let running = |client: ApiClient| async move { client.get("isMeetingRunning", &[("meetingID", "x")]).await };
    // Requests without the tenant's secret do not use up its budget.
    let forged = t.app.client().with_secret("guess").host(format!("a.{URL_HOST}"));
    for _ in 0..3 {
        assert_failed(&running(forged.clone()).await, "checksumError");
    }
    // A minute's worth (2), then refused, on every call.
    assert!(running(a.clone()).await.is_success());
    assert!(running(a.clone()).await.is_success());
    let refused = running(a.clone()).await;
    assert_failed(&refused, "rateLimitExceeded");
    assert_ne!(refused.status, 429);
    assert_failed(&create(&a, "room").await, "rateLimitExceeded");
    assert_eq!(t.creates_forwarded(), 0);
    // Another tenant is not slowed down.
    for _ in 0..5 {
        assert!(running(b.clone()).await.is_success());
    }
    // Lifting the limit takes effect at once.
    t.limit_a(&["--rate", "0"]).await.ok();
    assert!(running(a).await.is_success());
    // Refusals are counted by their key.
    let metrics = t.app.client().host(URL_HOST).raw_get("/metrics").await.body;
    for series in [
        "scalelite_api_requests_total{call=\"isMeetingRunning\",outcome=\"rateLimitExceeded\"} 1",
        "scalelite_api_requests_total{call=\"create\",outcome=\"rateLimitExceeded\"} 1",
    ] {
        assert!(metrics.lines().any(|line| line == series), "no {series} in\n{metrics}");
    }
}

#[tokio::test]
async fn a_join_beyond_the_tenants_participants_is_refused() {
    // With the join route cache on: a limited tenant's joins still ask the
    // store, which counts them.
    let t = Tenants::start(TestApp::builder().servers(2).env("JOIN_ROUTE_CACHE_TTL", "60")).await;
    t.limit_a(&["--max-participants", "3"]).await.ok();
    let (a, b) = (t.a(), t.b());
    assert!(create(&a, "class").await.is_success());
    assert!(create(&b, "other").await.is_success());
    let server = &t.app.fleet[t.app.placed_on("class").await.unwrap()];
    assert!(server.add_attendees("class", 3));
    // Before the poller counts them, the joins routed are counted.
    assert_eq!(join(&a, "class").await.status, 302);
    // The poller counts 3 participants in the tenant's meetings.
    t.app.poll().await;
    let refused = join(&a, "class").await;
    assert_failed(&refused, "maxParticipantsReached");
    assert_eq!(refused.header("location"), None, "the browser stays on the XML answer");
    // Another tenant's meetings are not limited.
    assert_eq!(join(&b, "other").await.status, 302);

    // Raised to 5: two more joins fit until the next poll, the third not.
    t.limit_a(&["--max-participants", "5"]).await.ok();
    assert_eq!(join(&a, "class").await.status, 302);
    assert_eq!(join(&a, "class").await.status, 302);
    assert_failed(&join(&a, "class").await, "maxParticipantsReached");
    // The next poll counts what the servers report again (3: the redirects
    // above were not followed).
    t.app.poll().await;
    assert_eq!(join(&a, "class").await.status, 302);
}

mod redis_only {
    use scalelite_tests::{TestApp, TestBackend};

    use super::{Tenants, create};

    /// What Ruby Scalelite sharing the Redis sees: the tenant hash keeps
    /// exactly its fields (the limits are tenant settings), and the counts
    /// live in keys of their own, kept clean by end and prune.
    #[tokio::test]
    async fn limits_leave_rubys_records_alone_and_their_keys_clean() {
        let t = Tenants::start(TestApp::builder().backend(TestBackend::Redis).servers(1)).await;
        t.limit_a(&["--max-meetings", "5", "--max-participants", "50", "--rate", "600"]).await.ok();
        let (app, a) = (&t.app, t.a());
        let redis = app.redis();
        let id = t.a.id.as_str();
        let tenant = redis.cmd(&["HGETALL", &app.key(&format!("tenant:{id}"))]).await.as_map();
        assert_eq!(tenant.keys().map(String::as_str).collect::<Vec<_>>(), ["name", "secrets"]);
        let mut params: Vec<String> = Vec::new();
        for setting in redis.cmd(&["SMEMBERS", &app.key(&format!("tenant_settings:{id}"))]).await.as_vec() {
            let hash = redis.cmd(&["HGETALL", &app.key(&format!("tenant_setting:{setting}"))]).await.as_map();
            assert_eq!(
                hash.keys().map(String::as_str).collect::<Vec<_>>(),
                ["override", "param", "tenant_id", "value"]
            );
            params.push(hash["param"].clone());
        }
        params.sort();
        assert_eq!(
            params,
            ["scalelite-limit-max-meetings", "scalelite-limit-max-participants", "scalelite-limit-rate"]
        );

        assert!(create(&a, "r1").await.is_success());
        assert!(create(&a, "r2").await.is_success());
        // The limits are not create parameters for BBB.
        let forwarded = app.fleet[0].calls_to("create").pop().unwrap();
        assert_eq!(forwarded.param("scalelite-limit-max-meetings"), None);
        let members = |key: String| async move {
            let mut ids = redis.cmd(&["SMEMBERS", &key]).await.as_vec();
            ids.sort();
            ids
        };
        let tenant_meetings = app.key(&format!("tenant_meetings:{id}"));
        assert_eq!(members(tenant_meetings.clone()).await, ["r1", "r2"]);
        assert!(a.get("end", &[("meetingID", "r1"), ("password", "mp")]).await.is_success());
        assert_eq!(members(tenant_meetings.clone()).await, ["r2"]);
        // A record that expired (as Ruby's TTL leaves it) is pruned.
        redis.cmd(&["DEL", &app.key("meeting:r2")]).await;
        app.poll().await;
        assert!(members(tenant_meetings).await.is_empty());
        // The poller's participant counts: only tenants with participants.
        assert_eq!(redis.cmd(&["HLEN", &app.key("tenant_participants")]).await.as_int(), Some(0));
        // A removed tenant leaves no set behind.
        assert!(create(&a, "r3").await.is_success());
        assert!(app.state.store.delete_tenant(&t.a.id).await.unwrap());
        let exists = redis.cmd(&["EXISTS", &app.key(&format!("tenant_meetings:{id}"))]).await.as_int();
        assert_eq!(exists, Some(0));
    }
}
