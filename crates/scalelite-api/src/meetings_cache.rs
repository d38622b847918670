//! The getMeetings cache: the fan-out, kept and refreshed behind the callers.
//!
//! A fan-out asks every online, non-disabled server concurrently (at most
//! `GET_MEETINGS_CONCURRENCY` at a time, each bounded by `RESPONSE_TIMEOUT`)
//! and keeps each server's meetings as one part. Its result (the *copy*)
//! answers every call for `GET_MEETINGS_CACHE_TTL`. After that a call starts
//! one refresh (never more than one at a time) and is answered from the copy
//! without waiting for it, as long as the copy is younger than twice the
//! TTL; only a process without a copy that young waits, as for its first
//! fan-out. So a reply never reflects the servers as they were more than
//! 2 × TTL plus one fan-out ago.
//!
//! A server that fails is left out of the list; a fan-out fails as a whole
//! when every server failed (or the server list could not be read). A
//! failed refresh does not replace the copy: the copy keeps answering until
//! it is 2 × TTL old, then the failure answers for a TTL (the call fails
//! like Scalelite's), and the next call after that tries again. With a TTL
//! of 0 nothing is reused: every call waits for a fan-out (shared with the
//! calls arriving while it runs).
//!
//! The balancer's own creates and ends change the copy at once
//! ([`MeetingsCache::record`]), so a client sees its new meeting listed (and
//! an ended one gone) right after its call; a refresh running at that
//! moment gets the change applied to the servers it asked before it.
//! Another API process's creates show up after this process's next refresh.
//!
//! Replies are rendered once per copy (and per tenant), from fragments
//! rendered once per server part: a refresh renders its reply before it is
//! installed (off the request path), a change re-renders one server's
//! meetings and the next call joins the fragments, and a call on an
//! unchanged copy clones a reference.

mod created;
mod encoded;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt, Shared};
use futures::stream::{self, StreamExt};
use scalelite_bbb_client::{BbbClient, CallError};
use scalelite_core::error::internal;
use scalelite_core::xml::{Element, Node};
use scalelite_core::{BbbError, MeetingId, ServerId, TenantId, scope};
use scalelite_store::{ServerStore, Store};
use tracing::{debug, warn};

pub(crate) use self::created::created_meeting;
pub(crate) use self::encoded::accepts_gzip;
use self::encoded::{Encoder, Reply};
use crate::metrics::ApiMetrics;
use crate::response::{STORE_UNAVAILABLE, success};
use crate::upstream;

/// The call the fan-out sends to every server.
const GET_MEETINGS: &str = "getMeetings";

/// The start of a reply listing meetings, as [`Element::to_document`]
/// renders `success()` with a `meetings` child; the meetings follow at
/// depth [`MEETING_DEPTH`].
const LIST_HEAD: &str = "<?xml version=\"1.0\"?>\n<response>\n  <returncode>SUCCESS</returncode>\n  <meetings>\n";
/// The end of a reply listing meetings.
const LIST_TAIL: &str = "  </meetings>\n</response>\n";
/// The nesting depth of a `meeting` element in a reply.
const MEETING_DEPTH: usize = 2;

/// A change the balancer made to the meetings of a server.
#[derive(Clone, Debug)]
pub(crate) enum Change {
    /// A create the server answered with `SUCCESS`: the meeting as the
    /// server would list it ([`created_meeting`]).
    Created {
        /// The meeting's server.
        server: ServerId,
        /// Its `meeting` element.
        meeting: Element,
    },
    /// An end the server answered with `SUCCESS`.
    Ended {
        /// The meeting's server.
        server: ServerId,
        /// Its id.
        meeting_id: MeetingId,
    },
}

/// A change and when it was made.
#[derive(Debug)]
struct Recorded {
    at: Instant,
    change: Change,
}

