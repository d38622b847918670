//! The BBB API under [`PREFIX`]: one module per call, and [`CALLS`], the
//! table the router installs and the metrics read their `call` label from.
//!
//! A new call is a module (copy a sibling: `end` forwards to the meeting's
//! server, `getMeetingInfo` relays its answer) and one line in [`CALLS`].

pub(crate) mod analytics_callback;
pub(crate) mod create;
pub(crate) mod end;
pub(crate) mod get_meeting_info;
pub(crate) mod get_meetings;
pub(crate) mod index;
pub(crate) mod insert_document;
pub(crate) mod is_meeting_running;
pub(crate) mod join;
pub(crate) mod meeting_ended;
pub(crate) mod recordings;
pub(crate) mod send_chat_message;
pub(crate) mod text_tracks;
pub(crate) mod unsupported;

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodRouter, get, post};
use scalelite_bbb_client::Reply;
use scalelite_core::scope::MeetingIdScope;
use scalelite_core::xml::Node;
use scalelite_core::{BbbError, MeetingId, TenantId, scope};
use scalelite_store::{Meeting, Server};
use tracing::info;

use self::recordings::{delete_recordings, disabled, get_recordings, publish_recordings, update_recordings};
use self::unsupported::unsupported;
use crate::request::ApiRequest;
use crate::response::{ApiError, ApiResult, xml};
use crate::state::AppState;
use crate::upstream;

/// Where the BBB API lives; the path itself answers [`index`].
pub(crate) const PREFIX: &str = "/bigbluebutton/api";

/// One BBB API call: its name (the path under [`PREFIX`], and the `call`
/// label of its metrics) and what its methods run. HEAD is served as GET;
/// any other method gets `unsupportedRequest`.
#[derive(Debug)]
pub(crate) struct Call {
    /// The call's name, as BBB spells it.
    pub(crate) name: &'static str,
    /// The handlers by method (the state decides, for calls that can be
    /// switched off).
    pub(crate) methods: fn(&AppState) -> MethodRouter<AppState>,
}

/// Every BBB call this balancer answers.
pub(crate) const CALLS: [Call; 16] = [
    Call { name: "create", methods: |_| get_post(create::create) },
    Call { name: "join", methods: |_| get(join::join) },
    Call { name: "end", methods: |_| get_post(end::end) },
    Call { name: "isMeetingRunning", methods: |_| get_post(is_meeting_running::is_meeting_running) },
    Call { name: "getMeetingInfo", methods: |_| get_post(get_meeting_info::get_meeting_info) },
    Call { name: "getMeetings", methods: |_| get_post(get_meetings::get_meetings) },
    Call { name: "insertDocument", methods: |_| post(insert_document::insert_document) },
    Call { name: "sendChatMessage", methods: |_| get(send_chat_message::send_chat_message) },
    Call { name: "getRecordingTextTracks", methods: |_| get_post(text_tracks::get_recording_text_tracks) },
    Call { name: "putRecordingTextTrack", methods: |_| post(text_tracks::put_recording_text_track) },
    Call { name: "analytics_callback", methods: |_| post(analytics_callback::analytics_callback) },
    Call {
        name: "meeting_ended",
        methods: |state| {
            // Only meetings with scoped ids are given this URL.
            if state.config.meeting_id_scope == MeetingIdScope::Tenant {
                get_post(meeting_ended::meeting_ended)
            } else {
                get_post(unsupported)
            }
        },
    },
    Call {
        name: "getRecordings",
        methods: |state| {
            recordings::unless_disabled(
                state,
                get_post(get_recordings::get_recordings),
                get_post(disabled::get_recordings),
            )
        },
    },
    Call {
        name: "publishRecordings",
        methods: |state| {
            recordings::unless_disabled(state, get(publish_recordings::publish_recordings), get(disabled::recordings))
        },
    },
    Call {
        name: "updateRecordings",
        methods: |state| {
            recordings::unless_disabled(
                state,
                get_post(update_recordings::update_recordings),
                get_post(disabled::recordings),
            )
        },
    },
    Call {
        name: "deleteRecordings",
        methods: |state| {
            recordings::unless_disabled(state, get(delete_recordings::delete_recordings), get(disabled::recordings))
        },
    },
];

