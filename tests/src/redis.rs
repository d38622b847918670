//! A real `redis-server` process for tests, plus a tiny RESP client for
//! seeding and inspecting it (independent of the `redis` crate used by the
//! code under test).
//!
//! A TLS-only server ([`TestRedis::start_tls`]) has no plain TCP port; the
//! harness reaches it over a Unix socket in its directory instead.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};

use crate::tls::TestCa;
use crate::util::{StartError, Starting, await_ready, find_binary, free_port, wait_child};

const START_TIMEOUT: Duration = Duration::from_secs(15);
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// A `redis-server` listening on 127.0.0.1 on a free port, with its working
/// directory in a fresh temporary directory and persistence disabled (see
/// [`TestRedis::start_persistent`]).
///
/// The process is killed when the value is dropped.
#[derive(Debug)]
pub struct TestRedis {
    binary: PathBuf,
    port: u16,
    dir: TempDir,
    child: Mutex<Option<Child>>,
    args: ServerArgs,
}

/// What `redis-server` needs besides its port and directory.
#[derive(Clone, Debug, Default)]
pub(crate) struct ServerArgs {
    /// Arguments before the common ones (a configuration file).
    pub leading: Vec<String>,
    /// Arguments after them.
    pub trailing: Vec<String>,
    /// TLS only: the port is `--tls-port`, `--port` is 0, and the harness
    /// talks over the Unix socket [`SOCKET`] in the server's directory.
    pub tls_only: bool,
    /// The default user's password (`requirepass`), sent by the harness.
    pub password: Option<String>,
}

/// The harness's Unix socket of a TLS-only server, in its directory.
const SOCKET: &str = "redis.sock";

/// How the harness reaches a server.
#[derive(Clone, Debug)]
struct Admin {
    /// A Unix socket, else 127.0.0.1 on the server's port.
    socket: Option<PathBuf>,
    port: u16,
    password: Option<String>,
}

impl ServerArgs {
    fn plain() -> Self {
        Self::data(&["--save", "", "--appendonly", "no"])
    }

    fn data(args: &[&str]) -> Self {
        // Replicas sync at once (Redis waits 5 s for more replicas by default).
        let common = ["--repl-diskless-sync-delay", "0"];
        let trailing = common.iter().chain(args).map(|a| (*a).to_owned()).collect();
        Self { trailing, ..Self::default() }
    }

    /// The arguments that make the port a TLS-only one, serving `ca`'s
    /// server certificate (clients need none).
    fn tls(mut self, ca: &TestCa, password: Option<&str>) -> Self {
        for (name, file) in [("--tls-cert-file", ca.cert_file()), ("--tls-key-file", ca.key_file())] {
            self.trailing.extend([name.to_owned(), file.display().to_string()]);
        }
        self.trailing.extend(["--tls-ca-cert-file".to_owned(), ca.ca_file().display().to_string()]);
        self.trailing.extend(["--tls-auth-clients", "no", "--unixsocketperm", "700"].map(str::to_owned));
        if let Some(password) = password {
            self.trailing.extend(["--requirepass".to_owned(), password.to_owned()]);
        }
        self.tls_only = true;
        self.password = password.map(str::to_owned);
        self
    }
}

impl TestRedis {
    /// Starts a server and waits until it answers `PING`.
    ///
    /// # Panics
    ///
    /// Panics when `redis-server` is not installed or does not come up.
    pub async fn start() -> Self {
        Self::start_with("test-redis-", ServerArgs::plain()).await
    }

    /// Starts a server that keeps its data across [`TestRedis::stop`] and
    /// [`TestRedis::start_again`], even though `stop` kills it: an
    /// append-only file synced on every write, as a production Redis holding
    /// Scalelite's state would be configured.
    ///
    /// # Panics
    ///
    /// Panics when `redis-server` is not installed or does not come up.
    pub async fn start_persistent() -> Self {
        Self::start_with(
            "test-redis-",
            ServerArgs::data(&["--save", "", "--appendonly", "yes", "--appendfsync", "always"]),
        )
        .await
    }

