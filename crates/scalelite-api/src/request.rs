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
//!   parameters are trusted. A name present in both query and body is never
//!   trusted from the body.

use axum::body::Body;
use bytes::Bytes;
use futures::stream;
use http::request::Parts;
use http::{HeaderMap, Method, Request, header};
use scalelite_core::checksum::{self, strip_checksum};
use std::sync::Arc;

use scalelite_core::{BbbError, Params, Secret, TenantId};
use tracing::debug;

use crate::response::ApiError;
use crate::state::AppState;
use crate::tenancy::{ResolvedTenant, request_host, tenant_name};

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
    pub xml_body: Option<Bytes>,
    /// Request method.
    pub method: Method,
    /// The caller's tenant (multitenant mode only).
    pub tenant: Option<Arc<ResolvedTenant>>,
}

impl ApiRequest {
    /// The trusted value of `name`, if present and non-empty.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get_present(name)
    }

    /// The caller's tenant id (multitenant mode only).
    pub fn tenant_id(&self) -> Option<&TenantId> {
        self.tenant.as_deref().map(ResolvedTenant::id)
    }

    /// Reads, checks and authenticates a request for `call`: with
    /// multitenancy, against the secrets of the tenant its host names
    /// (the load-balancer secrets are not accepted there).
    pub async fn read(state: &AppState, call: &ApiCall, request: Request<Body>) -> Result<Self, ApiError> {
        let tenant = if state.config.multitenancy {
            Some(request_host(request.headers(), request.uri()).map(tenant_name).unwrap_or("").to_owned())
        } else {
            None
        };
        let unverified = Unverified::read(state, call, request).await?;
        let algorithms = state.config.checksum_algorithms;
        let Some(name) = tenant else {
            let matched = unverified.matched(call.name, &state.config.secrets, algorithms)?;
            return Ok(unverified.trusted(matched, None));
        };
        // Content type first, then the checksum (an unknown tenant has no
        // secrets, so it is a checksumError), as in Scalelite.
        let resolved = match state.tenants.by_name(&name).await? {
            Some(tenant) => Some(tenant),
            None => state.tenants.refresh(&name).await?,
        };
        let Some(mut resolved) = resolved else {
            return Err(BbbError::ChecksumError.into());
        };
        let matched = match unverified.matched(call.name, &resolved.secrets, algorithms) {
            Ok(matched) => matched,
            // A secret may have been added since the tenant was cached.
            Err(error) => match state.tenants.refresh(&name).await? {
                Some(fresh) => {
                    resolved = fresh;
                    unverified.matched(call.name, &resolved.secrets, algorithms)?
                }
                None => return Err(error.into()),
            },
        };
        Ok(unverified.trusted(matched, Some(resolved)))
    }
}

/// The `internalError` message for a body that is too large or cut off.
pub const BODY_UNREADABLE: &str = "Unable to read the request body.";

/// A parsed request before its checksum is checked.
#[derive(Debug)]
pub struct Unverified {
    method: Method,
    raw_query: String,
    query: Params,
    form_body: Option<(String, Params)>,
    xml_body: Option<Bytes>,
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
        "application/xml" | "text/xml" | "application/x-xml" => MimeKind::Xml,
        _ => MimeKind::Other,
    })
}

