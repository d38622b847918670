//! The container image and `docker/compose.yaml` as operators run them.
//!
//! Run by `scripts/test-containers`, which makes the base images, builds the
//! image from `docker/Dockerfile` and the stand-ins of
//! `tests/containers/compose.override.yaml` first, then runs the ignored
//! tests here:
//!
//! ```sh
//! SCALELITE_IMAGE=scalelite-rs:test COMPOSE=docker-compose \
//!   cargo test -p scalelite-tests --test containers -- --ignored
//! ```
//!
//! Each test brings up its own Compose project (`scalelite-test-<pid>`, a
//! recording directory and an env file in a temporary directory, nginx on a
//! free loopback port) and takes it down with its volumes when it ends,
//! passed or failed. The BigBlueButton server is a [`FakeBbb`] on this
//! host, bound to the gateway of the project's network so the containers
//! reach it; nothing listens beyond that network and loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]
#![allow(clippy::print_stderr, reason = "the stack's logs when a test fails, and a failed clean-up")]

use std::future::Future;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::Duration;

use scalelite_tests::{ApiClient, FakeBbb, Format, RecordingArchive, Reply, http_get};
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

mod ha;

/// The API's secret in the stack.
const SECRET: &str = "6b7f0e3d1c5a4e2f8091a2b3c4d5e6f70819a2b3c4d5e6f7";
/// How long the stack may take to turn healthy (migrations included).
const UP_DEADLINE: Duration = Duration::from_secs(240);
/// How long a poll, an import or a request may take to show.
const DEADLINE: Duration = Duration::from_secs(90);

/// `SCALELITE_IMAGE`: the image built from `docker/Dockerfile`.
fn image() -> String {
    std::env::var("SCALELITE_IMAGE").unwrap_or_else(|_| "scalelite-rs:latest".into())
}

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the tests crate is in the workspace").to_owned()
}

