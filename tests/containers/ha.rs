//! `docker/compose.ha.yaml` under faults, with bounded load through HAProxy
//! (docs/DEPLOYMENT.md, "Layout 3"), and a BigBlueButton server container
//! that registers itself with `deploy/bbb-register.sh`.
//!
//! The load: [`WORKERS`] tasks in this process, each sending signed
//! `create`, `join` and (every fifth round) `getMeetings` one after the
//! other through HAProxy's port on loopback, pausing [`PAUSE`] between
//! rounds. So at most [`WORKERS`] requests are in flight at any moment, and
//! every failure (a transport error, an HTTP status other than the call's,
//! a `FAILED` reply) is counted with the time it happened. The numbers each
//! fault gave are printed (`--nocapture`) and written down in
//! docs/DEPLOYMENT.md.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use scalelite_tests::{Algo, ApiClient, FakeBbb};
use tokio::task::JoinHandle;

use super::{DEADLINE, SECRET, Stack, UP_DEADLINE, docker, path_str, root, run, success, until};

/// `POLL_INTERVAL` of the pollers, in seconds.
const POLL_INTERVAL: u64 = 2;
/// Concurrent load tasks: the most requests in flight at once.
const WORKERS: usize = 4;
/// Pause between a task's rounds.
const PAUSE: Duration = Duration::from_millis(25);
/// Meetings per task (creates repeat on them, as rooms are restarted).
const ROOMS: usize = 20;
/// How long a fault may take to show and to heal.
const FAULT_DEADLINE: Duration = Duration::from_secs(60);

/// What the load saw since the last [`Load::phase`].
#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    failed: Vec<(Instant, String)>,
    last_ok: Option<Instant>,
}

#[derive(Default)]
struct Shared {
    tally: Mutex<Tally>,
    /// Meetings whose create answered SUCCESS at least once.
    created: Mutex<BTreeSet<String>>,
    stop: AtomicBool,
}

/// The load generator.
struct Load {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(lb: &ApiClient) -> Self {
        let shared = Arc::new(Shared::default());
        let tasks = (0..WORKERS)
            .map(|worker| {
                let shared = Arc::clone(&shared);
                let lb = lb.clone();
                tokio::spawn(async move {
                    let mut round = 0usize;
                    while !shared.stop.load(Ordering::SeqCst) {
                        let room = format!("ha-room-{worker}-{}", round % ROOMS);
                        let name = format!("HA room {worker}-{}", round % ROOMS);
                        let created = outcome(
                            &shared,
                            "create",
                            lb.try_get("create", &[("meetingID", &room), ("name", &name)]).await,
                        );
                        if created {
                            shared.created.lock().unwrap().insert(room.clone());
                            let join = lb
                                .try_get("join", &[("meetingID", &room), ("fullName", "Load"), ("role", "MODERATOR")])
                                .await;
                            outcome(&shared, "join", join);
                        }
                        if round.is_multiple_of(5) {
                            outcome(&shared, "getMeetings", lb.try_get("getMeetings", &[]).await);
                        }
                        round += 1;
                        tokio::time::sleep(PAUSE).await;
                    }
                })
            })
            .collect();
        Self { shared, tasks }
    }

    /// The tally since the last call, and a fresh one from now.
    fn phase(&self) -> Tally {
        std::mem::take(&mut *self.shared.tally.lock().unwrap())
    }

    /// Awaits `n` successful requests more (the load goes on, and was
    /// served after whatever happened before).
    async fn served(&self, what: &str, n: u64) {
        let start = self.shared.tally.lock().unwrap().ok;
        until(what, FAULT_DEADLINE, || async {
            let tally = self.shared.tally.lock().unwrap();
            if tally.ok >= start + n { Ok(()) } else { Err(format!("{} more served", tally.ok - start)) }
        })
        .await;
    }

    fn created(&self) -> BTreeSet<String> {
        self.shared.created.lock().unwrap().clone()
    }

    async fn stop(self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.unwrap();
        }
    }
}

/// Counts one request; whether it succeeded.
fn outcome(shared: &Shared, call: &str, reply: Result<scalelite_tests::Reply, scalelite_tests::ClientError>) -> bool {
    let now = Instant::now();
    let failure = match reply {
        Ok(reply) if call == "join" && reply.status == 302 => None,
        Ok(reply) if call != "join" && reply.is_success() => None,
        Ok(reply) => {
            Some(format!("{call}: HTTP {} {}", reply.status, reply.body.chars().take(200).collect::<String>()))
        }
        Err(error) => Some(format!("{call}: {error}")),
    };
    let mut tally = shared.tally.lock().unwrap();
    match failure {
        None => {
            tally.ok += 1;
            tally.last_ok = Some(now);
            true
        }
        Some(failure) => {
            tally.failed.push((now, failure));
            false
        }
    }
}

