//! The embedded single-binary mode: with neither `REDIS_URL` nor
//! `DATABASE_URL` set, one `scalelite-api` process keeps every piece of
//! state in one SQLite file under `SCALELITE_DATA_DIR` and runs the poller
//! and the recording importer beside the API.
//!
//! `scalelite-admin` opens the same file (SQLite's write lock serializes the
//! two processes; every write is one short transaction).

use std::future::Future;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use futures::FutureExt as _;
use scalelite_core::config::{Backend, Config, Env};
use scalelite_poller::{Poller, PollerMetrics};
use scalelite_recording_importer::{Importer, Settings};
use scalelite_store::Stores;
use scalelite_telemetry::process::Part;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::AppState;

/// The file in the data directory holding a generated `LOADBALANCER_SECRET`.
pub const SECRET_FILE: &str = "loadbalancer_secret";

/// Where the load-balancer secret came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SecretOrigin {
    /// Generated now and written to the file.
    Generated(PathBuf),
    /// Read from the file a previous start wrote.
    Read(PathBuf),
}

/// Reads the configuration from `env`. With the embedded backend it also
/// creates the data directory and, when no `LOADBALANCER_SECRET(S)` is set,
/// takes the secret from the data directory (generating it on first start)
/// and says where it is.
pub fn config_from_env(env: &Env) -> anyhow::Result<Config> {
    let config = Config::from_env(env)?;
    let Backend::Embedded { data_dir } = &config.backend else { return Ok(config) };
    scalelite_store::create_private_dir(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    if !config.secrets.is_empty() {
        return Ok(config);
    }
    let (secret, origin) = load_or_generate_secret(data_dir)
        .with_context(|| format!("the LOADBALANCER_SECRET file in {}", data_dir.display()))?;
    log_secret_origin(&origin);
    Ok(Config::from_env(&env.clone().with("LOADBALANCER_SECRET", secret))?)
}

/// Reads the secret a previous start generated in `data_dir`, or generates
/// one (32 random bytes as 64 hex digits) into a new file readable by its
/// owner only. The directory must exist.
pub(crate) fn load_or_generate_secret(data_dir: &Path) -> io::Result<(String, SecretOrigin)> {
    let path = data_dir.join(SECRET_FILE);
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&path) {
        Ok(mut file) => {
            file.write_all(format!("{secret}\n").as_bytes())?;
            file.sync_all()?;
            Ok((secret, SecretOrigin::Generated(path)))
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let stored = std::fs::read_to_string(&path)?;
            let stored = stored.trim();
            if stored.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is empty: delete it to generate a new secret", path.display()),
                ));
            }
            Ok((stored.to_owned(), SecretOrigin::Read(path)))
        }
        Err(e) => Err(e),
    }
}

/// Tells the operator where the secret is: loudly once, when it was made.
fn log_secret_origin(origin: &SecretOrigin) {
    match origin {
        SecretOrigin::Generated(path) => warn!(
            file = %path.display(),
            "LOADBALANCER_SECRET was not set: generated one and saved it in {} (mode 0600); \
             configure front-ends with it, or set LOADBALANCER_SECRET",
            path.display()
        ),
        SecretOrigin::Read(path) => info!(file = %path.display(), "LOADBALANCER_SECRET read from the data directory"),
    }
}

/// Runs the API on `listener`, the poller and the recording importer over
/// `stores` until `shutdown` resolves; then the API finishes the requests in
/// flight, the poller gives its lease up and the importer finishes or
/// abandons the archive in hand (see [`Importer::run`]). When one of the
/// three ends before that, the other two are stopped the same way and the
/// error names it.
pub async fn run(
    listener: TcpListener,
    config: Config,
    stores: Stores,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let poller_metrics = Arc::new(PollerMetrics::new());
    let importer = stores.recordings.clone().map(|recordings| {
        Importer::new(Settings::from_config(&config), recordings, Some(Arc::clone(&stores.meetings)))
    });
    let retention_metrics = importer.as_ref().map(Importer::retention_metrics);
    let state =
        AppState::with_metrics(config.clone(), Arc::clone(&stores.meetings), stores.recordings.clone(), |registry| {
            poller_metrics.register(registry);
            if let Some(metrics) = &retention_metrics {
                metrics.register(registry);
            }
        });
    state.watch_poller(Arc::clone(&poller_metrics));
    state.watch_usage(stores.usage());
    let poller = Poller::from_config(&config, Arc::clone(&stores.meetings), poller_metrics).with_usage(stores.usage());
    // The API, the poller and the importer: when one ends (or fails, or
    // panics) before `shutdown`, the others stop and the process exits.
    scalelite_telemetry::process::supervise(shutdown, move |stop| {
        let mut parts: Vec<Part> = vec![
            ("API server", crate::run(listener, state, stop.clone()).map(|served| Ok(served?)).boxed()),
            ("poller", poller.run(stop.clone()).map(Ok).boxed()),
        ];
        if let Some(importer) = importer {
            parts.push((
                "recording importer",
                async move {
                    importer.run(stop).await;
                    Ok(())
                }
                .boxed(),
            ));
        }
        parts
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_generated_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, origin) = load_or_generate_secret(dir.path()).unwrap();
        let path = dir.path().join(SECRET_FILE);
        assert_eq!(origin, SecretOrigin::Generated(path.clone()));
        assert_eq!(secret.len(), 64);
        assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let (again, origin) = load_or_generate_secret(dir.path()).unwrap();
        assert_eq!((again, origin), (secret, SecretOrigin::Read(path.clone())));

        std::fs::write(&path, "\n").unwrap();
        let error = load_or_generate_secret(dir.path()).unwrap_err();
        assert!(error.to_string().contains("is empty"), "{error}");
    }
}
