//! The BBB API error catalogue and the `FAILED` envelope every error becomes.

use std::borrow::Cow;

use crate::xml::Element;

/// Every way a BBB API call can fail, with Scalelite's exact
/// `messageKey`/`message` pairs. All of them are answered with HTTP 200.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BbbError {
    /// Bad, missing or unverifiable checksum.
    #[error("checksumError")]
    ChecksumError,
    /// The meeting is not known (getMeetingInfo, end, join, insertDocument).
    #[error("notFound (meeting)")]
    MeetingNotFound,
    /// No recording matched (publish/delete, or recordings disabled).
    #[error("notFound (recordings)")]
    RecordingsNotFound,
    /// `meetingID` missing or empty.
    #[error("missingParamMeetingID")]
    MissingParamMeetingId,
    /// `recordID` missing or empty.
    #[error("missingParamRecordID")]
    MissingParamRecordId,
    /// `meetingID` held bytes that are not UTF-8 (bbb-web's answer to a
    /// meeting id it cannot keep: `validationError`).
    #[error("validationError (meeting ID)")]
    InvalidMeetingId,
    /// `publish` missing or empty.
    #[error("missingParamPublish")]
    MissingParamPublish,
    /// getRecordings without `meetingID`/`recordID` while filtered.
    #[error("missingParameters")]
    MissingParameters,
    /// Another required parameter is missing (Rails' message).
    #[error("missing parameter {0}")]
    MissingParam(String),
    /// Unknown call or method.
    #[error("unsupportedRequest")]
    UnsupportedRequest,
    /// POST with a content type the call does not accept.
    #[error("unsupportedContentType")]
    UnsupportedContentType,
    /// The meeting's server is offline or disabled.
    #[error("serverUnavailable")]
    ServerUnavailable,
    /// A required server tag matches no available server; holds the tag list.
    #[error("serverTagUnavailable")]
    ServerTagUnavailable(String),
    /// No available server offers every capability a create needs (e.g.
    /// `livekit` for `audioBridge=livekit`); holds the capability list. New.
    #[error("serverCapabilityUnavailable")]
    ServerCapabilityUnavailable(String),
    /// Scalelite's `internalError` with its message.
    #[error("internalError: {0}")]
    Internal(Cow<'static, str>),
    /// A request refused before it was authenticated because of its size
    /// or the load (body too large, too many parameters, too many bodies
    /// being read at once): `internalError`, with an HTTP status other than
    /// 200 so that proxies and clients see the refusal.
    #[error("refused ({status}): {message}")]
    Refused {
        /// The HTTP status of the reply.
        status: u16,
        /// The `message` of the reply.
        message: &'static str,
    },
    /// A parameter bbb-web's validation refuses, with bbb-web's key
    /// (`nullError`, `sizeError`) and message.
    #[error("{key}: {message}")]
    Invalid {
        /// The `messageKey`.
        key: &'static str,
        /// The `message`.
        message: Cow<'static, str>,
    },
    /// A per-tenant limit refused the request ([`limit`]): its own key.
    #[error("limit {key}")]
    Limit {
        /// The `messageKey`.
        key: &'static str,
        /// The `message`.
        message: Cow<'static, str>,
    },
    /// A BBB server answered `FAILED`; its key and message are relayed.
    #[error("upstream {key}")]
    Upstream {
        /// The server's `messageKey`.
        key: String,
        /// The server's `message`.
        message: String,
    },
}

/// `internalError` texts used by several calls.
pub mod internal {
    /// A transport failure reaching the meeting's server.
    pub const ACCESS_MEETING: &str = "Unable to access meeting on server.";
    /// A transport failure during getMeetings.
    pub const ACCESS_SERVER: &str = "Unable to access server.";
    /// A transport failure forwarding create.
    pub const CREATE: &str = "Unable to create meeting on server.";
    /// A transport failure forwarding insertDocument.
    pub const INSERT_DOCUMENT: &str = "Unable to insert document on server.";
    /// No server can take a new meeting.
    pub const NO_SERVERS: &str = "Could not find any available servers.";
    /// The server's reply had no `/response/returncode`.
    pub const NO_RETURNCODE: &str = "Response did not include returncode";
}

/// Refusals by a tenant's limits ([`BbbError::Limit`]), answered like any
/// BBB error (`FAILED`, HTTP 200), each with its own `messageKey`.
pub mod limit {
    use super::BbbError;

    /// A create of a new meeting beyond the tenant's concurrent meetings.
    pub fn max_meetings(limit: u32) -> BbbError {
        BbbError::Limit {
            key: "maxMeetingsReached",
            message: format!("The maximum number of concurrent meetings ({limit}) has been reached.").into(),
        }
    }

    /// A join beyond the tenant's participants (bbb-web's own key for a
    /// full meeting, which front-ends know).
    pub fn max_participants(limit: u32) -> BbbError {
        BbbError::Limit {
            key: "maxParticipantsReached",
            message: format!("The maximum number of participants ({limit}) has been reached.").into(),
        }
    }

    /// A request beyond the tenant's rate.
    pub fn rate(per_minute: u32) -> BbbError {
        BbbError::Limit {
            key: "rateLimitExceeded",
            message: format!("Too many requests (at most {per_minute} a minute); try again shortly.").into(),
        }
    }
}

/// Refusals at the edge ([`BbbError::Refused`]).
pub mod refused {
    use super::BbbError;

