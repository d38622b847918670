//! The credentials S3 requests are signed with, from the first source the
//! configuration found, in the order of the AWS SDKs for Ruby, Java, PHP
//! and Python: the key pair of the environment; the temporary credentials
//! of a role assumed with a web identity token (STS
//! `AssumeRoleWithWebIdentity`, EKS IAM roles for service accounts); the
//! static keys of a profile of the shared credentials or config file, else
//! the credentials its `credential_process` prints ([`process`]), or the
//! temporary credentials of the role it assumes (STS `AssumeRole`, signed
//! with [`sigv4`] and the credentials of the role's source, themselves
//! fetched and refreshed as any others); the
//! temporary credentials of a role fetched from the container credentials
//! endpoint (ECS, EKS Pod Identity) or EC2's instance metadata service
//! (`IMDSv2`).
//!
//! Temporary credentials are fetched lazily, by the first request that needs
//! them, and again by the first request that finds them within
//! [`REFRESH_MARGIN`] of their `Expiration` (one fetch at a time; requests
//! that waited for it take its outcome). A failed fetch is logged (without
//! secrets) and tried again by the next request; credentials that have not
//! expired yet stay in use meanwhile. The lock around the current
//! credentials is never held across an `.await`.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use jiff::Timestamp;
use rusty_s3::Credentials;
use scalelite_bbb_client::{HttpsClient, https_client};
use scalelite_core::config::{
    AssumeRoleCredentials, ProcessCredentials, RoleCredentials, S3Credentials, WebIdentityCredentials,
};
use tracing::{info, warn};

mod process;
mod sigv4;

/// Credentials are fetched again this long before they expire.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// How long connecting to a metadata service may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long connecting to STS (over the Internet) may take.
const STS_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one metadata request may take, body included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one STS request may take, body included.
const STS_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest metadata or STS answer read.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Longest key, secret or token taken (session tokens are a few KB).
const MAX_FIELD_BYTES: usize = 8 * 1024;
/// Largest token file read (authorization or web identity token; STS takes
/// web identity tokens of up to 20 000 characters).
const MAX_TOKEN_FILE_BYTES: u64 = 32 * 1024;
/// Lifetime asked for an `IMDSv2` session token (the SDKs' six hours).
const IMDS_TOKEN_TTL: &str = "21600";

/// Credentials in use, and when they expire (`None`: never).
#[derive(Clone)]
struct Current {
    credentials: Arc<Credentials>,
    expires: Option<Timestamp>,
}

#[derive(Default)]
struct State {
    current: Option<Current>,
    /// Fetches finished so far (successful or not).
    generation: u64,
    /// Why the last fetch failed, if it did.
    last_error: Option<String>,
}

/// Where temporary credentials are fetched from.
enum Source {
    WebIdentity(WebIdentityCredentials),
    Process(ProcessCredentials),
    Role(RoleCredentials),
    /// A role assumed with the credentials of `source`.
    AssumeRole(AssumeRoleCredentials, Box<Provider>),
}

/// Hands out the credentials to sign with.
pub(super) struct Provider {
    source: Option<Source>,
    state: RwLock<State>,
    fetching: tokio::sync::Mutex<()>,
    client: HttpsClient,
}

