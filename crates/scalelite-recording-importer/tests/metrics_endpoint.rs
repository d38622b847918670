//! The real `scalelite-recording-importer` binary on a real PostgreSQL:
//! with `RECORDING_IMPORTER_METRICS_BIND` it serves its retention counters,
//! behind `METRICS_BEARER_TOKEN`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::Method;
use scalelite_store::PgStore;
use scalelite_store::recordings::{ImportPolicy, ImportedFormat, RecordingImport, RecordingStore as _};
use scalelite_tests::{RecordingDirs, TestPostgres, eventually_with, free_port, http_request};
use tokio::process::Command;

#[tokio::test]
async fn the_importer_serves_its_retention_counters() {
    let pg = TestPostgres::start().await;
    let store = PgStore::open(&pg.url(), 1).unwrap();
    store.migrate().await.unwrap();
    let dirs = RecordingDirs::new();
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let import = RecordingImport {
        record_id: "old-recording".into(),
        meeting_id: "room".into(),
        published: Some(true),
        state: Some("published".into()),
        start_ms: Some(now_ms - 40 * 86_400_000),
        formats: vec![ImportedFormat { format: "presentation".into(), url: "/p".into(), ..Default::default() }],
        ..RecordingImport::default()
    };
    store.import_recording(&import, ImportPolicy::default()).await.unwrap();
    let files = dirs.published().join("presentation/old-recording");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("index.html"), "0123456789").unwrap();

    let bind = format!("127.0.0.1:{}", free_port());
    let mut command = Command::new(env!("CARGO_BIN_EXE_scalelite-recording-importer"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", pg.url())
        .env("REDIS_URL", format!("redis://127.0.0.1:{}", free_port()))
        .env("RECORDING_SPOOL_DIR", dirs.spool())
        .env("RECORDING_WORK_DIR", dirs.work())
        .env("RECORDING_PUBLISH_DIR", dirs.published())
        .env("RECORDING_UNPUBLISH_DIR", dirs.unpublished())
        .env("RECORDING_RETENTION_DAYS", "30")
        .env("RECORDING_RETENTION_INTERVAL", "1")
        .env("RECORDING_IMPORTER_METRICS_BIND", &bind)
        .env("METRICS_BEARER_TOKEN", "scrape-token")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("the importer starts");

    let url = format!("http://{bind}/metrics");
    let scrape = |token: Option<&'static str>| {
        let url = url.clone();
        async move {
            let header = token.map(|t| format!("Bearer {t}"));
            let headers: Vec<(&str, &str)> = header.iter().map(|h| ("authorization", h.as_str())).collect();
            http_request(Method::GET, &url, &headers, bytes::Bytes::new(), Duration::from_secs(5)).await.ok()
        }
    };
    let counted = "scalelite_recording_retention_deleted_bytes_total 10";
    eventually_with(Duration::from_secs(30), "the old recording pruned and counted", || async {
        scrape(Some("scrape-token")).await.is_some_and(|r| r.status == 200 && r.body.lines().any(|l| l == counted))
    })
    .await;
    assert!(!files.exists(), "the files are gone");
    let refused = scrape(None).await.expect("the endpoint answers");
    assert_eq!(refused.status, 401, "no token, no metrics");

    child.kill().await.unwrap();
}
