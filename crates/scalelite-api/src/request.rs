//! Turning an HTTP request into trusted BBB API parameters.
//!
//! Order of checks (as Scalelite): content type, then checksum, then the
//! call itself. Only parameters covered by the checksum are trusted:
//!
//! * The checksum is verified over the raw query string (minus the
//!   `checksum` pair). When it matches, only the query's parameters are
//!   used; parameters in a POST body are ignored, because anyone who saw one
//!   signed request could otherwise append arbitrary unsigned parameters
//!   (for a body-only POST the checksum covers just the call name and the
//!   secret, a constant).
//! * A form POST whose query holds nothing but the checksum may sign its
//!   body instead: either the raw body string, or (as bbb-web 2.5+ does)
//!   all parameters sorted by name and form-encoded. Then the body's
//!   parameters are trusted.
//! * A parameter present in both the query and a form body is a
//!   `checksumError`, as in bbb-web 3.0. Once the query has authenticated a
//!   request, its form body is read (without the shared budget) for that
//!   check alone.

use std::collections::HashSet;
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use futures::stream;
use http::request::Parts;
use http::{HeaderMap, Method, Request, header};
use scalelite_core::checksum::{self, CheckString, find_checksum};
use scalelite_core::config::EdgeLimits;
use scalelite_core::error::refused;
use scalelite_core::params;
use scalelite_core::{BbbError, Params, Secret, TenantId};
use tracing::debug;

use crate::body::{BodyLimits, ReadBody};
use crate::host::{request_host, tenant_name};
use crate::response::ApiError;
use crate::state::AppState;
use crate::tenancy::ResolvedTenant;

/// Which request bodies a call accepts (checked only for POSTs with a body).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// Form data only (most calls).
    Form,
    /// Form data or an XML document (create with pre-uploaded slides).
    FormOrXml,
    /// An XML document only (insertDocument).
    Xml,
    /// No content-type check (join and the recording mutations).
    Any,
}

/// Static description of one BBB API call.
#[derive(Clone, Copy, Debug)]
pub struct ApiCall {
    /// The call name used in the checksum (`getMeetingInfo`, ...).
    pub name: &'static str,
    /// Accepted POST bodies.
    pub body: BodyKind,
}

/// A request whose checksum has been verified.
#[derive(Debug)]
pub struct ApiRequest {
    /// The trusted parameters (see the module documentation).
    pub params: Params,
    /// The raw XML body of a create/insertDocument POST.
    pub(crate) xml_body: Option<Bytes>,
    /// The caller's tenant (multitenant mode only).
    pub(crate) tenant: Option<Arc<ResolvedTenant>>,
}

impl ApiRequest {
    /// The trusted value of `name`, if present and non-empty.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get_present(name)
    }

    /// The caller's tenant id (multitenant mode only).
    pub(crate) fn tenant_id(&self) -> Option<&TenantId> {
        self.tenant.as_deref().map(ResolvedTenant::id)
    }

    /// Reads, checks and authenticates a request for `call`: with
    /// multitenancy, against the secrets of the tenant its host names
    /// (the load-balancer secrets are not accepted there).
    pub(crate) async fn read(state: &AppState, call: &ApiCall, request: Request<Body>) -> Result<Self, ApiError> {
        let tenant = if state.config.multitenancy {
            Some(request_host(request.headers(), request.uri()).map(tenant_name).unwrap_or("").to_owned())
        } else {
            None
        };
        let mut unverified = Unverified::read(state, call, request).await?;
        let algorithms = state.config.checksum_algorithms;
        let Some(name) = tenant else {
            let matched = unverified.matched(call.name, &state.config.secrets, algorithms).await?;
            return Ok(unverified.trusted(matched, None).await?);
        };
        // Content type first, then the checksum (an unknown tenant has no
        // secrets, so it is a checksumError), as in Scalelite.
        let Some(mut resolved) = state.tenants.find(&name).await? else {
            return Err(BbbError::ChecksumError.into());
        };
        let matched = match unverified.matched(call.name, &resolved.secrets, algorithms).await {
            Ok(matched) => matched,
            // A secret may have been added since the tenant was cached.
            Err(error @ BbbError::ChecksumError) => match state.tenants.refresh(&name).await? {
                Some(fresh) => {
                    resolved = fresh;
                    unverified.matched(call.name, &resolved.secrets, algorithms).await?
                }
                None => return Err(error.into()),
            },
            Err(error) => return Err(error.into()),
        };
        // The tenant's rate counts authenticated requests only.
        if let Some(per_minute) = resolved.limits.rate_per_minute
            && !state.rates.allow(resolved.id(), per_minute)
        {
            return Err(scalelite_core::error::limit::rate(per_minute).into());
        }
        Ok(unverified.trusted(matched, Some(resolved)).await?)
    }
}

