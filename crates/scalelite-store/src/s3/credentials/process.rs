//! A profile's `credential_process`: a command run with `/bin/sh -c` (as
//! the AWS SDKs for Rust, Go and Java run it, and the SDK for Ruby runs a
//! command holding shell syntax), standard input closed, standard error
//! left to the service's own (the journal), standard output read: one JSON
//! object, `Version` 1, `AccessKeyId`, `SecretAccessKey`, optional
//! `SessionToken` and `Expiration` (RFC 3339; without it the credentials
//! never expire).
//!
//! The command runs in a process group of its own; when it has not exited
//! within the time bound, or prints more than [`MAX_OUTPUT_BYTES`], the
//! whole group is killed. Errors name neither the command (it may hold
//! secrets) nor its output.

use std::process::Stdio;
use std::time::Duration;

use jiff::Timestamp;
use rusty_s3::Credentials;
use tokio::io::AsyncReadExt;

/// How long the command may take.
pub(super) const TIMEOUT: Duration = Duration::from_secs(30);
/// Largest output read (a session token is a few KB).
pub(super) const MAX_OUTPUT_BYTES: usize = 64 * 1024;

/// Runs `command` and parses what it prints, within `timeout`.
pub(super) async fn run(command: &str, timeout: Duration) -> Result<(Credentials, Option<Timestamp>), String> {
    let mut child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run /bin/sh: {e}"))?;
    let group = child.id().and_then(|id| i32::try_from(id).ok()).and_then(rustix::process::Pid::from_raw);
    let Some(mut stdout) = child.stdout.take() else {
        return Err("the command's output cannot be read".into());
    };
    let outcome = tokio::time::timeout(timeout, async {
        let mut output = Vec::new();
        (&mut stdout)
            .take(MAX_OUTPUT_BYTES as u64 + 1)
            .read_to_end(&mut output)
            .await
            .map_err(|e| format!("reading the command's output: {e}"))?;
        if output.len() > MAX_OUTPUT_BYTES {
            return Err(format!("the command printed more than {MAX_OUTPUT_BYTES} bytes"));
        }
        drop(stdout);
        let status = child.wait().await.map_err(|e| format!("waiting for the command: {e}"))?;
        Ok((status, output))
    })
    .await;
    // Whatever happened, nothing of the group outlives the fetch (a
    // command that exited has left its children running, which the SDKs
    // leave too; those still in its group are killed only on failure).
    let (status, output) = match outcome {
        Ok(Ok(done)) => done,
        Ok(Err(e)) => {
            kill(&mut child, group).await;
            return Err(e);
        }
        Err(_) => {
            kill(&mut child, group).await;
            return Err(format!("the command did not finish within {timeout:?} and was killed"));
        }
    };
    if !status.success() {
        return Err(match status.code() {
            Some(code) => format!("the command exited with status {code}"),
            None => "the command was killed by a signal".to_owned(),
        });
    }
    parse(&output)
}

/// Kills the command's process group, then the command itself, and reaps it.
async fn kill(child: &mut tokio::process::Child, group: Option<rustix::process::Pid>) {
    if let Some(group) = group {
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    }
    let _ = child.kill().await;
}

