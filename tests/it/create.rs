//! `create`: placement, idempotency, tags, parameter policy, races.

use std::collections::BTreeSet;

use scalelite_tests::{Mode, SeedServer, TestApp, server_id};

use crate::support::{assert_failed, create, second_api};

#[tokio::test]
async fn create_places_on_the_least_loaded_server_and_records_it() {
    let app = TestApp::builder().unseeded().start().await;
    for (i, load) in [(0, 40.0), (1, 10.0), (2, 25.0)] {
        let record = SeedServer::enabled(server_id(i), app.fleet[i].url(), app.fleet[i].secret()).load(Some(load));
        app.seed_server(&record).await;
    }
    let reply =
        app.client().get("create", &[("meetingID", "m1"), ("name", "Room 1"), ("meta_bbb-origin", "Greenlight")]).await;
    assert!(reply.is_success(), "{}", reply.body);
    assert_eq!(app.placed_on("m1").await, Some(1));
    assert!(app.fleet[1].has_meeting("m1"));

    // The record: no tenant, a nine-digit voice bridge that finds it, a TTL
    // of DEFAULT_MEETING_TTL, listed among the meetings.
    let meeting = app.meeting("m1").await.expect("meeting record");
    assert_eq!(meeting.tenant_id, None);
    let vb = meeting.voice_bridge.clone();
    assert_eq!(vb.len(), 9);
    let ttl = app.meeting_ttl("m1").await.expect("a TTL").as_secs();
    assert!((86_000..=86_400).contains(&ttl), "ttl {ttl}");
    let by_pin = app.store().find_meeting_by_voice_bridge(&vb).await.unwrap().expect("the voice bridge is taken");
    assert_eq!(by_pin.meeting, meeting);
    let listed = app.store().meetings().await.unwrap();
    assert_eq!(listed.iter().map(|r| r.meeting.id.as_str()).collect::<Vec<_>>(), ["m1"]);
    // A new meeting reserves LOAD_MIN_USER_COUNT users on its server.
    assert_eq!(app.load("bbb-2").await, Some(25.0));

    // What the BBB server received: a valid SHA256 checksum, the stored
    // moderator password and voice bridge, the client's other params.
    let call = &app.fleet[1].calls_to("create")[0];
    assert!(call.checksum_valid);
    assert_eq!(call.checksum().map(|c| c.len()), Some(64));
    assert_eq!(call.param("moderatorPW"), Some(meeting.moderator_pw.as_str()));
    assert_eq!(meeting.moderator_pw.len(), 8);
    assert_eq!(call.param("voiceBridge"), Some(vb.as_str()));
    assert_eq!(call.param("meta_bbb-origin"), Some("Greenlight"));
    assert_eq!(call.param("name"), Some("Room 1"));
    assert_eq!(call.param("checksum").map(|c| c.len()), Some(64));
}

#[tokio::test]
async fn create_is_idempotent() {
    let app = TestApp::start().await;
    let first = app.client().get("create", &[("meetingID", "m"), ("name", "R"), ("moderatorPW", "mp")]).await;
    assert!(first.is_success());
    let on = app.placed_on("m").await.unwrap();
    let load = app.load(&server_id(on)).await;
    let second = app.client().get("create", &[("meetingID", "m"), ("name", "R"), ("moderatorPW", "mp")]).await;
    assert!(second.is_success(), "{}", second.body);
    assert_eq!(second.message_key().as_deref(), Some("duplicateWarning"));
    assert_eq!(app.placed_on("m").await, Some(on));
    assert_eq!(app.load(&server_id(on)).await, load, "a repeated create reserves nothing");
    assert_eq!(app.meeting("m").await.unwrap().moderator_pw, "mp");
    // Relayed BBB errors keep BBB's key.
    let clash = app.client().get("create", &[("meetingID", "m"), ("name", "R"), ("moderatorPW", "other")]).await;
    assert_failed(&clash, "idNotUnique");
    assert_eq!(app.fleet[on].call_count("create"), 3);
}

