//! Recording playback (reference §11): the "play" redirect that turns a
//! one-time token into a cookie, and the "resource" route that authorizes
//! every file of a recording and hands it to nginx with `X-Accel-Redirect`.
//!
//! - `GET /recording/<record_id>/<format>`: the format must exist and the
//!   recording be published; a protected recording needs `?token=`, taken
//!   from the meeting store once, for exactly this recording and format, and then gets
//!   the cookie `recording_<format>_<record_id>` (HS256 JWT, subject
//!   `/<format>/<record_id>`). Answer: 307 to the stored URL.
//! - `GET /<format>/<record_id>[/<path>]` for each format of
//!   `RECORDING_PLAYBACK_FORMATS`: same lookup; with
//!   `PROTECTED_RECORDINGS_ENABLED`, a protected recording needs that cookie.
//!   Answer: 200, empty body, `X-Accel-Redirect: /static-resource<path>`;
//!   with `S3_RECORDING`, 307 to a presigned URL of the file's object
//!   (valid `S3_PRESIGNED_URL_TTL`).
//!
//! Everything refused gets the "Recording Not Found" page (404). No token,
//! cookie or query string is ever logged.

pub(crate) mod paths;
pub(crate) mod same_site;

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{OriginalUri, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use scalelite_core::Params;
use scalelite_core::jwt;
use scalelite_store::recordings::PlaybackTarget;
use tracing::warn;

use crate::api::unsupported::unsupported;
use crate::origin::origin;
use crate::response::Outcome;
use crate::state::AppState;

use self::paths::{PathError, PlayPath, ResourcePath};

/// Formats that cannot have a resource route: `recording` is the play
/// route's prefix, and the API's own prefixes must keep answering
/// `unsupportedRequest` for unknown calls.
const RESERVED_FORMATS: [&str; 3] = ["recording", "bigbluebutton", "scalelite"];

/// Formats whose files are shown inline; every other format's files are
/// sent with `Content-Disposition: attachment`.
const INLINE_FORMATS: [&str; 3] = ["presentation", "video", "screenshare"];

/// The page every refused playback request gets (HTTP 404).
pub(crate) const NOT_FOUND_PAGE: &str = "<!DOCTYPE html>
<html lang=\"en\">
  <head>
    <meta charset=\"utf-8\">
    <title>Recording Not Found</title>
  </head>
  <body>
    <h1 style=\"text-align: center;\">Recording Not Found</h1>
    <h3 style=\"text-align: center;\">The recording URL is invalid. This recording may have been either protected or deleted.</h3>
    <hr>
  </body>
</html>
";

/// Why a playback request gets the "Recording Not Found" page; the outcome
/// key of the request log and metrics (a fixed set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No such recording, or not in that format, or no recordings database.
    NotFound,
    /// The recording is not published.
    Unpublished,
    /// The path is not one a recording can have.
    InvalidPath,
    /// Missing, malformed, unknown, used or foreign token (play).
    InvalidToken,
    /// Missing, forged, expired or foreign cookie (resource).
    InvalidCookie,
    /// Protection is on but `SECRET_KEY_BASE` is not set.
    NoSecretKeyBase,
}

impl Refusal {
    /// The outcome key.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Self::NotFound => "notFound",
            Self::Unpublished => "unpublished",
            Self::InvalidPath => "invalidPath",
            Self::InvalidToken => "invalidToken",
            Self::InvalidCookie => "invalidCookie",
            Self::NoSecretKeyBase => "noSecretKeyBase",
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let mut response = (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")],
            NOT_FOUND_PAGE,
        )
            .into_response();
        response.extensions_mut().insert(Outcome(self.key().to_owned()));
        response
    }
}

