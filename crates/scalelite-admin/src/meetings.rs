//! `meetings …`: Scalelite's `meetings`, `meetings:list`, `meetings:info`
//! and `meetings:end` rake tasks.

use std::collections::HashMap;

use clap::{Args, Subcommand};
use futures::stream::{self, StreamExt};
use scalelite_bbb_client::Target;
use scalelite_core::params::encode_component_into;
use scalelite_core::xml::Element;
use scalelite_core::{MeetingId, ServerId};
use scalelite_store::{Meeting, Server};
use serde_json::{Map, Value, json};

use crate::Ctx;
use crate::output::{Exit, Outcome, Ui, split_ids};

/// Scalelite's warning before ending meetings.
pub const END_WARNING: &str = "WARNING: You are trying to clear active meetings.";

/// The metadata `meetings info` prints, in Scalelite's order.
pub const INFO_METADATA: [&str; 12] = [
    "bbb-context-name",
    "analytics-callback-url",
    "bbb-recording-tags",
    "bbb-origin-server-common-name",
    "bbb-context-label",
    "bbb-origin",
    "bbb-context",
    "bbb-context-id",
    "bbb-recording-name",
    "bbb-origin-server-name",
    "bbb-recording-description",
    "bbb-origin-tag",
];

/// `meetings [COMMAND] [IDS]`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Opts {
    /// What to do; without one, the meetings are listed.
    #[command(subcommand)]
    pub command: Option<MeetingsCommand>,
    /// Meeting ids separated by `:` (default: every meeting), for the listing.
    pub ids: Option<String>,
}

/// The `meetings` subcommands.
#[derive(Debug, Subcommand)]
pub enum MeetingsCommand {
    /// List meetings with their server (asks each meeting's server).
    List {
        /// Meeting ids separated by `:` (default: every meeting).
        ids: Option<String>,
    },
    /// Show a meeting's details as its server reports them.
    Info {
        /// Meeting id.
        id: String,
    },
    /// Forget meetings and end them on their servers.
    End {
        /// Meeting ids separated by `:` (default: every meeting).
        ids: Option<String>,
    },
}

/// Runs a `meetings` command.
pub(crate) async fn run(opts: Opts, ctx: &Ctx, ui: &mut Ui<'_, '_>) -> Outcome {
    match opts.command {
        None => list(ctx, ui, opts.ids.as_deref()).await,
        Some(MeetingsCommand::List { ids }) => list(ctx, ui, ids.as_deref()).await,
        Some(MeetingsCommand::Info { id }) => info(ctx, ui, &id).await,
        Some(MeetingsCommand::End { ids }) => end(ctx, ui, ids.as_deref()).await,
    }
}

/// A meeting record with its server record (`None` when that is gone).
type Routed = (Meeting, Option<Server>);

/// The given meetings (each must exist), or every meeting sorted by id.
async fn resolve(ctx: &Ctx, ui: &mut Ui<'_, '_>, ids: Option<&str>) -> Result<Vec<Routed>, Exit> {
    let ids = split_ids(ids);
    if ids.is_empty() {
        let mut meetings: Vec<Meeting> = ctx
            .store
            .meetings()
            .await
            .map_err(|e| ui.fail(format!("ERROR: {e}")))?
            .into_iter()
            .map(|r| r.meeting)
            .collect();
        meetings.sort_by(|a, b| a.id.as_str().cmp(b.id.as_str()));
        let servers: HashMap<ServerId, Server> = ctx
            .fleet
            .servers()
            .await
            .map_err(|e| ui.fail(format!("ERROR: {e}")))?
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect();
        return Ok(meetings
            .into_iter()
            .map(|m| {
                let server = servers.get(&m.server_id).cloned();
                (m, server)
            })
            .collect());
    }
    let mut routed = Vec::with_capacity(ids.len());
    for id in ids {
        let route = ctx
            .store
            .find_meeting(&MeetingId::new(id.clone()), None)
            .await
            .map_err(|e| ui.fail(format!("ERROR: {e}")))?;
        let Some(route) = route else {
            return Err(ui.fail(format!("ERROR: No meeting found with id: {id}")));
        };
        routed.push((route.meeting, route.server));
    }
    Ok(routed)
}

