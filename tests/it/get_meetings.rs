//! `getMeetings`: aggregation, filtering, partial failures and the cache.

use std::time::{Duration, Instant};

use scalelite_store::Tenant;
use scalelite_tests::{ApiClient, MeetingSeed, Mode, SeedServer, TestApp, eventually_with, server_id};

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

/// The `meeting` element listing `id` in a getMeetings reply, rendered.
fn listed(reply: &scalelite_tests::Reply, id: &str) -> Option<String> {
    let doc = reply.xml();
    let meeting =
        doc.child("meetings")?.children_named("meeting").find(|m| m.text_at("meetingID").as_deref() == Some(id))?;
    Some(meeting.to_document(false))
}

#[tokio::test]
async fn past_the_ttl_the_old_list_answers_while_a_slow_server_is_asked_again() {
    let app =
        TestApp::builder().servers(2).env("GET_MEETINGS_CACHE_TTL", "2").env("RESPONSE_TIMEOUT", "30").start().await;
    for id in ["a", "b"] {
        create(&app, id).await;
    }
    assert_eq!(ids(&app.client().get("getMeetings", &[]).await), ["a", "b"]);

    // A meeting this process did not create appears on a server that stops
    // answering.
    app.fleet[0].seed_meeting(MeetingSeed::new("elsewhere"));
    app.fleet[0].set_mode(Mode::Hung);
    app.fleet.clear_calls();

    // Once the list is past its TTL, a call starts a refresh and is
    // answered from the list it has, while the hung server holds the
    // refresh's request (it would hold it for RESPONSE_TIMEOUT, 30 s).
    let client = app.client();
    eventually_with(Duration::from_secs(20), "a refresh asking the hung server", || async {
        let reply = tokio::time::timeout(Duration::from_secs(10), client.get("getMeetings", &[]))
            .await
            .expect("getMeetings waited for the hung server");
        assert_eq!(ids(&reply), ["a", "b"]);
        app.fleet[0].call_count("getMeetings") > 0
    })
    .await;
    let reply = tokio::time::timeout(Duration::from_secs(10), client.get("getMeetings", &[]))
        .await
        .expect("getMeetings waited for the hung server");
    assert_eq!(ids(&reply), ["a", "b"], "one refresh at a time, still running");
    assert_eq!(app.fleet[0].call_count("getMeetings"), 1, "one refresh at a time");

    // When the server answers, the refreshed list answers.
    app.fleet[0].set_mode(Mode::Normal);
    eventually_with(Duration::from_secs(10), "the refreshed list", || async {
        ids(&client.get("getMeetings", &[]).await) == ["a", "b", "elsewhere"]
    })
    .await;
    let metrics = app.client().raw_get("/metrics").await.body;
    let stale: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("scalelite_api_get_meetings_stale_replies_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no stale replies counted in\n{metrics}"));
    assert!(stale >= 2.0, "{metrics}");
}

#[tokio::test]
async fn the_balancers_own_create_and_end_show_before_the_ttl() {
    let app = TestApp::builder().servers(2).env("GET_MEETINGS_CACHE_TTL", "600").start().await;
    create(&app, "a").await;
    assert_eq!(ids(&app.client().get("getMeetings", &[]).await), ["a"]);
    app.fleet.clear_calls();

    let params = [
        ("meetingID", "b"),
        ("name", "Room B"),
        ("record", "true"),
        ("maxParticipants", "25"),
        ("meta_Course", "Maths & <Physics>"),
        ("meta_bbb-origin", "Moodle"),
    ];
    assert!(app.client().get("create", &params).await.is_success());
    let reply = app.client().get("getMeetings", &[]).await;
    assert_eq!(ids(&reply), ["a", "b"]);
    // Listed as its server lists it, without asking any server.
    assert_eq!(app.fleet.call_count("getMeetings"), 0);
    let server = app.placed_on("b").await.unwrap();
    let own = app.fleet[server].client().get("getMeetings", &[]).await;
    assert_eq!(listed(&reply, "b").unwrap(), listed(&own, "b").unwrap());
    // A repeated create lists it once.
    assert!(app.client().get("create", &params).await.is_success());
    assert_eq!(ids(&app.client().get("getMeetings", &[]).await), ["a", "b"]);

    assert!(app.client().get("end", &[("meetingID", "b")]).await.is_success());
    assert_eq!(ids(&app.client().get("getMeetings", &[]).await), ["a"]);
    assert!(app.client().get("end", &[("meetingID", "a")]).await.is_success());
    let reply = app.client().get("getMeetings", &[]).await;
    assert_eq!(reply.message_key().as_deref(), Some("noMeetings"));
    assert_eq!(app.fleet.call_count("getMeetings"), 1, "only the fake's own listing above");
}

#[tokio::test]
async fn a_tenant_sees_its_own_creates_and_ends_and_only_those() {
    let app = TestApp::builder()
        .servers(2)
        .env("GET_MEETINGS_CACHE_TTL", "600")
        .env("MULTITENANCY_ENABLED", "true")
        .env("URL_HOST", "sl.test")
        .start()
        .await;
    app.state.store.create_tenant(&Tenant::new("a", "secret-a")).await.unwrap();
    app.state.store.create_tenant(&Tenant::new("b", "secret-b")).await.unwrap();
    let a = app.client().with_secret("secret-a").host("a.sl.test");
    let b = app.client().with_secret("secret-b").host("b.sl.test");
    let list = |client: &ApiClient| {
        let client = client.clone();
        async move { ids(&client.get("getMeetings", &[]).await) }
    };
    assert!(list(&a).await.is_empty());

    assert!(a.get("create", &[("meetingID", "x"), ("name", "X")]).await.is_success());
    assert_eq!(list(&a).await, ["x"]);
    assert!(list(&b).await.is_empty());
    assert!(b.get("create", &[("meetingID", "y"), ("name", "Y")]).await.is_success());
    assert_eq!(list(&b).await, ["y"]);
    assert_eq!(list(&a).await, ["x"]);
    assert!(a.get("end", &[("meetingID", "x")]).await.is_success());
    assert!(list(&a).await.is_empty());
    assert_eq!(list(&b).await, ["y"]);
}