impl Provider {
    pub(super) fn new(config: &S3Credentials) -> Self {
        let (source, current) = match config {
            S3Credentials::Static { access_key_id, secret_access_key, session_token } => {
                let credentials = match session_token {
                    Some(token) => {
                        Credentials::new_with_token(access_key_id.expose(), secret_access_key.expose(), token.expose())
                    }
                    None => Credentials::new(access_key_id.expose(), secret_access_key.expose()),
                };
                (None, Some(Current { credentials: Arc::new(credentials), expires: None }))
            }
            S3Credentials::Profile { profile, file, keys } => {
                info!(profile, file = %file.display(), "S3 credentials: the static keys of a shared credentials file profile");
                let (key, secret) = (keys.access_key_id.expose(), keys.secret_access_key.expose());
                let credentials = match &keys.session_token {
                    Some(token) => Credentials::new_with_token(key, secret, token.expose()),
                    None => Credentials::new(key, secret),
                };
                (None, Some(Current { credentials: Arc::new(credentials), expires: None }))
            }
            S3Credentials::WebIdentity(web) => {
                let source = Source::WebIdentity(web.clone());
                let (what, url) = describe(&source);
                info!(
                    source = what,
                    url,
                    role = web.role_arn,
                    token_file = %web.token_file.display(),
                    "S3 credentials: a role's, assumed with a web identity on first use"
                );
                (Some(source), None)
            }
            S3Credentials::Process(process) => {
                info!(
                    profile = process.profile,
                    file = %process.file.display(),
                    "S3 credentials: what the profile's credential_process prints, run on first use"
                );
                (Some(Source::Process(process.clone())), None)
            }
            S3Credentials::AssumeRole(assume) => {
                let source = Source::AssumeRole(assume.clone(), Box::new(Provider::new(&assume.source)));
                let (what, url) = describe(&source);
                info!(
                    source = what,
                    url,
                    profile = assume.profile,
                    role = assume.role_arn,
                    "S3 credentials: a role's, assumed on first use with the credentials of the profile's source"
                );
                (Some(source), None)
            }
            S3Credentials::Role(role) => {
                let source = Source::Role(role.clone());
                let (what, url) = describe(&source);
                info!(source = what, url, "S3 credentials: a role's, fetched on first use");
                (Some(source), None)
            }
        };
        let connect_timeout = if matches!(source, Some(Source::WebIdentity(_) | Source::AssumeRole(..))) {
            STS_CONNECT_TIMEOUT
        } else {
            CONNECT_TIMEOUT
        };
        Self {
            source,
            state: RwLock::new(State { current, ..State::default() }),
            fetching: tokio::sync::Mutex::new(()),
            client: https_client(connect_timeout),
        }
    }

