//! `/health_check` and `/`.

use scalelite_tests::TestApp;

#[tokio::test]
async fn health_check_writes_and_reads_the_store_and_checks_recordings() {
    let app = TestApp::builder().recordings().start().await;
    for path in ["/health_check", "/"] {
        let reply = app.client().raw_get(path).await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "success"), "{path}");
    }
    app.store().health_check().await.unwrap();
    app.recording_store().health_check().await.unwrap();
}

/// `/` runs the health check for GET and HEAD only; any other method gets
/// Scalelite's HTTP 422 with an empty body (Rails' CSRF refusal), and
/// `/health_check` itself is GET only.
#[tokio::test]
async fn root_refuses_other_methods_like_rails() {
    use bytes::Bytes;
    use http::Method;
    let app = TestApp::start().await;
    let client = app.client();
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH, Method::OPTIONS] {
        let reply = client.send(method.clone(), "/", Some("application/x-www-form-urlencoded"), Bytes::new()).await;
        let reply = reply.unwrap();
        assert_eq!((reply.status, reply.body.as_str()), (422, ""), "{method}");
        assert_eq!(reply.content_type(), Some("text/html; charset=utf-8"), "{method}");
    }
    let head = client.send(Method::HEAD, "/", None, Bytes::new()).await.unwrap();
    assert_eq!(head.status, 200);
    let post = client.send(Method::POST, "/health_check", None, Bytes::new()).await.unwrap();
    assert_eq!(post.message_key().as_deref(), Some("unsupportedRequest"));
}

/// Outages of Redis and PostgreSQL themselves.
mod redis_only {
    use super::*;
    use scalelite_tests::TestBackend;

    /// Readiness follows the meeting store, never PostgreSQL; liveness
    /// follows nothing.
    #[tokio::test]
    async fn readiness_ignores_postgres_and_follows_redis() {
        let app = TestApp::builder().backend(TestBackend::Redis).recordings().start().await;
        app.pg().stop().await;
        assert_eq!(app.client().raw_get("/health_check").await.status, 503);
        let ready = app.client().raw_get("/readyz").await;
        assert_eq!((ready.status, ready.body.as_str()), (200, "ready"), "joins do not need PostgreSQL");

        app.redis().stop().await;
        let ready = app.client().raw_get("/readyz").await;
        assert_eq!(ready.status, 503);
        assert!(ready.body.starts_with("not ready: meeting store: "), "{}", ready.body);
        let live = app.client().raw_get("/livez").await;
        assert_eq!((live.status, live.body.as_str()), (200, "alive"));
        app.redis().start_again().await;
        scalelite_tests::eventually(std::time::Duration::from_secs(10), || async {
            app.client().raw_get("/readyz").await.status == 200
        })
        .await;
    }

    #[tokio::test]
    async fn health_check_with_redis_and_postgres() {
        let app = TestApp::builder().backend(TestBackend::Redis).recordings().start().await;
        let pg = app.pg();
        for path in ["/health_check", "/"] {
            let reply = app.client().raw_get(path).await;
            assert_eq!((reply.status, reply.body.as_str()), (200, "success"), "{path}");
        }
        pg.stop().await;
        let reply = app.client().raw_get("/health_check").await;
        assert_eq!(reply.status, 503);
        assert!(reply.body.starts_with("Health Check Failure: database"), "{}", reply.body);
        pg.start_again().await;
        scalelite_tests::eventually(std::time::Duration::from_secs(10), || async {
            app.client().raw_get("/health_check").await.status == 200
        })
        .await;
    }

    #[tokio::test]
    async fn health_check_reports_redis_outages() {
        let app = TestApp::builder().backend(TestBackend::Redis).start().await;
        assert_eq!(app.client().raw_get("/health_check").await.body, "success");
        assert_eq!(app.redis().cmd(&["GET", &app.key("__health_check_set__")]).await.as_str(), Some("true"));
        app.redis().stop().await;
        let reply = app.client().raw_get("/health_check").await;
        assert_eq!(reply.status, 503);
        assert!(reply.body.starts_with("Health Check Failure: "), "{}", reply.body);
        // Calls needing Redis fail with an XML error, not a hang or a 500.
        let reply = app.client().get("isMeetingRunning", &[("meetingID", "m")]).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.message_key().as_deref(), Some("internalError"));
        app.redis().start_again().await;
        scalelite_tests::eventually(std::time::Duration::from_secs(10), || async {
            app.client().raw_get("/health_check").await.body == "success"
        })
        .await;
    }
}

#[tokio::test]
async fn liveness_and_readiness() {
    let app = TestApp::start().await;
    for (path, body) in [("/livez", "alive"), ("/readyz", "ready")] {
        let reply = app.client().raw_get(path).await;
        assert_eq!((reply.status, reply.body.as_str()), (200, body), "{path}");
    }
}

/// With `HTTP_SHUTDOWN_DELAY`, a stop first takes readiness down while
/// requests are still served, then closes the listener.
#[tokio::test]
async fn readiness_goes_down_before_the_listener_closes() {
    let mut app = TestApp::builder().env("HTTP_SHUTDOWN_DELAY", "2").start().await;
    let created = app.client().get("create", &[("meetingID", "drain"), ("name", "Drain")]).await;
    assert_eq!(created.returncode().as_deref(), Some("SUCCESS"));
    app.begin_shutdown();
    scalelite_tests::eventually(std::time::Duration::from_secs(5), || async {
        let reply = app.client().raw_get("/readyz").await;
        reply.status == 503 && reply.body == "not ready: shutting down"
    })
    .await;
    // Still serving while load balancers notice.
    let running = app.client().get("isMeetingRunning", &[("meetingID", "drain")]).await;
    assert_eq!(running.returncode().as_deref(), Some("SUCCESS"));
    assert!(!app.has_stopped());
    scalelite_tests::eventually(std::time::Duration::from_secs(10), || async { app.has_stopped() }).await;
}
