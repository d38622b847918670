//! Meeting ids scoped per tenant (`MULTITENANCY_MEETING_ID_SCOPE=tenant`):
//! two tenants on `a.sl.test` and `b.sl.test` use the same `meetingID` and
//! get two meetings; each sees only its own, under its own id, in every
//! reply, and its recordings carry its own id. The default (Scalelite's
//! layout) still refuses the second tenant without naming the first.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use scalelite_recording_importer::{Importer, Settings};
use scalelite_store::Tenant;
use scalelite_tests::{ApiClient, Format, Mode, Receiver, RecordingArchive, Reply, TestApp, TestAppBuilder, server_id};
use scalelite_tests::{archive::drop_bytes, eventually_with, http_get, http_request};
use serde_json::{Value, json};

use crate::importer::Running;
use crate::support::assert_failed;

const URL_HOST: &str = "sl.test";

struct Tenants {
    app: TestApp,
    a: Tenant,
    b: Tenant,
}

impl Tenants {
    async fn start(builder: TestAppBuilder) -> Self {
        let app = builder.env("MULTITENANCY_ENABLED", "true").env("URL_HOST", URL_HOST).start().await;
        let a = Tenant::new("a", "secret-a");
        let b = Tenant::new("b", "secret-b");
        app.state.store.create_tenant(&a).await.unwrap();
        app.state.store.create_tenant(&b).await.unwrap();
        Self { app, a, b }
    }

    async fn scoped(builder: TestAppBuilder) -> Self {
        Self::start(builder.env("MULTITENANCY_MEETING_ID_SCOPE", "tenant")).await
    }

    fn a(&self) -> ApiClient {
        self.app.client().with_secret("secret-a").host(format!("a.{URL_HOST}"))
    }

    fn b(&self) -> ApiClient {
        self.app.client().with_secret("secret-b").host(format!("b.{URL_HOST}"))
    }

    /// The id BBB knows `tenant`'s meeting `id` by.
    fn bbb_id(tenant: &Tenant, id: &str) -> String {
        format!("{}:{id}", tenant.id)
    }
}

async fn create(client: &ApiClient, id: &str, extra: &[(&str, &str)]) -> Reply {
    let mut params = vec![("meetingID", id), ("name", "Room"), ("moderatorPW", "mp"), ("attendeePW", "ap")];
    params.extend_from_slice(extra);
    client.get("create", &params).await
}

fn meeting_ids(reply: &Reply) -> Vec<String> {
    let xml = reply.xml();
    let Some(list) = xml.child("meetings") else { return Vec::new() };
    list.children_named("meeting").map(|m| m.text_at("meetingID").unwrap_or_default()).collect()
}

