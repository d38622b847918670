//! Analytics callbacks (reference §16.2).
//!
//! **create**: a `meta_analytics-callback-url` is remembered for the
//! meeting, together with the creating tenant, and replaced by this
//! balancer's `…/bigbluebutton/api/analytics_callback`, so BBB posts the
//! meeting's analytics here. The URL lives in the meeting store (for the
//! meeting TTL plus a week; with Redis, `analytics_callback:<meetingID>`)
//! because the create path never touches the recordings store; Scalelite
//! keeps it in `callback_data`, which the recordings store still reads as
//! a fallback for meetings created by Scalelite.
//!
//! **`POST /bigbluebutton/api/analytics_callback`** (from BBB, no
//! checksum): in multitenant mode the host must name a tenant (else
//! `checksumError`). Everything else that goes wrong is ignored with HTTP
//! 204, as in Scalelite: the `Authorization: Bearer` token must be HS512
//! signed with the secret of a configured BBB server, the JSON body's
//! `meeting_id` must have a remembered URL, and that URL must belong to
//! the tenant the request came for (a tenant cannot have another tenant's
//! callback fired). The body, plus `customer` (the tenant name, or
//! `scalelite`; with meeting ids scoped per tenant, `meeting_id` as the
//! front-end sent it), is then posted as JSON to the front-end with an HS512
//! bearer token (`{"exp": now + 24 h}`) signed with the first tenant
//! secret (load-balancer secret without multitenancy), the next secret
//! after a non-2xx answer.
//!
//! Unlike Scalelite, BBB gets its 204 at once and the relay runs in the
//! background: a round over the secrets that fails with a transport error,
//! a timeout or a 5xx is repeated after `ANALYTICS_CALLBACK_RETRY_INTERVAL`
//! and again after twice that (three rounds at most); a round refused with
//! 4xx only is not repeated.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, StatusCode, Uri, header};
use scalelite_bbb_client::redacted_url;
use scalelite_core::{MeetingId, Params, Secret, TenantId};
use scalelite_store::AnalyticsCallback;
use serde_json::Value;
use tracing::{debug, info, warn};

use crate::outbound::{Outbound, http_url};
use crate::response::ApiError;
use crate::state::AppState;
use crate::tenancy::ResolvedTenant;

/// The create parameter naming the front-end's analytics endpoint.
pub(crate) const PARAM: &str = "meta_analytics-callback-url";

/// The path BBB is sent to instead.
pub(crate) const PATH: &str = "/bigbluebutton/api/analytics_callback";

/// How long a remembered URL outlives the meeting's TTL: BBB posts the
/// analytics after the meeting ended, possibly behind a processing queue.
const GRACE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Rounds over the secrets before a delivery is given up.
const ROUNDS: u32 = 3;

/// Lifetime of the token sent to the front-end (Scalelite: 24 h).
const TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// How long the fallback lookup in the recordings store may take.
const DATABASE_LOOKUP_TIMEOUT: Duration = Duration::from_secs(3);

/// Where BBB should post analytics, as far as the request tells: `None`
/// when `URL_HOST` is set (the URL is built from it, as in Scalelite),
/// else the origin the create was sent to (scheme from the proxy headers,
/// host with the tenant's sub-domain). Scalelite builds a broken
/// `https:///…` URL without `URL_HOST`.
pub(crate) fn request_origin(state: &AppState, headers: &HeaderMap) -> Option<String> {
    state.config.url_host.is_none().then(|| crate::origin::origin(headers))
}

/// The URL that replaces the front-end's in the forwarded create.
fn balancer_url(url_host: Option<&str>, origin: Option<&str>, tenant: Option<&ResolvedTenant>) -> String {
    balancer_origin(url_host, origin, tenant) + PATH
}

/// The origin BBB calls the balancer back on: `https://<tenant>.<URL_HOST>`
/// (or `https://<URL_HOST>`) when `URL_HOST` is set, else the create's own
/// origin.
pub(crate) fn balancer_origin(url_host: Option<&str>, origin: Option<&str>, tenant: Option<&ResolvedTenant>) -> String {
    match (url_host, tenant) {
        (Some(host), Some(tenant)) => format!("https://{}.{host}", tenant.name()),
        (Some(host), None) => format!("https://{host}"),
        (None, _) => origin.unwrap_or("https://localhost").to_owned(),
    }
}

