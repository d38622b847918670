//! The spool directory: which archives are there, which have settled, the
//! quarantine for archives that cannot be imported, and the lock that
//! makes one importer the only one working on a spool.

use std::collections::HashMap;
use std::fs::{self, File, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;
use tracing::warn;

/// The quarantine directory below the spool.
pub const FAILED_DIR: &str = "failed";
/// The lock file in the spool (hidden, so no importer takes it for an archive).
pub const LOCK_FILE: &str = ".scalelite-importer.lock";

/// An archive in the spool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    /// Full path.
    pub path: PathBuf,
    /// File name, `<record_id>.tar`.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time.
    pub modified: SystemTime,
}

impl Candidate {
    /// Whether the file still has the size and time seen before.
    pub fn unchanged(&self) -> io::Result<bool> {
        let now = stat(&self.path)?;
        Ok(now.0 == self.size && now.1 == self.modified)
    }
}

fn stat(path: &Path) -> io::Result<(u64, SystemTime)> {
    let meta = fs::metadata(path)?;
    Ok((meta.len(), meta.modified()?))
}

/// Every `*.tar` regular file directly in `spool` whose name does not
/// start with a dot (rsync's temporary files do), oldest first.
pub(crate) fn list(spool: &Path) -> io::Result<Vec<Candidate>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(spool)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else { continue };
        if name.starts_with('.') || !name.ends_with(".tar") {
            continue;
        }
        // The entry's own type: a symbolic link is not an archive we own.
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let Ok(modified) = meta.modified() else { continue };
        out.push(Candidate { path: entry.path(), name, size: meta.len(), modified });
    }
    out.sort_by(|a, b| a.modified.cmp(&b.modified).then_with(|| a.name.cmp(&b.name)));
    Ok(out)
}

/// Tracks when each archive was first seen with its current size and time.
#[derive(Debug)]
pub(crate) struct Settle {
    settle: Duration,
    seen: HashMap<PathBuf, (u64, SystemTime, Instant)>,
}

/// The result of one observation.
#[derive(Debug, Default)]
pub(crate) struct Observed {
    /// Archives unchanged for the settle time, oldest first.
    pub ready: Vec<Candidate>,
    /// Archives still changing (or not yet watched long enough).
    pub waiting: usize,
    /// When the next waiting archive may have settled.
    pub next_check: Option<Instant>,
}

impl Settle {
    /// A tracker for `settle` time.
    pub fn new(settle: Duration) -> Self {
        Self { settle, seen: HashMap::new() }
    }

    /// Records what a listing shows at `now`.
    pub fn observe(&mut self, candidates: Vec<Candidate>, now: Instant) -> Observed {
        self.seen.retain(|path, _| candidates.iter().any(|c| &c.path == path));
        let mut observed = Observed::default();
        for candidate in candidates {
            let since = match self.seen.get(&candidate.path) {
                Some(&(size, modified, since)) if size == candidate.size && modified == candidate.modified => since,
                _ => {
                    self.seen.insert(candidate.path.clone(), (candidate.size, candidate.modified, now));
                    now
                }
            };
            let due = since + self.settle;
            if due <= now {
                observed.ready.push(candidate);
            } else {
                observed.waiting += 1;
                observed.next_check = Some(observed.next_check.map_or(due, |n: Instant| n.min(due)));
            }
        }
        observed
    }

    /// Starts the settle time of `path` over (it changed during an import).
    pub fn forget(&mut self, path: &Path) {
        self.seen.remove(path);
    }
}

/// Moves an archive to `<spool>/failed/` with a `.reason` file next to it;
/// never overwrites an earlier quarantined archive. Returns the new path.
pub(crate) fn quarantine(spool: &Path, archive: &Path, reason: &str, size: u64) -> io::Result<PathBuf> {
    let failed = spool.join(FAILED_DIR);
    fs::create_dir_all(&failed)?;
    let name = archive.file_name().and_then(|n| n.to_str()).unwrap_or("archive.tar");
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let free =
        |candidate: &str| !failed.join(candidate).exists() && !failed.join(format!("{candidate}.reason")).exists();
    let target = if free(name) {
        name.to_owned()
    } else {
        let stem = name.strip_suffix(".tar").unwrap_or(name);
        (0..)
            .map(|n| format!("{stem}.{}-{n}.tar", now.as_millis()))
            .find(|candidate| free(candidate))
            .unwrap_or_else(|| format!("{stem}.tar"))
    };
    let text = format!(
        "{reason}\n\narchive: {name} ({size} bytes)\nquarantined: {}\n\
         Fix the cause, then move the archive back into the spool directory to import it again.\n",
        utc_timestamp(now.as_secs())
    );
    let reason_path = failed.join(format!("{target}.reason"));
    let temporary = failed.join(format!(".{target}.reason.tmp"));
    fs::write(&temporary, text)?;
    fs::rename(&temporary, &reason_path)?;
    let quarantined = failed.join(&target);
    fs::rename(archive, &quarantined)?;
    Ok(quarantined)
}

