//! Usage accounting: the poller adds meeting-, participant-minutes and peak
//! participants per tenant (and the pool) per hour; `scalelite-admin usage`
//! reports them; a standby taking over does not count a period twice.
//!
//! The pollers read an injected clock, so every expected value follows from
//! `POLL_INTERVAL` and the clock's steps, not from how fast the test runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use scalelite_poller::metrics::TenantLabel;
use scalelite_poller::{Clock, Poller, PollerMetrics};
use scalelite_store::Tenant;
use scalelite_store::usage::{HOUR_MS, POOL, TenantUsage, UsageQuery, UsageRow, UsageSample};
use scalelite_tests::{MeetingSeed, TestApp, TestAppBuilder};
use serde_json::Value;

use crate::support::admin_with;

/// `POLL_INTERVAL` of these tests, in milliseconds.
const INTERVAL: i64 = 60_000;
/// 2026-12-06T10:00:00Z.
const TEN: i64 = 1_796_551_200_000;
const URL_HOST: &str = "sl.test";

/// A clock the test moves.
#[derive(Clone)]
struct TestClock(Arc<AtomicI64>);

impl TestClock {
    fn at(ms: i64) -> Self {
        Self(Arc::new(AtomicI64::new(ms)))
    }

    fn set(&self, ms: i64) {
        self.0.store(ms, Ordering::SeqCst);
    }

    fn clock(&self) -> Clock {
        let now = Arc::clone(&self.0);
        Clock::new(move || now.load(Ordering::SeqCst))
    }
}

fn builder() -> TestAppBuilder {
    // `recordings()`: the Redis app gets its PostgreSQL, where usage is kept.
    TestApp::builder().servers(2).recordings().env("POLL_INTERVAL", (INTERVAL / 1000).to_string())
}

fn poller(app: &TestApp, clock: &TestClock) -> (Poller, Arc<PollerMetrics>) {
    let metrics = Arc::new(PollerMetrics::new());
    (app.poller(Arc::clone(&metrics)).with_clock(clock.clock()), metrics)
}

/// One round at `at`; panics if another poller holds the lease.
async fn round_at(poller: &Poller, clock: &TestClock, at: i64) {
    clock.set(at);
    poller.poll_once().await.expect("round").expect("the lease was free");
}

/// Sets the participant count of meeting `id` on whichever fake holds it.
fn set_participants(app: &TestApp, id: &str, n: u64) {
    let server = app.fleet.iter().find(|s| s.has_meeting(id)).unwrap_or_else(|| panic!("no fake holds {id}"));
    assert!(server.set_counts(id, n, 0, 0));
}

async fn rows(app: &TestApp, tenant: Option<&str>) -> Vec<UsageRow> {
    let query = UsageQuery { tenant: tenant.map(str::to_owned), ..Default::default() };
    app.usage_store().expect("a usage store").usage(&query).await.unwrap()
}

fn row(tenant: &str, hour_ms: i64, meeting_ms: i64, participant_ms: i64, peak: i64) -> UsageRow {
    UsageRow { tenant: tenant.into(), hour_ms, meeting_ms, participant_ms, peak_participants: peak }
}

async fn create(app: &TestApp, tenant: &str, secret: &str, id: &str) {
    let reply = app
        .client()
        .with_secret(secret)
        .host(format!("{tenant}.{URL_HOST}"))
        .get("create", &[("meetingID", id), ("name", "Room"), ("moderatorPW", "mp"), ("attendeePW", "ap")])
        .await;
    assert_eq!(reply.xml().text_at("returncode").as_deref(), Some("SUCCESS"), "{}", reply.body);
}

