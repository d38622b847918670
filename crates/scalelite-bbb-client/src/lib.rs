#![doc = include_str!("../README.md")]

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use scalelite_core::error::error_chain;
use scalelite_core::error::internal;
use scalelite_core::sign::signed_url;
use scalelite_core::xml::{self, Element};
use scalelite_core::{Algorithm, BbbError, Secret};

/// Largest reply body accepted from a BBB server.
pub const MAX_REPLY_BYTES: usize = 32 * 1024 * 1024;

/// Connect and response time limits for one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// `CONNECT_TIMEOUT`.
    pub connect: Duration,
    /// `RESPONSE_TIMEOUT`.
    pub response: Duration,
}

impl Timeouts {
    /// Scalelite's shortened limits for a server marked offline: a tenth of
    /// `RESPONSE_TIMEOUT`, but at least 0.2 s to connect and 0.5 s to answer,
    /// and never more than `RESPONSE_TIMEOUT`.
    pub fn for_offline(self) -> Timeouts {
        let r = self.response.as_secs_f64();
        let clamp = |floor: f64| Duration::from_secs_f64(floor.max(r / 10.0).min(r));
        Timeouts { connect: clamp(0.2), response: clamp(0.5) }
    }

    /// The deadline for a whole exchange: `RESPONSE_TIMEOUT`, connecting
    /// included (a pooled connection needs none; a new one is also bounded by
    /// `CONNECT_TIMEOUT`). A hung server therefore costs exactly
    /// `RESPONSE_TIMEOUT`, as in Scalelite.
    fn deadline(self) -> Duration {
        self.response
    }
}

/// Where a call goes.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// The server's API base URL (`…/bigbluebutton/api`).
    pub url: &'a str,
    /// The server's secret.
    pub secret: &'a Secret,
    /// Whether the server is marked online (offline servers get short
    /// timeouts on user-facing calls).
    pub online: bool,
}

/// A successful (`returncode` = `SUCCESS`) reply.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The body as received.
    pub body: Bytes,
    /// The parsed document.
    pub doc: Element,
}

/// Why a call did not produce a `SUCCESS` reply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Connection refused, reset, DNS or TLS failure, invalid URL.
    #[error("transport error: {0}")]
    Transport(String),
    /// No complete reply within the time limit.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// The reply was not a BBB document (no `/response/returncode`).
    #[error("reply has no returncode")]
    NoReturncode,
    /// The server answered `FAILED`.
    #[error("server answered {key}: {message}")]
    Failed {
        /// `messageKey`.
        key: String,
        /// `message`.
        message: String,
    },
}

impl CallError {
    /// The error the front-end sees: BBB's own key for a `FAILED` reply,
    /// otherwise Scalelite's `internalError` with `transport_message` (or
    /// "Response did not include returncode").
    pub fn into_bbb(self, transport_message: &'static str) -> BbbError {
        match self {
            Self::Failed { key, message } => BbbError::Upstream { key, message },
            Self::NoReturncode => BbbError::internal(internal::NO_RETURNCODE),
            Self::Transport(_) | Self::Timeout(_) => BbbError::internal(transport_message),
        }
    }
}

/// A pooled HTTP/1.1 client for `http://` and `https://` URLs (rustls with
/// the system's root certificates, else the bundled Mozilla roots). Shared by
/// every process that calls out: BBB servers, front-end callbacks, Keycloak.
pub type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A pooled client for BBB servers.
#[derive(Clone)]
pub struct BbbClient {
    inner: Arc<Inner>,
}

struct Inner {
    normal: HttpsClient,
    offline: HttpsClient,
    timeouts: Timeouts,
    algorithm: Algorithm,
}

impl fmt::Debug for BbbClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BbbClient")
            .field("timeouts", &self.inner.timeouts)
            .field("algorithm", &self.inner.algorithm)
            .finish_non_exhaustive()
    }
}

impl BbbClient {
    /// A client with the given limits, signing with `algorithm`.
    pub fn new(timeouts: Timeouts, algorithm: Algorithm) -> Self {
        Self {
            inner: Arc::new(Inner {
                normal: https_client(timeouts.connect),
                offline: https_client(timeouts.for_offline().connect),
                timeouts,
                algorithm,
            }),
        }
    }

    /// The algorithm outgoing calls are signed with.
    pub fn algorithm(&self) -> Algorithm {
        self.inner.algorithm
    }

    /// The configured (online) limits.
    pub fn timeouts(&self) -> Timeouts {
        self.inner.timeouts
    }

    /// The signed URL of `call` with the encoded `query` on `target`.
    pub fn url(&self, target: &Target<'_>, call: &str, query: &str) -> String {
        signed_url(target.url, call, query, target.secret, self.inner.algorithm)
    }

    /// Calls `call` on a server with normal timeouts (poller, getMeetings).
    pub async fn get(&self, target: &Target<'_>, call: &str, query: &str) -> Result<Reply, CallError> {
        self.send(target, call, query, None, false).await
    }

    /// Calls `call` for a user request: shortened timeouts when the server is
    /// marked offline, and a POST with `body` (XML) when one is given.
    pub async fn call(
        &self,
        target: &Target<'_>,
        call: &str,
        query: &str,
        xml_body: Option<Bytes>,
    ) -> Result<Reply, CallError> {
        self.send(target, call, query, xml_body, !target.online).await
    }