/// The credentials of the command's output. Errors never hold the values.
pub(super) fn parse(output: &[u8]) -> Result<(Credentials, Option<Timestamp>), String> {
    if output.len() > MAX_OUTPUT_BYTES {
        return Err("the command's output is too large".into());
    }
    let json: serde_json::Value =
        serde_json::from_slice(output).map_err(|_| "the command's output is not JSON".to_owned())?;
    let object = json.as_object().ok_or("the command's output is not a JSON object")?;
    match object.get("Version") {
        Some(version) if version.as_u64() == Some(1) => {}
        Some(_) => return Err("the command's output has a Version other than 1".into()),
        None => return Err("the command's output has no Version".into()),
    }
    let (credentials, expires) = super::json_credentials(object, "the command's output", "SessionToken")?;
    if let Some(expires) = expires
        && expires <= Timestamp::now()
    {
        return Err(format!("the credentials the command printed expired at {expires}"));
    }
    Ok((credentials, expires))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_parsed() {
        let output = br#"{"Version": 1, "AccessKeyId": "ASIAPROC", "SecretAccessKey": "s3cr3t/+x",
            "SessionToken": "IQoJ/tok==", "Expiration": "2999-12-06T18:00:00Z", "Other": [1, 2]}"#;
        let (credentials, expires) = parse(output).unwrap();
        assert_eq!(
            (credentials.key(), credentials.secret(), credentials.token()),
            ("ASIAPROC", "s3cr3t/+x", Some("IQoJ/tok=="))
        );
        assert_eq!(expires.unwrap().to_string(), "2999-12-06T18:00:00Z");
        // No token, no expiration: long-term keys that never expire.
        let (credentials, expires) =
            parse(b"{\"Version\":1,\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"B\"}\n").unwrap();
        assert_eq!((credentials.key(), credentials.token(), expires), ("A", None, None));
    }

    #[test]
    fn hostile_outputs_are_refused_without_echoing_them() {
        let big = format!(r#"{{"Version":1,"AccessKeyId":"A","SecretAccessKey":"{}"}}"#, "x".repeat(MAX_OUTPUT_BYTES));
        let long = format!(
            r#"{{"Version":1,"AccessKeyId":"A","SecretAccessKey":"{}"}}"#,
            "v".repeat(super::super::MAX_FIELD_BYTES + 1)
        );
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let cases: Vec<&[u8]> = vec![
            b"",
            b"very-secret",
            b"[\"very-secret\"]",
            deep.as_bytes(),
            big.as_bytes(),
            long.as_bytes(),
            br#"{"AccessKeyId":"A","SecretAccessKey":"very-secret"}"#,
            br#"{"Version":2,"AccessKeyId":"A","SecretAccessKey":"very-secret"}"#,
            br#"{"Version":"1","AccessKeyId":"A","SecretAccessKey":"very-secret"}"#,
            br#"{"Version":1,"SecretAccessKey":"very-secret"}"#,
            br#"{"Version":1,"AccessKeyId":"A"}"#,
            br#"{"Version":1,"AccessKeyId":"A","SecretAccessKey":""}"#,
            br#"{"Version":1,"AccessKeyId":"A","SecretAccessKey":"very secret"}"#,
            br#"{"Version":1,"AccessKeyId":"A","SecretAccessKey":"very-secret\n"}"#,
            br#"{"Version":1,"AccessKeyId":7,"SecretAccessKey":"very-secret"}"#,
            br#"{"Version":1,"AccessKeyId":"A","SecretAccessKey":"very-secret","Expiration":"tomorrow"}"#,
            br#"{"Version":1,"AccessKeyId":"A","SecretAccessKey":"very-secret","SessionToken":["very-secret"]}"#,
            br#"{"Version":1,"AccessKeyId":"A","SecretAccessKey":"very-secret","Expiration":"2001-01-01T00:00:00Z"}"#,
            &[0xff, 0xfe, b'{'],
        ];
        for output in cases {
            let error = parse(output).err().unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(output)));
            assert!(!error.contains("very") && error.len() < 200, "{error}");
        }
    }

    #[tokio::test]
    async fn a_command_prints_the_credentials() {
        let (credentials, expires) =
            run("printf '{\"Version\": 1, \"AccessKeyId\": \"%s\", \"SecretAccessKey\": \"sec\"}' ASIARUN", TIMEOUT)
                .await
                .unwrap();
        assert_eq!((credentials.key(), expires), ("ASIARUN", None));
    }

    #[tokio::test]
    async fn failing_commands_are_errors_without_their_output() {
        for (command, says) in [
            ("echo very-secret; exit 3", "exited with status 3"),
            ("echo very-secret", "not JSON"),
            ("kill -9 $$", "killed by a signal"),
            ("/nonexistent/very-secret-tool", "exited with status 127"),
            ("head -c 100000 /dev/zero", "more than"),
            ("yes very-secret", "more than"),
        ] {
            let error = run(command, TIMEOUT).await.err().unwrap_or_else(|| panic!("{command}"));
            assert!(error.contains(says) && !error.contains("very"), "{command}: {error}");
        }
    }

    /// Whether process `pid` is gone (or a zombie, as good as gone).
    fn gone(pid: &str) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Err(_) => true,
            Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        }
    }

    #[tokio::test]
    async fn a_hanging_command_and_its_children_are_killed_at_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        // The shell waits for a child that never ends; the output stays open.
        let command = format!("sleep 600 >/dev/null 2>&1 & echo $$ $! > {}; wait", pids.display());
        let error = run(&command, Duration::from_secs(2)).await.unwrap_err();
        assert!(error.contains("did not finish") && error.contains("killed"), "{error}");
        let pids = std::fs::read_to_string(&pids).unwrap();
        let pids: Vec<&str> = pids.split_whitespace().collect();
        assert_eq!(pids.len(), 2, "{pids:?}");
        // SIGKILL is delivered asynchronously: wait (bounded) until both
        // the shell and its child are gone.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !pids.iter().all(|pid| gone(pid)) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(pids.iter().all(|pid| gone(pid)), "{pids:?} still run");
    }
}
