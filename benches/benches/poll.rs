//! One poll round over 1,000 fake BBB servers (one hung, five slow), run by
//! the real `scalelite-poller --once` binary in its own process so its wall
//! time, CPU seconds and peak RSS are its own (GNU `time`, Debian package
//! `time`). A round over zero servers in the same run is the baseline
//! (process start, Redis connection, lease).
//!
//! `cargo bench -p scalelite-benches --bench poll` (env: `POLL_SERVERS`,
//! default 1000; `POLL_RESPONSE_TIMEOUT`, default 5).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark code: a failed unwrap is a failed measurement")]
#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::path::Path;
use std::time::Duration;

use scalelite_benches::{TimedRun, release_binary, run_timed, timed};
use scalelite_tests::seed::{SeedServer, seed_meeting, seed_server};
use scalelite_tests::{FakeFleet, MeetingSeed, Mode, NS, TestRedis};

fn run_round(binary: &Path, redis_url: &str, response_timeout: &str) -> TimedRun {
    let mut command = timed(binary);
    command
        .arg("--once")
        .env("REDIS_URL", redis_url)
        .env("RESPONSE_TIMEOUT", response_timeout)
        .env("CONNECT_TIMEOUT", "1")
        .env("POLLER_METRICS_BIND", "off");
    run_timed(&mut command, "poll round")
}

fn main() {
    let servers: usize = std::env::var("POLL_SERVERS").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let response_timeout = std::env::var("POLL_RESPONSE_TIMEOUT").unwrap_or_else(|_| "5".into());
    let binary = release_binary("scalelite-poller");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    let (redis, empty_redis, fleet) = runtime.block_on(async {
        let redis = TestRedis::start().await;
        let empty_redis = TestRedis::start().await;
        let fleet = FakeFleet::start(servers).await;
        for (i, server) in fleet.iter().enumerate() {
            let id = format!("bbb-{i:04}");
            seed_server(&redis, NS, &SeedServer::enabled(id.clone(), server.url(), server.secret())).await;
            // Two running meetings per server, known to Redis as well.
            for m in 0..2 {
                let meeting = format!("m-{i}-{m}");
                server.seed_meeting(MeetingSeed::new(&meeting).counts(20, 2, 3));
                seed_meeting(&redis, NS, &meeting, &id, "pw", &format!("{}", 100_000_000 + i * 2 + m)).await;
            }
        }
        fleet[0].set_mode(Mode::Hung);
        for i in 1..=5 {
            fleet[i].set_mode(Mode::Slow(Duration::from_millis(500 + 200 * i as u64)));
        }
        (redis, empty_redis, fleet)
    });

    // The fleet keeps answering on the runtime while the child polls.
    let baseline = run_round(&binary, &empty_redis.url(), &response_timeout);
    let round = run_round(&binary, &redis.url(), &response_timeout);
    let again = run_round(&binary, &redis.url(), &response_timeout);

    println!("| run | servers | round ms | wall s | CPU s (user+sys) | peak RSS MiB |");
    println!("|---|---|---|---|---|---|");
    for (name, n, m) in
        [("baseline: empty pool", 0, &baseline), ("round 1", servers, &round), ("round 2", servers, &again)]
    {
        println!(
            "| {name} | {n} | {} | {:.2} | {:.2} | {:.1} |",
            m.logged_ms.map_or("-".into(), |r| format!("{r:.0}")),
            m.wall,
            m.cpu,
            m.max_rss_kib as f64 / 1024.0
        );
    }
    println!(
        "\ntarget: round <= RESPONSE_TIMEOUT + 1 s = {} s, under 1 CPU-second; {} getMeetings answered by the fleet",
        response_timeout.parse::<f64>().unwrap_or(5.0) + 1.0,
        fleet.call_count("getMeetings")
    );
    drop((redis, empty_redis, fleet));
}
