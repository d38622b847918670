//! Placement by capability and region (issue 15 item 4): what an operator
//! declares (`servers add/update --region --capabilities`, the management
//! API), what the poller learns (`bbb-3.0` from `bbbVersion`), and where
//! creates asking for them (`*Bridge=livekit`, `meta_server-capability`,
//! `meta_server-region`, a default region) land, on both backends.

use bytes::Bytes;
use http::Method;
use scalelite_core::ServerId;
use scalelite_store::{ServerState, ServerUpdate, Tenant, TenantSetting};
use scalelite_tests::{ApiClient, Reply, SeedServer, TestApp};
use serde_json::Value;

use crate::support::{Run, admin_with, assert_failed};

async fn admin(app: &TestApp, args: &[&str]) -> Run {
    admin_with(&app.state.config, args, "").await
}

/// The id printed by `servers add` (`OK` then `id: <id>`).
fn added_id(run: &Run) -> String {
    run.out.lines().find_map(|l| l.strip_prefix("id: ")).unwrap_or_else(|| panic!("no id in {:?}", run.out)).to_owned()
}

/// A signed management API `POST` with a JSON body.
async fn management_post(client: &ApiClient, call: &str, params: &[(&str, &str)], body: &Value) -> Reply {
    let query = client.query(params);
    let checksum = client.checksum(call, &query);
    let sep = if query.is_empty() { "" } else { "&" };
    let url = format!("/scalelite/api/{call}?{query}{sep}checksum={checksum}");
    let body = Bytes::from(serde_json::to_vec(body).unwrap());
    client.send(Method::POST, &url, Some("application/json"), body).await.unwrap()
}

/// Creates `id` with `extra` parameters; returns the reply.
async fn create(app: &TestApp, id: &str, extra: &[(&str, &str)]) -> Reply {
    let mut params = vec![("meetingID", id), ("name", "x")];
    params.extend_from_slice(extra);
    app.client().get("create", &params).await
}

/// The server meeting `id` was placed on.
async fn placed(app: &TestApp, id: &str) -> String {
    app.meeting(id).await.unwrap_or_else(|| panic!("no meeting {id}")).server_id.into_string()
}

