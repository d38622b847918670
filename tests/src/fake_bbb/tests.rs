use std::time::{Duration, Instant};

use super::*;
use crate::client::{BodySigning, ClientError, Style, http_get};
use crate::util::eventually;

const SECRET: &str = "8cd8ef52e8e101574e400365b55e11a6";

#[test]
fn formats_dates_like_java() {
    assert_eq!(java_date(1_531_155_809), "Mon Jul 09 17:03:29 UTC 2018");
    assert_eq!(java_date(951_782_400), "Tue Feb 29 00:00:00 UTC 2000");
    assert_eq!(java_date(0), "Thu Jan 01 00:00:00 UTC 1970");
}

#[test]
fn strips_the_checksum_textually() {
    let sum = |call: &str, q: &str| Algo::Sha1.hex_digest(format!("{call}{q}{SECRET}").as_bytes());
    let q = "meetingID=a&name=b+c";
    assert!(checksum_valid("create", &format!("{q}&checksum={}", sum("create", q)), SECRET));
    assert!(checksum_valid("create", &format!("checksum={}&{q}", sum("create", q)), SECRET));
    // In the middle: both neighbours are kept, joined by one `&`.
    let middle = format!("meetingID=a&checksum={}&name=b+c", sum("create", q));
    assert!(checksum_valid("create", &middle, SECRET));
    // Case-insensitive hex.
    let upper = format!("{q}&checksum={}", sum("create", q).to_uppercase());
    assert!(checksum_valid("create", &upper, SECRET));
    // Wrong call name, wrong secret, re-encoded query, missing or odd length.
    assert!(!checksum_valid("join", &format!("{q}&checksum={}", sum("create", q)), SECRET));
    assert!(!checksum_valid("create", &format!("{q}&checksum={}", sum("create", q)), "x"));
    assert!(!checksum_valid("create", &format!("meetingID=a&name=b%20c&checksum={}", sum("create", q)), SECRET));
    assert!(!checksum_valid("create", q, SECRET));
    assert!(!checksum_valid("create", &format!("{q}&checksum=abc"), SECRET));
    // Moodle's root form `?&checksum=hash(secret)`.
    assert!(checksum_valid("", &format!("&checksum={}", sum("", "")), SECRET));
}

#[test]
fn maps_paths_to_call_names() {
    assert_eq!(api_call_name("/bigbluebutton/api").as_deref(), Some(""));
    assert_eq!(api_call_name("/bigbluebutton/api/").as_deref(), Some(""));
    assert_eq!(api_call_name("/bigbluebutton/api/create").as_deref(), Some("create"));
    assert_eq!(api_call_name("/bigbluebutton/api/getMeetings/").as_deref(), Some("getMeetings"));
    assert_eq!(api_call_name("/html5client/join"), None);
    assert_eq!(api_call_name("/bigbluebutton/apiX"), None);
}

#[tokio::test]
async fn root_needs_no_checksum() {
    let bbb = FakeBbb::start(SECRET).await;
    let client = bbb.client();
    for target in ["", "/bigbluebutton/api/", "/bigbluebutton/api/?&checksum=0000"] {
        let reply = client.raw_get(target).await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.body,
            "<response><returncode>SUCCESS</returncode><version>2.0</version>\
             <apiVersion>2.0</apiVersion><bbbVersion>3.0.4</bbbVersion></response>"
        );
        assert!(reply.content_type().unwrap().starts_with("text/xml"));
    }
    bbb.set_bbb_version("2.7.3");
    assert_eq!(client.get("", &[]).await.text_at("bbbVersion").unwrap(), "2.7.3");
    assert!(bbb.calls_to("").last().unwrap().checksum_valid);
    assert!(!bbb.calls_to("")[2].checksum_valid);
}

