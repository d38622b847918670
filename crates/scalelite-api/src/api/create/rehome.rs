//! Automatic re-homing (`REHOME_MEETINGS`, on by default): a meeting whose
//! server went offline is created again on a healthy server, from the
//! parameters its first create left in the store, by its next create or
//! join; the user is sent there instead of getting `serverUnavailable`.
//!
//! A create keeps its parameters in the same placement that records the
//! meeting (no extra round trip; at most [`MAX_KEPT_PARAMS`] bytes). A
//! create without an attendee password sends one derived from the meeting
//! ([`set_attendee_pw`]), so that the re-created meeting accepts the
//! passwords the first one reported. Re-homing replays
//! that create: the same placement script replaces the record only while it
//! still points to the offline server (so concurrent joins re-home the
//! meeting once) and keeps its moderator password and voice bridge; then
//! the parameters go through create's rewriting for the new server and are
//! sent there. The old server's copy, should it come back running, is ended
//! by the poller (docs/ARCHITECTURE.md, "Re-homing").

use bytes::Bytes;
use scalelite_core::Params;
use scalelite_core::error::internal;
use scalelite_core::rehome::attendee_password;
use scalelite_core::selection::TagSpec;
use scalelite_core::voice_bridge::candidates;
use scalelite_store::{Meeting, MeetingRoute, Placement, PlacementRequest, Server, StoredCreate};
use tracing::{info, warn};

use super::params::{self, Destination};
use crate::api::front_end_reply;
use crate::meetings_cache::{Change, created_meeting};
use crate::response::ApiError;
use crate::state::AppState;
use crate::tenancy::ResolvedTenant;
use crate::upstream;

/// The most bytes of URL-encoded create parameters kept for a meeting; a
/// larger create is served but its meeting cannot be re-homed.
pub(crate) const MAX_KEPT_PARAMS: usize = 32 * 1024;

/// Which call found the meeting's server offline (the `trigger` label).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Trigger {
    /// A create of the meeting.
    Create,
    /// A join.
    Join,
}

impl Trigger {
    fn label(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Join => "join",
        }
    }
}

/// The parameters a create (its deduplicated `params`) keeps for re-homing,
/// with the origin it came in on; none when re-homing is off or they are
/// over [`MAX_KEPT_PARAMS`].
pub(super) fn keep(state: &AppState, params: &Params, origin: Option<&str>) -> Option<StoredCreate> {
    if !state.config.rehome_meetings {
        return None;
    }
    let mut kept = params.clone();
    kept.remove("checksum");
    let encoded = kept.encode();
    if encoded.len() > MAX_KEPT_PARAMS {
        state.metrics.rehome_params_too_large.inc();
        info!(bytes = encoded.len(), "create parameters too large to keep for re-homing");
        return None;
    }
    Some(StoredCreate { params: encoded, origin: origin.map(str::to_owned), ..StoredCreate::default() })
}

/// With re-homing on, a create without `attendeePW` sends the meeting's
/// derived one ([`scalelite_core::rehome::attendee_password`]), so that the
/// meeting created again elsewhere accepts the password its first create
/// reported, and racing repeats agree with it.
pub(super) fn set_attendee_pw(state: &AppState, meeting: &Meeting, params: &mut Params) {
    if state.config.rehome_meetings && params.get_nonblank("attendeePW").is_none() {
        params.set("attendeePW", attendee_password(&meeting.moderator_pw, meeting.id.as_str()));
    }
}

/// Creates `meeting`, recorded on `server`, again on a healthy server from
/// its kept parameters when `server` is offline, and returns the server it
/// now runs on with that server's reply to the create. `None` when it
/// cannot be re-homed (re-homing off, a server that is only disabled, no
/// parameters kept for this meeting, no server can take it): the caller
/// then does what it did before re-homing existed.
///
/// A `server` that is available means the meeting was re-homed by a
/// concurrent call since the caller found it unavailable: its create may
/// still be on the way, so the create is sent there too (BBB answers the
/// repeat `duplicateWarning`) before anybody is sent there.
pub(crate) async fn rehome(
    state: &AppState,
    meeting: &Meeting,
    server: &Server,
    tenant: Option<&ResolvedTenant>,
    trigger: Trigger,
) -> Result<Option<(Server, Bytes)>, ApiError> {
    if !state.config.rehome_meetings || (server.online && !server.is_available()) {
        return Ok(None);
    }
    let id = &meeting.id;
    let count = |outcome| state.metrics.rehome(trigger.label(), outcome);
    let Some((stored, meeting, server)) = kept_for(state, meeting, server).await? else {
        if !server.is_available() {
            count("no_parameters");
            info!(meeting.id = %id, server.id = %server.id, "meeting on an offline server has no parameters to re-home it");
        }
        return Ok(None);
    };
    let mut params = Params::parse(&stored.params);
    let (new_meeting, server, placed) = if server.is_available() {
        // Since the caller's look-up (re-homed meanwhile, or back online).
        (meeting.clone(), server.clone(), false)
    } else {
        match place(state, &meeting, &server, tenant, &stored, &params).await? {
            Some(found) => found,
            None => {
                count("no_server");
                info!(meeting.id = %id, server.id = %server.id, "no server can take the meeting of an offline server");
                return Ok(None);
            }
        }
    };
    set_attendee_pw(state, &new_meeting, &mut params);
    let destination = Destination { meeting: &new_meeting, server: &server, placed };
    let forward = params::rewrite(state, id, tenant, &destination, stored.origin.as_deref(), params).await?;
    match upstream::call(&state.bbb, &state.metrics, &server, "create", &forward.encode(), None).await {
        Ok(reply) => {
            if placed {
                count("rehomed");
                info!(meeting.id = %id, from = %meeting.server_id, server.id = %server.id, "meeting re-homed");
            }
            state
                .meetings_cache
                .record(Change::Created { server: server.id.clone(), meeting: created_meeting(&reply.doc, &forward) });
            let scope = state.config.meeting_scope(tenant.map(ResolvedTenant::id));
            Ok(Some((server, front_end_reply(reply, scope))))
        }
        Err(error) => {
            count("failed");
            warn!(meeting.id = %id, server.id = %server.id, %error, "re-homing create failed");
            Err(error.into_bbb(internal::CREATE).into())
        }
    }
}

