//! `TestApp`: a real `scalelite-api` (the library's `run`) on a random port,
//! on the backend [`TestBackend::from_env`] selects (or the one a test pins
//! with [`TestAppBuilder::backend`]), with a fake BBB fleet registered in
//! the store.
//!
//! On Redis the fleet is written exactly as Ruby Scalelite would have
//! stored it; on the embedded backend it is created through the public
//! [`Store`] trait. Tests read state back through the store
//! ([`TestApp::meeting`], [`TestApp::server`], ...), so one test body checks
//! both backends; the raw Redis and PostgreSQL accessors
//! ([`TestApp::redis`], [`TestApp::pg`]) are for tests pinned to Redis.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use scalelite_api::AppState;
use scalelite_core::config::{Config, Env};
use scalelite_core::{MeetingId, ServerId};
use scalelite_store::{Meeting, RecordingStore, Server, SqliteStore, Store, Stores};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::backend::TestBackend;
use crate::client::ApiClient;
use crate::fake_bbb::FakeFleet;
use crate::postgres::TestPostgres;
use crate::recording_dirs::RecordingDirs;
use crate::redis::TestRedis;
use crate::seed::{self, SeedServer};
use crate::tls::TestCa;

/// The load-balancer secret front-ends use in tests.
pub const LB_SECRET: &str = "lb-secret-4f0c2d9e7a1b3c5d";

/// The Redis namespace.
pub const NS: &str = "scalelite";

/// The module name that groups tests pinned to [`TestBackend::Redis`]: the
/// embedded pass of `scripts/test` skips them with `--skip redis_only::`
/// instead of running them on Redis a second time.
pub const REDIS_ONLY: &str = "redis_only";

/// Connections of the app's PostgreSQL pool.
const POOL_SIZE: u32 = 4;

/// Builds a [`TestApp`].
#[derive(Debug)]
pub struct TestAppBuilder {
    servers: usize,
    seed: bool,
    recordings: bool,
    persistent_redis: bool,
    tls: Option<(TestCa, Option<String>)>,
    database_params: Option<String>,
    backend: Option<TestBackend>,
    env: Vec<(String, String)>,
}

impl TestAppBuilder {
    /// Number of fake BBB servers (default 3).
    pub fn servers(mut self, n: usize) -> Self {
        self.servers = n;
        self
    }

    /// Leaves the fleet out of the store (the test seeds it itself).
    pub fn unseeded(mut self) -> Self {
        self.seed = false;
        self
    }

    /// Adds recordings: temporary spool, work, publish and unpublish
    /// directories (`RECORDING_*_DIR`) and, on Redis, a migrated PostgreSQL
    /// (`DATABASE_URL`). The embedded backend keeps recordings in its SQLite
    /// file either way.
    pub fn recordings(mut self) -> Self {
        self.recordings = true;
        self
    }

    /// Runs Redis with an append-only file synced on every write, so its
    /// data survives [`TestRedis::stop`] and [`TestRedis::start_again`].
    /// Redis only: pin the test with [`TestAppBuilder::backend`].
    pub fn persistent_redis(mut self) -> Self {
        self.persistent_redis = true;
        self
    }

    /// Runs Redis and PostgreSQL TLS-only with `ca`'s server certificate
    /// ([`TestRedis::start_tls`], [`TestPostgres::start_tls`]): `REDIS_URL`
    /// is `rediss://` (with `redis_password` as the default user's
    /// password, if given) and `REDIS_CA_FILE` is `ca`'s certificate;
    /// `DATABASE_URL` names no `sslmode` (see
    /// [`TestAppBuilder::database_params`]). Redis only: pin the test with
    /// [`TestAppBuilder::backend`].
    pub fn tls(mut self, ca: TestCa, redis_password: Option<&str>) -> Self {
        self.tls = Some((ca, redis_password.map(str::to_owned)));
        self
    }

    /// A query appended to `DATABASE_URL` (`sslmode=require`, ...).
    pub fn database_params(mut self, query: &str) -> Self {
        self.database_params = Some(query.to_owned());
        self
    }

