//! The real `scalelite-admin` binary against a real `redis-server`:
//! configuration from the environment, streams and exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test code: a failed unwrap is a failed test")]

use std::process::Stdio;

use scalelite_tests::TestRedis;
use tokio::io::AsyncWriteExt as _;
use tokio::process::Command;

/// What one run of the binary printed and returned.
#[derive(Debug)]
struct Output {
    code: i32,
    out: String,
    err: String,
}

/// Runs the binary with `REDIS_URL` pointing at `redis` and `stdin` as input.
async fn admin(redis: &TestRedis, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_scalelite-admin"))
        .args(args)
        .env("REDIS_URL", redis.url())
        .env("REDIS_NAMESPACE", "scalelite")
        // Progress is the CLI's own output; keep the log to warnings.
        .env("RUST_LOG", "warn")
        .env_remove("SERVER_ID_IS_HOSTNAME")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("scalelite-admin starts");
    let mut input = child.stdin.take().expect("piped stdin");
    input.write_all(stdin.as_bytes()).await.expect("write stdin");
    drop(input);
    let output = child.wait_with_output().await.expect("scalelite-admin runs");
    Output {
        code: output.status.code().expect("exited normally"),
        out: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        err: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

#[tokio::test]
async fn add_enable_remove_and_an_unknown_id() {
    let redis = TestRedis::start().await;
    let url = "https://bbb1.example.com/bigbluebutton/api";

    let add = admin(&redis, &["servers", "add", url, "s3cret", "--tag", "gpu"], "").await;
    assert_eq!((add.code, add.err.as_str()), (0, ""), "{add:?}");
    let id = add.out.strip_prefix("OK\nid: ").and_then(|rest| rest.strip_suffix('\n')).expect("OK and the id");
    let record = redis.cmd(&["HGETALL", &format!("scalelite:server:{id}")]).await.as_map();
    assert_eq!(record.get("url").map(String::as_str), Some(url));
    assert_eq!(record.get("tag").map(String::as_str), Some("gpu"));
    assert_eq!(record.get("online").map(String::as_str), Some("false"));

    let enable = admin(&redis, &["servers", "enable", id], "").await;
    assert_eq!(
        (enable.code, enable.out.clone(), enable.err.as_str()),
        (0, format!("Enabling server {id}...\nOK\n"), "")
    );

    let list = admin(&redis, &["servers"], "").await;
    assert_eq!(list.code, 0);
    assert!(list.out.starts_with(&format!("id: {id}\n\turl: {url}\n\tsecret: s3cret\n\tenabled\n")), "{list:?}");

    let unknown = admin(&redis, &["servers", "enable", "nope"], "").await;
    assert_eq!(
        (unknown.code, unknown.out.as_str(), unknown.err.as_str()),
        (1, "Enabling server nope...\n", "ERROR: No server found with id: nope\n")
    );

    let bad_url = admin(&redis, &["servers", "add", "bbb1.example.com", "s"], "").await;
    assert_eq!(
        (bad_url.code, bad_url.out.as_str(), bad_url.err.as_str()),
        (1, "", "Error: Server URL must start with http:// or https://\n")
    );

    // The confirmation is read from a pipe: `echo yes | scalelite-admin …`.
    let declined = admin(&redis, &["servers", "remove", id], "no\n").await;
    assert_eq!(declined.code, 0);
    assert!(declined.out.ends_with(&format!("Server {id} was not removed\n")), "{declined:?}");
    let removed = admin(&redis, &["servers", "remove", id], "yes\n").await;
    assert_eq!(removed.code, 0, "{removed:?}");
    assert!(removed.out.ends_with("OK\n"), "{removed:?}");
    assert!(redis.cmd(&["SMEMBERS", "scalelite:servers"]).await.as_vec().is_empty());

    let json = admin(&redis, &["--json", "servers"], "").await;
    assert_eq!((json.code, json.out.as_str(), json.err.as_str()), (0, "[]\n", "No servers are configured\n"));
}

#[tokio::test]
async fn usage_and_configuration_errors() {
    let redis = TestRedis::start().await;
    for args in [&["servers", "add"][..], &["servers", "bogus"], &[], &["meetings", "info"]] {
        let run = admin(&redis, args, "").await;
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        assert_eq!(run.out, "");
        assert!(run.err.contains("Usage: scalelite-admin"), "{args:?}: {}", run.err);
    }
    let help = admin(&redis, &["--help"], "").await;
    assert_eq!(help.code, 0);
    assert!(help.out.contains("servers"), "{}", help.out);

    let mut child = Command::new(env!("CARGO_BIN_EXE_scalelite-admin"))
        .args(["servers"])
        .env("REDIS_URL", redis.url())
        .env("POLLER_THREADS", "many")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("scalelite-admin runs");
    assert_eq!(child.status.code(), Some(1));
    let err = String::from_utf8(std::mem::take(&mut child.stderr)).unwrap();
    assert!(err.contains("POLLER_THREADS"), "{err}");
    assert!(child.stdout.is_empty());
}
