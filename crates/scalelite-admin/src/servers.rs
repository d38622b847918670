//! `servers …`: Scalelite's `servers*` rake tasks (list, add, update,
//! remove, enable, cordon, disable, panic, loadMultiplier, tag, sync, yaml,
//! `meeting_list`).

use clap::builder::NonEmptyStringValueParser;
use clap::{Args, Subcommand};
use futures::stream::{self, StreamExt};
use scalelite_bbb_client::Target;
use scalelite_core::load::format_float;
use scalelite_core::{Secret, ServerId};
use scalelite_fleet::{
    Cleared, DrainSettings, FleetError, MULTIPLIER_WARNING, SyncMode, dump_yaml, multiplier_arg, parse_deadline,
    placement_update, server_json, state_name, to_d,
};
use scalelite_store::{Server, ServerState, ServerUpdate};
use serde_json::{Value, json};

use crate::output::{Outcome, Ui, split_ids};
use crate::{Ctx, fleet_failure};

/// Scalelite's warning before disabling a server that has load.
pub const DISABLE_WARNING: &str = "WARNING: You are trying to disable a server with active load. \
     You should use the cordon option if you do not want to clear all the meetings";

/// `servers [COMMAND]`.
#[derive(Debug, Args)]
pub struct Opts {
    /// What to do; without one, the servers are listed.
    #[command(subcommand)]
    pub command: Option<ServersCommand>,
}

