//! The test kit: real upstream servers, the real `portcullis` binary, free ports.
//! Everything talks over real sockets on 127.0.0.1.
#![allow(dead_code)]

pub mod echo;
/// The library's own generator of hostile inputs, shared rather than copied.
#[path = "../../src/fuzz_inputs.rs"]
pub mod fuzz_inputs;
pub mod idp;
pub mod nginx;
pub mod oidc;
pub mod pki;
pub mod prom;
pub mod proxy;
pub mod raw;
pub mod redis;
pub mod ws;

pub use echo::EchoUpstream;
pub use proxy::Proxy;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

/// A port that was free a moment ago. Only for processes we cannot hand a bound socket to.
/// Picked below the kernel's ephemeral range: a port from `bind(:0)` (our test servers) or from
/// an outgoing `connect()` is always inside that range, so nothing else in the suite can take a
/// port between our pick and the child's bind (an in-process provider once took the port a
/// proxy was about to bind, and the test talked plain HTTP to the provider). Never the same port
/// twice in one test process; other test processes pick at random from ~20,000 ports.
pub fn free_port() -> u16 {
    use rand::Rng;
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let below = ephemeral_low().clamp(12_000, 65_535);
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    let mut rng = rand::rng();
    for _ in 0..10_000 {
        let port = rng.random_range(10_000..below);
        if given.contains(&port) || TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        given.push(port);
        return port;
    }
    panic!("no free port on loopback below {below}");
}

fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// Polls `probe` until it holds or `limit` passes; the event we wait for has no other signal.
pub async fn eventually<F, Fut>(limit: Duration, mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if probe().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub async fn wait_for_port(addr: SocketAddr, limit: Duration) -> bool {
    eventually(limit, || async move {
        tokio::net::TcpStream::connect(addr).await.is_ok()
    })
    .await
}

/// An HTTP client that neither follows redirects nor pools across tests.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client builds")
}
