//! XML work on the request path: error envelopes, parsing a server's
//! getMeetings reply and rendering the aggregated list.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark code: a failed unwrap is a failed measurement")]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use scalelite_core::BbbError;
use scalelite_core::xml::{self, Element};

fn meeting(i: usize) -> String {
    format!(
        "<meeting><meetingName>Lecture {i} &amp; Lab</meetingName><meetingID>room-{i}</meetingID>\
         <internalMeetingID>{:040x}-1715261728123</internalMeetingID><createTime>1715261728123</createTime>\
         <createDate>Thu May 09 13:35:28 UTC 2024</createDate><voiceBridge>7{i:04}</voiceBridge><dialNumber>613-555-1234</dialNumber>\
         <running>true</running><duration>0</duration><hasUserJoined>true</hasUserJoined><recording>false</recording>\
         <hasBeenForciblyEnded>false</hasBeenForciblyEnded><startTime>1715261728200</startTime><endTime>0</endTime>\
         <participantCount>25</participantCount><listenerCount>3</listenerCount><voiceParticipantCount>5</voiceParticipantCount>\
         <videoCount>2</videoCount><maxUsers>0</maxUsers><moderatorCount>1</moderatorCount><attendees>\
         <attendee><userID>w_abc{i}</userID><fullName>Ada</fullName><role>MODERATOR</role><isPresenter>true</isPresenter>\
         <isListeningOnly>false</isListeningOnly><hasJoinedVoice>true</hasJoinedVoice><hasVideo>true</hasVideo><clientType>HTML5</clientType></attendee>\
         </attendees><metadata><bbb-origin>greenlight</bbb-origin><bbb-context-name>Course {i}</bbb-context-name></metadata>\
         <isBreakout>false</isBreakout></meeting>",
        i * 7919
    )
}

fn bench(c: &mut Criterion) {
    let reply = format!(
        "<response><returncode>SUCCESS</returncode><meetings>{}</meetings></response>",
        (0..100).map(meeting).collect::<String>()
    );
    let parsed = xml::parse(reply.as_bytes()).unwrap();
    let mut group = c.benchmark_group("xml");
    group.bench_function("baseline_copy_reply_100_meetings", |b| b.iter(|| black_box(&reply).as_bytes().to_vec()));
    group.bench_function("render_error_envelope", |b| b.iter(|| black_box(BbbError::MeetingNotFound).to_xml()));
    group.bench_function("parse_get_meetings_100", |b| b.iter(|| xml::parse(black_box(reply.as_bytes())).unwrap()));
    group.bench_function("render_get_meetings_100", |b| {
        b.iter(|| {
            let list = parsed.child("meetings").unwrap().clone();
            Element::new("response").with_text_child("returncode", "SUCCESS").with_child(list).to_document(true)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