#[tokio::test]
async fn when_every_refresh_fails_the_old_list_answers_for_a_bounded_time() {
    let app = TestApp::builder().servers(2).env("GET_MEETINGS_CACHE_TTL", "1").start().await;
    create(&app, "a").await;
    assert_eq!(ids(&app.client().get("getMeetings", &[]).await), ["a"]);
    for server in app.fleet.iter() {
        server.set_mode(Mode::Down);
    }
    app.fleet.clear_calls();

    // Past the TTL the servers are asked again and fail; the old list still
    // answers for a while, then the failure does: a list is not served
    // forever.
    let client = app.client();
    let stale_while_down = std::cell::Cell::new(false);
    eventually_with(Duration::from_secs(20), "the failure answering", || {
        let (client, stale_while_down) = (client.clone(), &stale_while_down);
        let asked = app.fleet.call_count("getMeetings") > 0;
        async move {
            let reply = client.get("getMeetings", &[]).await;
            if reply.is_success() {
                assert_eq!(ids(&reply), ["a"]);
                stale_while_down.set(stale_while_down.get() || asked);
                return false;
            }
            assert_failed(&reply, "internalError");
            true
        }
    })
    .await;
    assert!(stale_while_down.get(), "the old list answered after the servers were asked again");

    // When the servers are back, so is the list.
    for server in app.fleet.iter() {
        server.set_mode(Mode::Normal);
    }
    eventually_with(Duration::from_secs(20), "the list again", || async {
        ids(&client.get("getMeetings", &[]).await) == ["a"]
    })
    .await;
}

#[tokio::test]
async fn a_client_accepting_gzip_gets_the_list_compressed_once_it_is_ready() {
    use std::io::Read;

    let app = TestApp::builder().servers(2).env("GET_MEETINGS_CACHE_TTL", "600").start().await;
    for i in 0..40 {
        create(&app, &format!("room-{i:02}")).await;
    }
    let client = app.client();
    let (status, headers, plain) = client.get_bytes("getMeetings", &[], &[]).await;
    assert_eq!(status, 200);
    assert!(headers.get("content-encoding").is_none());
    assert_eq!(headers.get("vary").map(|v| v.to_str().unwrap()), Some("accept-encoding"));
    assert!(plain.len() > 4096, "40 meetings make a reply worth compressing ({} bytes)", plain.len());

    // The first call asking for gzip is not kept waiting for the encoding:
    // it gets the XML, and a later call the same document compressed.
    let accept = [("accept-encoding", "gzip, deflate;q=0.5")];
    let (status, headers, first) = client.get_bytes("getMeetings", &[], &accept).await;
    assert_eq!(status, 200);
    if headers.get("content-encoding").is_none() {
        assert_eq!(first, plain);
    }
    let encoded = std::sync::Mutex::new(bytes::Bytes::new());
    eventually_with(Duration::from_secs(10), "a gzip reply", || async {
        let (_, headers, body) = client.get_bytes("getMeetings", &[], &accept).await;
        let gzipped = headers.get("content-encoding").map(|v| v.to_str().unwrap()) == Some("gzip");
        if gzipped {
            *encoded.lock().unwrap() = body;
        }
        gzipped
    })
    .await;
    let encoded = encoded.into_inner().unwrap();
    assert!(encoded.len() * 5 < plain.len(), "{} bytes compressed from {}", encoded.len(), plain.len());
    let mut inflated = Vec::new();
    flate2::read::GzDecoder::new(&encoded[..]).read_to_end(&mut inflated).unwrap();
    assert_eq!(inflated, plain);

    // Refused encodings and clients that do not ask still get the XML.
    for accept in [&[][..], &[("accept-encoding", "gzip;q=0, identity")][..], &[("accept-encoding", "br")][..]] {
        let (_, headers, body) = client.get_bytes("getMeetings", &[], accept).await;
        assert!(headers.get("content-encoding").is_none(), "{accept:?}");
        assert_eq!(body, plain);
    }

    // A create changes the list: the next gzip reply shows it (never a stale
    // encoding of the list before).
    create(&app, "room-new").await;
    let inflated = std::sync::Mutex::new(String::new());
    eventually_with(Duration::from_secs(10), "a gzip reply after the create", || async {
        let (_, headers, body) = client.get_bytes("getMeetings", &[], &accept).await;
        let gzipped = headers.get("content-encoding").is_some();
        let mut xml = String::new();
        if gzipped {
            flate2::read::GzDecoder::new(&body[..]).read_to_string(&mut xml).unwrap();
        } else {
            xml = String::from_utf8(body.to_vec()).unwrap();
        }
        assert!(xml.contains("<meetingID>room-new</meetingID>"), "a reply after the create lists it");
        if gzipped {
            *inflated.lock().unwrap() = xml;
        }
        gzipped
    })
    .await;
    let inflated = inflated.into_inner().unwrap();
    assert!(inflated.contains("<meetingID>room-00</meetingID>"));
}
