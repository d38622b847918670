//! The recording trees: `<root>/<format>/<record_id>` directories in
//! `RECORDING_PUBLISH_DIR` and `RECORDING_UNPUBLISH_DIR`, changed so that a
//! crash at any point leaves either the old or the new directory in place.
//! The importer, the recordings API and `scalelite-admin` all move files
//! through this module.
//!
//! For each format placed by [`publish_format`], with `T` the tree the recording belongs in (publish or
//! unpublish) and `O` the other one (steps 1–3 are [`place_format`], step 4
//! [`remove_other`]; the importer runs them apart, with the database commit
//! in between):
//!
//! 1. `<work>/…/<format>/<id>` is renamed to `T/<format>/.<id>.incoming-<r>`;
//!    when the work and publish directories are on different file systems
//!    (`EXDEV`, e.g. NFS), it is copied there instead and flushed.
//! 2. An existing `T/<format>/<id>` is renamed aside to `.<id>.old-<r>`.
//! 3. The incoming directory is renamed to `T/<format>/<id>` and the parent
//!    directory flushed; then the aside copy is deleted.
//! 4. A copy in `O/<format>/<id>` is renamed to `.<id>.removing-<r>` and
//!    deleted.
//!
//! [`recover`] runs before the first import: it deletes `.incoming-` and
//! `.removing-` leftovers, and puts an `.old-` directory back when the crash
//! came between steps 2 and 3 (no `<id>` next to it), else deletes it.
//! Every one of these steps happens before the archive leaves the spool, so
//! the next import of the same archive completes whatever a crash
//! interrupted.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

const INCOMING: &str = ".incoming-";
const OLD: &str = ".old-";
const REMOVING: &str = ".removing-";

/// Flushes a directory's entries (after renames or creations in it).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Whether `name` can be a single path component (no separators, not `.`
/// or `..`, not empty): record ids and format names come from archives and
/// the database and are joined onto directory paths.
pub fn is_component(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

fn unsafe_path(format: &str, record_id: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("unsafe recording path {format:?}/{record_id:?}"))
}

/// Where a recording's formats go.
#[derive(Clone, Copy, Debug)]
pub struct Trees<'a> {
    /// `RECORDING_PUBLISH_DIR`.
    pub publish: &'a Path,
    /// `RECORDING_UNPUBLISH_DIR`.
    pub unpublish: &'a Path,
}

impl<'a> Trees<'a> {
    fn split(self, published: bool) -> (&'a Path, &'a Path) {
        if published { (self.publish, self.unpublish) } else { (self.unpublish, self.publish) }
    }
}

/// A random suffix for hidden working names.
fn suffix() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Moves `source` (an extracted `<format>/<record_id>` directory, or the
/// copy in the other tree) into its tree, replacing what was there, and
/// removes the copy in the other tree. Returns whether the copy fallback
/// was used.
pub fn publish_format(
    source: &Path,
    format: &str,
    record_id: &str,
    trees: Trees<'_>,
    published: bool,
) -> io::Result<bool> {
    let copied = place_format(source, format, record_id, trees, published)?;
    remove_other(trees, format, record_id, published)?;
    Ok(copied)
}

/// Steps 1–3 of [`publish_format`]: moves `source` into the publish tree
/// (`published`) or the unpublish tree, replacing what was there, and
/// leaves a copy in the other tree alone (see [`remove_other`]). Returns
/// whether the copy fallback was used.
pub fn place_format(
    source: &Path,
    format: &str,
    record_id: &str,
    trees: Trees<'_>,
    published: bool,
) -> io::Result<bool> {
    if !is_component(format) || !is_component(record_id) {
        return Err(unsafe_path(format, record_id));
    }
    let (target, _) = trees.split(published);
    let format_dir = target.join(format);
    fs::create_dir_all(&format_dir)?;
    let destination = format_dir.join(record_id);
    let incoming = format_dir.join(format!(".{record_id}{INCOMING}{}", suffix()));

    let copied = match fs::rename(source, &incoming) {
        Ok(()) => false,
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            if let Err(e) = copy_tree(source, &incoming) {
                let _ = fs::remove_dir_all(&incoming);
                return Err(e);
            }
            true
        }
        Err(e) => return Err(e),
    };
    let aside = format_dir.join(format!(".{record_id}{OLD}{}", suffix()));
    let replaced = match fs::rename(&destination, &aside) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => {
            let _ = fs::remove_dir_all(&incoming);
            return Err(e);
        }
    };
    if let Err(e) = fs::rename(&incoming, &destination) {
        if replaced {
            let _ = fs::rename(&aside, &destination);
        }
        let _ = fs::remove_dir_all(&incoming);
        return Err(e);
    }
    sync_dir(&format_dir)?;
    if replaced {
        remove_tree(&aside);
    }
    Ok(copied)
}

