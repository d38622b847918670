//! `GET|POST /bigbluebutton/api`: the version document (no checksum).

use axum::extract::State;
use axum::response::Response;

use crate::response::{document, success};
use crate::state::AppState;

/// Answers `SUCCESS`, version `2.0` and the `BUILD_NUMBER` when set.
pub(crate) async fn index(State(state): State<AppState>) -> Response {
    let mut root = success().with_text_child("version", "2.0");
    if let Some(build) = &state.config.build_number {
        root.push_text_child("build", build.clone());
    }
    document(&root)
}
