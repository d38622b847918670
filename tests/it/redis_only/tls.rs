//! TLS-only Redis and PostgreSQL, as ElastiCache with in-transit encryption
//! and RDS/Aurora with `rds.force_ssl` run them: `rediss://` with a
//! password or an ACL user holding exactly the permissions
//! docs/CONFIGURATION.md lists, PostgreSQL with `pg_hba.conf` allowing only
//! `hostssl`, under each `sslmode` a URL may name (or none), and the
//! certificates of a CA nobody trusts refused.

use std::sync::Arc;

use scalelite_core::config::Config;
use scalelite_store::{RedisOptions, RedisStore, Store as _};
use scalelite_tests::{TestApp, TestBackend, TestCa, http_get};

use crate::support::{admin_with, api_with, create};

/// The ACL docs/CONFIGURATION.md ("Redis permissions") gives Scalelite's
/// user, word for word after `ACL SETUSER scalelite`.
const DOCUMENTED_ACL: &str = "on >s3cret resetkeys ~scalelite:* resetchannels -@all \
    +evalsha +script|load +multi +exec +select \
    +get +set +del +exists +expire +pexpire +pttl \
    +hget +hmget +hgetall +hset +hdel +hincrby \
    +sadd +srem +scard +sismember +smembers +zadd +zrem +zscore +zrange";

/// Health check, create, join, a poll round and getMeetings through the
/// app's `rediss://` connection.
async fn create_join_and_poll(app: &TestApp) {
    for path in ["/health_check", "/"] {
        let reply = app.client().raw_get(path).await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "success"), "{path}");
    }
    create(app, "tls-room").await;
    let reply = app.client().get("join", &[("meetingID", "tls-room"), ("fullName", "A"), ("role", "VIEWER")]).await;
    assert_eq!(reply.status, 302, "{}", reply.body);
    assert_eq!(http_get(&reply.location.unwrap()).await.status, 302);
    app.poll().await;
    assert!(app.meeting("tls-room").await.is_some(), "the poll kept the running meeting");
    let reply = app.client().get("getMeetings", &[]).await;
    assert!(reply.body.contains("tls-room"), "{}", reply.body);
}

#[tokio::test]
async fn rediss_with_a_password_serves_the_api_and_the_poller() {
    let app = TestApp::builder().backend(TestBackend::Redis).tls(TestCa::generate(), Some("pa ss")).start().await;
    assert!(app.state.config.redis_url.expose().starts_with("rediss://:pa ss@127.0.0.1:"));
    create_join_and_poll(&app).await;
    // The harness talks to the server over its Unix socket; every TCP client
    // (the API's connection) came over TLS.
    let clients = app.redis().cmd(&["CLIENT", "LIST"]).await;
    let tcp: Vec<&str> = clients.as_str().unwrap().lines().filter(|l| l.contains("addr=127.0.0.1:")).collect();
    assert!(!tcp.is_empty(), "{clients:?}");
    let port = app.redis().cmd(&["CONFIG", "GET", "port"]).await.as_map();
    assert_eq!(port.get("port").map(String::as_str), Some("0"), "no plain TCP port");
}

#[tokio::test]
async fn an_acl_user_with_the_documented_permissions_is_enough() {
    let ca = TestCa::generate();
    let app = TestApp::builder().backend(TestBackend::Redis).tls(ca, None).start().await;
    let mut acl = vec!["ACL", "SETUSER", "scalelite"];
    acl.extend(DOCUMENTED_ACL.split_whitespace());
    assert_eq!(app.redis().cmd(&acl).await.as_str(), Some("OK"));
    let url = format!("rediss://scalelite:s3cret@localhost:{}/0", app.redis().port());
    let env = app.store_env().with("REDIS_URL", &url).with("LOADBALANCER_SECRET", scalelite_tests::LB_SECRET);
    let config = Config::from_env(&env).unwrap();

    // The API, the poller and the admin CLI as that user (connecting by
    // host name: the certificate names `localhost` too).
    let (client, _stop) = api_with(config.clone()).await;
    let reply = client.get("create", &[("meetingID", "acl-room"), ("name", "Room")]).await;
    assert!(reply.is_success(), "{}", reply.body);
    let reply = client.get("join", &[("meetingID", "acl-room"), ("fullName", "A"), ("role", "VIEWER")]).await;
    assert_eq!(reply.status, 302, "{}", reply.body);
    let health = client.raw_get("/health_check").await;
    assert_eq!((health.status, health.body.as_str()), (200, "success"));
    let store: Arc<dyn scalelite_store::Store> = Arc::new(RedisStore::from_config(&config).unwrap());
    let poller =
        scalelite_poller::Poller::from_config(&config, store, Arc::new(scalelite_poller::PollerMetrics::new()));
    poller.poll_once().await.unwrap().expect("the lease was free");
    let run = admin_with(&config, &["servers", "list"], "").await.ok();
    assert!(run.out.contains("bbb-1"), "{}", run.out);
    let clients = app.redis().cmd(&["CLIENT", "LIST"]).await;
    assert!(clients.as_str().unwrap().contains("user=scalelite"), "{clients:?}");

    // Without scripting the user cannot run the store's scripts.
    let denied = ["ACL", "SETUSER", "scalelite", "-evalsha"];
    assert_eq!(app.redis().cmd(&denied).await.as_str(), Some("OK"));
    let reply = client.get("create", &[("meetingID", "acl-room-2"), ("name", "Room")]).await;
    assert_eq!(reply.message_key().as_deref(), Some("internalError"), "{}", reply.body);
}

