//! The single-flight cache of the getMeetings fan-out.
//!
//! Servers are asked concurrently (at most `GET_MEETINGS_CONCURRENCY` at a
//! time, each bounded by `RESPONSE_TIMEOUT`), and one fan-out answers every
//! call arriving while it runs and for `GET_MEETINGS_CACHE_TTL` afterwards,
//! so a storm of getMeetings costs the BBB servers one request each per
//! interval. A server that fails is left out of the list; the call fails
//! only when every server failed.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::stream::{self, StreamExt};
use scalelite_bbb_client::{BbbClient, CallError};
use scalelite_core::error::internal;
use scalelite_core::xml::Element;
use scalelite_core::{BbbError, ServerId, TenantId};
use scalelite_store::{ServerStore, Store};
use tracing::{debug, warn};

use crate::metrics::ApiMetrics;
use crate::response::{STORE_UNAVAILABLE, success};
use crate::upstream;

/// The call the fan-out sends to every server.
const GET_MEETINGS: &str = "getMeetings";

/// The aggregated answer of one fan-out.
#[derive(Debug)]
pub(crate) struct Fanout {
    /// When the fan-out finished.
    pub(crate) finished: Instant,
    /// `meeting` elements, in server order.
    pub(crate) meetings: Vec<Element>,
    /// Number of servers asked.
    pub(crate) queried: usize,
    /// Servers that failed, with the reason.
    pub(crate) failures: Vec<(ServerId, CallError)>,
    /// Set when the server list could not be read.
    pub(crate) store_error: Option<String>,
    /// The rendered document for callers without a tenant.
    rendered: OnceLock<Result<Bytes, BbbError>>,
}

type SharedFanout = Shared<BoxFuture<'static, Arc<Fanout>>>;

/// Single-flight cache of the fan-out.
#[derive(Debug)]
pub(crate) struct MeetingsCache {
    ttl: Duration,
    slot: Mutex<Option<SharedFanout>>,
}

impl MeetingsCache {
    /// A cache whose results are reused for `ttl` after they complete.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self { ttl, slot: Mutex::new(None) }
    }

    /// The current fan-out: the one in flight, a fresh enough finished one,
    /// or a new one.
    pub(crate) async fn get(
        &self,
        store: &Arc<dyn Store>,
        bbb: &BbbClient,
        concurrency: usize,
        metrics: &Arc<ApiMetrics>,
    ) -> Arc<Fanout> {
        let future = {
            let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
            match slot.as_ref() {
                Some(current) if current.peek().is_none_or(|done| done.finished.elapsed() < self.ttl) => {
                    current.clone()
                }
                _ => {
                    // Spawned so the fan-out completes (and is cached) even if
                    // the caller that started it goes away.
                    metrics.get_meetings_fanouts.inc();
                    let task = tokio::spawn(fan_out(
                        Arc::<dyn Store>::clone(store),
                        bbb.clone(),
                        concurrency,
                        Arc::clone(metrics),
                    ));
                    let future = async move {
                        task.await.unwrap_or_else(|e| Arc::new(Fanout::store_failure(format!("fan-out task: {e}"))))
                    }
                    .boxed()
                    .shared();
                    *slot = Some(future.clone());
                    future
                }
            }
        };
        future.await
    }
}

impl Fanout {
    fn store_failure(message: String) -> Self {
        Self {
            finished: Instant::now(),
            meetings: Vec::new(),
            queried: 0,
            failures: Vec::new(),
            store_error: Some(message),
            rendered: OnceLock::new(),
        }
    }

    /// The reply for a caller without tenant, rendered once per fan-out.
    pub(crate) fn public_reply(&self) -> Result<Bytes, BbbError> {
        self.rendered
            .get_or_init(|| {
                self.check()?;
                // Without multitenancy, meetings that carry a tenant are hidden.
                Ok(Bytes::from(self.render_where(|t| t.is_none_or(str::is_empty))))
            })
            .clone()
    }

    /// The reply for a tenant: only meetings whose BBB metadata `tenant-id`
    /// is the tenant's id.
    pub(crate) fn tenant_reply(&self, tenant: &TenantId) -> Result<Bytes, BbbError> {
        self.check()?;
        Ok(Bytes::from(self.render_where(|t| t == Some(tenant.as_str()))))
    }

    fn check(&self) -> Result<(), BbbError> {
        if self.store_error.is_some() {
            return Err(BbbError::internal(STORE_UNAVAILABLE));
        }
        if self.queried > 0 && self.failures.len() == self.queried {
            let (_, first) = &self.failures[0];
            return Err(first.clone().into_bbb(internal::ACCESS_SERVER));
        }
        Ok(())
    }

    fn render_where(&self, keep: impl Fn(Option<&str>) -> bool) -> String {
        let visible: Vec<Element> = self
            .meetings
            .iter()
            .filter(|m| keep(m.text_at("metadata/tenant-id").as_deref().map(str::trim)))
            .cloned()
            .collect();
        render(visible)
    }
}

async fn fan_out(
    store: Arc<dyn ServerStore>,
    bbb: BbbClient,
    concurrency: usize,
    metrics: Arc<ApiMetrics>,
) -> Arc<Fanout> {
    let servers = match store.servers().await {
        Ok(servers) => servers,
        Err(error) => {
            warn!(%error, "getMeetings could not list servers");
            return Arc::new(Fanout::store_failure(error.to_string()));
        }
    };
    let eligible: Vec<_> = servers.into_iter().filter(|s| s.online && !s.is_disabled()).collect();
    let queried = eligible.len();
    let started = Instant::now();
    let results: Vec<_> = stream::iter(eligible)
        .map(|server| {
            let (bbb, metrics) = (bbb.clone(), Arc::clone(&metrics));
            async move {
                let result = upstream::call(&bbb, &metrics, &server, GET_MEETINGS, "", None).await;
                (server.id, result)
            }
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    let mut meetings = Vec::new();
    let mut failures = Vec::new();
    for (server_id, result) in results {
        match result {
            Ok(mut reply) => {
                if let Some(list) = reply.doc.child_mut("meetings") {
                    meetings.extend(std::mem::take(&mut list.children).into_iter().filter_map(|node| match node {
                        scalelite_core::xml::Node::Element(e) if e.name == "meeting" => Some(e),
                        _ => None,
                    }));
                }
            }
            Err(error) => failures.push((server_id, error)),
        }
    }
    debug!(
        servers = queried,
        failed = failures.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "getMeetings fan-out"
    );
    Arc::new(Fanout {
        finished: Instant::now(),
        meetings,
        queried,
        failures,
        store_error: None,
        rendered: OnceLock::new(),
    })
}

fn render(meetings: Vec<Element>) -> String {
    if meetings.is_empty() {
        return no_meetings().to_document(true);
    }
    let mut list = Element::new("meetings");
    for meeting in meetings {
        list.push_child(meeting);
    }
    success().with_child(list).to_document(true)
}

/// Scalelite's reply when no server has a meeting.
pub(crate) fn no_meetings() -> Element {
    success()
        .with_text_child("messageKey", "noMeetings")
        .with_text_child("message", "no meetings were found on this server")
        .with_child(Element::new("meetings"))
}
