//! Fleet-scale HTTP benchmark (issue 18): the release `scalelite-api` and
//! `scalelite-poller` binaries in their own processes, on a real Redis with
//! the servers written as Ruby Scalelite writes them, PostgreSQL up, a fake
//! BBB fleet with one port per server, `POLL_INTERVAL=10`, and 1,000
//! meetings created through the API before measuring. The ceiling is nginx
//! answering the same reply without doing anything (a fixed 302 for join and
//! create, the same getMeetings document from a file), timed right before
//! each run of a workload.
//!
//! `cargo bench -p scalelite-benches --bench fleet` (env: `FLEET_SERVERS`,
//! comma-separated pool sizes, default `50,1000`; `FLEET_MEETINGS`, default
//! 1000; `LOAD_SECONDS` per run, default 5; `LOAD_ROUNDS`, default 3;
//! `LOAD_CONNECTIONS`, default 64; `LOAD_ONLY=join` to measure one workload;
//! `FLEET_SOAK` creates over 3 servers after the table, sampling the API's
//! RSS, default 0 = off; `JOIN_ROUTE_CACHE_TTL` for the API, unset = its
//! default, `0` = every join asks Redis). `join` joins one meeting,
//! `join (all meetings)` cycles through all of them; `getMeetings (cached,
//! gzip)` sends `Accept-Encoding: gzip`, against nginx serving the same
//! document gzip-encoded ahead (`gzip_static`).
//!
//! Besides throughput and latency, each row shows what the same requests
//! cost elsewhere: Redis CPU (`INFO cpu` delta) and commands (`INFO
//! commandstats` delta) per request, and the API process's CPU per request.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark code: a failed unwrap is a failed measurement")]
#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use http::StatusCode;
use scalelite_benches::{
    Headers, Outcome, PathFn, ProcessStats, drive, drive_with, env_or, median, path_of, release_binary,
};
use scalelite_tests::nginx::TestNginx;
use scalelite_tests::seed::{SeedServer, seed_server};
use scalelite_tests::{ApiClient, FakeFleet, LB_SECRET, NS, TestPostgres, TestRedis, free_port};