#[tokio::test]
async fn accepts_every_style_and_algorithm_and_rejects_tampering() {
    let bbb = FakeBbb::start(SECRET).await;
    let mut n = 0;
    for style in Style::ALL {
        for algo in Algo::ALL {
            n += 1;
            let client = ApiClient::new(bbb.url(), SECRET).style(style).algorithm(algo);
            let id = format!("room {n} *~'é/+&=");
            let params = [
                ("name", "Math 101: a*b ~ c's"),
                ("meetingID", id.as_str()),
                ("meta_bbb-origin", "Greenlight"),
                ("welcome", "<b>hi</b> 100%"),
            ];
            let reply = client.get("create", &params).await;
            assert_eq!(reply.returncode().as_deref(), Some("SUCCESS"), "{style:?} {algo:?}: {}", reply.body);
            let call = bbb.calls().pop().unwrap();
            assert!(call.checksum_valid);
            assert_eq!(call.checksum_algo(), Some(algo));
            assert_eq!(call.param("meetingID"), Some(id.as_str()));
            assert_eq!(call.raw_query, client.url("create", &params).split_once('?').unwrap().1);
            let meeting = bbb.meeting(&id).unwrap();
            assert_eq!(meeting.name, "Math 101: a*b ~ c's");
            assert_eq!(meeting.metadata["bbb-origin"], "Greenlight");

            // Tampered query (same checksum): rejected.
            let url = client.url("getMeetingInfo", &[("meetingID", id.as_str())]);
            let tampered = url.replacen("meetingID=", "meetingID=x", 1);
            let reply = client.raw_get(&tampered).await;
            assert_eq!(reply.status, 200);
            assert_eq!(
                reply.body,
                "<response><returncode>FAILED</returncode><messageKey>checksumError</messageKey>\
                 <message>Checksums do not match</message></response>"
            );
            assert!(!bbb.calls().pop().unwrap().checksum_valid);
        }
    }
    // Wrong secret, missing checksum.
    let wrong = bbb.client().with_secret("nope");
    assert_eq!(wrong.get("getMeetings", &[]).await.message_key().as_deref(), Some("checksumError"));
    let reply = bbb.client().raw_get("getMeetings").await;
    assert_eq!(reply.message_key().as_deref(), Some("checksumError"));
    // A raw query with %20 signed as is is fine (no re-encoding).
    let reply = bbb.client().get_raw_query("create", "meetingID=x%20y&name=a%20b").await;
    assert!(reply.is_success(), "{}", reply.body);
    assert!(bbb.has_meeting("x y"));
}