/// A parsed request before its checksum is checked.
///
/// Reading costs time and memory linear in the request's size: the
/// parameters are counted before anything is decoded, the one `checksum`
/// parameter is found as a parameter, and a body is read only when the
/// query alone does not authenticate the request (a form body that may be
/// what was signed: read under the shared [`BodyBudget`](crate::body::BodyBudget)) or once it has
/// (an XML body to forward; a form body, without the budget, to refuse a
/// parameter it repeats).
#[derive(Debug)]
pub struct Unverified {
    headers: HeaderMap,
    raw_query: String,
    query: Params,
    /// The query's `checksum` parameter and where it was cut out.
    query_checksum: Option<Located>,
    body: BodyState,
    limits: Limits,
}

/// A `checksum` parameter: its value, and the check string as the raw text
/// without it (`raw[..cut.0] + raw[cut.1..]`).
#[derive(Debug)]
struct Located {
    value: String,
    cut: (usize, usize),
}

impl Located {
    fn find(raw: &[u8]) -> Result<Option<Self>, BbbError> {
        let pair = find_checksum(raw).map_err(|_| BbbError::ChecksumError)?;
        Ok(pair.map(|pair| Self {
            value: pair.value.into_owned(),
            cut: (pair.before.len(), raw.len() - pair.after.len()),
        }))
    }

    fn check_string<'a>(&self, raw: &'a [u8]) -> [&'a [u8]; 2] {
        [&raw[..self.cut.0], &raw[self.cut.1..]]
    }
}

#[derive(Debug)]
enum BodyState {
    /// No body, or one no call reads.
    None,
    /// A form body, read only if the query does not authenticate.
    Form(Body, Form),
    /// An XML body, read once the request is authenticated.
    Xml(Body),
    /// A form body, read and parsed.
    Read(FormBody),
}

#[derive(Clone, Copy, Debug)]
enum Form {
    UrlEncoded,
    Multipart,
}

#[derive(Debug)]
struct FormBody {
    /// The raw body (URL-encoded bodies; a multipart body is never a
    /// check string itself).
    raw: Option<Bytes>,
    params: Params,
    checksum: Option<Located>,
    /// Keeps the body's bytes taken from the budget until it is dropped.
    _read: ReadBody,
}

#[derive(Clone, Debug)]
struct Limits {
    max_params: usize,
    /// How a body is read before authentication.
    body: BodyLimits,
}

#[derive(Debug, PartialEq, Eq)]
enum MimeKind {
    UrlEncoded,
    Multipart,
    Xml,
    Other,
}

fn mime_kind(headers: &HeaderMap) -> Option<MimeKind> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    let mime = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    Some(match mime.as_str() {
        "application/x-www-form-urlencoded" => MimeKind::UrlEncoded,
        "multipart/form-data" => MimeKind::Multipart,
        // bbb-web's two XML types (Rails also took `application/x-xml`).
        "application/xml" | "text/xml" => MimeKind::Xml,
        _ => MimeKind::Other,
    })
}

impl Unverified {
    /// Applies the content-type gate and parses the query; the body is read
    /// later, only if needed (see the type's documentation).
    pub(crate) async fn read(state: &AppState, call: &ApiCall, request: Request<Body>) -> Result<Self, BbbError> {
        let limits = Limits { max_params: state.config.edge.max_params, body: state.unauthenticated_body() };
        let (parts, body) = request.into_parts();
        Self::new(call, parts, body, limits)
    }

