//! `getRecordings` latency on a database of 100,000 recordings, for the calls
//! Moodle and Greenlight make: 25 record ids with `state=any`, one meeting's
//! recordings, and a page of 25. Real `scalelite-api`, real PostgreSQL and
//! Redis, next to the no-op ceiling in the same run.
//!
//! `cargo bench -p scalelite-benches --bench recordings` (env:
//! `RECORDINGS` (100000), `LOAD_SECONDS` (5), `LOAD_CONNECTIONS` (8),
//! `LOAD_ROUNDS` (3)). Prints one markdown row per scenario (median round).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark code: a failed unwrap is a failed measurement")]
#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::sync::Arc;
use std::time::Instant;

use http::StatusCode;
use scalelite_benches::{PathFn, Scenario, alternate_with_ceiling, env_or, path_of, print_table, start_ceiling};
use scalelite_tests::TestApp;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Recordings per meeting (a weekly lecture over a term has more, a
/// one-off room fewer).
const PER_MEETING: i64 = 5;

/// Fills the database like a few years of a university's recordings:
/// Greenlight's metadata (5 rows each), a presentation format with three
/// thumbnails for every recording, a video format for every third, 95 %
/// published.
fn seed_sql(recordings: i64) -> String {
    format!(
        "INSERT INTO recordings (record_id, meeting_id, name, published, participants, state, starttime, endtime,
                                 protected, publish_updated)
         SELECT md5('m' || (g / {PER_MEETING})) || substr(md5(g::text), 1, 8) || '-' || (1600000000000 + g * 60000),
                'meeting-' || (g / {PER_MEETING}), 'Lecture ' || g, g % 20 <> 0, 5 + g % 40,
                CASE WHEN g % 20 = 0 THEN 'unpublished' ELSE 'published' END,
                to_timestamp((1600000000000 + g * 60000) / 1000.0) AT TIME ZONE 'UTC',
                to_timestamp((1600003600000 + g * 60000) / 1000.0) AT TIME ZONE 'UTC', false, false
         FROM generate_series(0::bigint, {last}) g;
         INSERT INTO metadata (recording_id, key, value)
         SELECT r.id, k.key, CASE k.key WHEN 'gl-listed' THEN '' ELSE k.value END
         FROM recordings r CROSS JOIN (VALUES ('bbb-origin', 'Greenlight'), ('bbb-origin-version', 'v3'),
              ('bbb-origin-server-name', 'gl.example.edu'), ('gl-listed', ''), ('bbb-context', 'Course')) k(key, value);
         INSERT INTO playback_formats (recording_id, format, url, length)
         SELECT id, 'presentation', '/playback/presentation/2.3/' || record_id, 45 FROM recordings;
         INSERT INTO playback_formats (recording_id, format, url, length)
         SELECT id, 'video', '/playback/video/' || record_id || '/', 45 FROM recordings WHERE id % 3 = 0;
         INSERT INTO thumbnails (playback_format_id, width, height, alt, url, sequence)
         SELECT p.id, 176, 136, 'Slide ' || s, '/presentation/x/thumbnails/thumb-' || s || '.png', s - 1
         FROM playback_formats p CROSS JOIN generate_series(1, 3) s WHERE p.format = 'presentation';
         ANALYZE;",
        last = recordings - 1
    )
}

fn main() {
    let recordings: i64 = env_or("RECORDINGS", 100_000);
    let seconds: u64 = env_or("LOAD_SECONDS", 5);
    let connections: usize = env_or("LOAD_CONNECTIONS", 8);
    let rounds: usize = env_or("LOAD_ROUNDS", 3);
    let server = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    let (app, ceiling, record_ids) = server.block_on(async {
        let app = TestApp::builder().servers(1).recordings().start().await;
        let started = Instant::now();
        app.pg().psql(&seed_sql(recordings)).await;
        let ids = app.pg().psql("SELECT record_id FROM recordings ORDER BY random() LIMIT 2500").await;
        let ids: Vec<String> = ids.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
        println!("seeded {recordings} recordings in {:.1} s", started.elapsed().as_secs_f64());
        (app, start_ceiling().await, ids)
    });
    let client = app.client();
    let meetings = recordings / PER_MEETING;

    let by_ids: PathFn = {
        let (client, ids) = (client.clone(), Arc::new(record_ids));
        Arc::new(move |n| {
            let start = (n as usize * 25) % (ids.len() - 25);
            let list = ids[start..start + 25].join(",");
            path_of(&client.url("getRecordings", &[("recordID", &list), ("state", "any")]))
        })
    };
    let by_meeting: PathFn = {
        let client = client.clone();
        Arc::new(move |n| {
            let meeting = format!("meeting-{}", (n.wrapping_mul(7919)) % meetings as u64);
            path_of(&client.url("getRecordings", &[("meetingID", &meeting)]))
        })
    };
    let first_page = path_of(&client.url("getRecordings", &[("limit", "25")]));
    let deep_page: PathFn = {
        let client = client.clone();
        Arc::new(move |n| {
            let offset = ((n.wrapping_mul(104_729)) % 4000 * 25).to_string();
            path_of(&client.url("getRecordings", &[("offset", &offset), ("limit", "25")]))
        })
    };
    let ceiling_path = path_of(&client.url("getRecordings", &[]));
    let scenarios: Vec<Scenario<'_>> = vec![
        ("no-op 302 (ceiling)", ceiling, Arc::new(move |_| ceiling_path.clone()), StatusCode::FOUND),
        ("25 recordIDs, state=any (Moodle)", app.addr, by_ids, StatusCode::OK),
        ("one meetingID (Greenlight room)", app.addr, by_meeting, StatusCode::OK),
        ("limit=25 (first page)", app.addr, Arc::new(move |_| first_page.clone()), StatusCode::OK),
        ("offset<100000, limit=25 (any page)", app.addr, deep_page, StatusCode::OK),
    ];
    // Each scenario's rounds alternate with ceiling runs; medians are
    // reported.
    let result = alternate_with_ceiling(&scenarios, rounds, connections, seconds);
    print_table(&scenarios, result, rounds, connections);
    drop(app);
    drop(server);
}
