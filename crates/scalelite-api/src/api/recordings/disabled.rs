//! `RECORDING_DISABLED` (or no database): getRecordings lists nothing, the
//! other recordings calls find nothing. No checksum is required, as in
//! Scalelite.

use axum::response::Response;
use scalelite_core::BbbError;

use super::get_recordings::{RenderOptions, render};
use crate::response::{ApiError, xml};

/// getRecordings: the empty list with `noRecordings`.
pub(crate) async fn get_recordings() -> Response {
    xml(render(&[], &RenderOptions::default()).body)
}

/// publishRecordings, updateRecordings, deleteRecordings: `notFound`.
pub(crate) async fn recordings() -> ApiError {
    ApiError(BbbError::RecordingsNotFound)
}
