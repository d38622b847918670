//! Placement at fleet scale (issue 18): Redis CPU per create, and creates
//! per second, when the placement pool (`server_load`) holds 50 or 1,000
//! servers.
//!
//! For each pool size a `redis-server` is seeded as Ruby Scalelite writes
//! servers (`tests/src/seed.rs`: hashes, `server_enabled`, `server_load`
//! with random loads), then `RedisStore::place_meeting` (the placement
//! script, `place.lua`) places new meetings. Each round makes
//! `PLACE_CREATES` placements one at a time, then as many with
//! `PLACE_CONCURRENCY` in flight on the one multiplexed connection, as the
//! API sends them; rounds alternate between the pool sizes and the table
//! shows medians. "script µs" is `usec_per_call` of `cmdstat_evalsha`
//! (`INFO commandstats`, reset each round): how long one create holds Redis.
//! "Redis CPU µs" is the Redis process's CPU time (`INFO cpu`) per create,
//! which adds reading the command and writing the reply. creates/s is the
//! wall-clock rate of the concurrent part.
//!
//! Scenarios: an untagged fleet with untagged creates (the common case and
//! the measurement); a fleet where every fifth server is tagged
//! `gpu`, with untagged creates and `gpu` creates; and a tag no server
//! carries, required (`zz!`) and optional (`zz`, which falls back to
//! untagged servers), which read the whole pool. With needs (regions and
//! capabilities, `server_placement:<id>`): a fleet in four regions with
//! every fifth server declaring `livekit`, creates preferring one region,
//! needing `livekit`, and preferring a region nobody has (down: the walk
//! goes on until the loads reach `CAPACITY_PER_SERVER`, 200 here, about two
//! thirds of this pool).
//!
//! `cargo bench -p scalelite-benches --bench fleet_placement` (env:
//! `PLACE_CREATES`, default 3000; `PLACE_CONCURRENCY`, default 16;
//! `PLACE_ROUNDS`, default 5; `PLACE_ONLY`, a part of the scenario names to
//! run).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark code: a failed unwrap is a failed measurement")]
#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use scalelite_core::MeetingId;
use scalelite_core::selection::{Needs, TagSpec, parse_list};
use scalelite_store::{MeetingStore, Placement, PlacementRequest, RedisStore};
use scalelite_tests::seed::{SeedServer, seed_server};
use scalelite_tests::{NS, TestRedis};

/// Which servers carry a tag, a region or a capability.
#[derive(Clone, Copy)]
enum Fleet {
    Untagged,
    /// Every fifth server is tagged `gpu`.
    FifthGpu,
    /// Untagged, in regions `r0`..`r3` (server `i` in `r<i % 4>`), every
    /// fifth server declaring `livekit`.
    Regions,
}

struct Scenario {
    name: &'static str,
    fleet: Fleet,
    /// `meta_server-tag`.
    tags: &'static str,
    /// Needed capabilities (`;`-joined).
    capabilities: &'static str,
    /// Preferred regions (`;`-joined).
    regions: &'static str,
}

const fn tagged(name: &'static str, fleet: Fleet, tags: &'static str) -> Scenario {
    Scenario { name, fleet, tags, capabilities: "", regions: "" }
}

const SCENARIOS: [Scenario; 8] = [
    tagged("untagged fleet, untagged create", Fleet::Untagged, ""),
    tagged("1 in 5 tagged gpu, untagged create", Fleet::FifthGpu, ""),
    tagged("1 in 5 tagged gpu, create gpu", Fleet::FifthGpu, "gpu"),
    tagged("required tag nobody has (zz!)", Fleet::Untagged, "zz!"),
    tagged("optional tag nobody has (zz)", Fleet::Untagged, "zz"),
    Scenario { capabilities: "", regions: "r2", ..tagged("4 regions, prefer r2", Fleet::Regions, "") },
    Scenario { capabilities: "livekit", regions: "", ..tagged("1 in 5 livekit, need livekit", Fleet::Regions, "") },
    Scenario { capabilities: "", regions: "mars", ..tagged("prefer a region that is down", Fleet::Regions, "") },
];

/// The load from which a preferred region's server is full.
const CAPACITY: f64 = 200.0;

struct Measured {
    /// `usec_per_call` of `cmdstat_evalsha`: time inside the script.
    script_us: f64,
    /// Redis process CPU (`INFO cpu`, user + sys) per create: the script,
    /// reading the command and writing the reply.
    cpu_us: f64,
    creates_per_s: f64,
}

fn request(n: usize, tags: &TagSpec, needs: &Needs) -> PlacementRequest {
    let id = format!("bench-{n}");
    PlacementRequest {
        voice_bridges: scalelite_core::voice_bridge::candidates(&id, 9, None),
        meeting_id: MeetingId::new(id),
        tenant_id: None,
        tags: tags.clone(),
        needs: needs.clone(),
        moderator_pw: "mp".into(),
        ttl: Duration::from_secs(3600),
        reserve_users: 1,
        create: None,
        replace_on: None,
        max_meetings: None,
    }
}