#[tokio::test]
async fn missing_meeting_id_and_no_servers() {
    let app = TestApp::builder().unseeded().start().await;
    let reply = app.client().get("create", &[("name", "x")]).await;
    assert_failed(&reply, "missingParamMeetingID");
    insta::assert_snapshot!(reply.body, @r#"
    <?xml version="1.0"?>
    <response>
      <returncode>FAILED</returncode>
      <messageKey>missingParamMeetingID</messageKey>
      <message>You must specify a meeting ID for the meeting.</message>
    </response>
    "#);
    assert_failed(&app.client().get("create", &[("meetingID", ""), ("name", "x")]).await, "missingParamMeetingID");
    let reply = app.client().get("create", &[("meetingID", "m"), ("name", "x")]).await;
    assert_failed(&reply, "internalError");
    assert_eq!(reply.message().as_deref(), Some("Could not find any available servers."));
    // Disabled, cordoned, offline and legacy-disabled servers take no meetings.
    let states = [
        SeedServer::enabled(server_id(0), app.fleet[0].url(), app.fleet[0].secret()).state("disabled"),
        SeedServer::enabled(server_id(1), app.fleet[1].url(), app.fleet[1].secret()).state("cordoned"),
        SeedServer::enabled(server_id(2), app.fleet[2].url(), app.fleet[2].secret()).online(false),
    ];
    for record in &states {
        app.seed_server(record).await;
    }
    let reply = app.client().get("create", &[("meetingID", "m"), ("name", "x")]).await;
    assert_eq!(reply.message().as_deref(), Some("Could not find any available servers."));
    // Enabled again, the cordoned one takes it.
    app.seed_server(&SeedServer::enabled(server_id(1), app.fleet[1].url(), app.fleet[1].secret())).await;
    create(&app, "m").await;
    assert_eq!(app.meeting("m").await.unwrap().server_id.as_str(), "bbb-2");
}

#[tokio::test]
async fn server_tags() {
    let app = TestApp::builder().unseeded().start().await;
    let seeds = [
        SeedServer::enabled("plain", app.fleet[0].url(), app.fleet[0].secret()),
        SeedServer::enabled("gpu", app.fleet[1].url(), app.fleet[1].secret()).tag("gpu"),
        SeedServer::enabled("eu", app.fleet[2].url(), app.fleet[2].secret()).tag("eu").load(Some(5.0)),
    ];
    for record in &seeds {
        app.seed_server(record).await;
    }
    let client = app.client();
    let tagged = |id: &'static str, tag: &'static str| {
        let client = client.clone();
        async move { client.get("create", &[("meetingID", id), ("name", "x"), ("meta_server-tag", tag)]).await }
    };
    // Required and matched: forwarded with the server's tag, without `!`.
    assert!(tagged("a", "gpu!").await.is_success());
    assert_eq!(app.meeting("a").await.unwrap().server_id.as_str(), "gpu");
    assert_eq!(app.fleet[1].calls_to("create")[0].param("meta_server-tag"), Some("gpu"));
    // Preference list: the least loaded of the listed tags.
    assert!(tagged("b", "eu;gpu").await.is_success());
    assert_eq!(app.meeting("b").await.unwrap().server_id.as_str(), "eu");
    // Optional and unmatched: an untagged server, and the tag is not forwarded.
    assert!(tagged("c", "nope").await.is_success());
    assert_eq!(app.meeting("c").await.unwrap().server_id.as_str(), "plain");
    assert_eq!(app.fleet[0].calls_to("create")[0].param("meta_server-tag"), None);
    // `none` selects untagged servers; no tag never lands on a tagged one.
    assert!(tagged("d", "none!").await.is_success());
    assert_eq!(app.meeting("d").await.unwrap().server_id.as_str(), "plain");
    // Required and unmatched.
    let reply = tagged("e", "nope;other!").await;
    assert_failed(&reply, "serverTagUnavailable");
    insta::assert_snapshot!(reply.body, @r#"
    <?xml version="1.0"?>
    <response>
      <returncode>FAILED</returncode>
      <messageKey>serverTagUnavailable</messageKey>
      <message>There is no available server with the required tag=nope;other.</message>
    </response>
    "#);
}

#[tokio::test]
async fn control_characters_in_a_server_tag_still_give_well_formed_xml() {
    let app = TestApp::builder().start().await;
    let params = [("meetingID", "m"), ("name", "x"), ("meta_server-tag", "a\u{1}b\u{1b}[0m\u{0}!")];
    let reply = app.client().get("create", &params).await;
    assert_failed(&reply, "serverTagUnavailable");
    // XML 1.0 has no way to carry these characters, not even escaped.
    let forbidden = |c: char| c < ' ' && !matches!(c, '\t' | '\n' | '\r');
    assert!(!reply.body.chars().any(forbidden), "{:?}", reply.body);
    assert_eq!(
        reply.message().as_deref(),
        Some("There is no available server with the required tag=a\u{FFFD}b\u{FFFD}[0m\u{FFFD}.")
    );
}

#[tokio::test]
async fn meeting_ids_that_are_not_utf8_are_refused() {
    let app = TestApp::builder().servers(1).start().await;
    let client = app.client();
    // Two different ids that lenient decoding would turn into one.
    for raw in ["meetingID=room%FF&name=x", "meetingID=room%FE%FE&name=x"] {
        let reply = client.get_raw_query("create", raw).await;
        assert_failed(&reply, "validationError");
        assert_eq!(reply.message().as_deref(), Some("Invalid meeting ID"));
    }
    assert_eq!(app.fleet[0].call_count("create"), 0);
    for call in ["join", "getMeetingInfo", "isMeetingRunning", "end"] {
        let reply = client.get_raw_query(call, "meetingID=room%FF&fullName=A").await;
        assert_failed(&reply, "validationError");
    }
    // UTF-8 ids work as ever.
    let reply = client.get_raw_query("create", "meetingID=r%C3%A4um&name=x").await;
    assert!(reply.is_success(), "{}", reply.body);
    assert!(app.meeting("r\u{e4}um").await.is_some());
}

#[tokio::test]
async fn tag_from_default_and_override_params() {
    let app = TestApp::builder().unseeded().env("DEFAULT_CREATE_PARAMS", "meta_server-tag=gpu").start().await;
    let seeds = [
        SeedServer::enabled("plain", app.fleet[0].url(), app.fleet[0].secret()),
        SeedServer::enabled("gpu", app.fleet[1].url(), app.fleet[1].secret()).tag("gpu"),
    ];
    for record in &seeds {
        app.seed_server(record).await;
    }
    create(&app, "by-default").await;
    assert_eq!(app.meeting("by-default").await.unwrap().server_id.as_str(), "gpu");
    let reply = app.client().get("create", &[("meetingID", "asked"), ("name", "x"), ("meta_server-tag", "none")]).await;
    assert!(reply.is_success());
    assert_eq!(app.meeting("asked").await.unwrap().server_id.as_str(), "plain", "the request beats the default");
}

#[tokio::test]
async fn default_override_and_excluded_params() {
    let app = TestApp::builder()
        .servers(1)
        .env("DEFAULT_CREATE_PARAMS", "record=false,welcome=Default welcome")
        .env("OVERRIDE_CREATE_PARAMS", "muteOnStart=true,record=true")
        .env("CREATE_EXCLUDE_PARAMS", "test4,test2")
        .start()
        .await;
    let reply = app
        .client()
        .get(
            "create",
            &[
                ("meetingID", "m"),
                ("name", "x"),
                ("record", "false"),
                ("muteOnStart", "false"),
                ("test4", ""),
                ("test2", "v"),
                ("keep", ""),
            ],
        )
        .await;
    assert!(reply.is_success());
    let call = &app.fleet[0].calls_to("create")[0];
    assert_eq!(call.param("welcome"), Some("Default welcome"));
    assert_eq!(call.param("record"), Some("true"));
    assert_eq!(call.param("muteOnStart"), Some("true"));
    assert_eq!(call.param("test4"), None);
    assert_eq!(call.param("test2"), None);
    assert_eq!(call.param("keep"), Some(""), "empty params are forwarded");
}

#[tokio::test]
async fn max_meeting_duration() {
    let app = TestApp::builder().servers(1).env("MAX_MEETING_DURATION", "3600").start().await;
    for (id, given, expected) in
        [("a", None, "3600"), ("b", Some("5000"), "3600"), ("c", Some("0"), "3600"), ("d", Some("1200"), "1200")]
    {
        let mut params = vec![("meetingID", id), ("name", "x")];
        if let Some(d) = given {
            params.push(("duration", d));
        }
        assert!(app.client().get("create", &params).await.is_success());
        let call = app.fleet[0].calls_to("create").into_iter().find(|c| c.param("meetingID") == Some(id)).unwrap();
        assert_eq!(call.param("duration"), Some(expected), "{given:?}");
    }
}

#[tokio::test]
async fn external_voice_bridge() {
    let app = TestApp::builder().servers(1).env("USE_EXTERNAL_VOICE_BRIDGE", "true").start().await;
    let reply = app
        .client()
        .get("create", &[("meetingID", "m"), ("name", "x"), ("moderatorPW", "mp"), ("voiceBridge", "1234567")])
        .await;
    assert!(reply.is_success());
    assert_eq!(app.meeting("m").await.unwrap().voice_bridge, "1234567");
    let call = &app.fleet[0].calls_to("create")[0];
    assert_eq!(call.param("voiceBridge"), Some("1234567"));
    assert_eq!(call.param("moderatorPW"), Some("mp"));
    // Without the setting, a client's voice bridge is replaced by ours.
    let app = TestApp::builder().servers(1).start().await;
    assert!(
        app.client().get("create", &[("meetingID", "m"), ("name", "x"), ("voiceBridge", "1234567")]).await.is_success()
    );
    assert_ne!(app.meeting("m").await.unwrap().voice_bridge, "1234567");
}

/// With `USE_EXTERNAL_VOICE_BRIDGE`, a blank `voiceBridge` counts as none
/// and BBB's default `99999` is never taken, as in Scalelite.
#[tokio::test]
async fn blank_and_default_external_voice_bridges_are_replaced() {
    let app = TestApp::builder().servers(1).env("USE_EXTERNAL_VOICE_BRIDGE", "true").start().await;
    for (id, given) in [("blank", "  "), ("default", "99999")] {
        let reply = app.client().get("create", &[("meetingID", id), ("name", "x"), ("voiceBridge", given)]).await;
        assert!(reply.is_success(), "{id}: {}", reply.body);
        let vb = app.meeting(id).await.unwrap().voice_bridge;
        assert_eq!(vb.len(), 9, "{id}: ours, not {given:?}: {vb:?}");
        assert!(vb.bytes().all(|b| b.is_ascii_digit()), "{id}: {vb:?}");
        let call = app.fleet[0].calls_to("create").into_iter().find(|c| c.param("meetingID") == Some(id)).unwrap();
        assert_eq!(call.param("voiceBridge"), Some(vb.as_str()), "{id}");
    }
}

/// Rails' `blank?`: a meeting id or moderator password of white space only
/// is missing.
#[tokio::test]
async fn blank_meeting_ids_and_passwords_count_as_missing() {
    let app = TestApp::builder().servers(1).start().await;
    for call in ["create", "join", "end", "getMeetingInfo", "isMeetingRunning"] {
        let reply = app.client().get(call, &[("meetingID", " \t"), ("name", "x"), ("fullName", "A")]).await;
        assert_failed(&reply, "missingParamMeetingID");
    }
    assert_eq!(app.fleet[0].call_count("create"), 0);
    assert!(app.store().meetings().await.unwrap().is_empty());

    let reply = app.client().get("create", &[("meetingID", "pw"), ("name", "x"), ("moderatorPW", "   ")]).await;
    assert!(reply.is_success(), "{}", reply.body);
    let stored = app.meeting("pw").await.unwrap().moderator_pw;
    assert_eq!(stored.len(), 8, "a generated password, not the blank one: {stored:?}");
    assert!(stored.bytes().all(|b| b.is_ascii_alphanumeric()), "{stored:?}");
    assert_eq!(app.fleet[0].calls_to("create")[0].param("moderatorPW"), Some(stored.as_str()));
    // A repeated create with a blank password gets the stored one too.
    let again = app.client().get("create", &[("meetingID", "pw"), ("name", "x"), ("moderatorPW", " ")]).await;
    assert_eq!(again.message_key().as_deref(), Some("duplicateWarning"), "{}", again.body);
    assert_eq!(app.fleet[0].calls_to("create")[1].param("moderatorPW"), Some(stored.as_str()));
}

#[tokio::test]
async fn post_create_with_presentation_and_form_data() {
    let app = TestApp::builder().servers(1).start().await;
    let slides = r#"<?xml version="1.0" encoding="UTF-8"?><modules><module name="presentation"><document url="https://example.org/slides.pdf" filename="slides.pdf"/></module></modules>"#;
    let reply = app.client().post_xml("create", &[("meetingID", "xml"), ("name", "Slides")], slides).await;
    assert!(reply.is_success(), "{}", reply.body);
    let call = &app.fleet[0].calls_to("create")[0];
    assert_eq!(call.method, "POST");
    assert_eq!(call.content_type.as_deref(), Some("application/xml"));
    assert_eq!(call.body_text(), slides);
    assert!(call.checksum_valid);
    // Form data signed in the query.
    let reply = app
        .client()
        .post_form("create", &[("meetingID", "form"), ("name", "Form")], &[], scalelite_tests::BodySigning::QueryOnly)
        .await;
    assert!(reply.is_success(), "{}", reply.body);
    assert_eq!(app.fleet[0].calls_to("create")[1].method, "GET");
}

#[tokio::test]
async fn stale_records_are_replaced() {
    let app = TestApp::start().await;
    // On a cordoned server where the meeting no longer runs: re-placed.
    app.seed_meeting("gone", "bbb-1", "pw", "123456789").await;
    let cordoned = SeedServer::enabled("bbb-1", app.fleet[0].url(), app.fleet[0].secret()).state("cordoned");
    app.seed_server(&cordoned).await;
    create(&app, "gone").await;
    assert_ne!(app.meeting("gone").await.unwrap().server_id.as_str(), "bbb-1");
    assert_eq!(app.fleet[0].call_count("isMeetingRunning"), 1);
    assert_eq!(app.fleet[0].call_count("create"), 0);

    // On a cordoned server where it still runs: kept there.
    app.fleet[0].seed_meeting(scalelite_tests::MeetingSeed::new("live").passwords("ap", "pw").attendees(2));
    app.seed_meeting("live", "bbb-1", "pw", "223456789").await;
    // The front-end repeats the attendee password it chose (BBB refuses a
    // repeated create whose passwords differ, and the balancer would send
    // the meeting's derived one for a create without).
    let reply = app.client().get("create", &[("meetingID", "live"), ("name", "Room"), ("attendeePW", "ap")]).await;
    assert!(reply.is_success(), "{}", reply.body);
    assert_eq!(app.meeting("live").await.unwrap().server_id.as_str(), "bbb-1");

    // On an offline server, or one whose record was deleted: re-placed.
    let offline = SeedServer::enabled("bbb-2", app.fleet[1].url(), app.fleet[1].secret()).online(false);
    app.seed_server(&offline).await;
    app.seed_meeting("off", "bbb-2", "pw", "323456789").await;
    create(&app, "off").await;
    assert_eq!(app.meeting("off").await.unwrap().server_id.as_str(), "bbb-3");
    app.seed_meeting("orphan", "deleted-server", "pw", "423456789").await;
    create(&app, "orphan").await;
    assert_eq!(app.meeting("orphan").await.unwrap().server_id.as_str(), "bbb-3");
}

#[tokio::test]
async fn concurrent_identical_creates_from_two_api_processes_land_on_one_server() {
    let app = TestApp::start().await;
    // A second API process sharing the same store.
    let (second, _stop) = second_api(&app).await;
    for round in 0..5 {
        let id = format!("race-{round}");
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let client = if i % 2 == 0 { app.client() } else { second.clone() };
                let id = id.clone();
                tokio::spawn(async move { client.get("create", &[("meetingID", &id), ("name", "x")]).await })
            })
            .collect();
        for task in tasks {
            let reply = task.await.unwrap();
            assert!(reply.is_success(), "{}", reply.body);
        }
        assert_eq!(app.fleet.servers_with_meeting(&id).len(), 1, "{id} exists on exactly one server");
        let on = app.placed_on(&id).await.unwrap();
        assert_eq!(app.fleet.servers_with_meeting(&id), vec![on]);
    }
}

