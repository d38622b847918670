//! `/metrics` on the API, and the Grafana dashboard's queries.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use scalelite_tests::{Mode, TestApp, eventually_with};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

use crate::support::create;

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
}

#[tokio::test]
async fn api_metrics_count_calls_outcomes_and_upstream_errors() {
    let app = TestApp::builder().servers(2).env("RESPONSE_TIMEOUT", "0.5").start().await;
    create(&app, "secret-meeting-id-123").await;
    for _ in 0..3 {
        let reply = app.client().get("join", &[("meetingID", "secret-meeting-id-123"), ("fullName", "A")]).await;
        assert_eq!(reply.status, 302);
    }
    app.client().get("getMeetingInfo", &[("meetingID", "unknown")]).await;
    app.client().clone().with_secret("bad").get("getMeetings", &[]).await;
    let on = app.placed_on("secret-meeting-id-123").await.unwrap();
    app.fleet[on].set_mode(Mode::Down);
    app.client().get("getMeetingInfo", &[("meetingID", "secret-meeting-id-123")]).await;
    app.client().get("getMeetings", &[]).await;
    app.client().raw_get("/nope").await;

    let reply = app.client().raw_get("/metrics").await;
    assert_eq!(reply.status, 200);
    assert!(reply.content_type().unwrap().starts_with("application/openmetrics-text"));
    let text = reply.body;
    let count = |series: &str| value(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    assert_eq!(count("scalelite_api_requests_total{call=\"join\",outcome=\"SUCCESS\"}"), 3.0);
    assert_eq!(count("scalelite_api_requests_total{call=\"create\",outcome=\"SUCCESS\"}"), 1.0);
    assert_eq!(count("scalelite_api_requests_total{call=\"getMeetingInfo\",outcome=\"notFound\"}"), 1.0);
    assert_eq!(count("scalelite_api_requests_total{call=\"getMeetings\",outcome=\"checksumError\"}"), 1.0);
    assert_eq!(count("scalelite_api_requests_total{call=\"getMeetingInfo\",outcome=\"internalError\"}"), 1.0);
    assert_eq!(count("scalelite_api_requests_total{call=\"unsupported\",outcome=\"unsupportedRequest\"}"), 1.0);
    assert_eq!(count("scalelite_api_upstream_errors_total{call=\"getMeetingInfo\",kind=\"no_returncode\"}"), 1.0);
    assert_eq!(count("scalelite_api_upstream_errors_total{call=\"getMeetings\",kind=\"no_returncode\"}"), 1.0);
    assert_eq!(count("scalelite_api_get_meetings_fanouts_total"), 1.0);
    assert_eq!(count("scalelite_api_request_duration_seconds_count{call=\"join\"}"), 3.0);
    // Labels are bounded: no meeting id, query or secret ever appears.
    assert!(!text.contains("secret-meeting-id-123"));
    assert!(!text.contains(scalelite_tests::LB_SECRET));
}

#[tokio::test]
async fn error_keys_a_bbb_server_makes_up_do_not_become_new_series() {
    let app = TestApp::builder().servers(1).start().await;
    create(&app, "m").await;
    for i in 0..25 {
        app.fleet[0].set_mode(Mode::Failed { key: format!("madeUpKey{i}"), message: "nope".into() });
        let reply = app.client().get("getMeetingInfo", &[("meetingID", "m")]).await;
        // The front-end still sees the server's own key.
        assert_eq!(reply.message_key(), Some(format!("madeUpKey{i}")));
    }
    app.fleet[0].set_mode(Mode::Failed { key: "invalidPassword".into(), message: "nope".into() });
    app.client().get("getMeetingInfo", &[("meetingID", "m")]).await;

    let text = app.client().raw_get("/metrics").await.body;
    assert!(!text.contains("madeUpKey"), "{text}");
    let count = |series: &str| value(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    assert_eq!(count("scalelite_api_requests_total{call=\"getMeetingInfo\",outcome=\"other\"}"), 25.0);
    assert_eq!(count("scalelite_api_requests_total{call=\"getMeetingInfo\",outcome=\"invalidPassword\"}"), 1.0);
    let series = text.lines().filter(|l| l.starts_with("scalelite_api_requests_total{call=\"getMeetingInfo\"")).count();
    assert_eq!(series, 2, "{text}");
}

#[tokio::test]
async fn the_recordings_calls_are_counted_under_their_own_names() {
    let app = TestApp::builder().start().await;
    let calls = ["getRecordings", "publishRecordings", "updateRecordings", "deleteRecordings"];
    for call in calls {
        app.client().get(call, &[("recordID", "r1"), ("publish", "true")]).await;
    }
    let text = app.client().raw_get("/metrics").await.body;
    for call in calls {
        let series = format!("scalelite_api_request_duration_seconds_count{{call=\"{call}\"}}");
        assert_eq!(value(&text, &series), Some(1.0), "{series} in\n{text}");
    }
    assert!(!text.contains("call=\"unsupported\""), "{text}");
}

#[tokio::test]
async fn a_client_that_goes_away_mid_request_is_no_longer_in_flight() {
    // The server never answers, and the API would wait a minute for it.
    let app = TestApp::builder().servers(1).env("RESPONSE_TIMEOUT", "60").start().await;
    create(&app, "m").await;
    app.fleet[0].set_mode(Mode::Hung);
    let in_flight = || app.state.metrics.in_flight.get();
    assert_eq!(in_flight(), 0);
    let url = app.client().url("getMeetingInfo", &[("meetingID", "m")]);
    let target = url.strip_prefix(&app.origin()).unwrap();
    let mut client = TcpStream::connect(app.addr).await.unwrap();
    client.write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
    eventually_with(Duration::from_secs(10), "the request waiting for the server", || async {
        app.fleet[0].call_count("getMeetingInfo") == 1
    })
    .await;
    assert_eq!(in_flight(), 1);
    drop(client);
    eventually_with(Duration::from_secs(10), "the request no longer in flight", || async { in_flight() == 0 }).await;
}

async fn scrape(url: &str, authorization: Option<&str>) -> scalelite_tests::Reply {
    let headers: Vec<(&str, &str)> = authorization.map(|a| vec![("authorization", a)]).unwrap_or_default();
    scalelite_tests::http_request(http::Method::GET, url, &headers, bytes::Bytes::new(), Duration::from_secs(10))
        .await
        .unwrap()
}

#[track_caller]
fn assert_refused(reply: &scalelite_tests::Reply) {
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(reply.header("www-authenticate"), Some("Bearer realm=\"metrics\""));
    assert!(!reply.body.contains("scalelite_"), "{}", reply.body);
    assert!(!reply.body.contains(TOKEN));
}

const TOKEN: &str = "9c1f6e0b-scrape-token";

#[tokio::test]
async fn with_a_bearer_token_only_scrapes_that_send_it_see_the_api_metrics() {
    let app = TestApp::builder().env("METRICS_BEARER_TOKEN", TOKEN).start().await;
    let url = format!("{}/metrics", app.origin());
    assert_refused(&scrape(&url, None).await);
    assert_refused(&scrape(&url, Some("Bearer wrong-token")).await);
    assert_refused(&scrape(&url, Some(&format!("Basic {TOKEN}"))).await);
    // What Prometheus sends with `authorization: {credentials: ...}`.
    let reply = scrape(&url, Some(&format!("Bearer {TOKEN}"))).await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.contains("scalelite_api_requests_total"), "{}", reply.body);
    // The refusals are counted, never with the token.
    assert!(
        reply.body.contains("scalelite_api_requests_total{call=\"metrics\",outcome=\"http_401\"} 3"),
        "{}",
        reply.body
    );
    assert!(!reply.body.contains(TOKEN));
    // Nothing else needs the token.
    assert_eq!(app.client().raw_get("/health_check").await.status, 200);
}

#[tokio::test]
async fn the_pollers_endpoint_takes_the_same_token() {
    let metrics = Arc::new(scalelite_poller::PollerMetrics::new());
    metrics.rounds.inc();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let registry = Arc::new(registry);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    tokio::spawn(scalelite_telemetry::scrape::serve(
        listener,
        Arc::clone(&registry),
        Some(TOKEN.into()),
        std::future::pending(),
    ));
    assert_refused(&scrape(&url, None).await);
    assert_refused(&scrape(&url, Some("Bearer nope")).await);
    let reply = scrape(&url, Some(&format!("bearer {TOKEN}"))).await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.contains("scalelite_poller_rounds_total 1"), "{}", reply.body);
    // Without a token it stays open, as before.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open = format!("http://{}/metrics", listener.local_addr().unwrap());
    tokio::spawn(scalelite_telemetry::scrape::serve(listener, registry, None, std::future::pending()));
    assert_eq!(scrape(&open, None).await.status, 200);
}

