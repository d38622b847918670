use std::sync::Arc;
use std::time::{Duration, Instant};

use scalelite_core::xml::{Element, parse};
use scalelite_core::{MeetingId, Params, ServerId, TenantId};

use super::{Change, Fanout, LIST_TAIL, Listed, Part, created_meeting, list_document, no_meetings};
use crate::response::success;

fn meeting(id: &str, tenant: Option<&str>) -> Element {
    let mut metadata = Element::new("metadata");
    if let Some(tenant) = tenant {
        metadata.push_text_child("tenant-id", tenant);
    }
    Element::new("meeting")
        .with_text_child("meetingName", format!("Room <{id}>"))
        .with_text_child("meetingID", id)
        .with_child(Element::new("attendees"))
        .with_child(metadata)
}

fn part(server: &str, asked: Instant, ids: &[(&str, Option<&str>)]) -> Arc<Part> {
    let meetings = ids.iter().map(|(id, tenant)| Listed::new(meeting(id, *tenant))).collect();
    Arc::new(Part::new(ServerId::from(server), asked, meetings))
}

fn fanout(parts: Vec<Arc<Part>>) -> Fanout {
    let queried = parts.len();
    Fanout::new(Instant::now(), parts, queried, Vec::new(), None)
}

#[test]
fn replies_are_rendered_as_one_document_would_be() {
    let now = Instant::now();
    let fanout = fanout(vec![
        part("s1", now, &[("a", None), ("t", Some("t1")), ("b", Some(" "))]),
        part("s2", now, &[]),
        part("s3", now, &[("c", None)]),
    ]);
    let mut list = Element::new("meetings");
    for id in ["a", "b", "c"] {
        let tenant = (id == "b").then_some(" ");
        list.push_child(meeting(id, tenant));
    }
    let expected = success().with_child(list).to_document(true);
    assert_eq!(fanout.public_reply().unwrap().body, expected.as_bytes());

    let mut list = Element::new("meetings");
    list.push_child(meeting("t", Some("t1")));
    let expected = success().with_child(list).to_document(true);
    assert_eq!(fanout.tenant_reply(&TenantId::from("t1"), false).unwrap().body, expected.as_bytes());
    assert_eq!(
        fanout.tenant_reply(&TenantId::from("t2"), false).unwrap().body,
        no_meetings().to_document(true).as_bytes()
    );
    assert_eq!(list_document(&["", ""]), no_meetings().to_document(true).as_bytes());
}

#[test]
fn scoped_ids_are_shown_to_their_tenant_as_it_sent_them() {
    let now = Instant::now();
    // t1's scoped meeting, t1's meeting from before scoping, t2's scoped
    // meeting of the same front-end id.
    let fanout =
        fanout(vec![part("s1", now, &[("t1:room", Some("t1")), ("old", Some("t1")), ("t2:room", Some("t2"))])]);
    let ids = |body: bytes::Bytes| -> Vec<String> {
        let doc = parse(&body).unwrap();
        doc.child("meetings").unwrap().children_named("meeting").filter_map(|m| m.text_at("meetingID")).collect()
    };
    assert_eq!(ids(fanout.tenant_reply(&TenantId::from("t1"), true).unwrap().body.clone()), ["room", "old"]);
    assert_eq!(ids(fanout.tenant_reply(&TenantId::from("t2"), true).unwrap().body.clone()), ["room"]);
    let unscoped = fanout.shallow_clone();
    assert_eq!(ids(unscoped.tenant_reply(&TenantId::from("t1"), false).unwrap().body.clone()), ["t1:room", "old"]);
}

#[test]
fn a_scoped_meetings_end_callback_is_shown_to_its_tenant_as_it_sent_it() {
    let relay = |id: &str| {
        let token = scalelite_core::jwt::end_callback(id, "https://fe.example/ended?x=1", &"s".into());
        format!("https://t1.sl.test{}?token={token}", scalelite_core::scope::END_CALLBACK_RELAY_PATH)
    };
    let with_callback = |id: &str, url: String| {
        let mut element = meeting(id, Some("t1"));
        element.child_mut("metadata").unwrap().push_text_child("endcallbackurl", url);
        Listed::new(element)
    };
    // t1's scoped meeting; one from before scoping whose URL names the
    // scoped id of another meeting (left as BBB lists it).
    let meetings = vec![with_callback("t1:room", relay("t1:room")), with_callback("old", relay("t1:room"))];
    let fanout = fanout(vec![Arc::new(Part::new(ServerId::from("s1"), Instant::now(), meetings))]);
    let urls = |body: bytes::Bytes| -> Vec<String> {
        let doc = parse(&body).unwrap();
        let list = doc.child("meetings").unwrap();
        list.children_named("meeting").filter_map(|m| m.text_at("metadata/endcallbackurl")).collect()
    };
    let shown = urls(fanout.tenant_reply(&TenantId::from("t1"), true).unwrap().body.clone());
    assert_eq!(shown, ["https://fe.example/ended?x=1".to_owned(), relay("t1:room")]);
    let unscoped = fanout.shallow_clone();
    let shown = urls(unscoped.tenant_reply(&TenantId::from("t1"), false).unwrap().body.clone());
    assert_eq!(shown, [relay("t1:room"), relay("t1:room")]);
}

