//! Analytics callbacks (`meta_analytics-callback-url` on create, `POST
//! /bigbluebutton/api/analytics_callback` from BBB, relayed to the
//! front-end) and the LRS payload (`meta_secret-lrs-payload`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::Method;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use scalelite_core::Secret;
use scalelite_store::Tenant;
use scalelite_tests::{
    ApiClient, Expiring, LB_SECRET, Received, Receiver, Reply, TestApp, TestAppBuilder, eventually_with, http_request,
};
use serde_json::{Value, json};

const URL_HOST: &str = "sl.test";
const PARAM: &str = "meta_analytics-callback-url";
const LRS_PARAM: &str = "meta_secret-lrs-payload";

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A token as BBB signs it: HS512, `{"exp": now + 24 h}`.
fn bbb_token(secret: &str, algorithm: Algorithm, exp: u64) -> String {
    jsonwebtoken::encode(&Header::new(algorithm), &json!({ "exp": exp }), &EncodingKey::from_secret(secret.as_bytes()))
        .unwrap()
}

/// What BBB's analytics script posts (abridged).
fn analytics_body(meeting_id: &str) -> Value {
    json!({
        "version": "1.0",
        "meeting_id": meeting_id,
        "internal_meeting_id": "183f0bf3a0982a127bdb8161e0c44eb696b3e75c-1700000000000",
        "data": {"metadata": {"meeting_name": "Room"}, "duration": 3600, "attendees": [{"name": "Ada"}]},
    })
}

/// POSTs an analytics callback to the balancer as BBB does.
async fn post_callback(app: &TestApp, host: Option<&str>, token: Option<&str>, body: &Value) -> Reply {
    let authorization = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(value) = &authorization {
        headers.push(("authorization", value));
    }
    if let Some(host) = host {
        headers.push(("host", host));
    }
    let url = format!("{}/analytics_callback", app.api_url());
    http_request(Method::POST, &url, &headers, Bytes::from(body.to_string()), Duration::from_secs(10)).await.unwrap()
}

async fn create(client: &ApiClient, id: &str, extra: &[(&str, &str)]) -> Reply {
    let mut params = vec![("meetingID", id), ("name", "Room")];
    params.extend_from_slice(extra);
    let reply = client.get("create", &params).await;
    assert!(reply.is_success(), "{}", reply.body);
    reply
}

/// The parameter as the hosting fake server received it.
async fn forwarded(app: &TestApp, id: &str, name: &str) -> Option<String> {
    let server = &app.fleet[app.placed_on(id).await.expect("placed")];
    server.calls_to("create").pop().expect("create forwarded").param(name).map(str::to_owned)
}

/// The claims of an HS512 token signed with `secret` (expiry checked).
fn hs512_claims(token: &str, secret: &str) -> Option<Value> {
    let mut validation = Validation::new(Algorithm::HS512);
    validation.set_required_spec_claims(&["exp"]);
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(secret.as_bytes()), &validation)
        .ok()
        .map(|data| data.claims)
}

fn bearer(request: &Received) -> &str {
    request.header("authorization").and_then(|v| v.strip_prefix("Bearer ")).expect("bearer token")
}

async fn received(receiver: &Receiver, count: usize) -> Vec<Received> {
    eventually_with(Duration::from_secs(10), &format!("{count} relayed request(s)"), || async {
        receiver.requests().len() >= count
    })
    .await;
    receiver.requests()
}

/// Waits until every accepted callback was relayed, refused or given up
/// (each holds a delivery slot until then), then checks that exactly
/// `count` requests arrived.
async fn stays_at(app: &TestApp, receiver: &Receiver, count: usize) {
    eventually_with(Duration::from_secs(10), "no relay in flight", || async {
        app.state.outbound.deliveries_in_flight() == 0
    })
    .await;
    assert_eq!(receiver.requests().len(), count, "{:#?}", receiver.requests());
}

fn fast_retries(builder: TestAppBuilder) -> TestAppBuilder {
    builder.env("ANALYTICS_CALLBACK_RETRY_INTERVAL", "0.2")
}

