//! `recordings`: Scalelite's recording rake tasks (`recordings:update`,
//! `recordings:addToTenant`, and `recordings:watch` run once as `import`)
//! and `import-status`, the view of the spool an operator needs when
//! recordings do not show up.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};
use futures::StreamExt as _;
use scalelite_recording_importer::{ArchiveOutcome, Importer, ImporterError, Settings};
use scalelite_store::recording_actions::{BucketRepair, settle_in_bucket};
use scalelite_store::recordings::{RecordingStore, RecordingSummary};
use scalelite_store::s3::S3Storage;
use scalelite_store::trees::{Trees, move_format};
use serde_json::{Value, json};

use crate::Ctx;
use crate::output::{Align, Outcome, Ui, size, table, timestamp};

/// `recordings` subcommands.
#[derive(Debug, Args)]
pub struct Opts {
    /// What to do.
    #[command(subcommand)]
    pub command: RecordingsCommand,
}

/// What `recordings` does.
#[derive(Debug, Subcommand)]
pub enum RecordingsCommand {
    /// Add `tenant-id` metadata to every recording that has none
    /// (`recordings:addToTenant`).
    AddToTenant {
        /// The tenant id.
        tenant_id: Option<String>,
    },
    /// Move the files of unpublished recordings that are still in the
    /// publish tree into the unpublish tree (`recordings:update`). With
    /// `S3_RECORDING`, repair the bucket: formats of unpublished recordings
    /// under `published/` and of published ones under `unpublished/` go
    /// under the prefix their state selects.
    Update,
    /// Import the archives in the spool now and deliver due recording-ready
    /// callbacks, then exit (what `scalelite-recording-importer --once`
    /// does).
    Import,
    /// Archives waiting in the spool, quarantined ones with their reasons,
    /// and the latest imports.
    ImportStatus {
        /// How many recent imports to show.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Move a quarantined archive (`import-status` lists them) from the
    /// spool's `failed/` directory back into the spool, so the importer
    /// takes it again (what the console's Retry does).
    RetryImport {
        /// The archive's file name in `failed/` (`<record id>.tar`).
        name: String,
    },
    /// Delete or unpublish recordings that started more than a number of
    /// days ago. Without --yes nothing changes: the recordings are listed
    /// with what would happen to them (a dry run).
    Prune(crate::prune::PruneOpts),
}

/// Runs a `recordings` command.
pub(crate) async fn run(opts: Opts, ctx: &Ctx, ui: &mut Ui<'_, '_>) -> Outcome {
    match opts.command {
        RecordingsCommand::AddToTenant { tenant_id } => {
            let Some(tenant_id) = tenant_id.filter(|t| !t.trim().is_empty()) else {
                return Err(ui.fail("No tenant ID was provided"));
            };
            let db = ctx.recordings(ui)?;
            let changed = db.add_to_tenant(&tenant_id).await.map_err(|e| ui.fail(format!("ERROR: {e}")))?;
            ui.text(format!("All existing recordings have been successfully linked to tenant {tenant_id}"));
            ui.json(&json!({ "tenant_id": tenant_id, "recordings_linked": changed }));
            Ok(())
        }
        RecordingsCommand::Update => update(ctx, ui).await,
        RecordingsCommand::Import => import(ctx, ui).await,
        RecordingsCommand::ImportStatus { limit } => import_status(ctx, ui, limit).await,
        RecordingsCommand::RetryImport { name } => retry_import(ctx, ui, name).await,
        RecordingsCommand::Prune(opts) => crate::prune::run(opts, ctx, ui).await,
    }
}

/// Moves a quarantined archive back into the spool.
async fn retry_import(ctx: &Ctx, ui: &mut Ui<'_, '_>, name: String) -> Outcome {
    let spool = ctx.config.recordings.spool_dir.clone();
    let archive = name.clone();
    let moved =
        tokio::task::spawn_blocking(move || scalelite_recording_importer::spool::retry_failed(&spool, &archive))
            .await
            .map_err(|e| ui.fail(format!("ERROR: {e}")))?;
    match moved {
        Ok(()) => {
            ui.text(format!("{name} is back in the spool; the importer takes it on its next round"));
            ui.json(&json!({ "archive": name, "retried": true }));
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(ui.fail(format!("ERROR: no quarantined archive {name} (see recordings import-status)")))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Err(ui.fail(format!("ERROR: an archive named {name} is already waiting in the spool")))
        }
        Err(e) => Err(ui.fail(format!("ERROR: cannot move {name} back: {e}"))),
    }
}

/// `recordings:update`: every format of an unpublished recording found in
/// the publish tree and not in the unpublish tree is moved there. A format
/// already in the unpublish tree is left as it is (as Scalelite skips such
/// recordings), so nothing is overwritten.
async fn update(ctx: &Ctx, ui: &mut Ui<'_, '_>) -> Outcome {
    let db = ctx.recordings(ui)?;
    if let Some(config) = &ctx.config.recordings.s3 {
        let s3 = S3Storage::new(config).map_err(|e| ui.fail(format!("ERROR: S3_RECORDING: {e}")))?;
        return update_bucket(db.as_ref(), &s3, ui).await;
    }
    let recordings = db.unpublished().await.map_err(|e| ui.fail(format!("ERROR: {e}")))?;
    let config = &ctx.config.recordings;
    let (publish, unpublish) = (config.publish_dir.clone(), config.unpublish_dir.clone());
    let checked = recordings.len();
    let results = tokio::task::spawn_blocking(move || {
        let trees = Trees { publish: &publish, unpublish: &unpublish };
        let mut results = Vec::new();
        for recording in &recordings {
            for format in &recording.formats {
                let in_publish = publish.join(format).join(&recording.record_id);
                let in_unpublish = unpublish.join(format).join(&recording.record_id);
                if !in_publish.exists() || in_unpublish.exists() {
                    continue;
                }
                let moved = move_format(trees, format, &recording.record_id, false).map_err(|e| e.to_string());
                results.push((recording.record_id.clone(), format.clone(), moved));
            }
        }
        results
    })
    .await
    .map_err(|e| ui.fail(format!("ERROR: {e}")))?;
    let failed: Vec<_> = results.iter().filter(|(_, _, r)| r.is_err()).collect();
    for (record_id, format, result) in &results {
        match result {
            Ok(()) => ui.text(format!("Moved {format} of recording {record_id} to the unpublished directory")),
            Err(e) => ui.notice(format!("ERROR: Failed to move recording {record_id} ({format}): {e}")),
        }
    }
    let moved = results.len() - failed.len();
    ui.text(format!("{checked} unpublished recordings checked, {moved} formats moved, {} failed", failed.len()));
    ui.json(&json!({
        "checked": checked,
        "moved": results.iter().filter(|(_, _, r)| r.is_ok())
            .map(|(id, format, _)| json!({ "record_id": id, "format": format })).collect::<Vec<_>>(),
        "failed": failed.iter()
            .map(|(id, format, r)| json!({ "record_id": id, "format": format, "error": r.as_ref().err() }))
            .collect::<Vec<_>>(),
    }));
    if failed.is_empty() { Ok(()) } else { Err(ui.fail("ERROR: some recordings could not be moved")) }
}

/// Formats repaired at once in the bucket.
const BUCKET_REPAIRS_AT_ONCE: usize = 4;

/// `recordings update` with `S3_RECORDING`: every format of an unpublished
/// recording found under the `published/` prefix, and of a published one
/// found under `unpublished/`, is put under the prefix its state selects
/// ([`settle_in_bucket`]: moved, or the stray copy deleted when the kept
/// one is complete; copies that differ are left alone and reported).
async fn update_bucket(db: &dyn RecordingStore, s3: &S3Storage, ui: &mut Ui<'_, '_>) -> Outcome {
    let unpublished = db.unpublished().await.map_err(|e| ui.fail(format!("ERROR: {e}")))?;
    let published = db.published().await.map_err(|e| ui.fail(format!("ERROR: {e}")))?;
    let checked = (unpublished.len(), published.len());
    let jobs: Vec<(&RecordingSummary, &String, bool)> = unpublished
        .iter()
        .map(|r| (r, false))
        .chain(published.iter().map(|r| (r, true)))
        .flat_map(|(r, state)| r.formats.iter().map(move |format| (r, format, state)))
        .collect();
    let results: Vec<_> = futures::stream::iter(jobs)
        .map(|(recording, format, published)| async move {
            let tenant = recording.tenant_id.as_deref();
            let result = settle_in_bucket(s3, tenant, &recording.record_id, format, published).await;
            (recording.record_id.as_str(), format.as_str(), published, result)
        })
        .buffered(BUCKET_REPAIRS_AT_ONCE)
        .collect()
        .await;
    let prefix = |published: bool| if published { "published" } else { "unpublished" };
    let (mut moved, mut removed, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for (record_id, format, published, result) in results {
        let (right, wrong) = (prefix(published), prefix(!published));
        match result {
            Ok(BucketRepair::Moved(objects)) => {
                ui.text(format!("Moved {format} of recording {record_id} to the {right} prefix ({objects} objects)"));
                moved.push(json!({ "record_id": record_id, "format": format, "to": right, "objects": objects }));
            }
            Ok(BucketRepair::RemovedCopy(objects)) => {
                ui.text(format!(
                    "Removed the {wrong} copy of {format} of recording {record_id} \
                     ({objects} objects; the {right} copy is complete)"
                ));
                removed.push(json!({ "record_id": record_id, "format": format, "from": wrong, "objects": objects }));
            }
            Ok(BucketRepair::Differs { missing }) => {
                let error = format!(
                    "objects are under both prefixes and the {right} copy lacks {wrong}'s {}; left alone",
                    missing.join(", ")
                );
                ui.notice(format!("ERROR: Failed to move recording {record_id} ({format}): {error}"));
                failed.push(json!({ "record_id": record_id, "format": format, "error": error }));
            }
            Ok(_) => {}
            Err(e) => {
                ui.notice(format!("ERROR: Failed to move recording {record_id} ({format}): {e}"));
                failed.push(json!({ "record_id": record_id, "format": format, "error": e.to_string() }));
            }
        }
    }
    ui.text(format!(
        "{} unpublished and {} published recordings checked, {} formats moved, {} duplicate copies removed, {} failed",
        checked.0,
        checked.1,
        moved.len(),
        removed.len(),
        failed.len()
    ));
    ui.json(&json!({
        "checked": checked.0 + checked.1,
        "checked_unpublished": checked.0,
        "checked_published": checked.1,
        "bucket": s3.bucket(),
        "moved": moved,
        "removed": removed,
        "failed": failed,
    }));
    if failed.is_empty() { Ok(()) } else { Err(ui.fail("ERROR: some recordings could not be moved")) }
}

/// Imports the spool once with the importer library.
async fn import(ctx: &Ctx, ui: &mut Ui<'_, '_>) -> Outcome {
    let db = Arc::clone(ctx.recordings(ui)?);
    let importer = Importer::new(Settings::from_config(&ctx.config), db, Some(Arc::clone(&ctx.store)));
    let report = match importer.import_pending_once().await {
        Ok(report) => report,
        Err(ImporterError::Busy(spool)) => {
            ui.text(format!("Another importer is working on {}; nothing done", spool.display()));
            ui.json(&json!({ "busy": true }));
            return Ok(());
        }
        Err(e) => return Err(ui.fail(format!("ERROR: {e}"))),
    };
    let mut outcomes = Vec::new();
    for outcome in &report.outcomes {
        let (status, archive, detail) = match outcome {
            ArchiveOutcome::Imported(done) => {
                let mut detail = done.record_id.clone();
                for skip in &done.skipped {
                    detail.push_str(&format!("; format {} skipped: {}", skip.format, skip.reason));
                }
                ("imported", &done.archive, detail)
            }
            ArchiveOutcome::Quarantined { archive, reason, .. } => ("failed", archive, reason.clone()),
            ArchiveOutcome::Deferred { archive, reason } => ("deferred", archive, reason.clone()),
            ArchiveOutcome::Changed { archive } => ("changing", archive, String::new()),
            ArchiveOutcome::Cancelled { archive } | ArchiveOutcome::Vanished { archive } => {
                ("skipped", archive, String::new())
            }
            _ => continue,
        };
        ui.text(format!("{status:<9} {archive} {detail}").trim_end());
        outcomes.push(json!({ "status": status, "archive": archive, "detail": detail }));
    }
    ui.text(format!(
        "Imported {}, failed {}, deferred {}, still being written {}; callbacks delivered {}, retrying {}, given up {}",
        report.imported(),
        report.quarantined(),
        report.deferred(),
        report.waiting,
        report.deliveries.delivered,
        report.deliveries.retrying,
        report.deliveries.given_up,
    ));
    ui.json(&json!({
        "archives": outcomes,
        "waiting": report.waiting,
        "callbacks": {
            "delivered": report.deliveries.delivered,
            "retrying": report.deliveries.retrying,
            "given_up": report.deliveries.given_up,
        },
    }));
    if report.deferred() > 0 {
        return Err(ui.fail("ERROR: some archives could not be imported now; they stay in the spool"));
    }
    Ok(())
}

/// An archive file in the spool.
#[derive(Debug)]
struct Archive {
    name: String,
    size: u64,
    modified: Option<SystemTime>,
    reason: Option<String>,
}

async fn import_status(ctx: &Ctx, ui: &mut Ui<'_, '_>, limit: i64) -> Outcome {
    let spool = ctx.config.recordings.spool_dir.clone();
    let failed_dir = spool.join("failed");
    let (pending, failed) = {
        let (spool, failed_dir) = (spool.clone(), failed_dir.clone());
        tokio::task::spawn_blocking(move || (archives(&spool, false), archives(&failed_dir, true)))
            .await
            .map_err(|e| ui.fail(format!("ERROR: {e}")))?
    };
    let pending = pending.map_err(|e| ui.fail(format!("ERROR: cannot read {}: {e}", spool.display())))?;
    let failed = failed.map_err(|e| ui.fail(format!("ERROR: cannot read {}: {e}", failed_dir.display())))?;
    let recent = match &ctx.recordings {
        Some(db) => db.recent_imports(limit).await.map_err(|e| e.to_string()),
        None => Err("DATABASE_URL is not set".to_owned()),
    };

    let now = SystemTime::now();
    ui.text(format!("Pending in {}: {}", spool.display(), pending.len()));
    if !pending.is_empty() {
        let rows: Vec<Vec<String>> =
            pending.iter().map(|a| vec![a.name.clone(), size(a.size), age(now, a.modified)]).collect();
        ui.text_raw(&table(&[("ARCHIVE", Align::Left), ("SIZE", Align::Right), ("WAITING", Align::Right)], &rows));
    }
    ui.text(format!("Failed (kept in {}): {}", failed_dir.display(), failed.len()));
    if !failed.is_empty() {
        let rows: Vec<Vec<String>> =
            failed.iter().map(|a| vec![a.name.clone(), size(a.size), a.reason.clone().unwrap_or_default()]).collect();
        ui.text_raw(&table(&[("ARCHIVE", Align::Left), ("SIZE", Align::Right), ("REASON", Align::Left)], &rows));
    }
    match &recent {
        Ok(entries) => {
            ui.text(format!("Recent imports: {}", entries.len()));
            if !entries.is_empty() {
                let rows: Vec<Vec<String>> = entries
                    .iter()
                    .map(|e| {
                        vec![
                            timestamp(e.finished_ms),
                            e.status.clone(),
                            e.record_id.clone().unwrap_or_else(|| e.filename.clone()),
                            e.formats.map(|f| f.to_string()).unwrap_or_default(),
                            e.reason.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                let columns = [
                    ("FINISHED (UTC)", Align::Left),
                    ("STATUS", Align::Left),
                    ("RECORDING", Align::Left),
                    ("FORMATS", Align::Right),
                    ("REASON", Align::Left),
                ];
                ui.text_raw(&table(&columns, &rows));
            }
        }
        Err(error) => ui.notice(format!("Recent imports unavailable: {error}")),
    }
    let archive_json = |a: &Archive| {
        json!({
            "file": a.name,
            "size_bytes": a.size,
            "modified": a.modified.map(|m| humantime::format_rfc3339_seconds(m).to_string()),
            "reason": a.reason,
        })
    };
    let recent_json: Value = match &recent {
        Ok(entries) => entries
            .iter()
            .map(|e| {
                json!({
                    "finished": timestamp(e.finished_ms),
                    "status": e.status,
                    "file": e.filename,
                    "record_id": e.record_id,
                    "formats": e.formats,
                    "size_bytes": e.size_bytes,
                    "reason": e.reason,
                })
            })
            .collect(),
        Err(_) => Value::Null,
    };
    ui.json(&json!({
        "spool_dir": spool,
        "pending": pending.iter().map(archive_json).collect::<Vec<_>>(),
        "failed": failed.iter().map(archive_json).collect::<Vec<_>>(),
        "recent": recent_json,
    }));
    if recent.is_err() && ctx.recordings.is_some() {
        return Err(ui.fail("ERROR: the import log could not be read"));
    }
    Ok(())
}

/// The `*.tar` files directly in `dir` (none when it does not exist), oldest
/// first; with `reasons`, each with the first line of its `.reason` file.
fn archives(dir: &Path, reasons: bool) -> std::io::Result<Vec<Archive>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() || !name.ends_with(".tar") {
            continue;
        }
        let reason = reasons.then(|| reason(&dir.join(format!("{name}.reason")))).flatten();
        out.push(Archive { name, size: meta.len(), modified: meta.modified().ok(), reason });
    }
    out.sort_by_key(|a| (a.modified, a.name.clone()));
    Ok(out)
}

fn reason(path: &PathBuf) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find(|l| !l.trim().is_empty()).map(|l| l.trim().to_owned())
}

fn age(now: SystemTime, modified: Option<SystemTime>) -> String {
    let Some(since) = modified.and_then(|m| now.duration_since(m).ok()) else { return String::new() };
    humantime::format_duration(Duration::from_secs(since.as_secs())).to_string()
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn sizes_and_times() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(5 * 1024 * 1024 + 1), "5.0 MiB");
        assert_eq!(timestamp(1_700_000_000_123), "2023-11-14T22:13:20Z");
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        assert_eq!(age(now, Some(UNIX_EPOCH + Duration::from_secs(925))), "1m 15s");
    }
}