    /// The credentials to sign with now, fetched first when there are none
    /// or they are about to expire.
    pub(super) async fn get(&self) -> Result<Arc<Credentials>, String> {
        let Some(source) = &self.source else {
            return self.snapshot().current.map(|c| c.credentials).ok_or_else(|| "no credentials".to_owned());
        };
        let before = self.snapshot();
        if let Some(fresh) = before.current.as_ref().filter(|c| !stale(c, REFRESH_MARGIN)) {
            return Ok(Arc::clone(&fresh.credentials));
        }
        let valid = before.current.as_ref().filter(|c| !stale(c, Duration::ZERO));
        let _fetching = match self.fetching.try_lock() {
            Ok(guard) => guard,
            // Another request is refreshing credentials that still work:
            // no need to wait for it.
            Err(_) if valid.is_some() => {
                return valid.map(|c| Arc::clone(&c.credentials)).ok_or_else(|| "no credentials".to_owned());
            }
            Err(_) => self.fetching.lock().await,
        };
        let now = self.snapshot();
        if now.generation != before.generation {
            // Another request fetched while this one waited: its outcome.
            return usable(&now);
        }
        match fetch(&self.client, source).await {
            Ok((credentials, expires)) => {
                let (what, _) = describe(source);
                info!(source = what, expires = ?expires.map(|e| e.to_string()), "fetched S3 credentials");
                let credentials = Arc::new(credentials);
                let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
                state.current = Some(Current { credentials: Arc::clone(&credentials), expires });
                state.generation += 1;
                state.last_error = None;
                Ok(credentials)
            }
            Err(error) => {
                let (what, _) = describe(source);
                warn!(source = what, %error, "cannot fetch S3 credentials; tried again on the next request");
                let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
                state.generation += 1;
                state.last_error = Some(error);
                let snapshot = Snapshot::of(&state);
                drop(state);
                usable(&snapshot)
            }
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot::of(&self.state.read().unwrap_or_else(PoisonError::into_inner))
    }
}

/// A copy of the state taken under the lock.
struct Snapshot {
    current: Option<Current>,
    generation: u64,
    last_error: Option<String>,
}

impl Snapshot {
    fn of(state: &State) -> Self {
        Self { current: state.current.clone(), generation: state.generation, last_error: state.last_error.clone() }
    }
}

/// The current credentials unless they have expired.
fn usable(snapshot: &Snapshot) -> Result<Arc<Credentials>, String> {
    match &snapshot.current {
        Some(current) if !stale(current, Duration::ZERO) => Ok(Arc::clone(&current.credentials)),
        _ => Err(snapshot.last_error.clone().unwrap_or_else(|| "no credentials".to_owned())),
    }
}

/// Whether `current` expires within `margin` from now.
fn stale(current: &Current, margin: Duration) -> bool {
    let Some(expires) = current.expires else {
        return false;
    };
    let margin = jiff::SignedDuration::try_from(margin).unwrap_or(jiff::SignedDuration::ZERO);
    Timestamp::now().checked_add(margin).map_or(true, |soon| soon >= expires)
}

/// Which service credentials come from, and its URL (the container
/// endpoint's path is left out: ECS's is specific to the task).
fn describe(source: &Source) -> (&'static str, &str) {
    let role = match source {
        Source::WebIdentity(web) => return ("STS AssumeRoleWithWebIdentity", origin_of(&web.sts_endpoint)),
        Source::Process(process) => return ("credential_process of the profile", &process.profile),
        Source::AssumeRole(assume, _) => return ("STS AssumeRole", origin_of(&assume.sts_endpoint)),
        Source::Role(role) => role,
    };
    match (&role.container_url, &role.imds_endpoint) {
        (Some(url), _) => ("container credentials endpoint", origin_of(url)),
        (None, Some(endpoint)) => ("EC2 instance metadata service", endpoint),
        (None, None) => ("none", ""),
    }
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> &str {
    let origin_end = url.find("://").map_or(0, |i| i + 3);
    url[origin_end..].find(['/', '?', '#']).map_or(url, |i| &url[..origin_end + i])
}

/// Fetches the role's credentials.
async fn fetch(client: &HttpsClient, source: &Source) -> Result<(Credentials, Option<Timestamp>), String> {
    let source = match source {
        Source::WebIdentity(web) => return assume_role_with_web_identity(client, web).await,
        Source::Process(p) => {
            return process::run(p.command.expose(), process::TIMEOUT)
                .await
                .map_err(|e| format!("credential_process of profile {:?} in {}: {e}", p.profile, p.file.display()));
        }
        Source::AssumeRole(assume, source) => {
            // The source's credentials, fetched (or refreshed) first when
            // they need to be.
            let signing = Box::pin(source.get())
                .await
                .map_err(|e| format!("AssumeRole of {} (profile {:?}): {e}", assume.role_arn, assume.profile))?;
            return assume_role(client, assume, &signing).await;
        }
        Source::Role(role) => role,
    };
    if let Some(url) = &source.container_url {
        let authorization = match (&source.container_token_file, &source.container_token) {
            (Some(path), _) => Some(read_token_file(path, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE").await?),
            (None, Some(token)) => Some(token.expose().to_owned()),
            (None, None) => None,
        };
        let headers: Vec<(&str, &str)> = authorization.iter().map(|t| ("authorization", t.as_str())).collect();
        let answer = request(client, Method::GET, url, &headers).await?;
        return parse_credentials(&answer);
    }
    let Some(endpoint) = &source.imds_endpoint else {
        return Err("no container credentials endpoint, and the EC2 instance metadata service is disabled".into());
    };
    let token = request(
        client,
        Method::PUT,
        &format!("{endpoint}/latest/api/token"),
        &[("x-aws-ec2-metadata-token-ttl-seconds", IMDS_TOKEN_TTL)],
    )
    .await?;
    let token = std::str::from_utf8(&token).map_err(|_| "the IMDSv2 token is not text".to_owned())?.trim();
    if token.is_empty() || token.len() > MAX_FIELD_BYTES || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("the IMDSv2 token is not usable".into());
    }
    let token_header = [("x-aws-ec2-metadata-token", token)];
    let base = format!("{endpoint}/latest/meta-data/iam/security-credentials/");
    let roles = request(client, Method::GET, &base, &token_header).await?;
    let role = role_name(&roles)?;
    let answer = request(client, Method::GET, &format!("{base}{role}"), &token_header).await?;
    parse_credentials(&answer)
}

/// The first role named in an IMDS listing.
fn role_name(listing: &[u8]) -> Result<String, String> {
    let text = std::str::from_utf8(listing).map_err(|_| "the role listing is not text".to_owned())?;
    let role = text.lines().map(str::trim).find(|l| !l.is_empty()).ok_or("the instance has no role")?;
    // IAM role names: letters, digits and `+=,.@_-`, at most 64.
    let valid = role.len() <= 64 && role.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
    if valid { Ok(role.to_owned()) } else { Err("the role listing names no valid role".into()) }
}

/// The trimmed text of a token file (read at every fetch: it is rotated);
/// `variable` names it in errors.
async fn read_token_file(path: &std::path::Path, variable: &str) -> Result<String, String> {
    use tokio::io::AsyncReadExt;
    let describe = |e: std::io::Error| format!("{variable} {}: {e}", path.display());
    let file = tokio::fs::File::open(path).await.map_err(describe)?;
    let mut raw = Vec::new();
    file.take(MAX_TOKEN_FILE_BYTES + 1).read_to_end(&mut raw).await.map_err(describe)?;
    if raw.len() as u64 > MAX_TOKEN_FILE_BYTES {
        return Err(format!("{variable} {}: too large", path.display()));
    }
    let token = String::from_utf8(raw).map_err(|_| format!("{variable} {}: not text", path.display()))?;
    Ok(token.trim().to_owned())
}

/// Assumes the role with the web identity token of the token file, read
/// again for every fetch (Kubernetes rotates it): an unsigned
/// `AssumeRoleWithWebIdentity` request to STS.
async fn assume_role_with_web_identity(
    client: &HttpsClient,
    web: &WebIdentityCredentials,
) -> Result<(Credentials, Option<Timestamp>), String> {
    let token = read_token_file(&web.token_file, "AWS_WEB_IDENTITY_TOKEN_FILE").await?;
    if token.is_empty() {
        return Err(format!("AWS_WEB_IDENTITY_TOKEN_FILE {}: empty", web.token_file.display()));
    }
    let session_name =
        web.session_name.clone().unwrap_or_else(|| format!("scalelite-{}", Timestamp::now().as_second()));
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("Action", "AssumeRoleWithWebIdentity")
        .append_pair("Version", "2011-06-15")
        .append_pair("RoleArn", &web.role_arn)
        .append_pair("RoleSessionName", &session_name)
        .append_pair("WebIdentityToken", &token)
        .finish();
    let url = format!("{}/", web.sts_endpoint);
    let headers = [("content-type", "application/x-www-form-urlencoded"), ("accept", "text/xml")];
    let what = format!("AssumeRoleWithWebIdentity of {}", web.role_arn);
    sts_call(client, &what, &url, &headers, form, "AssumeRoleWithWebIdentity").await
}

/// Posts `form` to STS at `url` and reads the credentials of its answer.
/// A refusal is told by STS's error code (`InvalidIdentityToken`,
/// `AccessDenied`, `ExpiredTokenException`, `SignatureDoesNotMatch`); its
/// message is not shown: it may quote the token's claims.
async fn sts_call(
    client: &HttpsClient,
    what: &str,
    url: &str,
    headers: &[(&str, &str)],
    form: String,
    action: &str,
) -> Result<(Credentials, Option<Timestamp>), String> {
    let (status, body) = send(client, Method::POST, url, headers, Bytes::from(form), STS_REQUEST_TIMEOUT)
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    if !status.is_success() {
        let code = sts_error_code(&body).map(|code| format!(" {code}")).unwrap_or_default();
        return Err(format!("{what}: {}: HTTP {}{code}", origin_of(url), status.as_u16()));
    }
    parse_sts_result(&body, action).map_err(|e| format!("{what}: {e}"))
}

/// Assumes the profile's role: an `AssumeRole` request to STS signed with
/// the source's credentials (`signing`).
async fn assume_role(
    client: &HttpsClient,
    assume: &AssumeRoleCredentials,
    signing: &Credentials,
) -> Result<(Credentials, Option<Timestamp>), String> {
    let session_name =
        assume.session_name.clone().unwrap_or_else(|| format!("scalelite-{}", Timestamp::now().as_second()));
    // The serializer is not `Send`: dropped before any `.await`.
    let form = {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("Action", "AssumeRole")
            .append_pair("Version", "2011-06-15")
            .append_pair("RoleArn", &assume.role_arn)
            .append_pair("RoleSessionName", &session_name);
        if let Some(external_id) = &assume.external_id {
            form.append_pair("ExternalId", external_id);
        }
        if let Some(seconds) = assume.duration_seconds {
            form.append_pair("DurationSeconds", &seconds.to_string());
        }
        form.finish()
    };
    let what = format!("AssumeRole of {} (profile {:?})", assume.role_arn, assume.profile);
    let url = format!("{}/", assume.sts_endpoint);
    let uri: http::Uri = url.parse().map_err(|_| format!("{what}: the STS endpoint is not a URL"))?;
    let (Some(authority), path) = (uri.authority(), uri.path()) else {
        return Err(format!("{what}: the STS endpoint has no host"));
    };
    let content_type = "application/x-www-form-urlencoded";
    let signer = sigv4::Signer {
        key: signing.key(),
        secret: signing.secret(),
        token: signing.token(),
        region: &assume.region,
        service: "sts",
    };
    let unsigned = sigv4::Unsigned {
        method: "POST",
        host: authority.as_str(),
        path,
        content_type: Some(content_type),
        body: form.as_bytes(),
    };
    let signed = signer.sign(&unsigned, Timestamp::now());
    let mut headers: Vec<(&str, &str)> = signed.iter().map(|(name, value)| (*name, value.as_str())).collect();
    headers.push(("accept", "text/xml"));
    sts_call(client, &what, &url, &headers, form, "AssumeRole").await
}

/// The `Error/Code` of an STS error answer (letters and digits only).
fn sts_error_code(answer: &[u8]) -> Option<String> {
    let root = scalelite_core::xml::parse(answer).ok()?;
    let code = root.text_at("Error/Code")?;
    let code: String = code.trim().chars().filter(char::is_ascii_alphanumeric).take(64).collect();
    (!code.is_empty()).then_some(code)
}

/// The credentials of the answer to the STS `action`
/// (`<action>Response/<action>Result/Credentials`). Errors never hold the
/// values.
fn parse_sts_result(answer: &[u8], action: &str) -> Result<(Credentials, Option<Timestamp>), String> {
    if answer.len() > MAX_ANSWER_BYTES {
        return Err("the STS answer is too large".into());
    }
    let root = scalelite_core::xml::parse(answer).map_err(|_| "the STS answer is not XML".to_owned())?;
    if root.name.strip_suffix("Response") != Some(action) {
        return Err(format!("the STS answer is not an {action}Response"));
    }
    let credentials =
        root.at_path(&format!("{action}Result/Credentials")).ok_or("the STS answer holds no Credentials")?;
    let field = |name: &str| -> Result<String, String> {
        let element = credentials.child(name).ok_or_else(|| format!("no {name} in the STS answer"))?;
        let value = element.text();
        let value = value.trim();
        if element.elements().next().is_some()
            || value.is_empty()
            || value.len() > MAX_FIELD_BYTES
            || !value.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(format!("{name} in the STS answer is not usable"));
        }
        Ok(value.to_owned())
    };
    let (key, secret, token) = (field("AccessKeyId")?, field("SecretAccessKey")?, field("SessionToken")?);
    let expires = field("Expiration")?
        .parse::<Timestamp>()
        .map_err(|_| "Expiration in the STS answer is not a time".to_owned())?;
    Ok((Credentials::new_with_token(key, secret, token), Some(expires)))
}

/// One bounded request with an empty body; the body of a 2xx answer.
async fn request(client: &HttpsClient, method: Method, url: &str, headers: &[(&str, &str)]) -> Result<Bytes, String> {
    let shown = if url.contains("/latest/") { url } else { origin_of(url) };
    match send(client, method, url, headers, Bytes::new(), REQUEST_TIMEOUT).await {
        Ok((status, body)) if status.is_success() => Ok(body),
        // The body of an error may echo what was sent: only the status.
        Ok((status, _)) => Err(format!("{shown}: HTTP {}", status.as_u16())),
        Err(e) => Err(e),
    }
}

/// One request bounded in time and size: the answer's status and body.
async fn send(
    client: &HttpsClient,
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
    timeout: Duration,
) -> Result<(http::StatusCode, Bytes), String> {
    let mut builder = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    // The URL is from the configuration; a bad header value (a token with
    // a newline) is reported without the value.
    // Errors name the service (and IMDS's well-known paths), not the
    // container endpoint's task-specific path.
    let shown = if url.contains("/latest/") { url } else { origin_of(url) };
    let request = builder.body(Full::new(body)).map_err(|_| format!("{shown}: invalid request"))?;
    let outcome = tokio::time::timeout(timeout, async {
        let response = client.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body =
            Limited::new(response.into_body(), MAX_ANSWER_BYTES).collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok::<_, String>((status, body))
    })
    .await;
    match outcome {
        Err(_) => Err(format!("{shown}: no answer within {timeout:?}")),
        Ok(Err(e)) => Err(format!("{shown}: {e}")),
        Ok(Ok(answer)) => Ok(answer),
    }
}

/// The credentials of a metadata answer: `AccessKeyId`, `SecretAccessKey`,
/// `Token` and `Expiration` (RFC 3339). Errors never hold the values.
pub(super) fn parse_credentials(answer: &[u8]) -> Result<(Credentials, Option<Timestamp>), String> {
    if answer.len() > MAX_ANSWER_BYTES {
        return Err("the credentials answer is too large".into());
    }
    let json: serde_json::Value =
        serde_json::from_slice(answer).map_err(|_| "the credentials answer is not JSON".to_owned())?;
    let object = json.as_object().ok_or("the credentials answer is not a JSON object")?;
    if let Some(code) = object.get("Code").and_then(|c| c.as_str())
        && code != "Success"
    {
        let code: String = code.chars().filter(|c| c.is_ascii_alphanumeric()).take(64).collect();
        return Err(format!("the credentials answer says {code}"));
    }
    json_credentials(object, "the credentials answer", "Token")
}

/// The credentials of a JSON object as the metadata services and a
/// `credential_process` print them: `AccessKeyId`, `SecretAccessKey`, the
/// session token under `token_name`, and `Expiration` (RFC 3339). `what`
/// names the object in errors, which never hold the values.
pub(super) fn json_credentials(
    object: &serde_json::Map<String, serde_json::Value>,
    what: &str,
    token_name: &str,
) -> Result<(Credentials, Option<Timestamp>), String> {
    let field = |name: &str| -> Result<Option<&str>, String> {
        match object.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(value)) => {
                if value.is_empty() || value.len() > MAX_FIELD_BYTES || !value.bytes().all(|b| b.is_ascii_graphic()) {
                    Err(format!("{name} in {what} is not usable"))
                } else {
                    Ok(Some(value))
                }
            }
            Some(_) => Err(format!("{name} in {what} is not a string")),
        }
    };
    let key = field("AccessKeyId")?.ok_or_else(|| format!("no AccessKeyId in {what}"))?;
    let secret = field("SecretAccessKey")?.ok_or_else(|| format!("no SecretAccessKey in {what}"))?;
    let token = field(token_name)?;
    let expires = match field("Expiration")? {
        None => None,
        Some(raw) => {
            Some(raw.parse::<Timestamp>().map_err(|_| format!("Expiration in {what} is not an RFC 3339 time"))?)
        }
    };
    let credentials = match token {
        Some(token) => Credentials::new_with_token(key, secret, token),
        None => Credentials::new(key, secret),
    };
    Ok((credentials, expires))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_answers_are_parsed() {
        let answer = br#"{"Code":"Success","LastUpdated":"2026-01-01T00:00:00Z","Type":"AWS-HMAC",
            "AccessKeyId":"ASIAEXAMPLE","SecretAccessKey":"s3cr3t/+x","Token":"IQoJ/tok==",
            "Expiration":"2026-12-06T18:00:00Z"}"#;
        let (credentials, expires) = parse_credentials(answer).unwrap();
        assert_eq!(
            (credentials.key(), credentials.secret(), credentials.token()),
            ("ASIAEXAMPLE", "s3cr3t/+x", Some("IQoJ/tok=="))
        );
        assert_eq!(expires.unwrap().to_string(), "2026-12-06T18:00:00Z");
        // ECS's answer has no Code; a missing Expiration never expires.
        let (credentials, expires) =
            parse_credentials(br#"{"AccessKeyId":"A","SecretAccessKey":"B","Token":"C","RoleArn":"x"}"#).unwrap();
        assert_eq!((credentials.key(), credentials.token(), expires), ("A", Some("C"), None));
    }

