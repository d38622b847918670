//! `metadata.xml` → what the recordings store imports, read the way
//! Scalelite's `Recording.create_from_metadata_xml` reads it (reference
//! §10.2, bbb-api-reference §3.3).
//!
//! Where Scalelite would fail a format (no `meta/meetingId`, no
//! `playback/link`, a state outside Rails' validation), parsing fails with
//! a reason; the importer then skips that format and imports the others,
//! as Scalelite 1.8.3 does (an archive with no usable format is
//! quarantined).

use scalelite_core::xml::{self, Element, Node};
use scalelite_store::recordings::{ImportedFormat, ImportedThumbnail, RecordingImport};

/// Meta elements that are columns of `recordings`, not metadata rows.
const INTERNAL_META: [&str; 3] = ["isBreakout", "meetingId", "meetingName"];

/// States Scalelite's model accepts.
const STATES: [&str; 5] = ["processing", "processed", "published", "unpublished", "deleted"];

/// Why a `metadata.xml` cannot be imported.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MetadataError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, MetadataError> {
    Err(MetadataError(message.into()))
}

/// One format's `metadata.xml`: the recording as it describes it, and the
/// playback format.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FormatMetadata {
    /// `id`.
    pub record_id: String,
    /// `meta/meetingId`.
    pub meeting_id: String,
    /// `meta/meetingName` (absent: `None`).
    pub name: Option<String>,
    /// `published` when not blank: `true` or not.
    pub published: Option<bool>,
    /// `participants` when not blank.
    pub participants: Option<i32>,
    /// `state` when not blank (`available` read as `published`).
    pub state: Option<String>,
    /// `start_time` (epoch ms) when not blank.
    pub start_ms: Option<i64>,
    /// `end_time` (epoch ms) when not blank.
    pub end_ms: Option<i64>,
    /// Every `meta/*` child except `isBreakout`, `meetingId`, `meetingName`.
    pub metadata: Vec<(String, String)>,
    /// `playback`.
    pub format: ImportedFormat,
}

/// Parses one `metadata.xml`.
pub fn parse_metadata(input: &[u8]) -> Result<FormatMetadata, MetadataError> {
    let root = xml::parse(input).map_err(|e| MetadataError(format!("metadata.xml: {e}")))?;
    if root.name != "recording" {
        return fail(format!("metadata.xml: root element is <{}>, not <recording>", root.name));
    }
    let record_id = root.child("id").map(|e| deep_text(e).trim().to_owned()).unwrap_or_default();
    if record_id.is_empty() {
        return fail("metadata.xml: no <id>");
    }
    let Some(meta) = root.child("meta") else {
        return fail("metadata.xml: no <meta>");
    };
    let meeting_id = meta.child("meetingId").map(deep_text).unwrap_or_default();
    if meeting_id.trim().is_empty() {
        return fail("metadata.xml: no <meta><meetingId>");
    }
    let name = meta.child("meetingName").map(deep_text);
    let present = |name: &str| root.child(name).map(deep_text).filter(|t| !t.trim().is_empty());
    let published = present("published").map(|t| t.trim() == "true");
    let participants = present("participants").map(|t| clamp_i32(ruby_to_i(&t)));
    let state = present("state").map(|t| if t == "available" { "published".to_owned() } else { t });
    if let Some(state) = &state
        && !STATES.contains(&state.as_str())
    {
        return fail(format!("metadata.xml: state {state:?} is not one of {}", STATES.join(", ")));
    }
    let start_ms = present("start_time").map(|t| ruby_to_i(&t));
    let end_ms = present("end_time").map(|t| ruby_to_i(&t));
    let metadata = meta
        .elements()
        .filter(|e| !INTERNAL_META.contains(&e.name.as_str()))
        .map(|e| (e.name.clone(), deep_text(e)))
        .collect();

    let Some(playback) = root.child("playback") else {
        return fail("metadata.xml: no <playback>");
    };
    let format_name = playback.child("format").map(|e| deep_text(e).trim().to_owned()).unwrap_or_default();
    if format_name.is_empty() {
        return fail("metadata.xml: no <playback><format>");
    }
    let Some(link) = playback.child("link").map(|e| deep_text(e).trim().to_owned()).filter(|l| !l.is_empty()) else {
        return fail("metadata.xml: no <playback><link>");
    };
    let Some(url) = request_uri(&link) else {
        return fail(format!("metadata.xml: <playback><link> {link:?} is not an http(s) URL"));
    };
    let length = playback
        .child("duration")
        .map(deep_text)
        .filter(|t| !t.trim().is_empty())
        .map(|t| clamp_i32((ruby_to_f(&t) / 60_000.0).round() as i64));
    let thumbnails = playback
        .at_path("extensions/preview/images")
        .map(|images| {
            images
                .elements()
                .map(|image| ImportedThumbnail {
                    width: image.attr("width").map(|w| clamp_i32(ruby_to_i(w))),
                    height: image.attr("height").map(|h| clamp_i32(ruby_to_i(h))),
                    alt: image.attr("alt").map(str::to_owned),
                    url: url_path(deep_text(image).trim()),
                })
                .collect()
        })
        .unwrap_or_default();

    Ok(FormatMetadata {
        record_id,
        meeting_id,
        name,
        published,
        participants,
        state,
        start_ms,
        end_ms,
        metadata,
        format: ImportedFormat { format: format_name, url, length, thumbnails },
    })
}

