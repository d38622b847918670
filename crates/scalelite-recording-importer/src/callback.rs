//! Recording-ready callbacks (reference §16.1), delivered from a queue in
//! the recording store so retries survive restarts.
//!
//! After an import the meeting's callback URL is queued
//! (`recording_ready_deliveries`). A worker claims due entries (`FOR
//! UPDATE SKIP LOCKED`, hidden for a lease while it works on them) and
//! POSTs `signed_parameters=<JWT>` as a form, the JWT holding
//! `{"meeting_id", "record_id"}` signed with each secret in turn, as
//! Scalelite does:
//!
//! * 2xx: delivered. 404 or 410: the receiver has nothing for this meeting
//!   any more; done, not retried (Scalelite stops there too).
//! * Another status: the next secret is tried; when none is accepted, the
//!   attempt failed.
//! * A transport error or timeout: the attempt failed (other secrets would
//!   not help).
//!
//! A failed attempt is retried after 30 s, doubling up to 1 h, and given up
//! after 30 attempts (about a day). Scalelite tries once; retries are the
//! deliberate difference, since a front-end that is down for a minute
//! should still learn about the recording. Logs show the URL without its
//! query and never a token or secret.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt as _;
use http::{Request, Uri, header};
use http_body_util::{BodyExt as _, Full, Limited};
use scalelite_bbb_client::{HttpsClient, https_client, redacted_url as redacted};
use scalelite_core::error::error_chain;
use scalelite_core::{Secret, TenantId};
use scalelite_store::recordings::{Delivery, DeliveryOutcome, RecordingStore};
use scalelite_store::{StoreError, TenantStore};
use tracing::{error, info, warn};

use crate::settings::CallbackSettings;

/// The secrets that sign a recording-ready callback.
#[async_trait]
pub trait CallbackSecrets: Send + Sync + fmt::Debug + 'static {
    /// The secrets to try, in order, for a recording of `tenant_id`.
    async fn secrets(&self, tenant_id: Option<&str>) -> Result<Vec<Secret>, StoreError>;
}

/// The load-balancer secrets (`LOADBALANCER_SECRET`, then
/// `LOADBALANCER_SECRETS`) for every recording: Scalelite without
/// multitenancy. Multitenant deployments plug in their tenants' secrets.
#[derive(Clone)]
pub struct LoadBalancerSecrets(pub Vec<Secret>);

impl fmt::Debug for LoadBalancerSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadBalancerSecrets").field("count", &self.0.len()).finish()
    }
}

#[async_trait]
impl CallbackSecrets for LoadBalancerSecrets {
    async fn secrets(&self, _tenant_id: Option<&str>) -> Result<Vec<Secret>, StoreError> {
        Ok(self.0.clone())
    }
}

/// Multitenant callbacks: a recording with `tenant-id` metadata is signed
/// with that tenant's secrets (read from the store, so a rolled-over secret
/// is used at once); one without a tenant with the load-balancer secrets.
/// A deleted tenant fails the delivery (it is retried, then given up).
#[derive(Clone)]
pub struct TenantSecrets {
    /// Where tenants live.
    pub store: Arc<dyn TenantStore>,
    /// The load-balancer secrets.
    pub fallback: Vec<Secret>,
}

impl fmt::Debug for TenantSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantSecrets").finish_non_exhaustive()
    }
}

#[async_trait]
impl CallbackSecrets for TenantSecrets {
    async fn secrets(&self, tenant_id: Option<&str>) -> Result<Vec<Secret>, StoreError> {
        let Some(id) = tenant_id.filter(|t| !t.is_empty()) else {
            return Ok(self.fallback.clone());
        };
        match self.store.tenant(&TenantId::new(id)).await? {
            Some(record) => Ok(record.tenant.secret_list().into_iter().map(Secret::new).collect()),
            None => Err(StoreError::NotFound(format!("Couldn't find Tenant with id={id}"))),
        }
    }
}

/// What one round of deliveries did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Callbacks accepted by their receiver (or answered 404/410).
    pub delivered: usize,
    /// Callbacks that failed and wait for a retry.
    pub retrying: usize,
    /// Callbacks given up.
    pub given_up: usize,
}

