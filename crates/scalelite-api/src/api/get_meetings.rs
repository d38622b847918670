//! `getMeetings`: the meetings of every online, non-disabled server, from
//! the fan-out that [`crate::meetings_cache`] shares between calls; gzip
//! encoded for clients that accept it, once the encoding is ready.

use axum::body::Body;
use axum::extract::State;
use http::{HeaderValue, Request, header};

use crate::meetings_cache::{accepts_gzip, no_meetings};
use crate::request::{ApiCall, ApiRequest, BodyKind, Unverified};
use crate::response::{ApiError, ApiResult, document, xml};
use crate::state::AppState;

const CALL: ApiCall = ApiCall { name: "getMeetings", body: BodyKind::Form };

/// Lists the meetings of the pool.
pub(crate) async fn get_meetings(State(state): State<AppState>, request: Request<Body>) -> ApiResult {
    if state.config.get_meetings_disabled {
        // No checksum, but the content-type gate still applies.
        Unverified::read(&state, &CALL, request).await?;
        return Ok(document(&no_meetings()));
    }
    let gzip = accepts_gzip(request.headers());
    let request = ApiRequest::read(&state, &CALL, request).await?;
    let fanout =
        state.meetings_cache.get(&state.store, &state.bbb, state.config.get_meetings_concurrency, &state.metrics).await;
    let body = match request.tenant_id() {
        Some(tenant) => fanout.tenant_reply(tenant, state.config.meeting_scope(Some(tenant)).is_some()),
        None => fanout.public_reply(),
    }
    .map_err(ApiError)?;
    let (bytes, gzipped) = state.meetings_cache.bytes(&body, gzip);
    let mut response = xml(bytes);
    // The reply depends on Accept-Encoding whichever encoding this one has.
    response.headers_mut().insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if gzipped {
        response.headers_mut().insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    Ok(response)
}
