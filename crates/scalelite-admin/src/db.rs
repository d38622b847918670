//! `db migrate` and `db status`: the PostgreSQL schema (Scalelite's
//! `rake db:migrate`). The API never migrates on its own; its health check
//! fails while a migration is pending. The embedded database brings its
//! schema up to date whenever it is opened, so both commands only say so.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use scalelite_core::config::Backend;
use scalelite_store::PgStore;
use serde_json::json;

use crate::Ctx;
use crate::output::{Exit, Outcome, Ui};

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
    /// Write a consistent copy of the embedded database to FILE while the
    /// API keeps running (for Redis and PostgreSQL use their own tools).
    Backup {
        /// Where to write the copy; must not exist.
        file: PathBuf,
    },
}

/// Runs a `db` command.
pub(crate) async fn run(opts: Opts, ctx: &Ctx, ui: &mut Ui<'_, '_>) -> Outcome {
    match (opts.command, &ctx.config.backend) {
        (DbCommand::Backup { file }, _) => backup(ctx, ui, &file).await,
        (DbCommand::Migrate | DbCommand::Status, Backend::Embedded { data_dir }) => {
            // Opening the context already brought the schema up to date.
            let file = data_dir.join(Backend::DATABASE_FILE);
            ui.text(format!("Database is up to date (the embedded database {} migrates itself)", file.display()));
            ui.json(&json!({ "embedded": file, "applied": [], "pending": [] }));
            Ok(())
        }
        (DbCommand::Migrate, Backend::Services) => migrate(ctx, ui).await,
        (DbCommand::Status, Backend::Services) => status(ctx, ui).await,
    }
}

fn postgres<'c>(ctx: &'c Ctx, ui: &mut Ui<'_, '_>) -> Result<&'c PgStore, Exit> {
    ctx.postgres.as_ref().ok_or_else(|| ui.fail("ERROR: DATABASE_URL is not set"))
}

async fn migrate(ctx: &Ctx, ui: &mut Ui<'_, '_>) -> Outcome {
    let applied = postgres(ctx, ui)?.migrate().await.map_err(|e| ui.fail(format!("ERROR: {e}")))?;
    if applied.is_empty() {
        ui.text("Database is up to date");
    }
    for version in &applied {
        ui.text(format!("migrated {version}"));
    }
    ui.json(&json!({ "applied": applied }));
    Ok(())
}

async fn status(ctx: &Ctx, ui: &mut Ui<'_, '_>) -> Outcome {
    let pending = postgres(ctx, ui)?.pending_migrations().await.map_err(|e| ui.fail(format!("ERROR: {e}")))?;
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
        return Err(ui.fail(format!("{} migration(s) pending: run `scalelite-admin db migrate`", pending.len())));
    }
    Ok(())
}

/// `db backup FILE`: `VACUUM INTO` on the embedded database.
async fn backup(ctx: &Ctx, ui: &mut Ui<'_, '_>, file: &Path) -> Outcome {
    let Some(db) = &ctx.embedded else {
        return Err(
            ui.fail("ERROR: db backup copies the embedded database; back up Redis and PostgreSQL with their own tools")
        );
    };
    if file.exists() {
        return Err(ui.fail(format!("ERROR: {} exists; name a new file", file.display())));
    }
    db.backup_to(file).await.map_err(|e| ui.fail(format!("ERROR: {e}")))?;
    ui.text(format!("Backed up the embedded database to {}", file.display()));
    ui.json(&json!({ "backup": file }));
    Ok(())
}
