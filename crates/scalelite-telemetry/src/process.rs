//! What every binary's `main` does around its work: logging from the
//! environment, the runtime, the exit code, and running several parts of
//! one process so that the process ends when any of them ends.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write as _;
use std::process::ExitCode;

use futures::FutureExt as _;
use futures::future::{BoxFuture, Shared};
use scalelite_core::config::Env;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info};

use crate::init_logging_with;

/// Exit code of a command line the program does not understand (as clap's).
pub const USAGE_EXIT: u8 = 2;

/// Whether `LOG_FORMAT` asks for JSON lines (`json`, any case).
pub fn json_logs(env: &Env) -> bool {
    env.get("LOG_FORMAT").is_some_and(|format| format.eq_ignore_ascii_case("json"))
}

/// Installs the log subscriber as `env` says (`LOG_FORMAT`, `RUST_LOG`,
/// else `default_filter`).
pub fn init_logging_from(env: &Env, default_filter: &str) {
    init_logging_with(json_logs(env), default_filter);
}

/// The multi-threaded runtime every binary runs on.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}

/// The whole `main` of a service binary: reads the process environment,
/// installs logging (default filter `info`), runs `body` on the runtime
/// and turns its outcome into the exit code, logging an error with its
/// causes.
pub fn service_main<F, Fut>(body: F) -> ExitCode
where
    F: FnOnce(Env) -> Fut,
    Fut: Future<Output = anyhow::Result<ExitCode>>,
{
    let env = Env::from_process();
    init_logging_from(&env, "info");
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        let _watchdog = spawn_watchdog();
        body(env).await
    });
    match outcome {
        Ok(code) => code,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Tells systemd (a unit with `Type=notify`) that the service is ready:
/// the API once it listens, the poller and the importer once their stores
/// are open. Outside systemd (no `NOTIFY_SOCKET`) it does nothing.
pub fn notify_ready() {
    notify(sd_notify::NotifyState::Ready);
}

/// Tells systemd the service is stopping (sent when SIGTERM or SIGINT
/// arrives, by [`crate::shutdown_signal`]).
pub fn notify_stopping() {
    notify(sd_notify::NotifyState::Stopping);
}

fn notify(state: sd_notify::NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(&[state]) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// With `WatchdogSec=` in the unit (`WATCHDOG_USEC`), pings systemd at a
/// third of the interval from a task on the runtime, so a process whose
/// runtime stops making progress is restarted. It is liveness only: a
/// Redis or PostgreSQL outage does not stop the pings (a restart would
/// not help). The task ends when the returned guard is dropped.
fn spawn_watchdog() -> Option<AbortOnDrop> {
    let interval = sd_notify::watchdog_enabled()? / 3;
    info!(interval_ms = interval.as_millis(), "pinging the systemd watchdog");
    Some(AbortOnDrop(tokio::spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        loop {
            ticks.tick().await;
            notify(sd_notify::NotifyState::Watchdog);
        }
    })))
}

/// Aborts a task when dropped.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The command line of a daemon that can also run once: nothing (run until
/// stopped, `false`) or `--once` (`true`). `--version` prints the program's
/// name and `version` and exits 0; anything else is logged with the usage
/// and answered with [`USAGE_EXIT`].
pub fn once_flag(program: &str, version: &str, args: impl IntoIterator<Item = String>) -> Result<bool, ExitCode> {
    command_line(program, version, true, args)
}

/// The command line of a daemon that takes no arguments (all its settings
/// come from the environment): `--version` prints the program's name and
/// `version` and exits 0; any other argument is logged with the usage and
/// answered with [`USAGE_EXIT`], instead of starting the service with an
/// argument it would ignore.
pub fn no_args(program: &str, version: &str, args: impl IntoIterator<Item = String>) -> Result<(), ExitCode> {
    command_line(program, version, false, args).map(|_| ())
}

fn command_line(
    program: &str,
    version: &str,
    once: bool,
    args: impl IntoIterator<Item = String>,
) -> Result<bool, ExitCode> {
    let args: Vec<String> = args.into_iter().collect();
    match args.as_slice() {
        [] => Ok(false),
        [flag] if once && flag == "--once" => Ok(true),
        [flag] if flag == "--version" || flag == "-V" => {
            let _ = writeln!(std::io::stdout(), "{program} {version}");
            Err(ExitCode::SUCCESS)
        }
        _ => {
            let usage = if once { " [--once]" } else { "" };
            error!(
                "usage: {program}{usage} | {program} --version (settings come from the environment, see docs/CONFIGURATION.md)"
            );
            Err(ExitCode::from(USAGE_EXIT))
        }
    }
}

/// A future every part of a [`supervise`]d process is given: it resolves
/// when the process is asked to stop, or when another part has ended.
pub type Stop = Shared<BoxFuture<'static, ()>>;

/// A named part of a process, made from its [`Stop`].
pub type Part = (&'static str, BoxFuture<'static, anyhow::Result<()>>);