/// The `servers` subcommands.
#[derive(Debug, Subcommand)]
pub enum ServersCommand {
    /// List every server with its state, load and status (the default).
    List,
    /// Add a server. It starts disabled and offline: enable it, then poll.
    Add {
        /// API base URL, e.g. `https://bbb1.example.com/bigbluebutton/api`.
        url: String,
        /// The server's shared secret (`bbb-conf --secret`).
        #[arg(value_parser = NonEmptyStringValueParser::new())]
        secret: String,
        /// Load multiplier (default 1.0); weaker servers get a higher one.
        #[arg(long, allow_negative_numbers = true)]
        load_multiplier: Option<String>,
        /// Tag for `meta_server-tag` placement.
        #[arg(long)]
        tag: Option<String>,
        /// Region (or site) for `meta_server-region` placement.
        #[arg(long)]
        region: Option<String>,
        /// Capabilities the server offers besides those the poller learns,
        /// separated by `,` (e.g. `livekit`).
        #[arg(long)]
        capabilities: Option<String>,
    },
    /// Change a server's secret, load multiplier, tag, region or capabilities.
    Update {
        /// Server id.
        id: String,
        /// New secret.
        #[arg(long, value_parser = NonEmptyStringValueParser::new())]
        secret: Option<String>,
        /// New load multiplier.
        #[arg(long, allow_negative_numbers = true)]
        load_multiplier: Option<String>,
        /// New tag; `--tag ""` removes it, omitting the flag keeps it.
        #[arg(long)]
        tag: Option<String>,
        /// New region; `--region ""` removes it.
        #[arg(long)]
        region: Option<String>,
        /// New declared capabilities, separated by `,` (replacing the old
        /// ones); `--capabilities ""` removes them.
        #[arg(long)]
        capabilities: Option<String>,
    },
    /// Remove a server record (its meetings are not ended: panic it first).
    Remove {
        /// Server id.
        id: String,
    },
    /// Let a server take new meetings.
    Enable {
        /// Server id.
        id: String,
    },
    /// Drain a server: no new meetings, joins to running ones still work.
    /// The poller disables it once its load is zero.
    Cordon {
        /// Server id.
        id: String,
    },
    /// Drain a server with notice: cordon it, warn its meetings in chat
    /// (BBB 3.0's `sendChatMessage`) now and every `DRAIN_NOTICE_INTERVAL`, and
    /// end them at the deadline. The poller does the timed work and
    /// disables the server once it is empty.
    Drain {
        /// Server id.
        id: String,
        /// When its meetings are ended, from now: `30m`, `1h30m`, `90s`.
        /// Without one, the drain waits for them to end.
        #[arg(long)]
        deadline: Option<String>,
        /// Text added to the notices (the `{message}` of the templates).
        #[arg(long)]
        message: Option<String>,
    },
    /// Show the drains and their progress.
    Drains,
    /// Take a server out of service. With load, asks before clearing its
    /// meetings (use cordon to drain it instead).
    Disable {
        /// Server id.
        id: String,
    },
    /// Forget every meeting of a server, end them there, and disable it.
    Panic {
        /// Server id.
        id: String,
        /// Leave the server's state as it is.
        #[arg(long)]
        keep_state: bool,
        /// Do not send `end` to the server (for a server that is gone).
        #[arg(long)]
        skip_end_calls: bool,
    },
    /// Set a server's load multiplier.
    #[command(alias = "loadMultiplier")]
    LoadMultiplier {
        /// Server id.
        id: String,
        /// The multiplier; 0 or unreadable becomes 1.0 with a warning.
        #[arg(allow_negative_numbers = true)]
        load_multiplier: String,
    },
    /// Set a server's tag; without TAG (or with an empty one) removes it.
    Tag {
        /// Server id.
        id: String,
        /// The tag.
        tag: Option<String>,
    },
    /// Add every server of a YAML `servers:` list (`url` and `secret` of
    /// each), like `rake servers:addAll`; `-` reads stdin.
    #[command(alias = "addAll")]
    AddAll {
        /// The YAML file.
        file: String,
    },
    /// Make the pool match a YAML `servers:` document (see `servers yaml`).
    Sync {
        /// The document, `-` for stdin.
        file: String,
        /// Servers missing from the document: `keep` leaves them, `cordon`
        /// removes empty ones and cordons the others, `force` also ends the
        /// meetings of the others and removes them.
        #[arg(long, default_value = "cordon")]
        mode: String,
        /// Print what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Print the pool as the YAML document `servers sync` reads.
    Yaml {
        /// Add state, load, BBB version, the capabilities learned from it
        /// (`automatic_capabilities`, apart from the declared ones and
        /// ignored by `servers sync`) and online status.
        #[arg(long)]
        verbose: bool,
    },
    /// List the meetings running on servers (asks each server).
    #[command(alias = "meeting_list")]
    MeetingList {
        /// Server ids separated by `:` (default: every server).
        ids: Option<String>,
    },
}

/// Runs a `servers` command.
pub(crate) async fn run(opts: Opts, ctx: &Ctx, ui: &mut Ui<'_, '_>) -> Outcome {
    match opts.command.unwrap_or(ServersCommand::List) {
        ServersCommand::List => list(ctx, ui).await,
        ServersCommand::Add { url, secret, load_multiplier, tag, region, capabilities } => {
            let placement = Placement { region: region.as_deref(), capabilities: capabilities.as_deref() };
            add(ctx, ui, &url, &secret, load_multiplier.as_deref(), tag.as_deref(), placement).await
        }
        ServersCommand::Update { id, secret, load_multiplier, tag, region, capabilities } => {
            let placement = Placement { region: region.as_deref(), capabilities: capabilities.as_deref() };
            update(ctx, ui, &id, secret, load_multiplier.as_deref(), tag, placement).await
        }
        ServersCommand::Remove { id } => remove(ctx, ui, &id).await,
        ServersCommand::Enable { id } => set_state(ctx, ui, &id, ServerState::Enabled).await,
        ServersCommand::Cordon { id } => set_state(ctx, ui, &id, ServerState::Cordoned).await,
        ServersCommand::Drain { id, deadline, message } => drain(ctx, ui, &id, deadline.as_deref(), message).await,
        ServersCommand::Drains => drains(ctx, ui).await,
        ServersCommand::Disable { id } => disable(ctx, ui, &id).await,
        ServersCommand::Panic { id, keep_state, skip_end_calls } => {
            panic(ctx, ui, &id, keep_state, skip_end_calls).await
        }
        ServersCommand::LoadMultiplier { id, load_multiplier } => set_multiplier(ctx, ui, &id, &load_multiplier).await,
        ServersCommand::Tag { id, tag } => set_tag(ctx, ui, &id, tag).await,
        ServersCommand::AddAll { file } => add_all(ctx, ui, &file).await,
        ServersCommand::Sync { file, mode, dry_run } => sync(ctx, ui, &file, &mode, dry_run).await,
        ServersCommand::Yaml { verbose } => yaml(ctx, ui, verbose).await,
        ServersCommand::MeetingList { ids } => meeting_list(ctx, ui, ids.as_deref()).await,
    }
}

/// `--region` and `--capabilities` as given.
#[derive(Clone, Copy, Debug, Default)]
struct Placement<'a> {
    region: Option<&'a str>,
    capabilities: Option<&'a str>,
}