/// Combines the formats of one archive into one import.
///
/// Formats are applied in name order, as Scalelite's sorted glob does:
/// recording attributes a later format states replace earlier ones, and a
/// metadata key keeps the last value given. Every format must describe the
/// same recording and meeting.
pub fn recording_from(mut formats: Vec<FormatMetadata>) -> Result<RecordingImport, MetadataError> {
    formats.sort_by(|a, b| a.format.format.cmp(&b.format.format));
    let Some(first) = formats.first() else {
        return fail("the archive holds no metadata.xml");
    };
    let mut import = RecordingImport {
        record_id: first.record_id.clone(),
        meeting_id: first.meeting_id.clone(),
        ..RecordingImport::default()
    };
    for (i, format) in formats.into_iter().enumerate() {
        if format.record_id != import.record_id {
            return fail(format!(
                "formats disagree on the recording id ({} and {})",
                import.record_id, format.record_id
            ));
        }
        if format.meeting_id != import.meeting_id {
            return fail(format!(
                "formats disagree on the meeting id ({:?} and {:?})",
                import.meeting_id, format.meeting_id
            ));
        }
        if import.formats.iter().any(|f| f.format == format.format.format) {
            return fail(format!("format {:?} appears twice", format.format.format));
        }
        if i == 0 || format.name.is_some() {
            import.name = format.name;
        }
        import.published = format.published.or(import.published);
        import.participants = format.participants.or(import.participants);
        import.state = format.state.or(import.state);
        import.start_ms = format.start_ms.or(import.start_ms);
        import.end_ms = format.end_ms.or(import.end_ms);
        for (key, value) in format.metadata {
            match import.metadata.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => import.metadata.push((key, value)),
            }
        }
        import.formats.push(format.format);
    }
    Ok(import)
}

/// The text of an element and all its descendants (Nokogiri's `text`).
fn deep_text(element: &Element) -> String {
    fn walk(element: &Element, out: &mut String) {
        for node in &element.children {
            match node {
                Node::Text(t) | Node::CData(t) => out.push_str(t),
                Node::Element(e) => walk(e, out),
            }
        }
    }
    let mut out = String::new();
    walk(element, &mut out);
    out
}