    /// Pins the app to `backend`, whatever `SCALELITE_TEST_BACKEND` says.
    ///
    /// # Panics
    ///
    /// A test pinned to [`TestBackend::Redis`] must live in a module named
    /// [`REDIS_ONLY`] (so the embedded pass skips it by name rather than
    /// running it on Redis again); this panics when the running test's name
    /// shows it does not.
    pub fn backend(mut self, backend: TestBackend) -> Self {
        if backend == TestBackend::Redis
            && let Some(test) = std::thread::current().name()
            && test.contains("::")
        {
            assert!(
                test.split("::").any(|module| module == REDIS_ONLY),
                "{test} is pinned to Redis: move it into a `{REDIS_ONLY}` module so the embedded pass skips it"
            );
        }
        self.backend = Some(backend);
        self
    }

    /// Sets an environment variable of the API process.
    pub fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.push((name.to_owned(), value.into()));
        self
    }

    /// Starts the backend, the fleet and the API.
    ///
    /// # Panics
    ///
    /// Panics when a process or the store cannot be started, or when a
    /// Redis-only option is asked of the embedded backend.
    pub async fn start(self) -> TestApp {
        let backend = self.backend.unwrap_or_else(TestBackend::from_env);
        let fleet = FakeFleet::start(self.servers).await;
        let mut env = Env::default()
            .with("LOADBALANCER_SECRET", LB_SECRET)
            .with("CONNECT_TIMEOUT", "1")
            .with("RESPONSE_TIMEOUT", "2")
            .with("GET_MEETINGS_CACHE_TTL", "0")
            // Tests write records behind the API's back (as Ruby Scalelite or
            // another API process would) and look at once: tests of the join
            // route cache turn it on.
            .with("JOIN_ROUTE_CACHE_TTL", "0");
        let (mut redis, mut postgres, mut data_dir) = (None, None, None);
        let mut database_url = None;
        match backend {
            TestBackend::Redis => {
                let server = match (&self.tls, self.persistent_redis) {
                    (Some((ca, password)), _) => {
                        env = env.with("REDIS_CA_FILE", ca.ca_file().display().to_string());
                        TestRedis::start_tls(ca, password.as_deref()).await
                    }
                    (None, true) => TestRedis::start_persistent().await,
                    (None, false) => TestRedis::start().await,
                };
                env = env.with("REDIS_URL", server.url());
                redis = Some(server);
                if self.recordings {
                    let pg = match &self.tls {
                        Some((ca, _)) => TestPostgres::start_tls(ca).await,
                        None => TestPostgres::start().await,
                    };
                    scalelite_store::PgStore::open(&pg.url(), 1)
                        .expect("pg store")
                        .migrate()
                        .await
                        .expect("migrations");
                    let url = match &self.database_params {
                        Some(query) => format!("{}?{query}", pg.url()),
                        None => pg.url(),
                    };
                    env = env.with("DATABASE_URL", &url);
                    database_url = Some(url);
                    postgres = Some(pg);
                }
            }
            TestBackend::Embedded => {
                assert!(!self.persistent_redis, "persistent_redis() needs Redis: pin the test to TestBackend::Redis");
                assert!(self.tls.is_none(), "tls() needs Redis: pin the test to TestBackend::Redis");
                let dir = tempfile::Builder::new().prefix("scalelite-data-").tempdir().expect("data dir");
                env = env.with("SCALELITE_DATA_DIR", dir.path().display().to_string());
                data_dir = Some(dir);
            }
        }
        let recording_dirs = self.recordings.then(RecordingDirs::new);
        if let Some(dirs) = &recording_dirs {
            env = dirs.env(env);
        }
        for (k, v) in self.env {
            env = env.with(&k, v);
        }
        let config = Config::from_env(&env).expect("test configuration");
        let namespace = config.redis_namespace.clone();
        let stores = Stores::open(&config, POOL_SIZE).await.expect("stores");
        // A second handle on the embedded file, as another process has: the
        // harness seeds meeting records through it.
        let sqlite = match config.backend.database_file() {
            Some(file) if backend == TestBackend::Embedded => {
                Some(SqliteStore::open(file).await.expect("second handle on the SQLite file"))
            }
            _ => None,
        };
        let usage = stores.usage();
        let state = AppState::with_recordings(config, stores.meetings, stores.recordings);
        state.watch_usage(usage);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let mut app = TestApp {
            fleet,
            recording_dirs,
            addr,
            namespace,
            state,
            backend,
            redis,
            postgres,
            database_url,
            tls: self.tls.map(|(ca, _)| ca),
            data_dir,
            sqlite,
            shutdown: None,
            task: None,
        };
        if self.seed {
            for (i, server) in app.fleet.iter().enumerate() {
                app.seed_server(&SeedServer::enabled(server_id(i), server.url(), server.secret())).await;
            }
        }
        let (tx, rx) = oneshot::channel::<()>();
        app.task = Some(tokio::spawn(scalelite_api::run(listener, app.state.clone(), async move {
            let _ = rx.await;
        })));
        app.shutdown = Some(tx);
        app
    }
}

