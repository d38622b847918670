//! `capacity`: the autoscaler interface (the same report as `GET
//! /scalelite/api/capacity`).

use clap::Args;
use scalelite_core::load::format_float;

use crate::Ctx;
use crate::output::{Align, Outcome, Ui, table};

/// `capacity` takes no arguments.
#[derive(Debug, Args)]
pub struct Opts {}

/// Prints the capacity per tag and the servers that may be deleted (with
/// `--json`, the whole report).
pub(crate) async fn run(_opts: Opts, ctx: &Ctx, ui: &mut Ui<'_, '_>) -> Outcome {
    let report =
        ctx.fleet.capacity(ctx.config.capacity_per_server).await.map_err(|e| ui.fail(format!("ERROR: {e}")))?;
    ui.json(&serde_json::to_value(&report).unwrap_or_default());
    let columns = [
        ("TAG", Align::Left),
        ("ONLINE", Align::Right),
        ("CORDONED", Align::Right),
        ("DISABLED", Align::Right),
        ("OFFLINE", Align::Right),
        ("MEETINGS", Align::Right),
        ("USERS", Align::Right),
        ("LOAD", Align::Right),
        ("HEADROOM", Align::Right),
    ];
    let row = |t: &scalelite_fleet::TagCapacity, name: String| {
        vec![
            name,
            t.online.to_string(),
            t.cordoned.to_string(),
            t.disabled.to_string(),
            t.offline.to_string(),
            t.meetings.to_string(),
            t.users.to_string(),
            format_float(t.load),
            format!("{} ({:.0}%)", format_float(t.headroom), t.headroom_ratio * 100.0),
        ]
    };
    let mut rows: Vec<Vec<String>> =
        report.tags.iter().map(|t| row(t, t.tag.clone().unwrap_or_else(|| "(untagged)".into()))).collect();
    rows.push(row(&report.pool, "(all)".into()));
    ui.text(format!("Capacity per server: {}", format_float(report.capacity_per_server)));
    ui.text_raw(&table(&columns, &rows));
    ui.text("");
    for server in &report.servers {
        if server.safe_to_remove {
            ui.text(format!("{}: safe to remove", server.id));
        } else {
            ui.text(format!("{}: keep ({})", server.id, server.reason));
        }
    }
    Ok(())
}
