//! The recordings calls on the backend's recordings store and real directories:
//! Scalelite's XML, every filter, BBB 2.6 paging, publish/unpublish moving
//! files, update, delete, protected URLs and the disabled variants.

use std::time::Duration;

use bytes::Bytes;
use http::Method;
use scalelite_store::recordings::{
    ImportPolicy, ImportedFormat, ImportedThumbnail, RecordingImport, RecordingQuery, RecordingView, StateFilter,
};
use scalelite_tests::{ApiClient, Expiring, Reply, Style, TestApp, http_request};

use crate::support::assert_failed;

/// A realistic recording: two formats, BBB's usual metadata (one blank).
fn recording(record_id: &str, meeting_id: &str, start_ms: i64, formats: &[&str]) -> RecordingImport {
    RecordingImport {
        record_id: record_id.into(),
        meeting_id: meeting_id.into(),
        name: Some(format!("Vorlesung {meeting_id} – Übung")),
        published: Some(true),
        participants: Some(7),
        state: Some("published".into()),
        start_ms: Some(start_ms),
        end_ms: Some(start_ms + 1_800_000),
        metadata: vec![
            ("bbb-origin".into(), "Greenlight".into()),
            ("bbb-origin-server-name".into(), "gl.example.edu".into()),
            ("gl-listed".into(), " ".into()),
        ],
        formats: formats
            .iter()
            .map(|format| ImportedFormat {
                format: (*format).into(),
                url: format!("/playback/{format}/2.3/{record_id}"),
                length: Some(30),
                thumbnails: if *format == "presentation" {
                    vec![ImportedThumbnail {
                        width: Some(176),
                        height: Some(136),
                        alt: Some("Welcome to <BBB>".into()),
                        url: format!("/presentation/{record_id}/presentation/d2d9/thumbnails/thumb-1.png"),
                    }]
                } else {
                    vec![]
                },
            })
            .collect(),
    }
}

async fn app() -> TestApp {
    TestApp::builder().servers(1).recordings().start().await
}