/// Step 4 of [`publish_format`]: removes a copy of the format in the tree
/// other than the one `published` selects, if there is one.
pub fn remove_other(trees: Trees<'_>, format: &str, record_id: &str, published: bool) -> io::Result<()> {
    if !is_component(format) || !is_component(record_id) {
        return Err(unsafe_path(format, record_id));
    }
    let (_, other) = trees.split(published);
    remove_format(other, format, record_id)
}

/// Removes `<tree>/<format>/<record_id>` if present: renamed aside first,
/// so readers never see a half-deleted directory.
fn remove_format(tree: &Path, format: &str, record_id: &str) -> io::Result<()> {
    let stale = tree.join(format).join(record_id);
    if fs::symlink_metadata(&stale).is_ok() {
        let removing = tree.join(format).join(format!(".{record_id}{REMOVING}{}", suffix()));
        fs::rename(&stale, &removing)?;
        sync_dir(&tree.join(format))?;
        remove_tree(&removing);
    }
    Ok(())
}

/// Moves one format of a recording into the publish tree (`publish`) or
/// the unpublish tree, as Scalelite's publishRecordings and
/// `recordings:update`: nothing to do when it is only in the target, an
/// error when it is in neither, the source copy removed when it is in both.
pub fn move_format(trees: Trees<'_>, format: &str, record_id: &str, publish: bool) -> io::Result<()> {
    if !is_component(format) || !is_component(record_id) {
        return Err(unsafe_path(format, record_id));
    }
    let (target, source_tree) = trees.split(publish);
    let source = source_tree.join(format).join(record_id);
    let in_source = fs::symlink_metadata(&source).is_ok();
    let in_target = target.join(format).join(record_id).try_exists()?;
    match (in_source, in_target) {
        (false, true) => Ok(()),
        (false, false) => {
            Err(io::Error::new(io::ErrorKind::NotFound, format!("recording {record_id} has no {format} files")))
        }
        (true, true) => remove_format(source_tree, format, record_id),
        (true, false) => publish_format(&source, format, record_id, trees, publish).map(|_| ()),
    }
}

/// Removes `<root>/*/<record_id>` in both trees (deleteRecordings).
pub fn delete_recording(trees: Trees<'_>, record_id: &str) -> io::Result<()> {
    if !is_component(record_id) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("unsafe record id {record_id:?}")));
    }
    for root in [trees.publish, trees.unpublish] {
        let entries = match fs::read_dir(root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let Some(format) = entry.file_name().to_str().map(str::to_owned) else { continue };
            remove_format(root, &format, record_id)?;
        }
    }
    Ok(())
}

/// The bytes of regular files under `<root>/*/<record_id>` in both trees
/// (what [`delete_recording`] removes). Symbolic links are not followed;
/// what cannot be read counts as nothing.
pub fn recording_size(trees: Trees<'_>, record_id: &str) -> u64 {
    if !is_component(record_id) {
        return 0;
    }
    let mut total = 0;
    for root in [trees.publish, trees.unpublish] {
        let Ok(formats) = fs::read_dir(root) else { continue };
        for format in formats.flatten() {
            if format.file_type().is_ok_and(|t| t.is_dir()) {
                total += tree_size(&format.path().join(record_id));
            }
        }
    }
    total
}

fn tree_size(path: &Path) -> u64 {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            fs::read_dir(path).map(|entries| entries.flatten().map(|e| tree_size(&e.path())).sum()).unwrap_or(0)
        }
        Ok(m) if m.is_file() => m.len(),
        _ => 0,
    }
}

/// Deletes a directory tree, logging (not failing) when that is impossible:
/// the new state is already in place.
fn remove_tree(path: &Path) {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        warn!(path = %path.display(), error = %e, "cannot remove an old recording directory");
    }
}