#[tokio::test]
async fn a_burst_of_creates_spreads_evenly() {
    let app = TestApp::builder().servers(4).start().await;
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let client = app.client();
            tokio::spawn(
                async move { client.get("create", &[("meetingID", &format!("burst-{i}")), ("name", "x")]).await },
            )
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().is_success());
    }
    // Each create sees the load the ones before it reserved.
    let counts: Vec<usize> = app.fleet.iter().map(|s| s.meeting_ids().len()).collect();
    assert_eq!(counts, [10, 10, 10, 10], "uneven placement under a burst");
    let ids: BTreeSet<_> = app.fleet.iter().flat_map(|s| s.meeting_ids()).collect();
    assert_eq!(ids.len(), 40);
}

#[tokio::test]
async fn reservation_follows_the_load_multiplier() {
    let app = TestApp::builder().unseeded().servers(1).start().await;
    let record = SeedServer::enabled("weak", app.fleet[0].url(), app.fleet[0].secret()).multiplier(Some("1.5"));
    app.seed_server(&record).await;
    create(&app, "m").await;
    assert_eq!(app.load("weak").await, Some(22.5));
}

#[tokio::test]
async fn upstream_failure_on_create_is_relayed_and_the_record_kept() {
    let app = TestApp::builder().servers(1).start().await;
    app.fleet[0].set_mode(Mode::Failed { key: "maxConcurrent".into(), message: "Too many meetings".into() });
    let reply = app.client().get("create", &[("meetingID", "m"), ("name", "x")]).await;
    assert_failed(&reply, "maxConcurrent");
    assert_eq!(reply.message().as_deref(), Some("Too many meetings"));
}

