//! Scale-out mode: API replicas sharing one store, restarts of Redis and
//! PostgreSQL under load, and graceful shutdown. An outage costs failed
//! requests only while the server is down (each failing within the
//! configured timeout, as a BBB error), never a stuck process or lost state.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scalelite_poller::PollerMetrics;
use scalelite_store::recordings::{ImportPolicy, ImportedFormat, RecordingImport};
use scalelite_tests::{Mode, TestApp, eventually_with, server_id};

use crate::support::{create, second_api};

/// `REDIS_TIMEOUT` of these tests.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);
/// How long any one request may take, outage or not (the store's timeout
/// plus scheduling slack on a busy machine).
const MAX_LATENCY: Duration = Duration::from_secs(4);

/// One request of the load as the front-end saw it.
#[derive(Debug)]
struct Sample {
    sent: Instant,
    took: Duration,
    /// `Ok(())`, or what went wrong.
    outcome: Result<(), String>,
}

/// Workers sending requests back to back until stopped.
struct Load {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: Arc<AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts `workers` loops calling `request(worker, n)`; a request answers
    /// `Ok(true)` on success, `Ok(false)` for the expected outage error, and
    /// `Err` for anything else (a wrong reply, a transport error, a hang).
    fn start<F, Fut>(workers: usize, request: F) -> Self
    where
        F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<bool, String>> + Send + 'static,
    {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let request = Arc::new(request);
        let workers = (0..workers)
            .map(|worker| {
                let (samples, stop, request) = (Arc::clone(&samples), Arc::clone(&stop), Arc::clone(&request));
                tokio::spawn(async move {
                    let mut n = 0;
                    while !stop.load(Ordering::SeqCst) {
                        n += 1;
                        let sent = Instant::now();
                        let outcome = match request(worker, n).await {
                            Ok(true) => Ok(()),
                            Ok(false) => Err("outage error".to_owned()),
                            Err(unexpected) => Err(format!("UNEXPECTED: {unexpected}")),
                        };
                        samples.lock().unwrap().push(Sample { sent, took: sent.elapsed(), outcome });
                    }
                })
            })
            .collect();
        Self { samples, stop, workers }
    }

    fn count(&self, keep: impl Fn(&Sample) -> bool) -> usize {
        self.samples.lock().unwrap().iter().filter(|s| keep(s)).count()
    }

    /// Waits until `n` requests sent after `since` succeeded.
    async fn await_successes_after(&self, since: Instant, n: usize, what: &str) {
        eventually_with(Duration::from_secs(10), what, || async {
            self.count(|s| s.sent >= since && s.outcome.is_ok()) >= n
        })
        .await;
    }

    /// Waits until a request sent after `since` failed.
    async fn await_failure_after(&self, since: Instant) {
        eventually_with(Duration::from_secs(10), "a request fails during the outage", || async {
            self.count(|s| s.sent >= since && s.outcome.is_err()) > 0
        })
        .await;
    }

    /// Stops the workers and returns every sample.
    async fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        for worker in self.workers {
            worker.await.unwrap();
        }
        std::mem::take(&mut *self.samples.lock().unwrap())
    }
}

/// The checks every outage test makes: no request took longer than
/// [`MAX_LATENCY`], none failed in an unexpected way, and only requests in
/// flight between `down` and `up` failed.
#[track_caller]
fn assert_outage_only_while_down(samples: &[Sample], down: Instant, up: Instant) {
    let slowest = samples.iter().map(|s| s.took).max().unwrap();
    assert!(slowest < MAX_LATENCY, "a request took {slowest:?}");
    let failed: Vec<&Sample> = samples.iter().filter(|s| s.outcome.is_err()).collect();
    assert!(!failed.is_empty(), "the outage went unnoticed");
    for sample in &failed {
        let ended = sample.sent + sample.took;
        assert!(!sample.outcome.as_ref().unwrap_err().starts_with("UNEXPECTED"), "{sample:?}");
        assert!(
            ended >= down && sample.sent < up,
            "failed outside the outage: {sample:?} (down..up = {:?})",
            up - down
        );
    }
    let after = samples.iter().filter(|s| s.sent >= up).count();
    assert!(after > 0, "no request after the restart");
}

