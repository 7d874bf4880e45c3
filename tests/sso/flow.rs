//! What single sign-on is for: one login for every host of the domain, one logout for all.

use crate::support::proxy::check;
use crate::{alice, Family, SsoBrowser};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn one_login_through_a_reaches_b_with_no_provider_round_trip() {
    let f = Family::start().await;
    let browser = f.browser();
    let (hops, resp) = browser.navigate(&f.a.url("/console/x?y=1")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.url().as_str(),
        f.a.url("/console/x?y=1"),
        "back exactly where it started"
    );
    let path: Vec<String> = hops.iter().map(|h| h.url.clone()).collect();
    assert!(
        path.iter()
            .any(|u| u.starts_with(&f.server.url("/oauth2/callback"))),
        "{path:?}"
    );
    assert!(
        path.iter()
            .any(|u| u.starts_with(&f.a.url("/oauth2/sso/handoff"))),
        "{path:?}"
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["headers"]["x-remote-user"], "alice");
    assert_eq!(f.idp.counters().authorize_requests, 1);

    let (hops, resp) = browser.navigate(&f.b.url("/reports")).await;
    assert_eq!(
        resp.status(),
        200,
        "{:?}",
        hops.iter().map(|h| &h.url).collect::<Vec<_>>()
    );
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["headers"]["x-remote-user"], "alice");
    assert_eq!(
        f.idp.counters().authorize_requests,
        1,
        "B needed no provider round trip"
    );
    assert_eq!(f.idp.counters().token_requests, 1);
    // The server sets the shared cookie for the domain, and each proxy its own binding.
    let at_b = browser.cookie_header_for(&f.b.url("/"));
    assert!(at_b.contains("__Secure-portcullis_sso="), "{at_b}");
    assert!(at_b.contains("__Host-portcullis_sso_binding="), "{at_b}");
    // Neither reaches the upstream.
    assert!(
        body["headers"]["cookie"].as_str().unwrap_or("").is_empty(),
        "{body}"
    );
}

#[tokio::test]
async fn logout_on_b_ends_the_session_on_a_and_closes_the_tunnel_there() {
    let f = Family::start().await;
    let browser = f.browser();
    assert_eq!(browser.user_at(&f.a.url("/app")).await, Ok("alice".into()));
    assert_eq!(browser.user_at(&f.b.url("/app")).await, Ok("alice".into()));
    let mut ws = tunnel(&f, &browser).await;
    ws.send(Message::text("ping")).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::text("ping"));

    // The logout button of B: a same-origin form post.
    // Landing on an `api` route: after a logout a `login` route would start a new login, which
    // the test provider completes without asking.
    let resp = browser
        .client
        .post(f.b.url("/oauth2/logout?redirect=/api/bye"))
        .header("origin", f.b.origin())
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    let onward = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(
        onward.starts_with(&f.server.url("/oauth2/logout?redirect=")),
        "{onward}"
    );
    let (_, last) = browser.navigate(&onward).await;
    assert!(last.status().as_u16() < 500);

    assert_eq!(browser.status_of(&f.a.url("/app")).await, 401);
    assert_eq!(browser.status_of(&f.b.url("/app")).await, 401);
    let closed = crate::support::ws::closed_within(&mut ws, Duration::from_secs(2)).await;
    assert!(
        closed.is_some(),
        "A's tunnel still open 2 s after logout on B"
    );
    // The server's own session ended too: a new visit goes to the provider again.
    let before = f.idp.counters().authorize_requests;
    assert_eq!(browser.user_at(&f.a.url("/app")).await, Ok("alice".into()));
    assert_eq!(f.idp.counters().authorize_requests, before + 1);
}