#[tokio::test]
async fn the_operator_declares_regions_and_livekit_and_creates_land_where_they_work() {
    let app = TestApp::builder().servers(3).unseeded().start().await;
    // fake 0: eu, LiveKit; fake 1: us; fake 2: eu, still on BBB 2.7.
    app.fleet[2].set_bbb_version("2.7.3");
    let flags: [&[&str]; 3] =
        [&["--region", "eu", "--capabilities", "livekit"], &["--region", "us"], &["--region", "eu"]];
    let mut ids = Vec::new();
    for (server, flags) in app.fleet.iter().zip(flags) {
        let (url, secret) = (server.url(), server.secret());
        let mut args = vec!["servers", "add", url.as_str(), secret.as_str()];
        args.extend_from_slice(flags);
        ids.push(added_id(&admin(&app, &args).await.ok()));
    }
    for id in &ids {
        admin(&app, &["servers", "enable", id]).await.ok();
    }
    admin(&app, &["poll"]).await.ok();

    // What the operator sees: declared and learned capabilities, regions.
    let listed = admin(&app, &["servers"]).await.ok();
    assert!(listed.out.contains("\tregion: eu\n\tcapabilities: livekit, bbb-3.0 (auto)\n"), "{}", listed.out);
    assert!(listed.out.contains("\tregion: eu\n\tcapabilities: bbb-2.7 (auto)\n"), "{}", listed.out);
    let json = admin(&app, &["servers", "--json"]).await.ok().json();
    let first = json.as_array().unwrap().iter().find(|s| s["id"] == ids[0].as_str()).unwrap();
    assert_eq!(first["region"], "eu");
    assert_eq!(first["capabilities"], serde_json::json!(["livekit"]));
    assert_eq!(first["automatic_capabilities"], serde_json::json!(["bbb-3.0"]));
    let status = admin(&app, &["status"]).await.ok();
    assert!(status.out.contains("\nREGIONS AND CAPABILITIES\n"), "{}", status.out);
    assert!(status.out.contains(" region=us capabilities=bbb-3.0 (auto)\n"), "{}", status.out);
    let rows = admin(&app, &["status", "--json"]).await.ok().json();
    let regions: Vec<&str> = rows.as_array().unwrap().iter().filter_map(|r| r["region"].as_str()).collect();
    assert_eq!(regions.len(), 3);

    // `*Bridge=livekit` lands on the LiveKit server only, whatever its load.
    for (i, bridge) in ["audioBridge", "cameraBridge", "screenShareBridge"].into_iter().enumerate() {
        let id = format!("lk-{i}");
        assert!(create(&app, &id, &[(bridge, "livekit")]).await.is_success());
        assert_eq!(placed(&app, &id).await, ids[0], "{bridge}");
    }
    assert_eq!(app.fleet[0].calls_to("create")[0].param("audioBridge"), Some("livekit"));
    // A preferred region; the parameter is the balancer's, never forwarded.
    assert!(create(&app, "in-us", &[("meta_server-region", "us")]).await.is_success());
    assert_eq!(placed(&app, "in-us").await, ids[1]);
    assert_eq!(app.fleet[1].calls_to("create")[0].param("meta_server-region"), None);
    // Learned capabilities: the one server still on 2.7.
    assert!(create(&app, "old", &[("meta_server-capability", "bbb-2.7")]).await.is_success());
    assert_eq!(placed(&app, "old").await, ids[2]);
    assert_eq!(app.fleet[2].calls_to("create")[0].param("meta_server-capability"), None);
    assert!(create(&app, "both", &[("meta_server-capability", "bbb-3.0;livekit")]).await.is_success());
    assert_eq!(placed(&app, "both").await, ids[0]);

    // LiveKit gone: refused with its own key, nothing placed or forwarded.
    admin(&app, &["servers", "update", &ids[0], "--capabilities", ""]).await.ok();
    let reply = create(&app, "no-lk", &[("audioBridge", "livekit")]).await;
    assert_failed(&reply, "serverCapabilityUnavailable");
    insta::assert_snapshot!(reply.body, @r#"
    <?xml version="1.0"?>
    <response>
      <returncode>FAILED</returncode>
      <messageKey>serverCapabilityUnavailable</messageKey>
      <message>There is no available server with the required capability=livekit.</message>
    </response>
    "#);
    assert!(app.meeting("no-lk").await.is_none());
    // Other bridges are BBB's business.
    assert!(create(&app, "sfu", &[("audioBridge", "bbb-webrtc-sfu")]).await.is_success());

    // Invalid names are refused; a blank region removes it.
    let refused = admin(&app, &["servers", "update", &ids[1], "--region", "a;b"]).await;
    assert_eq!(refused.code, 1, "{refused:?}");
    admin(&app, &["servers", "update", &ids[1], "--region", ""]).await.ok();
    assert_eq!(app.server(&ids[1]).await.unwrap().region, None);
}

#[tokio::test]
async fn a_region_that_is_down_or_full_falls_back_to_any_region() {
    let app = TestApp::builder()
        .servers(3)
        .unseeded()
        .env("CAPACITY_PER_SERVER", "100")
        .env("DEFAULT_CREATE_PARAMS", "meta_server-region=eu")
        .start()
        .await;
    let seeds = [
        SeedServer::enabled("us1", app.fleet[0].url(), app.fleet[0].secret()).load(Some(0.0)),
        SeedServer::enabled("eu1", app.fleet[1].url(), app.fleet[1].secret()).load(Some(20.0)),
        SeedServer::enabled("de1", app.fleet[2].url(), app.fleet[2].secret()).load(Some(105.0)),
    ];
    for (seed, region) in seeds.iter().zip(["us", "eu", "de"]) {
        app.seed_server(seed).await;
        let update = ServerUpdate { region: Some(Some(region.into())), ..ServerUpdate::default() };
        app.store().update_server(&ServerId::from(seed.id.as_str()), &update).await.unwrap();
    }
    let fallbacks = || async {
        let text = app.client().raw_get("/metrics").await.body;
        text.lines()
            .find_map(|l| l.strip_prefix("scalelite_api_placement_region_fallbacks_total "))
            .map(|v| v.trim().to_owned())
    };
    assert_eq!(fallbacks().await.as_deref(), Some("0"));

    // The default region wins over a less loaded server elsewhere.
    assert!(create(&app, "by-default", &[]).await.is_success());
    assert_eq!(placed(&app, "by-default").await, "eu1");
    // The request's list beats the default; an unknown region is skipped.
    assert!(create(&app, "listed", &[("meta_server-region", "mars;eu")]).await.is_success());
    assert_eq!(placed(&app, "listed").await, "eu1");
    // de1 is at capacity: full, so the least loaded server anywhere.
    assert!(create(&app, "full", &[("meta_server-region", "de")]).await.is_success());
    assert_eq!(placed(&app, "full").await, "us1");
    assert_eq!(fallbacks().await.as_deref(), Some("1"));
    // eu down (cordoned, out of the pool): anywhere else.
    let cordon = ServerUpdate { state: Some(ServerState::Cordoned), ..ServerUpdate::default() };
    app.store().update_server(&ServerId::from("eu1"), &cordon).await.unwrap();
    assert!(create(&app, "down", &[]).await.is_success());
    assert_eq!(placed(&app, "down").await, "us1");
    assert_eq!(fallbacks().await.as_deref(), Some("2"));
}

#[tokio::test]
async fn a_tenants_region_setting_is_its_default_or_its_rule() {
    let app = TestApp::builder()
        .servers(2)
        .unseeded()
        .env("MULTITENANCY_ENABLED", "true")
        .env("URL_HOST", "sl.test")
        .start()
        .await;
    for (i, (id, region)) in [("eu1", "eu"), ("us1", "us")].into_iter().enumerate() {
        app.seed_server(&SeedServer::enabled(id, app.fleet[i].url(), app.fleet[i].secret())).await;
        let update = ServerUpdate { region: Some(Some(region.into())), ..ServerUpdate::default() };
        app.store().update_server(&ServerId::from(id), &update).await.unwrap();
    }
    let (a, b) = (Tenant::new("a", "secret-a"), Tenant::new("b", "secret-b"));
    for tenant in [&a, &b] {
        app.store().create_tenant(tenant).await.unwrap();
    }
    let store = app.store();
    store.create_tenant_setting(&TenantSetting::new(a.id.clone(), "meta_server-region", "us", "false")).await.unwrap();
    store.create_tenant_setting(&TenantSetting::new(b.id.clone(), "meta_server-region", "us", "true")).await.unwrap();
    let client = |name: &str, secret: &str| app.client().with_secret(secret).host(format!("{name}.sl.test"));
    let (ca, cb) = (client("a", "secret-a"), client("b", "secret-b"));
    let create = |client: &ApiClient, id: &'static str, region: Option<&'static str>| {
        let client = client.clone();
        async move {
            let mut params = vec![("meetingID", id), ("name", "x")];
            params.extend(region.map(|r| ("meta_server-region", r)));
            let reply = client.get("create", &params).await;
            assert!(reply.is_success(), "{}", reply.body);
        }
    };
    // A's setting is a default: used without a request value, beaten by one.
    create(&ca, "a-default", None).await;
    create(&ca, "a-asked", Some("eu")).await;
    // B's is an override: its front-end cannot move it.
    create(&cb, "b-asked", Some("eu")).await;
    let placed_on = [placed(&app, "a-default").await, placed(&app, "a-asked").await, placed(&app, "b-asked").await];
    assert_eq!(placed_on, ["us1", "eu1", "us1"]);
    // Never forwarded, and never added to joins.
    assert!(app.fleet[1].calls_to("create").iter().all(|c| c.param("meta_server-region").is_none()));
    let join = [("meetingID", "b-asked"), ("fullName", "B"), ("role", "MODERATOR")];
    let location = cb.get("join", &join).await.location.unwrap();
    assert!(location.contains("/join?") && !location.contains("server-region"), "{location}");
}

#[tokio::test]
async fn the_management_api_reads_and_writes_regions_and_capabilities() {
    let app = TestApp::builder().servers(1).unseeded().start().await;
    let client = app.client();
    let body = serde_json::json!({"server": {
        "url": app.fleet[0].url(), "secret": app.fleet[0].secret(), "region": "eu-west", "capabilities": "livekit,sip",
    }});
    let reply = management_post(&client, "addServer", &[], &body).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let added: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(added["region"], "eu-west");
    assert_eq!(added["capabilities"], serde_json::json!(["livekit", "sip"]));
    assert_eq!(added["automatic_capabilities"], serde_json::json!([]));
    let id = added["id"].as_str().unwrap().to_owned();
    let body = serde_json::json!({"server": {"region": "", "capabilities": "livekit"}});
    let reply = management_post(&client, "updateServer", &[("id", &id)], &body).await;
    let updated: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(
        (updated["region"].as_str(), updated["capabilities"].clone()),
        (Some(""), serde_json::json!(["livekit"]))
    );
    let body = serde_json::json!({"server": {"capabilities": "live kit"}});
    let reply = management_post(&client, "updateServer", &[("id", &id)], &body).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(app.server(&id).await.unwrap().capabilities, vec!["livekit".to_owned()]);
}

/// `servers sync` reading `doc` on stdin.
async fn sync(app: &TestApp, doc: &str) -> Run {
    admin_with(&app.state.config, &["servers", "sync", "-"], doc).await
}

/// Every server as stored, sorted by id, to compare before and after.
async fn snapshot(app: &TestApp) -> Vec<scalelite_store::Server> {
    let mut all = app.store().servers().await.unwrap();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    all
}

#[tokio::test]
async fn a_sync_document_declares_regions_and_capabilities_and_the_export_round_trips() {
    let app = TestApp::builder().servers(3).unseeded().start().await;
    let (f0, f1, f2) = (&app.fleet[0], &app.fleet[1], &app.fleet[2]);
    let doc = format!(
        "servers:\n  eu1:\n    url: {}\n    secret: {}\n    region: eu\n    capabilities: [livekit, sip]\n  \
         us1:\n    url: {}\n    secret: {}\n    region: us\n    capabilities: sip\n  \
         any1:\n    url: {}\n    secret: {}\n    tag: gpu\n",
        f0.url(),
        f0.secret(),
        f1.url(),
        f1.secret(),
        f2.url(),
        f2.secret()
    );
    let run = sync(&app, &doc).await.ok();
    for line in [
        "[eu1] Server created",
        "[eu1] Server updated: region=eu",
        "[eu1] Server updated: capabilities=livekit,sip",
        "[us1] Server updated: region=us",
        "[us1] Server updated: capabilities=sip",
        "[any1] Server enabled",
    ] {
        assert!(run.out.lines().any(|l| l == line), "no {line:?} in\n{}", run.out);
    }
    assert!(!run.out.contains("[any1] Server updated: region"), "{}", run.out);
    admin(&app, &["poll"]).await.ok();

    // Creates land as declared.
    assert!(create(&app, "lk", &[("audioBridge", "livekit")]).await.is_success());
    assert_eq!(placed(&app, "lk").await, "eu1");
    assert!(create(&app, "in-us", &[("meta_server-region", "us")]).await.is_success());
    assert_eq!(placed(&app, "in-us").await, "us1");
    assert!(
        create(&app, "sip-eu", &[("meta_server-capability", "sip"), ("meta_server-region", "eu")]).await.is_success()
    );
    assert_eq!(placed(&app, "sip-eu").await, "eu1");

    // The export: the new keys only where set, so `any1` reads as in Scalelite.
    let dump = admin(&app, &["servers", "yaml"]).await.ok().out;
    let any1 = format!(
        "  any1:\n    url: {}\n    secret: {}\n    load_multiplier: 1.0\n    tag: gpu\n    enabled: true\n",
        f2.url(),
        f2.secret()
    );
    assert!(dump.contains(&any1), "{dump}");
    assert!(
        dump.contains("    tag: ''\n    region: eu\n    capabilities:\n    - livekit\n    - sip\n    enabled: true\n"),
        "{dump}"
    );
    assert!(dump.contains("    region: us\n    capabilities:\n    - sip\n"), "{dump}");
    let json = admin(&app, &["servers", "yaml", "--json"]).await.ok().json();
    assert_eq!(json["servers"]["eu1"]["capabilities"], serde_json::json!(["livekit", "sip"]));
    assert!(json["servers"]["any1"].get("region").is_none(), "{json}");
    // Fed back, it changes nothing.
    assert_eq!(sync(&app, &dump).await.ok().out, "");

    // Like `tag`, a key left out means none: us1 loses its region.
    let without = dump.replace("    region: us\n", "");
    let run = sync(&app, &without).await.ok();
    assert_eq!(run.out, "[us1] Server updated: region=\n");
    assert_eq!(app.server("us1").await.unwrap().region, None);
    assert_eq!(app.server("us1").await.unwrap().capabilities, ["sip"]);

    // An emptied pool rebuilt from the export is the same pool again.
    sync(&app, &dump).await.ok();
    let emptied = admin_with(&app.state.config, &["servers", "sync", "-", "--mode", "force", "--yes"], "servers: {}\n");
    emptied.await.ok();
    assert!(snapshot(&app).await.is_empty());
    sync(&app, &dump).await.ok();
    assert_eq!(admin(&app, &["servers", "yaml"]).await.ok().out, dump);
    let eu1 = app.server("eu1").await.unwrap();
    assert_eq!(
        (eu1.region.as_deref(), eu1.capabilities.as_slice()),
        (Some("eu"), &["livekit".to_owned(), "sip".to_owned()][..])
    );
}

#[tokio::test]
async fn the_verbose_export_shows_learned_capabilities_apart_and_sync_never_declares_them() {
    let app = TestApp::builder().servers(2).unseeded().start().await;
    let (f0, f1) = (&app.fleet[0], &app.fleet[1]);
    f1.set_bbb_version("2.7.3");
    let doc = format!(
        "servers:\n  eu1:\n    url: {}\n    secret: {}\n    region: eu\n    capabilities: livekit\n  \
         old1:\n    url: {}\n    secret: {}\n",
        f0.url(),
        f0.secret(),
        f1.url(),
        f1.secret()
    );
    sync(&app, &doc).await.ok();
    admin(&app, &["poll"]).await.ok();

    let verbose = admin(&app, &["servers", "yaml", "--verbose"]).await.ok().out;
    assert!(
        verbose.contains("    region: eu\n    capabilities:\n    - livekit\n    enabled: true\n"),
        "declared: {verbose}"
    );
    assert!(
        verbose.contains("    bbb_version: 3.0.4\n    automatic_capabilities:\n    - bbb-3.0\n    online: true\n"),
        "learned: {verbose}"
    );
    assert!(verbose.contains("    bbb_version: 2.7.3\n    automatic_capabilities:\n    - bbb-2.7\n"), "{verbose}");
    let json = admin(&app, &["servers", "yaml", "--verbose", "--json"]).await.ok().json();
    assert_eq!(json["servers"]["eu1"]["capabilities"], serde_json::json!(["livekit"]));
    assert_eq!(json["servers"]["eu1"]["automatic_capabilities"], serde_json::json!(["bbb-3.0"]));
    assert!(json["servers"]["old1"].get("capabilities").is_none(), "{json}");
    // The plain export has no learned ones.
    assert!(!admin(&app, &["servers", "yaml"]).await.ok().out.contains("bbb-"));

    // Fed back, the verbose export changes nothing: the learned ones are
    // never declared.
    assert_eq!(sync(&app, &verbose).await.ok().out, "");
    assert_eq!(app.server("eu1").await.unwrap().capabilities, ["livekit"]);
    assert!(app.server("old1").await.unwrap().capabilities.is_empty());
    // Once the server is upgraded, the learned one follows, nothing declared lags.
    f1.set_bbb_version("3.0.1");
    admin(&app, &["poll"]).await.ok();
    let json = admin(&app, &["servers", "--json"]).await.ok().json();
    let old1 = json.as_array().unwrap().iter().find(|s| s["id"] == "old1").unwrap();
    assert_eq!(
        (old1["capabilities"].clone(), old1["automatic_capabilities"].clone()),
        (serde_json::json!([]), serde_json::json!(["bbb-3.0"]))
    );
}

#[tokio::test]
async fn a_sync_document_with_a_bad_name_is_refused_and_changes_nothing() {
    let app = TestApp::builder().servers(2).unseeded().start().await;
    let (f0, f1) = (&app.fleet[0], &app.fleet[1]);
    let good = format!(
        "servers:\n  eu1:\n    url: {}\n    secret: {}\n    region: eu\n    capabilities: livekit\n",
        f0.url(),
        f0.secret()
    );
    sync(&app, &good).await.ok();
    let before = snapshot(&app).await;
    // A new server first, a change to eu1, then the bad name: none of it is applied.
    let new = format!("  new1:\n    url: {}\n    secret: {}\n    region: us\n", f1.url(), f1.secret());
    let cases = [
        (
            format!(
                "servers:\n{new}  eu1:\n    url: {}\n    secret: {}\n    region: eu\n    capabilities: [livekit, live kit]\n",
                f0.url(),
                f0.secret()
            ),
            "ERROR: Server id=eu1: Invalid capability \"live kit\": use 1-64 letters, digits, '-', '_', '.' or ':'",
        ),
        (
            format!("servers:\n{new}  eu1:\n    url: {}\n    secret: {}\n    region: 'eu;us'\n", f0.url(), f0.secret()),
            "ERROR: Server id=eu1: Invalid region \"eu;us\": use 1-64 letters, digits, '-', '_', '.' or ':'",
        ),
        (
            format!(
                "servers:\n{new}  eu1:\n    url: {}\n    secret: {}\n    capabilities: {{livekit: true}}\n",
                f0.url(),
                f0.secret()
            ),
            "ERROR: Server id=eu1 has invalid capabilities: not a list of names",
        ),
    ];
    for (doc, error) in cases {
        sync(&app, &doc).await.fails_with(error);
        assert_eq!(snapshot(&app).await, before, "{doc}");
        let run = admin_with(&app.state.config, &["servers", "sync", "-", "--dry-run"], &doc).await;
        assert_eq!(run.code, 1, "{run:?}");
    }
    assert!(app.server("new1").await.is_none());
}

/// Runs `deploy/bbb-register.sh` for fake `i` with `env` added; its exit
/// status and output.
async fn register(app: &TestApp, i: usize, env: &[(&str, &str)]) -> (bool, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/bbb-register.sh");
    let output = tokio::process::Command::new("sh")
        .arg(script)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SCALELITE_URL", app.origin())
        .env("SCALELITE_SECRET", scalelite_tests::LB_SECRET)
        .env("BBB_URL", app.fleet[i].url())
        .env("BBB_SECRET", app.fleet[i].secret())
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run sh deploy/bbb-register.sh");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// The id of the server with fake `i`'s URL.
async fn id_of(app: &TestApp, i: usize) -> String {
    let url = app.fleet[i].url();
    let servers = app.store().servers().await.unwrap();
    servers.into_iter().find(|s| s.url == url).unwrap_or_else(|| panic!("no server {url}")).id.into_string()
}

#[tokio::test]
async fn bbb_servers_registering_themselves_declare_their_region_and_capabilities() {
    let app = TestApp::builder().servers(2).unseeded().start().await;
    let (ok, out) = register(&app, 0, &[("BBB_REGION", "eu"), ("BBB_CAPABILITIES", "livekit,sip")]).await;
    assert!(ok && out.contains("bbb-register: added"), "{out}");
    let (ok, out) = register(&app, 1, &[("BBB_REGION", "us")]).await;
    assert!(ok, "{out}");
    let (eu, us) = (id_of(&app, 0).await, id_of(&app, 1).await);
    let server = app.server(&eu).await.unwrap();
    assert_eq!((server.region.as_deref(), server.capabilities.join(",")), (Some("eu"), "livekit,sip".to_owned()));
    assert_eq!(server.state.as_deref(), Some("enabled"));
    admin(&app, &["poll"]).await.ok();
    assert!(create(&app, "lk", &[("audioBridge", "livekit")]).await.is_success());
    assert_eq!(placed(&app, "lk").await, eu);
    assert!(create(&app, "in-us", &[("meta_server-region", "us")]).await.is_success());
    assert_eq!(placed(&app, "in-us").await, us);

    // At the next boot: unset keeps them, a new value replaces them.
    let (ok, out) = register(&app, 0, &[]).await;
    assert!(ok, "{out}");
    assert_eq!(app.server(&eu).await.unwrap().region.as_deref(), Some("eu"));
    let (ok, out) = register(&app, 0, &[("BBB_REGION", "eu-west"), ("BBB_CAPABILITIES", "livekit")]).await;
    assert!(ok, "{out}");
    let server = app.server(&eu).await.unwrap();
    assert_eq!((server.region.as_deref(), server.capabilities.join(",")), (Some("eu-west"), "livekit".to_owned()));

    // A bad name fails the registration and changes nothing.
    let before = snapshot(&app).await;
    let (ok, out) = register(&app, 0, &[("BBB_CAPABILITIES", "live kit")]).await;
    assert!(!ok && out.contains("Invalid capability"), "{out}");
    assert_eq!(snapshot(&app).await, before);
}

/// Ruby Scalelite reads `server:<id>` into its model and fails on unknown
/// fields: the region and capabilities must stay out of it.
mod redis_only {
    use scalelite_core::ServerId;
    use scalelite_store::ServerUpdate;
    use scalelite_tests::{SeedServer, TestApp, TestBackend};

    #[tokio::test]
    async fn regions_and_capabilities_stay_out_of_the_hash_ruby_reads_and_survive_its_writes() {
        let app = TestApp::builder().backend(TestBackend::Redis).servers(1).unseeded().start().await;
        app.seed_server(&SeedServer::enabled("s1", app.fleet[0].url(), app.fleet[0].secret())).await;
        let before = app.server_record("s1").await;
        let update = ServerUpdate {
            region: Some(Some("eu".into())),
            capabilities: Some(vec!["livekit".into(), "sip".into()]),
            ..ServerUpdate::default()
        };
        app.store().update_server(&ServerId::from("s1"), &update).await.unwrap();
        assert_eq!(app.server_record("s1").await, before, "server:<id> gained no field");
        let placement = scalelite_tests::seed::hash(app.redis(), &app.key("server_placement:s1")).await;
        assert_eq!(
            placement.into_iter().collect::<Vec<_>>(),
            [("capabilities".to_owned(), "livekit;sip".to_owned()), ("region".to_owned(), "eu".to_owned())]
        );
        // A write as Ruby's Server#save makes it (changed fields of
        // server:<id> only) keeps them.
        let key = app.key("server:s1");
        app.redis().cmd(&["HSET", &key, "tag", "gpu", "bbb_version", "3.0.4"]).await;
        let server = app.server("s1").await.unwrap();
        assert_eq!((server.region.as_deref(), server.capabilities.len()), (Some("eu"), 2));
        assert_eq!(server.all_capabilities(), ["livekit", "sip", "bbb-3.0"]);
        // Deleting the server here deletes its placement hash.
        assert!(app.store().delete_server(&ServerId::from("s1")).await.unwrap());
        let exists = app.redis().cmd(&["EXISTS", &app.key("server_placement:s1")]).await.as_int();
        assert_eq!(exists, Some(0));
    }
}