#[tokio::test]
async fn create_points_bbb_at_the_balancer_and_remembers_the_url() {
    let app = TestApp::builder().servers(1).env("URL_HOST", URL_HOST).start().await;
    let client = app.client().host(URL_HOST);
    create(&client, "room-1", &[(PARAM, "https://gl.example.edu/analytics?room=1")]).await;
    assert_eq!(
        forwarded(&app, "room-1", PARAM).await.as_deref(),
        Some("https://sl.test/bigbluebutton/api/analytics_callback")
    );
    let stored = app.store().analytics_callback("room-1").await.unwrap().expect("remembered");
    assert_eq!(stored.url, "https://gl.example.edu/analytics?room=1");
    assert_eq!(stored.tenant_id, None);
    let ttl = app.ttl_of(Expiring::AnalyticsCallback("room-1")).await.expect("a TTL");
    assert!(ttl > Duration::from_secs(86_400), "kept beyond the meeting: {ttl:?}");

    // A create without the parameter passes nothing and stores nothing.
    create(&client, "room-2", &[]).await;
    assert_eq!(forwarded(&app, "room-2", PARAM).await, None);
    assert_eq!(app.store().analytics_callback("room-2").await.unwrap(), None);
    assert_eq!(app.ttl_of(Expiring::AnalyticsCallback("room-2")).await, None);
}

#[tokio::test]
async fn without_url_host_bbb_is_pointed_at_the_origin_of_the_create() {
    let app = TestApp::builder().servers(1).start().await;
    create(&app.client(), "room", &[(PARAM, "https://gl.example.edu/analytics")]).await;
    let expected = format!("{}/bigbluebutton/api/analytics_callback", app.origin());
    assert_eq!(forwarded(&app, "room", PARAM).await, Some(expected));
}

#[tokio::test]
async fn callback_is_relayed_with_customer_and_a_fresh_hs512_token() {
    let app = TestApp::builder().servers(2).start().await;
    let front_end = Receiver::start(&[]).await;
    create(&app.client(), "room", &[(PARAM, &front_end.url("/analytics?room=1"))]).await;
    let server = &app.fleet[app.placed_on("room").await.unwrap()];

    let body = analytics_body("room");
    let started = std::time::Instant::now();
    let reply =
        post_callback(&app, None, Some(&bbb_token(&server.secret(), Algorithm::HS512, now() + 86_400)), &body).await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    assert!(reply.body.is_empty());
    assert!(started.elapsed() < Duration::from_secs(2));

    let requests = received(&front_end, 1).await;
    let request = &requests[0];
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/analytics"));
    assert_eq!(request.query.as_deref(), Some("room=1"));
    assert_eq!(request.content_type.as_deref(), Some("application/json"));
    assert_eq!(request.header("user-agent"), Some("BigBlueButton Analytics Callback"));
    let token = bearer(request);
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!((header.alg, header.typ.as_deref()), (Algorithm::HS512, Some("JWT")));
    let claims = hs512_claims(token, LB_SECRET).expect("signed with the load-balancer secret");
    let exp = claims["exp"].as_u64().unwrap();
    assert!(exp.abs_diff(now() + 86_400) < 60, "exp = now + 24 h: {claims}");
    let relayed: Value = serde_json::from_slice(&request.body).unwrap();
    let mut expected = body.clone();
    expected["customer"] = json!("scalelite");
    assert_eq!(relayed, expected);
    stays_at(&app, &front_end, 1).await;
}

#[tokio::test]
async fn callbacks_without_a_valid_server_token_or_for_unknown_meetings_are_ignored() {
    let app = TestApp::builder().servers(1).start().await;
    let front_end = Receiver::start(&[]).await;
    create(&app.client(), "room", &[(PARAM, &front_end.url("/analytics"))]).await;
    let secret = app.fleet[0].secret();
    let body = analytics_body("room");
    let far = now() + 3600;
    let refused = [
        None,
        Some("not-a-jwt".to_owned()),
        Some(bbb_token("some-other-secret", Algorithm::HS512, far)),
        Some(bbb_token(LB_SECRET, Algorithm::HS512, far)),
        Some(bbb_token(&secret, Algorithm::HS256, far)),
        Some(bbb_token(&secret, Algorithm::HS512, now() - 120)),
    ];
    for token in &refused {
        let reply = post_callback(&app, None, token.as_deref(), &body).await;
        assert_eq!(reply.status, 204, "{token:?}: {}", reply.body);
    }
    let valid = bbb_token(&secret, Algorithm::HS512, far);
    // Unknown meeting, no meeting id, not JSON: ignored as well.
    for body in [analytics_body("nope"), json!({"data": {}}), json!("room")] {
        assert_eq!(post_callback(&app, None, Some(&valid), &body).await.status, 204);
    }
    stays_at(&app, &front_end, 0).await;

    // The same request with a valid token goes through.
    assert_eq!(post_callback(&app, None, Some(&valid), &body).await.status, 204);
    received(&front_end, 1).await;
}

