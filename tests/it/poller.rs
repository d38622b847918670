//! The poller on the app's store and the fake fleet: health hysteresis,
//! load and statistics, draining, meeting clean-up, leader election.

use std::sync::Arc;
use std::time::{Duration, Instant};

use scalelite_poller::PollerMetrics;
use scalelite_tests::{MeetingSeed, Mode, SeedServer, TestApp, eventually, server_id};

use crate::support::{assert_failed, create, deeply_nested_get_meetings, voice_bridge_is_free};

#[tokio::test]
async fn a_dead_server_goes_offline_after_the_threshold_and_comes_back() {
    // Re-homing off: joins of its meeting wait for it (tests/it/rehome.rs
    // has the default, where the next join moves the meeting).
    let app = TestApp::builder().env("RESPONSE_TIMEOUT", "0.5").env("REHOME_MEETINGS", "false").start().await;
    create(&app, "live").await;
    let on = app.placed_on("live").await.unwrap();
    let dead = server_id(on);
    app.fleet[on].set_mode(Mode::Down);

    // First failure: still online (SERVER_UNHEALTHY_THRESHOLD is 2).
    let report = app.poll().await;
    assert_eq!(report.reachable, 2);
    assert!(report.transitions.is_empty());
    let server = app.server(&dead).await.unwrap();
    assert!(server.online);
    assert!(server.load.is_some());

    // Second failure: offline, out of the placement pool, stats zeroed.
    let report = app.poll().await;
    assert_eq!(report.transitions.len(), 1);
    let server = app.server(&dead).await.unwrap();
    assert_eq!((server.online, server.stats.meetings), (false, Some(0)));
    assert_eq!(app.load(&dead).await, None);
    // New meetings avoid it; joins to its meeting are refused, nobody is sent there.
    for i in 0..4 {
        create(&app, &format!("new-{i}")).await;
        assert_ne!(app.placed_on(&format!("new-{i}")).await, Some(on));
    }
    let reply = app.client().get("join", &[("meetingID", "live"), ("fullName", "A")]).await;
    assert_failed(&reply, "serverUnavailable");
    // Its meetings were not ended (a blip must not kill classes): no end call,
    // the mapping stays for when it returns.
    assert_eq!(app.fleet[on].call_count("end"), 0);
    assert_eq!(app.meeting("live").await.unwrap().server_id.as_str(), dead);

    // Recovery: online again after one success, back in the pool with its load.
    app.fleet[on].set_mode(Mode::Normal);
    let report = app.poll().await;
    assert_eq!(
        report.transitions,
        vec![(scalelite_core::ServerId::from(dead.as_str()), scalelite_store::Transition::CameOnline)]
    );
    assert!(app.server(&dead).await.unwrap().online);
    assert!(app.load(&dead).await.is_some());
    let reply = app.client().get("join", &[("meetingID", "live"), ("fullName", "A")]).await;
    assert_eq!(reply.status, 302);
}

#[tokio::test]
async fn a_server_answering_xml_nested_a_million_deep_goes_offline_like_one_answering_garbage() {
    let app = TestApp::start().await;
    create(&app, "live").await;
    let on = app.placed_on("live").await.unwrap();
    let hostile = server_id(on);
    app.fleet[on].set_raw_reply("getMeetings", deeply_nested_get_meetings(1_000_000));

    // The poller survives the reply; first failure: still online.
    let report = app.poll().await;
    assert_eq!(report.reachable, 2);
    assert!(report.transitions.is_empty());
    assert!(app.server(&hostile).await.unwrap().online);

    // Second failure: offline, as for any reply that is not a BBB document.
    let report = app.poll().await;
    assert_eq!(
        report.transitions,
        vec![(scalelite_core::ServerId::from(hostile.as_str()), scalelite_store::Transition::WentOffline)]
    );
    let server = app.server(&hostile).await.unwrap();
    assert_eq!((server.online, server.stats.meetings), (false, Some(0)));
    // The API was never at risk and places new meetings elsewhere.
    create(&app, "next").await;
    assert_ne!(app.placed_on("next").await, Some(on));

    // Answering like BBB again brings it back.
    app.fleet[on].clear_raw_replies();
    let report = app.poll().await;
    assert_eq!(report.reachable, 3);
    assert!(app.server(&hostile).await.unwrap().online);
}

