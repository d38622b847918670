//! The management API's tenant calls: shapes, status codes and stored keys
//! as in Scalelite, and authentication with the load-balancer secrets only.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use scalelite_core::TenantId;
use scalelite_store::TenantSetting;
use scalelite_tests::{ApiClient, Reply, TestApp};
use serde_json::{Value, json};

use crate::support::assert_failed;

const CALLS: [(&str, bool); 5] = [
    ("getTenants", false),
    ("getTenantInfo", false),
    ("addTenant", true),
    ("updateTenant", true),
    ("deleteTenant", true),
];

/// Signs `call` over the query, as Scalelite's clients do.
fn url(client: &ApiClient, call: &str, params: &[(&str, &str)]) -> String {
    let query = client.query(params);
    let checksum = client.checksum(call, &query);
    let sep = if query.is_empty() { "" } else { "&" };
    format!("/scalelite/api/{call}?{query}{sep}checksum={checksum}")
}

async fn get(client: &ApiClient, call: &str, params: &[(&str, &str)]) -> Reply {
    client.send(Method::GET, &url(client, call, params), None, Bytes::new()).await.unwrap()
}

async fn post(client: &ApiClient, call: &str, params: &[(&str, &str)], body: &Value) -> Reply {
    let body = Bytes::from(serde_json::to_vec(body).unwrap());
    client.send(Method::POST, &url(client, call, params), Some("application/json"), body).await.unwrap()
}

/// The call as its method wants it (POSTs with an empty JSON object).
async fn call(client: &ApiClient, call: &str, is_post: bool) -> Reply {
    if is_post { post(client, call, &[("id", "x")], &json!({})).await } else { get(client, call, &[("id", "x")]).await }
}

/// Status and JSON body.
fn json_of(reply: &Reply) -> (u16, Value) {
    assert_eq!(reply.content_type(), Some("application/json; charset=utf-8"), "{}", reply.body);
    (reply.status, serde_json::from_str(&reply.body).unwrap_or_else(|e| panic!("{e}: {}", reply.body)))
}

async fn multitenant() -> TestApp {
    TestApp::builder().servers(0).env("MULTITENANCY_ENABLED", "true").start().await
}

/// `(name, secrets)` of tenant `id` as stored.
async fn stored(app: &TestApp, id: &str) -> Option<(String, String)> {
    let record = app.store().tenant(&TenantId::from(id)).await.unwrap()?;
    assert!(record.tenant.lrs.is_empty(), "{id} has LRS fields");
    Some((record.tenant.name, record.tenant.secrets))
}

/// The id the name index gives for `name`.
async fn named(app: &TestApp, name: &str) -> Option<String> {
    app.store().tenant_by_name(name).await.unwrap().map(|r| r.tenant.id.into_string())
}

#[tokio::test]
async fn tenant_calls_answer_412_after_the_checksum_without_multitenancy() {
    // The admin tasks run with any value, the API only with `true`.
    let app = TestApp::builder().servers(0).env("MULTITENANCY_ENABLED", "false").start().await;
    let client = app.client();
    let bad = client.clone().with_secret("wrong");
    for (name, is_post) in CALLS {
        assert_eq!(json_of(&call(&client, name, is_post).await), (412, json!({"message": "Multitenancy is disabled"})));
        assert_failed(&call(&bad, name, is_post).await, "checksumError");
    }
    let reply = post(&client, "addTenant", &[], &json!({"tenant": {"name": "a", "secrets": "s"}})).await;
    assert_eq!(reply.status, 412);
    assert!(app.store().tenants().await.unwrap().is_empty(), "nothing was written");
}

