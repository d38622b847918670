//! Typed configuration, read once from Scalelite's environment variables.
//!
//! Every binary builds one [`Config`] at start-up from an [`Env`] snapshot
//! and passes it down; nothing reads the process environment afterwards.
//! Tests build an [`Env`] from pairs instead of mutating the process.
//!
//! Parsing rules: booleans are true when the value equals `true`
//! case-insensitively (as in Scalelite); an empty variable counts as unset;
//! a value that does not parse is a start-up error naming the variable
//! (Scalelite silently reads such values as 0).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::checksum::AlgorithmSet;
use crate::ids::Secret;
use crate::ids::TenantId;
use crate::load::LoadModel;
use crate::params::{ParamPolicy, parse_name_list, parse_param_list};
use crate::retention::{RetentionAction, parse_days_or_off};
use crate::scope::MeetingIdScope;

/// A snapshot of environment variables.
#[derive(Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets: list names only.
        let mut names: Vec<_> = self.vars.keys().collect();
        names.sort();
        f.debug_struct("Env").field("names", &names).finish()
    }
}

impl Env {
    /// The current process environment (non-UTF-8 values are skipped).
    pub fn from_process() -> Self {
        Self {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect(),
        }
    }

    /// An environment made of the given pairs.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self { vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// Sets a variable (builder style, for tests and embedding).
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.vars.insert(name.to_owned(), value.into());
        self
    }

    /// The value of `name`, `None` when unset or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// Whether `name` is set to a non-empty value.
    pub fn is_set(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The value of `name` even when empty, for the few variables where an
    /// empty value means something (`FSAPI_PASSWORD=` disables dial-in
    /// authentication).
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }
}

/// The defaults of the configuration variables (the variable's name after
/// `DEFAULT_`; durations in the variable's unit). `docs/CONFIGURATION.md`
/// shows the same values: a test compares every default [`Config::from_env`]
/// applies with the table there.
pub mod defaults {
    /// `PORT`.
    pub const DEFAULT_PORT: u16 = 3000;
    /// `SCALELITE_DATA_DIR` (embedded mode).
    pub const DEFAULT_SCALELITE_DATA_DIR: &str = "./data";
    /// `REDIS_URL` when only `DATABASE_URL` is set.
    pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/0";
    /// `REDIS_NAMESPACE`.
    pub const DEFAULT_REDIS_NAMESPACE: &str = "scalelite";
    /// `REDIS_TIMEOUT`, seconds (redis-rb's default).
    pub const DEFAULT_REDIS_TIMEOUT: f64 = 5.0;
    /// `TENANT_CACHE_TTL`, seconds.
    pub const DEFAULT_TENANT_CACHE_TTL: f64 = 5.0;
    /// `MAX_MEETING_DURATION`, minutes (0: off).
    pub const DEFAULT_MAX_MEETING_DURATION: u64 = 0;
    /// `GET_MEETINGS_CACHE_TTL`, seconds.
    pub const DEFAULT_GET_MEETINGS_CACHE_TTL: f64 = 5.0;
    /// `JOIN_ROUTE_CACHE_TTL`, seconds (0: off).
    pub const DEFAULT_JOIN_ROUTE_CACHE_TTL: f64 = 1.0;
    /// `GET_MEETINGS_CONCURRENCY`, servers asked at once.
    pub const DEFAULT_GET_MEETINGS_CONCURRENCY: usize = 32;
    /// `CONNECT_TIMEOUT`, seconds.
    pub const DEFAULT_CONNECT_TIMEOUT: f64 = 5.0;
    /// `RESPONSE_TIMEOUT`, seconds.
    pub const DEFAULT_RESPONSE_TIMEOUT: f64 = 10.0;
    /// `DEFAULT_MEETING_TTL`, seconds.
    pub const DEFAULT_MEETING_TTL: u64 = 86_400;
    /// `VOICE_BRIDGE_LEN`, digits.
    pub const DEFAULT_VOICE_BRIDGE_LEN: usize = 9;
    /// `VOICE_BRIDGE_MIN`, digits.
    pub const DEFAULT_VOICE_BRIDGE_MIN: usize = 5;
    /// `VOICE_BRIDGE_MAX`, digits.
    pub const DEFAULT_VOICE_BRIDGE_MAX: usize = 9;
    /// `LOAD_MIN_USER_COUNT`.
    pub const DEFAULT_LOAD_MIN_USER_COUNT: u32 = 15;
    /// `LOAD_JOIN_BUFFER_TIME`, minutes.
    pub const DEFAULT_LOAD_JOIN_BUFFER_TIME: u64 = 15;
    /// `MAX_REQUEST_BODY_BYTES` (32 MiB).
    pub const DEFAULT_MAX_REQUEST_BODY_BYTES: usize = 32 * 1024 * 1024;
    /// `MAX_REQUEST_PARAMS` (Tomcat's `maxParameterCount`).
    pub const DEFAULT_MAX_REQUEST_PARAMS: usize = 1000;
    /// `MAX_UNAUTHENTICATED_BODY_BYTES` (64 MiB).
    pub const DEFAULT_MAX_UNAUTHENTICATED_BODY_BYTES: usize = 64 * 1024 * 1024;
    /// `HTTP_HEADER_READ_TIMEOUT`, seconds.
    pub const DEFAULT_HTTP_HEADER_READ_TIMEOUT: u64 = 10;
    /// `HTTP_IDLE_TIMEOUT`, seconds (Puma's).
    pub const DEFAULT_HTTP_IDLE_TIMEOUT: u64 = 20;
    /// `HTTP_MAX_CONNECTIONS`.
    pub const DEFAULT_HTTP_MAX_CONNECTIONS: usize = 4096;
    /// `HTTP_MAX_HEADER_BYTES` (64 KiB).
    pub const DEFAULT_HTTP_MAX_HEADER_BYTES: usize = 64 * 1024;
    /// `HTTP_SHUTDOWN_DELAY`, seconds between a stop signal and closing the
    /// listener (readiness answers 503 meanwhile).
    pub const DEFAULT_HTTP_SHUTDOWN_DELAY: u64 = 0;
    /// `ANALYTICS_CALLBACK_RETRY_INTERVAL`, seconds.
    pub const DEFAULT_ANALYTICS_CALLBACK_RETRY_INTERVAL: f64 = 10.0;
    /// `RECORDING_IMPORT_POLL_INTERVAL`, seconds.
    pub const DEFAULT_RECORDING_IMPORT_POLL_INTERVAL: f64 = 60.0;
    /// `RECORDING_IMPORT_SETTLE_TIME`, seconds.
    pub const DEFAULT_RECORDING_IMPORT_SETTLE_TIME: f64 = 2.0;
    /// `RECORDING_RETENTION_INTERVAL`, seconds.
    pub const DEFAULT_RECORDING_RETENTION_INTERVAL: f64 = 3600.0;
    /// `S3_PRESIGNED_URL_TTL`, seconds.
    pub const DEFAULT_S3_PRESIGNED_URL_TTL: f64 = 300.0;
    /// `S3_SINGLE_COPY_LIMIT_MB`: S3's limit for one `CopyObject`, 5 GiB.
    pub const DEFAULT_S3_SINGLE_COPY_LIMIT_MB: u64 = 5 * 1024;
    /// `S3_COPY_PART_SIZE_MB`: 512 MiB parts (5 TiB, S3's largest object,
    /// in 10 000 parts).
    pub const DEFAULT_S3_COPY_PART_SIZE_MB: u64 = 512;
    /// `RECORDING_UPLOAD_MAX_BYTES`: 20 GiB.
    pub const DEFAULT_RECORDING_UPLOAD_MAX_BYTES: u64 = 20 * 1024 * 1024 * 1024;
    /// `RECORDING_UPLOAD_WINDOW`, seconds.
    pub const DEFAULT_RECORDING_UPLOAD_WINDOW: f64 = 300.0;
    /// `RECORDING_UPLOAD_MIN_FREE_MB`: 1 GiB left free in the spool.
    pub const DEFAULT_RECORDING_UPLOAD_MIN_FREE_MB: u64 = 1024;
    /// `RECORDING_PLAYBACK_FORMATS`.
    pub const DEFAULT_RECORDING_PLAYBACK_FORMATS: &str = "presentation:video:screenshare:podcast:notes:capture";
    /// `PROTECTED_RECORDINGS_TOKEN_TIMEOUT`, minutes.
    pub const DEFAULT_PROTECTED_RECORDINGS_TOKEN_TIMEOUT: u64 = 60;
    /// `PROTECTED_RECORDINGS_TIMEOUT`, minutes.
    pub const DEFAULT_PROTECTED_RECORDINGS_TIMEOUT: u64 = 360;
    /// `POLL_INTERVAL`, seconds.
    pub const DEFAULT_POLL_INTERVAL: f64 = 60.0;
    /// `POLLER_THREADS`, servers polled at once.
    pub const DEFAULT_POLLER_THREADS: usize = 32;
    /// `SERVER_HEALTHY_THRESHOLD`, rounds.
    pub const DEFAULT_SERVER_HEALTHY_THRESHOLD: u32 = 1;
    /// `SERVER_UNHEALTHY_THRESHOLD`, rounds.
    pub const DEFAULT_SERVER_UNHEALTHY_THRESHOLD: u32 = 2;
    /// `DRAIN_NOTICE_INTERVAL`, seconds.
    pub const DEFAULT_DRAIN_NOTICE_INTERVAL: f64 = 300.0;
    /// `CAPACITY_PER_SERVER`, load units.
    pub const DEFAULT_CAPACITY_PER_SERVER: f64 = 200.0;
    /// `CONSOLE_PATH`.
    pub const DEFAULT_CONSOLE_PATH: &str = "/scalelite/console";
    /// `CONSOLE_SESSION_TTL`, seconds (8 hours).
    pub const DEFAULT_CONSOLE_SESSION_TTL: f64 = 28_800.0;
    /// `CONSOLE_REFRESH`, seconds.
    pub const DEFAULT_CONSOLE_REFRESH: f64 = 15.0;
    /// `CONSOLE_SAMPLE_INTERVAL`, seconds.
    pub const DEFAULT_CONSOLE_SAMPLE_INTERVAL: f64 = 60.0;
    /// `POLLER_METRICS_BIND` (`off` turns it off).
    pub const DEFAULT_POLLER_METRICS_BIND: &str = "0.0.0.0:9101";
    /// The database a `DATABASE_URL` without one names (Scalelite's
    /// `config/database.yml` production entry, which Rails merges under the
    /// URL).
    pub const DEFAULT_DATABASE_NAME: &str = "scalelite";
}

/// `url` with [`DEFAULT_DATABASE_NAME`] as its path when it names no
/// database (`postgres://host`, `postgres://host/`, `postgres:///?host=/run/postgresql`):
/// Rails fills the database in from `database.yml`, libpq and sqlx would
/// take the user's name instead. A URL that is not `scheme://...` is left
/// as it is (opening it reports the problem).
pub fn with_default_database(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    // The authority ends at the first '/', '?' or '#'; what follows up to
    // '?' or '#' is the path.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    let (path, suffix) = tail.split_at(path_end);
    if path.trim_start_matches('/').is_empty() {
        format!("{scheme}://{authority}/{DEFAULT_DATABASE_NAME}{suffix}")
    } else {
        url.to_owned()
    }
}

use defaults::*;

/// Every configuration problem found, reported together.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration:\n  {}", .0.join("\n  "))]
pub struct ConfigError(pub Vec<String>);

/// A variable a [`Reader`] was asked for, with its fixed default if it has
/// one (as `docs/CONFIGURATION.md` shows it).
pub type Asked = (String, Option<String>);

/// A reader that collects errors instead of stopping at the first one, and
/// remembers every variable it was asked for with its default (what the
/// test keeping docs/CONFIGURATION.md in step reads).
#[derive(Debug)]
pub struct Reader<'a> {
    env: &'a Env,
    errors: Vec<String>,
    asked: Vec<Asked>,
}

impl<'a> Reader<'a> {
    /// Starts reading `env`.
    pub fn new(env: &'a Env) -> Self {
        Self { env, errors: Vec::new(), asked: Vec::new() }
    }

    fn ask(&mut self, name: &str, default: Option<String>) -> Option<&'a str> {
        self.asked.push((name.to_owned(), default));
        self.env.get(name)
    }

    /// The variables asked for so far, each with its default when it has a
    /// fixed one.
    pub fn asked(&self) -> &[Asked] {
        &self.asked
    }

    /// The value, `None` when unset (no fixed default).
    pub fn string(&mut self, name: &str) -> Option<String> {
        self.ask(name, None).map(str::to_owned)
    }

    /// The value, or `default` when unset.
    pub fn string_or(&mut self, name: &str, default: &str) -> String {
        self.ask(name, Some(default.to_owned())).unwrap_or(default).to_owned()
    }

    /// The value even when empty (see [`Env::raw`]); no fixed default.
    pub fn raw(&mut self, name: &str) -> Option<String> {
        self.asked.push((name.to_owned(), None));
        self.env.raw(name).map(str::to_owned)
    }

    /// `true` when the value equals `true` case-insensitively.
    pub fn bool(&mut self, name: &str, default: bool) -> bool {
        self.ask(name, Some(default.to_string())).map_or(default, |v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// A parsed value, or `default` when unset.
    pub fn parse<T: FromStr + fmt::Display>(&mut self, name: &str, default: T) -> T
    where
        T::Err: fmt::Display,
    {
        let raw = self.ask(name, Some(default.to_string()));
        self.parse_raw(name, raw, default)
    }

    /// A parsed value, or `default` when unset, where the default follows
    /// from other variables (so it is not a fixed one).
    pub fn parse_derived<T: FromStr>(&mut self, name: &str, default: T) -> T
    where
        T::Err: fmt::Display,
    {
        let raw = self.ask(name, None);
        self.parse_raw(name, raw, default)
    }

    fn parse_raw<T: FromStr>(&mut self, name: &str, raw: Option<&str>, default: T) -> T
    where
        T::Err: fmt::Display,
    {
        match raw {
            None => default,
            Some(raw) => raw.trim().parse().unwrap_or_else(|e| {
                self.errors.push(format!("{name}={raw:?}: {e}"));
                default
            }),
        }
    }

    /// A duration given in (possibly fractional) seconds.
    pub fn seconds(&mut self, name: &str, default: f64) -> Duration {
        let secs: f64 = self.parse(name, default);
        if !secs.is_finite() || secs < 0.0 {
            self.errors.push(format!("{name}: must be a non-negative number of seconds"));
            return Duration::from_secs_f64(default);
        }
        Duration::from_secs_f64(secs)
    }

    /// Records a custom error.
    pub fn error(&mut self, message: String) {
        self.errors.push(message);
    }

    /// Finishes reading, failing if any error was recorded.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        if self.errors.is_empty() { Ok(value) } else { Err(ConfigError(self.errors)) }
    }
}

/// Where the state (servers, meetings, tenants, recordings) lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Redis (`REDIS_URL`) for servers, meetings and tenants and PostgreSQL
    /// (`DATABASE_URL`) for recordings, in Scalelite's layout: shared by
    /// replicas and with Ruby Scalelite. Chosen when either variable is set.
    Services,
    /// One SQLite file, [`Backend::DATABASE_FILE`] under `SCALELITE_DATA_DIR`
    /// (default `./data`): chosen when neither `REDIS_URL` nor
    /// `DATABASE_URL` is set.
    Embedded {
        /// `SCALELITE_DATA_DIR`.
        data_dir: PathBuf,
    },
}

impl fmt::Display for Backend {
    /// What an error opening the backend should name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Services => f.write_str("Redis and PostgreSQL (REDIS_URL, DATABASE_URL)"),
            Backend::Embedded { data_dir } => write!(f, "the embedded database in {}", data_dir.display()),
        }
    }
}

impl Backend {
    /// The database file's name inside the data directory.
    pub const DATABASE_FILE: &'static str = "scalelite.sqlite3";

    /// The SQLite file of the embedded backend.
    pub fn database_file(&self) -> Option<PathBuf> {
        match self {
            Backend::Services => None,
            Backend::Embedded { data_dir } => Some(data_dir.join(Self::DATABASE_FILE)),
        }
    }
}

