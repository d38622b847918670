//! Client libraries front-ends build on, driving the balancer: the pypi.org
//! package `bigbluebutton_api_python` runs tests/clients/python/drive.py
//! (create, join, isMeetingRunning, getMeetingInfo, sendChatMessage,
//! getRecordings, end). The libraries only on npm, Packagist and rubygems.org
//! are not reachable from the test machines; docs/COMPATIBILITY.md
//! ("Client libraries") says how what they send is covered instead.
//!
//! The library and its one dependency are installed once, pinned by hash
//! (tests/clients/python/requirements.txt), into a virtualenv cached in the
//! cargo target directory (`target/client-libraries/`); only the first run
//! needs pypi.org.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use scalelite_tests::{Algo, ApiClient, Reply, Style, TestApp, http_get, http_request};
use serde_json::{Value, json};

use crate::support::recording;

/// The pinned library, also the name of its cached virtualenv.
const PYTHON_LIBRARY: &str = "bigbluebutton_api_python-0.0.11";

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients")
}

/// The Python interpreter of a virtualenv holding the pinned library,
/// created on first use (`target/client-libraries/`).
fn python_with_library() -> PathBuf {
    let requirements = clients_dir().join("python/requirements.txt");
    scalelite_tests::pypi::python(&scalelite_tests::pypi::PinnedVenv {
        cache: "client-libraries",
        name: PYTHON_LIBRARY,
        check: "import bigbluebutton_api_python",
        pip_options: &["--require-hashes", "--only-binary", ":all:"],
        requirements: &requirements,
        failure: "pip could not install bigbluebutton_api_python==0.0.11 and jxmlease==1.0.3 from PyPI \
                  (https://pypi.org must be reachable the first time; the virtualenv is then cached in \
                  target/client-libraries/)",
    })
}

