//! The connection under [`RedisStore`](super::RedisStore).
//!
//! One multiplexed connection, shared by every clone, to either a fixed
//! address (`redis://`, `rediss://`, `unix://`) or the master a set of Redis
//! Sentinels names (`redis+sentinel://`, `rediss+sentinel://`). It is made on
//! first use, not at start-up, and replaced after it breaks:
//!
//! - Its I/O task flags it dead the moment Redis closes it, so the first call
//!   after a Redis restart connects afresh instead of failing on the corpse.
//! - A call that fails with a connection error or a timeout drops it; the
//!   next call connects again (asking Sentinel for the master again).
//! - With Sentinel, a task subscribed to the sentinels' `+promoted-slave` and
//!   `+switch-master` announcements drops it the moment a replica is
//!   promoted. Without it, a master demoted by `SENTINEL FAILOVER` keeps
//!   accepting writes (that are then lost) until Sentinel reconfigures it,
//!   seconds later.
//! - `READONLY` (a master demoted by a failover, still answering) drops it
//!   and retries the call once on the new master: Redis refused the command,
//!   so running it again cannot run it twice.
//!
//! The master is found as Redis's Sentinel client guidelines describe: ask
//! the sentinels (all at once; the first answer wins) with
//! `SENTINEL GET-MASTER-ADDR-BY-NAME`, connect to the address named, and use
//! it only if `ROLE` says it is a master.
//!
//! `rediss://` (and `rediss+sentinel://`, for the sentinels and the master)
//! is TLS (rustls): the server's certificate must chain to a trusted root
//! and name the host of the URL (or the address Sentinel gives). Trusted are
//! the system's roots (which `SSL_CERT_FILE` and `SSL_CERT_DIR` replace, as
//! for OpenSSL and so Ruby Scalelite), else the bundled Mozilla roots when
//! the system has none, plus the certificates of [`RedisOptions::ca_file`]
//! (`REDIS_CA_FILE`).
//!
//! Every call, connecting included, fails after at most the configured
//! timeout (`REDIS_TIMEOUT`), so an outage costs failed calls, never a hang.
//! Calls are not retried otherwise: a command whose connection broke may or
//! may not have run, and the store's scripts are not all idempotent.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, Weak};
use std::time::Duration;

use futures::StreamExt as _;
use redis::aio::{ConnectionLike, MultiplexedConnection, PubSub};
use redis::{
    AsyncConnectionConfig, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind, IntoConnectionInfo, Pipeline,
    RedisConnectionInfo, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsConnector;
use tracing::{debug, info};

/// The Sentinel port when a `redis+sentinel://` host names none.
pub const DEFAULT_SENTINEL_PORT: u16 = 26379;

/// How a store talks to Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisOptions {
    /// The longest one call may take, connecting (and asking Sentinel)
    /// included. `REDIS_TIMEOUT`; redis-rb's default is 5 s.
    pub timeout: Duration,
    /// A PEM file of CA certificates trusted for `rediss://` besides the
    /// system's roots (`REDIS_CA_FILE`). Read when the connection is opened.
    pub ca_file: Option<PathBuf>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(5), ca_file: None }
    }
}

/// A self-repairing, multiplexed Redis connection; see the module docs.
/// Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct RedisConnection {
    link: Arc<Link>,
}

impl fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the URL: it may hold a password.
        f.debug_struct("RedisConnection").field("target", &self.link.target.describe()).finish_non_exhaustive()
    }
}

