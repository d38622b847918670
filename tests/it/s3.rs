//! Recordings in an S3-compatible bucket (`S3_RECORDING`, Scalelite's
//! layout `published|unpublished/<format>/<record_id>/<file>`), against
//! moto's server mode started by the harness (tests/src/s3.rs), on the
//! backend under test: imported into the bucket with nothing left on local
//! disk, listed, played through the balancer by a redirect to a presigned
//! URL (protected recordings keep their one-time token and cookie),
//! unpublished, published and deleted in the bucket; the per-tenant key
//! prefix; the retention rules and `scalelite-admin recordings prune`
//! acting on the bucket; CloudFront signed cookies; multipart uploads; a
//! recording listed only once its objects are in the bucket (a bucket that
//! stalls or refuses uploads in front of moto), re-imports after an
//! interrupted one; moves of objects above the single-copy limit by
//! multipart copy, and a refused part copy changing nothing; credentials
//! from a role (container endpoint, `IMDSv2`), a web identity (STS
//! `AssumeRoleWithWebIdentity`, moto's or a fake), a shared credentials
//! file profile, a shared config file profile's `credential_process`, and
//! a profile's role assumed with STS `AssumeRole` (moto's or a fake) with
//! the credentials of its `source_profile`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use scalelite_core::xml::Element;
use scalelite_recording_importer::{ArchiveOutcome, Importer, Settings};
use scalelite_tests::{Format, RecordingArchive, Reply, S3Gate, TestApp, TestS3, UploadMode, http_request};

const BUCKET: &str = "scalelite-recordings";
const KEY: &str = "0c9e2f4a6b8d1e3f5a7c9e1b3d5f7a9c2e4b6d8f0a1c3e5a7b9d1f3a5c7e9b1d";