/// One fault's numbers, for the report at the end.
struct Measured(Vec<String>);

impl Measured {
    fn note(&mut self, line: String) {
        eprintln!("==> measured: {line}");
        self.0.push(line);
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// What the failures of `tally` were, counted: `call: HTTP status
/// returncode` or `call: transport error`.
fn kinds(tally: &Tally) -> String {
    let mut counted: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for (_, failure) in &tally.failed {
        let kind = match failure.split_once(": HTTP ") {
            Some((call, rest)) => {
                let status = rest.split(' ').next().unwrap_or_default();
                let key = rest.split("<messageKey>").nth(1).and_then(|k| k.split('<').next()).unwrap_or_default();
                format!("{call} {status} {key}").trim_end().to_owned()
            }
            None => failure.split(':').next().unwrap_or_default().to_owned() + " transport error",
        };
        *counted.entry(kind).or_default() += 1;
    }
    counted.iter().map(|(kind, n)| format!("{n} × {kind}")).collect::<Vec<_>>().join(", ")
}

/// Failures of `tally` as text, for assertion messages.
fn failures(tally: &Tally, since: Instant) -> String {
    let shown: Vec<String> = tally
        .failed
        .iter()
        .map(|(at, what)| format!("+{:.2}s {what}", at.saturating_duration_since(since).as_secs_f64()))
        .collect();
    shown.join("\n")
}

impl Stack {
    /// `docker/compose.ha.yaml` with the stand-ins, up and healthy.
    async fn up_ha() -> Self {
        let stack = Self::new(&["docker/compose.ha.yaml", "tests/containers/compose.ha.override.yaml"], "-ha");
        stack.make_recording_tree().await;
        let settings = [
            ("COMPOSE_PROJECT_NAME", stack.project.clone()),
            ("LOADBALANCER_SECRET", SECRET.into()),
            ("SECRET_KEY_BASE", "2e".repeat(64)),
            ("POSTGRES_PASSWORD", "ha-test-password".into()),
            ("DATABASE_URL", "postgres://scalelite:ha-test-password@postgres:5432/scalelite".into()),
            ("SCALELITE_RECORDING_DIR", path_str(&stack.recordings()).into()),
            ("PLAYBACK_PLAYER_DIR", path_str(&stack.recordings()).into()),
            ("HAPROXY_HTTP_PORT", "127.0.0.1:".into()),
            ("HAPROXY_STATS_PORT", "127.0.0.1:".into()),
            ("SCALELITE_IMAGE", super::image()),
            ("POLL_INTERVAL", POLL_INTERVAL.to_string()),
            // One failed poll takes a server offline: a stale write of a
            // poller cut off from the BBB servers would show at once.
            ("SERVER_UNHEALTHY_THRESHOLD", "1".into()),
            ("REDIS_SENTINEL_DOWN_AFTER_MS", "1000".into()),
            ("REDIS_SENTINEL_FAILOVER_TIMEOUT_MS", "10000".into()),
            ("HTTP_SHUTDOWN_DELAY", "5".into()),
        ];
        let example = std::fs::read_to_string(root().join("docker/env.example")).unwrap();
        std::fs::write(stack.env_file(), super::filled_in(&example, &settings)).unwrap();
        stack.compose(&["up", "-d", "--no-build"], UP_DEADLINE).await;
        stack
    }

    /// HAProxy's published port for `port` inside (`127.0.0.1:P`).
    async fn haproxy(&self, port: &str) -> String {
        self.compose(&["port", "haproxy", port], DEADLINE).await.trim().to_owned()
    }

    /// HAProxy's view of each API: server name → status (`UP`, `DOWN`,
    /// `UP 1/2`, ...).
    async fn haproxy_states(&self, stats: &str) -> HashMap<String, String> {
        let csv = scalelite_tests::http_get(&format!("http://{stats}/stats;csv")).await.body;
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().trim_start_matches("# ").split(',').collect();
        let column = |name: &str| header.iter().position(|c| *c == name).expect("HAProxy's CSV has the column");
        let (px, sv, status) = (column("pxname"), column("svname"), column("status"));
        lines
            .map(|line| line.split(',').collect::<Vec<_>>())
            .filter(|cells| {
                cells.get(px) == Some(&"scalelite-api")
                    && cells.get(sv).is_some_and(|s| s.starts_with("scalelite-api-"))
            })
            .map(|cells| (cells[sv].to_owned(), cells[status].to_owned()))
            .collect()
    }

    /// Awaits HAProxy showing `server` in the pool (`in_pool`: `UP`) or
    /// out of it (`DOWN`, or `MAINT (resolution)` once Docker's DNS no
    /// longer knows a stopped container).
    async fn await_haproxy(&self, stats: &str, server: &str, in_pool: bool) {
        let what = if in_pool { "in the pool" } else { "out of the pool" };
        until(&format!("HAProxy: {server} {what}"), FAULT_DEADLINE, || async {
            let states = self.haproxy_states(stats).await;
            match states.get(server) {
                Some(s) if in_pool && s == "UP" => Ok(()),
                Some(s) if !in_pool && (s.starts_with("DOWN") || s.starts_with("MAINT")) => Ok(()),
                other => Err(format!("{other:?} in {states:?}")),
            }
        })
        .await;
    }

    /// A poller's metrics, read inside its container (it may have no
    /// network).
    async fn poller_metric(&self, container: &str, name: &str) -> f64 {
        let script = "exec 3<>/dev/tcp/127.0.0.1/9101 && printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3";
        let text = docker(&["exec", container, "bash", "-c", script]).await;
        metric(&text, name)
    }

    /// The master's service name according to the first sentinel.
    async fn redis_master(&self, sentinel: &str) -> String {
        let reply =
            docker(&["exec", sentinel, "redis-cli", "-p", "26379", "SENTINEL", "get-master-addr-by-name", "mymaster"])
                .await;
        reply.lines().next().unwrap_or_default().trim().to_owned()
    }

    fn network(&self) -> String {
        format!("{}_default", self.project)
    }
}

/// The value of the sample `name` (without labels) in a Prometheus text;
/// 0 when absent.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

/// When `container` logged a line containing `text` after `since`
/// (`docker logs --timestamps`), if it did.
async fn logged_at(container: &str, since: SystemTime, text: &str) -> Option<SystemTime> {
    let since = since.duration_since(SystemTime::UNIX_EPOCH).unwrap();
    let since_arg = format!("{}.{:09}", since.as_secs(), since.subsec_nanos());
    let output = tokio::process::Command::new("docker")
        .args(["logs", "--timestamps", "--since", &since_arg, container])
        .output()
        .await
        .unwrap();
    let text_out = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    text_out.lines().filter(|line| line.contains(text)).find_map(|line| rfc3339(line.split(' ').next()?))
}

/// `2026-12-06T12:34:56.123456789Z` as a time.
fn rfc3339(stamp: &str) -> Option<SystemTime> {
    let output = std::process::Command::new("date").args(["-u", "-d", stamp, "+%s.%N"]).output().ok()?;
    let secs: f64 = String::from_utf8_lossy(&output.stdout).trim().parse().ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs_f64(secs))
}

/// Two API containers behind HAProxy, two pollers, Redis with a replica and
/// three Sentinels, PostgreSQL, under load: an API killed loses at most the
/// requests in flight; a rolling restart of both APIs and a restart of
/// PostgreSQL lose none; the leader poller cut off the network is replaced
/// by the standby within two intervals and writes nothing when it comes
/// back; the Redis master killed is replaced by Sentinel, the APIs and
/// pollers follow and no meeting is lost. Then a BBB server container
/// registers itself at start and is cordoned at stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine and the images: scripts/test-containers"]
async fn ha_stack_survives_faults_under_load() {
    let stack = Stack::up_ha().await;
    let mut measured = Measured(Vec::new());
    let container = |service: &'static str| {
        let stack = &stack;
        async move { stack.container(service).await }
    };
    let api = [container("scalelite-api-1").await, container("scalelite-api-2").await];
    let pollers = [container("scalelite-poller-1").await, container("scalelite-poller-2").await];
    let sentinel = container("redis-sentinel-1").await;
    let postgres = container("postgres").await;