/// One server's meetings, as a fan-out received them.
#[derive(Debug)]
struct Part {
    server: ServerId,
    /// When the server was asked: changes made later may be missing.
    asked: Instant,
    meetings: Vec<Listed>,
    /// The meetings without tenant, rendered.
    public: OnceLock<String>,
}

/// A `meeting` element with its id and tenant, shared: a change copies a
/// server's list of references, never the elements.
#[derive(Clone, Debug)]
struct Listed {
    /// The trimmed `metadata/tenant-id`, `None` when absent or blank.
    tenant: Option<Arc<str>>,
    /// `meetingID`.
    id: Option<Arc<str>>,
    element: Arc<Element>,
}

impl Listed {
    fn new(element: Element) -> Self {
        let tenant =
            element.text_at("metadata/tenant-id").map(|t| Arc::from(t.trim())).filter(|t: &Arc<str>| !t.is_empty());
        let id = element.text_at("meetingID").map(Arc::from);
        Self { tenant, id, element: Arc::new(element) }
    }

    fn meeting_id(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

impl Part {
    fn new(server: ServerId, asked: Instant, meetings: Vec<Listed>) -> Self {
        Self { server, asked, meetings, public: OnceLock::new() }
    }

    fn public_fragment(&self) -> &str {
        self.public.get_or_init(|| {
            let mut out = String::new();
            for listed in self.meetings.iter().filter(|m| m.tenant.is_none()) {
                listed.element.render_into(&mut out, MEETING_DEPTH);
            }
            out
        })
    }
}

/// The aggregated answer of one fan-out, with the balancer's changes since.
#[derive(Debug)]
pub(crate) struct Fanout {
    /// When the fan-out finished (the TTL counts from here).
    finished: Instant,
    /// Servers' meetings, in server order.
    parts: Vec<Arc<Part>>,
    /// Number of servers asked.
    queried: usize,
    /// Servers that failed, with the reason.
    failures: Vec<(ServerId, CallError)>,
    /// Set when the server list could not be read.
    store_error: Option<String>,
    /// The reply for callers without a tenant.
    public: OnceLock<Result<Arc<Reply>, BbbError>>,
    /// The replies for tenants, by tenant id.
    tenants: Mutex<HashMap<String, Arc<Reply>>>,
}

type SharedFanout = Shared<BoxFuture<'static, Arc<Fanout>>>;

/// The cache's state, under one lock held for no await.
#[derive(Debug, Default)]
struct Inner {
    /// The newest usable copy, with the changes recorded since applied.
    copy: Option<Arc<Fanout>>,
    /// The newest fan-out when it failed as a whole (newer than `copy`).
    failed: Option<Arc<Fanout>>,
    /// The fan-out in flight.
    refresh: Option<SharedFanout>,
    /// Changes recorded while `refresh` runs, for its result.
    journal: Vec<Recorded>,
}

/// The getMeetings cache (see the module documentation).
#[derive(Debug)]
pub(crate) struct MeetingsCache {
    ttl: Duration,
    inner: Mutex<Inner>,
    /// The gzip encodings of the replies.
    encoder: Encoder,
}

impl MeetingsCache {
    /// A cache whose fan-outs answer for `ttl` after they complete, and are
    /// served while a refresh runs until they are `2 × ttl` old.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self { ttl, inner: Mutex::new(Inner::default()), encoder: Encoder::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The fan-out that answers a call now: the copy when it is young
    /// enough (starting a refresh when it is past the TTL), else the
    /// fan-out in flight or a new one, awaited.
    pub(crate) async fn get(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
        bbb: &BbbClient,
        concurrency: usize,
        metrics: &Arc<ApiMetrics>,
    ) -> Arc<Fanout> {
        let refresh = {
            let mut inner = self.lock();
            let now = Instant::now();
            let max_stale = self.ttl.saturating_mul(2);
            let younger = |fanout: &Fanout, limit: Duration| now.saturating_duration_since(fanout.finished) < limit;
            if let Some(failed) = &inner.failed
                && younger(failed, self.ttl)
            {
                // The last fan-out failed: the copy before it answers while
                // young enough, then the failure answers for its TTL.
                return match &inner.copy {
                    Some(copy) if younger(copy, max_stale) => Arc::clone(copy),
                    _ => Arc::clone(failed),
                };
            }
            if inner.failed.is_none()
                && let Some(copy) = &inner.copy
                && younger(copy, self.ttl)
            {
                return Arc::clone(copy);
            }
            let refresh = match inner.refresh.as_ref().filter(|r| r.peek().is_none()) {
                Some(refresh) => refresh.clone(),
                None => {
                    let refresh = self.start(store, bbb, concurrency, metrics);
                    inner.refresh = Some(refresh.clone());
                    refresh
                }
            };
            if let Some(copy) = &inner.copy
                && younger(copy, max_stale)
            {
                metrics.get_meetings_stale_replies.inc();
                return Arc::clone(copy);
            }
            refresh
        };
        metrics.get_meetings_waits.inc();
        refresh.await
    }

    /// Spawns a fan-out (so it completes and is kept even if every caller
    /// goes away) that installs its result.
    fn start(
        self: &Arc<Self>,
        store: &Arc<dyn Store>,
        bbb: &BbbClient,
        concurrency: usize,
        metrics: &Arc<ApiMetrics>,
    ) -> SharedFanout {
        metrics.get_meetings_fanouts.inc();
        let cache = Arc::clone(self);
        let (store, bbb, metrics) = (Arc::<dyn Store>::clone(store), bbb.clone(), Arc::clone(metrics));
        let task = tokio::spawn(async move {
            let fanout = fan_out(store, bbb, concurrency, metrics).await;
            // Rendered (and, once clients asked for gzip, compressed) off
            // the request path: the first call after the refresh gets the
            // bytes instead of rendering a megabyte.
            let compress = cache.encoder.wanted();
            let fanout = tokio::task::spawn_blocking(move || {
                if let Ok(reply) = fanout.public_reply()
                    && compress
                {
                    reply.compress();
                }
                fanout
            })
            .await
            .unwrap_or_else(|e| Fanout::store_failure(format!("rendering getMeetings: {e}")));
            cache.install(fanout)
        });
        async move { task.await.unwrap_or_else(|e| Arc::new(Fanout::store_failure(format!("fan-out task: {e}")))) }
            .boxed()
            .shared()
    }

    /// Makes a finished fan-out the copy (with the changes recorded while it
    /// ran) or, when it failed as a whole, the failure.
    fn install(&self, mut fanout: Fanout) -> Arc<Fanout> {
        let mut inner = self.lock();
        inner.refresh = None;
        let journal = std::mem::take(&mut inner.journal);
        if fanout.check().is_err() {
            let failed = Arc::new(fanout);
            inner.failed = Some(Arc::clone(&failed));
            return failed;
        }
        for recorded in &journal {
            fanout.apply(&recorded.change, Some(recorded.at));
        }
        let copy = Arc::new(fanout);
        inner.copy = Some(Arc::clone(&copy));
        inner.failed = None;
        copy
    }

    /// The bytes to send for `reply`, and whether they are gzip-encoded
    /// (only when `gzip` is accepted and the encoding is ready; a call
    /// never waits for it, see [`encoded`]).
    pub(crate) fn bytes(&self, reply: &Arc<Reply>, gzip: bool) -> (Bytes, bool) {
        self.encoder.bytes(reply, gzip)
    }

    /// Applies a change the balancer just made to the copy (and to the
    /// refresh in flight, when it finishes).
    ///
    /// A copy too old to be served again (`2 × TTL`) is dropped instead of
    /// changed: without getMeetings calls nothing refreshes it, and a
    /// stream of creates would otherwise grow it without bound.
    pub(crate) fn record(&self, change: Change) {
        let at = Instant::now();
        let mut inner = self.lock();
        if let Some(copy) = &inner.copy {
            if at.saturating_duration_since(copy.finished) >= self.ttl.saturating_mul(2) {
                inner.copy = None;
            } else {
                let mut changed = copy.shallow_clone();
                if changed.apply(&change, None) {
                    inner.copy = Some(Arc::new(changed));
                }
            }
        }
        if inner.refresh.is_some() {
            inner.journal.push(Recorded { at, change });
        }
    }
}

impl Fanout {
    fn new(
        finished: Instant,
        parts: Vec<Arc<Part>>,
        queried: usize,
        failures: Vec<(ServerId, CallError)>,
        store_error: Option<String>,
    ) -> Self {
        Self {
            finished,
            parts,
            queried,
            failures,
            store_error,
            public: OnceLock::new(),
            tenants: Mutex::new(HashMap::new()),
        }
    }

    fn store_failure(message: String) -> Self {
        Self::new(Instant::now(), Vec::new(), 0, Vec::new(), Some(message))
    }

    /// The same fan-out with its own (empty) render caches, sharing the
    /// parts.
    fn shallow_clone(&self) -> Self {
        Self::new(self.finished, self.parts.clone(), self.queried, self.failures.clone(), self.store_error.clone())
    }

    /// Applies `change` to the server's part, unless the server was asked
    /// after `at` (then its answer already shows the change). Returns
    /// whether anything changed.
    fn apply(&mut self, change: &Change, at: Option<Instant>) -> bool {
        let (Change::Created { server, .. } | Change::Ended { server, .. }) = change;
        let index = self.parts.iter().position(|p| &p.server == server);
        if let (Some(at), Some(i)) = (at, index)
            && self.parts[i].asked >= at
        {
            return false;
        }
        let current = index.map_or(&[][..], |i| &self.parts[i].meetings[..]);
        let meetings: Vec<Listed> = match change {
            Change::Created { meeting, .. } => {
                let id = meeting.text_at("meetingID");
                if current.iter().any(|m| m.meeting_id() == id.as_deref()) {
                    return false;
                }
                current.iter().cloned().chain([Listed::new(meeting.clone())]).collect()
            }
            Change::Ended { meeting_id, .. } => {
                if !current.iter().any(|m| m.meeting_id() == Some(meeting_id.as_str())) {
                    return false;
                }
                current.iter().filter(|m| m.meeting_id() != Some(meeting_id.as_str())).cloned().collect()
            }
        };
        let asked = index.map_or_else(Instant::now, |i| self.parts[i].asked);
        let part = Arc::new(Part::new(server.clone(), asked, meetings));
        match index {
            Some(i) => self.parts[i] = part,
            None => self.parts.push(part),
        }
        self.public = OnceLock::new();
        self.tenants.get_mut().unwrap_or_else(PoisonError::into_inner).clear();
        true
    }

    /// The reply for a caller without tenant (meetings that carry a tenant
    /// are hidden), rendered once.
    pub(crate) fn public_reply(&self) -> Result<Arc<Reply>, BbbError> {
        self.public
            .get_or_init(|| {
                self.check()?;
                let fragments: Vec<&str> = self.parts.iter().map(|p| p.public_fragment()).collect();
                Ok(Reply::new(list_document(&fragments)))
            })
            .clone()
    }

    /// The reply for a tenant: only meetings whose BBB metadata `tenant-id`
    /// is the tenant's id; rendered once per tenant. With `scoped` (meeting
    /// ids scoped per tenant), each `meetingID` of the tenant's scope is
    /// shown as the front-end sent it, and so is its end callback URL
    /// ([`scope::show_front_end_metadata`]).
    pub(crate) fn tenant_reply(&self, tenant: &TenantId, scoped: bool) -> Result<Arc<Reply>, BbbError> {
        self.check()?;
        let key = tenant.as_str();
        if let Some(body) = self.tenants.lock().unwrap_or_else(PoisonError::into_inner).get(key) {
            return Ok(Arc::clone(body));
        }
        let mut fragment = String::new();
        for listed in self.parts.iter().flat_map(|p| &p.meetings).filter(|m| m.tenant.as_deref() == Some(key)) {
            match listed.meeting_id().filter(|_| scoped).and_then(|id| scope::unscoped(key, id)) {
                Some(id) => {
                    let mut element = Element::clone(&listed.element);
                    if let Some(child) = element.child_mut("meetingID") {
                        child.children = vec![Node::Text(id.to_owned())];
                    }
                    scope::show_front_end_metadata(&mut element, listed.meeting_id().unwrap_or_default());
                    element.render_into(&mut fragment, MEETING_DEPTH);
                }
                None => listed.element.render_into(&mut fragment, MEETING_DEPTH),
            }
        }
        let body = Reply::new(list_document(&[&fragment]));
        self.tenants.lock().unwrap_or_else(PoisonError::into_inner).insert(key.to_owned(), Arc::clone(&body));
        Ok(body)
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

    /// Meeting ids listed for callers without tenant, in order (tests).
    #[cfg(test)]
    fn public_ids(&self) -> Vec<String> {
        self.parts
            .iter()
            .flat_map(|p| &p.meetings)
            .filter(|m| m.tenant.is_none())
            .filter_map(|m| m.meeting_id().map(str::to_owned))
            .collect()
    }
}

/// The reply listing the meetings rendered in `fragments`, or Scalelite's
/// `noMeetings` reply when there are none.
fn list_document(fragments: &[&str]) -> Bytes {
    let len: usize = fragments.iter().map(|f| f.len()).sum();
    if len == 0 {
        return Bytes::from(no_meetings().to_document(true));
    }
    let mut out = String::with_capacity(LIST_HEAD.len() + len + LIST_TAIL.len());
    out.push_str(LIST_HEAD);
    for fragment in fragments {
        out.push_str(fragment);
    }
    out.push_str(LIST_TAIL);
    Bytes::from(out)
}

async fn fan_out(store: Arc<dyn ServerStore>, bbb: BbbClient, concurrency: usize, metrics: Arc<ApiMetrics>) -> Fanout {
    let servers = match store.servers().await {
        Ok(servers) => servers,
        Err(error) => {
            warn!(%error, "getMeetings could not list servers");
            return Fanout::store_failure(error.to_string());
        }
    };
    let eligible: Vec<_> = servers.into_iter().filter(|s| s.online && !s.is_disabled()).collect();
    let queried = eligible.len();
    let started = Instant::now();
    let results: Vec<_> = stream::iter(eligible)
        .map(|server| {
            let (bbb, metrics) = (bbb.clone(), Arc::clone(&metrics));
            async move {
                let asked = Instant::now();
                let result = upstream::call(&bbb, &metrics, &server, GET_MEETINGS, "", None).await;
                (server.id, asked, result)
            }
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    let mut parts = Vec::with_capacity(results.len());
    let mut failures = Vec::new();
    for (server_id, asked, result) in results {
        match result {
            Ok(mut reply) => {
                let meetings = reply
                    .doc
                    .child_mut("meetings")
                    .map(|list| {
                        std::mem::take(&mut list.children)
                            .into_iter()
                            .filter_map(|node| match node {
                                Node::Element(e) if e.name == "meeting" => Some(Listed::new(e)),
                                _ => None,
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                parts.push(Arc::new(Part::new(server_id, asked, meetings)));
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
    Fanout::new(Instant::now(), parts, queried, failures, None)
}

/// Scalelite's reply when no server has a meeting.
pub(crate) fn no_meetings() -> Element {
    success()
        .with_text_child("messageKey", "noMeetings")
        .with_text_child("message", "no meetings were found on this server")
        .with_child(Element::new("meetings"))
}

#[cfg(test)]
mod tests;