impl RedisConnection {
    /// A connection for `url` (`redis://`, `rediss://`, `unix://`,
    /// `redis+unix://`, `redis+sentinel://` or `rediss+sentinel://`); nothing
    /// is connected yet. Fails on a bad URL, and for TLS on an unreadable
    /// [`RedisOptions::ca_file`].
    pub fn open(url: &str, options: RedisOptions) -> RedisResult<Self> {
        let target = match sentinel_scheme(url) {
            Some(tls) => Target::Sentinel(SentinelSpec::parse(url, tls)?),
            None => {
                let info = url.into_connection_info()?;
                if matches!(info.addr(), ConnectionAddr::TcpTls { insecure: true, .. }) {
                    return Err(invalid_config(
                        "rediss://…#insecure (no host name check) is not supported: \
                         use a certificate that names the host, or connect by the name it holds",
                    ));
                }
                Target::Direct(info)
            }
        };
        let tls = match &target {
            Target::Direct(info) => matches!(info.addr(), ConnectionAddr::TcpTls { .. }),
            Target::Sentinel(spec) => spec.tls,
        };
        let tls = if tls { Some(tls_connector(options.ca_file.as_deref())?) } else { None };
        let timeout = options.timeout.max(Duration::from_millis(1));
        Ok(Self {
            link: Arc::new(Link {
                target,
                tls,
                timeout,
                current: RwLock::new(None),
                connecting: tokio::sync::Mutex::new(()),
                generations: AtomicU64::new(0),
                watcher: OnceLock::new(),
            }),
        })
    }

    /// Whether the address comes from Sentinel.
    pub fn uses_sentinel(&self) -> bool {
        matches!(self.link.target, Target::Sentinel(_))
    }

    /// Starts following Sentinel's announcements, once, from the first call
    /// (which runs inside the runtime, unlike [`RedisConnection::open`]).
    fn watch(&self) {
        if let Target::Sentinel(spec) = &self.link.target
            && self.link.watcher.get().is_none()
        {
            self.link.watcher.get_or_init(|| {
                let task = watch_switches(Arc::downgrade(&self.link), spec.clone(), self.link.tls.clone());
                tokio::spawn(task).abort_handle()
            });
        }
    }

    async fn send_one(&self, cmd: &Cmd) -> RedisResult<Value> {
        self.watch();
        self.link.call(|mut conn| async move { conn.send_packed_command(cmd).await }).await
    }

    async fn send_many(&self, pipeline: &Pipeline, offset: usize, count: usize) -> RedisResult<Vec<Value>> {
        self.watch();
        self.link.call(|mut conn| async move { conn.send_packed_commands(pipeline, offset, count).await }).await
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(self.send_one(cmd))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(self.send_many(pipeline, offset, count))
    }

    fn get_db(&self) -> i64 {
        match &self.link.target {
            Target::Direct(info) => info.redis_settings().db(),
            Target::Sentinel(spec) => spec.master_settings.db(),
        }
    }
}

/// Where the connection goes.
enum Target {
    Direct(ConnectionInfo),
    Sentinel(SentinelSpec),
}

impl Target {
    fn describe(&self) -> String {
        match self {
            Self::Direct(info) => info.addr().to_string(),
            Self::Sentinel(spec) => format!("master {:?} of {} sentinel(s)", spec.master, spec.sentinels.len()),
        }
    }
}

struct Link {
    target: Target,
    /// For `rediss://`: the TLS client, with its trusted roots.
    tls: Option<TlsConnector>,
    timeout: Duration,
    /// The connection in use, if any. Never locked across an `.await`.
    current: RwLock<Option<Live>>,
    /// Held while connecting, so concurrent callers share one attempt.
    connecting: tokio::sync::Mutex<()>,
    generations: AtomicU64,
    /// The failover follower (Sentinel only), started by the first call.
    watcher: OnceLock<tokio::task::AbortHandle>,
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(watcher) = self.watcher.get() {
            watcher.abort();
        }
    }
}

#[derive(Clone)]
struct Live {
    generation: u64,
    /// `host:port` (or the socket path) it is connected to.
    address: Arc<str>,
    conn: MultiplexedConnection,
    /// Cleared by the I/O task when the connection closes.
    open: Arc<AtomicBool>,
}