/// Settings shared by the API, the poller and the admin CLI.
#[derive(Clone, Debug)]
pub struct Config {
    /// Redis/PostgreSQL or the embedded SQLite file.
    pub backend: Backend,
    /// `BIND` (`tcp://host:port` or `host:port`), else `0.0.0.0:$PORT` (3000).
    pub bind: SocketAddr,
    /// `REDIS_URL` (default `redis://127.0.0.1:6379/0` when only
    /// `DATABASE_URL` is set).
    pub redis_url: Secret,
    /// `REDIS_NAMESPACE` (default `scalelite`): keys are `<ns>:<key>`.
    pub redis_namespace: String,
    /// `REDIS_TIMEOUT` (seconds, default 5, redis-rb's default): the longest
    /// one Redis call may take, connecting included.
    pub redis_timeout: Duration,
    /// `REDIS_CA_FILE`: CA certificates (PEM) trusted for `rediss://`
    /// besides the system's.
    pub redis_ca_file: Option<PathBuf>,
    /// `DATABASE_URL`, if set.
    pub database_url: Option<Secret>,
    /// `LOADBALANCER_SECRET` followed by `LOADBALANCER_SECRETS` (`:`-separated).
    pub secrets: Vec<Secret>,
    /// `LOADBALANCER_CHECKSUM_ALGORITHM`.
    pub checksum_algorithms: AlgorithmSet,
    /// `URL_HOST`: when set, only this host (and its sub-domains in
    /// multitenant mode) is served.
    pub url_host: Option<String>,
    /// `BUILD_NUMBER`, shown by the API root.
    pub build_number: Option<String>,
    /// `MULTITENANCY_ENABLED`.
    pub multitenancy: bool,
    /// `MULTITENANCY_ENABLED` is set to any (non-empty) value, even `false`:
    /// what Scalelite's tenant rake tasks check before they run.
    pub multitenancy_variable_set: bool,
    /// `MULTITENANCY_MEETING_ID_SCOPE` (default `none`): `tenant` scopes
    /// meeting ids per tenant (`scalelite_core::scope`); needs
    /// `MULTITENANCY_ENABLED=true`.
    pub meeting_id_scope: MeetingIdScope,
    /// `TENANT_CACHE_TTL` (seconds, default 5): how long an API process
    /// keeps a tenant and its settings before reading them again.
    pub tenant_cache_ttl: Duration,
    /// `MAX_MEETING_DURATION` in minutes, 0 = off.
    pub max_meeting_duration: u64,
    /// `CREATE_EXCLUDE_PARAMS`, `DEFAULT_CREATE_PARAMS`, `OVERRIDE_CREATE_PARAMS`.
    pub create_params: ParamPolicy,
    /// `JOIN_EXCLUDE_PARAMS`, `DEFAULT_JOIN_PARAMS`, `OVERRIDE_JOIN_PARAMS`.
    pub join_params: ParamPolicy,
    /// `GET_MEETINGS_API_DISABLED`.
    pub get_meetings_disabled: bool,
    /// `GET_MEETINGS_CACHE_TTL` (seconds, default 5): how long one fan-out
    /// answers every getMeetings call (and, past it, half of how long it
    /// answers while a refresh runs).
    pub get_meetings_cache_ttl: Duration,
    /// `JOIN_ROUTE_CACHE_TTL` (seconds, default 1, 0 = off): how long an
    /// API process routes joins of a meeting from what the store last
    /// answered, counting their load in batches.
    pub join_route_cache_ttl: Duration,
    /// `GET_MEETINGS_CONCURRENCY` (default 32): servers asked at once.
    pub get_meetings_concurrency: usize,
    /// `CONNECT_TIMEOUT` (seconds, default 5).
    pub connect_timeout: Duration,
    /// `RESPONSE_TIMEOUT` (seconds, default 10).
    pub response_timeout: Duration,
    /// `DEFAULT_MEETING_TTL` (seconds, default 86400).
    pub meeting_ttl: Duration,
    /// `VOICE_BRIDGE_LEN` (default 9).
    pub voice_bridge_len: usize,
    /// `USE_EXTERNAL_VOICE_BRIDGE`.
    pub use_external_voice_bridge: bool,
    /// `REHOME_MEETINGS` (default true): a meeting whose server went offline
    /// is created again on a healthy server, from the parameters its create
    /// left, by its next create or join.
    pub rehome_meetings: bool,
    /// `VOICE_BRIDGE_MIN` (default 5): fewest digits the dial-in pin prompt
    /// accepts.
    pub voice_bridge_min: usize,
    /// `VOICE_BRIDGE_MAX` (default 9): most digits the dial-in pin prompt
    /// collects.
    pub voice_bridge_max: usize,
    /// `FSAPI_PASSWORD` (default: the first load-balancer secret): HTTP Basic
    /// password of `/fsapi` (user `fsapi`). An explicitly empty value
    /// disables authentication; `None` (neither variable set) leaves no
    /// password that works.
    pub fsapi_password: Option<Secret>,
    /// `FSAPI_MAX_DURATION` (minutes, default `MAX_MEETING_DURATION`):
    /// dial-in calls are hung up after this long; 0 = no limit.
    pub fsapi_max_duration: u64,
    /// `LOAD_MIN_USER_COUNT` and `LOAD_JOIN_BUFFER_TIME` (minutes).
    pub load: LoadModel,
    /// `MAX_REQUEST_BODY_BYTES` (default 32 MiB): largest accepted POST body.
    pub max_body_bytes: usize,
    /// `POLL_INTERVAL` (seconds, default 60): pause between poll rounds.
    pub poll_interval: Duration,
    /// `POLLER_THREADS` (default 32): servers polled at once.
    pub poller_concurrency: usize,
    /// `SERVER_HEALTHY_THRESHOLD` (default 1).
    pub healthy_threshold: u32,
    /// `SERVER_UNHEALTHY_THRESHOLD` (default 2).
    pub unhealthy_threshold: u32,
    /// `POLLER_METRICS_BIND` (default `0.0.0.0:9101`, `off` disables): where
    /// the poller serves `/metrics`.
    pub poller_metrics_bind: Option<SocketAddr>,
    /// `METRICS_BEARER_TOKEN`: when set, `/metrics` (the API's and the
    /// poller's) answers HTTP 401 to scrapes without
    /// `Authorization: Bearer <token>`.
    pub metrics_bearer_token: Option<Secret>,
    /// `SERVER_ID_IS_HOSTNAME`: new servers get their URL's host as id.
    pub server_id_is_hostname: bool,
    /// `MANAGEMENT_API_SECRETS` (`:`-separated): when set, the management API
    /// accepts only these, not the front-ends' `LOADBALANCER_SECRET(S)`.
    pub management_secrets: Vec<Secret>,
    /// `MANAGEMENT_API_SIGNED_BODY`: management calls with a JSON body must
    /// sign it (checksum over call name + query + body + secret).
    pub management_signed_body: bool,
    /// `ANALYTICS_CALLBACK_RETRY_INTERVAL` (seconds, default 10): pause
    /// before the second attempt at relaying an analytics callback to a
    /// front-end; doubled before the third and last.
    pub analytics_callback_retry: Duration,
    /// Recording settings.
    pub recordings: RecordingConfig,
    /// Limits of the HTTP edge (connections, headers, unauthenticated work).
    pub edge: EdgeLimits,
    /// Drains with notice (`servers drain`).
    pub drain: DrainConfig,
    /// `CAPACITY_PER_SERVER` (load units, default 200): what one server
    /// (multiplier 1) is meant to carry; the capacity report's headroom is
    /// measured against it; also the load from which a preferred region's
    /// server counts as full.
    pub capacity_per_server: f64,
    /// The operator console (`CONSOLE_*`).
    pub console: ConsoleConfig,
    /// `LIVEKIT_PLACEMENT` (default true): a create with
    /// `audioBridge`/`cameraBridge`/`screenShareBridge=livekit` goes only
    /// to servers with the `livekit` capability.
    pub livekit_placement: bool,
}

/// Settings of the operator console in the browser, served by the API.
#[derive(Clone, Debug)]
pub struct ConsoleConfig {
    /// `CONSOLE_ENABLED` (default false): without it the console's paths
    /// are not served at all.
    pub enabled: bool,
    /// `CONSOLE_PATH` (default `/scalelite/console`): where it is served.
    pub path: String,
    /// `CONSOLE_SECRET`: a secret for logging in; the management secrets
    /// (`MANAGEMENT_API_SECRETS`, else the load-balancer secrets) work too.
    pub secret: Option<Secret>,
    /// `CONSOLE_AUTH_HEADER`: a header set by a reverse proxy that has
    /// authenticated the operator (`X-Forwarded-User`); its value names them.
    pub auth_header: Option<String>,
    /// `CONSOLE_SESSION_TTL` (seconds, default 8 hours): how long a login lasts.
    pub session_ttl: Duration,
    /// `CONSOLE_SECURE_COOKIE` (`auto`, `true`, `false`; default `auto`):
    /// whether the session cookie is `Secure`; `auto` when the request came
    /// as HTTPS (`X-Forwarded-Proto: https`).
    pub secure_cookie: Option<bool>,
    /// `CONSOLE_REFRESH` (seconds, default 15, 0 turns it off): how often the
    /// pages reload themselves.
    pub refresh: Duration,
    /// `CONSOLE_SAMPLE_INTERVAL` (seconds, default 60): how often the API
    /// samples each server's load and users for the console's plots.
    pub sample_interval: Duration,
}

/// Settings of drains with notice.
#[derive(Clone, Debug, PartialEq)]
pub struct DrainConfig {
    /// `DRAIN_NOTICE_INTERVAL` (seconds, default 300): pause between chat
    /// notices to the meetings of a draining server.
    pub notice_interval: Duration,
    /// `DRAIN_NOTICE_TEMPLATE`: the notice of a drain with a deadline.
    pub template: String,
    /// `DRAIN_NOTICE_TEMPLATE_NO_DEADLINE`: the notice of a drain without one.
    pub template_no_deadline: String,
}

/// The built-in `DRAIN_NOTICE_TEMPLATE`.
pub const DEFAULT_DRAIN_NOTICE_TEMPLATE: &str =
    "This server is going down for maintenance: this meeting will be ended in {time_left} (at {deadline}). {message}";
/// The built-in `DRAIN_NOTICE_TEMPLATE_NO_DEADLINE`.
pub const DEFAULT_DRAIN_NOTICE_TEMPLATE_NO_DEADLINE: &str = "This server is going down for maintenance: please end \
     this meeting when you can; new meetings start on another server. {message}";

/// Limits that keep the work of unauthenticated clients bounded (see
/// `docs/SECURITY.md`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeLimits {
    /// `MAX_REQUEST_PARAMS` (default 1000, Tomcat's `maxParameterCount`):
    /// most parameters in a query plus a form body; more is refused before
    /// anything is decoded.
    pub max_params: usize,
    /// `MAX_UNAUTHENTICATED_BODY_BYTES` (default 64 MiB): request bodies read
    /// before their checksum is known to match, summed over all requests at
    /// once; beyond it a request is refused at once (HTTP 503).
    pub unauthenticated_body_budget: usize,
    /// `HTTP_HEADER_READ_TIMEOUT` (seconds, default 10): time from a
    /// request's first byte until its headers are complete; also the longest
    /// pause while a request body is read.
    pub header_read_timeout: Duration,
    /// `HTTP_IDLE_TIMEOUT` (seconds, default 20, Puma's): a keep-alive
    /// connection without a request is closed after this long.
    pub idle_timeout: Duration,
    /// `HTTP_MAX_CONNECTIONS` (default 4096): connections served at once;
    /// further ones wait in the listen backlog.
    pub max_connections: usize,
    /// `HTTP_MAX_HEADER_BYTES` (default 64 KiB): largest request line plus
    /// headers.
    pub max_header_bytes: usize,
    /// `HTTP_SHUTDOWN_DELAY` (seconds, default 0): after SIGTERM, how long
    /// `/readyz` answers 503 while requests are still served, so a load
    /// balancer takes the process out before its listener closes.
    pub shutdown_delay: Duration,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        Self {
            max_params: DEFAULT_MAX_REQUEST_PARAMS,
            unauthenticated_body_budget: DEFAULT_MAX_UNAUTHENTICATED_BODY_BYTES,
            header_read_timeout: Duration::from_secs(DEFAULT_HTTP_HEADER_READ_TIMEOUT),
            idle_timeout: Duration::from_secs(DEFAULT_HTTP_IDLE_TIMEOUT),
            max_connections: DEFAULT_HTTP_MAX_CONNECTIONS,
            max_header_bytes: DEFAULT_HTTP_MAX_HEADER_BYTES,
            shutdown_delay: Duration::from_secs(DEFAULT_HTTP_SHUTDOWN_DELAY),
        }
    }
}

impl EdgeLimits {
    fn read(r: &mut Reader<'_>) -> Self {
        let d = Self::default();
        let limits = Self {
            max_params: r.parse("MAX_REQUEST_PARAMS", d.max_params),
            unauthenticated_body_budget: r.parse("MAX_UNAUTHENTICATED_BODY_BYTES", d.unauthenticated_body_budget),
            header_read_timeout: r.seconds("HTTP_HEADER_READ_TIMEOUT", d.header_read_timeout.as_secs_f64()),
            idle_timeout: r.seconds("HTTP_IDLE_TIMEOUT", d.idle_timeout.as_secs_f64()),
            max_connections: r.parse("HTTP_MAX_CONNECTIONS", d.max_connections),
            max_header_bytes: r.parse("HTTP_MAX_HEADER_BYTES", d.max_header_bytes),
            shutdown_delay: r.seconds("HTTP_SHUTDOWN_DELAY", d.shutdown_delay.as_secs_f64()),
        };
        for (name, zero) in [
            ("MAX_REQUEST_PARAMS", limits.max_params == 0),
            ("HTTP_HEADER_READ_TIMEOUT", limits.header_read_timeout.is_zero()),
            ("HTTP_IDLE_TIMEOUT", limits.idle_timeout.is_zero()),
            ("HTTP_MAX_CONNECTIONS", limits.max_connections == 0),
        ] {
            if zero {
                r.error(format!("{name}: must be greater than zero"));
            }
        }
        if limits.max_header_bytes < 8192 {
            r.error("HTTP_MAX_HEADER_BYTES: must be at least 8192".to_owned());
        }
        limits
    }
}

