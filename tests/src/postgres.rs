//! A real PostgreSQL server for tests: `initdb` into a temporary directory,
//! then `postgres` on a free 127.0.0.1 port with durability switched off.
//!
//! [`TestPostgres::start_tls`] makes a server that accepts TCP connections
//! over TLS only (`ssl = on`, `hostssl` lines alone in `pg_hba.conf`), as
//! RDS and Aurora do with `rds.force_ssl`.
//!
//! PostgreSQL refuses to run as root. When the tests run as root (as in CI),
//! `initdb` and `postgres` run as the unprivileged `postgres` user created by
//! the Debian package, and the temporary directory is handed to that user.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use tempfile::TempDir;
use tokio::time::Instant;

use crate::tls::TestCa;
use crate::util::{StartError, Starting, await_ready, find_binary, free_port, wait_child};

const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
const MISSING: &str = "install the Debian package `postgresql` (apt-get install postgresql)";

/// The database created for the code under test.
pub const DATABASE: &str = "scalelite";

/// A PostgreSQL server on 127.0.0.1 with trust authentication for user
/// `postgres` and an empty database called [`DATABASE`].
///
/// The server is shut down (immediate mode) and its files removed on drop.
#[derive(Debug)]
pub struct TestPostgres {
    bin_dir: PathBuf,
    psql: PathBuf,
    run_as: Option<(u32, u32)>,
    port: u16,
    dir: TempDir,
    child: Mutex<Option<Child>>,
    /// TLS only: the server's certificate and key are in `dir/tls`.
    tls: bool,
}

impl TestPostgres {
    /// Initialises a cluster, starts the server, waits until it accepts
    /// connections and creates the `scalelite` database.
    ///
    /// # Panics
    ///
    /// Panics when the PostgreSQL binaries are missing or the server does not
    /// come up.
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// [`TestPostgres::start`], accepting TCP connections over TLS only,
    /// with `ca`'s server certificate (for `127.0.0.1` and `localhost`).
    /// Authentication is still `trust`; the harness's `psql` uses libpq's
    /// default `sslmode=prefer`.
    ///
    /// # Panics
    ///
    /// As [`TestPostgres::start`].
    pub async fn start_tls(ca: &TestCa) -> Self {
        Self::start_with(Some(ca)).await
    }

