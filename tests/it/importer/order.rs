//! Files before the commit: a recording is listed only once its files are
//! in the tree the import decided, and an administrator's publish or
//! unpublish racing the import ends with the files where the database says.

use std::sync::atomic::Ordering;

use scalelite_store::recording_actions::{self, TreeDirs};

use super::outage::{no_extraction_dirs, observed_importer};
use super::*;

/// Every file below `tree`, `<format>/<record_id>/<path>`, hidden working
/// names included.
fn files_in(tree: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(tree, tree, &mut out);
    out.sort();
    out
}

/// `<format>/<record_id>/<path>` of every file of `rec`.
fn archive_files(rec: &RecordingArchive) -> Vec<String> {
    let mut files: Vec<String> = rec.members().into_iter().map(|(path, _)| path).collect();
    files.sort();
    files
}

/// publishRecordings as the API runs it: files first, then the row.
async fn admin_publish(rig: &Rig, record_id: &str, publish: bool) {
    let summary = rig.store.recordings_by_ids(&[record_id.to_owned()], None, false).await.unwrap().remove(0);
    let dirs = TreeDirs::local(rig.dirs.published(), rig.dirs.unpublished());
    recording_actions::set_published(&*rig.store, &dirs, &summary, publish).await.unwrap();
}

#[tokio::test]
async fn a_move_that_fails_lists_nothing_and_the_retry_imports() {
    let rig = Rig::start().await;
    let rec = RecordingArchive::new("blocked", "Blocked").formats(&[Format::Presentation, Format::Video]);
    // A file where the video format's directory must go: the move fails
    // (for root too, which permissions would not stop). The presentation
    // format, first in name order, is moved before.
    std::fs::create_dir_all(rig.dirs.published()).unwrap();
    let obstacle = rig.dirs.published().join("video");
    std::fs::write(&obstacle, "in the way").unwrap();
    rec.drop_into(&rig.dirs.spool());

    let report = rig.importer(&[]).import_pending_once().await.unwrap();
    assert_eq!(report.deferred(), 1, "{report:?}");
    let ArchiveOutcome::Deferred { reason, .. } = &report.outcomes[0] else { unreachable!() };
    assert!(reason.contains(&format!("cannot move video/{}", rec.record_id)), "{reason}");
    assert!(rig.recording(&rec.record_id).await.is_none(), "getRecordings does not list it");
    assert_eq!(rig.count("SELECT count(*) FROM recordings").await, 0);
    assert!(rig.in_spool(&rec.file_name()), "the archive stays in the spool");
    assert!(!rig.dirs.spool().join("failed").exists(), "not the archive's fault");
    assert!(rig.import_log().await.is_empty());

    std::fs::remove_file(&obstacle).unwrap();
    let report = rig.importer(&[]).import_pending_once().await.unwrap();
    assert_eq!(report.imported(), 1, "{report:?}");
    let view = rig.recording(&rec.record_id).await.expect("listed once its files are in place");
    assert!(view.published);
    assert_eq!(view.formats.len(), 2);
    assert_published(&rec, &rig.dirs.published());
    assert_eq!(files_in(&rig.dirs.published()), archive_files(&rec), "no leftover of the first attempt");
    assert!(!rig.in_spool(&rec.file_name()));
    assert_eq!(rig.count("SELECT count(*) FROM recordings").await, 1);
}

#[tokio::test]
async fn a_crash_between_the_move_and_the_commit_is_repaired_by_the_next_import() {
    let rig = Rig::start().await;
    let (importer, seen) = observed_importer(&rig);
    seen.gate_armed.store(true, Ordering::SeqCst);
    let entered = seen.entered.notified();
    let running = Running::start(&importer);
    let rec = RecordingArchive::new("crash", "Crash");
    rec.drop_into(&rig.dirs.spool());
    tokio::time::timeout(Duration::from_secs(20), entered).await.expect("the import reaches its commit");
    // The files are in place, the commit has not run: the process dies.
    assert_published(&rec, &rig.dirs.published());
    running.crash().await;
    assert!(rig.recording(&rec.record_id).await.is_none(), "not listed without its commit");

    let report = rig.importer(&[]).import_pending_once().await.unwrap();
    assert_eq!(report.imported(), 1, "{report:?}");
    assert!(rig.recording(&rec.record_id).await.unwrap().published);
    assert_eq!(rig.count("SELECT count(*) FROM recordings").await, 1);
    assert_eq!(files_in(&rig.dirs.published()), archive_files(&rec));
    assert!(files_in(&rig.dirs.unpublished()).is_empty());
    assert!(no_extraction_dirs(&rig));
    assert!(!rig.in_spool(&rec.file_name()));
}