/// Settings of recordings (import, API, playback).
#[derive(Clone, Debug, PartialEq)]
pub struct RecordingConfig {
    /// `RECORDING_DISABLED`.
    pub disabled: bool,
    /// `RECORDING_SPOOL_DIR` (default `/var/bigbluebutton/spool`; with the
    /// embedded backend `$SCALELITE_DATA_DIR/recordings/spool`, and likewise
    /// for the other three directories).
    pub spool_dir: PathBuf,
    /// `RECORDING_WORK_DIR` (default `/var/bigbluebutton/recording/scalelite`).
    pub work_dir: PathBuf,
    /// `RECORDING_PUBLISH_DIR` (default `/var/bigbluebutton/published`).
    pub publish_dir: PathBuf,
    /// `RECORDING_UNPUBLISH_DIR` (default `/var/bigbluebutton/unpublished`).
    pub unpublish_dir: PathBuf,
    /// `RECORDING_IMPORT_UNPUBLISHED`.
    pub import_unpublished: bool,
    /// `RECORDING_IMPORT_POLL_INTERVAL` (seconds, default 60): spool scans
    /// besides file-system events.
    pub import_poll_interval: Duration,
    /// `RECORDING_IMPORT_SETTLE_TIME` (seconds, default 2): an archive must
    /// be unchanged this long before it is imported.
    pub import_settle_time: Duration,
    /// `RECORDING_PLAYBACK_FORMATS` (`:`-separated).
    pub playback_formats: Vec<String>,
    /// `PROTECTED_RECORDINGS_ENABLED`.
    pub protected: bool,
    /// `PROTECTED_RECORDINGS_TOKEN_TIMEOUT` (minutes, default 60).
    pub token_ttl: Duration,
    /// `PROTECTED_RECORDINGS_TIMEOUT` (minutes, default 360).
    pub cookie_ttl: Duration,
    /// `GET_RECORDINGS_API_FILTERED`.
    pub get_recordings_filtered: bool,
    /// `RECORDING_RETENTION_DAYS` (new; `None`, the default, keeps
    /// recordings forever unless a tenant setting says otherwise).
    pub retention_days: Option<u32>,
    /// `RECORDING_RETENTION_ACTION` (new; default `delete`).
    pub retention_action: RetentionAction,
    /// `RECORDING_RETENTION_INTERVAL` (new; seconds, default 3600): how
    /// often the importer applies the retention rules.
    pub retention_interval: Duration,
    /// `RECORDING_IMPORTER_METRICS_BIND` (new; default off): where
    /// `scalelite-recording-importer` serves `/metrics`.
    pub importer_metrics_bind: Option<SocketAddr>,
    /// `SECRET_KEY_BASE`: key of protected-recording cookies.
    pub secret_key_base: Option<Secret>,
    /// `S3_RECORDING` and the bucket settings: recordings live in an
    /// S3-compatible bucket instead of the publish/unpublish trees.
    pub s3: Option<S3Config>,
    /// `RECORDING_UPLOAD_ENABLED` (new; default false): BBB servers may
    /// upload archives over HTTP(S) to `PUT /scalelite/upload/<name>.tar`.
    pub upload_enabled: bool,
    /// `RECORDING_UPLOAD_MAX_BYTES` (new; default 20 GiB): larger uploads
    /// are refused before their body is read.
    pub upload_max_bytes: u64,
    /// `RECORDING_UPLOAD_WINDOW` (new; seconds, default 300): how far an
    /// upload's timestamp may be from the balancer's clock.
    pub upload_window: Duration,
    /// `RECORDING_UPLOAD_MIN_FREE_MB` (new; MiB, default 1024): an upload is
    /// refused (507) before its body is read unless the spool's file system
    /// keeps at least this much free space after it.
    pub upload_min_free_bytes: u64,
}

/// Where recordings are stored when `S3_RECORDING` is on (Scalelite's
/// variables, and the AWS SDK's standard ones for region, endpoint and
/// credentials).
#[derive(Clone, Debug, PartialEq)]
pub struct S3Config {
    /// `S3_BUCKET_NAME`.
    pub bucket: String,
    /// `AWS_REGION` (else `AWS_DEFAULT_REGION`, else the `region` of the
    /// shared profile, else `us-east-1`).
    pub region: String,
    /// `AWS_ENDPOINT_URL_S3` (else `AWS_ENDPOINT_URL`); `None`: AWS's own
    /// `https://s3.<region>.amazonaws.com`.
    pub endpoint: Option<String>,
    /// `S3_FORCE_PATH_STYLE` (new): `<endpoint>/<bucket>/<key>` instead of
    /// `<bucket>.<endpoint host>/<key>`. Default: on with a custom endpoint.
    pub path_style: bool,
    /// Where requests get their credentials.
    pub credentials: S3Credentials,
    /// `S3_PRESIGNED_URL_TTL` (new; seconds, default 300): how long the URL
    /// a playback request is redirected to stays valid.
    pub presigned_url_ttl: Duration,
    /// `S3_TENANT_PREFIX` (new; default none): a key prefix per tenant,
    /// where `{tenant}` stands for the recording's `tenant-id`.
    pub tenant_prefix: Option<String>,
    /// `CLOUDFRONT_URL`, `CF_KEY_PAIR_ID` and `CF_PRIVATE_KEY_B64`: page
    /// requests of playback go to CloudFront with signed cookies.
    pub cloudfront: Option<CloudFrontConfig>,
    /// `S3_SINGLE_COPY_LIMIT_MB` (new; MiB, default 5120, at most 5120), in
    /// bytes: objects up to this size move (publish, unpublish) with one
    /// `CopyObject`, larger ones with a multipart copy.
    pub single_copy_limit: u64,
    /// `S3_COPY_PART_SIZE_MB` (new; MiB, default 512, 5 to 5120), in bytes:
    /// the part size of a multipart copy (raised when an object would need
    /// more than 10 000 parts).
    pub copy_part_size: u64,
}

/// The credentials requests to the bucket are signed with, from the first
/// of these sources that is set (the order of the AWS SDKs for Ruby, Java,
/// PHP and Python): the key pair of the environment, a web identity, the
/// profile of the shared credentials and config files (the role it assumes,
/// else its static keys, else its `credential_process`), the container
/// credentials endpoint, EC2's instance metadata service.
#[derive(Clone, Debug, PartialEq)]
pub enum S3Credentials {
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`
    /// (they take precedence over every other source).
    Static {
        /// `AWS_ACCESS_KEY_ID`.
        access_key_id: Secret,
        /// `AWS_SECRET_ACCESS_KEY`.
        secret_access_key: Secret,
        /// `AWS_SESSION_TOKEN`.
        session_token: Option<Secret>,
    },
    /// Temporary credentials of a role assumed with a web identity token
    /// (EKS IAM roles for service accounts, OIDC), fetched (and refreshed
    /// before they expire) from STS.
    WebIdentity(WebIdentityCredentials),
    /// The static keys of a profile of the shared credentials file (or of
    /// the shared config file).
    Profile {
        /// `AWS_PROFILE` (default `default`).
        profile: String,
        /// The file they were read from.
        file: PathBuf,
        /// The profile's keys.
        keys: crate::aws_profile::ProfileKeys,
    },
    /// The credentials a profile's `credential_process` prints, got by
    /// running it (again before they expire, when they do).
    Process(ProcessCredentials),
    /// Temporary credentials of the role a profile assumes (`role_arn`),
    /// fetched (and refreshed before they expire) from STS `AssumeRole`
    /// with the credentials of its source.
    AssumeRole(AssumeRoleCredentials),
    /// Temporary credentials of a role, fetched (and refreshed before they
    /// expire) from the ECS container endpoint or EC2's instance metadata
    /// service, in the AWS SDKs' order.
    Role(RoleCredentials),
}

/// The `credential_process` of a profile of the shared files.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessCredentials {
    /// `AWS_PROFILE` (default `default`).
    pub profile: String,
    /// The file it was read from (the config file, or the credentials file).
    pub file: PathBuf,
    /// The command, run with `/bin/sh -c` (it may hold secrets: never
    /// logged).
    pub command: Secret,
}

/// The role a profile of the shared files assumes with STS `AssumeRole`
/// (`role_arn`).
#[derive(Clone, Debug, PartialEq)]
pub struct AssumeRoleCredentials {
    /// The profile that sets `role_arn`.
    pub profile: String,
    /// `role_arn`.
    pub role_arn: String,
    /// `role_session_name` (default `scalelite-<unix time>`).
    pub session_name: Option<String>,
    /// `external_id`.
    pub external_id: Option<String>,
    /// `duration_seconds` (default: STS's, an hour).
    pub duration_seconds: Option<u32>,
    /// The STS endpoint, as for a web identity.
    pub sts_endpoint: String,
    /// The region the request is signed for (the bucket's).
    pub region: String,
    /// The credentials `AssumeRole` is signed with: those of the profile
    /// `source_profile` names (its static keys, its `credential_process`,
    /// or the role it assumes in turn), or of `credential_source` (the
    /// container credentials endpoint, EC2's instance metadata service).
    pub source: Box<S3Credentials>,
}

/// The longest chain of profiles assuming roles with the credentials of
/// the next one (`source_profile`).
pub const MAX_ROLE_CHAIN: usize = 8;

/// A role assumed with `AssumeRoleWithWebIdentity` (the AWS SDKs'
/// variables).
#[derive(Clone, Debug, PartialEq)]
pub struct WebIdentityCredentials {
    /// `AWS_WEB_IDENTITY_TOKEN_FILE`: the token, read again at each fetch
    /// (Kubernetes rotates it).
    pub token_file: PathBuf,
    /// `AWS_ROLE_ARN`.
    pub role_arn: String,
    /// `AWS_ROLE_SESSION_NAME` (default `scalelite-<unix time>`).
    pub session_name: Option<String>,
    /// `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`, else
    /// `https://sts.<region>.amazonaws.com` (no trailing `/`).
    pub sts_endpoint: String,
}

/// Where the credentials of a role come from (the AWS SDKs' variables).
#[derive(Clone, Debug, PartialEq)]
pub struct RoleCredentials {
    /// `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (as
    /// `http://169.254.170.2<uri>`), else `AWS_CONTAINER_CREDENTIALS_FULL_URI`:
    /// the container credentials endpoint (ECS task role, EKS Pod Identity).
    pub container_url: Option<String>,
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN`: the `Authorization` header sent
    /// to a full URI.
    pub container_token: Option<Secret>,
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`: a file holding that header
    /// (read at each fetch; it takes precedence over the variable).
    pub container_token_file: Option<PathBuf>,
    /// `AWS_EC2_METADATA_SERVICE_ENDPOINT` (default
    /// `http://169.254.169.254`): EC2's instance metadata service (`IMDSv2`),
    /// asked when no container endpoint is set; `None` when
    /// `AWS_EC2_METADATA_DISABLED=true`.
    pub imds_endpoint: Option<String>,
}

/// The container credentials endpoint of ECS (`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`).
pub const ECS_CREDENTIALS_HOST: &str = "http://169.254.170.2";
/// EC2's instance metadata service.
pub const DEFAULT_IMDS_ENDPOINT: &str = "http://169.254.169.254";

/// Whether the AWS SDKs would fetch from this full container URI: `https`,
/// or a loopback address, ECS's `169.254.170.2` or EKS Pod Identity's
/// `169.254.170.23` / `fd00:ec2::23` (host names other than `localhost`
/// are not resolved here, so they need `https`).
fn container_uri_allowed(uri: &str) -> bool {
    if uri.starts_with("https://") {
        return true;
    }
    let Some(rest) = uri.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return false;
    }
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or("", |(h, _)| h),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => {
            ip.is_loopback()
                || ip == std::net::IpAddr::from([169, 254, 170, 2])
                || ip == std::net::IpAddr::from([169, 254, 170, 23])
                || ip == std::net::IpAddr::from([0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23])
        }
        Err(_) => false,
    }
}

/// The CloudFront distribution in front of the bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct CloudFrontConfig {
    /// `CLOUDFRONT_URL` (no trailing `/`).
    pub url: String,
    /// `CF_KEY_PAIR_ID`.
    pub key_pair_id: String,
    /// `CF_PRIVATE_KEY_B64`: base64 of the PEM private key (checked when
    /// read).
    pub private_key_b64: Secret,
}

/// Whether Scalelite would see `S3_RECORDING` as on: Ruby's
/// `if ENV['S3_RECORDING']` is true for any value; here the usual words for
/// "off" (`false`, `0`, `no`, `off`) and an empty value turn it off.
fn s3_recording_on(raw: Option<&str>) -> bool {
    raw.map(str::trim)
        .is_some_and(|v| !v.is_empty() && !["false", "0", "no", "off"].iter().any(|off| v.eq_ignore_ascii_case(off)))
}

/// Reads where role credentials come from, and what is wrong with it
/// (reported only when they are used: S3 on without a key pair).
fn role_credentials(r: &mut Reader<'_>) -> (RoleCredentials, Vec<String>) {
    let mut errors = Vec::new();
    let relative = r.string("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    let full = r.string("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    let container_token = r.string("AWS_CONTAINER_AUTHORIZATION_TOKEN").map(Secret::new);
    let container_token_file = r.string("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE").map(PathBuf::from);
    let imds_endpoint = r.string_or("AWS_EC2_METADATA_SERVICE_ENDPOINT", DEFAULT_IMDS_ENDPOINT);
    let imds_disabled = r.bool("AWS_EC2_METADATA_DISABLED", false);
    let container_url = match (relative, full) {
        (Some(relative), _) => {
            let relative = relative.trim();
            if !relative.starts_with('/') || relative.contains(['@', '#', ' ']) {
                errors.push(format!("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI={relative:?}: expected a path"));
            }
            Some(format!("{ECS_CREDENTIALS_HOST}{relative}"))
        }
        (None, Some(full)) => {
            let full = full.trim().to_owned();
            if !container_uri_allowed(&full) {
                errors.push(format!(
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI={full:?}: expected an https:// URL or http:// to a loopback \
                     address, 169.254.170.2 or 169.254.170.23"
                ));
            }
            Some(full)
        }
        (None, None) => None,
    };
    let imds_endpoint = imds_endpoint.trim().trim_end_matches('/').to_owned();
    if container_url.is_none()
        && !imds_disabled
        && !(imds_endpoint.starts_with("http://") || imds_endpoint.starts_with("https://"))
    {
        errors.push(format!("AWS_EC2_METADATA_SERVICE_ENDPOINT={imds_endpoint:?}: expected an http:// URL"));
    }
    let role = RoleCredentials {
        container_url,
        container_token,
        container_token_file,
        imds_endpoint: (!imds_disabled).then_some(imds_endpoint),
    };
    (role, errors)
}

/// The web identity of `AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN`,
/// with `AWS_ROLE_SESSION_NAME` and the STS endpoint (`None` when neither
/// is set; an error when only one is).
fn web_identity_credentials(
    r: &mut Reader<'_>,
    (token_file, role_arn, session_name, endpoint): (Option<String>, Option<String>, Option<String>, Option<String>),
    region: &str,
) -> Option<WebIdentityCredentials> {
    let (token_file, role_arn) = match (token_file, role_arn) {
        (None, None) => return None,
        (Some(file), Some(arn)) => (file.trim().to_owned(), arn.trim().to_owned()),
        _ => {
            r.error("AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN are set together (web identity), or neither".into());
            return None;
        }
    };
    if !role_arn.starts_with("arn:") || role_arn.len() > 2048 || !role_arn.bytes().all(|b| b.is_ascii_graphic()) {
        r.error(format!("AWS_ROLE_ARN={role_arn:?}: expected a role's ARN (arn:aws:iam::<account>:role/<name>)"));
    }
    let session_name = session_name.map(|name| name.trim().to_owned());
    if let Some(name) = &session_name
        && !((2..=64).contains(&name.len())
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b)))
    {
        r.error(format!(
            "AWS_ROLE_SESSION_NAME={name:?}: 2 to 64 letters, digits and the characters _+=,.@- are expected"
        ));
    }
    let sts_endpoint = sts_endpoint(r, endpoint, region);
    Some(WebIdentityCredentials { token_file: PathBuf::from(token_file), role_arn, session_name, sts_endpoint })
}

/// The STS endpoint: `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`
/// (`endpoint`), else STS's regional endpoint (no trailing `/`).
fn sts_endpoint(r: &mut Reader<'_>, endpoint: Option<String>, region: &str) -> String {
    match endpoint {
        Some(endpoint) => {
            let endpoint = endpoint.trim().trim_end_matches('/').to_owned();
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                r.error(format!(
                    "AWS_ENDPOINT_URL_STS (else AWS_ENDPOINT_URL) {endpoint:?}: the STS endpoint, expected an \
                     http:// or https:// URL"
                ));
            }
            endpoint
        }
        None if region.starts_with("cn-") => format!("https://sts.{region}.amazonaws.com.cn"),
        None => format!("https://sts.{region}.amazonaws.com"),
    }
}

/// The profile `AWS_PROFILE` (default `default`) of the shared credentials
/// file `AWS_SHARED_CREDENTIALS_FILE` (default `~/.aws/credentials`) and
/// the shared config file `AWS_CONFIG_FILE` (default `~/.aws/config`), as
/// read once `S3_RECORDING` is on.
struct SharedProfile {
    /// The profile's name.
    name: String,
    /// Whether `AWS_PROFILE` named it.
    named: bool,
    /// The credentials file.
    credentials_file: PathBuf,
    /// The config file.
    config_file: PathBuf,
    /// The texts of the two files (`None`: no such file); `Err` when one
    /// cannot be read.
    texts: Result<(Option<String>, Option<String>), String>,
    /// What the files say about it: `None` when neither file (or no file)
    /// has it; `Err` when a file cannot be read or the profile is not
    /// usable (reported only when the profile is asked).
    profile: Result<Option<crate::aws_profile::Profile>, String>,
}

