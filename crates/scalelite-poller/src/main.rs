//! `scalelite-poller`: polls the pool until SIGTERM; `--once` runs one round.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use prometheus_client::registry::Registry;
use scalelite_core::config::{Config, Env};
use scalelite_poller::{Poller, PollerMetrics};
use scalelite_store::Stores;
use tracing::{error, info};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let env = Env::from_process();
    scalelite_telemetry::init_logging(env.get("LOG_FORMAT").is_some_and(|f| f.eq_ignore_ascii_case("json")));
    let once = match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
        [] => false,
        [flag] if flag == "--once" => true,
        _ => {
            error!("usage: scalelite-poller [--once]");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&env, once)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(env: &Env, once: bool) -> anyhow::Result<()> {
    let config = Config::from_env(env)?;
    // The poller needs servers and meetings only: Redis, or the embedded
    // database (which `scalelite-api` polls by itself in that mode).
    let stores = Stores::open(&config, 1).await.context("opening the store")?;
    let metrics = Arc::new(PollerMetrics::new());
    let poller = Poller::from_config(&config, stores.meetings, Arc::clone(&metrics));
    if once {
        match poller.poll_once().await? {
            Some(report) => report.log(),
            None => info!("another poller holds the lease; it polls on its own schedule"),
        }
        return Ok(());
    }
    if let Some(bind) = config.poller_metrics_bind {
        let mut registry = Registry::default();
        metrics.register(&mut registry);
        let listener =
            tokio::net::TcpListener::bind(bind).await.with_context(|| format!("POLLER_METRICS_BIND {bind}"))?;
        info!(address = %bind, "serving poller metrics at /metrics");
        let token = config.metrics_bearer_token.clone();
        tokio::spawn(scalelite_poller::metrics::serve(listener, Arc::new(registry), token));
    }
    poller.run(scalelite_telemetry::shutdown_signal()).await;
    Ok(())
}
