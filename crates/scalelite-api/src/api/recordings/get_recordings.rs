//! `getRecordings`: one indexed query (and one for the total when paging),
//! rendered as Scalelite's builder view renders it.
//!
//! Filters as Scalelite (§5.9): `recordID` items are case-sensitive
//! prefixes, `meetingID` items exact, `state` a list or `any` (default
//! published and unpublished), `meta_<key>=v1,v2` conditions OR-ed. BBB 2.6
//! paging is added: a valid `limit` (1–100) with an optional `offset` (≥ 0)
//! cuts the list and appends `<totalElements>`; invalid values mean no
//! paging, as in bbb-web.

use axum::body::Body;
use axum::extract::State;
use http::Request;
use scalelite_core::BbbError;
use scalelite_core::markup::Markup;
use scalelite_core::params::{is_blank, ruby_split};
use scalelite_store::recordings::{RecordingQuery, RecordingView, StateFilter};

use super::{present, store};
use crate::origin::origin;
use crate::request::{ApiCall, ApiRequest, BodyKind};
use crate::response::{ApiResult, xml};
use crate::state::AppState;

const CALL: ApiCall = ApiCall { name: "getRecordings", body: BodyKind::Form };

/// The largest page bbb-web serves.
const MAX_LIMIT: i64 = 100;

/// Lists recordings.
pub(crate) async fn get_recordings(State(state): State<AppState>, request: Request<Body>) -> ApiResult {
    let prefix = origin(request.headers());
    let request = ApiRequest::read(&state, &CALL, request).await?;
    let query = query(&request, state.config.recordings.get_recordings_filtered)?;
    let page = store(&state)?.find_recordings(&query).await?;
    let options = RenderOptions {
        prefix: &prefix,
        show_protected: state.config.recordings.protected,
        total: query.page.map(|_| page.total),
    };
    let rendered = render(&page.recordings, &options);
    state.store.create_playback_tokens(&rendered.tokens, state.config.recordings.token_ttl).await?;
    Ok(xml(rendered.body))
}

/// The query a request asks for.
fn query(request: &ApiRequest, filtered: bool) -> Result<RecordingQuery, BbbError> {
    let record_ids = present(request, "recordID");
    let meeting_ids = present(request, "meetingID");
    if filtered && record_ids.is_none() && meeting_ids.is_none() {
        return Err(BbbError::MissingParameters);
    }
    let list = |raw: &str| ruby_split(raw, ',').into_iter().map(str::to_owned).collect::<Vec<_>>();
    let states = match present(request, "state") {
        None => StateFilter::Default,
        Some(raw) => {
            let states = list(raw);
            if states.iter().any(|s| s == "any") { StateFilter::Any } else { StateFilter::Only(states) }
        }
    };
    let meta = request
        .params
        .iter()
        .filter_map(|(name, value)| Some((name.strip_prefix("meta_")?.to_owned(), list(value))))
        .collect();
    Ok(RecordingQuery {
        record_id_prefixes: record_ids.map(list),
        meeting_ids: meeting_ids.map(list),
        states,
        meta,
        tenant_id: request.tenant_id().map(|t| t.as_str().to_owned()),
        page: paging(request),
    })
}

/// `(offset, limit)` when `limit` is a valid page size and `offset` (if
/// given) a valid start index.
fn paging(request: &ApiRequest) -> Option<(i64, i64)> {
    let limit = present(request, "limit")?.trim().parse::<i64>().ok().filter(|l| (1..=MAX_LIMIT).contains(l))?;
    let offset = match present(request, "offset") {
        None => 0,
        Some(raw) => raw.trim().parse::<i64>().ok().filter(|o| *o >= 0)?,
    };
    Some((offset, limit))
}

/// A rendered reply and the one-time playback tokens it hands out (stored
/// in the meeting store before the reply is sent).
#[derive(Debug)]
pub(crate) struct Rendered {
    /// The XML document.
    pub(crate) body: String,
    /// `(token, {"record_id","format"})` pairs.
    pub(crate) tokens: Vec<(String, String)>,
}

/// How a list is rendered.
#[derive(Debug, Default)]
pub(crate) struct RenderOptions<'a> {
    /// `scheme://host[:port]` of the request.
    pub(crate) prefix: &'a str,
    /// `PROTECTED_RECORDINGS_ENABLED`: adds `<protected>`.
    pub(crate) show_protected: bool,
    /// Adds `<totalElements>` (paging).
    pub(crate) total: Option<i64>,
}