/// `getMeetingInfo` for `meeting` on its server.
async fn meeting_info(ctx: &Ctx, meeting: &Meeting, server: Option<&Server>) -> Result<Element, String> {
    let Some(server) = server else {
        return Err(format!("Couldn't find Server with id={}", meeting.server_id));
    };
    let mut query = String::from("meetingID=");
    encode_component_into(&mut query, meeting.id.as_str());
    let target = Target { url: &server.url, secret: &server.secret, online: server.online };
    ctx.fleet.bbb.get(&target, "getMeetingInfo", &query).await.map(|reply| reply.doc).map_err(|e| e.to_string())
}

async fn list(ctx: &Ctx, ui: &mut Ui<'_, '_>, ids: Option<&str>) -> Outcome {
    let routed = resolve(ctx, ui, ids).await?;
    let results: Vec<(Routed, Result<Element, String>)> = stream::iter(routed)
        .map(|(meeting, server)| async move {
            let info = meeting_info(ctx, &meeting, server.as_ref()).await;
            ((meeting, server), info)
        })
        .buffered(ctx.concurrency())
        .collect()
        .await;
    let mut objects = Vec::with_capacity(results.len());
    for ((meeting, server), info) in results {
        let (url, server_id) = server
            .as_ref()
            .map_or((String::new(), meeting.server_id.to_string()), |s| (s.url.clone(), s.id.to_string()));
        match info {
            Ok(doc) => {
                let reported = doc.text_at("meetingID").unwrap_or_default();
                ui.text("");
                ui.text(format!("MeetingID: {reported}"));
                ui.text(format!("\tServer ID: {server_id}"));
                ui.text(format!("\tServer Url: {url}"));
                objects.push(json!({
                    "meeting_id": reported,
                    "server_id": server_id,
                    "server_url": url,
                    "error": null,
                }));
            }
            Err(error) => {
                ui.error(format!("Failed to get meeting id={} status: {error}", meeting.id));
                objects.push(json!({
                    "meeting_id": meeting.id.as_str(),
                    "server_id": server_id,
                    "server_url": url,
                    "error": error,
                }));
            }
        }
    }
    ui.json(&Value::Array(objects));
    Ok(())
}

async fn info(ctx: &Ctx, ui: &mut Ui<'_, '_>, id: &str) -> Outcome {
    if id.is_empty() {
        return Err(ui.fail("Error: Please input a meetingID!"));
    }
    let route = ctx.store.find_meeting(&MeetingId::from(id), None).await.map_err(|e| ui.fail(format!("ERROR: {e}")))?;
    let Some(route) = route else {
        return Err(ui.fail(format!("ERROR: No meeting found with id: {id}")));
    };
    let (meeting, server) = (route.meeting, route.server);
    let doc = match meeting_info(ctx, &meeting, server.as_ref()).await {
        Ok(doc) => doc,
        Err(error) => {
            // Scalelite warns and exits 0.
            ui.error(format!("WARNING: Could not get info for meeting id={}: {error}", meeting.id));
            ui.json(&json!({ "meeting_id": meeting.id.as_str(), "error": error }));
            return Ok(());
        }
    };
    let server_url = server.as_ref().map(|s| s.url.clone()).unwrap_or_default();
    let text = |name: &str| doc.text_at(name).unwrap_or_default();
    let metadata = doc.child("metadata");
    let meta = |name: &str| metadata.and_then(|m| m.text_at(name)).unwrap_or_default();
    ui.text("");
    ui.text(format!("Meeting ID: {}", text("meetingID")));
    ui.text(format!("\tMeeting Name: {}", text("meetingName")));
    ui.text(format!("\tInternal MeetingID: {}", text("internalMeetingID")));
    ui.text(format!("\tCreated Date: {}", text("createDate")));
    ui.text(format!("\tRecording Enabled: {}", text("recording")));
    ui.text(format!("\tServer id: {}", meeting.server_id));
    // Scalelite's label, misspelling included: operators grep for it.
    ui.text(format!("\tSerevr url: {server_url}"));
    ui.text("\tMetaData:");
    for name in INFO_METADATA {
        ui.text(format!("\t\t{name}: {}", meta(name)));
    }
    let all_metadata: Map<String, Value> =
        metadata.map(|m| m.elements().map(|e| (e.name.clone(), Value::from(e.text()))).collect()).unwrap_or_default();
    ui.json(&json!({
        "meeting_id": text("meetingID"),
        "meeting_name": text("meetingName"),
        "internal_meeting_id": text("internalMeetingID"),
        "create_date": text("createDate"),
        "recording": text("recording"),
        "server_id": meeting.server_id.as_str(),
        "server_url": server_url,
        "metadata": all_metadata,
    }));
    Ok(())
}

