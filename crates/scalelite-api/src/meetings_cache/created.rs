//! The `meeting` element a server lists for a meeting it has just created.
//!
//! Built from the create reply (ids, passwords, times, voice bridge, dial
//! number, duration) and the parameters the create was forwarded with
//! (name, `record`, `maxParticipants`, `meta_*`, breakout parameters), in
//! bbb-web's order for getMeetings. Such a meeting is not running and
//! nobody has joined it, so every count is 0 and `attendees` is empty.
//! It stands in the cached list until the next refresh brings the server's
//! own entry.

use std::collections::BTreeMap;

use scalelite_core::Params;
use scalelite_core::xml::Element;

/// The `meeting` element for the meeting `reply` (a create's `SUCCESS`
/// reply) describes, created with `params`.
pub(crate) fn created_meeting(reply: &Element, params: &Params) -> Element {
    let field = |name: &str| reply.text_at(name).unwrap_or_default();
    let meeting_id = field("meetingID");
    let create_time = field("createTime");
    let password = |name: &str| reply.text_at(name).or_else(|| params.get(name).map(str::to_owned)).unwrap_or_default();
    let is_true = |name: &str| params.get(name).is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let number = |name: &str| params.get(name).and_then(|v| v.trim().parse::<i64>().ok()).unwrap_or(0).to_string();

    let mut meeting = Element::new("meeting");
    meeting
        .push_text_child("meetingName", params.get_present("name").map_or_else(|| meeting_id.clone(), str::to_owned));
    meeting.push_text_child("meetingID", meeting_id);
    meeting.push_text_child("internalMeetingID", field("internalMeetingID"));
    meeting.push_text_child("createTime", create_time.clone());
    meeting.push_text_child("createDate", field("createDate"));
    meeting.push_text_child("voiceBridge", field("voiceBridge"));
    meeting.push_text_child("dialNumber", field("dialNumber"));
    meeting.push_text_child("attendeePW", password("attendeePW"));
    meeting.push_text_child("moderatorPW", password("moderatorPW"));
    meeting.push_text_child("running", "false");
    meeting.push_text_child("duration", reply.text_at("duration").unwrap_or_else(|| "0".to_owned()));
    meeting.push_text_child("hasUserJoined", reply.text_at("hasUserJoined").unwrap_or_else(|| "false".to_owned()));
    meeting.push_text_child("recording", if is_true("record") { "true" } else { "false" });
    meeting.push_text_child(
        "hasBeenForciblyEnded",
        reply.text_at("hasBeenForciblyEnded").unwrap_or_else(|| "false".to_owned()),
    );
    meeting.push_text_child("startTime", create_time);
    meeting.push_text_child("endTime", "0");
    for count in ["participantCount", "listenerCount", "voiceParticipantCount", "videoCount"] {
        meeting.push_text_child(count, "0");
    }
    meeting.push_text_child("maxUsers", number("maxParticipants"));
    meeting.push_text_child("moderatorCount", "0");
    meeting.push_child(Element::new("attendees"));
    // bbb-web lower-cases metadata keys; the first value of a key wins.
    let mut metadata = BTreeMap::new();
    for (name, value) in params.iter() {
        if let Some(key) = name.strip_prefix("meta_").map(str::to_lowercase).filter(|k| is_xml_name(k)) {
            metadata.entry(key).or_insert(value);
        }
    }
    let mut element = Element::new("metadata");
    for (key, value) in metadata {
        element.push_text_child(key, value);
    }
    meeting.push_child(element);
    let breakout = is_true("isBreakout");
    meeting.push_text_child("isBreakout", if breakout { "true" } else { "false" });
    if breakout {
        let parent = reply.text_at("parentMeetingID").or_else(|| params.get("parentMeetingID").map(str::to_owned));
        meeting.push_text_child("parentMeetingID", parent.unwrap_or_default());
        meeting.push_text_child("sequence", params.get_present("sequence").unwrap_or("1"));
        meeting.push_text_child("freeJoin", if is_true("freeJoin") { "true" } else { "false" });
    }
    meeting
}

/// Whether `name` can name an element (a conservative subset of XML's
/// `Name`): other metadata keys are left out rather than break the document.
fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}
