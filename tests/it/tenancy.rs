//! Multitenancy: two front-ends on `a.sl.test` and `b.sl.test` share one
//! pool with their own secrets and settings; neither can see or touch the
//! other's meetings or recordings by any route.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use scalelite_store::recordings::{ImportPolicy, ImportedFormat, RecordingImport};
use scalelite_store::{Tenant, TenantSetting, TenantUpdate};
use scalelite_tests::{ApiClient, Reply, TestApp, TestAppBuilder, eventually_with, http_request};

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
        let a = Tenant::new("a", "secret-a1:secret-a2");
        let b = Tenant::new("b", "secret-b");
        app.state.store.create_tenant(&a).await.unwrap();
        app.state.store.create_tenant(&b).await.unwrap();
        Self { app, a, b }
    }

    /// A front-end on `<name>.sl.test` signing with `secret`.
    fn client(&self, name: &str, secret: &str) -> ApiClient {
        self.app.client().with_secret(secret).host(format!("{name}.{URL_HOST}"))
    }

    fn a(&self) -> ApiClient {
        self.client("a", "secret-a1")
    }

    fn b(&self) -> ApiClient {
        self.client("b", "secret-b")
    }
}

async fn create(client: &ApiClient, id: &str) -> Reply {
    client.get("create", &[("meetingID", id), ("name", "Room"), ("moderatorPW", "mp"), ("attendeePW", "ap")]).await
}

fn meeting_ids(reply: &Reply) -> Vec<String> {
    let xml = reply.xml();
    let Some(list) = xml.child("meetings") else { return Vec::new() };
    list.children_named("meeting").map(|m| m.text_at("meetingID").unwrap_or_default()).collect()
}

#[tokio::test]
async fn meetings_are_scoped_to_their_tenant_in_every_call() {
    let t = Tenants::start(TestApp::builder().servers(2)).await;
    let (a, b) = (t.a(), t.b());
    let reply = create(&a, "room").await;
    assert!(reply.is_success(), "{}", reply.body);
    let record = t.app.meeting("room").await.expect("meeting record");
    assert_eq!(record.tenant_id.as_ref(), Some(&t.a.id));
    // The tenant reaches BBB as metadata (that is how recordings are attributed).
    let server = &t.app.fleet[t.app.placed_on("room").await.unwrap()];
    let forwarded = server.calls_to("create").pop().unwrap();
    assert_eq!(forwarded.param("meta_tenant-id"), Some(t.a.id.as_str()));
    assert_eq!(forwarded.param("meta_tenant-name"), Some("a"));

    // Tenant B sees nothing and changes nothing.
    assert_failed(&b.get("getMeetingInfo", &[("meetingID", "room")]).await, "notFound");
    let running = b.get("isMeetingRunning", &[("meetingID", "room")]).await;
    assert_eq!(running.text_at("running").as_deref(), Some("false"), "{}", running.body);
    assert_failed(&b.get("end", &[("meetingID", "room"), ("password", "mp")]).await, "notFound");
    let join = b.get("join", &[("meetingID", "room"), ("fullName", "Mallory"), ("password", "mp")]).await;
    assert_failed(&join, "notFound");
    let insert = b
        .post_xml("insertDocument", &[("meetingID", "room")], "<modules><module name=\"presentation\"/></modules>")
        .await;
    assert_failed(&insert, "notFound");
    assert_failed(&b.get("sendChatMessage", &[("meetingID", "room"), ("message", "hi")]).await, "notFound");
    assert!(meeting_ids(&b.get("getMeetings", &[]).await).is_empty());
    // The same meeting id from B is refused, never merged into A's meeting.
    let creates_before = server.calls_to("create").len();
    let clash = create(&b, "room").await;
    assert_failed(&clash, "internalError");
    assert_eq!(server.calls_to("create").len(), creates_before, "B's create must not reach A's meeting");
    assert_eq!(t.app.meeting("room").await, Some(record), "A's meeting is untouched");
    assert!(server.calls_to("end").is_empty());

    // Tenant A still has its meeting.
    assert_eq!(meeting_ids(&a.get("getMeetings", &[]).await), ["room"]);
    assert!(a.get("getMeetingInfo", &[("meetingID", "room")]).await.is_success());
    assert!(a.get("sendChatMessage", &[("meetingID", "room"), ("message", "hi")]).await.is_success());
    assert_eq!(server.meeting("room").unwrap().chat, [("System".to_owned(), "hi".to_owned())]);
    let join = a.get("join", &[("meetingID", "room"), ("fullName", "Alice"), ("password", "mp")]).await;
    assert_eq!(join.status, 302, "{}", join.body);

    // Each tenant lists only its own meetings.
    assert!(create(&b, "b-room").await.is_success());
    assert_eq!(meeting_ids(&b.get("getMeetings", &[]).await), ["b-room"]);
    assert_eq!(meeting_ids(&a.get("getMeetings", &[]).await), ["room"]);
}

