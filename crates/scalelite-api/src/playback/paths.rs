//! Reading playback URLs: which raw segments route like Scalelite's, which
//! decoded values are plausible record ids and format names, and which
//! resource paths may be handed to nginx in an `X-Accel-Redirect`.
//!
//! Everything here works on the raw (percent-encoded) path and checks the
//! decoded form, because nginx decodes an `X-Accel-Redirect` URI once before
//! it maps it to a file.

/// The internal nginx location resources are redirected to.
pub(crate) const STATIC_RESOURCE: &str = "/static-resource";

/// Longest record id accepted (BBB's are 54 characters).
const MAX_RECORD_ID: usize = 256;

/// Why a playback path is not served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PathError {
    /// A raw segment holds a `.`: Rails' route constraint does not match, so
    /// Scalelite answers `unsupportedRequest` through its catch-all.
    NoRoute,
    /// The path routes, but the record id, the format or the resource path
    /// is not something a recording can have (encoded slashes, `..`, control
    /// characters, bad percent-encoding): the "Recording Not Found" page.
    Invalid,
}

/// The parts of `GET /recording/<record_id>/<format>`, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PlayPath {
    /// The record id.
    pub(crate) record_id: String,
    /// The playback format.
    pub(crate) format: String,
}

impl PlayPath {
    /// Parses the (normalized) request path of the play route.
    pub(crate) fn parse(path: &str) -> Result<Self, PathError> {
        let mut segments = path.trim_start_matches('/').split('/');
        let (Some("recording"), Some(raw_id), Some(raw_format), None) =
            (segments.next(), segments.next(), segments.next(), segments.next())
        else {
            return Err(PathError::NoRoute);
        };
        if raw_id.contains('.') || raw_format.contains('.') {
            return Err(PathError::NoRoute);
        }
        Ok(Self { record_id: plausible_record_id(raw_id)?, format: plausible_format(raw_format)? })
    }
}

/// The parts of `GET /<format>/<record_id>[/<path>]`, decoded, and the
/// `X-Accel-Redirect` target built from the raw request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ResourcePath {
    /// The playback format (the first segment).
    pub(crate) format: String,
    /// The record id.
    pub(crate) record_id: String,
    /// `/static-resource` + the request path and query as received (leading
    /// slashes collapsed to one), for nginx.
    pub(crate) accel_redirect: String,
    /// The file inside the recording, decoded, empty and `.` segments dropped, a
    /// directory (no path, or a trailing `/`) as its `index.html`: the key
    /// suffix in a bucket. `None` when it is not UTF-8.
    pub(crate) file: Option<String>,
}

impl ResourcePath {
    /// Parses the request path and query as the client sent them (before
    /// trailing slashes are trimmed: `/video/<id>/` must reach nginx with its
    /// slash so the directory's `index.html` is served).
    pub(crate) fn parse(path: &str, query: Option<&str>) -> Result<Self, PathError> {
        let trimmed = path.trim_start_matches('/');
        let (raw_format, after) = trimmed.split_once('/').ok_or(PathError::NoRoute)?;
        let (raw_id, rest) = after.split_once('/').unwrap_or((after, ""));
        if raw_id.contains('.') || raw_format.contains('.') {
            return Err(PathError::NoRoute);
        }
        let format = plausible_format(raw_format)?;
        let record_id = plausible_record_id(raw_id)?;
        check_resource(rest)?;
        let mut accel_redirect = String::with_capacity(STATIC_RESOURCE.len() + trimmed.len() + 2);
        accel_redirect.push_str(STATIC_RESOURCE);
        accel_redirect.push('/');
        accel_redirect.push_str(trimmed);
        if let Some(query) = query.filter(|q| !q.is_empty()) {
            accel_redirect.push('?');
            accel_redirect.push_str(query);
        }
        let file = percent_decode(rest).and_then(|d| String::from_utf8(d).ok()).map(|decoded| {
            let mut file = decoded.split('/').filter(|s| !s.is_empty() && *s != ".").collect::<Vec<_>>().join("/");
            if decoded.is_empty() || decoded.ends_with('/') {
                if !file.is_empty() {
                    file.push('/');
                }
                file.push_str("index.html");
            }
            file
        });
        Ok(Self { format, record_id, accel_redirect, file })
    }

    /// `/<format>/<record_id>`: the cookie path and the JWT subject.
    pub(crate) fn scope(&self) -> String {
        scope(&self.format, &self.record_id)
    }
}

/// `/<format>/<record_id>`.
pub(crate) fn scope(format: &str, record_id: &str) -> String {
    format!("/{format}/{record_id}")
}

/// Whether `name` can be a playback format (the characters
/// `RECORDING_PLAYBACK_FORMATS` allows).
pub(crate) fn is_format_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn plausible_format(raw: &str) -> Result<String, PathError> {
    let decoded = percent_decode(raw).ok_or(PathError::Invalid)?;
    String::from_utf8(decoded).ok().filter(|f| is_format_name(f)).ok_or(PathError::Invalid)
}

/// A record id is letters, digits, `-` and `_` (BBB's are
/// `<sha1>-<epoch ms>`): nothing that could change a path, a cookie name or
/// a cookie attribute.
fn plausible_record_id(raw: &str) -> Result<String, PathError> {
    let decoded = percent_decode(raw).ok_or(PathError::Invalid)?;
    if decoded.is_empty()
        || decoded.len() > MAX_RECORD_ID
        || !decoded.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
    {
        return Err(PathError::Invalid);
    }
    String::from_utf8(decoded).map_err(|_| PathError::Invalid)
}

