//! `status`: Scalelite's `status` rake task, a table of every server.

use clap::Args;
use scalelite_core::load::format_float;
use scalelite_fleet::{DrainStatus, url_host};
use scalelite_store::Server;
use serde_json::{Value, json};

use crate::Ctx;
use crate::output::{Align, Outcome, Ui, table};
use crate::servers::all_servers;

/// `status` takes no arguments.
#[derive(Debug, Args)]
pub struct Opts {}

/// The table's columns, in Scalelite's order and alignment: Tabulo aligns
/// numbers right and strings left, and Scalelite's counters are the strings
/// Redis returns (only `load`, read with `ZSCORE`, is a number).
const COLUMNS: [(&str, Align); 10] = [
    ("HOSTNAME", Align::Left),
    ("STATE", Align::Left),
    ("STATUS", Align::Left),
    ("MEETINGS", Align::Left),
    ("USERS", Align::Left),
    ("LARGEST MEETING", Align::Left),
    ("VIDEOS", Align::Left),
    ("LOAD", Align::Right),
    ("BBB VERSION", Align::Left),
    ("TAG", Align::Left),
];

/// One server's row.
#[derive(Debug)]
struct Row {
    hostname: String,
    state: &'static str,
    online: bool,
    meetings: Option<u64>,
    users: Option<u64>,
    largest_meeting: Option<u64>,
    videos: Option<u64>,
    load: Option<f64>,
    bbb_version: Option<String>,
    tag: Option<String>,
    region: Option<String>,
    /// Declared capabilities, then automatic ones.
    capabilities: Vec<String>,
    /// What the placement section shows (`None`: nothing set by the operator).
    placement: Option<String>,
}

impl Row {
    fn of(server: &Server) -> Self {
        // Scalelite's status shows any stored state other than enabled or
        // cordoned as disabled.
        let state = match server.state.as_deref() {
            Some("enabled") => "enabled",
            Some("cordoned") => "cordoned",
            Some(_) => "disabled",
            None if server.in_enabled_set => "enabled",
            None => "disabled",
        };
        Self {
            hostname: url_host(&server.url).unwrap_or_default(),
            state,
            online: server.online,
            meetings: server.stats.meetings,
            users: server.stats.users,
            largest_meeting: server.stats.largest_meeting,
            videos: server.stats.videos,
            load: server.load,
            bbb_version: server.bbb_version.clone(),
            tag: server.tag.clone(),
            region: server.region.clone(),
            capabilities: server.all_capabilities(),
            placement: (server.region.is_some() || !server.capabilities.is_empty()).then(|| {
                format!(
                    "region={} capabilities={}",
                    server.region.as_deref().unwrap_or_default(),
                    crate::servers::capabilities_text(server)
                )
            }),
        }
    }

    fn status(&self) -> &'static str {
        if self.online { "online" } else { "offline" }
    }

    fn cells(&self) -> Vec<String> {
        let number = |n: Option<u64>| n.map(|n| n.to_string()).unwrap_or_default();
        vec![
            self.hostname.clone(),
            self.state.to_owned(),
            self.status().to_owned(),
            number(self.meetings),
            number(self.users),
            number(self.largest_meeting),
            number(self.videos),
            self.load.map(format_float).unwrap_or_default(),
            self.bbb_version.clone().unwrap_or_default(),
            self.tag.clone().unwrap_or_default(),
        ]
    }

    fn to_json(&self) -> Value {
        json!({
            "hostname": self.hostname,
            "state": self.state,
            "status": self.status(),
            "meetings": self.meetings,
            "users": self.users,
            "largest_meeting": self.largest_meeting,
            "videos": self.videos,
            "load": self.load,
            "bbb_version": self.bbb_version,
            "tag": self.tag,
            "region": self.region,
            "capabilities": self.capabilities,
        })
    }
}

/// Prints the table (or, with `--json`, an array of its rows).
pub(crate) async fn run(_opts: Opts, ctx: &Ctx, ui: &mut Ui<'_, '_>) -> Outcome {
    // Sorted by id first so servers sharing a host name keep a stable order.
    let servers = all_servers(ctx, ui).await?;
    let drains = ctx.fleet.drains().await.map_err(|e| ui.fail(format!("ERROR: {e}")))?;
    let mut rows: Vec<(Row, Option<&DrainStatus>)> =
        servers.iter().map(|s| (Row::of(s), drains.iter().find(|d| d.server_id == s.id.as_str()))).collect();
    rows.sort_by(|a, b| a.0.hostname.cmp(&b.0.hostname));
    ui.json(&Value::Array(
        rows.iter()
            .map(|(row, drain)| {
                let mut value = row.to_json();
                value["drain"] = serde_json::to_value(drain).unwrap_or_default();
                value
            })
            .collect(),
    ));
    let cells: Vec<Vec<String>> = rows.iter().map(|(row, _)| row.cells()).collect();
    ui.text("");
    ui.text_raw(&table(&COLUMNS, &cells));
    // The table keeps Scalelite's columns; regions and capabilities set by
    // the operator follow it, then drains.
    let placed: Vec<String> =
        rows.iter().filter_map(|(row, _)| row.placement.as_ref().map(|p| format!(" {} {p}", row.hostname))).collect();
    if !placed.is_empty() {
        ui.text("");
        ui.text("REGIONS AND CAPABILITIES");
        for line in placed {
            ui.text(line);
        }
    }
    if !drains.is_empty() {
        ui.text("");
        ui.text("DRAINS");
        for drain in &drains {
            ui.text(format!(" {}", drain.line()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use scalelite_core::ServerId;

    use super::*;

    fn server(url: &str, fields: &[(&str, &str)], load: Option<f64>) -> Server {
        let mut hash: HashMap<String, String> =
            fields.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        hash.insert("url".into(), url.into());
        let mut server = Server::from_hash(ServerId::from("x"), &hash, false).unwrap();
        server.load = load;
        server
    }

    #[test]
    fn rows_follow_scalelite() {
        let polled = server(
            "https://bbb1.example.com/bigbluebutton/api",
            &[
                ("state", "enabled"),
                ("online", "true"),
                ("meetings", "12"),
                ("users", "25"),
                ("largest_meeting", "7"),
                ("videos", "15"),
                ("bbb_version", "2.7.3"),
            ],
            Some(25.0),
        );
        let fresh = server("https://bbb2.example.com/bigbluebutton/api", &[("tag", "test")], None);
        let odd = server("https://bbb3.example.com/bigbluebutton/api", &[("state", "weird")], None);
        let rows: Vec<Vec<String>> = [&polled, &fresh, &odd].iter().map(|s| Row::of(s).cells()).collect();
        let text = table(&COLUMNS, &rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "     HOSTNAME       STATE    STATUS   MEETINGS  USERS  LARGEST MEETING  VIDEOS  LOAD  BBB VERSION  TAG  ",
                " bbb1.example.com  enabled   online   12        25     7                15      25.0  2.7.3             ",
                " bbb2.example.com  disabled  offline                                                               test ",
                " bbb3.example.com  disabled  offline                                                                    ",
            ]
        );
        let json = Row::of(&polled).to_json();
        assert_eq!(json["load"], 25.0);
        assert_eq!(json["meetings"], 12);
        assert_eq!(Row::of(&fresh).to_json()["meetings"], Value::Null);
    }
}
