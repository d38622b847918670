//! `scalelite-admin`: parses the command line, reads the configuration and
//! runs the command on the process streams.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use scalelite_admin::{Cli, Io};
use scalelite_core::config::{Config, Env};

// Same allocator as the other binaries.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Usage errors exit 2 and --help/--version exit 0, inside clap.
    let cli = Cli::parse();
    let env = Env::from_process();
    scalelite_telemetry::process::init_logging_from(&env, "warn");
    match run(cli, &env) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            let _ = writeln!(std::io::stderr().lock(), "{error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, env: &Env) -> anyhow::Result<u8> {
    let config = Config::from_env(env)?;
    let runtime = scalelite_telemetry::process::runtime().context("cannot start the runtime")?;
    // stderr is not held locked: log lines from worker threads share it.
    let (mut out, mut err, mut input) = (std::io::stdout().lock(), std::io::stderr(), std::io::stdin().lock());
    let mut io = Io { out: &mut out, err: &mut err, input: &mut input };
    let code = runtime.block_on(scalelite_admin::run(cli, &config, &mut io));
    let _ = out.flush();
    Ok(code)
}
