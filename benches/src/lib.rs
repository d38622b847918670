//! Benchmarks live in `benches/`; see `README.md` for how to run them and
//! the recorded results. This library holds what the HTTP benchmarks share:
//! a keep-alive load generator with latency histograms, and the no-op
//! ceiling server every HTTP number is compared with.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark code: a failed unwrap is a failed measurement")]

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
use tokio::net::{TcpListener, TcpStream};

/// How a worker builds the path of its next request (`n` counts requests).
pub type PathFn = Arc<dyn Fn(u64) -> String + Send + Sync>;

/// The result of one measurement.
#[derive(Debug)]
pub struct Outcome {
    /// Requests answered.
    pub requests: u64,
    /// Transport errors and unexpected status codes.
    pub errors: u64,
    /// Latencies in microseconds.
    pub histogram: Histogram<u64>,
    /// Wall time of the measurement.
    pub elapsed: Duration,
}

impl Outcome {
    /// Requests per second.
    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// Latency at `quantile`, in milliseconds.
    pub fn p(&self, quantile: f64) -> f64 {
        self.histogram.value_at_quantile(quantile) as f64 / 1000.0
    }
}

/// The outcome with the median throughput.
pub fn median(mut outcomes: Vec<Outcome>) -> Outcome {
    outcomes.sort_by(|a, b| a.rps().total_cmp(&b.rps()));
    outcomes.swap_remove(outcomes.len() / 2)
}

/// Extra request headers of a load run (`Accept-Encoding: gzip`).
pub type Headers = &'static [(&'static str, &'static str)];

