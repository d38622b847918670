//! HTTP load benchmark: `join`, `create` and `getMeetings` through the real
//! `scalelite-api` (real Redis, fake BBB fleet), next to a no-op axum handler
//! that answers a fixed 302 (the ceiling), all in one run.
//!
//! `cargo bench -p scalelite-benches --bench load` (env: `LOAD_SECONDS` per
//! measurement, default 5; `LOAD_ROUNDS`, default 3; `LOAD_CONNECTIONS`,
//! default 64; `LOAD_ONLY=join` to measure one scenario; `LOAD_BACKEND=embedded`
//! to run the API on an SQLite data directory instead of Redis, default
//! `SCALELITE_TEST_BACKEND`, else Redis). Prints one markdown row per
//! scenario: the median of the rounds.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark code: a failed unwrap is a failed measurement")]

use std::sync::Arc;

use http::StatusCode;
use scalelite_benches::{PathFn, Scenario, alternate_with_ceiling, env_or, path_of, print_table, start_ceiling};
use scalelite_tests::{ApiClient, TestApp, TestBackend};

// The allocator of the `scalelite-api` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[expect(clippy::print_stdout, reason = "benchmarks report on stdout")]
fn main() {
    let seconds: u64 = env_or("LOAD_SECONDS", 5);
    let connections: usize = env_or("LOAD_CONNECTIONS", 64);
    let workers: usize = env_or("LOAD_SERVER_THREADS", 2);
    let backend = match std::env::var("LOAD_BACKEND") {
        Ok(value) => TestBackend::parse(Some(&value))
            .unwrap_or_else(|| panic!("LOAD_BACKEND={value:?}: expected `redis` or `embedded`")),
        Err(_) => TestBackend::from_env(),
    };
    println!("backend: {}", backend.name());
    let server = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build().unwrap();

    let (app, ceiling) = server.block_on(async {
        // The join route cache as the API's default has it (the harness turns
        // it off for tests), or `JOIN_ROUTE_CACHE_TTL` (`0`: off).
        let join_ttl = std::env::var("JOIN_ROUTE_CACHE_TTL")
            .unwrap_or_else(|_| scalelite_core::config::defaults::DEFAULT_JOIN_ROUTE_CACHE_TTL.to_string());
        let app = TestApp::builder()
            .backend(backend)
            .servers(3)
            .env("GET_MEETINGS_CACHE_TTL", "5")
            .env("JOIN_ROUTE_CACHE_TTL", join_ttl)
            .start()
            .await;
        let client = app.client();
        for i in 0..10 {
            let reply = client.get("create", &[("meetingID", &format!("bench-{i}")), ("name", "Bench")]).await;
            assert!(reply.is_success(), "{}", reply.body);
        }
        (app, start_ceiling().await)
    });
    let client: ApiClient = app.client();
    let join_path = path_of(&client.url(
        "join",
        &[
            ("meetingID", "bench-3"),
            ("fullName", "Ada Lovelace"),
            ("role", "VIEWER"),
            ("userID", "gl-12345"),
            ("createTime", "1715261728123"),
        ],
    ));
    let create_client = client.clone();
    let create_path: PathFn = Arc::new(move |n| {
        path_of(
            &create_client
                .url("create", &[("meetingID", &format!("load-{n}")), ("name", "Load test"), ("record", "false")]),
        )
    });
    let meetings_path = path_of(&client.url("getMeetings", &[]));

    let rounds: usize = env_or("LOAD_ROUNDS", 3);
    let only = std::env::var("LOAD_ONLY").unwrap_or_default();
    let ceiling_path = join_path.clone();
    let scenarios: Vec<Scenario<'_>> = vec![
        ("no-op 302 (ceiling)", ceiling, Arc::new(move |_| ceiling_path.clone()), StatusCode::FOUND),
        ("join", app.addr, Arc::new(move |_| join_path.clone()), StatusCode::FOUND),
        ("getMeetings (cached)", app.addr, Arc::new(move |_| meetings_path.clone()), StatusCode::OK),
        ("create (new meeting, fake BBB)", app.addr, create_path, StatusCode::OK),
    ];
    let scenarios: Vec<_> = scenarios
        .into_iter()
        .enumerate()
        .filter(|(i, (name, ..))| *i == 0 || only.is_empty() || name.starts_with(only.as_str()))
        .map(|(_, s)| s)
        .collect();
    // Each scenario's rounds alternate with ceiling runs; medians are
    // reported.
    let result = alternate_with_ceiling(&scenarios, rounds, connections, seconds);
    print_table(&scenarios, result, rounds, connections);
    drop(app);
    drop(server);
}