#[tokio::test]
async fn a_certificate_from_an_untrusted_ca_is_refused() {
    let untrusted = TestCa::generate();
    let app = TestApp::builder()
        .backend(TestBackend::Redis)
        .tls(TestCa::generate(), None)
        .env("REDIS_CA_FILE", untrusted.ca_file().display().to_string())
        .start()
        .await;
    let reply = app.client().raw_get("/health_check").await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    let reply = app.client().get("create", &[("meetingID", "m"), ("name", "Room")]).await;
    assert_eq!(reply.message_key().as_deref(), Some("internalError"), "{}", reply.body);

    // Without REDIS_CA_FILE only the system's roots are trusted: refused too.
    let error = RedisStore::open_with(&app.redis().url(), "scalelite", RedisOptions::default())
        .unwrap()
        .health_check()
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("TLS handshake with Redis at 127.0.0.1:"), "{error}");
    assert!(error.contains("UnknownIssuer"), "{error}");
    assert!(error.contains("REDIS_CA_FILE"), "{error}");

    // With its CA: accepted.
    let options = RedisOptions { ca_file: Some(app.ca().ca_file()), ..RedisOptions::default() };
    RedisStore::open_with(&app.redis().url(), "scalelite", options).unwrap().health_check().await.unwrap();
}

/// `DATABASE_URL` for database `database` (`None`: the URL names none, as
/// Scalelite's docs show it) with `query`.
fn database_url(app: &TestApp, database: Option<&str>, query: &str) -> String {
    let port = app.pg().port();
    let path = database.map(|d| format!("/{d}")).unwrap_or_default();
    let query = if query.is_empty() { String::new() } else { format!("?{query}") };
    format!("postgres://postgres@127.0.0.1:{port}{path}{query}")
}

#[tokio::test]
async fn postgres_over_tls_under_each_sslmode() {
    for mode in ["", "sslmode=require", "sslmode=verify-full&sslrootcert="] {
        let ca = TestCa::generate();
        let query = match mode {
            "sslmode=verify-full&sslrootcert=" => format!("{mode}{}", ca.ca_file().display()),
            _ => mode.to_owned(),
        };
        let app = TestApp::builder()
            .backend(TestBackend::Redis)
            .servers(0)
            .recordings()
            .tls(ca, None)
            .database_params(&query)
            .start()
            .await;
        let reply = app.client().raw_get("/health_check").await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "success"), "{mode:?}");
        let reply = app.client().get("getRecordings", &[]).await;
        assert!(reply.is_success(), "{mode:?}: {}", reply.body);
        assert_eq!(reply.message_key().as_deref(), Some("noRecordings"), "{mode:?}");

        // `db migrate` on a new database, once named in the URL and once
        // not (then it is `scalelite`, already migrated).
        app.pg().psql("CREATE DATABASE fresh").await;
        let env = app.store_env().with("DATABASE_URL", database_url(&app, Some("fresh"), &query));
        let run = admin_with(&Config::from_env(&env).unwrap(), &["db", "migrate"], "").await.ok();
        assert!(run.out.starts_with("migrated 20181123180008"), "{mode:?}: {}", run.out);
        let env = app.store_env().with("DATABASE_URL", database_url(&app, None, &query));
        let run = admin_with(&Config::from_env(&env).unwrap(), &["db", "migrate"], "").await.ok();
        assert_eq!(run.out, "Database is up to date\n", "{mode:?}");
    }
}

#[tokio::test]
async fn postgres_refuses_plain_connections_and_verify_full_refuses_an_untrusted_ca() {
    let untrusted = TestCa::generate();
    let query = format!("sslmode=verify-full&sslrootcert={}", untrusted.ca_file().display());
    let app = TestApp::builder()
        .backend(TestBackend::Redis)
        .servers(0)
        .recordings()
        .tls(TestCa::generate(), None)
        .database_params(&query)
        .start()
        .await;
    let reply = app.client().raw_get("/health_check").await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert!(reply.body.starts_with("Health Check Failure: database"), "{}", reply.body);
    let error = app.recording_store().health_check().await.unwrap_err().to_string();
    assert!(error.contains("UnknownIssuer"), "{error}");

    // The server takes TLS only: without it, pg_hba.conf has no entry.
    let env = app.store_env().with("DATABASE_URL", database_url(&app, Some("scalelite"), "sslmode=disable"));
    let run = admin_with(&Config::from_env(&env).unwrap(), &["db", "status"], "").await;
    assert_eq!(run.code, 1);
    assert!(run.err.contains("no encryption"), "{}", run.err);
}