impl Link {
    /// Runs `op` on the live connection (connecting first if needed) within
    /// the timeout, with the repairs described in the module docs.
    async fn call<T, F, Fut>(&self, op: F) -> RedisResult<T>
    where
        F: Fn(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let deadline = Instant::now() + self.timeout;
        let mut retried = false;
        loop {
            let outcome = match self.cached() {
                // The hot path: the connection's own response timeout (the
                // same `REDIS_TIMEOUT`) bounds the call; no extra timer.
                Some(live) => (live.generation, op(live.conn).await),
                None => {
                    let live = match timeout_at(deadline, self.live()).await {
                        Ok(live) => live?,
                        Err(_) => return Err(timed_out("connecting to Redis")),
                    };
                    let reply = timeout_at(deadline, op(live.conn)).await;
                    (live.generation, reply.unwrap_or_else(|_| Err(timed_out("waiting for Redis"))))
                }
            };
            let (generation, error) = match outcome {
                (_, Ok(value)) => return Ok(value),
                (generation, Err(error)) => (generation, error),
            };
            if is_read_only(&error) {
                self.forget(generation, "the server is a read-only replica now");
                if !retried {
                    retried = true;
                    continue;
                }
            } else if error.is_unrecoverable_error() || error.is_io_error() || error.is_timeout() {
                self.forget(generation, "connection error or timeout");
            }
            return Err(error);
        }
    }

    fn cached(&self) -> Option<Live> {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        current.as_ref().filter(|live| live.open.load(Ordering::Acquire)).cloned()
    }

    /// Drops the connection, whichever it is.
    fn forget_any(&self, why: &str) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if current.take().is_some() {
            debug!(target = %self.target.describe(), why, "dropping the Redis connection");
        }
    }

    /// Drops the connection if a sentinel names another master than the
    /// one it is connected to (a switch announced while nobody listened).
    async fn check_master(&self, sentinel: &ConnectionInfo, master: &str) {
        let Some(connected) = self.cached().map(|live| live.address) else { return };
        let lookup = ask_sentinel(sentinel, master, self.tls.as_ref());
        if let Ok(Ok(Some((host, port)))) = tokio::time::timeout(self.timeout, lookup).await
            && ConnectionAddr::Tcp(host, port).to_string() != *connected
        {
            self.forget_any("Sentinel names another master");
        }
    }

    fn forget(&self, generation: u64, why: &str) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_some_and(|live| live.generation == generation) {
            debug!(target = %self.target.describe(), why, "dropping the Redis connection");
            *current = None;
        }
    }

    /// The open connection, made now if there is none.
    async fn live(&self) -> RedisResult<Live> {
        if let Some(live) = self.cached() {
            return Ok(live);
        }
        let _connecting = self.connecting.lock().await;
        // Someone else may have connected while we waited for the lock.
        if let Some(live) = self.cached() {
            return Ok(live);
        }
        let live = match &self.target {
            Target::Direct(info) => {
                let live = self.connect(info).await?;
                info!(address = %live.address, reconnect = live.generation > 1, "connected to Redis");
                live
            }
            Target::Sentinel(spec) => {
                let live = self.connect_to_master(spec).await?;
                info!(
                    master = %spec.master,
                    address = %live.address,
                    reconnect = live.generation > 1,
                    "connected to the Redis master named by Sentinel"
                );
                live
            }
        };
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(live.clone());
        Ok(live)
    }

    /// Asks the sentinels for the master, connects to it and checks its role.
    async fn connect_to_master(&self, spec: &SentinelSpec) -> RedisResult<Live> {
        let (host, port) = master_address(spec, self.tls.as_ref()).await?;
        let info =
            address(host, port, spec.tls).into_connection_info()?.set_redis_settings(spec.master_settings.clone());
        let mut live = self.connect(&info).await?;
        let role: Value = redis::cmd("ROLE").query_async(&mut live.conn).await?;
        match role {
            Value::Array(parts) if matches!(parts.first(), Some(Value::BulkString(r)) if r == b"master") => Ok(live),
            _ => Err(RedisError::from((
                ErrorKind::Server(ServerErrorKind::ReadOnly),
                "the server Sentinel names is not a master (yet)",
                live.address.to_string(),
            ))),
        }
    }

    async fn connect(&self, info: &ConnectionInfo) -> RedisResult<Live> {
        let config = AsyncConnectionConfig::new().set_response_timeout(Some(self.timeout));
        let stream = open_stream(info.addr(), self.tls.as_ref()).await?;
        let (conn, driver) = MultiplexedConnection::new_with_config(info.redis_settings(), stream, config).await?;
        let open = watch(driver);
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(Live { generation, address: info.addr().to_string().into(), conn, open })
    }
}

