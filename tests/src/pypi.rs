//! Pinned packages from pypi.org for the tests that drive Python programs (the
//! client library `bigbluebutton_api_python`, moto's S3 server): installed
//! once into a virtualenv cached in the cargo target directory, so only the
//! first run needs pypi.org. A missing `python3`/`python3-venv` or an
//! unreachable index fails with a message naming the package.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A virtualenv of pinned packages, cached as `target/<cache>/<name>/`.
#[derive(Clone, Copy, Debug)]
pub struct PinnedVenv<'a> {
    /// Directory under the target directory (`client-libraries`).
    pub cache: &'a str,
    /// The virtualenv's name: the pinned version, so a new pin builds anew.
    pub name: &'a str,
    /// A Python statement that succeeds when the venv is usable
    /// (`import moto.server`): a cached venv outlives the interpreter it
    /// links to (an upgraded Debian python3) and is rebuilt when it fails.
    pub check: &'a str,
    /// `pip install` options before `-r` (`--require-hashes`).
    pub pip_options: &'a [&'a str],
    /// The requirements file.
    pub requirements: &'a Path,
    /// What failed, for the message when pip does (names the packages).
    pub failure: &'a str,
}

/// The cargo target directory of the running test binary
/// (`target/<profile>/deps/<binary>`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).expect("the test binary lives in target/<profile>/deps").to_owned()
}

/// Runs `command`, panicking with `what` and its output when it fails.
fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|error| panic!("{what}: {error}"));
    assert!(
        output.status.success(),
        "{what}\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The Python interpreter of `venv`, created on first use. Concurrent runs
/// (test threads, other worktrees sharing the target directory) each build
/// in a private directory and rename it into place; the loser discards its
/// copy. Blocking: call it from `spawn_blocking`.
pub fn python(venv: &PinnedVenv<'_>) -> PathBuf {
    let cache = target_dir().join(venv.cache);
    let dir = cache.join(venv.name);
    let python = dir.join("bin/python");
    if python.exists() {
        let usable =
            Command::new(&python).args(["-c", venv.check]).output().is_ok_and(|output| output.status.success());
        if usable {
            return python;
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    std::fs::create_dir_all(&cache).unwrap();
    // One build at a time: every test that needs the venv calls this at once
    // on a cold cache, and parallel pip runs each unpack the whole tree
    // (hundreds of MB for moto and botocore), which once filled a CI disk.
    // The lock is released when the file closes, also on a panic.
    let lock = std::fs::File::create(cache.join(format!("{}.lock", venv.name))).unwrap();
    lock.lock().unwrap();
    if python.exists() {
        return python;
    }
    let building = tempfile::Builder::new().prefix(".building-").tempdir_in(&cache).unwrap();
    let staged = building.path().join("venv");
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&staged),
        "python3 -m venv failed: the Debian packages python3 and python3-venv are needed \
         (apt-get install python3 python3-venv; scripts/test installs them)",
    );
    run(
        Command::new(staged.join("bin/python"))
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-input"])
            .args(["--no-cache-dir"])
            // pip unpacks into TMPDIR: keep it beside the venv (cleaned with
            // it) rather than in a /tmp that may be a small tmpfs.
            .env("TMPDIR", building.path())
            .args(["--timeout", "30", "--retries", "2"])
            .args(venv.pip_options)
            .arg("-r")
            .arg(venv.requirements),
        venv.failure,
    );
    // A venv finds its packages from where its interpreter is called, so it
    // can move; a rename onto an existing directory fails, and then another
    // run finished first.
    if std::fs::rename(&staged, &dir).is_err() {
        assert!(python.exists(), "could not move {} to {}", staged.display(), dir.display());
    }
    python
}
