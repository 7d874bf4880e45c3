//! `portcullis demo` end to end: the real binary's demo on free ports, driven like a browser
//! (a cookie jar, every redirect followed by hand, the provider's login page filled in).

#[path = "../support/mod.rs"]
mod support;

use futures_util::{SinkExt, StreamExt};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use support::proxy::BIN;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

struct Demo {
    child: Child,
    origin: String,
}

impl Demo {
    fn start() -> Demo {
        let (port, idp_port) = (support::free_port(), support::free_port());
        let mut child = Command::new(BIN)
            .args([
                "demo",
                "--port",
                &port.to_string(),
                "--idp-port",
                &idp_port.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the demo");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("demo: ready ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the demo printed `demo: ready` within a minute");
        assert_eq!(url, format!("http://localhost:{port}/"));
        Demo {
            child,
            origin: format!("http://localhost:{port}"),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Browser {
    client: reqwest::Client,
    jar: Arc<reqwest::cookie::Jar>,
}

impl Browser {
    fn new() -> Browser {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        Browser { client, jar }
    }

    /// Follows redirects from `first`; returns the final response.
    async fn follow(&self, first: reqwest::RequestBuilder) -> reqwest::Response {
        let mut resp = first.send().await.expect("request");
        for _ in 0..10 {
            if !resp.status().is_redirection() {
                return resp;
            }
            let next = resp
                .url()
                .join(resp.headers()["location"].to_str().unwrap())
                .unwrap();
            resp = self
                .client
                .get(next)
                .header("accept", "text/html")
                .header("sec-fetch-mode", "navigate")
                .send()
                .await
                .expect("request");
        }
        panic!("too many redirects");
    }

    async fn navigate(&self, url: &str) -> reqwest::Response {
        self.follow(
            self.client
                .get(url)
                .header("accept", "text/html")
                .header("sec-fetch-mode", "navigate")
                .header("sec-fetch-site", "none"),
        )
        .await
    }

    /// From the demo's home page through the provider's login page, picking `user`.
    async fn log_in(&self, demo: &Demo, user: &str) -> String {
        let page = self.navigate(&demo.url("/")).await;
        let page_url = page.url().clone();
        assert_ne!(
            page_url.origin(),
            reqwest::Url::parse(&demo.origin).unwrap().origin(),
            "at the provider"
        );
        let html = page.text().await.unwrap();
        assert!(
            html.contains("DEVELOPMENT") || html.contains("Development provider"),
            "{html}"
        );
        assert!(
            html.contains(&format!("value=\"{user}\"")),
            "the login page lists {user}"
        );
        let mut fields: Vec<(String, String)> = hidden_inputs(&html);
        fields.push(("user".into(), user.into()));
        let action = page_url.join("/authorize").unwrap();
        let done = self.follow(self.client.post(action).form(&fields)).await;
        assert_eq!(done.status(), 200);
        assert!(
            done.url().as_str().starts_with(&demo.url("/console/")),
            "{}",
            done.url()
        );
        done.text().await.unwrap()
    }

    fn cookies(&self, url: &str) -> String {
        use reqwest::cookie::CookieStore;
        self.jar
            .cookies(&url.parse().unwrap())
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    }
}

fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    let unescape = |s: &str| {
        s.replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    html.split("<input type=\"hidden\" ")
        .skip(1)
        .filter_map(|rest| {
            let name = rest.split("name=\"").nth(1)?.split('"').next()?;
            let value = rest.split("value=\"").nth(1)?.split('"').next()?;
            Some((name.to_string(), unescape(value)))
        })
        .collect()
}

#[tokio::test]
async fn the_demo_shows_login_identity_api_tunnel_policy_refresh_and_logout() {
    let demo = Demo::start();
    let alice = Browser::new();
    let console = alice.log_in(&demo, "alice").await;
    assert!(console.contains("Hello, alice"), "{console}");
    assert!(
        console.contains("admins,staff"),
        "the upstream saw the groups: {console}"
    );

    let api = alice
        .client
        .get(demo.url("/api/whoami"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 200);
    let seen: serde_json::Value = api.json().await.unwrap();
    assert_eq!(seen["user"], "alice");
    assert_eq!(seen["path"], "/whoami");

    let desktop = alice.navigate(&demo.url("/desktop/alice/")).await;
    assert_eq!(desktop.status(), 200);
    assert!(desktop.text().await.unwrap().contains("app.js"));
    let mut req = demo
        .url("/desktop/alice/tunnel")
        .replace("http://", "ws://")
        .into_client_request()
        .unwrap();
    let headers = req.headers_mut();
    headers.insert("cookie", alice.cookies(&demo.url("/")).parse().unwrap());
    headers.insert("origin", demo.origin.parse().unwrap());
    headers.insert("sec-websocket-protocol", "guacamole".parse().unwrap());
    let (mut tunnel, resp) = tokio_tungstenite::connect_async(req).await.expect("tunnel");
    assert_eq!(resp.headers()["sec-websocket-protocol"], "guacamole");
    tunnel.send(Message::text("ping")).await.unwrap();
    assert_eq!(tunnel.next().await.unwrap().unwrap(), Message::text("ping"));

    // Bob logs in too: alice's desktop is hers alone; the admin area is for admins.
    let bob = Browser::new();
    assert!(bob.log_in(&demo, "bob").await.contains("Hello, bob"));
    let refused = bob.navigate(&demo.url("/desktop/alice/")).await;
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().contains("not allowed"));
    assert_eq!(bob.navigate(&demo.url("/admin/")).await.status(), 403);
    assert_eq!(alice.navigate(&demo.url("/admin/")).await.status(), 200);

    // The short-lived access token is renewed through the provider's refresh grant.
    let refreshed = alice
        .client
        .post(demo.url("/oauth2/session/refresh"))
        .header("origin", &demo.origin)
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200);
    let session: serde_json::Value = refreshed.json().await.unwrap();
    assert!(session["tokens"]["refreshed_at"].is_string(), "{session}");

    // The console's logout button: the session ends, the tunnel closes, the API says 401.
    let out = alice
        .follow(
            alice
                .client
                .post(demo.url("/oauth2/logout"))
                .header("origin", &demo.origin)
                .header("sec-fetch-site", "same-origin"),
        )
        .await;
    assert!(out.status().as_u16() < 500, "{}", out.status());
    let closed = support::ws::closed_within(&mut tunnel, Duration::from_secs(3)).await;
    assert!(closed.is_some(), "the tunnel is still open after logout");
    let api = alice
        .client
        .get(demo.url("/api/whoami"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 401, "an API answers 401, never a redirect");
}

#[tokio::test]
async fn sigterm_stops_the_demo_cleanly() {
    let mut demo = Demo::start();
    let pid = demo.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = demo.child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still running 20 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The development provider exists only behind `demo`: a config cannot ask for it.
#[test]
fn no_config_can_start_the_development_provider() {
    for key in [
        "demo: true\n",
        "dev_provider: { enabled: true }\n",
        "oidc_dev: {}\n",
    ] {
        let config = format!(
            "listen:\n  - address: \"127.0.0.1:8080\"\nupstreams_file: upstreams.yaml\n{key}routes:\n  - {{ prefix: /, upstream: app }}\n"
        );
        let (ok, err) = support::proxy::check(
            &config,
            "upstreams:\n  app: { backends: [\"127.0.0.1:9\"] }\n",
        );
        assert!(!ok, "{key}");
        assert!(err.to_lowercase().contains("unknown field"), "{key}: {err}");
    }
    let out = Command::new(BIN).args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        !help.to_lowercase().contains("provider"),
        "`run` has no provider option: {help}"
    );
}