/// Anything a Redis connection runs over: TCP, TLS over TCP, a Unix socket.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

/// Connects to `addr`, with the TLS handshake for `rediss://`.
async fn open_stream(addr: &ConnectionAddr, tls: Option<&TlsConnector>) -> RedisResult<Box<dyn Stream>> {
    match addr {
        ConnectionAddr::Tcp(host, port) => Ok(Box::new(tcp(host, *port).await?)),
        ConnectionAddr::TcpTls { host, port, .. } => {
            let tls = tls.ok_or_else(|| invalid_config("rediss:// without a TLS client"))?;
            let name = ServerName::try_from(host.clone())
                .map_err(|_| invalid_config(&format!("{host:?} is not a host name TLS can check")))?;
            let stream = tcp(host, *port).await?;
            let stream = tls.connect(name, stream).await.map_err(|e| {
                RedisError::from(io::Error::new(
                    e.kind(),
                    format!(
                        "TLS handshake with Redis at {addr} failed: {e} \
                         (is its CA trusted? REDIS_CA_FILE or SSL_CERT_FILE, docs/CONFIGURATION.md)"
                    ),
                ))
            })?;
            Ok(Box::new(stream))
        }
        ConnectionAddr::Unix(path) => Ok(Box::new(tokio::net::UnixStream::connect(path).await?)),
        other => Err(invalid_config(&format!("unsupported Redis address {other}"))),
    }
}