/// The create's part: remembers the front-end's URL and points BBB here.
pub(crate) async fn take_url(
    state: &AppState,
    id: &MeetingId,
    tenant: Option<&ResolvedTenant>,
    origin: Option<&str>,
    params: &mut Params,
) -> Result<(), ApiError> {
    let Some(url) = params.get_present(PARAM).map(str::to_owned) else {
        return Ok(());
    };
    let callback = AnalyticsCallback { url, tenant_id: tenant.map(|t| t.id().clone()) };
    state.store.remember_analytics_callback(id, &callback, state.config.meeting_ttl + GRACE).await?;
    params.set(PARAM, balancer_url(state.config.url_host.as_deref(), origin, tenant));
    Ok(())
}

/// `POST /bigbluebutton/api/analytics_callback`.
pub(crate) async fn analytics_callback(State(state): State<AppState>, request: Request<Body>) -> Response {
    let (parts, body) = request.into_parts();
    let tenant = match state.request_tenant(&parts.headers, &parts.uri).await {
        Ok(tenant) => tenant,
        Err(error) => return error.into_response(),
    };
    // The token is checked before the body is read.
    let accepted = match authorize(&state, &parts.headers).await {
        Ok(()) => match crate::body::read(body, &parts.headers, state.authenticated_body()).await {
            Ok(body) => accept(&state, tenant.as_deref(), &body.bytes).await,
            Err(error) => Err(format!("the body could not be read: {}", error.message())),
        },
        Err(reason) => Err(reason),
    };
    match accepted {
        Ok(delivery) => match state.outbound.delivery_slot() {
            Some(slot) => {
                let outbound = state.outbound.clone();
                tokio::spawn(async move {
                    delivery.run(&outbound).await;
                    drop(slot);
                });
            }
            None => {
                warn!(meeting.id = %delivery.meeting_id, "analytics callback dropped: too many deliveries in flight")
            }
        },
        Err(reason) => info!(reason, "analytics callback ignored"),
    }
    StatusCode::NO_CONTENT.into_response()
}

/// An accepted callback, ready to be relayed.
#[derive(Debug)]
struct Delivery {
    meeting_id: String,
    url: Uri,
    body: Bytes,
    secrets: Vec<Secret>,
}

/// Checks that a callback's bearer token is signed by one of the servers.
async fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), String> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or("no bearer token")?;
    let servers = state.store.servers().await.map_err(|e| format!("cannot read the servers: {e}"))?;
    if !scalelite_core::jwt::verify_hs512(token, servers.iter().map(|s| &s.secret)) {
        return Err("the token is not signed by a known server".into());
    }
    Ok(())
}

/// Checks an authorized callback from BBB; what to relay, or why nothing.
async fn accept(state: &AppState, tenant: Option<&ResolvedTenant>, body: &[u8]) -> Result<Delivery, String> {
    let Ok(Value::Object(mut fields)) = serde_json::from_slice::<Value>(body) else {
        return Err("the body is not a JSON object".into());
    };
    let meeting_id = match fields.get("meeting_id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        Some(Value::Number(id)) => id.to_string(),
        _ => return Err("the body has no meeting_id".into()),
    };
    let callback = remembered(state, &meeting_id).await?;
    let tenant_id = tenant.map(ResolvedTenant::id);
    if let Some(owner) = &callback.tenant_id
        && Some(owner) != tenant_id
    {
        return Err(format!("meeting {meeting_id:?} belongs to another tenant"));
    }
    if callback.tenant_id.is_none() && tenant_id.is_some() && !callback.from_database {
        return Err(format!("meeting {meeting_id:?} was created without a tenant"));
    }
    let url = http_url(&callback.url).ok_or_else(|| format!("the URL of meeting {meeting_id:?} is not http(s)"))?;
    let secrets = match tenant {
        Some(tenant) => tenant.secrets.clone(),
        None => state.config.secrets.clone(),
    };
    if secrets.is_empty() {
        return Err("no secret to sign the relayed callback with".into());
    }
    // Scoped meeting ids: the front-end gets its own id back.
    if let Some(scope) = state.config.meeting_scope(callback.tenant_id.as_ref())
        && let Some(own) = scalelite_core::scope::unscoped(scope.as_str(), &meeting_id)
    {
        fields.insert("meeting_id".into(), Value::from(own));
    }
    let customer = tenant.map_or("scalelite", ResolvedTenant::name);
    fields.insert("customer".into(), Value::from(customer));
    let body = Bytes::from(Value::Object(fields).to_string());
    Ok(Delivery { meeting_id, url, body, secrets })
}