impl SharedProfile {
    /// The file a setting of the profile was read from.
    fn file(&self, kind: crate::aws_profile::FileKind) -> &std::path::Path {
        match kind {
            crate::aws_profile::FileKind::Credentials => &self.credentials_file,
            crate::aws_profile::FileKind::Config => &self.config_file,
        }
    }

    /// What the files say about the profile `name`.
    fn lookup(&self, name: &str) -> Result<Option<crate::aws_profile::Profile>, String> {
        use crate::aws_profile::{FileKind, merge, section};
        let (credentials_text, config_text) = self.texts.as_ref().map_err(Clone::clone)?;
        let read = |text: &Option<String>, file: &std::path::Path, kind: FileKind, variable: &str| match text {
            Some(text) => section(text, name, kind).map_err(|e| format!("{variable} {}: {e}", file.display())),
            None => Ok(None),
        };
        let credentials =
            read(credentials_text, &self.credentials_file, FileKind::Credentials, "AWS_SHARED_CREDENTIALS_FILE")?;
        let config = read(config_text, &self.config_file, FileKind::Config, "AWS_CONFIG_FILE")?;
        if credentials.is_none() && config.is_none() {
            return Ok(None);
        }
        merge(name, config.as_ref(), credentials.as_ref()).map(Some).map_err(|e| {
            format!("AWS_PROFILE: {e} (in {} or {})", self.credentials_file.display(), self.config_file.display())
        })
    }
}

/// Reads the profile of the shared files; `variables` are the values of
/// `AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`, `AWS_PROFILE` and
/// `HOME`.
fn shared_profile(
    (credentials_file, config_file, profile, home): (Option<String>, Option<String>, Option<String>, Option<String>),
) -> SharedProfile {
    let named = profile.as_deref().map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned);
    let name = named.clone().unwrap_or_else(|| "default".to_owned());
    let path = |file: Option<String>, default: &str| match (file, home.as_deref()) {
        (Some(file), home) => match (file.trim().strip_prefix("~/"), home) {
            (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
            _ => PathBuf::from(file.trim()),
        },
        (None, Some(home)) => PathBuf::from(home).join(default),
        (None, None) => PathBuf::new(),
    };
    let credentials_file = path(credentials_file, ".aws/credentials");
    let config_file = path(config_file, ".aws/config");
    let read = |file: &std::path::Path, variable: &str| {
        let text = if file.as_os_str().is_empty() { Ok(None) } else { read_credentials_file(file) };
        text.map_err(|e| format!("{variable} {}: {e}", file.display()))
    };
    let texts = read(&credentials_file, "AWS_SHARED_CREDENTIALS_FILE")
        .and_then(|credentials| Ok((credentials, read(&config_file, "AWS_CONFIG_FILE")?)));
    let mut shared =
        SharedProfile { name, named: named.is_some(), credentials_file, config_file, texts, profile: Ok(None) };
    shared.profile = shared.lookup(&shared.name);
    shared
}

/// What a role's source may use: the region and STS endpoint of the
/// request, the container endpoint and IMDS settings, and what is wrong
/// with those.
struct RoleContext<'a> {
    region: &'a str,
    sts_endpoint: Option<String>,
    role: &'a RoleCredentials,
    role_errors: &'a [String],
}

/// The credentials of the shared profile: `None` when it sets none (the
/// container endpoint or IMDS come next); its mistakes are errors.
fn profile_credentials(r: &mut Reader<'_>, shared: &SharedProfile, context: &RoleContext<'_>) -> Option<S3Credentials> {
    let profile = match &shared.profile {
        Ok(Some(profile)) => profile,
        Ok(None) => {
            if shared.named {
                r.error(format!(
                    "AWS_PROFILE={:?}: no such profile in the shared credentials file {} \
                     (AWS_SHARED_CREDENTIALS_FILE) or the shared config file {} (AWS_CONFIG_FILE)",
                    shared.name,
                    shared.credentials_file.display(),
                    shared.config_file.display()
                ));
            }
            return None;
        }
        Err(e) => {
            r.error(e.clone());
            return None;
        }
    };
    // The STS endpoint (and what is wrong with it) once for the chain.
    let sts = match profile.role {
        Some(_) => sts_endpoint(r, context.sts_endpoint.clone(), context.region),
        None => String::new(),
    };
    let mut chain = Vec::new();
    match credentials_of(shared, &shared.name, profile, (context, &sts), &mut chain) {
        Ok(credentials) => credentials,
        Err(e) => {
            r.error(e);
            None
        }
    }
}

/// The credentials of the profile `name`: the role it assumes (at the STS
/// endpoint `sts`), else its static keys, else its `credential_process`,
/// else `None`. `chain` holds
/// the profiles whose roles are assumed with these credentials (a cycle,
/// or a chain longer than [`MAX_ROLE_CHAIN`], is an error).
fn credentials_of(
    shared: &SharedProfile,
    name: &str,
    profile: &crate::aws_profile::Profile,
    (context, sts): (&RoleContext<'_>, &str),
    chain: &mut Vec<String>,
) -> Result<Option<S3Credentials>, String> {
    use crate::aws_profile::{ProfileCredentials, RoleSource};
    let own = || match &profile.credentials {
        ProfileCredentials::None => None,
        ProfileCredentials::Keys(keys, kind) => Some(S3Credentials::Profile {
            profile: name.to_owned(),
            file: shared.file(*kind).to_owned(),
            keys: keys.clone(),
        }),
        ProfileCredentials::Process(command, kind) => Some(S3Credentials::Process(ProcessCredentials {
            profile: name.to_owned(),
            file: shared.file(*kind).to_owned(),
            command: command.clone(),
        })),
    };
    let Some(role) = &profile.role else {
        return Ok(own());
    };
    let described = |chain: &[String]| {
        chain.iter().chain([&name.to_owned()]).map(|p| format!("{p:?}")).collect::<Vec<_>>().join(" -> ")
    };
    if chain.iter().any(|p| p == name) {
        return Err(format!(
            "AWS_PROFILE: the profiles assuming roles form a cycle through source_profile: {} (in {} or {})",
            described(chain),
            shared.credentials_file.display(),
            shared.config_file.display()
        ));
    }
    if chain.len() >= MAX_ROLE_CHAIN {
        return Err(format!(
            "AWS_PROFILE: more than {MAX_ROLE_CHAIN} profiles assume roles one with the other's credentials: {}",
            described(chain)
        ));
    }
    chain.push(name.to_owned());
    let source = match &role.source {
        // A profile naming itself assumes its role with its own keys (as
        // in the SDKs).
        RoleSource::Profile(source) if source == name => match &profile.credentials {
            ProfileCredentials::Keys(..) => own(),
            _ => {
                return Err(format!(
                    "AWS_PROFILE: profile {name:?} is its own source_profile but has no aws_access_key_id and \
                     aws_secret_access_key"
                ));
            }
        },
        RoleSource::Profile(source) => {
            let Some(source_profile) = shared.lookup(source)? else {
                return Err(format!(
                    "AWS_PROFILE: the source_profile {source:?} of profile {name:?} is in neither {} nor {}",
                    shared.credentials_file.display(),
                    shared.config_file.display()
                ));
            };
            credentials_of(shared, source, &source_profile, (context, sts), chain)?
        }
        RoleSource::Environment => {
            return Err(format!(
                "AWS_PROFILE: profile {name:?} assumes its role with credential_source = Environment, but \
                 AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set (when they are, they sign the requests \
                 themselves, before any profile, as in the AWS SDKs)"
            ));
        }
        RoleSource::Ec2InstanceMetadata => {
            let Some(endpoint) = &context.role.imds_endpoint else {
                return Err(format!(
                    "AWS_PROFILE: profile {name:?} assumes its role with credential_source = Ec2InstanceMetadata, \
                     but AWS_EC2_METADATA_DISABLED=true"
                ));
            };
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(format!("AWS_EC2_METADATA_SERVICE_ENDPOINT={endpoint:?}: expected an http:// URL"));
            }
            Some(S3Credentials::Role(RoleCredentials {
                container_url: None,
                container_token: None,
                container_token_file: None,
                imds_endpoint: Some(endpoint.clone()),
            }))
        }
        RoleSource::EcsContainer => {
            if context.role.container_url.is_none() {
                return Err(format!(
                    "AWS_PROFILE: profile {name:?} assumes its role with credential_source = EcsContainer, but \
                     neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor AWS_CONTAINER_CREDENTIALS_FULL_URI is set"
                ));
            }
            if let Some(error) = context.role_errors.first() {
                return Err(error.clone());
            }
            Some(S3Credentials::Role(RoleCredentials { imds_endpoint: None, ..context.role.clone() }))
        }
    };
    let Some(source) = source else {
        return Err(format!(
            "AWS_PROFILE: the source_profile of profile {name:?} has no credentials (static keys, \
             credential_process or a role of its own)"
        ));
    };
    Ok(Some(S3Credentials::AssumeRole(AssumeRoleCredentials {
        profile: name.to_owned(),
        role_arn: role.role_arn.clone(),
        session_name: role.session_name.clone(),
        external_id: role.external_id.clone(),
        duration_seconds: role.duration_seconds,
        sts_endpoint: sts.to_owned(),
        region: context.region.to_owned(),
        source: Box::new(source),
    })))
}

/// The text of a credentials file, `None` when there is none.
fn read_credentials_file(path: &std::path::Path) -> Result<Option<String>, String> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mut raw = Vec::new();
    file.take(crate::aws_profile::MAX_FILE_BYTES + 1).read_to_end(&mut raw).map_err(|e| e.to_string())?;
    if raw.len() as u64 > crate::aws_profile::MAX_FILE_BYTES {
        return Err("larger than 1 MiB".into());
    }
    String::from_utf8(raw).map(Some).map_err(|_| "not UTF-8 text".into())
}

/// Reads the S3 settings (`None` unless `S3_RECORDING` is on).
fn s3_config(r: &mut Reader<'_>) -> Option<S3Config> {
    let on = s3_recording_on(r.string("S3_RECORDING").as_deref());
    let bucket = r.string("S3_BUCKET_NAME");
    let env_region = r.string("AWS_REGION").or_else(|| r.string("AWS_DEFAULT_REGION"));
    let endpoint_s3 = r.string("AWS_ENDPOINT_URL_S3");
    let endpoint_any = r.string("AWS_ENDPOINT_URL");
    let endpoint_sts = r.string("AWS_ENDPOINT_URL_STS");
    let endpoint = endpoint_s3.or_else(|| endpoint_any.clone());
    let path_style = r.string("S3_FORCE_PATH_STYLE");
    let key = r.string("AWS_ACCESS_KEY_ID");
    let secret = r.raw("AWS_SECRET_ACCESS_KEY");
    let token = r.string("AWS_SESSION_TOKEN");
    let sts_endpoint_variable = endpoint_sts.or(endpoint_any);
    let web_identity = (
        r.string("AWS_WEB_IDENTITY_TOKEN_FILE"),
        r.string("AWS_ROLE_ARN"),
        r.string("AWS_ROLE_SESSION_NAME"),
        sts_endpoint_variable.clone(),
    );
    let profile_variables =
        (r.string("AWS_SHARED_CREDENTIALS_FILE"), r.string("AWS_CONFIG_FILE"), r.string("AWS_PROFILE"));
    let (role, role_errors) = role_credentials(r);
    let ttl = r.seconds("S3_PRESIGNED_URL_TTL", DEFAULT_S3_PRESIGNED_URL_TTL);
    let tenant_prefix = r.string("S3_TENANT_PREFIX");
    let single_copy_limit_mb = r.parse::<u64>("S3_SINGLE_COPY_LIMIT_MB", DEFAULT_S3_SINGLE_COPY_LIMIT_MB);
    let copy_part_size_mb = r.parse::<u64>("S3_COPY_PART_SIZE_MB", DEFAULT_S3_COPY_PART_SIZE_MB);
    let cloudfront_url = r.string("CLOUDFRONT_URL");
    let cf_key_pair_id = r.string("CF_KEY_PAIR_ID");
    let cf_private_key = r.string("CF_PRIVATE_KEY_B64");
    if !on {
        return None;
    }
    let Some(bucket) = bucket.filter(|b| !b.trim().is_empty()) else {
        r.error("S3_RECORDING is on but S3_BUCKET_NAME is not set".into());
        return None;
    };
    // The shared files are read only when S3 is on; the profile's region
    // comes after the environment's (as in the AWS SDKs).
    let (credentials_file, config_file, profile) = profile_variables;
    let shared = shared_profile((credentials_file, config_file, profile, r.string("HOME")));
    let mut shared_reported = false;
    let region = match (env_region, &shared.profile) {
        (Some(region), _) => Some(region),
        (None, Ok(profile)) => profile.as_ref().and_then(|p| p.region.clone()),
        (None, Err(e)) => {
            r.error(e.clone());
            shared_reported = true;
            None
        }
    };
    if let Some(endpoint) = &endpoint
        && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
    {
        r.error(format!("AWS_ENDPOINT_URL={endpoint:?}: expected an http:// or https:// URL"));
    }
    let credentials = match (key, secret.filter(|s| !s.is_empty())) {
        (Some(key), Some(secret)) => S3Credentials::Static {
            access_key_id: Secret::new(key),
            secret_access_key: Secret::new(secret),
            session_token: token.map(Secret::new),
        },
        (None, None) => {
            let region = region.as_deref().unwrap_or("us-east-1");
            match web_identity_credentials(r, web_identity, region) {
                Some(web_identity) => S3Credentials::WebIdentity(web_identity),
                None => match (!shared_reported)
                    .then(|| {
                        let context = RoleContext {
                            region,
                            sts_endpoint: sts_endpoint_variable,
                            role: &role,
                            role_errors: &role_errors,
                        };
                        profile_credentials(r, &shared, &context)
                    })
                    .flatten()
                {
                    Some(profile) => profile,
                    None => {
                        for error in role_errors {
                            r.error(error);
                        }
                        S3Credentials::Role(role)
                    }
                },
            }
        }
        _ => {
            r.error(
                "S3_RECORDING: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are set together (or neither, \
                 for role credentials)"
                    .into(),
            );
            return None;
        }
    };
    if let S3Credentials::Role(role) = &credentials
        && role.container_url.is_none()
        && role.imds_endpoint.is_none()
    {
        r.error(
            "S3_RECORDING is on without AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, no web identity, no profile \
             with credentials in the shared credentials or config file, no container credentials endpoint is set and \
             AWS_EC2_METADATA_DISABLED=true: no credentials"
                .into(),
        );
    }
    if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(7 * 24 * 3600) {
        r.error("S3_PRESIGNED_URL_TTL: must be between 1 second and 7 days".into());
    }
    if !(1..=DEFAULT_S3_SINGLE_COPY_LIMIT_MB).contains(&single_copy_limit_mb) {
        r.error(format!(
            "S3_SINGLE_COPY_LIMIT_MB={single_copy_limit_mb}: must be between 1 and 5120 (S3 copies at most 5 GiB \
             in one request)"
        ));
    }
    if !(5..=5 * 1024).contains(&copy_part_size_mb) {
        r.error(format!(
            "S3_COPY_PART_SIZE_MB={copy_part_size_mb}: must be between 5 and 5120 (S3's part size limits)"
        ));
    }
    if let Some(prefix) = &tenant_prefix
        && (prefix.starts_with('/') || prefix.split('/').any(|s| s == ".." || s == "."))
    {
        r.error(format!("S3_TENANT_PREFIX={prefix:?}: must not start with '/' or hold '.' or '..' segments"));
    }
    let path_style = match path_style.as_deref().map(str::trim) {
        None | Some("") => endpoint.is_some(),
        Some(v) => v.eq_ignore_ascii_case("true"),
    };
    let bucket_ok = |b: &str| {
        (3..=63).contains(&b.len())
            && b.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'.'))
    };
    if !bucket_ok(bucket.trim()) {
        r.error(format!("S3_BUCKET_NAME={bucket:?}: a bucket name is 3 to 63 lowercase letters, digits, '-' and '.'"));
    }
    if let Some(endpoint) = &endpoint {
        let host = endpoint.split_once("://").map_or("", |(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""));
        let host_name = host.rsplit_once(':').map_or(host, |(h, _)| h);
        if host_name.is_empty() {
            r.error(format!("AWS_ENDPOINT_URL={endpoint:?}: no host"));
        } else if !path_style && (host_name.parse::<std::net::Ipv4Addr>().is_ok() || host_name.starts_with('[')) {
            r.error(format!("AWS_ENDPOINT_URL={endpoint:?}: an IP address needs S3_FORCE_PATH_STYLE=true"));
        }
    }
    let cloudfront = match (cloudfront_url, cf_key_pair_id, cf_private_key) {
        (None, _, _) => None,
        (Some(url), Some(key_pair_id), Some(key)) => {
            if !url.starts_with("https://") && !url.starts_with("http://") {
                r.error(format!("CLOUDFRONT_URL={url:?}: expected an https:// URL"));
            }
            if let Err(e) = crate::cloudfront::parse_private_key(&key) {
                r.error(format!("CF_PRIVATE_KEY_B64: {e}"));
            }
            Some(CloudFrontConfig {
                url: url.trim_end_matches('/').to_owned(),
                key_pair_id,
                private_key_b64: Secret::new(key),
            })
        }
        (Some(_), _, _) => {
            r.error("CLOUDFRONT_URL is set but CF_KEY_PAIR_ID or CF_PRIVATE_KEY_B64 is not".into());
            None
        }
    };
    Some(S3Config {
        bucket: bucket.trim().to_owned(),
        region: region.unwrap_or_else(|| "us-east-1".to_owned()),
        endpoint: endpoint.map(|e| e.trim_end_matches('/').to_owned()),
        path_style,
        credentials,
        presigned_url_ttl: ttl,
        tenant_prefix,
        cloudfront,
        single_copy_limit: single_copy_limit_mb.saturating_mul(1024 * 1024),
        copy_part_size: copy_part_size_mb.saturating_mul(1024 * 1024),
    })
}