impl Placement<'_> {
    /// The update these flags make (`ERROR: …` when a name is invalid).
    fn update(self, ui: &mut Ui<'_, '_>) -> Result<ServerUpdate, crate::output::Exit> {
        let mut update = ServerUpdate::default();
        placement_update(self.region, self.capabilities, &mut update).map_err(|e| ui.fail(format!("ERROR: {e}")))?;
        Ok(update)
    }
}

/// The capabilities of `server` as listed: declared, then automatic ones
/// marked `(auto)`.
pub(crate) fn capabilities_text(server: &Server) -> String {
    let declared = server.capabilities.iter().cloned();
    let automatic = server.automatic_capabilities().into_iter().map(|c| format!("{c} (auto)"));
    declared.chain(automatic).collect::<Vec<_>>().join(", ")
}

/// Every server, sorted by id (Redis set order is arbitrary).
pub(crate) async fn all_servers(ctx: &Ctx, ui: &mut Ui<'_, '_>) -> Result<Vec<Server>, crate::output::Exit> {
    let mut servers = ctx.fleet.servers().await.map_err(|e| ui.fail(format!("ERROR: {e}")))?;
    servers.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
    Ok(servers)
}

async fn list(ctx: &Ctx, ui: &mut Ui<'_, '_>) -> Outcome {
    let servers = all_servers(ctx, ui).await?;
    if servers.is_empty() {
        ui.error("No servers are configured");
    }
    let objects: Vec<Value> =
        servers.iter().map(|s| serde_json::to_value(server_json(s)).unwrap_or_default()).collect();
    ui.json(&Value::Array(objects));
    for server in &servers {
        ui.text(format!("id: {}", server.id));
        ui.text(format!("\turl: {}", server.url));
        ui.text(format!("\tsecret: {}", server.secret.expose()));
        ui.text(format!("\t{}", state_name(server)));
        ui.text(format!("\tload: {}", server.load.map_or_else(|| "unavailable".to_owned(), format_float)));
        let multiplier = server.load_multiplier.as_deref().map_or_else(|| "1.0".to_owned(), |m| format_float(to_d(m)));
        ui.text(format!("\tload multiplier: {multiplier}"));
        ui.text(format!("\tbbb version: {}", server.bbb_version.as_deref().unwrap_or_default()));
        ui.text(format!("\ttag: {}", server.tag.as_deref().unwrap_or_default()));
        // Scalelite's lines stay as they are; the new ones only for servers
        // the operator gave a region or capabilities.
        if server.region.is_some() || !server.capabilities.is_empty() {
            ui.text(format!("\tregion: {}", server.region.as_deref().unwrap_or_default()));
            ui.text(format!("\tcapabilities: {}", capabilities_text(server)));
        }
        ui.text(format!("\t{}", if server.online { "online" } else { "offline" }));
    }
    Ok(())
}

async fn add(
    ctx: &Ctx,
    ui: &mut Ui<'_, '_>,
    url: &str,
    secret: &str,
    load_multiplier: Option<&str>,
    tag: Option<&str>,
    placement: Placement<'_>,
) -> Outcome {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ui.fail("Error: Server URL must start with http:// or https://"));
    }
    let placement = placement.update(ui)?;
    let (multiplier, warned) = multiplier_arg(load_multiplier);
    if warned {
        ui.notice(MULTIPLIER_WARNING);
    }
    let server =
        ctx.fleet.add_server(url, secret, Some(multiplier), tag).await.map_err(|e| ui.fail(format!("ERROR: {e}")))?;
    if !placement.is_empty() {
        ctx.fleet.update_server(&server.id, &placement).await.map_err(|e| ui.fail(format!("ERROR: {e}")))?;
    }
    ui.text("OK");
    ui.text(format!("id: {}", server.id));
    ui.json(&json!({ "ok": true, "id": server.id.as_str() }));
    Ok(())
}