#[tokio::test]
async fn meeting_lifecycle() {
    let bbb = FakeBbb::start(SECRET).await;
    let client = bbb.client();

    let reply = client.get("getMeetings", &[]).await;
    assert_eq!(
        reply.body,
        "<response><returncode>SUCCESS</returncode><meetings/><messageKey>noMeetings</messageKey>\
         <message>no meetings were found on this server</message></response>"
    );

    let reply = client.get("create", &[("name", "x")]).await;
    assert_eq!(reply.message_key().as_deref(), Some("missingParamMeetingID"));

    let create = [
        ("meetingID", "m1"),
        ("name", "Room One"),
        ("attendeePW", "ap"),
        ("moderatorPW", "mp"),
        ("voiceBridge", "70001"),
        ("record", "true"),
        ("duration", "45"),
        ("meta_Bbb-Context", "Course"),
    ];
    let reply = client.get("create", &create).await;
    let xml = reply.xml();
    let names: Vec<&str> = xml.elements().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "returncode",
            "meetingID",
            "internalMeetingID",
            "parentMeetingID",
            "attendeePW",
            "moderatorPW",
            "createTime",
            "voiceBridge",
            "dialNumber",
            "createDate",
            "hasUserJoined",
            "duration",
            "hasBeenForciblyEnded",
            "messageKey",
            "message"
        ]
    );
    assert!(!reply.body.starts_with("<?xml"));
    let meeting = bbb.meeting("m1").unwrap();
    assert_eq!(xml.text_at("internalMeetingID").unwrap(), meeting.internal_meeting_id);
    assert_eq!(meeting.internal_meeting_id, format!("{}-{}", Algo::Sha1.hex_digest(b"m1"), meeting.create_time));
    assert_eq!(xml.text_at("createTime").unwrap(), meeting.create_time.to_string());
    assert_eq!(xml.text_at("parentMeetingID").unwrap(), "bbb-none");
    assert_eq!(meeting.metadata.get("bbb-context").map(String::as_str), Some("Course"));
    assert!(meeting.record);
    assert_eq!(meeting.duration, 45);
    assert_eq!(meeting.voice_bridge, "70001");

    // Duplicate create: same or no passwords → duplicateWarning.
    for params in [&create[..], &[("meetingID", "m1"), ("name", "Room One")][..]] {
        let reply = client.get("create", params).await;
        assert!(reply.is_success());
        assert_eq!(reply.message_key().as_deref(), Some("duplicateWarning"));
        assert_eq!(
            reply.message().as_deref(),
            Some("This conference was already in existence and may currently be in progress.")
        );
        assert_eq!(reply.text_at("internalMeetingID").unwrap(), meeting.internal_meeting_id);
    }
    let reply = client.get("create", &[("meetingID", "m1"), ("attendeePW", "other")]).await;
    assert_eq!(reply.returncode().as_deref(), Some("FAILED"));
    assert_eq!(reply.message_key().as_deref(), Some("idNotUnique"));
    let reply = client.get("create", &[("meetingID", "m2"), ("voiceBridge", "70001")]).await;
    assert_eq!(reply.message_key().as_deref(), Some("nonUniqueVoiceBridge"));
    assert_eq!(bbb.meeting_ids(), ["m1"]);

    // Not running until somebody joins.
    let running = client.get("isMeetingRunning", &[("meetingID", "m1")]).await;
    assert_eq!(running.body, "<response><returncode>SUCCESS</returncode><running>false</running></response>");
    let unknown = client.get("isMeetingRunning", &[("meetingID", "zz")]).await;
    assert_eq!(unknown.text_at("running").as_deref(), Some("false"));

    // Join redirects to the HTML5 client on this server.
    let reply = client.get("join", &[("meetingID", "m1"), ("fullName", "Ann Example"), ("password", "mp")]).await;
    assert_eq!(reply.status, 302);
    let location = reply.location.clone().unwrap();
    let prefix = format!("{}/html5client/join?sessionToken=", bbb.origin());
    assert!(location.starts_with(&prefix), "{location}");
    assert_eq!(location.len(), prefix.len() + 16);
    let page = http_get(&location).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("meetingID=m1 fullName=Ann Example role=MODERATOR"), "{}", page.body);
    assert_eq!(http_get(&format!("{prefix}nope")).await.status, 404);

    let reply = client
        .get(
            "join",
            &[("meetingID", "m1"), ("fullName", "Bob"), ("role", "viewer"), ("redirect", "false"), ("userID", "u2")],
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.message_key().as_deref(), Some("successfullyJoined"));
    assert_eq!(reply.text_at("meeting_id").unwrap(), meeting.internal_meeting_id);
    assert_eq!(reply.text_at("user_id").as_deref(), Some("u2"));
    assert!(reply.text_at("url").unwrap().starts_with(&prefix));

    let reply = client.get("join", &[("meetingID", "nope"), ("fullName", "X")]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.message_key().as_deref(), Some("notFound"));
    let reply = client.get("join", &[("meetingID", "m1")]).await;
    assert_eq!(reply.message_key().as_deref(), Some("missingParamFullName"));

    let running = client.get("isMeetingRunning", &[("meetingID", "m1")]).await;
    assert_eq!(running.text_at("running").as_deref(), Some("true"));

    // getMeetingInfo: full document in bbb-web's order, by external or internal ID.
    bbb.set_counts("m1", 3, 1, 2);
    bbb.set_audio_counts("m1", 4, 5);
    for id in ["m1", meeting.internal_meeting_id.as_str()] {
        let info = client.get("getMeetingInfo", &[("meetingID", id)]).await.xml();
        let names: Vec<&str> = info.elements().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "returncode",
                "meetingName",
                "meetingID",
                "internalMeetingID",
                "createTime",
                "createDate",
                "voiceBridge",
                "dialNumber",
                "attendeePW",
                "moderatorPW",
                "running",
                "duration",
                "hasUserJoined",
                "recording",
                "hasBeenForciblyEnded",
                "startTime",
                "endTime",
                "participantCount",
                "listenerCount",
                "voiceParticipantCount",
                "videoCount",
                "maxUsers",
                "moderatorCount",
                "attendees",
                "metadata",
                "isBreakout"
            ]
        );
        assert_eq!(info.text_at("meetingName").as_deref(), Some("Room One"));
        assert_eq!(info.text_at("participantCount").as_deref(), Some("5"));
        assert_eq!(info.text_at("moderatorCount").as_deref(), Some("2"));
        assert_eq!(info.text_at("videoCount").as_deref(), Some("2"));
        assert_eq!(info.text_at("listenerCount").as_deref(), Some("4"));
        assert_eq!(info.text_at("voiceParticipantCount").as_deref(), Some("5"));
        assert_eq!(info.text_at("metadata/bbb-context").as_deref(), Some("Course"));
        let attendees: Vec<String> = info
            .child("attendees")
            .unwrap()
            .children_named("attendee")
            .map(|a| format!("{}/{}", a.text_at("fullName").unwrap(), a.text_at("role").unwrap()))
            .collect();
        assert_eq!(attendees, ["Ann Example/MODERATOR", "Bob/VIEWER"]);
    }
    let reply = client.get("getMeetingInfo", &[("meetingID", "nope")]).await;
    assert_eq!(reply.message_key().as_deref(), Some("notFound"));

    // getMeetings lists every meeting in creation order.
    bbb.seed_meeting(MeetingSeed::new("m2").name("Two").attendees(2).metadata("Tenant", "t1"));
    let list = client.get("getMeetings", &[]).await.xml();
    let ids: Vec<String> =
        list.child("meetings").unwrap().children_named("meeting").map(|m| m.text_at("meetingID").unwrap()).collect();
    assert_eq!(ids, ["m1", "m2"]);
    assert_eq!(list.text_at("meetings/meeting/participantCount").as_deref(), Some("5"));

    // end removes the meeting.
    let reply = client.get("end", &[("meetingID", "m1")]).await;
    assert!(reply.is_success());
    assert_eq!(reply.message_key().as_deref(), Some("sentEndMeetingRequest"));
    assert!(!bbb.has_meeting("m1"));
    let ended = bbb.ended_meetings();
    assert_eq!(ended.len(), 1);
    assert!(ended[0].forcibly_ended);
    let reply = client.get("end", &[("meetingID", "m1")]).await;
    assert_eq!(reply.message_key().as_deref(), Some("notFound"));

    // A meeting ending by itself.
    assert!(bbb.remove_meeting("m2").is_some());
    assert!(!bbb.ended_meetings()[1].forcibly_ended);
    assert_eq!(client.get("getMeetings", &[]).await.message_key().as_deref(), Some("noMeetings"));

    assert_eq!(bbb.call_count("join"), 4);
    assert_eq!(bbb.calls_to("end").len(), 2);
    bbb.clear_calls();
    assert_eq!(bbb.total_calls(), 0);
}