    async fn send(
        &self,
        target: &Target<'_>,
        call: &str,
        query: &str,
        xml_body: Option<Bytes>,
        offline: bool,
    ) -> Result<Reply, CallError> {
        let url = self.url(target, call, query);
        let (client, timeouts) = if offline {
            (&self.inner.offline, self.inner.timeouts.for_offline())
        } else {
            (&self.inner.normal, self.inner.timeouts)
        };
        let deadline = timeouts.deadline();
        match tokio::time::timeout(deadline, exchange(client, &url, xml_body)).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout(deadline)),
        }
    }
}

async fn exchange(client: &HttpsClient, url: &str, xml_body: Option<Bytes>) -> Result<Reply, CallError> {
    let builder = Request::builder().uri(url).header(header::USER_AGENT, "scalelite-rs");
    let request = match xml_body {
        Some(body) if !body.is_empty() => {
            builder.method(Method::POST).header(header::CONTENT_TYPE, "application/xml").body(Full::new(body))
        }
        _ => builder.method(Method::GET).body(Full::new(Bytes::new())),
    }
    .map_err(|e| CallError::Transport(format!("invalid request: {e}")))?;
    let response = client.request(request).await.map_err(|e| CallError::Transport(error_chain(&e)))?;
    let body = Limited::new(response.into_body(), MAX_REPLY_BYTES)
        .collect()
        .await
        .map_err(|e| CallError::Transport(format!("reading reply: {e}")))?
        .to_bytes();
    classify(body)
}

/// Classifies a reply body the way Scalelite does: the HTTP status is
/// ignored, the body must have `/response/returncode`.
pub fn classify(body: Bytes) -> Result<Reply, CallError> {
    let Ok(doc) = xml::parse(&body) else {
        return Err(CallError::NoReturncode);
    };
    if doc.name != "response" {
        return Err(CallError::NoReturncode);
    }
    let Some(returncode) = doc.text_at("returncode") else {
        return Err(CallError::NoReturncode);
    };
    if returncode.trim() != "SUCCESS" {
        return Err(CallError::Failed {
            key: doc.text_at("messageKey").unwrap_or_default(),
            message: doc.text_at("message").unwrap_or_default(),
        });
    }
    Ok(Reply { body, doc })
}

/// A new [`HttpsClient`] whose connection attempts give up after
/// `connect_timeout`. Callers bound whole exchanges themselves (for
/// example with `tokio::time::timeout`).
pub fn https_client(connect_timeout: Duration) -> HttpsClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = hyper_rustls::HttpsConnectorBuilder::new();
    #[expect(
        clippy::expect_used,
        reason = "fails only for a provider without rustls's default protocol versions; ring has them"
    )]
    let builder = match builder.with_provider_and_native_roots(provider.clone()) {
        Ok(with_roots) => with_roots,
        Err(_) => hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)
            .expect("ring supports the default TLS versions"),
    };
    let connector = builder.https_or_http().enable_http1().wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(32)
        .build(connector)
}

/// `scheme://host[:port]/path` of a URL, without user information or query
/// (either may carry credentials): what logs show of a callback URL.
pub fn redacted_url(url: &str) -> String {
    match url.parse::<http::Uri>() {
        Ok(uri) => {
            let host = uri.authority().map(|a| a.as_str().rsplit('@').next().unwrap_or_default()).unwrap_or_default();
            format!("{}://{host}{}", uri.scheme_str().unwrap_or("?"), uri.path())
        }
        Err(_) => "<invalid URL>".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_timeouts_follow_scalelite() {
        let t = Timeouts { connect: Duration::from_secs(5), response: Duration::from_secs(10) };
        assert_eq!(t.for_offline(), Timeouts { connect: Duration::from_secs(1), response: Duration::from_secs(1) });
        let short = Timeouts { connect: Duration::from_secs(5), response: Duration::from_millis(300) };
        let off = short.for_offline();
        assert_eq!(off.connect, Duration::from_millis(200));
        assert_eq!(off.response, Duration::from_millis(300));
    }

    #[test]
    fn urls_are_logged_without_credentials() {
        assert_eq!(redacted_url("https://user:pw@gl.example.edu:8443/cb?token=abc"), "https://gl.example.edu:8443/cb");
        assert_eq!(redacted_url("http://gl/recording_ready"), "http://gl/recording_ready");
        assert_eq!(redacted_url("not a url"), "<invalid URL>");
    }

    #[test]
    fn classification() {
        let ok = classify(Bytes::from_static(b"<response><returncode>SUCCESS</returncode></response>"));
        assert!(ok.is_ok());
        let failed = classify(Bytes::from_static(
            b"<response><returncode>FAILED</returncode><messageKey>notFound</messageKey><message>m</message></response>",
        ));
        assert_eq!(failed.unwrap_err(), CallError::Failed { key: "notFound".into(), message: "m".into() });
        assert_eq!(classify(Bytes::from_static(b"<html>oops")).unwrap_err(), CallError::NoReturncode);
        assert_eq!(classify(Bytes::from_static(b"Service Unavailable")).unwrap_err(), CallError::NoReturncode);
        assert_eq!(classify(Bytes::from_static(b"<response/>")).unwrap_err(), CallError::NoReturncode);
    }

    #[test]
    fn errors_map_to_scalelite_messages() {
        let e = CallError::Timeout(Duration::from_secs(1)).into_bbb(internal::ACCESS_MEETING);
        assert_eq!(e.message(), "Unable to access meeting on server.");
        let e = CallError::NoReturncode.into_bbb(internal::CREATE);
        assert_eq!(e.message(), "Response did not include returncode");
        let e = CallError::Failed { key: "idNotUnique".into(), message: "x".into() }.into_bbb(internal::CREATE);
        assert_eq!(e.message_key(), "idNotUnique");
    }
}