async fn drain(ctx: &Ctx, ui: &mut Ui<'_, '_>, id: &str, deadline: Option<&str>, message: Option<String>) -> Outcome {
    let deadline = match deadline {
        Some(raw) => Some(parse_deadline(raw).map_err(|e| ui.fail(format!("ERROR: {e}")))?),
        None => None,
    };
    let sid = ServerId::from(id);
    let settings = DrainSettings::from_config(&ctx.config.drain);
    let status =
        ctx.fleet.start_drain(&sid, deadline, message, &settings).await.map_err(|e| fleet_failure(ui, &sid, &e))?;
    ui.text(format!("Draining server {id}"));
    ui.text(status.line());
    ui.json(&serde_json::to_value(&status).unwrap_or_default());
    Ok(())
}

async fn drains(ctx: &Ctx, ui: &mut Ui<'_, '_>) -> Outcome {
    let drains = ctx.fleet.drains().await.map_err(|e| ui.fail(format!("ERROR: {e}")))?;
    if drains.is_empty() {
        ui.text("No drains");
    }
    for drain in &drains {
        ui.text(drain.line());
    }
    ui.json(&serde_json::to_value(&drains).unwrap_or_default());
    Ok(())
}

/// `servers:addAll`: adds each `{url, secret}` of the document's `servers`
/// list as `servers add` would (no tag, no load multiplier), printing
/// `server: <url>` and `id: <id>` for each. The first failure stops it with
/// exit 1 (the rake task only prints the error); servers added before it
/// stay.
async fn add_all(ctx: &Ctx, ui: &mut Ui<'_, '_>, file: &str) -> Outcome {
    let document = if file == "-" { ui.read_input() } else { std::fs::read_to_string(file) };
    let document = document.map_err(|e| ui.fail(format!("ERROR: {file}: {e}")))?;
    let value: Value = serde_yaml_ng::from_str(&document).map_err(|e| ui.fail(format!("ERROR: {file}: {e}")))?;
    let Some(entries) = value.get("servers").and_then(Value::as_array) else {
        return Err(ui.fail(format!("ERROR: {file}: no `servers` list")));
    };
    let mut added = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        let field = |name: &str| entry.get(name).and_then(Value::as_str).filter(|v| !v.trim().is_empty());
        let (Some(url), Some(secret)) = (field("url"), field("secret")) else {
            ui.json(&json!({ "ok": false, "added": added }));
            return Err(ui.fail(format!("ERROR: servers[{index}]: `url` and `secret` are required")));
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            ui.json(&json!({ "ok": false, "added": added }));
            return Err(ui.fail(format!("ERROR: servers[{index}]: Server URL must start with http:// or https://")));
        }
        let server = match ctx.fleet.add_server(url, secret, None, None).await {
            Ok(server) => server,
            Err(e) => {
                ui.json(&json!({ "ok": false, "added": added }));
                return Err(ui.fail(format!("ERROR: {e}")));
            }
        };
        ui.text(format!("server: {}", server.url));
        ui.text(format!("id: {}", server.id));
        added.push(json!({ "id": server.id.as_str(), "url": server.url }));
    }
    ui.json(&json!({ "ok": true, "added": added }));
    Ok(())
}

async fn update(
    ctx: &Ctx,
    ui: &mut Ui<'_, '_>,
    id: &str,
    secret: Option<String>,
    load_multiplier: Option<&str>,
    tag: Option<String>,
    placement: Placement<'_>,
) -> Outcome {
    ui.text(format!("Updating server {id}..."));
    let sid = ServerId::from(id);
    ctx.fleet.server(&sid).await.map_err(|e| fleet_failure(ui, &sid, &e))?;
    let mut update = ServerUpdate { secret: secret.map(Secret::new), ..placement.update(ui)? };
    if let Some(raw) = load_multiplier {
        let (multiplier, warned) = multiplier_arg(Some(raw));
        if warned {
            ui.notice(MULTIPLIER_WARNING);
        }
        update.load_multiplier = Some(multiplier);
    }
    update.tag = tag.map(|t| Some(t).filter(|t| !t.is_empty()));
    if !update.is_empty() {
        ctx.fleet.update_server(&sid, &update).await.map_err(|e| fleet_failure(ui, &sid, &e))?;
    }
    ui.text("OK");
    ui.json(&json!({ "ok": true, "id": id }));
    Ok(())
}

