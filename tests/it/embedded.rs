//! The embedded single-binary mode as a small site runs it: no Redis, no
//! PostgreSQL; one process serves the API, polls and imports recordings on
//! one SQLite file, while `scalelite-admin` works on the same file.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use scalelite_api::embedded;
use scalelite_core::MeetingId;
use scalelite_core::config::{Backend, Config, Env};
use scalelite_store::{MeetingStore as _, ServerStore as _};
use scalelite_tests::{ApiClient, FakeFleet, RecordingArchive, TestApp, TestBackend, eventually_with, server_id};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::support::admin_with;

/// A running embedded-mode process (the library `scalelite-api`'s main
/// calls), stopped as SIGTERM stops it.
struct Running {
    addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn start(env: &Env) -> (Config, Running) {
        let config = embedded::config_from_env(env).expect("embedded configuration");
        let stores = scalelite_store::Stores::open(&config, 4).await.expect("embedded database");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(embedded::run(listener, config.clone(), stores, async move {
            let _ = rx.await;
        }));
        (config, Running { addr, shutdown, task })
    }

    fn client(&self, secret: &str) -> ApiClient {
        ApiClient::new(format!("http://{}/bigbluebutton/api", self.addr), secret)
    }

    async fn stop(self) {
        let _ = self.shutdown.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the process stops within 10 s of SIGTERM")
            .expect("task")
            .expect("clean exit");
    }
}

fn embedded_env(data_dir: &Path) -> Env {
    Env::default()
        .with("SCALELITE_DATA_DIR", data_dir.to_str().unwrap())
        .with("POLL_INTERVAL", "0.2")
        .with("RECORDING_IMPORT_SETTLE_TIME", "0.1")
        .with("RECORDING_IMPORT_POLL_INTERVAL", "0.5")
        .with("CONNECT_TIMEOUT", "1")
        .with("RESPONSE_TIMEOUT", "2")
        .with("GET_MEETINGS_CACHE_TTL", "0")
}

async fn listed_recordings(client: &ApiClient, meeting_id: &str) -> usize {
    let reply = client.get("getRecordings", &[("meetingID", meeting_id)]).await;
    assert!(reply.is_success(), "{}", reply.body);
    reply.xml().child("recordings").map_or(0, |list| list.children_named("recording").count())
}