/// A short-lived record of the store, for [`TestApp::ttl_of`].
#[derive(Clone, Copy, Debug)]
pub enum Expiring<'a> {
    /// The analytics callback remembered for a meeting.
    AnalyticsCallback(&'a str),
    /// A one-time playback token.
    PlaybackToken(&'a str),
    /// The recording-ready URL remembered for a meeting.
    RecordingReadyUrl(&'a str),
}

/// The id under which fake server `i` is registered (`bbb-1`, `bbb-2`, ...).
pub fn server_id(i: usize) -> String {
    format!("bbb-{}", i + 1)
}

/// A running API with its backend and fleet.
#[derive(Debug)]
pub struct TestApp {
    /// The fake BBB servers.
    pub fleet: FakeFleet,
    /// The recording directories (with [`TestAppBuilder::recordings`]).
    pub recording_dirs: Option<RecordingDirs>,
    /// Where the API listens.
    pub addr: SocketAddr,
    /// The Redis namespace in use.
    pub namespace: String,
    /// The API's state (store, client, config).
    pub state: AppState,
    backend: TestBackend,
    redis: Option<TestRedis>,
    postgres: Option<TestPostgres>,
    /// `DATABASE_URL`, with [`TestAppBuilder::database_params`].
    database_url: Option<String>,
    tls: Option<TestCa>,
    data_dir: Option<TempDir>,
    sqlite: Option<SqliteStore>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    /// A builder with three seeded servers.
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder {
            servers: 3,
            seed: true,
            recordings: false,
            persistent_redis: false,
            tls: None,
            database_params: None,
            backend: None,
            env: Vec::new(),
        }
    }

    /// `TestApp::builder().start()`.
    pub async fn start() -> TestApp {
        Self::builder().start().await
    }

    /// The CA of a TLS-only app ([`TestAppBuilder::tls`]).
    ///
    /// # Panics
    ///
    /// Panics when the app was started without TLS.
    pub fn ca(&self) -> &TestCa {
        self.tls.as_ref().expect("a TLS app: TestApp::builder().tls(..)")
    }

    /// The backend this app runs on.
    pub fn backend(&self) -> TestBackend {
        self.backend
    }

    /// `http://127.0.0.1:P`.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:P/bigbluebutton/api`.
    pub fn api_url(&self) -> String {
        format!("{}/bigbluebutton/api", self.origin())
    }

    /// A Greenlight-like client (Ruby encoding, SHA1) with the LB secret.
    pub fn client(&self) -> ApiClient {
        ApiClient::new(self.api_url(), LB_SECRET)
    }

    /// The API's store of servers, meetings and tenants.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.state.store
    }

    /// The API's recordings store (PostgreSQL, or the SQLite file).
    ///
    /// # Panics
    ///
    /// Panics when the app has none (Redis without
    /// [`TestAppBuilder::recordings`]).
    pub fn recording_store(&self) -> Arc<dyn RecordingStore> {
        Arc::clone(self.state.recordings.as_ref().expect("a recordings store: TestApp::builder().recordings()"))
    }

    /// The variables that select this app's stores (`REDIS_URL`,
    /// `REDIS_CA_FILE` and `DATABASE_URL`, or `SCALELITE_DATA_DIR`), to
    /// build another process's configuration on the same state.
    pub fn store_env(&self) -> Env {
        let mut env = Env::default();
        match self.backend {
            TestBackend::Redis => {
                env = env.with("REDIS_URL", self.state.config.redis_url.expose());
                if let Some(ca) = &self.tls {
                    env = env.with("REDIS_CA_FILE", ca.ca_file().display().to_string());
                }
                if let Some(url) = &self.database_url {
                    env = env.with("DATABASE_URL", url);
                }
            }
            TestBackend::Embedded => {
                let dir = self.data_dir.as_ref().expect("data dir");
                env = env.with("SCALELITE_DATA_DIR", dir.path().display().to_string());
            }
        }
        env
    }

    // === State through the store ===

    /// The meeting record of `id` (no tenant check), `None` when there is
    /// none or it expired.
    pub async fn meeting(&self, id: &str) -> Option<Meeting> {
        let route = self.store().find_meeting(&MeetingId::from(id), None).await.expect("find_meeting");
        route.map(|route| route.meeting)
    }

    /// The remaining lifetime of the meeting record of `id`.
    pub async fn meeting_ttl(&self, id: &str) -> Option<Duration> {
        let records = self.store().meetings().await.expect("meetings");
        records.into_iter().find(|r| r.meeting.id.as_str() == id).and_then(|r| r.ttl)
    }

    /// The server `id` as the store reads it.
    pub async fn server(&self, id: &str) -> Option<Server> {
        self.store().server(&ServerId::from(id)).await.expect("server")
    }

    /// The load of server `id` as Scalelite reads it for its state (from
    /// `server_load`, or `cordoned_server_load` when cordoned); `None` when
    /// it is out of the pool or has no record.
    pub async fn load(&self, server_id: &str) -> Option<f64> {
        self.server(server_id).await.and_then(|server| server.load)
    }

    /// Index of the fake server hosting `meeting_id` according to the store.
    pub async fn placed_on(&self, meeting_id: &str) -> Option<usize> {
        let server = self.meeting(meeting_id).await?.server_id;
        (0..self.fleet.len()).find(|i| server_id(*i) == server.as_str())
    }

    /// Index of the fake server hosting `meeting_id`, for servers registered
    /// under `ids` (in fleet order).
    pub async fn placed_on_any(&self, ids: &[String], meeting_id: &str) -> usize {
        let server = self.meeting(meeting_id).await.expect("meeting record").server_id;
        ids.iter().position(|id| id == server.as_str()).expect("a known server")
    }

    // === Seeding ===

    /// Registers `server`, replacing a server of the same id: on Redis in
    /// Ruby Scalelite's layout, on the embedded backend through the store.
    pub async fn seed_server(&self, server: &SeedServer) {
        match self.backend {
            TestBackend::Redis => seed::seed_server(self.redis(), &self.namespace, server).await,
            TestBackend::Embedded => seed::seed_server_through_store(self.store().as_ref(), server).await,
        }
    }

    /// Records meeting `id` on `server_id` as a create (or Ruby Scalelite)
    /// leaves it: moderator password, voice bridge, a day to live.
    pub async fn seed_meeting(&self, id: &str, server_id: &str, moderator_pw: &str, voice_bridge: &str) {
        match self.backend {
            TestBackend::Redis => {
                seed::seed_meeting(self.redis(), &self.namespace, id, server_id, moderator_pw, voice_bridge).await;
            }
            TestBackend::Embedded => {
                seed::seed_meeting_sqlite(self.sqlite(), id, server_id, moderator_pw, voice_bridge).await;
            }
        }
    }

    /// Makes the record of meeting `id` `age` older (its TTL shorter by
    /// `age`), as if it had been created that long ago.
    pub async fn age_meeting(&self, id: &str, age: Duration) {
        match self.backend {
            TestBackend::Redis => {
                let key = self.key(&format!("meeting:{id}"));
                let left = self.redis().cmd(&["PTTL", &key]).await.as_int().expect("PTTL");
                assert!(left > 0, "meeting {id} has no TTL to shorten");
                let age = i64::try_from(age.as_millis()).expect("age");
                self.redis().cmd(&["PEXPIRE", &key, &(left - age).to_string()]).await;
            }
            TestBackend::Embedded => seed::age_meeting_sqlite(self.sqlite(), id, age).await,
        }
    }

    /// Lets the record of meeting `id` expire now, leaving what expiry
    /// leaves (its `meetings` entry and its voice bridge).
    pub async fn expire_meeting(&self, id: &str) {
        match self.backend {
            TestBackend::Redis => {
                self.redis().cmd(&["DEL", &self.key(&format!("meeting:{id}"))]).await;
            }
            TestBackend::Embedded => seed::expire_meeting_sqlite(self.sqlite(), id).await,
        }
    }

    /// How much longer the store keeps a short-lived record, `None` when it
    /// has none (never written, consumed or expired).
    pub async fn ttl_of(&self, record: Expiring<'_>) -> Option<Duration> {
        match self.backend {
            TestBackend::Redis => {
                let key = match record {
                    Expiring::AnalyticsCallback(meeting) => format!("analytics_callback:{meeting}"),
                    Expiring::PlaybackToken(token) => format!("protector_token_{token}"),
                    Expiring::RecordingReadyUrl(meeting) => format!("recording_ready:{meeting}"),
                };
                let ms = self.redis().cmd(&["PTTL", &self.key(&key)]).await.as_int().expect("PTTL");
                assert_ne!(ms, -1, "{record:?} has no expiry");
                u64::try_from(ms).ok().map(Duration::from_millis)
            }
            TestBackend::Embedded => {
                let (table, column, value) = match record {
                    Expiring::AnalyticsCallback(meeting) => ("analytics_callbacks", "meeting_id", meeting),
                    Expiring::PlaybackToken(token) => ("playback_tokens", "token", token),
                    Expiring::RecordingReadyUrl(meeting) => ("recording_ready_urls", "meeting_id", meeting),
                };
                seed::ttl_sqlite(self.sqlite(), table, column, value).await
            }
        }
    }

    fn sqlite(&self) -> &SqliteStore {
        self.sqlite.as_ref().expect("the embedded backend's SQLite file")
    }

    // === Redis and PostgreSQL themselves (tests pinned to Redis) ===

    /// The API's Redis.
    ///
    /// # Panics
    ///
    /// Panics on the embedded backend: a test that inspects Redis itself
    /// must be pinned with `.backend(TestBackend::Redis)`.
    pub fn redis(&self) -> &TestRedis {
        self.redis.as_ref().unwrap_or_else(|| {
            panic!(
                "TestApp::redis: this app runs on the {} backend; read state through the store (app.meeting, \
                 app.server, app.store()), or pin the test with TestApp::builder().backend(TestBackend::Redis) in \
                 a `{REDIS_ONLY}` module",
                self.backend.name()
            )
        })
    }

    /// A namespaced Redis key.
    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.namespace)
    }

    /// The raw `meeting:<id>` hash (Redis only, see [`TestApp::redis`]).
    pub async fn meeting_record(&self, id: &str) -> BTreeMap<String, String> {
        seed::hash(self.redis(), &self.key(&format!("meeting:{id}"))).await
    }

    /// The raw `server:<id>` hash (Redis only, see [`TestApp::redis`]).
    pub async fn server_record(&self, id: &str) -> BTreeMap<String, String> {
        seed::hash(self.redis(), &self.key(&format!("server:{id}"))).await
    }

    /// The recordings database.
    ///
    /// # Panics
    ///
    /// Panics unless the app runs on Redis and was built with
    /// [`TestAppBuilder::recordings`].
    pub fn pg(&self) -> &TestPostgres {
        if self.backend == TestBackend::Embedded {
            panic!(
                "TestApp::pg: this app runs on the embedded backend; read recordings through \
                 app.recording_store(), or pin the test with TestApp::builder().backend(TestBackend::Redis) in a \
                 `{REDIS_ONLY}` module"
            );
        }
        self.postgres.as_ref().expect("TestApp::builder().recordings()")
    }

    /// The recording directories.
    ///
    /// # Panics
    ///
    /// Panics unless the app was built with [`TestAppBuilder::recordings`].
    pub fn dirs(&self) -> &RecordingDirs {
        self.recording_dirs.as_ref().expect("TestApp::builder().recordings()")
    }

    // === Other processes ===

    /// A poller over this app's store with its configuration (so
    /// `POLL_INTERVAL`, thresholds and timeouts come from the builder's env).
    /// It accounts usage where the services would: PostgreSQL (with
    /// [`TestAppBuilder::recordings`]) or the embedded file.
    pub fn poller(&self, metrics: Arc<scalelite_poller::PollerMetrics>) -> scalelite_poller::Poller {
        scalelite_poller::Poller::from_config(&self.state.config, Arc::clone(self.store()), metrics)
            .with_usage(self.usage_store())
    }

    /// Where usage is accounted: the PostgreSQL database (Redis apps built
    /// with [`TestAppBuilder::recordings`]) or the SQLite file; `None` for
    /// Redis apps without PostgreSQL.
    pub fn usage_store(&self) -> Option<Arc<dyn scalelite_store::UsageStore>> {
        match self.backend {
            TestBackend::Embedded => self.sqlite.clone().map(|s| Arc::new(s) as Arc<dyn scalelite_store::UsageStore>),
            TestBackend::Redis => self.database_url.as_deref().map(|url| {
                Arc::new(scalelite_store::PgStore::open(url, 1).expect("pg store"))
                    as Arc<dyn scalelite_store::UsageStore>
            }),
        }
    }

    /// Runs one poll round now (taking and releasing the lease).
    pub async fn poll(&self) -> scalelite_poller::RoundReport {
        let metrics = Arc::new(scalelite_poller::PollerMetrics::new());
        self.poller(metrics).poll_once().await.expect("poll round").expect("the lease was free")
    }

    /// Signals the API to shut down (as SIGTERM does) without waiting: it
    /// stops accepting connections and finishes the requests in flight.
    pub fn begin_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Whether the API's `run` has returned.
    pub fn has_stopped(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stops the API gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{TestApp, TestBackend};

    #[test]
    #[should_panic(expected = "move it into a `redis_only` module")]
    fn a_test_pinned_to_redis_outside_a_redis_only_module_panics() {
        let _ = TestApp::builder().backend(TestBackend::Redis);
    }

    #[test]
    fn pinning_to_the_embedded_backend_needs_no_module() {
        let _ = TestApp::builder().backend(TestBackend::Embedded);
    }

    #[tokio::test]
    #[should_panic(expected = "pin the test with TestApp::builder().backend(TestBackend::Redis)")]
    async fn redis_of_an_embedded_app_asks_to_pin_the_test() {
        let app = TestApp::builder().backend(TestBackend::Embedded).servers(0).start().await;
        let _ = app.redis();
    }

    #[tokio::test]
    #[should_panic(expected = "pin the test with TestApp::builder().backend(TestBackend::Redis)")]
    async fn pg_of_an_embedded_app_asks_to_pin_the_test() {
        let app = TestApp::builder().backend(TestBackend::Embedded).servers(0).recordings().start().await;
        let _ = app.pg();
    }

    #[tokio::test]
    async fn an_embedded_app_keeps_everything_in_its_data_dir() {
        let app = TestApp::builder().backend(TestBackend::Embedded).servers(1).start().await;
        let file = app.state.config.backend.database_file().expect("the embedded backend");
        assert!(file.is_file());
        assert!(app.state.recordings.is_some(), "recordings live in the same file");
        let server = app.server("bbb-1").await.expect("the seeded server");
        assert_eq!((server.online, server.state.as_deref(), server.load), (true, Some("enabled"), Some(0.0)));
        assert_eq!(app.store_env().get("SCALELITE_DATA_DIR"), file.parent().and_then(|d| d.to_str()));
    }

    mod redis_only {
        use super::{TestApp, TestBackend};

        #[test]
        fn a_test_pinned_to_redis_inside_a_redis_only_module_is_accepted() {
            let _ = TestApp::builder().backend(TestBackend::Redis);
        }
    }
}
