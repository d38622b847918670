#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod capacity;
pub mod db;
pub mod meetings;
mod output;
pub mod poll;
pub mod prune;
pub mod recordings;
pub mod servers;
pub mod status;
pub mod tenants;
pub mod usage;

use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use scalelite_bbb_client::{BbbClient, Timeouts};
use scalelite_core::ServerId;
use scalelite_core::config::Config;
use scalelite_fleet::{Fleet, FleetError, FleetSettings};
use scalelite_store::{PgStore, RecordingStore, SqliteStore, Store, Stores, UsageStore};

pub use crate::output::Io;
use crate::output::{Exit, Ui};

/// Administration of a Scalelite-compatible BigBlueButton load balancer.
///
/// The commands mirror Scalelite's rake tasks and work on the same Redis and
/// PostgreSQL, or on the embedded database (`SCALELITE_DATA_DIR`) when
/// neither `REDIS_URL` nor `DATABASE_URL` is set.
#[derive(Debug, Parser)]
#[command(name = "scalelite-admin", version)]
pub struct Cli {
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Do not ask for confirmation before destructive changes.
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The command groups.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List and administer BigBlueButton servers (`servers` alone lists them).
    Servers(servers::Opts),
    /// Table of every server with its state, status and statistics.
    Status(status::Opts),
    /// Capacity left per tag and which servers may be deleted now (for
    /// autoscalers; see deploy/autoscale).
    Capacity(capacity::Opts),
    /// Poll every server once now (unless another poller holds the lease).
    Poll(poll::Opts),
    /// List, inspect and end meetings (`meetings` alone lists them).
    Meetings(meetings::Opts),
    /// Recording maintenance and the import status.
    Recordings(recordings::Opts),
    /// The database: `db migrate`, `db status` (PostgreSQL's schema),
    /// `db backup` (the embedded database).
    Db(db::Opts),
    /// List and administer tenants (`tenants` alone lists them); needs
    /// `MULTITENANCY_ENABLED`.
    Tenants(tenants::Opts),
    /// List and administer tenants' parameter settings (`tenant-settings`
    /// alone lists them); needs `MULTITENANCY_ENABLED`.
    #[command(alias = "tenantSettings")]
    TenantSettings(tenants::SettingsOpts),
    /// Meeting-minutes, participant-minutes and peak participants per
    /// tenant and day or hour, as the poller accounted them.
    Usage(usage::Opts),
}

/// Runs `cli` against the stores and servers named by `config`, writing to
/// `io`; returns the process exit code (0 success, 1 failure).
pub async fn run(cli: Cli, config: &Config, io: &mut Io<'_>) -> u8 {
    let mut ui = Ui::new(io, cli.json, cli.yes);
    let ctx = match Ctx::open(config).await {
        Ok(ctx) => ctx,
        Err(error) => return ui.fail(format!("ERROR: {error:#}")).0,
    };
    let outcome = match cli.command {
        Command::Servers(opts) => servers::run(opts, &ctx, &mut ui).await,
        Command::Status(opts) => status::run(opts, &ctx, &mut ui).await,
        Command::Capacity(opts) => capacity::run(opts, &ctx, &mut ui).await,
        Command::Poll(opts) => poll::run(opts, &ctx, &mut ui).await,
        Command::Meetings(opts) => meetings::run(opts, &ctx, &mut ui).await,
        Command::Recordings(opts) => recordings::run(opts, &ctx, &mut ui).await,
        Command::Db(opts) => db::run(opts, &ctx, &mut ui).await,
        Command::Tenants(opts) => tenants::run(opts, &ctx, &mut ui).await,
        Command::TenantSettings(opts) => tenants::run_settings(opts, &ctx, &mut ui).await,
        Command::Usage(opts) => usage::run(opts, &ctx, &mut ui).await,
    };
    match outcome {
        Ok(()) => 0,
        Err(Exit(code)) => code,
    }
}

