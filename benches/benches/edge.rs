//! Issue 12's "done when", measured with the release `scalelite-api` binary
//! on loopback: memory and join latency under 10 concurrent unauthenticated
//! 32 MiB bodies, the cost of the quadratic inputs, a spliced join, 1,000
//! idle and 1,000 silent connections, and XML nested a million levels deep
//! from a BBB server (`getMeetings`, the poll) and in `metadata.xml`.
//!
//! The API runs in the embedded mode (one process, SQLite file in a
//! temporary data directory, poller and recording importer inside it), so
//! every hostile input reaches the one process whose memory is read from
//! `/proc/<pid>/status` (`VmRSS`, and `VmHWM` for the peak, reset through
//! `clear_refs` before each attack). Two fake BBB servers run in this
//! process; joins are driven with keep-alive connections as in `load.rs`.
//!
//! `cargo bench -p scalelite-benches --bench edge` (env: `EDGE_SECONDS`,
//! join window per phase, default 10; `EDGE_CONNECTIONS`, join connections,
//! default 8; `EDGE_IDLE`, idle and silent connections, default 1000).
//! Prints markdown tables; stops by itself.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark code: a failed unwrap is a failed measurement")]
#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use scalelite_benches::{Outcome, PathFn, ProcessStats, drive, env_or, path_of, release_binary};
use scalelite_core::config::Backend;
use scalelite_store::SqliteStore;
use scalelite_tests::archive::drop_bytes;
use scalelite_tests::seed::seed_server_through_store;
use scalelite_tests::{
    ApiClient, FakeFleet, LB_SECRET, RecordingArchive, SeedServer, free_port, read_http_response, server_id,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `HTTP_IDLE_TIMEOUT` of the API, seconds.
const IDLE_TIMEOUT: u64 = 5;
/// The attack body: `yes b | tr '\n' '&' | head -c 33554368`, 64 bytes
/// under `MAX_REQUEST_BODY_BYTES` (32 MiB).
const ATTACK_BYTES: usize = 33_554_368;
/// Requests sent at once by the attack.
const ATTACKERS: usize = 10;
/// Repetitions of each timed single request (the median is reported).
const REPEAT: usize = 5;
/// Levels of the nested XML.
const DEPTH: usize = 1_000_000;

// === The API process ===

/// The release `scalelite-api`, embedded mode, killed on drop.
struct Api {
    child: Child,
    addr: SocketAddr,
    data_dir: tempfile::TempDir,
    log: PathBuf,
}

impl Api {
    fn start(binary: &Path) -> Self {
        let data_dir = tempfile::Builder::new().prefix("edge-bench-").tempdir().expect("data dir");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let log = data_dir.path().join("api.log");
        let child = Command::new(binary)
            .env_remove("REDIS_URL")
            .env_remove("DATABASE_URL")
            .env("SCALELITE_DATA_DIR", data_dir.path())
            .env("LOADBALANCER_SECRET", LB_SECRET)
            .env("BIND", addr.to_string())
            .env("HTTP_IDLE_TIMEOUT", IDLE_TIMEOUT.to_string())
            .env("GET_MEETINGS_CACHE_TTL", "0")
            .env("POLL_INTERVAL", "1")
            .env("CONNECT_TIMEOUT", "1")
            .env("RESPONSE_TIMEOUT", "5")
            .env("RECORDING_IMPORT_POLL_INTERVAL", "1")
            .env("RECORDING_IMPORT_SETTLE_TIME", "0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start scalelite-api");
        Self { child, addr, data_dir, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn stats(&self) -> ProcessStats {
        ProcessStats::of(self.pid())
    }

    fn rss(&self) -> u64 {
        self.stats().rss_kib()
    }

    fn peak(&self) -> u64 {
        self.stats().peak_kib()
    }

    fn reset_peak(&self) -> bool {
        self.stats().reset_peak()
    }

    fn cpu_seconds(&self) -> f64 {
        self.stats().cpu_seconds()
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map_or(0, Iterator::count)
    }

    fn spool(&self) -> PathBuf {
        self.data_dir.path().join("recordings").join("spool")
    }

    fn log_tail(&self) -> String {
        scalelite_benches::log_tail(&self.log)
    }
}

impl Drop for Api {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

// === Raw HTTP/1.1 exchanges (the attacks need what clients never send) ===

/// One answered (or unanswered) request.
#[derive(Debug)]
struct Answer {
    /// 0 when no status line arrived.
    status: u16,
    text: String,
    elapsed: Duration,
}

impl Answer {
    fn message_key(&self) -> Option<&str> {
        self.text.split("<messageKey>").nth(1)?.split("</messageKey>").next()
    }

    fn label(&self) -> String {
        match (self.status, self.message_key()) {
            (0, _) => format!("no answer ({})", if self.text.is_empty() { "closed" } else { &self.text }),
            (status, Some(key)) => format!("{status} {key}"),
            (status, None) => status.to_string(),
        }
    }
}

fn head(method: &str, target: &str, content_type: Option<&str>, length: usize) -> String {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    if let Some(content_type) = content_type {
        let _ = write!(head, "Content-Type: {content_type}\r\n");
    }
    if method != "GET" || length > 0 {
        let _ = write!(head, "Content-Length: {length}\r\n");
    }
    head.push_str("\r\n");
    head
}

/// Sends `head` and `body` on a new connection while reading the answer (a
/// server may answer before it reads the body, or never read it); the
/// connection is dropped once the answer is in.
async fn exchange(addr: SocketAddr, head: String, body: Bytes) -> Answer {
    let started = Instant::now();
    let talk = async move {
        let Ok(stream) = TcpStream::connect(addr).await else { return (0, "connect failed".to_owned()) };
        let _ = stream.set_nodelay(true);
        let (mut reader, mut writer) = stream.into_split();
        // The task keeps the write half (no FIN) until it is aborted.
        let sending = tokio::spawn(async move {
            if writer.write_all(head.as_bytes()).await.is_ok() {
                let _ = writer.write_all(&body).await;
            }
            writer
        });
        let answer = read_http_response(&mut reader).await;
        sending.abort();
        answer
    };
    let (status, text) =
        tokio::time::timeout(Duration::from_secs(60), talk).await.unwrap_or_else(|_| (0, "timeout".to_owned()));
    Answer { status, text, elapsed: started.elapsed() }
}

fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build().unwrap()
}

// === The memory attack ===

/// Counts of the attack's answers by label.
type Tally = BTreeMap<String, u64>;

/// `ATTACKERS` connections sending `body` to `target` again and again until
/// `stop`, on a thread of their own.
fn attack(addr: SocketAddr, target: String, body: Bytes, stop: Arc<AtomicBool>) -> JoinHandle<Tally> {
    std::thread::spawn(move || {
        runtime(1).block_on(async move {
            let head = head("POST", &target, Some("application/x-www-form-urlencoded"), body.len());
            let tasks: Vec<_> = (0..ATTACKERS)
                .map(|_| {
                    let (head, body, stop) = (head.clone(), body.clone(), stop.clone());
                    tokio::spawn(async move {
                        let mut tally = Tally::new();
                        while !stop.load(Ordering::Relaxed) {
                            let answer = exchange(addr, head.clone(), body.clone()).await;
                            *tally.entry(answer.label()).or_default() += 1;
                        }
                        tally
                    })
                })
                .collect();
            let mut total = Tally::new();
            for task in tasks {
                for (label, n) in task.await.unwrap() {
                    *total.entry(label).or_default() += n;
                }
            }
            total
        })
    })
}

/// Samples `VmRSS` every 50 ms until `stop`; returns the largest.
fn sample_rss(pid: u32, stop: Arc<AtomicBool>) -> JoinHandle<u64> {
    std::thread::spawn(move || {
        let path = format!("/proc/{pid}/status");
        let mut max = 0;
        while !stop.load(Ordering::Relaxed) {
            let status = std::fs::read_to_string(&path).unwrap_or_default();
            let rss = status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim().parse().ok())
                .unwrap_or(0);
            max = max.max(rss);
            std::thread::sleep(Duration::from_millis(50));
        }
        max
    })
}

/// One join window, with or without an attack running through it.
struct Window {
    name: String,
    joins: Outcome,
    tally: Tally,
    peak_kib: u64,
    sampled_kib: u64,
    after_2s_kib: u64,
    after_10s_kib: u64,
    /// CPU of the API over the window, in cores (1.0 = one core busy).
    api_cores: f64,
}

fn join_window(api: &Api, name: &str, join: &PathFn, attack_on: Option<(&str, &Bytes)>) -> Window {
    let (seconds, connections) = (env_or("EDGE_SECONDS", 10), env_or("EDGE_CONNECTIONS", 8));
    api.reset_peak();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_rss(api.pid(), stop.clone());
    let (cpu_before, started) = (api.cpu_seconds(), Instant::now());
    let attacking = attack_on.map(|(target, body)| attack(api.addr, target.to_owned(), body.clone(), stop.clone()));
    let joins = drive(api.addr, join.clone(), StatusCode::FOUND, connections, seconds);
    stop.store(true, Ordering::Relaxed);
    let api_cores = (api.cpu_seconds() - cpu_before) / started.elapsed().as_secs_f64();
    let tally = attacking.map(|a| a.join().unwrap()).unwrap_or_default();
    let sampled_kib = sampler.join().unwrap();
    let peak_kib = api.peak();
    std::thread::sleep(Duration::from_secs(2));
    let after_2s_kib = api.rss();
    std::thread::sleep(Duration::from_secs(8));
    let after_10s_kib = api.rss();
    Window { name: name.to_owned(), joins, tally, peak_kib, sampled_kib, after_2s_kib, after_10s_kib, api_cores }
}

// === Idle connections ===

/// When connections went quiet and when the server closed them.
struct Quiet {
    opened: usize,
    /// Seconds from going quiet to being closed by the server, per closed
    /// connection, sorted.
    closed_after: Vec<f64>,
}

impl Quiet {
    fn summary(&self) -> String {
        let c = &self.closed_after;
        if c.is_empty() {
            return format!("0 of {} closed", self.opened);
        }
        format!(
            "{} of {} closed after {:.2} s (first) / {:.2} s (median) / {:.2} s (last)",
            c.len(),
            self.opened,
            c[0],
            c[c.len() / 2],
            c[c.len() - 1]
        )
    }
}

/// Waits (at most 60 s) until the server closes `stream`.
async fn watch_close(mut stream: TcpStream, quiet_since: Instant) -> Option<f64> {
    let mut sink = [0u8; 1024];
    let closed = async {
        loop {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), closed).await.ok().map(|()| quiet_since.elapsed().as_secs_f64())
}

/// Opens `n` keep-alive connections that make one request and then idle,
/// and `n` that never send a byte; tells `ready` (with the API's open file
/// descriptors then) and waits until the server closed them (bounded).
fn quiet_connections(
    addr: SocketAddr,
    n: usize,
    fds: impl Fn() -> usize + Send + 'static,
    ready: std::sync::mpsc::Sender<usize>,
) -> JoinHandle<(Quiet, Quiet)> {
    std::thread::spawn(move || {
        runtime(1).block_on(async move {
            let (mut idle, mut silent) = (Vec::new(), Vec::new());
            for _ in 0..n {
                let mut stream = TcpStream::connect(addr).await.expect("connect");
                stream.write_all(b"GET /bigbluebutton/api HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await.unwrap();
                let (status, _) = read_http_response(&mut stream).await;
                assert_eq!(status, 200, "the API root answers");
                idle.push(tokio::spawn(watch_close(stream, Instant::now())));
            }
            for _ in 0..n {
                let stream = TcpStream::connect(addr).await.expect("connect");
                silent.push(tokio::spawn(watch_close(stream, Instant::now())));
            }
            // Let the server accept the last ones before counting.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let _ = ready.send(fds());
            (gather(n, idle).await, gather(n, silent).await)
        })
    })
}

async fn gather(opened: usize, tasks: Vec<tokio::task::JoinHandle<Option<f64>>>) -> Quiet {
    let mut closed_after = Vec::new();
    for task in tasks {
        closed_after.extend(task.await.unwrap());
    }
    closed_after.sort_by(f64::total_cmp);
    Quiet { opened, closed_after }
}

// === Nested XML ===

fn nested_get_meetings(depth: usize) -> String {
    format!(
        "<response><returncode>SUCCESS</returncode><meetings>{}{}</meetings></response>",
        "<m>".repeat(depth),
        "</m>".repeat(depth)
    )
}

fn median_ms(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    (times[times.len() / 2].as_secs_f64() * 1000.0, times[times.len() - 1].as_secs_f64() * 1000.0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn yes_no(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

#[expect(clippy::too_many_lines, reason = "one scripted run, phase after phase")]
fn main() {
    let nofile = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    let quiet_n: usize = env_or("EDGE_IDLE", 1000);
    assert!(nofile as usize > 2 * quiet_n + 200, "open-file limit {nofile} is too low for {quiet_n} x 2 connections");
    let built = release_binary("scalelite-api");
    // Copied at once: the uplifted binary in a shared target directory is
    // overwritten by any other worktree's release build.
    let scratch = tempfile::Builder::new().prefix("edge-bench-bin-").tempdir().unwrap();
    let binary = scratch.path().join("scalelite-api");
    std::fs::copy(&built, &binary).expect("copy the binary");
    let load_before = loadavg();

    let fleet_rt = runtime(1);
    let mut api = Api::start(&binary);
    let (fleet, client, hostile) = fleet_rt.block_on(async {
        let fleet = FakeFleet::start(2).await;
        let started = Instant::now();
        while exchange(api.addr, head("GET", "/bigbluebutton/api", None, 0), Bytes::new()).await.status != 200 {
            assert!(started.elapsed() < Duration::from_secs(30), "the API did not start:\n{}", api.log_tail());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let file = Backend::Embedded { data_dir: api.data_dir.path().to_owned() }.database_file().unwrap();
        let store = SqliteStore::open(file).await.expect("the embedded SQLite file");
        for (i, server) in fleet.iter().enumerate() {
            seed_server_through_store(&store, &SeedServer::enabled(server_id(i), server.url(), server.secret())).await;
        }
        let client = ApiClient::new(format!("http://{}/bigbluebutton/api", api.addr), LB_SECRET);
        for id in ["bench", "room-1", "room-1-grp"] {
            let reply = client.get("create", &[("meetingID", id), ("name", "Bench")]).await;
            assert!(reply.is_success(), "{}", reply.body);
        }
        let on = fleet.server_with_meeting("bench").unwrap();
        (fleet, client, 1 - on)
    });
    let join_path = path_of(&client.url(
        "join",
        &[("meetingID", "bench"), ("fullName", "Ada Lovelace"), ("role", "VIEWER"), ("userID", "gl-12345")],
    ));
    let join: PathFn = Arc::new(move |_| join_path.clone());
    std::thread::sleep(Duration::from_secs(2));
    let (baseline_rss, baseline_peak) = (api.rss(), api.peak());

    // 1-2. Joins alone, then under the two memory attacks.
    let body = Bytes::from("b&".repeat(ATTACK_BYTES / 2));
    let unread = "/bigbluebutton/api/getMeetings?checksum=0".to_owned();
    let read = format!("/bigbluebutton/api/getMeetings?checksum={}", "0".repeat(40));
    let windows = vec![
        join_window(&api, "joins alone", &join, None),
        join_window(&api, "joins + 10 × 32 MiB, `checksum=0`", &join, Some((&unread, &body))),
        join_window(&api, "joins + 10 × 32 MiB, 40-zero checksum", &join, Some((&read, &body))),
    ];
    drop(body);
    let settled_rss = api.rss();

    // 3. The quadratic inputs, one request at a time.
    let form = Some("application/x-www-form-urlencoded");
    let junk_query = "a&".repeat(3584); // 7 KiB
    let junk_body = Bytes::from("a&".repeat(1 << 20)); // 2 MiB
    let zeros = "0".repeat(40);
    let many: Vec<(String, String)> = (0..200_000).map(|i| (format!("meta_k{i}"), "v".to_owned())).collect();
    let many_pairs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let many_body = client.query(&many_pairs);
    let many_target =
        path_of(&format!("{}?checksum={}", client.call_url("create"), client.checksum("create", &many_body)));
    let many_body = Bytes::from(many_body);
    // 997 metadata parameters (half of the names repeated) + meetingID, name
    // and checksum: exactly MAX_REQUEST_PARAMS.
    let thousand: Vec<(String, String)> = (0..997).map(|i| (format!("meta_k{}", i % 499), format!("v{i}"))).collect();
    type Probe<'a> = (&'a str, Box<dyn Fn(usize) -> (String, Bytes) + 'a>);
    let probes: Vec<Probe<'_>> = vec![
        ("no-op: `GET /bigbluebutton/api`", Box::new(|_| (head("GET", "/bigbluebutton/api", None, 0), Bytes::new()))),
        (
            "(a) getMeetings, 7 KiB `a&…` query + `checksum=0`, 2 MiB `a&…` form body",
            Box::new(|_| {
                let target = format!("/bigbluebutton/api/getMeetings?{junk_query}checksum=0");
                (head("POST", &target, form, junk_body.len()), junk_body.clone())
            }),
        ),
        (
            "(a) the same with a 40-zero checksum",
            Box::new(|_| {
                let target = format!("/bigbluebutton/api/getMeetings?{junk_query}checksum={zeros}");
                (head("POST", &target, form, junk_body.len()), junk_body.clone())
            }),
        ),
        (
            "(a) getMeetings?checksum=<40 zeros>, 2 MiB `a&…` form body (the body is read)",
            Box::new(|_| {
                let target = format!("/bigbluebutton/api/getMeetings?checksum={zeros}");
                (head("POST", &target, form, junk_body.len()), junk_body.clone())
            }),
        ),
        (
            "(b) signed create, 200,000 parameters (form body, checksum over it)",
            Box::new(|_| (head("POST", &many_target, form, many_body.len()), many_body.clone())),
        ),
        (
            "signed create, 3 parameters (reference; fake BBB round trip)",
            Box::new(|n| {
                let url = client.url("create", &[("meetingID", &format!("small-{n}")), ("name", "Small")]);
                (head("GET", &path_of(&url), None, 0), Bytes::new())
            }),
        ),
        (
            "(b) signed create, 1,000 parameters (half the names repeated; fake BBB round trip)",
            Box::new(|n| {
                let id = format!("many-{n}");
                let mut pairs: Vec<(&str, &str)> = thousand.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                pairs.extend([("meetingID", id.as_str()), ("name", "Many")]);
                (head("GET", &path_of(&client.url("create", &pairs)), None, 0), Bytes::new())
            }),
        ),
    ];
    let mut timed = Vec::new();
    fleet_rt.block_on(async {
        for (name, make) in &probes {
            let mut times = Vec::new();
            let mut label = String::new();
            for n in 0..REPEAT {
                let (head, body) = make(n);
                let answer = exchange(api.addr, head, body).await;
                times.push(answer.elapsed);
                label = answer.label();
                if label.starts_with("400") || label.starts_with("413") {
                    let message = answer.text.split("<message>").nth(1).and_then(|m| m.split("</message>").next());
                    label = format!("{label}: {}", message.unwrap_or(""));
                }
            }
            let (median, max) = median_ms(times);
            timed.push((*name, label, median, max));
        }
    });
    drop(probes);

    // The spliced join (tests/it/edge.rs), against the release binary.
    let spliced = fleet_rt.block_on(async {
        let signed = "fullName=Eve&meetingID=room-1-grp&password=ap&guest=true";
        let x = client.checksum("join", signed);
        let honest = exchange(
            api.addr,
            head("GET", &path_of(&format!("{}?{signed}&checksum={x}", client.call_url("join"))), None, 0),
            Bytes::new(),
        )
        .await;
        let spliced = format!(
            "{}?fullName=Eve&meetingID=room-1&checksum={x}-grp&password=ap&&checksum={x}guest=true&checksum={x}",
            client.call_url("join")
        );
        let answer = exchange(api.addr, head("GET", &path_of(&spliced), None, 0), Bytes::new()).await;
        (honest.label(), answer.label(), answer.text.to_ascii_lowercase().contains("\r\nlocation:"))
    });

    // 4. Idle and silent connections while joins go on.
    let fds_before = api.open_fds();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let pid = api.pid();
    let quiet = quiet_connections(
        api.addr,
        quiet_n,
        move || std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count),
        ready_tx,
    );
    let fds_open = ready_rx.recv().expect("connections opened");
    let quiet_window = drive(api.addr, join.clone(), StatusCode::FOUND, env_or("EDGE_CONNECTIONS", 8), 12);
    let (idle, silent) = quiet.join().unwrap();
    let fds_after = api.open_fds();

    // 5. XML nested a million deep: a BBB server's getMeetings (the API's
    // fan-out and the poll) and metadata.xml of recordings.
    let nested = nested_get_meetings(DEPTH);
    fleet[hostile].set_raw_reply("getMeetings", nested.clone());
    fleet[hostile].set_raw_reply("getMeetingInfo", nested);
    let polls_before = fleet[hostile].call_count("getMeetings");
    let (fan_out, polls) = fleet_rt.block_on(async {
        let started = Instant::now();
        let reply = client.get("getMeetings", &[]).await;
        let fan_out = (reply.status, reply.returncode().unwrap_or_default(), started.elapsed());
        // Three poll rounds reach the hostile server (POLL_INTERVAL=1).
        let started = Instant::now();
        while fleet[hostile].call_count("getMeetings") < polls_before + 4 && started.elapsed() < Duration::from_secs(20)
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (fan_out, fleet[hostile].call_count("getMeetings") - polls_before - 1)
    });
    let spool = api.spool();
    std::fs::create_dir_all(&spool).unwrap();
    let archives = [
        ("deep-1m-unclosed.tar", "1,000,000 levels, never closed (3 MB)".to_owned(), "<n>".repeat(DEPTH)),
        (
            "deep-500k.tar",
            "500,000 levels, well-formed (3.5 MB)".to_owned(),
            format!("{}{}", "<n>".repeat(DEPTH / 2), "</n>".repeat(DEPTH / 2)),
        ),
        (
            "deep-1m.tar",
            "1,000,000 levels, well-formed (7 MB)".to_owned(),
            format!("{}{}", "<n>".repeat(DEPTH), "</n>".repeat(DEPTH)),
        ),
    ];
    for (i, (file, _, nested)) in archives.iter().enumerate() {
        drop_bytes(&spool, file, &RecordingArchive::new(&format!("deep-{i}"), "Deep").tar_with_metadata_extra(nested));
    }
    let good = RecordingArchive::new("room-good", "Good");
    good.drop_into(&spool);
    let (reasons, good_imported) = fleet_rt.block_on(async {
        let started = Instant::now();
        let reason = |file: &str| std::fs::read_to_string(spool.join("failed").join(format!("{file}.reason"))).ok();
        loop {
            let reply = client.get("getRecordings", &[("recordID", &good.record_id)]).await;
            let imported = reply.body.contains(&good.record_id);
            let reasons: Vec<Option<String>> = archives.iter().map(|(file, ..)| reason(file)).collect();
            if (imported && reasons.iter().all(Option::is_some)) || started.elapsed() > Duration::from_secs(60) {
                return (reasons, imported);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let after_nested =
        fleet_rt.block_on(async { exchange(api.addr, head("GET", &join(0), None, 0), Bytes::new()).await.label() });
    let alive = api.alive();
    let final_rss = api.rss();
    let load_after = loadavg();

    // === Report ===
    let p99 = |o: &Outcome| o.p(0.99);
    let allocator_env: Vec<String> =
        std::env::vars().filter(|(k, _)| k.starts_with("MIMALLOC_")).map(|(k, v)| format!("{k}={v}")).collect();
    println!("load average before / after: {load_before} / {load_after}; open-file limit of the bench: {nofile}");
    println!(
        "allocator options passed to the API: {}\n",
        if allocator_env.is_empty() { "none (mimalloc defaults)".to_owned() } else { allocator_env.join(" ") }
    );
    println!("#### Memory and joins under 10 concurrent unauthenticated 32 MiB bodies\n");
    println!(
        "| window ({} s, {} keep-alive join connections) | joins/s | join p50 ms | join p99 ms | join max ms | join errors | attack answers | API CPU (cores) | peak RSS MiB (VmHWM) | max sampled RSS MiB | RSS +2 s MiB | RSS +10 s MiB |",
        env_or::<u64>("EDGE_SECONDS", 10),
        env_or::<usize>("EDGE_CONNECTIONS", 8)
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for w in &windows {
        let tally = if w.tally.is_empty() {
            "—".to_owned()
        } else {
            w.tally.iter().map(|(k, v)| format!("{v} × {k}")).collect::<Vec<_>>().join(", ")
        };
        println!(
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {tally} | {:.2} | {:.1} | {:.1} | {:.1} | {:.1} |",
            w.name,
            w.joins.rps(),
            w.joins.p(0.5),
            p99(&w.joins),
            w.joins.histogram.max() as f64 / 1000.0,
            w.joins.errors,
            w.api_cores,
            mib(w.peak_kib),
            mib(w.sampled_kib),
            mib(w.after_2s_kib),
            mib(w.after_10s_kib),
        );
    }
    println!(
        "\nRSS: baseline {:.1} MiB (VmHWM at start {:.1} MiB); after both attacks {:.1} MiB; at the end {:.1} MiB\n",
        mib(baseline_rss),
        mib(baseline_peak),
        mib(settled_rss),
        mib(final_rss)
    );

    println!("#### Quadratic inputs (one request at a time, new connection each, median of {REPEAT})\n");
    println!("| request | answer | median ms | max ms |");
    println!("|---|---|---|---|");
    for (name, label, median, max) in &timed {
        println!("| {name} | {label} | {median:.2} | {max:.2} |");
    }

    // The API inherits HTTP_HEADER_READ_TIMEOUT from this process's
    // environment when it is set there.
    let header_read: f64 = env_or("HTTP_HEADER_READ_TIMEOUT", 10.0);
    println!(
        "\n#### Idle connections (`HTTP_IDLE_TIMEOUT={IDLE_TIMEOUT}`, `HTTP_HEADER_READ_TIMEOUT={header_read}`)\n"
    );
    println!("| connections | closed by the server |");
    println!("|---|---|");
    println!("| {quiet_n} keep-alive, idle after one request | {} |", idle.summary());
    println!("| {quiet_n} silent (never send a byte) | {} |", silent.summary());
    println!(
        "\nAPI open file descriptors: {fds_before} before, {fds_open} with the connections open, {fds_after} after.\n\
         Joins meanwhile (12 s, {} connections): {:.0}/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {} errors.\n",
        env_or::<usize>("EDGE_CONNECTIONS", 8),
        quiet_window.rps(),
        quiet_window.p(0.5),
        p99(&quiet_window),
        quiet_window.histogram.max() as f64 / 1000.0,
        quiet_window.errors
    );

    println!("#### Nested XML and the spliced join\n");
    println!("| input | outcome |");
    println!("|---|---|");
    println!(
        "| getMeetings through the API, one BBB server answering {DEPTH} levels ({:.1} MB) | HTTP {} {} in {:.0} ms |",
        nested_get_meetings(DEPTH).len() as f64 / 1e6,
        fan_out.0,
        fan_out.1,
        fan_out.2.as_secs_f64() * 1000.0
    );
    println!("| the embedded poller, {polls} rounds over that server | process alive: {} |", yes_no(alive));
    for ((file, what, _), reason) in archives.iter().zip(&reasons) {
        let reason = reason.as_deref().and_then(|r| r.lines().next()).unwrap_or("(not quarantined in 60 s)");
        println!("| metadata.xml nested {what}, `{file}` | quarantined: {reason} |");
    }
    println!("| a good archive dropped after them | imported: {} |", yes_no(good_imported));
    println!("| a join after all of it | {after_nested} |");
    println!("| honest join URL | {} |", spliced.0);
    println!("| spliced join URL (extra `checksum=` copies) | {}; Location header: {} |", spliced.1, spliced.2);

    let attack_p99 = windows[1..].iter().map(|w| p99(&w.joins)).fold(0.0, f64::max);
    let attack_peak = windows[1..].iter().map(|w| w.peak_kib.max(w.sampled_kib)).max().unwrap_or(0);
    let after = windows[1..].iter().map(|w| w.after_10s_kib).max().unwrap_or(0);
    let quadratic_max = timed[1..].iter().filter(|(n, ..)| !n.contains("reference")).map(|t| t.2).fold(0.0, f64::max);
    println!("\n#### Issue 12's targets\n");
    println!("| target | measured | met |");
    println!("|---|---|---|");
    println!(
        "| API under 512 MiB RSS during the attacks | peak {:.1} MiB (baseline {:.1}) | {} |",
        mib(attack_peak),
        mib(baseline_rss),
        yes_no(attack_peak < 512 * 1024)
    );
    println!(
        "| joins p99 < 100 ms during the attacks | {attack_p99:.2} ms (alone: {:.2} ms) | {} |",
        p99(&windows[0].joins),
        yes_no(attack_p99 < 100.0 && windows[1..].iter().all(|w| w.joins.errors == 0))
    );
    println!(
        "| RSS back near baseline (within one 32 MiB body) 10 s after | {:.1} MiB vs {:.1} MiB | {} |",
        mib(after),
        mib(baseline_rss),
        yes_no(after < baseline_rss + 32 * 1024)
    );
    println!(
        "| quadratic inputs < 50 ms each | slowest median {quadratic_max:.2} ms | {} |",
        yes_no(quadratic_max < 50.0)
    );
    println!(
        "| nested XML crashes nothing | API alive, join after: {after_nested} | {} |",
        yes_no(alive && after_nested == "302" && reasons.iter().all(Option::is_some) && good_imported)
    );
    println!(
        "| spliced join refused with checksumError | {} | {} |",
        spliced.1,
        yes_no(spliced.1 == "200 checksumError" && !spliced.2)
    );
    // Idle ones within a second of HTTP_IDLE_TIMEOUT; silent ones (no head
    // yet) within a second of HTTP_HEADER_READ_TIMEOUT.
    let closed_within = |q: &Quiet, limit: f64| {
        q.closed_after.len() == quiet_n && q.closed_after.last().is_some_and(|&last| last < limit + 1.0)
    };
    println!(
        "| {quiet_n} idle keep-alive connections closed after the idle timeout ({IDLE_TIMEOUT} s) | last after {:.2} s | {} |",
        idle.closed_after.last().copied().unwrap_or(f64::NAN),
        yes_no(closed_within(&idle, IDLE_TIMEOUT as f64))
    );
    println!(
        "| {quiet_n} silent connections closed after the header-read timeout ({header_read} s) | last after {:.2} s | {} |",
        silent.closed_after.last().copied().unwrap_or(f64::NAN),
        yes_no(closed_within(&silent, header_read))
    );
    println!(
        "| joins keep answering meanwhile (p99 < 100 ms) | p99 {:.2} ms, {} errors | {} |",
        p99(&quiet_window),
        quiet_window.errors,
        yes_no(p99(&quiet_window) < 100.0 && quiet_window.errors == 0)
    );
    if !alive {
        println!("\nthe API exited:\n{}", api.log_tail());
    }
    drop(api);
    drop(fleet);
    drop(fleet_rt);
}
