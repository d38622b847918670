//! Memory of the real `scalelite-api` (release build, embedded mode) while
//! a BBB server uploads a 4 GiB recording archive over HTTP
//! (`PUT /scalelite/upload/<name>.tar`, `RECORDING_UPLOAD_ENABLED`), sent
//! by `deploy/bbb/scalelite-upload.sh` (curl) as on a BBB server.
//!
//! The archives are sparse files (holes read as zeros, so making and
//! sending them costs no disk reads); the API writes them into its spool
//! for real, so the free disk space is checked first (the size plus 1 GiB).
//! `RECORDING_DISABLED=true` keeps the in-process importer away from them.
//! After a warm-up upload of 1 MiB, the API's resident set is read from
//! `/proc` every 50 ms during each upload, and its `VmHWM` (reset before
//! each upload) is read after; uploads of 64 MiB and of the full size, each
//! repeated, show whether memory grows with the archive or with the number
//! of uploads.
//!
//! Scratch files live under the target directory (on disk, not a tmpfs)
//! and are removed at the end.
//!
//! `cargo bench -p scalelite-benches --bench upload` (env: `UPLOAD_MB`,
//! default 4096, in MiB).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark code: a failed unwrap is a failed measurement")]
#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use scalelite_benches::{ProcessStats, env_or, log_tail, release_binary};
use scalelite_tests::free_port;

const LB_SECRET: &str = "bench-loadbalancer-secret";
const BBB_URL: &str = "https://bbb-bench.example.org/bigbluebutton/api";
const BBB_SECRET: &str = "bench-bbb-secret";
const MIB: u64 = 1024 * 1024;

/// Free bytes on the file system holding `dir` (GNU df).
fn free_bytes(dir: &Path) -> u64 {
    let output = Command::new("df").args(["-B1", "--output=avail"]).arg(dir).output().expect("run df");
    String::from_utf8_lossy(&output.stdout).lines().nth(1).and_then(|l| l.trim().parse().ok()).expect("df's answer")
}

/// A sparse file of `bytes` zeros.
fn sparse(path: &Path, bytes: u64) {
    File::create(path).unwrap().set_len(bytes).unwrap();
}

/// The API process, killed when the bench ends or fails.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one upload cost.
struct Upload {
    bytes: u64,
    /// The script's wall time (hashing included), seconds.
    script_s: f64,
    /// The API's `duration_ms` for receiving the body, seconds.
    received_s: Option<f64>,
    /// The API's resident set before, KiB.
    rss_before: u64,
    /// The highest resident set seen while uploading, and `VmHWM` after.
    rss_max: u64,
    hwm: u64,
}

