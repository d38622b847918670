//! `create`: find or place the meeting, then forward the call to its server.
//!
//! Placement is one atomic store operation that also reserves load on the
//! chosen server (see `scalelite_core::load`), so bursts of creates spread
//! over the pool and concurrent creates of one meeting id, from any number
//! of API processes, land on exactly one server.

mod params;
pub(crate) mod rehome;

use axum::body::Body;
use axum::extract::State;
use http::Request;
use scalelite_core::error::internal;
use scalelite_core::selection::{Needs, TagSpec};
use scalelite_core::voice_bridge::{candidates, random_alphanumeric};
use scalelite_core::{BbbError, MeetingId, Params, TenantId, scope};
use scalelite_store::{Meeting, Placement, PlacementRequest, Server, StoredCreate};
use tracing::info;

use self::params::Destination;
use self::rehome::Trigger;
use super::{analytics_callback, front_end_reply, meeting_id, meeting_query};
use crate::meetings_cache::{Change, created_meeting};
use crate::request::{ApiCall, ApiRequest, BodyKind};
use crate::response::{ApiError, ApiResult, xml};
use crate::state::AppState;
use crate::tenancy::ResolvedTenant;
use crate::upstream;

const CALL: ApiCall = ApiCall { name: "create", body: BodyKind::FormOrXml };

/// How often a stale meeting record is replaced before giving up.
const PLACEMENT_ATTEMPTS: usize = 3;

/// Creates (or re-creates) a meeting on its server.
pub(crate) async fn create(State(state): State<AppState>, request: Request<Body>) -> ApiResult {
    let callback_origin = analytics_callback::request_origin(&state, request.headers());
    let request = ApiRequest::read(&state, &CALL, request).await?;
    let id = meeting_id(&state, &request)?;
    let mut params = request.params.dedup();
    let tenant = request.tenant.as_deref();
    let spec = TagSpec::parse(params::requested_tag(&state, tenant, &params).as_deref());
    let needs = params::requested_needs(&state, tenant, &params);
    let kept = rehome::keep(&state, &params, callback_origin.as_deref());
    let wanted = Wanted { spec: &spec, needs: &needs };
    let (meeting, server, placed) = match find_or_place(&state, &id, tenant, &wanted, &params, kept).await? {
        Found::Here { meeting, server, placed } => (meeting, server, placed),
        // Created again elsewhere from the parameters its first create
        // left: that server's answer.
        Found::Rehomed(body) => return Ok(xml(body)),
    };
    rehome::set_attendee_pw(&state, &meeting, &mut params);
    let destination = Destination { meeting: &meeting, server: &server, placed };
    let forward = params::rewrite(&state, &id, tenant, &destination, callback_origin.as_deref(), params).await?;
    let body = params::forwarded_body(&state, tenant, request.xml_body);
    let reply = upstream::call(&state.bbb, &state.metrics, &server, CALL.name, &forward.encode(), body)
        .await
        .map_err(|error| error.into_bbb(internal::CREATE))?;
    // Listed by this process's getMeetings at once, not after its next
    // refresh.
    state
        .meetings_cache
        .record(Change::Created { server: server.id.clone(), meeting: created_meeting(&reply.doc, &forward) });
    Ok(xml(front_end_reply(reply, state.config.meeting_scope(tenant.map(ResolvedTenant::id)))))
}

/// What a create asks of its server.
struct Wanted<'a> {
    /// `meta_server-tag`.
    spec: &'a TagSpec,
    /// Capabilities and preferred regions.
    needs: &'a Needs,
}

/// Where a create goes.
#[expect(clippy::large_enum_variant, reason = "one value per create, returned once")]
enum Found {
    /// To the meeting's server (`placed`: the record was made just now).
    Here { meeting: Meeting, server: Server, placed: bool },
    /// Nowhere: the meeting was re-homed; this is its new server's answer.
    Rehomed(bytes::Bytes),
}