    let origin = format!("http://{}", stack.haproxy("8080").await);
    let stats = stack.haproxy("8404").await;
    for server in ["scalelite-api-1", "scalelite-api-2"] {
        stack.await_haproxy(&stats, server, true).await;
    }
    let lb = ApiClient::new(format!("{origin}/bigbluebutton/api"), SECRET);

    // A BBB server on this host, reached through the network's gateway.
    let gateway =
        docker(&["network", "inspect", "--format", "{{(index .IPAM.Config 0).Gateway}}", &stack.network()]).await;
    let bbb = FakeBbb::start_on(gateway.trim().parse().unwrap(), "ha-test-bbb-secret").await;
    let added = docker(&["exec", &api[0], "scalelite-admin", "servers", "add", &bbb.url(), &bbb.secret()]).await;
    let server_id =
        added.lines().find_map(|l| l.strip_prefix("id: ")).unwrap_or_else(|| panic!("servers add: {added}"));
    docker(&["exec", &api[0], "scalelite-admin", "servers", "enable", server_id]).await;
    until("a create through HAProxy", DEADLINE, || {
        success(&lb, "create", &[("meetingID", "ha-first"), ("name", "First")])
    })
    .await;

    let load = Load::start(&lb);
    load.served("the load served", 100).await;
    load.phase();

