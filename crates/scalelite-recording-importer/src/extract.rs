//! Streaming, defensive extraction of a spool archive.
//!
//! An archive is what Scalelite's post-publish script packs: an
//! uncompressed tar whose members are `<format>/<record_id>/…`, each format
//! with a `metadata.xml`. Extraction reads the archive once, front to back,
//! through a fixed 1 MiB buffer, so memory stays flat for archives of any
//! size; only a `metadata.xml` (bounded by a limit) is held in memory, to
//! be parsed.
//!
//! The tar crate runs in raw mode: GNU long names and PAX headers are read
//! here, with size limits, instead of being buffered whole by the crate.
//! Only regular files and directories below `<format>/<record_id>/` are
//! written, with fresh permissions; absolute paths, `..`, links, devices,
//! FIFOs, sparse files, members outside that layout, a second recording id
//! and an archive without its end-of-archive blocks (truncated) are refused.
//! Nothing is ever written outside the destination directory: no member
//! can name a path outside it and no link is ever created inside it.
//!
//! Every file is flushed to disk (`fsync`) before extraction reports
//! success, and so is every directory it created, so an archive is only
//! deleted from the spool once its content is durable.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use scalelite_store::trees::sync_dir;
use tar::{Archive, EntryType, PaxExtensions};

/// Read buffer and copy chunk size.
const CHUNK: usize = 1024 * 1024;
/// Largest GNU long-name member (Linux paths are at most 4 KiB).
const MAX_LONG_NAME: u64 = 16 * 1024;
/// Largest PAX extended header.
const MAX_PAX_HEADER: u64 = 64 * 1024;
/// Longest file name component.
const MAX_COMPONENT: usize = 255;
/// Tar block size.
const BLOCK: u64 = 512;

/// What an extraction produced.
#[derive(Debug)]
pub(crate) struct Extracted {
    /// The recording id every format directory is named after.
    pub record_id: String,
    /// `(format, metadata.xml)` in format name order.
    pub formats: Vec<(String, Vec<u8>)>,
    /// Format directories without a `metadata.xml`, in name order (they
    /// cannot be imported; the other formats can).
    pub missing: Vec<String>,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Files written.
    pub files: u64,
}

/// Why an extraction stopped.
#[derive(Debug)]
pub(crate) enum ExtractError {
    /// The archive is malformed, truncated or hostile (quarantine it).
    Rejected(String),
    /// Reading the archive or writing the work directory failed (keep the
    /// archive and try again later).
    Io(String),
    /// Cancelled on shutdown.
    Cancelled,
}

fn reject<T>(message: impl Into<String>) -> Result<T, ExtractError> {
    Err(ExtractError::Rejected(message.into()))
}

/// A reader that counts what the tar parser consumed and remembers whether
/// the file itself failed (as opposed to its content being malformed).
struct Counting<R> {
    inner: R,
    consumed: Rc<Cell<u64>>,
    source_failed: Rc<Cell<bool>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.consumed.set(self.consumed.get() + n as u64);
                Ok(n)
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.source_failed.set(true);
                }
                Err(e)
            }
        }
    }
}

/// Extension headers seen before the member they describe.
#[derive(Default)]
struct Pending {
    long_name: Option<Vec<u8>>,
    pax_path: Option<Vec<u8>>,
    pax_size: Option<u64>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.long_name.is_none() && self.pax_path.is_none() && self.pax_size.is_none()
    }
}

/// State of one extraction.
struct Extraction<'a> {
    into: &'a Path,
    max_metadata: u64,
    cancel: &'a AtomicBool,
    source_failed: Rc<Cell<bool>>,
    consumed: Rc<Cell<u64>>,
    len: u64,
    buf: Vec<u8>,
    record_id: Option<String>,
    formats: BTreeMap<String, Option<Vec<u8>>>,
    dirs: BTreeSet<PathBuf>,
    bytes: u64,
    files: u64,
}

