//! HTTP load benchmark: `join`, `create` and `getMeetings` through the real
//! `scalelite-api` (real Redis, fake BBB fleet), next to a no-op axum handler
//! that answers a fixed 302 (the ceiling), all in one run.
//!
//! `cargo bench -p scalelite-benches --bench load` (env: `LOAD_SECONDS` per
//! measurement, default 5; `LOAD_ROUNDS`, default 3; `LOAD_CONNECTIONS`,
//! default 64; `LOAD_ONLY=join` to measure one scenario). Prints one
//! markdown row per scenario: the median of the rounds.

#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::response::IntoResponse;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use scalelite_tests::{ApiClient, TestApp};
use tokio::net::{TcpListener, TcpStream};

// The allocator of the `scalelite-api` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How a worker builds the path of its next request.
type PathFn = Arc<dyn Fn(u64) -> String + Send + Sync>;

struct Outcome {
    requests: u64,
    errors: u64,
    histogram: Histogram<u64>,
    elapsed: Duration,
}

impl Outcome {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn p(&self, quantile: f64) -> f64 {
        self.histogram.value_at_quantile(quantile) as f64 / 1000.0
    }
}

async fn worker(
    addr: SocketAddr,
    path: PathFn,
    counter: Arc<AtomicU64>,
    until: Instant,
    expect: StatusCode,
) -> (Histogram<u64>, u64, u64) {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let (mut requests, mut errors) = (0, 0);
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    while Instant::now() < until {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let request = Request::get(path(n)).header(header::HOST, "127.0.0.1").body(Empty::<Bytes>::new()).unwrap();
        let started = Instant::now();
        let Ok(response) = sender.send_request(request).await else {
            errors += 1;
            break;
        };
        let status = response.status();
        let _ = response.into_body().collect().await;
        histogram.record(started.elapsed().as_micros().max(1) as u64).unwrap();
        requests += 1;
        if status != expect {
            errors += 1;
        }
    }
    (histogram, requests, errors)
}

/// Runs `connections` workers against `addr` for `seconds` on a separate
/// client runtime (one thread), after a one-second warm-up.
fn drive(addr: SocketAddr, path: PathFn, expect: StatusCode, connections: usize, seconds: u64) -> Outcome {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        runtime.block_on(async move {
            let counter = Arc::new(AtomicU64::new(0));
            // Warm-up: connections, Redis scripts, pools.
            let warm_until = Instant::now() + Duration::from_secs(1);
            let warm: Vec<_> = (0..connections)
                .map(|_| tokio::spawn(worker(addr, path.clone(), counter.clone(), warm_until, expect)))
                .collect();
            for task in warm {
                task.await.unwrap();
            }
            let started = Instant::now();
            let until = started + Duration::from_secs(seconds);
            let tasks: Vec<_> = (0..connections)
                .map(|_| tokio::spawn(worker(addr, path.clone(), counter.clone(), until, expect)))
                .collect();
            let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            let (mut requests, mut errors) = (0, 0);
            for task in tasks {
                let (h, r, e) = task.await.unwrap();
                histogram.add(h).unwrap();
                requests += r;
                errors += e;
            }
            Outcome { requests, errors, histogram, elapsed: started.elapsed() }
        })
    })
    .join()
    .unwrap()
}

fn path_of(url: &str) -> String {
    let after = url.find("://").map_or(0, |i| i + 3);
    url[after..].find('/').map_or_else(|| "/".to_owned(), |i| url[after + i..].to_owned())
}

fn main() {
    let seconds: u64 = std::env::var("LOAD_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    let connections: usize = std::env::var("LOAD_CONNECTIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(64);
    let workers: usize = std::env::var("LOAD_SERVER_THREADS").ok().and_then(|s| s.parse().ok()).unwrap_or(2);
    let server = tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build().unwrap();

    let (app, ceiling) = server.block_on(async {
        let app = TestApp::builder().servers(3).env("GET_MEETINGS_CACHE_TTL", "5").start().await;
        let client = app.client();
        for i in 0..10 {
            let reply = client.get("create", &[("meetingID", &format!("bench-{i}")), ("name", "Bench")]).await;
            assert!(reply.is_success(), "{}", reply.body);
        }
        // The ceiling: the same HTTP stack answering a fixed 302.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ceiling = listener.local_addr().unwrap();
        let router = Router::new().fallback(|| async {
            (StatusCode::FOUND, [(header::LOCATION, "https://bbb.example/bigbluebutton/api/join?x=1")]).into_response()
        });
        tokio::spawn(async move { axum::serve(listener, router).await });
        (app, ceiling)
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

    let rounds: usize = std::env::var("LOAD_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let only = std::env::var("LOAD_ONLY").unwrap_or_default();
    let ceiling_path = join_path.clone();
    let scenarios: Vec<(&str, SocketAddr, PathFn, StatusCode)> = vec![
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
    // Each scenario's rounds alternate with ceiling runs, so drift on a
    // shared machine affects both alike; medians are reported. Scenarios run
    // one after the other (create last: it leaves meetings behind).
    let median = |mut outcomes: Vec<Outcome>| {
        outcomes.sort_by(|a, b| a.rps().total_cmp(&b.rps()));
        outcomes.swap_remove(outcomes.len() / 2)
    };
    let (ceiling_name, ceiling_addr, ceiling_path, ceiling_expect) = &scenarios[0];
    let mut rows = Vec::new();
    let mut all_ceiling = Vec::new();
    for (name, addr, path, expect) in &scenarios[1..] {
        let (mut base, mut runs) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            base.push(drive(*ceiling_addr, ceiling_path.clone(), *ceiling_expect, connections, seconds));
            runs.push(drive(*addr, path.clone(), *expect, connections, seconds));
        }
        let (base, run) = (median(base), median(runs));
        let ratio = run.rps() / base.rps();
        all_ceiling.push(base);
        rows.push((*name, run, ratio));
    }
    println!("| scenario | connections | req/s (median of {rounds}) | p50 ms | p99 ms | errors | vs ceiling |");
    println!("|---|---|---|---|---|---|---|");
    if !all_ceiling.is_empty() {
        let ceiling = median(all_ceiling);
        println!(
            "| {ceiling_name} | {connections} | {:.0} | {:.2} | {:.2} | {} | 100 % |",
            ceiling.rps(),
            ceiling.p(0.5),
            ceiling.p(0.99),
            ceiling.errors
        );
    }
    for (name, outcome, ratio) in rows {
        println!(
            "| {name} | {connections} | {:.0} | {:.2} | {:.2} | {} | {:.0} % |",
            outcome.rps(),
            outcome.p(0.5),
            outcome.p(0.99),
            outcome.errors,
            100.0 * ratio
        );
    }
    drop(app);
    drop(server);
}
