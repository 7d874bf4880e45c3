//! `portcullis demo`: the whole product on first contact, on loopback, with nothing else
//! running. Portcullis itself runs exactly as `run` does (the same load, build and server) on
//! `conf/demo.yaml`, in front of a development OpenID provider and small backends that this
//! module starts in the same process. The provider exists only here: no config can start it.

mod backends;
mod http;
mod idp;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The demo's config and its upstreams file, as shipped, and the plugins it names.
const FILES: &[(&str, &str)] = &[
    ("conf/demo.yaml", include_str!("../../conf/demo.yaml")),
    (
        "conf/demo-upstreams.yaml",
        include_str!("../../conf/demo-upstreams.yaml"),
    ),
    (
        "plugins/security-headers.lua",
        include_str!("../../plugins/security-headers.lua"),
    ),
    (
        "plugins/deny-paths.lua",
        include_str!("../../plugins/deny-paths.lua"),
    ),
];

pub struct Options {
    pub port: u16,
    pub idp_port: u16,
}

/// Runs the demo until SIGINT or SIGTERM.
pub fn run(options: Options) -> ExitCode {
    match start(options) {
        Ok(never) => match never {},
        Err(e) => {
            crate::say_err!("portcullis demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn start(options: Options) -> Result<std::convert::Infallible, String> {
    let bind = |port: u16, what: &str| {
        TcpListener::bind(("127.0.0.1", port))
            .map_err(|e| format!("cannot listen on 127.0.0.1:{port} for {what}: {e} (choose another with --port / --idp-port)"))
    };
    // Taken now, so that a port in use is reported before anything starts.
    let proxy_port = bind(options.port, "the proxy")?
        .local_addr()
        .map_err(|e| e.to_string())?
        .port();
    let idp_listener = bind(options.idp_port, "the demo provider")?;
    let idp_port = idp_listener.local_addr().map_err(|e| e.to_string())?.port();
    let console = bind(0, "the console backend")?;
    let api = bind(0, "the API backend")?;
    let desktop = bind(0, "the desktop backend")?;
    let metrics_port = bind(0, "metrics")?
        .local_addr()
        .map_err(|e| e.to_string())?
        .port();
    let addr = |l: &TcpListener| {
        l.local_addr()
            .map(|a| a.to_string())
            .map_err(|e| e.to_string())
    };

    let issuer = format!("http://localhost:{idp_port}");
    let public = format!("http://localhost:{proxy_port}");
    let client_secret = idp::random_token(24);
    let mut key = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
    let session_key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, key);
    // Read by `${…}` in conf/demo.yaml; set before any other thread exists.
    for (name, value) in [
        ("PORTCULLIS_DEMO_PORT", proxy_port.to_string()),
        ("PORTCULLIS_DEMO_METRICS_PORT", metrics_port.to_string()),
        ("PORTCULLIS_DEMO_ISSUER", issuer.clone()),
        ("PORTCULLIS_DEMO_CLIENT_SECRET", client_secret.clone()),
        ("PORTCULLIS_DEMO_SESSION_KEY", session_key),
        ("PORTCULLIS_DEMO_CONSOLE", addr(&console)?),
        ("PORTCULLIS_DEMO_API", addr(&api)?),
        ("PORTCULLIS_DEMO_DESKTOP", addr(&desktop)?),
    ] {
        std::env::set_var(name, value);
    }
    let provider = idp::Idp::new(
        issuer.clone(),
        idp::Client {
            id: "portcullis-demo".into(),
            secret: client_secret,
            redirect_uris: vec![format!("{public}/oauth2/callback")],
            post_logout_redirect_uris: vec![format!("{public}/oauth2/logout/callback")],
        },
    )?;
    let dir = write_files()?;
    spawn_servers(provider, idp_listener, console, api, desktop)?;

    let path = dir.join("conf/demo.yaml");
    let (config, fixed, snapshot) = crate::runtime::load_and_build(&path)
        .map_err(|p| format!("the demo config was refused:\n{p}"))?;
    crate::logging::init(&config.logging);
    print_banner();
    announce_when_ready(proxy_port, &issuer, metrics_port);
    crate::server::run(
        config,
        fixed,
        snapshot,
        crate::server::RunOptions { upgrade: false },
    )
    .map_err(|e| format!("not starting: {e}"))
}

/// The shipped files, in a directory of their own (the config names the plugins relatively).
fn write_files() -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("portcullis-demo-{}", std::process::id()));
    for (name, content) in FILES {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        std::fs::write(&path, content).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(dir)
}

fn spawn_servers(
    provider: idp::Idp,
    idp_listener: TcpListener,
    console: TcpListener,
    api: TcpListener,
    desktop: TcpListener,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("demo-backends")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the demo's servers: {e}"))?;
    let provider = Arc::new(provider);
    let listeners = [idp_listener, console, api, desktop];
    for l in &listeners {
        l.set_nonblocking(true).map_err(|e| e.to_string())?;
    }
    std::thread::Builder::new()
        .name("demo".into())
        .spawn(move || {
            runtime.block_on(async move {
                let [idp_l, console_l, api_l, desktop_l] = listeners;
                let tokio_listener = |l: TcpListener| tokio::net::TcpListener::from_std(l);
                let (Ok(idp_l), Ok(console_l), Ok(api_l), Ok(desktop_l)) = (
                    tokio_listener(idp_l),
                    tokio_listener(console_l),
                    tokio_listener(api_l),
                    tokio_listener(desktop_l),
                ) else {
                    crate::say_err!("portcullis demo: cannot serve the demo's backends");
                    return;
                };
                let p = provider.clone();
                tokio::spawn(http::serve(idp_l, Arc::new(move |r| p.answer(&r)), None));
                tokio::spawn(http::serve(console_l, Arc::new(backends::console), None));
                tokio::spawn(http::serve(api_l, Arc::new(backends::api), None));
                let tunnel: http::UpgradeHandler =
                    Arc::new(|path, upgraded| Box::pin(backends::tunnel(path, upgraded)));
                http::serve(desktop_l, Arc::new(backends::desktop), Some(tunnel)).await;
            });
        })
        .map_err(|e| format!("cannot start the demo's servers: {e}"))?;
    Ok(())
}

fn print_banner() {
    crate::say_out!(
        "\n  Portcullis demo — everything on loopback, nothing to configure.\n  \
         The OpenID provider here is a DEVELOPMENT provider (no passwords): never use it in production.\n"
    );
}

/// Prints the URLs once the proxy accepts connections; the line `demo: ready URL` is what
/// scripts wait for.
fn announce_when_ready(port: u16, issuer: &str, metrics_port: u16) {
    let issuer = issuer.to_string();
    let spawned = std::thread::Builder::new()
        .name("demo-ready".into())
        .spawn(move || {
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let started = Instant::now();
            while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                if started.elapsed() > Duration::from_secs(60) {
                    crate::say_err!("portcullis demo: the proxy did not start listening on {addr}");
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let users: Vec<String> = idp::USERS
                .iter()
                .map(|u| format!("{} ({})", u.name, u.groups.join(", ")))
                .collect();
            crate::say_out!(
                "  Open  http://localhost:{port}/          the console (log in as one of the users below)\n  \
                 Users {}\n  \
                 Try   http://localhost:{port}/desktop/alice/  a desktop tunnel (owner only: bob gets 403)\n        \
                 http://localhost:{port}/api/whoami     the API (401 without a login, never a redirect)\n        \
                 http://localhost:{port}/admin/         admins only\n  \
                 Also  {issuer}  (the demo provider), http://127.0.0.1:{metrics_port}/metrics\n  \
                 Stop  Ctrl-C\n",
                users.join(", ")
            );
            crate::say_out!("demo: ready http://localhost:{port}/");
        });
    if let Err(e) = spawned {
        crate::say_err!("portcullis demo: {e}");
    }
}
