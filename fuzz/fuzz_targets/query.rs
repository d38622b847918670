//! API request parsing and checksum verification: what any client on the
//! internet can send to `/bigbluebutton/api/<call>`.
//!
//! Input: one flag byte, then `<query>\n<content type>\n<body>` (the body
//! may hold further newlines). Flag bits: 0 = POST (else GET), 1 = send the
//! content type, 2-3 = the call (and so which bodies it accepts). Seeds in
//! `corpus/query/` are signed with [`SECRET`], so mutations start from
//! requests that pass the checksum.
#![no_main]

use bytes::Bytes;
use http::{Method, Request, header};
use libfuzzer_sys::fuzz_target;
use scalelite_api::request::{ApiCall, BodyKind, Unverified};
use scalelite_core::checksum::find_checksum;
use scalelite_core::{AlgorithmSet, Params, Secret};

/// The load-balancer secret the seeds are signed with.
const SECRET: &str = "8cd8ef52e8e101574e400365b55e11a6";
/// A second configured secret (every secret is tried).
const OTHER_SECRET: &str = "fuzz-second-secret";

const CALLS: [ApiCall; 4] = [
    ApiCall { name: "getMeetingInfo", body: BodyKind::Form },
    ApiCall { name: "create", body: BodyKind::FormOrXml },
    ApiCall { name: "insertDocument", body: BodyKind::Xml },
    ApiCall { name: "join", body: BodyKind::Any },
];

thread_local! {
    static RUNTIME: tokio::runtime::Runtime =
        tokio::runtime::Builder::new_current_thread().enable_time().build().expect("a Tokio runtime");
}

fuzz_target!(init: scalelite_fuzz::report_stack_overflows(), |data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(3, |&b| b == b'\n');
    let query = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let content_type = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();

    params_and_checksum(query.as_bytes());
    params_and_checksum(body);

    let call = &CALLS[usize::from(flags >> 2) & 3];
    let method = if flags & 1 == 1 { Method::POST } else { Method::GET };
    let mut builder = Request::builder().method(method).uri(format!("/bigbluebutton/api/{}?{query}", call.name));
    if flags & 2 == 2 {
        builder = builder.header(header::CONTENT_TYPE, content_type);
    }
    // hyper hands the server only valid URIs and header values.
    let Ok(request) = builder.body(()) else {
        return;
    };
    let (parts, ()) = request.into_parts();
    let secrets = [Secret::new(SECRET), Secret::new(OTHER_SECRET)];
    let Ok(unverified) = Unverified::parse(call, &parts, Bytes::copy_from_slice(body)) else {
        return;
    };
    // `verify` may read a body (in memory here) under a stall timeout, so it
    // runs on a Tokio runtime with a timer.
    let verify = unverified.verify(call.name, &secrets, AlgorithmSet::default_set());
    let verified = RUNTIME.with(|runtime| runtime.block_on(verify));
    if let Ok(request) = verified {
        let _ = (request.param("meetingID"), request.params.dedup());
    }
});

/// `Params::parse_limited` and `find_checksum` on their own, with
/// properties that hold for every input.
fn params_and_checksum(raw: &[u8]) {
    if let Ok(params) = Params::parse_limited(raw, 1000) {
        // Encoding and parsing again gives the same pairs.
        assert_eq!(Params::parse(&params.encode()), params, "encode/parse round trip of {raw:?}");
    }
    if let Ok(Some(pair)) = find_checksum(raw) {
        // The check string is the input with one non-empty piece cut out.
        let kept: usize = pair.check_string().iter().map(|part| part.len()).sum();
        assert!(kept < raw.len(), "find_checksum cut nothing out of {raw:?}");
        assert!(raw.starts_with(pair.before) && raw.ends_with(pair.after), "{raw:?}");
    }
}