/// Ruby's `String#to_i`: optional leading whitespace and sign, then digits
/// (underscores between digits allowed); anything else ends the number;
/// no digits is 0. Saturates instead of growing a bignum.
pub(crate) fn ruby_to_i(text: &str) -> i64 {
    let s = text.trim_start();
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut value: i64 = 0;
    let mut previous_digit = false;
    for b in digits.bytes() {
        match b {
            b'0'..=b'9' => {
                value = value.saturating_mul(10).saturating_add(i64::from(b - b'0'));
                previous_digit = true;
            }
            b'_' if previous_digit => previous_digit = false,
            _ => break,
        }
    }
    if negative { -value } else { value }
}

/// Ruby's `String#to_f` for the forms BBB writes: the longest leading
/// decimal number (with optional fraction and exponent), else 0.
fn ruby_to_f(text: &str) -> f64 {
    let s = text.trim_start();
    let bytes = s.as_bytes();
    let mut end = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        end = 1;
    }
    let digits = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let int_end = digits(end);
    if int_end == end {
        return 0.0;
    }
    end = int_end;
    if bytes.get(end) == Some(&b'.') {
        let frac_end = digits(end + 1);
        if frac_end > end + 1 {
            end = frac_end;
        }
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let mut exp = end + 1;
        if matches!(bytes.get(exp), Some(b'+' | b'-')) {
            exp += 1;
        }
        let exp_end = digits(exp);
        if exp_end > exp {
            end = exp_end;
        }
    }
    s[..end].parse().unwrap_or(0.0)
}

fn clamp_i32(value: i64) -> i32 {
    value.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// Splits an absolute http(s) URL into (path, query). A link that is
/// already a path (`/…`) is taken as it is.
fn split_url(link: &str) -> Option<(&str, Option<&str>)> {
    if link.chars().any(char::is_whitespace) {
        return None;
    }
    let rest = if link.starts_with('/') && !link.starts_with("//") {
        link
    } else {
        let (scheme, after) = link.split_once("://")?;
        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            return None;
        }
        let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
        if authority_end == 0 {
            return None;
        }
        &after[authority_end..]
    };
    let rest = rest.split('#').next().unwrap_or_default();
    Some(match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    })
}

/// Path and query of a link (Ruby's `URI#request_uri`; an empty path is `/`).
pub(crate) fn request_uri(link: &str) -> Option<String> {
    let (path, query) = split_url(link)?;
    let path = if path.is_empty() { "/" } else { path };
    Some(match query {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    })
}

