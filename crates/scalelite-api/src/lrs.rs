//! `meta_secret-lrs-payload` (reference §16.3, multitenant only): a tenant
//! with an `lrs_endpoint` gets its LRS credentials handed to the BBB server
//! that hosts its meeting, encrypted with that server's secret
//! (`scalelite_core::lrs`).
//!
//! With `lrs_username` set the payload carries basic credentials; otherwise
//! an access token is requested from the tenant's Keycloak (password grant)
//! on every create, as Scalelite does. Tokens are deliberately not cached:
//! BBB uses the token for the whole meeting, so a cached token would only
//! shorten the time it stays valid. Any failure leaves the parameter out
//! and is logged without credentials.

use std::time::Instant;

use bytes::Bytes;
use http::{HeaderValue, Uri, header};
use scalelite_core::Params;
use scalelite_core::lrs::{self, LrsAuth};
use scalelite_store::{Server, Tenant};
use tracing::{debug, warn};

use crate::outbound::http_url;
use crate::state::AppState;
use crate::tenancy::ResolvedTenant;

/// The create parameter carrying the payload.
pub(crate) const PARAM: &str = "meta_secret-lrs-payload";

/// Sets [`PARAM`] for a tenant with an LRS endpoint; leaves `params` as
/// they are when there is none or the payload cannot be made.
pub(crate) async fn add_payload(
    state: &AppState,
    tenant: Option<&ResolvedTenant>,
    server: &Server,
    params: &mut Params,
) {
    let Some(tenant) = tenant.map(|t| &t.tenant) else { return };
    let Some(endpoint) = tenant.lrs_field("lrs_endpoint") else { return };
    let token;
    let auth = match tenant.lrs_field("lrs_username") {
        Some(username) => LrsAuth::Basic { username, password: tenant.lrs.get("lrs_password").map(String::as_str) },
        None => match keycloak_token(state, tenant).await {
            Ok(fetched) => {
                token = fetched;
                LrsAuth::Token(&token)
            }
            Err(reason) => {
                warn!(tenant.id = %tenant.id, reason, "no LRS payload: cannot get a Keycloak token");
                return;
            }
        },
    };
    let json = lrs::payload_json(endpoint, auth);
    let secret = server.secret.clone();
    // PBKDF2 with 10 000 rounds takes milliseconds: off the async threads.
    match tokio::task::spawn_blocking(move || lrs::encrypt(json.as_bytes(), &secret)).await {
        Ok(payload) => params.set(PARAM, payload),
        Err(error) => warn!(tenant.id = %tenant.id, %error, "no LRS payload: encryption failed"),
    }
}

/// Keycloak's password grant: form `client_id`, `client_secret`,
/// `username`, `password`, `grant_type=password` posted to the path of
/// `kc_token_url` (its query is dropped, as in Scalelite); HTTP 200 with a
/// JSON `access_token` is required.
async fn keycloak_token(state: &AppState, tenant: &Tenant) -> Result<String, String> {
    let raw = tenant.lrs_field("kc_token_url").ok_or("the tenant has no kc_token_url")?;
    let url = http_url(raw).ok_or("kc_token_url is not an http(s) URL")?;
    let url = Uri::builder()
        .scheme(url.scheme_str().unwrap_or("https"))
        .authority(url.authority().map(|a| a.as_str()).unwrap_or_default())
        .path_and_query(url.path())
        .build()
        .map_err(|e| format!("kc_token_url: {e}"))?;
    let field = |name: &str| tenant.lrs.get(name).map_or("", String::as_str);
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", field("kc_client_id"))
        .append_pair("client_secret", field("kc_client_secret"))
        .append_pair("username", field("kc_username"))
        .append_pair("password", field("kc_password"))
        .append_pair("grant_type", "password")
        .finish();
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded")),
        (header::ACCEPT, HeaderValue::from_static("application/json")),
        (header::USER_AGENT, HeaderValue::from_static(USER_AGENT)),
    ];
    let started = Instant::now();
    let answer = state.outbound.post(&url, &headers, Bytes::from(form)).await?;
    debug!(tenant.id = %tenant.id, status = answer.status, elapsed_ms = started.elapsed().as_millis() as u64, "Keycloak token request");
    if answer.status != 200 {
        return Err(format!("Keycloak answered HTTP {}", answer.status));
    }
    let reply: serde_json::Value =
        serde_json::from_slice(&answer.body).map_err(|_| "Keycloak's answer is not JSON".to_owned())?;
    match reply.get("access_token").and_then(serde_json::Value::as_str) {
        Some(token) if !token.is_empty() => Ok(token.to_owned()),
        _ => Err("Keycloak's answer has no access_token".into()),
    }
}

const USER_AGENT: &str = concat!("scalelite-api/", env!("CARGO_PKG_VERSION"));