    /// Starts a TLS-only server (no plain TCP port) presenting `ca`'s server
    /// certificate, with `password` for the default user (`requirepass`)
    /// if given. [`TestRedis::url`] is then `rediss://`; the harness's own
    /// commands ([`TestRedis::cmd`]) go over a Unix socket.
    ///
    /// # Panics
    ///
    /// Panics when `redis-server` is not installed or does not come up.
    pub async fn start_tls(ca: &TestCa, password: Option<&str>) -> Self {
        Self::start_with("test-redis-tls-", ServerArgs::plain().tls(ca, password)).await
    }

    /// Starts a replica of `master` (no persistence) and waits until it is in
    /// sync with it.
    ///
    /// # Panics
    ///
    /// Panics when the server does not come up or does not sync within 15 s.
    pub async fn start_replica_of(master: &TestRedis) -> Self {
        let master_port = master.port().to_string();
        let args = ServerArgs::data(&["--save", "", "--appendonly", "no", "--replicaof", "127.0.0.1", &master_port]);
        let replica = Self::start_with("test-redis-replica-", args).await;
        crate::util::eventually_with(START_TIMEOUT, "the replica is in sync with its master", || async {
            let info = replica.try_cmd(&["INFO", "replication"]).await;
            info.ok().and_then(|i| i.as_str().map(|s| s.contains("master_link_status:up"))).unwrap_or(false)
        })
        .await;
        replica
    }

    /// Starts `redis-server` with `args` in a new directory named `prefix*`.
    pub(crate) async fn start_with(prefix: &str, args: ServerArgs) -> Self {
        let binary = redis_server_binary();
        let dir =
            tempfile::Builder::new().prefix(prefix).tempdir().expect("cannot create a temporary directory for redis");
        Self::start_in(binary, dir, args).await
    }