    #[test]
    fn hostile_credentials_answers_are_refused_without_echoing_them() {
        let big = format!(r#"{{"AccessKeyId":"A","SecretAccessKey":"{}"}}"#, "x".repeat(MAX_ANSWER_BYTES));
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let long_field = format!(r#"{{"AccessKeyId":"A","SecretAccessKey":"{}"}}"#, "x".repeat(MAX_FIELD_BYTES + 1));
        let cases: Vec<&[u8]> = vec![
            b"",
            b"not json",
            b"[]",
            deep.as_bytes(),
            big.as_bytes(),
            long_field.as_bytes(),
            br#"{"Code":"AssumeRoleUnauthorizedAccess","AccessKeyId":"A","SecretAccessKey":"B"}"#,
            br#"{"SecretAccessKey":"very-secret"}"#,
            br#"{"AccessKeyId":"A"}"#,
            br#"{"AccessKeyId":"A","SecretAccessKey":""}"#,
            br#"{"AccessKeyId":"A","SecretAccessKey":"very secret"}"#,
            br#"{"AccessKeyId":"A","SecretAccessKey":"very-secret\n"}"#,
            br#"{"AccessKeyId":7,"SecretAccessKey":"very-secret"}"#,
            br#"{"AccessKeyId":"A","SecretAccessKey":"very-secret","Expiration":"tomorrow"}"#,
            br#"{"AccessKeyId":"A","SecretAccessKey":"very-secret","Token":["very-secret"]}"#,
        ];
        for answer in cases {
            let error =
                parse_credentials(answer).err().unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(answer)));
            assert!(!error.contains("very") && error.len() < 200, "{error}");
        }
    }