fn recording(record_id: &str) -> RecordingImport {
    RecordingImport {
        record_id: record_id.into(),
        meeting_id: "lecture".into(),
        name: Some("Lecture".into()),
        published: Some(true),
        participants: Some(3),
        state: Some("published".into()),
        start_ms: Some(1_700_000_000_000),
        end_ms: Some(1_700_000_600_000),
        metadata: vec![],
        formats: vec![ImportedFormat {
            format: "presentation".into(),
            url: format!("/playback/presentation/2.3/{record_id}"),
            length: Some(10),
            thumbnails: vec![],
        }],
    }
}

#[tokio::test]
async fn api_replicas_share_meetings_and_one_can_go_away() {
    let app = TestApp::builder().servers(2).start().await;
    let (b, stop_b) = second_api(&app).await;
    let a = app.client();
    // Created through A: B routes its joins to the same server, and lists it.
    create(&app, "shared").await;
    let on = app.placed_on("shared").await.unwrap();
    let join = b.get("join", &[("meetingID", "shared"), ("fullName", "Ada")]).await;
    assert_eq!(join.status, 302, "{}", join.body);
    assert!(join.location.unwrap().starts_with(&app.fleet[on].url()));
    // Concurrent creates of one meeting through both replicas agree on one server.
    let (x, y) = tokio::join!(
        a.get("create", &[("meetingID", "race"), ("name", "Race")]),
        b.get("create", &[("meetingID", "race"), ("name", "Race")]),
    );
    assert!(x.is_success() && y.is_success(), "{}\n{}", x.body, y.body);
    assert_eq!(x.text_at("internalMeetingID"), y.text_at("internalMeetingID"));
    assert_eq!(app.fleet.iter().filter(|s| s.has_meeting("race")).count(), 1);
    // Ended through B: A sees it gone. Then B goes away; A carries on.
    assert!(b.get("end", &[("meetingID", "shared")]).await.is_success());
    let running = a.get("isMeetingRunning", &[("meetingID", "shared")]).await;
    assert_eq!(running.text_at("running").as_deref(), Some("false"));
    let _ = stop_b.send(());
    create(&app, "after-b").await;
}

#[tokio::test]
async fn shutdown_finishes_requests_in_flight_and_refuses_new_connections() {
    let mut app = TestApp::builder().servers(1).env("RESPONSE_TIMEOUT", "10").start().await;
    app.fleet[0].set_mode(Mode::Hung);
    let in_flight = tokio::spawn({
        let client = app.client();
        async move { client.get("create", &[("meetingID", "late"), ("name", "Late")]).await }
    });
    eventually_with(Duration::from_secs(5), "the create reaches BBB", || async {
        app.fleet[0].call_count("create") == 1
    })
    .await;

    app.begin_shutdown();
    eventually_with(Duration::from_secs(5), "new connections are refused", || async {
        tokio::net::TcpStream::connect(app.addr).await.is_err()
    })
    .await;
    assert!(!app.has_stopped(), "the API stopped with a request in flight");
    assert!(!in_flight.is_finished());

    // BBB answers: the request completes with its real reply, then the API stops.
    app.fleet[0].set_mode(Mode::Normal);
    let reply = tokio::time::timeout(Duration::from_secs(5), in_flight).await.expect("the reply").unwrap();
    assert!(reply.is_success(), "{}", reply.body);
    assert_eq!(reply.text_at("meetingID").as_deref(), Some("late"));
    assert_eq!(app.placed_on("late").await, Some(0));
    eventually_with(Duration::from_secs(5), "the API stops once drained", || async { app.has_stopped() }).await;
}

/// Restarts, hangs and URLs of Redis and PostgreSQL themselves.
mod redis_only {
    use super::*;
    use scalelite_tests::TestBackend;