    /// Applies the content-type gate and parses the query of a request
    /// already in memory, as the server does for one it reads, but with the
    /// default limits and no shared budget (tests and fuzzing).
    pub fn parse(call: &ApiCall, parts: &Parts, body: Bytes) -> Result<Self, BbbError> {
        let defaults = EdgeLimits::default();
        let reading = BodyLimits { max_bytes: usize::MAX, stall: defaults.header_read_timeout, budget: None };
        let limits = Limits { max_params: defaults.max_params, body: reading };
        Self::new(call, parts.clone(), Body::from(body), limits)
    }

    fn new(call: &ApiCall, parts: Parts, body: Body, limits: Limits) -> Result<Self, BbbError> {
        let raw_query = parts.uri.query().unwrap_or("").to_owned();
        let query =
            Params::parse_limited(raw_query.as_bytes(), limits.max_params).map_err(|_| refused::TOO_MANY_PARAMS)?;
        let query_checksum = Located::find(raw_query.as_bytes())?;
        let mut unverified =
            Self { headers: parts.headers, raw_query, query, query_checksum, body: BodyState::None, limits };
        if parts.method != Method::POST || crate::body::is_empty(&body) {
            return Ok(unverified);
        }
        let kind = mime_kind(&unverified.headers);
        let allowed = matches!(
            (call.body, &kind),
            (BodyKind::Any, _)
                | (BodyKind::Form, Some(MimeKind::UrlEncoded | MimeKind::Multipart))
                | (BodyKind::FormOrXml, Some(MimeKind::UrlEncoded | MimeKind::Multipart | MimeKind::Xml))
                | (BodyKind::Xml, Some(MimeKind::Xml))
        );
        if !allowed {
            return Err(BbbError::UnsupportedContentType);
        }
        unverified.body = match kind {
            Some(MimeKind::UrlEncoded) => BodyState::Form(body, Form::UrlEncoded),
            Some(MimeKind::Multipart) => BodyState::Form(body, Form::Multipart),
            Some(MimeKind::Xml) => BodyState::Xml(body),
            Some(MimeKind::Other) | None => BodyState::None,
        };
        Ok(unverified)
    }

    /// Verifies the checksum and returns the trusted parameters.
    pub async fn verify(
        mut self,
        call: &str,
        secrets: &[Secret],
        algorithms: checksum::AlgorithmSet,
    ) -> Result<ApiRequest, BbbError> {
        let matched = self.matched(call, secrets, algorithms).await?;
        self.trusted(matched, None).await
    }

    /// Checks the checksum; which check string matched (0 = the query).
    /// The query is tried first, without reading the body.
    async fn matched(
        &mut self,
        call: &str,
        secrets: &[Secret],
        algorithms: checksum::AlgorithmSet,
    ) -> Result<usize, BbbError> {
        let refused = |refusal| {
            debug!(call, ?refusal, "checksum refused");
            BbbError::ChecksumError
        };
        if let Some(located) = &self.query_checksum {
            let query = located.check_string(self.raw_query.as_bytes());
            let verified = checksum::verify_check_strings(call, &[&query], &located.value, secrets, algorithms);
            if let Ok(index) = verified {
                self.read_form_body(self.limits.body.authenticated()).await?;
                self.refuse_repeated()?;
                return Ok(index);
            }
            // The body cannot help a checksum that matches nothing.
            if !checksum::well_formed(&located.value, algorithms) {
                return Err(refused(checksum::Refusal::BadLength));
            }
        }
        self.read_form_body(self.limits.body.clone()).await?;
        self.refuse_repeated()?;
        let raw_query = self.raw_query.as_bytes();
        let BodyState::Read(form) = &self.body else {
            let Some(located) = &self.query_checksum else {
                return Err(refused(checksum::Refusal::Missing));
            };
            let query = located.check_string(raw_query);
            return checksum::verify_check_strings(call, &[&query], &located.value, secrets, algorithms)
                .map_err(refused);
        };
        let located = match (&self.query_checksum, &form.checksum) {
            (Some(_), Some(_)) => return Err(refused(checksum::Refusal::Duplicate)),
            (Some(located), None) | (None, Some(located)) => located,
            (None, None) => return Err(refused(checksum::Refusal::Missing)),
        };
        let stripped_query: [&[u8]; 2] = match &self.query_checksum {
            Some(located) => located.check_string(raw_query),
            None => [raw_query, b""],
        };
        // Candidate check strings: the query, then the raw body (when the
        // query holds nothing but the checksum), then bbb-web's sorted form.
        let mut candidates: Vec<&dyn CheckString> = vec![&stripped_query];
        let raw_body: Option<[&[u8]; 2]>;
        let canonical: Canonical<'_>;
        if !form.params.is_empty() {
            let query_empty = stripped_query.iter().all(|part| part.is_empty());
            raw_body = match (&form.raw, &form.checksum) {
                (Some(raw), _) if !query_empty || raw.is_empty() => None,
                (Some(raw), Some(located)) => Some(located.check_string(raw)),
                (Some(raw), None) => Some([raw.as_ref(), b""]),
                (None, _) => None,
            };
            if let Some(raw_body) = &raw_body {
                candidates.push(raw_body);
            }
            canonical = Canonical::new(&self.query, &form.params);
            candidates.push(&canonical);
        }
        checksum::verify_check_strings(call, &candidates, &located.value, secrets, algorithms).map_err(refused)
    }

