//! `scalelite-api`: reads the configuration, opens the stores and serves;
//! in the embedded mode it also polls and imports recordings.

use std::process::ExitCode;

use anyhow::Context as _;
use scalelite_api::{AppState, DATABASE_POOL_SIZE, embedded};
use scalelite_core::config::{Backend, Env};
use scalelite_store::Stores;
use tokio::net::TcpListener;
use tracing::info;

// glibc's allocator contends on its arena locks under request load; mimalloc
// measured faster on the join path (see benches/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    scalelite_telemetry::process::service_main(|env| async move {
        if let Err(code) =
            scalelite_telemetry::process::no_args("scalelite-api", env!("CARGO_PKG_VERSION"), std::env::args().skip(1))
        {
            return Ok(code);
        }
        serve(&env).await?;
        Ok(ExitCode::SUCCESS)
    })
}

async fn serve(env: &Env) -> anyhow::Result<()> {
    let config = embedded::config_from_env(env)?;
    if config.secrets.is_empty() {
        tracing::warn!("LOADBALANCER_SECRET is not set: every checksummed call will be refused");
    }
    if config.backend == Backend::Services && config.database_url.is_none() && !config.recordings.disabled {
        tracing::warn!(
            "DATABASE_URL is not set: the recordings calls answer as with RECORDING_DISABLED=true \
             (getRecordings lists nothing)"
        );
    }
    let stores =
        Stores::open(&config, DATABASE_POOL_SIZE).await.with_context(|| format!("opening {}", config.backend))?;
    if let Backend::Embedded { data_dir } = &config.backend {
        info!(
            data_dir = %data_dir.display(),
            spool = %config.recordings.spool_dir.display(),
            "embedded mode (neither REDIS_URL nor DATABASE_URL is set): all state in {}; the poller and the \
             recording importer run in this process",
            data_dir.join(Backend::DATABASE_FILE).display()
        );
    }
    let listener = TcpListener::bind(config.bind).await.with_context(|| format!("binding {}", config.bind))?;
    info!(address = %listener.local_addr()?, "scalelite-api listening");
    scalelite_telemetry::process::notify_ready();
    let shutdown = scalelite_telemetry::shutdown_signal();
    match config.backend {
        Backend::Embedded { .. } => embedded::run(listener, config, stores, shutdown).await?,
        Backend::Services => {
            let usage = stores.usage();
            let state = AppState::with_recordings(config, stores.meetings, stores.recordings);
            state.watch_usage(usage);
            scalelite_api::run(listener, state, shutdown).await?;
        }
    }
    info!("scalelite-api stopped");
    Ok(())
}
