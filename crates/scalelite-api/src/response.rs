//! BBB XML responses: success documents, relayed replies and the `FAILED`
//! envelope every error becomes.

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use scalelite_core::BbbError;
use scalelite_core::xml::Element;
use scalelite_store::StoreError;
use tracing::warn;

/// `Content-Type` of every BBB API reply.
pub(crate) const XML_CONTENT_TYPE: &str = "application/xml; charset=utf-8";

/// An XML body with HTTP 200.
pub(crate) fn xml(body: impl Into<Bytes>) -> Response {
    let mut response = (StatusCode::OK, body.into()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(XML_CONTENT_TYPE));
    response
}

/// A document built by this process (with the XML declaration).
pub(crate) fn document(root: &Element) -> Response {
    xml(root.to_document(true))
}

/// A `SUCCESS` response root to add children to.
pub(crate) fn success() -> Element {
    Element::new("response").with_text_child("returncode", "SUCCESS")
}

/// An error answered as the BBB `FAILED` document (HTTP 200).
#[derive(Debug)]
pub(crate) struct ApiError(pub BbbError);

impl From<BbbError> for ApiError {
    fn from(error: BbbError) -> Self {
        Self(error)
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        warn!(%error, "meeting store unavailable");
        Self(BbbError::internal(STORE_UNAVAILABLE))
    }
}

/// The `internalError` message when the meeting store cannot be reached.
pub(crate) const STORE_UNAVAILABLE: &str = "Unable to access the meeting store.";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = xml(self.0.to_xml());
        if let BbbError::Refused { status, .. } = self.0 {
            *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
            if status == 503 {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
        }
        // Lets the request log and metrics see the outcome without parsing.
        response.extensions_mut().insert(Outcome(self.0.message_key().to_owned()));
        response
    }
}

/// The `messageKey` of a `FAILED` reply, attached to the response for the
/// request log.
#[derive(Clone, Debug)]
pub(crate) struct Outcome(pub String);

/// The result type of handlers.
pub(crate) type ApiResult = Result<Response, ApiError>;