fn upload(script: &Path, port: u16, archive: &Path, spool: &Path, api: ProcessStats, log: &Path) -> Upload {
    let bytes = std::fs::metadata(archive).unwrap().len();
    let rss_before = api.rss_kib();
    assert!(api.reset_peak(), "cannot reset the API's peak RSS (/proc/<pid>/clear_refs)");
    let max = Arc::new(AtomicU64::new(rss_before));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (max, done) = (Arc::clone(&max), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                max.fetch_max(api.rss_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let started = Instant::now();
    let output = Command::new("sh")
        .arg(script)
        .arg(archive)
        .env("SCALELITE_UPLOAD_CONFIG", "/nonexistent")
        .env("SCALELITE_URL", format!("http://127.0.0.1:{port}"))
        .env("BBB_SERVER", BBB_URL)
        .env("BBB_SECRET", BBB_SECRET)
        .env("UPLOAD_ATTEMPTS", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run scalelite-upload.sh");
    let script_s = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the upload failed:\n{stderr}\nAPI log:\n{}", log_tail(log));
    let name = archive.file_name().unwrap();
    let stored = spool.join(name);
    assert_eq!(std::fs::metadata(&stored).unwrap().len(), bytes, "the spool holds the whole archive");
    std::fs::remove_file(stored).unwrap();
    let name = name.to_string_lossy();
    let received_s = std::fs::read_to_string(log).unwrap_or_default().lines().rev().find_map(|line| {
        if !line.contains("recording upload received") || !line.contains(&*name) {
            return None;
        }
        line.split("\"duration_ms\":")
            .nth(1)?
            .split([',', '}'])
            .next()?
            .trim()
            .parse::<f64>()
            .ok()
            .map(|ms| ms / 1000.0)
    });
    Upload { bytes, script_s, received_s, rss_before, rss_max: max.load(Ordering::Relaxed), hwm: api.peak_kib() }
}

fn main() {
    let mb: u64 = env_or("UPLOAD_MB", 4096);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let script = root.join("deploy/bbb/scalelite-upload.sh");
    let binary = release_binary("scalelite-api");
    let target = binary.parent().and_then(Path::parent).expect("the target directory");
    let scratch = tempfile::Builder::new().prefix("upload-bench-").tempdir_in(target).expect("a scratch directory");
    // One archive is in the spool at a time (removed after each upload).
    let need = mb * MIB + 1024 * MIB;
    let free = free_bytes(scratch.path());
    assert!(
        free >= need,
        "{} MiB free under {}, {} MiB needed: lower UPLOAD_MB",
        free / MIB,
        target.display(),
        need / MIB
    );

    let data = scratch.path().join("data");
    let spool = scratch.path().join("spool");
    let outbox = scratch.path().join("outbox");
    std::fs::create_dir_all(&outbox).unwrap();
    let port = free_port();
    let log = scratch.path().join("api.log");
    let api = Command::new(&binary)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", port.to_string())
        .env("SCALELITE_DATA_DIR", &data)
        .env("RECORDING_SPOOL_DIR", &spool)
        .env("LOADBALANCER_SECRET", LB_SECRET)
        .env("RECORDING_UPLOAD_ENABLED", "true")
        .env("RECORDING_UPLOAD_MAX_BYTES", (mb * MIB * 2).to_string())
        .env("RECORDING_DISABLED", "true")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .map(KillOnDrop)
        .expect("start scalelite-api");
    let stats = ProcessStats::of(api.0.id());
    let ready = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(ready.elapsed() < Duration::from_secs(30), "the API did not start:\n{}", log_tail(&log));
        std::thread::sleep(Duration::from_millis(100));
    }
    // The BBB server, registered through the management API.
    let register = format!(
        "c=$(printf 'addServer%s' '{LB_SECRET}' | sha256sum | cut -d ' ' -f 1) && \
         curl -fsS -H 'Content-Type: application/json' \
         --data-binary '{{\"server\":{{\"url\":\"{BBB_URL}\",\"secret\":\"{BBB_SECRET}\"}}}}' \
         \"http://127.0.0.1:{port}/scalelite/api/addServer?checksum=$c\""
    );
    let status = Command::new("sh").args(["-c", &register]).stdout(Stdio::null()).status().unwrap();
    assert!(status.success(), "addServer failed");

    // Repeated sizes show whether the resident set settles.
    let sizes = [1, 64, 64, 64, mb, 64, mb];
    let mut results = Vec::new();
    for (i, size) in sizes.into_iter().enumerate() {
        let archive = outbox.join(format!("bench-{i}-{size}mib.tar"));
        sparse(&archive, size * MIB);
        results.push(upload(&script, port, &archive, &spool, stats, &log));
        // The script removes an archive once the balancer confirmed it.
        assert!(!archive.exists(), "the script keeps a confirmed archive");
    }
    let idle = stats.rss_kib();
    drop(api);

    println!(
        "| upload | script s (sha256sum + curl) | API receive s | MB/s (receive) | RSS before MiB | max RSS sampled MiB | VmHWM MiB |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (i, u) in results.iter().enumerate() {
        let label = if i == 0 { format!("{} MiB (warm-up)", u.bytes / MIB) } else { format!("{} MiB", u.bytes / MIB) };
        let received = u.received_s.map_or("-".to_owned(), |s| format!("{s:.1}"));
        let rate = u.received_s.map_or("-".to_owned(), |s| format!("{:.0}", u.bytes as f64 / 1e6 / s.max(1e-6)));
        println!(
            "| {label} | {:.1} | {received} | {rate} | {:.1} | {:.1} | {:.1} |",
            u.script_s,
            u.rss_before as f64 / 1024.0,
            u.rss_max as f64 / 1024.0,
            u.hwm as f64 / 1024.0,
        );
    }
    println!("API RSS after the uploads: {:.1} MiB", idle as f64 / 1024.0);
    drop(scratch);
}