impl DeliveryReport {
    fn add(&mut self, other: DeliveryReport) {
        self.delivered += other.delivered;
        self.retrying += other.retrying;
        self.given_up += other.given_up;
    }

    fn attempts(&self) -> usize {
        self.delivered + self.retrying + self.given_up
    }
}

/// The result of one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Attempt {
    /// 2xx.
    Delivered(u16),
    /// 404 or 410.
    NothingThere(u16),
    /// Worth retrying.
    Failed(String),
    /// Never deliverable (bad URL, no secret).
    Invalid(String),
}

/// Delivers recording-ready callbacks.
#[derive(Clone)]
pub(crate) struct Deliverer {
    client: HttpsClient,
    settings: CallbackSettings,
    secrets: Arc<dyn CallbackSecrets>,
}

impl fmt::Debug for Deliverer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deliverer").field("secrets", &self.secrets).finish_non_exhaustive()
    }
}

impl Deliverer {
    pub(crate) fn new(settings: CallbackSettings, secrets: Arc<dyn CallbackSecrets>) -> Self {
        Self { client: https_client(settings.connect_timeout), settings, secrets }
    }

    /// Claims and attempts due callbacks until none is left; returns what
    /// happened.
    pub(crate) async fn deliver_due(&self, store: &dyn RecordingStore) -> Result<DeliveryReport, StoreError> {
        let mut report = DeliveryReport::default();
        loop {
            let claimed = store.claim_deliveries(self.settings.batch, self.settings.lease.as_secs() as i64).await?;
            let full = claimed.len() as i64 >= self.settings.batch;
            let round = futures::stream::iter(claimed)
                .map(|delivery| self.deliver(store, delivery))
                .buffer_unordered(self.settings.concurrency.max(1))
                .fold(DeliveryReport::default(), |mut acc, one| async move {
                    acc.add(one);
                    acc
                })
                .await;
            report.add(round);
            if !full || round.attempts() == 0 {
                return Ok(report);
            }
        }
    }

    /// One attempt at one claimed callback, recorded in the queue.
    async fn deliver(&self, store: &dyn RecordingStore, delivery: Delivery) -> DeliveryReport {
        let attempt = self.attempt(&delivery).await;
        let outcome = outcome(&attempt, delivery.attempts, &self.settings);
        let url = redacted(&delivery.url);
        let number = delivery.attempts + 1;
        let (record_id, meeting_id) = (&delivery.record_id, &delivery.meeting_id);
        let error = match &attempt {
            Attempt::Delivered(status) => {
                info!(record_id, meeting_id, %url, status, attempt = number, "recording-ready callback delivered");
                None
            }
            Attempt::NothingThere(status) => {
                info!(record_id, meeting_id, %url, status, "recording-ready callback: the receiver knows no such meeting");
                Some(format!("HTTP {status}"))
            }
            Attempt::Failed(e) | Attempt::Invalid(e) => Some(e.clone()),
        };
        match (&outcome, &error) {
            (DeliveryOutcome::Retry { in_secs }, Some(e)) => warn!(
                record_id, meeting_id, %url, attempt = number, error = %e, retry_in_secs = in_secs,
                "recording-ready callback failed; will retry"
            ),
            (DeliveryOutcome::GiveUp, Some(e)) => error!(
                record_id, meeting_id, %url, attempt = number, error = %e,
                "recording-ready callback given up"
            ),
            _ => {}
        }
        if let Err(e) = store.finish_delivery(delivery.id, outcome, error.as_deref()).await {
            // The claim expires and the callback is attempted again.
            warn!(record_id, error = %e, "cannot record the callback attempt");
        }
        match outcome {
            DeliveryOutcome::Done => DeliveryReport { delivered: 1, ..DeliveryReport::default() },
            DeliveryOutcome::Retry { .. } => DeliveryReport { retrying: 1, ..DeliveryReport::default() },
            DeliveryOutcome::GiveUp => DeliveryReport { given_up: 1, ..DeliveryReport::default() },
        }
    }