    /// bbb-web's rule: a parameter in both the query and a form body that
    /// was read is a `checksumError`.
    fn refuse_repeated(&self) -> Result<(), BbbError> {
        match &self.body {
            BodyState::Read(form) if overlap(&self.query, &form.params) => {
                debug!("parameter in both the query and the body");
                Err(BbbError::ChecksumError)
            }
            _ => Ok(()),
        }
    }

    /// Reads and parses a form body within `limits`, once.
    async fn read_form_body(&mut self, limits: BodyLimits) -> Result<(), BbbError> {
        let BodyState::Form(..) = self.body else {
            return Ok(());
        };
        let BodyState::Form(body, form) = std::mem::replace(&mut self.body, BodyState::None) else {
            return Ok(());
        };
        let read = crate::body::read(body, &self.headers, limits).await?;
        let room = self.limits.max_params.saturating_sub(self.query.len());
        let parsed = match form {
            Form::UrlEncoded => {
                let params = Params::parse_limited(&read.bytes, room).map_err(|_| refused::TOO_MANY_PARAMS)?;
                let checksum = Located::find(&read.bytes)?;
                FormBody { raw: Some(read.bytes.clone()), params, checksum, _read: read }
            }
            Form::Multipart => {
                let params = multipart_fields(&self.headers, read.bytes.clone(), room).await?;
                let checksum = match params.iter().filter(|(k, _)| *k == "checksum").count() {
                    0 => None,
                    1 => params.get("checksum").map(|value| Located { value: value.to_owned(), cut: (0, 0) }),
                    _ => return Err(BbbError::ChecksumError),
                };
                FormBody { raw: None, params, checksum, _read: read }
            }
        };
        self.body = BodyState::Read(parsed);
        Ok(())
    }

    /// The trusted parameters once check string `matched` verified; an XML
    /// body is read now.
    async fn trusted(self, matched: usize, tenant: Option<Arc<ResolvedTenant>>) -> Result<ApiRequest, BbbError> {
        let mut params = self.query;
        let mut xml_body = None;
        match self.body {
            BodyState::Read(form) if matched > 0 => params.extend(form.params),
            BodyState::Read(_) | BodyState::Form(..) => {
                debug!("ignoring form body parameters not covered by the checksum");
            }
            BodyState::Xml(body) => {
                let read = crate::body::read(body, &self.headers, self.limits.body.authenticated()).await?;
                xml_body = Some(read.bytes).filter(|bytes| !bytes.is_empty());
            }
            BodyState::None => {}
        }
        Ok(ApiRequest { params, xml_body, tenant })
    }
}

/// Whether a name is in both lists (linear).
fn overlap(query: &Params, body: &Params) -> bool {
    if query.is_empty() || body.is_empty() {
        return false;
    }
    let names: HashSet<&str> = query.iter().map(|(k, _)| k).collect();
    body.iter().any(|(k, _)| names.contains(k))
}

