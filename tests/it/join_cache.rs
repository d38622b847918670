//! The join route cache (`JOIN_ROUTE_CACHE_TTL`): a meeting's later joins
//! go where the store last sent one without asking it again, their load
//! still reaches the store, and nothing this process changes (or any other
//! change past the TTL) is routed around.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use scalelite_tests::{ApiClient, Reply, SeedServer, TestApp, eventually_with, http_get, server_id};
use serde_json::json;

use crate::support::{assert_failed, create};

/// Long enough that nothing in a test expires it.
const LONG: &str = "60";
/// Short enough to await its expiry.
const SHORT: &str = "0.05";

/// Generous: conditions met within a TTL of [`SHORT`] or a load flush.
const WITHIN: Duration = Duration::from_secs(10);

async fn join(app: &TestApp, id: &str, password: &str) -> Reply {
    app.client().get("join", &[("meetingID", id), ("fullName", "Ada"), ("password", password)]).await
}

/// The join was redirected to `server`'s own join URL.
fn redirected_to(reply: &Reply, url: &str) -> bool {
    reply.status == 302 && reply.location.as_deref().is_some_and(|l| l.starts_with(&format!("{url}/join?")))
}

/// The value of a series on the API's `/metrics`.
async fn api_metric(app: &TestApp, series: &str) -> f64 {
    let text = app.client().raw_get("/metrics").await.body;
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

const HITS: &str = "scalelite_api_join_route_cache_hits_total";
const MISSES: &str = "scalelite_api_join_route_cache_misses_total";

fn management_url(client: &ApiClient, call: &str, params: &[(&str, &str)]) -> String {
    let query = client.query(params);
    let checksum = client.checksum(call, &query);
    format!("/scalelite/api/{call}?{query}&checksum={checksum}")
}

#[tokio::test]
async fn a_cached_join_lands_in_the_meeting_with_the_role_its_password_gives() {
    let app = TestApp::builder().servers(2).env("JOIN_ROUTE_CACHE_TTL", LONG).start().await;
    let params = [("meetingID", "class"), ("name", "Class"), ("moderatorPW", "teach"), ("attendeePW", "learn")];
    assert!(app.client().get("create", &params).await.is_success());
    let on = app.placed_on("class").await.unwrap();
    let server = &app.fleet[on];
    // The first join asks the store, the next ones are routed from the cache.
    for password in ["learn", "teach", "learn"] {
        let reply = join(&app, "class", password).await;
        assert!(redirected_to(&reply, &server.url()), "{reply:?}");
        let landed = http_get(reply.location.as_deref().unwrap()).await;
        assert_eq!(landed.status, 302, "{}", landed.body);
        assert!(server.calls_to("join").pop().unwrap().checksum_valid);
    }
    assert_eq!(api_metric(&app, MISSES).await, 1.0);
    assert_eq!(api_metric(&app, HITS).await, 2.0);
    let roles: Vec<String> = server.meeting("class").unwrap().attendees.iter().map(|a| a.role.clone()).collect();
    assert_eq!(roles, ["VIEWER", "MODERATOR", "VIEWER"]);
}

#[tokio::test]
async fn the_load_of_cached_joins_reaches_the_store_times_the_multiplier() {
    let app = TestApp::builder().unseeded().servers(1).env("JOIN_ROUTE_CACHE_TTL", LONG).start().await;
    let record =
        SeedServer::enabled("s7", app.fleet[0].url(), app.fleet[0].secret()).multiplier(Some("7")).load(Some(0.0));
    app.seed_server(&record).await;
    app.seed_meeting("ruby-made", "s7", "mp", "987654321").await;
    for _ in 0..3 {
        assert_eq!(join(&app, "ruby-made", "").await.status, 302);
    }
    assert_eq!(api_metric(&app, HITS).await, 2.0);
    eventually_with(WITHIN, "three joins of 7 in the load", || async { app.load("s7").await == Some(21.0) }).await;
}

#[tokio::test]
async fn after_this_process_ends_a_meeting_its_next_join_is_not_sent_there() {
    let app = TestApp::builder().servers(2).env("JOIN_ROUTE_CACHE_TTL", LONG).start().await;
    create(&app, "m").await;
    let on = app.placed_on("m").await.unwrap();
    assert!(redirected_to(&join(&app, "m", "").await, &app.fleet[on].url()));
    assert!(app.client().get("end", &[("meetingID", "m")]).await.is_success());
    assert_failed(&join(&app, "m", "").await, "notFound");
    // Created again (on either server): joins follow the new record.
    create(&app, "m").await;
    let now_on = app.placed_on("m").await.unwrap();
    assert!(redirected_to(&join(&app, "m", "").await, &app.fleet[now_on].url()));
}

#[tokio::test]
async fn a_server_this_process_disables_gets_no_more_joins() {
    let app = TestApp::builder().servers(1).env("JOIN_ROUTE_CACHE_TTL", LONG).start().await;
    create(&app, "m").await;
    assert_eq!(join(&app, "m", "").await.status, 302);
    let client = app.client();
    let url = management_url(&client, "updateServer", &[("id", &server_id(0))]);
    let body = Bytes::from(serde_json::to_vec(&json!({"server": {"state": "disable"}})).unwrap());
    let reply = client.send(Method::POST, &url, Some("application/json"), body).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_failed(&join(&app, "m", "").await, "serverUnavailable");
}

#[tokio::test]
async fn a_route_to_a_server_another_process_took_offline_or_disabled_ends_with_the_ttl() {
    let app =
        TestApp::builder().servers(1).env("JOIN_ROUTE_CACHE_TTL", SHORT).env("REHOME_MEETINGS", "false").start().await;
    let (url, secret) = (app.fleet[0].url(), app.fleet[0].secret());
    for (i, record) in [
        SeedServer::enabled(server_id(0), &url, &secret).online(false),
        SeedServer::enabled(server_id(0), &url, &secret).state("disabled"),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("m{i}");
        create(&app, &id).await;
        assert!(redirected_to(&join(&app, &id, "").await, &url));
        // As the poller (or Ruby Scalelite, or scalelite-admin) writes it.
        app.seed_server(&record).await;
        eventually_with(WITHIN, "joins refused", || async {
            join(&app, &id, "").await.message_key().as_deref() == Some("serverUnavailable")
        })
        .await;
        app.seed_server(&SeedServer::enabled(server_id(0), &url, &secret)).await;
    }
}

#[tokio::test]
async fn a_meeting_whose_server_went_offline_is_still_rehomed_by_a_join() {
    let app =
        TestApp::builder().servers(2).env("JOIN_ROUTE_CACHE_TTL", SHORT).env("RESPONSE_TIMEOUT", "0.5").start().await;
    create(&app, "class").await;
    let a = app.placed_on("class").await.unwrap();
    let b = 1 - a;
    assert!(redirected_to(&join(&app, "class", "").await, &app.fleet[a].url()));
    app.seed_server(&SeedServer::enabled(server_id(a), app.fleet[a].url(), app.fleet[a].secret()).online(false)).await;
    eventually_with(WITHIN, "a join re-homes the meeting", || async {
        redirected_to(&join(&app, "class", "").await, &app.fleet[b].url())
    })
    .await;
    assert!(app.fleet[b].meeting("class").is_some());
}

#[tokio::test]
async fn with_a_ttl_of_0_every_join_asks_the_store() {
    let app = TestApp::builder().servers(1).env("JOIN_ROUTE_CACHE_TTL", "0").start().await;
    create(&app, "m").await;
    let before = app.load(&server_id(0)).await.unwrap();
    for n in 1..=2 {
        assert_eq!(join(&app, "m", "").await.status, 302);
        // Counted by the join itself, before it answered.
        assert_eq!(app.load(&server_id(0)).await, Some(before + f64::from(n)));
    }
    let (url, secret) = (app.fleet[0].url(), app.fleet[0].secret());
    app.seed_server(&SeedServer::enabled(server_id(0), &url, &secret).state("disabled")).await;
    assert_failed(&join(&app, "m", "").await, "serverUnavailable");
    assert_eq!(api_metric(&app, HITS).await, 0.0);
}