#[test]
fn changes_apply_to_servers_asked_before_them() {
    let before = Instant::now();
    let at = before + Duration::from_millis(10);
    let after = at + Duration::from_millis(10);
    let mut fanout = fanout(vec![part("s1", before, &[("a", None)]), part("s2", after, &[("b", None)])]);
    let tenant = TenantId::from("t1");
    assert!(fanout.public_reply().unwrap().body.ends_with(LIST_TAIL.as_bytes()));
    assert_eq!(fanout.tenant_reply(&tenant, false).unwrap().body, no_meetings().to_document(true).as_bytes());
    let created =
        |server: &str, id: &str| Change::Created { server: ServerId::from(server), meeting: meeting(id, None) };
    let ended =
        |server: &str, id: &str| Change::Ended { server: ServerId::from(server), meeting_id: MeetingId::from(id) };

    assert!(fanout.apply(&created("s1", "x"), Some(at)));
    assert!(!fanout.apply(&created("s1", "x"), Some(at)), "listed once");
    assert!(!fanout.apply(&created("s2", "y"), Some(at)), "s2 was asked after the create");
    assert!(!fanout.apply(&ended("s2", "b"), Some(at)), "s2 was asked after the end");
    assert!(fanout.apply(&ended("s1", "a"), Some(at)));
    assert!(!fanout.apply(&ended("s1", "a"), None), "already gone");
    assert!(fanout.apply(&created("s3", "z"), Some(at)), "a server missing from the list gets a part");
    assert_eq!(fanout.public_ids(), ["x", "b", "z"]);
    let body = fanout.public_reply().unwrap().body.clone();
    let doc = parse(&body).unwrap();
    let ids: Vec<String> =
        doc.child("meetings").unwrap().children_named("meeting").filter_map(|m| m.text_at("meetingID")).collect();
    assert_eq!(ids, ["x", "b", "z"]);
    // Replies rendered before a change are rendered again.
    let mine = Change::Created { server: ServerId::from("s2"), meeting: meeting("t", Some("t1")) };
    assert!(fanout.apply(&mine, None));
    assert!(fanout.tenant_reply(&tenant, false).unwrap().body.ends_with(LIST_TAIL.as_bytes()));
}

#[test]
fn a_created_meeting_is_listed_in_bbb_webs_order() {
    let reply = parse(
        b"<response><returncode>SUCCESS</returncode><meetingID>m</meetingID>\
          <internalMeetingID>i-1</internalMeetingID><parentMeetingID>bbb-none</parentMeetingID>\
          <attendeePW>ap</attendeePW><moderatorPW>mp</moderatorPW><createTime>1700000000000</createTime>\
          <voiceBridge>70001</voiceBridge><dialNumber>613-555-1234</dialNumber>\
          <createDate>Tue Nov 14 22:13:20 UTC 2023</createDate><hasUserJoined>false</hasUserJoined>\
          <duration>0</duration><hasBeenForciblyEnded>false</hasBeenForciblyEnded>\
          <messageKey/><message/></response>",
    )
    .unwrap();
    let params = Params::parse("name=Room&record=TRUE&meta_B=2&meta_a=1&meta_b=3&meta_bad%3Ckey=x&maxParticipants=5");
    let element = created_meeting(&reply, &params);
    let names: Vec<&str> = element.elements().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
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
            "isBreakout",
        ]
    );
    assert_eq!(element.text_at("meetingName").as_deref(), Some("Room"));
    assert_eq!(element.text_at("startTime").as_deref(), Some("1700000000000"));
    assert_eq!(element.text_at("recording").as_deref(), Some("true"));
    assert_eq!(element.text_at("maxUsers").as_deref(), Some("5"));
    let metadata: Vec<(String, String)> =
        element.child("metadata").unwrap().elements().map(|e| (e.name.clone(), e.text())).collect();
    assert_eq!(metadata, [("a".to_owned(), "1".to_owned()), ("b".to_owned(), "2".to_owned())]);
}

#[test]
fn creates_do_not_grow_a_copy_that_will_never_be_served_again() {
    let cache = super::MeetingsCache::new(Duration::from_secs(5));
    let old = Instant::now().checked_sub(Duration::from_secs(11)).unwrap();
    let young = Fanout::new(Instant::now(), vec![part("s1", Instant::now(), &[("a", None)])], 1, Vec::new(), None);
    cache.lock().copy = Some(Arc::new(young));
    let created = |id: &str| Change::Created { server: ServerId::from("s1"), meeting: meeting(id, None) };
    cache.record(created("b"));
    assert_eq!(cache.lock().copy.as_ref().unwrap().public_ids(), ["a", "b"], "a servable copy is changed");

    // Past 2 × TTL the copy is never served again: a create drops it
    // instead of growing it (without getMeetings calls nothing refreshes it).
    let stale = Fanout::new(old, vec![part("s1", old, &[("a", None)])], 1, Vec::new(), None);
    cache.lock().copy = Some(Arc::new(stale));
    cache.record(created("c"));
    assert!(cache.lock().copy.is_none());
}
