//! WebSocket clients for tunnel tests.

use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

pub type Tunnel =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a tunnel and reads the upstream's greeting (`path:…`). Pingora 0.9.1 can tear an
/// upgraded connection down right after the 101 when the upstream answers faster than the
/// proxy drains the request's empty body (cloudflare/pingora#946, fix not released). A browser
/// reconnects; so do we (at most twice), so that this race does not hide what the tests check.
pub async fn open_tunnel(
    request: impl Fn() -> http::Request<()>,
) -> (Tunnel, http::Response<Option<Vec<u8>>>, String) {
    let mut last_error = String::new();
    for _ in 0..3 {
        let (mut ws, response) = tokio_tungstenite::connect_async(request())
            .await
            .expect("handshake through the proxy");
        let greeting = match ws.next().await {
            Some(Ok(Message::Text(greeting))) => greeting.to_string(),
            other => {
                last_error = format!("greeting: {other:?}");
                continue;
            }
        };
        // Both directions must be wired: the race can also drop only client-to-upstream.
        if ws.send(Message::text("probe")).await.is_ok() {
            match ws.next().await {
                Some(Ok(m)) if m == Message::text("probe") => return (ws, response, greeting),
                other => last_error = format!("probe: {other:?}"),
            }
        }
    }
    panic!("the tunnel broke right after the handshake three times: {last_error}");
}

/// Waits for the proxy to end a tunnel; returns how long it took, or `None` after `limit`.
pub async fn closed_within<S>(
    ws: &mut tokio_tungstenite::WebSocketStream<S>,
    limit: Duration,
) -> Option<Duration>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let started = Instant::now();
    loop {
        match tokio::time::timeout(limit.saturating_sub(started.elapsed()), ws.next()).await {
            Err(_) => return None,
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => {
                return Some(started.elapsed())
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}