/// What every command works with.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub(crate) config: Config,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) fleet: Fleet,
    /// The recordings store: PostgreSQL when `DATABASE_URL` is set, or the
    /// embedded database.
    pub(crate) recordings: Option<Arc<dyn RecordingStore>>,
    /// The PostgreSQL database, for its schema.
    pub(crate) postgres: Option<PgStore>,
    /// The embedded database, for backups.
    pub(crate) embedded: Option<SqliteStore>,
}

// === impl Ctx ===

impl Ctx {
    async fn open(config: &Config) -> anyhow::Result<Self> {
        // Run from the wrong directory, the admin would otherwise create an
        // empty database and report an empty pool.
        if let Some(file) = config.backend.database_file().filter(|file| !file.exists()) {
            anyhow::bail!(
                "no embedded database at {} (neither REDIS_URL nor DATABASE_URL is set): run from the \
                 directory scalelite-api runs in, or set SCALELITE_DATA_DIR (or REDIS_URL/DATABASE_URL)",
                file.display()
            );
        }
        let Stores { meetings: store, recordings, postgres, embedded } =
            Stores::open(config, 2).await.with_context(|| config.backend.to_string())?;
        let timeouts = Timeouts { connect: config.connect_timeout, response: config.response_timeout };
        let bbb = BbbClient::new(timeouts, config.checksum_algorithms.outgoing());
        let settings = FleetSettings {
            server_id_is_hostname: config.server_id_is_hostname,
            concurrency: config.poller_concurrency.max(1),
        };
        let fleet = Fleet::new(Arc::clone(&store), bbb, settings);
        Ok(Self { config: config.clone(), store, fleet, recordings, postgres, embedded })
    }

    /// The recordings store, or exit 1 naming the missing variable.
    pub(crate) fn recordings(&self, ui: &mut Ui<'_, '_>) -> Result<&Arc<dyn RecordingStore>, Exit> {
        self.recordings.as_ref().ok_or_else(|| ui.fail("ERROR: DATABASE_URL is not set"))
    }

    /// Where the poller accounts usage: PostgreSQL, or the embedded database.
    pub(crate) fn usage(&self) -> Option<Arc<dyn UsageStore>> {
        match (&self.postgres, &self.embedded) {
            (Some(pg), _) => Some(Arc::new(pg.clone())),
            (None, Some(sqlite)) => Some(Arc::new(sqlite.clone())),
            (None, None) => None,
        }
    }

    /// How many servers or meetings are asked at once (`POLLER_THREADS`).
    pub(crate) fn concurrency(&self) -> usize {
        self.config.poller_concurrency.max(1)
    }
}

/// Prints a fleet error the way Scalelite's per-id tasks do and returns
/// exit code 1: an unknown id is `ERROR: No server found with id: <id>`.
pub(crate) fn fleet_failure(ui: &mut Ui<'_, '_>, id: &ServerId, error: &FleetError) -> Exit {
    match error {
        FleetError::NotFound(_) => ui.fail(format!("ERROR: No server found with id: {id}")),
        other => ui.fail(format!("ERROR: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = Cli::try_parse_from(["scalelite-admin", "servers", "--json", "-y"]).unwrap();
        assert!(cli.json && cli.yes);
        let cli = Cli::try_parse_from(["scalelite-admin", "--json", "status"]).unwrap();
        assert!(cli.json && !cli.yes);
        assert!(matches!(cli.command, Command::Status(_)));
        let cli = Cli::try_parse_from(["scalelite-admin", "poll"]).unwrap();
        assert!(matches!(cli.command, Command::Poll(_)));
    }

    #[test]
    fn usage_errors_exit_2() {
        for args in [&["scalelite-admin"][..], &["scalelite-admin", "nope"], &["scalelite-admin", "status", "x"]] {
            let error = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(error.exit_code(), 2, "{args:?}");
        }
    }
}
