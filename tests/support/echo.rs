//! `EchoUpstream`: a real HTTP/1.1 server that answers with what it received, as JSON, and
//! echoes WebSocket messages. Paths with behaviour:
//! - `/healthz`: 200, or 503 after `set_healthy(false)`;
//! - `/slow?ms=N`: answers after N milliseconds;
//! - any request with `Upgrade: websocket`: a WebSocket echo (subprotocol echoed back);
//! - anything else: its method, URI, HTTP version, headers and body as JSON, once the whole body
//!   arrived (HTTP/1.1, or h2c by prior knowledge);
//!   each `set-cookie=…` query parameter comes back as a `Set-Cookie` field.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

struct State {
    name: String,
    healthy: AtomicBool,
    /// The request target of each request served (health checks excluded), in order.
    targets: Mutex<Vec<String>>,
}

pub struct EchoUpstream {
    pub addr: SocketAddr,
    state: Arc<State>,
    server: tokio::task::JoinHandle<()>,
}

impl EchoUpstream {
    pub async fn start(name: &str) -> EchoUpstream {
        Self::start_on(name, "127.0.0.1:0".parse().expect("addr")).await
    }

    /// Binds a given address, e.g. to bring a killed backend back on its old port.
    pub async fn start_on(name: &str, addr: SocketAddr) -> EchoUpstream {
        let listener = TcpListener::bind(addr).await.expect("bind echo upstream");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(State {
            name: name.to_string(),
            healthy: AtomicBool::new(true),
            targets: Mutex::new(Vec::new()),
        });
        let server = tokio::spawn(serve(listener, state.clone()));
        EchoUpstream {
            addr,
            state,
            server,
        }
    }

    pub fn set_healthy(&self, healthy: bool) {
        self.state.healthy.store(healthy, Ordering::SeqCst);
    }

    /// Requests served, health checks excluded.
    pub fn requests(&self) -> usize {
        self.state
            .targets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// The request target (path and query) of every request served, health checks excluded.
    pub fn targets(&self) -> Vec<String> {
        self.state
            .targets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Closes the listener and every open connection, like a crashed process.
    pub fn kill(self) -> SocketAddr {
        self.server.abort();
        self.addr
    }
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    // Connections live in this set, so aborting the server task drops (closes) them all.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let state = state.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(req, state.clone()));
                    // HTTP/1.1 (with upgrades) or h2c by prior knowledge, as the client opens.
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    if req.uri().path() == "/healthz" {
        let status = if state.healthy.load(Ordering::SeqCst) {
            200
        } else {
            503
        };
        return Ok(Response::builder()
            .status(status)
            .body(Full::new(Bytes::from_static(b"health\n")))
            .expect("response"));
    }
    state
        .targets
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(
            req.uri()
                .path_and_query()
                .map_or_else(String::new, |pq| pq.to_string()),
        );
    let is_ws = req
        .headers()
        .get("upgrade")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    if is_ws {
        return Ok(websocket(req));
    }
    if let Some(ms) = req
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("ms="))
        .and_then(|v| v.parse::<u64>().ok())
    {
        if req.uri().path() == "/slow" {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
    }
    let headers: serde_json::Map<String, serde_json::Value> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                serde_json::Value::from(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            )
        })
        .collect();
    let set_cookies: Vec<String> =
        form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .filter(|(k, _)| k == "set-cookie")
            .map(|(_, v)| v.into_owned())
            .collect();
    let method = req.method().as_str().to_string();
    let version = format!("{:?}", req.version());
    let uri = req.uri().to_string();
    let received = req.into_body().collect().await?.to_bytes();
    let body = serde_json::json!({
        "server": state.name,
        "method": method,
        "version": version,
        "uri": uri,
        "headers": headers,
        "body": String::from_utf8_lossy(&received),
    });
    let mut response = Response::builder().header("content-type", "application/json");
    for cookie in set_cookies {
        response = response.header("set-cookie", cookie);
    }
    Ok(response
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response"))
}

fn websocket(mut req: Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(key) = req
        .headers()
        .get("sec-websocket-key")
        .map(|k| derive_accept_key(k.as_bytes()))
    else {
        return Response::builder()
            .status(400)
            .body(Full::new(Bytes::new()))
            .expect("response");
    };
    let protocol = req
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|p| p.to_str().ok())
        .and_then(|p| p.split(',').next())
        .map(|p| p.trim().to_string());
    let path = req.uri().path().to_string();
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        // The first message tells the client which path the upstream saw.
        let _ = ws
            .send(tokio_tungstenite::tungstenite::Message::text(format!(
                "path:{path}"
            )))
            .await;
        while let Some(Ok(msg)) = ws.next().await {
            if msg.is_close() {
                break;
            }
            if (msg.is_text() || msg.is_binary()) && ws.send(msg).await.is_err() {
                break;
            }
        }
    });
    let mut resp = Response::builder()
        .status(101)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", key);
    if let Some(p) = protocol {
        resp = resp.header("sec-websocket-protocol", p);
    }
    resp.body(Full::new(Bytes::new())).expect("response")
}