/// Every metric name the dashboard queries is one the binaries export.
#[tokio::test]
async fn the_grafana_dashboard_only_queries_exported_metrics() {
    // A day with a bit of everything, so every family has a series.
    let app = TestApp::builder().servers(2).env("RESPONSE_TIMEOUT", "0.5").start().await;
    create(&app, "m").await;
    app.client().get("isMeetingRunning", &[("meetingID", "m")]).await;
    app.client().get("getMeetings", &[]).await;
    let on = app.placed_on("m").await.unwrap();
    app.fleet[on].set_mode(Mode::Down);
    app.client().get("getMeetingInfo", &[("meetingID", "m")]).await;
    let metrics = Arc::new(scalelite_poller::PollerMetrics::new());
    let poller = app.poller(Arc::clone(&metrics));
    poller.poll_once().await.unwrap().unwrap();
    poller.poll_once().await.unwrap().unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let exported =
        format!("{}\n{}", app.client().raw_get("/metrics").await.body, scalelite_telemetry::encode(&registry));
    // Every sample name a declared family can produce, series or not yet.
    let mut names = BTreeSet::new();
    for line in exported.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let (family, kind) = line.split_once(' ').unwrap();
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{family}{s}")));
    }

    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docker/grafana/scalelite.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "the dashboard has panels");
    for expr in exprs {
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("scalelite_") {
                assert!(names.contains(word), "dashboard queries {word}, which is not exported: {expr}");
            }
        }
    }
}

fn collect_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                    _ => collect_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
        _ => {}
    }
}
