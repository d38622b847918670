//! `usage`: meeting-minutes, participant-minutes and peak concurrent
//! participants per tenant and hour or day, as the poller accounted them.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, UNIX_EPOCH};

use clap::{Args, ValueEnum};
use scalelite_store::usage::{HOUR_MS, POOL, UsageQuery, UsageRow};
use serde_json::json;

use crate::Ctx;
use crate::output::{Align, Outcome, Ui, table};

const DAY_MS: i64 = 24 * HOUR_MS;

/// Options of `usage`.
#[derive(Debug, Args)]
pub struct Opts {
    /// Only this tenant (name or id); `-` for meetings without a tenant,
    /// `*` for the whole pool.
    #[arg(long)]
    pub tenant: Option<String>,
    /// First day (UTC, `YYYY-MM-DD`), or hour (`YYYY-MM-DDTHH:MM:SSZ`).
    #[arg(long)]
    pub from: Option<String>,
    /// Last day included (UTC, `YYYY-MM-DD`), or the end (exclusive) as
    /// `YYYY-MM-DDTHH:MM:SSZ`.
    #[arg(long)]
    pub to: Option<String>,
    /// One row per tenant and `hour` or `day`.
    #[arg(long, value_enum, default_value_t = By::Day)]
    pub by: By,
    /// Print CSV instead of a table.
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
}

/// The period of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum By {
    /// Hours (UTC).
    Hour,
    /// Days (UTC).
    Day,
}

/// A time argument: a day (its start; with `end`, the start of the next
/// day) or an RFC 3339 time, as epoch milliseconds.
fn parse_time(text: &str, end: bool) -> Option<i64> {
    let text = text.trim();
    let (time, next_day) = if text.len() == 10 {
        (humantime::parse_rfc3339_weak(&format!("{text} 00:00:00")).ok()?, end)
    } else {
        (humantime::parse_rfc3339_weak(text).ok()?, false)
    };
    let ms = i64::try_from(time.duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()?;
    Some(if next_day { ms.saturating_add(DAY_MS) } else { ms })
}

fn period(start_ms: i64, by: By) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(u64::try_from(start_ms).unwrap_or(0));
    let text = humantime::format_rfc3339_seconds(time).to_string();
    match by {
        By::Day => text[..10].to_owned(),
        By::Hour => format!("{}Z", &text[..16]),
    }
}

fn minutes(ms: i64) -> f64 {
    (ms as f64 / 60_000.0 * 100.0).round() / 100.0
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_owned() }
}

