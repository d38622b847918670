//! create's parameter rewriting: the server tag a create asks for, and
//! what the balancer changes before forwarding it to the chosen server (the
//! stored password and voice bridge, the tenant's metadata, the server's
//! tag, the duration cap, the LRS payload, the recording-ready and
//! analytics callback URLs), then the configured and tenant defaults and
//! overrides; with meeting ids scoped per tenant, last of all the scoped
//! `meetingID` and the end callback's relay URL.

use std::time::Duration;

use bytes::Bytes;
use scalelite_core::xml::remove_modules;
use tracing::{debug, info};

use scalelite_core::params::{forwarded_params, ruby_to_i};
use scalelite_core::selection::{Needs, parse_list};
use scalelite_core::{MeetingId, Params};
use scalelite_store::{Meeting, Server};

use crate::api::{analytics_callback, meeting_ended};
use crate::response::ApiError;
use crate::state::AppState;
use crate::tenancy::ResolvedTenant;

/// The Scalelite server-tag parameter.
const TAG: &str = "meta_server-tag";

/// Preferred regions (new; `;`-separated, best first). Not forwarded.
const REGION: &str = "meta_server-region";

/// Capabilities the server must offer (new; `;`-separated, all of them).
/// Not forwarded.
const CAPABILITY: &str = "meta_server-capability";

/// BBB 3.0's media-bridge selectors: `livekit` needs a server running `LiveKit`.
const BRIDGES: [&str; 3] = ["audioBridge", "cameraBridge", "screenShareBridge"];

/// The capability a `*Bridge=livekit` create needs.
const LIVEKIT: &str = "livekit";

/// Where a create goes: the meeting's record and server, and whether
/// placement made the record just now.
#[derive(Debug)]
pub(super) struct Destination<'a> {
    /// The meeting's record.
    pub(super) meeting: &'a Meeting,
    /// Its server.
    pub(super) server: &'a Server,
    /// Whether the meeting was placed by this create.
    pub(super) placed: bool,
}

/// The server tag a create asks for: tenant override, global override, the
/// request, tenant default, global default (Scalelite's order); blank
/// values do not count.
pub(super) fn requested_tag(state: &AppState, tenant: Option<&ResolvedTenant>, params: &Params) -> Option<String> {
    requested(state, tenant, params, TAG)
}

/// `name`'s effective value, in [`requested_tag`]'s order. For names other
/// than the tag, a request value excluded by `CREATE_EXCLUDE_PARAMS` (global
/// or the tenant's) does not count: it is not forwarded either. Scalelite
/// reads the tag before excluding anything, and so does this.
fn requested(state: &AppState, tenant: Option<&ResolvedTenant>, params: &Params, name: &str) -> Option<String> {
    let policy = &state.config.create_params;
    let excluded = name != TAG
        && policy.exclude.iter().chain(tenant.into_iter().flat_map(|t| t.create_exclude.iter())).any(|e| e == name);
    [
        tenant.and_then(|t| t.override_value(name)),
        policy.override_value(name),
        params.get(name).filter(|_| !excluded),
        tenant.and_then(|t| t.default_value(name)),
        policy.default_value(name),
    ]
    .into_iter()
    .flatten()
    .find(|v| !v.trim().is_empty())
    .map(str::to_owned)
}

/// What the create needs of its server beyond tags: the capabilities of
/// `meta_server-capability` plus `livekit` when a media bridge is
/// `livekit` (unless `LIVEKIT_PLACEMENT=false`), and the preferred regions
/// of `meta_server-region` (request, tenant setting or `CREATE_PARAMS`
/// default/override, in the tag's order). A region is full from
/// `CAPACITY_PER_SERVER`.
pub(super) fn requested_needs(state: &AppState, tenant: Option<&ResolvedTenant>, params: &Params) -> Needs {
    let mut capabilities = parse_list(requested(state, tenant, params, CAPABILITY).as_deref());
    let livekit = state.config.livekit_placement
        && BRIDGES.iter().any(|bridge| {
            requested(state, tenant, params, bridge).is_some_and(|v| v.trim().eq_ignore_ascii_case(LIVEKIT))
        });
    if livekit && !capabilities.iter().any(|c| c == LIVEKIT) {
        capabilities.push(LIVEKIT.to_owned());
    }
    Needs {
        capabilities,
        regions: parse_list(requested(state, tenant, params, REGION).as_deref()),
        capacity: state.config.capacity_per_server,
    }
}