/// Imports a recording and lays out its files as the importer would.
async fn seed(app: &TestApp, import: &RecordingImport) {
    let imported = app.recording_store().import_recording(import, ImportPolicy::default()).await.unwrap();
    let root = if imported.published { app.dirs().published() } else { app.dirs().unpublished() };
    for format in &import.formats {
        let dir = root.join(&format.format).join(&import.record_id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.html"), "<html/>").unwrap();
    }
}

/// Every recording in the store, in any state.
async fn all_recordings(app: &TestApp) -> Vec<RecordingView> {
    let query = RecordingQuery { states: StateFilter::Any, ..RecordingQuery::default() };
    app.recording_store().find_recordings(&query).await.unwrap().recordings
}

/// `(record_id, protected)` of every recording, by record id.
async fn protection(app: &TestApp) -> Vec<(String, bool)> {
    let mut all: Vec<_> = all_recordings(app).await.into_iter().map(|r| (r.record_id, r.protected)).collect();
    all.sort();
    all
}

fn ids(reply: &Reply) -> Vec<String> {
    let xml = reply.xml();
    let Some(list) = xml.child("recordings") else { return Vec::new() };
    list.children_named("recording").map(|r| r.text_at("recordID").unwrap_or_default()).collect()
}

async fn list(app: &TestApp, params: &[(&str, &str)]) -> Vec<String> {
    let reply = app.client().get("getRecordings", params).await;
    assert!(reply.is_success(), "{params:?}: {}", reply.body);
    ids(&reply)
}

/// A signed GET sent as if through a TLS-terminating proxy.
async fn get_behind_proxy(client: &ApiClient, call: &str, params: &[(&str, &str)]) -> Reply {
    let headers = [("x-forwarded-proto", "https"), ("x-forwarded-host", "lb.example.edu")];
    http_request(Method::GET, &client.url(call, params), &headers, Bytes::new(), Duration::from_secs(10)).await.unwrap()
}

#[tokio::test]
async fn get_recordings_renders_scalelites_document() {
    let app = app().await;
    seed(
        &app,
        &recording(
            "ffbfc4cc24428694e8b53a4e144f414052431693-1700000000000",
            "room-1",
            1_700_000_000_000,
            &["presentation", "video"],
        ),
    )
    .await;
    let mut unnamed =
        recording("a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0-1690000000000", "room-2", 1_690_000_000_000, &["podcast"]);
    unnamed.name = None;
    unnamed.participants = None;
    unnamed.formats[0].length = None;
    seed(&app, &unnamed).await;
    let reply = get_behind_proxy(&app.client(), "getRecordings", &[]).await;
    assert_eq!(reply.content_type(), Some("application/xml; charset=utf-8"));
    insta::assert_snapshot!(reply.body, @r#"
    <response>
      <returncode>SUCCESS</returncode>
      <recordings>
        <recording>
          <recordID>ffbfc4cc24428694e8b53a4e144f414052431693-1700000000000</recordID>
          <meetingID>room-1</meetingID>
          <internalMeetingID>ffbfc4cc24428694e8b53a4e144f414052431693-1700000000000</internalMeetingID>
          <name>Vorlesung room-1 – Übung</name>
          <published>true</published>
          <state>published</state>
          <startTime>1700000000000</startTime>
          <endTime>1700001800000</endTime>
          <participants>7</participants>
          <metadata>
            <bbb-origin>Greenlight</bbb-origin>
            <bbb-origin-server-name>gl.example.edu</bbb-origin-server-name>
            <gl-listed>
              <![CDATA[]]>
            </gl-listed>
          </metadata>
          <playback>
            <format>
              <type>presentation</type>
              <url>https://lb.example.edu/playback/presentation/2.3/ffbfc4cc24428694e8b53a4e144f414052431693-1700000000000</url>
              <length>30</length>
              <preview>
                <images>
                  <image alt="Welcome to &lt;BBB&gt;" width="176" height="136">https://lb.example.edu/presentation/ffbfc4cc24428694e8b53a4e144f414052431693-1700000000000/presentation/d2d9/thumbnails/thumb-1.png</image>
                </images>
              </preview>
            </format>
            <format>
              <type>video</type>
              <url>https://lb.example.edu/playback/video/2.3/ffbfc4cc24428694e8b53a4e144f414052431693-1700000000000</url>
              <length>30</length>
            </format>
          </playback>
        </recording>
        <recording>
          <recordID>a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0-1690000000000</recordID>
          <meetingID>room-2</meetingID>
          <internalMeetingID>a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0-1690000000000</internalMeetingID>
          <name/>
          <published>true</published>
          <state>published</state>
          <startTime>1690000000000</startTime>
          <endTime>1690001800000</endTime>
          <metadata>
            <bbb-origin>Greenlight</bbb-origin>
            <bbb-origin-server-name>gl.example.edu</bbb-origin-server-name>
            <gl-listed>
              <![CDATA[]]>
            </gl-listed>
          </metadata>
          <playback>
            <format>
              <type>podcast</type>
              <url>https://lb.example.edu/playback/podcast/2.3/a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0-1690000000000</url>
              <length/>
            </format>
          </playback>
        </recording>
      </recordings>
    </response>
    "#);

    // No match: Scalelite's wording, no declaration.
    let none = app.client().get("getRecordings", &[("meetingID", "nope")]).await;
    insta::assert_snapshot!(none.body, @r"
    <response>
      <returncode>SUCCESS</returncode>
      <recordings>
      </recordings>
      <messageKey>noRecordings</messageKey>
      <message>There are not recordings for the meetings</message>
    </response>
    ");
    // The URL prefix is the request's own host and port without a proxy.
    let direct = app.client().get("getRecordings", &[("meetingID", "room-1")]).await;
    assert!(direct.body.contains(&format!("<url>{}/playback/presentation/2.3/", app.origin())), "{}", direct.body);
}

#[tokio::test]
async fn every_filter_of_get_recordings() {
    let app = app().await;
    let mut breakout = recording("bbbb0001-1700000300000", "room-b", 1_700_000_300_000, &["presentation"]);
    breakout.metadata.push(("bbb-context".into(), "Mathe 1".into()));
    seed(&app, &recording("aaaa0001-1700000100000", "room-a", 1_700_000_100_000, &["presentation"])).await;
    seed(&app, &recording("aaaa0002-1700000200000", "room-a", 1_700_000_200_000, &["presentation", "notes"])).await;
    seed(&app, &breakout).await;
    let mut processing = recording("cccc0001-1700000400000", "room-c", 1_700_000_400_000, &["screenshare"]);
    processing.state = Some("processing".into());
    seed(&app, &processing).await;

    // Default: published and unpublished, newest first.
    assert_eq!(list(&app, &[]).await, ["bbbb0001-1700000300000", "aaaa0002-1700000200000", "aaaa0001-1700000100000"]);
    // recordID: case-sensitive prefixes, OR-ed; a trailing comma adds nothing.
    assert_eq!(list(&app, &[("recordID", "aaaa")]).await, ["aaaa0002-1700000200000", "aaaa0001-1700000100000"]);
    assert!(list(&app, &[("recordID", "AAAA")]).await.is_empty());
    assert_eq!(
        list(&app, &[("recordID", "aaaa0001,bbbb,")]).await,
        ["bbbb0001-1700000300000", "aaaa0001-1700000100000"]
    );
    // An empty item in the middle matches everything (Ruby split semantics).
    assert_eq!(list(&app, &[("recordID", "zzz,,zzz")]).await.len(), 3);
    // LIKE wildcards are literal.
    assert!(list(&app, &[("recordID", "aaaa%")]).await.is_empty());
    assert!(list(&app, &[("recordID", "_aaa")]).await.is_empty());
    // Only commas: nothing.
    assert!(list(&app, &[("recordID", ",")]).await.is_empty());
    // meetingID: exact, OR-ed; whitespace only counts as absent.
    assert_eq!(list(&app, &[("meetingID", "room-b,room-x")]).await, ["bbbb0001-1700000300000"]);
    assert!(list(&app, &[("meetingID", "room")]).await.is_empty());
    assert_eq!(list(&app, &[("meetingID", " ")]).await.len(), 3);
    // state.
    assert_eq!(list(&app, &[("state", "processing")]).await, ["cccc0001-1700000400000"]);
    assert_eq!(list(&app, &[("state", "any")]).await.len(), 4);
    assert_eq!(list(&app, &[("state", "processing,any")]).await.len(), 4);
    assert_eq!(list(&app, &[("state", "published,processing"), ("meetingID", "room-c,room-b")]).await.len(), 2);
    // meta_ filters: value lists, several keys OR-ed.
    assert_eq!(list(&app, &[("meta_bbb-context", "Mathe 1,Physik")]).await, ["bbbb0001-1700000300000"]);
    assert_eq!(
        list(&app, &[("meta_bbb-context", "Mathe 1"), ("meta_bbb-origin", "Moodle")]).await,
        ["bbbb0001-1700000300000"]
    );
    assert_eq!(list(&app, &[("meta_bbb-origin", "Greenlight")]).await.len(), 3);
    assert!(list(&app, &[("meta_bbb-context", "mathe 1")]).await.is_empty());
    // Filters combine.
    assert_eq!(list(&app, &[("meetingID", "room-a"), ("recordID", "aaaa0002")]).await, ["aaaa0002-1700000200000"]);
    // Ruby- and PHP-style encodings of a non-ASCII value sign and filter alike.
    let mut umlaut = recording("dddd0001-1700000500000", "raum-ü", 1_700_000_500_000, &["video"]);
    umlaut.metadata.push(("bbb-context-name".into(), "Übung & Prüfung 日本".into()));
    seed(&app, &umlaut).await;
    for style in [Style::Ruby, Style::Php] {
        let client = app.client().style(style);
        let reply = client
            .get("getRecordings", &[("meetingID", "raum-ü"), ("meta_bbb-context-name", "Übung & Prüfung 日本")])
            .await;
        assert_eq!(ids(&reply), ["dddd0001-1700000500000"], "{style:?}: {}", reply.body);
        assert!(reply.body.contains("<bbb-context-name>Übung &amp; Prüfung 日本</bbb-context-name>"));
    }
    // POST with the parameters in a signed form body.
    let reply = app
        .client()
        .post_form("getRecordings", &[], &[("meetingID", "room-b")], scalelite_tests::BodySigning::BodyAsQuery)
        .await;
    assert_eq!(ids(&reply), ["bbbb0001-1700000300000"], "{}", reply.body);
    // HEAD answers like GET.
    assert_eq!(app.client().head("getRecordings", &[]).await.status, 200);
    // A bad checksum is refused.
    let forged = app.client().with_secret("wrong").get("getRecordings", &[]).await;
    assert_failed(&forged, "checksumError");
}

#[tokio::test]
async fn paging_with_offset_and_limit() {
    let app = app().await;
    for i in 0..7_i64 {
        seed(
            &app,
            &recording(&format!("rec{i}-17000000{i}0000"), "room", 1_700_000_000_000 + i * 1000, &["presentation"]),
        )
        .await;
    }
    let page = |params: &'static [(&'static str, &'static str)]| {
        let app = &app;
        async move {
            let reply = app.client().get("getRecordings", params).await;
            (ids(&reply), reply.text_at("totalElements"), reply)
        }
    };
    let (first, total, reply) = page(&[("limit", "3")]).await;
    assert_eq!(first, ["rec6-1700000060000", "rec5-1700000050000", "rec4-1700000040000"]);
    assert_eq!(total.as_deref(), Some("7"));
    let last = reply.xml().elements().last().unwrap().name.clone();
    assert_eq!(last, "totalElements", "appended as the last child, as bbb-web does");
    let (second, total, _) = page(&[("offset", "3"), ("limit", "3")]).await;
    assert_eq!(second, ["rec3-1700000030000", "rec2-1700000020000", "rec1-1700000010000"]);
    assert_eq!(total.as_deref(), Some("7"));
    let (tail, _, _) = page(&[("offset", "6"), ("limit", "3")]).await;
    assert_eq!(tail, ["rec0-1700000000000"]);
    let (beyond, total, reply) = page(&[("offset", "50"), ("limit", "3")]).await;
    assert!(beyond.is_empty());
    assert_eq!(total.as_deref(), Some("7"));
    assert_eq!(reply.message_key().as_deref(), Some("noRecordings"));
    // Invalid values mean no paging: everything, no totalElements.
    for params in [
        &[("limit", "0")][..],
        &[("limit", "101")],
        &[("limit", "x")],
        &[("offset", "-1"), ("limit", "3")],
        &[("offset", "2")],
    ] {
        let reply = app.client().get("getRecordings", params).await;
        assert_eq!(ids(&reply).len(), 7, "{params:?}");
        assert_eq!(reply.text_at("totalElements"), None, "{params:?}");
    }
    // Paging applies after the filters.
    let (filtered, total, _) = page(&[("recordID", "rec1,rec2,rec3"), ("limit", "2")]).await;
    assert_eq!(filtered, ["rec3-1700000030000", "rec2-1700000020000"]);
    assert_eq!(total.as_deref(), Some("3"));
}

#[tokio::test]
async fn filtered_mode_requires_an_id() {
    let app = TestApp::builder().servers(1).recordings().env("GET_RECORDINGS_API_FILTERED", "true").start().await;
    seed(&app, &recording("r1-1700000000000", "m1", 1_700_000_000_000, &["presentation"])).await;
    let reply = app.client().get("getRecordings", &[]).await;
    assert_failed(&reply, "missingParameters");
    assert_eq!(reply.message().as_deref(), Some("param meetingID or recordID must be included."));
    assert_failed(&app.client().get("getRecordings", &[("state", "any")]).await, "missingParameters");
    assert_eq!(list(&app, &[("meetingID", "m1")]).await, ["r1-1700000000000"]);
    assert_eq!(list(&app, &[("recordID", "r1")]).await, ["r1-1700000000000"]);
}

#[tokio::test]
async fn protected_recordings_get_one_time_playback_urls() {
    let app = TestApp::builder()
        .servers(1)
        .recordings()
        .env("PROTECTED_RECORDINGS_ENABLED", "true")
        .env("PROTECTED_RECORDINGS_TOKEN_TIMEOUT", "5")
        .start()
        .await;
    seed(&app, &recording("open-1700000000000", "m1", 1_700_000_000_000, &["presentation"])).await;
    seed(&app, &recording("secret-1700000100000", "m1", 1_700_000_100_000, &["presentation", "video"])).await;
    let update =
        app.client().get("updateRecordings", &[("recordID", "secret-1700000100000"), ("protect", "true")]).await;
    assert_eq!(update.text_at("updated").as_deref(), Some("true"), "{}", update.body);

    let reply = app.client().get("getRecordings", &[("meetingID", "m1")]).await;
    let xml = reply.xml();
    let recordings: Vec<_> = xml.child("recordings").unwrap().children_named("recording").cloned().collect();
    let (secret, open) = (&recordings[0], &recordings[1]);
    assert_eq!(secret.text_at("protected").as_deref(), Some("true"));
    assert_eq!(open.text_at("protected").as_deref(), Some("false"));
    assert!(open.at_path("playback/format/preview").is_some(), "unprotected recordings keep their previews");
    let formats: Vec<_> = secret.child("playback").unwrap().children_named("format").collect();
    assert_eq!(formats.len(), 2);
    let mut tokens = Vec::new();
    for format in formats {
        assert!(format.child("preview").is_none(), "no previews for protected recordings");
        let kind = format.text_at("type").unwrap();
        let url = format.text_at("url").unwrap();
        let expected = format!("{}/recording/secret-1700000100000/{kind}?token=", app.origin());
        let token = url.strip_prefix(&expected).unwrap_or_else(|| panic!("{url}")).to_owned();
        assert_eq!(token.len(), 64);
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        // Stored as Scalelite stores it, with the token timeout.
        let ttl = app.ttl_of(Expiring::PlaybackToken(&token)).await.expect("token stored").as_secs();
        assert!((290..=300).contains(&ttl), "ttl {ttl}");
        let payload = app.store().consume_playback_token(&token).await.unwrap().expect("token payload");
        let payload: serde_json::Value = serde_json::from_str(&payload).unwrap();
        assert_eq!(payload, serde_json::json!({"record_id": "secret-1700000100000", "format": kind}));
        tokens.push(token);
    }
    // Every call mints fresh tokens.
    let again = app.client().get("getRecordings", &[("recordID", "secret")]).await;
    for token in &tokens {
        assert!(!again.body.contains(token.as_str()));
    }
    let plain = app.client().get("getRecordings", &[("recordID", "open")]).await;
    assert!(plain.body.contains("<protected>false</protected>"));
    assert!(!plain.body.contains("token="));
}

#[tokio::test]
async fn publish_and_unpublish_move_the_files() {
    let app = app().await;
    let id = "pub1-1700000000000";
    seed(&app, &recording(id, "m1", 1_700_000_000_000, &["presentation", "video"])).await;
    let dirs = app.dirs();
    let client = app.client();

    assert_failed(&client.get("publishRecordings", &[("publish", "true")]).await, "missingParamRecordID");
    assert_failed(&client.get("publishRecordings", &[("recordID", id)]).await, "missingParamPublish");
    let unknown = client.get("publishRecordings", &[("recordID", "nope"), ("publish", "false")]).await;
    assert_failed(&unknown, "notFound");
    assert_eq!(unknown.message().as_deref(), Some("We could not find recordings"));

    let reply = client.get("publishRecordings", &[("recordID", id), ("publish", "false")]).await;
    assert!(reply.is_success(), "{}", reply.body);
    insta::assert_snapshot!(reply.body, @r"
    <response>
      <returncode>SUCCESS</returncode>
      <published>false</published>
    </response>
    ");
    for format in ["presentation", "video"] {
        assert!(dirs.unpublished().join(format).join(id).join("index.html").is_file());
        assert!(!dirs.published().join(format).join(id).exists());
    }
    let listed = client.get("getRecordings", &[("recordID", id)]).await;
    assert_eq!(listed.text_at("recordings/recording/published").as_deref(), Some("false"));
    assert_eq!(listed.text_at("recordings/recording/state").as_deref(), Some("unpublished"));
    // The administrator's unpublish is remembered: a re-import keeps it.
    let reimport = recording(id, "m1", 1_700_000_000_000, &["presentation", "video"]);
    let imported = app.recording_store().import_recording(&reimport, ImportPolicy::default()).await.unwrap();
    assert!(!imported.published, "publish_updated");

    // Anything but `true` (any case) unpublishes; `TRUE` publishes back.
    let reply = client.get("publishRecordings", &[("recordID", id), ("publish", "TRUE")]).await;
    assert_eq!(reply.text_at("published").as_deref(), Some("true"));
    assert!(dirs.published().join("video").join(id).join("index.html").is_file());
    assert!(!dirs.unpublished().join("video").join(id).exists());
    // Publishing a published recording changes nothing.
    assert!(client.get("publishRecordings", &[("recordID", id), ("publish", "true")]).await.is_success());

    // Files in neither tree: internalError, state unchanged.
    std::fs::remove_dir_all(dirs.published().join("video").join(id)).unwrap();
    let reply = client.get("publishRecordings", &[("recordID", id), ("publish", "no")]).await;
    assert_failed(&reply, "internalError");
    assert_eq!(reply.message().as_deref(), Some("Unable to publish/unpublish recording."));
    let listed = client.get("getRecordings", &[("recordID", id)]).await;
    assert_eq!(listed.text_at("recordings/recording/published").as_deref(), Some("true"));

    // POST is not a publishRecordings method.
    let post = client
        .post_form(
            "publishRecordings",
            &[("recordID", id), ("publish", "true")],
            &[],
            scalelite_tests::BodySigning::QueryOnly,
        )
        .await;
    assert_failed(&post, "unsupportedRequest");
}

#[tokio::test]
async fn update_recordings_metadata_and_protection() {
    let app = app().await;
    seed(&app, &recording("u1-1700000000000", "m1", 1_700_000_000_000, &["presentation"])).await;
    seed(&app, &recording("u2-1700000100000", "m1", 1_700_000_100_000, &["presentation"])).await;
    let client = app.client();
    let both = "u1-1700000000000,u2-1700000100000";
    assert_failed(&client.get("updateRecordings", &[]).await, "missingParamRecordID");

    let reply = client
        .get("updateRecordings", &[("recordID", both), ("meta_Course-Name", "Analysis I"), ("meta_bbb-origin", "")])
        .await;
    insta::assert_snapshot!(reply.body, @r"
    <response>
      <returncode>SUCCESS</returncode>
      <updated>true</updated>
    </response>
    ");
    for id in ["u1-1700000000000", "u2-1700000100000"] {
        let listed = client.get("getRecordings", &[("recordID", id)]).await;
        assert_eq!(listed.text_at("recordings/recording/metadata/course-name").as_deref(), Some("Analysis I"));
        assert_eq!(listed.text_at("recordings/recording/metadata/bbb-origin"), None, "removed");
    }
    // protect applies to the first listed recording only.
    let reply =
        client.get("updateRecordings", &[("recordID", "u2-1700000100000,u1-1700000000000"), ("protect", "true")]).await;
    assert_eq!(reply.text_at("updated").as_deref(), Some("true"));
    assert_eq!(protection(&app).await, [("u1-1700000000000".to_owned(), false), ("u2-1700000100000".to_owned(), true)]);
    let reply = client.get("updateRecordings", &[("recordID", "u2-1700000100000"), ("protect", "off")]).await;
    assert_eq!(reply.text_at("updated").as_deref(), Some("true"));
    assert_eq!(protection(&app).await[1], ("u2-1700000100000".to_owned(), false));
    // Nothing to change: updated=false.
    assert_eq!(
        client.get("updateRecordings", &[("recordID", both)]).await.text_at("updated").as_deref(),
        Some("false")
    );
    // An unknown (or repeated) id: nothing changes, updated=false.
    for ids in ["u1-1700000000000,nope", "u1-1700000000000,u1-1700000000000"] {
        let reply = client.get("updateRecordings", &[("recordID", ids), ("meta_x", "1")]).await;
        assert!(reply.is_success());
        assert_eq!(reply.text_at("updated").as_deref(), Some("false"), "{ids}");
    }
    assert!(all_recordings(&app).await.iter().all(|r| r.metadata.iter().all(|(key, _)| key != "x")));
    // Keys that cannot be XML element names are ignored instead of breaking
    // every later getRecordings document.
    let reply = client.get("updateRecordings", &[("recordID", "u1-1700000000000"), ("meta_a><b", "x")]).await;
    assert_eq!(reply.text_at("updated").as_deref(), Some("false"));
    assert!(client.get("getRecordings", &[]).await.try_xml().is_ok());
    // POST with a signed form body.
    let reply = client
        .post_form(
            "updateRecordings",
            &[],
            &[("recordID", "u1-1700000000000"), ("meta_term", "WS 26")],
            scalelite_tests::BodySigning::BodyAsQuery,
        )
        .await;
    assert_eq!(reply.text_at("updated").as_deref(), Some("true"), "{}", reply.body);
}

#[tokio::test]
async fn delete_recordings_removes_files_in_both_trees() {
    let app = app().await;
    let dirs = app.dirs();
    seed(&app, &recording("d1-1700000000000", "m1", 1_700_000_000_000, &["presentation", "video"])).await;
    seed(&app, &recording("d2-1700000100000", "m1", 1_700_000_100_000, &["presentation"])).await;
    let client = app.client();
    // Unpublish d2 so its files sit in the unpublished tree.
    assert!(
        client.get("publishRecordings", &[("recordID", "d2-1700000100000"), ("publish", "false")]).await.is_success()
    );

    assert_failed(&client.get("deleteRecordings", &[]).await, "missingParamRecordID");
    assert_failed(&client.get("deleteRecordings", &[("recordID", "nope")]).await, "notFound");
    let reply = client.get("deleteRecordings", &[("recordID", "d1-1700000000000,d2-1700000100000")]).await;
    insta::assert_snapshot!(reply.body, @r"
    <response>
      <returncode>SUCCESS</returncode>
      <deleted>true</deleted>
    </response>
    ");
    assert!(dirs.files().iter().all(|f| !f.contains("d1-") && !f.contains("d2-")), "{:?}", dirs.files());
    assert!(list(&app, &[]).await.is_empty());
    // The rows stay, as `deleted`, without formats or metadata.
    let deleted = client.get("getRecordings", &[("state", "deleted")]).await;
    assert_eq!(ids(&deleted), ["d2-1700000100000", "d1-1700000000000"]);
    assert!(deleted.xml().at_path("recordings/recording/playback/format").is_none());
    // Deleting again finds them (any state) and succeeds.
    assert!(client.get("deleteRecordings", &[("recordID", "d1-1700000000000")]).await.is_success());
}

#[tokio::test]
async fn disabled_recordings_need_no_checksum() {
    let app = TestApp::builder().servers(1).recordings().env("RECORDING_DISABLED", "true").start().await;
    assert_answers_as_disabled(&app).await;
}

async fn assert_answers_as_disabled(app: &TestApp) {
    let base = app.api_url();
    let get = |call: &str| {
        let url = format!("{base}/{call}?recordID=x&publish=true");
        async move { scalelite_tests::http_get(&url).await }
    };
    let reply = get("getRecordings").await;
    assert!(reply.is_success(), "{}", reply.body);
    assert_eq!(reply.message_key().as_deref(), Some("noRecordings"));
    for call in ["publishRecordings", "updateRecordings", "deleteRecordings"] {
        let reply = get(call).await;
        assert_failed(&reply, "notFound");
    }
}

/// PostgreSQL's schema bookkeeping, and the services backend without `DATABASE_URL`.
mod redis_only {
    use super::*;
    use scalelite_tests::TestBackend;

    #[tokio::test]
    async fn publish_leaves_a_recording_with_a_null_published_column_alone() {
        // Scalelite selects `where.not(published: publish)`, which SQL never
        // matches for NULL (older Ruby databases hold such rows): the call
        // succeeds and nothing moves.
        let app = TestApp::builder().backend(TestBackend::Redis).servers(1).recordings().start().await;
        let id = "null1-1700000000000";
        seed(&app, &recording(id, "m1", 1_700_000_000_000, &["presentation"])).await;
        app.pg().psql(&format!("UPDATE recordings SET published = NULL WHERE record_id = '{id}'")).await;
        let dirs = app.dirs();
        let files = dirs.published().join("presentation").join(id).join("index.html");
        for publish in ["false", "true", "false"] {
            let reply = app.client().get("publishRecordings", &[("recordID", id), ("publish", publish)]).await;
            assert_eq!(reply.text_at("published").as_deref(), Some(publish), "{}", reply.body);
            assert!(files.is_file(), "publish={publish}: the files stay where they are");
            assert!(!dirs.unpublished().join("presentation").join(id).exists());
        }
        assert_eq!(
            app.pg().psql(&format!("SELECT published IS NULL FROM recordings WHERE record_id = '{id}'")).await.trim(),
            "t"
        );
        let listed = app.client().get("getRecordings", &[("recordID", id)]).await;
        assert_eq!(listed.text_at("recordings/recording/state").as_deref(), Some("published"), "state untouched");
    }

    #[tokio::test]
    async fn without_database_url_recordings_answer_as_disabled() {
        let app = TestApp::builder().backend(TestBackend::Redis).servers(1).start().await;
        assert!(app.state.recordings.is_none());
        assert_answers_as_disabled(&app).await;
    }

    #[tokio::test]
    async fn health_check_reports_pending_migrations() {
        let app = TestApp::builder().backend(TestBackend::Redis).servers(1).recordings().start().await;
        assert_eq!(scalelite_tests::http_get(&format!("{}/health_check", app.origin())).await.status, 200);
        app.pg().psql("DELETE FROM schema_migrations WHERE version = '20261123000001'").await;
        let reply = scalelite_tests::http_get(&format!("{}/health_check", app.origin())).await;
        assert_eq!(reply.status, 503);
        assert!(reply.body.contains("scalelite-admin db migrate"), "{}", reply.body);
    }
}

/// BBB 3.0 (A10): text tracks are refused in bbb-web's JSON shape, after
/// the checksum, without touching any server.
#[tokio::test]
async fn text_tracks_answer_a_clean_json_error() {
    let app = TestApp::start().await;
    let client = app.client();
    let get = client.get("getRecordingTextTracks", &[("recordID", "r-1")]).await;
    let boundary = "tt";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.vtt\"\r\n\r\nWEBVTT\r\n--{boundary}--\r\n"
    );
    let ct = format!("multipart/form-data; boundary={boundary}");
    let put = client.post_raw("putRecordingTextTrack", "recordID=r-1&kind=captions&lang=en", Some(&ct), body).await;
    for reply in [get, put] {
        assert_eq!(reply.status, 200);
        assert_eq!(reply.content_type(), Some("application/json"), "{}", reply.body);
        let json: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"response": {
                "returncode": "FAILED",
                "messageKey": "notImplemented",
                "message": "Recording text tracks are not available through this load balancer."
            }})
        );
    }
    // Unsigned requests are still checksum errors.
    let unsigned = format!("{}?recordID=r-1&checksum=00", client.call_url("getRecordingTextTracks"));
    assert_failed(&client.raw_get(&unsigned).await, "checksumError");
    assert_eq!(app.fleet.call_count("getRecordingTextTracks"), 0);
}
