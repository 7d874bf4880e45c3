//! Forward authentication behind a real nginx (`auth_request` + `auth_request_set`): nginx
//! serves the application and asks Portcullis, for each request, whether and as whom.

#[path = "../support/mod.rs"]
mod support;

mod attacks;
mod nginx_flow;

use support::idp::{IdpConfig, TestIdp, TestUser};
use support::nginx::Nginx;
use support::oidc::{Browser, ENV, SECRET};
use support::{free_port, EchoUpstream, Proxy};

/// nginx talks to Portcullis from this address, the only one Portcullis trusts; test clients
/// talking to Portcullis directly come from 127.0.0.1.
pub const NGINX_SOURCE: &str = "127.0.0.2";

pub struct Edge {
    pub idp: TestIdp,
    pub portcullis: Proxy,
    pub nginx: Nginx,
    pub app: EchoUpstream,
}

const ROUTES: &str = r#"
routes:
  - { prefix: /public/, upstream: app, auth: public }
  - { prefix: /api/, upstream: app, auth: api }
  - { prefix: /admin/, upstream: app, auth: login, allow: [admins] }
  - { prefix: "/desktop/{id}/", desktops: true, auth: login, allow: owner, websocket: true }
  - { prefix: /, upstream: app, auth: login }
"#;

impl Edge {
    pub async fn start() -> Edge {
        let (nginx_port, portcullis_port) = (free_port(), free_port());
        let public = format!("http://127.0.0.1:{nginx_port}");
        let idp = TestIdp::start(IdpConfig {
            client_secret: SECRET.to_string(),
            redirect_uris: vec![format!("{public}/oauth2/callback")],
            post_logout_redirect_uris: vec![format!("{public}/oauth2/logout/callback")],
            ..IdpConfig::default()
        })
        .await;
        idp.set_user(alice());
        let app = EchoUpstream::start("app").await;
        let body = format!(
            "oidc:\n  issuer: {}\n  client_id: portcullis\n  client_secret: ${{OIDC_CLIENT_SECRET}}\n  public_url: {public}\n  scopes: [openid, profile, email, groups]\n  admin_groups: [admins]\n\
             session:\n  key: ${{SESSION_KEY}}\n\
             forward_auth:\n  path: /_portcullis/auth\n  trusted_proxies: [\"{NGINX_SOURCE}/32\"]\n{ROUTES}",
            idp.issuer()
        );
        let upstreams = format!(
            "upstreams:\n  app: {{ backends: [\"{}\"] }}\ndesktops:\n  d-alice: {{ backend: \"{}\", owner: alice }}\n",
            app.addr, app.addr
        );
        let portcullis = Proxy::start_on(portcullis_port, &body, &upstreams, ENV).await;
        let p = portcullis.addr;
        // The configuration docs/forward-auth.md shows, with test addresses.
        let server = format!(
            r#"
    location = /_auth {{
      internal;
      proxy_pass http://{p}/_portcullis/auth;
      proxy_bind {NGINX_SOURCE};
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
    }}
    location /oauth2/ {{
      proxy_pass http://{p};
      proxy_bind {NGINX_SOURCE};
      proxy_set_header Host $http_host;
    }}
    location / {{
      auth_request /_auth;
      auth_request_set $auth_user $upstream_http_x_remote_user;
      auth_request_set $auth_groups $upstream_http_x_remote_groups;
      auth_request_set $auth_email $upstream_http_x_remote_email;
      auth_request_set $auth_login $upstream_http_x_auth_login;
      proxy_set_header X-Remote-User $auth_user;
      proxy_set_header X-Remote-Groups $auth_groups;
      proxy_set_header X-Remote-Email $auth_email;
      error_page 401 = @login;
      proxy_pass http://{app};
    }}
    location @login {{
      return 302 $auth_login;
    }}
    location /api/ {{
      auth_request /_auth;
      auth_request_set $auth_user $upstream_http_x_remote_user;
      proxy_set_header X-Remote-User $auth_user;
      proxy_pass http://{app};
    }}"#,
            app = app.addr
        );
        let nginx = Nginx::start_on(nginx_port, &server).await;
        Edge {
            idp,
            portcullis,
            nginx,
            app,
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.nginx.url(path)
    }

    /// A client talking to Portcullis's auth endpoint directly from `source`.
    pub fn direct_client(source: &str) -> reqwest::Client {
        reqwest::Client::builder()
            .local_address(source.parse::<std::net::IpAddr>().ok())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
    }

    pub fn auth_url(&self) -> String {
        self.portcullis.url("/oauth2/auth")
    }
}

pub fn alice() -> TestUser {
    TestUser::new("alice-sub", "alice")
        .with_groups(&["staff"])
        .with_email("alice@example.com")
}

pub fn bob() -> TestUser {
    TestUser::new("bob-sub", "bob").with_groups(&["admins"])
}

/// A browser logged in as `user` through nginx.
pub async fn logged_in(edge: &Edge, user: TestUser) -> Browser {
    edge.idp.set_user(user);
    let browser = Browser::new();
    let (hops, resp) = browser.navigate(&edge.url("/home")).await;
    assert_eq!(
        resp.status(),
        200,
        "login through nginx: {:?}\n{}",
        hops.iter().map(|h| (&h.url, h.status)).collect::<Vec<_>>(),
        edge.portcullis.log()
    );
    browser
}