#[tokio::test]
async fn rounds_add_minutes_and_peaks_per_tenant_hour_and_the_pool() {
    let app = builder().env("MULTITENANCY_ENABLED", "true").env("URL_HOST", URL_HOST).start().await;
    let a = Tenant::new("a", "secret-a");
    let b = Tenant::new("b", "secret-b");
    app.state.store.create_tenant(&a).await.unwrap();
    app.state.store.create_tenant(&b).await.unwrap();
    let (ida, idb) = (a.id.as_str().to_owned(), b.id.as_str().to_owned());
    create(&app, "a", "secret-a", "a-class").await;
    create(&app, "a", "secret-a", "a-office").await;
    create(&app, "b", "secret-b", "b-class").await;
    set_participants(&app, "a-class", 5);
    set_participants(&app, "a-office", 1);
    set_participants(&app, "b-class", 3);
    // A meeting the balancer has no record of (another front-end on the
    // server) counts without a tenant; a breakout room not at all (its
    // users are the parent's).
    app.fleet[0].seed_meeting(MeetingSeed::new("elsewhere").counts(2, 0, 0));
    app.fleet[1].seed_meeting(MeetingSeed::new("a-class-breakout").breakout_of("a-class-internal").counts(4, 0, 0));

    let clock = TestClock::at(TEN + 58 * 60_000);
    let (poller, metrics) = poller(&app, &clock);
    // 10:58 and 10:59 land in the 10:00 hour, 11:00 in the next.
    round_at(&poller, &clock, TEN + 58 * 60_000).await;
    set_participants(&app, "a-class", 9);
    round_at(&poller, &clock, TEN + 59 * 60_000).await;
    set_participants(&app, "a-class", 4);
    round_at(&poller, &clock, TEN + 60 * 60_000).await;

    let i = INTERVAL;
    let (eleven, none) = (TEN + HOUR_MS, "");
    let mut expected = vec![
        row(none, TEN, 2 * i, 2 * 2 * i, 2),
        row(POOL, TEN, 2 * 4 * i, (11 + 15) * i, 15),
        row(&ida, TEN, 2 * 2 * i, (6 + 10) * i, 10),
        row(&idb, TEN, 2 * i, 2 * 3 * i, 3),
        row(none, eleven, i, 2 * i, 2),
        row(POOL, eleven, 4 * i, 10 * i, 10),
        row(&ida, eleven, 2 * i, 5 * i, 5),
        row(&idb, eleven, i, 3 * i, 3),
    ];
    expected.sort_by(|x, y| (x.hour_ms, &x.tenant).cmp(&(y.hour_ms, &y.tenant)));
    assert_eq!(rows(&app, None).await, expected);

    // The poller's counters carry the same seconds.
    let seconds = |tenant: &str| metrics.usage_participant_seconds.get_or_create(&TenantLabel::of(tenant)).get();
    assert_eq!(seconds(&ida), ((6 + 10 + 5) * i / 1000) as f64);
    assert_eq!(seconds(POOL), ((11 + 15 + 10) * i / 1000) as f64);
    assert_eq!(metrics.usage_participants.get_or_create(&TenantLabel::of("")).get(), 2);

    // The operator's view: by day, tenant a by name, as JSON and CSV.
    let config = &app.state.config;
    let run =
        admin_with(config, &["usage", "--tenant", "a", "--from", "2026-12-06", "--to", "2026-12-06", "--json"], "")
            .await;
    assert_eq!(run.code, 0, "{}", run.err);
    let doc: Value = serde_json::from_str(&run.out).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({"by": "day", "rows": [{
            "period": "2026-12-06", "tenant_id": ida, "tenant": "a",
            "meeting_minutes": 6.0, "participant_minutes": 21.0, "peak_participants": 10,
        }]})
    );
    let run = admin_with(config, &["usage", "--by", "hour", "--csv"], "").await;
    assert_eq!(run.code, 0, "{}", run.err);
    let lines: Vec<&str> = run.out.lines().collect();
    assert_eq!(lines[0], "period,tenant_id,tenant,meeting_minutes,participant_minutes,peak_participants");
    assert!(lines.contains(&"2026-12-06T10:00Z,*,(all),8,26,15"), "{lines:?}");
    assert!(lines.contains(&format!("2026-12-06T11:00Z,{idb},b,1,3,3").as_str()), "{lines:?}");
    assert_eq!(lines.len(), 9);
    // A day without usage, and a date that is not one.
    let run = admin_with(config, &["usage", "--from", "2026-12-07"], "").await;
    assert_eq!((run.code, run.out.trim()), (0, "No usage recorded for this selection"));
    let run = admin_with(config, &["usage", "--from", "monday"], "").await;
    assert_eq!(run.code, 1);
    assert!(run.err.contains("--from monday"), "{}", run.err);
}

#[tokio::test]
async fn a_standby_taking_over_mid_hour_does_not_count_the_same_minutes_twice() {
    let app = builder().start().await;
    app.fleet[0].seed_meeting(MeetingSeed::new("class").counts(10, 0, 0));
    let clock = TestClock::at(TEN);
    let (leader, _) = poller(&app, &clock);
    let (standby, standby_metrics) = poller(&app, &clock);

    // The leader polls 10:00, 10:01, 10:02, then stops.
    for minute in 0..3 {
        round_at(&leader, &clock, TEN + minute * 60_000).await;
    }
    drop(leader);
    // The standby takes over at once and runs a round at 10:02 too (it saw
    // the lease free before the leader's period was over): nothing is
    // credited twice.
    round_at(&standby, &clock, TEN + 2 * 60_000).await;
    assert_eq!(standby_metrics.usage_meeting_seconds.get_or_create(&TenantLabel::of(POOL)).get(), 0.0);
    // A late write of a round sampled before the last accounted one adds nothing either.
    round_at(&standby, &clock, TEN + 60_000).await;
    // Then it polls on: 10:03, 10:04.
    round_at(&standby, &clock, TEN + 3 * 60_000).await;
    round_at(&standby, &clock, TEN + 4 * 60_000).await;
    // The pool went unpolled from 10:04 to 10:30: two intervals at most are
    // counted for the gap.
    round_at(&standby, &clock, TEN + 30 * 60_000).await;

    // 10:00 (first round: one interval), 10:01 … 10:04 (one each), 10:30 (two).
    let minutes = 1 + 4 + 2;
    let i = INTERVAL;
    assert_eq!(
        rows(&app, None).await,
        vec![row("", TEN, minutes * i, 10 * minutes * i, 10), row(POOL, TEN, minutes * i, 10 * minutes * i, 10)]
    );
    assert_eq!(
        standby_metrics.usage_meeting_seconds.get_or_create(&TenantLabel::of(POOL)).get(),
        // 10:03, 10:04 and the gap's two intervals.
        (4 * i / 1000) as f64
    );
}