async fn remove(ctx: &Ctx, ui: &mut Ui<'_, '_>, id: &str) -> Outcome {
    ui.text(format!("Removing server {id}..."));
    let sid = ServerId::from(id);
    let server = ctx.fleet.server(&sid).await.map_err(|e| fleet_failure(ui, &sid, &e))?;
    let meetings = ctx.fleet.meetings_on(&sid).await.map_err(|e| fleet_failure(ui, &sid, &e))?.len();
    let warning = format!(
        "WARNING: You are about to remove server {id} ({}). Its {meetings} meeting(s) stay recorded \
         and running; use `servers panic` first to end them.",
        server.url
    );
    if !ui.confirm(&[warning]) {
        ui.notice(format!("Server {id} was not removed"));
        ui.json(&json!({ "ok": false, "declined": true, "id": id }));
        return Ok(());
    }
    ctx.fleet.remove_server(&sid).await.map_err(|e| fleet_failure(ui, &sid, &e))?;
    ui.text("OK");
    ui.json(&json!({ "ok": true, "id": id }));
    Ok(())
}

async fn set_state(ctx: &Ctx, ui: &mut Ui<'_, '_>, id: &str, state: ServerState) -> Outcome {
    let doing = match state {
        ServerState::Enabled => "Enabling",
        ServerState::Cordoned => "Cordoning",
        ServerState::Disabled => "Disabling",
    };
    ui.text(format!("{doing} server {id}..."));
    let sid = ServerId::from(id);
    match ctx.fleet.set_state(&sid, state).await {
        Ok(_) => {}
        Err(error @ FleetError::NotFound(_)) => return Err(fleet_failure(ui, &sid, &error)),
        Err(error) if state == ServerState::Cordoned => {
            return Err(ui.fail(format!("ERROR: Failed to cordon server {id} - {error}")));
        }
        Err(error) => return Err(fleet_failure(ui, &sid, &error)),
    }
    ui.text("OK");
    ui.json(&json!({ "ok": true, "id": id, "state": state.as_str() }));
    Ok(())
}

/// Prints `Clearing Meeting id=…` per meeting and the failed `end` calls.
fn report_cleared(ui: &mut Ui<'_, '_>, cleared: &[Cleared]) {
    for meeting in cleared {
        ui.text(format!("Clearing Meeting id={}", meeting.id));
        if let Some(error) = &meeting.end_error {
            ui.error(format!("WARNING: Could not end meeting id={}: {error}", meeting.id));
        }
    }
}

/// The JSON summary of cleared meetings.
fn cleared_json(cleared: &[Cleared]) -> (Value, Value) {
    let ids: Vec<Value> = cleared.iter().map(|c| Value::from(c.id.as_str())).collect();
    let failures: Vec<Value> = cleared
        .iter()
        .filter_map(|c| c.end_error.as_ref().map(|e| json!({ "id": c.id.as_str(), "error": e })))
        .collect();
    (Value::Array(ids), Value::Array(failures))
}

async fn disable(ctx: &Ctx, ui: &mut Ui<'_, '_>, id: &str) -> Outcome {
    ui.text(format!("Disabling server {id}..."));
    let sid = ServerId::from(id);
    let server = ctx.fleet.server(&sid).await.map_err(|e| fleet_failure(ui, &sid, &e))?;
    let mut cleared = Vec::new();
    if server.load.unwrap_or(0.0) > 0.0 {
        if !ui.confirm(&[DISABLE_WARNING.to_owned()]) {
            // As in Scalelite: the state is left alone and the task still says OK.
            ui.text("OK");
            ui.json(&json!({ "ok": false, "declined": true, "id": id, "state": state_name(&server) }));
            return Ok(());
        }
        cleared = ctx.fleet.clear_meetings(&server, true).await.map_err(|e| fleet_failure(ui, &sid, &e))?;
        report_cleared(ui, &cleared);
    }
    ctx.fleet.set_state(&sid, ServerState::Disabled).await.map_err(|e| fleet_failure(ui, &sid, &e))?;
    ui.text("OK");
    let (ids, failures) = cleared_json(&cleared);
    ui.json(&json!({ "ok": true, "id": id, "state": "disabled", "cleared": ids, "end_failures": failures }));
    Ok(())
}