/// Ruby Scalelite's records, read and written on its Redis layout.
mod redis_only {
    use scalelite_tests::{SeedServer, TestApp, TestBackend, server_id};

    use crate::support::create;

    #[tokio::test]
    async fn records_have_exactly_scalelites_fields_and_set_entries() {
        let app = TestApp::builder().backend(TestBackend::Redis).start().await;
        create(&app, "m1").await;
        let on = server_id(app.placed_on("m1").await.unwrap());
        let record = app.meeting_record("m1").await;
        assert_eq!(
            record.keys().map(String::as_str).collect::<Vec<_>>(),
            ["moderator_pw", "server_id", "tenant_id", "voice_bridge"]
        );
        assert_eq!((record["tenant_id"].as_str(), record["server_id"].as_str()), ("", on.as_str()));
        let ttl = app.redis().cmd(&["TTL", &app.key("meeting:m1")]).await.as_int().unwrap();
        assert!((86_000..=86_400).contains(&ttl), "ttl {ttl}");
        assert_eq!(app.redis().cmd(&["SISMEMBER", &app.key("meetings"), "m1"]).await.as_int(), Some(1));
        let vb = &record["voice_bridge"];
        assert_eq!(app.redis().cmd(&["HGET", &app.key("voice_bridges"), vb]).await.as_str(), Some("m1"));
        assert_eq!(app.redis().cmd(&["ZSCORE", &app.key("server_load"), &on]).await.as_str(), Some("15"));
        // The server hash gained no field.
        let server = app.server_record(&on).await;
        assert_eq!(
            server.keys().map(String::as_str).collect::<Vec<_>>(),
            ["load_multiplier", "online", "secret", "state", "url"]
        );
    }

