//! `db migrate` and `db status`: the PostgreSQL schema (Scalelite's
//! `rake db:migrate`). The API never migrates on its own; its health check
//! fails while a migration is pending. The embedded database brings its
//! schema up to date whenever it is opened, so both commands only say so.

use clap::{Args, Subcommand};
use scalelite_core::config::Backend;
use serde_json::json;

use crate::Ctx;
use crate::output::{Outcome, Ui};

/// `db` subcommands.
#[derive(Debug, Args)]
pub struct Opts {
    /// What to do.
    #[command(subcommand)]
    pub command: DbCommand,
}

/// What `db` does.
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Apply pending migrations (a database made by Ruby Scalelite is
    /// adopted: only the migrations it lacks run).
    Migrate,
    /// List applied and pending migrations.
    Status,
}

/// Runs a `db` command.
pub(crate) async fn run(opts: Opts, ctx: &Ctx, ui: &mut Ui<'_, '_>) -> Outcome {
    if let Backend::Embedded { data_dir } = &ctx.config.backend {
        // Opening the context already brought the schema up to date.
        let file = data_dir.join(Backend::DATABASE_FILE);
        ui.text(format!("Database is up to date (the embedded database {} migrates itself)", file.display()));
        ui.json(&json!({ "embedded": file, "applied": [], "pending": [] }));
        return Ok(());
    }
    let db = ctx.postgres.as_ref().ok_or_else(|| ui.fail("ERROR: DATABASE_URL is not set"))?;
    match opts.command {
        DbCommand::Migrate => {
            let applied = db.migrate().await.map_err(|e| ui.fail(format!("ERROR: {e}")))?;
            if applied.is_empty() {
                ui.text("Database is up to date");
            }
            for version in &applied {
                ui.text(format!("migrated {version}"));
            }
            ui.json(&json!({ "applied": applied }));
        }
        DbCommand::Status => {
            let pending = db.pending_migrations().await.map_err(|e| ui.fail(format!("ERROR: {e}")))?;
            let all = scalelite_store::postgres::migrate::MIGRATIONS;
            for migration in all {
                let state = if pending.contains(&migration.version) { "pending" } else { "up" };
                ui.text(format!("{state:>7}  {}  {}", migration.version, migration.name));
            }
            ui.json(&json!({
                "migrations": all.iter().map(|m| json!({
                    "version": m.version,
                    "name": m.name,
                    "applied": !pending.contains(&m.version),
                })).collect::<Vec<_>>(),
            }));
            if !pending.is_empty() {
                return Err(
                    ui.fail(format!("{} migration(s) pending: run `scalelite-admin db migrate`", pending.len()))
                );
            }
        }
    }
    Ok(())
}