#[tokio::test]
async fn bigbluebutton_api_python_drives_every_call_through_the_balancer() {
    let python = tokio::task::spawn_blocking(python_with_library)
        .await
        .unwrap_or_else(|error| std::panic::resume_unwind(error.into_panic()));
    let app = TestApp::builder().servers(2).recordings().start().await;
    let store = app.recording_store();
    // The library reads `<recording>` as a list only when there are two or
    // more, and one playback `<format>` each: two recordings, one format.
    for (record_id, start) in [("rec-py-1", 1_700_000_000_000), ("rec-py-2", 1_700_000_100_000)] {
        store.import_recording(&recording(record_id, "py-room", start), Default::default()).await.unwrap();
    }
    store.import_recording(&recording("rec-other", "other-room", 1_700_000_200_000), Default::default()).await.unwrap();

    let output = tokio::process::Command::new(&python)
        .arg(clients_dir().join("python/drive.py"))
        .arg(format!("{}/", app.api_url()))
        .arg(scalelite_tests::LB_SECRET)
        .arg("py-room")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "drive.py: {stderr}");
    let out: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("drive.py printed no JSON ({error}): {stderr}"));
    assert_eq!(out.get("failed"), None, "{out:#}");

    // create: placed on one server, every value as sent. (The script ended
    // the meeting at last: what the servers heard tells the story.)
    let on = app.fleet.iter().position(|server| server.call_count("create") > 0).expect("a server heard create");
    let creates = app.fleet[on].calls_to("create");
    assert_eq!(creates.len(), 2, "the repeated create goes to the same server");
    let sent = &creates[0];
    let voice_bridge = sent.param("voiceBridge").unwrap();
    assert_eq!(
        out["create"],
        json!({"returncode": "SUCCESS", "meetingID": "py-room", "attendeePW": "ap & ü",
               "moderatorPW": "mp+1", "voiceBridge": voice_bridge})
    );
    assert_eq!(out["create_again"], json!({"returncode": "SUCCESS", "messageKey": "duplicateWarning"}));
    assert_eq!(sent.param("name"), Some("Vorlesung – Grüße & 1+1=2"));
    assert_eq!(sent.param("welcome"), Some("Hallo <b>%20</b> ~*"));
    assert_eq!(sent.param("record"), Some("true"));
    assert_eq!(sent.param("meta_origin"), Some("python client"));
    assert_eq!(sent.param("meta_note"), Some("a&b=c"));

    // join: a 302 to the meeting's server, signed for it; the script
    // followed it.
    assert_eq!(out["join"]["status"], 302, "{out:#}");
    let location = out["join"]["location"].as_str().unwrap();
    assert!(location.starts_with(&format!("{}/join?", app.fleet[on].url())), "{location}");
    assert_eq!(out["join"]["page"], 200, "the fake server's client page");
    let join = app.fleet[on].calls_to("join").pop().unwrap();
    assert!(join.checksum_valid);
    assert_eq!(join.param("fullName"), Some("Zoë Ünïcode & Co"));
    assert_eq!(join.param("password"), Some("mp+1"));

    assert_eq!(out["isMeetingRunning"], true);
    let info = &out["getMeetingInfo"];
    assert_eq!(info["returncode"], "SUCCESS");
    assert_eq!(info["meetingID"], "py-room");
    assert_eq!(info["meetingName"], "Vorlesung – Grüße & 1+1=2");
    assert_eq!((&info["attendeePW"], &info["moderatorPW"]), (&json!("ap & ü"), &json!("mp+1")));
    assert_eq!(info["voiceBridge"], voice_bridge);
    assert!(
        info["internalMeetingID"].as_str().unwrap().starts_with(&format!("{}-", Algo::Sha1.hex_digest(b"py-room")))
    );
    assert_eq!((&info["meta_origin"], &info["meta_note"]), (&json!("python client"), &json!("a&b=c")));
    assert_eq!(info["attendees"], 1);

    // sendChatMessage, signed by the library's URL builder.
    assert_eq!(out["sendChatMessage"], true);
    let chat = app.fleet[on].calls_to("sendChatMessage");
    assert_eq!(chat.len(), 1);
    assert_eq!((chat[0].param("message"), chat[0].param("userName")), (Some("Grüße & 1+1=2 😀"), Some("Py Bot")));

    // getRecordings from the balancer's own store; the library's empty
    // `meetingID=&recordID=` means every recording.
    let recordings = out["getRecordings"].as_array().unwrap();
    let mut ids: Vec<_> = recordings.iter().map(|r| r["recordID"].as_str().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["rec-py-1", "rec-py-2"], "{out:#}");
    let first = recordings.iter().find(|r| r["recordID"] == "rec-py-1").unwrap();
    assert_eq!(
        first,
        &json!({"recordID": "rec-py-1", "meetingID": "py-room", "name": "Name py-room", "published": true,
               "state": "published", "playback": "presentation",
               "url": first["url"], "origin": "greenlight"})
    );
    assert!(first["url"].as_str().unwrap().ends_with("/playback/presentation/2.3/rec-py-1"), "{out:#}");
    assert_eq!(out["getRecordings_all"], json!(["rec-other", "rec-py-1", "rec-py-2"]));
    assert_eq!(out["getRecordings_none"], 0);
    assert_eq!(app.fleet.call_count("getRecordings"), 0);

    // end: the server ends it; the balancer forgets it.
    assert_eq!(out["end"], "SUCCESS");
    assert_eq!(app.fleet[on].call_count("end"), 1);
    assert!(app.fleet[on].meeting("py-room").is_none());
    assert_eq!(out["isMeetingRunning_after_end"], false);
    assert_eq!(out["getMeetingInfo_after_end"], "notFound");
    assert_eq!(out["end_after_end"], "notFound");

    // Every API call the servers heard carried a valid checksum.
    for server in app.fleet.iter() {
        let api_calls: Vec<_> =
            server.calls().into_iter().filter(|call| call.path.starts_with("/bigbluebutton/api/")).collect();
        assert!(api_calls.iter().all(|call| call.checksum_valid), "{api_calls:?}");
    }
}