/// An archive in the quarantine, as the console lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailedImport {
    /// File name in `<spool>/failed/`.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// The first line of its `.reason` file (at most 500 characters).
    pub reason: String,
}

/// Largest part of a `.reason` file read for [`failed_imports`].
const MAX_REASON_BYTES: u64 = 4096;

/// The archives waiting in `spool` (not yet imported).
pub fn pending_imports(spool: &Path) -> io::Result<usize> {
    Ok(list(spool)?.len())
}

/// The quarantined archives of `spool` (at most `limit`, by name), each
/// with the reason it failed; none when there is no quarantine.
pub fn failed_imports(spool: &Path, limit: usize) -> io::Result<Vec<FailedImport>> {
    use std::io::Read as _;
    let failed = spool.join(FAILED_DIR);
    let mut out = match list(&failed) {
        Ok(found) => found,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out.truncate(limit);
    Ok(out
        .into_iter()
        .map(|candidate| {
            let mut text = String::new();
            if let Ok(file) = File::open(failed.join(format!("{}.reason", candidate.name))) {
                let mut bytes = Vec::new();
                let _ = file.take(MAX_REASON_BYTES).read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).lines().next().unwrap_or_default().chars().take(500).collect();
            }
            FailedImport { name: candidate.name, size: candidate.size, reason: text }
        })
        .collect())
}