async fn send(url: &str, headers: &[(&str, &str)]) -> Reply {
    http_request(Method::GET, url, headers, Bytes::new(), Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

async fn listed(app: &TestApp, meeting_id: &str, state: &str) -> Vec<Element> {
    let reply = app.client().get("getRecordings", &[("meetingID", meeting_id), ("state", state)]).await;
    assert!(reply.is_success(), "{}", reply.body);
    let xml = reply.xml();
    xml.child("recordings").map(|list| list.children_named("recording").cloned().collect()).unwrap_or_default()
}

async fn app_on(s3: &TestS3, extra: &[(&str, &str)]) -> TestApp {
    let mut builder = TestApp::builder().servers(1).recordings();
    for (name, value) in s3.env(BUCKET) {
        builder = builder.env(name, value);
    }
    for (name, value) in extra {
        builder = builder.env(name, *value);
    }
    builder.start().await
}

fn importer(app: &TestApp) -> Importer {
    Importer::new(Settings::from_config(&app.state.config), app.recording_store(), Some(Arc::clone(app.store())))
}

/// `<prefix><member path>` of every file of `rec`, sorted.
fn keys_of(rec: &RecordingArchive, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = rec.members().into_iter().map(|(path, _)| format!("{prefix}{path}")).collect();
    keys.sort();
    keys
}

/// Regular files left below the recording directories (spool lock aside).
fn local_files(app: &TestApp) -> Vec<String> {
    app.dirs().files().into_iter().filter(|f| !f.ends_with(".scalelite-importer.lock")).collect()
}

#[tokio::test]
async fn a_recording_lives_in_the_bucket_and_plays_from_a_presigned_url() {
    let s3 = TestS3::start(BUCKET).await;
    let app = app_on(&s3, &[("PROTECTED_RECORDINGS_ENABLED", "true"), ("SECRET_KEY_BASE", KEY)]).await;
    let meeting_id = "s3-room";
    let rec = RecordingArchive::new(meeting_id, "Lecture 1").formats(&[Format::Presentation, Format::Podcast]).file(
        Format::Presentation,
        "slides/a b.svg",
        "<svg/>",
    );
    rec.drop_into(&app.dirs().spool());
    let report = importer(&app).import_pending_once().await.unwrap();
    assert!(matches!(report.outcomes[..], [ArchiveOutcome::Imported(_)]), "{report:?}");

    // Every file is an object under published/, with its content type;
    // nothing stays on local disk (no archive, no tree, no work files).
    assert_eq!(s3.keys(BUCKET, "").await, keys_of(&rec, "published/"));
    let metadata = format!("published/presentation/{}/metadata.xml", rec.record_id);
    let (body, content_type) = s3.object(BUCKET, &metadata).await.expect("metadata.xml in the bucket");
    let expected = rec.files(Format::Presentation).into_iter().find(|(p, _)| p == "metadata.xml").unwrap().1;
    assert_eq!(body.as_bytes(), expected.as_slice());
    assert_eq!(content_type.as_deref(), Some("application/xml"));
    assert_eq!(local_files(&app), Vec::<String>::new());

    // Listed by getRecordings, protected.
    let recording = listed(&app, meeting_id, "any").await.remove(0);
    assert_eq!(recording.text_at("recordID").as_deref(), Some(rec.record_id.as_str()));
    assert_eq!(recording.text_at("protected").as_deref(), Some("true"));

    // No cookie, no file; the one-time URL sets the cookie; the file then
    // redirects to a short-lived presigned URL the bucket answers.
    let file = |format: &str, path: &str| format!("{}/{format}/{}/{path}", app.origin(), rec.record_id);
    assert_eq!(send(&file("presentation", "metadata.xml"), &[]).await.status, 404);
    let one_time = recording
        .child("playback")
        .and_then(|p| p.children_named("format").find(|f| f.text_at("type").as_deref() == Some("presentation")))
        .and_then(|f| f.text_at("url"))
        .expect("a presentation playback URL");
    let play = send(&one_time, &[]).await;
    assert_eq!(play.status, 307, "{one_time}: {}", play.body);
    let cookie = play.header("set-cookie").expect("a playback cookie").split(';').next().unwrap().to_owned();
    assert_eq!(send(&one_time, &[]).await.status, 404, "the token opens the recording once");
    let redirect = send(&file("presentation", "metadata.xml"), &[("cookie", &cookie)]).await;
    assert_eq!(redirect.status, 307, "{}", redirect.body);
    assert_eq!(redirect.header("cache-control"), Some("no-store"));
    let presigned = redirect.location.clone().expect("a presigned URL");
    assert!(presigned.starts_with(&format!("{}/{BUCKET}/published/presentation/", s3.endpoint())), "{presigned}");
    assert!(presigned.contains("X-Amz-Signature=") && presigned.contains("X-Amz-Expires=300"), "{presigned}");
    let fetched = send(&presigned, &[]).await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body.as_bytes(), expected.as_slice());
    // An encoded name reaches its object; a directory is its index.html.
    let svg = send(&file("presentation", "slides/a%20b.svg"), &[("cookie", &cookie)]).await;
    assert_eq!(send(&svg.location.expect("a presigned URL"), &[]).await.body, "<svg/>");
    let index = send(&file("presentation", ""), &[("cookie", &cookie)]).await;
    assert!(index.location.expect("a presigned URL").contains("/index.html?"));
    // A download format's URL asks the bucket for an attachment.
    let unprotect = app.client().get("updateRecordings", &[("recordID", &rec.record_id), ("protect", "false")]).await;
    assert_eq!(unprotect.text_at("updated").as_deref(), Some("true"), "{}", unprotect.body);
    let audio = send(&file("podcast", "audio/audio.ogg"), &[]).await;
    assert_eq!(audio.status, 307);
    assert!(audio.location.unwrap().contains("response-content-disposition=attachment"));

    // Unpublish: the objects move under unpublished/ and are not played.
    let unpublish = app.client().get("publishRecordings", &[("recordID", &rec.record_id), ("publish", "false")]).await;
    assert_eq!(unpublish.text_at("published").as_deref(), Some("false"), "{}", unpublish.body);
    assert_eq!(s3.keys(BUCKET, "").await, keys_of(&rec, "unpublished/"));
    assert_eq!(send(&file("presentation", "metadata.xml"), &[]).await.status, 404);

    // Publish: back under published/ and played.
    let publish = app.client().get("publishRecordings", &[("recordID", &rec.record_id), ("publish", "true")]).await;
    assert_eq!(publish.text_at("published").as_deref(), Some("true"), "{}", publish.body);
    assert_eq!(s3.keys(BUCKET, "").await, keys_of(&rec, "published/"));
    let again = send(&file("presentation", "metadata.xml"), &[]).await;
    assert_eq!(send(&again.location.expect("a presigned URL"), &[]).await.body.as_bytes(), expected.as_slice());

    // Delete: no object left, nothing played.
    let delete = app.client().get("deleteRecordings", &[("recordID", &rec.record_id)]).await;
    assert_eq!(delete.text_at("deleted").as_deref(), Some("true"), "{}", delete.body);
    assert_eq!(s3.keys(BUCKET, "").await, Vec::<String>::new());
    assert_eq!(send(&file("presentation", "metadata.xml"), &[]).await.status, 404);
}

#[tokio::test]
async fn tenant_prefixes_and_retention_act_on_the_bucket() {
    let s3 = TestS3::start(BUCKET).await;
    let app = app_on(&s3, &[("S3_TENANT_PREFIX", "tenants/{tenant}/"), ("RECORDING_RETENTION_DAYS", "30")]).await;
    let mut old = RecordingArchive::new("tenant-room", "Old").meta("tenant-id", "t1");
    old.start_ms = 1_600_000_000_000;
    old.end_ms = old.start_ms + 60_000;
    let fresh_start = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let mut fresh = RecordingArchive::new("plain-room", "Fresh");
    fresh.start_ms = fresh_start;
    fresh.end_ms = fresh_start + 60_000;
    old.drop_into(&app.dirs().spool());
    fresh.drop_into(&app.dirs().spool());
    let importer = importer(&app);
    let report = importer.import_pending_once().await.unwrap();
    assert!(
        report.outcomes.iter().all(|o| matches!(o, ArchiveOutcome::Imported(_))) && report.outcomes.len() == 2,
        "{report:?}"
    );

    // The tenant's recording is under its prefix; one without a tenant at
    // the root, as Scalelite stores it.
    assert_eq!(s3.keys(BUCKET, "tenants/").await, keys_of(&old, "tenants/t1/published/"));
    assert_eq!(s3.keys(BUCKET, "published/").await, keys_of(&fresh, "published/"));
    let played = send(&format!("{}/presentation/{}/metadata.xml", app.origin(), old.record_id), &[]).await;
    assert_eq!(played.status, 307);
    assert!(played.location.unwrap().contains(&format!("/{BUCKET}/tenants/t1/published/presentation/")));

    // The retention rule deletes the old recording's objects, and only them.
    let retention = importer.apply_retention().await.unwrap().expect("a retention rule");
    assert_eq!(retention.deleted, 1, "{retention:?}");
    assert_eq!(s3.keys(BUCKET, "tenants/").await, Vec::<String>::new());
    assert_eq!(s3.keys(BUCKET, "").await, keys_of(&fresh, "published/"));
    assert!(listed(&app, "tenant-room", "published,unpublished").await.is_empty());
}

/// Runs `openssl` with `args` in `dir`, panicking with its output on failure.
fn openssl(dir: &std::path::Path, args: &[&str]) -> Vec<u8> {
    let output = std::process::Command::new("openssl").args(args).current_dir(dir).output().expect("openssl runs");
    assert!(output.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    output.stdout
}

#[tokio::test]
async fn with_cloudfront_pages_redirect_there_with_signed_cookies() {
    let keys = tempfile::tempdir().unwrap();
    openssl(keys.path(), &["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "key.pem"]);
    openssl(keys.path(), &["pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"]);
    let key_b64 = String::from_utf8(openssl(keys.path(), &["base64", "-A", "-in", "key.pem"])).unwrap();
    let s3 = TestS3::start(BUCKET).await;
    let cdn = "https://d111111abcdef8.cloudfront.net";
    let app =
        app_on(&s3, &[("CLOUDFRONT_URL", cdn), ("CF_KEY_PAIR_ID", "K2JCJMDEHXQW5F"), ("CF_PRIVATE_KEY_B64", &key_b64)])
            .await;
    let rec = RecordingArchive::new("cdn-room", "Lecture").formats(&[Format::Video]);
    rec.drop_into(&app.dirs().spool());
    importer(&app).import_pending_once().await.unwrap();
    assert_eq!(s3.keys(BUCKET, "").await, keys_of(&rec, "published/"));

    // The player page (a directory, asked for as HTML) goes to CloudFront,
    // with the three cookies for the recording's prefix on the parent
    // domain, as Scalelite sets them.
    let page = format!("{}/video/{}/", app.origin(), rec.record_id);
    let host = "sl.example.org";
    let reply = send(&page, &[("accept", "text/html"), ("host", host), ("x-forwarded-proto", "https")]).await;
    assert_eq!(reply.status, 307, "{}", reply.body);
    assert_eq!(reply.location, Some(format!("{cdn}/published/video/{}/index.html", rec.record_id)));
    let cookies: Vec<String> =
        reply.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert_eq!(cookies.len(), 3, "{cookies:?}");
    for cookie in &cookies {
        assert!(cookie.contains("; Domain=.example.org; Path=/;") && cookie.contains("; Secure; HttpOnly"), "{cookie}");
    }
    let value = |name: &str| {
        let prefix = format!("{name}=");
        cookies.iter().find_map(|c| c.split(';').next().unwrap().strip_prefix(&prefix).map(str::to_owned)).unwrap()
    };
    assert_eq!(value("CloudFront-Key-Pair-Id"), "K2JCJMDEHXQW5F");
    // The policy names the recording's objects; the signature is RSA-SHA1
    // of it with the configured key (checked with openssl).
    let unsafe_b64 = |v: String| v.replace('-', "+").replace('_', "=").replace('~', "/");
    std::fs::write(keys.path().join("policy.b64"), unsafe_b64(value("CloudFront-Policy"))).unwrap();
    std::fs::write(keys.path().join("sig.b64"), unsafe_b64(value("CloudFront-Signature"))).unwrap();
    openssl(keys.path(), &["base64", "-d", "-A", "-in", "policy.b64", "-out", "policy.json"]);
    openssl(keys.path(), &["base64", "-d", "-A", "-in", "sig.b64", "-out", "sig.bin"]);
    let policy: serde_json::Value =
        serde_json::from_slice(&std::fs::read(keys.path().join("policy.json")).unwrap()).unwrap();
    let statement = &policy["Statement"][0];
    assert_eq!(statement["Resource"], format!("{cdn}/published/video/{}/*", rec.record_id));
    assert!(statement["Condition"]["DateLessThan"]["AWS:EpochTime"].as_u64().is_some(), "{policy}");
    let verified =
        openssl(keys.path(), &["dgst", "-sha1", "-verify", "pub.pem", "-signature", "sig.bin", "policy.json"]);
    assert!(String::from_utf8_lossy(&verified).contains("Verified OK"));

    // Other files still get presigned URLs of the bucket.
    let media = send(&format!("{}/video/{}/video-0.m4v", app.origin(), rec.record_id), &[("host", host)]).await;
    assert_eq!(media.status, 307);
    assert!(media.location.unwrap().starts_with(&format!("{}/{BUCKET}/published/video/", s3.endpoint())));
    assert!(media.headers.get("set-cookie").is_none());
}

#[tokio::test]
async fn big_files_go_up_in_parts_and_move_server_side() {
    use scalelite_core::config::{Config, Env};
    use scalelite_store::s3::{PART_SIZE, S3Storage};

    let s3 = TestS3::start(BUCKET).await;
    let env = Env::from_pairs(s3.env(BUCKET));
    let storage = S3Storage::new(Config::from_env(&env).unwrap().recordings.s3.as_ref().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let size = PART_SIZE + PART_SIZE / 2 + 7;
    let content: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    std::fs::create_dir_all(dir.path().join("video")).unwrap();
    std::fs::write(dir.path().join("video/webcams.webm"), &content).unwrap();
    std::fs::write(dir.path().join("metadata.xml"), "<recording/>").unwrap();

    let keys = storage.upload_dir(dir.path(), "published/video/r-1/").await.unwrap();
    assert_eq!(keys.len(), 2);
    let mut sizes = s3.sizes(BUCKET, "published/").await;
    sizes.sort();
    assert_eq!(
        sizes,
        [
            ("published/video/r-1/metadata.xml".to_owned(), 12),
            ("published/video/r-1/video/webcams.webm".to_owned(), size as u64)
        ]
    );
    // The presigned URL serves the whole file.
    let url = storage.presigned_get("published/video/r-1/video/webcams.webm", "video").await.unwrap();
    let fetched = send(&url, &[]).await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.header("content-length"), Some(size.to_string().as_str()));
    assert_eq!(fetched.header("content-type"), Some("video/webm"));

    // Unpublishing moves big objects too.
    assert_eq!(storage.move_prefix("published/video/r-1/", "unpublished/video/r-1/").await.unwrap(), 2);
    let mut sizes = s3.sizes(BUCKET, "").await;
    sizes.sort();
    assert_eq!(sizes[1], ("unpublished/video/r-1/video/webcams.webm".to_owned(), size as u64));
    assert_eq!(sizes.len(), 2);
}

/// `len` printable ASCII bytes that differ from place to place (a part
/// copied to the wrong offset shows; lossy text is the bytes themselves).
fn lecture_bytes(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x2545_f491;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            b'!' + (x % 94) as u8
        })
        .collect()
}

/// What a viewer gets for a recording file: the bucket's bytes behind the
/// redirect, `None` when the balancer answers 404.
async fn played(url: &str) -> Option<String> {
    let reply = send(url, &[]).await;
    if reply.status == 404 {
        return None;
    }
    assert_eq!(reply.status, 307, "{url}: {}", reply.body);
    let fetched = send(&reply.location.expect("a presigned URL"), &[]).await;
    assert_eq!(fetched.status, 200, "{}", fetched.body);
    Some(fetched.body)
}

#[tokio::test]
async fn objects_above_the_single_copy_limit_move_in_parts_and_a_failed_copy_changes_nothing() {
    let s3 = TestS3::start(BUCKET).await;
    let gate = S3Gate::start(&s3).await;
    let mut builder = TestApp::builder().servers(1).recordings();
    for (name, value) in gate.env(&s3, BUCKET) {
        builder = builder.env(name, value);
    }
    // Objects above 8 MiB are copied in 5 MiB parts: the lecture in three.
    let app = builder.env("S3_SINGLE_COPY_LIMIT_MB", "8").env("S3_COPY_PART_SIZE_MB", "5").start().await;
    let size = 12 * 1024 * 1024 + 12_345;
    let lecture = lecture_bytes(size);
    let meeting_id = "long-lecture-room";
    let rec = RecordingArchive::new(meeting_id, "Long lecture").formats(&[Format::Video]).file(
        Format::Video,
        "lecture.webm",
        lecture.clone(),
    );
    rec.drop_into(&app.dirs().spool());
    let report = importer(&app).import_pending_once().await.unwrap();
    assert!(matches!(report.outcomes[..], [ArchiveOutcome::Imported(_)]), "{report:?}");
    let lecture_key = |state: &str| format!("{state}/video/{}/lecture.webm", rec.record_id);
    let file = format!("{}/video/{}/lecture.webm", app.origin(), rec.record_id);
    assert_eq!(played(&file).await.as_deref().map(str::as_bytes), Some(lecture.as_slice()));

    // Unpublish, publish, unpublish: every object ends under the new
    // state's prefix, the lecture with the same bytes and content type;
    // nothing stays under the old one, no multipart upload stays open.
    for (publish, state, other) in [
        ("false", "unpublished", "published"),
        ("true", "published", "unpublished"),
        ("false", "unpublished", "published"),
    ] {
        let copied_parts = gate.part_copies_forwarded();
        let reply = app.client().get("publishRecordings", &[("recordID", &rec.record_id), ("publish", publish)]).await;
        assert_eq!(reply.text_at("published").as_deref(), Some(publish), "{}", reply.body);
        assert_eq!(s3.keys(BUCKET, "").await, keys_of(&rec, &format!("{state}/")));
        assert!(s3.keys(BUCKET, &format!("{other}/")).await.is_empty());
        assert_eq!(gate.part_copies_forwarded() - copied_parts, 3, "the lecture is copied in three parts");
        let (body, content_type) = s3.object(BUCKET, &lecture_key(state)).await.expect("the lecture moved");
        assert_eq!((body.len(), body.as_bytes() == lecture.as_slice()), (size, true));
        assert_eq!(content_type.as_deref(), Some("video/webm"));
        assert_eq!(s3.open_uploads(BUCKET).await, Vec::<String>::new());
        let listed = listed(&app, meeting_id, "any").await;
        assert_eq!(listed[0].text_at("published").as_deref(), Some(publish));
    }
    assert_eq!(played(&file).await, None, "an unpublished recording is not played");
    let reply = app.client().get("publishRecordings", &[("recordID", &rec.record_id), ("publish", "true")]).await;
    assert_eq!(reply.text_at("published").as_deref(), Some("true"), "{}", reply.body);
    assert_eq!(played(&file).await.as_deref().map(str::as_bytes), Some(lecture.as_slice()));

    // The bucket copies the first part, then refuses: the unpublish fails,
    // the recording stays published and playable with every object where
    // it was, the multipart copy is aborted and the copies made before it
    // are gone again.
    gate.set_part_copies(UploadMode::FailAfter(1));
    let reply = app.client().get("publishRecordings", &[("recordID", &rec.record_id), ("publish", "false")]).await;
    assert_eq!(reply.text_at("returncode").as_deref(), Some("FAILED"), "{}", reply.body);
    assert_eq!(s3.keys(BUCKET, "").await, keys_of(&rec, "published/"));
    assert_eq!(s3.open_uploads(BUCKET).await, Vec::<String>::new(), "the multipart copy is aborted");
    assert_eq!(listed(&app, meeting_id, "any").await[0].text_at("published").as_deref(), Some("true"));
    assert_eq!(played(&file).await.as_deref().map(str::as_bytes), Some(lecture.as_slice()));

    // Once the bucket copies again, the unpublish goes through.
    gate.set_part_copies(UploadMode::Pass);
    let reply = app.client().get("publishRecordings", &[("recordID", &rec.record_id), ("publish", "false")]).await;
    assert_eq!(reply.text_at("published").as_deref(), Some("false"), "{}", reply.body);
    assert_eq!(s3.keys(BUCKET, "").await, keys_of(&rec, "unpublished/"));
    let (body, _) = s3.object(BUCKET, &lecture_key("unpublished")).await.expect("the lecture moved");
    assert_eq!(body.as_bytes(), lecture.as_slice());
    assert_eq!(s3.open_uploads(BUCKET).await, Vec::<String>::new());
}

#[tokio::test]
async fn a_format_that_fails_to_move_moves_the_ones_before_it_back() {
    let s3 = TestS3::start(BUCKET).await;
    let gate = S3Gate::start(&s3).await;
    let mut builder = TestApp::builder().servers(1).recordings();
    for (name, value) in gate.env(&s3, BUCKET) {
        builder = builder.env(name, value);
    }
    let app = builder.env("S3_SINGLE_COPY_LIMIT_MB", "8").env("S3_COPY_PART_SIZE_MB", "5").start().await;
    // The presentation (moved first: formats go in name order) has only
    // small files; the video's lecture is copied in parts, which the bucket
    // refuses.
    let lecture = lecture_bytes(12 * 1024 * 1024);
    let meeting_id = "two-format-room";
    let rec = RecordingArchive::new(meeting_id, "Two formats").formats(&[Format::Presentation, Format::Video]).file(
        Format::Video,
        "lecture.webm",
        lecture.clone(),
    );
    rec.drop_into(&app.dirs().spool());
    let report = importer(&app).import_pending_once().await.unwrap();
    assert!(matches!(report.outcomes[..], [ArchiveOutcome::Imported(_)]), "{report:?}");
    assert_eq!(s3.keys(BUCKET, "").await, keys_of(&rec, "published/"));

    gate.set_part_copies(UploadMode::FailAfter(0));
    let reply = app.client().get("publishRecordings", &[("recordID", &rec.record_id), ("publish", "false")]).await;
    assert_eq!(reply.text_at("returncode").as_deref(), Some("FAILED"), "{}", reply.body);
    // The presentation, moved before the video failed, is back under
    // published/ with everything else; the recording is still published
    // and both formats play.
    assert_eq!(s3.keys(BUCKET, "").await, keys_of(&rec, "published/"));
    assert_eq!(s3.open_uploads(BUCKET).await, Vec::<String>::new());
    assert_eq!(listed(&app, meeting_id, "any").await[0].text_at("published").as_deref(), Some("true"));
    let slides = format!("{}/presentation/{}/slides_new.xml", app.origin(), rec.record_id);
    assert!(played(&slides).await.is_some(), "the presentation plays");
    let video = format!("{}/video/{}/lecture.webm", app.origin(), rec.record_id);
    assert_eq!(played(&video).await.as_deref().map(str::as_bytes), Some(lecture.as_slice()));

    gate.set_part_copies(UploadMode::Pass);
    let reply = app.client().get("publishRecordings", &[("recordID", &rec.record_id), ("publish", "false")]).await;
    assert_eq!(reply.text_at("published").as_deref(), Some("false"), "{}", reply.body);
    assert_eq!(s3.keys(BUCKET, "").await, keys_of(&rec, "unpublished/"));
}

#[tokio::test]
async fn multipart_copies_split_objects_at_part_boundaries() {
    use scalelite_core::config::{Config, Env};
    use scalelite_store::s3::S3Storage;

    let s3 = TestS3::start(BUCKET).await;
    let gate = S3Gate::start(&s3).await;
    let mut env = gate.env(&s3, BUCKET);
    env.extend([("S3_SINGLE_COPY_LIMIT_MB", "5".to_owned()), ("S3_COPY_PART_SIZE_MB", "5".to_owned())]);
    let storage =
        S3Storage::new(Config::from_env(&Env::from_pairs(env)).unwrap().recordings.s3.as_ref().unwrap()).unwrap();
    const MIB: usize = 1024 * 1024;
    // At the limit: one CopyObject; two whole parts; two parts and a byte.
    let objects = [("at-limit.webm", 5 * MIB, 0), ("two-parts.webm", 10 * MIB, 2), ("tail.webm", 10 * MIB + 1, 3)];
    for (name, size, _) in objects {
        let content = String::from_utf8(lecture_bytes(size)).unwrap();
        s3.put_object(BUCKET, &format!("published/video/r-2/{name}"), &content).await;
    }
    let parts_before = gate.part_copies_forwarded();
    assert_eq!(storage.move_prefix("published/video/r-2/", "unpublished/video/r-2/").await.unwrap(), 3);
    assert_eq!(gate.part_copies_forwarded() - parts_before, 5);
    assert_eq!(s3.keys(BUCKET, "published/").await, Vec::<String>::new());
    for (name, size, _) in objects {
        let (body, _) = s3.object(BUCKET, &format!("unpublished/video/r-2/{name}")).await.expect("moved");
        assert_eq!((body.len(), body.as_bytes() == lecture_bytes(size).as_slice()), (size, true), "{name}");
    }
    assert_eq!(s3.open_uploads(BUCKET).await, Vec::<String>::new());

    // A refused part: the sources stay, no copy is left, the upload is
    // aborted.
    gate.set_part_copies(UploadMode::FailAfter(0));
    let error = storage.move_prefix("unpublished/video/r-2/", "published/video/r-2/").await.unwrap_err();
    assert!(error.to_string().contains("UploadPartCopy"), "{error}");
    assert_eq!(s3.keys(BUCKET, "published/").await, Vec::<String>::new());
    assert_eq!(s3.keys(BUCKET, "unpublished/").await.len(), 3);
    assert_eq!(s3.open_uploads(BUCKET).await, Vec::<String>::new());
}

#[tokio::test]
async fn an_archive_waits_in_the_spool_until_the_bucket_takes_it() {
    let s3 = TestS3::start("another-bucket").await;
    let app = app_on(&s3, &[]).await;
    let rec = RecordingArchive::new("waiting-room", "Later");
    let archive = rec.drop_into(&app.dirs().spool());
    let importer = importer(&app);
    // The bucket does not exist yet: the import is postponed, nothing lost.
    let report = importer.import_pending_once().await.unwrap();
    assert!(
        matches!(&report.outcomes[..], [ArchiveOutcome::Deferred { reason, .. }] if reason.contains("bucket")),
        "{report:?}"
    );
    assert!(archive.exists(), "the archive stays in the spool");
    s3.create_bucket(BUCKET).await;
    let report = importer.import_pending_once().await.unwrap();
    assert!(matches!(report.outcomes[..], [ArchiveOutcome::Imported(_)]), "{report:?}");
    assert!(!archive.exists());
    assert_eq!(s3.keys(BUCKET, "").await, keys_of(&rec, "published/"));
}

#[tokio::test]
async fn a_recording_is_listed_only_once_its_objects_are_in_the_bucket() {
    let s3 = TestS3::start(BUCKET).await;
    let gate = S3Gate::start(&s3).await;
    let mut builder = TestApp::builder().servers(1).recordings();
    for (name, value) in gate.env(&s3, BUCKET) {
        builder = builder.env(name, value);
    }
    let app = builder.start().await;
    let importer = importer(&app);

    // The bucket stalls the uploads: while the files are on their way the
    // recording is not listed and the archive stays in the spool.
    gate.set(UploadMode::Hold);
    let rec = RecordingArchive::new("slow-bucket-room", "Slow").formats(&[Format::Presentation, Format::Podcast]);
    let archive = rec.drop_into(&app.dirs().spool());
    let running = tokio::spawn({
        let importer = importer.clone();
        async move { importer.import_pending_once().await }
    });
    gate.await_held(1).await;
    assert!(listed(&app, "slow-bucket-room", "any").await.is_empty(), "listed before its files are in the bucket");
    assert!(archive.exists());
    assert_eq!(s3.keys(BUCKET, "").await, Vec::<String>::new());
    gate.set(UploadMode::Pass);
    let report = running.await.unwrap().unwrap();
    assert!(matches!(report.outcomes[..], [ArchiveOutcome::Imported(_)]), "{report:?}");
    assert_eq!(listed(&app, "slow-bucket-room", "any").await.len(), 1);
    assert_eq!(s3.keys(BUCKET, "").await, keys_of(&rec, "published/"));
    assert!(!archive.exists());

    // The bucket takes one file, then refuses: nothing is listed, the
    // archive waits in the spool. Something else an interrupted import
    // left lies under the recording's prefix too.
    let rec = RecordingArchive::new("refusing-bucket-room", "Refused").formats(&[Format::Presentation]);
    let prefix = format!("published/presentation/{}/", rec.record_id);
    let archive = rec.drop_into(&app.dirs().spool());
    gate.set(UploadMode::FailAfter(1));
    let report = importer.import_pending_once().await.unwrap();
    assert!(
        matches!(&report.outcomes[..], [ArchiveOutcome::Deferred { reason, .. }] if reason.contains("bucket")),
        "{report:?}"
    );
    assert!(listed(&app, "refusing-bucket-room", "any").await.is_empty(), "listed without its files");
    assert!(archive.exists(), "the archive stays in the spool");
    assert_eq!(s3.keys(BUCKET, &prefix).await.len(), 1, "one file went up");
    s3.put_object(BUCKET, &format!("{prefix}stray.txt"), "from an interrupted import").await;

    // Once the bucket takes uploads again the import completes, once: the
    // objects are exactly the archive's, the recording listed once.
    gate.set(UploadMode::Pass);
    let report = importer.import_pending_once().await.unwrap();
    assert!(matches!(report.outcomes[..], [ArchiveOutcome::Imported(_)]), "{report:?}");
    assert_eq!(listed(&app, "refusing-bucket-room", "any").await.len(), 1);
    assert_eq!(s3.keys(BUCKET, &prefix).await, keys_of(&rec, "published/"));
    assert!(!archive.exists());

    // Unpublished by an administrator, then imported again (the archive
    // sent a second time): the objects go up under unpublished/ and
    // nothing stays under published/; still one recording, unpublished.
    let unpublish = app.client().get("publishRecordings", &[("recordID", &rec.record_id), ("publish", "false")]).await;
    assert_eq!(unpublish.text_at("published").as_deref(), Some("false"), "{}", unpublish.body);
    rec.drop_into(&app.dirs().spool());
    let report = importer.import_pending_once().await.unwrap();
    assert!(matches!(&report.outcomes[..], [ArchiveOutcome::Imported(imported)] if !imported.published), "{report:?}");
    assert_eq!(s3.keys(BUCKET, &prefix).await, Vec::<String>::new());
    assert_eq!(
        s3.keys(BUCKET, &format!("unpublished/presentation/{}/", rec.record_id)).await,
        keys_of(&rec, "unpublished/")
    );
    let again = listed(&app, "refusing-bucket-room", "any").await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].text_at("published").as_deref(), Some("false"));
}