/// The playback routes (none with `RECORDING_DISABLED`, as in Scalelite):
/// play, and one resource route pair per playback format. Other methods
/// answer `unsupportedRequest`; paths of other formats are left to the
/// router's fallback.
pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    let config = &state.config.recordings;
    let mut router = Router::new();
    if config.disabled {
        return router;
    }
    if config.protected && config.secret_key_base.is_none() {
        warn!(
            "PROTECTED_RECORDINGS_ENABLED is set but SECRET_KEY_BASE is not: protected recordings answer \
             404 until SECRET_KEY_BASE is set (the same value on every API process)"
        );
    }
    router = router.route("/recording/{record_id}/{format}", get(play).fallback(unsupported));
    let mut seen: Vec<&str> = Vec::new();
    for format in &config.playback_formats {
        if RESERVED_FORMATS.contains(&format.as_str()) {
            warn!(format = %format, "RECORDING_PLAYBACK_FORMATS: this format name is reserved; its files are not served");
            continue;
        }
        if !paths::is_format_name(format) || seen.contains(&format.as_str()) {
            continue;
        }
        seen.push(format);
        router = router
            .route(&format!("/{format}/{{record_id}}"), get(resource).fallback(unsupported))
            .route(&format!("/{format}/{{record_id}}/{{*path}}"), get(resource).fallback(unsupported));
    }
    router
}

/// Remembers the request URI as the client sent it (axum's [`OriginalUri`])
/// before trailing slashes are trimmed for routing: a resource path such as
/// `/video/<id>/` must reach nginx with its slash. Costs what axum's router
/// would spend on the same extension.
pub(crate) fn keep_original_uri(mut request: Request) -> Request {
    if request.extensions().get::<OriginalUri>().is_none() {
        let uri = request.uri().clone();
        request.extensions_mut().insert(OriginalUri(uri));
    }
    request
}

