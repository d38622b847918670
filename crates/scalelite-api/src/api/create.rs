//! `create`: find or place the meeting, then forward the call to its server.
//!
//! Placement is one atomic store operation that also reserves load on the
//! chosen server (see `scalelite_core::load`), so bursts of creates spread
//! over the pool and concurrent creates of one meeting id, from any number
//! of API processes, land on exactly one server.

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use http::Request;
use scalelite_core::error::internal;
use scalelite_core::params::{forwarded_params, ruby_to_i};
use scalelite_core::selection::TagSpec;
use scalelite_core::voice_bridge::{candidates, random_alphanumeric};
use scalelite_core::{BbbError, MeetingId, Params, TenantId};
use scalelite_store::{Meeting, Placement, PlacementRequest, Server};
use tracing::info;

use super::{analytics_callback, meeting_id, meeting_query, relay};
use crate::request::{ApiCall, ApiRequest, BodyKind};
use crate::response::{ApiError, ApiResult};
use crate::state::AppState;
use crate::upstream;

const CALL: ApiCall = ApiCall { name: "create", body: BodyKind::FormOrXml };

/// The Scalelite server-tag parameter.
const TAG: &str = "meta_server-tag";

/// How often a stale meeting record is replaced before giving up.
const PLACEMENT_ATTEMPTS: usize = 3;

/// Creates (or re-creates) a meeting on its server.
pub async fn create(State(state): State<AppState>, request: Request<Body>) -> ApiResult {
    let callback_origin = analytics_callback::request_origin(&state, request.headers());
    let request = ApiRequest::read(&state, &CALL, request).await?;
    let id = meeting_id(&request)?;
    let mut params = request.params.dedup();
    let policy = &state.config.create_params;
    let tenant = request.tenant.as_deref();

    // The effective tag: tenant override, global override, the request,
    // tenant default, global default (Scalelite's order).
    let tag = [
        tenant.and_then(|t| t.override_value(TAG)),
        policy.override_value(TAG),
        params.get(TAG),
        tenant.and_then(|t| t.default_value(TAG)),
        policy.default_value(TAG),
    ]
    .into_iter()
    .flatten()
    .find(|v| !v.trim().is_empty())
    .map(str::to_owned);
    let spec = TagSpec::parse(tag.as_deref());

    let (meeting, server, placed) = find_or_place(&state, &id, request.tenant_id(), &spec, &params).await?;
    // A new meeting gets the stored password. So does a repeated create
    // without one: racing creates of one meeting may reach BBB in any order,
    // and BBB only answers duplicateWarning (not idNotUnique) to a repeat
    // whose password matches. A client's own password is passed through.
    if placed || params.get_present("moderatorPW").is_none() {
        params.set("moderatorPW", meeting.moderator_pw.clone());
    }
    params.set("voiceBridge", meeting.voice_bridge.clone());
    if let Some(tenant) = tenant {
        params.set("meta_tenant-id", tenant.id().as_str());
        params.set("meta_tenant-name", tenant.name());
    }
    match &server.tag {
        Some(server_tag) => params.set(TAG, server_tag.clone()),
        None => params.remove(TAG),
    }
    cap_duration(&mut params, state.config.max_meeting_duration);
    crate::lrs::add_payload(&state, tenant, &server, &mut params).await;
    take_recording_ready_url(&state, &id, &mut params).await?;
    analytics_callback::take_url(&state, &id, tenant, callback_origin.as_deref(), &mut params).await?;

    // Precedence, lowest first: global defaults < tenant defaults < request
    // < global overrides < tenant overrides.
    let empty = Vec::new();
    let (tenant_defaults, tenant_overrides) = tenant.map_or((&empty, &empty), |t| (&t.defaults, &t.overrides));
    let forward = forwarded_params(
        &params,
        &[&policy.exclude],
        &[&policy.defaults, tenant_defaults],
        &[&policy.overrides, tenant_overrides],
        &[TAG],
    );
    relay(&state, &server, CALL.name, &forward.encode(), request.xml_body, internal::CREATE).await
}