#[tokio::test]
async fn an_idle_pool_records_nothing_and_its_rounds_still_move_the_mark() {
    let app = builder().start().await;
    let clock = TestClock::at(TEN);
    let (poller, _) = poller(&app, &clock);
    round_at(&poller, &clock, TEN).await;
    round_at(&poller, &clock, TEN + INTERVAL).await;
    assert!(rows(&app, None).await.is_empty());
    // A meeting starts: the next round credits one interval, not the idle time.
    app.fleet[1].seed_meeting(MeetingSeed::new("late").counts(3, 0, 0));
    round_at(&poller, &clock, TEN + 2 * INTERVAL).await;
    assert_eq!(rows(&app, Some(POOL)).await, vec![row(POOL, TEN, INTERVAL, 3 * INTERVAL, 3)]);
}

#[tokio::test]
async fn two_pollers_accounting_the_same_moment_at_once_credit_it_once() {
    let app = builder().start().await;
    let store = app.usage_store().unwrap();
    let sample = |at_ms| UsageSample {
        at_ms,
        interval_ms: INTERVAL,
        tenants: vec![TenantUsage { tenant: String::new(), meetings: 1, participants: 4 }],
    };
    store.account_usage(&sample(TEN)).await.unwrap();
    // Both write the round sampled at 10:01 concurrently: the store
    // serialises them on the watermark.
    // (Two handles: on PostgreSQL, two connection pools.)
    let other = app.usage_store().unwrap();
    let (late_a, late_b) = (sample(TEN + INTERVAL), sample(TEN + INTERVAL));
    let (first, second) = tokio::join!(store.account_usage(&late_a), other.account_usage(&late_b));
    let mut credited = [first.unwrap().credited_ms, second.unwrap().credited_ms];
    credited.sort_unstable();
    assert_eq!(credited, [0, INTERVAL]);
    assert_eq!(rows(&app, Some(POOL)).await, vec![row(POOL, TEN, 2 * INTERVAL, 8 * INTERVAL, 4)]);
}

mod redis_only {
    use std::sync::Arc;

    use scalelite_poller::PollerMetrics;
    use scalelite_store::usage::POOL;
    use scalelite_tests::{MeetingSeed, TestApp, TestBackend};

    use super::{INTERVAL, TEN, TestClock, round_at, row, rows};

    #[tokio::test]
    async fn a_postgresql_outage_does_not_stop_polling_and_the_next_round_catches_up() {
        let app = TestApp::builder()
            .backend(TestBackend::Redis)
            .servers(1)
            .recordings()
            .env("POLL_INTERVAL", (INTERVAL / 1000).to_string())
            .start()
            .await;
        app.fleet[0].seed_meeting(MeetingSeed::new("class").counts(6, 0, 0));
        let clock = TestClock::at(TEN);
        let metrics = Arc::new(PollerMetrics::new());
        let poller = app.poller(Arc::clone(&metrics)).with_clock(clock.clock());
        round_at(&poller, &clock, TEN).await;

        app.pg().stop().await;
        // The round runs (servers polled, statistics saved); its usage is not
        // written, and that is counted.
        clock.set(TEN + INTERVAL);
        let report = poller.poll_once().await.expect("round").expect("lease");
        assert_eq!(report.reachable, 1);
        assert_eq!(app.server("bbb-1").await.unwrap().stats.users, Some(6));
        assert_eq!(metrics.usage_failures.get(), 1);

        // Back: the next round credits both intervals since 10:00.
        app.pg().start_again().await;
        round_at(&poller, &clock, TEN + 2 * INTERVAL).await;
        assert_eq!(metrics.usage_failures.get(), 1);
        assert_eq!(rows(&app, Some(POOL)).await, vec![row(POOL, TEN, 3 * INTERVAL, 18 * INTERVAL, 6)]);
    }
}
