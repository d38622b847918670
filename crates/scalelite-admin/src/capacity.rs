//! `capacity`: the autoscaler interface (the same report as `GET
//! /scalelite/api/capacity`).

use clap::Args;
use scalelite_core::load::format_float;
use scalelite_fleet::{CapacityCounts, ServerCapacity};

use crate::Ctx;
use crate::output::{Align, Outcome, Ui, table};

/// `capacity` takes no arguments.
#[derive(Debug, Args)]
pub struct Opts {}

/// The name the tables give servers without a region.
pub(crate) const NO_REGION: &str = "(no region)";

/// Prints the capacity per tag (then per region and per capability when
/// servers have them) and the servers that may be deleted (with `--json`,
/// the whole report).
pub(crate) async fn run(_opts: Opts, ctx: &Ctx, ui: &mut Ui<'_, '_>) -> Outcome {
    let report =
        ctx.fleet.capacity(ctx.config.capacity_per_server).await.map_err(|e| ui.fail(format!("ERROR: {e}")))?;
    ui.json(&serde_json::to_value(&report).unwrap_or_default());
    let columns = |first: &'static str| {
        [
            (first, Align::Left),
            ("ONLINE", Align::Right),
            ("CORDONED", Align::Right),
            ("DISABLED", Align::Right),
            ("OFFLINE", Align::Right),
            ("MEETINGS", Align::Right),
            ("USERS", Align::Right),
            ("LOAD", Align::Right),
            ("HEADROOM", Align::Right),
        ]
    };
    let row = |t: &CapacityCounts, name: String| {
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
        report.tags.iter().map(|t| row(&t.counts, t.tag.clone().unwrap_or_else(|| "(untagged)".into()))).collect();
    rows.push(row(&report.pool.counts, "(all)".into()));
    ui.text(format!("Capacity per server: {}", format_float(report.capacity_per_server)));
    ui.text_raw(&table(&columns("TAG"), &rows));
    // Scalelite-style pools (no region anywhere) keep the one table.
    if report.regions.iter().any(|r| r.region.is_some()) {
        let rows: Vec<Vec<String>> = report
            .regions
            .iter()
            .map(|r| row(&r.counts, r.region.clone().unwrap_or_else(|| NO_REGION.into())))
            .collect();
        ui.text("");
        ui.text_raw(&table(&columns("REGION"), &rows));
    }
    if !report.capabilities.is_empty() {
        let rows: Vec<Vec<String>> = report.capabilities.iter().map(|c| row(&c.counts, c.capability.clone())).collect();
        ui.text("");
        ui.text_raw(&table(&columns("CAPABILITY"), &rows));
    }
    ui.text("");
    for server in &report.servers {
        let placement = placement_text(server);
        if server.safe_to_remove {
            ui.text(format!("{}: safe to remove{placement}", server.id));
        } else {
            ui.text(format!("{}: keep ({}){placement}", server.id, server.reason));
        }
    }
    Ok(())
}

/// ` [region eu; livekit, bbb-3.0 (auto)]` for a server with a region or
/// declared capabilities, empty for the others (as `servers` lists them).
fn placement_text(server: &ServerCapacity) -> String {
    if server.region.is_none() && server.capabilities.is_empty() {
        return String::new();
    }
    let region = server.region.as_deref().unwrap_or(NO_REGION);
    let automatic = server.automatic_capabilities.iter().map(|c| format!("{c} (auto)"));
    let capabilities: Vec<String> = server.capabilities.iter().cloned().chain(automatic).collect();
    if capabilities.is_empty() {
        format!(" [region {region}]")
    } else {
        format!(" [region {region}; {}]", capabilities.join(", "))
    }
}