#[tokio::test]
async fn scalelite_admin_prune_measures_unpublishes_and_deletes_in_the_bucket() {
    let s3 = TestS3::start(BUCKET).await;
    let app = app_on(&s3, &[]).await;
    let mut old = RecordingArchive::new("prune-room", "Old").formats(&[Format::Presentation, Format::Video]);
    old.start_ms = 1_600_000_000_000;
    old.end_ms = old.start_ms + 60_000;
    old.drop_into(&app.dirs().spool());
    importer(&app).import_pending_once().await.unwrap();
    assert_eq!(s3.keys(BUCKET, "").await, keys_of(&old, "published/"));
    let bytes: u64 = old.members().iter().map(|(_, content)| content.len() as u64).sum();
    let admin = |args: &'static [&'static str]| crate::support::admin_with(&app.state.config, args, "");

    // The dry run measures the recording in the bucket and changes nothing.
    let json = admin(&["recordings", "prune", "--older-than", "30d", "--json"]).await.ok().json();
    assert_eq!((json["count"].as_u64(), json["size_bytes"].as_u64()), (Some(1), Some(bytes)), "{json}");
    assert_eq!(s3.keys(BUCKET, "").await, keys_of(&old, "published/"));

    // Unpublish moves the objects; delete removes them.
    let json = admin(&["recordings", "prune", "--older-than", "30d", "--action", "unpublish", "--yes", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(json["unpublished"].as_u64(), Some(1), "{json}");
    assert_eq!(s3.keys(BUCKET, "").await, keys_of(&old, "unpublished/"));
    let json = admin(&["recordings", "prune", "--older-than", "30d", "--yes", "--json"]).await.ok().json();
    assert_eq!(json["deleted"].as_u64(), Some(1), "{json}");
    assert_eq!(s3.keys(BUCKET, "").await, Vec::<String>::new());
    assert!(listed(&app, "prune-room", "published,unpublished").await.is_empty());
}

/// A balancer on the bucket with credentials from a role (no key pair).
async fn app_with_role(s3: &TestS3, extra: &[(&str, String)]) -> TestApp {
    let mut builder = TestApp::builder().servers(1).recordings();
    for (name, value) in s3.role_env(BUCKET).into_iter().chain(extra.iter().cloned()) {
        builder = builder.env(name, value);
    }
    builder.start().await
}

/// Imports one recording and follows a playback redirect to the bucket;
/// the presigned URL.
async fn import_and_play(app: &TestApp, s3: &TestS3, meeting_id: &str) -> String {
    let rec = RecordingArchive::new(meeting_id, "Role");
    rec.drop_into(&app.dirs().spool());
    let report = importer(app).import_pending_once().await.unwrap();
    assert!(matches!(report.outcomes[..], [ArchiveOutcome::Imported(_)]), "{report:?}");
    assert_eq!(s3.keys(BUCKET, "").await, keys_of(&rec, "published/"));
    let redirect = send(&format!("{}/presentation/{}/metadata.xml", app.origin(), rec.record_id), &[]).await;
    assert_eq!(redirect.status, 307, "{}", redirect.body);
    let presigned = redirect.location.expect("a presigned URL");
    let fetched = send(&presigned, &[]).await;
    assert_eq!(fetched.status, 200, "{presigned}: {}", fetched.body);
    assert!(fetched.body.contains("<recording>"), "{}", fetched.body);
    presigned
}

#[tokio::test]
async fn an_ecs_task_role_signs_imports_and_playback_and_is_refreshed_before_it_expires() {
    use scalelite_tests::FakeMetadata;
    let s3 = TestS3::start(BUCKET).await;
    // The importer's credentials last an hour; the balancer's first ones
    // expire within the refresh margin, its next ones in an hour.
    let metadata = FakeMetadata::start(&[3600, 60, 3600]).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{}\n", FakeMetadata::ECS_AUTH)).unwrap();
    let app = app_with_role(
        &s3,
        &[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", metadata.url("/ecs/v2/credentials/task-1")),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", token_file.display().to_string()),
            // The container endpoint comes first: IMDS is never asked.
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", metadata.url("")),
        ],
    )
    .await;
    // Nothing is fetched before a request needs it.
    assert_eq!(metadata.issued(), 0);

    // The importer fetches once for all its requests.
    let presigned = import_and_play(&app, &s3, "ecs-room").await;
    assert!(
        presigned.contains("X-Amz-Security-Token=fake-session-token-2")
            && presigned.contains("X-Amz-Credential=ASIAFAKE2%2F"),
        "{presigned}"
    );
    assert_eq!(metadata.issued(), 2, "one fetch by the importer, one by the balancer");
    // The balancer's credentials are about to expire: the next playback
    // request fetches new ones and signs with them; later ones reuse them.
    let record_id = s3.keys(BUCKET, "published/presentation/").await[0].split('/').nth(2).unwrap().to_owned();
    let url = format!("{}/presentation/{record_id}/metadata.xml", app.origin());
    let refreshed = send(&url, &[]).await.location.expect("a presigned URL");
    metadata.await_issued(3).await;
    assert!(refreshed.contains("X-Amz-Security-Token=fake-session-token-3"), "{refreshed}");
    assert_eq!(send(&refreshed, &[]).await.status, 200);
    let again = send(&url, &[]).await.location.expect("a presigned URL");
    assert!(again.contains("X-Amz-Security-Token=fake-session-token-3"), "{again}");
    assert_eq!(metadata.issued(), 3);
    let requests = metadata.requests();
    assert!(
        requests.iter().all(|r| r.method == "GET"
            && r.path == "/ecs/v2/credentials/task-1"
            && r.header("authorization") == Some(FakeMetadata::ECS_AUTH)),
        "{requests:?}"
    );
}

