//! `scalelite-admin tenants …` and `tenant-settings …` in-process on the
//! app's store: Scalelite's rake-task output, exit codes and stored
//! records (on Redis, Scalelite's keys).

use scalelite_admin::tenants::MULTITENANCY_DISABLED;
use scalelite_core::TenantId;
use scalelite_core::config::Config;
use scalelite_store::{Tenant, TenantSetting};
use scalelite_tests::TestApp;
use serde_json::json;

use crate::support::{Run, admin_with};

async fn start() -> TestApp {
    TestApp::builder().servers(0).start().await
}

/// Only the app's stores (the tenant commands need nothing else), with
/// `MULTITENANCY_ENABLED` set to `multitenancy` when given.
fn config(app: &TestApp, multitenancy: Option<&str>) -> Config {
    let mut env = app.store_env();
    if let Some(value) = multitenancy {
        env = env.with("MULTITENANCY_ENABLED", value);
    }
    Config::from_env(&env).unwrap()
}

/// Runs with `MULTITENANCY_ENABLED=true`.
async fn admin(app: &TestApp, args: &[&str]) -> Run {
    admin_with(&config(app, Some("true")), args, "").await
}

/// The tenant `id` as stored.
async fn tenant(app: &TestApp, id: &str) -> Option<Tenant> {
    app.store().tenant(&TenantId::from(id)).await.unwrap().map(|record| record.tenant)
}

/// `(name, secrets)` of tenant `id`.
async fn name_and_secrets(app: &TestApp, id: &str) -> Option<(String, String)> {
    tenant(app, id).await.map(|t| (t.name, t.secrets))
}

/// The ids of every tenant, sorted.
async fn tenant_ids(app: &TestApp) -> Vec<String> {
    let mut ids: Vec<String> =
        app.store().tenants().await.unwrap().into_iter().map(|r| r.tenant.id.into_string()).collect();
    ids.sort();
    ids
}

/// The id the name index gives for `name`.
async fn named(app: &TestApp, name: &str) -> Option<String> {
    app.store().tenant_by_name(name).await.unwrap().map(|r| r.tenant.id.into_string())
}

/// The settings of tenant `id`, by setting id.
async fn settings(app: &TestApp, id: &str) -> Vec<TenantSetting> {
    let mut settings = app.store().tenant(&TenantId::from(id)).await.unwrap().expect("tenant").settings;
    settings.sort_by(|a, b| a.id.cmp(&b.id));
    settings
}

/// Replaces each id with `<name>` in `text`.
fn redact(mut text: String, ids: &[(&str, &str)]) -> String {
    for (id, name) in ids {
        text = text.replace(id, &format!("<{name}>"));
    }
    text
}

#[tokio::test]
async fn tenant_commands_need_multitenancy_set_to_any_value() {
    let app = start().await;
    let unset = config(&app, None);
    let commands: [&[&str]; 10] = [
        &["tenants"],
        &["tenants", "add", "acme", "s1"],
        &["tenants", "update", "x", "--name", "y"],
        &["tenants", "update-lrs-basic", "x", "e", "u", "p"],
        &["tenants", "update_lrs_kc", "x", "e", "t", "c", "cs", "u", "p"],
        &["tenants", "remove", "x"],
        &["tenant-settings"],
        &["tenantSettings", "add", "x", "p", "v", "true"],
        &["tenant-settings", "remove", "x"],
        &["--json", "tenants", "list"],
    ];
    for args in commands {
        admin_with(&unset, args, "").await.fails_with(MULTITENANCY_DISABLED);
    }
    assert!(tenant_ids(&app).await.is_empty(), "nothing was written");
    // As in Scalelite the tasks only check that the variable is set, so even
    // `false` lets them run (while the API stays single-tenant).
    let run = admin_with(&config(&app, Some("false")), &["tenants"], "").await.ok();
    assert_eq!(run.out, "Total number of tenants: 0\n");
}