/// The parameters forwarded to `destination`'s server: `params` as the
/// balancer rewrites them (remembering the callback URLs it takes out), in
/// the precedence, lowest first, global defaults < tenant defaults <
/// request < global overrides < tenant overrides.
pub(super) async fn rewrite(
    state: &AppState,
    id: &MeetingId,
    tenant: Option<&ResolvedTenant>,
    destination: &Destination<'_>,
    callback_origin: Option<&str>,
    mut params: Params,
) -> Result<Params, ApiError> {
    let Destination { meeting, server, placed } = *destination;
    // A new meeting gets the stored password. So does a repeated create
    // without one: racing creates of one meeting may reach BBB in any order,
    // and BBB only answers duplicateWarning (not idNotUnique) to a repeat
    // whose password matches. A client's own password is passed through.
    if placed || params.get_nonblank("moderatorPW").is_none() {
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
    // Placement instructions for the balancer, not meeting metadata.
    params.remove(REGION);
    params.remove(CAPABILITY);
    cap_duration(&mut params, state.config.max_meeting_duration);
    crate::lrs::add_payload(state, tenant, server, &mut params).await;
    take_recording_ready_url(state, id, &mut params).await?;
    analytics_callback::take_url(state, id, tenant, callback_origin, &mut params).await?;

    let policy = &state.config.create_params;
    let (empty, no_names) = (Vec::new(), Vec::new());
    let (tenant_defaults, tenant_overrides) = tenant.map_or((&empty, &empty), |t| (&t.defaults, &t.overrides));
    let tenant_exclude = tenant.map_or(&no_names, |t| &t.create_exclude);
    let mut forward = forwarded_params(
        &params,
        &[&policy.exclude, tenant_exclude],
        &[&policy.defaults, tenant_defaults],
        &[&policy.overrides, tenant_overrides],
        &[TAG, REGION, CAPABILITY],
    );
    // Scoped ids: BBB knows the meeting by the record's id, and calls the
    // end callback with it, so that goes through the balancer.
    if let Some(tenant) = tenant.filter(|t| state.config.meeting_scope(Some(t.id())).is_some()) {
        forward.set("meetingID", id.as_str());
        meeting_ended::take_urls(state, id, tenant, callback_origin, &mut forward);
    }
    Ok(forward)
}

/// The XML body forwarded with a POST create: the client's, without the
/// `<module name="…">` elements whose name is excluded (`CREATE_EXCLUDE_PARAMS`,
/// globally or in the tenant's settings), every other byte unchanged. A body
/// that cannot be read while an exclusion applies is not forwarded (BBB could
/// not have read it either); without exclusions it is forwarded untouched,
/// unparsed.
pub(super) fn forwarded_body(state: &AppState, tenant: Option<&ResolvedTenant>, body: Option<Bytes>) -> Option<Bytes> {
    let body = body?;
    let names: Vec<&str> = state
        .config
        .create_params
        .exclude
        .iter()
        .chain(tenant.into_iter().flat_map(|t| t.create_exclude.iter()))
        .map(String::as_str)
        .collect();
    if names.is_empty() {
        return Some(body);
    }
    match remove_modules(&body, &names) {
        Ok(None) => Some(body),
        Ok(Some(filtered)) => {
            debug!("excluded modules removed from the create body");
            Some(Bytes::from(filtered))
        }
        Err(error) => {
            info!(%error, "create body not forwarded: it cannot be read to remove excluded modules");
            None
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