/// Renders the list.
pub(crate) fn render(recordings: &[RecordingView], options: &RenderOptions<'_>) -> Rendered {
    let mut tokens = Vec::new();
    let mut xml = Markup::new();
    xml.open("response").text("returncode", "SUCCESS").open("recordings");
    for recording in recordings {
        render_recording(&mut xml, recording, options, &mut tokens);
    }
    xml.close("recordings");
    if recordings.is_empty() {
        xml.text("messageKey", "noRecordings").text("message", "There are not recordings for the meetings");
    }
    if let Some(total) = options.total {
        xml.number("totalElements", total);
    }
    xml.close("response");
    Rendered { body: xml.finish(), tokens }
}

fn render_recording(
    xml: &mut Markup,
    r: &RecordingView,
    options: &RenderOptions<'_>,
    tokens: &mut Vec<(String, String)>,
) {
    let prefix = options.prefix;
    xml.open("recording")
        .text("recordID", &r.record_id)
        .text("meetingID", &r.meeting_id)
        .text("internalMeetingID", &r.record_id)
        .optional("name", r.name.as_deref())
        .text("published", bool_text(r.published));
    if options.show_protected {
        xml.text("protected", bool_text(r.protected));
    }
    if let Some(state) = &r.state {
        xml.text("state", state);
    }
    xml.number("startTime", r.start_ms).number("endTime", r.end_ms);
    if let Some(participants) = r.participants {
        xml.number("participants", participants);
    }
    xml.open("metadata");
    for (key, value) in &r.metadata {
        if !is_xml_name(key) {
            continue;
        }
        if is_blank(value) {
            // Some integrations need a node inside an empty meta element.
            xml.open(key).cdata("").close(key);
        } else {
            xml.text(key, value);
        }
    }
    xml.close("metadata");
    xml.open("playback");
    for format in &r.formats {
        xml.open("format").text("type", &format.format);
        if r.protected {
            let token = new_token();
            let url = format!(
                "{prefix}/recording/{}/{}?token={token}",
                path_segment(&r.record_id),
                path_segment(&format.format)
            );
            xml.text("url", &url);
            let payload = serde_json::json!({ "record_id": r.record_id, "format": format.format }).to_string();
            tokens.push((token, payload));
        } else {
            xml.text("url", &format!("{prefix}{}", format.url));
        }
        match format.length {
            Some(length) => xml.number("length", length),
            None => xml.empty("length"),
        };
        if let Some(processing_time) = format.processing_time {
            xml.number("processingTime", processing_time);
        }
        if !r.protected && !format.thumbnails.is_empty() {
            xml.open("preview").open("images");
            for thumbnail in &format.thumbnails {
                let width = thumbnail.width.map(|w| w.to_string()).unwrap_or_default();
                let height = thumbnail.height.map(|h| h.to_string()).unwrap_or_default();
                let attrs = [("alt", thumbnail.alt.as_deref().unwrap_or("")), ("width", &width), ("height", &height)];
                xml.text_with_attrs("image", &format!("{prefix}{}", thumbnail.url), &attrs);
            }
            xml.close("images").close("preview");
        }
        xml.close("format");
    }
    xml.close("playback");
    xml.close("recording");
}

fn bool_text(value: bool) -> &'static str {
    if value { "true" } else { "false" }
}

/// A one-time playback token: 32 random bytes as 64 hex digits.
fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Percent-encodes a URL path segment (record ids and format names are
/// plain in practice; anything else cannot break out of the segment).
fn path_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Whether a metadata key can be an element name. Scalelite writes any key
/// as a tag, so a key set through updateRecordings such as `a><b` broke the
/// whole document for every client; such keys are left out.
pub(crate) fn is_xml_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_names() {
        assert!(is_xml_name("bbb-origin-server-name"));
        assert!(is_xml_name("gl-listed"));
        assert!(is_xml_name("Vorlesung_Übung"));
        assert!(!is_xml_name("a><b"));
        assert!(!is_xml_name("1abc"));
        assert!(!is_xml_name(""));
        assert!(!is_xml_name("a b"));
    }
}