/// A release binary in its own process, killed on drop.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    fn start(binary: &Path, env: &[(&str, String)], log: PathBuf) -> Self {
        let mut command = Command::new(binary);
        command.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default()).env("RUST_LOG", "warn");
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start the binary");
        Self { child, log }
    }

    fn stats(&self) -> ProcessStats {
        ProcessStats::of(self.child.id())
    }

    fn log_tail(&self) -> String {
        scalelite_benches::log_tail(&self.log)
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Redis' CPU seconds and per-command call counts.
#[derive(Clone, Debug, Default)]
struct RedisSample {
    cpu: f64,
    calls: BTreeMap<String, u64>,
}

async fn redis_sample(redis: &TestRedis) -> RedisSample {
    let cpu_info = redis.cmd(&["INFO", "cpu"]).await;
    let mut cpu = 0.0;
    for line in cpu_info.as_str().unwrap_or_default().lines() {
        if let Some(v) = line.strip_prefix("used_cpu_sys:").or_else(|| line.strip_prefix("used_cpu_user:")) {
            cpu += v.trim().parse::<f64>().unwrap_or(0.0);
        }
    }
    let stats = redis.cmd(&["INFO", "commandstats"]).await;
    let mut calls = BTreeMap::new();
    for line in stats.as_str().unwrap_or_default().lines() {
        let Some((name, rest)) = line.strip_prefix("cmdstat_").and_then(|l| l.split_once(':')) else { continue };
        let n = rest.split(',').find_map(|f| f.strip_prefix("calls=")).and_then(|n| n.parse().ok()).unwrap_or(0);
        calls.insert(name.to_owned(), n);
    }
    RedisSample { cpu, calls }
}

/// One measured run with what it cost Redis and the API.
struct Run {
    outcome: Outcome,
    redis_us: f64,
    api_us: f64,
    commands: f64,
    top: String,
}

/// The stack for one pool size.
struct Stack {
    runtime: tokio::runtime::Runtime,
    redis: TestRedis,
    _postgres: TestPostgres,
    fleet: FakeFleet,
    api: Process,
    _poller: Process,
    addr: SocketAddr,
    client: ApiClient,
    _dir: tempfile::TempDir,
}

impl Stack {
    fn start(servers: usize, meetings: usize, api_bin: &Path, poller_bin: &Path) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let dir = tempfile::Builder::new().prefix("fleet-bench-").tempdir().unwrap();
        let (redis, postgres, fleet) = runtime.block_on(async {
            let redis = TestRedis::start().await;
            let postgres = TestPostgres::start().await;
            scalelite_store::PgStore::open(&postgres.url(), 1).unwrap().migrate().await.unwrap();
            let fleet = FakeFleet::start(servers).await;
            for (i, server) in fleet.iter().enumerate() {
                let id = format!("bbb-{i:04}");
                seed_server(&redis, NS, &SeedServer::enabled(id, server.url(), server.secret())).await;
            }
            (redis, postgres, fleet)
        });
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let common = vec![
            ("REDIS_URL", redis.url()),
            ("DATABASE_URL", postgres.url()),
            ("LOADBALANCER_SECRET", LB_SECRET.to_owned()),
            ("CONNECT_TIMEOUT", "1".to_owned()),
            ("RESPONSE_TIMEOUT", "5".to_owned()),
        ];
        let mut api_env = common.clone();
        api_env.push(("BIND", addr.to_string()));
        // The join route cache's TTL (the API's default unless set; `0`: every
        // join asks Redis, as before the cache).
        if let Ok(ttl) = std::env::var("JOIN_ROUTE_CACHE_TTL") {
            api_env.push(("JOIN_ROUTE_CACHE_TTL", ttl));
        }
        let api = Process::start(api_bin, &api_env, dir.path().join("api.log"));
        let mut poller_env = common;
        poller_env.push(("POLL_INTERVAL", "10".to_owned()));
        poller_env.push(("POLLER_METRICS_BIND", "off".to_owned()));
        let poller = Process::start(poller_bin, &poller_env, dir.path().join("poller.log"));

        let client = ApiClient::new(format!("http://{addr}/bigbluebutton/api"), LB_SECRET);
        runtime.block_on(async {
            let started = Instant::now();
            // Polled until it listens (a start-up, not synchronisation).
            while tokio::net::TcpStream::connect(addr).await.is_err() {
                assert!(started.elapsed() < Duration::from_secs(30), "the API did not come up:\n{}", api.log_tail());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let reply = client.get("getMeetings", &[]).await;
            assert!(reply.is_success(), "getMeetings failed: {}\n{}", reply.body, api.log_tail());
            let failed = stream::iter(0..meetings)
                .map(|i| {
                    let client = client.clone();
                    async move {
                        let reply =
                            client.get("create", &[("meetingID", &format!("room-{i}")), ("name", "Fleet bench")]).await;
                        !reply.is_success()
                    }
                })
                .buffer_unordered(16)
                .filter(|failed| std::future::ready(*failed))
                .count()
                .await;
            assert_eq!(failed, 0, "creates failed while seeding:\n{}", api.log_tail());
        });
        Self { runtime, redis, _postgres: postgres, fleet, api, _poller: poller, addr, client, _dir: dir }
    }

    /// Drives `path` with the cost of the run measured around it.
    fn run(&self, path: &PathFn, expect: StatusCode, connections: usize, seconds: u64, headers: Headers) -> Run {
        let before = self.runtime.block_on(redis_sample(&self.redis));
        let api_before = self.api.stats().cpu_seconds();
        let outcome = drive_with(self.addr, path.clone(), expect, connections, seconds, headers);
        let api_after = self.api.stats().cpu_seconds();
        let after = self.runtime.block_on(redis_sample(&self.redis));
        // The warm-up second is inside the deltas: count its requests too by
        // scaling with the measured share (drive warms up for one second).
        let requests = (outcome.requests as f64 * (seconds as f64 + 1.0) / seconds as f64).max(1.0);
        let mut per_command: Vec<(String, f64)> = after
            .calls
            .iter()
            .map(|(name, n)| (name.clone(), (n - before.calls.get(name).copied().unwrap_or(0)) as f64 / requests))
            .filter(|(name, n)| *n >= 0.01 && name != "info")
            .collect();
        per_command.sort_by(|a, b| b.1.total_cmp(&a.1));
        let top = per_command.iter().take(4).map(|(name, n)| format!("{name} {n:.2}")).collect::<Vec<_>>().join(", ");
        Run {
            redis_us: (after.cpu - before.cpu) * 1e6 / requests,
            api_us: (api_after - api_before) * 1e6 / requests,
            commands: per_command.iter().map(|(_, n)| n).sum(),
            top,
            outcome,
        }
    }
}

/// nginx answering join and create with a fixed 302 and getMeetings with
/// `body`, doing nothing else; gzip-encoded (once, ahead: `gzip_static`)
/// for requests that accept it.
fn ceiling(runtime: &tokio::runtime::Runtime, body: &str) -> (TestNginx, SocketAddr) {
    use std::io::Write;
    let dir = tempfile::Builder::new().prefix("fleet-ceiling-").tempdir().unwrap().keep();
    let file = dir.join("getMeetings.xml");
    std::fs::write(&file, body).unwrap();
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(body.as_bytes()).unwrap();
    std::fs::write(dir.join("getMeetings.xml.gz"), encoder.finish().unwrap()).unwrap();
    let nginx = runtime.block_on(TestNginx::start(move |listen| {
        format!(
            "server {{\n  listen {listen};\n  access_log off;\n  keepalive_requests 1000000;\n\
             location = /bigbluebutton/api/getMeetings {{ default_type text/xml; gzip_static on; alias {}; }}\n\
             location / {{ return 302 https://bbb.example/bigbluebutton/api/join?x=1; }}\n}}\n",
            file.display()
        )
    }));
    let addr = SocketAddr::from(([127, 0, 0, 1], nginx.port()));
    (nginx, addr)
}

fn row(pool: usize, name: &str, run: &Run, ceiling: Option<f64>) -> String {
    let o = &run.outcome;
    let versus = ceiling.map_or("100 %".to_owned(), |c| format!("{:.0} %", 100.0 * o.rps() / c));
    format!(
        "| {pool} | {name} | {:.0} | {versus} | {:.2} | {:.2} | {} | {:.1} | {:.1} | {:.1} ({}) |",
        o.rps(),
        o.p(0.5),
        o.p(0.99),
        o.errors,
        run.redis_us,
        run.api_us,
        run.commands,
        run.top
    )
}

fn main() {
    let pools: Vec<usize> = std::env::var("FLEET_SERVERS")
        .unwrap_or_else(|_| "50,1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let meetings: usize = env_or("FLEET_MEETINGS", 1000);
    let seconds: u64 = env_or("LOAD_SECONDS", 5);
    let rounds: usize = env_or("LOAD_ROUNDS", 3);
    let connections: usize = env_or("LOAD_CONNECTIONS", 64);
    let only = std::env::var("LOAD_ONLY").unwrap_or_default();
    let soak: u64 = env_or("FLEET_SOAK", 0);
    let api_bin = release_binary("scalelite-api");
    let poller_bin = release_binary("scalelite-poller");

    let mut lines = vec![
        "| servers | workload | req/s (median) | vs ceiling | p50 ms | p99 ms | errors | Redis µs/req | API µs/req | Redis cmds/req (top) |".to_owned(),
        "|---|---|---|---|---|---|---|---|---|---|".to_owned(),
    ];
    let mut memory = Vec::new();
    for &pool in &pools {
        let stack = Stack::start(pool, meetings, &api_bin, &poller_bin);
        let body = stack.runtime.block_on(stack.client.get("getMeetings", &[])).body;
        let (_nginx, ceiling_addr) = ceiling(&stack.runtime, &body);
        let join = path_of(&stack.client.url(
            "join",
            &[("meetingID", "room-3"), ("fullName", "Ada Lovelace"), ("role", "VIEWER"), ("userID", "gl-12345")],
        ));
        // Joins spread over every meeting (each joined a few dozen times a
        // second at these rates: most, not all, from the join route cache).
        // Signed up front: the load generator shares the cores.
        let spread: Vec<String> = (0..meetings.max(1))
            .map(|i| {
                path_of(&stack.client.url("join", &[("meetingID", &format!("room-{i}")), ("fullName", "Ada Lovelace")]))
            })
            .collect();
        let spread: PathFn = Arc::new(move |n| spread[(n % spread.len() as u64) as usize].clone());
        let create_client = stack.client.clone();
        let create: PathFn = Arc::new(move |n| {
            path_of(&create_client.url(
                "create",
                &[("meetingID", &format!("load-{pool}-{n}")), ("name", "Load test"), ("record", "false")],
            ))
        });
        let get_meetings = path_of(&stack.client.url("getMeetings", &[]));
        let fixed = |p: String| -> PathFn { Arc::new(move |_| p.clone()) };
        let gzip: Headers = &[("accept-encoding", "gzip")];
        let workloads: Vec<(&str, PathFn, StatusCode, Headers)> = vec![
            ("join", fixed(join.clone()), StatusCode::FOUND, &[]),
            ("join (all meetings)", spread, StatusCode::FOUND, &[]),
            // Before create, which lengthens the list the ceiling serves.
            ("getMeetings (cached)", fixed(get_meetings.clone()), StatusCode::OK, &[]),
            ("getMeetings (cached, gzip)", fixed(get_meetings.clone()), StatusCode::OK, gzip),
            ("create (unique ids)", create, StatusCode::OK, &[]),
        ];
        stack.api.stats().reset_peak();
        for (name, path, expect, headers) in workloads {
            if !only.is_empty() && !name.starts_with(only.as_str()) {
                continue;
            }
            let ceiling_path =
                if name.starts_with("getMeetings") { fixed(get_meetings.clone()) } else { fixed(join.clone()) };
            let ceiling_expect = if name.starts_with("getMeetings") { StatusCode::OK } else { StatusCode::FOUND };
            let (mut base, mut runs) = (Vec::new(), Vec::new());
            for _ in 0..rounds {
                base.push(drive_with(
                    ceiling_addr,
                    ceiling_path.clone(),
                    ceiling_expect,
                    connections,
                    seconds,
                    headers,
                ));
                runs.push(stack.run(&path, expect, connections, seconds, headers));
            }
            runs.sort_by(|a, b| a.outcome.rps().total_cmp(&b.outcome.rps()));
            let run = runs.swap_remove(runs.len() / 2);
            let base = median(base);
            let ceiling_name = if headers.is_empty() && name.starts_with("getMeetings") {
                "no-op (nginx, same body)"
            } else if name.starts_with("getMeetings") {
                "no-op (nginx, same body gzip-encoded ahead)"
            } else {
                "no-op (nginx 302)"
            };
            let ceiling_run = Run { outcome: base, redis_us: 0.0, api_us: 0.0, commands: 0.0, top: String::new() };
            lines.push(row(pool, ceiling_name, &ceiling_run, None));
            lines.push(row(pool, name, &run, Some(ceiling_run.outcome.rps())));
        }
        let stats = stack.api.stats();
        memory.push(format!(
            "| {pool} | {:.0} | {:.0} | {} |",
            stats.rss_kib() as f64 / 1024.0,
            stats.peak_kib() as f64 / 1024.0,
            stack.fleet.call_count("getMeetings")
        ));
        drop(stack);
    }
    println!("{}", lines.join("\n"));
    println!(
        "\n| servers | API RSS after MiB | API peak RSS MiB | getMeetings answered by the fleet |\n|---|---|---|---|"
    );
    println!("{}", memory.join("\n"));

    if soak > 0 {
        soak_creates(soak, connections, &api_bin, &poller_bin);
    }
}

/// `total` creates of new meetings over 3 servers, sampling the API's RSS
/// every 20,000: memory must stay flat however many meetings were created.
fn soak_creates(total: u64, connections: usize, api_bin: &Path, poller_bin: &Path) {
    let stack = Stack::start(3, 10, api_bin, poller_bin);
    let client = stack.client.clone();
    let batch = 20_000_u64;
    println!("\n| creates so far | API RSS MiB | creates/s |\n|---|---|---|");
    let mut done = 0;
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    while done < total {
        let (c, n) = (client.clone(), counter.clone());
        let path: PathFn = Arc::new(move |_| {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            path_of(&c.url("create", &[("meetingID", &format!("soak-{i}")), ("name", "Soak"), ("record", "false")]))
        });
        let started = Instant::now();
        let before = counter.load(std::sync::atomic::Ordering::Relaxed);
        while counter.load(std::sync::atomic::Ordering::Relaxed) - before < batch {
            let outcome = drive(stack.addr, path.clone(), StatusCode::OK, connections, 2);
            assert_eq!(outcome.errors, 0, "creates failed during the soak:\n{}", stack.api.log_tail());
        }
        let made = counter.load(std::sync::atomic::Ordering::Relaxed) - before;
        done += made;
        println!(
            "| {done} | {:.0} | {:.0} |",
            stack.api.stats().rss_kib() as f64 / 1024.0,
            made as f64 / started.elapsed().as_secs_f64()
        );
    }
}