#[tokio::test]
async fn tenants_add_list_update_and_remove() {
    let app = start().await;
    // Arguments are checked like the rake tasks: message on stderr, exit 1.
    admin(&app, &["tenants", "add", "acme"])
        .await
        .fails_with("Error: both name and secrets are required to create a Tenant");
    admin(&app, &["tenants", "add", " ", "s"])
        .await
        .fails_with("Error: both name and secrets are required to create a Tenant");
    assert_eq!(admin(&app, &["tenants"]).await.ok().out, "Total number of tenants: 0\n");

    let added = admin(&app, &["tenants", "add", "acme", "s1:s2"]).await.ok();
    let acme = added.id_after("New Tenant id: ");
    assert_eq!(added.out, format!("OK\nNew Tenant id: {acme}\n"));
    assert_eq!(acme.len(), 36, "a UUID");
    // Stored with its name index.
    assert_eq!(name_and_secrets(&app, &acme).await, Some(("acme".into(), "s1:s2".into())));
    assert!(tenant(&app, &acme).await.unwrap().lrs.is_empty());
    assert_eq!(named(&app, "acme").await.as_deref(), Some(acme.as_str()));
    let json = admin(&app, &["--json", "tenants", "add", "beta", "b1"]).await.ok().json();
    let beta = json["id"].as_str().unwrap().to_owned();
    assert_eq!(json, json!({"ok": true, "id": beta}));
    assert_eq!(tenant_ids(&app).await, {
        let mut ids = vec![acme.clone(), beta.clone()];
        ids.sort();
        ids
    });

    // LRS credentials: all arguments required.
    admin(&app, &["tenants", "update-lrs-basic", &acme, "https://lrs.example.com/xapi", "user"])
        .await
        .fails_with("Error: id, LRS_ENDPOINT, LRS_USERNAME, LRS_PASSWORD are required to update a Tenant");
    let run = admin(&app, &["tenants", "update-lrs-basic", &acme, "https://lrs.example.com/xapi", "user", "pw"]).await;
    assert_eq!(run.ok().out, format!("OK\nUpdated Tenant id: {acme}\n"));
    admin(&app, &["tenants", "update_lrs_kc", &beta, "https://lrs", "https://kc/token", "client"]).await.fails_with(
        "Error: LRS_ENDPOINT, KC_TOKEN_URL, KC_CLIENT_ID, KC_CLIENT_SECRET, KC_USERNAME, KC_PASSWORD are \
             required to update a Tenant",
    );
    let kc = ["https://lrs.example.com/b", "https://kc/token", "client", "csecret", "kuser", "kpw"];
    let args: Vec<&str> = ["tenants", "update-lrs-kc", beta.as_str()].into_iter().chain(kc).collect();
    assert_eq!(admin(&app, &args).await.ok().err, "");

    // The listing prints secrets and the set LRS fields, by tenant name.
    let list = admin(&app, &["tenants"]).await.ok();
    insta::assert_snapshot!(redact(list.out, &[(&acme, "acme-id"), (&beta, "beta-id")]), @r"
    id: <acme-id>
    	name: acme
    	secrets: s1:s2
    	lrs_endpoint: https://lrs.example.com/xapi
    	lrs_username: user
    	lrs_password: pw
    id: <beta-id>
    	name: beta
    	secrets: b1
    	lrs_endpoint: https://lrs.example.com/b
    	kc_token_url: https://kc/token
    	kc_client_id: client
    	kc_client_secret: csecret
    	kc_username: kuser
    	kc_password: kpw
    Total number of tenants: 2
    ");
    let json = admin(&app, &["tenants", "--json"]).await.ok().json();
    assert_eq!(
        json[0],
        json!({"id": acme, "name": "acme", "secrets": "s1:s2", "lrs_endpoint": "https://lrs.example.com/xapi",
               "lrs_username": "user", "lrs_password": "pw"})
    );
    let keys: Vec<&String> = json[1].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "id",
            "name",
            "secrets",
            "lrs_endpoint",
            "kc_token_url",
            "kc_client_id",
            "kc_client_secret",
            "kc_username",
            "kc_password"
        ]
    );
    // Keycloak on a tenant with basic credentials: they stay (as in
    // Scalelite), and win when a meeting is created, so the CLI says so.
    let args: Vec<&str> = ["tenants", "update_lrs_kc", acme.as_str()].into_iter().chain(kc).collect();
    let run = admin(&app, &args).await.ok();
    assert_eq!(
        run.err,
        "WARNING: The tenant still has an lrs_username, so its basic credentials are used, not Keycloak\n"
    );
    let lrs = tenant(&app, &acme).await.unwrap().lrs;
    assert_eq!((lrs["lrs_username"].as_str(), lrs["kc_username"].as_str()), ("user", "kuser"));

    // Update: id and a name or secrets needed; a rename moves the name index.
    let usage = "Error: id and either name or secrets are required to update a Tenant";
    admin(&app, &["tenants", "update", &acme]).await.fails_with(usage);
    admin(&app, &["tenants", "update", "--name", "x"]).await.fails_with(usage);
    admin(&app, &["tenants", "update", &acme, "--name", ""]).await.fails_with(usage);
    admin(&app, &["tenants", "update", "nope", "--name", "x"])
        .await
        .fails_with("ERROR: Couldn't find Tenant with id=nope");
    let run = admin(&app, &["tenants", "update", &acme, "--name", "acme2"]).await.ok();
    assert_eq!(run.out, format!("OK\nUpdated Tenant id: {acme}\n"));
    assert_eq!(named(&app, "acme").await, None, "the old name index is gone");
    assert_eq!(named(&app, "acme2").await.as_deref(), Some(acme.as_str()));
    let run = admin(&app, &["--json", "tenants", "update", &acme, "--secrets", "n1:n2", "--name", "acme2"]).await;
    assert_eq!(run.ok().json(), json!({"ok": true, "id": acme}));
    assert_eq!(name_and_secrets(&app, &acme).await, Some(("acme2".into(), "n1:n2".into())));
    assert_eq!(named(&app, "acme2").await.as_deref(), Some(acme.as_str()), "same name: index untouched");

    // Remove asks first (like `servers remove`); declining changes nothing.
    let run = admin_with(&config(&app, Some("true")), &["tenants", "remove", &beta], "no\n").await.ok();
    assert!(run.out.starts_with(&format!("WARNING: You are about to remove tenant {beta} (beta).")), "{}", run.out);
    assert!(run.out.ends_with(&format!("Tenant {beta} was not removed\n")), "{}", run.out);
    assert!(tenant(&app, &beta).await.is_some());
    let run = admin(&app, &["tenants", "remove", &beta, "--yes"]).await.ok();
    assert_eq!(run.out, "Tenant was successfully deleted.\n");
    assert_eq!(tenant(&app, &beta).await, None);
    assert_eq!(named(&app, "beta").await, None);
    assert_eq!(tenant_ids(&app).await, [acme.as_str()]);
    admin(&app, &["tenants", "remove", &beta, "-y"])
        .await
        .fails_with(&format!("ERROR: Couldn't find Tenant with id={beta}"));
    let json = admin(&app, &["--json", "-y", "tenants", "remove", &acme]).await.ok().json();
    assert_eq!(json, json!({"ok": true, "id": acme}));
    assert_eq!(admin(&app, &["tenants"]).await.ok().out, "Total number of tenants: 0\n");
    assert_eq!(admin(&app, &["tenants", "list", "--json"]).await.ok().json(), json!([]));
}

