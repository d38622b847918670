//! `publishRecordings` (GET): moves the format directories between the
//! publish and unpublish trees, then records the new state.

use axum::body::Body;
use axum::extract::State;
use http::Request;
use scalelite_core::BbbError;
use scalelite_core::TenantId;
use scalelite_core::markup::Markup;
use scalelite_store::trees::{Trees, move_format};
use tracing::warn;

use super::{present, record_ids, store};
use crate::request::{ApiCall, ApiRequest, BodyKind};
use crate::response::{ApiResult, xml};
use crate::state::AppState;

const CALL: ApiCall = ApiCall { name: "publishRecordings", body: BodyKind::Any };

/// The `internalError` message when files or the database fail.
pub(crate) const PUBLISH_FAILED: &str = "Unable to publish/unpublish recording.";

/// Publishes (`publish=true`, any case) or unpublishes recordings.
pub(crate) async fn publish_recordings(State(state): State<AppState>, request: Request<Body>) -> ApiResult {
    let request = ApiRequest::read(&state, &CALL, request).await?;
    let ids = record_ids(&request)?;
    let publish = present(&request, "publish").ok_or(BbbError::MissingParamPublish)?.eq_ignore_ascii_case("true");
    let store = store(&state)?;
    let recordings = store.recordings_by_ids(&ids, request.tenant_id().map(TenantId::as_str), true).await?;
    if recordings.is_empty() {
        return Err(BbbError::RecordingsNotFound.into());
    }
    let config = &state.config.recordings;
    // Scalelite selects `where.not(published: publish)`: SQL leaves out a
    // NULL `published`, so such a row is neither moved nor changed.
    for recording in recordings.into_iter().filter(|r| r.published.is_some_and(|p| p != publish)) {
        let (published, unpublished) = (config.publish_dir.clone(), config.unpublish_dir.clone());
        let (formats, record_id) = (recording.formats.clone(), recording.record_id.clone());
        let moved = tokio::task::spawn_blocking(move || {
            let trees = Trees { publish: &published, unpublish: &unpublished };
            formats.iter().try_for_each(|format| move_format(trees, format, &record_id, publish))
        })
        .await;
        if let Err(error) = moved.map_err(std::io::Error::other).and_then(|r| r) {
            warn!(recording.id = %recording.record_id, publish, %error, "cannot move recording files");
            return Err(BbbError::internal(PUBLISH_FAILED).into());
        }
        if let Err(error) = store.set_published(recording.id, publish).await {
            warn!(recording.id = %recording.record_id, publish, %error, "cannot record publish state");
            return Err(BbbError::internal(PUBLISH_FAILED).into());
        }
    }
    let mut xml_doc = Markup::new();
    xml_doc.open("response").text("returncode", "SUCCESS").text("published", if publish { "true" } else { "false" });
    xml_doc.close("response");
    Ok(xml(xml_doc.finish()))
}
