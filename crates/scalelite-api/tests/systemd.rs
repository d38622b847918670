//! The real `scalelite-api` binary under a stand-in for systemd's notify
//! socket (`Type=notify`, `WatchdogSec=`): it says READY=1 once it
//! listens, pings the watchdog while it runs, and says STOPPING=1 on
//! SIGTERM before it exits cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Waits for a notification holding the line `wanted`, skipping others;
/// returns every notification seen.
fn wait_for(socket: &UnixDatagram, wanted: &str, within: Duration) -> Vec<String> {
    let start = Instant::now();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 512];
    while let Some(left) = within.checked_sub(start.elapsed()).filter(|left| !left.is_zero()) {
        socket.set_read_timeout(Some(left)).unwrap();
        let Ok(len) = socket.recv(&mut buffer) else { break };
        let message = String::from_utf8_lossy(&buffer[..len]).into_owned();
        let found = message.lines().any(|line| line == wanted);
        seen.push(message);
        if found {
            return seen;
        }
    }
    panic!("no {wanted} within {within:?}; saw {seen:?}");
}

#[test]
fn ready_watchdog_and_stopping_are_told_to_systemd() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_scalelite-api"))
        .env_clear()
        .env("SCALELITE_DATA_DIR", dir.path().join("data"))
        .env("LOADBALANCER_SECRET", "s3cr3t")
        .env("BIND", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "300000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let seen = wait_for(&socket, "READY=1", Duration::from_secs(30));
    assert!(seen.iter().all(|m| !m.contains("STOPPING")), "{seen:?}");
    // Pinged at a third of WatchdogSec (300 ms): two pings within a second.
    wait_for(&socket, "WATCHDOG=1", Duration::from_secs(1));
    wait_for(&socket, "WATCHDOG=1", Duration::from_secs(1));

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    wait_for(&socket, "STOPPING=1", Duration::from_secs(10));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "scalelite-api did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}