impl Config {
    /// Reads the configuration from `env`.
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        Self::read(env).0
    }

    /// The tenant whose scope a request's meeting ids live in
    /// (`MULTITENANCY_MEETING_ID_SCOPE=tenant`): the request's tenant, or
    /// `None` when ids are shared (the default, Scalelite's layout).
    pub fn meeting_scope<'a>(&self, tenant: Option<&'a TenantId>) -> Option<&'a TenantId> {
        tenant.filter(|_| self.meeting_id_scope == MeetingIdScope::Tenant)
    }

    /// [`Config::from_env`], and every variable it asked for with its fixed
    /// default (see [`Reader::asked`]).
    fn read(env: &Env) -> (Result<Self, ConfigError>, Vec<Asked>) {
        let mut r = Reader::new(env);
        let port: u16 = r.parse("PORT", DEFAULT_PORT);
        let bind = match r.string("BIND") {
            None => SocketAddr::from(([0, 0, 0, 0], port)),
            Some(raw) => {
                let addr = raw.strip_prefix("tcp://").unwrap_or(&raw);
                addr.parse().unwrap_or_else(|e| {
                    r.error(format!("BIND={raw:?}: expected tcp://host:port ({e})"));
                    SocketAddr::from(([0, 0, 0, 0], port))
                })
            }
        };

        let mut secrets = Vec::new();
        if let Some(primary) = r.string("LOADBALANCER_SECRET") {
            secrets.push(Secret::new(primary));
        }
        if let Some(extra) = r.string("LOADBALANCER_SECRETS") {
            secrets.extend(extra.split(':').filter(|s| !s.is_empty()).map(Secret::new));
        }
        let checksum_algorithms = match r.string("LOADBALANCER_CHECKSUM_ALGORITHM") {
            None => AlgorithmSet::default_set(),
            Some(raw) => AlgorithmSet::parse(&raw).unwrap_or_else(|e| {
                r.error(format!("LOADBALANCER_CHECKSUM_ALGORITHM: {e}"));
                AlgorithmSet::default_set()
            }),
        };

        let create_params = policy(&mut r, "CREATE");
        let join_params = policy(&mut r, "JOIN");
        let concurrency: usize = r.parse("GET_MEETINGS_CONCURRENCY", DEFAULT_GET_MEETINGS_CONCURRENCY);
        let poller_concurrency: usize = r.parse("POLLER_THREADS", DEFAULT_POLLER_THREADS);
        let poller_metrics_bind = match r.string_or("POLLER_METRICS_BIND", DEFAULT_POLLER_METRICS_BIND).as_str() {
            off if off.eq_ignore_ascii_case("off") => None,
            raw => raw.strip_prefix("tcp://").unwrap_or(raw).parse().map_or_else(
                |e| {
                    r.error(format!("POLLER_METRICS_BIND={raw:?}: expected host:port or off ({e})"));
                    None
                },
                Some,
            ),
        };
        let backend = if env.is_set("REDIS_URL") || env.is_set("DATABASE_URL") {
            Backend::Services
        } else {
            Backend::Embedded { data_dir: r.string_or("SCALELITE_DATA_DIR", DEFAULT_SCALELITE_DATA_DIR).into() }
        };
        // The default depends on the backend: not a fixed one.
        let recording_dir = |r: &mut Reader<'_>, name: &str, scalelite: &str, embedded: &str| -> PathBuf {
            match (r.string(name), &backend) {
                (Some(dir), _) => dir.into(),
                (None, Backend::Services) => scalelite.into(),
                (None, Backend::Embedded { data_dir }) => data_dir.join("recordings").join(embedded),
            }
        };
        let minutes =
            |r: &mut Reader<'_>, name: &str, default: u64| Duration::from_secs(r.parse::<u64>(name, default) * 60);
        let recordings = RecordingConfig {
            disabled: r.bool("RECORDING_DISABLED", false),
            spool_dir: recording_dir(&mut r, "RECORDING_SPOOL_DIR", "/var/bigbluebutton/spool", "spool"),
            work_dir: recording_dir(&mut r, "RECORDING_WORK_DIR", "/var/bigbluebutton/recording/scalelite", "work"),
            publish_dir: recording_dir(&mut r, "RECORDING_PUBLISH_DIR", "/var/bigbluebutton/published", "published"),
            unpublish_dir: recording_dir(
                &mut r,
                "RECORDING_UNPUBLISH_DIR",
                "/var/bigbluebutton/unpublished",
                "unpublished",
            ),
            import_unpublished: r.bool("RECORDING_IMPORT_UNPUBLISHED", false),
            import_poll_interval: r.seconds("RECORDING_IMPORT_POLL_INTERVAL", DEFAULT_RECORDING_IMPORT_POLL_INTERVAL),
            import_settle_time: r.seconds("RECORDING_IMPORT_SETTLE_TIME", DEFAULT_RECORDING_IMPORT_SETTLE_TIME),
            playback_formats: r
                .string_or("RECORDING_PLAYBACK_FORMATS", DEFAULT_RECORDING_PLAYBACK_FORMATS)
                .split(':')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(str::to_owned)
                .collect(),
            protected: r.bool("PROTECTED_RECORDINGS_ENABLED", false),
            token_ttl: minutes(
                &mut r,
                "PROTECTED_RECORDINGS_TOKEN_TIMEOUT",
                DEFAULT_PROTECTED_RECORDINGS_TOKEN_TIMEOUT,
            ),
            cookie_ttl: minutes(&mut r, "PROTECTED_RECORDINGS_TIMEOUT", DEFAULT_PROTECTED_RECORDINGS_TIMEOUT),
            get_recordings_filtered: r.bool("GET_RECORDINGS_API_FILTERED", false),
            retention_days: match r.string("RECORDING_RETENTION_DAYS") {
                None => None,
                Some(raw) => parse_days_or_off(&raw).unwrap_or_else(|e| {
                    r.error(format!("RECORDING_RETENTION_DAYS: {e}"));
                    None
                }),
            },
            retention_action: r.parse("RECORDING_RETENTION_ACTION", RetentionAction::Delete),
            retention_interval: r.seconds("RECORDING_RETENTION_INTERVAL", DEFAULT_RECORDING_RETENTION_INTERVAL),
            importer_metrics_bind: match r.string_or("RECORDING_IMPORTER_METRICS_BIND", "off").as_str() {
                off if off.trim().is_empty() || off.eq_ignore_ascii_case("off") => None,
                raw => raw.strip_prefix("tcp://").unwrap_or(raw).parse().map_or_else(
                    |e| {
                        r.error(format!("RECORDING_IMPORTER_METRICS_BIND={raw:?}: expected host:port or off ({e})"));
                        None
                    },
                    Some,
                ),
            },
            secret_key_base: r.string("SECRET_KEY_BASE").map(Secret::new),
            s3: s3_config(&mut r),
            upload_enabled: r.bool("RECORDING_UPLOAD_ENABLED", false),
            upload_max_bytes: r.parse("RECORDING_UPLOAD_MAX_BYTES", DEFAULT_RECORDING_UPLOAD_MAX_BYTES),
            upload_window: r.seconds("RECORDING_UPLOAD_WINDOW", DEFAULT_RECORDING_UPLOAD_WINDOW),
            upload_min_free_bytes: r
                .parse::<u64>("RECORDING_UPLOAD_MIN_FREE_MB", DEFAULT_RECORDING_UPLOAD_MIN_FREE_MB)
                .saturating_mul(1024 * 1024),
        };
        if recordings.upload_window < Duration::from_secs(1) {
            r.error("RECORDING_UPLOAD_WINDOW: must be at least 1 second".into());
        }
        if recordings.retention_interval < Duration::from_secs(1) {
            r.error("RECORDING_RETENTION_INTERVAL: must be at least 1 second".into());
        }
        if recordings
            .playback_formats
            .iter()
            .any(|f| !f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        {
            r.error("RECORDING_PLAYBACK_FORMATS: format names may only hold letters, digits, '-' and '_'".into());
        }
        let management_secrets = r
            .string("MANAGEMENT_API_SECRETS")
            .map(|raw| raw.split(':').filter(|s| !s.is_empty()).map(Secret::new).collect())
            .unwrap_or_default();
        let buffer_minutes: u64 = r.parse("LOAD_JOIN_BUFFER_TIME", DEFAULT_LOAD_JOIN_BUFFER_TIME);

        let max_meeting_duration: u64 = r.parse("MAX_MEETING_DURATION", DEFAULT_MAX_MEETING_DURATION);
        let fsapi_password = match r.raw("FSAPI_PASSWORD") {
            Some(raw) => Some(Secret::new(raw)),
            None => secrets.first().cloned(),
        };
        let config = Config {
            backend,
            bind,
            redis_url: Secret::new(r.string_or("REDIS_URL", DEFAULT_REDIS_URL)),
            redis_namespace: r.string_or("REDIS_NAMESPACE", DEFAULT_REDIS_NAMESPACE),
            redis_timeout: r.seconds("REDIS_TIMEOUT", DEFAULT_REDIS_TIMEOUT),
            redis_ca_file: r.string("REDIS_CA_FILE").map(PathBuf::from),
            database_url: r.string("DATABASE_URL").map(|url| Secret::new(with_default_database(&url))),
            secrets,
            checksum_algorithms,
            url_host: r.string("URL_HOST"),
            build_number: r.string("BUILD_NUMBER"),
            multitenancy: r.bool("MULTITENANCY_ENABLED", false),
            multitenancy_variable_set: env.is_set("MULTITENANCY_ENABLED"),
            meeting_id_scope: r.parse("MULTITENANCY_MEETING_ID_SCOPE", MeetingIdScope::None),
            tenant_cache_ttl: r.seconds("TENANT_CACHE_TTL", DEFAULT_TENANT_CACHE_TTL),
            max_meeting_duration,
            create_params,
            join_params,
            get_meetings_disabled: r.bool("GET_MEETINGS_API_DISABLED", false),
            get_meetings_cache_ttl: r.seconds("GET_MEETINGS_CACHE_TTL", DEFAULT_GET_MEETINGS_CACHE_TTL),
            join_route_cache_ttl: r.seconds("JOIN_ROUTE_CACHE_TTL", DEFAULT_JOIN_ROUTE_CACHE_TTL),
            get_meetings_concurrency: concurrency.max(1),
            connect_timeout: r.seconds("CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT),
            response_timeout: r.seconds("RESPONSE_TIMEOUT", DEFAULT_RESPONSE_TIMEOUT),
            meeting_ttl: Duration::from_secs(r.parse("DEFAULT_MEETING_TTL", DEFAULT_MEETING_TTL)),
            voice_bridge_len: r.parse("VOICE_BRIDGE_LEN", DEFAULT_VOICE_BRIDGE_LEN),
            use_external_voice_bridge: r.bool("USE_EXTERNAL_VOICE_BRIDGE", false),
            rehome_meetings: r.bool("REHOME_MEETINGS", true),
            voice_bridge_min: r.parse("VOICE_BRIDGE_MIN", DEFAULT_VOICE_BRIDGE_MIN),
            voice_bridge_max: r.parse("VOICE_BRIDGE_MAX", DEFAULT_VOICE_BRIDGE_MAX),
            fsapi_password,
            fsapi_max_duration: r.parse_derived("FSAPI_MAX_DURATION", max_meeting_duration),
            load: LoadModel {
                min_user_count: r.parse("LOAD_MIN_USER_COUNT", DEFAULT_LOAD_MIN_USER_COUNT),
                join_buffer: Duration::from_secs(buffer_minutes * 60),
            },
            max_body_bytes: r.parse("MAX_REQUEST_BODY_BYTES", DEFAULT_MAX_REQUEST_BODY_BYTES),
            poll_interval: r.seconds("POLL_INTERVAL", DEFAULT_POLL_INTERVAL),
            poller_concurrency: poller_concurrency.max(1),
            healthy_threshold: r.parse::<u32>("SERVER_HEALTHY_THRESHOLD", DEFAULT_SERVER_HEALTHY_THRESHOLD).max(1),
            unhealthy_threshold: r
                .parse::<u32>("SERVER_UNHEALTHY_THRESHOLD", DEFAULT_SERVER_UNHEALTHY_THRESHOLD)
                .max(1),
            poller_metrics_bind,
            metrics_bearer_token: r.string("METRICS_BEARER_TOKEN").map(Secret::new),
            server_id_is_hostname: r.bool("SERVER_ID_IS_HOSTNAME", false),
            management_secrets,
            management_signed_body: r.bool("MANAGEMENT_API_SIGNED_BODY", false),
            analytics_callback_retry: r
                .seconds("ANALYTICS_CALLBACK_RETRY_INTERVAL", DEFAULT_ANALYTICS_CALLBACK_RETRY_INTERVAL),
            recordings,
            edge: EdgeLimits::read(&mut r),
            drain: DrainConfig {
                notice_interval: r.seconds("DRAIN_NOTICE_INTERVAL", DEFAULT_DRAIN_NOTICE_INTERVAL),
                template: r.string("DRAIN_NOTICE_TEMPLATE").unwrap_or_else(|| DEFAULT_DRAIN_NOTICE_TEMPLATE.to_owned()),
                template_no_deadline: r
                    .string("DRAIN_NOTICE_TEMPLATE_NO_DEADLINE")
                    .unwrap_or_else(|| DEFAULT_DRAIN_NOTICE_TEMPLATE_NO_DEADLINE.to_owned()),
            },
            capacity_per_server: r.parse("CAPACITY_PER_SERVER", DEFAULT_CAPACITY_PER_SERVER),
            console: ConsoleConfig::read(&mut r),
            livekit_placement: r.bool("LIVEKIT_PLACEMENT", true),
        };
        // The console's routes must not overlap the API's (the router refuses
        // overlapping routes at start-up).
        let first = config.console.path.trim_start_matches('/').split('/').next().unwrap_or_default().to_owned();
        let reserved = ["bigbluebutton", "recording", "fsapi", "health_check", "livez", "readyz", "metrics"];
        if reserved.contains(&first.as_str())
            || config.recordings.playback_formats.contains(&first)
            || config.console.path == "/scalelite/api"
            || config.console.path.starts_with("/scalelite/api/")
        {
            r.error(format!("CONSOLE_PATH={:?}: overlaps the API's own paths", config.console.path));
        }
        if config.drain.notice_interval.is_zero() {
            r.error("DRAIN_NOTICE_INTERVAL: must be more than 0 seconds".into());
        }
        if !(config.capacity_per_server.is_finite() && config.capacity_per_server > 0.0) {
            r.error(format!("CAPACITY_PER_SERVER={}: must be a number above 0", config.capacity_per_server));
        }
        if config.meeting_id_scope == MeetingIdScope::Tenant && !config.multitenancy {
            r.error("MULTITENANCY_MEETING_ID_SCOPE=tenant: needs MULTITENANCY_ENABLED=true".into());
        }
        if config.redis_timeout.is_zero() {
            r.error("REDIS_TIMEOUT: must be more than 0 seconds".into());
        }
        if !(1..=32).contains(&config.voice_bridge_len) {
            r.error(format!("VOICE_BRIDGE_LEN={}: must be between 1 and 32", config.voice_bridge_len));
        }
        let (min, max) = (config.voice_bridge_min, config.voice_bridge_max);
        if min == 0 || min > max || max > 128 {
            r.error(format!("VOICE_BRIDGE_MIN={min}, VOICE_BRIDGE_MAX={max}: need 1 <= MIN <= MAX <= 128"));
        }
        let asked = r.asked().to_vec();
        (r.finish(config), asked)
    }
}

