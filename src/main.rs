//! The `portcullis` command: `run` the proxy, `check` a config (like `nginx -t`), `demo`
//! for first contact, and `sessions` for operators.
// The redis client's futures nest deeper than the compiler's default layout limit.
#![recursion_limit = "256"]

use clap::{Parser, Subcommand};

// Per-request buffers churn the allocator; mimalloc's thread-local free lists beat glibc's
// arenas on this workload (see benches/: measured with and without).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
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
    /// The whole product on loopback, nothing to configure: Portcullis on conf/demo.yaml in
    /// front of a development OpenID provider (demo users alice, bob, eve; no passwords; NOT
    /// for production) and small console, API and desktop backends. Ctrl-C stops it.
    Demo {
        /// Where the proxy listens (http://localhost:PORT).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Where the demo provider listens (http://localhost:PORT).
        #[arg(long, default_value_t = 8090)]
        idp_port: u16,
    },
    /// Find and end sessions in the shared session store (needs `session.store: redis` and the
    /// proxies' `session.key`). A revocation reaches every replica within a second and closes
    /// the session's desktop tunnels.
    Sessions {
        #[command(subcommand)]
        action: SessionsAction,
        #[arg(short, long, default_value = "conf/portcullis.yaml", global = true)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum SessionsAction {
    /// Print the session ids (store keys) of a user's live sessions, one per line.
    List {
        #[arg(long)]
        user: String,
    },
    /// End a user's sessions, or one session by id, on every replica.
    Revoke {
        #[arg(long, required_unless_present = "id", conflicts_with = "id")]
        user: Option<String>,
        #[arg(long)]
        id: Option<String>,
    },
}

// Operator output that a full disk cannot turn into a panic (exit 101 instead of the code meant).
use portcullis::{say_err as err, say_out as out};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config: path } => match portcullis::runtime::load_and_build(&path) {
            // Built, and discarded: what `run` would serve.
            Ok((c, _, _)) => {
                out!(
                    "{}: ok ({} listeners, {} routes, {} pools, {} desktops, {} plugins)",
                    path.display(),
                    c.listeners.len(),
                    c.routes.len(),
                    c.upstreams.pools.len(),
                    c.upstreams.desktops.len(),
                    c.plugins.len()
                );
                ExitCode::SUCCESS
            }
            Err(problems) => {
                err!("{problems}");
                err!("{}: {} problem(s)", path.display(), problems.0.len());
                ExitCode::FAILURE
            }
        },
        Command::Sessions {
            action,
            config: path,
        } => sessions(action, &path),
        Command::Demo { port, idp_port } => {
            portcullis::demo::run(portcullis::demo::Options { port, idp_port })
        }
        Command::Run {
            config: path,
            upgrade,
        } => match portcullis::runtime::load_and_build(&path) {
            Ok((c, fixed, runtime)) => {
                portcullis::logging::init(&c.logging);
                let options = portcullis::server::RunOptions { upgrade };
                match portcullis::server::run(c, fixed, runtime, options) {
                    Ok(never) => match never {},
                    Err(e) => {
                        tracing::error!(error = %e, "portcullis: not starting");
                        err!("portcullis: not starting: {e}");
                        ExitCode::FAILURE
                    }
                }
            }
            Err(problems) => {
                err!("{problems}");
                err!(
                    "portcullis: not starting: {} has {} problem(s)",
                    path.display(),
                    problems.0.len()
                );
                ExitCode::FAILURE
            }
        },
    }
}

fn sessions(action: SessionsAction, path: &std::path::Path) -> ExitCode {
    let config = match config::load(path) {
        Ok(c) => c,
        Err(problems) => {
            err!("{problems}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            err!("portcullis: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match action {
            SessionsAction::List { user } => {
                portcullis::admin::list(&config, &user).await.map(|keys| {
                    for k in &keys {
                        out!("{k}");
                    }
                    err!("{} session(s) of {user}", keys.len());
                })
            }
            SessionsAction::Revoke { user, id } => {
                // clap requires one of the two; an empty id is refused as malformed.
                let what = match (&user, &id) {
                    (Some(u), _) => portcullis::admin::Revoke::User(u),
                    (None, i) => portcullis::admin::Revoke::Id(i.as_deref().unwrap_or("")),
                };
                portcullis::admin::revoke(&config, what)
                    .await
                    .map(|n| out!("revoked {n} session(s)"))
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            err!("portcullis sessions: {e}");
            ExitCode::FAILURE
        }
    }
}
