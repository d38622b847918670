//! Replies of BigBlueButton servers: whatever a server (or anything that
//! answers on its URL) sends back is parsed by `scalelite_core::xml::parse`,
//! classified by the BBB client (`SUCCESS`, `FAILED` with a key, no
//! returncode), measured by the poller when it is a `getMeetings` reply, and
//! may be rendered again for a front-end.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use scalelite_bbb_client::classify;
use scalelite_core::load::LoadModel;
use scalelite_core::xml;
use scalelite_poller::round::measure;

fuzz_target!(init: scalelite_fuzz::report_stack_overflows(), |data: &[u8]| {
    if let Ok(doc) = xml::parse(data) {
        // What we render from a parsed document parses again.
        let rendered = doc.to_document(true);
        if let Err(e) = xml::parse(rendered.as_bytes()) {
            panic!("rendering of {doc:?} does not parse again: {e}\n{rendered}");
        }
        let _ = (doc.text(), doc.text_at("meetings/meeting/meetingID"));
    }
    if let Ok(reply) = classify(Bytes::copy_from_slice(data)) {
        let (load, stats, ids) = measure(&reply.doc, &LoadModel::default(), 1.0, 1_715_261_728_123);
        assert!(load >= 0.0, "negative load {load} ({stats:?})");
        assert!(ids.len() as u64 <= stats.meetings);
    }
});