#[tokio::test]
async fn breakouts_posts_and_other_calls() {
    let bbb = FakeBbb::start(SECRET).await;
    let client = bbb.client();
    let presentation =
        r#"<modules><module name="presentation"><document url="https://e.org/a.pdf"/></module></modules>"#;
    let reply = client.post_xml("create", &[("meetingID", "p"), ("name", "Parent")], presentation).await;
    assert!(reply.is_success(), "{}", reply.body);
    let parent = bbb.meeting("p").unwrap();
    assert_eq!(parent.create_body.as_deref(), Some(presentation.as_bytes()));
    let call = bbb.calls_to("create").pop().unwrap();
    assert_eq!(call.method, Method::POST);
    assert_eq!(call.content_type.as_deref(), Some("application/xml"));
    assert_eq!(call.body_text(), presentation);

    let reply = client.get("create", &[("meetingID", "b"), ("isBreakout", "true")]).await;
    assert_eq!(reply.message_key().as_deref(), Some("parentMeetingIDMissing"));
    let reply = client
        .get("create", &[("meetingID", "b"), ("isBreakout", "true"), ("parentMeetingID", &parent.internal_meeting_id)])
        .await;
    assert_eq!(reply.text_at("parentMeetingID").unwrap(), parent.internal_meeting_id);
    let info = client.get("getMeetingInfo", &[("meetingID", "p")]).await;
    let breakout = bbb.meeting("b").unwrap();
    assert_eq!(info.text_at("breakoutRooms/breakout").unwrap(), breakout.internal_meeting_id);
    let info = client.get("getMeetingInfo", &[("meetingID", "b")]).await;
    assert_eq!(info.text_at("isBreakout").as_deref(), Some("true"));

    // insertDocument: POST only, body recorded.
    let reply = client.get("insertDocument", &[("meetingID", "p")]).await;
    assert_eq!(reply.message_key().as_deref(), Some("unsupportedRequest"));
    let reply = client.post_xml("insertDocument", &[("meetingID", "nope")], presentation).await;
    assert_eq!(reply.message_key().as_deref(), Some("notFound"));
    let reply = client.post_xml("insertDocument", &[("meetingID", "p")], presentation).await;
    assert!(reply.is_success());
    assert_eq!(bbb.meeting("p").unwrap().documents.len(), 1);

    // Form POSTs: the checksum covers the URL query only.
    let reply =
        client.post_form("create", &[("meetingID", "f")], &[("name", "Form Room")], BodySigning::QueryOnly).await;
    assert!(reply.is_success(), "{}", reply.body);
    assert_eq!(bbb.meeting("f").unwrap().name, "Form Room");
    assert_eq!(bbb.calls().pop().unwrap().param("name"), Some("Form Room"));
    let reply = client.post_form("getMeetings", &[], &[("a", "b")], BodySigning::BodyAsQuery).await;
    assert_eq!(reply.message_key().as_deref(), Some("checksumError"));
    let reply = client.post_form("getMeetings", &[], &[], BodySigning::Unsigned).await;
    assert_eq!(reply.message_key().as_deref(), Some("checksumError"));

    // POST raw and HEAD.
    let reply = client.post_raw("getMeetings", "", None, Bytes::new()).await;
    assert!(reply.is_success());
    let reply = client.head("getMeetings", &[]).await;
    assert_eq!(reply.status, 200);
    assert!(reply.body.is_empty());
    let reply = client.get("publishRecordings", &[]).await;
    assert_eq!(reply.message_key().as_deref(), Some("unsupportedRequest"));
    assert_eq!(client.raw_get("/somewhere").await.status, 404);
}