#[tokio::test]
async fn two_tenants_using_one_meeting_id_get_two_meetings_each_under_its_own_id() {
    let t = Tenants::scoped(TestApp::builder().servers(2)).await;
    let (a, b) = (t.a(), t.b());
    let (a_bbb, b_bbb) = (Tenants::bbb_id(&t.a, "room"), Tenants::bbb_id(&t.b, "room"));

    // Both creates succeed and each answers with the front-end's own id.
    let created_a = create(&a, "room", &[]).await;
    assert!(created_a.is_success(), "{}", created_a.body);
    assert_eq!(created_a.text_at("meetingID").as_deref(), Some("room"), "{}", created_a.body);
    let created_b = create(&b, "room", &[]).await;
    assert!(created_b.is_success(), "{}", created_b.body);
    assert_eq!(created_b.text_at("meetingID").as_deref(), Some("room"), "{}", created_b.body);

    // Two meetings on BBB, under two ids that name their tenant.
    let on_a = t.app.placed_on(&a_bbb).await.expect("A's meeting record");
    let on_b = t.app.placed_on(&b_bbb).await.expect("B's meeting record");
    assert!(t.app.fleet[on_a].meeting(&a_bbb).is_some());
    assert!(t.app.fleet[on_b].meeting(&b_bbb).is_some());
    let bbb_ids: Vec<String> = t.app.fleet.iter().flat_map(|s| s.meetings()).map(|m| m.meeting_id).collect();
    assert_eq!(bbb_ids.len(), 2, "{bbb_ids:?}");
    assert!(t.app.meeting("room").await.is_none(), "no unscoped record");
    assert_eq!(t.app.meeting(&a_bbb).await.unwrap().tenant_id.as_ref(), Some(&t.a.id));
    assert_eq!(t.app.meeting(&b_bbb).await.unwrap().tenant_id.as_ref(), Some(&t.b.id));
    let forwarded = t.app.fleet[on_a].calls_to("create").pop().unwrap();
    assert_eq!(forwarded.param("meetingID"), Some(a_bbb.as_str()));

    // A repeated create reaches the tenant's own meeting (duplicateWarning).
    let again = create(&a, "room", &[]).await;
    assert_eq!(again.message_key().as_deref(), Some("duplicateWarning"), "{}", again.body);
    assert_eq!(again.text_at("meetingID").as_deref(), Some("room"));

    // getMeetingInfo: each tenant gets its own meeting under its own id.
    let info_a = a.get("getMeetingInfo", &[("meetingID", "room")]).await;
    assert!(info_a.is_success(), "{}", info_a.body);
    assert_eq!(info_a.text_at("meetingID").as_deref(), Some("room"));
    assert_eq!(info_a.text_at("metadata/tenant-id").as_deref(), Some(t.a.id.as_str()));
    let info_b = b.get("getMeetingInfo", &[("meetingID", "room")]).await;
    assert_eq!(info_b.text_at("metadata/tenant-id").as_deref(), Some(t.b.id.as_str()));
    let running = a.get("isMeetingRunning", &[("meetingID", "room")]).await;
    assert!(running.is_success(), "{}", running.body);

    // getMeetings: one meeting each, called "room".
    assert_eq!(meeting_ids(&a.get("getMeetings", &[]).await), ["room"]);
    assert_eq!(meeting_ids(&b.get("getMeetings", &[]).await), ["room"]);

    // Joins land in the tenant's own meeting.
    let join = a.get("join", &[("meetingID", "room"), ("fullName", "Alice"), ("password", "mp")]).await;
    assert_eq!(join.status, 302, "{}", join.body);
    let landed = http_get(join.location.as_deref().unwrap()).await;
    assert_eq!(landed.status, 302, "{}", landed.body);
    let join = b.get("join", &[("meetingID", "room"), ("fullName", "Bob"), ("password", "ap")]).await;
    assert_eq!(http_get(join.location.as_deref().unwrap()).await.status, 302);
    let people = |on: usize, id: &str| -> Vec<String> {
        t.app.fleet[on].meeting(id).unwrap().attendees.iter().map(|u| u.full_name.clone()).collect()
    };
    assert_eq!(people(on_a, &a_bbb), ["Alice"]);
    assert_eq!(people(on_b, &b_bbb), ["Bob"]);

    // Chat and slides reach the tenant's own meeting.
    assert!(b.get("sendChatMessage", &[("meetingID", "room"), ("message", "hi B")]).await.is_success());
    assert_eq!(t.app.fleet[on_b].meeting(&b_bbb).unwrap().chat, [("System".to_owned(), "hi B".to_owned())]);
    assert!(t.app.fleet[on_a].meeting(&a_bbb).unwrap().chat.is_empty());
    let insert = a
        .post_xml("insertDocument", &[("meetingID", "room")], "<modules><module name=\"presentation\"/></modules>")
        .await;
    assert!(insert.is_success(), "{}", insert.body);
    assert_eq!(t.app.fleet[on_a].calls_to("insertDocument").pop().unwrap().param("meetingID"), Some(a_bbb.as_str()));

    // Ending A's meeting leaves B's running.
    let end = a.get("end", &[("meetingID", "room"), ("password", "mp")]).await;
    assert!(end.is_success(), "{}", end.body);
    assert!(t.app.fleet[on_a].meeting(&a_bbb).is_none());
    assert!(t.app.fleet[on_b].meeting(&b_bbb).is_some());
    assert_failed(&a.get("getMeetingInfo", &[("meetingID", "room")]).await, "notFound");
    assert!(meeting_ids(&a.get("getMeetings", &[]).await).is_empty());
    assert_eq!(meeting_ids(&b.get("getMeetings", &[]).await), ["room"]);
    assert!(b.get("getMeetingInfo", &[("meetingID", "room")]).await.is_success());

    // A front-end that sends an id that looks scoped gets a meeting of its own.
    let lookalike = create(&b, &a_bbb, &[]).await;
    assert!(lookalike.is_success(), "{}", lookalike.body);
    assert_eq!(lookalike.text_at("meetingID").as_deref(), Some(a_bbb.as_str()));
    assert_eq!(t.app.meeting(&format!("{}:{a_bbb}", t.b.id)).await.unwrap().tenant_id.as_ref(), Some(&t.b.id));
    assert_failed(&a.get("getMeetingInfo", &[("meetingID", "room")]).await, "notFound");
}

