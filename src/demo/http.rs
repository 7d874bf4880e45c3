//! The small HTTP server the demo's provider and backends share (hyper, HTTP/1.1): requests
//! read whole (they are small), answers built whole, WebSocket upgrades handed to a callback.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The demo's pages and forms are small; anything larger is not one of them.
const MAX_BODY: usize = 64 * 1024;

pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    #[cfg(test)]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn response(status: u16, content_type: &str, body: Vec<u8>) -> Response {
    Response {
        status,
        headers: vec![
            ("content-type".into(), content_type.into()),
            ("cache-control".into(), "no-store".into()),
        ],
        body,
    }
}

pub fn html(status: u16, body: &str) -> Response {
    response(status, "text/html; charset=utf-8", body.as_bytes().to_vec())
}

pub fn text(status: u16, body: &str) -> Response {
    response(
        status,
        "text/plain; charset=utf-8",
        body.as_bytes().to_vec(),
    )
}

pub fn script(body: &str) -> Response {
    response(
        200,
        "text/javascript; charset=utf-8",
        body.as_bytes().to_vec(),
    )
}

pub fn json(status: u16, value: &serde_json::Value) -> Response {
    response(status, "application/json", value.to_string().into_bytes())
}

pub fn redirect(status: u16, location: &str) -> Response {
    let mut r = response(status, "text/plain", Vec::new());
    r.headers.push(("location".into(), location.into()));
    r
}

pub fn query(req: &Request) -> HashMap<String, String> {
    url::form_urlencoded::parse(req.query.as_bytes())
        .into_owned()
        .collect()
}

pub fn form(req: &Request) -> HashMap<String, String> {
    url::form_urlencoded::parse(&req.body)
        .into_owned()
        .collect()
}

pub type Handler = Arc<dyn Fn(Request) -> Response + Send + Sync>;
/// Takes a WebSocket upgrade for `path` (the raw connection, after the 101) if it wants one.
pub type UpgradeHandler = Arc<
    dyn Fn(String, hyper::upgrade::Upgraded) -> Pin<Box<dyn Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// Serves `handler` on `listener` until the process ends.
pub async fn serve(listener: TcpListener, handler: Handler, upgrades: Option<UpgradeHandler>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let handler = handler.clone();
        let upgrades = upgrades.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let handler = handler.clone();
                let upgrades = upgrades.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(req, handler, upgrades).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

async fn handle(
    mut req: hyper::Request<Incoming>,
    handler: Handler,
    upgrades: Option<UpgradeHandler>,
) -> hyper::Response<Full<Bytes>> {
    if let (Some(upgrades), Some(key)) = (upgrades, websocket_key(&req)) {
        let path = req.uri().path().to_string();
        let protocol = offered_guacamole(&req);
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(upgraded) = on_upgrade.await {
                upgrades(path, upgraded).await;
            }
        });
        let mut resp = hyper::Response::builder()
            .status(101)
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header(
                "sec-websocket-accept",
                tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes()),
            );
        if protocol {
            resp = resp.header("sec-websocket-protocol", "guacamole");
        }
        return resp.body(Full::new(Bytes::new())).unwrap_or_default();
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes().to_vec(),
        Err(_) => return to_hyper(text(413, "too large")),
    };
    let request = Request {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or("").to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    };
    to_hyper(handler(request))
}

fn websocket_key(req: &hyper::Request<Incoming>) -> Option<String> {
    let upgrade = req.headers().get("upgrade")?.to_str().ok()?;
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return None;
    }
    Some(
        req.headers()
            .get("sec-websocket-key")?
            .to_str()
            .ok()?
            .to_string(),
    )
}

fn offered_guacamole(req: &hyper::Request<Incoming>) -> bool {
    req.headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == "guacamole")
}

fn to_hyper(r: Response) -> hyper::Response<Full<Bytes>> {
    let mut builder = hyper::Response::builder().status(r.status);
    for (k, v) in &r.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    builder
        .body(Full::new(Bytes::from(r.body)))
        .unwrap_or_default()
}