/// How a library only published on npm, Packagist or rubygems.org talks to
/// BBB, from its source; reproduced request by request below.
struct Library {
    name: &'static str,
    /// Parameter order and percent-encoding.
    style: Style,
    /// Its default checksum algorithm.
    algo: Algo,
    /// `Content-Type` of a create carrying presentations (a POST with the
    /// XML modules as body); `None`: the library only sends GET.
    create_content_type: Option<&'static str>,
    /// `Accept` header it sends, if any.
    accept: Option<&'static str>,
    /// Whether it has `sendChatMessage`.
    chat: bool,
}

const LIBRARIES: [Library; 4] = [
    // Greenlight's gem: parameters sorted, SHA-1, presentations POSTed
    // labelled as form data.
    Library {
        name: "bigbluebutton-api-ruby",
        style: Style::Ruby,
        algo: Algo::Sha1,
        create_content_type: Some("application/x-www-form-urlencoded"),
        accept: None,
        chat: false,
    },
    // Its releases before 1.7 labelled the modules `text/xml`.
    Library {
        name: "bigbluebutton-api-ruby (older)",
        style: Style::Ruby,
        algo: Algo::Sha1,
        create_content_type: Some("text/xml"),
        accept: None,
        chat: false,
    },
    // PHP's RFC 3986 encoding with `+` for spaces is Python's quote_plus;
    // SHA-256 by default; `Content-type: application/xml`.
    Library {
        name: "bigbluebutton-api-php",
        style: Style::Python,
        algo: Algo::Sha256,
        create_content_type: Some("application/xml"),
        accept: None,
        chat: true,
    },
    // npm `bigbluebutton-js`: Node's querystring (space `%20`), SHA-1,
    // GET only, an explicit Accept list.
    Library {
        name: "bigbluebutton-js",
        style: Style::Js,
        algo: Algo::Sha1,
        create_content_type: None,
        accept: Some("text/xml, application/json, text/plain, */*"),
        chat: false,
    },
];

impl Library {
    async fn send(&self, method: Method, url: &str, content_type: Option<&str>, body: &str) -> Reply {
        let mut headers = Vec::new();
        headers.extend(self.accept.map(|accept| ("accept", accept)));
        headers.extend(content_type.map(|content_type| ("content-type", content_type)));
        let body = Bytes::from(body.to_owned());
        http_request(method, url, &headers, body, Duration::from_secs(30)).await.unwrap()
    }

    async fn get(&self, client: &ApiClient, call: &str, params: &[(&str, &str)]) -> Reply {
        self.send(Method::GET, &client.url(call, params), None, "").await
    }
}

