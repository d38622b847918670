//! Redis Sentinel for tests: a master, a replica in sync with it, and one or
//! more `redis-server --sentinel` processes watching them, all on free
//! 127.0.0.1 ports in temporary directories.
//!
//! Sentinels are tuned to notice a dead master after 500 ms, so a failover
//! completes in a few seconds.

use std::time::Duration;

use crate::redis::{RespValue, ServerArgs, TestRedis, redis_server_binary};
use crate::util::eventually_with;

/// The name the sentinels monitor the master under.
pub const MASTER_NAME: &str = "mymaster";

/// One `redis-server --sentinel` process. Killed on drop.
#[derive(Debug)]
pub struct TestSentinel {
    server: TestRedis,
}

impl TestSentinel {
    /// Starts a sentinel monitoring `master_port` as [`MASTER_NAME`] with
    /// `quorum`, and waits until it answers `PING`.
    ///
    /// # Panics
    ///
    /// Panics when `redis-server` is missing or the sentinel does not come up.
    pub async fn start(master_port: u16, quorum: usize) -> Self {
        let binary = redis_server_binary();
        let dir = tempfile::Builder::new()
            .prefix("test-sentinel-")
            .tempdir()
            .expect("cannot create a temporary directory for redis-sentinel");
        // Sentinel rewrites its configuration file, so it lives in the
        // (writable) temporary directory.
        let conf = dir.path().join("sentinel.conf");
        let text = format!(
            "sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} {quorum}\n\
             sentinel down-after-milliseconds {MASTER_NAME} 500\n\
             sentinel failover-timeout {MASTER_NAME} 4000\n\
             sentinel parallel-syncs {MASTER_NAME} 1\n"
        );
        std::fs::write(&conf, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", conf.display()));
        let args = ServerArgs {
            leading: vec![conf.display().to_string()],
            trailing: vec!["--sentinel".into()],
            ..ServerArgs::default()
        };
        Self { server: TestRedis::start_in(binary, dir, args).await }
    }

    /// The sentinel's port.
    pub fn port(&self) -> u16 {
        self.server.port()
    }

    /// Runs a command on the sentinel (see [`TestRedis::cmd`]).
    pub async fn cmd(&self, args: &[&str]) -> RespValue {
        self.server.cmd(args).await
    }

    /// Kills the sentinel.
    pub async fn stop(&self) {
        self.server.stop().await;
    }

    /// Whether it is running.
    pub fn is_running(&self) -> bool {
        self.server.is_running()
    }

    /// The master's port as this sentinel sees it.
    pub async fn master_port(&self) -> Option<u16> {
        let reply = self.server.try_cmd(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME]).await.ok()?;
        reply.as_vec().get(1)?.parse().ok()
    }

    /// `SENTINEL MASTER mymaster` as a map.
    pub async fn master_info(&self) -> std::collections::BTreeMap<String, String> {
        self.cmd(&["SENTINEL", "MASTER", MASTER_NAME]).await.as_map()
    }
}

/// A master, one replica and `n` sentinels with a majority quorum.
#[derive(Debug)]
pub struct SentinelGroup {
    /// The servers, master first (until a failover changes roles).
    pub servers: Vec<TestRedis>,
    /// The sentinels, in the order [`SentinelGroup::url`] lists them.
    pub sentinels: Vec<TestSentinel>,
}

impl SentinelGroup {
    /// Starts the servers and `sentinels` sentinels, and waits until every
    /// sentinel knows the replica and the other sentinels (a failover needs
    /// both).
    ///
    /// # Panics
    ///
    /// Panics when a process does not come up or the sentinels do not find
    /// each other within 20 s.
    pub async fn start(sentinels: usize) -> Self {
        assert!(sentinels > 0);
        let master = TestRedis::start().await;
        let replica = TestRedis::start_replica_of(&master).await;
        let quorum = sentinels / 2 + 1;
        let mut started = Vec::with_capacity(sentinels);
        for _ in 0..sentinels {
            started.push(TestSentinel::start(master.port(), quorum).await);
        }
        let group = Self { servers: vec![master, replica], sentinels: started };
        let replica_port = group.servers[1].port().to_string();
        for sentinel in &group.sentinels {
            eventually_with(Duration::from_secs(20), "every sentinel knows the replica and its peers", || async {
                let info = sentinel.master_info().await;
                let peers = info.get("num-other-sentinels").and_then(|n| n.parse::<usize>().ok());
                let replicas = sentinel.cmd(&["SENTINEL", "REPLICAS", MASTER_NAME]).await;
                let replica_ok = replicas.as_array().unwrap_or_default().iter().any(|r| {
                    let r = r.as_map();
                    r.get("port") == Some(&replica_port)
                        && r.get("master-link-status").map(String::as_str) == Some("ok")
                        && !r.get("flags").is_some_and(|f| f.contains("down"))
                });
                peers == Some(sentinels - 1) && replica_ok
            })
            .await;
        }
        group
    }