/// bbb-web's check string for a form POST: every parameter except
/// `checksum`, sorted by name, values form-encoded; fed to the hash in
/// pieces instead of being built.
struct Canonical<'a> {
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Canonical<'a> {
    fn new(query: &'a Params, body: &'a Params) -> Self {
        let mut pairs: Vec<(&str, &str)> = query.iter().chain(body.iter()).filter(|(k, _)| *k != "checksum").collect();
        pairs.sort_by(|a, b| a.0.cmp(b.0));
        Self { pairs }
    }
}

impl CheckString for Canonical<'_> {
    fn feed(&self, sink: &mut dyn FnMut(&[u8])) {
        const FLUSH: usize = 8 * 1024;
        let mut buffer = String::with_capacity(FLUSH * 2);
        for (index, (name, value)) in self.pairs.iter().enumerate() {
            if index > 0 {
                buffer.push('&');
            }
            params::encode_component_into(&mut buffer, name);
            buffer.push('=');
            // Long values are encoded in slices, so the buffer stays small.
            for piece in chunks(value, FLUSH) {
                params::encode_component_into(&mut buffer, piece);
                if buffer.len() >= FLUSH {
                    sink(buffer.as_bytes());
                    buffer.clear();
                }
            }
        }
        sink(buffer.as_bytes());
    }
}