#[tokio::test]
async fn an_instance_profile_is_asked_with_imdsv2() {
    use scalelite_tests::FakeMetadata;
    let s3 = TestS3::start(BUCKET).await;
    let metadata = FakeMetadata::start(&[3600]).await;
    let app = app_with_role(&s3, &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", metadata.url("/"))]).await;

    let presigned = import_and_play(&app, &s3, "imds-room").await;
    // The importer fetched first (credentials 1), then the balancer.
    assert!(presigned.contains("X-Amz-Security-Token=fake-session-token-2"), "{presigned}");
    // The importer and the balancer each went through IMDSv2 once.
    let requests = metadata.requests();
    let summary: Vec<(&str, &str)> = requests.iter().map(|r| (r.method.as_str(), r.path.as_str())).collect();
    let flow = [
        ("PUT", "/latest/api/token"),
        ("GET", "/latest/meta-data/iam/security-credentials/"),
        ("GET", "/latest/meta-data/iam/security-credentials/scalelite-role"),
    ];
    assert_eq!(summary, [flow, flow].concat(), "{requests:?}");
    assert_eq!(metadata.issued(), 2);
    for request in &requests {
        if request.method == "PUT" {
            assert!(request.header("x-aws-ec2-metadata-token-ttl-seconds").is_some(), "{request:?}");
        } else {
            assert_eq!(request.header("x-aws-ec2-metadata-token"), Some(FakeMetadata::IMDS_TOKEN), "{request:?}");
        }
    }
}

/// An import that cannot get credentials: the archive is postponed, kept
/// in the spool, nothing is in the bucket, and the reason (logged too)
/// names each of `parts` and never `hidden` (a token or secret).
async fn postponed_naming(s3: &TestS3, importer: &Importer, archive: &std::path::Path, parts: &[&str], hidden: &str) {
    let report = importer.import_pending_once().await.unwrap();
    let [ArchiveOutcome::Deferred { reason, .. }] = &report.outcomes[..] else { panic!("{report:?}") };
    for part in parts {
        assert!(reason.contains(part), "{part}: {reason}");
    }
    assert!(!reason.contains(hidden), "{reason}");
    assert!(archive.exists());
    assert_eq!(s3.keys(BUCKET, "").await, Vec::<String>::new());
}

/// After a credential source failed once: the next import attempt imports
/// `rec`; then the balancer's first playback request meets the source
/// answering `status` (503, never a URL without credentials) and the next
/// one redirects to a URL carrying the session token `token`.
async fn imports_then_plays_after_one_failure(
    app: &TestApp,
    s3: &TestS3,
    importer: &Importer,
    rec: &RecordingArchive,
    source: &scalelite_tests::FakeMetadata,
    status: u16,
    token: &str,
) {
    let report = importer.import_pending_once().await.unwrap();
    assert!(matches!(report.outcomes[..], [ArchiveOutcome::Imported(_)]), "{report:?}");
    assert_eq!(s3.keys(BUCKET, "").await, keys_of(rec, "published/"));
    source.fail_next(&[status]);
    let url = format!("{}/presentation/{}/metadata.xml", app.origin(), rec.record_id);
    assert_eq!(send(&url, &[]).await.status, 503);
    let redirect = send(&url, &[]).await;
    assert_eq!(redirect.status, 307, "{}", redirect.body);
    assert!(redirect.location.unwrap().contains(&format!("X-Amz-Security-Token={token}")));
}

#[tokio::test]
async fn a_failing_metadata_service_postpones_imports_and_playback_until_it_answers() {
    use scalelite_tests::FakeMetadata;
    let s3 = TestS3::start(BUCKET).await;
    let metadata = FakeMetadata::start(&[3600]).await;
    metadata.fail_next(&[500]);
    let app = app_with_role(
        &s3,
        &[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", metadata.url("/ecs/creds")),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", FakeMetadata::ECS_AUTH.to_owned()),
        ],
    )
    .await;
    let rec = RecordingArchive::new("later-room", "Later");
    let archive = rec.drop_into(&app.dirs().spool());
    let importer = importer(&app);
    // No credentials: the archive waits in the spool, nothing is lost.
    let report = importer.import_pending_once().await.unwrap();
    assert!(
        matches!(&report.outcomes[..], [ArchiveOutcome::Deferred { reason, .. }] if reason.contains("credentials")),
        "{report:?}"
    );
    assert!(archive.exists());
    // The next attempt fetches again and imports.
    imports_then_plays_after_one_failure(&app, &s3, &importer, &rec, &metadata, 500, "fake-session-token-").await;
}