impl ConsoleConfig {
    fn read(r: &mut Reader<'_>) -> Self {
        let path = r.string_or("CONSOLE_PATH", DEFAULT_CONSOLE_PATH).trim().trim_end_matches('/').to_owned();
        let path_ok = path.starts_with('/')
            && path.len() > 1
            && !path.contains("//")
            && path[1..].split('/').all(|segment| {
                !segment.is_empty()
                    && segment != "."
                    && segment != ".."
                    && segment.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            });
        if !path_ok {
            r.error(format!("CONSOLE_PATH={path:?}: expected an absolute path of letters, digits, '-', '_', '.'"));
        }
        let secure_cookie = match r.string_or("CONSOLE_SECURE_COOKIE", "auto").trim().to_ascii_lowercase().as_str() {
            "auto" => None,
            "true" => Some(true),
            "false" => Some(false),
            other => {
                r.error(format!("CONSOLE_SECURE_COOKIE={other:?}: expected auto, true or false"));
                None
            }
        };
        let auth_header =
            r.string("CONSOLE_AUTH_HEADER").map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty());
        if let Some(header) = &auth_header
            && !header.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            r.error(format!("CONSOLE_AUTH_HEADER={header:?}: not a header name"));
        }
        let config = Self {
            enabled: r.bool("CONSOLE_ENABLED", false),
            path,
            secret: r.string("CONSOLE_SECRET").map(Secret::new),
            auth_header,
            session_ttl: r.seconds("CONSOLE_SESSION_TTL", DEFAULT_CONSOLE_SESSION_TTL),
            secure_cookie,
            refresh: r.seconds("CONSOLE_REFRESH", DEFAULT_CONSOLE_REFRESH),
            sample_interval: r.seconds("CONSOLE_SAMPLE_INTERVAL", DEFAULT_CONSOLE_SAMPLE_INTERVAL),
        };
        if config.session_ttl < Duration::from_secs(1) {
            r.error("CONSOLE_SESSION_TTL: must be at least 1 second".into());
        }
        if config.sample_interval < Duration::from_millis(100) {
            r.error("CONSOLE_SAMPLE_INTERVAL: must be at least 0.1 seconds".into());
        }
        config
    }
}