    /// Starts `binary` with `args` in `dir` on a free port.
    pub(crate) async fn start_in(binary: PathBuf, dir: TempDir, args: ServerArgs) -> Self {
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            match spawn_and_wait(&binary, dir.path(), port, &args).await {
                Ok(child) => {
                    return Self { binary, port, dir, child: Mutex::new(Some(child)), args };
                }
                Err(StartError::PortInUse) => {
                    last_error = format!("port {port} already in use");
                }
                Err(StartError::Other(message)) => panic!("{message}"),
            }
        }
        panic!("redis-server could not bind a free port: {last_error}");
    }

    /// `redis://127.0.0.1:P/0` (`rediss://:password@…` for a TLS server).
    pub fn url(&self) -> String {
        self.url_with_db(0)
    }

    /// `redis://127.0.0.1:P/<db>` (`rediss://:password@…` for a TLS server).
    pub fn url_with_db(&self, db: u32) -> String {
        let scheme = if self.args.tls_only { "rediss" } else { "redis" };
        let password = self.args.password.as_ref().map(|p| format!(":{p}@")).unwrap_or_default();
        format!("{scheme}://{password}127.0.0.1:{}/{db}", self.port)
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's working directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the process is currently running (not stopped).
    pub fn is_running(&self) -> bool {
        self.child.lock().unwrap().is_some()
    }

    /// Kills the server (SIGKILL, as in a crash) and waits for it to exit.
    /// Connections are refused until [`TestRedis::start_again`]. The data is
    /// lost unless the server was started with
    /// [`TestRedis::start_persistent`].
    pub async fn stop(&self) {
        let child = self.child.lock().unwrap().take();
        if let Some(mut child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Restarts a stopped server on the same port and directory and waits
    /// until it answers `PING`. Does nothing if it is running.
    ///
    /// # Panics
    ///
    /// Panics if the server does not come back (for example because another
    /// process took the port meanwhile).
    pub async fn start_again(&self) {
        if self.is_running() {
            return;
        }
        match spawn_and_wait(&self.binary, self.dir.path(), self.port, &self.args).await {
            Ok(child) => *self.child.lock().unwrap() = Some(child),
            Err(StartError::PortInUse) => {
                panic!("redis-server cannot restart: port {} is now used by another process", self.port)
            }
            Err(StartError::Other(message)) => panic!("{message}"),
        }
    }

    /// Runs one command on a fresh connection and returns the reply
    /// (`RespValue::Error` for a server-side error).
    ///
    /// # Panics
    ///
    /// Panics on I/O errors (for example while the server is stopped).
    pub async fn cmd(&self, args: &[&str]) -> RespValue {
        match self.try_cmd(args).await {
            Ok(value) => value,
            Err(e) => panic!("redis command {args:?} on port {} failed: {e}", self.port),
        }
    }

    /// Like [`TestRedis::cmd`], returning I/O errors instead of panicking.
    pub async fn try_cmd(&self, args: &[&str]) -> io::Result<RespValue> {
        resp_command(&admin(self.dir.path(), self.port, &self.args), args).await
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let child = self.child.get_mut().map(Option::take).ok().flatten();
        if let Some(mut child) = child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The `redis-server` binary.
///
/// # Panics
///
/// Panics, naming the Debian package, when it is not installed.
pub(crate) fn redis_server_binary() -> PathBuf {
    find_binary("redis-server", &[Path::new("/usr/bin"), Path::new("/usr/sbin")]).unwrap_or_else(|| {
        panic!("redis-server not found: install the Debian package `redis-server` (apt-get install redis-server)")
    })
}

fn admin(dir: &Path, port: u16, args: &ServerArgs) -> Admin {
    Admin { socket: args.tls_only.then(|| dir.join(SOCKET)), port, password: args.password.clone() }
}

async fn spawn_and_wait(binary: &Path, dir: &Path, port: u16, args: &ServerArgs) -> Result<Child, StartError> {
    let log_path = dir.join("redis.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| StartError::Other(format!("cannot open {}: {e}", log_path.display())))?;
    let log_err = log.try_clone().map_err(|e| StartError::Other(format!("cannot clone log handle: {e}")))?;
    let log_start = std::fs::metadata(&log_path).map_or(0, |m| m.len());
    let port_arg = port.to_string();
    let listen = if args.tls_only {
        vec!["--port".into(), "0".into(), "--tls-port".into(), port_arg, "--unixsocket".into(), SOCKET.into()]
    } else {
        vec!["--port".into(), port_arg]
    };
    let child = Command::new(binary)
        .args(&args.leading)
        .args(listen)
        .args(["--bind", "127.0.0.1", "--daemonize", "no", "--dir"])
        .arg(dir)
        .args(&args.trailing)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|e| StartError::Other(format!("cannot run {}: {e}", binary.display())))?;

    let starting = Starting { name: "redis-server", port, log: &log_path, log_start, timeout: START_TIMEOUT };
    let admin = admin(dir, port, args);
    let ready = || async {
        let ping = tokio::time::timeout(Duration::from_secs(1), resp_command(&admin, &["PING"])).await;
        matches!(ping, Ok(Ok(RespValue::Str(pong))) if pong == "PONG")
    };
    await_ready(child, &starting, Duration::from_millis(10), ready, |child| {
        let _ = child.kill();
        wait_child(child, Duration::from_secs(5));
    })
    .await
}

/// A decoded RESP2 reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RespValue {
    /// Null bulk string or null array.
    Nil,
    /// Integer reply.
    Int(i64),
    /// Simple or bulk string (bulk bytes decoded lossily as UTF-8).
    Str(String),
    /// Array reply.
    Array(Vec<RespValue>),
    /// Error reply, without the leading `-`.
    Error(String),
}

impl RespValue {
    /// The string, if this is a string reply.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is an integer reply or a string holding one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            Self::Str(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// Whether this is the nil reply.
    pub fn is_nil(&self) -> bool {
        matches!(self, Self::Nil)
    }

    /// The elements, if this is an array reply.
    pub fn as_array(&self) -> Option<&[RespValue]> {
        match self {
            Self::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The elements of an array reply as strings (integers formatted, nil
    /// elements skipped); nil gives an empty vector. Handy for `SMEMBERS`,
    /// `LRANGE`, `KEYS`, `ZRANGE`.
    ///
    /// # Panics
    ///
    /// Panics if the reply is neither an array nor nil.
    pub fn as_vec(&self) -> Vec<String> {
        match self {
            Self::Nil => Vec::new(),
            Self::Array(items) => items
                .iter()
                .filter_map(|item| match item {
                    Self::Str(s) => Some(s.clone()),
                    Self::Int(i) => Some(i.to_string()),
                    Self::Nil => None,
                    other => panic!("unexpected element in RESP array: {other:?}"),
                })
                .collect(),
            other => panic!("expected a RESP array, got {other:?}"),
        }
    }

    /// An array of alternating keys and values (`HGETALL`, `CONFIG GET`) as
    /// a map; nil gives an empty map.
    ///
    /// # Panics
    ///
    /// Panics if the reply is neither an array nor nil.
    pub fn as_map(&self) -> BTreeMap<String, String> {
        let items = self.as_vec();
        items.chunks(2).map(|pair| (pair[0].clone(), pair.get(1).cloned().unwrap_or_default())).collect()
    }
}

/// Runs one command as the harness (after `AUTH` when the server has a
/// password): the reply to it, or the `AUTH` error.
async fn resp_command(admin: &Admin, args: &[&str]) -> io::Result<RespValue> {
    let mut commands = Vec::new();
    if let Some(password) = &admin.password {
        commands.push(vec!["AUTH", password.as_str()]);
    }
    commands.push(args.to_vec());
    let work = async {
        let mut replies = match &admin.socket {
            Some(socket) => exchange(UnixStream::connect(socket).await?, &commands).await?,
            None => exchange(TcpStream::connect(("127.0.0.1", admin.port)).await?, &commands).await?,
        };
        let reply = replies.pop().unwrap_or(RespValue::Nil);
        Ok(replies.into_iter().find(|r| matches!(r, RespValue::Error(_))).unwrap_or(reply))
    };
    tokio::time::timeout(IO_TIMEOUT, work)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "redis reply timed out"))?
}

/// Sends `commands` and reads as many replies.
async fn exchange(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    commands: &[Vec<&str>],
) -> io::Result<Vec<RespValue>> {
    let mut request = Vec::new();
    for args in commands {
        request.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for arg in args {
            request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            request.extend_from_slice(arg.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
    }
    stream.write_all(&request).await?;
    let (mut buf, mut replies) = (Vec::with_capacity(256), Vec::new());
    let mut chunk = [0u8; 4096];
    while replies.len() < commands.len() {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed before a complete reply"));
        }
        buf.extend_from_slice(&chunk[..n]);
        while replies.len() < commands.len()
            && let Some((value, used)) = parse_resp(&buf)?
        {
            replies.push(value);
            buf.drain(..used);
        }
    }
    Ok(replies)
}

/// Parses one value from the start of `buf`; `Ok(None)` if incomplete.
fn parse_resp(buf: &[u8]) -> io::Result<Option<(RespValue, usize)>> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let Some(line_end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = String::from_utf8_lossy(&buf[1..line_end]).into_owned();
    let after = line_end + 2;
    let int = |s: &str| s.parse::<i64>().map_err(|_| bad("bad RESP integer"));
    match buf[0] {
        b'+' => Ok(Some((RespValue::Str(line), after))),
        b'-' => Ok(Some((RespValue::Error(line), after))),
        b':' => Ok(Some((RespValue::Int(int(&line)?), after))),
        b'_' => Ok(Some((RespValue::Nil, after))),
        b'$' => {
            let len = int(&line)?;
            if len < 0 {
                return Ok(Some((RespValue::Nil, after)));
            }
            let len = len as usize;
            if buf.len() < after + len + 2 {
                return Ok(None);
            }
            let text = String::from_utf8_lossy(&buf[after..after + len]).into_owned();
            Ok(Some((RespValue::Str(text), after + len + 2)))
        }
        b'*' => {
            let len = int(&line)?;
            if len < 0 {
                return Ok(Some((RespValue::Nil, after)));
            }
            let mut items = Vec::with_capacity(len as usize);
            let mut pos = after;
            for _ in 0..len {
                match parse_resp(&buf[pos..])? {
                    Some((item, used)) => {
                        items.push(item);
                        pos += used;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((RespValue::Array(items), pos)))
        }
        _ => Err(bad("unknown RESP type byte")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_and_partial_replies() {
        let full = b"*3\r\n$1\r\na\r\n:5\r\n*-1\r\n";
        let (value, used) = parse_resp(full).unwrap().unwrap();
        assert_eq!(used, full.len());
        assert_eq!(value, RespValue::Array(vec![RespValue::Str("a".into()), RespValue::Int(5), RespValue::Nil]));
        for cut in 0..full.len() {
            assert!(parse_resp(&full[..cut]).unwrap().is_none(), "cut {cut}");
        }
        assert_eq!(parse_resp(b"-ERR x\r\n").unwrap().unwrap().0, RespValue::Error("ERR x".into()));
    }

    #[tokio::test]
    async fn starts_answers_and_restarts_on_the_same_port() {
        let redis = TestRedis::start().await;
        assert_eq!(redis.url(), format!("redis://127.0.0.1:{}/0", redis.port()));
        assert_eq!(redis.cmd(&["PING"]).await.as_str(), Some("PONG"));
        assert_eq!(redis.cmd(&["SET", "k", "v w"]).await.as_str(), Some("OK"));
        assert_eq!(redis.cmd(&["GET", "k"]).await.as_str(), Some("v w"));
        assert!(redis.cmd(&["GET", "missing"]).await.is_nil());
        redis.cmd(&["HSET", "h", "a", "1", "b", "2"]).await;
        let map = redis.cmd(&["HGETALL", "h"]).await.as_map();
        assert_eq!(map.get("a").map(String::as_str), Some("1"));
        assert_eq!(map.len(), 2);
        redis.cmd(&["SADD", "s", "x", "y"]).await;
        let mut members = redis.cmd(&["SMEMBERS", "s"]).await.as_vec();
        members.sort();
        assert_eq!(members, ["x", "y"]);
        assert_eq!(redis.cmd(&["INCR", "n"]).await.as_int(), Some(1));
        assert!(matches!(redis.cmd(&["NOSUCHCOMMAND"]).await, RespValue::Error(_)));

        let port = redis.port();
        redis.stop().await;
        assert!(!redis.is_running());
        assert!(redis.try_cmd(&["PING"]).await.is_err());
        redis.start_again().await;
        assert_eq!(redis.port(), port);
        assert_eq!(redis.cmd(&["PING"]).await.as_str(), Some("PONG"));
        // No persistence: the restart starts empty.
        assert!(redis.cmd(&["GET", "k"]).await.is_nil());
    }

    #[tokio::test]
    async fn a_persistent_server_keeps_its_data_across_a_crash() {
        let redis = TestRedis::start_persistent().await;
        redis.cmd(&["SET", "k", "kept"]).await;
        redis.stop().await;
        redis.start_again().await;
        assert_eq!(redis.cmd(&["GET", "k"]).await.as_str(), Some("kept"));
    }

    #[tokio::test]
    async fn a_replica_follows_its_master() {
        let master = TestRedis::start().await;
        master.cmd(&["SET", "k", "v"]).await;
        let replica = TestRedis::start_replica_of(&master).await;
        assert_eq!(master.cmd(&["WAIT", "1", "5000"]).await.as_int(), Some(1));
        assert_eq!(replica.cmd(&["GET", "k"]).await.as_str(), Some("v"));
        assert!(matches!(replica.cmd(&["SET", "k", "w"]).await, RespValue::Error(e) if e.starts_with("READONLY")));
    }
}