#[tokio::test]
async fn one_process_balances_polls_and_imports_on_one_file_that_the_admin_shares() {
    let fleet = FakeFleet::start(2).await;
    let data = tempfile::tempdir().unwrap();
    let env = embedded_env(data.path());

    // First start: the secret is generated into the data directory, private.
    let (config, running) = Running::start(&env).await;
    assert_eq!(config.backend, Backend::Embedded { data_dir: data.path().to_owned() });
    let secret_file = data.path().join(embedded::SECRET_FILE);
    let secret = std::fs::read_to_string(&secret_file).expect("generated secret").trim().to_owned();
    assert_eq!(config.secrets.first().map(|s| s.expose().to_owned()), Some(secret.clone()));
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&secret_file).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert!(data.path().join(Backend::DATABASE_FILE).is_file());

    // A second terminal adds and enables the servers while the API runs.
    for server in fleet.iter() {
        let added = admin_with(&config, &["servers", "add", &server.url(), &server.secret()], "").await.ok();
        let id = added.id_after("id: ");
        admin_with(&config, &["servers", "enable", &id], "").await.ok();
    }
    // The poller inside the process finds them online.
    eventually_with(Duration::from_secs(10), "both servers online", || async {
        let status = admin_with(&config, &["status", "--json"], "").await.ok().json();
        status.as_array().is_some_and(|rows| rows.len() == 2 && rows.iter().all(|r| r["status"] == "online"))
    })
    .await;

    // A front-end configured with the generated secret creates and joins.
    let client = running.client(&secret);
    let create = client.get("create", &[("meetingID", "class-7b"), ("name", "Class 7b")]).await;
    assert!(create.is_success(), "{}", create.body);
    let on = fleet.server_with_meeting("class-7b").expect("created on a fake server");
    let join = client.get("join", &[("meetingID", "class-7b"), ("fullName", "Ada")]).await;
    assert_eq!(join.status, 302, "{}", join.body);
    assert!(join.location.unwrap().starts_with(&format!("{}/join?", fleet[on].url())));
    let wrong = running.client("not-the-secret").get("isMeetingRunning", &[("meetingID", "class-7b")]).await;
    assert_eq!(wrong.message_key().as_deref(), Some("checksumError"));

    // A recording archive rsynced into the spool is imported by the process.
    let spool = &config.recordings.spool_dir;
    assert!(spool.starts_with(data.path()), "{}", spool.display());
    RecordingArchive::new("class-7b", "Class 7b").drop_into(spool);
    eventually_with(Duration::from_secs(10), "the recording listed", || async {
        listed_recordings(&client, "class-7b").await == 1
    })
    .await;

    // A consistent copy while the process runs holds the same state.
    let backup = data.path().join("backup.sqlite3");
    let backup_arg = backup.to_str().unwrap();
    admin_with(&config, &["db", "backup", backup_arg], "").await.ok();
    let copy = scalelite_store::SqliteStore::open(&backup).await.unwrap();
    assert_eq!(copy.servers().await.unwrap().len(), 2);
    assert!(copy.find_meeting(&MeetingId::new("class-7b"), None).await.unwrap().is_some());
    let again = admin_with(&config, &["db", "backup", backup_arg], "").await;
    again.fails_with(&format!("ERROR: {backup_arg} exists; name a new file"));

    // Restart: same secret, servers, meeting and recording.
    running.stop().await;
    let (config, running) = Running::start(&env).await;
    assert_eq!(config.secrets.first().map(|s| s.expose().to_owned()), Some(secret.clone()));
    let client = running.client(&secret);
    let info = client.get("getMeetingInfo", &[("meetingID", "class-7b")]).await;
    assert!(info.is_success(), "{}", info.body);
    assert_eq!(listed_recordings(&client, "class-7b").await, 1);
    let servers = admin_with(&config, &["servers", "--json"], "").await.ok().json();
    assert_eq!(servers.as_array().map(Vec::len), Some(2), "{servers}");
    running.stop().await;
}

#[tokio::test]
async fn a_set_secret_is_used_and_nothing_is_generated() {
    let data = tempfile::tempdir().unwrap();
    let env = embedded_env(data.path()).with("LOADBALANCER_SECRET", "operator-chosen");
    let config = embedded::config_from_env(&env).unwrap();
    assert_eq!(config.secrets.iter().map(|s| s.expose()).collect::<Vec<_>>(), ["operator-chosen"]);
    assert!(!data.path().join(embedded::SECRET_FILE).exists());
}

#[tokio::test]
async fn an_unusable_data_dir_is_a_clear_start_up_error() {
    let data = tempfile::tempdir().unwrap();
    let blocker = data.path().join("not-a-dir");
    std::fs::write(&blocker, "").unwrap();
    let env = embedded_env(&blocker.join("data"));
    let error = embedded::config_from_env(&env).unwrap_err();
    assert!(format!("{error:#}").contains("not-a-dir/data"), "{error:#}");
}

#[tokio::test]
async fn db_backup_is_for_the_embedded_database_only() {
    // Redis is connected lazily: nothing listens there and nothing is asked.
    let env = Env::default().with("REDIS_URL", "redis://127.0.0.1:1/0");
    let config = Config::from_env(&env).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("copy.sqlite3");
    admin_with(&config, &["db", "backup", target.to_str().unwrap()], "")
        .await
        .fails_with("ERROR: db backup copies the embedded database; back up Redis and PostgreSQL with their own tools");
    assert!(!target.exists());
}

#[tokio::test]
async fn the_admin_refuses_a_data_dir_without_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let config = Config::from_env(&Env::default().with("SCALELITE_DATA_DIR", data_dir.to_str().unwrap())).unwrap();
    let run = admin_with(&config, &["status"], "").await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.err.starts_with(&format!("ERROR: no embedded database at {}", data_dir.display())), "{}", run.err);
    assert!(!data_dir.exists(), "nothing is created");
}