    /// An `AssumeRoleWithWebIdentity` answer as STS writes it.
    fn sts_answer(credentials: &str) -> String {
        format!(
            r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>system:serviceaccount:bbb:scalelite</SubjectFromWebIdentityToken>
    <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/scalelite/s</Arn></AssumedRoleUser>
    <Credentials>{credentials}</Credentials>
    <Provider>arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/X</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"#
        )
    }

    #[test]
    fn sts_answers_are_parsed() {
        let answer = sts_answer(
            "<SessionToken>AQoDYXdz/Ey+J=</SessionToken><SecretAccessKey>wJalr/K7+x</SecretAccessKey>\
             <Expiration>2026-12-06T19:45:33.123Z</Expiration><AccessKeyId>ASIASTS</AccessKeyId>",
        );
        let (credentials, expires) = parse_sts_result(answer.as_bytes(), "AssumeRoleWithWebIdentity").unwrap();
        assert_eq!(
            (credentials.key(), credentials.secret(), credentials.token()),
            ("ASIASTS", "wJalr/K7+x", Some("AQoDYXdz/Ey+J="))
        );
        assert_eq!(expires.unwrap().to_string(), "2026-12-06T19:45:33.123Z");
        let error = br#"<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>
            <Code>InvalidIdentityToken</Code><Message>very secret claims</Message></Error></ErrorResponse>"#;
        assert_eq!(sts_error_code(error).as_deref(), Some("InvalidIdentityToken"));
        assert_eq!(
            sts_error_code(b"<ErrorResponse><Error><Code>a<b/>!&amp;</Code></Error></ErrorResponse>"),
            Some("a".into())
        );
        for junk in [&b""[..], b"not xml", b"<Error><Code></Code></Error>", b"<ErrorResponse/>"] {
            assert_eq!(sts_error_code(junk), None);
        }
    }

