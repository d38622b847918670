//! The management API at `/scalelite/api/*` (reference §13): servers and
//! tenants, plus drains with notice (`drainServer`, `getDrains`) and the
//! autoscaler's `capacity` report, which Scalelite does not have (the tenant calls answer "Multitenancy is disabled" unless
//! `MULTITENANCY_ENABLED=true`).
//!
//! Checksums use the management secrets when `MANAGEMENT_API_SECRETS` is
//! set (so a front-end's secret cannot replace servers), else the
//! load-balancer secrets. The check string is the call name + the raw query
//! without `checksum` (+ the raw JSON body, which Scalelite never signs; a
//! client may include it, and with `MANAGEMENT_API_SIGNED_BODY=true` must).
//! Checksum and content-type failures are XML (as in Scalelite); everything
//! else is JSON.

mod servers;
mod tenants;

use axum::Router;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, Method, Request, StatusCode, header};
use scalelite_core::checksum::{self, CheckString, find_checksum};
use scalelite_core::error::refused;
use scalelite_core::{BbbError, Params};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tracing::{debug, warn};

use crate::api::Call;
use crate::api::unsupported::unsupported;
use crate::body::BodyLimits;
use crate::state::AppState;

/// Largest management request body: a server or tenant object is a few
/// hundred bytes.
pub(crate) const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The `checksum` of a JSON body; every other member is skipped unread.
#[derive(Deserialize)]
struct ChecksumField {
    checksum: Option<String>,
}

/// Where the management API lives.
const PREFIX: &str = "/scalelite/api";

/// Every management call (the `methods` of [`Call`] ignore the state).
pub(crate) const CALLS: [Call; 14] = [
    Call { name: "getServers", methods: |_| get(servers::get_servers) },
    Call { name: "getServerInfo", methods: |_| get(servers::get_server_info) },
    Call { name: "addServer", methods: |_| post(servers::add_server) },
    Call { name: "updateServer", methods: |_| post(servers::update_server) },
    Call { name: "deleteServer", methods: |_| post(servers::delete_server) },
    Call { name: "panicServer", methods: |_| post(servers::panic_server) },
    Call { name: "drainServer", methods: |_| post(servers::drain_server) },
    Call { name: "getDrains", methods: |_| get(servers::get_drains) },
    Call { name: "capacity", methods: |_| get(servers::capacity) },
    Call { name: "getTenants", methods: |_| get(tenants::get_tenants) },
    Call { name: "getTenantInfo", methods: |_| get(tenants::get_tenant_info) },
    Call { name: "addTenant", methods: |_| post(tenants::add_tenant) },
    Call { name: "updateTenant", methods: |_| post(tenants::update_tenant) },
    Call { name: "deleteTenant", methods: |_| post(tenants::delete_tenant) },
];

/// The management routes: every call of [`CALLS`] under [`PREFIX`], each
/// also with a `.json` suffix.
pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    CALLS.iter().fold(Router::new(), |router, call| {
        let methods = (call.methods)(state).fallback(unsupported);
        router
            .route(&format!("{PREFIX}/{}", call.name), methods.clone())
            .route(&format!("{PREFIX}/{}.json", call.name), methods)
    })
}

/// The `call` label of a route of [`routes`]: the call's name; `None` for
/// any other path.
pub(crate) fn call_label(route: &str) -> Option<&'static str> {
    let name = route.strip_prefix(PREFIX)?.strip_prefix('/')?;
    let name = name.strip_suffix(".json").unwrap_or(name);
    CALLS.iter().find(|call| call.name == name).map(|call| call.name)
}

/// A management request whose checksum was verified.
#[derive(Debug)]
pub(crate) struct ManagementRequest {
    query: Params,
    body: Map<String, Value>,
}

