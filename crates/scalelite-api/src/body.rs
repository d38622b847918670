//! Reading request bodies with bounded memory and time.
//!
//! Every body is read through [`read`]: a declared `Content-Length` over the
//! limit is refused before a byte is read, the body is read only up to the
//! limit, into one buffer sized by the declaration, and a pause longer than
//! the stall timeout ends it. A body read before its request is
//! authenticated also takes its size from the [`BodyBudget`] shared by all
//! requests: when the budget is spent the request is refused at once, so no
//! number of unauthenticated requests can hold more than the budget.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, header};
use http_body::Body as _;
use http_body_util::BodyExt as _;
use scalelite_core::BbbError;
use scalelite_core::error::refused;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The bytes that unauthenticated request bodies may hold at once, shared by
/// all requests of the process (`MAX_UNAUTHENTICATED_BODY_BYTES`).
#[derive(Clone, Debug)]
pub struct BodyBudget {
    semaphore: Arc<Semaphore>,
}

impl BodyBudget {
    /// A budget of `bytes`.
    pub(crate) fn new(bytes: usize) -> Self {
        Self { semaphore: Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))) }
    }

    /// Bytes not taken by bodies being read or checked right now.
    pub fn available(&self) -> usize {
        self.semaphore.available_permits()
    }

    fn take(&self, bytes: usize) -> Result<Option<OwnedSemaphorePermit>, BbbError> {
        if bytes == 0 {
            return Ok(None);
        }
        let bytes = u32::try_from(bytes).map_err(|_| refused::TOO_LARGE)?;
        self.semaphore.clone().try_acquire_many_owned(bytes).map(Some).map_err(|_| refused::BUSY)
    }
}

/// How a body is read.
#[derive(Clone, Debug)]
pub(crate) struct BodyLimits {
    /// Largest body accepted (`MAX_REQUEST_BODY_BYTES`).
    pub(crate) max_bytes: usize,
    /// Longest pause between two pieces of the body.
    pub(crate) stall: Duration,
    /// The shared budget, for bodies read before authentication.
    pub(crate) budget: Option<BodyBudget>,
}

impl BodyLimits {
    /// The same limits for a request already authenticated: no budget.
    pub(crate) fn authenticated(&self) -> Self {
        Self { budget: None, ..self.clone() }
    }
}

/// A body read into memory. While it lives, its size stays taken from the
/// budget it was read under.
#[derive(Debug)]
pub(crate) struct ReadBody {
    /// The body.
    pub(crate) bytes: Bytes,
    _permit: Option<OwnedSemaphorePermit>,
}

impl ReadBody {
    /// An empty body.
    pub(crate) fn empty() -> Self {
        Self { bytes: Bytes::new(), _permit: None }
    }
}

/// Whether `body` is known to be empty without reading it.
pub(crate) fn is_empty(body: &Body) -> bool {
    body.size_hint().exact() == Some(0)
}

/// The declared `Content-Length`, if any and well-formed.
pub(crate) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Reads `body` within `limits` (see the module documentation).
pub(crate) async fn read(body: Body, headers: &HeaderMap, limits: BodyLimits) -> Result<ReadBody, BbbError> {
    let declared = declared_length(headers).or_else(|| body.size_hint().exact());
    if declared.is_some_and(|n| n > limits.max_bytes as u64) {
        return Err(refused::TOO_LARGE);
    }
    if declared == Some(0) {
        return Ok(ReadBody::empty());
    }
    // The declared size is taken at once; a body without one takes what
    // arrives, piece by piece.
    let mut permit = match (&limits.budget, declared) {
        (Some(budget), Some(n)) => budget.take(n as usize)?,
        _ => None,
    };
    let mut buffer = BytesMut::with_capacity(declared.map_or(0, |n| n as usize));
    let mut body = body;
    loop {
        let frame = match tokio::time::timeout(limits.stall, body.frame()).await {
            Err(_) | Ok(Some(Err(_))) => return Err(refused::UNREADABLE),
            Ok(None) => break,
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buffer.len() + data.len() > limits.max_bytes {
            return Err(refused::TOO_LARGE);
        }
        if let (Some(budget), None) = (&limits.budget, declared)
            && let Some(more) = budget.take(data.len())?
        {
            match permit.as_mut() {
                Some(held) => held.merge(more),
                None => permit = Some(more),
            }
        }
        buffer.extend_from_slice(&data);
    }
    Ok(ReadBody { bytes: buffer.freeze(), _permit: permit })
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream;

    fn limits(budget: Option<&BodyBudget>) -> BodyLimits {
        BodyLimits { max_bytes: 100, stall: Duration::from_secs(5), budget: budget.cloned() }
    }

    fn headers(length: Option<u64>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(n) = length {
            headers.insert(header::CONTENT_LENGTH, n.into());
        }
        headers
    }

    fn chunked(pieces: &[&'static str]) -> Body {
        let pieces: Vec<Result<Bytes, std::io::Error>> =
            pieces.iter().map(|p| Ok(Bytes::from_static(p.as_bytes()))).collect();
        Body::from_stream(stream::iter(pieces))
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_refused_unread() {
        // The body would fail if it were polled.
        let body = Body::from_stream(stream::once(async { Err::<Bytes, _>(std::io::Error::other("read")) }));
        assert_eq!(read(body, &headers(Some(101)), limits(None)).await.unwrap_err(), refused::TOO_LARGE);
    }

    #[tokio::test]
    async fn an_undeclared_body_stops_at_the_limit() {
        let body = chunked(&["x"; 101]);
        assert_eq!(read(body, &headers(None), limits(None)).await.unwrap_err(), refused::TOO_LARGE);
        let body = chunked(&["ab", "cd"]);
        assert_eq!(read(body, &headers(None), limits(None)).await.unwrap().bytes, "abcd");
    }

    #[tokio::test]
    async fn the_budget_is_held_while_the_body_lives() {
        let budget = BodyBudget::new(150);
        let first = read(Body::from("a".repeat(100)), &headers(Some(100)), limits(Some(&budget))).await.unwrap();
        assert_eq!(budget.available(), 50);
        let second = read(Body::from("b".repeat(60)), &headers(Some(60)), limits(Some(&budget))).await;
        assert_eq!(second.unwrap_err(), refused::BUSY);
        // Undeclared bodies take the budget piece by piece.
        let third = read(chunked(&["x"; 60]), &headers(None), limits(Some(&budget))).await;
        assert_eq!(third.unwrap_err(), refused::BUSY);
        assert_eq!(budget.available(), 50);
        drop(first);
        assert_eq!(budget.available(), 150);
        let fourth = read(chunked(&["x"; 60]), &headers(None), limits(Some(&budget))).await.unwrap();
        assert_eq!(budget.available(), 90);
        drop(fourth);
        // Without a budget (an authenticated request) nothing is taken.
        let _unbudgeted = read(Body::from("c".repeat(100)), &headers(Some(100)), limits(None)).await.unwrap();
        assert_eq!(budget.available(), 150);
    }

    #[tokio::test]
    async fn a_stalled_body_is_given_up() {
        let body = Body::from_stream(stream::pending::<Result<Bytes, std::io::Error>>());
        let limits = BodyLimits { max_bytes: 100, stall: Duration::from_millis(20), budget: None };
        assert_eq!(read(body, &headers(Some(10)), limits).await.unwrap_err(), refused::UNREADABLE);
    }
}