    #[test]
    fn assume_role_answers_are_parsed() {
        let answer = r#"<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <SourceIdentity>Alice</SourceIdentity>
    <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/demo/s</Arn><AssumedRoleId>ARO:s</AssumedRoleId></AssumedRoleUser>
    <Credentials><SessionToken>IQoJb3/Jp+Z2=</SessionToken><SecretAccessKey>wJalr/K7+y</SecretAccessKey>
      <Expiration>2026-12-06T20:00:00Z</Expiration><AccessKeyId>ASIAROLE</AccessKeyId></Credentials>
    <PackedPolicySize>6</PackedPolicySize>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId></ResponseMetadata>
</AssumeRoleResponse>"#;
        let (credentials, expires) = parse_sts_result(answer.as_bytes(), "AssumeRole").unwrap();
        assert_eq!(
            (credentials.key(), credentials.secret(), credentials.token()),
            ("ASIAROLE", "wJalr/K7+y", Some("IQoJb3/Jp+Z2="))
        );
        assert_eq!(expires.unwrap().to_string(), "2026-12-06T20:00:00Z");
        // Another action's answer is not taken for it.
        assert!(parse_sts_result(answer.as_bytes(), "AssumeRoleWithWebIdentity").is_err());
        let web = answer.replace("AssumeRoleResponse", "AssumeRoleWithWebIdentityResponse");
        assert!(parse_sts_result(web.as_bytes(), "AssumeRole").is_err());
    }

