//! The HTTP/1.1 listener and its limits: at most `HTTP_MAX_CONNECTIONS`
//! connections at once (further ones wait in the listen backlog), request
//! heads of at most `HTTP_MAX_HEADER_BYTES`, a head that has started must
//! be complete within `HTTP_HEADER_READ_TIMEOUT`, and a connection without
//! a request in flight is closed after `HTTP_IDLE_TIMEOUT` without traffic.
//!
//! Each connection carries a small `Activity` record, updated by its
//! socket wrapper and by the service around each request; one timer per
//! connection reads it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use scalelite_core::config::EdgeLimits;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;
use tower::{Service, ServiceExt};
use tracing::{debug, info, warn};

/// Serves `app` on `listener` within `limits` until `shutdown` resolves,
/// then lets every connection finish its request in flight.
pub(crate) async fn serve<S>(
    listener: TcpListener,
    app: S,
    limits: EdgeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    raise_file_limit(limits.max_connections);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (closing, closing_rx) = watch::channel(false);
    let limits = Arc::new(limits);
    let mut shutdown = pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot.map_err(std::io::Error::other)?,
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    accept_failed(&error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let connection = serve_connection(stream, app.clone(), Arc::clone(&limits), closing_rx.clone(), slot);
        tokio::spawn(connection);
    }
    drop(listener);
    drop(closing_rx);
    let _ = closing.send(true);
    // Every connection holds a receiver; they are all gone once the last
    // connection has ended.
    closing.closed().await;
    Ok(())
}

/// An accept error: a connection that died in the backlog is skipped; out
/// of descriptors (or memory) waits a moment so that connections can end.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(error.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset) {
        return;
    }
    warn!(%error, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Raises the soft limit of open files to the hard limit, and says so when
/// it stays below what `HTTP_MAX_CONNECTIONS` needs.
fn raise_file_limit(max_connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < max_connections as u64 + 256 => {
            warn!(limit, max_connections, "the open-file limit is below HTTP_MAX_CONNECTIONS (+256 for upstreams)")
        }
        Ok(limit) => debug!(limit, "open-file limit"),
        Err(error) => debug!(%error, "cannot read the open-file limit"),
    }
}

async fn serve_connection<S>(
    stream: TcpStream,
    app: S,
    limits: Arc<EdgeLimits>,
    mut closing: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let activity = Arc::new(Activity::new(&limits));
    let io = TokioIo::new(Watched { inner: stream, activity: Arc::clone(&activity) });
    let tracked = Arc::clone(&activity);
    let service = tower::service_fn(move |request: Request<Incoming>| {
        let started = InFlight::begin(Arc::clone(&tracked));
        let call = app.clone().oneshot(request.map(Body::new));
        async move {
            let response = call.await;
            drop(started);
            response
        }
    });
    let mut builder = http1::Builder::new();
    builder.max_header_size(limits.max_header_bytes);
    let connection = builder.serve_connection(io, TowerToHyperService::new(service));
    let mut connection = pin!(connection);
    let mut shutting_down = false;
    // One timer for the connection's life, moved rather than re-created.
    let mut timer = pin!(tokio::time::sleep_until(activity.arm()));
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    debug!(%error, "connection ended with an error");
                }
                return;
            }
            _ = closing.changed(), if !shutting_down => {
                shutting_down = true;
                connection.as_mut().graceful_shutdown();
            }
            () = activity.earlier.notified() => timer.as_mut().reset(activity.arm()),
            () = timer.as_mut() => {
                let deadline = activity.arm();
                if deadline <= Instant::now() {
                    debug!(head_started = activity.in_head(), "connection closed: timed out");
                    return;
                }
                timer.as_mut().reset(deadline);
            }
        }
    }
}

/// What a connection's timer needs to know: when bytes last moved, whether
/// a request head has started arriving, and how many requests are in
/// flight. Times are milliseconds since the connection opened.
#[derive(Debug)]
struct Activity {
    opened: Instant,
    last: AtomicU64,
    /// When the first byte of a request head arrived, plus one (0: none).
    /// A new connection counts as having started its first head.
    head: AtomicU64,
    in_flight: AtomicUsize,
    /// When the timer is set to fire (milliseconds since opening).
    armed: AtomicU64,
    /// `HTTP_IDLE_TIMEOUT` and `HTTP_HEADER_READ_TIMEOUT`.
    idle: Duration,
    header: Duration,
    /// Wakes the timer when a deadline earlier than the armed one appears (a
    /// head started, a request ended); otherwise it finds out when it fires.
    earlier: Notify,
}

impl Activity {
    fn new(limits: &EdgeLimits) -> Self {
        Self {
            opened: Instant::now(),
            last: AtomicU64::new(0),
            head: AtomicU64::new(1),
            in_flight: AtomicUsize::new(0),
            armed: AtomicU64::new(0),
            idle: limits.idle_timeout,
            header: limits.header_read_timeout,
            earlier: Notify::new(),
        }
    }

    /// Wakes the timer if `deadline` (milliseconds) is before the armed one.
    fn wake_for(&self, deadline: u64) {
        if deadline < self.armed.load(Ordering::Acquire) {
            self.earlier.notify_one();
        }
    }

    /// The current deadline, remembered as the one the timer is set to.
    fn arm(&self) -> Instant {
        let deadline = self.deadline();
        let millis = deadline.saturating_duration_since(self.opened).as_millis() as u64;
        self.armed.store(millis, Ordering::Release);
        deadline
    }

    fn now(&self) -> u64 {
        self.opened.elapsed().as_millis() as u64
    }

    fn at(&self, millis: u64) -> Instant {
        self.opened + Duration::from_millis(millis)
    }

    fn read(&self) {
        let now = self.now();
        self.last.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head.compare_exchange(0, now + 1, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        {
            self.wake_for(now + self.header.as_millis() as u64);
        }
    }

    fn wrote(&self) {
        self.last.store(self.now(), Ordering::Relaxed);
    }

    fn in_head(&self) -> bool {
        self.head.load(Ordering::Acquire) > 0
    }

    /// When the connection is to be closed unless something happens first.
    fn deadline(&self) -> Instant {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            // Handlers bound their own work; look again later.
            return Instant::now() + self.idle;
        }
        match self.head.load(Ordering::Acquire) {
            0 => self.at(self.last.load(Ordering::Relaxed)) + self.idle,
            head => self.at(head - 1) + self.header,
        }
    }
}

/// A request in flight on a connection.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.head.store(0, Ordering::Release);
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let now = self.0.now();
        self.0.last.store(now, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        // The idle deadline starts now, which may be before the one the
        // timer is set to (a new connection's head deadline).
        self.0.wake_for(now + self.0.idle.as_millis() as u64);
    }
}

/// A socket that reports its traffic to an [`Activity`].
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.read();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, data);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote();
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.wrote();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Logs the limits once at start-up.
pub(crate) fn log_limits(limits: &EdgeLimits) {
    info!(
        max_connections = limits.max_connections,
        header_read_timeout_s = limits.header_read_timeout.as_secs_f64(),
        idle_timeout_s = limits.idle_timeout.as_secs_f64(),
        max_header_bytes = limits.max_header_bytes,
        max_params = limits.max_params,
        unauthenticated_body_budget = limits.unauthenticated_body_budget,
        "HTTP limits"
    );
}