#[tokio::test]
async fn tenants_lifecycle_through_the_api() {
    let app = multitenant().await;
    let client = app.client();
    assert_eq!(json_of(&get(&client, "getTenants", &[]).await), (200, json!({"message": "No tenants exist"})));

    // Add with the `tenant` wrapper and without (Rails parameter wrapping);
    // LRS fields are not taken (Scalelite permits only name and secrets).
    let reply = post(&client, "addTenant", &[], &json!({"tenant": {"secrets": "s1:s2", "name": "acme"}})).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    let (_, added) = json_of(&reply);
    let acme = added["tenant"]["id"].as_str().unwrap().to_owned();
    assert_eq!(acme.len(), 36, "a UUID");
    insta::assert_snapshot!(reply.body.replace(&acme, "<id>"), @r#"{"tenant":{"name":"acme","secrets":"s1:s2","new_record":false,"destroyed":false,"id":"<id>"}}"#);
    assert_eq!(stored(&app, &acme).await, Some(("acme".into(), "s1:s2".into())));
    assert_eq!(named(&app, "acme").await.as_deref(), Some(acme.as_str()));
    let body = json!({"name": "beta", "secrets": "b1", "lrs_endpoint": "https://lrs"});
    let (status, added) = json_of(&post(&client, "addTenant", &[], &body).await);
    assert_eq!(status, 201);
    let beta = added["tenant"]["id"].as_str().unwrap().to_owned();
    assert_eq!(stored(&app, &beta).await, Some(("beta".into(), "b1".into())));

    // Both name and secrets are required (blank is missing); no `tenant` at all
    // is Rails' `params.require` failure.
    let required = json!({"message": "Error: both name and secrets are required to create a Tenant"});
    for body in
        [json!({"tenant": {"name": "x"}}), json!({"tenant": {"secrets": "s"}}), json!({"name": " ", "secrets": "s"})]
    {
        assert_eq!(json_of(&post(&client, "addTenant", &[], &body).await), (400, required.clone()), "{body}");
    }
    let reply = client.send(Method::POST, &url(&client, "addTenant", &[]), None, Bytes::new()).await.unwrap();
    assert_failed(&reply, "internalError");

    // List (set order) and info.
    let (status, list) = json_of(&get(&client, "getTenants", &[]).await);
    let mut list = list.as_array().unwrap().clone();
    list.sort_by_key(|t| t["name"].as_str().unwrap().to_owned());
    assert_eq!(
        (status, list),
        (
            200,
            vec![
                json!({"id": acme, "name": "acme", "secrets": "s1:s2"}),
                json!({"id": beta, "name": "beta", "secrets": "b1"}),
            ]
        )
    );
    let reply = get(&client, "getTenantInfo", &[("id", &acme)]).await;
    insta::assert_snapshot!(reply.body.replace(&acme, "<id>"), @r#"{"new_record":false,"destroyed":false,"name":"acme","secrets":"s1:s2","id":"<id>"}"#);
    let missing = json!({"error": "Couldn't find Tenant with id=nope"});
    assert_eq!(json_of(&get(&client, "getTenantInfo", &[("id", "nope")]).await), (404, missing.clone()));
    let suffixed = url(&client, "getTenantInfo", &[]).replace("/getTenantInfo?", "/getTenantInfo.json?");
    let reply = client.send(Method::GET, &suffixed, None, Bytes::new()).await.unwrap();
    assert_eq!(json_of(&reply), (404, json!({"error": "Couldn't find Tenant with id="})), "suffix, and no id");

    // Update: a rename moves the name index; blank values are ignored.
    let body = json!({"tenant": {"name": "acme2", "secrets": ""}});
    let reply = post(&client, "updateTenant", &[("id", &acme)], &body).await;
    assert_eq!(reply.status, 200);
    insta::assert_snapshot!(reply.body.replace(&acme, "<id>"), @r#"{"tenant":{"new_record":false,"destroyed":false,"name":"acme2","secrets":"s1:s2","id":"<id>"}}"#);
    assert_eq!(named(&app, "acme").await, None, "the old name index is gone");
    assert_eq!(named(&app, "acme2").await.as_deref(), Some(acme.as_str()));
    let (status, updated) = json_of(&post(&client, "updateTenant", &[], &json!({"id": acme, "secrets": "n1"})).await);
    assert_eq!(
        (status, &updated["tenant"]["name"], &updated["tenant"]["secrets"]),
        (200, &json!("acme2"), &json!("n1"))
    );
    assert_eq!(stored(&app, &acme).await, Some(("acme2".into(), "n1".into())));
    let body = json!({"tenant": {"name": "z"}});
    assert_eq!(json_of(&post(&client, "updateTenant", &[("id", "nope")], &body).await), (404, missing.clone()));

    // Delete: the tenant and its name index go, its settings stay.
    let setting = TenantSetting {
        id: "s-1".into(),
        ..TenantSetting::new(TenantId::from(acme.as_str()), "record", "false", "true")
    };
    app.store().create_tenant_setting(&setting).await.unwrap();
    let reply = post(&client, "deleteTenant", &[("id", &acme)], &json!({})).await;
    assert_eq!(json_of(&reply), (200, json!({"success": format!("Tenant id={acme} was destroyed")})));
    assert_eq!((stored(&app, &acme).await, named(&app, "acme2").await), (None, None));
    assert!(app.store().delete_tenant_setting("s-1").await.unwrap(), "the setting stayed");
    let missing = json!({"error": format!("Couldn't find Tenant with id={acme}")});
    assert_eq!(json_of(&post(&client, "deleteTenant", &[("id", &acme)], &json!({})).await), (404, missing));
    let (_, list) = json_of(&get(&client, "getTenants", &[]).await);
    assert_eq!(list, json!([{"id": beta, "name": "beta", "secrets": "b1"}]));
}

/// The management API takes the load-balancer secrets only: a tenant's
/// secret is refused, whatever host the call is made on.
#[tokio::test]
async fn tenant_secrets_do_not_open_the_management_api() {
    let app = multitenant().await;
    let client = app.client();
    let reply = post(&client, "addTenant", &[], &json!({"tenant": {"name": "acme", "secrets": "tenant-secret"}})).await;
    assert_eq!(reply.status, 201);
    let tenant = client.clone().with_secret("tenant-secret");
    for (name, is_post) in CALLS {
        assert_failed(&call(&tenant, name, is_post).await, "checksumError");
    }
    assert_failed(&get(&tenant, "getServers", &[]).await, "checksumError");
    let on_tenant_host = |client: &ApiClient| {
        let target = format!("{}{}", app.origin(), url(client, "getTenants", &[]));
        async move {
            let headers = [("host", "acme.sl.example.com")];
            scalelite_tests::http_request(Method::GET, &target, &headers, Bytes::new(), Duration::from_secs(5))
                .await
                .unwrap()
        }
    };
    assert_failed(&on_tenant_host(&tenant).await, "checksumError");
    // The load-balancer secret works on any host.
    let reply = on_tenant_host(&client).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// Ruby Scalelite's tenant keys on Redis.
mod redis_only {
    use super::*;
    use scalelite_tests::TestBackend;

    async fn hash(app: &TestApp, key: &str) -> Vec<String> {
        app.redis().cmd(&["HGETALL", &app.key(key)]).await.as_vec()
    }

    async fn exists(app: &TestApp, key: &str) -> bool {
        app.redis().cmd(&["EXISTS", &app.key(key)]).await.as_int() == Some(1)
    }

    #[tokio::test]
    async fn tenants_are_stored_on_scalelites_keys() {
        let app =
            TestApp::builder().backend(TestBackend::Redis).servers(0).env("MULTITENANCY_ENABLED", "true").start().await;
        let client = app.client();
        let reply = post(&client, "addTenant", &[], &json!({"tenant": {"secrets": "s1:s2", "name": "acme"}})).await;
        let acme = json_of(&reply).1["tenant"]["id"].as_str().unwrap().to_owned();
        assert_eq!(hash(&app, &format!("tenant:{acme}")).await, ["name", "acme", "secrets", "s1:s2"]);
        assert_eq!(hash(&app, "tenant_name:acme").await, ["id", acme.as_str()]);
        assert!(exists(&app, "tenants").await);
        let reply = post(&client, "updateTenant", &[("id", &acme)], &json!({"tenant": {"name": "acme2"}})).await;
        assert_eq!(reply.status, 200);
        assert!(!exists(&app, "tenant_name:acme").await, "the old name index is gone");
        assert_eq!(hash(&app, "tenant_name:acme2").await, ["id", acme.as_str()]);
        let setting = app.key("tenant_setting:s-1");
        app.redis()
            .cmd(&["HSET", &setting, "param", "record", "value", "false", "override", "true", "tenant_id", &acme])
            .await;
        app.redis().cmd(&["SADD", &app.key(&format!("tenant_settings:{acme}")), "s-1"]).await;
        let reply = post(&client, "deleteTenant", &[("id", &acme)], &json!({})).await;
        assert_eq!(reply.status, 200);
        assert!(!exists(&app, &format!("tenant:{acme}")).await && !exists(&app, "tenant_name:acme2").await);
        assert!(exists(&app, "tenant_setting:s-1").await);
    }

    /// Tenants written by Ruby Scalelite (its keys, by hand) render with their
    /// LRS fields and can be changed; a hash left outside the `tenants` set
    /// cannot be saved (HTTP 422, as in Scalelite).
    #[tokio::test]
    async fn tenants_written_by_scalelite() {
        let app =
            TestApp::builder().backend(TestBackend::Redis).servers(0).env("MULTITENANCY_ENABLED", "true").start().await;
        let client = app.client();
        let id = "0f8fad5b-d9cb-469f-a165-70867728950e";
        let fields =
            ["name", "ruby", "secrets", "r1", "lrs_endpoint", "https://lrs", "lrs_username", "u", "lrs_password", "p"];
        let key = app.key(&format!("tenant:{id}"));
        app.redis().cmd(&[&["HSET", key.as_str()][..], &fields].concat()).await;
        app.redis().cmd(&["SADD", &app.key("tenants"), id]).await;
        app.redis().cmd(&["HSET", &app.key("tenant_name:ruby"), "id", id]).await;

        let reply = get(&client, "getTenantInfo", &[("id", id)]).await;
        insta::assert_snapshot!(reply.body, @r#"{"new_record":false,"destroyed":false,"name":"ruby","secrets":"r1","lrs_endpoint":"https://lrs","lrs_username":"u","lrs_password":"p","id":"0f8fad5b-d9cb-469f-a165-70867728950e"}"#);
        let (_, list) = json_of(&get(&client, "getTenants", &[]).await);
        assert_eq!(list, json!([{"id": id, "name": "ruby", "secrets": "r1"}]));
        let (status, updated) =
            json_of(&post(&client, "updateTenant", &[("id", id)], &json!({"tenant": {"name": "rb"}})).await);
        assert_eq!((status, &updated["tenant"]["lrs_endpoint"]), (200, &json!("https://lrs")));
        assert!(!exists(&app, "tenant_name:ruby").await);
        assert_eq!(hash(&app, "tenant_name:rb").await, ["id", id]);

        app.redis().cmd(&["SREM", &app.key("tenants"), id]).await;
        let reply = post(&client, "updateTenant", &[("id", id)], &json!({"tenant": {"secrets": "r2"}})).await;
        assert_eq!(json_of(&reply), (422, json!({"error": format!("Tenant with id '{id}' is deleted")})));
        assert_eq!(hash(&app, &format!("tenant:{id}")).await[3], "r1", "unchanged");
    }
}