/// `value` in pieces of about `size` bytes, cut on character boundaries.
fn chunks(value: &str, size: usize) -> impl Iterator<Item = &str> {
    let mut rest = value;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = size.min(rest.len());
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

async fn multipart_fields(headers: &HeaderMap, body: Bytes, max_fields: usize) -> Result<Params, BbbError> {
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let boundary = multer::parse_boundary(content_type).map_err(|_| BbbError::UnsupportedContentType)?;
    let mut multipart =
        multer::Multipart::new(stream::once(async move { Ok::<_, std::convert::Infallible>(body) }), boundary);
    let mut params = Params::new();
    while let Some(field) = multipart.next_field().await.map_err(|_| BbbError::UnsupportedContentType)? {
        if field.file_name().is_some() {
            continue;
        }
        let Some(name) = field.name().map(str::to_owned) else {
            continue;
        };
        if params.len() >= max_fields {
            return Err(refused::TOO_MANY_PARAMS);
        }
        let value = field.text().await.map_err(|_| BbbError::UnsupportedContentType)?;
        params.extend(Params::from_pairs([(name, value)]));
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use scalelite_core::{Algorithm, AlgorithmSet};

    const FORM: ApiCall = ApiCall { name: "getMeetingInfo", body: BodyKind::Form };

    fn secret() -> Vec<Secret> {
        vec![Secret::new("s3cr3t")]
    }

    async fn run(method: Method, uri: &str, content_type: Option<&str>, body: &str) -> Result<ApiRequest, BbbError> {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        let (parts, _) = builder.body(()).unwrap().into_parts();
        Unverified::parse(&FORM, &parts, Bytes::from(body.to_owned()))?
            .verify(FORM.name, &secret(), AlgorithmSet::default_set())
            .await
    }

    fn sign(query: &str) -> String {
        Algorithm::Sha1.sign("getMeetingInfo", query, &Secret::new("s3cr3t"))
    }

    #[tokio::test]
    async fn query_signed_get() {
        let uri = format!("/x?meetingID=a+b&checksum={}", sign("meetingID=a+b"));
        let req = run(Method::GET, &uri, None, "").await.unwrap();
        assert_eq!(req.param("meetingID"), Some("a b"));
        assert_eq!(
            run(Method::GET, "/x?meetingID=a&checksum=00", None, "").await.unwrap_err(),
            BbbError::ChecksumError
        );
    }

    #[tokio::test]
    async fn unsigned_body_parameters_are_ignored() {
        // The checksum over an empty query is a constant anyone could replay.
        let uri = format!("/x?checksum={}", sign(""));
        let form = "application/x-www-form-urlencoded";
        let req = run(Method::POST, &uri, Some(form), "meetingID=victim").await.unwrap();
        assert_eq!(req.param("meetingID"), None);
        // Extra body parameters next to a signed query are ignored too.
        let uri = format!("/x?meetingID=a&checksum={}", sign("meetingID=a"));
        let req = run(Method::POST, &uri, Some(form), "extra=1").await.unwrap();
        assert_eq!(req.param("meetingID"), Some("a"));
        assert_eq!(req.param("extra"), None);
    }

    #[tokio::test]
    async fn a_parameter_in_both_query_and_body_is_a_checksum_error() {
        let form = "application/x-www-form-urlencoded";
        let uri = format!("/x?meetingID=a&checksum={}", sign("meetingID=a"));
        for body in ["meetingID=b", "meetingID=a", "extra=1&meetingID="] {
            assert_eq!(run(Method::POST, &uri, Some(form), body).await.unwrap_err(), BbbError::ChecksumError, "{body}");
        }
        let boundary = "XyZ";
        let multipart = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"meetingID\"\r\n\r\nb\r\n--{boundary}--\r\n"
        );
        let ct = format!("multipart/form-data; boundary={boundary}");
        assert_eq!(run(Method::POST, &uri, Some(&ct), &multipart).await.unwrap_err(), BbbError::ChecksumError);
        // Also when the body is what was signed.
        let uri = format!("/x?meetingID=a&checksum={}", sign("meetingID=a&name=x"));
        assert_eq!(
            run(Method::POST, &uri, Some(form), "meetingID=a&name=x").await.unwrap_err(),
            BbbError::ChecksumError
        );
    }

    #[tokio::test]
    async fn signed_bodies_are_trusted() {
        let form = "application/x-www-form-urlencoded";
        // Raw body signed, checksum in the URL.
        let uri = format!("/x?checksum={}", sign("meetingID=b&name=x+y"));
        let req = run(Method::POST, &uri, Some(form), "meetingID=b&name=x+y").await.unwrap();
        assert_eq!(req.param("meetingID"), Some("b"));
        assert_eq!(req.param("name"), Some("x y"));
        // bbb-web's sorted form, checksum in the body.
        let body = format!("name=x+y&meetingID=b&checksum={}", sign("meetingID=b&name=x+y"));
        let req = run(Method::POST, "/x", Some(form), &body).await.unwrap();
        assert_eq!(req.param("meetingID"), Some("b"));
    }

    #[tokio::test]
    async fn content_type_gate_comes_first() {
        let err = run(Method::POST, "/x?checksum=bad", Some("application/json"), "{}").await.unwrap_err();
        assert_eq!(err, BbbError::UnsupportedContentType);
        let err = run(Method::POST, "/x?checksum=bad", None, "a=1").await.unwrap_err();
        assert_eq!(err, BbbError::UnsupportedContentType);
        // An empty POST body needs no content type.
        let uri = format!("/x?meetingID=a&checksum={}", sign("meetingID=a"));
        assert!(run(Method::POST, &uri, None, "").await.is_ok());
    }

    #[tokio::test]
    async fn multipart_fields_need_a_signature() {
        let boundary = "XyZ";
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"meetingID\"\r\n\r\nm1\r\n--{boundary}--\r\n"
        );
        let ct = format!("multipart/form-data; boundary={boundary}");
        let uri = format!("/x?checksum={}", sign("meetingID=m1"));
        let req = run(Method::POST, &uri, Some(&ct), &body).await.unwrap();
        assert_eq!(req.param("meetingID"), Some("m1"));
        let uri = format!("/x?checksum={}", sign(""));
        let req = run(Method::POST, &uri, Some(&ct), &body).await.unwrap();
        assert_eq!(req.param("meetingID"), None);
    }

    #[tokio::test]
    async fn a_spliced_checksum_is_refused() {
        // Issue 12: `fullName=Eve&meetingID=room-1-grp&password=ap&guest=true`
        // signed once; removing every `checksum=X` as text from the spliced
        // query gives the signed string back while the parameters say
        // room-1 without guest.
        let signed = "fullName=Eve&meetingID=room-1-grp&password=ap&guest=true";
        let x = sign(signed);
        let spliced = format!(
            "/x?fullName=Eve&meetingID=room-1&checksum={x}-grp&password=ap&&checksum={x}guest=true&checksum={x}"
        );
        assert_eq!(run(Method::GET, &spliced, None, "").await.unwrap_err(), BbbError::ChecksumError);
        // A copy of the pair inside a value is no longer cut out either.
        let x = sign("meetingID=a");
        let inside = format!("/x?meetingID=achecksum={x}&checksum={x}");
        assert_eq!(run(Method::GET, &inside, None, "").await.unwrap_err(), BbbError::ChecksumError);
        // The honest URL still works.
        let honest = format!("/x?{signed}&checksum={}", sign(signed));
        assert_eq!(run(Method::GET, &honest, None, "").await.unwrap().param("meetingID"), Some("room-1-grp"));
    }

    #[tokio::test]
    async fn a_checksum_in_both_query_and_body_is_refused() {
        let form = "application/x-www-form-urlencoded";
        let sum = sign("meetingID=b");
        let uri = format!("/x?checksum={sum}");
        let body = format!("meetingID=b&checksum={sum}");
        assert_eq!(run(Method::POST, &uri, Some(form), &body).await.unwrap_err(), BbbError::ChecksumError);
    }

    #[tokio::test]
    async fn too_many_parameters_are_refused_before_decoding() {
        let query = "a&".repeat(1001);
        let err = run(Method::GET, &format!("/x?{query}checksum=0"), None, "").await.unwrap_err();
        assert_eq!(err, refused::TOO_MANY_PARAMS);
        // Query and body count together.
        let form = "application/x-www-form-urlencoded";
        let uri = format!("/x?{}checksum={}", "a&".repeat(600), "0".repeat(40));
        let err = run(Method::POST, &uri, Some(form), &"b&".repeat(600)).await.unwrap_err();
        assert_eq!(err, refused::TOO_MANY_PARAMS);
        // Empty pieces are not parameters.
        let uri = format!(
            "/x?{}meetingID=a&checksum={}",
            "&".repeat(5000),
            sign(&format!("{}meetingID=a", "&".repeat(5000)))
        );
        assert_eq!(run(Method::GET, &uri, None, "").await.unwrap().param("meetingID"), Some("a"));
    }

    #[tokio::test]
    async fn a_body_is_read_under_the_budget_only_before_authentication() {
        // A budget with no room: a body read before authentication is
        // refused; once the query has verified, the body is read without it
        // (for the repeated-parameter check) and the request goes through.
        let parts = |query: &str, body: &str| {
            Request::builder()
                .method(Method::POST)
                .uri(format!("/x?{query}"))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::CONTENT_LENGTH, body.len().to_string())
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        let limits = || {
            let budget = Some(crate::body::BodyBudget::new(1));
            Limits {
                max_params: 10,
                body: BodyLimits { max_bytes: 100, stall: std::time::Duration::from_secs(1), budget },
            }
        };
        let signed = format!("meetingID=a&checksum={}", sign("meetingID=a"));
        let unverified = Unverified::new(&FORM, parts(&signed, "extra=1"), Body::from("extra=1"), limits()).unwrap();
        let request = unverified.verify(FORM.name, &secret(), AlgorithmSet::default_set()).await.unwrap();
        assert_eq!(request.param("meetingID"), Some("a"));
        let unverified =
            Unverified::new(&FORM, parts(&signed, "meetingID=b"), Body::from("meetingID=b"), limits()).unwrap();
        let error = unverified.verify(FORM.name, &secret(), AlgorithmSet::default_set()).await.unwrap_err();
        assert_eq!(error, BbbError::ChecksumError);
        let wrong = format!("meetingID=a&checksum={}", sign("meetingID=z"));
        let unverified = Unverified::new(&FORM, parts(&wrong, "extra=1"), Body::from("extra=1"), limits()).unwrap();
        let error = unverified.verify(FORM.name, &secret(), AlgorithmSet::default_set()).await.unwrap_err();
        assert_eq!(error, refused::BUSY);
    }
}