    // 1. An API killed: HAProxy sends its requests to the other one; only
    // those in flight on the killed one may fail.
    let t0 = Instant::now();
    docker(&["kill", &api[0]]).await;
    stack.await_haproxy(&stats, "scalelite-api-1", false).await;
    let down = t0.elapsed();
    load.served("the load served by the other API", 100).await;
    let tally = load.phase();
    measured.note(format!(
        "API killed: {} of {} requests failed (at most {WORKERS} in flight); HAProxy took it out after {}",
        tally.failed.len(),
        tally.ok + tally.failed.len() as u64,
        secs(down)
    ));
    assert!(tally.failed.len() <= WORKERS, "more than the requests in flight failed:\n{}", failures(&tally, t0));
    docker(&["start", &api[0]]).await;
    stack.await_haproxy(&stats, "scalelite-api-1", true).await;
    load.phase();

    // 2. Rolling restart of both APIs: /readyz answers 503 for
    // HTTP_SHUTDOWN_DELAY before the listener closes, so HAProxy takes each
    // out before it stops answering: nothing fails.
    let t0 = Instant::now();
    for (container, server) in api.iter().zip(["scalelite-api-1", "scalelite-api-2"]) {
        docker(&["restart", "--time", "30", container]).await;
        stack.await_haproxy(&stats, server, true).await;
        load.served("the load served after the restart", 50).await;
    }
    let tally = load.phase();
    measured.note(format!(
        "rolling restart of both APIs: {} of {} requests failed, {} for both",
        tally.failed.len(),
        tally.ok + tally.failed.len() as u64,
        secs(t0.elapsed())
    ));
    assert!(tally.failed.is_empty(), "requests failed during the rolling restart:\n{}", failures(&tally, t0));

    // 3. PostgreSQL restarted: meetings never touch it, /readyz does not
    // check it, so HAProxy keeps both APIs and nothing fails.
    let t0 = Instant::now();
    docker(&["restart", &postgres]).await;
    until("PostgreSQL healthy again", FAULT_DEADLINE, || async {
        let status = docker(&["inspect", "--format", "{{.State.Health.Status}}", &postgres]).await;
        if status.trim() == "healthy" { Ok(()) } else { Err(status) }
    })
    .await;
    load.served("the load served after PostgreSQL's restart", 50).await;
    let tally = load.phase();
    measured.note(format!(
        "PostgreSQL restarted: {} of {} requests failed",
        tally.failed.len(),
        tally.ok + tally.failed.len() as u64
    ));
    assert!(tally.failed.is_empty(), "requests failed while PostgreSQL restarted:\n{}", failures(&tally, t0));
    assert_eq!(stack.haproxy_states(&stats).await.values().filter(|s| *s == "UP").count(), 2);
    // And the API uses it again without a restart.
    until("getRecordings after PostgreSQL's restart", FAULT_DEADLINE, || success(&lb, "getRecordings", &[])).await;