impl Unverified {
    /// Reads the body (at most `MAX_REQUEST_BODY_BYTES`), then [`Self::parse`].
    pub async fn read(state: &AppState, call: &ApiCall, request: Request<Body>) -> Result<Self, BbbError> {
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, state.config.max_body_bytes)
            .await
            .map_err(|_| BbbError::internal(BODY_UNREADABLE))?;
        Self::parse(call, &parts, body).await
    }

    /// Applies the content-type gate and parses query and body.
    pub async fn parse(call: &ApiCall, parts: &Parts, body: Bytes) -> Result<Self, BbbError> {
        let raw_query = parts.uri.query().unwrap_or("").to_owned();
        let query = Params::parse(&raw_query);
        let mut unverified = Self { method: parts.method.clone(), raw_query, query, form_body: None, xml_body: None };
        if parts.method != Method::POST || body.is_empty() {
            return Ok(unverified);
        }
        let kind = mime_kind(&parts.headers);
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
        match kind {
            Some(MimeKind::UrlEncoded) => {
                let raw = String::from_utf8_lossy(&body).into_owned();
                let params = Params::parse(&raw);
                unverified.form_body = Some((raw, params));
            }
            Some(MimeKind::Multipart) => {
                let params = multipart_fields(&parts.headers, body).await?;
                unverified.form_body = Some((String::new(), params));
            }
            Some(MimeKind::Xml) => unverified.xml_body = Some(body),
            Some(MimeKind::Other) | None => {}
        }
        Ok(unverified)
    }

    /// Verifies the checksum and returns the trusted parameters.
    pub fn verify(
        self,
        call: &str,
        secrets: &[Secret],
        algorithms: checksum::AlgorithmSet,
    ) -> Result<ApiRequest, BbbError> {
        let matched = self.matched(call, secrets, algorithms)?;
        Ok(self.trusted(matched, None))
    }

    /// Checks the checksum; which check string matched (0 = the query).
    fn matched(&self, call: &str, secrets: &[Secret], algorithms: checksum::AlgorithmSet) -> Result<usize, BbbError> {
        let body_params = self.form_body.as_ref().map(|(_, p)| p);
        let checksum = self.query.get("checksum").or_else(|| body_params.and_then(|p| p.get("checksum"))).unwrap_or("");
        let stripped_query = strip_checksum(&self.raw_query, checksum);

        // Candidate check strings: the query, then (form POSTs only) the body.
        let mut body_candidates: Vec<String> = Vec::new();
        if let Some((raw_body, body_params)) = &self.form_body {
            let overlap = body_params.iter().any(|(k, _)| k != "checksum" && self.query.contains(k));
            if !overlap && !body_params.is_empty() {
                if stripped_query.is_empty() && !raw_body.is_empty() {
                    body_candidates.push(strip_checksum(raw_body, checksum).into_owned());
                }
                body_candidates.push(canonical(&self.query, body_params));
            }
        }
        let mut refs: Vec<&str> = Vec::with_capacity(1 + body_candidates.len());
        refs.push(&stripped_query);
        refs.extend(body_candidates.iter().map(String::as_str));
        checksum::verify(call, &refs, checksum, secrets, algorithms).map_err(|refusal| {
            debug!(call, ?refusal, "checksum refused");
            BbbError::ChecksumError
        })
    }

    /// The trusted parameters once check string `matched` verified.
    fn trusted(self, matched: usize, tenant: Option<Arc<ResolvedTenant>>) -> ApiRequest {
        let mut params = self.query;
        match (matched, self.form_body) {
            (0, Some((_, body))) if !body.is_empty() => {
                debug!("ignoring form body parameters not covered by the checksum");
            }
            (n, Some((_, body))) if n > 0 => params.extend(body),
            _ => {}
        }
        ApiRequest { params, xml_body: self.xml_body, method: self.method, tenant }
    }

    /// The query parameters, unauthenticated (for calls without checksum).
    pub fn into_query(self) -> Params {
        self.query
    }
}

/// bbb-web's check string for a form POST: every parameter except
/// `checksum`, sorted by name, values form-encoded.
fn canonical(query: &Params, body: &Params) -> String {
    let mut pairs: Vec<(&str, &str)> = query.iter().chain(body.iter()).filter(|(k, _)| *k != "checksum").collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    Params::from_pairs(pairs).encode()
}

async fn multipart_fields(headers: &HeaderMap, body: Bytes) -> Result<Params, BbbError> {
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
        Unverified::parse(&FORM, &parts, Bytes::from(body.to_owned())).await?.verify(
            FORM.name,
            &secret(),
            AlgorithmSet::default_set(),
        )
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
        let req = run(Method::POST, &uri, Some(form), "meetingID=b&extra=1").await.unwrap();
        assert_eq!(req.param("meetingID"), Some("a"));
        assert_eq!(req.param("extra"), None);
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
}