#[tokio::test]
async fn back_channel_logout_at_the_server_ends_the_session_on_every_proxy() {
    let f = Family::start().await;
    let browser = f.browser();
    assert_eq!(browser.user_at(&f.a.url("/app")).await, Ok("alice".into()));
    assert_eq!(browser.user_at(&f.b.url("/app")).await, Ok("alice".into()));
    let sid = f.idp.sid_of_last_login().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({
        "iss": f.idp.issuer(), "aud": "portcullis", "iat": now, "exp": now + 60, "jti": "sso-1",
        "sid": sid, "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
    });
    let header = json!({ "alg": "RS256", "typ": "logout+jwt", "kid": f.idp.current_kid() });
    let token = f.idp.sign_raw(&header.to_string(), &claims.to_string());
    let resp = browser
        .client
        .post(f.server.url("/oauth2/logout/backchannel"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("logout_token={token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(browser.status_of(&f.a.url("/app")).await, 401);
    assert_eq!(browser.status_of(&f.b.url("/app")).await, 401);
}

#[tokio::test]
async fn an_expiring_token_is_refreshed_once_by_the_server_for_every_proxy() {
    let f = Family::start().await;
    f.idp.set_access_token_ttl(Duration::from_secs(4));
    let browser = f.browser();
    assert_eq!(browser.user_at(&f.a.url("/app")).await, Ok("alice".into()));
    assert_eq!(browser.user_at(&f.b.url("/app")).await, Ok("alice".into()));
    assert_eq!(f.idp.counters().refresh_requests, 0);
    // Within the refresh margin (half of a 4 s token): requests on both proxies at once.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let (at_a, at_b) = (f.a.url("/app"), f.b.url("/app"));
    let (a, b, a2, b2) = tokio::join!(
        browser.status_of(&at_a),
        browser.status_of(&at_b),
        browser.status_of(&at_a),
        browser.status_of(&at_b),
    );
    assert_eq!(
        (a, b, a2, b2),
        (200, 200, 200, 200),
        "A: {}\nserver: {}",
        f.a.proxy.log(),
        f.server.proxy.log()
    );
    // The still-valid token was served; the refresh runs in the background.
    let refreshed = crate::support::eventually(Duration::from_secs(5), || async {
        f.idp.counters().refresh_requests >= 1
    })
    .await;
    assert!(refreshed, "refreshed at the server");
    let (a, b) = tokio::join!(browser.status_of(&at_a), browser.status_of(&at_b));
    assert_eq!((a, b), (200, 200));
    assert_eq!(
        f.idp.counters().refresh_requests,
        1,
        "one refresh, at the server"
    );
}

type TlsTunnel =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

/// A's tunnel to alice's desktop over TLS, its greeting read (reconnecting as a browser
/// would when Pingora drops an upgraded connection at once: see `support::ws::open_tunnel`).
async fn tunnel(f: &Family, browser: &crate::Browser) -> TlsTunnel {
    let url = format!("wss://{}:{}/desktop/d-alice/tunnel", f.a.host, f.a.port);
    let cookies = browser.cookie_header_for(&f.a.url("/desktop/d-alice/tunnel"));
    for _ in 0..3 {
        let mut req = url.clone().into_client_request().unwrap();
        req.headers_mut().insert("cookie", cookies.parse().unwrap());
        req.headers_mut()
            .insert("origin", f.a.origin().parse().unwrap());
        let tls = f.ca.connect(f.a.addr(), &f.a.host).await;
        let (mut ws, resp) = tokio_tungstenite::client_async(req, tls)
            .await
            .expect("handshake");
        assert_eq!(resp.status(), 101);
        if let Ok(Some(Ok(Message::Text(greeting)))) =
            tokio::time::timeout(Duration::from_secs(5), ws.next()).await
        {
            assert!(greeting.starts_with("path:"), "{greeting}");
            return ws;
        }
    }
    panic!("the tunnel never stayed open");
}

const CONFIG: &str = "listen:\n  - address: \"127.0.0.1:8443\"\nupstreams_file: upstreams.yaml\n";

fn oidc(public_url: &str, secret: bool) -> String {
    format!(
        "oidc:\n  issuer: https://idp.example.test\n  client_id: portcullis\n{}  public_url: {public_url}\n",
        if secret { "  client_secret: s3cret\n" } else { "" }
    )
}

const REDIS: &str =
    "session:\n  key: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n  store: redis\n  redis: { url: \"redis://127.0.0.1:6379\" }\n";
const MEMORY: &str = "session:\n  key: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n";
const UPSTREAMS: &str = "upstreams:\n  app: { backends: [\"127.0.0.1:9\"] }\n";
const ROUTE: &str = "routes:\n  - { prefix: /, upstream: app }\n";

#[test]
fn check_refuses_what_would_leak_the_cookie_or_the_credentials() {
    let cases = [
        (
            format!("{CONFIG}{}{REDIS}sso:\n  mode: server\n  domain: example.test\n", oidc("https://sso.example.org", true)),
            "oidc.public_url",
            "must be an https URL on `example.test`",
        ),
        (
            format!("{CONFIG}{}{MEMORY}sso:\n  mode: proxy\n  domain: example.test\n  server_url: https://sso.example.test\n{ROUTE}", oidc("https://a.example.test", false)),
            "session.store",
            "must be `redis`",
        ),
        (
            format!("{CONFIG}{}{REDIS}sso:\n  mode: proxy\n  domain: example.test\n  server_url: https://sso.example.test\n{ROUTE}", oidc("https://a.example.test", true)),
            "oidc",
            "holds no provider credentials",
        ),
        (
            format!("{CONFIG}{}{REDIS}sso:\n  mode: server\n  domain: co.uk\n", oidc("https://sso.example.co.uk", true)),
            "sso.domain",
            "public suffix",
        ),
        (
            format!("{CONFIG}{}{REDIS}sso:\n  mode: proxy\n  domain: example.test\n  server_url: https://sso.evil.test\n{ROUTE}", oidc("https://a.example.test", false)),
            "sso.server_url",
            "must be an https origin",
        ),
        (
            format!("{CONFIG}{}{REDIS}sso:\n  mode: sever\n", oidc("https://sso.example.test", true)),
            "sso",
            "unknown",
        ),
    ];
    for (config, field, message) in cases {
        let (ok, err) = check(&config, UPSTREAMS);
        assert!(!ok, "{field}: accepted\n{config}");
        assert!(err.contains(message), "{field}: {err}");
        // Located at the line of the field at fault.
        let line = line_of(&config, field);
        assert!(
            err.contains(&format!("portcullis.yaml:{line}:")),
            "{field} (line {line}): {err}"
        );
    }
    let good = format!(
        "{CONFIG}{}{REDIS}sso:\n  mode: server\n  domain: example.test\n",
        oidc("https://sso.example.test", true)
    );
    let (ok, err) = check(&good, UPSTREAMS);
    assert!(ok, "a server with no routes is fine: {err}");
    let _ = alice();
}

/// The 1-based line that holds `field` (`a.b`: the `b:` line after the `a:` line).
fn line_of(config: &str, field: &str) -> usize {
    let mut parts = field.split('.');
    let section = parts.next().unwrap();
    let key = parts.next();
    let lines: Vec<&str> = config.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with(&format!("{section}:")))
        .unwrap();
    let Some(key) = key else {
        // The section's first line below its head (where the mode or client_id is).
        return match section {
            "oidc" => {
                start
                    + lines[start..]
                        .iter()
                        .position(|l| l.trim_start().starts_with("client_id:"))
                        .unwrap()
                    + 1
            }
            _ => start + 2,
        };
    };
    // A field not written is reported inside its section, at its first setting.
    let at = lines[start..]
        .iter()
        .position(|l| l.trim_start().starts_with(&format!("{key}:")))
        .unwrap_or(1);
    start + at + 1
}