    #[tokio::test]
    async fn legacy_servers_take_meetings_by_their_server_enabled_membership() {
        let app = TestApp::builder().backend(TestBackend::Redis).unseeded().start().await;
        // Legacy records have no state field: server_enabled decides.
        let off = SeedServer::enabled("legacy-off", app.fleet[0].url(), app.fleet[0].secret()).legacy(false);
        app.seed_server(&off).await;
        let reply = app.client().get("create", &[("meetingID", "m"), ("name", "x")]).await;
        assert_eq!(reply.message().as_deref(), Some("Could not find any available servers."));
        let on = SeedServer::enabled("legacy", app.fleet[1].url(), app.fleet[1].secret()).legacy(true);
        app.seed_server(&on).await;
        create(&app, "m").await;
        assert_eq!(app.meeting_record("m").await["server_id"], "legacy");
    }
}

/// A BBB 3.0 `<modules>` document: two presentations (by URL and inline),
/// the client settings override (CDATA JSON holding markup-like text) and a
/// module BBB may add later.
const MODULES: &str = concat!(
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<modules>\n",
    "  <module name=\"presentation\">\n",
    "    <document url=\"https://example.org/slides.pdf?a=1&amp;b=2\" filename=\"slides.pdf\" downloadable=\"true\"/>\n",
    "    <document name=\"inline.pdf\" current=\"true\">JVBERi0xLjQKJcOkw7zDtsOfCg==</document>\n",
    "  </module>\n",
    "  <module name=\"clientSettingsOverride\"><![CDATA[{\"public\":{\"app\":{\"appName\":\"Ünïcode <b>&</b>\"}}}]]></module>\n",
    "  <module name=\"futureModule\"><setting key=\"k\">v</setting></module>\n",
    "</modules>\n",
);

