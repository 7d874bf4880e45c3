//! The `portcullis` command: `run` the proxy, `check` a config (like `nginx -t`).

use clap::{Parser, Subcommand};
use portcullis::config;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "portcullis",
    version,
    about = "Identity-aware edge proxy on Pingora"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy until SIGTERM (graceful: in-flight requests finish), SIGINT (fast) or
    /// SIGQUIT (graceful upgrade: a new process started with --upgrade takes the sockets over).
    Run {
        /// The main config file; the upstreams file it names is read relative to it.
        #[arg(short, long, default_value = "conf/portcullis.yaml")]
        config: PathBuf,
        /// Take the listening sockets over from a running instance that received SIGQUIT.
        #[arg(short, long)]
        upgrade: bool,
    },
    /// Validate a config and the upstreams file it names, then exit: 0 when the proxy would
    /// accept it, 1 with every problem printed as FILE:LINE:COLUMN: MESSAGE otherwise.
    Check {
        #[arg(short, long, default_value = "conf/portcullis.yaml")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config: path } => match config::load(&path) {
            Ok(c) => {
                println!(
                    "{}: ok ({} listeners, {} routes, {} pools, {} desktops)",
                    path.display(),
                    c.listeners.len(),
                    c.routes.len(),
                    c.upstreams.pools.len(),
                    c.upstreams.desktops.len()
                );
                ExitCode::SUCCESS
            }
            Err(problems) => {
                eprintln!("{problems}");
                eprintln!("{}: {} problem(s)", path.display(), problems.0.len());
                ExitCode::FAILURE
            }
        },
        Command::Run {
            config: path,
            upgrade,
        } => match config::load(&path) {
            Ok(c) => {
                portcullis::logging::init(&c.logging);
                portcullis::server::run(c, portcullis::server::RunOptions { upgrade })
            }
            Err(problems) => {
                eprintln!("{problems}");
                eprintln!(
                    "portcullis: not starting: {} has {} problem(s)",
                    path.display(),
                    problems.0.len()
                );
                ExitCode::FAILURE
            }
        },
    }
}