    // 4. The leader poller cut off the network: the standby takes over
    // within two intervals; back on the network the old leader notices it
    // lost the lease and writes nothing (with SERVER_UNHEALTHY_THRESHOLD=1
    // a stale "unreachable" would take the BBB server offline and fail the
    // load's creates).
    let (leader, standby) = until("one poller leading", DEADLINE, || async {
        let a = stack.poller_metric(&pollers[0], "scalelite_poller_leader").await;
        let b = stack.poller_metric(&pollers[1], "scalelite_poller_leader").await;
        match (a, b) {
            (1.0, 0.0) => Ok((&pollers[0], &pollers[1])),
            (0.0, 1.0) => Ok((&pollers[1], &pollers[0])),
            other => Err(format!("leader gauges {other:?}")),
        }
    })
    .await;
    // Offline transitions of the leader so far (none: the server is up).
    let old_offline = stack.poller_metric(leader, "scalelite_poller_transitions_total{transition=\"offline\"}").await;
    let cut = SystemTime::now();
    let t0 = Instant::now();
    docker(&["network", "disconnect", &stack.network(), leader]).await;
    let took_over = until("the standby leading", FAULT_DEADLINE, || async {
        match logged_at(standby, cut, "holding the poller lease").await {
            Some(at) => Ok(at),
            None => Err("not yet".to_owned()),
        }
    })
    .await;
    let takeover = took_over.duration_since(cut).unwrap_or_default();
    let standby_rounds = stack.poller_metric(standby, "scalelite_poller_rounds_total").await;
    until("the standby polling", FAULT_DEADLINE, || async {
        let rounds = stack.poller_metric(standby, "scalelite_poller_rounds_total").await;
        if rounds >= standby_rounds + 2.0 { Ok(()) } else { Err(format!("{rounds} rounds")) }
    })
    .await;
    let back = SystemTime::now();
    docker(&["network", "connect", &stack.network(), leader]).await;
    until("the old leader noticing it lost the lease", FAULT_DEADLINE, || async {
        match logged_at(leader, back, "lost the poller lease").await {
            Some(_) => Ok(()),
            None => Err("not yet".to_owned()),
        }
    })
    .await;
    let old_rounds = stack.poller_metric(leader, "scalelite_poller_rounds_total").await;
    let standby_rounds = stack.poller_metric(standby, "scalelite_poller_rounds_total").await;
    until("two more rounds of the new leader", FAULT_DEADLINE, || async {
        let rounds = stack.poller_metric(standby, "scalelite_poller_rounds_total").await;
        if rounds >= standby_rounds + 2.0 { Ok(()) } else { Err(format!("{rounds} rounds")) }
    })
    .await;
    let tally = load.phase();
    measured.note(format!(
        "leader poller cut off: the standby took the lease after {} (POLL_INTERVAL {POLL_INTERVAL} s); {} of {} \
         requests failed",
        secs(takeover),
        tally.failed.len(),
        tally.ok + tally.failed.len() as u64
    ));
    assert!(
        takeover <= Duration::from_secs(2 * POLL_INTERVAL + 1),
        "the standby took over after {takeover:?}: more than two intervals (and a second of measuring)"
    );
    assert_eq!(stack.poller_metric(leader, "scalelite_poller_leader").await, 0.0, "the old leader stood down");
    assert_eq!(stack.poller_metric(standby, "scalelite_poller_leader").await, 1.0, "the new leader leads");
    assert_eq!(
        stack.poller_metric(leader, "scalelite_poller_rounds_total").await,
        old_rounds,
        "the old leader finished no round after it came back"
    );
    assert_eq!(
        stack.poller_metric(leader, "scalelite_poller_transitions_total{transition=\"offline\"}").await,
        old_offline,
        "the old leader took no server offline after it came back"
    );
    assert!(tally.failed.is_empty(), "requests failed while a poller was cut off:\n{}", failures(&tally, t0));
    let servers = docker(&["exec", &api[0], "scalelite-admin", "servers", "list"]).await;
    assert!(servers.contains("online") && !servers.contains("offline"), "{servers}");