#[tokio::test]
async fn tenant_settings_add_list_and_remove() {
    let app = start().await;
    let acme = admin(&app, &["tenants", "add", "acme", "s1"]).await.ok().id_after("New Tenant id: ");
    let beta = admin(&app, &["tenants", "add", "beta", "s2"]).await.ok().id_after("New Tenant id: ");

    let usage = "Error: tenant_id, param, value and override are required to create a TenantSetting";
    admin(&app, &["tenant-settings", "add", &acme, "record", "false"]).await.fails_with(usage);
    admin(&app, &["tenant-settings", "add", &acme, "record", " ", "true"]).await.fails_with(usage);

    let run = admin(&app, &["tenant-settings", "add", &acme, "record", "false", "true"]).await.ok();
    let record = run.id_after("New TenantSetting id: ");
    assert_eq!((run.out.as_str(), run.err.as_str()), (format!("OK\nNew TenantSetting id: {record}\n").as_str(), ""));
    let stored = TenantSetting {
        id: record.clone(),
        tenant_id: TenantId::from(acme.as_str()),
        param: "record".into(),
        value: "false".into(),
        override_flag: "true".into(),
    };
    assert_eq!(settings(&app, &acme).await, [stored]);
    let json = admin(&app, &["--json", "tenantSettings", "add", &acme, "welcome", "Hello", "false"]).await.ok().json();
    let welcome = json["id"].as_str().unwrap().to_owned();
    assert_eq!(json, json!({"ok": true, "id": welcome}));

    // Stored as given, as Scalelite does, with a warning when it cannot work.
    let run = admin(&app, &["tenant-settings", "add", &acme, "logo", "x.png", "TRUE"]).await.ok();
    let logo = run.id_after("New TenantSetting id: ");
    assert_eq!(run.err, "WARNING: Only an override of exactly `true` overrides; `TRUE` makes a default\n");
    let run = admin(&app, &["tenant-settings", "add", "no-such-tenant", "record", "true", "true"]).await.ok();
    let orphan = run.id_after("New TenantSetting id: ");
    assert_eq!(run.err, "WARNING: There is no tenant with id no-such-tenant; the setting has no effect\n");
    // Stored all the same (it would apply to a tenant created with that id).
    assert!(app.store().delete_tenant_setting(&orphan).await.unwrap(), "the setting was stored");

    // Per tenant (by name), settings by param; a tenant without any is noted on stderr.
    let list = admin(&app, &["tenant-settings"]).await.ok();
    assert_eq!(list.err, "  No custom settings are configured\n");
    let ids =
        [(acme.as_str(), "acme"), (record.as_str(), "record"), (welcome.as_str(), "welcome"), (logo.as_str(), "logo")];
    insta::assert_snapshot!(redact(list.out, &ids), @r"
    Tenant: acme
      id: <logo>
    	param: logo
    	value: x.png
    	override: TRUE
      id: <record>
    	param: record
    	value: false
    	override: true
      id: <welcome>
    	param: welcome
    	value: Hello
    	override: false
    Tenant: beta
    ");
    let json = admin(&app, &["tenant-settings", "list", "--json"]).await.ok().json();
    assert_eq!(json[0]["tenant_id"], acme.as_str());
    assert_eq!(json[0]["settings"][1], json!({"id": record, "param": "record", "value": "false", "override": "true"}));
    assert_eq!(json[1], json!({"tenant_id": beta, "tenant_name": "beta", "settings": []}));

    let run = admin(&app, &["tenant-settings", "remove", &record]).await.ok();
    assert_eq!(run.out, "TenantSetting was successfully deleted.\n");
    let left: Vec<String> = settings(&app, &acme).await.into_iter().map(|s| s.id).collect();
    assert_eq!(left.len(), 2);
    assert!(!left.contains(&record));
    admin(&app, &["tenant-settings", "remove", &record])
        .await
        .fails_with(&format!("ERROR: Couldn't find TenantSetting with id={record}"));
    let json = admin(&app, &["--json", "tenant-settings", "remove", &welcome]).await.ok().json();
    assert_eq!(json, json!({"ok": true, "id": welcome}));
}

/// Ruby Scalelite's tenant keys on Redis.
mod redis_only {
    use super::*;
    use scalelite_tests::TestBackend;

    async fn start() -> TestApp {
        TestApp::builder().backend(TestBackend::Redis).servers(0).start().await
    }

    async fn hash(app: &TestApp, key: &str) -> Vec<String> {
        app.redis().cmd(&["HGETALL", &app.key(key)]).await.as_vec()
    }

    async fn members(app: &TestApp, set: &str) -> Vec<String> {
        let mut members = app.redis().cmd(&["SMEMBERS", &app.key(set)]).await.as_vec();
        members.sort();
        members
    }

    async fn exists(app: &TestApp, key: &str) -> bool {
        app.redis().cmd(&["EXISTS", &app.key(key)]).await.as_int() == Some(1)
    }

    #[tokio::test]
    async fn tenants_and_settings_are_stored_on_scalelites_keys() {
        let app = start().await;
        let acme = admin(&app, &["tenants", "add", "acme", "s1:s2"]).await.ok().id_after("New Tenant id: ");
        assert_eq!(hash(&app, &format!("tenant:{acme}")).await, ["name", "acme", "secrets", "s1:s2"]);
        assert_eq!(hash(&app, "tenant_name:acme").await, ["id", acme.as_str()]);
        assert_eq!(members(&app, "tenants").await, [acme.as_str()]);
        admin(&app, &["tenants", "update", &acme, "--name", "acme2"]).await.ok();
        assert!(!exists(&app, "tenant_name:acme").await, "the old name index is gone");
        assert_eq!(hash(&app, "tenant_name:acme2").await, ["id", acme.as_str()]);

        let run = admin(&app, &["tenant-settings", "add", &acme, "record", "false", "true"]).await.ok();
        let record = run.id_after("New TenantSetting id: ");
        assert_eq!(
            hash(&app, &format!("tenant_setting:{record}")).await,
            ["param", "record", "value", "false", "override", "true", "tenant_id", acme.as_str()]
        );
        assert_eq!(members(&app, &format!("tenant_settings:{acme}")).await, [record.as_str()]);
        let run = admin(&app, &["tenant-settings", "add", "no-such-tenant", "record", "true", "true"]).await.ok();
        let orphan = run.id_after("New TenantSetting id: ");
        assert_eq!(members(&app, "tenant_settings:no-such-tenant").await, [orphan.as_str()]);

        admin(&app, &["tenants", "remove", &acme, "--yes"]).await.ok();
        assert!(!exists(&app, &format!("tenant:{acme}")).await && !exists(&app, "tenant_name:acme2").await);
        assert!(members(&app, "tenants").await.is_empty());
        assert!(exists(&app, &format!("tenant_setting:{record}")).await, "settings stay");
        admin(&app, &["tenant-settings", "remove", &record]).await.ok();
        assert!(!exists(&app, &format!("tenant_setting:{record}")).await);
        assert!(members(&app, &format!("tenant_settings:{acme}")).await.is_empty());
    }

    /// A tenant and setting written by Ruby Scalelite (its exact keys, by hand)
    /// are listed, updated and removed.
    #[tokio::test]
    async fn tenants_written_by_scalelite_are_administered() {
        let app = start().await;
        let id = "0f8fad5b-d9cb-469f-a165-70867728950e";
        let setting = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
        let redis = app.redis();
        redis.cmd(&["HSET", &app.key(&format!("tenant:{id}")), "name", "ruby", "secrets", "r1:r2"]).await;
        redis.cmd(&["SADD", &app.key("tenants"), id]).await;
        redis.cmd(&["HSET", &app.key("tenant_name:ruby"), "id", id]).await;
        let setting_key = app.key(&format!("tenant_setting:{setting}"));
        redis
            .cmd(&["HSET", &setting_key, "param", "welcome", "value", "Hi", "override", "true", "tenant_id", id])
            .await;
        redis.cmd(&["SADD", &app.key(&format!("tenant_settings:{id}")), setting]).await;

        let list = admin(&app, &["tenants"]).await.ok();
        assert_eq!(list.out, format!("id: {id}\n\tname: ruby\n\tsecrets: r1:r2\nTotal number of tenants: 1\n"));
        let settings = admin(&app, &["tenant-settings"]).await.ok();
        assert_eq!(
            settings.out,
            format!("Tenant: ruby\n  id: {setting}\n\tparam: welcome\n\tvalue: Hi\n\toverride: true\n")
        );

        admin(&app, &["tenants", "update", id, "--name", "rubied", "--secrets", "r3"]).await.ok();
        assert_eq!(hash(&app, &format!("tenant:{id}")).await, ["name", "rubied", "secrets", "r3"]);
        assert!(!exists(&app, "tenant_name:ruby").await);
        assert_eq!(hash(&app, "tenant_name:rubied").await, ["id", id]);

        // Removing the tenant leaves its settings (as Scalelite does).
        admin(&app, &["-y", "tenants", "remove", id]).await.ok();
        assert!(exists(&app, &format!("tenant_setting:{setting}")).await);
        admin(&app, &["tenant-settings", "remove", setting]).await.ok();
        assert!(!exists(&app, &format!("tenant_setting:{setting}")).await);
        assert!(members(&app, &format!("tenant_settings:{id}")).await.is_empty());
    }
}