/// Imports `rec` (published), then re-imports revision 1 of it with the
/// import held at the preview gate (`preview_gate`) or at the commit while
/// `during` runs; returns the re-imported archive and how many commits the
/// re-import took.
async fn reimport_racing<F, Fut>(
    rig: &Rig,
    rec: &RecordingArchive,
    preview_gate: bool,
    during: F,
) -> (RecordingArchive, usize)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    rec.drop_into(&rig.dirs.spool());
    assert_eq!(rig.importer(&[]).import_pending_once().await.unwrap().imported(), 1);
    let (importer, seen) = observed_importer(rig);
    let gate = if preview_gate { &seen.preview_gate_armed } else { &seen.gate_armed };
    gate.store(true, Ordering::SeqCst);
    let entered = seen.entered.notified();
    let running = Running::start(&importer);
    let second = rec.clone().revision(1);
    second.drop_into(&rig.dirs.spool());
    tokio::time::timeout(Duration::from_secs(20), entered).await.expect("the import reaches the gate");
    during().await;
    seen.release.notify_one();
    eventually_with(Duration::from_secs(20), "the re-import completes", || async {
        !rig.in_spool(&second.file_name()) && no_extraction_dirs(rig)
    })
    .await;
    running.stop().await;
    (second, seen.attempts.load(Ordering::SeqCst))
}

/// The end state of a race: unpublished, the second revision's files in
/// the unpublish tree and nothing in the publish tree.
async fn assert_unpublished_with(rig: &Rig, second: &RecordingArchive) {
    assert!(!rig.recording(&second.record_id).await.unwrap().published);
    assert_published(second, &rig.dirs.unpublished());
    assert_eq!(files_in(&rig.dirs.unpublished()), archive_files(second));
    assert!(files_in(&rig.dirs.published()).is_empty(), "{:?}", files_in(&rig.dirs.published()));
    assert_eq!(rig.count("SELECT count(*) FROM recordings").await, 1);
}

#[tokio::test]
async fn an_unpublish_between_the_preview_and_the_move_moves_the_new_files_after_the_commit() {
    let rig = Rig::start().await;
    let rec = RecordingArchive::new("race-early", "Race early");
    let record_id = rec.record_id.clone();
    // The preview said published; the administrator moves the old files
    // to the unpublish tree before the new ones are moved to the publish
    // tree; the commit keeps the unpublish.
    let (second, commits) = reimport_racing(&rig, &rec, true, || admin_publish(&rig, &record_id, false)).await;
    assert_unpublished_with(&rig, &second).await;
    assert_eq!(commits, 1);
}

#[tokio::test]
async fn an_unpublish_between_the_move_and_the_commit_keeps_the_moved_files() {
    let rig = Rig::start().await;
    let rec = RecordingArchive::new("race-late", "Race late");
    let record_id = rec.record_id.clone();
    // The new files are in the publish tree; the administrator moves them
    // to the unpublish tree.
    let (second, commits) = reimport_racing(&rig, &rec, false, || admin_publish(&rig, &record_id, false)).await;
    assert_unpublished_with(&rig, &second).await;
    assert_eq!(commits, 1);
}

#[tokio::test]
async fn an_unpublish_that_keeps_an_older_copy_is_repaired_by_another_import() {
    let rig = Rig::start().await;
    let rec = RecordingArchive::new("race-stale", "Race stale");
    let record_id = rec.record_id.clone();
    let unpublished = rig.dirs.unpublished();
    // A stale copy in the unpublish tree: the administrator's unpublish
    // keeps it and removes the new files from the publish tree.
    let (second, commits) = reimport_racing(&rig, &rec, false, || async {
        rec.write_published_tree(&unpublished);
        admin_publish(&rig, &record_id, false).await;
    })
    .await;
    assert_unpublished_with(&rig, &second).await;
    assert_eq!(commits, 2, "the archive was imported again");
}