/// Copies a tree of directories and regular files (what extraction
/// creates), flushing every file and directory.
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            fs::copy(entry.path(), &target)?;
            let file = fs::File::options().write(true).open(&target)?;
            if let Ok(modified) = entry.metadata().and_then(|m| m.modified()) {
                let _ = file.set_modified(modified);
            }
            file.sync_all()?;
        } else {
            return Err(io::Error::other(format!("unexpected file type at {}", entry.path().display())));
        }
    }
    sync_dir(to)
}

/// What [`recover`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovered {
    /// Directories put back after a crash between rename-aside and swap.
    pub restored: Vec<PathBuf>,
    /// Leftovers deleted.
    pub removed: Vec<PathBuf>,
}

/// Repairs what an interrupted [`publish_format`] left in both trees.
pub fn recover(trees: Trees<'_>) -> io::Result<Recovered> {
    let mut done = Recovered::default();
    for tree in [trees.publish, trees.unpublish] {
        let formats = match fs::read_dir(tree) {
            Ok(formats) => formats,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for format in formats {
            let format = format?;
            if !format.file_type()?.is_dir() {
                continue;
            }
            recover_format_dir(&format.path(), &mut done)?;
        }
    }
    for path in &done.restored {
        info!(path = %path.display(), "restored a recording directory after an interrupted import");
    }
    for path in &done.removed {
        info!(path = %path.display(), "removed a leftover of an interrupted import");
    }
    Ok(done)
}

fn recover_format_dir(dir: &Path, done: &mut Recovered) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix('.') else { continue };
        let path = entry.path();
        if let Some((record_id, _)) = rest.rsplit_once(OLD) {
            let original = dir.join(record_id);
            if fs::symlink_metadata(&original).is_err() {
                fs::rename(&path, &original)?;
                done.restored.push(original);
                continue;
            }
        } else if !rest.contains(INCOMING) && !rest.contains(REMOVING) {
            continue;
        }
        remove_tree(&path);
        done.removed.push(path);
    }
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            for entry in fs::read_dir(dir).unwrap() {
                let entry = entry.unwrap();
                let path = entry.path();
                if entry.file_type().unwrap().is_dir() {
                    walk(root, &path, out);
                } else {
                    let content = fs::read_to_string(&path).unwrap();
                    out.push(format!("{}={content}", path.strip_prefix(root).unwrap().display()));
                }
            }
        }
        walk(root, root, &mut out);
        out.sort();
        out
    }

    fn source(root: &Path, content: &str) -> PathBuf {
        let dir = root.join("work/x/presentation/r-1");
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("metadata.xml"), content).unwrap();
        fs::write(dir.join("sub/slide.svg"), content).unwrap();
        dir
    }

    #[test]
    fn replaces_and_moves_between_trees() {
        let root = tempfile::tempdir().unwrap();
        let (publish, unpublish) = (root.path().join("published"), root.path().join("unpublished"));
        let trees = Trees { publish: &publish, unpublish: &unpublish };

        let copied = publish_format(&source(root.path(), "v1"), "presentation", "r-1", trees, true).unwrap();
        assert!(!copied);
        assert_eq!(tree(&publish), ["presentation/r-1/metadata.xml=v1", "presentation/r-1/sub/slide.svg=v1"]);

        publish_format(&source(root.path(), "v2"), "presentation", "r-1", trees, true).unwrap();
        assert_eq!(tree(&publish), ["presentation/r-1/metadata.xml=v2", "presentation/r-1/sub/slide.svg=v2"]);

        publish_format(&source(root.path(), "v3"), "presentation", "r-1", trees, false).unwrap();
        assert_eq!(tree(&publish), Vec::<String>::new());
        assert_eq!(tree(&unpublish), ["presentation/r-1/metadata.xml=v3", "presentation/r-1/sub/slide.svg=v3"]);
        assert_eq!(fs::read_dir(publish.join("presentation")).unwrap().count(), 0, "no hidden leftovers");
    }

    #[test]
    fn moves_between_trees_like_publish_recordings() {
        let root = tempfile::tempdir().unwrap();
        let (publish, unpublish) = (root.path().join("published"), root.path().join("unpublished"));
        let trees = Trees { publish: &publish, unpublish: &unpublish };
        fs::create_dir_all(unpublish.join("presentation/r1")).unwrap();
        fs::write(unpublish.join("presentation/r1/index.html"), "x").unwrap();
        move_format(trees, "presentation", "r1", true).unwrap();
        assert_eq!(tree(&publish), ["presentation/r1/index.html=x"]);
        assert_eq!(tree(&unpublish), Vec::<String>::new());
        // Already in place: nothing to do; in neither: an error.
        move_format(trees, "presentation", "r1", true).unwrap();
        assert_eq!(move_format(trees, "video", "r1", true).unwrap_err().kind(), io::ErrorKind::NotFound);
        // In both: the source copy goes, the target stays.
        fs::create_dir_all(unpublish.join("presentation/r1")).unwrap();
        fs::write(unpublish.join("presentation/r1/index.html"), "stale").unwrap();
        move_format(trees, "presentation", "r1", true).unwrap();
        assert_eq!(tree(&publish), ["presentation/r1/index.html=x"]);
        assert_eq!(fs::read_dir(unpublish.join("presentation")).unwrap().count(), 0, "no hidden leftovers");
        for bad in ["", ".", "..", "a/b", "..\\x", "a\0"] {
            assert!(move_format(trees, "presentation", bad, true).is_err(), "{bad:?}");
            assert!(delete_recording(trees, bad).is_err(), "{bad:?}");
        }
        fs::create_dir_all(unpublish.join("video/r1")).unwrap();
        fs::write(unpublish.join("video/r1/v.webm"), "12345").unwrap();
        assert_eq!(recording_size(trees, "r1"), 6, "both trees counted");
        assert_eq!(recording_size(trees, ".."), 0);
        delete_recording(trees, "r1").unwrap();
        assert_eq!(recording_size(trees, "r1"), 0);
        assert_eq!(tree(&publish), Vec::<String>::new());
        assert_eq!(fs::read_dir(unpublish.join("video")).unwrap().count(), 0);
    }

    #[test]
    fn recovery_restores_or_removes_leftovers() {
        let root = tempfile::tempdir().unwrap();
        let (publish, unpublish) = (root.path().join("published"), root.path().join("unpublished"));
        let dir = publish.join("video");
        // Crash between rename-aside and swap: only the aside copy exists.
        fs::create_dir_all(dir.join(".r-1.old-1")).unwrap();
        fs::write(dir.join(".r-1.old-1/v"), "old").unwrap();
        // Crash during deletion of the aside copy: both exist.
        fs::create_dir_all(dir.join("r-2")).unwrap();
        fs::write(dir.join("r-2/v"), "new").unwrap();
        fs::create_dir_all(dir.join(".r-2.old-1")).unwrap();
        // Half-copied incoming, half-removed stale copy.
        fs::create_dir_all(dir.join(".r-3.incoming-1")).unwrap();
        fs::create_dir_all(unpublish.join("video/.r-2.removing-9")).unwrap();
        // Not ours: left alone.
        fs::create_dir_all(dir.join(".well-known")).unwrap();

        let done = recover(Trees { publish: &publish, unpublish: &unpublish }).unwrap();
        assert_eq!(done.restored, [dir.join("r-1")]);
        assert_eq!(done.removed.len(), 3);
        assert_eq!(tree(&publish), ["video/r-1/v=old", "video/r-2/v=new"]);
        let mut names: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, [".well-known", "r-1", "r-2"]);
        assert_eq!(fs::read_dir(unpublish.join("video")).unwrap().count(), 0);
    }

    #[test]
    fn copies_across_file_systems() {
        let shm = Path::new("/dev/shm");
        let Ok(other_fs) = tempfile::tempdir_in(shm) else { return };
        let root = tempfile::tempdir().unwrap();
        use std::os::unix::fs::MetadataExt;
        if fs::metadata(other_fs.path()).unwrap().dev() == fs::metadata(root.path()).unwrap().dev() {
            return;
        }
        let src = source(other_fs.path(), "x");
        let (publish, unpublish) = (root.path().join("published"), root.path().join("unpublished"));
        let copied =
            publish_format(&src, "presentation", "r-1", Trees { publish: &publish, unpublish: &unpublish }, true)
                .unwrap();
        assert!(copied);
        assert_eq!(tree(&publish), ["presentation/r-1/metadata.xml=x", "presentation/r-1/sub/slide.svg=x"]);
    }
}