/// The parameters kept for `meeting`, with its record and server: those
/// given, or, when the parameters were placed on another server, the
/// record read again if it points there now (re-homed since the caller's
/// look-up). Parameters placed elsewhere than the record's server belong to
/// an earlier meeting of this id (one Ruby Scalelite created since): none.
async fn kept_for(
    state: &AppState,
    meeting: &Meeting,
    server: &Server,
) -> Result<Option<(StoredCreate, Meeting, Server)>, ApiError> {
    let Some(stored) = state.store.stored_create(&meeting.id).await? else {
        return Ok(None);
    };
    if stored.placed_on.as_ref() == Some(&meeting.server_id) {
        return Ok(Some((stored, meeting.clone(), server.clone())));
    }
    Ok(match state.store.find_meeting(&meeting.id, meeting.tenant_id.as_ref()).await? {
        Some(MeetingRoute { meeting, server: Some(server) })
            if stored.placed_on.as_ref() == Some(&meeting.server_id) =>
        {
            Some((stored, meeting, server))
        }
        _ => None,
    })
}

/// Places `meeting` anew, replacing its record while it still points to
/// `offline`; the meeting, its new server and whether this call placed it
/// (`None`: no server can take it).
async fn place(
    state: &AppState,
    meeting: &Meeting,
    offline: &Server,
    tenant: Option<&ResolvedTenant>,
    stored: &StoredCreate,
    params: &Params,
) -> Result<Option<(Meeting, Server, bool)>, ApiError> {
    let config = &state.config;
    let id = &meeting.id;
    let spec = TagSpec::parse(params::requested_tag(state, tenant, params).as_deref());
    let needs = params::requested_needs(state, tenant, params);
    let external = config.use_external_voice_bridge.then(|| params.get_nonblank("voiceBridge")).flatten();
    // The meeting keeps its dial-in number (still reserved for it).
    let mut voice_bridges: Vec<String> =
        Some(meeting.voice_bridge.clone()).filter(|vb| !vb.is_empty()).into_iter().collect();
    voice_bridges.extend(candidates(id.as_str(), config.voice_bridge_len, external));
    let request = PlacementRequest {
        meeting_id: id.clone(),
        tenant_id: meeting.tenant_id.clone(),
        tags: spec,
        needs,
        moderator_pw: meeting.moderator_pw.clone(),
        voice_bridges,
        ttl: config.meeting_ttl,
        reserve_users: config.load.min_user_count,
        create: Some(StoredCreate {
            params: stored.params.clone(),
            origin: stored.origin.clone(),
            ..StoredCreate::default()
        }),
        replace_on: Some(offline.id.clone()),
        // A re-homed meeting is one of its tenant's meetings already.
        max_meetings: None,
    };
    let placement = state.store.place_meeting(&request).await?;
    // The record may point elsewhere now (placed here or by a concurrent call).
    state.join_routes.forget(id);
    Ok(match placement {
        Placement::Placed { meeting, server } => Some((meeting, server, true)),
        // Re-homed by a concurrent call: its create may still be on the
        // way, so this one is sent too.
        Placement::Existing(route) => match route.server {
            Some(server) if server.is_available() => Some((route.meeting, server, false)),
            _ => None,
        },
        Placement::NoServer
        | Placement::TagUnavailable
        | Placement::CapabilityUnavailable
        | Placement::TenantConflict
        | Placement::VoiceBridgesExhausted
        | Placement::TenantLimit => None,
    })
}
