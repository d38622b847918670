//! `recordings prune`: recording retention by hand. With `--older-than`
//! one rule for every recording (or one tenant's); without it the rules
//! the importer applies (`RECORDING_RETENTION_DAYS`,
//! `RECORDING_RETENTION_ACTION` and the tenants' overrides). Without
//! `--yes` it is a dry run.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Args;
use scalelite_store::TenantRecord;
use scalelite_store::recording_actions::TreeDirs;
use scalelite_store::recordings::TenantScope;
use scalelite_store::retention::{self, Candidate, GlobalRetention, RetentionAction, Rule, parse_days};
use scalelite_store::s3::S3Storage;
use serde_json::{Value, json};

use crate::Ctx;
use crate::output::{Align, Outcome, Ui, table};
use crate::output::{size, timestamp};
use crate::tenants::MULTITENANCY_DISABLED;

/// `recordings prune` options (`--yes` and `--json` are global).
#[derive(Debug, Args)]
pub struct PruneOpts {
    /// Recordings whose start time is more than this many days ago, e.g.
    /// `90d` (or `90`). Without it, the configured rules:
    /// `RECORDING_RETENTION_DAYS` and the tenants'
    /// `scalelite-recording-retention-days` settings.
    #[arg(long, value_name = "DAYS")]
    pub older_than: Option<String>,
    /// Only the recordings of this tenant (its name); needs
    /// `MULTITENANCY_ENABLED`.
    #[arg(long, value_name = "NAME")]
    pub tenant: Option<String>,
    /// `delete` or `unpublish`. Default: `delete` with --older-than, else
    /// each rule's own action.
    #[arg(long, value_name = "ACTION")]
    pub action: Option<String>,
}

/// Runs `recordings prune`.
pub(crate) async fn run(opts: PruneOpts, ctx: &Ctx, ui: &mut Ui<'_, '_>) -> Outcome {
    let days = match opts.older_than.as_deref().map(parse_days) {
        None => None,
        Some(Ok(days)) => Some(days),
        Some(Err(e)) => return Err(ui.fail(format!("ERROR: --older-than: {e}"))),
    };
    let action = match opts.action.as_deref().map(str::parse::<RetentionAction>) {
        None => None,
        Some(Ok(action)) => Some(action),
        Some(Err(e)) => return Err(ui.fail(format!("ERROR: --action: {e}"))),
    };
    let db = ctx.recordings(ui)?;
    let config = &ctx.config;
    if opts.tenant.is_some() && !config.multitenancy {
        return Err(ui.fail(MULTITENANCY_DISABLED));
    }
    // Tenants' overrides only count in multitenant mode (recordings carry
    // a tenant only then).
    let tenants: Vec<TenantRecord> = if config.multitenancy {
        ctx.store.tenants().await.map_err(|e| ui.fail(format!("ERROR: cannot read the tenants: {e}")))?
    } else {
        Vec::new()
    };
    let only = match &opts.tenant {
        None => None,
        Some(name) => match tenants.iter().find(|t| t.tenant.name == *name) {
            Some(record) => Some(record.tenant.id.as_str().to_owned()),
            None => return Err(ui.fail(format!("ERROR: no tenant named {name:?}"))),
        },
    };
    let mut problems = Vec::new();
    // Whether any rule is configured at all (a tenant that turned
    // retention off has none, and that is not an error).
    let mut configured = days.is_some();
    let mut rules = match days {
        Some(days) => vec![Rule {
            scope: only.clone().map_or(TenantScope::All, TenantScope::Tenant),
            days,
            action: action.unwrap_or_default(),
            origin: "--older-than".into(),
        }],
        None => {
            let global =
                GlobalRetention { days: config.recordings.retention_days, action: config.recordings.retention_action };
            let found = retention::rules(global, &tenants, only.as_deref());
            configured = !retention::rules(global, &tenants, None).rules.is_empty();
            problems = found.problems;
            found.rules
        }
    };
    if let Some(action) = action {
        for rule in &mut rules {
            rule.action = action;
        }
    }
    for problem in &problems {
        ui.error(format!("WARNING: {problem}; that tenant's recordings are left alone"));
    }
    if !configured && problems.is_empty() {
        return Err(ui.fail(
            "ERROR: no retention rule: give --older-than, or set RECORDING_RETENTION_DAYS \
             (or a tenant's scalelite-recording-retention-days setting)",
        ));
    }

    let dirs = TreeDirs {
        publish: config.recordings.publish_dir.clone(),
        unpublish: config.recordings.unpublish_dir.clone(),
        s3: S3Storage::from_recordings(&config.recordings),
    };
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let candidates = retention::plan(&**db, &dirs, &rules, now_ms)
        .await
        .map_err(|e| ui.fail(format!("ERROR: cannot list the recordings: {e}")))?;
    let names = retention::tenant_names(&tenants);
    let dry_run = !ui.yes;

    let mut results: Vec<Result<(), String>> = Vec::with_capacity(candidates.len());
    for candidate in &candidates {
        if dry_run {
            results.push(Ok(()));
        } else {
            results.push(retention::act(&**db, &dirs, candidate).await.map_err(|e| e.to_string()));
        }
    }

    if rules.is_empty() {
        ui.text(format!(
            "No retention rule covers tenant {}: its scalelite-recording-retention-days is off",
            opts.tenant.as_deref().unwrap_or_default()
        ));
    }
    report(ui, &rules, &candidates, &results, &names, dry_run);
    let failed = results.iter().filter(|r| r.is_err()).count();
    if failed > 0 {
        return Err(ui.fail(format!("ERROR: {failed} recording(s) could not be changed")));
    }
    if !problems.is_empty() {
        return Err(ui.fail("ERROR: some tenants' retention settings are invalid"));
    }
    Ok(())
}