    // 5. The Redis master killed: Sentinel promotes the replica; the APIs
    // and pollers follow by themselves; no meeting is lost.
    let master = stack.redis_master(&sentinel).await;
    assert_eq!(master, "redis-1", "the first master");
    let before = load.created();
    let killed = SystemTime::now();
    let t0 = Instant::now();
    docker(&["kill", &container("redis-1").await]).await;
    until("Sentinel naming a new master", FAULT_DEADLINE, || async {
        let master = stack.redis_master(&sentinel).await;
        if master == "redis-2" { Ok(()) } else { Err(master) }
    })
    .await;
    // When the sentinels announced it (their log), not when this test saw it.
    let switched = logged_at(&sentinel, killed, "+switch-master").await.expect("the sentinel logged +switch-master");
    let promoted = switched.duration_since(killed).unwrap_or_default();
    for server in ["scalelite-api-1", "scalelite-api-2"] {
        stack.await_haproxy(&stats, server, true).await;
    }
    load.served("the load served by the new master", 100).await;
    let tally = load.phase();
    let recovered = tally.failed.last().map_or(Duration::ZERO, |(at, _)| at.saturating_duration_since(t0));
    measured.note(format!(
        "Redis master killed: Sentinel promoted the replica after {}; requests failed for {} after the kill: {} of {} \
         ({})",
        secs(promoted),
        secs(recovered),
        tally.failed.len(),
        tally.ok + tally.failed.len() as u64,
        kinds(&tally)
    ));
    // The pollers follow: the leader goes on polling on the new master.
    let leading = [
        stack.poller_metric(&pollers[0], "scalelite_poller_rounds_total").await,
        stack.poller_metric(&pollers[1], "scalelite_poller_rounds_total").await,
    ];
    until("the pollers polling after the failover", FAULT_DEADLINE, || async {
        let now = [
            stack.poller_metric(&pollers[0], "scalelite_poller_rounds_total").await,
            stack.poller_metric(&pollers[1], "scalelite_poller_rounds_total").await,
        ];
        if now[0] + now[1] >= leading[0] + leading[1] + 2.0 { Ok(()) } else { Err(format!("{now:?}")) }
    })
    .await;
    // The old master comes back as a replica of the new one.
    docker(&["start", &container("redis-1").await]).await;
    until("the old master replicating the new one", 2 * FAULT_DEADLINE, || async {
        let info = docker(&["exec", &container("redis-1").await, "redis-cli", "INFO", "replication"]).await;
        if info.contains("role:slave") && info.contains("master_host:redis-2") && info.contains("master_link_status:up")
        {
            Ok(())
        } else {
            Err(info)
        }
    })
    .await;
    let load_created = load.created();
    load.stop().await;
    // No meeting lost: every meeting created (before and during the
    // failover) is still known and reaches its server.
    assert!(load_created.len() >= before.len());
    for meeting in &load_created {
        let info = lb.get("getMeetingInfo", &[("meetingID", meeting)]).await;
        assert!(info.is_success(), "{meeting} lost after the failover: {}", info.body);
    }
    measured
        .note(format!("no meeting lost: {} meetings created under load all answer getMeetingInfo", load_created.len()));

    // 6. A BBB server container registers itself at start
    // (deploy/bbb-register.sh enable) and is cordoned at stop (its
    // SIGTERM runs bbb-register.sh cordon).
    let management = ApiClient::new(format!("{origin}/scalelite/api"), SECRET).algorithm(Algo::Sha256);
    let bbb_url = "http://bbb:8090/bigbluebutton/api";
    let server_state = || async {
        let reply = management.try_get("getServers", &[]).await.map_err(|e| e.to_string())?;
        let servers: serde_json::Value =
            serde_json::from_str(&reply.body).map_err(|e| format!("{e}: {}", reply.body))?;
        let server = servers.as_array().into_iter().flatten().find(|s| s["url"] == bbb_url).cloned();
        Ok::<_, String>(server.map(|s| {
            (s["state"].as_str().unwrap_or_default().to_owned(), s["online"].as_str().unwrap_or_default().to_owned())
        }))
    };
    stack.compose(&["up", "-d", "--no-build", "bbb"], UP_DEADLINE).await;
    until("the BBB container registered, enabled and online", FAULT_DEADLINE, || async {
        match server_state().await? {
            Some((state, online)) if state == "enabled" && online == "online" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let bbb_container = stack.container("bbb").await;
    stack.compose(&["stop", "bbb"], DEADLINE).await;
    let state = server_state().await.unwrap();
    assert_eq!(state.as_ref().map(|(s, _)| s.as_str()), Some("cordoned"), "the stopped BBB container's server");
    let exit = docker(&["inspect", "--format", "{{.State.ExitCode}}", &bbb_container]).await;
    assert_eq!(exit.trim(), "0", "the BBB container stopped cleanly");
    let logs = run("docker", &["logs", &bbb_container], &[], &[], DEADLINE).await;
    assert!(logs.contains("bbb-register: added") && logs.contains("bbb-register: cordoned"), "{logs}");
    // Started again (a scale-out, a replaced task): enabled again, the
    // same server.
    stack.compose(&["start", "bbb"], DEADLINE).await;
    until("the BBB container enabled again", FAULT_DEADLINE, || async {
        match server_state().await? {
            Some((state, _)) if state == "enabled" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let reply = management.get("getServers", &[]).await;
    assert_eq!(reply.body.matches(bbb_url).count(), 1, "one server for the container: {}", reply.body);

    eprintln!("==> measured (docs/DEPLOYMENT.md):\n{}", measured.0.join("\n"));
}