/// Moves quarantined archive `name` back into the spool, where the importer
/// takes it again, and removes its `.reason` file. `name` must be a plain
/// `*.tar` file name of the quarantine ([`io::ErrorKind::NotFound`]
/// otherwise); an archive of that name already in the spool is not replaced
/// ([`io::ErrorKind::AlreadyExists`]).
pub fn retry_failed(spool: &Path, name: &str) -> io::Result<()> {
    let plain =
        !name.is_empty() && !name.starts_with('.') && name.ends_with(".tar") && !name.contains(['/', '\\', '\0']);
    let failed = spool.join(FAILED_DIR);
    let source = failed.join(name);
    if !plain || !fs::symlink_metadata(&source).is_ok_and(|m| m.is_file()) {
        return Err(io::Error::new(io::ErrorKind::NotFound, "no such quarantined archive"));
    }
    let target = spool.join(name);
    if fs::symlink_metadata(&target).is_ok() {
        return Err(io::Error::new(io::ErrorKind::AlreadyExists, "an archive of that name is in the spool"));
    }
    fs::rename(&source, &target)?;
    match fs::remove_file(failed.join(format!("{name}.reason"))) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            warn!(error = %e, "cannot remove the reason of a retried archive")
        }
        _ => {}
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM:SS UTC` for epoch seconds.
fn utc_timestamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", rem / 3600, rem / 60 % 60, rem % 60)
}

/// An exclusive lock on a spool: only its holder imports from it (and
/// repairs leftovers of interrupted imports). Released on drop.
#[derive(Debug)]
pub(crate) struct SpoolLock {
    _file: File,
}

/// Takes the spool's lock, or `None` when another importer holds it.
pub(crate) fn try_lock(spool: &Path) -> io::Result<Option<SpoolLock>> {
    let file = File::options().create(true).truncate(false).write(true).open(spool.join(LOCK_FILE))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(SpoolLock { _file: file })),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {
            warn!(spool = %spool.display(), "the file system cannot lock files; run only one importer on this spool");
            Ok(Some(SpoolLock { _file: file }))
        }
        Err(TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_imports_are_listed_and_retried() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path();
        assert!(failed_imports(spool, 10).unwrap().is_empty());
        let failed = spool.join(FAILED_DIR);
        fs::create_dir(&failed).unwrap();
        fs::write(failed.join("r1.tar"), "x").unwrap();
        fs::write(failed.join("r1.tar.reason"), "no metadata.xml\n\narchive: r1.tar").unwrap();
        fs::write(failed.join("r2.tar"), "yy").unwrap();
        fs::write(spool.join("r2.tar"), "new").unwrap();
        let listed = failed_imports(spool, 10).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0], FailedImport { name: "r1.tar".into(), size: 1, reason: "no metadata.xml".into() });
        assert_eq!(listed[1].reason, "");
        assert_eq!(failed_imports(spool, 1).unwrap().len(), 1);
        assert_eq!(pending_imports(spool).unwrap(), 1);

        retry_failed(spool, "r1.tar").unwrap();
        assert!(spool.join("r1.tar").exists() && !failed.join("r1.tar").exists());
        assert!(!failed.join("r1.tar.reason").exists());
        assert_eq!(retry_failed(spool, "r2.tar").unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        for bad in ["r1.tar", "../r2.tar", ".x.tar", "r2.tar.reason", "", "failed"] {
            assert_eq!(retry_failed(spool, bad).unwrap_err().kind(), io::ErrorKind::NotFound, "{bad}");
        }
    }

    #[test]
    fn lists_only_visible_tar_files_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        fs::write(p.join("b.tar"), "b").unwrap();
        fs::write(p.join("a.tar"), "aa").unwrap();
        fs::write(p.join(".a.tar.Xy12ab"), "").unwrap();
        fs::write(p.join(".hidden.tar"), "").unwrap();
        fs::write(p.join("notes.txt"), "").unwrap();
        fs::create_dir(p.join("dir.tar")).unwrap();
        std::os::unix::fs::symlink(p.join("a.tar"), p.join("link.tar")).unwrap();
        let old = SystemTime::now() - Duration::from_secs(60);
        File::options().write(true).open(p.join("b.tar")).unwrap().set_modified(old).unwrap();
        let names: Vec<String> = list(p).unwrap().into_iter().map(|c| c.name).collect();
        assert_eq!(names, ["b.tar", "a.tar"]);
    }

    #[test]
    fn settles_after_the_settle_time_without_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.tar");
        fs::write(&path, "x").unwrap();
        let mut settle = Settle::new(Duration::from_secs(2));
        let t0 = Instant::now();
        let seen = settle.observe(list(dir.path()).unwrap(), t0);
        assert!(seen.ready.is_empty());
        assert_eq!(seen.next_check, Some(t0 + Duration::from_secs(2)));
        assert!(settle.observe(list(dir.path()).unwrap(), t0 + Duration::from_secs(1)).ready.is_empty());
        // Growing: the clock starts over.
        fs::write(&path, "xy").unwrap();
        let seen = settle.observe(list(dir.path()).unwrap(), t0 + Duration::from_millis(1500));
        assert!(seen.ready.is_empty());
        assert_eq!(seen.waiting, 1);
        assert!(settle.observe(list(dir.path()).unwrap(), t0 + Duration::from_millis(3400)).ready.is_empty());
        let seen = settle.observe(list(dir.path()).unwrap(), t0 + Duration::from_millis(3500));
        assert_eq!(seen.ready.len(), 1);
        assert!(seen.ready[0].unchanged().unwrap());

        let mut immediate = Settle::new(Duration::ZERO);
        assert_eq!(immediate.observe(list(dir.path()).unwrap(), t0).ready.len(), 1);
    }

    #[test]
    fn quarantine_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path();
        for round in 0..3 {
            let archive = spool.join("r-1.tar");
            fs::write(&archive, format!("v{round}")).unwrap();
            let moved = quarantine(spool, &archive, &format!("reason {round}"), 2).unwrap();
            assert!(!archive.exists());
            assert_eq!(fs::read_to_string(&moved).unwrap(), format!("v{round}"));
            let reason = fs::read_to_string(format!("{}.reason", moved.display())).unwrap();
            assert!(reason.starts_with(&format!("reason {round}\n")), "{reason}");
            assert!(reason.contains("archive: r-1.tar (2 bytes)"), "{reason}");
        }
        assert_eq!(fs::read_dir(spool.join(FAILED_DIR)).unwrap().count(), 6);
    }

    #[test]
    fn timestamps() {
        assert_eq!(utc_timestamp(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_timestamp(1_715_261_728), "2024-05-09 13:35:28 UTC");
        assert_eq!(utc_timestamp(951_825_600), "2000-02-29 12:00:00 UTC");
    }

    #[test]
    fn one_lock_holder_per_spool() {
        let dir = tempfile::tempdir().unwrap();
        let first = try_lock(dir.path()).unwrap();
        assert!(first.is_some());
        assert!(try_lock(dir.path()).unwrap().is_none());
        drop(first);
        assert!(try_lock(dir.path()).unwrap().is_some());
    }
}