#[tokio::test]
async fn static_keys_take_precedence_over_a_role() {
    use scalelite_tests::FakeMetadata;
    let s3 = TestS3::start(BUCKET).await;
    let metadata = FakeMetadata::start(&[3600]).await;
    let role = [
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", metadata.url("/ecs/creds")),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", metadata.url("")),
    ];
    let role: Vec<(&str, &str)> = role.iter().map(|(name, value)| (*name, value.as_str())).collect();
    let app = app_on(&s3, &role).await;
    let presigned = import_and_play(&app, &s3, "static-room").await;
    assert!(presigned.contains("X-Amz-Credential=AKIATESTSCALELITE%2F"), "{presigned}");
    assert!(!presigned.contains("X-Amz-Security-Token"), "{presigned}");
    assert!(metadata.requests().is_empty(), "{:?}", metadata.requests());
}

const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/scalelite-recordings";

/// A web identity token file (what EKS mounts) holding `token`.
fn token_file(dir: &tempfile::TempDir, token: &str) -> String {
    let path = dir.path().join("token");
    std::fs::write(&path, format!("{token}\n")).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn a_web_identity_is_exchanged_at_sts_for_the_credentials_imports_and_playback_are_signed_with() {
    use scalelite_tests::FakeMetadata;
    // moto's STS (at AWS_ENDPOINT_URL, as the bucket) answers
    // AssumeRoleWithWebIdentity; the profile and IMDS come later in the
    // order and are never used.
    let s3 = TestS3::start(BUCKET).await;
    let metadata = FakeMetadata::start(&[3600]).await;
    let dir = tempfile::tempdir().unwrap();
    let credentials_file = dir.path().join("credentials");
    std::fs::write(&credentials_file, "[default]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = p\n")
        .unwrap();
    let app = app_with_role(
        &s3,
        &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file(&dir, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")),
            ("AWS_ROLE_ARN", ROLE_ARN.to_owned()),
            ("AWS_SHARED_CREDENTIALS_FILE", credentials_file.display().to_string()),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", metadata.url("")),
        ],
    )
    .await;
    let presigned = import_and_play(&app, &s3, "web-identity-room").await;
    // Temporary credentials of the assumed role: an ASIA key and a session
    // token, neither the profile's key nor the test key pair.
    assert!(presigned.contains("X-Amz-Credential=ASIA"), "{presigned}");
    assert!(presigned.contains("X-Amz-Security-Token="), "{presigned}");
    assert!(metadata.requests().is_empty(), "{:?}", metadata.requests());
}

#[tokio::test]
async fn a_web_identity_token_is_read_again_at_every_refresh() {
    use scalelite_tests::FakeMetadata;
    let s3 = TestS3::start(BUCKET).await;
    // The importer's credentials last an hour; the balancer's first ones
    // expire within the refresh margin, its next ones in an hour.
    let sts = FakeMetadata::start(&[3600, 60, 3600]).await;
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(&dir, "first-projected-token");
    let app = app_with_role(
        &s3,
        &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token.clone()),
            ("AWS_ROLE_ARN", ROLE_ARN.to_owned()),
            ("AWS_ROLE_SESSION_NAME", "scalelite-pod-1".to_owned()),
            ("AWS_ENDPOINT_URL_STS", sts.url("/sts")),
        ],
    )
    .await;
    assert_eq!(sts.issued(), 0, "nothing is fetched before a request needs it");
    let presigned = import_and_play(&app, &s3, "rotated-token-room").await;
    assert!(
        presigned.contains("X-Amz-Security-Token=fake-session-token-2")
            && presigned.contains("X-Amz-Credential=ASIAFAKE2%2F"),
        "{presigned}"
    );

    // Kubernetes rotates the token; the balancer's credentials are about
    // to expire: the next playback request assumes the role again with the
    // new token and signs with the new credentials.
    token_file(&dir, "second-projected-token");
    let record_id = s3.keys(BUCKET, "published/presentation/").await[0].split('/').nth(2).unwrap().to_owned();
    let url = format!("{}/presentation/{record_id}/metadata.xml", app.origin());
    let refreshed = send(&url, &[]).await.location.expect("a presigned URL");
    sts.await_issued(3).await;
    assert!(refreshed.contains("X-Amz-Security-Token=fake-session-token-3"), "{refreshed}");
    assert_eq!(send(&refreshed, &[]).await.status, 200);

    let requests = sts.requests();
    let tokens: Vec<Option<String>> = requests.iter().map(|r| r.form("WebIdentityToken")).collect();
    assert_eq!(
        tokens,
        [Some("first-projected-token"), Some("first-projected-token"), Some("second-projected-token")]
            .map(|t| t.map(str::to_owned)),
        "{requests:?}"
    );
    for request in &requests {
        assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/sts/"));
        assert_eq!(request.form("RoleArn").as_deref(), Some(ROLE_ARN));
        assert_eq!(request.form("RoleSessionName").as_deref(), Some("scalelite-pod-1"));
        assert_eq!(request.header("content-type"), Some("application/x-www-form-urlencoded"));
        assert_eq!(request.header("authorization"), None, "AssumeRoleWithWebIdentity is unsigned");
    }
}

#[tokio::test]
async fn an_sts_error_postpones_imports_and_playback_until_the_role_can_be_assumed() {
    use scalelite_tests::FakeMetadata;
    let s3 = TestS3::start(BUCKET).await;
    let sts = FakeMetadata::start(&[3600]).await;
    sts.fail_next(&[400]);
    let dir = tempfile::tempdir().unwrap();
    let app = app_with_role(
        &s3,
        &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file(&dir, "refused-token")),
            ("AWS_ROLE_ARN", ROLE_ARN.to_owned()),
            ("AWS_ENDPOINT_URL_STS", sts.url("/sts/")),
        ],
    )
    .await;
    let rec = RecordingArchive::new("sts-later-room", "Later");
    let archive = rec.drop_into(&app.dirs().spool());
    let importer = importer(&app);
    // STS refuses the token: the archive waits in the spool, and the reason
    // (logged too) names the call, the role and STS's error code, never the
    // token.
    let parts = ["credentials", "AssumeRoleWithWebIdentity", ROLE_ARN, "HTTP 400", "InvalidIdentityToken"];
    postponed_naming(&s3, &importer, &archive, &parts, "refused-token").await;
    // The next attempt assumes the role and imports.
    imports_then_plays_after_one_failure(&app, &s3, &importer, &rec, &sts, 403, "fake-session-token-2").await;
}