/// Returns the meeting, its server and whether it was placed just now.
///
/// An existing record is reused unless its server can no longer host it:
/// deleted, disabled or offline (Scalelite would forward there and fail
/// until the poller cleans up), or cordoned with the meeting no longer
/// running. Such records are replaced by a new placement.
async fn find_or_place(
    state: &AppState,
    id: &MeetingId,
    tenant: Option<&TenantId>,
    spec: &TagSpec,
    params: &Params,
) -> Result<(Meeting, Server, bool), ApiError> {
    let config = &state.config;
    let external = config.use_external_voice_bridge.then(|| params.get_present("voiceBridge")).flatten();
    let request = PlacementRequest {
        meeting_id: id.clone(),
        tenant_id: tenant.cloned(),
        tags: spec.clone(),
        moderator_pw: params.get_present("moderatorPW").map_or_else(|| random_alphanumeric(8), str::to_owned),
        voice_bridges: candidates(id.as_str(), config.voice_bridge_len, external),
        ttl: config.meeting_ttl,
        reserve_users: config.load.min_user_count,
    };
    for _ in 0..PLACEMENT_ATTEMPTS {
        let stale_on = match state.store.place_meeting(&request).await? {
            Placement::Placed { meeting, server } => {
                info!(meeting.id = %id, server.id = %server.id, "meeting placed");
                return Ok((meeting, server, true));
            }
            Placement::Existing(route) => match route.server {
                None => route.meeting.server_id,
                Some(server) if !server.is_available() => server.id,
                Some(server) if server.is_cordoned() && !running_on(state, &server, id).await => server.id,
                Some(server) => return Ok((route.meeting, server, false)),
            },
            Placement::NoServer => return Err(BbbError::internal(internal::NO_SERVERS).into()),
            Placement::TagUnavailable => {
                return Err(BbbError::ServerTagUnavailable(spec.display()).into());
            }
            Placement::TenantConflict => {
                // The id belongs to another tenant (or to no tenant): refused,
                // never merged into that meeting.
                let tenant = tenant.map_or("", TenantId::as_str);
                let message = format!("Couldn't find Meeting with id={id} and tenant_id={tenant}");
                return Err(BbbError::Internal(message.into()).into());
            }
            Placement::VoiceBridgesExhausted => {
                return Err(BbbError::internal("Unable to allocate a voice bridge for the meeting.").into());
            }
        };
        info!(meeting.id = %id, server.id = %stale_on, "replacing stale meeting record");
        state.store.delete_meeting(id, Some(&stale_on)).await?;
    }
    Err(BbbError::internal(internal::NO_SERVERS).into())
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

/// How long a recording-ready URL is kept after the create: processing
/// and transfer of a long recording can take a day or more.
const RECORDING_READY_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Scalelite's recording-ready handling: `meta_bn-recording-ready-url`, else
/// `meta_bbb-recording-ready-url`, is remembered for the importer (which
/// calls it once the recording is available here) and all three
/// recording-ready parameters are removed, so BBB does not call the
/// front-end before the recording reached the balancer. A lone
/// `meta_canvas-recording-ready-url` passes through, as in Scalelite.
async fn take_recording_ready_url(state: &AppState, id: &MeetingId, params: &mut Params) -> Result<(), ApiError> {
    let url = params
        .get_present("meta_bn-recording-ready-url")
        .or_else(|| params.get_present("meta_bbb-recording-ready-url"))
        .map(str::to_owned);
    if let Some(url) = url {
        for name in ["meta_bn-recording-ready-url", "meta_bbb-recording-ready-url", "meta_canvas-recording-ready-url"] {
            params.remove(name);
        }
        state.store.remember_recording_ready_url(id, &url, state.config.meeting_ttl + RECORDING_READY_GRACE).await?;
    }
    Ok(())
}

/// `MAX_MEETING_DURATION`: sets `duration` when it is absent, zero or larger.
fn cap_duration(params: &mut Params, max_minutes: u64) {
    if max_minutes == 0 {
        return;
    }
    let requested = ruby_to_i(params.get("duration").unwrap_or(""));
    if requested == 0 || u64::try_from(requested).is_ok_and(|d| d > max_minutes) {
        params.set("duration", max_minutes.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_cap_like_scalelite() {
        let cases = [(None, "3600"), (Some("5000"), "3600"), (Some("0"), "3600"), (Some("1200"), "1200")];
        for (given, expected) in cases {
            let mut params = Params::new();
            if let Some(d) = given {
                params.set("duration", d);
            }
            cap_duration(&mut params, 3600);
            assert_eq!(params.get("duration"), Some(expected), "{given:?}");
        }
        let mut params = Params::from_pairs([("duration", "99999")]);
        cap_duration(&mut params, 0);
        assert_eq!(params.get("duration"), Some("99999"));
    }
}