    async fn start_with(tls: Option<&TestCa>) -> Self {
        let bin_dir = find_bin_dir().unwrap_or_else(|| panic!("initdb/postgres not found: {MISSING}"));
        let psql = [bin_dir.join("psql")]
            .into_iter()
            .find(|p| p.is_file())
            .or_else(|| find_binary("psql", &[]))
            .unwrap_or_else(|| panic!("psql not found: {MISSING}"));
        let run_as = if effective_uid() == Some(0) {
            Some(lookup_user("postgres").unwrap_or_else(|| {
                panic!(
                    "running as root, but there is no `postgres` user to run the server as: \
                     {MISSING}"
                )
            }))
        } else {
            None
        };

        let dir = tempfile::Builder::new()
            .prefix("test-postgres-")
            .tempdir()
            .expect("cannot create a temporary directory for postgres");
        let socket_dir = dir.path().join("sock");
        std::fs::create_dir(&socket_dir).expect("cannot create the socket directory");
        if let Some((uid, gid)) = run_as {
            for path in [dir.path(), socket_dir.as_path()] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid))
                    .unwrap_or_else(|e| panic!("cannot chown {} to the postgres user: {e}", path.display()));
            }
        }

        let mut this = Self { bin_dir, psql, run_as, port: 0, dir, child: Mutex::new(None), tls: tls.is_some() };
        this.initdb().await;
        if let Some(ca) = tls {
            this.only_tls(ca);
        }

        let mut last_error = String::new();
        for _ in 0..5 {
            this.port = free_port();
            match this.spawn_and_wait().await {
                Ok(child) => {
                    *this.child.get_mut().unwrap() = Some(child);
                    this.psql_on("postgres", &format!("CREATE DATABASE {DATABASE}"))
                        .await
                        .unwrap_or_else(|e| panic!("cannot create database {DATABASE}: {e}"));
                    return this;
                }
                Err(StartError::PortInUse) => {
                    last_error = format!("port {} already in use", this.port);
                }
                Err(StartError::Other(message)) => panic!("{message}"),
            }
        }
        panic!("postgres could not bind a free port: {last_error}");
    }

    /// `postgres://postgres@127.0.0.1:P/scalelite`.
    pub fn url(&self) -> String {
        self.url_for(DATABASE)
    }

    /// `postgres://postgres@127.0.0.1:P/<database>`.
    pub fn url_for(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The temporary directory holding `data/`, `sock/` and `postgres.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the server process is running (not stopped).
    pub fn is_running(&self) -> bool {
        self.child.lock().unwrap().is_some()
    }

    /// Shuts the server down in "fast" mode (SIGINT: open sessions are
    /// terminated, so this does not wait for connection pools of the code
    /// under test) and waits for it to exit. Data is kept for
    /// [`TestPostgres::start_again`].
    pub async fn stop(&self) {
        let child = self.child.lock().unwrap().take();
        let Some(mut child) = child else { return };
        signal(&child, "INT");
        let deadline = Instant::now() + STOP_TIMEOUT;
        while !matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
            if Instant::now() >= deadline {
                signal(&child, "QUIT");
                if !wait_child(&mut child, Duration::from_secs(5)) {
                    let _ = child.kill();
                    let _ = child.wait();
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Restarts a stopped server on the same port and data directory and
    /// waits until it accepts connections. Does nothing if it is running.
    ///
    /// # Panics
    ///
    /// Panics if the server does not come back.
    pub async fn start_again(&self) {
        if self.is_running() {
            return;
        }
        match self.spawn_and_wait().await {
            Ok(child) => *self.child.lock().unwrap() = Some(child),
            Err(StartError::PortInUse) => {
                panic!("postgres cannot restart: port {} is now used by another process", self.port)
            }
            Err(StartError::Other(message)) => panic!("{message}"),
        }
    }

    /// Runs SQL with `psql` on the `scalelite` database and returns its
    /// unaligned, tuples-only output (columns separated by `|`, rows by
    /// newlines, trailing newline trimmed).
    ///
    /// # Panics
    ///
    /// Panics if `psql` fails.
    pub async fn psql(&self, sql: &str) -> String {
        self.try_psql(sql).await.unwrap_or_else(|e| panic!("psql failed for {sql:?}: {e}"))
    }

    /// Like [`TestPostgres::psql`], returning `psql`'s error output instead
    /// of panicking.
    pub async fn try_psql(&self, sql: &str) -> Result<String, String> {
        self.psql_on(DATABASE, sql).await
    }

    /// [`TestPostgres::try_psql`] in another database of the cluster.
    pub async fn try_psql_on(&self, database: &str, sql: &str) -> Result<String, String> {
        self.psql_on(database, sql).await
    }

    async fn psql_on(&self, database: &str, sql: &str) -> Result<String, String> {
        let output = tokio::process::Command::new(&self.psql)
            .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .args(["-d", database, "-c", sql])
            .env("PGCONNECT_TIMEOUT", "5")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| format!("cannot run {}: {e}", self.psql.display()))?;
        if output.status.success() {
            let text = String::from_utf8_lossy(&output.stdout);
            Ok(text.trim_end_matches('\n').to_owned())
        } else {
            Err(format!("{}{}", String::from_utf8_lossy(&output.stderr), String::from_utf8_lossy(&output.stdout)))
        }
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    fn command(&self, program: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(self.bin_dir.join(program));
        command.current_dir(self.dir.path()).stdin(Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid).env("HOME", self.dir.path());
        }
        command
    }

    async fn initdb(&self) {
        let output = self
            .command("initdb")
            .arg("-D")
            .arg(self.data_dir())
            .args(["--no-sync", "--auth=trust", "-U", "postgres"])
            .args(["-E", "UTF8", "--locale=C", "--no-instructions"])
            .kill_on_drop(true)
            .output()
            .await
            .unwrap_or_else(|e| panic!("cannot run initdb in {}: {e}", self.bin_dir.display()));
        assert!(
            output.status.success(),
            "initdb failed ({}):\n{}\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Copies `ca`'s server certificate and key where the server (its user)
    /// reads them, and leaves only `hostssl` lines for TCP in `pg_hba.conf`.
    fn only_tls(&self, ca: &TestCa) {
        let tls_dir = self.dir.path().join("tls");
        std::fs::create_dir(&tls_dir).expect("cannot create the tls directory");
        let hba = "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n";
        std::fs::write(self.data_dir().join("pg_hba.conf"), hba).expect("cannot write pg_hba.conf");
        for (from, to) in [(ca.cert_file(), "server.crt"), (ca.key_file(), "server.key")] {
            let to = tls_dir.join(to);
            std::fs::copy(&from, &to).unwrap_or_else(|e| panic!("cannot copy {}: {e}", from.display()));
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        if let Some((uid, gid)) = self.run_as {
            for path in [tls_dir.clone(), tls_dir.join("server.crt"), tls_dir.join("server.key")] {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                    .unwrap_or_else(|e| panic!("cannot chown {} to the postgres user: {e}", path.display()));
            }
        }
    }

    async fn spawn_and_wait(&self) -> Result<Child, StartError> {
        let log_path = self.log_path();
        let open_log = || {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .map_err(|e| StartError::Other(format!("cannot open {}: {e}", log_path.display())))
        };
        let log_start = std::fs::metadata(&log_path).map_or(0, |m| m.len());
        let mut command = Command::new(self.bin_dir.join("postgres"));
        command
            .arg("-D")
            .arg(self.data_dir())
            .args(["-p", &self.port.to_string(), "-h", "127.0.0.1", "-k"])
            .arg(self.dir.path().join("sock"))
            .args(["-F", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .args(["-c", "shared_buffers=16MB", "-c", "max_connections=200"]);
        if self.tls {
            let tls_dir = self.dir.path().join("tls");
            command.args(["-c", "ssl=on", "-c"]).arg(format!("ssl_cert_file={}", tls_dir.join("server.crt").display()));
            command.arg("-c").arg(format!("ssl_key_file={}", tls_dir.join("server.key").display()));
        }
        command.current_dir(self.dir.path()).stdin(Stdio::null()).stdout(open_log()?).stderr(open_log()?);
        if let Some((uid, gid)) = self.run_as {
            use std::os::unix::process::CommandExt;
            command.uid(uid).gid(gid).env("HOME", self.dir.path());
        }
        let child = command
            .spawn()
            .map_err(|e| StartError::Other(format!("cannot run postgres in {}: {e}", self.bin_dir.display())))?;

        let starting =
            Starting { name: "postgres", port: self.port, log: &log_path, log_start, timeout: START_TIMEOUT };
        let ready = || async move {
            let connected =
                tokio::time::timeout(Duration::from_secs(1), tokio::net::TcpStream::connect(("127.0.0.1", self.port)))
                    .await;
            matches!(connected, Ok(Ok(_))) && self.psql_on("postgres", "select 1").await.is_ok()
        };
        let stop = |child: &mut Child| {
            signal(child, "QUIT");
            if !wait_child(child, Duration::from_secs(5)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        };
        await_ready(child, &starting, Duration::from_millis(20), ready, stop).await
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let child = self.child.get_mut().map(Option::take).ok().flatten();
        if let Some(mut child) = child {
            // Immediate shutdown: the data directory is deleted anyway.
            signal(&child, "QUIT");
            if !wait_child(&mut child, Duration::from_secs(10)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Sends a signal with the `kill` command (no `unsafe` libc calls).
fn signal(child: &Child, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The directory holding `initdb` and `postgres`: the one of `initdb` on
/// `PATH`, else the newest `/usr/lib/postgresql/<version>/bin`.
fn find_bin_dir() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(initdb) = find_binary("initdb", &[])
        && let Some(dir) = initdb.parent()
        && has_both(dir)
    {
        return Some(dir.to_path_buf());
    }
    let mut versions: Vec<(Vec<u64>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let version = name.split('.').map(|part| part.parse::<u64>().ok()).collect::<Option<Vec<_>>>()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort();
    versions.into_iter().rev().map(|(_, dir)| dir).find(|dir| has_both(dir))
}

/// The effective uid of this process, from `/proc/self/status`, falling back
/// to `id -u`.
fn effective_uid() -> Option<u32> {
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(line) = status.lines().find(|l| l.starts_with("Uid:"))
        && let Some(euid) = line.split_whitespace().nth(2)
    {
        return euid.parse().ok();
    }
    let output = Command::new("id").arg("-u").output().ok()?;
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

/// The uid and gid of `user` from `/etc/passwd`.
fn lookup_user(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != user {
            return None;
        }
        let _password = fields.next()?;
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some((uid, gid))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_postgres_user_and_the_binaries() {
        assert!(find_bin_dir().is_some());
        let (uid, _) = lookup_user("postgres").expect("postgres user");
        assert_ne!(uid, 0);
        assert!(lookup_user("no-such-user-here").is_none());
        assert!(effective_uid().is_some());
    }

    #[tokio::test]
    async fn starts_accepts_connections_and_restarts() {
        let pg = TestPostgres::start().await;
        assert_eq!(pg.url(), format!("postgres://postgres@127.0.0.1:{}/scalelite", pg.port()));
        assert_eq!(pg.psql("select 1").await, "1");
        assert_eq!(pg.psql("select current_database()").await, "scalelite");
        // The server process runs as the unprivileged user when we are root.
        if effective_uid() == Some(0) {
            let pid = pg.child.lock().unwrap().as_ref().unwrap().id();
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
            let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
            let (postgres_uid, _) = lookup_user("postgres").unwrap();
            assert!(uid_line.split_whitespace().skip(1).all(|u| u == postgres_uid.to_string()), "{uid_line}");
        }
        pg.psql("create table t (x int); insert into t values (42)").await;
        assert!(pg.try_psql("select nonsense from nowhere").await.is_err());

        let port = pg.port();
        pg.stop().await;
        assert!(!pg.is_running());
        assert!(pg.try_psql("select 1").await.is_err());
        pg.start_again().await;
        assert_eq!(pg.port(), port);
        // Data survives a restart.
        assert_eq!(pg.psql("select x from t").await, "42");
    }
}
