//! `Stack`: a test identity provider, an echo upstream and Portcullis configured as the
//! provider's client, plus a cookie-keeping "browser" that follows redirects hop by hop.

use super::idp::{IdpConfig, TestIdp, TestUser};
use super::{free_port, EchoUpstream, Proxy};
use reqwest::header::HeaderMap;
use std::sync::Arc;

pub const SECRET: &str = "portcullis-test-secret";
pub const SESSION_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// The environment every proxy of a stack gets (and the `sessions` CLI needs).
pub const ENV: &[(&str, &str)] = &[("OIDC_CLIENT_SECRET", SECRET), ("SESSION_KEY", SESSION_KEY)];

pub struct Stack {
    pub idp: TestIdp,
    pub proxy: Proxy,
    pub upstream: EchoUpstream,
    pub desktop: EchoUpstream,
    /// The URL browsers reach the proxy at (`public_url`).
    pub public: String,
    body: String,
    upstreams: String,
}

pub struct Options<'a> {
    /// The `routes:` list (YAML lines, indented by two spaces).
    pub routes: &'a str,
    /// Extra lines under `oidc:` (indented by two spaces).
    pub oidc_extra: &'a str,
    /// Extra lines under `session:` (indented by two spaces).
    pub session_extra: &'a str,
    /// Extra top-level config (e.g. `identity_headers:`).
    pub extra: &'a str,
    pub idp: IdpConfig,
    /// Serve the proxy over TLS at `https://localhost:PORT`, certified by this CA.
    pub tls: Option<&'a super::pki::TestCa>,
    /// Where the proxy's log goes instead of its log file (e.g. `/dev/full`).
    pub log_sink: Option<&'a std::path::Path>,
}

pub const DEFAULT_ROUTES: &str = r#"
  - { prefix: /public/, upstream: app, auth: public }
  - { prefix: /api/, upstream: app, auth: api }
  - { prefix: /staff/, upstream: app, auth: login, allow: [staff] }
  - { prefix: "/desktop/{id}/", desktops: true, auth: login, allow: owner, strip_prefix: true, websocket: true }
  - { prefix: /, upstream: app, auth: login }
"#;

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            routes: DEFAULT_ROUTES,
            oidc_extra: "",
            session_extra: "",
            extra: "",
            idp: IdpConfig::default(),
            tls: None,
            log_sink: None,
        }
    }
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(options: Options<'_>) -> Stack {
        let port = free_port();
        let (public, listen) = match options.tls {
            None => (format!("http://127.0.0.1:{port}"), String::new()),
            Some(ca) => {
                let dir = tempfile::tempdir().expect("cert dir").keep();
                let (cert, key) = ca.issue(&dir, "localhost", &["localhost"]);
                (
                    format!("https://localhost:{port}"),
                    format!(
                        "listen:\n  - address: \"127.0.0.1:{port}\"\n    tls: {{ cert: \"{}\", key: \"{}\" }}\n",
                        cert.display(),
                        key.display()
                    ),
                )
            }
        };
        let mut cfg = options.idp;
        cfg.client_secret = SECRET.to_string();
        cfg.redirect_uris = vec![format!("{public}/oauth2/callback")];
        cfg.post_logout_redirect_uris = vec![format!("{public}/oauth2/logout/callback")];
        let idp = TestIdp::start(cfg).await;
        idp.set_user(
            TestUser::new("alice-sub", "alice")
                .with_groups(&["staff", "users"])
                .with_email("alice@example.com"),
        );
        let upstream = EchoUpstream::start("app").await;
        let desktop = EchoUpstream::start("desktop").await;
        let body = format!(
            "oidc:\n  issuer: {issuer}\n  client_id: portcullis\n  client_secret: ${{OIDC_CLIENT_SECRET}}\n  public_url: {public}\n  scopes: [openid, profile, email, groups]\n  admin_groups: [admins]\n{oidc_extra}session:\n  key: ${{SESSION_KEY}}\n{session_extra}{extra}{listen}routes:{routes}",
            issuer = idp.issuer(),
            oidc_extra = options.oidc_extra,
            session_extra = options.session_extra,
            extra = options.extra,
            routes = options.routes,
        );
        let upstreams = format!(
            "upstreams:\n  app: {{ backends: [\"{}\"] }}\ndesktops:\n  d-alice: {{ backend: \"{}\", owner: alice }}\n  d-bob: {{ backend: \"{}\", owner: bob }}\n",
            upstream.addr, desktop.addr, desktop.addr
        );
        let tweaks = super::proxy::Tweaks {
            log_sink: options.log_sink,
            nofile: None,
        };
        let proxy = Proxy::start_tweaked(port, &body, &upstreams, ENV, tweaks).await;
        Stack {
            idp,
            proxy,
            upstream,
            desktop,
            public,
            body,
            upstreams,
        }
    }

    /// Another replica with the same config (same public URL, same session store), on its
    /// own port, as behind an L4 balancer.
    pub async fn replica(&self) -> Proxy {
        Proxy::start_on(free_port(), &self.body, &self.upstreams, ENV).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.public)
    }
}