/// The part after `/<format>/<record_id>/` may be any file path inside the
/// recording: no `..` segment (also when encoded), no control character, no
/// broken percent-encoding.
fn check_resource(raw: &str) -> Result<(), PathError> {
    let decoded = percent_decode(raw).ok_or(PathError::Invalid)?;
    if decoded.iter().any(|b| b.is_ascii_control()) || decoded.split(|b| *b == b'/').any(|s| s == b"..") {
        return Err(PathError::Invalid);
    }
    Ok(())
}

/// Decodes `%XX` escapes once (as nginx does); `None` for a `%` not followed
/// by two hex digits.
fn percent_decode(raw: &str) -> Option<Vec<u8>> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = hex_value(*bytes.get(i + 1)?)?;
            let lo = hex_value(*bytes.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0a8b2d1e9c5f4a7b3e6d8c1f0a2b4c6d8e0f1a3b-1715261728123";

    #[test]
    fn play_paths() {
        let p = PlayPath::parse(&format!("/recording/{ID}/presentation")).unwrap();
        assert_eq!((p.record_id.as_str(), p.format.as_str()), (ID, "presentation"));
        let p = PlayPath::parse("/recording/%41bc/video").unwrap();
        assert_eq!(p.record_id, "Abc");
        assert_eq!(PlayPath::parse("/recording/a.b/presentation"), Err(PathError::NoRoute));
        assert_eq!(PlayPath::parse("/recording/ab/presentation.json"), Err(PathError::NoRoute));
        assert_eq!(PlayPath::parse("/recording/a%2Fb/presentation"), Err(PathError::Invalid));
        assert_eq!(PlayPath::parse("/recording/a%2E%2E/presentation"), Err(PathError::Invalid));
        assert_eq!(PlayPath::parse("/recording/ab/pre%0Asentation"), Err(PathError::Invalid));
    }

    #[test]
    fn resource_paths_keep_the_raw_path_and_query() {
        let r = ResourcePath::parse(&format!("/presentation/{ID}/slides/slide%201.svg"), Some("v=2&x")).unwrap();
        assert_eq!(r.format, "presentation");
        assert_eq!(r.record_id, ID);
        assert_eq!(r.accel_redirect, format!("/static-resource/presentation/{ID}/slides/slide%201.svg?v=2&x"));
        assert_eq!(r.scope(), format!("/presentation/{ID}"));
        let dir = ResourcePath::parse(&format!("//video/{ID}/"), Some("")).unwrap();
        assert_eq!(dir.accel_redirect, format!("/static-resource/video/{ID}/"));
        let bare = ResourcePath::parse(&format!("/podcast/{ID}"), None).unwrap();
        assert_eq!(bare.accel_redirect, format!("/static-resource/podcast/{ID}"));
    }

    #[test]
    fn resource_paths_name_the_object_in_a_bucket() {
        let file = |path: &str| ResourcePath::parse(&format!("/presentation/{ID}{path}"), None).unwrap().file;
        assert_eq!(file("/slides/slide%201.svg").as_deref(), Some("slides/slide 1.svg"));
        assert_eq!(file("").as_deref(), Some("index.html"));
        assert_eq!(file("/").as_deref(), Some("index.html"));
        assert_eq!(file("//a/./b//c/").as_deref(), Some("a/b/c/index.html"));
        assert_eq!(file("/%FF.svg"), None, "not UTF-8");
    }

    #[test]
    fn nothing_escapes_the_recording() {
        for path in [
            format!("/presentation/{ID}/../../etc/passwd"),
            format!("/presentation/{ID}/..%2F..%2F..%2Fetc%2Fpasswd"),
            format!("/presentation/{ID}/x/%2e%2e/%2E%2E/etc/passwd"),
            format!("/presentation/{ID}/.."),
            format!("/presentation/{ID}/%00"),
            format!("/presentation/{ID}/a%0d%0aX-Evil:%201"),
            format!("/presentation/{ID}/%zz"),
            format!("/presentation/{ID}/%2"),
            format!("/presentation/{ID}%2F%2E%2E%2Fetc/passwd"),
            "/presentation/%2E%2E%2F%2E%2E%2Fetc/passwd".to_owned(),
            "/presentation/%2e%2e/passwd".to_owned(),
            format!("/present%2Fation/{ID}/x"),
        ] {
            assert_eq!(ResourcePath::parse(&path, None), Err(PathError::Invalid), "{path}");
        }
        // A literal dot in the record id does not route in Scalelite.
        assert_eq!(ResourcePath::parse("/presentation/..%2F..%2Fetc/passwd", None), Err(PathError::NoRoute));
        assert_eq!(ResourcePath::parse("/presentation/../etc/passwd", None), Err(PathError::NoRoute));
        assert_eq!(ResourcePath::parse(&format!("/presentation/{ID}%2F..%2Fx/y"), None), Err(PathError::NoRoute));
        // Dots inside file names are fine, and `%252e%252e` is a literal name.
        assert!(ResourcePath::parse(&format!("/presentation/{ID}/a..b/.hidden/x.svg"), None).is_ok());
        assert!(ResourcePath::parse(&format!("/presentation/{ID}/%252e%252e/x"), None).is_ok());
    }

    #[test]
    fn record_ids() {
        assert!(plausible_record_id(ID).is_ok());
        assert!(plausible_record_id("").is_err());
        assert!(plausible_record_id(&"a".repeat(257)).is_err());
        assert!(plausible_record_id("a;b").is_err());
        assert!(plausible_record_id("a%3Bb").is_err());
        assert!(plausible_record_id("caf%C3%A9").is_err());
    }
}
