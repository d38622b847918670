//! One module per BBB API call.

pub mod analytics_callback;
pub mod create;
pub mod end;
pub mod get_meeting_info;
pub mod get_meetings;
pub mod index;
pub mod insert_document;
pub mod is_meeting_running;
pub mod join;
pub mod recordings;
pub mod unsupported;

use scalelite_core::{BbbError, MeetingId, TenantId};
use scalelite_store::{Meeting, Server};
use tracing::info;

use crate::request::ApiRequest;
use crate::response::{ApiError, ApiResult, xml};
use crate::state::AppState;
use crate::upstream;

/// The required `meetingID` parameter.
///
/// Parameters are decoded leniently: bytes that are not UTF-8 become U+FFFD,
/// so `%FF` and `%FE` would name one meeting. Such an id is refused with
/// bbb-web's `validationError` (Scalelite, through Rails, answers HTTP 400);
/// an id holding a literal U+FFFD (`%EF%BF%BD`) cannot be told apart from
/// one and is refused too.
pub(crate) fn meeting_id(request: &ApiRequest) -> Result<MeetingId, BbbError> {
    let id = request.param("meetingID").ok_or(BbbError::MissingParamMeetingId)?;
    if id.contains(char::REPLACEMENT_CHARACTER) {
        return Err(BbbError::InvalidMeetingId);
    }
    Ok(MeetingId::from(id))
}

/// Finds a meeting and its server. A meeting whose server record was deleted
/// is removed (Scalelite answers HTTP 500 forever instead) and reported as
/// not found.
pub(crate) async fn find_meeting(
    state: &AppState,
    id: &MeetingId,
    tenant: Option<&TenantId>,
) -> Result<Option<(Meeting, Server)>, ApiError> {
    let Some(route) = state.store.find_meeting(id, tenant).await? else {
        return Ok(None);
    };
    match route.server {
        Some(server) => Ok(Some((route.meeting, server))),
        None => {
            info!(meeting.id = %id, server.id = %route.meeting.server_id, "removing meeting of a deleted server");
            state.store.delete_meeting(id, Some(&route.meeting.server_id)).await?;
            Ok(None)
        }
    }
}

/// Sends `call` with `query` (and an optional XML body) to `server`
/// ([`upstream::call`]) and relays a `SUCCESS` reply as received. A `FAILED` reply keeps BBB's key;
/// anything else becomes `internalError` with `transport_message`.
pub(crate) async fn relay(
    state: &AppState,
    server: &Server,
    call: &str,
    query: &str,
    xml_body: Option<bytes::Bytes>,
    transport_message: &'static str,
) -> ApiResult {
    let reply = upstream::call(&state.bbb, &state.metrics, server, call, query, xml_body)
        .await
        .map_err(|error| error.into_bbb(transport_message))?;
    Ok(xml(reply.body))
}

/// Encodes `meetingID=<id>` for a forwarded call.
pub(crate) fn meeting_query(id: &MeetingId) -> String {
    let mut query = String::from("meetingID=");
    scalelite_core::params::encode_component_into(&mut query, id.as_str());
    query
}
