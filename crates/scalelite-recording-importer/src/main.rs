//! `scalelite-recording-importer`: imports recording archives until
//! SIGTERM; `--once` imports what is in the spool now and exits.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use futures::FutureExt as _;
use prometheus_client::registry::Registry;
use scalelite_core::config::{Backend, Config, Env};
use scalelite_recording_importer::{ArchiveOutcome, Importer, ImporterError, Settings};
use scalelite_store::recordings::RecordingStore;
use scalelite_store::{PgStore, RedisStore, Store, Stores};
use scalelite_telemetry::process::Part;
use tracing::{info, warn};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    scalelite_telemetry::process::service_main(|env| async move {
        match scalelite_telemetry::process::once_flag(
            "scalelite-recording-importer",
            env!("CARGO_PKG_VERSION"),
            std::env::args().skip(1),
        ) {
            Ok(once) => run(&env, once).await,
            Err(usage) => Ok(usage),
        }
    })
}

async fn run(env: &Env, once: bool) -> anyhow::Result<ExitCode> {
    let config = Config::from_env(env)?;
    let (recordings, meetings): (Arc<dyn RecordingStore>, Option<Arc<dyn Store>>) = match &config.backend {
        // The embedded database holds both (`scalelite-api` imports by itself in that mode).
        Backend::Embedded { .. } => {
            let stores = Stores::open(&config, 4).await.context("opening the embedded database")?;
            (stores.recordings.context("the embedded database has no recordings store")?, Some(stores.meetings))
        }
        Backend::Services => {
            let url = config.database_url.as_ref().context("DATABASE_URL is required")?;
            let recordings = Arc::new(PgStore::open(url.expose(), 4).context("DATABASE_URL")?);
            let meetings: Option<Arc<dyn Store>> =
                match RedisStore::open(config.redis_url.expose(), &config.redis_namespace) {
                    Ok(store) => Some(Arc::new(store)),
                    Err(e) => {
                        warn!(error = %e, "REDIS_URL unusable: recording-ready URLs are read from PostgreSQL only");
                        None
                    }
                };
            (recordings, meetings)
        }
    };
    if let Err(e) = recordings.health_check().await {
        if once {
            return Err(e).context("the recordings database");
        }
        warn!(error = %e, "the recordings database is not ready; imports wait for it");
    }
    let importer = Importer::new(Settings::from_config(&config), recordings, meetings);
    if !once {
        let metrics_server = match config.recordings.importer_metrics_bind {
            Some(bind) => {
                let mut registry = Registry::default();
                importer.retention_metrics().register(&mut registry);
                let listener = tokio::net::TcpListener::bind(bind)
                    .await
                    .with_context(|| format!("RECORDING_IMPORTER_METRICS_BIND {bind}"))?;
                info!(address = %bind, "serving importer metrics at /metrics");
                Some((listener, Arc::new(registry), config.metrics_bearer_token.clone()))
            }
            None => None,
        };
        scalelite_telemetry::process::notify_ready();
        // The importer and its metrics endpoint: when either ends, the process ends.
        scalelite_telemetry::process::supervise(scalelite_telemetry::shutdown_signal(), |stop| {
            let run = {
                let stop = stop.clone();
                async move {
                    importer.run(stop).await;
                    Ok(())
                }
            };
            let mut parts: Vec<Part> = vec![("recording importer", run.boxed())];
            if let Some((listener, registry, token)) = metrics_server {
                let serving = scalelite_telemetry::scrape::serve(listener, registry, token, stop);
                parts.push(("importer metrics endpoint", serving.map(|served| Ok(served?)).boxed()));
            }
            parts
        })
        .await?;
        return Ok(ExitCode::SUCCESS);
    }
    let report = match importer.import_pending_once().await {
        Ok(report) => report,
        Err(ImporterError::Busy(spool)) => {
            info!(spool = %spool.display(), "another importer is working on the spool; nothing to do");
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(e.into()),
    };
    for outcome in &report.outcomes {
        if let ArchiveOutcome::Quarantined { archive, reason, .. } = outcome {
            warn!(archive, reason, "quarantined");
        }
    }
    info!(
        imported = report.imported(),
        quarantined = report.quarantined(),
        deferred = report.deferred(),
        waiting = report.waiting,
        callbacks_delivered = report.deliveries.delivered,
        callbacks_retrying = report.deliveries.retrying,
        callbacks_given_up = report.deliveries.given_up,
        "import run finished"
    );
    if let Some(e) = &report.delivery_error {
        warn!(error = %e, "due callbacks could not be read");
    }
    Ok(if report.deferred() > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
