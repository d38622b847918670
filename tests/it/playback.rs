//! Recording playback: the play redirect with one-time tokens and cookies,
//! the resource route's `X-Accel-Redirect`, the regressions of Scalelite's
//! advisories (unpublished recordings served, a cookie for one recording
//! opening another), path traversal, and the shipped nginx site in front of
//! the API.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::Method;
use scalelite_core::ids::Secret;
use scalelite_core::jwt;
use scalelite_store::recordings::{ImportPolicy, ImportedFormat, RecordingImport};
use scalelite_tests::nginx::{SiteSettings, TestNginx};
use scalelite_tests::{Expiring, Reply, TestApp, http_request};

use crate::support::assert_failed;

const A: &str = "2d4c9a0b6f1e8d7c5b3a291807f6e5d4c3b2a190-1715261728123";
const B: &str = "7f3e1d2c4b5a69788796a5b4c3d2e1f0a9b8c7d6-1715261999000";
const KEY: &str = "3b1f6c0e9a2d4b8e7f5a1c3d9e0b2a4f6c8d0e1f3a5b7c9d1e3f5a7b9c1d3e5f";
const NOT_FOUND_TITLE: &str = "<title>Recording Not Found</title>";

/// An app with recordings and protection on.
async fn protected_app() -> TestApp {
    TestApp::builder()
        .servers(0)
        .recordings()
        .env("PROTECTED_RECORDINGS_ENABLED", "true")
        .env("SECRET_KEY_BASE", KEY)
        .start()
        .await
}

/// The link BBB writes into `metadata.xml` for `format`.
fn format_url(format: &str, record_id: &str) -> String {
    match format {
        "presentation" => format!("/playback/presentation/2.3/{record_id}"),
        "video" => format!("/playback/video/{record_id}/"),
        "podcast" => format!("/podcast/{record_id}/audio.ogg"),
        other => format!("/{other}/{record_id}/"),
    }
}

/// Imports `record_id` with `formats`; returns its database id.
async fn add(app: &TestApp, record_id: &str, formats: &[&str], published: bool, protected: bool) -> i64 {
    let import = RecordingImport {
        record_id: record_id.into(),
        meeting_id: format!("room-{}", &record_id[..6]),
        name: Some("Lecture".into()),
        published: Some(true),
        participants: Some(12),
        state: Some("published".into()),
        start_ms: Some(1_715_261_728_123),
        end_ms: Some(1_715_265_328_123),
        metadata: vec![("bbb-origin".into(), "greenlight".into())],
        formats: formats
            .iter()
            .map(|f| ImportedFormat {
                format: (*f).into(),
                url: format_url(f, record_id),
                length: Some(60),
                thumbnails: vec![],
            })
            .collect(),
    };
    let policy = ImportPolicy { import_unpublished: !published, protected };
    app.recording_store().import_recording(&import, policy).await.expect("import").id
}

