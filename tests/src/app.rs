//! `TestApp`: a real `scalelite-api` (the library's `run`) on a random port,
//! backed by its own `redis-server` and a fake BBB fleet registered in
//! Redis exactly as Ruby Scalelite would have stored it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use scalelite_api::AppState;
use scalelite_core::config::{Config, Env};
use scalelite_store::RedisStore;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::client::ApiClient;
use crate::fake_bbb::FakeFleet;
use crate::postgres::TestPostgres;
use crate::recording_dirs::RecordingDirs;
use crate::redis::TestRedis;
use crate::seed::{self, SeedServer};

/// The load-balancer secret front-ends use in tests.
pub const LB_SECRET: &str = "lb-secret-4f0c2d9e7a1b3c5d";

/// The Redis namespace.
pub const NS: &str = "scalelite";

/// Builds a [`TestApp`].
#[derive(Debug)]
pub struct TestAppBuilder {
    servers: usize,
    seed: bool,
    recordings: bool,
    persistent_redis: bool,
    env: Vec<(String, String)>,
}

impl TestAppBuilder {
    /// Number of fake BBB servers (default 3).
    pub fn servers(mut self, n: usize) -> Self {
        self.servers = n;
        self
    }

    /// Leaves the fleet out of Redis (the test seeds it itself).
    pub fn unseeded(mut self) -> Self {
        self.seed = false;
        self
    }

    /// Adds recordings: a migrated PostgreSQL (`DATABASE_URL`) and temporary
    /// spool, work, publish and unpublish directories (`RECORDING_*_DIR`).
    pub fn recordings(mut self) -> Self {
        self.recordings = true;
        self
    }

    /// Runs Redis with an append-only file synced on every write, so its
    /// data survives [`TestRedis::stop`] and [`TestRedis::start_again`].
    pub fn persistent_redis(mut self) -> Self {
        self.persistent_redis = true;
        self
    }

    /// Sets an environment variable of the API process.
    pub fn env(mut self, name: &str, value: impl Into<String>) -> Self {
        self.env.push((name.to_owned(), value.into()));
        self
    }

    /// Starts Redis, the fleet and the API.
    pub async fn start(self) -> TestApp {
        let redis = if self.persistent_redis { TestRedis::start_persistent().await } else { TestRedis::start().await };
        let fleet = FakeFleet::start(self.servers).await;
        if self.seed {
            for (i, server) in fleet.iter().enumerate() {
                let record = SeedServer::enabled(server_id(i), server.url(), server.secret());
                seed::seed_server(&redis, NS, &record).await;
            }
        }
        let mut env = Env::default()
            .with("LOADBALANCER_SECRET", LB_SECRET)
            .with("REDIS_URL", redis.url())
            .with("CONNECT_TIMEOUT", "1")
            .with("RESPONSE_TIMEOUT", "2")
            .with("GET_MEETINGS_CACHE_TTL", "0");
        let (postgres, recording_dirs) = if self.recordings {
            let postgres = TestPostgres::start().await;
            scalelite_store::PgStore::open(&postgres.url(), 1).expect("pg store").migrate().await.expect("migrations");
            let dirs = RecordingDirs::new();
            env = dirs.env(env).with("DATABASE_URL", postgres.url());
            (Some(postgres), Some(dirs))
        } else {
            (None, None)
        };
        for (k, v) in self.env {
            env = env.with(&k, v);
        }
        let config = Config::from_env(&env).expect("test configuration");
        let namespace = config.redis_namespace.clone();
        let store = RedisStore::from_config(&config).expect("redis store");
        let state = AppState::new(config, Arc::new(store)).expect("app state");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(scalelite_api::run(listener, state.clone(), async move {
            let _ = rx.await;
        }));
        TestApp { redis, fleet, postgres, recording_dirs, addr, namespace, state, shutdown: Some(tx), task: Some(task) }
    }
}

/// The id under which fake server `i` is registered (`bbb-1`, `bbb-2`, ...).
pub fn server_id(i: usize) -> String {
    format!("bbb-{}", i + 1)
}

/// A running API with its Redis and fleet.
#[derive(Debug)]
pub struct TestApp {
    /// The API's Redis.
    pub redis: TestRedis,
    /// The fake BBB servers.
    pub fleet: FakeFleet,
    /// The recordings database (with [`TestAppBuilder::recordings`]).
    pub postgres: Option<TestPostgres>,
    /// The recording directories (with [`TestAppBuilder::recordings`]).
    pub recording_dirs: Option<RecordingDirs>,
    /// Where the API listens.
    pub addr: SocketAddr,
    /// The Redis namespace in use.
    pub namespace: String,
    /// The API's state (store, client, config).
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    /// A builder with three seeded servers.
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder { servers: 3, seed: true, recordings: false, persistent_redis: false, env: Vec::new() }
    }

    /// `TestApp::builder().start()`.
    pub async fn start() -> TestApp {
        Self::builder().start().await
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

    /// A namespaced key.
    pub fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.namespace)
    }

    /// The `meeting:<id>` hash.
    pub async fn meeting_record(&self, id: &str) -> BTreeMap<String, String> {
        seed::hash(&self.redis, &self.key(&format!("meeting:{id}"))).await
    }

    /// The `server:<id>` hash.
    pub async fn server_record(&self, id: &str) -> BTreeMap<String, String> {
        seed::hash(&self.redis, &self.key(&format!("server:{id}"))).await
    }

    /// The score of a server in `server_load`.
    pub async fn load(&self, server_id: &str) -> Option<f64> {
        seed::score(&self.redis, &self.key("server_load"), server_id).await
    }

    /// Index of the fake server hosting `meeting_id` according to Redis.
    pub async fn placed_on(&self, meeting_id: &str) -> Option<usize> {
        let record = self.meeting_record(meeting_id).await;
        let server = record.get("server_id")?;
        (0..self.fleet.len()).find(|i| &server_id(*i) == server)
    }

    /// A poller over this app's Redis with its configuration (so
    /// `POLL_INTERVAL`, thresholds, timeouts and a `REDIS_URL` set with
    /// [`TestAppBuilder::env`] come from the builder's env).
    pub fn poller(&self, metrics: Arc<scalelite_poller::PollerMetrics>) -> scalelite_poller::Poller {
        let store = RedisStore::from_config(&self.state.config).expect("redis store");
        scalelite_poller::Poller::from_config(&self.state.config, Arc::new(store), metrics)
    }

    /// Runs one poll round now (taking and releasing the lease).
    pub async fn poll(&self) -> scalelite_poller::RoundReport {
        let metrics = Arc::new(scalelite_poller::PollerMetrics::new());
        self.poller(metrics).poll_once().await.expect("poll round").expect("the lease was free")
    }

    /// Index of the fake server hosting `meeting_id`, for servers registered
    /// under `ids` (in fleet order).
    pub async fn placed_on_any(&self, ids: &[String], meeting_id: &str) -> usize {
        let record = self.meeting_record(meeting_id).await;
        let server = record.get("server_id").expect("meeting record");
        ids.iter().position(|id| id == server).expect("a known server")
    }

    /// The recordings database.
    ///
    /// # Panics
    ///
    /// Panics unless the app was built with [`TestAppBuilder::recordings`].
    pub fn pg(&self) -> &TestPostgres {
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

    /// A recordings store on the app's database.
    pub fn recording_store(&self) -> scalelite_store::PgStore {
        scalelite_store::PgStore::open(&self.pg().url(), 2).expect("pg store")
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
