//! `insertDocument` (POST only).

use axum::body::Body;
use axum::extract::State;
use http::Request;
use scalelite_core::BbbError;
use scalelite_core::error::internal;

use super::{find_meeting, meeting_id, meeting_query, relay};
use crate::request::{ApiCall, ApiRequest, BodyKind};
use crate::response::ApiResult;
use crate::state::AppState;

const CALL: ApiCall = ApiCall { name: "insertDocument", body: BodyKind::Xml };

/// POSTs the XML body to the meeting's server (a GET when the body is empty).
pub(crate) async fn insert_document(State(state): State<AppState>, request: Request<Body>) -> ApiResult {
    let request = ApiRequest::read(&state, &CALL, request).await?;
    let id = meeting_id(&state, &request)?;
    let (_, server) = find_meeting(&state, &id, request.tenant_id()).await?.ok_or(BbbError::MeetingNotFound)?;
    relay(&state, &server, CALL.name, &meeting_query(&id), request.xml_body, internal::INSERT_DOCUMENT).await
}
