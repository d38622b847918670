//! The recordings calls. They read and change the PostgreSQL database and
//! the publish/unpublish directories; no BBB server is involved.
//!
//! Without `DATABASE_URL`, or with `RECORDING_DISABLED`, the calls answer as
//! Scalelite's disabled routes do ([`disabled`]).

pub mod delete_recordings;
pub mod disabled;
pub mod get_recordings;
pub mod publish_recordings;
pub mod update_recordings;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use scalelite_core::BbbError;
use scalelite_core::params::{is_blank, ruby_split};
use scalelite_store::RecordingStore;

use crate::request::ApiRequest;
use crate::state::AppState;

/// Whether the recordings calls are served (else [`disabled`]).
pub fn enabled(state: &AppState) -> bool {
    !state.config.recordings.disabled && state.recordings.is_some()
}

/// The routes of the four recordings calls (HEAD as GET; other methods get
/// `unsupportedRequest`).
pub fn routes(state: &AppState) -> Router<AppState> {
    use super::unsupported::unsupported as fallback;
    let path = |call: &str| format!("/bigbluebutton/api/{call}");
    if enabled(state) {
        Router::new()
            .route(
                &path("getRecordings"),
                get(get_recordings::get_recordings).post(get_recordings::get_recordings).fallback(fallback),
            )
            .route(&path("publishRecordings"), get(publish_recordings::publish_recordings).fallback(fallback))
            .route(
                &path("updateRecordings"),
                get(update_recordings::update_recordings).post(update_recordings::update_recordings).fallback(fallback),
            )
            .route(&path("deleteRecordings"), get(delete_recordings::delete_recordings).fallback(fallback))
    } else {
        Router::new()
            .route(
                &path("getRecordings"),
                get(disabled::get_recordings).post(disabled::get_recordings).fallback(fallback),
            )
            .route(&path("publishRecordings"), get(disabled::recordings).fallback(fallback))
            .route(&path("updateRecordings"), get(disabled::recordings).post(disabled::recordings).fallback(fallback))
            .route(&path("deleteRecordings"), get(disabled::recordings).fallback(fallback))
    }
}

/// The recordings store; only called from routes installed when
/// [`enabled`] holds.
pub(crate) fn store(state: &AppState) -> Result<&Arc<dyn RecordingStore>, BbbError> {
    state.recordings.as_ref().ok_or(BbbError::RecordingsNotFound)
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
