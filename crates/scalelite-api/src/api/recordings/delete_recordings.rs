//! `deleteRecordings` (GET): removes the files from both trees and marks the
//! recordings deleted (the row stays, without metadata and formats).

use axum::body::Body;
use axum::extract::State;
use http::Request;
use scalelite_core::BbbError;
use scalelite_core::TenantId;
use scalelite_core::markup::Markup;
use scalelite_store::recording_actions;
use tracing::warn;

use super::{record_ids, store, tree_dirs};
use crate::request::{ApiCall, ApiRequest, BodyKind};
use crate::response::{ApiResult, xml};
use crate::state::AppState;

const CALL: ApiCall = ApiCall { name: "deleteRecordings", body: BodyKind::Any };

/// The `internalError` message when files or the database fail.
pub(crate) const DELETE_FAILED: &str = "Unable to delete recording.";

/// Deletes recordings in any state.
pub(crate) async fn delete_recordings(State(state): State<AppState>, request: Request<Body>) -> ApiResult {
    let request = ApiRequest::read(&state, &CALL, request).await?;
    let ids = record_ids(&request)?;
    let store = store(&state)?;
    let recordings = store.recordings_by_ids(&ids, request.tenant_id().map(TenantId::as_str), false).await?;
    if recordings.is_empty() {
        return Err(BbbError::RecordingsNotFound.into());
    }
    let dirs = tree_dirs(&state);
    for recording in recordings {
        // Scalelite only cleans the publish tree, leaving an unpublished
        // recording's files behind forever; both trees are cleaned here.
        if let Err(error) = recording_actions::delete(&**store, &dirs, &recording).await {
            warn!(recording.id = %recording.record_id, %error, "cannot delete recording");
            return Err(BbbError::internal(DELETE_FAILED).into());
        }
    }
    let mut doc = Markup::new();
    doc.open("response").text("returncode", "SUCCESS").text("deleted", "true").close("response");
    Ok(xml(doc.finish()))
}
