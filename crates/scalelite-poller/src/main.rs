//! `scalelite-poller`: polls the pool until SIGTERM; `--once` runs one round.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use futures::FutureExt as _;
use prometheus_client::registry::Registry;
use scalelite_core::config::{Config, Env};
use scalelite_poller::{Poller, PollerMetrics};
use scalelite_store::Stores;
use scalelite_telemetry::process::Part;
use tracing::info;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    scalelite_telemetry::process::service_main(|env| async move {
        match scalelite_telemetry::process::once_flag(
            "scalelite-poller",
            env!("CARGO_PKG_VERSION"),
            std::env::args().skip(1),
        ) {
            Ok(once) => run(&env, once).await.map(|()| ExitCode::SUCCESS),
            Err(usage) => Ok(usage),
        }
    })
}

async fn run(env: &Env, once: bool) -> anyhow::Result<()> {
    let config = Config::from_env(env)?;
    // The poller needs servers and meetings only: Redis, or the embedded
    // database (which `scalelite-api` polls by itself in that mode).
    let stores = Stores::open(&config, 1).await.context("opening the store")?;
    let metrics = Arc::new(PollerMetrics::new());
    let usage = stores.usage();
    let poller = Poller::from_config(&config, stores.meetings, Arc::clone(&metrics)).with_usage(usage);
    if once {
        match poller.poll_once().await? {
            Some(report) => report.log(),
            None => info!("another poller holds the lease; it polls on its own schedule"),
        }
        return Ok(());
    }
    let metrics_server = match config.poller_metrics_bind {
        Some(bind) => {
            let mut registry = Registry::default();
            metrics.register(&mut registry);
            let listener =
                tokio::net::TcpListener::bind(bind).await.with_context(|| format!("POLLER_METRICS_BIND {bind}"))?;
            info!(address = %bind, "serving poller metrics at /metrics");
            Some((listener, Arc::new(registry), config.metrics_bearer_token.clone()))
        }
        None => None,
    };
    scalelite_telemetry::process::notify_ready();
    // The poller and its metrics endpoint: when either ends, the process ends.
    scalelite_telemetry::process::supervise(scalelite_telemetry::shutdown_signal(), |stop| {
        let mut parts: Vec<Part> = vec![("poller", poller.run(stop.clone()).map(Ok).boxed())];
        if let Some((listener, registry, token)) = metrics_server {
            let serving = scalelite_telemetry::scrape::serve(listener, registry, token, stop);
            parts.push(("poller metrics endpoint", serving.map(|served| Ok(served?)).boxed()));
        }
        parts
    })
    .await
}