/// Runs `program args` with `stdin`, failing the test when it fails or
/// outlasts `timeout`; returns its standard output.
async fn run(program: &str, args: &[&str], envs: &[(&str, &str)], stdin: &[u8], timeout: Duration) -> String {
    let shown = format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{shown}: {e}"));
    let mut input = child.stdin.take().expect("piped stdin");
    input.write_all(stdin).await.unwrap_or_else(|e| panic!("{shown}: writing its input: {e}"));
    drop(input);
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{shown}: still running after {timeout:?}"))
        .unwrap_or_else(|e| panic!("{shown}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{shown}: {}\n{stdout}{}", output.status, String::from_utf8_lossy(&output.stderr));
    stdout
}

async fn docker(args: &[&str]) -> String {
    run("docker", args, &[], &[], DEADLINE).await
}

/// Calls `attempt` until it returns `Ok`, at most for `timeout`, pausing a
/// second between calls; panics with the last `Err` (what was seen instead).
async fn until<T, F, Fut>(what: &str, timeout: Duration, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match attempt().await {
            Ok(value) => return value,
            Err(last) => last,
        };
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {timeout:?}; last: {last}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `call` on `lb` when it succeeds (`returncode` `SUCCESS`).
async fn success(lb: &ApiClient, call: &str, params: &[(&str, &str)]) -> Result<Reply, String> {
    match lb.try_get(call, params).await {
        Ok(reply) if reply.is_success() => Ok(reply),
        Ok(reply) => Err(format!("HTTP {}: {}", reply.status, reply.body)),
        Err(e) => Err(format!("{e:?}")),
    }
}

/// One Compose project of `docker/compose.yaml` with the stand-ins'
/// override, taken down with its volumes and files when dropped.
struct Stack {
    project: String,
    dir: tempfile::TempDir,
    compose: Vec<String>,
}

impl Stack {
    /// Writes the settings and the directories, then `up -d`, which returns
    /// once the services the others depend on are healthy.
    async fn up() -> Self {
        let stack = Self::new(&["docker/compose.yaml", "tests/containers/compose.override.yaml"], "");
        stack.make_recording_tree().await;
        let root = root();
        let player = stack.dir.path().join("player");
        std::fs::create_dir_all(player.join("presentation/2.3")).unwrap();
        std::fs::write(player.join("presentation/2.3/index.html"), "presentation player").unwrap();
        let settings = [
            ("COMPOSE_PROJECT_NAME", stack.project.clone()),
            ("LOADBALANCER_SECRET", SECRET.into()),
            ("SECRET_KEY_BASE", "1f".repeat(64)),
            ("POSTGRES_PASSWORD", "compose-test-password".into()),
            ("DATABASE_URL", "postgres://scalelite:compose-test-password@postgres:5432/scalelite".into()),
            ("SCALELITE_RECORDING_DIR", path_str(&stack.recordings()).into()),
            ("PLAYBACK_PLAYER_DIR", path_str(&player).into()),
            // Any free port, on loopback only.
            ("NGINX_HTTP_PORT", "127.0.0.1:".into()),
            ("SCALELITE_IMAGE", image()),
            ("POLL_INTERVAL", "2".into()),
            ("RECORDING_IMPORT_POLL_INTERVAL", "5".into()),
        ];
        // docker/env.example filled in, as an operator does.
        let example = std::fs::read_to_string(root.join("docker/env.example")).unwrap();
        std::fs::write(stack.env_file(), filled_in(&example, &settings)).unwrap();

        stack.compose(&["up", "-d", "--no-build"], UP_DEADLINE).await;
        stack
    }

    /// A project of the compose `files` (relative to the repository),
    /// named `scalelite-test<suffix>-<pid>`, with a temporary directory;
    /// nothing started yet.
    fn new(files: &[&str], suffix: &str) -> Self {
        let project = format!("scalelite-test{suffix}-{}", std::process::id());
        let dir = tempfile::tempdir().expect("temporary directory");
        let compose_command = std::env::var("COMPOSE").unwrap_or_else(|_| "docker-compose".into());
        let mut compose: Vec<String> = compose_command.split_whitespace().map(str::to_owned).collect();
        let env_file = dir.path().join("env");
        compose.extend(["-p", &project, "--env-file", path_str(&env_file)].map(str::to_owned));
        let root = root();
        for file in files {
            compose.extend(["-f".to_owned(), path_str(&root.join(file)).to_owned()]);
        }
        set_mode(dir.path(), 0o755);
        Self { project, dir, compose }
    }

    fn env_file(&self) -> PathBuf {
        self.dir.path().join("env")
    }

    /// The recording tree as docs/DEPLOYMENT.md has operators make it
    /// (uid 1000, group 2000, mode 0775), made by a root container so the
    /// test needs no root itself.
    async fn make_recording_tree(&self) {
        let recordings = self.recordings();
        std::fs::create_dir_all(&recordings).unwrap();
        set_mode(&recordings, 0o755);
        let mount = format!("{}:/var/bigbluebutton", path_str(&recordings));
        docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--user",
            "0",
            "-v",
            &mount,
            &image(),
            "install",
            "-d",
            "-o",
            "1000",
            "-g",
            "2000",
            "-m",
            "0775",
            "/var/bigbluebutton/spool",
            "/var/bigbluebutton/recording/scalelite",
            "/var/bigbluebutton/published",
            "/var/bigbluebutton/unpublished",
        ])
        .await;
    }

    fn recordings(&self) -> PathBuf {
        self.dir.path().join("recordings")
    }

    /// `docker compose ARGS` on this project.
    async fn compose(&self, args: &[&str], timeout: Duration) -> String {
        let mut all: Vec<&str> = self.compose[1..].iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        let env_file = self.env_file();
        run(&self.compose[0], &all, &[("SCALELITE_ENV_FILE", path_str(&env_file))], &[], timeout).await
    }

    /// The container of `service`.
    async fn container(&self, service: &str) -> String {
        let id = self.compose(&["ps", "-a", "-q", service], DEADLINE).await;
        let ids: Vec<&str> = id.split_whitespace().collect();
        assert_eq!(ids.len(), 1, "{service}: one container expected, got {ids:?}");
        ids[0].to_owned()
    }

    /// `docker inspect --format FORMAT` of `service`'s container.
    async fn inspect(&self, service: &str, format: &str) -> String {
        let container = self.container(service).await;
        docker(&["inspect", "--format", format, &container]).await.trim().to_owned()
    }

    /// nginx's published address (`127.0.0.1:P`).
    async fn nginx(&self) -> String {
        self.compose(&["port", "scalelite-nginx", "80"], DEADLINE).await.trim().to_owned()
    }

    /// The host's address on the project's network.
    async fn gateway(&self) -> IpAddr {
        let network = format!("{}_default", self.project);
        let gateway = docker(&["network", "inspect", "--format", "{{(index .IPAM.Config 0).Gateway}}", &network]).await;
        gateway.trim().parse().unwrap_or_else(|e| panic!("gateway of {network}: {gateway:?}: {e}"))
    }

    /// Every service's logs, shown when a test fails.
    fn logs(&self) -> String {
        let output = StdCommand::new(&self.compose[0])
            .args(&self.compose[1..])
            .args(["logs", "--no-color", "--tail", "60"])
            .env("SCALELITE_ENV_FILE", self.dir.path().join("env"))
            .output();
        output.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("==> logs of {}\n{}", self.project, self.logs());
        }
        let down = StdCommand::new(&self.compose[0])
            .args(&self.compose[1..])
            .args(["down", "--volumes", "--remove-orphans", "--timeout", "10"])
            .env("SCALELITE_ENV_FILE", self.dir.path().join("env"))
            // The services of profiles too (the HA stack's `bbb`).
            .env("COMPOSE_PROFILES", "bbb")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !down.is_ok_and(|s| s.success()) {
            eprintln!("warning: docker compose down of {} failed", self.project);
        }
        // Files of uid 1000: removed by a container, the test may not be root.
        let mount = format!("{}:/var/bigbluebutton", path_str(&self.recordings()));
        let _ = StdCommand::new("docker")
            .args(["run", "--rm", "--network", "none", "--user", "0", "-v", &mount, &image()])
            .args(["find", "/var/bigbluebutton", "-mindepth", "1", "-delete"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `example` with each `NAME=` line (commented out or not) of `settings`
/// set, and the settings it lacks appended.
fn filled_in(example: &str, settings: &[(&str, String)]) -> String {
    let mut out = String::new();
    let mut done = Vec::new();
    for line in example.lines() {
        let name = line.trim_start_matches('#').split('=').next().unwrap_or_default();
        match settings.iter().find(|(n, _)| *n == name && line.contains('=')) {
            Some((n, value)) if !done.contains(n) => {
                out.push_str(&format!("{n}={value}\n"));
                done.push(*n);
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    for (name, value) in settings.iter().filter(|(n, _)| !done.contains(n)) {
        out.push_str(&format!("{name}={value}\n"));
    }
    out
}

/// Compose's health checks turn healthy, the one-shot `db migrate` ran once
/// before the API and the importer started, every role runs as uid 1000 with
/// group 2000; through nginx the API answers, a meeting is created and
/// joined on a registered server, an archive another container drops into
/// the spool is imported, and its playback is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine and the images: scripts/test-containers"]
async fn compose_stack_serves_meetings_and_recordings() {
    let stack = Stack::up().await;

    // Health checks: every long-running service healthy.
    let services =
        ["redis", "postgres", "scalelite-api", "scalelite-poller", "scalelite-recording-importer", "scalelite-nginx"];
    for service in services {
        until(&format!("{service} healthy"), UP_DEADLINE, || async {
            let status = stack.inspect(service, "{{.State.Health.Status}}").await;
            if status == "healthy" { Ok(()) } else { Err(status) }
        })
        .await;
    }

    // db migrate: one container, run once, exited 0 before its dependants
    // started.
    let migrate =
        stack.inspect("scalelite-db-migrate", "{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}").await;
    assert_eq!(migrate, "exited 0 0", "scalelite-db-migrate");
    let migrated = stack.inspect("scalelite-db-migrate", "{{.State.FinishedAt}}").await;
    for service in ["scalelite-api", "scalelite-recording-importer"] {
        let started = stack.inspect(service, "{{.State.StartedAt}}").await;
        assert!(started > migrated, "{service} started at {started}, before db migrate finished at {migrated}");
    }

    // Every role as uid 1000 with the spool group 2000.
    for service in ["scalelite-api", "scalelite-poller", "scalelite-recording-importer"] {
        let id = stack.compose(&["exec", "-T", service, "id"], DEADLINE).await;
        assert_eq!(
            id.trim(),
            "uid=1000(scalelite) gid=1000(scalelite) groups=1000(scalelite),2000(scalelite-spool)",
            "{service}"
        );
    }

    // The API through nginx.
    let origin = format!("http://{}", stack.nginx().await);
    let health = http_get(&format!("{origin}/health_check")).await;
    assert_eq!(health.status, 200, "{}", health.body);
    let lb = ApiClient::new(format!("{origin}/bigbluebutton/api"), SECRET);
    let index = http_get(&format!("{origin}/bigbluebutton/api")).await;
    assert_eq!(index.returncode().as_deref(), Some("SUCCESS"), "{}", index.body);

    // A BBB server, registered and enabled as an operator does.
    let bbb = FakeBbb::start_on(stack.gateway().await, "compose-test-bbb-secret").await;
    let added = stack
        .compose(
            &["exec", "-T", "scalelite-api", "scalelite-admin", "servers", "add", &bbb.url(), &bbb.secret()],
            DEADLINE,
        )
        .await;
    let server_id =
        added.lines().find_map(|l| l.strip_prefix("id: ")).unwrap_or_else(|| panic!("servers add: {added}"));
    stack.compose(&["exec", "-T", "scalelite-api", "scalelite-admin", "servers", "enable", server_id], DEADLINE).await;

    // Create once the poller found it online; join goes to it.
    let meeting = [("meetingID", "compose-room"), ("name", "Compose room"), ("record", "true")];
    until("create through nginx", DEADLINE, || success(&lb, "create", &meeting)).await;
    assert_eq!(bbb.calls_to("create").len(), 1);
    let join = lb.get("join", &[("meetingID", "compose-room"), ("fullName", "Alice"), ("role", "MODERATOR")]).await;
    assert_eq!(join.status, 302, "{}", join.body);
    let to = join.location.as_deref().unwrap_or_default();
    assert!(to.starts_with(&format!("{}/join?", bbb.url())), "join redirects to {to}");

    // An archive dropped into the spool by another container with
    // Scalelite's ids, as BBB's post-publish rsync does: a hidden name,
    // renamed when complete.
    let recording = RecordingArchive::new("compose-room", "Compose room").formats(&[Format::Presentation]);
    let name = recording.file_name();
    let importer = stack.container("scalelite-recording-importer").await;
    let drop_script = format!("cd /var/bigbluebutton/spool && cat >.{name}.part && mv .{name}.part {name}");
    run(
        "docker",
        &[
            "run",
            "--rm",
            "-i",
            "--network",
            "none",
            "--user",
            "1000:2000",
            "--volumes-from",
            &importer,
            &image(),
            "bash",
            "-c",
            &drop_script,
        ],
        &[],
        &recording.tar(),
        DEADLINE,
    )
    .await;

    // Imported: listed by getRecordings through nginx.
    let record_id = recording.record_id.as_str();
    let listed = until("the dropped recording in getRecordings", DEADLINE, || async {
        let reply = success(&lb, "getRecordings", &[("meetingID", "compose-room")]).await?;
        match reply.text_at("recordings/recording/recordID") {
            Some(id) if id == record_id => Ok(reply),
            _ => Err(reply.body),
        }
    })
    .await;
    assert_eq!(listed.text_at("recordings/recording/published").as_deref(), Some("true"), "{}", listed.body);
    // The archive leaves the spool once imported (the importer's lock file
    // stays).
    let spool = stack.recordings().join("spool");
    until("the archive removed from the spool", DEADLINE, || async {
        let left: Vec<String> = std::fs::read_dir(&spool)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.contains(".tar"))
            .collect();
        if left.is_empty() { Ok(()) } else { Err(format!("{left:?}")) }
    })
    .await;

    // Playback through nginx: the link getRecordings gives opens the player,
    // and the recording's files come from the published tree.
    let link = listed.text_at("recordings/recording/playback/format/url").expect("a playback URL");
    let path = link.split_once("://").and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..])).unwrap_or(&link);
    assert_eq!(path, format!("/playback/presentation/2.3/{record_id}"));
    let player = http_get(&format!("{origin}{path}")).await;
    assert_eq!((player.status, player.body.as_str()), (200, "presentation player"));
    let play = http_get(&format!("{origin}/recording/{record_id}/presentation")).await;
    assert_eq!(play.status, 307, "{}", play.body);
    let metadata = http_get(&format!("{origin}/presentation/{record_id}/metadata.xml")).await;
    assert_eq!(metadata.status, 200, "{}", metadata.body);
    assert!(metadata.body.contains(record_id), "{}", metadata.body);
}
