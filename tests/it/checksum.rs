//! Checksum rules: algorithms by length, several secrets, real front-end
//! encodings, and never trusting unsigned body parameters.

use scalelite_tests::{Algo, ApiClient, BodySigning, LB_SECRET, Style, TestApp};

use crate::support::{assert_failed, create};

const NON_ASCII: &str = "Café Ünïcode 会议 ~*'!";

#[tokio::test]
async fn every_algorithm_and_front_end_encoding_is_accepted() {
    let app = TestApp::start().await;
    create(&app, NON_ASCII).await;
    for algo in Algo::ALL {
        for style in Style::ALL {
            let client = ApiClient::new(app.api_url(), LB_SECRET).algorithm(algo).style(style);
            let reply = client.get("getMeetingInfo", &[("meetingID", NON_ASCII), ("extra", "a b~*")]).await;
            assert!(reply.is_success(), "{algo:?} {style:?}: {}", reply.body);
            assert_eq!(reply.text_at("meetingID").as_deref(), Some(NON_ASCII));
        }
    }
}

#[tokio::test]
async fn checksum_failures() {
    let app = TestApp::start().await;
    let client = app.client();
    let check = |reply: scalelite_tests::Reply| {
        assert_failed(&reply, "checksumError");
        assert_eq!(reply.message().as_deref(), Some("You did not pass the checksum security check"));
    };
    // Wrong secret, missing checksum, tampered query, wrong call name, junk.
    check(client.clone().with_secret("wrong").get("isMeetingRunning", &[("meetingID", "m")]).await);
    check(client.raw_get(&format!("{}?meetingID=m", client.call_url("isMeetingRunning"))).await);
    let signed = client.url("isMeetingRunning", &[("meetingID", "m")]);
    check(client.raw_get(&signed.replace("meetingID=m", "meetingID=n")).await);
    let other_call = format!(
        "{}?meetingID=m&checksum={}",
        client.call_url("isMeetingRunning"),
        client.checksum("getMeetingInfo", "meetingID=m")
    );
    check(client.raw_get(&other_call).await);
    check(client.raw_get(&format!("{}?meetingID=m&checksum=abc", client.call_url("isMeetingRunning"))).await);
    insta::assert_snapshot!(client.clone().with_secret("wrong").get("getMeetings", &[]).await.body, @r#"
    <?xml version="1.0"?>
    <response>
      <returncode>FAILED</returncode>
      <messageKey>checksumError</messageKey>
      <message>You did not pass the checksum security check</message>
    </response>
    "#);
}

#[tokio::test]
async fn upper_case_and_checksum_anywhere_in_the_query() {
    let app = TestApp::start().await;
    let client = app.client();
    let sum = client.checksum("isMeetingRunning", "meetingID=m");
    // Upper-case hex (bbb-web accepts it, Ruby Scalelite does not).
    let url = format!("{}?meetingID=m&checksum={}", client.call_url("isMeetingRunning"), sum.to_uppercase());
    assert!(client.raw_get(&url).await.is_success());
    // Checksum first (bigbluebutton-exporter) and in the middle.
    let first = format!("{}?checksum={sum}&meetingID=m", client.call_url("isMeetingRunning"));
    assert!(client.raw_get(&first).await.is_success());
    let sum2 = client.checksum("isMeetingRunning", "meetingID=m&x=1");
    let middle = format!("{}?meetingID=m&checksum={sum2}&x=1", client.call_url("isMeetingRunning"));
    assert!(client.raw_get(&middle).await.is_success());
}

#[tokio::test]
async fn several_secrets_and_the_algorithm_allow_list() {
    let app = TestApp::builder()
        .env("LOADBALANCER_SECRETS", "rotated-1:rotated-2")
        .env("LOADBALANCER_CHECKSUM_ALGORITHM", "SHA256:SHA384")
        .start()
        .await;
    for secret in [LB_SECRET, "rotated-1", "rotated-2"] {
        let client = ApiClient::new(app.api_url(), secret).algorithm(Algo::Sha256);
        assert!(client.get("isMeetingRunning", &[("meetingID", "m")]).await.is_success(), "{secret}");
    }
    let sha384 = ApiClient::new(app.api_url(), "rotated-2").algorithm(Algo::Sha384);
    assert!(sha384.get("isMeetingRunning", &[("meetingID", "m")]).await.is_success());
    for algo in [Algo::Sha1, Algo::Sha512] {
        let client = ApiClient::new(app.api_url(), LB_SECRET).algorithm(algo);
        assert_failed(&client.get("isMeetingRunning", &[("meetingID", "m")]).await, "checksumError");
    }
    let unknown = ApiClient::new(app.api_url(), "rotated-3").algorithm(Algo::Sha256);
    assert_failed(&unknown.get("isMeetingRunning", &[("meetingID", "m")]).await, "checksumError");
}

#[tokio::test]
async fn no_configured_secret_refuses_everything() {
    let app = TestApp::builder().env("LOADBALANCER_SECRET", "").start().await;
    assert_failed(&app.client().get("isMeetingRunning", &[("meetingID", "m")]).await, "checksumError");
    let empty = ApiClient::new(app.api_url(), "");
    assert_failed(&empty.get("isMeetingRunning", &[("meetingID", "m")]).await, "checksumError");
}

#[tokio::test]
async fn unsigned_post_body_parameters_are_never_trusted() {
    let app = TestApp::start().await;
    create(&app, "victim").await;
    let client = app.client();
    // The checksum of an empty query is a constant: replaying it with any
    // body must not end someone's meeting.
    let reply = client.post_form("end", &[], &[("meetingID", "victim")], BodySigning::QueryOnly).await;
    assert_failed(&reply, "missingParamMeetingID");
    assert!(app.meeting("victim").await.is_some());
    // Extra body parameters next to a signed query are ignored.
    let reply = client
        .post_form("getMeetingInfo", &[("meetingID", "other")], &[("password", "victim")], BodySigning::QueryOnly)
        .await;
    assert_failed(&reply, "notFound");
    // A body signed as a whole is trusted (checksum over the body string).
    let reply = client.post_form("getMeetingInfo", &[], &[("meetingID", "victim")], BodySigning::BodyAsQuery).await;
    assert!(reply.is_success(), "{}", reply.body);
    assert_eq!(reply.text_at("meetingID").as_deref(), Some("victim"));
}

/// BBB 3.0 (A7): a parameter in both the query and the body of a POST is a
/// `checksumError`, whichever value it has, before anything reaches a server.
#[tokio::test]
async fn a_parameter_in_both_query_and_body_is_a_checksum_error() {
    let app = TestApp::start().await;
    create(&app, "victim").await;
    let on = app.placed_on("victim").await.unwrap();
    app.fleet.clear_calls();
    let client = app.client();
    for (call, body) in [
        ("getMeetingInfo", "meetingID=other"),
        ("getMeetingInfo", "meetingID=victim"),
        ("end", "meetingID=victim"),
        ("isMeetingRunning", "x=1&meetingID="),
    ] {
        let reply = client.post_raw(call, "meetingID=victim", Some("application/x-www-form-urlencoded"), body).await;
        assert_failed(&reply, "checksumError");
    }
    let boundary = "b0undary";
    let multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"meetingID\"\r\n\r\nvictim\r\n--{boundary}--\r\n"
    );
    let ct = format!("multipart/form-data; boundary={boundary}");
    assert_failed(&client.post_raw("end", "meetingID=victim", Some(&ct), multipart).await, "checksumError");
    assert_eq!(app.fleet[on].total_calls(), 0);
    assert!(app.meeting("victim").await.is_some());
    // Different names are fine.
    let reply = client
        .post_raw("getMeetingInfo", "meetingID=victim", Some("application/x-www-form-urlencoded"), "other=1")
        .await;
    assert!(reply.is_success(), "{}", reply.body);
}