#[tokio::test]
async fn load_statistics_and_version_follow_scalelite() {
    let app = TestApp::builder().servers(1).unseeded().start().await;
    let record = SeedServer::enabled("s1", app.fleet[0].url(), app.fleet[0].secret()).multiplier(Some("2.0"));
    app.seed_server(&record).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    app.fleet[0].seed_meeting(MeetingSeed::new("young").create_time(now - 60_000).counts(3, 1, 2));
    app.fleet[0].seed_meeting(MeetingSeed::new("old").create_time(now - 3_600_000).counts(30, 2, 0));
    app.fleet[0].set_bbb_version("3.0.9");
    app.poll().await;
    let server = app.server("s1").await.unwrap();
    // young: max(3 + 1, 15) = 15; old: 30 + 2 = 32; × 2.0.
    assert_eq!(server.load, Some(94.0));
    assert_eq!(server.stats.meetings, Some(2));
    assert_eq!(server.stats.users, Some(33), "participantCount already counts moderators in BBB");
    assert_eq!(server.stats.largest_meeting, Some(30));
    assert_eq!(server.stats.videos, Some(2));
    assert_eq!(server.bbb_version.as_deref(), Some("3.0.9"));
    assert_eq!(server.load_multiplier.as_deref(), Some("2.0"), "the multiplier is kept as written");
}

#[tokio::test]
async fn a_cordoned_server_disables_itself_once_empty() {
    let app = TestApp::builder().servers(1).unseeded().start().await;
    let record =
        SeedServer::enabled("s1", app.fleet[0].url(), app.fleet[0].secret()).state("cordoned").load(Some(10.0));
    app.seed_server(&record).await;
    app.fleet[0].seed_meeting(MeetingSeed::new("last").counts(2, 1, 0));
    app.poll().await;
    let server = app.server("s1").await.unwrap();
    // The poll wrote the load where a cordoned server keeps it: max(2 + 1, 15).
    assert_eq!((server.state.as_deref(), server.load), (Some("cordoned"), Some(15.0)));
    app.fleet[0].remove_meeting("last");
    let report = app.poll().await;
    assert_eq!(report.transitions[0].1, scalelite_store::Transition::Drained);
    let server = app.server("s1").await.unwrap();
    assert_eq!((server.state.as_deref(), server.load), (Some("disabled"), None));
}

#[tokio::test]
async fn a_hung_server_does_not_delay_the_round() {
    let app = TestApp::builder().servers(6).env("RESPONSE_TIMEOUT", "0.5").env("POLLER_THREADS", "2").start().await;
    app.fleet[0].set_mode(Mode::Hung);
    app.fleet[1].set_mode(Mode::Slow(Duration::from_millis(200)));
    let started = Instant::now();
    let report = app.poll().await;
    // Bounded by the timeout, not by the number of servers behind it.
    assert!(started.elapsed() < Duration::from_millis(1500), "round took {:?}", started.elapsed());
    assert_eq!(report.reachable, 5);
    app.fleet[0].set_mode(Mode::Normal);
}

#[tokio::test]
async fn ended_meetings_are_removed_but_just_created_ones_never() {
    let app = TestApp::builder().servers(1).start().await;
    let an_hour = Duration::from_secs(3600);
    // Ended on the server an hour ago.
    app.seed_meeting("ended", "bbb-1", "pw", "111111111").await;
    app.age_meeting("ended", an_hour).await;
    // Created a moment ago: its create may still be on the way to BBB (#320).
    app.seed_meeting("just-created", "bbb-1", "pw", "222222222").await;
    // Running.
    create(&app, "running").await;
    app.age_meeting("running", an_hour).await;
    // On a server that no longer exists.
    app.seed_meeting("orphan", "deleted", "pw", "333333333").await;
    app.age_meeting("orphan", an_hour).await;
    let store = app.store().as_ref();
    assert!(!voice_bridge_is_free(store, "111111111").await);

    let report = app.poll().await;
    assert_eq!(report.meetings_checked, 1);
    assert_eq!(report.meetings_removed, 2);
    assert_eq!(app.meeting("ended").await, None);
    assert_eq!(app.meeting("orphan").await, None);
    assert!(app.meeting("just-created").await.is_some());
    assert!(app.meeting("running").await.is_some());
    assert_eq!(app.fleet[0].calls_to("getMeetingInfo").len(), 1, "only the unlisted, old record is confirmed");
    // Their dial-in numbers are released.
    assert!(voice_bridge_is_free(store, "111111111").await);
    assert!(voice_bridge_is_free(store, "333333333").await);
}