async fn seed(redis: &TestRedis, servers: usize, fleet: Fleet) {
    let mut state: u64 = 0x5eed_cafe;
    for i in 0..servers {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        // Loads of a morning fleet: 0–299 users, many ties.
        let load = ((state >> 33) % 300) as f64;
        let id = format!("bbb-{i:04}");
        let mut record =
            SeedServer::enabled(id.clone(), format!("https://{id}.example.org/bigbluebutton/api"), "secret")
                .load(Some(load));
        if matches!(fleet, Fleet::FifthGpu) && i % 5 == 0 {
            record = record.tag("gpu");
        }
        seed_server(redis, NS, &record).await;
        if matches!(fleet, Fleet::Regions) {
            let key = format!("{NS}:server_placement:{id}");
            let region = format!("r{}", i % 4);
            let capabilities = if i % 5 == 0 { "livekit" } else { "" };
            redis.cmd(&["HSET", &key, "region", &region, "capabilities", capabilities]).await;
        }
    }
}

fn info_field(info: &str, line_prefix: &str, field: &str) -> f64 {
    let line = info.lines().find(|l| l.starts_with(line_prefix)).unwrap_or_else(|| panic!("no {line_prefix} in INFO"));
    let value = line[line_prefix.len()..].split(',').find_map(|f| f.strip_prefix(field)).expect("field missing");
    value.trim().parse().unwrap()
}

async fn redis_cpu_s(redis: &TestRedis) -> f64 {
    let info = redis.cmd(&["INFO", "cpu"]).await;
    let info = info.as_str().unwrap();
    info_field(info, "used_cpu_user:", "") + info_field(info, "used_cpu_sys:", "")
}

/// A seeded Redis and a store on it.
struct Setup {
    redis: TestRedis,
    store: Arc<RedisStore>,
    tags: TagSpec,
    needs: Needs,
}

impl Setup {
    async fn new(servers: usize, scenario: &Scenario) -> Self {
        let redis = TestRedis::start().await;
        seed(&redis, servers, scenario.fleet).await;
        let store = Arc::new(RedisStore::open(&redis.url(), NS).unwrap());
        let tags = TagSpec::parse(Some(scenario.tags));
        let needs = Needs {
            capabilities: parse_list(Some(scenario.capabilities)),
            regions: parse_list(Some(scenario.regions)),
            capacity: CAPACITY,
        };
        // Warm-up: loads the script (the first EVALSHA is a NOSCRIPT miss).
        for n in 0..10 {
            store.place_meeting(&request(usize::MAX - n, &tags, &needs)).await.unwrap();
        }
        Self { redis, store, tags, needs }
    }

    /// `creates` placements one at a time (Redis time per create), then
    /// `creates` more with `concurrency` in flight (creates/s); meeting ids
    /// from `first` on.
    async fn measure(&self, first: usize, creates: usize, concurrency: usize) -> Measured {
        self.redis.cmd(&["CONFIG", "RESETSTAT"]).await;
        let cpu_before = redis_cpu_s(&self.redis).await;
        for n in first..first + creates {
            let placed = self.store.place_meeting(&request(n, &self.tags, &self.needs)).await.unwrap();
            assert!(matches!(placed, Placement::Placed { .. } | Placement::TagUnavailable), "{placed:?}");
        }
        let cpu_us = (redis_cpu_s(&self.redis).await - cpu_before) * 1e6 / creates as f64;
        let info = self.redis.cmd(&["INFO", "commandstats"]).await;
        let script_us = info_field(info.as_str().unwrap(), "cmdstat_evalsha:", "usec_per_call=");

        let started = Instant::now();
        let workers: Vec<_> = (0..concurrency)
            .map(|w| {
                let store = Arc::clone(&self.store);
                let (tags, needs) = (self.tags.clone(), self.needs.clone());
                tokio::spawn(async move {
                    for n in (first + creates + w..first + 2 * creates).step_by(concurrency) {
                        store.place_meeting(&request(n, &tags, &needs)).await.unwrap();
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await.unwrap();
        }
        let creates_per_s = creates as f64 / started.elapsed().as_secs_f64();
        Measured { script_us, cpu_us, creates_per_s }
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let var = |name: &str, default: usize| std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default);
    let creates = var("PLACE_CREATES", 3000);
    let concurrency = var("PLACE_CONCURRENCY", 16);
    let rounds = var("PLACE_ROUNDS", 5);
    let only = std::env::var("PLACE_ONLY").unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    println!(
        "{creates} creates one at a time, then {creates} with {concurrency} in flight, per round; \
         rounds alternate 50 / 1,000 servers; medians of {rounds}\n"
    );
    println!(
        "| scenario | servers | script µs/create | Redis CPU µs/create | creates/s | creates/s vs 50 |\n|---|---|---|---|---|---|"
    );
    for scenario in SCENARIOS.iter().filter(|s| s.name.contains(&only)) {
        let sizes = [50, 1000];
        let setups: Vec<Setup> = sizes.iter().map(|&n| runtime.block_on(Setup::new(n, scenario))).collect();
        let mut results: Vec<Vec<Measured>> = sizes.iter().map(|_| Vec::new()).collect();
        for round in 0..rounds {
            for (setup, results) in setups.iter().zip(&mut results) {
                results.push(runtime.block_on(setup.measure(round * 2 * creates, creates, concurrency)));
            }
        }
        let rate_at_50 = median(results[0].iter().map(|m| m.creates_per_s));
        for (servers, results) in sizes.iter().zip(&results) {
            let rate = median(results.iter().map(|m| m.creates_per_s));
            println!(
                "| {} | {servers} | {:.1} | {:.1} | {rate:.0} | {:.0} % |",
                scenario.name,
                median(results.iter().map(|m| m.script_us)),
                median(results.iter().map(|m| m.cpu_us)),
                100.0 * rate / rate_at_50
            );
        }
    }
}