    /// A body larger than `MAX_REQUEST_BODY_BYTES` (HTTP 413).
    pub const TOO_LARGE: BbbError = BbbError::Refused { status: 413, message: "The request body is too large." };
    /// More parameters than `MAX_REQUEST_PARAMS` (HTTP 400).
    pub const TOO_MANY_PARAMS: BbbError =
        BbbError::Refused { status: 400, message: "The request has too many parameters." };
    /// `MAX_UNAUTHENTICATED_BODY_BYTES` are in use by other requests (HTTP 503).
    pub const BUSY: BbbError =
        BbbError::Refused { status: 503, message: "Too many request bodies are being read; try again." };
    /// A body that stopped arriving or was cut off (HTTP 400).
    pub const UNREADABLE: BbbError = BbbError::Refused { status: 400, message: "Unable to read the request body." };
}

impl BbbError {
    /// An `internalError` with a fixed message.
    pub const fn internal(message: &'static str) -> Self {
        Self::Internal(Cow::Borrowed(message))
    }

    /// The `messageKey` sent to the client.
    pub fn message_key(&self) -> &str {
        match self {
            Self::ChecksumError => "checksumError",
            Self::MeetingNotFound | Self::RecordingsNotFound => "notFound",
            Self::MissingParamMeetingId => "missingParamMeetingID",
            Self::MissingParamRecordId => "missingParamRecordID",
            Self::MissingParamPublish => "missingParamPublish",
            Self::InvalidMeetingId => "validationError",
            Self::MissingParameters => "missingParameters",
            Self::MissingParam(_) | Self::Internal(_) | Self::Refused { .. } => "internalError",
            Self::UnsupportedRequest => "unsupportedRequest",
            Self::UnsupportedContentType => "unsupportedContentType",
            Self::ServerUnavailable => "serverUnavailable",
            Self::ServerTagUnavailable(_) => "serverTagUnavailable",
            Self::ServerCapabilityUnavailable(_) => "serverCapabilityUnavailable",
            Self::Invalid { key, .. } | Self::Limit { key, .. } => key,
            Self::Upstream { key, .. } => key,
        }
    }

    /// The `message` sent to the client.
    pub fn message(&self) -> Cow<'_, str> {
        match self {
            Self::ChecksumError => "You did not pass the checksum security check".into(),
            Self::MeetingNotFound => {
                "We could not find a meeting with that meeting ID - perhaps the meeting is not yet running?".into()
            }
            Self::RecordingsNotFound => "We could not find recordings".into(),
            Self::MissingParamMeetingId => "You must specify a meeting ID for the meeting.".into(),
            Self::MissingParamRecordId => "You must specify a recordID.".into(),
            Self::MissingParamPublish => "You must specify a publish value true or false.".into(),
            Self::InvalidMeetingId => "Invalid meeting ID".into(),
            Self::MissingParameters => "param meetingID or recordID must be included.".into(),
            Self::MissingParam(name) => format!("param is missing or the value is empty: {name}").into(),
            Self::UnsupportedRequest => "This request is not supported.".into(),
            Self::UnsupportedContentType => "POST request Content-Type is missing or unsupported".into(),
            Self::ServerUnavailable => "The server for this meeting is disabled/offline.".into(),
            Self::ServerTagUnavailable(tags) => {
                format!("There is no available server with the required tag={tags}.").into()
            }
            Self::ServerCapabilityUnavailable(capabilities) => {
                format!("There is no available server with the required capability={capabilities}.").into()
            }
            Self::Internal(message) => Cow::Borrowed(message),
            Self::Refused { message, .. } => Cow::Borrowed(message),
            Self::Invalid { message, .. } => Cow::Borrowed(message),
            Self::Limit { message, .. } => Cow::Borrowed(message),
            Self::Upstream { message, .. } => Cow::Borrowed(message),
        }
    }

    /// The `FAILED` envelope as an element tree.
    pub fn to_element(&self) -> Element {
        Element::new("response")
            .with_text_child("returncode", "FAILED")
            .with_text_child("messageKey", self.message_key())
            .with_text_child("message", self.message())
    }

    /// The `FAILED` document, as Scalelite renders it.
    pub fn to_xml(&self) -> String {
        self.to_element().to_document(true)
    }
}

/// An error and its sources on one line, `outer: inner: …` (transport
/// errors of hyper say what happened only in their sources).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope() {
        insta::assert_snapshot!(BbbError::ChecksumError.to_xml(), @r#"
        <?xml version="1.0"?>
        <response>
          <returncode>FAILED</returncode>
          <messageKey>checksumError</messageKey>
          <message>You did not pass the checksum security check</message>
        </response>
        "#);
    }

    #[test]
    fn keys_and_messages() {
        let tag = BbbError::ServerTagUnavailable("a;b".into());
        assert_eq!(tag.message_key(), "serverTagUnavailable");
        assert_eq!(tag.message(), "There is no available server with the required tag=a;b.");
        let missing = BbbError::MissingParam("name".into());
        assert_eq!(missing.message_key(), "internalError");
        assert_eq!(missing.message(), "param is missing or the value is empty: name");
        let invalid = BbbError::InvalidMeetingId;
        assert_eq!((invalid.message_key(), invalid.message()), ("validationError", "Invalid meeting ID".into()));
        let upstream = BbbError::Upstream { key: "idNotUnique".into(), message: "dup".into() };
        assert_eq!(upstream.message_key(), "idNotUnique");
    }
}