#[tokio::test]
async fn only_the_tenants_own_secrets_open_its_sub_domain() {
    let t = Tenants::start(TestApp::builder().servers(1)).await;
    let call = |client: ApiClient| async move { client.get("isMeetingRunning", &[("meetingID", "x")]).await };
    assert!(call(t.a()).await.is_success());
    // Both secrets of a rollover pair work.
    assert!(call(t.client("a", "secret-a2")).await.is_success());
    // Another tenant's secret, the LB secret, an unknown sub-domain and the
    // bare URL_HOST are all checksum errors (Scalelite's behaviour).
    assert_failed(&call(t.client("a", "secret-b")).await, "checksumError");
    assert_failed(&call(t.client("a", scalelite_tests::LB_SECRET)).await, "checksumError");
    assert_failed(&call(t.client("c", "secret-a1")).await, "checksumError");
    let bare = t.app.client().host(URL_HOST);
    assert_failed(&bare.get("isMeetingRunning", &[("meetingID", "x")]).await, "checksumError");
    // A host outside URL_HOST is not served at all.
    let foreign = t.app.client().with_secret("secret-a1").host("a.evil.test");
    assert_eq!(foreign.get("isMeetingRunning", &[("meetingID", "x")]).await.status, 403);
}

#[tokio::test]
async fn secret_rollover_takes_effect_without_a_restart() {
    let t = Tenants::start(TestApp::builder().servers(1).env("TENANT_CACHE_TTL", "1")).await;
    let call = |secret: &str| {
        let client = t.client("a", secret);
        async move { client.get("isMeetingRunning", &[("meetingID", "x")]).await }
    };
    assert!(call("secret-a1").await.is_success());
    // An operator adds a secret (with `scalelite-admin tenants update`, in
    // another process): it works on the very next request.
    let secrets = |secrets: &str| TenantUpdate { secrets: Some(secrets.to_owned()), ..TenantUpdate::default() };
    t.app.store().update_tenant(&t.a.id, &secrets("secret-a1:secret-new")).await.unwrap();
    assert!(call("secret-new").await.is_success());
    assert!(call("secret-a1").await.is_success());
    // Retiring the old secret takes effect within TENANT_CACHE_TTL.
    t.app.store().update_tenant(&t.a.id, &secrets("secret-new")).await.unwrap();
    eventually_with(Duration::from_secs(10), "the retired secret refused", || async {
        !call("secret-a1").await.is_success()
    })
    .await;
    assert!(call("secret-new").await.is_success());
}

#[tokio::test]
async fn tenant_settings_layer_over_the_global_parameter_policy() {
    let builder = TestApp::builder()
        .servers(1)
        .env("DEFAULT_CREATE_PARAMS", "welcome=global-welcome,record=true,logoutURL=https://global.test")
        .env("OVERRIDE_CREATE_PARAMS", "maxParticipants=50")
        .env("DEFAULT_JOIN_PARAMS", "userdata-bbb_skip_check_audio=false");
    let t = Tenants::start(builder).await;
    let store = &t.app.state.store;
    for (param, value, flag) in [
        ("welcome", "tenant-welcome", "false"),
        ("maxParticipants", "10", "true"),
        ("logoutURL", "https://a.test", "TRUE"), // only exactly "true" overrides
        ("userdata-bbb_skip_check_audio", "true", "true"),
    ] {
        store.create_tenant_setting(&TenantSetting::new(t.a.id.clone(), param, value, flag)).await.unwrap();
    }
    let server = &t.app.fleet[0];

    let a_create = t.a().get("create", &[("meetingID", "a1"), ("logoutURL", "https://request.test")]).await;
    assert!(a_create.is_success(), "{}", a_create.body);
    let forwarded = server.calls_to("create").pop().unwrap();
    assert_eq!(forwarded.param("welcome"), Some("tenant-welcome"), "tenant default beats global default");
    assert_eq!(forwarded.param("record"), Some("true"), "global default still applies");
    assert_eq!(forwarded.param("logoutURL"), Some("https://request.test"), "request beats a tenant default");
    assert_eq!(forwarded.param("maxParticipants"), Some("10"), "tenant override beats global override");

    let b_create = t.b().get("create", &[("meetingID", "b1")]).await;
    assert!(b_create.is_success(), "{}", b_create.body);
    let forwarded = server.calls_to("create").pop().unwrap();
    assert_eq!(forwarded.param("welcome"), Some("global-welcome"), "B has no settings");
    assert_eq!(forwarded.param("maxParticipants"), Some("50"));

    // Settings apply to join as well.
    let join = t.a().get("join", &[("meetingID", "a1"), ("fullName", "Alice"), ("password", "mp")]).await;
    let location = join.location.clone().unwrap();
    assert!(location.contains("userdata-bbb_skip_check_audio=true"), "{location}");
    let join = t.b().get("join", &[("meetingID", "b1"), ("fullName", "Bob"), ("password", "mp")]).await;
    let location = join.location.clone().unwrap();
    assert!(location.contains("userdata-bbb_skip_check_audio=false"), "{location}");
}