#[tokio::test]
async fn get_recordings_lists_the_servers_own_recordings_by_state() {
    let bbb = FakeBbb::start(SECRET).await;
    let client = bbb.client();
    let reply = client.get("getRecordings", &[("state", "processing,processed")]).await;
    assert!(reply.is_success());
    assert_eq!(reply.message_key().as_deref(), Some("noRecordings"));
    let processing = bbb.add_recording("m1", "processing");
    bbb.add_recording("m2", "published");
    let ids = |reply: &crate::Reply| -> Vec<String> {
        let doc = reply.xml();
        let recordings = doc.child("recordings").unwrap();
        recordings.children_named("recording").map(|r| r.text_at("recordID").unwrap()).collect()
    };
    let reply = client.get("getRecordings", &[("state", "processing,processed")]).await;
    assert_eq!(ids(&reply), std::slice::from_ref(&processing));
    // bbb-web's default lists published and unpublished ones only.
    assert_eq!(ids(&client.get("getRecordings", &[]).await).len(), 1);
    assert_eq!(ids(&client.get("getRecordings", &[("state", "any")]).await).len(), 2);
    assert_eq!(
        ids(&client.get("getRecordings", &[("meetingID", "m1"), ("state", "any")]).await),
        std::slice::from_ref(&processing)
    );
    assert!(bbb.set_recording_state(&processing, "published"));
    assert!(ids(&client.get("getRecordings", &[("state", "processing,processed")]).await).is_empty());
}