/// Extracts `archive` into the empty directory `into`.
pub(crate) fn extract(
    archive: &Path,
    into: &Path,
    max_metadata: u64,
    cancel: &AtomicBool,
) -> Result<Extracted, ExtractError> {
    let file = File::open(archive).map_err(|e| ExtractError::Io(format!("cannot open {}: {e}", archive.display())))?;
    let len = file.metadata().map_err(|e| ExtractError::Io(format!("cannot read {}: {e}", archive.display())))?.len();
    let consumed = Rc::new(Cell::new(0));
    let source_failed = Rc::new(Cell::new(false));
    let reader = Counting {
        inner: BufReader::with_capacity(CHUNK, file),
        consumed: Rc::clone(&consumed),
        source_failed: Rc::clone(&source_failed),
    };
    let mut tar = Archive::new(reader);
    let mut run = Extraction {
        into,
        max_metadata,
        cancel,
        source_failed,
        consumed: Rc::clone(&consumed),
        len,
        buf: vec![0; CHUNK],
        record_id: None,
        formats: BTreeMap::new(),
        dirs: BTreeSet::new(),
        bytes: 0,
        files: 0,
    };
    let members_end = run.members(&mut tar)?;
    // tar stops at the first zero block, or at the end of the file. Every
    // tar writer ends an archive with zero blocks; an archive that simply
    // stops after a member was cut short.
    if consumed.get() == 0 {
        return reject("empty file: not a tar archive");
    }
    if consumed.get() <= members_end {
        return reject("truncated archive: it ends without the end-of-archive blocks");
    }
    run.finish()
}

