//! `sendChatMessage` (BBB 3.0): routed to the meeting's server like `end`.

use scalelite_tests::{Style, TestApp};

use crate::support::{assert_failed, create};

#[tokio::test]
async fn a_chat_message_reaches_the_meetings_server_intact_and_re_signed() {
    let app = TestApp::builder().servers(2).start().await;
    create(&app, "m").await;
    let on = app.placed_on("m").await.unwrap();
    let text = "Grüße & 1+1=2 😀 <b>%20</b>";
    // Every client's encoding arrives as the same text.
    for style in Style::ALL {
        let client = app.client().style(style);
        let reply =
            client.get("sendChatMessage", &[("meetingID", "m"), ("message", text), ("userName", "Bot & Co")]).await;
        assert!(reply.is_success(), "{style:?}: {}", reply.body);
    }
    assert!(app.client().get("sendChatMessage", &[("meetingID", "m"), ("message", "hi")]).await.is_success());
    let chat = app.fleet[on].meeting("m").unwrap().chat;
    let mut expected = vec![("Bot & Co".to_owned(), text.to_owned()); Style::ALL.len()];
    expected.push(("System".to_owned(), "hi".to_owned()));
    assert_eq!(chat, expected);
    let calls = app.fleet[on].calls_to("sendChatMessage");
    assert!(calls.iter().all(|call| call.checksum_valid));
    assert_eq!(
        calls[0].raw_query.split("&checksum=").next(),
        Some(
            "meetingID=m&message=Gr%C3%BC%C3%9Fe+%26+1%2B1%3D2+%F0%9F%98%80+%3Cb%3E%2520%3C%2Fb%3E&userName=Bot+%26+Co"
        )
    );
    // The other server heard nothing; the meeting is still known.
    assert_eq!(app.fleet[1 - on].call_count("sendChatMessage"), 0);
    assert!(app.meeting("m").await.is_some());
}

#[tokio::test]
async fn bad_parameters_get_bbbs_keys_without_a_call_to_any_server() {
    let app = TestApp::start().await;
    create(&app, "m").await;
    let client = app.client();
    // BBB 3.0 answers an HTTP 500 page here; a balancer answers the envelope.
    assert_failed(&client.get("sendChatMessage", &[("message", "hi")]).await, "missingParamMeetingID");
    let missing = client.get("sendChatMessage", &[("meetingID", "m")]).await;
    assert_failed(&missing, "nullError");
    assert_eq!(missing.message().as_deref(), Some("You must provide the param message"));
    for message in [String::new(), "x".repeat(501), "😀".repeat(251)] {
        let reply = client.get("sendChatMessage", &[("meetingID", "m"), ("message", &message)]).await;
        assert_failed(&reply, "sizeError");
        assert_eq!(reply.message().as_deref(), Some("Param message must be between 1 and 500 characters"));
    }
    let long_name = "u".repeat(256);
    let reply = client.get("sendChatMessage", &[("meetingID", "m"), ("message", "hi"), ("userName", &long_name)]).await;
    assert_failed(&reply, "sizeError");
    assert_failed(&client.get("sendChatMessage", &[("meetingID", "nope"), ("message", "hi")]).await, "notFound");
    // GET only, as in bbb-web 3.0.
    let post = client.post_raw("sendChatMessage", "meetingID=m&message=hi", None, "").await;
    assert_failed(&post, "unsupportedRequest");
    assert_eq!(app.fleet.call_count("sendChatMessage"), 0);
    // The longest message passes.
    let longest = "x".repeat(500);
    assert!(client.get("sendChatMessage", &[("meetingID", "m"), ("message", &longest)]).await.is_success());
}

#[tokio::test]
async fn a_server_that_no_longer_knows_the_meeting_drops_the_mapping() {
    let app = TestApp::start().await;
    create(&app, "m").await;
    let on = app.placed_on("m").await.unwrap();
    app.fleet[on].remove_meeting("m");
    let reply = app.client().get("sendChatMessage", &[("meetingID", "m"), ("message", "hi")]).await;
    assert_failed(&reply, "notFound");
    assert_eq!(app.fleet[on].call_count("sendChatMessage"), 1);
    assert_eq!(app.meeting("m").await, None);
    // A new create places the meeting afresh.
    create(&app, "m").await;
    assert!(app.client().get("sendChatMessage", &[("meetingID", "m"), ("message", "hi")]).await.is_success());
}