#[tokio::test]
async fn leftovers_of_expired_records_are_pruned() {
    let app = TestApp::builder().servers(1).start().await;
    // What TTL expiry leaves behind: a `meetings` entry and a voice bridge.
    app.seed_meeting("expired", "bbb-1", "pw", "444444444").await;
    app.expire_meeting("expired").await;
    assert_eq!(app.meeting("expired").await, None);
    let store = app.store().as_ref();
    assert!(!voice_bridge_is_free(store, "444444444").await, "an expired meeting's voice bridge is held");
    let metrics = Arc::new(PollerMetrics::new());
    let poller = app.poller(Arc::clone(&metrics));
    let first = poller.poll_once().await.unwrap().unwrap();
    assert_eq!(first.pruned.stale_members, 1);
    // Voice bridges only go once they were orphans in an earlier round too,
    // because Ruby writes a voice bridge just before its meeting record.
    assert_eq!(first.pruned.orphan_voice_bridges, 0);
    assert!(!voice_bridge_is_free(store, "444444444").await);
    let lease = scalelite_store::Lease::poller("test");
    assert!(store.acquire_lease(&lease, Duration::from_secs(5)).await.unwrap());
    let (pruned, _) = store.prune(&["444444444".to_owned()]).await.unwrap();
    assert_eq!(pruned.orphan_voice_bridges, 1);
    assert!(voice_bridge_is_free(store, "444444444").await);
}

#[tokio::test]
async fn two_pollers_never_poll_together_and_a_standby_takes_over() {
    let app = TestApp::builder().servers(2).env("POLL_INTERVAL", "0.3").start().await;
    let (metrics_a, metrics_b) = (Arc::new(PollerMetrics::new()), Arc::new(PollerMetrics::new()));
    let (stop_a, stopped_a) = tokio::sync::oneshot::channel::<()>();
    let a = tokio::spawn(app.poller(Arc::clone(&metrics_a)).run(async move {
        let _ = stopped_a.await;
    }));
    // Let A take the lease first.
    eventually(Duration::from_secs(5), || async { metrics_a.rounds.get() > 0 }).await;
    let b = tokio::spawn(app.poller(Arc::clone(&metrics_b)).run(std::future::pending()));
    let rounds_a = metrics_a.rounds.get();
    eventually(Duration::from_secs(5), || async { metrics_a.rounds.get() >= rounds_a + 3 }).await;
    assert_eq!(metrics_b.rounds.get(), 0, "the standby never polls while the leader is alive");
    assert_eq!((metrics_a.leader.get(), metrics_b.leader.get()), (1, 0));

    // The leader dies without releasing the lease: the standby takes over
    // within two intervals (0.6 s), measured generously on a busy machine.
    a.abort();
    drop(stop_a);
    let died = Instant::now();
    eventually(Duration::from_secs(5), || async { metrics_b.rounds.get() > 0 }).await;
    assert!(died.elapsed() < Duration::from_millis(1200), "takeover took {:?}", died.elapsed());
    assert_eq!(metrics_b.leader.get(), 1);
    b.abort();
}

