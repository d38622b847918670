//! The catch-all: every unknown call, path or method.

use axum::response::{IntoResponse, Response};
use scalelite_core::BbbError;

use crate::response::ApiError;

/// `unsupportedRequest`, HTTP 200.
pub(crate) async fn unsupported() -> Response {
    ApiError(BbbError::UnsupportedRequest).into_response()
}
