//! The demo's upstreams: a console page showing which identity the upstream saw, a JSON API,
//! and a desktop whose page opens a WebSocket tunnel (subprotocol `guacamole`, as the real
//! remote desktops use) to an echo standing in for the VNC/RDP stream.

use super::http::{html, json, script, text, Request, Response};
use super::idp::escape;
use futures::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;

/// The identity headers the demo config names (the defaults).
const USER: &str = "x-remote-user";
const GROUPS: &str = "x-remote-groups";
const EMAIL: &str = "x-remote-email";

fn seen(req: &Request) -> serde_json::Value {
    json!({
        "user": req.header(USER),
        "groups": req.header(GROUPS),
        "email": req.header(EMAIL),
        "path": req.path,
        "query": req.query,
    })
}

/// `/console/…` and `/admin/…` (not stripped): who the upstream was told the user is.
pub fn console(req: Request) -> Response {
    if req.path == "/" {
        return super::http::redirect(302, "/console/");
    }
    let user = req.header(USER).unwrap_or("(none)");
    let me = req.header(USER).unwrap_or("alice");
    let rows: String = [("User", USER), ("Groups", GROUPS), ("Email", EMAIL)]
        .iter()
        .map(|(label, h)| {
            format!(
                "<tr><th>{label}</th><td><code>{h}</code></td><td id=\"{h}\">{}</td></tr>",
                escape(req.header(h).unwrap_or("—"))
            )
        })
        .collect();
    let admin = req.path.starts_with("/admin/");
    let title = if admin { "Admin area" } else { "Console" };
    let full = if req.query.is_empty() {
        req.path.clone()
    } else {
        format!("{}?{}", req.path, req.query)
    };
    html(
        200,
        &format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} · Portcullis demo</title>\
             <style>{STYLE}</style></head><body><header><b>Portcullis demo</b> · {title}</header><main>\
             <h1 id=\"who\">Hello, {user}</h1>\
             <p>This page is served by the demo's console backend. It knows who you are only from the headers \
             Portcullis added after verifying your login:</p>\
             <table>{rows}<tr><th>Path</th><td colspan=2 id=\"path\">{path}</td></tr></table>\
             <ul><li><a href=\"/api/whoami\">/api/whoami</a> — the API (JSON; 401 without a login, never a redirect)</li>\
             <li><a href=\"/desktop/{me}/\">/desktop/{me}/</a> — your desktop (owner only)</li>\
             <li><a href=\"/desktop/bob/\">/desktop/bob/</a> — bob's desktop</li>\
             <li><a href=\"/admin/\">/admin/</a> — admins only</li>\
             <li><a href=\"/oauth2/session\">/oauth2/session</a> — your session</li></ul>\
             <form method=\"post\" action=\"/oauth2/logout\"><button>Log out</button></form></main></body></html>",
            user = escape(user),
            me = escape(me),
            path = escape(&full),
        ),
    )
}

/// `/api/…` (prefix stripped): JSON.
pub fn api(req: Request) -> Response {
    json(200, &seen(&req))
}

/// `/desktop/{id}/…` (prefix stripped): the page and its script; the tunnel is an upgrade.
pub fn desktop(req: Request) -> Response {
    match req.path.as_str() {
        "/" => html(
            200,
            &format!(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Desktop · Portcullis demo</title>\
                 <style>{STYLE}</style></head><body><header><b>Portcullis demo</b> · Desktop of {user}</header><main>\
                 <h1>Remote desktop</h1><p>The desktop backend was told this is <b id=\"who\">{user}</b>. A real desktop \
                 streams its screen over this WebSocket tunnel (subprotocol <code>guacamole</code>); here it echoes.</p>\
                 <p>Tunnel: <b id=\"state\">connecting…</b></p>\
                 <form id=\"send\"><input id=\"msg\" value=\"hello\"> <button>Send</button></form><ol id=\"log\"></ol>\
                 <p><a href=\"/console/\">Back to the console</a></p></main>\
                 <script src=\"app.js\"></script></body></html>",
                user = escape(req.header(USER).unwrap_or("(none)")),
            ),
        ),
        // A file, not inline: the security-headers plugin may forbid inline scripts.
        "/app.js" => script(DESKTOP_JS),
        _ => text(404, "not found"),
    }
}

const DESKTOP_JS: &str = r#"
const state = document.getElementById('state');
const log = document.getElementById('log');
const url = new URL('tunnel', location.href);
url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
const add = (text) => { const li = document.createElement('li'); li.textContent = text; log.appendChild(li); };
// Like a real desktop client, reconnect when the tunnel drops at once (a proxy or network
// hiccup right after the upgrade), a few times; a tunnel that lived is closed for a reason
// (logout, the desktop going away) and stays closed.
let attempts = 0;
function connect() {
  const ws = new WebSocket(url, ['guacamole']);
  window.tunnel = ws;
  let openedAt = 0;
  ws.onopen = () => { openedAt = Date.now(); state.textContent = 'open (' + ws.protocol + ')'; ws.send('hello'); };
  ws.onmessage = (e) => add('echo: ' + e.data);
  ws.onclose = (e) => {
    const dropped = e.code === 1006 && openedAt !== 0 && Date.now() - openedAt < 1000;
    if (dropped && attempts < 5) {
      attempts += 1;
      state.textContent = 'reconnecting…';
      setTimeout(connect, 200 * attempts);
      return;
    }
    state.textContent = 'closed (' + e.code + ')';
  };
}
connect();
document.getElementById('send').onsubmit = (e) => {
  e.preventDefault();
  window.tunnel.send(document.getElementById('msg').value);
};
"#;

/// The tunnel end: echoes every frame until the proxy (or the browser) closes it.
pub async fn tunnel(path: String, upgraded: hyper::upgrade::Upgraded) {
    if path != "/tunnel" {
        return;
    }
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
        TokioIo::new(upgraded),
        Role::Server,
        None,
    )
    .await;
    while let Some(Ok(message)) = ws.next().await {
        let echo = matches!(message, Message::Text(_) | Message::Binary(_));
        if matches!(message, Message::Close(_)) || (echo && ws.send(message).await.is_err()) {
            return;
        }
    }
}

const STYLE: &str = "body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#1d2330}\
header{background:#1d2330;color:#fff;padding:.75rem 1.5rem}main{max-width:44rem;margin:2rem auto;padding:0 1rem}\
table{border-collapse:collapse}th,td{border:1px solid #d8dce5;padding:.35rem .6rem;text-align:left}\
button{font:inherit;padding:.4rem .9rem}code{background:#f1f3f7;padding:0 .25rem}";
