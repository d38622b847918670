//! `scalelite-api`: reads the configuration, connects the store and serves.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use scalelite_api::AppState;
use scalelite_core::config::{Config, Env};
use scalelite_store::RedisStore;
use tokio::net::TcpListener;
use tracing::{error, info};

// glibc's allocator contends on its arena locks under request load; mimalloc
// measured faster on the join path (see benches/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let env = Env::from_process();
    scalelite_telemetry::init_logging(env.get("LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json")));
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(&env)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(env: &Env) -> anyhow::Result<()> {
    let config = Config::from_env(env)?;
    if config.secrets.is_empty() {
        tracing::warn!("LOADBALANCER_SECRET is not set: every checksummed call will be refused");
    }
    if config.database_url.is_none() && !config.recordings.disabled {
        tracing::warn!(
            "DATABASE_URL is not set: the recordings calls answer as with RECORDING_DISABLED=true \
             (getRecordings lists nothing)"
        );
    }
    let store = RedisStore::from_config(&config).context("REDIS_URL")?;
    let listener = TcpListener::bind(config.bind).await.with_context(|| format!("binding {}", config.bind))?;
    info!(address = %listener.local_addr()?, "scalelite-api listening");
    let state = AppState::new(config, Arc::new(store))?;
    scalelite_api::run(listener, state, scalelite_telemetry::shutdown_signal()).await?;
    info!("scalelite-api stopped");
    Ok(())
}