    async fn attempt(&self, delivery: &Delivery) -> Attempt {
        let uri = match delivery.url.parse::<Uri>() {
            Ok(uri) if matches!(uri.scheme_str(), Some("http" | "https")) && uri.authority().is_some() => uri,
            _ => return Attempt::Invalid("the callback URL is not an http(s) URL".into()),
        };
        let secrets = match self.secrets.secrets(delivery.tenant_id.as_deref()).await {
            Ok(secrets) if secrets.is_empty() => return Attempt::Invalid("no secret to sign the callback with".into()),
            Ok(secrets) => secrets,
            Err(e) => return Attempt::Failed(format!("cannot read the secrets: {e}")),
        };
        let mut refused = Vec::new();
        for secret in &secrets {
            let token = scalelite_core::jwt::recording_ready(
                &delivery.meeting_id,
                &delivery.record_id,
                secret,
                self.settings.algorithm,
            );
            let body =
                form_urlencoded::Serializer::new(String::new()).append_pair("signed_parameters", &token).finish();
            match self.post(&uri, body).await {
                Ok(status) if (200..300).contains(&status) => return Attempt::Delivered(status),
                Ok(status @ (404 | 410)) => return Attempt::NothingThere(status),
                Ok(status) => refused.push(status.to_string()),
                Err(e) => return Attempt::Failed(e),
            }
        }
        Attempt::Failed(format!("HTTP {}", refused.join(", ")))
    }

    /// POSTs a form; the status, or why there is none.
    async fn post(&self, uri: &Uri, body: String) -> Result<u16, String> {
        let request = Request::post(uri.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::USER_AGENT, concat!("scalelite-recording-importer/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let exchange = async {
            let response = self.client.request(request).await.map_err(|e| error_chain(&e))?;
            let status = response.status().as_u16();
            // Read a bounded body so the connection can be reused.
            let _ = Limited::new(response.into_body(), 64 * 1024).collect().await;
            Ok(status)
        };
        match tokio::time::timeout(self.settings.timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {:?}", self.settings.timeout)),
        }
    }
}

/// What an attempt means for the queue.
fn outcome(attempt: &Attempt, attempts_before: i32, settings: &CallbackSettings) -> DeliveryOutcome {
    match attempt {
        Attempt::Delivered(_) | Attempt::NothingThere(_) => DeliveryOutcome::Done,
        Attempt::Invalid(_) => DeliveryOutcome::GiveUp,
        Attempt::Failed(_) => {
            let number = attempts_before.saturating_add(1);
            if number >= settings.max_attempts {
                DeliveryOutcome::GiveUp
            } else {
                let pause = settings.retry.after(number.max(1) as u32);
                DeliveryOutcome::Retry { in_secs: pause.as_secs().max(1) as i64 }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use scalelite_core::config::{Config, Env};

    use super::*;
    use crate::settings::Settings;

    fn settings() -> CallbackSettings {
        Settings::from_config(&Config::from_env(&Env::default()).unwrap()).callbacks
    }

    #[test]
    fn retries_back_off_and_end() {
        let s = settings();
        let failed = Attempt::Failed("HTTP 500".into());
        assert_eq!(outcome(&failed, 0, &s), DeliveryOutcome::Retry { in_secs: 30 });
        assert_eq!(outcome(&failed, 1, &s), DeliveryOutcome::Retry { in_secs: 60 });
        assert_eq!(outcome(&failed, 10, &s), DeliveryOutcome::Retry { in_secs: 3600 });
        assert_eq!(outcome(&failed, s.max_attempts - 1, &s), DeliveryOutcome::GiveUp);
        assert_eq!(outcome(&Attempt::Delivered(204), 3, &s), DeliveryOutcome::Done);
        assert_eq!(outcome(&Attempt::NothingThere(410), 0, &s), DeliveryOutcome::Done);
        assert_eq!(outcome(&Attempt::Invalid("x".into()), 0, &s), DeliveryOutcome::GiveUp);
    }

    #[test]
    fn secrets_are_not_debug_printed() {
        let s = LoadBalancerSecrets(vec![Secret::new("very-secret")]);
        assert!(!format!("{s:?}").contains("very-secret"));
    }
}