/// Runs the parts `make` returns as tasks until `shutdown` resolves, then
/// waits for each to finish. A part that ends before `shutdown` (returning,
/// failing or panicking) stops the others through their [`Stop`] and makes
/// the whole an error naming it, so a process whose API server, poller or
/// importer is gone exits instead of running on without it. A part that
/// fails while stopping is an error too.
pub async fn supervise(
    shutdown: impl Future<Output = ()> + Send + 'static,
    make: impl FnOnce(Stop) -> Vec<Part>,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop: Stop = {
        let mut stop_rx = stop_rx.clone();
        async move {
            // Waits for `true`; the sender lives until every part is joined.
            let _ = stop_rx.wait_for(|stopping| *stopping).await;
        }
        .boxed()
        .shared()
    };
    let asked = {
        let stop_tx = stop_tx.clone();
        tokio::spawn(async move {
            shutdown.await;
            stop_tx.send_replace(true);
        })
    };
    let mut parts = JoinSet::new();
    let mut names = HashMap::new();
    for (name, part) in make(stop) {
        let handle = parts.spawn(part);
        names.insert(handle.id(), name);
    }
    let mut failure: Option<anyhow::Error> = None;
    while let Some(joined) = parts.join_next_with_id().await {
        let (name, outcome) = match joined {
            Ok((id, outcome)) => (names.get(&id).copied().unwrap_or("a part"), outcome),
            Err(e) => (
                names.get(&e.id()).copied().unwrap_or("a part"),
                Err(anyhow::anyhow!(if e.is_panic() { "panicked" } else { "was cancelled" })),
            ),
        };
        let stopping = *stop_rx.borrow();
        let error = match outcome {
            Ok(()) if stopping => {
                info!(part = name, "stopped");
                continue;
            }
            Ok(()) => anyhow::anyhow!("{name} stopped unexpectedly"),
            Err(e) => e.context(format!("{name} failed")),
        };
        if !stopping {
            error!(part = name, "{error:#}; stopping the other parts of the process");
            stop_tx.send_replace(true);
        }
        failure.get_or_insert(error);
    }
    asked.abort();
    failure.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A part that waits for its stop and counts that it saw it.
    fn patient(name: &'static str, stop: Stop, stopped: &Arc<AtomicUsize>) -> Part {
        let stopped = Arc::clone(stopped);
        (
            name,
            async move {
                stop.await;
                stopped.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
            .boxed(),
        )
    }

    #[tokio::test]
    async fn a_part_that_ends_early_stops_the_others_and_fails_the_whole() {
        let stopped = Arc::new(AtomicUsize::new(0));
        let error = supervise(std::future::pending(), |stop| {
            vec![
                patient("api", stop.clone(), &stopped),
                ("poller", async { Ok(()) }.boxed()),
                patient("importer", stop, &stopped),
            ]
        })
        .await
        .unwrap_err();
        assert_eq!(error.to_string(), "poller stopped unexpectedly");
        assert_eq!(stopped.load(Ordering::SeqCst), 2, "both other parts saw the stop");
    }

    #[tokio::test]
    async fn a_failing_or_panicking_part_is_named() {
        let error = supervise(std::future::pending(), |stop| {
            vec![("api", async { Err(anyhow::anyhow!("address in use")) }.boxed()), ("poller", stop.map(Ok).boxed())]
        })
        .await
        .unwrap_err();
        assert_eq!(format!("{error:#}"), "api failed: address in use");

        let error = supervise(std::future::pending(), |stop| {
            vec![("importer", async { panic!("boom") }.boxed()), ("api", stop.map(Ok).boxed())]
        })
        .await
        .unwrap_err();
        assert_eq!(format!("{error:#}"), "importer failed: panicked");
    }

    #[tokio::test]
    async fn shutdown_stops_every_part_cleanly() {
        let stopped = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let supervised = tokio::spawn({
            let stopped = Arc::clone(&stopped);
            supervise(
                async {
                    let _ = rx.await;
                },
                move |stop| vec![patient("api", stop.clone(), &stopped), patient("poller", stop, &stopped)],
            )
        });
        tx.send(()).unwrap();
        supervised.await.unwrap().unwrap();
        assert_eq!(stopped.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_part_failing_while_stopping_is_an_error() {
        let error = supervise(async {}, |stop| {
            vec![(
                "importer",
                async move {
                    stop.await;
                    Err(anyhow::anyhow!("archive left half-written"))
                }
                .boxed(),
            )]
        })
        .await
        .unwrap_err();
        assert_eq!(format!("{error:#}"), "importer failed: archive left half-written");
    }

    #[test]
    fn the_once_flag() {
        let args = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(once_flag("p", "1", args(&[])), Ok(false));
        assert_eq!(once_flag("p", "1", args(&["--once"])), Ok(true));
        assert_eq!(once_flag("p", "1", args(&["--version"])), Err(ExitCode::SUCCESS));
        assert_eq!(once_flag("p", "1", args(&["--twice"])), Err(ExitCode::from(USAGE_EXIT)));
        assert_eq!(once_flag("p", "1", args(&["--once", "--once"])), Err(ExitCode::from(USAGE_EXIT)));
        assert_eq!(no_args("p", "1", args(&[])), Ok(()));
        assert_eq!(no_args("p", "1", args(&["-V"])), Err(ExitCode::SUCCESS));
        // A service that takes no arguments refuses them instead of
        // starting as if they were not there.
        assert_eq!(no_args("p", "1", args(&["--once"])), Err(ExitCode::from(USAGE_EXIT)));
        assert_eq!(no_args("p", "1", args(&["--help"])), Err(ExitCode::from(USAGE_EXIT)));
    }

    #[test]
    fn log_format() {
        assert!(json_logs(&Env::from_pairs([("LOG_FORMAT", "JSON")])));
        assert!(!json_logs(&Env::from_pairs([("LOG_FORMAT", "text")])));
        assert!(!json_logs(&Env::from_pairs::<&str, &str>([])));
    }
}