#[tokio::test]
async fn ids_too_long_once_scoped_are_refused_before_anything_is_stored() {
    let t = Tenants::scoped(TestApp::builder().servers(1)).await;
    let max = 256 - t.a.id.as_str().len() - 1;
    let longest = "r".repeat(max);
    let created = create(&t.a(), &longest, &[]).await;
    assert!(created.is_success(), "{}", created.body);
    assert_eq!(created.text_at("meetingID").as_deref(), Some(longest.as_str()));

    let too_long = "r".repeat(max + 1);
    let refused = create(&t.a(), &too_long, &[]).await;
    assert_failed(&refused, "sizeError");
    assert_eq!(refused.message().unwrap(), format!("Meeting ID must be between 2 and {max} characters"));
    assert!(t.app.meeting(&Tenants::bbb_id(&t.a, &too_long)).await.is_none());
    assert_eq!(t.app.fleet[0].calls_to("create").len(), 1, "only the first create reached BBB");
    // The same refusal for every other call naming such an id.
    assert_failed(&t.a().get("getMeetingInfo", &[("meetingID", &too_long)]).await, "sizeError");
    // bbb-web's lower bound holds for the front-end's id too.
    assert_failed(&create(&t.a(), "r", &[]).await, "sizeError");
}

#[tokio::test]
async fn by_default_the_second_tenant_is_refused_without_naming_the_first() {
    let t = Tenants::start(TestApp::builder().servers(1)).await;
    let own = "https://fe.example/ended?room=7";
    assert!(create(&t.a(), "room", &[("meta_endCallbackUrl", own)]).await.is_success());
    let clash = create(&t.b(), "room", &[]).await;
    assert_failed(&clash, "internalError");
    let message = clash.message().unwrap();
    assert_eq!(message, format!("Couldn't find Meeting with id=room and tenant_id={}", t.b.id));
    assert!(!clash.body.contains(t.a.id.as_str()), "{}", clash.body);
    assert!(!clash.body.contains("secret-a") && !clash.body.contains(">a<"), "{}", clash.body);
    // One meeting, A's, under the front-end's id as in Scalelite.
    assert_eq!(t.app.fleet[0].meetings().len(), 1);
    assert_eq!(t.app.meeting("room").await.unwrap().tenant_id.as_ref(), Some(&t.a.id));
    // No end callback is relayed: that route exists only with scoped ids.
    let forwarded = t.app.fleet[0].calls_to("create").pop().unwrap();
    assert_eq!(forwarded.param("meetingID"), Some("room"));
    assert_eq!(forwarded.param("meta_endCallbackUrl"), Some(own), "BBB calls the front-end itself");
    let info = t.a().get("getMeetingInfo", &[("meetingID", "room")]).await;
    assert_eq!(info.text_at("metadata/endcallbackurl").as_deref(), Some(own), "{}", info.body);
    let url = format!("https://a.{URL_HOST}/bigbluebutton/api/meeting_ended?token=x&meetingID=room");
    assert_failed(&as_bbb(&t.app, Method::GET, &url, &[], Bytes::new()).await, "unsupportedRequest");
}

