//! The recordings calls. They read and change the recordings store and
//! the publish/unpublish directories; no BBB server is involved.
//!
//! Without `DATABASE_URL`, or with `RECORDING_DISABLED`, the calls answer as
//! Scalelite's disabled routes do ([`disabled`]).

pub(crate) mod delete_recordings;
pub(crate) mod disabled;
pub(crate) mod get_recordings;
pub(crate) mod publish_recordings;
pub(crate) mod update_recordings;

use std::sync::Arc;

use axum::routing::MethodRouter;
use scalelite_core::BbbError;
use scalelite_core::params::{is_blank, ruby_split};
use scalelite_store::RecordingStore;
use scalelite_store::recording_actions::TreeDirs;

use crate::request::ApiRequest;
use crate::state::AppState;

/// Whether the recordings calls are served (else [`disabled`]).
pub(crate) fn enabled(state: &AppState) -> bool {
    !state.config.recordings.disabled && state.recordings.is_some()
}

/// The recordings routes run `enabled` when [`enabled`] holds, else
/// `disabled` (see [`super::CALLS`]).
pub(crate) fn unless_disabled(
    state: &AppState,
    enabled: MethodRouter<AppState>,
    disabled: MethodRouter<AppState>,
) -> MethodRouter<AppState> {
    if self::enabled(state) { enabled } else { disabled }
}

/// The recordings store; only called from routes installed when
/// [`enabled`] holds.
pub(crate) fn store(state: &AppState) -> Result<&Arc<dyn RecordingStore>, BbbError> {
    state.recordings.as_ref().ok_or(BbbError::RecordingsNotFound)
}

/// The publish and unpublish trees, or the bucket.
pub(crate) fn tree_dirs(state: &AppState) -> TreeDirs {
    let config = &state.config.recordings;
    TreeDirs {
        publish: config.publish_dir.clone(),
        unpublish: config.unpublish_dir.clone(),
        s3: state.recording_bucket.clone(),
    }
}

/// A parameter unless it is absent or blank (Rails' `present?`).
pub(crate) fn present<'a>(request: &'a ApiRequest, name: &str) -> Option<&'a str> {
    request.params.get(name).filter(|v| !is_blank(v))
}

/// The required `recordID` list (comma-separated).
pub(crate) fn record_ids(request: &ApiRequest) -> Result<Vec<String>, BbbError> {
    let raw = present(request, "recordID").ok_or(BbbError::MissingParamRecordId)?;
    Ok(ruby_split(raw, ',').into_iter().map(str::to_owned).collect())
}