    /// `redis+sentinel://127.0.0.1:P1,127.0.0.1:P2,.../mymaster/<db>`.
    pub fn url_with_db(&self, db: u32) -> String {
        let hosts: Vec<String> = self.sentinels.iter().map(|s| format!("127.0.0.1:{}", s.port())).collect();
        format!("redis+sentinel://{}/{MASTER_NAME}/{db}", hosts.join(","))
    }

    /// [`SentinelGroup::url_with_db`] for database 0.
    pub fn url(&self) -> String {
        self.url_with_db(0)
    }

    /// The master's port according to the first running sentinel.
    ///
    /// # Panics
    ///
    /// Panics when no running sentinel answers.
    pub async fn master_port(&self) -> u16 {
        for sentinel in self.sentinels.iter().filter(|s| s.is_running()) {
            if let Some(port) = sentinel.master_port().await {
                return port;
            }
        }
        panic!("no sentinel names a master");
    }

    /// The server on `port`.
    ///
    /// # Panics
    ///
    /// Panics when no server of the group listens there.
    pub fn server(&self, port: u16) -> &TestRedis {
        self.servers.iter().find(|s| s.port() == port).unwrap_or_else(|| panic!("no server on port {port}"))
    }

    /// The current master.
    pub async fn master(&self) -> &TestRedis {
        self.server(self.master_port().await)
    }

    /// Waits until every replica has processed everything the master had
    /// received when this was called (its replication offset).
    ///
    /// # Panics
    ///
    /// Panics when a replica does not catch up within 5 s.
    pub async fn await_replication(&self) {
        let master_port = self.master_port().await;
        let offset = |info: &str, field: &str| -> Option<u64> {
            info.lines().find_map(|line| line.strip_prefix(field)?.trim().parse().ok())
        };
        let info = self.server(master_port).cmd(&["INFO", "replication"]).await;
        let target = offset(info.as_str().unwrap_or_default(), "master_repl_offset:").expect("master_repl_offset");
        for replica in self.servers.iter().filter(|s| s.port() != master_port && s.is_running()) {
            eventually_with(Duration::from_secs(5), "the replica catches up with the master", || async {
                let info = replica.try_cmd(&["INFO", "replication"]).await.ok();
                let done = info.as_ref().and_then(RespValue::as_str).and_then(|i| offset(i, "slave_repl_offset:"));
                done.is_some_and(|done| done >= target)
            })
            .await;
        }
    }

    /// The role (`master`, `slave`) the server on `port` reports, if it answers.
    pub async fn role(&self, port: u16) -> Option<String> {
        let role = self.server(port).try_cmd(&["ROLE"]).await.ok()?;
        role.as_array()?.first()?.as_str().map(str::to_owned)
    }

    /// Waits until every running sentinel names a master other than
    /// `old_port`, and that server says it is a master; returns its port.
    ///
    /// # Panics
    ///
    /// Panics when that does not happen within `timeout`.
    pub async fn await_new_master(&self, old_port: u16, timeout: Duration) -> u16 {
        eventually_with(timeout, "the sentinels promote the replica", || async {
            let mut ports = Vec::new();
            for sentinel in self.sentinels.iter().filter(|s| s.is_running()) {
                ports.push(sentinel.master_port().await);
            }
            let Some(Some(port)) = ports.first().copied() else { return false };
            if port == old_port || ports.iter().any(|p| *p != Some(port)) {
                return false;
            }
            self.role(port).await.as_deref() == Some("master")
        })
        .await;
        self.master_port().await
    }
}
