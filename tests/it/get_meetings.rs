//! `getMeetings`: aggregation, filtering, partial failures and the cache.

use std::time::{Duration, Instant};

use scalelite_tests::{MeetingSeed, Mode, SeedServer, TestApp, server_id};

use crate::support::{assert_failed, create, deeply_nested_get_meetings};

fn ids(reply: &scalelite_tests::Reply) -> Vec<String> {
    let doc = reply.xml();
    let mut ids: Vec<String> = doc
        .child("meetings")
        .map(|m| m.children_named("meeting").filter_map(|m| m.text_at("meetingID")).collect())
        .unwrap_or_default();
    ids.sort();
    ids
}

#[tokio::test]
async fn lists_meetings_of_every_available_server() {
    let app = TestApp::builder().servers(4).start().await;
    let reply = app.client().get("getMeetings", &[]).await;
    insta::assert_snapshot!(reply.body, @r#"
    <?xml version="1.0"?>
    <response>
      <returncode>SUCCESS</returncode>
      <messageKey>noMeetings</messageKey>
      <message>no meetings were found on this server</message>
      <meetings/>
    </response>
    "#);
    for id in ["a", "b", "c", "d", "e"] {
        create(&app, id).await;
    }
    // Meetings another tenant owns are hidden without multitenancy.
    app.fleet[0].seed_meeting(MeetingSeed::new("tenant-owned").metadata("tenant-id", "t1"));
    assert_eq!(ids(&app.client().get("getMeetings", &[]).await), ["a", "b", "c", "d", "e"]);

    // Offline and disabled servers are skipped, cordoned ones are asked.
    let states = [
        ("offline", SeedServer::enabled(server_id(1), app.fleet[1].url(), app.fleet[1].secret()).online(false)),
        ("disabled", SeedServer::enabled(server_id(2), app.fleet[2].url(), app.fleet[2].secret()).state("disabled")),
        ("cordoned", SeedServer::enabled(server_id(3), app.fleet[3].url(), app.fleet[3].secret()).state("cordoned")),
    ];
    for (_, record) in &states {
        app.seed_server(record).await;
    }
    app.fleet.clear_calls();
    let reply = app.client().get("getMeetings", &[]).await;
    assert!(reply.is_success());
    assert_eq!(app.fleet[1].call_count("getMeetings"), 0);
    assert_eq!(app.fleet[2].call_count("getMeetings"), 0);
    assert_eq!(app.fleet[3].call_count("getMeetings"), 1);
    let expected: Vec<String> =
        [0, 3].iter().flat_map(|&i| app.fleet[i].meeting_ids()).filter(|id| id != "tenant-owned").collect();
    let mut expected = expected;
    expected.sort();
    assert_eq!(ids(&reply), expected);
    assert!(app.fleet.iter().flat_map(|s| s.calls_to("getMeetings")).all(|c| c.checksum_valid));
}

#[tokio::test]
async fn a_failing_server_does_not_hide_the_others() {
    let app = TestApp::builder().env("RESPONSE_TIMEOUT", "0.5").start().await;
    for id in ["a", "b", "c"] {
        create(&app, id).await;
    }
    let hung = app.placed_on("a").await.unwrap();
    app.fleet[hung].set_mode(Mode::Hung);
    let started = Instant::now();
    let reply = app.client().get("getMeetings", &[]).await;
    assert!(started.elapsed() < Duration::from_secs(2), "bounded by RESPONSE_TIMEOUT: {:?}", started.elapsed());
    assert!(reply.is_success(), "{}", reply.body);
    let listed = ids(&reply);
    assert!(!listed.contains(&"a".to_owned()));
    assert_eq!(listed.len(), 2);
    app.fleet[hung].set_mode(Mode::Normal);

    // When every server fails, the call fails like Scalelite.
    for server in app.fleet.iter() {
        server.set_mode(Mode::Down);
    }
    let reply = app.client().get("getMeetings", &[]).await;
    assert_failed(&reply, "internalError");
    for server in app.fleet.iter() {
        server.stop().await;
    }
    let reply = app.client().get("getMeetings", &[]).await;
    assert_failed(&reply, "internalError");
    assert_eq!(reply.message().as_deref(), Some("Unable to access server."));
}

#[tokio::test]
async fn a_server_answering_xml_nested_a_million_deep_is_left_out() {
    let app = TestApp::start().await;
    for id in ["a", "b", "c"] {
        create(&app, id).await;
    }
    let hostile = app.placed_on("a").await.unwrap();
    let nested = deeply_nested_get_meetings(1_000_000);
    app.fleet[hostile].set_raw_reply("getMeetings", nested.clone());
    app.fleet[hostile].set_raw_reply("getMeetingInfo", nested);

    // The fan-out treats it as a failed server and answers with the others.
    let reply = app.client().get("getMeetings", &[]).await;
    assert!(reply.is_success(), "{}", reply.body);
    let listed = ids(&reply);
    assert!(!listed.contains(&"a".to_owned()), "{listed:?}");
    let others: Vec<String> =
        ["b", "c"].iter().filter(|id| !app.fleet[hostile].has_meeting(id)).map(|id| id.to_string()).collect();
    assert_eq!(listed, others);
    // A relayed call fails like one to a server answering garbage.
    let reply = app.client().get("getMeetingInfo", &[("meetingID", "a")]).await;
    assert_failed(&reply, "internalError");

    // The process is still up and the server is answered from again.
    app.fleet[hostile].clear_raw_replies();
    assert_eq!(ids(&app.client().get("getMeetings", &[]).await), ["a", "b", "c"]);
}

#[tokio::test]
async fn a_storm_costs_one_fan_out_per_interval() {
    let app = TestApp::builder().env("GET_MEETINGS_CACHE_TTL", "30").start().await;
    create(&app, "a").await;
    app.fleet.clear_calls();
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let client = app.client();
            tokio::spawn(async move { client.get("getMeetings", &[]).await })
        })
        .collect();
    for task in tasks {
        let reply = task.await.unwrap();
        assert_eq!(ids(&reply), ["a"]);
    }
    for server in app.fleet.iter() {
        assert_eq!(server.call_count("getMeetings"), 1);
    }
}

#[tokio::test]
async fn disabled_get_meetings_needs_no_checksum() {
    let app = TestApp::builder().env("GET_MEETINGS_API_DISABLED", "true").start().await;
    create(&app, "a").await;
    let reply = app.client().raw_get("/bigbluebutton/api/getMeetings").await;
    assert!(reply.is_success());
    assert_eq!(reply.message_key().as_deref(), Some("noMeetings"));
    assert_eq!(app.fleet.call_count("getMeetings"), 0);
}