fn policy(r: &mut Reader<'_>, call: &str) -> ParamPolicy {
    let mut list = |name: String| match r.string(&name) {
        None => Vec::new(),
        Some(raw) => parse_param_list(&raw).unwrap_or_else(|e| {
            r.error(format!("{name}: {e}"));
            Vec::new()
        }),
    };
    let defaults = list(format!("DEFAULT_{call}_PARAMS"));
    let overrides = list(format!("OVERRIDE_{call}_PARAMS"));
    ParamPolicy {
        exclude: r.string(&format!("{call}_EXCLUDE_PARAMS")).map(|raw| parse_name_list(&raw)).unwrap_or_default(),
        defaults,
        overrides,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::Algorithm;

    /// The rows of docs/CONFIGURATION.md's tables: the variables named in
    /// the first cell, and the second (default) cell.
    fn documented() -> Vec<(Vec<String>, String)> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/CONFIGURATION.md");
        let text = std::fs::read_to_string(path).unwrap();
        let names = |cell: &str| -> Vec<String> {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .filter(|name| name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
                .map(str::to_owned)
                .collect()
        };
        text.lines()
            .filter(|line| line.starts_with("| `"))
            .map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                (names(cells[1]), cells[2].to_owned())
            })
            .collect()
    }

    /// Whether some file of the project outside docs/ mentions `name`.
    fn mentioned_outside_docs(name: &str) -> bool {
        fn walk(dir: &std::path::Path, name: &str) -> bool {
            let Ok(entries) = std::fs::read_dir(dir) else { return false };
            entries.flatten().any(|entry| {
                let path = entry.path();
                if path.is_dir() {
                    !path.ends_with("target") && walk(&path, name)
                } else {
                    std::fs::read_to_string(&path).is_ok_and(|text| text.contains(name))
                }
            })
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        ["crates", "scripts", "docker", "deploy"].iter().any(|dir| walk(&root.join(dir), name))
    }

    #[test]
    fn a_database_url_without_a_database_names_scalelite() {
        for (given, meant) in [
            ("postgres://u:p@db.example:5432", "postgres://u:p@db.example:5432/scalelite"),
            ("postgres://u:p@db.example:5432/", "postgres://u:p@db.example:5432/scalelite"),
            ("postgresql://db?sslmode=require", "postgresql://db/scalelite?sslmode=require"),
            ("postgres:///?host=/run/postgresql", "postgres:///scalelite?host=/run/postgresql"),
            ("postgres://db/other?sslmode=verify-full", "postgres://db/other?sslmode=verify-full"),
            ("postgres://u:p%2Fq@db/x", "postgres://u:p%2Fq@db/x"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(with_default_database(given), meant, "{given}");
        }
        let config = Config::from_env(&Env::from_pairs([("DATABASE_URL", "postgres://u:p@db")])).unwrap();
        assert_eq!(config.database_url.unwrap().expose(), "postgres://u:p@db/scalelite");
    }

    /// The deployment files name only documented variables: the ECS task
    /// definitions (environment and secrets), the systemd environment file
    /// and Compose's `env.example`.
    #[test]
    fn deployment_files_use_documented_variables() {
        let documented: Vec<String> = documented().into_iter().flat_map(|(names, _)| names).collect();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut used: Vec<(String, String)> = Vec::new();
        let ecs = root.join("deploy/ecs");
        let mut tasks: Vec<_> = std::fs::read_dir(&ecs).unwrap().flatten().map(|e| e.path()).collect();
        tasks.retain(|path| path.extension().is_some_and(|ext| ext == "json"));
        assert!(tasks.len() >= 4, "the four roles' task definitions: {tasks:?}");
        for path in &tasks {
            let task: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            for container in task["containerDefinitions"].as_array().unwrap() {
                for list in ["environment", "secrets"] {
                    for entry in container[list].as_array().into_iter().flatten() {
                        used.push((entry["name"].as_str().unwrap().to_owned(), path.display().to_string()));
                    }
                }
            }
        }
        for file in ["deploy/systemd/scalelite.env", "docker/env.example"] {
            for line in std::fs::read_to_string(root.join(file)).unwrap().lines() {
                let line = line.trim_start_matches('#');
                if let Some((name, _)) = line.split_once('=')
                    && !name.is_empty()
                    && name.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                {
                    used.push((name.to_owned(), file.to_owned()));
                }
            }
        }
        assert!(used.len() > 20, "the files were read: {used:?}");
        for (name, file) in &used {
            assert!(documented.contains(name), "{file} sets {name}, which docs/CONFIGURATION.md does not document");
        }
    }

    #[test]
    fn console_settings() {
        let config = Config::from_env(&Env::default()).unwrap();
        assert!(!config.console.enabled);
        assert_eq!(config.console.path, "/scalelite/console");
        assert_eq!(config.console.secure_cookie, None);
        let env = Env::default()
            .with("CONSOLE_ENABLED", "true")
            .with("CONSOLE_PATH", "/ops/console/")
            .with("CONSOLE_AUTH_HEADER", "X-Remote-User")
            .with("CONSOLE_SECURE_COOKIE", "true");
        let config = Config::from_env(&env).unwrap();
        assert_eq!(config.console.path, "/ops/console");
        assert_eq!(config.console.auth_header.as_deref(), Some("x-remote-user"));
        assert_eq!(config.console.secure_cookie, Some(true));
        for bad in [
            "console",
            "/a//b",
            "/a/../b",
            "/a b",
            "/{id}",
            "/",
            "/scalelite/api",
            "/bigbluebutton/console",
            "/presentation/x",
        ] {
            assert!(Config::from_env(&Env::default().with("CONSOLE_PATH", bad)).is_err(), "{bad}");
        }
        assert!(Config::from_env(&Env::default().with("CONSOLE_AUTH_HEADER", "X User")).is_err());
        assert!(Config::from_env(&Env::default().with("CONSOLE_SECURE_COOKIE", "maybe")).is_err());
    }

    #[test]
    fn configuration_md_documents_every_variable_and_default() {
        let rows = documented();
        let mut asked = Vec::new();
        for env in [Env::default(), Env::from_pairs([("REDIS_URL", "redis://127.0.0.1:6379/0")])] {
            let (config, names) = Config::read(&env);
            config.unwrap();
            asked.extend(names);
        }
        for (name, default) in &asked {
            let cells: Vec<&String> =
                rows.iter().filter(|(names, _)| names.contains(name)).map(|(_, cell)| cell).collect();
            assert!(!cells.is_empty(), "{name} is read but not in docs/CONFIGURATION.md");
            if let Some(default) = default {
                let shown = format!("`{default}`");
                assert!(
                    cells.iter().any(|cell| cell.contains(&shown)),
                    "{name}: docs/CONFIGURATION.md shows the default {cells:?}, the code has {shown}"
                );
            }
        }
        for (names, _) in &rows {
            for name in names {
                assert!(
                    asked.iter().any(|(asked, _)| asked == name) || mentioned_outside_docs(name),
                    "docs/CONFIGURATION.md documents {name}, which nothing reads"
                );
            }
        }
    }

    #[test]
    fn s3_credentials_come_from_the_first_source_in_the_sdk_order() {
        let dir = std::env::temp_dir().join(format!("scalelite-config-aws-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(".aws")).unwrap();
        std::fs::write(
            dir.join(".aws/credentials"),
            "[default]\naws_access_key_id = AKIAHOME\naws_secret_access_key = home-secret\n\
             [ci]\naws_access_key_id=AKIACI\naws_secret_access_key=ci-secret\naws_session_token=ci-token\n\
             [sso]\nrole_arn = arn:aws:iam::1:role/x\n",
        )
        .unwrap();
        let home = dir.display().to_string();
        let read = |extra: &[(&str, &str)]| {
            let base = [("S3_RECORDING", "true"), ("S3_BUCKET_NAME", "recordings")];
            Config::from_env(&Env::from_pairs(base.iter().chain(extra).copied()))
                .map(|c| c.recordings.s3.expect("S3 on").credentials)
        };
        let web =
            [("AWS_WEB_IDENTITY_TOKEN_FILE", "/var/run/secrets/token"), ("AWS_ROLE_ARN", "arn:aws:iam::1:role/s")];
        let keys = [("AWS_ACCESS_KEY_ID", "AKIAENV"), ("AWS_SECRET_ACCESS_KEY", "env-secret")];
        let with_home = [("HOME", home.as_str())];
        let all: Vec<(&str, &str)> = keys.iter().chain(&web).chain(&with_home).copied().collect();
        // The environment's keys first, then a web identity, then a profile.
        assert!(
            matches!(read(&all).unwrap(), S3Credentials::Static { access_key_id, .. } if access_key_id.expose() == "AKIAENV")
        );
        let web_home: Vec<(&str, &str)> = web.iter().chain(&with_home).copied().collect();
        match read(&web_home).unwrap() {
            S3Credentials::WebIdentity(w) => {
                assert_eq!(w.token_file, PathBuf::from("/var/run/secrets/token"));
                assert_eq!((w.role_arn.as_str(), w.session_name), ("arn:aws:iam::1:role/s", None));
                assert_eq!(w.sts_endpoint, "https://sts.us-east-1.amazonaws.com");
            }
            other => panic!("{other:?}"),
        }
        let sts = |extra: &[(&str, &str)]| match read(&web.iter().chain(extra).copied().collect::<Vec<_>>()).unwrap() {
            S3Credentials::WebIdentity(w) => (w.sts_endpoint, w.session_name),
            other => panic!("{other:?}"),
        };
        assert_eq!(sts(&[("AWS_REGION", "eu-central-1")]).0, "https://sts.eu-central-1.amazonaws.com");
        assert_eq!(sts(&[("AWS_REGION", "cn-north-1")]).0, "https://sts.cn-north-1.amazonaws.com.cn");
        assert_eq!(sts(&[("AWS_ENDPOINT_URL", "http://127.0.0.1:9/")]).0, "http://127.0.0.1:9");
        assert_eq!(
            sts(&[("AWS_ENDPOINT_URL", "http://127.0.0.1:9"), ("AWS_ENDPOINT_URL_STS", "https://sts.example/x/")]).0,
            "https://sts.example/x"
        );
        assert_eq!(sts(&[("AWS_ROLE_SESSION_NAME", "pod-a.b@c")]).1.as_deref(), Some("pod-a.b@c"));
        // The default profile of ~/.aws/credentials, or AWS_PROFILE's, or
        // AWS_SHARED_CREDENTIALS_FILE's.
        let profile = |extra: &[(&str, &str)]| match read(extra).unwrap() {
            S3Credentials::Profile { profile, file, keys } => (
                profile,
                file,
                keys.access_key_id.expose().to_owned(),
                keys.session_token.map(|t| t.expose().to_owned()),
            ),
            other => panic!("{other:?}"),
        };
        let file = dir.join(".aws/credentials");
        assert_eq!(profile(&with_home), ("default".into(), file.clone(), "AKIAHOME".into(), None));
        assert_eq!(
            profile(&[("HOME", &home), ("AWS_PROFILE", "ci")]),
            ("ci".into(), file.clone(), "AKIACI".into(), Some("ci-token".into()))
        );
        assert_eq!(profile(&[("AWS_SHARED_CREDENTIALS_FILE", &file.display().to_string())]).2, "AKIAHOME");
        assert_eq!(profile(&[("HOME", &home), ("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")]).2, "AKIAHOME");
        // No file, or no default profile in it: the container endpoint or
        // IMDS.
        let missing = dir.join("missing").display().to_string();
        assert!(matches!(read(&[("AWS_SHARED_CREDENTIALS_FILE", &missing)]).unwrap(), S3Credentials::Role(_)));
        assert!(matches!(read(&[]).unwrap(), S3Credentials::Role(_)), "no HOME: no file");
        let other = dir.join("other");
        std::fs::write(&other, "[other]\naws_access_key_id=A\naws_secret_access_key=B\n").unwrap();
        let other = other.display().to_string();
        assert!(matches!(read(&[("AWS_SHARED_CREDENTIALS_FILE", &other)]).unwrap(), S3Credentials::Role(_)));
        // Mistakes are start-up errors that name them, without secrets.
        for (bad, says) in [
            (&[("HOME", home.as_str()), ("AWS_PROFILE", "nope")][..], "AWS_PROFILE=\"nope\": no such profile"),
            (&[("AWS_SHARED_CREDENTIALS_FILE", missing.as_str()), ("AWS_PROFILE", "ci")], "no such profile"),
            (
                &[("HOME", home.as_str()), ("AWS_PROFILE", "sso")],
                "sets role_arn without source_profile or credential_source",
            ),
            (&[("AWS_SHARED_CREDENTIALS_FILE", home.as_str())], "AWS_SHARED_CREDENTIALS_FILE"),
            (&web[..1], "AWS_ROLE_ARN"),
            (&web[1..], "AWS_WEB_IDENTITY_TOKEN_FILE"),
            (&[web[0], ("AWS_ROLE_ARN", "scalelite")], "AWS_ROLE_ARN"),
            (&[web[0], web[1], ("AWS_ROLE_SESSION_NAME", "a b")], "AWS_ROLE_SESSION_NAME"),
            (&[web[0], web[1], ("AWS_ENDPOINT_URL_STS", "sts.local")], "AWS_ENDPOINT_URL_STS"),
        ] {
            let error = read(bad).expect_err(&format!("{bad:?}")).to_string();
            assert!(
                error.contains(says) && !error.contains("-secret") && !error.contains("token="),
                "{bad:?}: {error}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_profile_role_is_assumed_with_its_source_profile_or_credential_source() {
        let dir = std::env::temp_dir().join(format!("scalelite-config-aws-roles-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(".aws")).unwrap();
        std::fs::write(
            dir.join(".aws/config"),
            "[profile scalelite]\nregion = eu-west-1\nrole_arn = arn:aws:iam::1:role/recordings\n\
             source_profile = middle\nrole_session_name = bbb-lb\nexternal_id = very-secret-id\n\
             duration_seconds = 1800\n\
             [profile middle]\nrole_arn = arn:aws:iam::2:role/middle\nsource_profile = base\n\
             [profile helper]\nrole_arn = arn:aws:iam::1:role/h\nsource_profile = process\n\
             [profile process]\ncredential_process = /bin/creds very-secret\n\
             [profile itself]\nrole_arn = arn:aws:iam::1:role/i\nsource_profile = itself\n\
             aws_access_key_id = AKIAITSELF\naws_secret_access_key = very-secret\n\
             [profile instance]\nrole_arn = arn:aws:iam::1:role/ec2\ncredential_source = Ec2InstanceMetadata\n\
             [profile task]\nrole_arn = arn:aws:iam::1:role/ecs\ncredential_source = EcsContainer\n\
             [profile env]\nrole_arn = arn:aws:iam::1:role/env\ncredential_source = Environment\n\
             [profile a]\nrole_arn = arn:aws:iam::1:role/a\nsource_profile = b\n\
             [profile b]\nrole_arn = arn:aws:iam::1:role/b\nsource_profile = a\n\
             aws_access_key_id = AKIAB\naws_secret_access_key = very-secret\n\
             [profile lost]\nrole_arn = arn:aws:iam::1:role/l\nsource_profile = nowhere\n\
             [profile empty-source]\nrole_arn = arn:aws:iam::1:role/e\nsource_profile = region-only\n\
             [profile region-only]\nregion = eu-west-2\n\
             [profile self-no-keys]\nrole_arn = arn:aws:iam::1:role/s\nsource_profile = self-no-keys\n\
             [profile web]\nrole_arn = arn:aws:iam::1:role/w\nweb_identity_token_file = /very/secret\n",
        )
        .unwrap();
        std::fs::write(
            dir.join(".aws/credentials"),
            "[base]\naws_access_key_id = AKIABASE\naws_secret_access_key = very-secret\n",
        )
        .unwrap();
        let long: String = (0..=MAX_ROLE_CHAIN)
            .map(|i| format!("[profile l{i}]\nrole_arn = arn:aws:iam::1:role/l{i}\nsource_profile = l{}\n", i + 1))
            .chain([format!("[profile l{}]\naws_access_key_id = A\naws_secret_access_key = B\n", MAX_ROLE_CHAIN + 1)])
            .collect();
        std::fs::write(dir.join("long"), long).unwrap();
        let home = dir.display().to_string();
        let read = |extra: &[(&str, &str)]| {
            let base = [("S3_RECORDING", "true"), ("S3_BUCKET_NAME", "recordings"), ("HOME", home.as_str())];
            Config::from_env(&Env::from_pairs(base.iter().chain(extra).copied()))
                .map(|c| c.recordings.s3.expect("S3 on"))
        };
        let assumed = |credentials: &S3Credentials| match credentials {
            S3Credentials::AssumeRole(role) => role.clone(),
            other => panic!("{other:?}"),
        };
        // scalelite -> middle -> base's static keys, at the STS endpoint of
        // the profile's region (or AWS_ENDPOINT_URL_STS).
        let s3 = read(&[("AWS_PROFILE", "scalelite")]).unwrap();
        let outer = assumed(&s3.credentials);
        assert_eq!(
            (outer.profile.as_str(), outer.role_arn.as_str(), outer.session_name.as_deref()),
            ("scalelite", "arn:aws:iam::1:role/recordings", Some("bbb-lb"))
        );
        assert_eq!((outer.external_id.as_deref(), outer.duration_seconds), (Some("very-secret-id"), Some(1800)));
        assert_eq!(
            (outer.sts_endpoint.as_str(), outer.region.as_str()),
            ("https://sts.eu-west-1.amazonaws.com", "eu-west-1")
        );
        let middle = assumed(&outer.source);
        assert_eq!((middle.profile.as_str(), middle.role_arn.as_str()), ("middle", "arn:aws:iam::2:role/middle"));
        assert!(
            matches!(&*middle.source, S3Credentials::Profile { profile, keys, .. }
                if profile == "base" && keys.access_key_id.expose() == "AKIABASE"),
            "{:?}",
            middle.source
        );
        let s3 = read(&[("AWS_PROFILE", "scalelite"), ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:5000/")]).unwrap();
        assert_eq!(assumed(&s3.credentials).sts_endpoint, "http://127.0.0.1:5000");
        // Sources: credential_process, the profile's own keys, IMDS, the
        // container endpoint.
        let helper = assumed(&read(&[("AWS_PROFILE", "helper")]).unwrap().credentials);
        assert!(matches!(&*helper.source, S3Credentials::Process(p) if p.profile == "process"), "{helper:?}");
        let itself = assumed(&read(&[("AWS_PROFILE", "itself")]).unwrap().credentials);
        assert!(matches!(&*itself.source, S3Credentials::Profile { profile, .. } if profile == "itself"));
        let instance = assumed(&read(&[("AWS_PROFILE", "instance")]).unwrap().credentials);
        assert!(
            matches!(&*instance.source, S3Credentials::Role(RoleCredentials { container_url: None, imds_endpoint: Some(e), .. })
                if e == DEFAULT_IMDS_ENDPOINT),
            "{instance:?}"
        );
        let task = assumed(
            &read(&[("AWS_PROFILE", "task"), ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/x")])
                .unwrap()
                .credentials,
        );
        assert!(
            matches!(
                &*task.source,
                S3Credentials::Role(RoleCredentials { container_url: Some(_), imds_endpoint: None, .. })
            ),
            "{task:?}"
        );
        // The environment's keys still come first (and then no profile is
        // read).
        let keys = [("AWS_PROFILE", "env"), ("AWS_ACCESS_KEY_ID", "AKIAENV"), ("AWS_SECRET_ACCESS_KEY", "s")];
        assert!(matches!(read(&keys).unwrap().credentials, S3Credentials::Static { .. }));
        // Start-up errors name the profiles, never the secrets.
        for (profile, extra, says) in [
            ("a", &[][..], r#"cycle through source_profile: "a" -> "b" -> "a""#),
            ("lost", &[], r#"source_profile "nowhere" of profile "lost" is in neither"#),
            ("empty-source", &[], r#"source_profile of profile "empty-source" has no credentials"#),
            ("self-no-keys", &[], r#"profile "self-no-keys" is its own source_profile"#),
            ("env", &[], "credential_source = Environment"),
            ("instance", &[("AWS_EC2_METADATA_DISABLED", "true")], "AWS_EC2_METADATA_DISABLED=true"),
            ("task", &[], "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
            ("web", &[], "web_identity_token_file"),
        ] {
            let env: Vec<(&str, &str)> = [("AWS_PROFILE", profile)].into_iter().chain(extra.iter().copied()).collect();
            let error = read(&env).expect_err(profile).to_string();
            assert!(error.contains(says) && !error.contains("very-secret"), "{profile}: {error}");
        }
        let error =
            read(&[("AWS_PROFILE", "scalelite"), ("AWS_ENDPOINT_URL_STS", "sts.local")]).unwrap_err().to_string();
        assert_eq!(error.matches("AWS_ENDPOINT_URL_STS").count(), 1, "once for the chain: {error}");
        let error = read(&[("AWS_CONFIG_FILE", "~/long"), ("AWS_PROFILE", "l0")]).unwrap_err().to_string();
        assert!(error.contains(&format!("more than {MAX_ROLE_CHAIN} profiles")), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_shared_config_file_gives_the_region_and_a_credential_process() {
        let dir = std::env::temp_dir().join(format!("scalelite-config-aws-config-{}", std::process::id()));
        std::fs::create_dir_all(dir.join(".aws")).unwrap();
        std::fs::write(
            dir.join(".aws/config"),
            "[default]\nregion = eu-west-1\n\n[profile scalelite]\nregion = eu-central-1\n\
             credential_process = /usr/local/bin/creds --secret very-secret\n\
             [profile both]\ncredential_process = /bin/false\naws_access_key_id = AKIACONFIG\n\
             aws_secret_access_key = config-secret\n[profile sso]\nsso_session = very-secret\n",
        )
        .unwrap();
        std::fs::write(
            dir.join(".aws/credentials"),
            "[both]\naws_access_key_id = AKIAFILE\naws_secret_access_key = file-secret\nregion = ap-south-1\n",
        )
        .unwrap();
        let home = dir.display().to_string();
        let read = |extra: &[(&str, &str)]| {
            let base = [("S3_RECORDING", "true"), ("S3_BUCKET_NAME", "recordings"), ("HOME", home.as_str())];
            Config::from_env(&Env::from_pairs(base.iter().chain(extra).copied()))
                .map(|c| c.recordings.s3.expect("S3 on"))
        };
        // The default profile has only a region: IMDS signs, in that region.
        let s3 = read(&[]).unwrap();
        assert_eq!(s3.region, "eu-west-1");
        assert!(matches!(s3.credentials, S3Credentials::Role(_)), "{:?}", s3.credentials);
        // The environment's region comes first.
        assert_eq!(read(&[("AWS_DEFAULT_REGION", "us-west-2")]).unwrap().region, "us-west-2");
        assert_eq!(
            read(&[("AWS_REGION", "sa-east-1"), ("AWS_DEFAULT_REGION", "us-west-2")]).unwrap().region,
            "sa-east-1"
        );
        // A profile's credential_process.
        let s3 = read(&[("AWS_PROFILE", "scalelite")]).unwrap();
        assert_eq!(s3.region, "eu-central-1");
        match &s3.credentials {
            S3Credentials::Process(p) => {
                assert_eq!((p.profile.as_str(), p.file.clone()), ("scalelite", dir.join(".aws/config")));
                assert_eq!(p.command.expose(), "/usr/local/bin/creds --secret very-secret");
                assert!(!format!("{s3:?}").contains("very-secret"), "the command is never shown");
            }
            other => panic!("{other:?}"),
        }
        // The credentials file's settings take precedence; static keys
        // come before credential_process.
        let s3 = read(&[("AWS_PROFILE", "both")]).unwrap();
        assert_eq!(s3.region, "ap-south-1");
        assert!(
            matches!(&s3.credentials, S3Credentials::Profile { keys, file, .. }
                if keys.access_key_id.expose() == "AKIAFILE" && *file == dir.join(".aws/credentials")),
            "{:?}",
            s3.credentials
        );
        // AWS_CONFIG_FILE, with ~/.
        std::fs::write(dir.join("other-config"), "[profile x]\nregion = ca-central-1\n").unwrap();
        let other = read(&[("AWS_CONFIG_FILE", "~/other-config"), ("AWS_PROFILE", "x")]).unwrap();
        assert_eq!(other.region, "ca-central-1");
        assert_eq!(read(&[("AWS_CONFIG_FILE", "~/missing")]).unwrap().region, "us-east-1");
        // Mistakes are start-up errors that name them, without secrets; a
        // broken config file does not matter when the environment gives
        // the keys and the region.
        std::fs::write(dir.join("broken"), "[default\nregion = very-secret\n").unwrap();
        for (bad, says) in [
            (&[("AWS_PROFILE", "sso")][..], "IAM Identity Center (sso_session)"),
            (&[("AWS_CONFIG_FILE", "~/broken")], "AWS_CONFIG_FILE"),
            (&[("AWS_CONFIG_FILE", "~/broken"), ("AWS_REGION", "eu-west-1")], "section header"),
            (&[("AWS_CONFIG_FILE", home.as_str())], "AWS_CONFIG_FILE"),
        ] {
            let error = read(bad).expect_err(&format!("{bad:?}")).to_string();
            assert!(error.contains(says) && !error.contains("very-secret"), "{bad:?}: {error}");
        }
        let keys = [
            ("AWS_CONFIG_FILE", "~/broken"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIAENV"),
            ("AWS_SECRET_ACCESS_KEY", "env-secret"),
        ];
        assert!(matches!(read(&keys).unwrap().credentials, S3Credentials::Static { .. }));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn s3_storage_is_read_from_scalelite_and_aws_variables() {
        let base = [
            ("S3_RECORDING", "true"),
            ("S3_BUCKET_NAME", "recordings"),
            ("AWS_ACCESS_KEY_ID", "AKIA1"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ];
        let read = |extra: &[(&str, &str)]| {
            Config::from_env(&Env::from_pairs(base.iter().chain(extra).copied())).map(|c| c.recordings.s3)
        };
        let s3 = read(&[]).unwrap().expect("S3 on");
        assert_eq!((s3.bucket.as_str(), s3.region.as_str(), s3.endpoint.as_deref()), ("recordings", "us-east-1", None));
        assert!(!s3.path_style, "AWS: virtual-hosted style");
        assert_eq!(s3.presigned_url_ttl, Duration::from_secs(300));
        // S3's single-copy limit, 512 MiB parts above it; both can be lowered.
        assert_eq!((s3.single_copy_limit, s3.copy_part_size), (5 << 30, 512 << 20));
        let lowered = read(&[("S3_SINGLE_COPY_LIMIT_MB", "8"), ("S3_COPY_PART_SIZE_MB", "5")]).unwrap().unwrap();
        assert_eq!((lowered.single_copy_limit, lowered.copy_part_size), (8 << 20, 5 << 20));
        let custom = read(&[("AWS_DEFAULT_REGION", "eu-west-1"), ("AWS_ENDPOINT_URL", "http://10.0.0.5:9000/")])
            .unwrap()
            .unwrap();
        assert_eq!((custom.region.as_str(), custom.endpoint.as_deref()), ("eu-west-1", Some("http://10.0.0.5:9000")));
        assert!(custom.path_style, "a custom endpoint: path style");
        // Scalelite's truthiness, except the usual words for off.
        for off in ["false", "0", "off", ""] {
            assert_eq!(read(&[("S3_RECORDING", off)]).unwrap(), None, "{off:?}");
        }
        assert!(read(&[("S3_RECORDING", "1")]).unwrap().is_some());
        // Static keys take precedence; without them, a role's credentials
        // in the AWS SDKs' order.
        assert!(matches!(read(&[]).unwrap().unwrap().credentials, S3Credentials::Static { .. }));
        let no_keys = [("AWS_ACCESS_KEY_ID", ""), ("AWS_SECRET_ACCESS_KEY", "")];
        let role = |extra: &[(&str, &str)]| match read(&no_keys.iter().chain(extra).copied().collect::<Vec<_>>())
            .unwrap()
            .unwrap()
            .credentials
        {
            S3Credentials::Role(role) => role,
            other => panic!("{other:?}"),
        };
        let imds = role(&[]);
        assert_eq!((imds.container_url, imds.imds_endpoint.as_deref()), (None, Some("http://169.254.169.254")));
        let ecs = role(&[
            ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/abc"),
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/ignored"),
        ]);
        assert_eq!(ecs.container_url.as_deref(), Some("http://169.254.170.2/v2/credentials/abc"));
        for full in [
            "http://127.0.0.1:8080/c",
            "http://169.254.170.23/v1/credentials",
            "http://[fd00:ec2::23]/c",
            "https://creds.example.org/c",
            "http://localhost:9/c",
        ] {
            assert_eq!(role(&[("AWS_CONTAINER_CREDENTIALS_FULL_URI", full)]).container_url.as_deref(), Some(full));
        }
        let other = role(&[
            ("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:5/"),
            ("AWS_EC2_METADATA_DISABLED", "false"),
        ]);
        assert_eq!(other.imds_endpoint.as_deref(), Some("http://127.0.0.1:5"));
        // Mistakes are start-up errors.
        for bad in [
            &[("S3_BUCKET_NAME", "")][..],
            &[("S3_BUCKET_NAME", "Bad_Bucket")],
            &[("AWS_ACCESS_KEY_ID", "")],
            &[("AWS_ACCESS_KEY_ID", ""), ("AWS_SECRET_ACCESS_KEY", ""), ("AWS_EC2_METADATA_DISABLED", "true")],
            &[
                ("AWS_ACCESS_KEY_ID", ""),
                ("AWS_SECRET_ACCESS_KEY", ""),
                ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://example.org/creds"),
            ],
            &[
                ("AWS_ACCESS_KEY_ID", ""),
                ("AWS_SECRET_ACCESS_KEY", ""),
                ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://user@127.0.0.1/"),
            ],
            &[("AWS_ENDPOINT_URL", "s3.local:9000")],
            &[("AWS_ENDPOINT_URL", "http://10.0.0.5:9000"), ("S3_FORCE_PATH_STYLE", "false")],
            &[("S3_TENANT_PREFIX", "../x/")],
            &[("S3_PRESIGNED_URL_TTL", "0")],
            &[("S3_SINGLE_COPY_LIMIT_MB", "0")],
            &[("S3_SINGLE_COPY_LIMIT_MB", "5121")],
            &[("S3_COPY_PART_SIZE_MB", "4")],
            &[("S3_COPY_PART_SIZE_MB", "5121")],
            &[("S3_COPY_PART_SIZE_MB", "big")],
            &[("CLOUDFRONT_URL", "https://d1.cloudfront.net")],
            &[
                ("CLOUDFRONT_URL", "https://d1.cloudfront.net"),
                ("CF_KEY_PAIR_ID", "K1"),
                ("CF_PRIVATE_KEY_B64", "eA=="),
            ],
        ] {
            assert!(read(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn defaults() {
        let config = Config::from_env(&Env::default()).unwrap();
        assert_eq!(config.bind, "0.0.0.0:3000".parse().unwrap());
        assert_eq!(config.redis_namespace, "scalelite");
        assert!(config.secrets.is_empty());
        assert_eq!(config.checksum_algorithms.outgoing(), Algorithm::Sha256);
        assert!(config.checksum_algorithms.contains(Algorithm::Sha384));
        assert_eq!(config.response_timeout, Duration::from_secs(10));
        assert_eq!(config.redis_timeout, Duration::from_secs(5));
        assert_eq!(config.meeting_ttl, Duration::from_secs(86_400));
        assert_eq!(config.voice_bridge_len, 9);
        assert_eq!(config.load.min_user_count, 15);
        assert_eq!(config.poll_interval, Duration::from_secs(60));
        assert_eq!((config.healthy_threshold, config.unhealthy_threshold), (1, 2));
        assert_eq!(config.poller_metrics_bind, Some("0.0.0.0:9101".parse().unwrap()));
        assert!(config.management_secrets.is_empty());
        assert_eq!(config.analytics_callback_retry, Duration::from_secs(10));
    }

    #[test]
    fn backend_is_embedded_unless_redis_or_postgres_is_named() {
        let config = Config::from_env(&Env::default()).unwrap();
        assert_eq!(config.backend, Backend::Embedded { data_dir: "./data".into() });
        assert_eq!(config.backend.database_file(), Some(PathBuf::from("./data/scalelite.sqlite3")));
        assert_eq!(config.recordings.spool_dir, PathBuf::from("./data/recordings/spool"));
        assert_eq!(config.recordings.unpublish_dir, PathBuf::from("./data/recordings/unpublished"));
        let env = Env::from_pairs([("SCALELITE_DATA_DIR", "/srv/lb"), ("RECORDING_PUBLISH_DIR", "/srv/pub")]);
        let config = Config::from_env(&env).unwrap();
        assert_eq!(config.backend.database_file(), Some(PathBuf::from("/srv/lb/scalelite.sqlite3")));
        assert_eq!(config.recordings.work_dir, PathBuf::from("/srv/lb/recordings/work"));
        assert_eq!(config.recordings.publish_dir, PathBuf::from("/srv/pub"));
        for name in ["REDIS_URL", "DATABASE_URL"] {
            let env = Env::from_pairs([(name, "x://y"), ("SCALELITE_DATA_DIR", "/srv/lb")]);
            let config = Config::from_env(&env).unwrap();
            assert_eq!(config.backend, Backend::Services, "{name}");
            assert_eq!(config.backend.database_file(), None);
            assert_eq!(config.recordings.spool_dir, PathBuf::from("/var/bigbluebutton/spool"));
        }
        // An empty variable counts as unset.
        let config = Config::from_env(&Env::from_pairs([("REDIS_URL", "")])).unwrap();
        assert!(matches!(config.backend, Backend::Embedded { .. }));
    }

    #[test]
    fn recording_variables() {
        let config = Config::from_env(&Env::from_pairs([("REDIS_URL", "redis://127.0.0.1:6379/0")])).unwrap();
        let r = &config.recordings;
        assert_eq!(r.spool_dir, PathBuf::from("/var/bigbluebutton/spool"));
        assert_eq!(r.playback_formats, ["presentation", "video", "screenshare", "podcast", "notes", "capture"]);
        assert_eq!(r.token_ttl, Duration::from_secs(3600));
        assert_eq!(r.cookie_ttl, Duration::from_secs(6 * 3600));
        let env = Env::from_pairs([
            ("RECORDING_PLAYBACK_FORMATS", "presentation:video"),
            ("PROTECTED_RECORDINGS_ENABLED", "true"),
            ("PROTECTED_RECORDINGS_TOKEN_TIMEOUT", "5"),
            ("RECORDING_SPOOL_DIR", "/srv/spool"),
        ]);
        let config = Config::from_env(&env).unwrap();
        assert!(config.recordings.protected);
        assert_eq!(config.recordings.token_ttl, Duration::from_secs(300));
        assert_eq!(config.recordings.playback_formats, ["presentation", "video"]);
        assert!(Config::from_env(&Env::from_pairs([("RECORDING_PLAYBACK_FORMATS", "../x")])).is_err());
    }

    #[test]
    fn retention_variables() {
        let config = Config::from_env(&Env::default()).unwrap();
        let r = &config.recordings;
        assert_eq!((r.retention_days, r.retention_action), (None, RetentionAction::Delete), "off by default");
        assert_eq!(r.retention_interval, Duration::from_secs(3600));
        let env = Env::from_pairs([
            ("RECORDING_RETENTION_DAYS", "90d"),
            ("RECORDING_RETENTION_ACTION", "Unpublish"),
            ("RECORDING_RETENTION_INTERVAL", "60"),
        ]);
        let r = Config::from_env(&env).unwrap().recordings;
        assert_eq!((r.retention_days, r.retention_action), (Some(90), RetentionAction::Unpublish));
        assert_eq!(r.retention_interval, Duration::from_secs(60));
        assert_eq!(Config::from_env(&Env::default()).unwrap().recordings.importer_metrics_bind, None);
        let env = Env::from_pairs([("RECORDING_IMPORTER_METRICS_BIND", "127.0.0.1:9102")]);
        let bind = Config::from_env(&env).unwrap().recordings.importer_metrics_bind;
        assert_eq!(bind, Some("127.0.0.1:9102".parse().unwrap()));
        for off in ["off", "0"] {
            let config = Config::from_env(&Env::from_pairs([("RECORDING_RETENTION_DAYS", off)])).unwrap();
            assert_eq!(config.recordings.retention_days, None, "{off}");
        }
        for (name, bad) in [
            ("RECORDING_RETENTION_DAYS", "abc"),
            ("RECORDING_RETENTION_DAYS", "-1"),
            ("RECORDING_RETENTION_ACTION", "archive"),
            ("RECORDING_RETENTION_INTERVAL", "0"),
            ("RECORDING_IMPORTER_METRICS_BIND", "nine"),
        ] {
            let error = Config::from_env(&Env::from_pairs([(name, bad)])).unwrap_err().to_string();
            assert!(error.contains(name), "{name}={bad}: {error}");
        }
    }

    #[test]
    fn poller_and_management_variables() {
        let env = Env::from_pairs([
            ("POLL_INTERVAL", "0.5"),
            ("POLLER_THREADS", "5"),
            ("SERVER_UNHEALTHY_THRESHOLD", "3"),
            ("POLLER_METRICS_BIND", "off"),
            ("MANAGEMENT_API_SECRETS", "m1:m2"),
            ("SERVER_ID_IS_HOSTNAME", "true"),
        ]);
        let config = Config::from_env(&env).unwrap();
        assert_eq!(config.poll_interval, Duration::from_millis(500));
        assert_eq!(config.poller_concurrency, 5);
        assert_eq!(config.unhealthy_threshold, 3);
        assert_eq!(config.poller_metrics_bind, None);
        assert_eq!(config.management_secrets.len(), 2);
        assert!(config.server_id_is_hostname);
    }

    #[test]
    fn scalelite_variables() {
        let env = Env::from_pairs([
            ("PORT", "8080"),
            ("LOADBALANCER_SECRET", "a:b"),
            ("LOADBALANCER_SECRETS", "c:d"),
            ("LOADBALANCER_CHECKSUM_ALGORITHM", "SHA1:SHA256"),
            ("RESPONSE_TIMEOUT", "0.5"),
            ("DEFAULT_CREATE_PARAMS", "record=false,welcome=hi"),
            ("CREATE_EXCLUDE_PARAMS", "test4,test2"),
            ("MULTITENANCY_ENABLED", "TRUE"),
            ("GET_MEETINGS_API_DISABLED", "yes"),
        ]);
        let config = Config::from_env(&env).unwrap();
        assert_eq!(config.bind.port(), 8080);
        let secrets: Vec<_> = config.secrets.iter().map(Secret::expose).collect();
        assert_eq!(secrets, ["a:b", "c", "d"]);
        assert_eq!(config.checksum_algorithms.outgoing(), Algorithm::Sha256);
        assert!(!config.checksum_algorithms.contains(Algorithm::Sha512));
        assert_eq!(config.response_timeout, Duration::from_millis(500));
        assert_eq!(config.create_params.default_value("welcome"), Some("hi"));
        assert_eq!(config.create_params.exclude, ["test4", "test2"]);
        assert!(config.multitenancy);
        assert!(config.multitenancy_variable_set);
        assert!(!config.get_meetings_disabled);
        // The tenant tasks only need the variable to be set, as in Scalelite.
        let config = Config::from_env(&Env::from_pairs([("MULTITENANCY_ENABLED", "false")])).unwrap();
        assert!(!config.multitenancy && config.multitenancy_variable_set);
        let config = Config::from_env(&Env::default()).unwrap();
        assert!(!config.multitenancy_variable_set);
        assert_eq!(config.meeting_id_scope, MeetingIdScope::None);
    }

    #[test]
    fn meeting_ids_are_scoped_only_with_multitenancy() {
        let tenant = TenantId::from("t");
        let env = Env::from_pairs([("MULTITENANCY_ENABLED", "true"), ("MULTITENANCY_MEETING_ID_SCOPE", "tenant")]);
        let config = Config::from_env(&env).unwrap();
        assert_eq!(config.meeting_scope(Some(&tenant)), Some(&tenant));
        let config = Config::from_env(&Env::from_pairs([("MULTITENANCY_ENABLED", "true")])).unwrap();
        assert_eq!(config.meeting_scope(Some(&tenant)), None);
        let error = Config::from_env(&Env::from_pairs([("MULTITENANCY_MEETING_ID_SCOPE", "tenant")])).unwrap_err();
        assert!(error.to_string().contains("needs MULTITENANCY_ENABLED=true"), "{error}");
        let error = Config::from_env(&Env::from_pairs([("MULTITENANCY_MEETING_ID_SCOPE", "host")])).unwrap_err();
        assert!(error.to_string().contains("MULTITENANCY_MEETING_ID_SCOPE"), "{error}");
    }

    #[test]
    fn bind_forms_and_errors_are_reported_together() {
        let env = Env::from_pairs([("BIND", "tcp://127.0.0.1:4000")]);
        assert_eq!(Config::from_env(&env).unwrap().bind, "127.0.0.1:4000".parse().unwrap());
        let env = Env::from_pairs([
            ("PORT", "x"),
            ("RESPONSE_TIMEOUT", "-1"),
            ("DEFAULT_JOIN_PARAMS", "broken"),
            ("LOADBALANCER_CHECKSUM_ALGORITHM", "MD5"),
        ]);
        let err = Config::from_env(&env).unwrap_err();
        assert_eq!(err.0.len(), 4, "{err}");
        assert!(err.to_string().contains("DEFAULT_JOIN_PARAMS"));
    }

    #[test]
    fn dial_in_variables() {
        let config =
            Config::from_env(&Env::from_pairs([("LOADBALANCER_SECRET", "lb"), ("MAX_MEETING_DURATION", "90")]))
                .unwrap();
        assert_eq!((config.voice_bridge_min, config.voice_bridge_max), (5, 9));
        assert_eq!(config.fsapi_password, Some(Secret::new("lb")));
        assert_eq!(config.fsapi_max_duration, 90);
        let env = Env::from_pairs([
            ("LOADBALANCER_SECRET", "lb"),
            ("FSAPI_PASSWORD", "fs"),
            ("FSAPI_MAX_DURATION", "0"),
            ("MAX_MEETING_DURATION", "90"),
            ("VOICE_BRIDGE_MIN", "4"),
            ("VOICE_BRIDGE_MAX", "10"),
        ]);
        let config = Config::from_env(&env).unwrap();
        assert_eq!(config.fsapi_password, Some(Secret::new("fs")));
        assert_eq!(config.fsapi_max_duration, 0);
        assert_eq!((config.voice_bridge_min, config.voice_bridge_max), (4, 10));
        // An empty FSAPI_PASSWORD disables authentication; none at all leaves no password.
        let env = Env::from_pairs([("LOADBALANCER_SECRET", "lb"), ("FSAPI_PASSWORD", "")]);
        assert_eq!(Config::from_env(&env).unwrap().fsapi_password, Some(Secret::new("")));
        assert_eq!(Config::from_env(&Env::default()).unwrap().fsapi_password, None);
        for (min, max) in [("6", "5"), ("0", "9"), ("5", "200")] {
            let env = Env::from_pairs([("VOICE_BRIDGE_MIN", min), ("VOICE_BRIDGE_MAX", max)]);
            assert!(Config::from_env(&env).is_err(), "{min} {max}");
        }
    }

    #[test]
    fn redis_timeout_is_positive_seconds() {
        let config = Config::from_env(&Env::from_pairs([("REDIS_TIMEOUT", "0.25")])).unwrap();
        assert_eq!(config.redis_timeout, Duration::from_millis(250));
        let err = Config::from_env(&Env::from_pairs([("REDIS_TIMEOUT", "0")])).unwrap_err();
        assert!(err.to_string().contains("REDIS_TIMEOUT"), "{err}");
    }

    #[test]
    fn debug_hides_secrets() {
        let env = Env::from_pairs([
            ("LOADBALANCER_SECRET", "topsecret"),
            ("REDIS_URL", "redis://:pw@host"),
            ("FSAPI_PASSWORD", "fs-password"),
            ("METRICS_BEARER_TOKEN", "scrape-token"),
        ]);
        let printed = format!("{:?} {env:?}", Config::from_env(&env).unwrap());
        assert!(!printed.contains("topsecret"));
        assert!(!printed.contains("pw@host"));
        assert!(!printed.contains("fs-password"));
        assert!(!printed.contains("scrape-token"));
    }
}