fn scope_text(scope: &TenantScope, names: &HashMap<String, String>) -> String {
    let name = |id: &String| names.get(id).cloned().unwrap_or_else(|| id.clone());
    match scope {
        TenantScope::All => "all recordings".into(),
        TenantScope::Tenant(id) => format!("the recordings of tenant {}", name(id)),
        TenantScope::Except(ids) if ids.is_empty() => "all recordings".into(),
        TenantScope::Except(ids) => {
            let names = ids.iter().map(name).collect::<Vec<_>>().join(", ");
            format!("all recordings (except those of tenants {names})")
        }
    }
}

fn report(
    ui: &mut Ui<'_, '_>,
    rules: &[Rule],
    candidates: &[Candidate],
    results: &[Result<(), String>],
    names: &HashMap<String, String>,
    dry_run: bool,
) {
    for rule in rules {
        ui.text(format!(
            "Rule ({}): {} {} that started more than {} days ago",
            rule.origin,
            rule.action,
            scope_text(&rule.scope, names),
            rule.days
        ));
    }
    let status = |action: RetentionAction, result: &Result<(), String>| match (dry_run, action, result) {
        (true, RetentionAction::Delete, _) => "would delete",
        (true, RetentionAction::Unpublish, _) => "would unpublish",
        (false, RetentionAction::Delete, Ok(())) => "deleted",
        (false, RetentionAction::Unpublish, Ok(())) => "unpublished",
        (false, _, Err(_)) => "failed",
    };
    let tenant = |c: &Candidate| {
        c.recording
            .tenant_id
            .as_ref()
            .map(|id| names.get(id).cloned().unwrap_or_else(|| id.clone()))
            .unwrap_or_default()
    };
    if !candidates.is_empty() {
        let rows: Vec<Vec<String>> = candidates
            .iter()
            .zip(results)
            .map(|(c, r)| {
                vec![
                    c.recording.summary.record_id.clone(),
                    tenant(c),
                    timestamp(c.recording.start_ms),
                    size(c.size_bytes),
                    status(c.action, r).to_owned(),
                ]
            })
            .collect();
        let columns = [
            ("RECORDING", Align::Left),
            ("TENANT", Align::Left),
            ("STARTED (UTC)", Align::Left),
            ("SIZE", Align::Right),
            ("ACTION", Align::Left),
        ];
        ui.text_raw(&table(&columns, &rows));
    }
    for (candidate, result) in candidates.iter().zip(results) {
        if let Err(error) = result {
            ui.error(format!("ERROR: {} ({}): {error}", candidate.recording.summary.record_id, candidate.action));
        }
    }
    let count = |action: RetentionAction, ok: bool| {
        candidates.iter().zip(results).filter(|(c, r)| c.action == action && r.is_ok() == ok).count()
    };
    let bytes: u64 = candidates
        .iter()
        .zip(results)
        .filter(|(c, r)| c.action == RetentionAction::Delete && r.is_ok())
        .map(|(c, _)| c.size_bytes)
        .sum();
    let (deleted, unpublished) = (count(RetentionAction::Delete, true), count(RetentionAction::Unpublish, true));
    if dry_run {
        ui.text(format!(
            "Dry run: would delete {deleted} recording(s) ({}) and unpublish {unpublished}; nothing was changed \
             (add --yes to do it)",
            size(bytes)
        ));
    } else {
        let failed = results.iter().filter(|r| r.is_err()).count();
        ui.text(format!(
            "Deleted {deleted} recording(s) ({}), unpublished {unpublished}, failed {failed}",
            size(bytes)
        ));
    }
    let recordings: Vec<Value> = candidates
        .iter()
        .zip(results)
        .map(|(c, r)| {
            json!({
                "record_id": c.recording.summary.record_id,
                "meeting_id": c.recording.meeting_id,
                "tenant_id": c.recording.tenant_id,
                "tenant": c.recording.tenant_id.as_ref().and_then(|id| names.get(id)),
                "started": timestamp(c.recording.start_ms),
                "start_ms": c.recording.start_ms,
                "published": c.recording.summary.published,
                "size_bytes": c.size_bytes,
                "action": c.action.as_str(),
                "rule": c.origin,
                "status": status(c.action, r),
                "error": r.as_ref().err(),
            })
        })
        .collect();
    ui.json(&json!({
        "dry_run": dry_run,
        "rules": rules.iter().map(|r| json!({
            "origin": r.origin,
            "scope": scope_text(&r.scope, names),
            "days": r.days,
            "action": r.action.as_str(),
        })).collect::<Vec<_>>(),
        "count": candidates.len(),
        "size_bytes": candidates.iter().map(|c| c.size_bytes).sum::<u64>(),
        "deleted": if dry_run { 0 } else { deleted },
        "unpublished": if dry_run { 0 } else { unpublished },
        "failed": results.iter().filter(|r| r.is_err()).count(),
        "recordings": recordings,
    }));
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::recordings::RecordingsCommand;
    use crate::{Cli, Command};

    #[test]
    fn prune_takes_its_options_and_the_global_flags() {
        let cli = Cli::try_parse_from([
            "scalelite-admin",
            "recordings",
            "prune",
            "--older-than",
            "90d",
            "--tenant",
            "t1",
            "--action",
            "unpublish",
            "--yes",
            "--json",
        ])
        .unwrap();
        assert!(cli.yes && cli.json);
        let Command::Recordings(opts) = cli.command else { panic!("recordings") };
        let RecordingsCommand::Prune(prune) = opts.command else { panic!("prune") };
        assert_eq!(prune.older_than.as_deref(), Some("90d"));
        assert_eq!((prune.tenant.as_deref(), prune.action.as_deref()), (Some("t1"), Some("unpublish")));
    }
}