#[tokio::test]
async fn what_the_libraries_not_on_pypi_send_works_through_the_balancer() {
    let app = TestApp::builder().servers(2).recordings().start().await;
    let slides = r#"<?xml version="1.0" encoding="UTF-8"?><modules><module name="presentation"><document url="https://example.org/Folien%20%C3%BC.pdf" filename="Folien ü.pdf"/></module></modules>"#;
    for (i, library) in LIBRARIES.iter().enumerate() {
        let name = library.name;
        let id = format!("lib-{i}");
        let record_id = format!("rec-lib-{i}");
        app.recording_store()
            .import_recording(&recording(&record_id, &id, 1_700_000_000_000 + i as i64), Default::default())
            .await
            .unwrap();
        let client = app.client().style(library.style).algorithm(library.algo);
        let create_params = [
            ("meetingID", id.as_str()),
            ("name", "Vorlesung – Grüße & 1+1=2 ~*"),
            ("moderatorPW", "mp+1"),
            ("attendeePW", "ap & ü"),
            ("record", "true"),
            ("meta_origin", "a b&c"),
        ];
        let created = match library.create_content_type {
            Some(content_type) => {
                library.send(Method::POST, &client.url("create", &create_params), Some(content_type), slides).await
            }
            None => library.get(&client, "create", &create_params).await,
        };
        assert!(created.is_success(), "{name}: {}", created.body);
        let on = app.placed_on(&id).await.unwrap();
        let sent = app.fleet[on].calls_to("create").pop().unwrap();
        assert!(sent.checksum_valid, "{name}");
        assert_eq!(sent.param("name"), Some("Vorlesung – Grüße & 1+1=2 ~*"), "{name}");
        assert_eq!(sent.param("meta_origin"), Some("a b&c"), "{name}");
        match library.create_content_type {
            // A body labelled as form data is read as form parameters (by
            // bbb-web as by the balancer), not as modules: those parameters
            // are not covered by the checksum and are dropped, the meeting
            // is created without the presentation, as on a BBB server.
            Some("application/x-www-form-urlencoded") => {
                assert!(sent.body.is_empty(), "{name}: {}", sent.body_text());
                assert_eq!(sent.params.len(), create_params.len() + 2, "{name}: voiceBridge and checksum added");
            }
            Some(_) => assert_eq!(sent.body_text(), slides, "{name}: the presentations reach the server"),
            None => assert_eq!(sent.method, "GET", "{name}"),
        }

        let join =
            library.get(&client, "join", &[("fullName", "Zoë & Co"), ("meetingID", &id), ("password", "mp+1")]).await;
        assert_eq!(join.status, 302, "{name}: {}", join.body);
        let location = join.location.as_deref().unwrap();
        assert!(location.starts_with(&format!("{}/join?", app.fleet[on].url())), "{name}: {location}");
        // The browser follows it: the server admits the user to its client.
        let admitted = http_get(location).await;
        assert_eq!(admitted.status, 302, "{name}: {}", admitted.body);
        assert!(admitted.location.as_deref().unwrap_or_default().contains("sessionToken="), "{name}");

        if library.chat {
            let chat = library.get(&client, "sendChatMessage", &[("meetingID", &id), ("message", "Grüße ~*")]).await;
            assert!(chat.is_success(), "{name}: {}", chat.body);
            let heard = app.fleet[on].meeting(&id).unwrap().chat;
            assert_eq!(heard, vec![("System".to_owned(), "Grüße ~*".to_owned())], "{name}");
        }

        let info = library.get(&client, "getMeetingInfo", &[("meetingID", &id)]).await;
        assert!(info.is_success(), "{name}: {}", info.body);
        assert_eq!(info.text_at("meetingName").as_deref(), Some("Vorlesung – Grüße & 1+1=2 ~*"), "{name}");
        assert_eq!(info.text_at("participantCount").as_deref(), Some("1"), "{name}");
        let running = library.get(&client, "isMeetingRunning", &[("meetingID", &id)]).await;
        assert_eq!(running.text_at("running").as_deref(), Some("true"), "{name}: {}", running.body);

        let recordings = library.get(&client, "getRecordings", &[("meetingID", &id)]).await;
        assert!(recordings.is_success(), "{name}: {}", recordings.body);
        assert_eq!(recordings.text_at("recordings/recording/recordID"), Some(record_id), "{name}");

        let ended = library.get(&client, "end", &[("meetingID", &id), ("password", "mp+1")]).await;
        assert!(ended.is_success(), "{name}: {}", ended.body);
        assert!(app.fleet[on].meeting(&id).is_none(), "{name}");
        assert_eq!(app.meeting(&id).await, None, "{name}");
    }
    for server in app.fleet.iter() {
        let api_calls: Vec<_> =
            server.calls().into_iter().filter(|call| call.path.starts_with("/bigbluebutton/api/")).collect();
        assert!(api_calls.iter().all(|call| call.checksum_valid), "{api_calls:?}");
    }
}