#[tokio::test]
async fn a_refused_secret_falls_back_to_the_next_and_4xx_is_not_retried() {
    let app = fast_retries(TestApp::builder().servers(1).env("LOADBALANCER_SECRETS", "lb-second")).start().await;
    let front_end = Receiver::start(&[401]).await;
    create(&app.client(), "room", &[(PARAM, &front_end.url("/analytics"))]).await;
    let token = bbb_token(&app.fleet[0].secret(), Algorithm::HS512, now() + 3600);
    assert_eq!(post_callback(&app, None, Some(&token), &analytics_body("room")).await.status, 204);
    let requests = received(&front_end, 2).await;
    assert!(hs512_claims(bearer(&requests[0]), LB_SECRET).is_some());
    assert!(hs512_claims(bearer(&requests[1]), "lb-second").is_some());
    stays_at(&app, &front_end, 2).await;

    // Refused with every secret: given up, not retried.
    let front_end = Receiver::start(&[403, 401]).await;
    create(&app.client(), "room-2", &[(PARAM, &front_end.url("/analytics"))]).await;
    let token = bbb_token(&app.fleet[0].secret(), Algorithm::HS512, now() + 3600);
    assert_eq!(post_callback(&app, None, Some(&token), &analytics_body("room-2")).await.status, 204);
    received(&front_end, 2).await;
    stays_at(&app, &front_end, 2).await;
}

#[tokio::test]
async fn a_front_end_answering_503_gets_the_callback_again() {
    let app = fast_retries(TestApp::builder().servers(1)).start().await;
    let front_end = Receiver::start(&[503]).await;
    create(&app.client(), "room", &[(PARAM, &front_end.url("/analytics"))]).await;
    let token = bbb_token(&app.fleet[0].secret(), Algorithm::HS512, now() + 3600);
    assert_eq!(post_callback(&app, None, Some(&token), &analytics_body("room")).await.status, 204);
    let requests = received(&front_end, 2).await;
    assert_eq!(requests[0].body, requests[1].body);
    assert!(hs512_claims(bearer(&requests[1]), LB_SECRET).is_some());
    stays_at(&app, &front_end, 2).await;

    // Down for good: three rounds, then given up.
    let front_end = Receiver::start(&[502, 503, 500, 503]).await;
    create(&app.client(), "room-2", &[(PARAM, &front_end.url("/analytics"))]).await;
    assert_eq!(post_callback(&app, None, Some(&token), &analytics_body("room-2")).await.status, 204);
    received(&front_end, 3).await;
    stays_at(&app, &front_end, 3).await;
}

/// Two tenants `a` and `b` on `*.sl.test`.
async fn tenants(builder: TestAppBuilder, a: Tenant) -> (TestApp, Tenant, Tenant) {
    let app = builder.env("MULTITENANCY_ENABLED", "true").env("URL_HOST", URL_HOST).start().await;
    let b = Tenant::new("b", "secret-b");
    app.state.store.create_tenant(&a).await.unwrap();
    app.state.store.create_tenant(&b).await.unwrap();
    (app, a, b)
}

fn tenant_client(app: &TestApp, tenant: &Tenant) -> ApiClient {
    let secret = tenant.secret_list()[0].to_owned();
    app.client().with_secret(secret).host(format!("{}.{URL_HOST}", tenant.name))
}

#[tokio::test]
async fn tenants_get_their_own_callback_url_and_never_each_others_callbacks() {
    let (app, a, _b) = tenants(TestApp::builder().servers(1), Tenant::new("a", "secret-a1:secret-a2")).await;
    let front_end = Receiver::start(&[]).await;
    create(&tenant_client(&app, &a), "room-a", &[(PARAM, &front_end.url("/a"))]).await;
    assert_eq!(
        forwarded(&app, "room-a", PARAM).await.as_deref(),
        Some("https://a.sl.test/bigbluebutton/api/analytics_callback")
    );
    let token = bbb_token(&app.fleet[0].secret(), Algorithm::HS512, now() + 3600);
    let body = analytics_body("room-a");

    // An unknown tenant host is a checksumError, as in Scalelite.
    let reply = post_callback(&app, Some("c.sl.test"), Some(&token), &body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.message_key().as_deref(), Some("checksumError"), "{}", reply.body);
    // Tenant B's host cannot fire tenant A's callback (which would also hand
    // A's front-end a token signed with B's secret).
    assert_eq!(post_callback(&app, Some("b.sl.test"), Some(&token), &body).await.status, 204);
    stays_at(&app, &front_end, 0).await;

    let reply = post_callback(&app, Some("a.sl.test"), Some(&token), &body).await;
    assert_eq!(reply.status, 204);
    let requests = received(&front_end, 1).await;
    assert!(hs512_claims(bearer(&requests[0]), "secret-a1").is_some(), "signed with A's first secret");
    let relayed: Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(relayed["customer"], "a");
    assert_eq!(relayed["meeting_id"], "room-a");
}