/// BBB 3.0 create parameters that load code into every client or need a
/// server with `LiveKit`.
const CODE_PARAMS: [(&str, &str); 5] = [
    ("pluginManifests", r#"[{"url":"https://plugins.example/pick.json","checksum":"abc"}]"#),
    ("pluginManifestsFetchUrl", "https://plugins.example/manifests?room=1&x=y"),
    ("audioBridge", "livekit"),
    ("cameraBridge", "livekit"),
    ("screenShareBridge", "livekit"),
];

/// Declares the `livekit` capability on the seeded server (`*Bridge=livekit`
/// creates go only to such servers).
async fn declare_livekit(app: &TestApp) {
    let livekit = scalelite_store::ServerUpdate { capabilities: Some(vec!["livekit".into()]), ..Default::default() };
    app.store().update_server(&server_id(0).as_str().into(), &livekit).await.unwrap();
}

#[tokio::test]
async fn xml_create_body_reaches_the_server_with_every_module() {
    let app = TestApp::builder().servers(1).start().await;
    declare_livekit(&app).await;
    let mut params = vec![("meetingID", "mods"), ("name", "Modules")];
    params.extend(CODE_PARAMS);
    let reply = app.client().post_xml("create", &params, MODULES).await;
    assert!(reply.is_success(), "{}", reply.body);
    let meeting = app.fleet[0].meeting("mods").unwrap();
    assert_eq!(meeting.create_body.as_deref(), Some(MODULES.as_bytes()), "every module, byte for byte");
    let call = &app.fleet[0].calls_to("create")[0];
    assert!(call.checksum_valid);
    for (name, value) in CODE_PARAMS {
        assert_eq!(call.param(name), Some(value), "{name} passes through untouched by default");
    }
}

#[tokio::test]
async fn code_loading_params_and_modules_are_defaulted_overridden_or_blocked_globally() {
    let app = TestApp::builder()
        .servers(1)
        .env("CREATE_EXCLUDE_PARAMS", "pluginManifests,pluginManifestsFetchUrl,audioBridge,clientSettingsOverride")
        .env("OVERRIDE_CREATE_PARAMS", r#"pluginManifests=[{"url":"https://operator.example/vetted.json"}]"#)
        .env("DEFAULT_CREATE_PARAMS", "cameraBridge=bbb-webrtc-sfu")
        .start()
        .await;
    declare_livekit(&app).await;
    let params = [("meetingID", "blocked"), ("name", "Blocked"), CODE_PARAMS[0], CODE_PARAMS[1], CODE_PARAMS[2]];
    let reply = app.client().post_xml("create", &params, MODULES).await;
    assert!(reply.is_success(), "{}", reply.body);
    let call = &app.fleet[0].calls_to("create")[0];
    assert!(call.checksum_valid);
    assert_eq!(
        call.param("pluginManifests"),
        Some(r#"[{"url":"https://operator.example/vetted.json"}]"#),
        "the client's plugins are dropped, the operator's forced"
    );
    assert_eq!(call.param("pluginManifestsFetchUrl"), None);
    assert_eq!(call.param("audioBridge"), None);
    assert_eq!(call.param("cameraBridge"), Some("bbb-webrtc-sfu"), "a default fills in");
    let body = String::from_utf8(app.fleet[0].meeting("blocked").unwrap().create_body.unwrap().to_vec()).unwrap();
    assert!(!body.contains("clientSettingsOverride") && !body.contains("appName"), "{body}");
    let kept = MODULES.replace(
        "  <module name=\"clientSettingsOverride\"><![CDATA[{\"public\":{\"app\":{\"appName\":\"Ünïcode <b>&</b>\"}}}]]></module>\n",
        "  \n",
    );
    assert_eq!(body, kept, "the other modules arrive byte for byte");

    // A client's own value wins over a default; an unreadable body is not
    // forwarded while modules are excluded (BBB could not read it either).
    let reply = app
        .client()
        .post_xml("create", &[("meetingID", "broken"), ("name", "x"), ("cameraBridge", "livekit")], "<modules><module")
        .await;
    assert!(reply.is_success(), "{}", reply.body);
    let call = &app.fleet[0].calls_to("create")[1];
    assert_eq!(call.param("cameraBridge"), Some("livekit"));
    assert_eq!(app.fleet[0].meeting("broken").unwrap().create_body, None);
}
