//! Single sign-on across subdomains: one SSO server and two SSO proxies, each a real
//! `portcullis` over TLS on its own host name (all on loopback), sharing one real
//! `redis-server`, in front of the test OpenID provider. A browser with a cookie jar follows
//! every redirect by hand.

#[path = "../support/mod.rs"]
mod support;

mod attacks;
mod flow;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use support::idp::{IdpConfig, TestIdp, TestUser};
use support::oidc::{ENV, SECRET};
use support::pki::TestCa;
use support::redis::RedisServer;
use support::{free_port, EchoUpstream, Proxy};

pub const DOMAIN: &str = "example.test";

/// One instance of the family: its host name, port and process.
pub struct Instance {
    pub host: String,
    pub port: u16,
    pub proxy: Proxy,
}

impl Instance {
    pub fn origin(&self) -> String {
        format!("https://{}:{}", self.host, self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

pub struct Family {
    pub ca: TestCa,
    pub idp: TestIdp,
    pub redis: RedisServer,
    pub server: Instance,
    pub a: Instance,
    pub b: Instance,
    pub app: EchoUpstream,
    pub desktop: EchoUpstream,
    _certs: tempfile::TempDir,
}

const ROUTES: &str = r#"
routes:
  - { prefix: /api/, upstream: app, auth: api }
  - { prefix: "/desktop/{id}/", desktops: true, auth: login, allow: owner, strip_prefix: true, websocket: true }
  - { prefix: /, upstream: app, auth: login }
"#;

impl Family {
    pub async fn start() -> Family {
        let ca = TestCa::new();
        let certs = tempfile::tempdir().expect("cert dir");
        let ca_file = certs.path().join("ca.pem");
        std::fs::write(&ca_file, &ca.pem).expect("CA file");
        let redis = RedisServer::start().await;
        let ports: HashMap<&str, u16> = ["sso", "a", "b"]
            .iter()
            .map(|h| (*h, free_port()))
            .collect();
        let origin = |h: &str| format!("https://{h}.{DOMAIN}:{}", ports[h]);
        let cfg = IdpConfig {
            client_secret: SECRET.to_string(),
            redirect_uris: vec![format!("{}/oauth2/callback", origin("sso"))],
            post_logout_redirect_uris: vec![format!("{}/oauth2/logout/callback", origin("sso"))],
            ..IdpConfig::default()
        };
        let idp = TestIdp::start(cfg).await;
        idp.set_user(alice());
        let app = EchoUpstream::start("app").await;
        let desktop = EchoUpstream::start("desktop").await;
        let upstreams = format!(
            "upstreams:\n  app: {{ backends: [\"{}\"] }}\ndesktops:\n  d-alice: {{ backend: \"{}\", owner: alice }}\n",
            app.addr, desktop.addr
        );
        let session = format!(
            "session:\n  key: ${{SESSION_KEY}}\n  store: redis\n  cache_ttl: 0s\n  redis: {{ url: \"{}\" }}\n",
            redis.url()
        );
        let oidc = |h: &str, secret: bool| {
            format!(
                "oidc:\n  issuer: {}\n  client_id: portcullis\n{}  public_url: {}\n  scopes: [openid, profile, email, groups]\n",
                idp.issuer(),
                if secret { "  client_secret: ${OIDC_CLIENT_SECRET}\n" } else { "" },
                origin(h)
            )
        };
        let listen = |h: &str| {
            let name = format!("{h}.{DOMAIN}");
            let (cert, key) = ca.issue(certs.path(), h, &[&name]);
            format!(
                "listen:\n  - address: \"127.0.0.1:{}\"\n    tls: {{ cert: \"{}\", key: \"{}\" }}\n",
                ports[h],
                cert.display(),
                key.display()
            )
        };
        let env = env_with(&ca_file);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let server_body = format!(
            "{}{}{}sso: {{ mode: server, domain: {DOMAIN} }}\n",
            listen("sso"),
            oidc("sso", true),
            session
        );
        let proxy_body = |h: &str| {
            format!(
                "{}{}{}sso: {{ mode: proxy, domain: {DOMAIN}, server_url: \"{}\", server_address: \"127.0.0.1:{}\" }}\n{ROUTES}",
                listen(h),
                oidc(h, false),
                session,
                origin("sso"),
                ports["sso"]
            )
        };
        let server = Proxy::start_on(ports["sso"], &server_body, &upstreams, &env).await;
        let a = Proxy::start_on(ports["a"], &proxy_body("a"), &upstreams, &env).await;
        let b = Proxy::start_on(ports["b"], &proxy_body("b"), &upstreams, &env).await;
        let instance = |h: &str, proxy| Instance {
            host: format!("{h}.{DOMAIN}"),
            port: ports[h],
            proxy,
        };
        Family {
            server: instance("sso", server),
            a: instance("a", a),
            b: instance("b", b),
            ca,
            idp,
            redis,
            app,
            desktop,
            _certs: certs,
        }
    }

    /// A browser that trusts the test CA and resolves the family's host names to loopback.
    pub fn browser(&self) -> Browser {
        let mut builder = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(self.ca.root());
        for i in [&self.server, &self.a, &self.b] {
            builder = builder.resolve(&i.host, i.addr());
        }
        Browser::build(builder)
    }
}

fn env_with(ca_file: &std::path::Path) -> Vec<(&'static str, String)> {
    let mut env: Vec<(&'static str, String)> =
        ENV.iter().map(|(k, v)| (*k, v.to_string())).collect();
    // The proxies call the server (refresh) over TLS certified by the test CA.
    env.push((
        "SSL_CERT_FILE",
        PathBuf::from(ca_file).display().to_string(),
    ));
    env
}

pub fn alice() -> TestUser {
    TestUser::new("alice-sub", "alice").with_groups(&["staff"])
}

pub use support::oidc::Browser;

/// What the SSO tests ask of a browser beyond the kit's.
pub(crate) trait SsoBrowser {
    /// The identity the app upstream saw for a navigation to `url`, or the final status.
    async fn user_at(&self, url: &str) -> Result<String, u16>;
    /// Plants a cookie as a sibling host of the domain could (`Set-Cookie` with `Domain=`).
    fn toss(&self, from: &Instance, set_cookie: &str);
}

impl SsoBrowser for Browser {
    async fn user_at(&self, url: &str) -> Result<String, u16> {
        let (_, resp) = self.navigate(url).await;
        let status = resp.status().as_u16();
        if status != 200 {
            return Err(status);
        }
        let body: serde_json::Value = resp.json().await.map_err(|_| 0u16)?;
        Ok(body["headers"]["x-remote-user"]
            .as_str()
            .unwrap_or("")
            .to_string())
    }

    fn toss(&self, from: &Instance, set_cookie: &str) {
        let url: reqwest::Url = from.url("/").parse().expect("url");
        self.jar.add_cookie_str(set_cookie, &url);
    }
}

/// The value of cookie `name` in a Cookie header.
pub fn cookie_value(header: &str, name: &str) -> Option<String> {
    header
        .split("; ")
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .map(str::to_string)
}