async fn tcp(host: &str, port: u16) -> io::Result<tokio::net::TcpStream> {
    let stream = tokio::net::TcpStream::connect((host, port)).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// The TLS client for `rediss://`: the system's roots (else the bundled
/// Mozilla roots) and those of `ca_file`.
fn tls_connector(ca_file: Option<&Path>) -> RedisResult<TlsConnector> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        debug!(%error, "reading the system's root certificates");
    }
    let (added, _ignored) = roots.add_parsable_certificates(native.certs);
    if added == 0 {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if let Some(path) = ca_file {
        let unreadable = |detail: String| invalid_config(&format!("REDIS_CA_FILE {}: {detail}", path.display()));
        let pem = std::fs::read(path).map_err(|e| unreadable(e.to_string()))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| unreadable(format!("not PEM certificates ({e})")))?;
        if certs.is_empty() {
            return Err(unreadable("holds no PEM certificate".into()));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| unreadable(e.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid_config(&e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

/// `SENTINEL GET-MASTER-ADDR-BY-NAME master` on one sentinel.
async fn ask_sentinel(
    sentinel: &ConnectionInfo,
    master: &str,
    tls: Option<&TlsConnector>,
) -> RedisResult<Option<(String, u16)>> {
    let stream = open_stream(sentinel.addr(), tls).await?;
    let (mut conn, driver) =
        MultiplexedConnection::new_with_config(sentinel.redis_settings(), stream, AsyncConnectionConfig::new()).await?;
    // Ends when `conn` is dropped.
    tokio::spawn(driver);
    redis::cmd("SENTINEL").arg("GET-MASTER-ADDR-BY-NAME").arg(master).query_async(&mut conn).await
}

/// The master's address according to the first sentinel that names one
/// (all are asked at once: a dead or hung sentinel costs nothing).
async fn master_address(spec: &SentinelSpec, tls: Option<&TlsConnector>) -> RedisResult<(String, u16)> {
    let mut answers: futures::stream::FuturesUnordered<_> =
        spec.sentinels.iter().map(|sentinel| ask_sentinel(sentinel, &spec.master, tls)).collect();
    let mut last_error = None;
    while let Some(answer) = answers.next().await {
        match answer {
            Ok(Some(address)) => return Ok(address),
            Ok(None) => {}
            Err(error) => last_error = Some(error),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        RedisError::from((ErrorKind::MasterNameNotFoundBySentinel, "no sentinel knows the master", spec.master.clone()))
    }))
}

/// Follows the sentinels' announcements of a failover of `master`: when a
/// replica is promoted (`+promoted-slave`) or the master switched
/// (`+switch-master`), drops the link's connection, so the next call asks
/// Sentinel for the master again. Subscribes to one sentinel at a time,
/// moving on when it goes away; ends when the link is dropped.
async fn watch_switches(link: Weak<Link>, spec: SentinelSpec, tls: Option<TlsConnector>) {
    let SentinelSpec { sentinels, master, .. } = spec;
    let mut pause = Duration::from_millis(100);
    loop {
        for sentinel in &sentinels {
            let Some(timeout) = link.upgrade().map(|link| link.timeout) else { return };
            let Ok(Ok(pubsub)) = tokio::time::timeout(timeout, subscribe(sentinel, tls.as_ref())).await else {
                continue;
            };
            pause = Duration::from_millis(100);
            match link.upgrade() {
                Some(link) => link.check_master(sentinel, &master).await,
                None => return,
            }
            let mut messages = pubsub.into_on_message();
            while let Some(message) = messages.next().await {
                let payload = message.get_payload::<String>().unwrap_or_default();
                if announced_master(message.get_channel_name(), &payload) != Some(master.as_str()) {
                    continue;
                }
                let Some(link) = link.upgrade() else { return };
                info!(event = message.get_channel_name(), announcement = %payload, "Redis failover; reconnecting");
                link.forget_any("Sentinel announced a failover");
            }
            debug!(sentinel = %sentinel.addr(), "lost the Sentinel subscription");
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

async fn subscribe(sentinel: &ConnectionInfo, tls: Option<&TlsConnector>) -> RedisResult<PubSub> {
    let stream = open_stream(sentinel.addr(), tls).await?;
    let mut pubsub = PubSub::new(sentinel.redis_settings(), stream).await?;
    pubsub.subscribe(&["+promoted-slave", "+switch-master"]).await?;
    Ok(pubsub)
}

/// The master name in a Sentinel announcement: `+switch-master` says
/// `<name> <old ip> <old port> <new ip> <new port>`, `+promoted-slave`
/// `slave <ip>:<port> <ip> <port> @ <name> <master ip> <master port>`.
fn announced_master<'a>(channel: &str, payload: &'a str) -> Option<&'a str> {
    let mut words = payload.split(' ');
    match channel {
        "+switch-master" => words.next(),
        _ => words.skip_while(|w| *w != "@").nth(1),
    }
}

/// Runs a connection's I/O task; the flag turns false when it ends, that is
/// when Redis closed the connection (or every clone of it was dropped).
fn watch(driver: impl Future<Output = ()> + Send + 'static) -> Arc<AtomicBool> {
    let open = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&open);
    tokio::spawn(async move {
        driver.await;
        flag.store(false, Ordering::Release);
    });
    open
}

fn is_read_only(error: &RedisError) -> bool {
    error.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly) || error.code() == Some("READONLY")
}

fn timed_out(what: &'static str) -> RedisError {
    RedisError::from(io::Error::new(io::ErrorKind::TimedOut, format!("{what}: timed out (REDIS_TIMEOUT)")))
}

fn invalid_config(detail: &str) -> RedisError {
    RedisError::from((ErrorKind::InvalidClientConfig, "invalid REDIS_URL", detail.to_owned()))
}

/// For a Sentinel URL, whether it is TLS (`rediss+sentinel://`) or not
/// (`redis+sentinel://`); `None` for any other URL.
fn sentinel_scheme(url: &str) -> Option<bool> {
    let scheme = url.split_once("://")?.0;
    if scheme.eq_ignore_ascii_case("redis+sentinel") {
        Some(false)
    } else if scheme.eq_ignore_ascii_case("rediss+sentinel") {
        Some(true)
    } else {
        None
    }
}

/// A parsed `redis+sentinel://` (or, with TLS to the sentinels and the
/// master, `rediss+sentinel://`) URL:
///
/// `redis+sentinel://[[username]:password@]host[:port][,host[:port]...]/master_name[/db]`
/// `[?sentinel_username=...&sentinel_password=...]`
///
/// The credentials and database before the hosts are the master's; the
/// sentinels' own credentials (Sentinel's `requirepass`) go in the query.
/// Hosts default to port 26379; IPv6 addresses go in brackets.
#[derive(Clone)]
struct SentinelSpec {
    sentinels: Vec<ConnectionInfo>,
    master: String,
    master_settings: RedisConnectionInfo,
    tls: bool,
}

impl SentinelSpec {
    fn parse(url: &str, tls: bool) -> RedisResult<Self> {
        let rest = url.split_once("://").map_or("", |(_, rest)| rest);
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };

        let mut master_settings = RedisConnectionInfo::default();
        if let Some(userinfo) = userinfo {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let user = decode(user)?;
            if !user.is_empty() {
                master_settings = master_settings.set_username(user);
            }
            let password = decode(password)?;
            if !password.is_empty() {
                master_settings = master_settings.set_password(password);
            }
        }

        let mut segments = path.split('/').filter(|s| !s.is_empty());
        let master = decode(segments.next().ok_or_else(|| {
            invalid_config("redis+sentinel:// needs the master name as its path: redis+sentinel://host:26379/mymaster")
        })?)?;
        if let Some(db) = segments.next() {
            let db =
                db.parse::<i64>().map_err(|_| invalid_config("the database after the master name must be a number"))?;
            master_settings = master_settings.set_db(db);
        }
        if segments.next().is_some() {
            return Err(invalid_config("redis+sentinel:// path is /master_name[/db]"));
        }

        let mut sentinel_settings = RedisConnectionInfo::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(value)?;
            sentinel_settings = match key {
                "sentinel_username" => sentinel_settings.set_username(value),
                "sentinel_password" => sentinel_settings.set_password(value),
                _ => {
                    return Err(invalid_config(&format!(
                        "unknown redis+sentinel:// parameter {key:?} (known: sentinel_username, sentinel_password)"
                    )));
                }
            };
        }

        let mut sentinels = Vec::new();
        for host in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
            let (name, port) = split_host_port(host)?;
            let info = address(name, port, tls).into_connection_info()?;
            sentinels.push(info.set_redis_settings(sentinel_settings.clone()));
        }
        if sentinels.is_empty() {
            return Err(invalid_config("redis+sentinel:// names no sentinel host"));
        }
        Ok(Self { sentinels, master, master_settings, tls })
    }
}

