//! `getMeetingInfo`.

use axum::body::Body;
use axum::extract::State;
use http::Request;
use scalelite_core::BbbError;
use scalelite_core::error::internal;

use super::{find_meeting, meeting_id, meeting_query, relay_to_front_end};
use crate::request::{ApiCall, ApiRequest, BodyKind};
use crate::response::ApiResult;
use crate::state::AppState;

const CALL: ApiCall = ApiCall { name: "getMeetingInfo", body: BodyKind::Form };

/// Relays the meeting server's reply (its `meetingID` as the front-end
/// sent it); only `meetingID` is forwarded. With
/// re-homing on, a meeting whose server is offline is `notFound` (as BBB
/// answers for a meeting that is not running; its next create or join
/// creates it again elsewhere).
pub(crate) async fn get_meeting_info(State(state): State<AppState>, request: Request<Body>) -> ApiResult {
    let request = ApiRequest::read(&state, &CALL, request).await?;
    let id = meeting_id(&state, &request)?;
    let (_, server) = find_meeting(&state, &id, request.tenant_id())
        .await?
        .filter(|(_, server)| server.online || !state.config.rehome_meetings)
        .ok_or(BbbError::MeetingNotFound)?;
    let scope = state.config.meeting_scope(request.tenant_id());
    relay_to_front_end(&state, &server, CALL.name, &meeting_query(&id), scope, internal::ACCESS_MEETING).await
}