/// Path of an image URL (Ruby's `URI#path`); text that is no URL is kept.
fn url_path(link: &str) -> String {
    match split_url(link) {
        Some((path, _)) => path.to_owned(),
        None => link.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRESENTATION: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<recording>
  <id>9a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b-1715261728123</id>
  <state>published</state>
  <published>true</published>
  <start_time>1715261728123</start_time>
  <end_time>1715265331456</end_time>
  <participants>3</participants>
  <rawSize>977816</rawSize>
  <meeting id="9a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b-1715261728123" externalId="room-42" name="Room 42" breakout="false"/>
  <meta>
    <isBreakout>false</isBreakout>
    <meetingId>room-42</meetingId>
    <meetingName>Vorlesung &amp; Übung 日本語</meetingName>
    <bbb-origin>greenlight</bbb-origin>
    <gl-listed>false</gl-listed>
    <empty-one></empty-one>
  </meta>
  <playback>
    <format>presentation</format>
    <link>
      https://node1.example/playback/presentation/2.3/9a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b-1715261728123?a=1#top
    </link>
    <processing_time>56734</processing_time>
    <duration>196310</duration>
    <extensions>
      <preview>
        <images>
          <image width="176" height="136" alt="Welcome">
            https://node1.example/presentation/9a3b/presentation/d1/thumbnails/thumb-1.png
          </image>
          <image width="x" alt="">https://node1.example/presentation/9a3b/presentation/d1/thumbnails/thumb-2.png</image>
        </images>
      </preview>
    </extensions>
    <size>2743009</size>
  </playback>
</recording>"#;

    #[test]
    fn reads_a_published_presentation_like_scalelite() {
        let m = parse_metadata(PRESENTATION.as_bytes()).unwrap();
        assert_eq!(m.record_id, "9a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b-1715261728123");
        assert_eq!(m.meeting_id, "room-42");
        assert_eq!(m.name.as_deref(), Some("Vorlesung & Übung 日本語"));
        assert_eq!(m.published, Some(true));
        assert_eq!(m.participants, Some(3));
        assert_eq!(m.state.as_deref(), Some("published"));
        assert_eq!((m.start_ms, m.end_ms), (Some(1_715_261_728_123), Some(1_715_265_331_456)));
        assert_eq!(
            m.metadata,
            [("bbb-origin", "greenlight"), ("gl-listed", "false"), ("empty-one", "")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        assert_eq!(m.format.format, "presentation");
        assert_eq!(
            m.format.url,
            "/playback/presentation/2.3/9a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b-1715261728123?a=1"
        );
        // 196310 ms = 3.27 minutes.
        assert_eq!(m.format.length, Some(3));
        assert_eq!(
            m.format.thumbnails,
            vec![
                ImportedThumbnail {
                    width: Some(176),
                    height: Some(136),
                    alt: Some("Welcome".into()),
                    url: "/presentation/9a3b/presentation/d1/thumbnails/thumb-1.png".into(),
                },
                ImportedThumbnail {
                    width: Some(0),
                    height: None,
                    alt: Some(String::new()),
                    url: "/presentation/9a3b/presentation/d1/thumbnails/thumb-2.png".into(),
                },
            ]
        );
    }

    fn with(replace: &str, by: &str) -> Result<FormatMetadata, MetadataError> {
        assert!(PRESENTATION.contains(replace), "{replace}");
        parse_metadata(PRESENTATION.replacen(replace, by, 1).as_bytes())
    }

    #[test]
    fn optional_fields_left_out_stay_unset() {
        let m = with("<published>true</published>", "<published> </published>").unwrap();
        assert_eq!(m.published, None);
        let m = with("<published>true</published>", "<published>yes</published>").unwrap();
        assert_eq!(m.published, Some(false));
        let m = with("<participants>3</participants>", "").unwrap();
        assert_eq!(m.participants, None);
        let m = with("<meetingName>Vorlesung &amp; Übung 日本語</meetingName>", "").unwrap();
        assert_eq!(m.name, None);
        let m = with("<duration>196310</duration>", "").unwrap();
        assert_eq!(m.format.length, None);
        let m = with("<extensions>", "<x>").unwrap_err();
        assert!(m.0.contains("invalid XML"), "{m}");
    }

    #[test]
    fn screenshare_state_available_is_published_and_unknown_states_fail() {
        let m = with("<state>published</state>", "<state>available</state>").unwrap();
        assert_eq!(m.state.as_deref(), Some("published"));
        let e = with("<state>published</state>", "<state>weird</state>").unwrap_err();
        assert!(e.0.contains("state \"weird\""), "{e}");
    }

    #[test]
    fn length_rounds_to_the_nearest_minute() {
        for (ms, minutes) in [("29999", 0), ("30000", 1), ("89999", 1), ("90000", 2), ("0", 0), ("abc", 0)] {
            let m = with("<duration>196310</duration>", &format!("<duration>{ms}</duration>")).unwrap();
            assert_eq!(m.format.length, Some(minutes), "{ms}");
        }
    }

    #[test]
    fn broken_metadata_is_refused_with_a_reason() {
        let cases = [
            ("<meetingId>room-42</meetingId>", "", "meetingId"),
            ("<format>presentation</format>", "", "<format>"),
            ("https://node1.example/playback", "ftp://node1.example/playback", "not an http(s) URL"),
            ("<id>9a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b-1715261728123</id>", "", "no <id>"),
        ];
        for (replace, by, reason) in cases {
            let e = with(replace, by).unwrap_err();
            assert!(e.0.contains(reason), "{e} should mention {reason}");
        }
        let link_start = PRESENTATION.find("<link>").unwrap();
        let link_end = PRESENTATION.find("</link>").unwrap() + "</link>".len();
        let no_link = format!("{}{}", &PRESENTATION[..link_start], &PRESENTATION[link_end..]);
        assert!(parse_metadata(no_link.as_bytes()).unwrap_err().0.contains("<link>"));
        assert!(parse_metadata(b"<response/>").unwrap_err().0.contains("not <recording>"));
        assert!(parse_metadata(b"\xff\xfe").is_err());
    }

    #[test]
    fn request_uri_and_path_follow_ruby_uri() {
        assert_eq!(request_uri("https://h/playback/video/x/").as_deref(), Some("/playback/video/x/"));
        assert_eq!(request_uri("HTTPS://h:8443").as_deref(), Some("/"));
        assert_eq!(request_uri("http://h?meetingId=1").as_deref(), Some("/?meetingId=1"));
        assert_eq!(
            request_uri("https://h/playback/presentation/2.0/playback.html?meetingId=abc").as_deref(),
            Some("/playback/presentation/2.0/playback.html?meetingId=abc")
        );
        assert_eq!(request_uri("/podcast/x/audio.ogg").as_deref(), Some("/podcast/x/audio.ogg"));
        assert_eq!(request_uri("javascript:alert(1)"), None);
        assert_eq!(request_uri("https://h/a b"), None);
        assert_eq!(request_uri("https:///nohost"), None);
        assert_eq!(url_path("https://h/t/1.png?x=1"), "/t/1.png");
        assert_eq!(url_path(""), "");
    }

    #[test]
    fn ruby_number_parsing() {
        assert_eq!(ruby_to_i(" 42abc"), 42);
        assert_eq!(ruby_to_i("-7"), -7);
        assert_eq!(ruby_to_i("1_000"), 1000);
        assert_eq!(ruby_to_i("x1"), 0);
        assert_eq!(ruby_to_i("99999999999999999999999"), i64::MAX);
        assert_eq!(clamp_i32(ruby_to_i("99999999999")), i32::MAX);
        assert!((ruby_to_f("1.5e3ms") - 1500.0).abs() < f64::EPSILON);
        assert!((ruby_to_f("12.") - 12.0).abs() < f64::EPSILON);
        assert!(ruby_to_f("-").abs() < f64::EPSILON);
    }

    fn format(name: &str, meeting: &str) -> FormatMetadata {
        FormatMetadata {
            record_id: "r-1".into(),
            meeting_id: meeting.into(),
            name: Some(format!("name from {name}")),
            published: Some(true),
            metadata: vec![("k".into(), name.into()), (name.into(), "1".into())],
            format: ImportedFormat {
                format: name.into(),
                url: format!("/{name}"),
                length: Some(1),
                thumbnails: vec![],
            },
            ..FormatMetadata::default()
        }
    }

    #[test]
    fn formats_merge_in_name_order() {
        let mut video = format("video", "m");
        video.published = None;
        video.participants = Some(4);
        let import = recording_from(vec![video, format("presentation", "m"), format("podcast", "m")]).unwrap();
        let names: Vec<&str> = import.formats.iter().map(|f| f.format.as_str()).collect();
        assert_eq!(names, ["podcast", "presentation", "video"]);
        assert_eq!(import.name.as_deref(), Some("name from video"));
        assert_eq!(import.published, Some(true), "video leaves published untouched");
        assert_eq!(import.participants, Some(4));
        assert_eq!(import.metadata[0], ("k".to_owned(), "video".to_owned()));
        assert_eq!(import.metadata.len(), 4);

        let e = recording_from(vec![format("video", "m"), format("podcast", "other")]).unwrap_err();
        assert!(e.0.contains("meeting id"), "{e}");
        assert!(recording_from(vec![format("video", "m"), format("video", "m")]).is_err());
        assert!(recording_from(Vec::new()).is_err());
    }
}
