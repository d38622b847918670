//! Calls the API makes to services other than BBB: analytics callbacks to
//! front-ends and Keycloak token requests for LRS payloads. Each exchange
//! is bounded like a BBB call: `CONNECT_TIMEOUT` to connect and
//! `RESPONSE_TIMEOUT` for the whole exchange.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt as _, Full, Limited};
use scalelite_bbb_client::{HttpsClient, https_client};
use scalelite_core::config::Config;
use scalelite_core::error::error_chain;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Largest reply body read from a front-end or Keycloak.
const MAX_REPLY_BYTES: usize = 256 * 1024;

/// Analytics deliveries in flight at once per process; more are dropped
/// (and logged) rather than queued without bound.
const MAX_DELIVERIES: usize = 512;

/// An HTTP answer.
#[derive(Clone, Debug)]
pub(crate) struct Answer {
    /// The status code.
    pub(crate) status: u16,
    /// The body (empty when it was larger than 256 KiB or cut off).
    pub(crate) body: Bytes,
}

/// The client and limits for outgoing calls.
#[derive(Clone)]
pub struct Outbound {
    client: HttpsClient,
    deadline: Duration,
    /// Pause before the second analytics attempt (doubled before the third).
    pub(crate) analytics_retry: Duration,
    deliveries: Arc<Semaphore>,
}

impl fmt::Debug for Outbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbound")
            .field("deadline", &self.deadline)
            .field("analytics_retry", &self.analytics_retry)
            .finish_non_exhaustive()
    }
}

impl Outbound {
    /// A client with the configured timeouts.
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            client: https_client(config.connect_timeout),
            deadline: config.response_timeout,
            analytics_retry: config.analytics_callback_retry,
            deliveries: Arc::new(Semaphore::new(MAX_DELIVERIES)),
        }
    }

    /// Relays (analytics callbacks) accepted and not finished yet.
    pub fn deliveries_in_flight(&self) -> usize {
        MAX_DELIVERIES - self.deliveries.available_permits()
    }

    /// A slot for one background delivery, if fewer than the maximum run.
    pub(crate) fn delivery_slot(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.deliveries).try_acquire_owned().ok()
    }

    /// POSTs `body` to `uri`; the answer, or why there is none (no secret
    /// or token is ever part of the message).
    pub(crate) async fn post(
        &self,
        uri: &Uri,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Answer, String> {
        self.send(Method::POST, uri, headers, body).await
    }

    /// GETs `uri`, as [`Outbound::post`].
    pub(crate) async fn get(&self, uri: &Uri, headers: &[(HeaderName, HeaderValue)]) -> Result<Answer, String> {
        self.send(Method::GET, uri, headers, Bytes::new()).await
    }

    async fn send(
        &self,
        method: Method,
        uri: &Uri,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Answer, String> {
        let mut request = Request::builder().method(method).uri(uri.clone());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let request = request.body(Full::new(body)).map_err(|e| format!("cannot build the request: {e}"))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| error_chain(&e))?;
            let status = response.status().as_u16();
            let body = Limited::new(response.into_body(), MAX_REPLY_BYTES)
                .collect()
                .await
                .map(|collected| collected.to_bytes())
                .unwrap_or_default();
            Ok(Answer { status, body })
        };
        match tokio::time::timeout(self.deadline, exchange).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {:?}", self.deadline)),
        }
    }
}

/// `uri` if it is an absolute `http(s)` URL.
pub(crate) fn http_url(url: &str) -> Option<Uri> {
    url.parse::<Uri>().ok().filter(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.authority().is_some())
}