impl ManagementRequest {
    /// Content type, then checksum (failures are XML errors), then the JSON
    /// body.
    pub(crate) async fn read(state: &AppState, call: &str, request: Request<Body>) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        let xml_error = |e: BbbError| crate::response::ApiError(e).into_response();
        if parts.method == Method::POST && !crate::body::is_empty(&body) && !is_json(&parts.headers) {
            return Err(xml_error(BbbError::UnsupportedContentType));
        }
        let raw_query = parts.uri.query().unwrap_or("").as_bytes();
        let query = Params::parse_limited(raw_query, state.config.edge.max_params)
            .map_err(|_| xml_error(refused::TOO_MANY_PARAMS))?;
        let in_query = find_checksum(raw_query).map_err(|_| xml_error(BbbError::ChecksumError))?;
        let limits = BodyLimits { max_bytes: MAX_BODY_BYTES, ..state.unauthenticated_body() };
        let read = crate::body::read(body, &parts.headers, limits).await.map_err(xml_error)?;
        let raw_body: &[u8] = &read.bytes;
        // The checksum is taken from the body only when the query has none;
        // reading it skips every other value, so nothing is built before
        // the checksum matched.
        let in_body = if raw_body.is_empty() {
            None
        } else {
            serde_json::from_slice::<ChecksumField>(raw_body).ok().and_then(|field| field.checksum)
        };
        let (stripped, checksum): ([&[u8]; 2], String) = match (&in_query, in_body) {
            (Some(_), Some(_)) => return Err(xml_error(BbbError::ChecksumError)),
            (Some(pair), None) => (pair.check_string(), pair.value.to_string()),
            (None, found) => ([raw_query, b""], found.unwrap_or_default()),
        };
        let with_body: [&[u8]; 3] = [stripped[0], stripped[1], raw_body];
        let mut candidates: Vec<&dyn CheckString> = Vec::with_capacity(2);
        if raw_body.is_empty() || !state.config.management_signed_body {
            candidates.push(&stripped);
        }
        if !raw_body.is_empty() {
            candidates.push(&with_body);
        }
        let secrets = if state.config.management_secrets.is_empty() {
            &state.config.secrets
        } else {
            &state.config.management_secrets
        };
        checksum::verify_check_strings(call, &candidates, &checksum, secrets, state.config.checksum_algorithms)
            .map_err(|refusal| {
                debug!(call, ?refusal, "management checksum refused");
                xml_error(BbbError::ChecksumError)
            })?;
        let body = if raw_body.is_empty() {
            Map::new()
        } else {
            match serde_json::from_slice::<Value>(raw_body) {
                Ok(Value::Object(map)) => map,
                _ => return Err(json_error(StatusCode::BAD_REQUEST, "The request body is not a JSON object")),
            }
        };
        Ok(Self { query, body })
    }

    /// A top-level parameter: the query's, else the JSON body's.
    pub(crate) fn param(&self, name: &str) -> Option<String> {
        self.query.get(name).map(str::to_owned).or_else(|| self.body.get(name).and_then(scalar))
    }

    /// The `server` (or `tenant`) object: the body's `key`, else the whole body
    /// (Rails' parameter wrapping), else `server[...]` query parameters.
    pub(crate) fn wrapped(&self, key: &str) -> Option<Wrapped<'_>> {
        match self.body.get(key) {
            Some(Value::Object(inner)) => Some(Wrapped { map: Some(inner), query: &self.query, key: key.to_owned() }),
            Some(_) => None,
            None if !self.body.is_empty() => {
                Some(Wrapped { map: Some(&self.body), query: &self.query, key: key.to_owned() })
            }
            None if self.query.iter().any(|(k, _)| k.starts_with(&format!("{key}["))) => {
                Some(Wrapped { map: None, query: &self.query, key: key.to_owned() })
            }
            None => None,
        }
    }
}

/// The `server` (or `tenant`) parameters of a management call.
#[derive(Debug)]
pub(crate) struct Wrapped<'a> {
    map: Option<&'a Map<String, Value>>,
    query: &'a Params,
    key: String,
}

impl Wrapped<'_> {
    /// Whether it holds no parameter at all (`{"server": {}}`), which
    /// Rails' `params.require` counts as missing.
    pub(crate) fn is_empty(&self) -> bool {
        let prefix = format!("{}[", self.key);
        self.map.is_none_or(Map::is_empty) && !self.query.iter().any(|(k, _)| k.starts_with(&prefix))
    }

    /// A value as text (numbers and booleans as written); `None` when absent
    /// or JSON `null`.
    pub(crate) fn get(&self, name: &str) -> Option<String> {
        self.map
            .and_then(|m| m.get(name))
            .and_then(scalar)
            .or_else(|| self.query.get(&format!("{}[{name}]", self.key)).map(str::to_owned))
    }
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// A JSON reply.
pub(crate) fn json_reply(status: StatusCode, value: impl serde::Serialize) -> Response {
    let mut response = (status, axum::Json(value)).into_response();
    // Rails' `render json:` type, charset included.
    response.headers_mut().insert(header::CONTENT_TYPE, http::HeaderValue::from_static(JSON_CONTENT_TYPE));
    response
}

/// `Content-Type` of every management API reply.
pub(crate) const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// `{"error": message}` with `status`.
pub(crate) fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    json_reply(status, json!({ "error": message.into() }))
}

/// The `error` of every HTTP 500 of the management API.
pub(crate) const INTERNAL_ERROR: &str = "Internal server error";

/// HTTP 500 `{"error": "Internal server error"}` for a failure of the
/// store. What failed is logged (in the request's span, so with its
/// request id, which the reply carries in `X-Request-Id`), never sent: a
/// store error names hosts, ports and keys.
pub(crate) fn internal_error(error: &dyn std::fmt::Display, context: &'static str) -> Response {
    warn!(%error, "{context}");
    json_error(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_ERROR)
}
