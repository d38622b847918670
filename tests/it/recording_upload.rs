//! Recording uploads over HTTPS (`PUT /scalelite/upload/<name>.tar`,
//! `RECORDING_UPLOAD_ENABLED`): `deploy/bbb/scalelite-upload.sh` run with
//! curl through nginx with TLS, the archive imported and listed; forged,
//! stale, replayed, oversized, truncated and tampered uploads refused with
//! nothing half-written left in the spool; uploads the spool has no room
//! for answered 507 and retried by the script; retries answered without a
//! second copy.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::Method;
use scalelite_core::Secret;
use scalelite_core::upload::Signed;
use scalelite_recording_importer::{Importer, Settings};
use scalelite_tests::nginx::{SiteSettings, TestNginx, render_site};
use scalelite_tests::tls::TestCa;
use scalelite_tests::{Format, RecordingArchive, Reply, TestApp, eventually_with, http_request, read_http_response};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

use crate::importer::Running;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/bbb/scalelite-upload.sh");

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The headers of an upload of `body` as `name`, signed by `server` with
/// `secret` at `timestamp`.
fn signed_headers(name: &str, server: &str, secret: &str, body: &[u8], timestamp: i64) -> Vec<(String, String)> {
    let digest = sha256_hex(body);
    let signed = Signed { name, server, size: body.len() as u64, content_sha256: &digest, timestamp };
    vec![
        ("X-Scalelite-Server".into(), server.into()),
        ("X-Scalelite-Timestamp".into(), timestamp.to_string()),
        ("X-Scalelite-Content-Sha256".into(), digest.clone()),
        ("X-Scalelite-Checksum".into(), signed.checksum(&Secret::new(secret))),
    ]
}

async fn put(app: &TestApp, name: &str, headers: &[(String, String)], body: Vec<u8>) -> Reply {
    let url = format!("{}/scalelite/upload/{name}", app.origin());
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    http_request(Method::PUT, &url, &headers, Bytes::from(body), Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("PUT {url}: {e}"))
}

/// The names in the spool (the `failed/` directory and the importer's lock
/// file aside).
fn spool_entries(spool: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(spool)
        .map(|entries| entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n != "failed" && n != ".scalelite-importer.lock")
        .collect();
    names.sort();
    names
}

async fn upload_app(extra: &[(&str, &str)]) -> TestApp {
    let mut builder = TestApp::builder()
        .servers(1)
        .recordings()
        .env("RECORDING_UPLOAD_ENABLED", "true")
        .env("RECORDING_IMPORT_SETTLE_TIME", "0.2");
    for (name, value) in extra {
        builder = builder.env(name, *value);
    }
    builder.start().await
}

/// nginx with the shipped site, on HTTPS with `ca`'s certificate.
async fn https_nginx(app: &TestApp, ca: &TestCa, player_root: &Path) -> TestNginx {
    let settings =
        SiteSettings { api: app.addr, publish_dir: app.dirs().published(), player_root: player_root.to_owned() };
    let (cert, key) = (ca.cert_file(), ca.key_file());
    TestNginx::start(move |listen| {
        let site = render_site(&[
            ("NGINX_LISTEN", listen.to_owned()),
            ("SCALELITE_API_HOST", settings.api.ip().to_string()),
            ("SCALELITE_API_PORT", settings.api.port().to_string()),
            ("RECORDING_PUBLISH_DIR", settings.publish_dir.display().to_string()),
            ("PLAYBACK_PLAYER_ROOT", settings.player_root.display().to_string()),
        ]);
        let plain = format!("listen {listen} default_server;");
        assert!(site.contains(&plain), "the shipped site's listen line changed");
        site.replace(
            &plain,
            &format!(
                "listen {listen} ssl default_server;\n  ssl_certificate {};\n  ssl_certificate_key {};",
                cert.display(),
                key.display()
            ),
        )
    })
    .await
}

/// An importer of `app`'s spool polling every 500 ms, running until the
/// returned [`Running`] is stopped or dropped.
fn polling_importer(app: &TestApp) -> (Importer, Running) {
    let mut settings = Settings::from_config(&app.state.config);
    settings.poll_interval = Duration::from_millis(500);
    let importer = Importer::new(settings, app.recording_store(), Some(Arc::clone(app.store())));
    let running = Running::start(&importer);
    (importer, running)
}