/// Stores a one-time token as getRecordings does (an hour to live).
async fn mint_token(app: &TestApp, record_id: &str, format: &str) -> String {
    let token = hex::encode(rand::random::<[u8; 32]>());
    let payload = format!(r#"{{"record_id":"{record_id}","format":"{format}"}}"#);
    app.store().create_playback_tokens(&[(token.clone(), payload)], Duration::from_secs(3600)).await.unwrap();
    token
}

async fn send(method: Method, url: &str, headers: &[(&str, &str)]) -> Reply {
    http_request(method.clone(), url, headers, Bytes::new(), Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> Reply {
    send(Method::GET, &format!("{}{path}", app.origin()), headers).await
}

/// `name=value` of the reply's `Set-Cookie`.
fn cookie_pair(reply: &Reply) -> String {
    let set_cookie = reply.header("set-cookie").unwrap_or_else(|| panic!("no Set-Cookie: {:?}", reply.headers));
    set_cookie.split(';').next().unwrap().to_owned()
}

#[track_caller]
fn assert_not_found_page(reply: &Reply) {
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert!(reply.body.contains(NOT_FOUND_TITLE), "{}", reply.body);
    assert_eq!(reply.content_type(), Some("text/html; charset=utf-8"));
    assert!(reply.header("x-accel-redirect").is_none(), "{:?}", reply.headers);
    assert!(reply.header("set-cookie").is_none(), "{:?}", reply.headers);
}

/// The status and the headers a browser or nginx acts on, one per line.
fn playback_headers(reply: &Reply) -> String {
    let mut out = format!("status: {}\n", reply.status);
    for name in ["location", "set-cookie", "x-accel-redirect", "content-disposition", "cache-control", "content-length"]
    {
        for value in reply.headers.get_all(name) {
            out.push_str(&format!("{name}: {}\n", value.to_str().unwrap()));
        }
    }
    out
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test]
async fn published_recordings_redirect_and_hand_their_files_to_nginx() {
    let app = TestApp::builder().servers(0).recordings().start().await;
    add(&app, A, &["presentation", "podcast", "video"], true, false).await;

    // Play: 307 to the stored URL on the host and scheme the browser used.
    let proxied = [("x-forwarded-proto", "https"), ("x-forwarded-host", "sl.example.org")];
    let play = get(&app, &format!("/recording/{A}/presentation"), &proxied).await;
    insta::assert_snapshot!(playback_headers(&play), @r"
    status: 307
    location: https://sl.example.org/playback/presentation/2.3/2d4c9a0b6f1e8d7c5b3a291807f6e5d4c3b2a190-1715261728123
    cache-control: no-store
    content-length: 0
    ");
    let direct = get(&app, &format!("/recording/{A}/video"), &[]).await;
    assert_eq!(direct.location.as_deref(), Some(format!("{}/playback/video/{A}/", app.origin()).as_str()));

    // Resources: an empty 200 with the original path and query for nginx.
    let slide = get(&app, &format!("/presentation/{A}/svgs/image%201.svg?v=2"), &[]).await;
    assert!(slide.body.is_empty());
    insta::assert_snapshot!(playback_headers(&slide), @r"
    status: 200
    x-accel-redirect: /static-resource/presentation/2d4c9a0b6f1e8d7c5b3a291807f6e5d4c3b2a190-1715261728123/svgs/image%201.svg?v=2
    content-length: 0
    ");
    // Formats other than presentation, video and screenshare are downloads.
    let audio = get(&app, &format!("/podcast/{A}/audio.ogg"), &[]).await;
    insta::assert_snapshot!(playback_headers(&audio), @r"
    status: 200
    x-accel-redirect: /static-resource/podcast/2d4c9a0b6f1e8d7c5b3a291807f6e5d4c3b2a190-1715261728123/audio.ogg
    content-disposition: attachment
    content-length: 0
    ");
    // A directory keeps its trailing slash (nginx serves its index.html).
    let index = get(&app, &format!("/video/{A}/"), &[]).await;
    assert_eq!(index.header("x-accel-redirect"), Some(format!("/static-resource/video/{A}/").as_str()));
    assert_eq!(index.header("content-disposition"), None);
    let bare = get(&app, &format!("/presentation/{A}"), &[]).await;
    assert_eq!(bare.header("x-accel-redirect"), Some(format!("/static-resource/presentation/{A}").as_str()));
    // HEAD is answered like GET.
    let head = send(Method::HEAD, &format!("{}/podcast/{A}/audio.ogg", app.origin()), &[]).await;
    assert_eq!((head.status, head.header("x-accel-redirect")), (200, audio.header("x-accel-redirect")));

    // Metrics label the routes, never the paths.
    let metrics = app.client().raw_get("/metrics").await.body;
    assert!(metrics.contains(r#"call="playback""#), "{metrics}");
    assert!(metrics.contains(r#"call="playback_resource""#), "{metrics}");
    assert!(!metrics.contains(A));
}

#[tokio::test]
async fn unknown_recordings_and_formats_get_the_not_found_page() {
    let app = TestApp::builder().servers(0).recordings().start().await;
    add(&app, A, &["presentation"], true, false).await;
    for path in [
        format!("/recording/{B}/presentation"),
        format!("/recording/{A}/podcast"),
        "/recording/invalid_recording_id/invalid_format".to_owned(),
        format!("/presentation/{B}/metadata.xml"),
        format!("/podcast/{A}/audio.ogg"),
    ] {
        assert_not_found_page(&get(&app, &path, &[]).await);
    }
    let page = get(&app, &format!("/recording/{B}/presentation"), &[]).await;
    assert_eq!(page.header("cache-control"), Some("no-store"));
    insta::assert_snapshot!(page.body, @r#"
    <!DOCTYPE html>
    <html lang="en">
      <head>
        <meta charset="utf-8">
        <title>Recording Not Found</title>
      </head>
      <body>
        <h1 style="text-align: center;">Recording Not Found</h1>
        <h3 style="text-align: center;">The recording URL is invalid. This recording may have been either protected or deleted.</h3>
        <hr>
      </body>
    </html>
    "#);
}

#[tokio::test]
async fn unpublished_recordings_are_never_served() {
    let app = protected_app().await;
    let store = app.recording_store();
    add(&app, A, &["presentation"], false, false).await;
    let b = add(&app, B, &["presentation"], true, true).await;
    let paths = |id: &str| [format!("/recording/{id}/presentation"), format!("/presentation/{id}/metadata.xml")];
    for path in paths(A) {
        assert_not_found_page(&get(&app, &path, &[]).await);
    }

    // B plays while published, with its token and cookie ...
    let token = mint_token(&app, B, "presentation").await;
    let play = get(&app, &format!("/recording/{B}/presentation?token={token}"), &[]).await;
    assert_eq!(play.status, 307);
    let cookie = cookie_pair(&play);
    let file = format!("/presentation/{B}/metadata.xml");
    assert_eq!(get(&app, &file, &[("cookie", &cookie)]).await.status, 200);

    // ... and not a moment after it is unpublished, cookie or not.
    store.set_published(b, false).await.unwrap();
    assert_not_found_page(&get(&app, &file, &[("cookie", &cookie)]).await);
    let token = mint_token(&app, B, "presentation").await;
    assert_not_found_page(&get(&app, &format!("/recording/{B}/presentation?token={token}"), &[]).await);

    // Published again, the same cookie works again (it is still valid).
    store.set_published(b, true).await.unwrap();
    assert_eq!(get(&app, &file, &[("cookie", &cookie)]).await.status, 200);
}

#[tokio::test]
async fn a_token_opens_its_recording_once() {
    let app = protected_app().await;
    add(&app, A, &["presentation"], true, true).await;
    add(&app, B, &["presentation"], true, true).await;
    let play = |id: &str, query: String| format!("/recording/{id}/presentation{query}");

    // No token, a malformed one, an unknown one: not found.
    assert_not_found_page(&get(&app, &play(A, String::new()), &[]).await);
    assert_not_found_page(&get(&app, &play(A, "?token=xyz".into()), &[]).await);
    let unknown = hex::encode([7u8; 32]);
    assert_not_found_page(&get(&app, &play(A, format!("?token={unknown}")), &[]).await);
    let upper = mint_token(&app, A, "presentation").await.to_uppercase();
    assert_not_found_page(&get(&app, &play(A, format!("?token={upper}")), &[]).await);

    // A token for A does not open B, and is used up by trying.
    let for_a = mint_token(&app, A, "presentation").await;
    assert_not_found_page(&get(&app, &play(B, format!("?token={for_a}")), &[]).await);
    assert_not_found_page(&get(&app, &play(A, format!("?token={for_a}")), &[]).await);

    // A fresh token opens A once, and leaves nothing in the store.
    let token = mint_token(&app, A, "presentation").await;
    let first = get(&app, &play(A, format!("?token={token}")), &[]).await;
    assert_eq!(first.status, 307, "{}", first.body);
    assert!(first.header("set-cookie").is_some());
    assert_eq!(app.ttl_of(Expiring::PlaybackToken(&token)).await, None);
    assert_not_found_page(&get(&app, &play(A, format!("?token={token}")), &[]).await);
}

#[tokio::test]
async fn a_cookie_opens_only_its_own_recording_and_format() {
    let app = protected_app().await;
    add(&app, A, &["presentation", "video"], true, true).await;
    add(&app, B, &["presentation"], true, true).await;

    let token = mint_token(&app, A, "presentation").await;
    let play = get(&app, &format!("/recording/{A}/presentation?token={token}"), &[("host", "sl.example.org")]).await;
    // The cookie: a session cookie for exactly /presentation/<A>.
    let set_cookie = play.header("set-cookie").unwrap();
    let jwt_value = cookie_pair(&play).split_once('=').unwrap().1.to_owned();
    insta::assert_snapshot!(set_cookie.replace(&jwt_value, "<jwt>"), @"recording_presentation_2d4c9a0b6f1e8d7c5b3a291807f6e5d4c3b2a190-1715261728123=<jwt>; Path=/presentation/2d4c9a0b6f1e8d7c5b3a291807f6e5d4c3b2a190-1715261728123; Secure; HttpOnly; SameSite=None");
    assert_eq!(play.location.as_deref(), Some(format!("http://sl.example.org/playback/presentation/2.3/{A}").as_str()));
    // HS256 over {"sub": "/presentation/<A>", "exp": now + 360 minutes}.
    let key = Secret::new(KEY);
    let scope = format!("/presentation/{A}");
    let minted = now();
    assert!(
        (minted - 10..=minted + 1).any(|t| jwt::playback_cookie(&scope, t + 6 * 3600, &key) == jwt_value),
        "the cookie is not a 6-hour token for {scope}"
    );

    let own = format!("recording_presentation_{A}={jwt_value}");
    let file = |format: &str, id: &str| format!("/{format}/{id}/metadata.xml");
    let request = async |path: String, cookie: Option<String>| {
        let headers: Vec<(&str, &str)> = cookie.as_deref().map(|c| vec![("cookie", c)]).unwrap_or_default();
        get(&app, &path, &headers).await
    };
    let opened = request(file("presentation", A), Some(own.clone())).await;
    assert_eq!(opened.status, 200);
    assert_eq!(opened.header("cache-control"), Some("private, no-cache"));
    assert_not_found_page(&request(file("presentation", A), None).await);
    // Presented for B, under B's name or A's: refused.
    assert_not_found_page(
        &request(file("presentation", B), Some(format!("recording_presentation_{B}={jwt_value}"))).await,
    );
    assert_not_found_page(&request(file("presentation", B), Some(own.clone())).await);
    // Presented for A's video format: refused.
    assert_not_found_page(&request(file("video", A), Some(format!("recording_video_{A}={jwt_value}"))).await);
    // Among other cookies, and next to a stale one, it still works.
    let jar = format!("_session=abc; recording_presentation_{A}=stale; {own}; theme=dark");
    assert_eq!(request(file("presentation", A), Some(jar)).await.status, 200);
}

#[tokio::test]
async fn expired_and_forged_cookies_are_refused() {
    let app = protected_app().await;
    add(&app, A, &["presentation"], true, true).await;
    let scope = format!("/presentation/{A}");
    let path = format!("/presentation/{A}/metadata.xml");
    let name = format!("recording_presentation_{A}");
    let try_cookie = async |token: String| get(&app, &path, &[("cookie", &format!("{name}={token}"))]).await;

    let valid = jwt::playback_cookie(&scope, now() + 60, &Secret::new(KEY));
    assert_eq!(try_cookie(valid).await.status, 200);
    let expired = jwt::playback_cookie(&scope, now() - 5, &Secret::new(KEY));
    assert_not_found_page(&try_cookie(expired).await);
    let other_key = jwt::playback_cookie(&scope, now() + 60, &Secret::new("another-secret-key-base"));
    assert_not_found_page(&try_cookie(other_key).await);
    assert_not_found_page(&try_cookie("not.a.jwt".into()).await);
    assert_not_found_page(&try_cookie(String::new()).await);
}

#[tokio::test]
async fn protected_recordings_with_protection_disabled_behave_as_scalelite() {
    // Scalelite asks for a token whenever the recording is marked protected
    // (getRecordings hands out token URLs for it), but checks cookies only
    // with PROTECTED_RECORDINGS_ENABLED.
    let app = TestApp::builder().servers(0).recordings().env("SECRET_KEY_BASE", KEY).start().await;
    add(&app, A, &["presentation"], true, true).await;
    assert_not_found_page(&get(&app, &format!("/recording/{A}/presentation"), &[]).await);
    let token = mint_token(&app, A, "presentation").await;
    let play = get(&app, &format!("/recording/{A}/presentation?token={token}"), &[]).await;
    assert_eq!(play.status, 307);
    let file = get(&app, &format!("/presentation/{A}/metadata.xml"), &[]).await;
    assert_eq!(file.status, 200);
    assert_eq!(file.header("cache-control"), None);
}

#[tokio::test]
async fn formats_outside_recording_playback_formats_are_unsupported() {
    let app = TestApp::builder()
        .servers(0)
        .recordings()
        .env("RECORDING_PLAYBACK_FORMATS", "presentation:podcast")
        .start()
        .await;
    add(&app, A, &["presentation", "video"], true, false).await;
    let client = app.client();
    for path in [format!("/video/{A}/index.html"), format!("/video/{A}"), "/notes/x/y".into(), format!("/{A}")] {
        assert_failed(&client.raw_get(&path).await, "unsupportedRequest");
    }
    assert_eq!(get(&app, &format!("/presentation/{A}/x.svg"), &[]).await.status, 200);
    // The play route does not depend on the list (as in Scalelite).
    assert_eq!(get(&app, &format!("/recording/{A}/video"), &[]).await.status, 307);
    // Only GET and HEAD; paths that do not route in Rails fall through.
    for method in [Method::POST, Method::PUT, Method::DELETE] {
        for path in [format!("/presentation/{A}/x.svg"), format!("/recording/{A}/presentation")] {
            let reply = client.send(method.clone(), &path, None, Bytes::new()).await.unwrap();
            assert_failed(&reply, "unsupportedRequest");
        }
    }
    for path in [
        format!("/recording/{A}/presentation/extra"),
        format!("/recording/{A}.json/presentation"),
        format!("/recording/{A}/presentation.json"),
        "/presentation".into(),
    ] {
        assert_failed(&client.raw_get(&path).await, "unsupportedRequest");
    }

    let disabled = TestApp::builder().servers(0).recordings().env("RECORDING_DISABLED", "true").start().await;
    add(&disabled, A, &["presentation"], true, false).await;
    let client = disabled.client();
    for path in [format!("/recording/{A}/presentation"), format!("/presentation/{A}/x.svg")] {
        assert_failed(&client.raw_get(&path).await, "unsupportedRequest");
    }
}

#[tokio::test]
async fn path_traversal_never_leaves_the_recording() {
    let app = TestApp::builder().servers(0).recordings().start().await;
    add(&app, A, &["presentation"], true, false).await;
    let client = app.client();
    let not_found = [
        format!("/presentation/{A}/../../../etc/passwd"),
        format!("/presentation/{A}/..%2F..%2F..%2Fetc%2Fpasswd"),
        format!("/presentation/{A}/x/%2e%2e/%2E%2E/%2e%2e/etc/passwd"),
        format!("/presentation/{A}/..%5C..%5Cetc%5Cpasswd/.."),
        format!("/presentation/{A}/%00.svg"),
        format!("/presentation/{A}/%0d%0aX-Accel-Redirect:%20/etc/passwd"),
        format!("/presentation/{A}%2F%2E%2E%2F%2E%2E%2Fetc/passwd"),
        "/presentation/%2E%2E%2F%2E%2E%2Fetc/passwd".into(),
        "/presentation/%2e%2e/passwd".into(),
        format!("/recording/{A}%2F..%2Fx/presentation"),
    ];
    for path in &not_found {
        let reply = get(&app, path, &[]).await;
        assert!(reply.header("x-accel-redirect").is_none(), "{path}: {:?}", reply.headers);
        assert!(reply.status == 404 || reply.message_key().as_deref() == Some("unsupportedRequest"), "{path}");
        if reply.status == 404 {
            assert_not_found_page(&reply);
        }
    }
    // A literal dot in the record id does not route (Rails' segment rule).
    for path in ["/presentation/..%2F..%2Fetc/passwd", "/presentation/../etc/passwd"] {
        let reply = client.raw_get(path).await;
        assert!(reply.header("x-accel-redirect").is_none(), "{path}");
    }
    // What is served stays below /static-resource/presentation/<A>/.
    for path in [
        format!("/presentation/{A}/a..b/.hidden"),
        format!("/presentation/{A}/%252e%252e/x"),
        format!("/presentation/{A}//etc/passwd"),
    ] {
        let reply = get(&app, &path, &[]).await;
        let accel = reply.header("x-accel-redirect").unwrap_or_else(|| panic!("{path}: {:?}", reply.headers));
        assert!(accel.starts_with(&format!("/static-resource/presentation/{A}/")), "{accel}");
    }
}

/// Imports `record_id` with one presentation format stored at `url`.
async fn add_with_url(app: &TestApp, record_id: &str, url: &str) {
    let import = RecordingImport {
        record_id: record_id.into(),
        meeting_id: "room".into(),
        name: Some("Lecture".into()),
        published: Some(true),
        participants: None,
        state: Some("published".into()),
        start_ms: Some(1_715_261_728_123),
        end_ms: Some(1_715_265_328_123),
        metadata: vec![],
        formats: vec![ImportedFormat {
            format: "presentation".into(),
            url: url.into(),
            length: None,
            thumbnails: vec![],
        }],
    };
    let policy = ImportPolicy { import_unpublished: false, protected: false };
    app.recording_store().import_recording(&import, policy).await.expect("import");
}

#[tokio::test]
async fn play_redirects_only_to_paths_on_this_site() {
    let app = TestApp::builder().servers(0).recordings().start().await;
    // Links a tampered database could hold: each would send the browser to
    // another site if taken as it is.
    let planted = [
        "//evil.example/phish",
        "/\\evil.example/phish",
        "\\\\evil.example/phish",
        "/\t/evil.example/phish",
        "https://evil.example/phish",
        "javascript:alert(document.cookie)",
    ];
    for (i, url) in planted.iter().enumerate() {
        let record_id = format!("{}{i:03}", &A[..A.len() - 3]);
        add_with_url(&app, &record_id, url).await;
        let reply = get(&app, &format!("/recording/{record_id}/presentation"), &[]).await;
        assert_not_found_page(&reply);
        assert_eq!(reply.location, None, "{url:?}");
    }
    // A path is served on the host and scheme the browser used.
    add_with_url(&app, B, &format!("/playback/presentation/2.3/{B}")).await;
    let proxied = [("x-forwarded-proto", "https"), ("x-forwarded-host", "sl.example.org")];
    let reply = get(&app, &format!("/recording/{B}/presentation"), &proxied).await;
    assert_eq!(reply.status, 307);
    assert_eq!(reply.location, Some(format!("https://sl.example.org/playback/presentation/2.3/{B}")));
}

#[tokio::test]
async fn host_authorization_and_redirects_read_the_same_forwarded_host() {
    let app = TestApp::builder().servers(0).recordings().env("URL_HOST", "sl.example.org").start().await;
    add(&app, A, &["presentation"], true, false).await;
    let path = format!("/recording/{A}/presentation");
    // A proxy chain appends its own line: the last value is the host, for
    // the authorization and for the redirect alike.
    let chain =
        [("host", "sl.example.org"), ("x-forwarded-host", "evil.example"), ("x-forwarded-host", "sl.example.org")];
    let reply = get(&app, &path, &chain).await;
    assert_eq!(reply.status, 307, "{:?}", reply.headers);
    assert_eq!(reply.location, Some(format!("http://sl.example.org/playback/presentation/2.3/{A}")));
    let reversed =
        [("host", "sl.example.org"), ("x-forwarded-host", "sl.example.org"), ("x-forwarded-host", "evil.example")];
    let reply = get(&app, &path, &reversed).await;
    assert_eq!((reply.status, reply.location), (403, None));
    let commas = [("host", "sl.example.org"), ("x-forwarded-host", "sl.example.org, evil.example")];
    assert_eq!(get(&app, &path, &commas).await.status, 403);
}

#[tokio::test]
async fn without_a_database_playback_answers_not_found() {
    let app = TestApp::builder().servers(0).start().await;
    assert_not_found_page(&get(&app, &format!("/recording/{A}/presentation"), &[]).await);
    assert_not_found_page(&get(&app, &format!("/presentation/{A}/metadata.xml"), &[]).await);
}

#[tokio::test]
async fn without_secret_key_base_protected_recordings_are_refused() {
    let app = TestApp::builder().servers(0).recordings().env("PROTECTED_RECORDINGS_ENABLED", "true").start().await;
    add(&app, A, &["presentation"], true, true).await;
    add(&app, B, &["presentation"], true, false).await;
    let token = mint_token(&app, A, "presentation").await;
    assert_not_found_page(&get(&app, &format!("/recording/{A}/presentation?token={token}"), &[]).await);
    // The token was not spent on a refusal.
    assert!(app.ttl_of(Expiring::PlaybackToken(&token)).await.is_some());
    assert_not_found_page(&get(&app, &format!("/presentation/{A}/metadata.xml"), &[]).await);
    // Unprotected recordings play as usual.
    assert_eq!(get(&app, &format!("/recording/{B}/presentation"), &[]).await.status, 307);
    assert_eq!(get(&app, &format!("/presentation/{B}/metadata.xml"), &[]).await.status, 200);
}

#[tokio::test]
async fn same_site_is_left_out_for_browsers_that_mishandle_none() {
    let app = protected_app().await;
    add(&app, A, &["presentation"], true, true).await;
    let set_cookie = async |user_agent: &str| {
        let token = mint_token(&app, A, "presentation").await;
        let play =
            get(&app, &format!("/recording/{A}/presentation?token={token}"), &[("user-agent", user_agent)]).await;
        assert_eq!(play.status, 307);
        play.header("set-cookie").unwrap().to_owned()
    };
    let old_chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/60.0.3112.113 Safari/537.36";
    let ios12 = "Mozilla/5.0 (iPhone; CPU iPhone OS 12_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/12.1.2 Mobile/15E148 Safari/604.1";
    let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    for ua in [old_chrome, ios12] {
        let cookie = set_cookie(ua).await;
        assert!(cookie.ends_with("; Secure; HttpOnly"), "{cookie}");
    }
    assert!(set_cookie(firefox).await.ends_with("; Secure; HttpOnly; SameSite=None"));
}

/// A file below the publish directory.
fn publish(app: &TestApp, relative: &str, content: &str) {
    let path = app.dirs().published().join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

#[tokio::test]
async fn nginx_serves_published_files_and_guards_protected_ones() {
    let app = protected_app().await;
    let unpublished = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e-1715262000000";
    add(&app, A, &["presentation", "podcast", "video"], true, false).await;
    add(&app, B, &["presentation"], true, true).await;
    add(&app, unpublished, &["presentation"], false, false).await;
    publish(&app, &format!("presentation/{A}/metadata.xml"), "<recording>A</recording>");
    publish(&app, &format!("presentation/{A}/svgs/image 1.svg"), "<svg>1</svg>");
    publish(&app, &format!("podcast/{A}/audio.ogg"), "OggS-audio");
    publish(&app, &format!("video/{A}/index.html"), "video player A");
    publish(&app, &format!("presentation/{B}/metadata.xml"), "<recording>B</recording>");
    // A stale copy in the publish tree must not leak while unpublished.
    publish(&app, &format!("presentation/{unpublished}/metadata.xml"), "<recording>hidden</recording>");
    let player = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(player.path().join("playback/presentation/2.3")).unwrap();
    std::fs::write(player.path().join("playback/presentation/2.3/index.html"), "presentation player").unwrap();

    let nginx = TestNginx::scalelite(&SiteSettings {
        api: app.addr,
        publish_dir: app.dirs().published(),
        player_root: player.path().to_owned(),
    })
    .await;
    let origin = nginx.origin();
    let at = async |path: &str, headers: &[(&str, &str)]| send(Method::GET, &format!("{origin}{path}"), headers).await;
    let log = || nginx.error_log();

    // Published files, with their type; the redirect header stays inside.
    let xml = at(&format!("/presentation/{A}/metadata.xml"), &[]).await;
    assert_eq!((xml.status, xml.body.as_str()), (200, "<recording>A</recording>"), "{}", log());
    assert_eq!(xml.content_type(), Some("text/xml"));
    assert!(xml.header("x-accel-redirect").is_none());
    let svg = at(&format!("/presentation/{A}/svgs/image%201.svg"), &[]).await;
    assert_eq!((svg.status, svg.body.as_str()), (200, "<svg>1</svg>"), "{}", log());
    let audio = at(&format!("/podcast/{A}/audio.ogg"), &[]).await;
    assert_eq!((audio.status, audio.body.as_str()), (200, "OggS-audio"));
    assert_eq!(audio.header("content-disposition"), Some("attachment"));
    let head = send(Method::HEAD, &format!("{origin}/podcast/{A}/audio.ogg"), &[]).await;
    assert_eq!((head.status, head.header("content-length"), head.body.as_str()), (200, Some("10"), ""));
    // The video player link, and the directory's index behind it.
    let link = at(&format!("/playback/video/{A}/"), &[]).await;
    assert_eq!((link.status, link.location.as_deref()), (307, Some(format!("/video/{A}/").as_str())));
    let video = at(&format!("/video/{A}/"), &[]).await;
    assert_eq!((video.status, video.body.as_str()), (200, "video player A"), "{}", log());
    // The presentation player is nginx's own.
    let page = at(&format!("/playback/presentation/2.3/{A}"), &[]).await;
    assert_eq!((page.status, page.body.as_str()), (200, "presentation player"));

    // Nothing else reaches the files.
    let internal = at(&format!("/static-resource/presentation/{A}/metadata.xml"), &[]).await;
    assert_eq!(internal.status, 404);
    let hidden = at(&format!("/presentation/{unpublished}/metadata.xml"), &[]).await;
    assert_eq!(hidden.status, 404);
    assert!(hidden.body.contains(NOT_FOUND_TITLE));
    for path in [
        format!("/presentation/{A}/..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd"),
        format!("/presentation/{A}/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd"),
        format!("/presentation/{A}/../../../../../../etc/passwd"),
        "/presentation/%2E%2E%2F%2E%2E%2F%2E%2E%2Fetc/passwd".to_owned(),
    ] {
        let reply = at(&path, &[]).await;
        assert!(!reply.body.contains("root:"), "{path} leaked /etc/passwd");
        assert_ne!(reply.status, 200, "{path}");
    }

    // The protected recording: nothing without the cookie, then play sets it.
    let b_file = format!("/presentation/{B}/metadata.xml");
    assert_eq!(at(&b_file, &[]).await.status, 404);
    let token = mint_token(&app, B, "presentation").await;
    let play = at(&format!("/recording/{B}/presentation?token={token}"), &[]).await;
    assert_eq!(play.status, 307, "{}", play.body);
    assert_eq!(play.location, Some(format!("{origin}/playback/presentation/2.3/{B}")));
    let cookie = cookie_pair(&play);
    let opened = at(&b_file, &[("cookie", &cookie)]).await;
    assert_eq!((opened.status, opened.body.as_str()), (200, "<recording>B</recording>"));
    assert_eq!(opened.header("cache-control"), Some("private, no-cache"));
    // B's cookie does not open another protected recording.
    let b2 = "9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a9a-1715263000000";
    add(&app, b2, &["presentation"], true, true).await;
    publish(&app, &format!("presentation/{b2}/metadata.xml"), "<recording>B2</recording>");
    let stolen = at(&format!("/presentation/{b2}/metadata.xml"), &[("cookie", &cookie.replace(B, b2))]).await;
    assert_eq!(stolen.status, 404);

    // The BBB API is proxied unchanged.
    let index = at("/bigbluebutton/api", &[]).await;
    assert!(index.is_success(), "{}", index.body);
}
