//! The whole recording path as an operator sees it: a meeting created
//! through the API with a recording-ready URL, its archive packed by GNU tar
//! exactly as `scalelite_post_publish.rb` packs it and rsynced into the
//! spool of a running importer, then listed, played through nginx,
//! unpublished, published, protected, updated and deleted through the API.

use std::time::Instant;

use bytes::Bytes;
use http::Method;
use jsonwebtoken::Algorithm;
use scalelite_core::xml::Element;
use scalelite_tests::archive::drop_bytes;
use scalelite_tests::nginx::{SiteSettings, TestNginx};
use scalelite_tests::{Reply, TestApp, http_request};

use super::callbacks::{Receiver, claims};
use super::*;

const KEY: &str = "0c9e2f4a6b8d1e3f5a7c9e1b3d5f7a9c2e4b6d8f0a1c3e5a7b9d1f3a5c7e9b1d";

async fn send(url: &str, headers: &[(&str, &str)]) -> Reply {
    http_request(Method::GET, url, headers, Bytes::new(), Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// The recordings getRecordings lists for `meeting_id` in any state, as
/// XML elements.
async fn listed(app: &TestApp, meeting_id: &str) -> Vec<Element> {
    listed_in(app, meeting_id, "any").await
}

async fn listed_in(app: &TestApp, meeting_id: &str, state: &str) -> Vec<Element> {
    let reply = app.client().get("getRecordings", &[("meetingID", meeting_id), ("state", state)]).await;
    assert!(reply.is_success(), "{}", reply.body);
    let xml = reply.xml();
    xml.child("recordings").map(|list| list.children_named("recording").cloned().collect()).unwrap_or_default()
}

fn tree_has(root: &Path, format: &str, record_id: &str) -> bool {
    root.join(format).join(record_id).join("metadata.xml").is_file()
}

#[tokio::test]
async fn an_archive_from_bbb_is_listed_played_managed_and_deleted() {
    let app = TestApp::builder()
        .servers(1)
        .recordings()
        .env("PROTECTED_RECORDINGS_ENABLED", "true")
        .env("SECRET_KEY_BASE", KEY)
        .env("RECORDING_IMPORT_SETTLE_TIME", "0.2")
        .start()
        .await;
    let dirs = app.dirs();
    let receiver = Receiver::start(&[]).await;

    // Greenlight creates the meeting with its recording-ready URL.
    let meeting_id = "gl-room-e2e";
    let ready_url = receiver.url("/recording_ready");
    let create = app
        .client()
        .get(
            "create",
            &[("meetingID", meeting_id), ("name", "Übung 7 – Analysis"), ("meta_bbb-recording-ready-url", &ready_url)],
        )
        .await;
    assert!(create.is_success(), "{}", create.body);

    // The importer runs as the service does.
    let mut settings = Settings::from_config(&app.state.config);
    settings.poll_interval = Duration::from_millis(500);
    settings.callbacks.poll_interval = Duration::from_millis(100);
    let importer = Importer::new(settings, app.recording_store(), Some(Arc::clone(app.store())));
    let running = Running::start(&importer);

    // BBB's post-publish script packs the published formats with GNU tar
    // and rsyncs the archive into the spool.
    let rec = RecordingArchive::new(meeting_id, "Übung 7 – Analysis").formats(&[Format::Presentation, Format::Video]);
    let packed = tempfile::tempdir().unwrap();
    let tar = packed.path().join(rec.file_name());
    rec.pack_with_gnu_tar(&tar);
    let dropped = Instant::now();
    drop_bytes(&dirs.spool(), &rec.file_name(), &std::fs::read(&tar).unwrap());

    // Listed within seconds, with Scalelite's fields and URLs on our host;
    // imported protected, as PROTECTED_RECORDINGS_ENABLED asks.
    eventually_with(Duration::from_secs(10), "getRecordings lists the imported recording", || async {
        !listed(&app, meeting_id).await.is_empty()
    })
    .await;
    let listed_after = dropped.elapsed();
    assert!(listed_after < Duration::from_secs(5), "listed after {listed_after:?}");
    let recording = listed(&app, meeting_id).await.remove(0);
    assert_eq!(recording.text_at("recordID").as_deref(), Some(rec.record_id.as_str()));
    assert_eq!(recording.text_at("name").as_deref(), Some("Übung 7 – Analysis"));
    assert_eq!(recording.text_at("published").as_deref(), Some("true"));
    assert_eq!(recording.text_at("protected").as_deref(), Some("true"));
    // The archive is deleted last, after the files were moved into place
    // (the listing appears at the database commit, just before).
    let archive = dirs.spool().join(rec.file_name());
    eventually_with(Duration::from_secs(10), "the archive leaves the spool", || async { !archive.exists() }).await;
    assert_published(&rec, &dirs.published());

    // The front-end hears about it, signed with the load-balancer secret.
    eventually_with(Duration::from_secs(10), "the recording-ready callback", || async {
        !receiver.requests().is_empty()
    })
    .await;
    let token = receiver.requests()[0].signed_parameters.clone().expect("signed_parameters");
    let claims = claims(&token, LB_SECRET, Algorithm::HS256).expect("signed with LOADBALANCER_SECRET");
    assert_eq!(claims, serde_json::json!({ "meeting_id": meeting_id, "record_id": rec.record_id }));

    // Played through nginx: nothing without the cookie; the one-time URL
    // of getRecordings sets it and redirects to the player.
    let nginx = TestNginx::scalelite(&SiteSettings {
        api: app.addr,
        publish_dir: dirs.published(),
        player_root: packed.path().to_owned(),
    })
    .await;
    let file = |format: &str, path: &str| format!("{}/{format}/{}/{path}", nginx.origin(), rec.record_id);
    assert_eq!(send(&file("presentation", "metadata.xml"), &[]).await.status, 404, "no cookie, no file");
    let one_time = recording
        .at_path("playback/format")
        .and_then(|f| f.text_at("url"))
        .expect("a playback URL")
        .replacen(&app.origin(), &nginx.origin(), 1);
    assert!(one_time.contains("/recording/") && one_time.contains("?token="), "{one_time}");
    let play = send(&one_time, &[]).await;
    assert_eq!(play.status, 307, "{}", nginx.error_log());
    assert_eq!(play.location, Some(format!("{}/playback/presentation/2.3/{}", nginx.origin(), rec.record_id)));
    let cookie = play.header("set-cookie").expect("a playback cookie").split(';').next().unwrap().to_owned();
    let webcams = send(&file("presentation", "video/webcams.webm"), &[("cookie", &cookie)]).await;
    assert_eq!(webcams.status, 200, "{}", nginx.error_log());
    let expected = rec.files(Format::Presentation).into_iter().find(|(p, _)| p == "video/webcams.webm").unwrap().1;
    // The body is read as text; the length nginx sends tells the bytes.
    assert_eq!(webcams.header("content-length"), Some(expected.len().to_string().as_str()));
    assert_eq!(send(&one_time, &[]).await.status, 404, "the token opens the recording once");

    // Unprotect and update metadata: served to anyone.
    let update = app
        .client()
        .get("updateRecordings", &[("recordID", &rec.record_id), ("meta_course", "Analysis I"), ("protect", "false")])
        .await;
    assert_eq!(update.text_at("updated").as_deref(), Some("true"), "{}", update.body);
    let recording = listed(&app, meeting_id).await.remove(0);
    assert_eq!(recording.text_at("metadata/course").as_deref(), Some("Analysis I"));
    assert_eq!(recording.text_at("protected").as_deref(), Some("false"));
    let presentation_url = format!("{}/playback/presentation/2.3/{}", app.origin(), rec.record_id);
    let urls: Vec<String> =
        recording.child("playback").unwrap().children_named("format").filter_map(|f| f.text_at("url")).collect();
    assert!(urls.contains(&presentation_url), "{urls:?}");
    assert_eq!(send(&file("presentation", "metadata.xml"), &[]).await.status, 200);
    assert_eq!(send(&file("video", "video-0.m4v"), &[]).await.status, 200);

    // Unpublish: the files move aside and are no longer served.
    let unpublish = app.client().get("publishRecordings", &[("recordID", &rec.record_id), ("publish", "false")]).await;
    assert_eq!(unpublish.text_at("published").as_deref(), Some("false"), "{}", unpublish.body);
    assert!(tree_has(&dirs.unpublished(), "presentation", &rec.record_id));
    assert!(!tree_has(&dirs.published(), "presentation", &rec.record_id));
    assert_eq!(send(&file("presentation", "metadata.xml"), &[]).await.status, 404);
    assert_eq!(listed(&app, meeting_id).await[0].text_at("published").as_deref(), Some("false"));

    // Publish again: back in place and served.
    let publish = app.client().get("publishRecordings", &[("recordID", &rec.record_id), ("publish", "true")]).await;
    assert_eq!(publish.text_at("published").as_deref(), Some("true"), "{}", publish.body);
    assert_published(&rec, &dirs.published());
    assert_eq!(send(&file("presentation", "metadata.xml"), &[]).await.status, 200);

    // Protect again: the cookie of the earlier play still opens it, nothing
    // else does.
    let protect = app.client().get("updateRecordings", &[("recordID", &rec.record_id), ("protect", "true")]).await;
    assert_eq!(protect.text_at("updated").as_deref(), Some("true"), "{}", protect.body);
    assert_eq!(send(&file("presentation", "metadata.xml"), &[]).await.status, 404);
    assert_eq!(send(&file("presentation", "metadata.xml"), &[("cookie", &cookie)]).await.status, 200);

    // Delete: gone from the listing, from both trees and from nginx.
    let delete = app.client().get("deleteRecordings", &[("recordID", &rec.record_id)]).await;
    assert_eq!(delete.text_at("deleted").as_deref(), Some("true"), "{}", delete.body);
    assert!(listed_in(&app, meeting_id, "published,unpublished").await.is_empty());
    // As in Scalelite the row stays, marked deleted (`state=any` shows it).
    assert_eq!(listed(&app, meeting_id).await[0].text_at("state").as_deref(), Some("deleted"));
    for format in ["presentation", "video"] {
        assert!(!tree_has(&dirs.published(), format, &rec.record_id), "{format}");
        assert!(!tree_has(&dirs.unpublished(), format, &rec.record_id), "{format}");
    }
    assert_eq!(send(&file("presentation", "metadata.xml"), &[("cookie", &cookie)]).await.status, 404);

    // A broken archive is kept aside with its reason; the importer goes on.
    drop_bytes(&dirs.spool(), "broken-1715261728123.tar", &rec.tar()[..4096]);
    let next = RecordingArchive::new(meeting_id, "Übung 8");
    next.drop_into(&dirs.spool());
    eventually_with(Duration::from_secs(10), "the next archive is imported", || async {
        listed_in(&app, meeting_id, "published").await.len() == 1
    })
    .await;
    let reason = std::fs::read_to_string(dirs.spool().join("failed/broken-1715261728123.tar.reason")).unwrap();
    assert!(reason.contains("truncated") || reason.contains("end"), "{reason}");
    assert!(dirs.spool().join("failed/broken-1715261728123.tar").is_file());
    running.stop().await;
}

/// BigBlueButton 3.0's formats (issue 14, A12): the tldraw-based
/// presentation, whose player is nginx's and fetches `tldraw.json` and MP4
/// media through the API, and the video format with its own player page,
/// imported from a GNU-tar archive and played through the shipped nginx
/// site from the URLs getRecordings gives.
#[tokio::test]
async fn bbb_3_recording_formats_play_through_nginx() {
    let app = TestApp::builder().servers(1).recordings().start().await;
    let dirs = app.dirs();
    let rec =
        RecordingArchive::new("bbb3-room", "BBB 3.0 – tldraw").formats(&[Format::Presentation, Format::Video]).bbb3();
    rec.pack_with_gnu_tar(&dirs.spool().join(rec.file_name()));
    let importer = Importer::new(Settings::from_config(&app.state.config), app.recording_store(), None);
    let report = importer.import_pending_once().await.unwrap();
    assert_eq!(report.imported(), 1, "{report:?}");
    assert_published(&rec, &dirs.published());

    let player = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(player.path().join("playback/presentation/2.3")).unwrap();
    std::fs::write(player.path().join("playback/presentation/2.3/index.html"), "bbb-playback 5").unwrap();
    let nginx = TestNginx::scalelite(&SiteSettings {
        api: app.addr,
        publish_dir: dirs.published(),
        player_root: player.path().to_owned(),
    })
    .await;
    let origin = nginx.origin();
    let log = || nginx.error_log();
    let recording = listed(&app, "bbb3-room").await.remove(0);
    let urls: Vec<(String, String)> = recording
        .child("playback")
        .expect("playback")
        .children_named("format")
        .map(|f| {
            (
                f.text_at("type").unwrap_or_default(),
                f.text_at("url").unwrap_or_default().replacen(&app.origin(), &origin, 1),
            )
        })
        .collect();
    let id = &rec.record_id;
    assert_eq!(
        urls,
        [
            ("presentation".to_owned(), format!("{origin}/playback/presentation/2.3/{id}")),
            ("video".to_owned(), format!("{origin}/playback/video/{id}/")),
        ]
    );
    let file = |format: Format, path: &str| rec.files(format).into_iter().find(|(p, _)| p == path).unwrap().1;

    // The presentation player, then what it fetches.
    let page = send(&urls[0].1, &[]).await;
    assert_eq!((page.status, page.body.as_str()), (200, "bbb-playback 5"), "{}", log());
    let tldraw = send(&format!("{origin}/presentation/{id}/tldraw.json"), &[]).await;
    assert_eq!(tldraw.status, 200, "{}", log());
    assert_eq!(tldraw.body.as_bytes(), file(Format::Presentation, "tldraw.json"));
    for media in ["video/webcams.mp4", "deskshare/deskshare.mp4", "video/webcams.webm"] {
        let reply = send(&format!("{origin}/presentation/{id}/{media}"), &[]).await;
        assert_eq!(reply.status, 200, "{media}: {}", log());
        let expected = file(Format::Presentation, media).len().to_string();
        assert_eq!(reply.header("content-length"), Some(expected.as_str()), "{media}");
    }

    // The video format: BBB's link, nginx's redirect, the format's own
    // player page and its files; the play route leads to the same link.
    let link = send(&urls[1].1, &[]).await;
    assert_eq!((link.status, link.location.as_deref()), (307, Some(format!("/video/{id}/").as_str())), "{}", log());
    let index = send(&format!("{origin}/video/{id}/"), &[]).await;
    assert_eq!(index.status, 200, "{}", log());
    assert_eq!(index.body.as_bytes(), file(Format::Video, "index.html"));
    let css = send(&format!("{origin}/video/{id}/css/playback.css"), &[]).await;
    assert_eq!((css.status, css.body.as_bytes()), (200, file(Format::Video, "css/playback.css").as_slice()));
    let webm = send(&format!("{origin}/video/{id}/video-0.webm"), &[]).await;
    assert_eq!(webm.status, 200);
    assert_eq!(webm.header("content-length"), Some(file(Format::Video, "video-0.webm").len().to_string().as_str()));
    let play = send(&format!("{origin}/recording/{id}/video"), &[]).await;
    assert_eq!((play.status, play.location), (307, Some(format!("{origin}/playback/video/{id}/"))));
}