/// The environment of the BBB-side script on a server whose recordings are
/// under `bbb` (`published/`, `work/`, `status/`), naming itself by its API
/// URL as bbb-register.sh does, uploading through `nginx` with `ca`'s
/// certificate.
fn https_script_env(app: &TestApp, nginx: &TestNginx, ca: &TestCa, bbb: &Path) -> Vec<(&'static str, String)> {
    let server = app.fleet.iter().next().unwrap();
    vec![
        ("SCALELITE_URL", format!("https://127.0.0.1:{}", nginx.port())),
        ("BBB_SERVER", server.url()),
        ("BBB_SECRET", server.secret()),
        ("PUBLISHED_DIR", bbb.join("published").display().to_string()),
        ("WORK_DIR", bbb.join("work").display().to_string()),
        ("STATUS_DIR", bbb.join("status").display().to_string()),
        ("UPLOAD_BACKOFF", "1".into()),
        ("CURL_OPTS", format!("--cacert {}", ca.ca_file().display())),
    ]
}

/// Runs the BBB-side script with `args`; its exit status and output.
async fn run_script(env: &[(&str, String)], args: &[&str]) -> (bool, String) {
    let output = tokio::process::Command::new("sh")
        .arg(SCRIPT)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("SCALELITE_UPLOAD_CONFIG", "/nonexistent")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run sh deploy/bbb/scalelite-upload.sh");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

async fn listed(app: &TestApp, meeting_id: &str) -> Vec<String> {
    let reply = app.client().get("getRecordings", &[("meetingID", meeting_id), ("state", "any")]).await;
    assert!(reply.is_success(), "{}", reply.body);
    let xml = reply.xml();
    xml.child("recordings")
        .map(|list| list.children_named("recording").filter_map(|r| r.text_at("recordID")).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_bbb_server_uploads_over_https_and_the_recording_is_listed() {
    let app = upload_app(&[]).await;
    let ca = TestCa::generate();
    let bbb = tempfile::tempdir().unwrap();
    let nginx = https_nginx(&app, &ca, bbb.path()).await;
    let (_importer, _running) = polling_importer(&app);

    // What BBB leaves after publishing: the formats' directories.
    let meeting_id = "upload-room-1";
    let rec =
        RecordingArchive::new(meeting_id, "Hochgeladen über HTTPS").formats(&[Format::Presentation, Format::Video]);
    let published = bbb.path().join("published");
    rec.write_published_tree(&published);
    let work = bbb.path().join("work");
    let status = bbb.path().join("status");
    // The server names itself by its API URL, as bbb-register.sh does.
    let env = https_script_env(&app, &nginx, &ca, bbb.path());
    let (ok, output) = run_script(&env, &["-m", &rec.record_id]).await;
    assert!(ok, "the upload failed:\n{output}\nnginx: {}", nginx.error_log());
    assert!(output.contains("HTTP 201"), "{output}");
    // The archive is not kept once the balancer has it; BBB's status file says so.
    assert!(!work.join(rec.file_name()).exists(), "the archive is kept after a confirmed upload");
    let done = std::fs::read_to_string(status.join(format!("{}-sender.done", rec.record_id))).unwrap();
    assert_eq!(done, format!("Published {}", rec.record_id));

    eventually_with(Duration::from_secs(10), "getRecordings lists the uploaded recording", || async {
        listed(&app, meeting_id).await == [rec.record_id.clone()]
    })
    .await;
    eventually_with(Duration::from_secs(10), "the importer takes the archive out of the spool", || async {
        spool_entries(&app.dirs().spool()).is_empty()
    })
    .await;
    assert!(app.dirs().published().join("presentation").join(&rec.record_id).join("metadata.xml").is_file());

    // A retry of the same archive (the answer lost, the post-publish script
    // run again) is confirmed without a second copy in the spool.
    let (ok, output) = run_script(&env, &["-m", &rec.record_id]).await;
    assert!(ok, "{output}");
    assert!(output.contains("HTTP 200") && output.contains("already received"), "{output}");
    assert!(spool_entries(&app.dirs().spool()).is_empty());

    // A recording with nothing published is nothing to upload.
    let (ok, output) = run_script(&env, &["-m", "no-such-recording-1700000000000"]).await;
    assert!(ok, "{output}");
    assert!(output.contains("no published formats"), "{output}");
    app.stop().await;
}

#[tokio::test]
async fn a_refused_upload_keeps_the_archive_on_the_bbb_server() {
    let app = upload_app(&[]).await;
    let bbb = tempfile::tempdir().unwrap();
    let rec = RecordingArchive::new("upload-room-2", "Falsches Geheimnis");
    rec.write_published_tree(&bbb.path().join("published"));
    let env = [
        ("SCALELITE_URL", app.origin()),
        ("BBB_SERVER", "bbb-1".to_owned()),
        ("BBB_SECRET", "not-the-secret".to_owned()),
        ("PUBLISHED_DIR", bbb.path().join("published").display().to_string()),
        ("WORK_DIR", bbb.path().join("work").display().to_string()),
        ("STATUS_DIR", bbb.path().join("status").display().to_string()),
    ];
    let (ok, output) = run_script(&env, &["-m", &rec.record_id]).await;
    assert!(!ok, "{output}");
    assert!(output.contains("HTTP 401"), "{output}");
    let kept = bbb.path().join("work").join(rec.file_name());
    assert!(kept.is_file(), "the archive must be kept for a later run");
    assert!(!bbb.path().join("status").join(format!("{}-sender.done", rec.record_id)).exists());
    assert!(spool_entries(&app.dirs().spool()).is_empty());

    // Run again by hand with the right secret, on the kept archive.
    let mut env = env.to_vec();
    env[2].1 = app.fleet.iter().next().unwrap().secret();
    let (ok, output) = run_script(&env, &[kept.to_str().unwrap()]).await;
    assert!(ok, "{output}");
    assert!(!kept.exists());
    assert_eq!(spool_entries(&app.dirs().spool()), [rec.file_name()]);
    app.stop().await;
}

#[tokio::test]
async fn forged_stale_replayed_and_tampered_uploads_are_refused() {
    let app = upload_app(&[("RECORDING_UPLOAD_WINDOW", "60")]).await;
    let secret = app.fleet.iter().next().unwrap().secret();
    let rec = RecordingArchive::new("upload-room-3", "Angriffe");
    let name = rec.file_name();
    let body = rec.tar();

    // Another secret, an unknown server, a stale or future timestamp.
    let forged = signed_headers(&name, "bbb-1", "guessed", &body, now());
    assert_eq!(put(&app, &name, &forged, body.clone()).await.status, 401);
    let unknown = signed_headers(&name, "bbb-9", &secret, &body, now());
    assert_eq!(put(&app, &name, &unknown, body.clone()).await.status, 401);
    let stale = signed_headers(&name, "bbb-1", &secret, &body, now() - 120);
    let reply = put(&app, &name, &stale, body.clone()).await;
    assert_eq!(reply.status, 401);
    assert!(reply.body.contains("RECORDING_UPLOAD_WINDOW"), "{}", reply.body);
    let future = signed_headers(&name, "bbb-1", &secret, &body, now() + 120);
    assert_eq!(put(&app, &name, &future, body.clone()).await.status, 401);
    // Signed for another archive name.
    let other_name = signed_headers("other-1700000000000.tar", "bbb-1", &secret, &body, now());
    assert_eq!(put(&app, &name, &other_name, body.clone()).await.status, 401);
    // Missing headers.
    assert_eq!(put(&app, &name, &forged[..2], body.clone()).await.status, 401);
    // Names the importer would not take, or that leave the spool.
    for bad in [".hidden.tar", "..%2Fescape.tar", "x.tgz"] {
        let headers = signed_headers(bad, "bbb-1", &secret, &body, now());
        assert_eq!(put(&app, bad, &headers, body.clone()).await.status, 400, "{bad}");
    }

    // Signed right, but the body is not the archive that was signed.
    let mut tampered = body.clone();
    tampered[600] ^= 0x55;
    let headers = signed_headers(&name, "bbb-1", &secret, &body, now() - 2);
    let reply = put(&app, &name, &headers, tampered).await;
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert!(spool_entries(&app.dirs().spool()).is_empty(), "{:?}", spool_entries(&app.dirs().spool()));

    // The genuine upload, then the same request again: a replay. (A
    // signed request is used up even when its upload fails: the tampered
    // one above had another timestamp.)
    let headers = signed_headers(&name, "bbb-1", &secret, &body, now());
    let reply = put(&app, &name, &headers, body.clone()).await;
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert_eq!(std::fs::read(app.dirs().spool().join(&name)).unwrap(), body);
    let replay = put(&app, &name, &headers, body.clone()).await;
    assert_eq!(replay.status, 409, "{}", replay.body);
    // A fresh signature for the same archive: already received.
    let retry = signed_headers(&name, "bbb-1", &secret, &body, now() + 3);
    let reply = put(&app, &name, &retry, body.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(spool_entries(&app.dirs().spool()), [name]);
    app.stop().await;
}

#[tokio::test]
async fn uploads_are_refused_while_disabled() {
    let app = TestApp::builder().servers(1).recordings().start().await;
    let secret = app.fleet.iter().next().unwrap().secret();
    let rec = RecordingArchive::new("upload-room-4", "Aus");
    let body = rec.tar();
    let headers = signed_headers(&rec.file_name(), "bbb-1", &secret, &body, now());
    assert_eq!(put(&app, &rec.file_name(), &headers, body).await.status, 404);
    assert!(spool_entries(&app.dirs().spool()).is_empty());
    app.stop().await;
}

/// Sends a request head by hand and reads the answer, without sending a
/// body.
async fn head_only(app: &TestApp, head: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), read_http_response(&mut stream))
        .await
        .expect("an answer without the body")
}

fn raw_head(name: &str, length: Option<u64>, headers: &[(String, String)]) -> String {
    let mut head = format!("PUT /scalelite/upload/{name} HTTP/1.1\r\nHost: lb.example.org\r\nExpect: 100-continue\r\n");
    match length {
        Some(n) => head.push_str(&format!("Content-Length: {n}\r\n")),
        None => head.push_str("Transfer-Encoding: chunked\r\n"),
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head
}

#[tokio::test]
async fn oversized_and_unauthenticated_uploads_are_answered_before_the_body_is_sent() {
    let app = upload_app(&[("RECORDING_UPLOAD_MAX_BYTES", "5000000")]).await;
    let secret = app.fleet.iter().next().unwrap().secret();
    let rec = RecordingArchive::new("upload-room-5", "Zu groß");
    let name = rec.file_name();
    // Signed for a 6 MB archive: over the limit. The client waits for
    // `100 Continue` before sending the body; the answer comes instead.
    let big = vec![0u8; 6_000_000];
    let headers = signed_headers(&name, "bbb-1", &secret, &big, now());
    let (status, text) = head_only(&app, &raw_head(&name, Some(6_000_000), &headers)).await;
    assert_eq!(status, 413, "{text}");
    assert!(!text.contains("100 Continue"), "the body was asked for: {text}");
    // No Content-Length: the size cannot be checked before reading.
    let (status, text) = head_only(&app, &raw_head(&name, None, &headers)).await;
    assert_eq!(status, 411, "{text}");
    assert!(!text.contains("100 Continue"), "{text}");
    // Within the limit, but signed with another secret.
    let body = rec.tar();
    let forged = signed_headers(&name, "bbb-1", "guessed", &body, now());
    let (status, text) = head_only(&app, &raw_head(&name, Some(body.len() as u64), &forged)).await;
    assert_eq!(status, 401, "{text}");
    assert!(!text.contains("100 Continue"), "{text}");
    assert!(spool_entries(&app.dirs().spool()).is_empty());
    app.stop().await;
}

#[tokio::test]
async fn an_upload_that_does_not_fit_the_spool_is_answered_507_and_retried_by_the_script() {
    // A reserve larger than any disk: no upload fits.
    let full = upload_app(&[("RECORDING_UPLOAD_MIN_FREE_MB", "1000000000000")]).await;
    let secret = full.fleet.iter().next().unwrap().secret();
    let rec = RecordingArchive::new("upload-room-full", "Kein Platz");
    let name = rec.file_name();
    let body = rec.tar();
    // Answered from the head: the body is never asked for.
    let headers = signed_headers(&name, "bbb-1", &secret, &body, now());
    let (status, text) = head_only(&full, &raw_head(&name, Some(body.len() as u64), &headers)).await;
    assert_eq!(status, 507, "{text}");
    assert!(!text.contains("100 Continue"), "the body was asked for: {text}");
    assert!(text.contains("RECORDING_UPLOAD_MIN_FREE_MB") && text.contains("MiB free"), "{text}");
    // A client that sends the body anyway gets the same answer.
    let headers = signed_headers(&name, "bbb-1", &secret, &body, now() + 1);
    let reply = put(&full, &name, &headers, body.clone()).await;
    assert_eq!(reply.status, 507, "{}", reply.body);
    assert!(spool_entries(&full.dirs().spool()).is_empty(), "{:?}", spool_entries(&full.dirs().spool()));

    // The BBB-side script treats 507 as "later": it backs off, retries,
    // and keeps the archive when it gives up.
    let bbb = tempfile::tempdir().unwrap();
    rec.write_published_tree(&bbb.path().join("published"));
    let mut env = vec![
        ("SCALELITE_URL", full.origin()),
        ("BBB_SERVER", "bbb-1".to_owned()),
        ("BBB_SECRET", secret.clone()),
        ("PUBLISHED_DIR", bbb.path().join("published").display().to_string()),
        ("WORK_DIR", bbb.path().join("work").display().to_string()),
        ("STATUS_DIR", bbb.path().join("status").display().to_string()),
        ("UPLOAD_ATTEMPTS", "2".to_owned()),
        ("UPLOAD_BACKOFF", "1".to_owned()),
    ];
    let (ok, output) = run_script(&env, &["-m", &rec.record_id]).await;
    assert!(!ok, "{output}");
    assert_eq!(output.matches("HTTP 507").count(), 2, "{output}");
    assert!(output.contains("attempt 1 of 2 failed") && output.contains("giving up after 2 attempts"), "{output}");
    let kept = bbb.path().join("work").join(rec.file_name());
    assert!(kept.is_file(), "the archive must be kept for a later run");
    assert!(!bbb.path().join("status").join(format!("{}-sender.done", rec.record_id)).exists());
    assert!(spool_entries(&full.dirs().spool()).is_empty());
    full.stop().await;

    // With room (the default reserve), the kept archive goes through.
    let roomy = upload_app(&[]).await;
    env[0].1 = roomy.origin();
    env[2].1 = roomy.fleet.iter().next().unwrap().secret();
    let (ok, output) = run_script(&env, &[kept.to_str().unwrap()]).await;
    assert!(ok && output.contains("HTTP 201"), "{output}");
    assert!(!kept.exists());
    assert_eq!(spool_entries(&roomy.dirs().spool()), [name]);
    roomy.stop().await;
}

fn temp_files(spool: &Path) -> Vec<PathBuf> {
    spool_entries(spool).into_iter().filter(|n| n.starts_with(".upload-")).map(|n| spool.join(n)).collect()
}

#[tokio::test]
async fn a_connection_dropped_mid_upload_leaves_nothing_in_the_spool() {
    let app = upload_app(&[]).await;
    let secret = app.fleet.iter().next().unwrap().secret();
    let rec = RecordingArchive::new("upload-room-6", "Abgebrochen");
    let name = rec.file_name();
    let body = rec.tar();
    let headers = signed_headers(&name, "bbb-1", &secret, &body, now());
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = raw_head(&name, Some(body.len() as u64), &headers).replace("Expect: 100-continue\r\n", "");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..body.len() / 2]).await.unwrap();
    stream.flush().await.unwrap();
    // The upload is under way: its hidden temporary file exists.
    eventually_with(Duration::from_secs(10), "the upload's temporary file", || async {
        !temp_files(&app.dirs().spool()).is_empty()
    })
    .await;
    drop(stream);
    eventually_with(Duration::from_secs(10), "the temporary file is removed", || async {
        spool_entries(&app.dirs().spool()).is_empty()
    })
    .await;
    // The next attempt, signed anew as every attempt is, goes through.
    let headers = signed_headers(&name, "bbb-1", &secret, &body, now() + 1);
    assert_eq!(put(&app, &name, &headers, body.clone()).await.status, 201);
    assert_eq!(spool_entries(&app.dirs().spool()), [name]);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_uploads_of_one_name_leave_one_whole_archive() {
    let app = upload_app(&[]).await;
    let secret = app.fleet.iter().next().unwrap().secret();
    let first = RecordingArchive::new("upload-room-7", "Erste Fassung");
    let name = first.file_name();
    // The same recording rebuilt: same name, other content.
    let second = first.clone().meta("bbb-context", "zweite Fassung");
    assert_eq!(second.file_name(), name);
    let (a, b) = (first.tar(), second.tar());
    assert_ne!(a, b);
    let ha = signed_headers(&name, "bbb-1", &secret, &a, now());
    let hb = signed_headers(&name, "bbb-1", &secret, &b, now());
    let (ra, rb) = tokio::join!(put(&app, &name, &ha, a.clone()), put(&app, &name, &hb, b.clone()));
    assert_eq!((ra.status, rb.status), (201, 201), "{} / {}", ra.body, rb.body);
    let kept = std::fs::read(app.dirs().spool().join(&name)).unwrap();
    assert!(kept == a || kept == b, "the spool holds a mix of both uploads");
    assert_eq!(spool_entries(&app.dirs().spool()), [name]);
    app.stop().await;
}

/// Issue 17 end to end: a BBB server uploads over HTTPS into a balancer
/// that keeps recordings in S3; the recording is listed within seconds,
/// plays from the bucket through the balancer, and the retention rule
/// removes it from the bucket.
#[tokio::test]
async fn an_uploaded_recording_plays_from_s3_and_is_pruned_by_retention() {
    const BUCKET: &str = "uploaded-recordings";
    let s3 = scalelite_tests::TestS3::start(BUCKET).await;
    let mut extra: Vec<(&str, String)> = s3.env(BUCKET).into_iter().collect();
    extra.push(("RECORDING_RETENTION_DAYS", "30".into()));
    let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let app = upload_app(&extra).await;
    let ca = TestCa::generate();
    let bbb = tempfile::tempdir().unwrap();
    let nginx = https_nginx(&app, &ca, bbb.path()).await;
    let (importer, running) = polling_importer(&app);

    // A recording from 2020: older than the 30-day rule.
    let meeting_id = "upload-s3-room";
    let mut rec = RecordingArchive::new(meeting_id, "Aus dem Eimer").formats(&[Format::Presentation]).file(
        Format::Presentation,
        "slides/one.svg",
        "<svg>one</svg>",
    );
    rec.start_ms = 1_600_000_000_000;
    rec.end_ms = rec.start_ms + 60_000;
    let published = bbb.path().join("published");
    rec.write_published_tree(&published);
    let env = https_script_env(&app, &nginx, &ca, bbb.path());
    let (ok, output) = run_script(&env, &["-m", &rec.record_id]).await;
    assert!(ok, "the upload failed:\n{output}\nnginx: {}", nginx.error_log());

    eventually_with(Duration::from_secs(10), "getRecordings lists the uploaded recording", || async {
        listed(&app, meeting_id).await == [rec.record_id.clone()]
    })
    .await;
    // Listed only once its files are in the bucket (they go up before the
    // database row commits), and nowhere on the balancer's disk.
    let key = format!("published/presentation/{}/slides/one.svg", rec.record_id);
    assert!(s3.keys(BUCKET, "").await.contains(&key), "listed before its files are in the bucket");
    assert!(!app.dirs().published().join("presentation").join(&rec.record_id).exists());

    // Played through the balancer: a redirect to a presigned URL of the bucket.
    let file = format!("{}/presentation/{}/slides/one.svg", app.origin(), rec.record_id);
    let redirect = http_request(Method::GET, &file, &[], Bytes::new(), Duration::from_secs(10)).await.unwrap();
    assert_eq!(redirect.status, 307, "{}", redirect.body);
    let presigned = redirect.location.expect("a presigned URL");
    assert!(presigned.starts_with(&s3.endpoint()), "{presigned}");
    let fetched = http_request(Method::GET, &presigned, &[], Bytes::new(), Duration::from_secs(10)).await.unwrap();
    assert_eq!((fetched.status, fetched.body.as_str()), (200, "<svg>one</svg>"));

    // The retention rule deletes it: gone from the bucket and the listing.
    running.stop().await;
    let report = importer.apply_retention().await.unwrap().expect("a retention rule");
    assert_eq!(report.deleted, 1, "{report:?}");
    assert_eq!(s3.keys(BUCKET, "").await, Vec::<String>::new());
    let reply =
        app.client().get("getRecordings", &[("meetingID", meeting_id), ("state", "published,unpublished")]).await;
    assert!(reply.is_success() && !reply.body.contains(&rec.record_id), "{}", reply.body);
    app.stop().await;
}