async fn end(ctx: &Ctx, ui: &mut Ui<'_, '_>, ids: Option<&str>) -> Outcome {
    if !ui.confirm(&[END_WARNING.to_owned()]) {
        // Scalelite says OK whatever the answer.
        ui.text("OK");
        ui.json(&json!({ "ok": false, "declined": true }));
        return Ok(());
    }
    let routed = resolve(ctx, ui, ids).await?;
    if routed.is_empty() {
        ui.error("No meetings to clear");
    }
    let results: Vec<(MeetingId, Result<(), String>)> = stream::iter(routed)
        .map(|(meeting, server)| async move {
            let result = clear(ctx, &meeting, server.as_ref()).await;
            (meeting.id, result)
        })
        .buffered(ctx.concurrency())
        .collect()
        .await;
    let mut cleared = Vec::with_capacity(results.len());
    let mut failures = Vec::new();
    for (id, result) in results {
        ui.error(format!("Clearing Meeting id={id}"));
        if let Err(error) = result {
            ui.error(format!("WARNING: Could not end meeting id={id}: {error}"));
            failures.push(json!({ "id": id.as_str(), "error": error }));
        }
        cleared.push(Value::from(id.into_string()));
    }
    ui.text("OK");
    ui.json(&json!({ "ok": true, "cleared": cleared, "end_failures": failures }));
    Ok(())
}

/// Forgets `meeting`, then sends `end` to its server with the stored
/// moderator password.
async fn clear(ctx: &Ctx, meeting: &Meeting, server: Option<&Server>) -> Result<(), String> {
    ctx.store.delete_meeting(&meeting.id, Some(&meeting.server_id)).await.map_err(|e| e.to_string())?;
    let Some(server) = server else {
        return Err(format!("Couldn't find Server with id={}", meeting.server_id));
    };
    ctx.fleet.end_meeting(server, meeting).await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{Cli, Command};

    fn parse(args: &[&str]) -> Opts {
        let cli = Cli::try_parse_from(std::iter::once("scalelite-admin").chain(args.iter().copied())).unwrap();
        let Command::Meetings(opts) = cli.command else { panic!("not a meetings command: {args:?}") };
        opts
    }

    #[test]
    fn every_form_parses() {
        let opts = parse(&["meetings"]);
        assert!(opts.command.is_none() && opts.ids.is_none());
        let opts = parse(&["meetings", "a:b"]);
        assert!(opts.command.is_none());
        assert_eq!(opts.ids.as_deref(), Some("a:b"));
        assert!(matches!(parse(&["meetings", "list"]).command, Some(MeetingsCommand::List { ids: None })));
        assert!(matches!(
            parse(&["meetings", "list", "a:b"]).command,
            Some(MeetingsCommand::List { ids: Some(ids) }) if ids == "a:b"
        ));
        assert!(matches!(parse(&["meetings", "info", "m"]).command, Some(MeetingsCommand::Info { id }) if id == "m"));
        assert!(matches!(parse(&["meetings", "end"]).command, Some(MeetingsCommand::End { ids: None })));
        assert!(matches!(
            parse(&["meetings", "end", "a", "--yes"]).command,
            Some(MeetingsCommand::End { ids: Some(ids) }) if ids == "a"
        ));
    }

    #[test]
    fn info_needs_an_id() {
        let error = Cli::try_parse_from(["scalelite-admin", "meetings", "info"]).unwrap_err();
        assert_eq!(error.exit_code(), 2);
    }
}
