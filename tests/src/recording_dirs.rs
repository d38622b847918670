//! Temporary recording directories laid out as on a Scalelite host.

use std::path::{Path, PathBuf};

use scalelite_core::config::Env;
use tempfile::TempDir;

/// `spool/`, `work/`, `published/` and `unpublished/` under one temporary
/// directory (removed on drop).
#[derive(Debug)]
pub struct RecordingDirs {
    root: TempDir,
}

impl Default for RecordingDirs {
    fn default() -> Self {
        Self::new()
    }
}

impl RecordingDirs {
    /// Creates the four directories.
    ///
    /// # Panics
    ///
    /// Panics when the temporary directory cannot be created.
    pub fn new() -> Self {
        let root = tempfile::Builder::new().prefix("scalelite-recordings-").tempdir().expect("temp dir");
        for dir in ["spool", "work", "published", "unpublished"] {
            std::fs::create_dir_all(root.path().join(dir)).expect("create recording dir");
        }
        Self { root }
    }

    /// The common parent.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// `RECORDING_SPOOL_DIR`.
    pub fn spool(&self) -> PathBuf {
        self.root.path().join("spool")
    }

    /// `RECORDING_WORK_DIR`.
    pub fn work(&self) -> PathBuf {
        self.root.path().join("work")
    }

    /// `RECORDING_PUBLISH_DIR`.
    pub fn published(&self) -> PathBuf {
        self.root.path().join("published")
    }

    /// `RECORDING_UNPUBLISH_DIR`.
    pub fn unpublished(&self) -> PathBuf {
        self.root.path().join("unpublished")
    }

    /// `env` with the four `RECORDING_*_DIR` variables set.
    pub fn env(&self, env: Env) -> Env {
        env.with("RECORDING_SPOOL_DIR", self.spool().display().to_string())
            .with("RECORDING_WORK_DIR", self.work().display().to_string())
            .with("RECORDING_PUBLISH_DIR", self.published().display().to_string())
            .with("RECORDING_UNPUBLISH_DIR", self.unpublished().display().to_string())
    }

    /// Every file below the root, relative to it, sorted (to prove nothing
    /// was written elsewhere or lost).
    pub fn files(&self) -> Vec<String> {
        let mut out = Vec::new();
        collect(self.root.path(), self.root.path(), &mut out);
        out.sort();
        out
    }
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            collect(root, &path, out);
        } else {
            out.push(path.strip_prefix(root).unwrap_or(&path).display().to_string());
        }
    }
}
