//! The whole story a front-end sees, across three registered servers:
//! create, join, inspect, list, end.

use scalelite_tests::{TestApp, http_get};

#[tokio::test]
async fn create_join_inspect_list_and_end_across_three_servers() {
    let app = TestApp::start().await;
    let client = app.client();
    let rooms = ["Physics 101", "Chemistry 201", "Biology 301"];

    for room in rooms {
        let reply = client.get("create", &[("meetingID", room), ("name", room), ("record", "true")]).await;
        assert!(reply.is_success(), "{}", reply.body);
        assert_eq!(reply.text_at("meetingID").as_deref(), Some(room));
    }
    // Each reservation makes the next meeting go elsewhere.
    let mut servers: Vec<usize> = Vec::new();
    for room in rooms {
        servers.push(app.placed_on(room).await.unwrap());
    }
    servers.sort_unstable();
    assert_eq!(servers, [0, 1, 2]);

    for (n, room) in rooms.iter().enumerate() {
        let name = format!("Student {n}");
        let reply = client.get("join", &[("meetingID", room), ("fullName", &name), ("role", "VIEWER")]).await;
        assert_eq!(reply.status, 302);
        let on = app.placed_on(room).await.unwrap();
        let location = reply.location.unwrap();
        assert!(location.starts_with(&app.fleet[on].url()));
        // The BBB server accepts our signature and seats the user.
        assert_eq!(http_get(&location).await.status, 302);
        let info = client.get("getMeetingInfo", &[("meetingID", room)]).await;
        assert_eq!(info.text_at("participantCount").as_deref(), Some("1"));
        assert_eq!(info.text_at("attendees/attendee/fullName").as_deref(), Some(name.as_str()));
        let running = client.get("isMeetingRunning", &[("meetingID", room)]).await;
        assert_eq!(running.text_at("running").as_deref(), Some("true"));
    }

    let list = client.get("getMeetings", &[]).await;
    let mut listed: Vec<String> = list
        .xml()
        .child("meetings")
        .unwrap()
        .children_named("meeting")
        .filter_map(|m| m.text_at("meetingName"))
        .collect();
    listed.sort();
    assert_eq!(listed, ["Biology 301", "Chemistry 201", "Physics 101"]);

    for room in rooms {
        let reply = client.get("end", &[("meetingID", room)]).await;
        assert!(reply.is_success(), "{}", reply.body);
    }
    let list = client.get("getMeetings", &[]).await;
    assert_eq!(list.message_key().as_deref(), Some("noMeetings"));
    assert!(app.fleet.iter().all(|s| s.meeting_ids().is_empty()));
}