/// A TCP address, with TLS or without.
fn address(host: String, port: u16, tls: bool) -> ConnectionAddr {
    if tls {
        ConnectionAddr::TcpTls { host, port, insecure: false, tls_params: None }
    } else {
        ConnectionAddr::Tcp(host, port)
    }
}

fn split_host_port(host: &str) -> RedisResult<(String, u16)> {
    let bad_port = || invalid_config(&format!("bad sentinel port in {host:?}"));
    if let Some(bracketed) = host.strip_prefix('[') {
        let (address, after) =
            bracketed.split_once(']').ok_or_else(|| invalid_config(&format!("unclosed '[' in {host:?}")))?;
        let port = match after.strip_prefix(':') {
            Some(port) => port.parse().map_err(|_| bad_port())?,
            None if after.is_empty() => DEFAULT_SENTINEL_PORT,
            None => return Err(bad_port()),
        };
        return Ok((address.to_owned(), port));
    }
    match host.rsplit_once(':') {
        Some((name, port)) => Ok((name.to_owned(), port.parse().map_err(|_| bad_port())?)),
        None => Ok((host.to_owned(), DEFAULT_SENTINEL_PORT)),
    }
}

/// Percent-decodes a URL component.
fn decode(text: &str) -> RedisResult<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(byte.ok_or_else(|| invalid_config("bad %-escape in REDIS_URL"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid_config("REDIS_URL is not UTF-8 once %-decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(info: &ConnectionInfo) -> String {
        info.addr().to_string()
    }

    #[test]
    fn parses_sentinel_urls() {
        let spec = SentinelSpec::parse("redis+sentinel://s1:26380,s2,[::1]:26381/mymaster", false).unwrap();
        assert_eq!(spec.sentinels.iter().map(addr).collect::<Vec<_>>(), ["s1:26380", "s2:26379", "::1:26381"]);
        assert_eq!(spec.master, "mymaster");
        assert_eq!(spec.master_settings.db(), 0);
        assert_eq!(spec.master_settings.password(), None);

        let spec = SentinelSpec::parse(
            "REDIS+SENTINEL://app:p%40ss@10.0.0.1:5000/my%20master/3?sentinel_password=s3cr%3At&sentinel_username=sen",
            false,
        )
        .unwrap();
        assert_eq!(spec.master, "my master");
        assert_eq!(spec.master_settings.db(), 3);
        assert_eq!(spec.master_settings.username(), Some("app"));
        assert_eq!(spec.master_settings.password(), Some("p@ss"));
        assert_eq!(spec.sentinels[0].redis_settings().password(), Some("s3cr:t"));
        assert_eq!(spec.sentinels[0].redis_settings().username(), Some("sen"));
        assert_eq!(spec.sentinels[0].redis_settings().db(), 0, "sentinels have no databases");

        let spec = SentinelSpec::parse("redis+sentinel://:pw@h/m/", false).unwrap();
        assert_eq!((spec.master_settings.username(), spec.master_settings.password()), (None, Some("pw")));

        assert_eq!(sentinel_scheme("redis+sentinel://h/m"), Some(false));
        assert_eq!(sentinel_scheme("Rediss+Sentinel://h/m"), Some(true));
        assert_eq!(sentinel_scheme("rediss://h/0"), None);
        assert_eq!(sentinel_scheme("redis+unix:///tmp/r.sock"), None);
        let spec = SentinelSpec::parse("rediss+sentinel://s1,s2:5000/mymaster", true).unwrap();
        assert!(spec.tls);
        assert!(spec.sentinels.iter().all(|s| matches!(s.addr(), ConnectionAddr::TcpTls { insecure: false, .. })));
        assert!(matches!(address("10.0.0.1".into(), 6380, spec.tls), ConnectionAddr::TcpTls { port: 6380, .. }));
    }

    #[test]
    fn rejects_bad_sentinel_urls_without_echoing_secrets() {
        for url in [
            "redis+sentinel://h1,h2",
            "redis+sentinel://h1/",
            "redis+sentinel:///mymaster",
            "redis+sentinel://h1:x/mymaster",
            "redis+sentinel://[::1/mymaster",
            "redis+sentinel://h1/mymaster/zero",
            "redis+sentinel://h1/mymaster/0/extra",
            "redis+sentinel://h1/mymaster?password=hunter2",
            "redis+sentinel://u:%zz@h1/mymaster",
        ] {
            let Err(error) = SentinelSpec::parse(url, false) else { panic!("{url} parsed") };
            assert_eq!(error.kind(), ErrorKind::InvalidClientConfig, "{url}");
            assert!(!error.to_string().contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn reads_the_master_name_of_announcements() {
        let switch = "mymaster 127.0.0.1 6379 127.0.0.1 6380";
        assert_eq!(announced_master("+switch-master", switch), Some("mymaster"));
        let promoted = "slave 127.0.0.1:6380 127.0.0.1 6380 @ mymaster 127.0.0.1 6379";
        assert_eq!(announced_master("+promoted-slave", promoted), Some("mymaster"));
        assert_eq!(announced_master("+promoted-slave", "garbage"), None);
    }

    #[tokio::test]
    async fn opening_connects_nothing_and_hides_passwords() {
        let conn = RedisConnection::open("redis+sentinel://:secret@127.0.0.1:1/mymaster", RedisOptions::default())
            .expect("valid url");
        assert!(conn.uses_sentinel());
        assert!(!format!("{conn:?}").contains("secret"));
        let direct = RedisConnection::open("redis://:secret@127.0.0.1:1/2", RedisOptions::default()).unwrap();
        assert!(!direct.uses_sentinel());
        assert_eq!(direct.get_db(), 2);
        assert!(!format!("{direct:?}").contains("secret"));
        // TLS: opened (nothing is read but the trusted roots) unless the
        // URL asks to skip the host name check or the CA file is unreadable.
        RedisConnection::open("rediss://:secret@127.0.0.1:1/0", RedisOptions::default()).unwrap();
        RedisConnection::open("rediss+sentinel://127.0.0.1:1/mymaster", RedisOptions::default()).unwrap();
        let Err(error) = RedisConnection::open("rediss://127.0.0.1:1/#insecure", RedisOptions::default()) else {
            panic!("#insecure accepted")
        };
        assert!(error.to_string().contains("#insecure"), "{error}");
        let dir = tempfile::tempdir().unwrap();
        let missing = RedisOptions { ca_file: Some(dir.path().join("missing.pem")), ..RedisOptions::default() };
        let Err(error) = RedisConnection::open("rediss://127.0.0.1:1/0", missing) else { panic!("no CA file") };
        assert!(error.to_string().contains("REDIS_CA_FILE") && error.to_string().contains("missing.pem"), "{error}");
        std::fs::write(dir.path().join("empty.pem"), "not a certificate\n").unwrap();
        let empty = RedisOptions { ca_file: Some(dir.path().join("empty.pem")), ..RedisOptions::default() };
        let Err(error) = RedisConnection::open("rediss://127.0.0.1:1/0", empty.clone()) else { panic!("no cert") };
        assert!(error.to_string().contains("no PEM certificate"), "{error}");
        // Without TLS the file is not read.
        RedisConnection::open("redis://127.0.0.1:1/0", empty).unwrap();
    }

    #[tokio::test]
    async fn a_call_to_nothing_fails_within_the_timeout() {
        // A port nobody listens on: refused at once, reported as an I/O error.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let options = RedisOptions { timeout: Duration::from_millis(500), ..RedisOptions::default() };
        let mut conn = RedisConnection::open(&format!("redis://127.0.0.1:{port}/0"), options.clone()).unwrap();
        let started = std::time::Instant::now();
        let error = redis::cmd("PING").query_async::<String>(&mut conn).await.unwrap_err();
        assert!(error.is_io_error(), "{error}");
        assert!(started.elapsed() < Duration::from_secs(2));
        // A listener that never answers: the call gives up at the timeout.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port();
        let mut conn = RedisConnection::open(&format!("redis://127.0.0.1:{port}/0"), options.clone()).unwrap();
        let started = std::time::Instant::now();
        let error = redis::cmd("PING").query_async::<String>(&mut conn).await.unwrap_err();
        assert!(error.is_timeout(), "{error}");
        assert!(started.elapsed() >= Duration::from_millis(450) && started.elapsed() < Duration::from_secs(3));
    }
}