/// `scalelite-admin` writes the file through connections of its own (as
/// the separate process does): the API's very next create and join obey
/// what it committed. Fails when the API routes from state of its own that
/// misses other connections' commits (a cached pool or meeting table).
#[tokio::test]
async fn the_admins_writes_bind_the_apis_next_create_and_join() {
    let app = TestApp::builder().backend(TestBackend::Embedded).servers(2).start().await;
    let config = &app.state.config;
    let client = app.client();
    let (first, second) = (server_id(0), server_id(1));
    let create = |id: &'static str| {
        let client = client.clone();
        async move { client.get("create", &[("meetingID", id), ("name", id)]).await }
    };
    let join = |id: &'static str| {
        let client = client.clone();
        async move { client.get("join", &[("meetingID", id), ("fullName", "Ada")]).await }
    };
    let joined_on = |reply: &scalelite_tests::Reply, i: usize| {
        assert_eq!(reply.status, 302, "{}", reply.body);
        reply.location.as_deref().is_some_and(|at| at.starts_with(&format!("{}/join?", app.fleet[i].url())))
    };

    // Equal loads: `a` goes to the first server; a join there makes the
    // second the least loaded, so `b` goes there.
    assert!(create("a").await.is_success());
    assert_eq!(app.placed_on("a").await, Some(0));
    assert!(joined_on(&join("a").await, 0));
    assert!(create("b").await.is_success());
    assert_eq!(app.placed_on("b").await, Some(1));

    // Cordoned by the admin: the least loaded server takes no new meeting,
    // its meetings still take joins.
    admin_with(config, &["servers", "cordon", &second], "").await.ok();
    for id in ["c", "d"] {
        assert!(create(id).await.is_success());
        assert_eq!(app.placed_on(id).await, Some(0), "{id} placed on the cordoned server");
    }
    assert!(joined_on(&join("b").await, 1));

    // Disabled by the admin (its meetings cleared): its meetings are gone
    // and nothing can be placed.
    admin_with(config, &["servers", "disable", &first], "yes\n").await.ok();
    for id in ["a", "c", "d"] {
        let reply = join(id).await;
        assert_eq!(reply.message_key().as_deref(), Some("notFound"), "{id} routed after the admin cleared it");
    }
    let refused = create("e").await;
    assert!(!refused.is_success(), "placed on a disabled or cordoned server: {}", refused.body);
    assert_eq!(app.placed_on("e").await, None);

    // Enabled again by the admin: placement uses it at once.
    admin_with(config, &["servers", "enable", &second], "").await.ok();
    assert!(create("e").await.is_success());
    assert_eq!(app.placed_on("e").await, Some(1));

    // Ended by the admin: the next join is not routed.
    admin_with(config, &["meetings", "end", "b", "--yes"], "").await.ok();
    let reply = join("b").await;
    assert_eq!(reply.message_key().as_deref(), Some("notFound"), "b routed after the admin ended it");
    assert!(reply.location.is_none());
}

#[tokio::test]
async fn the_process_applies_the_retention_policy_and_counts_it_on_its_metrics() {
    let data = tempfile::tempdir().unwrap();
    let env = embedded_env(data.path())
        .with("LOADBALANCER_SECRET", "retention-secret")
        .with("RECORDING_RETENTION_DAYS", "30")
        .with("RECORDING_RETENTION_INTERVAL", "1");
    let (config, running) = Running::start(&env).await;
    // Recorded in 2024: imported, then older than the 30 days.
    let spool = config.recordings.spool_dir.clone();
    eventually_with(Duration::from_secs(10), "the importer's spool", || async { spool.is_dir() }).await;
    let rec = RecordingArchive::new("old-class", "Old class");
    rec.drop_into(&spool);
    let published = config.recordings.publish_dir.join("presentation").join(&rec.record_id);
    let metrics_url = format!("http://{}/metrics", running.addr);
    let counted = r#"scalelite_recording_retention_recordings_total{action="delete",outcome="done"} 1"#;
    eventually_with(Duration::from_secs(20), "the recording imported, then deleted and counted", || async {
        let state = admin_with(&config, &["recordings", "import-status", "--json"], "").await.ok().json();
        let imported = state["recent"].as_array().is_some_and(|r| r.iter().any(|i| i["status"] == "imported"));
        let metrics = scalelite_tests::http_get(&metrics_url).await;
        imported && !published.exists() && metrics.body.lines().any(|l| l == counted)
    })
    .await;
    let client = running.client("retention-secret");
    assert_eq!(listed_recordings(&client, "old-class").await, 0);
    running.stop().await;
}