/// `GET /recording/<record_id>/<format>` (reference §11.2).
pub(crate) async fn play(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    let request = match PlayPath::parse(uri.path()) {
        Ok(request) => request,
        Err(PathError::NoRoute) => return unsupported().await,
        Err(PathError::Invalid) => return Refusal::InvalidPath.into_response(),
    };
    let target = match lookup(&state, &headers, &uri, &request.record_id, &request.format).await {
        Ok(target) => target,
        Err(response) => return response,
    };
    let config = &state.config.recordings;
    let mut cookie = None;
    // Scalelite asks for the token whenever the recording is marked
    // protected, whatever PROTECTED_RECORDINGS_ENABLED says (getRecordings
    // hands out token URLs on the same rule).
    if target.protected {
        let key = config.secret_key_base.as_ref();
        if key.is_none() && config.protected {
            return Refusal::NoSecretKeyBase.into_response();
        }
        let token = Params::parse(uri.query().unwrap_or("")).get("token").map(str::to_owned);
        match consume_token(&state, token.as_deref(), &target).await {
            Ok(true) => {}
            Ok(false) => return Refusal::InvalidToken.into_response(),
            Err(response) => return response,
        }
        // Without a key (and without protection) the cookie would never be
        // checked: redirect without one.
        cookie = key.map(|key| {
            let scope = paths::scope(&target.format, &target.record_id);
            let exp = now_secs().saturating_add(config.cookie_ttl.as_secs());
            let token = jwt::playback_cookie(&scope, exp, key);
            let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
            let same_site = if same_site::same_site_none_incompatible(user_agent) { "" } else { "; SameSite=None" };
            format!("{}={token}; Path={scope}; Secure; HttpOnly{same_site}", cookie_name(&target))
        });
    }
    let Some(location) = same_origin_url(&origin(&headers), &target.url) else {
        warn!(
            record_id = %target.record_id,
            format = %target.format,
            "stored playback URL is not a path on this site: not redirecting there"
        );
        return Refusal::NotFound.into_response();
    };
    let Ok(location) = HeaderValue::from_str(&location) else {
        warn!(record_id = %target.record_id, format = %target.format, "stored playback URL is not a valid header value");
        return Refusal::NotFound.into_response();
    };
    let mut response = (StatusCode::TEMPORARY_REDIRECT, [(header::CACHE_CONTROL, "no-store")]).into_response();
    response.headers_mut().insert(header::LOCATION, location);
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// `GET /<format>/<record_id>[/<path>]` (reference §11.3).
pub(crate) async fn resource(
    State(state): State<AppState>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let request = match ResourcePath::parse(uri.path(), uri.query()) {
        Ok(request) => request,
        Err(PathError::NoRoute) => return unsupported().await,
        Err(PathError::Invalid) => return Refusal::InvalidPath.into_response(),
    };
    let target = match lookup(&state, &headers, &uri, &request.record_id, &request.format).await {
        Ok(target) => target,
        Err(response) => return response,
    };
    let config = &state.config.recordings;
    let guarded = config.protected && target.protected;
    if guarded {
        let Some(key) = config.secret_key_base.as_ref() else {
            return Refusal::NoSecretKeyBase.into_response();
        };
        let name = cookie_name(&target);
        let scope = request.scope();
        if !cookies(&headers, &name).any(|value| jwt::verify_playback_cookie(value, &scope, key)) {
            return Refusal::InvalidCookie.into_response();
        }
    }
    if let Some(bucket) = &state.recording_bucket {
        // S3_RECORDING: a short-lived presigned URL of the object.
        let Some(file) = &request.file else {
            return Refusal::InvalidPath.into_response();
        };
        let prefix = bucket.recording_prefix(target.tenant_id.as_deref(), true, &target.format, &target.record_id);
        let mut cookies = Vec::new();
        let url = match &state.cloudfront {
            Some(cloudfront) if wants_page(&headers, file) => {
                let ttl = config.s3.as_ref().map_or(300, |s3| s3.presigned_url_ttl.as_secs());
                let expires = now_secs().saturating_add(ttl);
                match cloudfront.cookies(&prefix, expires) {
                    Ok(signed) => {
                        let domain =
                            cookie_domain(&origin(&headers)).map(|d| format!("; Domain={d}")).unwrap_or_default();
                        for (name, value) in signed {
                            cookies.push(format!(
                                "{name}={value}{domain}; Path=/; Max-Age={ttl}; Secure; HttpOnly; SameSite=None"
                            ));
                        }
                        Ok(cloudfront.url(&format!("{prefix}{file}")))
                    }
                    Err(error) => {
                        warn!(%error, "CloudFront cookies could not be signed; redirecting to a presigned URL");
                        bucket.presigned_get(&format!("{prefix}{file}"), &target.format).await
                    }
                }
            }
            _ => bucket.presigned_get(&format!("{prefix}{file}"), &target.format).await,
        };
        let url = match url {
            Ok(url) => url,
            Err(error) => {
                warn!(%error, "cannot sign a playback URL of the bucket");
                return (StatusCode::SERVICE_UNAVAILABLE, [(header::CACHE_CONTROL, "no-store")]).into_response();
            }
        };
        let Ok(location) = HeaderValue::from_str(&url) else {
            return Refusal::InvalidPath.into_response();
        };
        let mut response = (StatusCode::TEMPORARY_REDIRECT, [(header::CACHE_CONTROL, "no-store")]).into_response();
        response.headers_mut().insert(header::LOCATION, location);
        for cookie in cookies.into_iter().filter_map(|c| HeaderValue::from_str(&c).ok()) {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
        return response;
    }
    let Ok(accel) = HeaderValue::from_str(&request.accel_redirect) else {
        return Refusal::InvalidPath.into_response();
    };
    let mut response = StatusCode::OK.into_response();
    let response_headers = response.headers_mut();
    response_headers.insert("x-accel-redirect", accel);
    if !INLINE_FORMATS.contains(&target.format.as_str()) {
        response_headers.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment"));
    }
    if guarded {
        // Shared caches must not hand a protected file to someone without
        // the cookie; browsers revalidate so an expired cookie stops working.
        response_headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    }
    response
}

/// The playback format of a published recording, or the response to send.
/// In multitenant mode the host names the tenant (unknown: `checksumError`,
/// as Scalelite) and another tenant's recording is not found.
async fn lookup(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    record_id: &str,
    format: &str,
) -> Result<PlaybackTarget, Response> {
    let tenant = state.request_tenant(headers, uri).await.map_err(IntoResponse::into_response)?;
    let Some(recordings) = state.recordings.as_ref() else {
        return Err(Refusal::NotFound.into_response());
    };
    let visible =
        |target: &PlaybackTarget| tenant.as_ref().is_none_or(|t| target.tenant_id.as_deref() == Some(t.id().as_str()));
    match recordings.playback(record_id, format).await {
        Ok(Some(target)) if !visible(&target) => Err(Refusal::NotFound.into_response()),
        Ok(Some(target)) if target.published => Ok(target),
        Ok(Some(_)) => Err(Refusal::Unpublished.into_response()),
        Ok(None) => Err(Refusal::NotFound.into_response()),
        Err(error) => {
            warn!(%error, "recordings database unavailable for playback");
            Err(unavailable())
        }
    }
}

/// Takes the one-time token from the meeting store (whatever it was for, as Scalelite
/// does) and tells whether it was minted for this recording and format.
async fn consume_token(state: &AppState, token: Option<&str>, target: &PlaybackTarget) -> Result<bool, Response> {
    let Some(token) = token.filter(|t| t.len() == 64 && t.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
    else {
        return Ok(false);
    };
    let payload = match state.store.consume_playback_token(token).await {
        Ok(Some(payload)) => payload,
        Ok(None) => return Ok(false),
        Err(error) => {
            warn!(%error, "meeting store unavailable for a playback token");
            return Err(unavailable());
        }
    };
    let Ok(payload) = serde_json::from_str::<serde_json::Value>(&payload) else {
        return Ok(false);
    };
    Ok(payload.get("record_id").and_then(|v| v.as_str()) == Some(target.record_id.as_str())
        && payload.get("format").and_then(|v| v.as_str()) == Some(target.format.as_str()))
}

/// Whether a resource request asks for a page (Rails' `request.format.html?`
/// as far as it matters here): an `.html` file, or a path without extension
/// requested with `Accept: text/html`. With CloudFront such requests go
/// there with signed cookies (Scalelite's rule); other files get presigned
/// URLs.
fn wants_page(headers: &HeaderMap, file: &str) -> bool {
    let name = file.rsplit('/').next().unwrap_or(file);
    match name.rsplit_once('.') {
        Some((_, ext)) if !ext.contains('/') => ext.eq_ignore_ascii_case("html") || ext.eq_ignore_ascii_case("htm"),
        _ => headers
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("text/html")),
    }
}

/// The cookie domain Scalelite gives CloudFront cookies: `.` and the last
/// two labels of the request's host (Rails' `request.domain`); none for an
/// IP address or a single-label host.
fn cookie_domain(origin: &str) -> Option<String> {
    let host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    let host = if host.starts_with('[') {
        return None;
    } else {
        host.rsplit_once(':').map_or(host, |(h, p)| if p.bytes().all(|b| b.is_ascii_digit()) { h } else { host })
    };
    if host.parse::<std::net::Ipv4Addr>().is_ok() {
        return None;
    }
    let labels: Vec<&str> = host.split('.').filter(|l| !l.is_empty()).collect();
    (labels.len() >= 2).then(|| format!(".{}.{}", labels[labels.len() - 2], labels[labels.len() - 1]))
}

/// HTTP 503 when a store cannot be reached (Scalelite: 500).
fn unavailable() -> Response {
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "no-store")],
        "Recording playback is temporarily unavailable.\n",
    )
        .into_response();
    response.extensions_mut().insert(Outcome("internalError".to_owned()));
    response
}

