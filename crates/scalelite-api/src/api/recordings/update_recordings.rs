//! `updateRecordings` (GET, POST): metadata of all listed recordings and
//! the `protect` flag of the first, in one transaction.

use axum::body::Body;
use axum::extract::State;
use http::Request;
use scalelite_core::TenantId;
use scalelite_core::markup::Markup;
use scalelite_core::params::{is_blank, ruby_boolean};
use tracing::debug;

use super::get_recordings::is_xml_name;
use super::{present, record_ids, store};
use crate::request::{ApiCall, ApiRequest, BodyKind};
use crate::response::{ApiResult, xml};
use crate::state::AppState;

const CALL: ApiCall = ApiCall { name: "updateRecordings", body: BodyKind::Form };

/// Metadata the balancer sets on a tenant's meetings.
const TENANT_KEYS: [&str; 2] = ["tenant-id", "tenant-name"];

/// Sets (`meta_<key>=value`) or removes (`meta_<key>=`) metadata, keys
/// lower-cased, and `protect`. When any listed id is unknown (or listed
/// twice) nothing changes and `updated` is `false`, as in Scalelite.
pub(crate) async fn update_recordings(State(state): State<AppState>, request: Request<Body>) -> ApiResult {
    let request = ApiRequest::read(&state, &CALL, request).await?;
    let ids = record_ids(&request)?;
    let store = store(&state)?;
    let found = store.recordings_by_ids(&ids, request.tenant_id().map(TenantId::as_str), false).await?;
    if found.len() != ids.len() {
        return Ok(updated(false));
    }
    let mut upserts: Vec<(String, String)> = Vec::new();
    let mut deletes: Vec<String> = Vec::new();
    for (name, value) in request.params.iter() {
        let Some(key) = name.strip_prefix("meta_") else { continue };
        let key = key.to_lowercase();
        if !is_xml_name(&key) {
            debug!(key, "ignoring a metadata key that cannot be an XML element name");
            continue;
        }
        // A tenant must not hand its recordings to another tenant (or take
        // them out of tenancy): the tenant keys are the balancer's, not the
        // front-end's. Scalelite lets a tenant rewrite them.
        if request.tenant.is_some() && TENANT_KEYS.contains(&key.as_str()) {
            debug!(key, "ignoring a tenant metadata key in a tenant's updateRecordings");
            continue;
        }
        upserts.retain(|(k, _)| *k != key);
        deletes.retain(|k| *k != key);
        if is_blank(value) {
            deletes.push(key);
        } else {
            upserts.push((key, value.to_owned()));
        }
    }
    let protect = present(&request, "protect").map(ruby_boolean);
    store.update_recordings(&ids, &upserts, &deletes, protect).await?;
    Ok(updated(!upserts.is_empty() || !deletes.is_empty() || protect.is_some()))
}

fn updated(value: bool) -> axum::response::Response {
    let mut doc = Markup::new();
    doc.open("response").text("returncode", "SUCCESS").text("updated", if value { "true" } else { "false" });
    doc.close("response");
    xml(doc.finish())
}
