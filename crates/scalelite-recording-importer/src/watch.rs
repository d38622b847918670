//! File-system events on the spool (inotify on Linux), to start an import
//! as soon as an archive arrives. Events are only a hint: the importer also
//! scans every `RECORDING_IMPORT_POLL_INTERVAL`, because NFS and other
//! network file systems do not deliver events for files written by other
//! hosts.

use std::path::Path;
use std::sync::Arc;

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{Event, RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::Notify;
use tracing::debug;

/// Watches the spool while alive.
#[derive(Debug)]
pub(crate) struct SpoolWatcher {
    _watcher: RecommendedWatcher,
}

/// Starts watching `spool` (not its sub-directories); `wake` is notified
/// when a `*.tar` file appears, is renamed into place, or is closed after
/// writing. Writes in progress are not reported: the settle time decides
/// when a growing file is ready.
pub(crate) fn watch(spool: &Path, wake: Arc<Notify>) -> notify::Result<SpoolWatcher> {
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| match event {
        Ok(event) if is_relevant(&event) => wake.notify_one(),
        Ok(_) => {}
        Err(e) => debug!(error = %e, "spool watcher error"),
    })?;
    watcher.watch(spool, RecursiveMode::NonRecursive)?;
    Ok(SpoolWatcher { _watcher: watcher })
}

fn is_relevant(event: &Event) -> bool {
    let interesting = match event.kind {
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Any | EventKind::Other => true,
        EventKind::Modify(ModifyKind::Name(_) | ModifyKind::Metadata(_) | ModifyKind::Any) => true,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Modify(_) | EventKind::Access(_) => false,
    };
    interesting && (event.paths.is_empty() || event.paths.iter().any(|p| p.extension().is_some_and(|e| e == "tar")))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use notify::event::{CreateKind, DataChange};

    use super::*;

    #[test]
    fn only_arrivals_of_archives_wake_the_importer() {
        let event = |kind, path: &str| Event::new(kind).add_path(path.into());
        assert!(is_relevant(&event(EventKind::Create(CreateKind::File), "/s/r.tar")));
        assert!(is_relevant(&event(EventKind::Modify(ModifyKind::Name(notify::event::RenameMode::To)), "/s/r.tar")));
        assert!(is_relevant(&event(EventKind::Access(AccessKind::Close(AccessMode::Write)), "/s/r.tar")));
        assert!(!is_relevant(&event(EventKind::Modify(ModifyKind::Data(DataChange::Any)), "/s/r.tar")));
        assert!(!is_relevant(&event(EventKind::Create(CreateKind::File), "/s/.r.tar.x1y2")));
    }

    #[tokio::test]
    async fn a_new_archive_wakes_the_importer() {
        let dir = tempfile::tempdir().unwrap();
        let wake = Arc::new(Notify::new());
        let _watcher = watch(dir.path(), Arc::clone(&wake)).unwrap();
        std::fs::write(dir.path().join("r.tar"), "x").unwrap();
        tokio::time::timeout(Duration::from_secs(10), wake.notified()).await.expect("an event");
    }
}