    #[tokio::test]
    async fn the_api_rides_out_a_redis_restart_under_load() {
        let app = TestApp::builder()
            .backend(TestBackend::Redis)
            .persistent_redis()
            .env("REDIS_TIMEOUT", format!("{}", REDIS_TIMEOUT.as_secs_f64()))
            .start()
            .await;
        create(&app, "before").await;
        let client = app.client().timeout(Duration::from_secs(10));
        let created = Arc::new(Mutex::new(Vec::<String>::new()));
        let load = {
            let created = Arc::clone(&created);
            Load::start(4, move |worker, n| {
                let (client, created) = (client.clone(), Arc::clone(&created));
                async move {
                    let id = format!("room-{worker}-{n}");
                    let reply = if n % 2 == 0 {
                        client.try_get("create", &[("meetingID", &id), ("name", "Room")]).await
                    } else {
                        client.try_get("join", &[("meetingID", "before"), ("fullName", "Ada")]).await
                    }
                    .map_err(|e| format!("{e:?}"))?;
                    if reply.is_success() {
                        created.lock().unwrap().push(id);
                        Ok(true)
                    } else if reply.status == 302 {
                        Ok(true)
                    } else if reply.message_key().as_deref() == Some("internalError") {
                        Ok(false)
                    } else {
                        Err(format!("{} {}", reply.status, reply.body))
                    }
                }
            })
        };
        let started = Instant::now();
        load.await_successes_after(started, 20, "the load runs").await;

        let down = Instant::now();
        app.redis().stop().await;
        load.await_failure_after(down).await;
        app.redis().start_again().await;
        let up = Instant::now();
        load.await_successes_after(up, 20, "requests succeed again after the restart").await;
        let samples = load.finish().await;
        assert_outage_only_while_down(&samples, down, up);

        // Nothing was lost: every meeting created (before, during or after the
        // outage) is still known, and the first one still routes joins.
        let created = created.lock().unwrap().clone();
        assert!(created.len() >= 10, "{created:?}");
        for id in &created {
            assert!(app.meeting_record(id).await.contains_key("server_id"), "{id} was lost");
        }
        let join = app.client().get("join", &[("meetingID", "before"), ("fullName", "Grace")]).await;
        assert_eq!(join.status, 302, "{}", join.body);
        assert_eq!(app.client().raw_get("/health_check").await.body, "success");
    }

    #[tokio::test]
    async fn a_restart_while_idle_costs_no_request() {
        let app =
            TestApp::builder().backend(TestBackend::Redis).servers(1).persistent_redis().recordings().start().await;
        let record_id = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c-1700000000000";
        app.recording_store().import_recording(&recording(record_id), ImportPolicy::default()).await.unwrap();
        create(&app, "lecture").await;
        let recordings = app.client().get("getRecordings", &[("meetingID", "lecture")]).await;
        assert_eq!(recordings.text_at("recordings/recording/recordID").as_deref(), Some(record_id));

        // Both servers restart while nobody calls: the connections the API
        // holds are dead, yet the next calls succeed at the first attempt.
        app.redis().stop().await;
        app.pg().stop().await;
        app.redis().start_again().await;
        app.pg().start_again().await;
        let join = app.client().get("join", &[("meetingID", "lecture"), ("fullName", "Ada")]).await;
        assert_eq!(join.status, 302, "{}", join.body);
        let recordings = app.client().get("getRecordings", &[("meetingID", "lecture")]).await;
        assert_eq!(
            recordings.text_at("recordings/recording/recordID").as_deref(),
            Some(record_id),
            "{}",
            recordings.body
        );
    }

    #[tokio::test]
    async fn a_hung_redis_costs_each_call_at_most_redis_timeout() {
        let app = TestApp::builder().backend(TestBackend::Redis).env("REDIS_TIMEOUT", "0.5").start().await;
        assert!(app.client().get("isMeetingRunning", &[("meetingID", "m")]).await.is_success());
        // Redis keeps its connections but answers nothing for 2 s: as a hung
        // server or a black-holed network looks to a client.
        app.redis().cmd(&["CLIENT", "PAUSE", "2000", "ALL"]).await;
        let paused = Instant::now();
        let sent = Instant::now();
        let reply = app.client().get("isMeetingRunning", &[("meetingID", "m")]).await;
        let took = sent.elapsed();
        assert_eq!(reply.message_key().as_deref(), Some("internalError"), "{}", reply.body);
        assert!(took >= Duration::from_millis(450) && took < Duration::from_millis(1500), "took {took:?}");
        // Once Redis answers again, so does the API, on a new connection.
        eventually_with(Duration::from_secs(5), "the API answers again", || async {
            app.client().get("isMeetingRunning", &[("meetingID", "m")]).await.is_success()
        })
        .await;
        assert!(paused.elapsed() < Duration::from_secs(4), "recovery took {:?}", paused.elapsed());
    }