fn decrypt(payload: &str, secret: &str) -> Value {
    let plain = scalelite_core::lrs::decrypt(payload, &Secret::new(secret)).expect("decrypts with the server secret");
    serde_json::from_slice(&plain).unwrap()
}

#[tokio::test]
async fn lrs_basic_credentials_reach_bbb_encrypted_with_the_server_secret() {
    let mut a = Tenant::new("a", "secret-a");
    for (field, value) in
        [("lrs_endpoint", "https://lrs.example.org/xapi"), ("lrs_username", "lrs-user"), ("lrs_password", "lrs-pw")]
    {
        a.lrs.insert(field.into(), value.into());
    }
    let (app, a, b) = tenants(TestApp::builder().servers(2), a).await;
    create(&tenant_client(&app, &a), "room-a", &[]).await;
    let server = &app.fleet[app.placed_on("room-a").await.unwrap()];
    let payload = forwarded(&app, "room-a", LRS_PARAM).await.expect("LRS payload");
    assert_eq!(
        decrypt(&payload, &server.secret()),
        json!({"lrs_endpoint": "https://lrs.example.org/xapi", "lrs_username": "lrs-user", "lrs_password": "lrs-pw"})
    );
    // A tenant without an LRS gets none.
    create(&tenant_client(&app, &b), "room-b", &[]).await;
    assert_eq!(forwarded(&app, "room-b", LRS_PARAM).await, None);
}

#[tokio::test]
async fn lrs_token_comes_from_keycloak_and_a_failure_leaves_the_payload_out() {
    let keycloak =
        Receiver::start_with(&[], r#"{"access_token":"kc-token-1","expires_in":300,"token_type":"Bearer"}"#).await;
    let mut a = Tenant::new("a", "secret-a");
    let token_url = keycloak.url("/realms/bbb/protocol/openid-connect/token?dropped=1");
    for (field, value) in [
        ("lrs_endpoint", "https://lrs.example.org/xapi"),
        ("kc_token_url", token_url.as_str()),
        ("kc_client_id", "scalelite"),
        ("kc_client_secret", "client-secret"),
        ("kc_username", "kc-user"),
        ("kc_password", "kc pw&1"),
    ] {
        a.lrs.insert(field.into(), value.into());
    }
    let (app, a, _) = tenants(TestApp::builder().servers(1), a).await;
    let client = tenant_client(&app, &a);
    create(&client, "room-1", &[]).await;
    let payload = forwarded(&app, "room-1", LRS_PARAM).await.expect("LRS payload");
    assert_eq!(
        decrypt(&payload, &app.fleet[0].secret()),
        json!({"lrs_endpoint": "https://lrs.example.org/xapi", "lrs_token": "kc-token-1"})
    );
    let requests = keycloak.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/realms/bbb/protocol/openid-connect/token"));
    assert_eq!(request.query, None, "the query of kc_token_url is dropped, as in Scalelite");
    assert_eq!(request.content_type.as_deref(), Some("application/x-www-form-urlencoded"));
    let form: Vec<(String, String)> = request.form();
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        pairs,
        [
            ("client_id", "scalelite"),
            ("client_secret", "client-secret"),
            ("username", "kc-user"),
            ("password", "kc pw&1"),
            ("grant_type", "password")
        ]
    );

    // Keycloak refuses: the create still succeeds, without a payload.
    keycloak.answer(&[401]);
    create(&client, "room-2", &[]).await;
    assert_eq!(forwarded(&app, "room-2", LRS_PARAM).await, None);
    assert_eq!(keycloak.requests().len(), 2, "a token per create, never cached");
}

/// Ruby Scalelite's `callback_data` rows in PostgreSQL.
mod redis_only {
    use super::*;
    use scalelite_tests::TestBackend;

    #[tokio::test]
    async fn a_meeting_created_by_ruby_scalelite_is_relayed_from_callback_data() {
        let app = TestApp::builder().backend(TestBackend::Redis).servers(1).recordings().start().await;
        let front_end = Receiver::start(&[]).await;
        let yaml = format!("---\\n:analytics_callback_url: {}\\n", front_end.url("/from-ruby"));
        app.pg()
            .psql(&format!(
                "INSERT INTO callback_data (meeting_id, callback_attributes, created_at, updated_at)
                 VALUES ('ruby-room', E'{yaml}', now(), now());"
            ))
            .await;
        let token = bbb_token(&app.fleet[0].secret(), Algorithm::HS512, now() + 3600);
        assert_eq!(post_callback(&app, None, Some(&token), &analytics_body("ruby-room")).await.status, 204);
        let requests = received(&front_end, 1).await;
        assert_eq!(requests[0].path, "/from-ruby");
        assert!(hs512_claims(bearer(&requests[0]), LB_SECRET).is_some());
    }
}