/// A browser: keeps cookies, follows no redirect by itself.
pub struct Browser {
    pub client: reqwest::Client,
    pub jar: Arc<reqwest::cookie::Jar>,
}

pub struct Hop {
    pub url: String,
    pub status: u16,
    pub headers: HeaderMap,
}

impl Browser {
    pub fn new() -> Browser {
        Self::build(reqwest::Client::builder())
    }

    /// A browser that trusts `ca` (for a stack served over TLS).
    pub fn trusting(ca: &super::pki::TestCa) -> Browser {
        Self::build(
            reqwest::Client::builder()
                .tls_built_in_root_certs(false)
                .add_root_certificate(ca.root()),
        )
    }

    /// A browser on a client set up by the caller (trusted roots, name overrides); cookies,
    /// no automatic redirects and the timeout are added here.
    pub fn build(builder: reqwest::ClientBuilder) -> Browser {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let client = builder
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .expect("client");
        Browser { client, jar }
    }

    /// A top-level navigation to `url`, following up to 10 redirects. Returns every hop and the
    /// final response.
    pub async fn navigate(&self, url: &str) -> (Vec<Hop>, reqwest::Response) {
        self.follow(url, self.client.get(url)).await
    }

    /// Logs out as the proxy's own logout button does: a form POST of the proxy's own origin to
    /// `/oauth2/logout{query}`, then the redirects (through the provider and back).
    pub async fn log_out(&self, stack: &Stack, query: &str) -> (Vec<Hop>, reqwest::Response) {
        let url = stack.url(&format!("/oauth2/logout{query}"));
        let post = self
            .client
            .post(&url)
            .header("origin", &stack.public)
            .header("sec-fetch-site", "same-origin")
            .header("content-type", "application/x-www-form-urlencoded");
        self.follow(&url, post).await
    }

    /// Sends `first` as a navigation and follows its redirects with GETs, as a browser does
    /// after a 302 or 303.
    async fn follow(
        &self,
        url: &str,
        first: reqwest::RequestBuilder,
    ) -> (Vec<Hop>, reqwest::Response) {
        let mut hops = Vec::new();
        let mut current = url.to_string();
        let mut request = first;
        for _ in 0..10 {
            let resp = request
                .header("accept", "text/html,application/xhtml+xml")
                .header("sec-fetch-mode", "navigate")
                .send()
                .await
                .expect("request");
            let status = resp.status().as_u16();
            hops.push(Hop {
                url: current.clone(),
                status,
                headers: resp.headers().clone(),
            });
            if !(300..400).contains(&status) {
                return (hops, resp);
            }
            let location = resp.headers()["location"]
                .to_str()
                .expect("location")
                .to_string();
            current = resp
                .url()
                .join(&location)
                .expect("valid location")
                .to_string();
            request = self.client.get(&current);
        }
        panic!("too many redirects from {url}");
    }

    /// Logs in by visiting `path` and following the whole flow; returns the final response.
    pub async fn login(&self, stack: &Stack, path: &str) -> reqwest::Response {
        let (hops, resp) = self.navigate(&stack.url(path)).await;
        assert!(
            hops.iter().any(|h| h.url.contains("/oauth2/callback")),
            "no callback in {:?}",
            hops.iter().map(|h| &h.url).collect::<Vec<_>>()
        );
        resp
    }

    /// The status of a non-navigation GET (as a fetch would send it) with the browser's cookies;
    /// 0 when the proxy does not answer.
    pub async fn status_of(&self, url: &str) -> u16 {
        self.client
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_or(0, |r| r.status().as_u16())
    }

    /// The Cookie header the browser would send to `path` on the proxy.
    /// The Cookie header the browser would send to `url`.
    pub fn cookie_header_for(&self, url: &str) -> String {
        use reqwest::cookie::CookieStore;
        let url: reqwest::Url = url.parse().expect("url");
        self.jar
            .cookies(&url)
            .map(|v| v.to_str().unwrap_or("").to_string())
            .unwrap_or_default()
    }

    pub fn cookie_header(&self, stack: &Stack, path: &str) -> String {
        use reqwest::cookie::CookieStore;
        let url: reqwest::Url = stack.url(path).parse().expect("url");
        self.jar
            .cookies(&url)
            .map(|v| v.to_str().unwrap_or("").to_string())
            .unwrap_or_default()
    }
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}
