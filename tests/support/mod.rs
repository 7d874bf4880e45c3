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
/// Never the same port twice in one test process: the kernel may hand a just-released port out
/// again at once, and a proxy's main and metrics ports picked back to back then collide.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("no free port on loopback");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
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