async fn panic(ctx: &Ctx, ui: &mut Ui<'_, '_>, id: &str, keep_state: bool, skip_end_calls: bool) -> Outcome {
    ui.text(format!("Panicking server {id}..."));
    let sid = ServerId::from(id);
    let failed = |ui: &mut Ui<'_, '_>, error: FleetError| match error {
        FleetError::NotFound(_) => fleet_failure(ui, &sid, &error),
        other => ui.fail(format!("ERROR: Failed to panic server {id} - {other}")),
    };
    let server = match ctx.fleet.server(&sid).await {
        Ok(server) => server,
        Err(error) => return Err(failed(ui, error)),
    };
    let meetings = match ctx.fleet.meetings_on(&sid).await {
        Ok(meetings) => meetings.len(),
        Err(error) => return Err(failed(ui, error)),
    };
    let mut what = format!("forget its {meetings} meeting(s)");
    if !skip_end_calls {
        what.push_str(", end them on the server");
    }
    if !keep_state {
        what.push_str(" and disable it");
    }
    let warning = format!("WARNING: You are about to panic server {id} ({}): {what}.", server.url);
    if !ui.confirm(&[warning]) {
        ui.notice(format!("Server {id} was not panicked"));
        ui.json(&json!({ "ok": false, "declined": true, "id": id }));
        return Ok(());
    }
    let cleared = match ctx.fleet.panic_server(&sid, keep_state, skip_end_calls).await {
        Ok(cleared) => cleared,
        Err(error) => return Err(failed(ui, error)),
    };
    report_cleared(ui, &cleared);
    ui.text("OK");
    let (ids, failures) = cleared_json(&cleared);
    let state = if keep_state { state_name(&server) } else { "disabled".to_owned() };
    ui.json(&json!({ "ok": true, "id": id, "state": state, "cleared": ids, "end_failures": failures }));
    Ok(())
}

async fn set_multiplier(ctx: &Ctx, ui: &mut Ui<'_, '_>, id: &str, raw: &str) -> Outcome {
    let sid = ServerId::from(id);
    ctx.fleet.server(&sid).await.map_err(|e| fleet_failure(ui, &sid, &e))?;
    let (multiplier, warned) = multiplier_arg(Some(raw));
    if warned {
        ui.notice(MULTIPLIER_WARNING);
    }
    let update = ServerUpdate { load_multiplier: Some(multiplier.clone()), ..ServerUpdate::default() };
    ctx.fleet.update_server(&sid, &update).await.map_err(|e| fleet_failure(ui, &sid, &e))?;
    ui.text("OK");
    ui.json(&json!({ "ok": true, "id": id, "load_multiplier": multiplier }));
    Ok(())
}

async fn set_tag(ctx: &Ctx, ui: &mut Ui<'_, '_>, id: &str, tag: Option<String>) -> Outcome {
    let sid = ServerId::from(id);
    let tag = tag.filter(|t| !t.is_empty());
    let update = ServerUpdate { tag: Some(tag.clone()), ..ServerUpdate::default() };
    ctx.fleet.update_server(&sid, &update).await.map_err(|e| fleet_failure(ui, &sid, &e))?;
    ui.text("OK");
    ui.json(&json!({ "ok": true, "id": id, "tag": tag }));
    Ok(())
}

async fn sync(ctx: &Ctx, ui: &mut Ui<'_, '_>, file: &str, mode: &str, dry_run: bool) -> Outcome {
    let mode: SyncMode = mode.parse().map_err(|e: FleetError| ui.fail(format!("ERROR: {e}")))?;
    let confirm = mode == SyncMode::Force && !dry_run && !ui.yes;
    if confirm && file == "-" {
        return Err(ui.fail(
            "ERROR: --mode force asks for confirmation on stdin, which holds the document; pass --yes to go ahead",
        ));
    }
    let document = if file == "-" { ui.read_input() } else { std::fs::read_to_string(file) };
    let document = document.map_err(|e| ui.fail(format!("ERROR: {file}: {e}")))?;
    if confirm {
        let plan = ctx.fleet.sync(&document, mode, true).await.map_err(|e| ui.fail(format!("ERROR: {e}")))?;
        let mut warning = vec![
            "WARNING: --mode force ends every meeting on the servers missing from the document, then removes them."
                .to_owned(),
            "Planned changes:".to_owned(),
        ];
        warning.extend(plan.iter().map(|line| format!("\t{line}")));
        if !ui.confirm(&warning) {
            ui.notice("Nothing was changed");
            ui.json(&json!({ "ok": false, "declined": true }));
            return Ok(());
        }
    }
    let actions = ctx.fleet.sync(&document, mode, dry_run).await.map_err(|e| ui.fail(format!("ERROR: {e}")))?;
    for action in &actions {
        ui.text(action);
    }
    ui.json(&json!({ "ok": true, "dry_run": dry_run, "actions": actions }));
    Ok(())
}

