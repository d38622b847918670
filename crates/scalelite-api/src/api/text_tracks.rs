//! `getRecordingTextTracks` and `putRecordingTextTrack`: authenticated, then
//! refused in BBB's JSON shape (this balancer keeps no text tracks).

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Request, StatusCode, header};

use crate::request::{ApiCall, ApiRequest, BodyKind};
use crate::response::ApiResult;
use crate::state::AppState;

const GET: ApiCall = ApiCall { name: "getRecordingTextTracks", body: BodyKind::Form };
const PUT: ApiCall = ApiCall { name: "putRecordingTextTrack", body: BodyKind::Form };

/// The `messageKey` of the refusal.
const KEY: &str = "notImplemented";
/// Its `message`.
const MESSAGE: &str = "Recording text tracks are not available through this load balancer.";

/// `getRecordingTextTracks`: the checksum is checked (its errors are the
/// XML envelope, as bbb-web renders them for a request without a format),
/// then the JSON refusal.
pub(crate) async fn get_recording_text_tracks(State(state): State<AppState>, request: Request<Body>) -> ApiResult {
    ApiRequest::read(&state, &GET, request).await?;
    Ok(refusal())
}

/// `putRecordingTextTrack` (POST, multipart): as [`get_recording_text_tracks`].
pub(crate) async fn put_recording_text_track(State(state): State<AppState>, request: Request<Body>) -> ApiResult {
    ApiRequest::read(&state, &PUT, request).await?;
    Ok(refusal())
}

/// bbb-web's JSON error: `{"response": {"returncode": "FAILED",
/// "messageKey": ..., "message": ...}}`, `application/json`, HTTP 200.
fn refusal() -> Response {
    let body = serde_json::json!({ "response": { "returncode": "FAILED", "messageKey": KEY, "message": MESSAGE } });
    let mut response = (StatusCode::OK, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