    #[tokio::test]
    async fn credentials_and_database_in_redis_url_survive_reconnects() {
        use scalelite_store::Store as _;
        let redis = scalelite_tests::TestRedis::start().await;
        let port = redis.port();
        let acl = ["ACL", "SETUSER", "app", "on", ">s3cr@t", "~*", "&*", "+@all"];
        assert_eq!(redis.cmd(&acl).await.as_str(), Some("OK"));
        let options = scalelite_store::RedisOptions { timeout: REDIS_TIMEOUT, ..Default::default() };
        let url = format!("redis://app:s3cr%40t@127.0.0.1:{port}/3");
        let store = scalelite_store::RedisStore::open_with(&url, "scalelite", options.clone()).unwrap();
        store.health_check().await.unwrap();
        let clients = redis.cmd(&["CLIENT", "LIST"]).await;
        assert!(clients.as_str().unwrap().contains("user=app"), "{clients:?}");
        // Killing the store's connection makes it reconnect, authenticated, to
        // the same database. The call right after the kill may still find the
        // dead connection (the kill races the store's I/O task); the next one
        // reconnects.
        redis.cmd(&["CLIENT", "KILL", "USER", "app"]).await;
        if let Err(error) = store.health_check().await {
            assert!(error.to_string().contains("broken pipe"), "{error}");
        }
        store.health_check().await.unwrap();
        let keyspace = redis.cmd(&["INFO", "keyspace"]).await;
        assert!(keyspace.as_str().unwrap().contains("db3:keys=1"), "{keyspace:?}");
        let wrong =
            scalelite_store::RedisStore::open_with(&format!("redis://app:nope@127.0.0.1:{port}/3"), "s", options);
        assert!(wrong.unwrap().health_check().await.is_err());
    }

    #[tokio::test]
    async fn get_recordings_rides_out_a_postgres_restart_under_load() {
        let app = TestApp::builder().backend(TestBackend::Redis).servers(1).recordings().start().await;
        let record_id = "a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e-1700000000000";
        app.recording_store().import_recording(&recording(record_id), ImportPolicy::default()).await.unwrap();
        let client = app.client().timeout(Duration::from_secs(10));
        let load = Load::start(3, move |_, _| {
            let client = client.clone();
            async move {
                let reply =
                    client.try_get("getRecordings", &[("meetingID", "lecture")]).await.map_err(|e| format!("{e:?}"))?;
                if reply.is_success() {
                    let listed = reply.text_at("recordings/recording/recordID");
                    return if listed.as_deref() == Some(record_id) { Ok(true) } else { Err(reply.body) };
                }
                match reply.message_key().as_deref() {
                    Some("internalError") => Ok(false),
                    _ => Err(format!("{} {}", reply.status, reply.body)),
                }
            }
        });
        let started = Instant::now();
        load.await_successes_after(started, 10, "the load runs").await;

        let down = Instant::now();
        app.pg().stop().await;
        load.await_failure_after(down).await;
        app.pg().start_again().await;
        let up = Instant::now();
        load.await_successes_after(up, 10, "getRecordings answers again after the restart").await;
        let samples = load.finish().await;
        assert_outage_only_while_down(&samples, down, up);
        assert_eq!(app.client().raw_get("/health_check").await.body, "success");
    }

    #[tokio::test]
    async fn the_poller_keeps_polling_across_a_redis_restart() {
        let app = TestApp::builder()
            .backend(TestBackend::Redis)
            .servers(1)
            .persistent_redis()
            .env("POLL_INTERVAL", "0.2")
            .env("REDIS_TIMEOUT", "0.5")
            .start()
            .await;
        create(&app, "lecture").await;
        let metrics = Arc::new(PollerMetrics::new());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let poller = tokio::spawn(app.poller(Arc::clone(&metrics)).run(async move {
            let _ = stopped.await;
        }));
        eventually_with(Duration::from_secs(5), "the poller polls", || async { metrics.rounds.get() >= 2 }).await;

        app.redis().stop().await;
        assert!(app.fleet[0].set_counts("lecture", 42, 2, 1));
        app.redis().start_again().await;
        let rounds = metrics.rounds.get();
        // The same poller, never restarted, takes the lease again and writes
        // what it sees: the users who joined during the outage.
        eventually_with(Duration::from_secs(10), "the poller writes after the restart", || async {
            app.server_record(&server_id(0)).await.get("users").map(String::as_str) == Some("42")
        })
        .await;
        // That round counts once it has finished (clean-up, drains).
        eventually_with(Duration::from_secs(10), "the round finishes", || async { metrics.rounds.get() > rounds })
            .await;
        assert_eq!(metrics.leader.get(), 1);
        assert!(!poller.is_finished());
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(5), poller).await.expect("the poller stops").unwrap();
    }
}
