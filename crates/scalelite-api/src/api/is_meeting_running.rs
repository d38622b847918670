//! `isMeetingRunning`.

use axum::body::Body;
use axum::extract::State;
use http::Request;
use scalelite_core::error::internal;

use super::{find_meeting, meeting_id, meeting_query, relay};
use crate::request::{ApiCall, ApiRequest, BodyKind};
use crate::response::{ApiResult, document, success};
use crate::state::AppState;

const CALL: ApiCall = ApiCall { name: "isMeetingRunning", body: BodyKind::Form };

/// Unknown meetings are simply not running (no server is asked); known ones
/// are asked on their server with only `meetingID`. With re-homing on, a
/// meeting whose server is offline is not running either (its next create
/// or join creates it again elsewhere).
pub(crate) async fn is_meeting_running(State(state): State<AppState>, request: Request<Body>) -> ApiResult {
    let request = ApiRequest::read(&state, &CALL, request).await?;
    let id = meeting_id(&state, &request)?;
    let server = match find_meeting(&state, &id, request.tenant_id()).await? {
        Some((_, server)) if server.online || !state.config.rehome_meetings => server,
        _ => return Ok(document(&success().with_text_child("running", "false"))),
    };
    relay(&state, &server, CALL.name, &meeting_query(&id), None, internal::ACCESS_MEETING).await
}