async fn worker(
    addr: SocketAddr,
    path: PathFn,
    counter: Arc<AtomicU64>,
    until: Instant,
    expect: StatusCode,
    headers: Headers,
) -> (Histogram<u64>, u64, u64) {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let (mut requests, mut errors) = (0, 0);
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    while Instant::now() < until {
        let n = counter.fetch_add(1, Ordering::Relaxed);
        let mut request = Request::get(path(n)).header(header::HOST, "127.0.0.1");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Empty::<Bytes>::new()).unwrap();
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

/// Runs `connections` keep-alive workers against `addr` for `seconds` on a
/// separate client runtime (one thread), after a one-second warm-up.
pub fn drive(addr: SocketAddr, path: PathFn, expect: StatusCode, connections: usize, seconds: u64) -> Outcome {
    drive_with(addr, path, expect, connections, seconds, &[])
}

/// [`drive`] with extra request `headers`.
pub fn drive_with(
    addr: SocketAddr,
    path: PathFn,
    expect: StatusCode,
    connections: usize,
    seconds: u64,
    headers: Headers,
) -> Outcome {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        runtime.block_on(async move {
            let counter = Arc::new(AtomicU64::new(0));
            // Warm-up: connections, scripts, pools, caches.
            let warm_until = Instant::now() + Duration::from_secs(1);
            let warm: Vec<_> = (0..connections)
                .map(|_| tokio::spawn(worker(addr, path.clone(), counter.clone(), warm_until, expect, headers)))
                .collect();
            for task in warm {
                task.await.unwrap();
            }
            let started = Instant::now();
            let until = started + Duration::from_secs(seconds);
            let tasks: Vec<_> = (0..connections)
                .map(|_| tokio::spawn(worker(addr, path.clone(), counter.clone(), until, expect, headers)))
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

/// The path and query of an absolute URL.
pub fn path_of(url: &str) -> String {
    let after = url.find("://").map_or(0, |i| i + 3);
    url[after..].find('/').map_or_else(|| "/".to_owned(), |i| url[after + i..].to_owned())
}

/// Starts the ceiling: the same HTTP stack (axum) answering every request
/// with a fixed 302, doing nothing else. Call inside a Tokio runtime.
pub async fn start_ceiling() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new().fallback(|| async {
        (StatusCode::FOUND, [(header::LOCATION, "https://bbb.example/bigbluebutton/api/join?x=1")]).into_response()
    });
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// What `/proc` says about a running process.
#[derive(Clone, Copy, Debug)]
pub struct ProcessStats {
    pid: u32,
}

impl ProcessStats {
    /// The process `pid`.
    pub fn of(pid: u32) -> Self {
        Self { pid }
    }

    /// A field of `/proc/<pid>/status` in KiB (0 when unreadable).
    pub fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        status
            .lines()
            .find_map(|line| {
                line.strip_prefix(field)?.strip_prefix(':')?.trim().strip_suffix("kB")?.trim().parse().ok()
            })
            .unwrap_or(0)
    }

    /// Resident set size, KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS")
    }

    /// Peak resident set size since start or [`Self::reset_peak`], KiB.
    pub fn peak_kib(&self) -> u64 {
        self.status_kib("VmHWM")
    }

    /// Resets the peak to the current RSS (Linux `clear_refs` 5).
    pub fn reset_peak(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5").is_ok()
    }

    /// User + system CPU seconds so far (clock ticks of 10 ms, Linux's
    /// `USER_HZ` on x86-64).
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        // Fields after the parenthesised command: state is field 3, utime 14.
        let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
        (ticks(11) + ticks(12)) as f64 / 100.0
    }
}

/// The last 20 lines of a log file (empty when unreadable).
pub fn log_tail(path: &std::path::Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// An environment variable parsed, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// One HTTP scenario: a name, where to send it, how to build paths, and the
/// status every answer must have.
pub type Scenario<'a> = (&'a str, SocketAddr, PathFn, StatusCode);

/// Runs every scenario after the first `rounds` times, each round next to a
/// run of the first scenario (the ceiling), so drift on a shared machine
/// affects both alike. Returns the ceiling's median over all rounds and,
/// per scenario, its median and its throughput relative to the ceiling
/// runs next to it.
pub fn alternate_with_ceiling(
    scenarios: &[Scenario<'_>],
    rounds: usize,
    connections: usize,
    seconds: u64,
) -> (Option<Outcome>, Vec<(String, Outcome, f64)>) {
    let (_, ceiling_addr, ceiling_path, ceiling_expect) = &scenarios[0];
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
        rows.push(((*name).to_owned(), run, ratio));
    }
    ((!all_ceiling.is_empty()).then(|| median(all_ceiling)), rows)
}

/// Prints the result of [`alternate_with_ceiling`] as a markdown table.
#[expect(clippy::print_stdout, reason = "benchmarks report on stdout")]
pub fn print_table(
    scenarios: &[Scenario<'_>],
    result: (Option<Outcome>, Vec<(String, Outcome, f64)>),
    rounds: usize,
    connections: usize,
) {
    let (ceiling, rows) = result;
    let mut out = format!(
        "| scenario | connections | req/s (median of {rounds}) | p50 ms | p99 ms | errors | vs ceiling |\n\
         |---|---|---|---|---|---|---|\n"
    );
    let line = |name: &str, o: &Outcome, ratio: f64| {
        format!(
            "| {name} | {connections} | {:.0} | {:.2} | {:.2} | {} | {:.0} % |\n",
            o.rps(),
            o.p(0.5),
            o.p(0.99),
            o.errors,
            100.0 * ratio
        )
    };
    if let Some(ceiling) = ceiling {
        out.push_str(&line(scenarios[0].0, &ceiling, 1.0));
    }
    for (name, outcome, ratio) in rows {
        out.push_str(&line(&name, &outcome, ratio));
    }
    print!("{out}");
}

/// What GNU time and a binary's JSON log say about one run.
#[derive(Clone, Copy, Debug)]
pub struct TimedRun {
    /// `duration_ms` of the first log line with the message asked for.
    pub logged_ms: Option<f64>,
    /// Wall seconds.
    pub wall: f64,
    /// User + system CPU seconds.
    pub cpu: f64,
    /// Peak resident set size in KiB.
    pub max_rss_kib: u64,
}

/// A command running `binary` under GNU time (`/usr/bin/time`, Debian
/// package `time`), logging JSON at `info`.
///
/// # Panics
///
/// Panics when GNU time is missing.
pub fn timed(binary: &std::path::Path) -> std::process::Command {
    let time = std::path::Path::new("/usr/bin/time");
    assert!(time.exists(), "GNU time is needed: apt-get install time");
    let mut command = std::process::Command::new(time);
    command.args(["-f", "TIME %e %U %S %M"]).arg(binary).env("LOG_FORMAT", "json").env("RUST_LOG", "info");
    command
}

/// Runs a command made by [`timed`] to completion and reads GNU time's line
/// and the `duration_ms` of the first log line whose message is `message`.
///
/// # Panics
///
/// Panics (showing stderr) when the command fails.
pub fn run_timed(command: &mut std::process::Command, message: &str) -> TimedRun {
    let output = command.output().expect("run the timed binary");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{command:?} failed:\n{stderr}");
    let timing = stderr.lines().find_map(|l| l.strip_prefix("TIME ")).expect("GNU time's output");
    let fields: Vec<f64> = timing.split_whitespace().map(|f| f.parse().expect("a number")).collect();
    let quoted = format!("\"{message}\"");
    let logged_ms = stderr
        .lines()
        .filter(|l| l.contains(&quoted))
        .find_map(|l| l.split("\"duration_ms\":").nth(1)?.split([',', '}']).next()?.trim().parse().ok());
    TimedRun { logged_ms, wall: fields[0], cpu: fields[1] + fields[2], max_rss_kib: fields[3] as u64 }
}

/// Builds `package` with the `bench` profile (release settings plus debug
/// symbols for `perf`, sharing the artifacts `cargo bench` just built) and
/// returns its binary's path (under `CARGO_TARGET_DIR` when that is set, as
/// cargo puts it there).
///
/// # Panics
///
/// Panics when the build fails.
pub fn release_binary(package: &str) -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--profile", "bench", "--quiet", "-p", package])
        .current_dir(&root)
        .status()
        .expect("cargo build");
    assert!(status.success(), "building {package} failed");
    // `join` keeps an absolute CARGO_TARGET_DIR as it is.
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| target_directory(&root), |dir| root.join(dir));
    target.join("release").join(package)
}

/// The target directory cargo uses for the workspace at `root` (what
/// `cargo metadata` says, so a `build.target-dir` of `.cargo/config.toml`
/// counts), else `<root>/target`.
fn target_directory(root: &std::path::Path) -> std::path::PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    std::process::Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .output()
        .ok()
        .and_then(|output| {
            let json = String::from_utf8(output.stdout).ok()?;
            let rest = json.split("\"target_directory\":\"").nth(1)?;
            Some(std::path::PathBuf::from(rest.split('"').next()?))
        })
        .unwrap_or_else(|| root.join("target"))
}