/// `recording_<format>_<record_id>`.
fn cookie_name(target: &PlaybackTarget) -> String {
    format!("recording_{}_{}", target.format, target.record_id)
}

/// Every value of the cookie `name` in the request's `Cookie` headers.
fn cookies<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).filter_map(
        move |pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"'))
        },
    )
}

/// The stored URL made absolute on `origin` (Rails' `redirect_to` with a
/// path), or `None` when it is not a path on this site. Scalelite's importer
/// stores the path and query of BBB's link (reference §9), so a URL with a
/// scheme (`https://elsewhere/`, `javascript:`) or a network-path reference
/// (`//elsewhere/`, or `/\elsewhere/`, which browsers read the same way)
/// can only have been planted: redirecting there would make the play route
/// an open redirect (Rails 7 refuses such redirects too). A path without its
/// leading `/` is taken as one.
fn same_origin_url(origin: &str, url: &str) -> Option<String> {
    let has_scheme = url.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    if has_scheme {
        return None;
    }
    let path = if url.starts_with('/') { Cow::Borrowed(url) } else { Cow::Owned(format!("/{url}")) };
    // Browsers ignore tabs and newlines inside URLs, and treat `\` as `/`.
    let mut after_slash = path[1..].chars().filter(|c| !matches!(c, '\t' | '\n' | '\r'));
    if matches!(after_slash.next(), Some('/' | '\\')) {
        return None;
    }
    Some(format!("{origin}{path}"))
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_paths_become_urls_on_this_site() {
        let origin = "https://sl.example.org";
        let url = |stored: &str| same_origin_url(origin, stored);
        assert_eq!(
            url("/playback/presentation/2.3/r1").as_deref(),
            Some("https://sl.example.org/playback/presentation/2.3/r1")
        );
        assert_eq!(url("podcast/r1/audio.ogg").as_deref(), Some("https://sl.example.org/podcast/r1/audio.ogg"));
        assert_eq!(
            url("/playback/presentation/2.3/r1?a=b:c").as_deref(),
            Some("https://sl.example.org/playback/presentation/2.3/r1?a=b:c")
        );
        assert_eq!(url("/").as_deref(), Some("https://sl.example.org/"));
        // Anything that names another site is refused.
        for elsewhere in [
            "https://cdn.example.org/x",
            "HTTP://evil.example/x",
            "javascript:alert(1)",
            "//evil.example/x",
            "/\\evil.example/x",
            "\\\\evil.example/x",
            "\\/evil.example/x",
            "/\t/evil.example/x",
            "/\n\\evil.example/x",
        ] {
            assert_eq!(url(elsewhere), None, "{elsewhere:?}");
        }
    }

    #[test]
    fn cookie_values_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            "a=1; recording_presentation_r1=tok1; recording_presentation_r10=x".parse().unwrap(),
        );
        headers.append(header::COOKIE, "recording_presentation_r1=\"tok2\"".parse().unwrap());
        assert_eq!(cookies(&headers, "recording_presentation_r1").collect::<Vec<_>>(), ["tok1", "tok2"]);
        assert_eq!(cookies(&headers, "recording_video_r1").count(), 0);
    }

    #[test]
    fn cloudfront_cookies_go_to_the_parent_domain() {
        assert_eq!(cookie_domain("https://sl.example.org").as_deref(), Some(".example.org"));
        assert_eq!(cookie_domain("https://a.b.example.org:8443").as_deref(), Some(".example.org"));
        assert_eq!(cookie_domain("http://127.0.0.1:3000"), None);
        assert_eq!(cookie_domain("http://localhost"), None);
        assert_eq!(cookie_domain("http://[::1]:80"), None);
    }

    #[test]
    fn pages_are_html_files_or_html_requests() {
        let mut html = HeaderMap::new();
        html.insert(header::ACCEPT, "text/html,application/xhtml+xml".parse().unwrap());
        assert!(wants_page(&HeaderMap::new(), "index.html"));
        assert!(wants_page(&html, "index.html"));
        assert!(!wants_page(&html, "video/webcams.webm"));
        assert!(!wants_page(&HeaderMap::new(), "slides"));
        assert!(wants_page(&html, "slides"));
    }

    #[test]
    fn refusals_are_404_pages_with_an_outcome() {
        let response = Refusal::InvalidCookie.into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.extensions().get::<Outcome>().map(|o| o.0.as_str()), Some("invalidCookie"));
    }
}