/// Prints the usage table (or CSV, or with `--json` one document).
pub(crate) async fn run(opts: Opts, ctx: &Ctx, ui: &mut Ui<'_, '_>) -> Outcome {
    let Some(store) = ctx.usage() else {
        return Err(ui.fail("ERROR: DATABASE_URL is not set: usage is kept in PostgreSQL"));
    };
    let mut query = UsageQuery::default();
    for (arg, value, end) in [("--from", &opts.from, false), ("--to", &opts.to, true)] {
        if let Some(text) = value {
            let Some(ms) = parse_time(text, end) else {
                return Err(ui.fail(format!("ERROR: {arg} {text}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ")));
            };
            if end { query.to_ms = Some(ms) } else { query.from_ms = Some(ms) }
        }
    }
    // Tenant names, for display and for --tenant.
    let tenants = ctx.store.tenants().await.map_err(|e| ui.fail(format!("ERROR: {e}")))?;
    let names: HashMap<String, String> =
        tenants.iter().map(|t| (t.tenant.id.as_str().to_owned(), t.tenant.name.clone())).collect();
    if let Some(wanted) = &opts.tenant {
        let key = match wanted.as_str() {
            "-" => String::new(),
            POOL => POOL.to_owned(),
            name => match ctx.store.tenant_by_name(name).await.map_err(|e| ui.fail(format!("ERROR: {e}")))? {
                Some(found) => found.tenant.id.as_str().to_owned(),
                // An id (a deleted tenant's rows stay readable by id).
                None => name.to_owned(),
            },
        };
        query.tenant = Some(key);
    }
    let rows = store.usage(&query).await.map_err(|e| ui.fail(format!("ERROR: {e}")))?;
    let rows = aggregate(rows, opts.by);
    let label = |key: &str| match key {
        POOL => "(all)".to_owned(),
        "" => "(none)".to_owned(),
        id => names.get(id).cloned().unwrap_or_else(|| id.to_owned()),
    };
    let by = match opts.by {
        By::Hour => "hour",
        By::Day => "day",
    };
    ui.json(&json!({
        "by": by,
        "rows": rows.iter().map(|r| json!({
            "period": period(r.hour_ms, opts.by),
            "tenant_id": r.tenant,
            "tenant": label(&r.tenant),
            "meeting_minutes": minutes(r.meeting_ms),
            "participant_minutes": minutes(r.participant_ms),
            "peak_participants": r.peak_participants,
        })).collect::<Vec<_>>(),
    }));
    if opts.csv {
        ui.text("period,tenant_id,tenant,meeting_minutes,participant_minutes,peak_participants");
        for r in &rows {
            ui.text(format!(
                "{},{},{},{},{},{}",
                period(r.hour_ms, opts.by),
                csv_field(&r.tenant),
                csv_field(&label(&r.tenant)),
                minutes(r.meeting_ms),
                minutes(r.participant_ms),
                r.peak_participants
            ));
        }
        return Ok(());
    }
    if rows.is_empty() {
        ui.text("No usage recorded for this selection");
        return Ok(());
    }
    let columns = [
        (if opts.by == By::Day { "DAY" } else { "HOUR" }, Align::Left),
        ("TENANT", Align::Left),
        ("MEETING-MIN", Align::Right),
        ("PARTICIPANT-MIN", Align::Right),
        ("PEAK", Align::Right),
    ];
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                period(r.hour_ms, opts.by),
                label(&r.tenant),
                format!("{:.1}", minutes(r.meeting_ms)),
                format!("{:.1}", minutes(r.participant_ms)),
                r.peak_participants.to_string(),
            ]
        })
        .collect();
    ui.text_raw(&table(&columns, &table_rows));
    Ok(())
}

/// Hour rows summed into days (peak: the highest hour's), ordered by
/// period, then the pool's row last, the others by tenant key.
fn aggregate(rows: Vec<UsageRow>, by: By) -> Vec<UsageRow> {
    let mut out: BTreeMap<(i64, bool, String), UsageRow> = BTreeMap::new();
    for row in rows {
        let start = match by {
            By::Hour => row.hour_ms,
            By::Day => row.hour_ms.div_euclid(DAY_MS) * DAY_MS,
        };
        let key = (start, row.tenant == POOL, row.tenant.clone());
        let entry = out.entry(key).or_insert_with(|| UsageRow {
            tenant: row.tenant.clone(),
            hour_ms: start,
            ..Default::default()
        });
        entry.meeting_ms = entry.meeting_ms.saturating_add(row.meeting_ms);
        entry.participant_ms = entry.participant_ms.saturating_add(row.participant_ms);
        entry.peak_participants = entry.peak_participants.max(row.peak_participants);
    }
    out.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_hours_parse_and_print_in_utc() {
        let day = parse_time("2026-12-01", false).unwrap();
        assert_eq!(period(day, By::Day), "2026-12-01");
        assert_eq!(parse_time("2026-12-01", true), Some(day + DAY_MS));
        let hour = parse_time("2026-12-01T13:00:00Z", true).unwrap();
        assert_eq!(hour, day + 13 * HOUR_MS);
        assert_eq!(period(hour, By::Hour), "2026-12-01T13:00Z");
        assert_eq!(parse_time("yesterday", false), None);
        assert_eq!(parse_time("2026-13-01", false), None);
    }

    #[test]
    fn days_sum_hours_and_keep_the_highest_peak() {
        let row = |tenant: &str, hour: i64, m: i64, p: i64, k: i64| UsageRow {
            tenant: tenant.into(),
            hour_ms: hour * HOUR_MS,
            meeting_ms: m,
            participant_ms: p,
            peak_participants: k,
        };
        let rows = vec![row("*", 1, 10, 20, 3), row("a", 1, 10, 20, 3), row("*", 2, 5, 50, 9), row("a", 25, 1, 1, 1)];
        let days = aggregate(rows, By::Day);
        assert_eq!(days, vec![row("a", 0, 10, 20, 3), row("*", 0, 15, 70, 9), row("a", 24, 1, 1, 1)]);
        assert_eq!(csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
    }
}