#[tokio::test]
async fn a_graceful_stop_hands_the_lease_over_at_once() {
    let app = TestApp::builder().servers(1).env("POLL_INTERVAL", "2").start().await;
    let (metrics_a, metrics_b) = (Arc::new(PollerMetrics::new()), Arc::new(PollerMetrics::new()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let a = tokio::spawn(app.poller(Arc::clone(&metrics_a)).run(async move {
        let _ = stopped.await;
    }));
    eventually(Duration::from_secs(5), || async { metrics_a.rounds.get() > 0 }).await;
    let b = tokio::spawn(app.poller(Arc::clone(&metrics_b)).run(std::future::pending()));
    let _ = stop.send(());
    a.await.unwrap();
    assert_eq!(metrics_a.leader.get(), 0);
    eventually(Duration::from_secs(3), || async { metrics_b.rounds.get() > 0 }).await;
    b.abort();
}

#[tokio::test]
async fn a_poller_without_the_lease_writes_nothing() {
    use scalelite_store::{Lease, PollResult, PollSave, PollSaved, PollStats};
    let app = TestApp::builder().servers(1).start().await;
    let store = app.store();
    let holder = Lease::poller("holder");
    let intruder = Lease::poller("intruder");
    assert!(store.acquire_lease(&holder, Duration::from_secs(10)).await.unwrap());
    assert!(!store.acquire_lease(&intruder, Duration::from_secs(10)).await.unwrap());
    let save = PollSave {
        server_id: "bbb-1".into(),
        result: PollResult::Reachable { load: 99.0, stats: PollStats::default() },
        bbb_version: Some("x".into()),
        healthy_threshold: 1,
        unhealthy_threshold: 2,
    };
    assert_eq!(store.save_poll(&intruder, &save).await.unwrap(), PollSaved::NotLeader);
    assert_eq!(app.load("bbb-1").await, Some(0.0));
    assert_eq!(app.server("bbb-1").await.unwrap().bbb_version, None);
    assert!(matches!(store.save_poll(&holder, &save).await.unwrap(), PollSaved::Saved { .. }));
    assert_eq!(app.load("bbb-1").await, Some(99.0));
    // Another poller's one-shot round does nothing while the lease is held.
    assert!(app.poller(Arc::new(PollerMetrics::new())).poll_once().await.unwrap().is_none());
}

#[tokio::test]
async fn metrics_describe_the_fleet() {
    let app = TestApp::builder().servers(2).env("RESPONSE_TIMEOUT", "0.5").start().await;
    app.fleet[1].set_mode(Mode::Down);
    let metrics = Arc::new(PollerMetrics::new());
    let poller = app.poller(Arc::clone(&metrics));
    poller.poll_once().await.unwrap().unwrap();
    poller.poll_once().await.unwrap().unwrap();
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    let text = scalelite_telemetry::encode(&registry);
    for line in [
        "scalelite_poller_server_online{server=\"bbb-1\"} 1",
        "scalelite_poller_server_online{server=\"bbb-2\"} 0",
        "scalelite_poller_server_state{server=\"bbb-1\",state=\"enabled\"} 1",
        "scalelite_poller_server_poll_failures_total{server=\"bbb-2\"} 2",
        "scalelite_poller_rounds_total 2",
        "scalelite_poller_transitions_total{transition=\"offline\"} 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // A removed server's series disappear.
    assert!(app.store().delete_server(&"bbb-2".into()).await.unwrap());
    poller.poll_once().await.unwrap().unwrap();
    let text = scalelite_telemetry::encode(&registry);
    assert!(!text.contains("server=\"bbb-2\""), "{text}");
}

/// What the poller writes, on Ruby Scalelite's Redis layout.
mod redis_only {
    use scalelite_tests::{MeetingSeed, Mode, SeedServer, TestApp, TestBackend, server_id};

    #[tokio::test]
    async fn health_counters_live_in_the_bare_id_hash_like_scalelite() {
        let app =
            TestApp::builder().backend(TestBackend::Redis).servers(1).env("RESPONSE_TIMEOUT", "0.5").start().await;
        let id = server_id(0);
        app.fleet[0].set_mode(Mode::Down);
        app.poll().await;
        assert_eq!(app.server_record(&id).await["online"], "true");
        let counters = scalelite_tests::seed::hash(app.redis(), &app.key(&id)).await;
        assert_eq!(counters["unhealthy_counter"], "1", "counters live in the bare-id hash");
        assert!(!app.server_record(&id).await.contains_key("unhealthy_counter"));
        app.poll().await;
        let record = app.server_record(&id).await;
        assert_eq!((record["online"].as_str(), record["meetings"].as_str()), ("false", "0"));
        app.fleet[0].set_mode(Mode::Normal);
    }

    #[tokio::test]
    async fn a_poll_writes_exactly_scalelites_fields() {
        let app = TestApp::builder().backend(TestBackend::Redis).servers(1).unseeded().start().await;
        let record = SeedServer::enabled("s1", app.fleet[0].url(), app.fleet[0].secret()).multiplier(Some("2.0"));
        app.seed_server(&record).await;
        app.fleet[0].seed_meeting(MeetingSeed::new("m").counts(30, 2, 1));
        app.fleet[0].set_bbb_version("3.0.9");
        app.poll().await;
        let server = app.server_record("s1").await;
        assert_eq!((server["meetings"].as_str(), server["users"].as_str()), ("1", "30"));
        assert_eq!((server["largest_meeting"].as_str(), server["videos"].as_str()), ("30", "1"));
        assert_eq!(server["bbb_version"], "3.0.9");
        assert_eq!(app.redis().cmd(&["ZSCORE", &app.key("server_load"), "s1"]).await.as_str(), Some("64"));
        let mut keys: Vec<&str> = server.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "bbb_version",
                "largest_meeting",
                "load_multiplier",
                "meetings",
                "online",
                "secret",
                "state",
                "url",
                "users",
                "videos"
            ]
        );
    }
}
