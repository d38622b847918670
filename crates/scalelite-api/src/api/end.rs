//! `end`.

use axum::body::Body;
use axum::extract::State;
use http::Request;
use scalelite_core::BbbError;
use scalelite_core::error::internal;
use scalelite_core::params::encode_component_into;

use super::{find_meeting, meeting_id, meeting_query};
use crate::meetings_cache::Change;
use crate::request::{ApiCall, ApiRequest, BodyKind};
use crate::response::{ApiResult, xml};
use crate::state::AppState;
use crate::upstream;

const CALL: ApiCall = ApiCall { name: "end", body: BodyKind::Form };

/// Forgets the meeting first (it stays forgotten whatever the server says),
/// then sends `end` with `meetingID` and `password` (a bare `password` key
/// when the client sent none, as Scalelite does).
pub(crate) async fn end(State(state): State<AppState>, request: Request<Body>) -> ApiResult {
    let request = ApiRequest::read(&state, &CALL, request).await?;
    let id = meeting_id(&state, &request)?;
    let (meeting, server) = find_meeting(&state, &id, request.tenant_id()).await?.ok_or(BbbError::MeetingNotFound)?;
    state.store.delete_meeting(&id, Some(&meeting.server_id)).await?;
    state.join_routes.forget(&id);
    let mut query = meeting_query(&id);
    query.push_str("&password");
    if let Some(password) = request.params.get("password") {
        query.push('=');
        encode_component_into(&mut query, password);
    }
    let reply = upstream::call(&state.bbb, &state.metrics, &server, CALL.name, &query, None)
        .await
        .map_err(|error| error.into_bbb(internal::ACCESS_MEETING))?;
    // Gone from this process's getMeetings at once.
    state.meetings_cache.record(Change::Ended { server: server.id, meeting_id: id });
    Ok(xml(reply.body))
}
