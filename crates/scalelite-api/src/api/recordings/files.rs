//! Recording directories: `<root>/<format>/<record_id>` in the publish and
//! unpublish trees.

use std::io;
use std::path::{Path, PathBuf};

/// Whether `name` can be a single path component (no separators, not `.`
/// or `..`, not empty): record ids and format names come from the database
/// and are joined onto directory paths.
pub(crate) fn is_component(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

fn checked(root: &Path, format: &str, record_id: &str) -> io::Result<PathBuf> {
    if is_component(format) && is_component(record_id) {
        Ok(root.join(format).join(record_id))
    } else {
        Err(io::Error::new(io::ErrorKind::InvalidInput, format!("unsafe recording path {format:?}/{record_id:?}")))
    }
}

/// Moves one format of a recording from the `from` tree to the `to` tree,
/// as Scalelite's publishRecordings: nothing to do when it is only in the
/// target, an error when it is in neither, the source removed when it is in
/// both.
pub(crate) fn move_format(from: &Path, to: &Path, format: &str, record_id: &str) -> io::Result<()> {
    let source = checked(from, format, record_id)?;
    let target = checked(to, format, record_id)?;
    let in_source = source.try_exists()?;
    let in_target = target.try_exists()?;
    match (in_source, in_target) {
        (false, true) => Ok(()),
        (false, false) => {
            Err(io::Error::new(io::ErrorKind::NotFound, format!("recording {record_id} has no {format} files")))
        }
        (true, true) => std::fs::remove_dir_all(&source),
        (true, false) => {
            std::fs::create_dir_all(to.join(format))?;
            move_dir(&source, &target)
        }
    }
}

/// Renames `source` to `target`; across file systems (`EXDEV`, e.g. an NFS
/// publish dir) copies into a temporary sibling of `target`, renames that
/// into place and then removes `source`, so `target` appears complete or
/// not at all.
fn move_dir(source: &Path, target: &Path) -> io::Result<()> {
    match std::fs::rename(source, target) {
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("recording");
            let temp = target.with_file_name(format!(".{name}.moving"));
            if temp.try_exists()? {
                std::fs::remove_dir_all(&temp)?;
            }
            copy_tree(source, &temp)?;
            std::fs::rename(&temp, target)?;
            std::fs::remove_dir_all(source)
        }
        other => other,
    }
}

fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::create_dir(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}

/// Removes `<root>/*/<record_id>` in every root (deleteRecordings).
pub(crate) fn delete_recording(roots: &[&Path], record_id: &str) -> io::Result<()> {
    if !is_component(record_id) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("unsafe record id {record_id:?}")));
    }
    for root in roots {
        let entries = match std::fs::read_dir(root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            if !entry.file_type()?.is_dir() {
                continue;
            }
            let dir = entry.path().join(record_id);
            if dir.symlink_metadata().is_ok() {
                std::fs::remove_dir_all(&dir)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components() {
        assert!(is_component("a1b2c3-1700000000000"));
        assert!(is_component("presentation"));
        for bad in ["", ".", "..", "a/b", "..\\x", "a\0"] {
            assert!(!is_component(bad), "{bad:?}");
        }
    }

    #[test]
    fn moves_between_trees() {
        let root = tempfile::tempdir().unwrap();
        let (published, unpublished) = (root.path().join("published"), root.path().join("unpublished"));
        std::fs::create_dir_all(unpublished.join("presentation/r1")).unwrap();
        std::fs::write(unpublished.join("presentation/r1/index.html"), "x").unwrap();
        move_format(&unpublished, &published, "presentation", "r1").unwrap();
        assert!(published.join("presentation/r1/index.html").is_file());
        assert!(!unpublished.join("presentation/r1").exists());
        // Already in place: nothing to do; in neither: an error.
        move_format(&unpublished, &published, "presentation", "r1").unwrap();
        assert!(move_format(&unpublished, &published, "video", "r1").is_err());
        // In both: the source copy goes.
        std::fs::create_dir_all(unpublished.join("presentation/r1")).unwrap();
        move_format(&unpublished, &published, "presentation", "r1").unwrap();
        assert!(!unpublished.join("presentation/r1").exists());
        assert!(move_format(&unpublished, &published, "presentation", "..").is_err());
        delete_recording(&[&published, &unpublished], "r1").unwrap();
        assert!(!published.join("presentation/r1").exists());
    }
}