    #[test]
    fn hostile_sts_answers_are_refused_without_echoing_them() {
        let good = |except: &str| {
            ["AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"]
                .iter()
                .filter(|name| **name != except)
                .map(|name| match *name {
                    "Expiration" => "<Expiration>2026-12-06T19:45:33Z</Expiration>".to_owned(),
                    name => format!("<{name}>very-secret</{name}>"),
                })
                .collect::<String>()
        };
        let deep = format!("{}{}", "<a>".repeat(10_000), "</a>".repeat(10_000));
        let big = sts_answer(&format!("{}<Pad>{}</Pad>", good(""), "x".repeat(MAX_ANSWER_BYTES)));
        let long = sts_answer(&format!(
            "{}<SessionToken>{}</SessionToken>",
            good("SessionToken"),
            "v".repeat(MAX_FIELD_BYTES + 1)
        ));
        let cases: Vec<String> = vec![
            String::new(),
            "very-secret".into(),
            "{\"AccessKeyId\":\"very-secret\"}".into(),
            deep,
            big,
            long,
            format!(
                "<!DOCTYPE x [<!ENTITY e \"very-secret\">]><AssumeRoleWithWebIdentityResponse>&e;</AssumeRoleWithWebIdentityResponse>"
            ),
            format!(
                "<OtherResponse><AssumeRoleWithWebIdentityResult><Credentials>{}</Credentials></AssumeRoleWithWebIdentityResult></OtherResponse>",
                good("")
            ),
            "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult/></AssumeRoleWithWebIdentityResponse>"
                .into(),
            sts_answer(&good("AccessKeyId")),
            sts_answer(&good("SecretAccessKey")),
            sts_answer(&good("SessionToken")),
            sts_answer(&good("Expiration")),
            sts_answer(&format!("{}<Expiration>very-secret</Expiration>", good("Expiration"))),
            sts_answer(&format!("{}<SessionToken>very secret</SessionToken>", good("SessionToken"))),
            sts_answer(&format!("{}<SessionToken>very-secret&#10;x</SessionToken>", good("SessionToken"))),
            sts_answer(&format!("{}<SessionToken></SessionToken>", good("SessionToken"))),
            sts_answer(&format!("{}<SessionToken>very-<b>secret</b></SessionToken>", good("SessionToken"))),
            sts_answer(&good("")).replace("</Credentials>", ""),
            format!("<AssumeRoleWithWebIdentityResponse>{}", "\u{0}"),
        ];
        for answer in &cases {
            let error = parse_sts_result(answer.as_bytes(), "AssumeRoleWithWebIdentity")
                .err()
                .unwrap_or_else(|| panic!("{answer}"));
            assert!(!error.contains("very") && error.len() < 200, "{error}");
        }
        // Invalid UTF-8.
        assert!(parse_sts_result(&[0xff, 0xfe, b'<'], "AssumeRoleWithWebIdentity").is_err());
    }

