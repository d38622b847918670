//! `sendChatMessage` (BBB 3.0, GET): a chat message from the front-end,
//! posted in the meeting on its server.

use std::borrow::Cow;

use axum::body::Body;
use axum::extract::State;
use http::Request;
use scalelite_bbb_client::CallError;
use scalelite_core::error::internal;
use scalelite_core::params::encode_component_into;
use scalelite_core::{BbbError, Params};
use tracing::info;

use super::{find_meeting, meeting_id, meeting_query};
use crate::request::{ApiCall, ApiRequest, BodyKind};
use crate::response::{ApiResult, xml};
use crate::state::AppState;
use crate::upstream;

const CALL: ApiCall = ApiCall { name: "sendChatMessage", body: BodyKind::Form };

/// bbb-web's limits, counted as Java counts a string's length (UTF-16 code
/// units), so that what passes here passes there.
const MESSAGE_LENGTH: std::ops::RangeInclusive<usize> = 1..=500;
const MAX_USER_NAME: usize = 255;

/// `message` missing (bbb-web 3.0's `@NotNull` on the field).
const MISSING_MESSAGE: BbbError =
    BbbError::Invalid { key: "nullError", message: Cow::Borrowed("You must provide the param message") };
/// `message` empty or longer than 500.
const MESSAGE_SIZE: BbbError = BbbError::Invalid {
    key: "sizeError",
    message: Cow::Borrowed("Param message must be between 1 and 500 characters"),
};
/// `userName` longer than 255.
const USER_NAME_SIZE: BbbError =
    BbbError::Invalid { key: "sizeError", message: Cow::Borrowed("Param userName must not exceed 255 characters") };

/// Checks the parameters as bbb-web does (a missing `meetingID` is
/// `missingParamMeetingID` here, where BBB 3.0 fails with HTTP 500), finds
/// the meeting (tenant-scoped) and sends `meetingID`, `message` and
/// `userName` (when given; BBB's default is "System") to its server. A
/// server that answers `notFound` no longer has the meeting: the record is
/// dropped, if it still points there, and the `notFound` relayed.
pub(crate) async fn send_chat_message(State(state): State<AppState>, request: Request<Body>) -> ApiResult {
    let request = ApiRequest::read(&state, &CALL, request).await?;
    let id = meeting_id(&state, &request)?;
    let query = chat_query(meeting_query(&id), &request.params)?;
    let (meeting, server) = find_meeting(&state, &id, request.tenant_id()).await?.ok_or(BbbError::MeetingNotFound)?;
    match upstream::call(&state.bbb, &state.metrics, &server, CALL.name, &query, None).await {
        Ok(reply) => Ok(xml(reply.body)),
        Err(error) => {
            if let CallError::Failed { key, .. } = &error
                && matches!(key.as_str(), "notFound" | "meetingNotFound")
            {
                info!(meeting.id = %id, server.id = %server.id, "removing meeting its server no longer knows");
                state.store.delete_meeting(&id, Some(&meeting.server_id)).await?;
                state.join_routes.forget(&id);
            }
            Err(error.into_bbb(internal::ACCESS_MEETING).into())
        }
    }
}

/// `query` (the encoded `meetingID`) with `message` and `userName`, once
/// they pass bbb-web's checks.
fn chat_query(mut query: String, params: &Params) -> Result<String, BbbError> {
    let message = params.get("message").ok_or(MISSING_MESSAGE)?;
    if !MESSAGE_LENGTH.contains(&java_length(message)) {
        return Err(MESSAGE_SIZE);
    }
    query.push_str("&message=");
    encode_component_into(&mut query, message);
    if let Some(user_name) = params.get("userName") {
        if java_length(user_name) > MAX_USER_NAME {
            return Err(USER_NAME_SIZE);
        }
        query.push_str("&userName=");
        encode_component_into(&mut query, user_name);
    }
    Ok(query)
}

/// The length Java's `String.length()` gives: UTF-16 code units.
fn java_length(value: &str) -> usize {
    value.encode_utf16().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Result<String, BbbError> {
        chat_query("meetingID=m".to_owned(), &Params::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn message_and_user_name_are_checked_as_bbb_web_checks_them() {
        assert_eq!(query(&[]), Err(MISSING_MESSAGE));
        assert_eq!(query(&[("message", "")]), Err(MESSAGE_SIZE));
        assert!(query(&[("message", &"x".repeat(500))]).is_ok());
        assert_eq!(query(&[("message", &"x".repeat(501))]), Err(MESSAGE_SIZE));
        // Java counts UTF-16 units: 250 emoji are 500, 251 are too many.
        assert!(query(&[("message", &"😀".repeat(250))]).is_ok());
        assert_eq!(query(&[("message", &"😀".repeat(251))]), Err(MESSAGE_SIZE));
        assert_eq!(query(&[("message", "hi"), ("userName", &"u".repeat(256))]), Err(USER_NAME_SIZE));
        assert_eq!(
            query(&[("message", "a & b + ü"), ("userName", "Bot 1")]).as_deref(),
            Ok("meetingID=m&message=a+%26+b+%2B+%C3%BC&userName=Bot+1")
        );
    }
}