/// `handler` for GET (and so HEAD) and POST.
fn get_post<H, T>(handler: H) -> MethodRouter<AppState>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    get(handler.clone()).post(handler)
}

/// The routes of the BBB API: [`PREFIX`] itself and every call of
/// [`CALLS`].
pub(crate) fn routes(state: &AppState) -> Router<AppState> {
    CALLS.iter().fold(
        Router::new().route(PREFIX, get(index::index).post(index::index).fallback(unsupported)),
        |router, call| router.route(&format!("{PREFIX}/{}", call.name), (call.methods)(state).fallback(unsupported)),
    )
}

/// The `call` label of a route of [`routes`]: `index` for [`PREFIX`], a
/// call's name for its path; `None` for any other path.
pub(crate) fn call_label(route: &str) -> Option<&'static str> {
    let name = route.strip_prefix(PREFIX)?;
    if name.is_empty() {
        return Some("index");
    }
    let name = name.strip_prefix('/')?;
    CALLS.iter().find(|call| call.name == name).map(|call| call.name)
}

/// The required `meetingID` parameter, as the balancer and BBB know it:
/// the front-end's id, or with `MULTITENANCY_MEETING_ID_SCOPE=tenant`
/// `<tenant id>:<meetingID>` ([`scalelite_core::scope`]), refused with
/// bbb-web's `sizeError` when that would be longer than bbb-web accepts.
///
/// Parameters are decoded leniently: bytes that are not UTF-8 become U+FFFD,
/// so `%FF` and `%FE` would name one meeting. Such an id is refused with
/// bbb-web's `validationError` (Scalelite, through Rails, answers HTTP 400);
/// an id holding a literal U+FFFD (`%EF%BF%BD`) cannot be told apart from
/// one and is refused too.
pub(crate) fn meeting_id(state: &AppState, request: &ApiRequest) -> Result<MeetingId, BbbError> {
    // Rails' `params.require`: a blank id (white space only) is missing.
    let id = request.params.get_nonblank("meetingID").ok_or(BbbError::MissingParamMeetingId)?;
    if id.contains(char::REPLACEMENT_CHARACTER) {
        return Err(BbbError::InvalidMeetingId);
    }
    match state.config.meeting_scope(request.tenant_id()) {
        None => Ok(MeetingId::from(id)),
        Some(tenant) => {
            scope::check_length(tenant.as_str(), id)?;
            Ok(MeetingId::from(scope::scoped(tenant.as_str(), id)))
        }
    }
}

/// A BBB reply as the front-end of `scope` should see it (create,
/// getMeetingInfo): its `<meetingID>` unscoped and, for getMeetingInfo,
/// the front-end's own end callback URL in `metadata/endcallbackurl`
/// instead of the relay URL BBB was given
/// ([`scope::show_front_end_metadata`]). Without a scope, or when the
/// meeting is not one of the tenant's scoped ids, the bytes as received.
pub(crate) fn front_end_reply(reply: Reply, scope: Option<&TenantId>) -> bytes::Bytes {
    let Some(tenant) = scope else { return reply.body };
    let mut doc = reply.doc;
    let Some(element) = doc.child_mut("meetingID") else { return reply.body };
    let scoped_id = element.text();
    let Some(id) = scope::unscoped(tenant.as_str(), &scoped_id) else { return reply.body };
    element.children = vec![Node::Text(id.to_owned())];
    scope::show_front_end_metadata(&mut doc, &scoped_id);
    bytes::Bytes::from(doc.to_document(true))
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
            state.join_routes.forget(id);
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

/// [`relay`], with the reply's `<meetingID>` as the front-end of `scope`
/// sent it ([`front_end_reply`]).
pub(crate) async fn relay_to_front_end(
    state: &AppState,
    server: &Server,
    call: &str,
    query: &str,
    scope: Option<&TenantId>,
    transport_message: &'static str,
) -> ApiResult {
    let reply = upstream::call(&state.bbb, &state.metrics, server, call, query, None)
        .await
        .map_err(|error| error.into_bbb(transport_message))?;
    Ok(xml(front_end_reply(reply, scope)))
}

/// Encodes `meetingID=<id>` for a forwarded call.
pub(crate) fn meeting_query(id: &MeetingId) -> String {
    let mut query = String::from("meetingID=");
    scalelite_core::params::encode_component_into(&mut query, id.as_str());
    query
}