impl Extraction<'_> {
    /// Classifies an error of the tar parser or of reading a member.
    fn read_error(&self, context: &str, e: &io::Error) -> ExtractError {
        if self.source_failed.get() {
            ExtractError::Io(format!("reading the archive failed ({context}): {e}"))
        } else if self.consumed.get() >= self.len {
            ExtractError::Rejected(format!("truncated archive ({context}): {e}"))
        } else {
            ExtractError::Rejected(format!("malformed archive ({context}): {e}"))
        }
    }

    /// Classifies an error of writing into the work directory: a member
    /// that collides with another one is the archive's fault, anything else
    /// (disk full, permissions) is ours.
    fn write_error(&self, path: &str, e: &io::Error) -> ExtractError {
        use io::ErrorKind::{AlreadyExists, InvalidFilename, IsADirectory, NotADirectory};
        match e.kind() {
            AlreadyExists | NotADirectory | IsADirectory | InvalidFilename => {
                ExtractError::Rejected(format!("member {path:?} collides with another member: {e}"))
            }
            _ => ExtractError::Io(format!("cannot write {path:?} into the work directory: {e}")),
        }
    }

    fn check_cancel(&self) -> Result<(), ExtractError> {
        if self.cancel.load(Ordering::Relaxed) { Err(ExtractError::Cancelled) } else { Ok(()) }
    }

    /// Walks every member; returns where the last member's data ended.
    fn members<R: Read>(&mut self, tar: &mut Archive<R>) -> Result<u64, ExtractError> {
        let mut pending = Pending::default();
        let mut members_end = 0;
        let entries = tar.entries().map_err(|e| self.read_error("start", &e))?;
        for entry in entries.raw(true) {
            self.check_cancel()?;
            let mut entry = entry.map_err(|e| self.read_error("member header", &e))?;
            let size = entry.size();
            members_end = entry.raw_file_position() + size.div_ceil(BLOCK) * BLOCK;
            let kind = entry.header().entry_type();
            match kind {
                EntryType::GNULongName => {
                    let mut name = self.read_small(&mut entry, MAX_LONG_NAME, "GNU long name")?;
                    while name.last() == Some(&0) {
                        name.pop();
                    }
                    pending.long_name = Some(name);
                    continue;
                }
                EntryType::XHeader => {
                    let data = self.read_small(&mut entry, MAX_PAX_HEADER, "PAX header")?;
                    for record in PaxExtensions::new(&data) {
                        let record =
                            record.map_err(|e| ExtractError::Rejected(format!("malformed PAX header: {e}")))?;
                        match record.key() {
                            Ok("path") => pending.pax_path = Some(record.value_bytes().to_vec()),
                            Ok("size") => {
                                let size = record.value().ok().and_then(|v| v.parse().ok());
                                pending.pax_size =
                                    Some(size.ok_or_else(|| ExtractError::Rejected("malformed PAX size".into()))?);
                            }
                            Ok(key) if key.starts_with("GNU.sparse") => return reject("sparse file member"),
                            _ => {}
                        }
                    }
                    continue;
                }
                EntryType::XGlobalHeader => {
                    self.read_small(&mut entry, MAX_PAX_HEADER, "PAX global header")?;
                    continue;
                }
                _ => {}
            }
            let raw_path = match (pending.long_name.take(), pending.pax_path.take()) {
                (Some(name), _) | (None, Some(name)) => name,
                (None, None) => entry.header().path_bytes().into_owned(),
            };
            let shown = String::from_utf8_lossy(&raw_path).into_owned();
            if let Some(pax_size) = pending.pax_size.take()
                && pax_size != size
            {
                return reject(format!("member {shown:?}: PAX size overrides are not supported"));
            }
            match kind {
                EntryType::Regular | EntryType::Continuous | EntryType::Directory => {}
                EntryType::Symlink => return reject(format!("symbolic link member {shown:?}")),
                EntryType::Link | EntryType::GNULongLink => return reject(format!("hard link member {shown:?}")),
                EntryType::Char | EntryType::Block | EntryType::Fifo => {
                    return reject(format!("device or FIFO member {shown:?}"));
                }
                EntryType::GNUSparse => return reject(format!("sparse file member {shown:?}")),
                other => return reject(format!("member {shown:?} of unsupported type {:?}", other.as_byte() as char)),
            }
            let components = member_components(&raw_path)?;
            let is_dir = kind == EntryType::Directory;
            if !is_dir && raw_path.ends_with(b"/") {
                return reject(format!("file member {shown:?} has a directory name"));
            }
            self.place(&components, is_dir, &shown)?;
            let path = components.iter().fold(self.into.to_path_buf(), |p, c| p.join(c));
            if is_dir {
                self.make_dirs(&path, &shown)?;
            } else {
                let is_metadata = components.len() == 3 && components[2] == "metadata.xml";
                let mtime = entry.header().mtime().ok();
                self.write_file(&mut entry, &path, size, is_metadata, mtime, &shown, &components[0])?;
            }
        }
        if !pending.is_empty() {
            return reject("extension header without the member it describes");
        }
        Ok(members_end)
    }

    /// Reads a small member (an extension header) whole, within `limit`.
    fn read_small(&self, entry: &mut impl Read, limit: u64, what: &str) -> Result<Vec<u8>, ExtractError> {
        let mut data = Vec::new();
        entry.take(limit + 1).read_to_end(&mut data).map_err(|e| self.read_error(what, &e))?;
        if data.len() as u64 > limit {
            return reject(format!("{what} larger than {limit} bytes"));
        }
        Ok(data)
    }

    /// Checks a member against the `<format>/<record_id>/…` layout.
    fn place(&mut self, components: &[String], is_dir: bool, shown: &str) -> Result<(), ExtractError> {
        let format = &components[0];
        if !is_format_name(format) {
            return reject(format!("member {shown:?} is not inside a <format>/<record_id>/ directory"));
        }
        if components.len() < 3 && !is_dir {
            return reject(format!("file member {shown:?} is not inside a <format>/<record_id>/ directory"));
        }
        let Some(record_id) = components.get(1) else {
            return Ok(());
        };
        if !is_record_id(record_id) {
            return reject(format!("member {shown:?}: {record_id:?} is not a recording id"));
        }
        match &self.record_id {
            None => self.record_id = Some(record_id.clone()),
            Some(known) if known == record_id => {}
            Some(known) => {
                return reject(format!("the archive holds more than one recording ({known} and {record_id})"));
            }
        }
        self.formats.entry(format.clone()).or_default();
        Ok(())
    }

    fn make_dirs(&mut self, path: &Path, shown: &str) -> Result<(), ExtractError> {
        std::fs::create_dir_all(path).map_err(|e| self.write_error(shown, &e))?;
        let mut dir = path;
        while dir != self.into && self.dirs.insert(dir.to_path_buf()) {
            match dir.parent() {
                Some(parent) => dir = parent,
                None => break,
            }
        }
        Ok(())
    }

    #[expect(clippy::too_many_arguments, reason = "one call site; a struct would only rename the arguments")]
    fn write_file(
        &mut self,
        entry: &mut impl Read,
        path: &Path,
        size: u64,
        is_metadata: bool,
        mtime: Option<u64>,
        shown: &str,
        format: &str,
    ) -> Result<(), ExtractError> {
        if is_metadata && size > self.max_metadata {
            return reject(format!("{shown}: {size} bytes, more than the {}-byte limit", self.max_metadata));
        }
        if let Some(parent) = path.parent() {
            self.make_dirs(parent, shown)?;
        }
        let mut file =
            OpenOptions::new().write(true).create_new(true).open(path).map_err(|e| self.write_error(shown, &e))?;
        let mut metadata = if is_metadata { Some(Vec::with_capacity(size as usize)) } else { None };
        let mut remaining = size;
        while remaining > 0 {
            self.check_cancel()?;
            let want = remaining.min(self.buf.len() as u64) as usize;
            let n = entry.read(&mut self.buf[..want]).map_err(|e| self.read_error(shown, &e))?;
            if n == 0 {
                return reject(format!("truncated archive: member {shown:?} is cut short"));
            }
            file.write_all(&self.buf[..n]).map_err(|e| self.write_error(shown, &e))?;
            if let Some(metadata) = &mut metadata {
                metadata.extend_from_slice(&self.buf[..n]);
            }
            remaining -= n as u64;
        }
        if let Some(secs) = mtime {
            // The playback server's Last-Modified; a failure is harmless.
            let _ = file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs));
        }
        file.sync_all().map_err(|e| self.write_error(shown, &e))?;
        self.bytes += size;
        self.files += 1;
        if let Some(metadata) = metadata {
            let slot = self.formats.entry(format.to_owned()).or_default();
            if slot.is_some() {
                return reject(format!("{shown} appears twice"));
            }
            *slot = Some(metadata);
        }
        Ok(())
    }

    /// Flushes the directories and sorts the formats into those with and
    /// those without a `metadata.xml`.
    fn finish(self) -> Result<Extracted, ExtractError> {
        let Some(record_id) = self.record_id else {
            return reject("the archive holds no recording (no <format>/<record_id>/metadata.xml)");
        };
        let mut formats = Vec::with_capacity(self.formats.len());
        let mut missing = Vec::new();
        for (format, metadata) in self.formats {
            match metadata {
                Some(metadata) => formats.push((format, metadata)),
                None => missing.push(format),
            }
        }
        // Deepest first, then the root, so every new entry is durable.
        for dir in self.dirs.iter().rev().map(PathBuf::as_path).chain([self.into]) {
            sync_dir(dir).map_err(|e| ExtractError::Io(format!("cannot flush {}: {e}", dir.display())))?;
        }
        Ok(Extracted { record_id, formats, missing, bytes: self.bytes, files: self.files })
    }
}