/// The newcomer's story (README, The operator console): the console of the
/// embedded process shows the servers added from a second terminal going
/// online, and a drain started from it until the server is empty.
#[tokio::test]
async fn the_console_shows_servers_going_online_and_a_drain_emptying_one() {
    use bytes::Bytes;
    use http::Method;
    use scalelite_tests::http_request;

    let fleet = FakeFleet::start(2).await;
    let data = tempfile::tempdir().unwrap();
    let env = embedded_env(data.path()).with("CONSOLE_ENABLED", "true").with("CONSOLE_SAMPLE_INTERVAL", "0.2");
    let (config, running) = Running::start(&env).await;
    let secret = config.secrets.first().unwrap().expose().to_owned();
    let base = format!("http://{}/scalelite/console", running.addr);
    let timeout = Duration::from_secs(30);
    let form = "application/x-www-form-urlencoded";

    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("name", "newcomer")
        .append_pair("secret", &secret)
        .finish();
    let login =
        http_request(Method::POST, &format!("{base}/login"), &[("content-type", form)], Bytes::from(body), timeout)
            .await
            .unwrap();
    assert_eq!(login.status, 303, "{}", login.body);
    let cookie = login.header("set-cookie").unwrap().split(';').next().unwrap().to_owned();
    let page = |path: &'static str| {
        let (url, cookie) = (format!("{base}{path}"), cookie.clone());
        async move { http_request(Method::GET, &url, &[("cookie", &cookie)], Bytes::new(), timeout).await.unwrap().body }
    };
    assert!(page("").await.contains("No servers yet"));

    let mut ids = Vec::new();
    for server in fleet.iter() {
        let added = admin_with(&config, &["servers", "add", &server.url(), &server.secret()], "").await.ok();
        let id = added.id_after("id: ");
        admin_with(&config, &["servers", "enable", &id], "").await.ok();
        ids.push(id);
    }
    eventually_with(timeout, "both servers online in the console, the poller's rounds shown", || async {
        let body = page("").await;
        body.matches("<span class=\"online\">online</span>").count() == 2
            && body.contains("This process&#39;s poller holds the lease")
            && body.contains("the last seen")
    })
    .await;

    let client = running.client(&secret);
    let create = client.get("create", &[("meetingID", "class-1"), ("name", "Class")]).await;
    assert!(create.is_success(), "{}", create.body);
    let on = fleet.server_with_meeting("class-1").unwrap();
    let id = ids[on].clone();
    let overview = page("").await;
    let at = overview.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    let csrf = overview[at..].split('"').next().unwrap().to_owned();
    let body = form_urlencoded::Serializer::new(String::new()).append_pair("csrf", &csrf).finish();
    let headers = [("content-type", form), ("cookie", cookie.as_str())];
    let drain = http_request(Method::POST, &format!("{base}/servers/{id}/drain"), &headers, Bytes::from(body), timeout)
        .await
        .unwrap();
    assert_eq!(drain.status, 303, "{}", drain.body);
    assert!(page("").await.contains("draining, 1 meeting"));

    // The meeting ends: the poller inside the process disables the server.
    let end =
        client.get("end", &[("meetingID", "class-1"), ("password", &create.text_at("moderatorPW").unwrap())]).await;
    assert!(end.is_success(), "{}", end.body);
    eventually_with(timeout, "the console shows the server drained", || async {
        let body = page("").await;
        body.contains("<span class=\"state-disabled\">disabled</span>") && body.contains("<td>drained")
    })
    .await;
    running.stop().await;
}