/// Returns the meeting, its server and whether it was placed just now.
///
/// An existing record is reused unless its server can no longer host it:
/// deleted, disabled or offline (Scalelite would forward there and fail
/// until the poller cleans up), or cordoned with the meeting no longer
/// running. A meeting of an offline server is re-homed from its kept
/// parameters ([`rehome`]); other such records are replaced by a new
/// placement.
async fn find_or_place(
    state: &AppState,
    id: &MeetingId,
    resolved: Option<&ResolvedTenant>,
    wanted: &Wanted<'_>,
    params: &Params,
    create: Option<StoredCreate>,
) -> Result<Found, ApiError> {
    let Wanted { spec, needs } = *wanted;
    let tenant = resolved.map(|t| t.id());
    let config = &state.config;
    let external = config.use_external_voice_bridge.then(|| params.get_nonblank("voiceBridge")).flatten();
    let request = PlacementRequest {
        meeting_id: id.clone(),
        tenant_id: tenant.cloned(),
        tags: spec.clone(),
        needs: needs.clone(),
        moderator_pw: params.get_nonblank("moderatorPW").map_or_else(|| random_alphanumeric(8), str::to_owned),
        voice_bridges: candidates(id.as_str(), config.voice_bridge_len, external),
        ttl: config.meeting_ttl,
        reserve_users: config.load.min_user_count,
        create,
        replace_on: None,
        max_meetings: resolved.and_then(|t| t.limits.max_meetings),
    };
    for _ in 0..PLACEMENT_ATTEMPTS {
        let stale_on = match state.store.place_meeting(&request).await? {
            Placement::Placed { meeting, server } => {
                state.join_routes.forget(id);
                info!(
                    meeting.id = %id,
                    server.id = %server.id,
                    server.region = server.region.as_deref().unwrap_or_default(),
                    "meeting placed"
                );
                note_region(state, needs, &server);
                return Ok(Found::Here { meeting, server, placed: true });
            }
            Placement::Existing(route) => match route.server {
                None => route.meeting.server_id,
                Some(server) if !server.is_available() => {
                    if let Some((_, body)) =
                        rehome::rehome(state, &route.meeting, &server, resolved, Trigger::Create).await?
                    {
                        return Ok(Found::Rehomed(body));
                    }
                    server.id
                }
                Some(server) if server.is_cordoned() && !running_on(state, &server, id).await => server.id,
                Some(server) => return Ok(Found::Here { meeting: route.meeting, server, placed: false }),
            },
            Placement::NoServer => return Err(BbbError::internal(internal::NO_SERVERS).into()),
            Placement::TagUnavailable => {
                return Err(BbbError::ServerTagUnavailable(spec.display()).into());
            }
            Placement::CapabilityUnavailable => {
                let wanted = needs.capabilities.join(";");
                info!(
                    meeting.id = %id,
                    capabilities = %wanted,
                    "create refused: no available server offers the capabilities"
                );
                return Err(BbbError::ServerCapabilityUnavailable(wanted).into());
            }
            Placement::TenantConflict => {
                // The id belongs to another tenant (or to no tenant): refused,
                // never merged into that meeting. The message names only the
                // caller and its own id (Scalelite's text).
                let shown = match config.meeting_scope(tenant) {
                    Some(scope) => scope::for_front_end(scope.as_str(), id.as_str()),
                    None => id.as_str(),
                };
                let tenant = tenant.map_or("", TenantId::as_str);
                let message = format!("Couldn't find Meeting with id={shown} and tenant_id={tenant}");
                return Err(BbbError::Internal(message.into()).into());
            }
            Placement::VoiceBridgesExhausted => {
                return Err(BbbError::internal("Unable to allocate a voice bridge for the meeting.").into());
            }
            Placement::TenantLimit => {
                let limit = request.max_meetings.unwrap_or_default();
                info!(meeting.id = %id, limit, "create refused: the tenant's concurrent meetings are at its limit");
                return Err(scalelite_core::error::limit::max_meetings(limit).into());
            }
        };
        info!(meeting.id = %id, server.id = %stale_on, "replacing stale meeting record");
        state.store.delete_meeting(id, Some(&stale_on)).await?;
        state.join_routes.forget(id);
    }
    Err(BbbError::internal(internal::NO_SERVERS).into())
}

/// Counts and logs a placement outside the preferred regions (each of them
/// down or full).
fn note_region(state: &AppState, needs: &Needs, server: &Server) {
    if needs.regions.is_empty() {
        return;
    }
    let region = server.region.as_deref().unwrap_or_default();
    if needs.regions.iter().any(|r| r == region) {
        return;
    }
    state.metrics.region_fallback();
    info!(
        server.id = %server.id,
        server.region = region,
        preferred = %needs.regions.join(";"),
        "meeting placed outside its preferred regions (down or full)"
    );
}

/// Whether the meeting still runs on `server` (any failure counts as no).
async fn running_on(state: &AppState, server: &Server, id: &MeetingId) -> bool {
    match upstream::call(&state.bbb, &state.metrics, server, "isMeetingRunning", &meeting_query(id), None).await {
        Ok(reply) => reply.doc.text_at("running").is_some_and(|r| r.trim() == "true"),
        Err(_) => {
            info!(meeting.id = %id, server.id = %server.id, "could not check meeting on cordoned server");
            false
        }
    }
}