/// The claims of a recording-ready token signed with `secret`.
fn claims(token: &str, secret: &str) -> Value {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims::<&str>(&[]);
    validation.validate_exp = false;
    jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(secret.as_bytes()), &validation)
        .expect("a token signed with the tenant's secret")
        .claims
}

async fn recordings_of(client: &ApiClient, meeting_id: &str) -> Vec<(String, String)> {
    let reply = client.get("getRecordings", &[("meetingID", meeting_id), ("state", "any")]).await;
    assert!(reply.is_success(), "{}", reply.body);
    let xml = reply.xml();
    let Some(list) = xml.child("recordings") else { return Vec::new() };
    list.children_named("recording")
        .map(|r| (r.text_at("recordID").unwrap_or_default(), r.text_at("meetingID").unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn a_scoped_meetings_recording_lists_and_calls_back_with_the_front_ends_id() {
    let t = Tenants::scoped(TestApp::builder().servers(1).recordings()).await;
    let receiver = Receiver::start(&[]).await;
    let ready = receiver.url("/recording_ready");
    assert!(create(&t.a(), "room", &[("meta_bbb-recording-ready-url", &ready)]).await.is_success());
    assert!(create(&t.b(), "room", &[]).await.is_success());

    let mut settings = Settings::from_config(&t.app.state.config);
    settings.poll_interval = Duration::from_millis(200);
    settings.callbacks.poll_interval = Duration::from_millis(100);
    let importer = Importer::new(settings, t.app.recording_store(), Some(Arc::clone(t.app.store())));
    let running = Running::start(&importer);

    // BBB records A's meeting under the id it knows it by, with the
    // tenant's metadata the create forwarded.
    let rec = RecordingArchive::new(&Tenants::bbb_id(&t.a, "room"), "Room")
        .meta("tenant-id", t.a.id.as_str())
        .formats(&[Format::Presentation]);
    drop_bytes(&t.app.dirs().spool(), &rec.file_name(), &rec.tar());
    eventually_with(Duration::from_secs(10), "A lists the recording", || async {
        !recordings_of(&t.a(), "room").await.is_empty()
    })
    .await;
    assert_eq!(recordings_of(&t.a(), "room").await, [(rec.record_id.clone(), "room".to_owned())]);
    assert!(recordings_of(&t.b(), "room").await.is_empty(), "B's meeting of that id made no recording");
    assert!(recordings_of(&t.a(), &Tenants::bbb_id(&t.a, "room")).await.is_empty());

    // The front-end hears about it with its own meeting id.
    eventually_with(Duration::from_secs(10), "the recording-ready callback", || async {
        !receiver.requests().is_empty()
    })
    .await;
    running.stop().await;
    let token = receiver.requests()[0].signed_parameters.clone().expect("signed_parameters");
    let claims = claims(&token, "secret-a");
    assert_eq!(claims["meeting_id"], "room", "{claims}");
    assert_eq!(claims["record_id"], rec.record_id.as_str(), "{claims}");
    assert!(!receiver.requests()[0].body.is_empty());
}

#[tokio::test]
async fn a_scoped_meeting_of_a_crashed_server_is_rehomed_under_its_scoped_id() {
    let t = Tenants::scoped(TestApp::builder().servers(2).env("RESPONSE_TIMEOUT", "0.5")).await;
    let a_bbb = Tenants::bbb_id(&t.a, "room");
    assert!(create(&t.a(), "room", &[]).await.is_success());
    let first = t.app.placed_on(&a_bbb).await.unwrap();
    t.app.fleet[first].set_mode(Mode::Down);
    t.app.poll().await;
    t.app.poll().await;
    assert!(!t.app.server(&server_id(first)).await.unwrap().online);

    // The next join creates it again elsewhere, under the id BBB knew it by.
    let join = t.a().get("join", &[("meetingID", "room"), ("fullName", "Ada"), ("password", "ap")]).await;
    assert_eq!(join.status, 302, "{}", join.body);
    let second = 1 - first;
    let recreated = t.app.fleet[second].calls_to("create").pop().expect("re-homing create");
    assert_eq!(recreated.param("meetingID"), Some(a_bbb.as_str()));
    assert_eq!(http_get(join.location.as_deref().unwrap()).await.status, 302);
    assert_eq!(t.app.fleet[second].meeting(&a_bbb).unwrap().attendees.len(), 1);
    let info = t.a().get("getMeetingInfo", &[("meetingID", "room")]).await;
    assert_eq!(info.text_at("meetingID").as_deref(), Some("room"), "{}", info.body);
}

/// Sends what BBB sends to a balancer URL (`https://<tenant>.sl.test/…`)
/// to the test's API, with its host.
async fn as_bbb(app: &TestApp, method: Method, url: &str, headers: &[(&str, &str)], body: Bytes) -> Reply {
    let rest = url.strip_prefix("https://").expect("an https URL on URL_HOST");
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut headers = headers.to_vec();
    headers.push(("host", host));
    let target = format!("{}{path}", app.origin());
    http_request(method, &target, &headers, body, Duration::from_secs(10)).await.unwrap()
}

/// Waits until no relay is in flight.
async fn relays_done(app: &TestApp) {
    eventually_with(Duration::from_secs(10), "no relay in flight", || async {
        app.state.outbound.deliveries_in_flight() == 0
    })
    .await;
}

#[tokio::test]
async fn end_and_analytics_callbacks_reach_the_front_end_with_its_own_id() {
    let t = Tenants::scoped(TestApp::builder().servers(1)).await;
    let front_end = Receiver::start(&[]).await;
    let (a_bbb, b_bbb) = (Tenants::bbb_id(&t.a, "room"), Tenants::bbb_id(&t.b, "room"));
    let extra = [
        ("meta_endCallbackUrl", front_end.url("/ended?room=7")),
        ("meta_analytics-callback-url", front_end.url("/analytics")),
    ];
    let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert!(create(&t.a(), "room", &extra).await.is_success());
    assert!(create(&t.b(), "room", &[]).await.is_success());
    let forwarded = t.app.fleet[0].calls_to("create").into_iter().find(|c| c.param("meetingID") == Some(&a_bbb));
    let end_url = forwarded.unwrap().param("meta_endCallbackUrl").unwrap().to_owned();
    assert!(end_url.starts_with("https://a.sl.test/bigbluebutton/api/meeting_ended?token="), "{end_url}");
    assert!(!end_url.contains("room=7"), "the front-end's URL is inside the signed token only: {end_url}");

    // BBB calls it when the meeting ends, appending its own id; the
    // front-end is called with its URL and its own id.
    let bbb_call = |id: &str| {
        let mut url = end_url.clone();
        url.push_str("&recordingmarks=true&meetingID=");
        scalelite_core::params::encode_component_into(&mut url, id);
        url
    };
    // The token of A's meeting does not relay for B's meeting, nor on B's host.
    let refused = as_bbb(&t.app, Method::GET, &bbb_call(&b_bbb), &[], Bytes::new()).await;
    assert_eq!(refused.status, 200);
    let on_b = bbb_call(&a_bbb).replace("https://a.sl.test", "https://b.sl.test");
    assert_eq!(as_bbb(&t.app, Method::GET, &on_b, &[], Bytes::new()).await.status, 200);
    relays_done(&t.app).await;
    assert!(front_end.requests().is_empty(), "{:#?}", front_end.requests());
    let relayed = as_bbb(&t.app, Method::GET, &bbb_call(&a_bbb), &[], Bytes::new()).await;
    assert_eq!(relayed.status, 200);
    eventually_with(Duration::from_secs(10), "the front-end's end callback", || async {
        !front_end.requests().is_empty()
    })
    .await;
    let call = front_end.requests().remove(0);
    assert_eq!((call.method.as_str(), call.path.as_str()), ("GET", "/ended"));
    assert_eq!(call.query.as_deref(), Some("room=7&recordingmarks=true&meetingID=room"));

    // The analytics callback carries the front-end's id too.
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &json!({ "exp": 4_000_000_000_u64 }),
        &EncodingKey::from_secret(t.app.fleet[0].secret().as_bytes()),
    )
    .unwrap();
    let body = json!({ "version": "1.0", "meeting_id": a_bbb, "data": {"duration": 60} });
    let analytics = t.app.fleet[0].calls_to("create").into_iter().find(|c| c.param("meetingID") == Some(&a_bbb));
    let analytics_url = analytics.unwrap().param("meta_analytics-callback-url").unwrap().to_owned();
    let bearer = format!("Bearer {token}");
    let headers = [("content-type", "application/json"), ("authorization", bearer.as_str())];
    let reply = as_bbb(&t.app, Method::POST, &analytics_url, &headers, Bytes::from(body.to_string())).await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    eventually_with(Duration::from_secs(10), "the analytics relay", || async { front_end.requests().len() == 2 }).await;
    let relayed: Value = serde_json::from_slice(&front_end.requests()[1].body).unwrap();
    assert_eq!(relayed["meeting_id"], "room", "{relayed}");
    assert_eq!(relayed["customer"], "a");
}

/// The `metadata/endcallbackurl` of every meeting `client` lists.
async fn listed_end_callbacks(client: &ApiClient) -> Vec<(String, String)> {
    let reply = client.get("getMeetings", &[]).await;
    assert!(reply.is_success(), "{}", reply.body);
    let xml = reply.xml();
    let Some(list) = xml.child("meetings") else { return Vec::new() };
    list.children_named("meeting")
        .map(|m| (m.text_at("meetingID").unwrap_or_default(), m.text_at("metadata/endcallbackurl").unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn the_front_end_sees_its_own_end_callback_url_where_bbb_has_the_relay() {
    let t = Tenants::scoped(TestApp::builder().servers(1).recordings()).await;
    let front_end = Receiver::start(&[]).await;
    let (a_bbb, b_bbb) = (Tenants::bbb_id(&t.a, "room"), Tenants::bbb_id(&t.b, "room"));
    let own_a = front_end.url("/ended?tenant=a&room=7");
    let own_b = front_end.url("/ended?tenant=b");
    assert!(create(&t.a(), "room", &[("meta_endCallbackUrl", &own_a)]).await.is_success());
    assert!(create(&t.b(), "room", &[("meta_endcallbackurl", &own_b)]).await.is_success());

    // BBB was given, and lists, the relay URL.
    let relay_a = t.app.fleet[0].meeting(&a_bbb).unwrap().metadata["endcallbackurl"].clone();
    assert!(relay_a.starts_with("https://a.sl.test/bigbluebutton/api/meeting_ended?token="), "{relay_a}");
    let relay_b = t.app.fleet[0].meeting(&b_bbb).unwrap().metadata["endcallbackurl"].clone();
    assert!(relay_b.starts_with("https://b.sl.test/bigbluebutton/api/meeting_ended?token="), "{relay_b}");

    // Each front-end sees its own URL, in getMeetingInfo and getMeetings.
    for (client, own) in [(t.a(), &own_a), (t.b(), &own_b)] {
        let info = client.get("getMeetingInfo", &[("meetingID", "room")]).await;
        assert!(info.is_success(), "{}", info.body);
        assert_eq!(info.text_at("metadata/endcallbackurl").as_deref(), Some(own.as_str()), "{}", info.body);
        assert!(!info.body.contains("meeting_ended"), "{}", info.body);
        assert_eq!(listed_end_callbacks(&client).await, [("room".to_owned(), own.clone())]);
    }
    // BBB calls the relay URL when A's meeting ends: the front-end is
    // called at its own URL with its own id.
    let mut bbb_call = relay_a.clone();
    bbb_call.push_str("&recordingmarks=false&meetingID=");
    scalelite_core::params::encode_component_into(&mut bbb_call, &a_bbb);
    assert_eq!(as_bbb(&t.app, Method::GET, &bbb_call, &[], Bytes::new()).await.status, 200);
    eventually_with(Duration::from_secs(10), "the front-end's end callback", || async {
        !front_end.requests().is_empty()
    })
    .await;
    let call = front_end.requests().remove(0);
    assert_eq!(call.path, "/ended");
    assert_eq!(call.query.as_deref(), Some("tenant=a&room=7&recordingmarks=false&meetingID=room"));

    // The recording keeps the metadata BBB recorded, relay URL included;
    // getRecordings shows the front-end's URL.
    let mut settings = Settings::from_config(&t.app.state.config);
    settings.poll_interval = Duration::from_millis(200);
    let importer = Importer::new(settings, t.app.recording_store(), Some(Arc::clone(t.app.store())));
    let running = Running::start(&importer);
    let rec = RecordingArchive::new(&a_bbb, "Room")
        .meta("tenant-id", t.a.id.as_str())
        .meta("endcallbackurl", &relay_a)
        .formats(&[Format::Presentation]);
    drop_bytes(&t.app.dirs().spool(), &rec.file_name(), &rec.tar());
    eventually_with(Duration::from_secs(10), "A lists the recording", || async {
        !recordings_of(&t.a(), "room").await.is_empty()
    })
    .await;
    running.stop().await;
    let reply = t.a().get("getRecordings", &[("meetingID", "room")]).await;
    assert_eq!(reply.text_at("recordings/recording/metadata/endcallbackurl").as_deref(), Some(own_a.as_str()));
    assert!(!reply.body.contains("meeting_ended"), "{}", reply.body);
}

/// What Redis holds for scoped meetings, and what a join costs it.
mod redis_only {
    use scalelite_tests::{RespValue, TestBackend};

    use super::*;

    #[tokio::test]
    async fn scoped_records_are_scalelites_hash_under_the_scoped_key_and_join_costs_one_round_trip() {
        let t = Tenants::scoped(TestApp::builder().backend(TestBackend::Redis).servers(1)).await;
        let a = t.a();
        assert!(create(&a, "room", &[]).await.is_success());
        let a_bbb = Tenants::bbb_id(&t.a, "room");
        let record = t.app.meeting_record(&a_bbb).await;
        let fields: Vec<&str> = record.keys().map(String::as_str).collect();
        assert_eq!(fields, ["moderator_pw", "server_id", "tenant_id", "voice_bridge"], "{record:?}");
        assert_eq!(record["tenant_id"], t.a.id.as_str());
        assert!(t.app.meeting_record("room").await.is_empty(), "no record under the front-end's id");
        // The tenant's meeting set holds the record's id.
        let members = t.app.redis().cmd(&["SMEMBERS", &t.app.key(&format!("tenant_meetings:{}", t.a.id))]).await;
        assert_eq!(members, RespValue::Array(vec![RespValue::Str(a_bbb.clone())]), "{members:?}");

        let join = [("meetingID", "room"), ("fullName", "Alice"), ("password", "mp")];
        assert_eq!(a.get("join", &join).await.status, 302);
        t.app.redis().cmd(&["CONFIG", "RESETSTAT"]).await;
        for _ in 0..5 {
            assert_eq!(a.get("join", &join).await.status, 302);
        }
        let RespValue::Str(info) = t.app.redis().cmd(&["INFO", "commandstats"]).await else { panic!("INFO") };
        let evalsha = info.lines().find(|l| l.starts_with("cmdstat_evalsha:")).expect("script calls");
        assert!(evalsha.starts_with("cmdstat_evalsha:calls=5,"), "{info}");
        let others: Vec<&str> = info
            .lines()
            .filter(|l| l.starts_with("cmdstat_"))
            .filter(|l| {
                !["evalsha", "hmget", "sismember", "zadd", "info", "config|resetstat"]
                    .iter()
                    .any(|c| l.starts_with(&format!("cmdstat_{c}:")))
            })
            .collect();
        assert!(others.is_empty(), "{others:?}");
    }
}