#[tokio::test]
async fn a_shared_credentials_file_profile_signs_when_the_environment_has_no_keys() {
    use scalelite_tests::FakeMetadata;
    let s3 = TestS3::start(BUCKET).await;
    let metadata = FakeMetadata::start(&[3600]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    std::fs::write(
        &file,
        "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = default-secret\n\n\
         # the balancer's\n[scalelite]\naws_access_key_id = AKIAPROFILE\n\
         aws_secret_access_key = profile-secret\naws_session_token = profile-session-token\n",
    )
    .unwrap();
    // The profile comes before the container endpoint and IMDS: neither
    // is asked.
    let app = app_with_role(
        &s3,
        &[
            ("AWS_SHARED_CREDENTIALS_FILE", file.display().to_string()),
            ("AWS_PROFILE", "scalelite".to_owned()),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", metadata.url("/ecs/creds")),
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", metadata.url("")),
        ],
    )
    .await;
    let presigned = import_and_play(&app, &s3, "profile-room").await;
    assert!(presigned.contains("X-Amz-Credential=AKIAPROFILE%2F"), "{presigned}");
    assert!(presigned.contains("X-Amz-Security-Token=profile-session-token"), "{presigned}");
    assert!(metadata.requests().is_empty(), "{:?}", metadata.requests());
}

/// Shared config and credentials files in `dir`: `config` and
/// `credentials`; their paths as `AWS_CONFIG_FILE` and
/// `AWS_SHARED_CREDENTIALS_FILE`.
fn shared_files(dir: &tempfile::TempDir, config: &str, credentials: &str) -> Vec<(&'static str, String)> {
    let (config_path, credentials_path) = (dir.path().join("config"), dir.path().join("credentials"));
    std::fs::write(&config_path, config).unwrap();
    std::fs::write(&credentials_path, credentials).unwrap();
    vec![
        ("AWS_CONFIG_FILE", config_path.display().to_string()),
        ("AWS_SHARED_CREDENTIALS_FILE", credentials_path.display().to_string()),
    ]
}

#[tokio::test]
async fn a_profile_role_is_assumed_at_sts_with_its_source_profile_keys_for_imports_and_playback() {
    use scalelite_tests::FakeMetadata;
    // moto's STS (at AWS_ENDPOINT_URL, as the bucket) answers AssumeRole;
    // the role comes before the profile's own keys, and the container
    // endpoint and IMDS come later and are never asked.
    let s3 = TestS3::start(BUCKET).await;
    let metadata = FakeMetadata::start(&[3600]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = shared_files(
        &dir,
        &format!(
            "[profile scalelite]\nrole_arn = {ROLE_ARN}\nsource_profile = base\nrole_session_name = scalelite-lb\n\
             duration_seconds = 3600\naws_access_key_id = AKIAOWNKEYS\naws_secret_access_key = own-secret\n"
        ),
        "[base]\naws_access_key_id = AKIABASESOURCE\naws_secret_access_key = base-secret\n",
    );
    env.extend([
        ("AWS_PROFILE", "scalelite".to_owned()),
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", metadata.url("/ecs/creds")),
        ("AWS_EC2_METADATA_SERVICE_ENDPOINT", metadata.url("")),
    ]);
    let app = app_with_role(&s3, &env).await;
    let presigned = import_and_play(&app, &s3, "assumed-role-room").await;
    // Temporary credentials of the assumed role: an ASIA key and moto's
    // session token, neither the source's key nor the profile's own.
    assert!(presigned.contains("X-Amz-Credential=ASIA"), "{presigned}");
    assert!(presigned.contains("X-Amz-Security-Token="), "{presigned}");
    assert!(!presigned.contains("AKIABASESOURCE") && !presigned.contains("AKIAOWNKEYS"), "{presigned}");
    assert!(metadata.requests().is_empty(), "{:?}", metadata.requests());
}

#[tokio::test]
async fn a_role_chain_assumes_each_role_with_the_credentials_of_the_one_before_and_refreshes_them() {
    use scalelite_tests::FakeMetadata;
    const MIDDLE_ARN: &str = "arn:aws:iam::210987654321:role/middle";
    let s3 = TestS3::start(BUCKET).await;
    // The importer: the middle role (1), then scalelite's (2), an hour
    // each. The balancer: the middle role for an hour (3), scalelite's
    // within the refresh margin (4), then again for an hour (5) with the
    // middle role's credentials, still fresh.
    let sts = FakeMetadata::start(&[3600, 3600, 3600, 60, 3600]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut env = shared_files(
        &dir,
        &format!(
            "[profile scalelite]\nrole_arn = {ROLE_ARN}\nsource_profile = middle\nrole_session_name = lb-1\n\
             external_id = tenant-42\n[profile middle]\nrole_arn = {MIDDLE_ARN}\nsource_profile = base\n"
        ),
        "[base]\naws_access_key_id = AKIABASESOURCE\naws_secret_access_key = base-secret\n\
         aws_session_token = base-session-token\n",
    );
    env.extend([("AWS_PROFILE", "scalelite".to_owned()), ("AWS_ENDPOINT_URL_STS", sts.url("/sts"))]);
    let app = app_with_role(&s3, &env).await;
    assert_eq!(sts.issued(), 0, "nothing is fetched before a request needs it");
    let presigned = import_and_play(&app, &s3, "role-chain-room").await;
    assert!(
        presigned.contains("X-Amz-Credential=ASIAFAKE4%2F")
            && presigned.contains("X-Amz-Security-Token=fake-session-token-4"),
        "{presigned}"
    );
    // scalelite's credentials are about to expire: the next playback
    // request assumes its role again, with the middle role's credentials.
    let record_id = s3.keys(BUCKET, "published/presentation/").await[0].split('/').nth(2).unwrap().to_owned();
    let url = format!("{}/presentation/{record_id}/metadata.xml", app.origin());
    let refreshed = send(&url, &[]).await.location.expect("a presigned URL");
    assert!(refreshed.contains("X-Amz-Security-Token=fake-session-token-5"), "{refreshed}");
    assert_eq!(send(&refreshed, &[]).await.status, 200);

    // Who signed each AssumeRole: the base profile's keys (with its session
    // token), then the middle role's credentials.
    let requests = sts.requests();
    let summary: Vec<(Option<String>, String, Option<&str>)> = requests
        .iter()
        .map(|r| {
            let auth = r.header("authorization").unwrap_or_default();
            let key = auth.split("Credential=").nth(1).and_then(|c| c.split('/').next()).unwrap_or_default();
            (r.form("RoleArn"), key.to_owned(), r.header("x-amz-security-token"))
        })
        .collect();
    let (base, middle, scalelite) =
        (("AKIABASESOURCE", Some("base-session-token")), Some(MIDDLE_ARN.to_owned()), Some(ROLE_ARN.to_owned()));
    assert_eq!(
        summary,
        [
            (middle.clone(), base.0.to_owned(), base.1),
            (scalelite.clone(), "ASIAFAKE1".to_owned(), Some("fake-session-token-1")),
            (middle, base.0.to_owned(), base.1),
            (scalelite.clone(), "ASIAFAKE3".to_owned(), Some("fake-session-token-3")),
            (scalelite, "ASIAFAKE3".to_owned(), Some("fake-session-token-3")),
        ],
        "{requests:?}"
    );
    for request in &requests {
        assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/sts/"));
        assert_eq!(request.form("Action").as_deref(), Some("AssumeRole"));
        assert_eq!(request.header("content-type"), Some("application/x-www-form-urlencoded"));
        let auth = request.header("authorization").unwrap();
        assert!(auth.contains("/us-east-1/sts/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="), "{auth}");
    }
    let scalelite_requests: Vec<_> =
        requests.iter().filter(|r| r.form("RoleArn").as_deref() == Some(ROLE_ARN)).collect();
    for request in scalelite_requests {
        assert_eq!(
            (request.form("RoleSessionName").as_deref(), request.form("ExternalId").as_deref()),
            (Some("lb-1"), Some("tenant-42"))
        );
    }
}

#[tokio::test]
async fn an_sts_refusal_of_a_profile_role_postpones_imports_and_names_the_error_code() {
    use scalelite_tests::FakeMetadata;
    let s3 = TestS3::start(BUCKET).await;
    let sts = FakeMetadata::start(&[3600]).await;
    sts.fail_next(&[403]);
    let dir = tempfile::tempdir().unwrap();
    let mut env = shared_files(
        &dir,
        &format!("[default]\nrole_arn = {ROLE_ARN}\nsource_profile = base\n"),
        "[base]\naws_access_key_id = AKIABASESOURCE\naws_secret_access_key = base-very-secret\n",
    );
    env.extend([("AWS_ENDPOINT_URL_STS", sts.url("/sts/")), ("AWS_EC2_METADATA_DISABLED", "true".to_owned())]);
    let app = app_with_role(&s3, &env).await;
    let rec = RecordingArchive::new("assume-role-later", "Later");
    let archive = rec.drop_into(&app.dirs().spool());
    let importer = importer(&app);
    let parts = ["credentials", "AssumeRole", ROLE_ARN, "\"default\"", "HTTP 403", "AccessDenied"];
    postponed_naming(&s3, &importer, &archive, &parts, "very-secret").await;
    imports_then_plays_after_one_failure(&app, &s3, &importer, &rec, &sts, 403, "fake-session-token-2").await;
}

#[tokio::test]
async fn a_source_profile_cycle_or_a_missing_source_profile_is_a_start_up_error_naming_the_profiles() {
    use scalelite_core::config::{Config, Env};
    let s3 = TestS3::start(BUCKET).await;
    let dir = tempfile::tempdir().unwrap();
    let files = shared_files(
        &dir,
        &format!(
            "[profile a]\nrole_arn = {ROLE_ARN}\nsource_profile = b\n[profile b]\nrole_arn = {ROLE_ARN}\n\
             source_profile = a\n[profile lost]\nrole_arn = {ROLE_ARN}\nsource_profile = nowhere\n"
        ),
        "[a]\naws_access_key_id = AKIAA\naws_secret_access_key = a-very-secret\n",
    );
    for (profile, says) in [
        ("a", r#"cycle through source_profile: "a" -> "b" -> "a""#),
        ("lost", r#"the source_profile "nowhere" of profile "lost" is in neither"#),
    ] {
        let env = Env::from_pairs(
            s3.role_env(BUCKET).into_iter().chain(files.clone()).chain([("AWS_PROFILE", profile.to_owned())]),
        );
        let error = Config::from_env(&env).expect_err(profile).to_string();
        assert!(error.contains(says) && !error.contains("very-secret"), "{profile}: {error}");
    }
}

/// A `credential_process` script (what an operator's credentials helper
/// would be): each run prints the next session credentials, expiring after
/// the seconds its `lifetimes` list gives for that run (the last one for
/// later runs), and counts its runs in `runs`.
fn credential_process_script(dir: &tempfile::TempDir, lifetimes: &[u32]) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.path().join("scalelite creds.sh");
    let runs = dir.path().join("runs");
    let lifetimes = lifetimes.iter().map(u32::to_string).collect::<Vec<_>>().join(" ");
    let script = format!(
        r#"#!/bin/sh
# Diagnostics go to standard error, the credentials to standard output.
echo "issuing credentials for $1" >&2
n=$(( $(cat '{runs}' 2>/dev/null || echo 0) + 1 ))
echo "$n" > '{runs}'
lifetime=$(echo {lifetimes} | tr ' ' '\n' | sed -n "${{n}}p")
[ -n "$lifetime" ] || lifetime=$(echo {lifetimes} | tr ' ' '\n' | tail -n 1)
expires=$(date -u -d "@$(( $(date +%s) + lifetime ))" +%Y-%m-%dT%H:%M:%SZ)
cat <<JSON
{{
  "Version": 1,
  "AccessKeyId": "ASIAPROCESS$n",
  "SecretAccessKey": "process-secret-$n",
  "SessionToken": "process-session-token-$n",
  "Expiration": "$expires"
}}
JSON
"#,
        runs = runs.display()
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// How many times the script of `dir` ran.
fn process_runs(dir: &tempfile::TempDir) -> u32 {
    std::fs::read_to_string(dir.path().join("runs")).map_or(0, |runs| runs.trim().parse().unwrap())
}

#[tokio::test]
async fn a_config_file_profile_credential_process_signs_imports_and_playback_and_runs_again_before_expiry() {
    use scalelite_tests::FakeMetadata;
    let s3 = TestS3::start(BUCKET).await;
    let metadata = FakeMetadata::start(&[3600]).await;
    let dir = tempfile::tempdir().unwrap();
    // The importer's credentials last an hour; the balancer's first ones
    // expire within the refresh margin, its next ones in an hour.
    let script = credential_process_script(&dir, &[3600, 60, 3600]);
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[default]\nregion = ap-south-1\n\n# the balancer's\n[profile scalelite]\nregion = eu-west-1\n\
             credential_process = \"{}\" scalelite\n",
            script.display()
        ),
    )
    .unwrap();
    // The credentials file has the profile, without keys: the config
    // file's credential_process is used; the region comes from the config
    // file (the environment sets none). The container endpoint and IMDS
    // come later and are never asked.
    let credentials = dir.path().join("credentials");
    std::fs::write(&credentials, "[scalelite]\noutput = json\n[default]\naws_access_key_id = AKIADEFAULT\n").unwrap();
    let mut builder = TestApp::builder().servers(1).recordings();
    for (name, value) in s3.role_env(BUCKET).into_iter().filter(|(name, _)| *name != "AWS_REGION") {
        builder = builder.env(name, value);
    }
    let app = builder
        .env("AWS_CONFIG_FILE", config.display().to_string())
        .env("AWS_SHARED_CREDENTIALS_FILE", credentials.display().to_string())
        .env("AWS_PROFILE", "scalelite")
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", metadata.url("/ecs/creds"))
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", metadata.url(""))
        .start()
        .await;
    // Nothing runs before a request needs it.
    assert_eq!(process_runs(&dir), 0);

    let presigned = import_and_play(&app, &s3, "process-room").await;
    assert_eq!(process_runs(&dir), 2, "one run by the importer, one by the balancer");
    assert!(
        presigned.contains("X-Amz-Security-Token=process-session-token-2")
            && presigned.contains("X-Amz-Credential=ASIAPROCESS2%2F")
            && presigned.contains("%2Feu-west-1%2Fs3%2F"),
        "{presigned}"
    );
    // The balancer's credentials are about to expire: the next playback
    // request runs the command again and signs with its credentials; later
    // ones reuse them.
    let record_id = s3.keys(BUCKET, "published/presentation/").await[0].split('/').nth(2).unwrap().to_owned();
    let url = format!("{}/presentation/{record_id}/metadata.xml", app.origin());
    let refreshed = send(&url, &[]).await.location.expect("a presigned URL");
    assert!(refreshed.contains("X-Amz-Security-Token=process-session-token-3"), "{refreshed}");
    assert_eq!(send(&refreshed, &[]).await.status, 200);
    let again = send(&url, &[]).await.location.expect("a presigned URL");
    assert!(again.contains("X-Amz-Security-Token=process-session-token-3"), "{again}");
    assert_eq!(process_runs(&dir), 3);
    assert!(metadata.requests().is_empty(), "{:?}", metadata.requests());
}

#[tokio::test]
async fn a_failing_credential_process_postpones_imports_until_it_prints_credentials() {
    let s3 = TestS3::start(BUCKET).await;
    let dir = tempfile::tempdir().unwrap();
    let script = credential_process_script(&dir, &[3600]);
    // The command fails while a flag file is there.
    let flag = dir.path().join("failing");
    std::fs::write(&flag, "").unwrap();
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[default]\ncredential_process = sh -c 'test -e \"{}\" && exit 1; exec \"{}\"'\n",
            flag.display(),
            script.display()
        ),
    )
    .unwrap();
    let app = app_with_role(
        &s3,
        &[("AWS_CONFIG_FILE", config.display().to_string()), ("AWS_EC2_METADATA_DISABLED", "true".to_owned())],
    )
    .await;
    let rec = RecordingArchive::new("process-later", "Later");
    let archive = rec.drop_into(&app.dirs().spool());
    let importer = importer(&app);
    let report = importer.import_pending_once().await.unwrap();
    assert!(
        matches!(&report.outcomes[..], [ArchiveOutcome::Deferred { reason, .. }]
            if reason.contains("credential_process") && reason.contains("status 1") && !reason.contains("sh -c")),
        "{report:?}"
    );
    assert!(archive.exists());
    assert_eq!(s3.keys(BUCKET, "").await, Vec::<String>::new());
    std::fs::remove_file(&flag).unwrap();
    let report = importer.import_pending_once().await.unwrap();
    assert!(matches!(report.outcomes[..], [ArchiveOutcome::Imported(_)]), "{report:?}");
    assert_eq!(s3.keys(BUCKET, "").await, keys_of(&rec, "published/"));
    let redirect = send(&format!("{}/presentation/{}/metadata.xml", app.origin(), rec.record_id), &[]).await;
    assert_eq!(redirect.status, 307, "{}", redirect.body);
    assert!(redirect.location.unwrap().contains("X-Amz-Security-Token=process-session-token-2"));
}

/// An importer of `app` whose recording store is observed (its commits can
/// be held or failed).
fn observed_importer(app: &TestApp) -> (Importer, Arc<crate::importer::outage::Observed>) {
    use crate::importer::outage::{Observed, ObservedStore};
    let seen = Arc::new(Observed::default());
    let store = ObservedStore::new(app.recording_store(), Arc::clone(&seen));
    let importer =
        Importer::new(Settings::from_config(&app.state.config), Arc::new(store), Some(Arc::clone(app.store())));
    (importer, seen)
}

#[tokio::test]
async fn a_failed_commit_removes_the_objects_of_a_new_recording_and_nothing_else() {
    use crate::importer::outage::CommitFailure;
    let s3 = TestS3::start(BUCKET).await;
    let app = app_on(&s3, &[]).await;
    let (importer, seen) = observed_importer(&app);

    // The database cannot be reached when the new recording is committed:
    // the objects that went up for it are deleted again, nothing is
    // listed, the archive waits in the spool.
    let rec = RecordingArchive::new("new-room", "New").formats(&[Format::Presentation, Format::Podcast]);
    let archive = rec.drop_into(&app.dirs().spool());
    seen.fail_next_commit(CommitFailure::Unreachable);
    let report = importer.import_pending_once().await.unwrap();
    assert!(matches!(report.outcomes[..], [ArchiveOutcome::Deferred { .. }]), "{report:?}");
    assert_eq!(seen.attempts.load(std::sync::atomic::Ordering::SeqCst), 1, "the commit was attempted");
    assert_eq!(s3.keys(BUCKET, "").await, Vec::<String>::new());
    assert!(listed(&app, "new-room", "any").await.is_empty());
    assert!(archive.exists());
    // The next attempt imports it.
    let report = importer.import_pending_once().await.unwrap();
    assert!(matches!(report.outcomes[..], [ArchiveOutcome::Imported(_)]), "{report:?}");
    assert_eq!(s3.keys(BUCKET, "").await, keys_of(&rec, "published/"));

    // A re-import of a recording the database has: its commit failing
    // leaves every object (the earlier import's, overwritten under the
    // same keys) where playback finds it.
    rec.drop_into(&app.dirs().spool());
    seen.fail_next_commit(CommitFailure::Unreachable);
    let report = importer.import_pending_once().await.unwrap();
    assert!(matches!(report.outcomes[..], [ArchiveOutcome::Deferred { .. }]), "{report:?}");
    assert_eq!(s3.keys(BUCKET, "").await, keys_of(&rec, "published/"));
    let file = format!("{}/presentation/{}/metadata.xml", app.origin(), rec.record_id);
    assert!(played(&file).await.is_some(), "the recording still plays");
    importer.import_pending_once().await.unwrap();

    // A commit whose outcome is unknown (the connection broke at COMMIT)
    // may have listed the recording: its objects stay.
    let other = RecordingArchive::new("unknown-room", "Unknown");
    other.drop_into(&app.dirs().spool());
    seen.fail_next_commit(CommitFailure::Unconfirmed);
    let report = importer.import_pending_once().await.unwrap();
    assert!(matches!(report.outcomes[..], [ArchiveOutcome::Deferred { .. }]), "{report:?}");
    let other_prefix = format!("published/presentation/{}/", other.record_id);
    assert_eq!(s3.keys(BUCKET, &other_prefix).await, keys_of(&other, "published/"));
    let report = importer.import_pending_once().await.unwrap();
    assert!(matches!(report.outcomes[..], [ArchiveOutcome::Imported(_)]), "{report:?}");
    assert_eq!(listed(&app, "unknown-room", "any").await.len(), 1);
    assert_eq!(s3.keys(BUCKET, &other_prefix).await, keys_of(&other, "published/"));
}

/// The database id of a recording.
async fn recording_id(app: &TestApp, record_id: &str) -> i64 {
    let found = app.recording_store().recordings_by_ids(&[record_id.to_owned()], None, false).await.unwrap();
    found.first().unwrap_or_else(|| panic!("recording {record_id}")).id
}

#[tokio::test]
async fn scalelite_admin_recordings_update_puts_formats_under_the_prefix_their_state_selects() {
    use scalelite_core::config::{Config, Env};
    use scalelite_store::s3::S3Storage;

    let s3 = TestS3::start(BUCKET).await;
    let gate = S3Gate::start(&s3).await;
    let mut builder = TestApp::builder().servers(1).recordings();
    for (name, value) in gate.env(&s3, BUCKET) {
        builder = builder.env(name, value);
    }
    let app = builder.env("S3_TENANT_PREFIX", "tenants/{tenant}/").start().await;
    let env = Env::from_pairs(s3.env(BUCKET).into_iter().chain([("S3_TENANT_PREFIX", "tenants/{tenant}/".into())]));
    let storage = S3Storage::new(Config::from_env(&env).unwrap().recordings.s3.as_ref().unwrap()).unwrap();
    let halfway = RecordingArchive::new("halfway-room", "Half moved").formats(&[Format::Presentation, Format::Podcast]);
    let hidden = RecordingArchive::new("hidden-room", "Hidden");
    let reopened = RecordingArchive::new("reopened-room", "Reopened").meta("tenant-id", "t1");
    let differing = RecordingArchive::new("differing-room", "Differing");
    let untouched = RecordingArchive::new("untouched-room", "Untouched");
    for rec in [&halfway, &hidden, &reopened, &differing, &untouched] {
        rec.drop_into(&app.dirs().spool());
    }
    let report = importer(&app).import_pending_once().await.unwrap();
    assert_eq!(report.imported(), 5, "{report:?}");
    let unpublish = |rec: &RecordingArchive| {
        let id = rec.record_id.clone();
        let client = app.client();
        async move { client.get("publishRecordings", &[("recordID", &id), ("publish", "false")]).await }
    };
    let keys_under = |rec: &RecordingArchive, state: &str| {
        let prefix = if state.is_empty() { String::new() } else { format!("{state}/") };
        let id = rec.record_id.clone();
        let s3 = &s3;
        async move {
            let mut keys: Vec<String> =
                s3.keys(BUCKET, &prefix).await.into_iter().filter(|k| k.contains(&id)).collect();
            keys.sort();
            keys
        }
    };

    // An unpublish whose copies all went through but whose deletes the
    // bucket refused: it failed, the recording is still published, and
    // both prefixes hold its formats.
    gate.set_deletes(UploadMode::FailAfter(0));
    let reply = unpublish(&halfway).await;
    assert_eq!(reply.text_at("returncode").as_deref(), Some("FAILED"), "{}", reply.body);
    gate.set_deletes(UploadMode::Pass);
    assert_eq!(keys_under(&halfway, "published").await, keys_of(&halfway, "published/"));
    assert!(!keys_under(&halfway, "unpublished").await.is_empty(), "copies stayed under unpublished/");
    assert_eq!(listed(&app, "halfway-room", "any").await[0].text_at("published").as_deref(), Some("true"));
    // Unpublished in the database with its objects still public (an
    // unpublish by a tool that moves no objects, a restored backup).
    app.recording_store().set_published(recording_id(&app, &hidden.record_id).await, false).await.unwrap();
    // Published in the database (with a tenant prefix) with its objects
    // under unpublished/ (an unpublish whose database write was lost).
    let tenant_prefix = |state: &str| format!("tenants/t1/{state}/presentation/{}/", reopened.record_id);
    storage.move_prefix(&tenant_prefix("published"), &tenant_prefix("unpublished")).await.unwrap();
    // Unpublished, with a file under published/ the unpublished copy does
    // not have.
    let reply = unpublish(&differing).await;
    assert_eq!(reply.text_at("published").as_deref(), Some("false"), "{}", reply.body);
    let stray = format!("published/presentation/{}/extra.txt", differing.record_id);
    s3.put_object(BUCKET, &stray, "not in the unpublished copy").await;

    let run = crate::support::admin_with(&app.state.config, &["recordings", "update"], "").await;
    assert_eq!(run.code, 1, "{}\n{}", run.out, run.err);
    assert_eq!(run.err, "ERROR: some recordings could not be moved\n");
    let mut out: Vec<&str> = run.out.lines().collect();
    let summary = out.pop().unwrap();
    out.sort_unstable_by_key(|line| line.split(" recording ").nth(1).map(str::to_owned));
    let mut expected = vec![
        format!(
            "ERROR: Failed to move recording {} (presentation): objects are under both prefixes and the \
             unpublished copy lacks published's extra.txt; left alone",
            differing.record_id
        ),
        format!(
            "Moved presentation of recording {} to the published prefix ({} objects)",
            reopened.record_id,
            reopened.members().len()
        ),
        format!(
            "Moved presentation of recording {} to the unpublished prefix ({} objects)",
            hidden.record_id,
            hidden.members().len()
        ),
        // The unpublish stopped at its first format (podcast, in name
        // order), whose sources it could not delete.
        format!(
            "Removed the unpublished copy of podcast of recording {} ({} objects; the published copy is complete)",
            halfway.record_id,
            halfway.files(Format::Podcast).len()
        ),
    ];
    expected.sort_unstable_by_key(|line| line.split(" recording ").nth(1).map(str::to_owned));
    assert_eq!(out, expected);
    assert_eq!(
        summary,
        "2 unpublished and 3 published recordings checked, 2 formats moved, 1 duplicate copies removed, 1 failed"
    );

    // Every format is where its recording's state says; the differing
    // copies are both kept.
    assert_eq!(keys_under(&halfway, "").await, keys_of(&halfway, "published/"));
    assert_eq!(keys_under(&hidden, "").await, keys_of(&hidden, "unpublished/"));
    assert_eq!(keys_under(&reopened, "tenants/t1").await, keys_of(&reopened, "tenants/t1/published/"));
    assert_eq!(keys_under(&untouched, "").await, keys_of(&untouched, "published/"));
    assert_eq!(keys_under(&differing, "published").await, std::slice::from_ref(&stray));
    assert_eq!(keys_under(&differing, "unpublished").await, keys_of(&differing, "unpublished/"));
    // What getRecordings lists plays; the unpublished ones do not.
    for (rec, state, plays) in [(&halfway, "true", true), (&reopened, "true", true), (&hidden, "false", false)] {
        let meeting = rec.meeting_id.clone();
        assert_eq!(listed(&app, &meeting, "any").await[0].text_at("published").as_deref(), Some(state));
        let file = format!("{}/presentation/{}/metadata.xml", app.origin(), rec.record_id);
        assert_eq!(played(&file).await.is_some(), plays, "{meeting}");
    }

    // Once the stray file is gone, a second run has nothing to do.
    s3.delete_object(BUCKET, &stray).await;
    let json = crate::support::admin_with(&app.state.config, &["recordings", "update", "--json"], "").await.ok().json();
    assert_eq!(
        json,
        serde_json::json!({
            "checked": 5, "checked_unpublished": 2, "checked_published": 3, "bucket": BUCKET,
            "moved": [], "removed": [], "failed": [],
        })
    );
}

/// PostgreSQL stopping between the upload and the commit.
mod redis_only {
    use super::*;
    use scalelite_tests::TestBackend;

    #[tokio::test]
    async fn postgres_stopping_before_the_commit_leaves_no_objects_of_a_new_recording() {
        let s3 = TestS3::start(BUCKET).await;
        let mut builder = TestApp::builder().backend(TestBackend::Redis).servers(1).recordings();
        for (name, value) in s3.env(BUCKET) {
            builder = builder.env(name, value);
        }
        let app = builder.start().await;
        let (importer, seen) = observed_importer(&app);
        seen.gate_armed.store(true, std::sync::atomic::Ordering::SeqCst);
        let entered = seen.entered.notified();
        let rec = RecordingArchive::new("outage-room", "Outage").formats(&[Format::Presentation, Format::Video]);
        let archive = rec.drop_into(&app.dirs().spool());
        let running = tokio::spawn({
            let importer = importer.clone();
            async move { importer.import_pending_once().await }
        });
        // The objects are in the bucket; the commit is held.
        tokio::time::timeout(Duration::from_secs(30), entered).await.expect("the import reaches its commit");
        assert_eq!(s3.keys(BUCKET, "").await, keys_of(&rec, "published/"));
        app.pg().stop().await;
        seen.release.notify_one();
        let report = running.await.unwrap().unwrap();
        assert!(matches!(report.outcomes[..], [ArchiveOutcome::Deferred { .. }]), "{report:?}");
        assert_eq!(s3.keys(BUCKET, "").await, Vec::<String>::new(), "the new recording's objects are removed");
        assert!(archive.exists());

        app.pg().start_again().await;
        let report = importer.import_pending_once().await.unwrap();
        assert!(matches!(report.outcomes[..], [ArchiveOutcome::Imported(_)]), "{report:?}");
        assert_eq!(s3.keys(BUCKET, "").await, keys_of(&rec, "published/"));
        assert_eq!(listed(&app, "outage-room", "any").await.len(), 1);
    }
}
