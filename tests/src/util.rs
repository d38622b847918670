//! Small helpers shared by the harness and the integration suite.

use std::future::Future;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

/// Polls `condition` until it returns `true`, backing off from 5 ms to
/// 100 ms between attempts.
///
/// # Panics
///
/// Panics if the condition is still false after `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually_with(timeout, "condition", condition).await;
}

/// Like [`eventually`], naming `what` in the panic message.
///
/// # Panics
///
/// Panics if the condition is still false after `timeout`.
pub async fn eventually_with<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    let mut delay = Duration::from_millis(5);
    loop {
        if condition().await {
            return;
        }
        let now = Instant::now();
        assert!(now < deadline, "{what} not met within {timeout:?}");
        tokio::time::sleep(delay.min(deadline - now)).await;
        delay = (delay * 2).min(Duration::from_millis(100));
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0 and
/// released). Another process may grab it in between; callers that spawn
/// servers on it retry with a new port when binding fails.
///
/// # Panics
///
/// Panics if no ephemeral port can be bound.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot bind an ephemeral port on 127.0.0.1")
}

/// Finds an executable called `name` on `PATH`, then in each of `extra_dirs`.
pub fn find_binary(name: &str, extra_dirs: &[&Path]) -> Option<PathBuf> {
    let path_dirs = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default();
    path_dirs
        .iter()
        .map(PathBuf::as_path)
        .chain(extra_dirs.iter().copied())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A random string of `len` characters from `alphabet`.
pub(crate) fn random_string(len: usize, alphabet: &[u8]) -> String {
    (0..len).map(|_| char::from(alphabet[rand::random_range(0..alphabet.len())])).collect()
}

/// Lower-case letters and digits.
pub(crate) const ALNUM_LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// Letters and digits.
pub(crate) const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// The last `max` bytes of a log file, for panic messages.
pub(crate) fn log_tail(path: &Path, max: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(max);
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

/// Waits (polling) until a `std::process::Child` exits, up to `timeout`.
/// Returns whether it exited.
pub(crate) fn wait_child(child: &mut std::process::Child, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return true,
            Ok(None) if std::time::Instant::now() >= deadline => return false,
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Why one start attempt of a test server failed.
pub(crate) enum StartError {
    /// The port was taken meanwhile: try another one.
    PortInUse,
    /// Anything else, with the message to panic with.
    Other(String),
}

/// A server process being started, and where it logs.
pub(crate) struct Starting<'a> {
    /// What to call it in messages (`redis-server`, `postgres`, `nginx`).
    pub name: &'a str,
    /// The port it should listen on.
    pub port: u16,
    /// Its log; only what was written after `log_start` counts.
    pub log: &'a Path,
    /// The log's length before the process was started.
    pub log_start: u64,
    /// How long it may take.
    pub timeout: Duration,
}

/// Polls `ready` every `every` until it says the server is up, the process
/// exits (`PortInUse` when its new log lines say the address is in use), or
/// the time is up (then `stop` ends the process).
pub(crate) async fn await_ready<F, Fut>(
    mut child: std::process::Child,
    starting: &Starting<'_>,
    every: Duration,
    mut ready: F,
    stop: impl FnOnce(&mut std::process::Child),
) -> Result<std::process::Child, StartError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let Starting { name, port, log, log_start, timeout } = *starting;
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let all = std::fs::read(log).unwrap_or_default();
            let tail = String::from_utf8_lossy(&all[(log_start as usize).min(all.len())..]).into_owned();
            if tail.contains("Address already in use") {
                return Err(StartError::PortInUse);
            }
            return Err(StartError::Other(format!("{name} exited with {status} on port {port}; log:\n{tail}")));
        }
        if ready().await {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            stop(&mut child);
            return Err(StartError::Other(format!(
                "{name} on port {port} did not come up within {timeout:?}; log:\n{}",
                log_tail(log, 4000)
            )));
        }
        tokio::time::sleep(every).await;
    }
}

/// Reads one HTTP/1.1 response from a raw connection: its head and a body of
/// `Content-Length` bytes (or whatever comes until EOF without one).
/// Returns the status (0 when none could be read) and the text received,
/// head included. For tests and benches that speak HTTP by hand (slow
/// heads, bodies never sent).
pub async fn read_http_response(reader: &mut (impl tokio::io::AsyncRead + Unpin)) -> (u16, String) {
    use tokio::io::AsyncReadExt as _;
    let mut received = Vec::new();
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|n| n.trim().parse::<usize>().ok());
            if length.is_some_and(|length| received.len() >= end + 4 + length) {
                break;
            }
        }
        match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
    let text = String::from_utf8_lossy(&received).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn eventually_returns_once_true() {
        let n = Arc::new(AtomicUsize::new(0));
        eventually(Duration::from_secs(5), || {
            let n = n.clone();
            async move { n.fetch_add(1, Ordering::SeqCst) >= 3 }
        })
        .await;
        assert!(n.load(Ordering::SeqCst) >= 4);
    }

    #[tokio::test]
    #[should_panic(expected = "the thing not met within")]
    async fn eventually_panics_on_timeout() {
        eventually_with(Duration::from_millis(30), "the thing", || async { false }).await;
    }

    #[test]
    fn free_port_is_bindable() {
        let port = free_port();
        assert_ne!(port, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }
}