#[tokio::test]
async fn failure_modes() {
    let bbb = FakeBbb::start(SECRET).await;
    let client = bbb.client().timeout(Duration::from_secs(10));
    bbb.add_meeting("m", "M");

    bbb.set_mode(Mode::Down);
    for call in ["", "getMeetings"] {
        let reply = client.get(call, &[]).await;
        assert_eq!(reply.status, 503);
        assert_eq!(reply.body, "Service Unavailable");
    }

    bbb.set_mode(Mode::Garbage);
    let reply = client.get("getMeetings", &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "<html><body>Bad Gateway");
    assert!(reply.try_xml().is_err());

    bbb.set_mode(Mode::Failed { key: "internalError".into(), message: "Boom".into() });
    let reply = client.get("getMeetingInfo", &[("meetingID", "m")]).await;
    assert_eq!(
        reply.body,
        "<response><returncode>FAILED</returncode><messageKey>internalError</messageKey>\
         <message>Boom</message></response>"
    );
    assert!(client.get("", &[]).await.is_success());
    let bad = client.clone().with_secret("wrong");
    assert_eq!(bad.get("getMeetings", &[]).await.message_key().as_deref(), Some("checksumError"));

    bbb.set_mode(Mode::Slow(Duration::from_millis(300)));
    let started = Instant::now();
    assert!(client.get("getMeetings", &[]).await.is_success());
    assert!(started.elapsed() >= Duration::from_millis(300));

    // Hung: a client with a timeout times out; a waiting request is released
    // by switching the mode back.
    bbb.set_mode(Mode::Hung);
    assert_eq!(bbb.mode(), Mode::Hung);
    let impatient = client.clone().timeout(Duration::from_millis(200));
    assert!(matches!(impatient.try_get("getMeetings", &[]).await, Err(ClientError::Timeout)));
    let before = bbb.total_calls();
    let pending = tokio::spawn({
        let client = client.clone();
        async move { client.get("getMeetings", &[]).await }
    });
    eventually(Duration::from_secs(5), || async { bbb.total_calls() > before }).await;
    assert!(!pending.is_finished());
    bbb.set_mode(Mode::Normal);
    assert!(pending.await.unwrap().is_success());

    // stop: connections refused (and hung ones closed); start_again: same
    // port, same state.
    bbb.set_mode(Mode::Hung);
    let hung = tokio::spawn({
        let client = client.clone();
        async move { client.try_get("getMeetings", &[]).await }
    });
    let before = bbb.total_calls();
    eventually(Duration::from_secs(5), || async { bbb.total_calls() > before }).await;
    bbb.stop().await;
    assert!(matches!(hung.await.unwrap(), Err(ClientError::Transport(_))));
    assert!(matches!(client.try_get("getMeetings", &[]).await, Err(ClientError::Transport(_))));
    let port = bbb.port();
    bbb.set_mode(Mode::Normal);
    bbb.start_again().await;
    assert_eq!(bbb.port(), port);
    let reply = client.get("getMeetingInfo", &[("meetingID", "m")]).await;
    assert!(reply.is_success());

    // crash: refused like stop, and the meetings are gone after the reboot.
    bbb.crash().await;
    assert!(matches!(client.try_get("getMeetings", &[]).await, Err(ClientError::Transport(_))));
    bbb.start_again().await;
    assert_eq!(client.get("getMeetingInfo", &[("meetingID", "m")]).await.message_key().as_deref(), Some("notFound"));
}

#[tokio::test]
async fn raw_replies_answer_one_call_until_cleared() {
    let bbb = FakeBbb::start(SECRET).await;
    let client = bbb.client();
    bbb.add_meeting("m", "M");
    bbb.set_raw_reply("getMeetings", "<response><oops/></response>");
    let reply = client.get("getMeetings", &[]).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "<response><oops/></response>"));
    // Even unsigned; other calls are unchanged.
    let reply = client.clone().with_secret("wrong").get("getMeetings", &[]).await;
    assert_eq!(reply.body, "<response><oops/></response>");
    assert!(client.get("getMeetingInfo", &[("meetingID", "m")]).await.is_success());
    // A failure mode still wins.
    bbb.set_mode(Mode::Down);
    assert_eq!(client.get("getMeetings", &[]).await.status, 503);
    bbb.set_mode(Mode::Normal);
    bbb.clear_raw_replies();
    let reply = client.get("getMeetings", &[]).await;
    assert_eq!(reply.xml().at_path("meetings/meeting").and_then(|m| m.text_at("meetingID")).as_deref(), Some("m"));
}

#[tokio::test]
async fn fleet_has_distinct_servers() {
    let fleet = FakeFleet::start(3).await;
    assert_eq!(fleet.len(), 3);
    let mut secrets: Vec<String> = fleet.iter().map(FakeBbb::secret).collect();
    secrets.sort();
    secrets.dedup();
    assert_eq!(secrets.len(), 3);
    assert_ne!(fleet[0].url(), fleet[1].url());
    assert!(fleet[2].url().ends_with("/bigbluebutton/api"));
    fleet[1].add_meeting("x", "X");
    assert_eq!(fleet.server_with_meeting("x"), Some(1));
    assert!(fleet[1].add_attendees("x", 2));
    assert_eq!(fleet[1].meeting("x").unwrap().participant_count(), 2);
    let reply = fleet[1].client().get("isMeetingRunning", &[("meetingID", "x")]).await;
    assert_eq!(reply.text_at("running").as_deref(), Some("true"));
    // Another server's secret is rejected.
    let reply = fleet[0].client().with_secret(fleet[1].secret()).get("getMeetings", &[]).await;
    assert_eq!(reply.message_key().as_deref(), Some("checksumError"));
    assert_eq!(fleet.call_count("getMeetings"), 1);
}