async fn yaml(ctx: &Ctx, ui: &mut Ui<'_, '_>, verbose: bool) -> Outcome {
    let servers = all_servers(ctx, ui).await?;
    let dump = dump_yaml(&servers, verbose);
    if ui.json {
        let value: Value = serde_yaml_ng::from_str(&dump).map_err(|e| ui.fail(format!("ERROR: {e}")))?;
        ui.json(&value);
    } else {
        ui.text_raw(&dump);
    }
    Ok(())
}

/// What `getMeetings` said about one server.
type MeetingNames = Result<Vec<(String, String)>, String>;

async fn meeting_list(ctx: &Ctx, ui: &mut Ui<'_, '_>, ids: Option<&str>) -> Outcome {
    let ids = split_ids(ids);
    let servers = if ids.is_empty() {
        all_servers(ctx, ui).await?
    } else {
        let mut servers = Vec::with_capacity(ids.len());
        for id in &ids {
            let sid = ServerId::from(id.as_str());
            servers.push(ctx.fleet.server(&sid).await.map_err(|e| fleet_failure(ui, &sid, &e))?);
        }
        servers
    };
    let results: Vec<(Server, MeetingNames)> = stream::iter(servers)
        .map(|server| async move {
            let names = running_meetings(ctx, &server).await;
            (server, names)
        })
        .buffered(ctx.concurrency())
        .collect()
        .await;
    let mut objects = Vec::with_capacity(results.len());
    for (server, names) in results {
        ui.text("");
        ui.text(format!("Server ID: {}", server.id));
        ui.text(format!("Server Url: {}", server.url));
        match &names {
            Ok(names) => {
                ui.text("MeetingIDs: ");
                if names.is_empty() {
                    // Scalelite prints an empty tab-indented line, then the note.
                    ui.text("\t");
                    ui.error("\tNo meetings to display");
                }
                for (_, name) in names {
                    ui.text(format!("\t{name}"));
                }
            }
            Err(error) => {
                ui.error(format!("\nFailed to get server id={} status: {error}", server.id));
            }
        }
        let (meetings, error) = match names {
            Ok(names) => (
                Value::Array(
                    names.into_iter().map(|(id, name)| json!({ "meeting_id": id, "meeting_name": name })).collect(),
                ),
                Value::Null,
            ),
            Err(error) => (Value::Null, Value::from(error)),
        };
        objects.push(json!({
            "server_id": server.id.as_str(),
            "server_url": server.url,
            "meetings": meetings,
            "error": error,
        }));
    }
    ui.json(&Value::Array(objects));
    Ok(())
}