    #[test]
    fn origins_leave_paths_out() {
        assert_eq!(origin_of("http://169.254.170.2/v2/credentials/abc"), "http://169.254.170.2");
        assert_eq!(origin_of("https://h.example:8443?x"), "https://h.example:8443");
        assert_eq!(origin_of("http://[fd00:ec2::23]"), "http://[fd00:ec2::23]");
    }

    #[test]
    fn role_listings_name_one_valid_role() {
        assert_eq!(role_name(b"scalelite-role\n").unwrap(), "scalelite-role");
        assert_eq!(role_name(b"\n a+b=c,d.e@f_g-h \nother").unwrap(), "a+b=c,d.e@f_g-h");
        for bad in [&b""[..], b"\n\n", b"../../latest", b"role/x", b"r?x", &[0xff, 0xfe], &[b'a'; 65]] {
            assert!(role_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn credentials_near_their_expiration_are_stale() {
        let credentials = Arc::new(Credentials::new("a", "b"));
        let at = |secs: i64| Current {
            credentials: Arc::clone(&credentials),
            expires: Some(Timestamp::now().checked_add(jiff::SignedDuration::from_secs(secs)).unwrap()),
        };
        assert!(!stale(&at(3600), REFRESH_MARGIN));
        assert!(stale(&at(60), REFRESH_MARGIN));
        assert!(!stale(&at(60), Duration::ZERO));
        assert!(stale(&at(-1), Duration::ZERO));
        assert!(!stale(&Current { credentials, expires: None }, REFRESH_MARGIN));
    }
}