fn recording(record_id: &str, meeting_id: &str, tenant: &Tenant) -> RecordingImport {
    RecordingImport {
        record_id: record_id.into(),
        meeting_id: meeting_id.into(),
        name: Some("Lecture".into()),
        published: Some(true),
        participants: Some(3),
        state: Some("published".into()),
        start_ms: Some(1_700_000_000_000),
        end_ms: Some(1_700_000_600_000),
        metadata: vec![("tenant-id".into(), tenant.id.to_string()), ("tenant-name".into(), tenant.name.clone())],
        formats: vec![ImportedFormat {
            format: "presentation".into(),
            url: format!("/playback/presentation/2.3/{record_id}"),
            length: Some(10),
            thumbnails: vec![],
        }],
    }
}

fn record_ids(reply: &Reply) -> Vec<String> {
    let xml = reply.xml();
    let Some(list) = xml.child("recordings") else { return Vec::new() };
    list.children_named("recording").map(|r| r.text_at("recordID").unwrap_or_default()).collect()
}

#[tokio::test]
async fn recordings_and_playback_are_scoped_to_their_tenant() {
    let t = Tenants::start(TestApp::builder().servers(1).recordings()).await;
    let store = t.app.recording_store();
    let a_rec = "aaaa-1700000000000";
    let b_rec = "bbbb-1700000000000";
    for (id, tenant) in [(a_rec, &t.a), (b_rec, &t.b)] {
        store.import_recording(&recording(id, "shared-meeting", tenant), ImportPolicy::default()).await.unwrap();
        let dir = t.app.dirs().published().join("presentation").join(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.html"), "<html/>").unwrap();
    }
    let (a, b) = (t.a(), t.b());
    assert_eq!(record_ids(&a.get("getRecordings", &[]).await), [a_rec]);
    assert_eq!(record_ids(&b.get("getRecordings", &[("meetingID", "shared-meeting")]).await), [b_rec]);
    assert!(record_ids(&b.get("getRecordings", &[("recordID", a_rec)]).await).is_empty());
    // meta_* filters work on a tenant host (Scalelite's join on the tenant's
    // metadata row matches none: COMPATIBILITY M9), and stay scoped.
    assert_eq!(record_ids(&a.get("getRecordings", &[("meta_tenant-name", "a")]).await), [a_rec]);
    assert_eq!(record_ids(&a.get("getRecordings", &[("meta_tenant-name", "b,a")]).await), [a_rec]);
    assert!(record_ids(&b.get("getRecordings", &[("meta_tenant-name", "a")]).await).is_empty());

    // B cannot publish, update or delete A's recording.
    assert_failed(&b.get("publishRecordings", &[("recordID", a_rec), ("publish", "false")]).await, "notFound");
    let update = b.get("updateRecordings", &[("recordID", a_rec), ("meta_title", "owned")]).await;
    assert_eq!(update.text_at("updated").as_deref(), Some("false"), "{}", update.body);
    assert_failed(&b.get("deleteRecordings", &[("recordID", a_rec)]).await, "notFound");
    assert!(t.app.dirs().published().join("presentation").join(a_rec).exists());

    // Scalelite advisory: a tenant must not move a recording to another
    // tenant (or take one) by rewriting its tenant metadata.
    let update = a.get("updateRecordings", &[("recordID", a_rec), ("meta_tenant-id", t.b.id.as_str())]).await;
    assert!(update.is_success(), "{}", update.body);
    assert_eq!(record_ids(&a.get("getRecordings", &[]).await), [a_rec], "A keeps its recording");
    assert_eq!(record_ids(&b.get("getRecordings", &[]).await), [b_rec], "B got nothing");

    // Playback needs the recording's own tenant host.
    let play = |host: String, id: &str| {
        let url = format!("{}/recording/{id}/presentation", t.app.origin());
        async move {
            http_request(Method::GET, &url, &[("host", host.as_str())], Bytes::new(), Duration::from_secs(10))
                .await
                .unwrap()
        }
    };
    assert_eq!(play(format!("a.{URL_HOST}"), a_rec).await.status, 307);
    assert_eq!(play(format!("b.{URL_HOST}"), a_rec).await.status, 404);
    let unknown = play(format!("zz.{URL_HOST}"), a_rec).await;
    assert_failed(&unknown, "checksumError");
}

/// Ruby Scalelite's tenant keys, and what a join costs Redis.
mod redis_only {
    use super::*;
    use scalelite_tests::TestBackend;

    /// `(command, calls)` Redis executed since `CONFIG RESETSTAT`, commands run
    /// by scripts included (`INFO commandstats`).
    async fn command_stats(app: &TestApp) -> Vec<(String, u64)> {
        let scalelite_tests::RespValue::Str(info) = app.redis().cmd(&["INFO", "commandstats"]).await else {
            panic!("INFO commandstats")
        };
        info.lines()
            .filter_map(|l| {
                let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = rest.strip_prefix("calls=")?.split(',').next()?.parse().ok()?;
                Some((name.to_owned(), calls))
            })
            .filter(|(name, _)| name != "info" && name != "config|resetstat")
            .collect()
    }

    #[tokio::test]
    async fn a_tenant_made_by_ruby_scalelite_works_unchanged() {
        let t = Tenants::start(TestApp::builder().backend(TestBackend::Redis).servers(1)).await;
        // Scalelite's exact keys (§8.4), written by hand.
        let id = "0d6c8c38-8f3b-4b5e-9d0e-5f1f3c2a7b11";
        let redis = t.app.redis();
        redis.cmd(&["SADD", &t.app.key("tenants"), id]).await;
        redis.cmd(&["HSET", &t.app.key(&format!("tenant:{id}")), "name", "ruby", "secrets", "r1:r2"]).await;
        redis.cmd(&["HSET", &t.app.key("tenant_name:ruby"), "id", id]).await;
        redis.cmd(&["SADD", &t.app.key(&format!("tenant_settings:{id}")), "s1"]).await;
        let setting = t.app.key("tenant_setting:s1");
        redis
            .cmd(&["HSET", &setting, "param", "welcome", "value", "from-ruby", "override", "true", "tenant_id", id])
            .await;

        let client = t.client("ruby", "r2");
        assert!(create(&client, "r-room").await.is_success());
        let forwarded = t.app.fleet[0].calls_to("create").pop().unwrap();
        assert_eq!(forwarded.param("welcome"), Some("from-ruby"));
        assert_eq!(forwarded.param("meta_tenant-id"), Some(id));
        assert_eq!(t.app.meeting_record("r-room").await.get("tenant_id").map(String::as_str), Some(id));
    }

    #[tokio::test]
    async fn a_tenants_join_costs_one_redis_round_trip() {
        let t = Tenants::start(TestApp::builder().backend(TestBackend::Redis).servers(1)).await;
        let a = t.a();
        assert!(create(&a, "room").await.is_success());
        let join = [("meetingID", "room"), ("fullName", "Alice"), ("password", "mp")];
        assert_eq!(a.get("join", &join).await.status, 302);
        t.app.redis().cmd(&["CONFIG", "RESETSTAT"]).await;
        for _ in 0..5 {
            assert_eq!(a.get("join", &join).await.status, 302);
        }
        // The tenant and its settings come from the process's directory: each
        // join is one script call (find the meeting, check its tenant and
        // server, count the load); nothing else reaches Redis.
        let stats = command_stats(&t.app).await;
        assert!(stats.contains(&("evalsha".to_owned(), 5)), "{stats:?}");
        let script_commands = ["evalsha", "hmget", "sismember", "zadd"];
        assert!(stats.iter().all(|(name, _)| script_commands.contains(&name.as_str())), "{stats:?}");
    }
}

/// Two plugins an operator vetted.
const VETTED_PLUGINS: &str =
    r#"[{"url":"https://plugins.example/a.json","checksum":"1"},{"url":"https://plugins.example/b.json"}]"#;

#[tokio::test]
async fn a_tenant_blocks_code_loading_params_and_modules_and_its_server_tag_stays_out_of_joins() {
    let t = Tenants::start(
        TestApp::builder().servers(1).env("DEFAULT_JOIN_PARAMS", "userdata-bbb_show_participants_on_login=false"),
    )
    .await;
    let store = &t.app.state.store;
    for (param, value, flag) in [
        ("CREATE_EXCLUDE_PARAMS", "pluginManifests,clientSettingsOverride", "true"),
        ("CREATE_EXCLUDE_PARAMS", "screenShareBridge", "false"),
        ("JOIN_EXCLUDE_PARAMS", "userdata-bbb_custom_style_url", "true"),
        ("screenShareBridge", "bbb-webrtc-sfu", "true"),
        ("pluginManifests", VETTED_PLUGINS, "true"),
        ("meta_server-tag", "gpu", "true"),
        ("meta_server-tag", "cpu", "false"),
    ] {
        store.create_tenant_setting(&TenantSetting::new(t.a.id.clone(), param, value, flag)).await.unwrap();
    }
    // `*Bridge=livekit` creates go only to servers declaring LiveKit.
    let livekit = scalelite_store::ServerUpdate { capabilities: Some(vec!["livekit".into()]), ..Default::default() };
    store.update_server(&scalelite_tests::server_id(0).as_str().into(), &livekit).await.unwrap();
    let modules = concat!(
        "<modules><module name=\"presentation\"><document url=\"https://example.org/a.pdf\" filename=\"a.pdf\"/></module>",
        "<module name=\"clientSettingsOverride\"><![CDATA[{\"public\":{}}]]></module></modules>",
    );
    let params = [
        ("meetingID", "m-a"),
        ("name", "A"),
        ("moderatorPW", "mp"),
        ("pluginManifests", r#"[{"url":"https://evil.example/p.json"}]"#),
        ("screenShareBridge", "livekit"),
        ("audioBridge", "livekit"),
    ];
    let reply = t.a().post_xml("create", &params, modules).await;
    assert!(reply.is_success(), "{}", reply.body);
    let server = &t.app.fleet[0];
    let call = server.calls_to("create").pop().unwrap();
    assert_eq!(
        call.param("pluginManifests"),
        Some(VETTED_PLUGINS),
        "A's exclusion drops the client's plugins, its override sets its own (commas and all)"
    );
    assert_eq!(call.param("screenShareBridge"), Some("bbb-webrtc-sfu"), "A's override still applies");
    assert_eq!(call.param("audioBridge"), Some("livekit"), "not excluded");
    assert_eq!(call.param("CREATE_EXCLUDE_PARAMS"), None, "the policy is never forwarded");
    assert_eq!(call.param("JOIN_EXCLUDE_PARAMS"), None);
    let body = server.meeting("m-a").unwrap().create_body.unwrap();
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        "<modules><module name=\"presentation\"><document url=\"https://example.org/a.pdf\" filename=\"a.pdf\"/></module></modules>"
    );

    // Tenant B has no such settings: everything passes.
    let mut b_params = params;
    b_params[0] = ("meetingID", "m-b");
    let reply = t.b().post_xml("create", &b_params, modules).await;
    assert!(reply.is_success(), "{}", reply.body);
    let call = server.calls_to("create").pop().unwrap();
    assert_eq!(call.param("pluginManifests"), params[3].1.into());
    assert_eq!(call.param("screenShareBridge"), Some("livekit"));
    assert_eq!(server.meeting("m-b").unwrap().create_body.as_deref(), Some(modules.as_bytes()));

    // Join: A's exclusion list applies, its server-tag settings are not
    // appended (Scalelite drops them), global join defaults still are.
    let join = [
        ("meetingID", "m-a"),
        ("fullName", "Alice"),
        ("password", "mp"),
        ("userdata-bbb_custom_style_url", "https://evil.example/x.css"),
        ("userdata-bbb_auto_join_audio", "true"),
    ];
    let location = t.a().get("join", &join).await.location.unwrap();
    assert!(!location.contains("custom_style_url"), "{location}");
    assert!(!location.contains("server-tag"), "{location}");
    assert!(!location.contains("EXCLUDE"), "{location}");
    assert!(location.contains("userdata-bbb_auto_join_audio=true"), "{location}");
    assert!(location.contains("userdata-bbb_show_participants_on_login=false"), "{location}");
    let mut b_join = join;
    b_join[0] = ("meetingID", "m-b");
    let location = t.b().get("join", &b_join).await.location.unwrap();
    assert!(location.contains("userdata-bbb_custom_style_url="), "{location}");
}