/// `(meetingID, meetingName)` of every meeting `server` reports.
async fn running_meetings(ctx: &Ctx, server: &Server) -> MeetingNames {
    let target = Target { url: &server.url, secret: &server.secret, online: server.online };
    let reply = ctx.fleet.bbb.get(&target, "getMeetings", "").await.map_err(|e| e.to_string())?;
    let Some(meetings) = reply.doc.child("meetings") else {
        return Ok(Vec::new());
    };
    Ok(meetings
        .children_named("meeting")
        .map(|m| (m.text_at("meetingID").unwrap_or_default(), m.text_at("meetingName").unwrap_or_default()))
        .collect())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{Cli, Command};

    fn parse(args: &[&str]) -> ServersCommand {
        let cli = Cli::try_parse_from(std::iter::once("scalelite-admin").chain(args.iter().copied())).unwrap();
        let Command::Servers(opts) = cli.command else { panic!("not a servers command: {args:?}") };
        opts.command.unwrap_or(ServersCommand::List)
    }

    #[test]
    fn every_form_parses() {
        assert!(matches!(parse(&["servers"]), ServersCommand::List));
        assert!(matches!(parse(&["servers", "list"]), ServersCommand::List));
        let ServersCommand::Add { url, secret, load_multiplier, tag, region, capabilities } =
            parse(&["servers", "add", "https://b/bigbluebutton/api", "s", "--load-multiplier", "2", "--tag", "gpu"])
        else {
            panic!()
        };
        assert_eq!((url.as_str(), secret.as_str()), ("https://b/bigbluebutton/api", "s"));
        assert_eq!((load_multiplier.as_deref(), tag.as_deref()), (Some("2"), Some("gpu")));
        assert_eq!((region, capabilities), (None, None));
        let ServersCommand::Update { id, secret, load_multiplier, tag, region, capabilities } =
            parse(&["servers", "update", "a", "--tag", "", "--region", "eu", "--capabilities", "livekit,sip"])
        else {
            panic!()
        };
        assert_eq!((id.as_str(), secret, load_multiplier, tag.as_deref()), ("a", None, None, Some("")));
        assert_eq!((region.as_deref(), capabilities.as_deref()), (Some("eu"), Some("livekit,sip")));
        assert!(matches!(parse(&["servers", "remove", "a"]), ServersCommand::Remove { id } if id == "a"));
        assert!(matches!(parse(&["servers", "enable", "a"]), ServersCommand::Enable { .. }));
        assert!(matches!(parse(&["servers", "cordon", "a"]), ServersCommand::Cordon { .. }));
        assert!(matches!(parse(&["servers", "disable", "a"]), ServersCommand::Disable { .. }));
        assert!(matches!(
            parse(&["servers", "panic", "a", "--keep-state", "--skip-end-calls"]),
            ServersCommand::Panic { keep_state: true, skip_end_calls: true, .. }
        ));
        assert!(matches!(
            parse(&["servers", "panic", "a"]),
            ServersCommand::Panic { keep_state: false, skip_end_calls: false, .. }
        ));
        assert!(matches!(
            parse(&["servers", "load-multiplier", "a", "1.5"]),
            ServersCommand::LoadMultiplier { load_multiplier, .. } if load_multiplier == "1.5"
        ));
        assert!(matches!(parse(&["servers", "loadMultiplier", "a", "-1"]), ServersCommand::LoadMultiplier { .. }));
        assert!(matches!(parse(&["servers", "tag", "a"]), ServersCommand::Tag { tag: None, .. }));
        assert!(
            matches!(parse(&["servers", "tag", "a", "gpu"]), ServersCommand::Tag { tag: Some(t), .. } if t == "gpu")
        );
        assert!(matches!(
            parse(&["servers", "sync", "-"]),
            ServersCommand::Sync { file, mode, dry_run: false } if file == "-" && mode == "cordon"
        ));
        assert!(matches!(
            parse(&["servers", "sync", "f.yml", "--mode", "force", "--dry-run"]),
            ServersCommand::Sync { mode, dry_run: true, .. } if mode == "force"
        ));
        assert!(matches!(parse(&["servers", "yaml", "--verbose"]), ServersCommand::Yaml { verbose: true }));
        assert!(matches!(parse(&["servers", "meeting-list"]), ServersCommand::MeetingList { ids: None }));
        assert!(matches!(
            parse(&["servers", "meeting_list", "a:b"]),
            ServersCommand::MeetingList { ids: Some(ids) } if ids == "a:b"
        ));
    }

    #[test]
    fn missing_arguments_are_usage_errors() {
        for args in [
            &["servers", "add"][..],
            &["servers", "add", "https://b/bigbluebutton/api"],
            &["servers", "add", "https://b/bigbluebutton/api", ""],
            &["servers", "update"],
            &["servers", "update", "a", "--secret", ""],
            &["servers", "remove"],
            &["servers", "load-multiplier", "a"],
            &["servers", "sync"],
            &["servers", "panic", "a", "--keep-state=false"],
        ] {
            let argv = std::iter::once("scalelite-admin").chain(args.iter().copied());
            assert_eq!(Cli::try_parse_from(argv).unwrap_err().exit_code(), 2, "{args:?}");
        }
    }
}
