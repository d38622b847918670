//! `poll`: one poll round now, like Scalelite's `poll:all` (useful right
//! after adding and enabling a server). `poll servers`, `poll meetings` and
//! `poll versions` stand for the rake tasks `poll:servers`, `poll:meetings`
//! and `poll:versions` and run the same whole round: the meeting check
//! works from the servers' own lists (a meeting is only checked when its
//! server no longer lists it) and the version is read in the same visit of
//! each server, so one part alone would cost the same calls.
//!
//! The round takes the poller's leader lease for its duration, so it never
//! runs alongside a `scalelite-poller` that is polling; when one holds the
//! lease, nothing is done (that poller polls on its own schedule).

use std::sync::Arc;

use clap::{Args, ValueEnum};
use scalelite_poller::{Poller, PollerMetrics};
use scalelite_store::{POLLER_LEASE, Transition};
use serde_json::json;

use crate::Ctx;
use crate::output::{Outcome, Ui};

/// `poll [all|servers|meetings|versions]`.
#[derive(Debug, Args)]
pub struct Opts {
    /// The rake task's part (`poll:servers`, …); each runs the whole round.
    #[arg(value_enum, default_value_t = Part::All)]
    pub part: Part,
}

/// The parts of Scalelite's `poll:all`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Part {
    /// `poll:all`.
    All,
    /// `poll:servers`: health, load and statistics of every server.
    Servers,
    /// `poll:meetings`: forget meetings that ended.
    Meetings,
    /// `poll:versions`: every server's BBB version.
    Versions,
}

/// Runs one round and prints a one-line summary.
pub(crate) async fn run(_opts: Opts, ctx: &Ctx, ui: &mut Ui<'_, '_>) -> Outcome {
    let poller = Poller::from_config(&ctx.config, Arc::clone(&ctx.store), Arc::new(PollerMetrics::new()))
        .with_usage(ctx.usage());
    let report = poller.poll_once().await.map_err(|e| ui.fail(format!("ERROR: {e}")))?;
    let Some(report) = report else {
        let holder = ctx.store.lease_holder(POLLER_LEASE).await.ok().flatten();
        let by = holder.as_deref().map(|h| format!(" ({h})")).unwrap_or_default();
        ui.text(format!("Another poller{by} holds the lease and polls on its own schedule; nothing was polled"));
        ui.json(&json!({ "polled": false, "holder": holder }));
        return Ok(());
    };
    let duration_ms = u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX);
    ui.text(format!(
        "Polled {} servers: {} reachable, {} meetings removed, in {duration_ms} ms",
        report.servers, report.reachable, report.meetings_removed
    ));
    let transitions: Vec<_> = report
        .transitions
        .iter()
        .map(|(id, t)| json!({ "server_id": id.as_str(), "transition": transition_name(*t) }))
        .collect();
    ui.json(&json!({
        "polled": true,
        "servers": report.servers,
        "reachable": report.reachable,
        "meetings_checked": report.meetings_checked,
        "meetings_removed": report.meetings_removed,
        "duration_ms": duration_ms,
        "transitions": transitions,
    }));
    Ok(())
}

fn transition_name(transition: Transition) -> &'static str {
    match transition {
        Transition::CameOnline => "came_online",
        Transition::WentOffline => "went_offline",
        Transition::Drained => "drained",
    }
}