/// The normal components of a member path; refuses absolute paths, `..`,
/// names that are not UTF-8 and over-long components. `.` and empty
/// components are dropped.
fn member_components(raw: &[u8]) -> Result<Vec<String>, ExtractError> {
    let Ok(path) = std::str::from_utf8(raw) else {
        return reject(format!("member name {:?} is not UTF-8", String::from_utf8_lossy(raw)));
    };
    if path.starts_with('/') {
        return reject(format!("absolute member path {path:?}"));
    }
    let mut components = Vec::new();
    for component in path.split('/') {
        match component {
            "" | "." => {}
            ".." => return reject(format!("member path {path:?} leaves the archive")),
            c if c.len() > MAX_COMPONENT || c.contains('\0') => {
                return reject(format!("member path {path:?} has an invalid name"));
            }
            c => components.push(c.to_owned()),
        }
    }
    if components.is_empty() {
        return reject(format!("member path {path:?} is empty"));
    }
    Ok(components)
}

/// A playback format directory name (as `RECORDING_PLAYBACK_FORMATS` allows).
fn is_format_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A recording id: BBB's `<sha1>-<epoch ms>`, or any name of letters,
/// digits, `-`, `_` and `.` that does not start with a dot.
pub(crate) fn is_record_id(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= MAX_COMPONENT
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths() {
        let ok = |p: &str| member_components(p.as_bytes()).unwrap();
        assert_eq!(ok("presentation/r-1/metadata.xml"), ["presentation", "r-1", "metadata.xml"]);
        assert_eq!(ok("./video//r-1/"), ["video", "r-1"]);
        for bad in ["/etc/passwd", "presentation/../../evil", "..", "", "./"] {
            assert!(member_components(bad.as_bytes()).is_err(), "{bad}");
        }
        assert!(member_components(b"presentation/\xff").is_err());
        assert!(member_components(format!("p/{}", "a".repeat(256)).as_bytes()).is_err());
    }

    #[test]
    fn names() {
        assert!(is_format_name("presentation"));
        assert!(is_format_name("bbb_video-2"));
        assert!(!is_format_name("pres.entation"));
        assert!(is_record_id("9a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b-1715261728123"));
        assert!(!is_record_id(".hidden"));
        assert!(!is_record_id("a b"));
    }
}