/// A remembered URL and whether it came from Scalelite's `callback_data`.
struct Remembered {
    url: String,
    tenant_id: Option<TenantId>,
    from_database: bool,
}

/// The URL remembered by our create, else (meetings created by Scalelite
/// before a migration) the one in the recordings store's `callback_data`.
async fn remembered(state: &AppState, meeting_id: &str) -> Result<Remembered, String> {
    let stored = state.store.analytics_callback(meeting_id).await.map_err(|e| format!("cannot read the URL: {e}"))?;
    if let Some(AnalyticsCallback { url, tenant_id }) = stored {
        return Ok(Remembered { url, tenant_id, from_database: false });
    }
    let unknown = || format!("no analytics callback URL for meeting {meeting_id:?}");
    let Some(database) = &state.recordings else { return Err(unknown()) };
    match tokio::time::timeout(DATABASE_LOOKUP_TIMEOUT, database.analytics_callback_url(meeting_id)).await {
        Ok(Ok(Some(url))) => Ok(Remembered { url, tenant_id: None, from_database: true }),
        Ok(Ok(None)) => Err(unknown()),
        Ok(Err(e)) => Err(format!("cannot read callback_data: {e}")),
        Err(_) => Err("callback_data did not answer in time".into()),
    }
}

/// The result of one round over the secrets.
enum Round {
    Delivered(u16),
    /// Worth another round (transport error, timeout, 5xx).
    Failed(String),
    /// Refused with 4xx (or another non-2xx below 500) by every secret.
    Refused(String),
}

impl Delivery {
    async fn run(self, outbound: &Outbound) {
        let url = redacted_url(&self.url.to_string());
        let mut pause = outbound.analytics_retry;
        for round in 1..=ROUNDS {
            match self.round(outbound).await {
                Round::Delivered(status) => {
                    info!(meeting.id = %self.meeting_id, %url, status, round, "analytics callback relayed");
                    return;
                }
                Round::Refused(statuses) => {
                    warn!(meeting.id = %self.meeting_id, %url, statuses, "analytics callback refused by the front-end");
                    return;
                }
                Round::Failed(error) if round < ROUNDS => {
                    debug!(meeting.id = %self.meeting_id, %url, error, round, retry_in = ?pause, "analytics callback failed; will retry");
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                }
                Round::Failed(error) => {
                    warn!(meeting.id = %self.meeting_id, %url, error, rounds = ROUNDS, "analytics callback given up");
                }
            }
        }
    }

    async fn round(&self, outbound: &Outbound) -> Round {
        let exp = (SystemTime::now() + TOKEN_LIFETIME).duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut statuses = Vec::new();
        for secret in &self.secrets {
            let token = scalelite_core::jwt::analytics_callback(exp, secret);
            let Ok(authorization) = HeaderValue::try_from(format!("Bearer {token}")) else {
                return Round::Refused("cannot build the token".into());
            };
            let headers = [
                (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
                (header::AUTHORIZATION, authorization),
                (header::USER_AGENT, HeaderValue::from_static("BigBlueButton Analytics Callback")),
            ];
            match outbound.post(&self.url, &headers, self.body.clone()).await {
                Ok(answer) if (200..300).contains(&answer.status) => return Round::Delivered(answer.status),
                Ok(answer) => statuses.push(answer.status),
                Err(error) => return Round::Failed(error),
            }
        }
        let listed = statuses.iter().map(u16::to_string).collect::<Vec<_>>().join(", ");
        if statuses.iter().any(|s| *s >= 500) {
            Round::Failed(format!("HTTP {listed}"))
        } else {
            Round::Refused(format!("HTTP {listed}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balancer_urls() {
        assert_eq!(
            balancer_url(Some("sl.example.com"), None, None),
            "https://sl.example.com/bigbluebutton/api/analytics_callback"
        );
        let tenant = ResolvedTenant::new(scalelite_store::TenantRecord {
            tenant: scalelite_store::Tenant::new("bn", "s"),
            settings: Vec::new(),
        });
        assert_eq!(
            balancer_url(Some("sl.example.com"), None, Some(&tenant)),
            "https://bn.sl.example.com/bigbluebutton/api/analytics_callback"
        );
        assert_eq!(
            balancer_url(None, Some("http://bn.lb.test:3000"), Some(&tenant)),
            "http://bn.lb.test:3000/bigbluebutton/api/analytics_callback"
        );
    }
}
