//! Classes 1–3 of issue 11: paths that one party reads differently from another. Whatever reaches
//! an upstream must resolve, the way nginx, IIS, Tomcat, werkzeug or Node would resolve it, under
//! the route that admitted it; everything else is refused before routing.

use crate::support::fuzz_inputs::{percent_decode, Rng, URL_PIECES};
use crate::support::pki::TestCa;
use crate::support::{free_port, raw, EchoUpstream, Proxy};
use serde_json::Value;
use std::net::SocketAddr;
use std::time::Duration;

/// Route prefixes and the upstream each one reaches; `/` is the catch-all.
const ROUTES: [(&str, &str); 4] = [
    ("/public/", "public"),
    ("/admin/", "admin"),
    ("/api/files/", "files"),
    ("/", "console"),
];

struct Edge {
    proxy: Proxy,
    tls: SocketAddr,
    ca: TestCa,
    upstreams: Vec<EchoUpstream>,
}

impl Edge {
    async fn start(plugins: &str) -> Edge {
        let mut upstreams = Vec::new();
        for (_, name) in ROUTES {
            upstreams.push(EchoUpstream::start(name).await);
        }
        let ca = TestCa::new();
        let certs = tempfile::tempdir().expect("temp dir").keep();
        ca.issue(&certs, "edge", &["localhost"]);
        let (tls_port, plain_port) = (free_port(), free_port());
        let body = format!(
            r#"listen:
  - address: "127.0.0.1:{plain_port}"
  - address: "127.0.0.1:{tls_port}"
    tls:
      certificates:
        - {{ cert: "{d}/edge.crt", key: "{d}/edge.key" }}
routes:
  - {{ prefix: /public/, upstream: public }}
  - {{ prefix: /admin/, upstream: admin }}
  - {{ prefix: /api/files/, upstream: files, encoded_slashes: true }}
  - {{ prefix: /, upstream: console }}
{plugins}"#,
            d = certs.display()
        );
        let mut pools = String::from("upstreams:\n");
        for ((_, name), upstream) in ROUTES.iter().zip(&upstreams) {
            pools.push_str(&format!(
                "  {name}: {{ backends: [\"{}\"] }}\n",
                upstream.addr
            ));
        }
        let proxy = Proxy::start_on(plain_port, &body, &pools, &[]).await;
        let tls = SocketAddr::from(([127, 0, 0, 1], tls_port));
        assert!(
            crate::support::wait_for_port(tls, Duration::from_secs(10)).await,
            "TLS listener never opened:\n{}",
            proxy.log()
        );
        Edge {
            proxy,
            tls,
            ca,
            upstreams,
        }
    }

    fn served(&self) -> usize {
        self.upstreams.iter().map(EchoUpstream::requests).sum()
    }

    fn h2(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(self.ca.root())
            .redirect(reqwest::redirect::Policy::none())
            .http2_prior_knowledge()
            .build()
            .expect("h2 client")
    }

    /// Each attack gets 400 over HTTP/1 (`h1_only` too: targets an h2 client would rewrite)
    /// and over h2, and none reaches an upstream.
    async fn refuses_over_h1_and_h2(&self, attacks: &[&str], h1_only: &[&str]) {
        for attack in attacks.iter().chain(h1_only) {
            let resp = self.raw(attack).await;
            assert_eq!(resp.status, 400, "{attack}: {}", resp.head);
        }
        let h2 = self.h2();
        for attack in attacks {
            let url = format!("https://localhost:{}{attack}", self.tls.port());
            let resp = h2
                .get(&url)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{attack}: {e}"));
            assert_eq!(resp.version(), reqwest::Version::HTTP_2);
            assert_eq!(resp.status().as_u16(), 400, "{attack} over h2");
        }
        assert_eq!(self.served(), 0, "an attack reached an upstream");
    }

    async fn raw(&self, request_line_target: &str) -> raw::RawResponse {
        let request = format!(
            "GET {request_line_target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        );
        raw::send(self.proxy.addr, request.as_bytes())
            .await
            .unwrap_or_else(|| panic!("no answer to {request_line_target:?}"))
    }
}

/// How the servers behind a proxy resolve the path they receive: each decodes once, then
/// nginx/werkzeug/Node merge slashes and resolve dots; IIS also reads `\` as `/`, ignores case
/// and trims trailing dots and spaces; Tomcat drops `;` parameters first.
fn resolutions(uri: &str) -> Vec<String> {
    let path = uri.split('?').next().unwrap_or(uri);
    let tomcat: String = path
        .split('/')
        .map(|s| s.split(';').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("/");
    let decoded = percent_decode(path);
    let iis: String = decoded
        .replace('\\', "/")
        .to_ascii_lowercase()
        .split('/')
        .map(|s| s.trim_end_matches(['.', ' ']))
        .collect::<Vec<_>>()
        .join("/");
    [decoded.clone(), iis, percent_decode(&tomcat)]
        .iter()
        .map(|p| resolve_dots(p))
        .collect()
}

fn resolve_dots(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let trailing = path.ends_with('/') || path.ends_with("/.") || path.ends_with("/..");
    let mut joined = format!("/{}", out.join("/"));
    if trailing && joined != "/" {
        joined.push('/');
    }
    joined
}

/// The upstream the longest matching prefix (any ASCII case) sends `path` to.
fn route_of(path: &str) -> &'static str {
    ROUTES
        .iter()
        .filter(|(prefix, _)| {
            path.get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
        })
        .max_by_key(|(prefix, _)| prefix.len())
        .map_or("console", |(_, name)| name)
}

/// The echo upstream's account of a request it served, if it was served.
fn served_by(resp: &raw::RawResponse) -> Option<(String, String)> {
    if resp.status != 200 {
        return None;
    }
    let body: Value = serde_json::from_str(&resp.body).ok()?;
    Some((
        body["server"].as_str()?.into(),
        body["uri"].as_str()?.into(),
    ))
}

const ENCODED_SEPARATOR_ESCAPES: [&str; 12] = [
    "/public/..%2Fadmin/x",
    "/public/..%2fadmin/x",
    "/public/%2e%2e%2Fadmin/x",
    "/public/%2F..%2Fadmin/x",
    "/public/..%5Cadmin/x",
    "/public/..%5cadmin/x",
    "/public/..;/admin/x",
    "/public/..%3B/admin/x",
    "/public/%252e%252e/admin/x",
    "/public/%c0%ae%c0%ae/admin/x",
    "/public/%ef%bc%8e%ef%bc%8e%ef%bc%8fadmin/x",
    "/public/%e0%80%ae%e0%80%ae/admin/x",
];

#[tokio::test]
async fn encoded_separators_escaping_a_public_route_are_refused_over_http1_and_h2() {
    let edge = Edge::start("").await;
    edge.refuses_over_h1_and_h2(
        &ENCODED_SEPARATOR_ESCAPES,
        &["/public/..\\admin/x", "/public\\..\\admin/x"],
    )
    .await;
    // The same routes still serve ordinary paths, so the refusals above are not blanket ones.
    let resp = edge.raw("/public/a/../b%20c.txt?x=/../admin").await;
    assert_eq!(
        served_by(&resp),
        Some(("public".into(), "/public/b%20c.txt?x=/../admin".into()))
    );
}

/// Letters that a case-insensitive (Java's `equalsIgnoreCase`) or NFKC-normalising server reads
/// as the ASCII of a protected prefix: here `/admin/` and `/api/files/`, behind the catch-all.
const ASCII_LOOKALIKES: [&str; 6] = [
    "/%EF%BD%81dmin/x",     // fullwidth a
    "/adm%C4%B1n/x",        // dotless i: upper-cases to I
    "/api/%EF%AC%81les/x",  // the fi ligature
    "/%F0%9D%90%9Admin/x",  // mathematical bold a
    "/ADM%C4%B0N/x",        // capital I with dot: lower-cases to i
    "/api/f%E2%84%AAles/x", // not a letter of the prefix, still read as ASCII: the Kelvin sign
];

#[tokio::test]
async fn letters_some_server_reads_as_ascii_are_refused_over_http1_and_h2() {
    let edge = Edge::start("").await;
    // Dot segments around them change nothing (HTTP/1 only: the h2 client resolves them).
    edge.refuses_over_h1_and_h2(
        &ASCII_LOOKALIKES,
        &["/%C4%B0%C4%B1/../admin/x", "/api/%C5%BF/../files/x"],
    )
    .await;
    // Other scripts and accents are paths like any other.
    let resp = edge.raw("/caf%C3%A9/%D0%BC%D0%B8%D1%80/stra%C3%9Fe").await;
    assert_eq!(
        served_by(&resp),
        Some((
            "console".into(),
            "/caf%C3%A9/%D0%BC%D0%B8%D1%80/stra%C3%9Fe".into()
        ))
    );
}

#[tokio::test]
async fn request_targets_without_a_leading_slash_are_refused_not_forwarded() {
    let edge = Edge::start("").await;
    for target in [
        "admin/secret.txt",
        "public/../admin/x",
        "%2e%2e/admin/x",
        "oauth2/session",
        ".git/config",
        "*",
        "localhost:80",
        "ftp://localhost/admin/x",
        "file:///etc/passwd",
        "?x=/admin",
        "http:/admin/x",
    ] {
        let resp = edge.raw(target).await;
        assert_eq!(resp.status, 400, "{target:?}: {}", resp.head);
    }
    let options = raw::send(
        edge.proxy.addr,
        b"OPTIONS * HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("answer");
    assert_eq!(options.status, 400, "{}", options.head);
    assert_eq!(edge.served(), 0, "a target without `/` reached an upstream");
}

#[tokio::test]
async fn absolute_form_targets_are_routed_and_forwarded_by_their_canonical_path() {
    let edge = Edge::start("").await;
    let resp = edge.raw("http://localhost/public/../admin/x?q=1").await;
    assert_eq!(
        served_by(&resp),
        Some(("admin".into(), "/admin/x?q=1".into())),
        "{}",
        resp.body
    );
    let resp = edge.raw("http://localhost").await;
    assert_eq!(served_by(&resp), Some(("console".into(), "/".into())));
}

#[tokio::test]
async fn case_variants_are_decided_by_the_route_they_name_and_trailing_dots_refused() {
    let edge = Edge::start("").await;
    for path in ["/ADMIN/x", "/Admin/x", "/aDmIn/x"] {
        let resp = edge.raw(path).await;
        assert_eq!(
            served_by(&resp),
            Some(("admin".into(), path.to_string())),
            "{path} must be decided by /admin/'s policy: {}",
            resp.body
        );
    }
    for attack in [
        "/admin./x",
        "/admin%2e/x",
        "/admin%20/x",
        "/admin;x/",
        "/admin;jsessionid=1/x",
        "/%c0%ae%c0%ae/admin/x",
        "/public/.%2e/admin/x",
    ] {
        let before = edge.served();
        let resp = edge.raw(attack).await;
        if let Some((server, uri)) = served_by(&resp) {
            // Canonicalised rather than refused: then it went where it resolves.
            for resolved in resolutions(&uri) {
                assert_eq!(route_of(&resolved), server, "{attack} -> {uri}");
            }
        } else {
            assert_eq!(resp.status, 400, "{attack}: {}", resp.head);
            assert_eq!(edge.served(), before, "{attack}");
        }
    }
}

#[tokio::test]
async fn encoded_slashes_are_served_only_where_a_route_opts_in_and_decided_decoded() {
    let edge = Edge::start("").await;
    let resp = edge.raw("/api/files/a%2fb%5Cc.txt").await;
    assert_eq!(
        served_by(&resp),
        Some(("files".into(), "/api/files/a%2Fb%5Cc.txt".into()))
    );
    for attack in [
        "/api/files/..%2F..%2Fadmin/x",
        "/api/files/a%2F..%2F..%2F..%2Fadmin",
        "/api/files/a%2F%2Fb",
        "/api%2Ffiles/x",
        // The separator that ends the route's prefix must be a real one (found by fuzzing).
        "/api/files%2Fx",
        "/api/files%5cx",
        "/public/a%2Fb",
        "/a%2Fb",
        "/oauth2%2Fsession",
    ] {
        let resp = edge.raw(attack).await;
        assert_eq!(resp.status, 400, "{attack}: {}", resp.head);
    }
    assert_eq!(edge.served(), 1);
}

/// Found by fuzzing (fuzz/path_route): where a route allows encoded separators and strips its
/// prefix, the prefix must end at a real `/`. `/blobs%5Ca` reads `/blobs/a` decoded, but it is no
/// path under `/blobs/` as sent, and stripping `/blobs` from it left the upstream the target
/// `%5Ca` (no path at all; the request failed 500).
#[tokio::test]
async fn a_stripped_prefix_ends_at_a_real_slash_where_encoded_slashes_are_allowed() {
    let blobs = EchoUpstream::start("blobs").await;
    let proxy = Proxy::start(
        "routes:\n  - { prefix: /blobs/, upstream: blobs, strip_prefix: true, encoded_slashes: true }\n",
        &format!("upstreams:\n  blobs: {{ backends: [\"{}\"] }}\n", blobs.addr),
    )
    .await;
    let get = |target: &'static str| {
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        async move {
            raw::send(proxy.addr, request.as_bytes())
                .await
                .unwrap_or_else(|| panic!("no answer to {target:?}"))
        }
    };
    for (target, upstream_reads) in [
        ("/blobs/a%2Fb", "/a%2Fb"),
        ("/blobs/a%5cb?x=1", "/a%5Cb?x=1"),
        ("/blobs/x%2Fy/../z", "/z"),
    ] {
        let resp = get(target).await;
        assert_eq!(
            served_by(&resp),
            Some(("blobs".into(), upstream_reads.into())),
            "{target}: {}",
            resp.head
        );
    }
    for attack in [
        "/blobs%5Ca",
        "/blobs%2Fa",
        "/blobs%2f",
        "/blobs%5C",
        "/blobs%2F%2Fa",
        "/blobs%2F..%2Fa",
        "/Blobs%5Ca/b",
    ] {
        let resp = get(attack).await;
        assert_eq!(resp.status, 400, "{attack}: {}", resp.head);
    }
    assert_eq!(blobs.requests(), 3);
}

#[tokio::test]
async fn hostile_targets_reach_only_the_route_their_path_resolves_to() {
    let edge = Edge::start("").await;
    let mut rng = Rng::new(0x0b1e_5511);
    let (mut served, mut refused) = (0, 0);
    for i in 0..400 {
        let base = ["/public/", "/admin/", "/api/files/", "/", ""][i % 5];
        let target = format!("{base}{}", rng.string(URL_PIECES, 8));
        // Pieces a request line cannot carry at all are the socket's business, not routing's.
        if target.bytes().any(|b| b <= b' ' || b == 0x7f) || target.contains('#') {
            continue;
        }
        let Some(resp) = raw::send(
            edge.proxy.addr,
            format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        else {
            continue;
        };
        assert!(resp.status < 500, "{target:?} -> {}", resp.head);
        match served_by(&resp) {
            Some((server, uri)) => {
                served += 1;
                for resolved in resolutions(&uri) {
                    assert_eq!(
                        route_of(&resolved),
                        server,
                        "{target:?} reached {server} as {uri:?}, which resolves to {resolved:?}"
                    );
                }
            }
            None => refused += 1,
        }
    }
    assert!(
        served > 40 && refused > 40,
        "served {served}, refused {refused}"
    );
}

#[tokio::test]
async fn the_shipped_deny_paths_plugin_sees_the_canonical_path() {
    let script = format!("{}/plugins/deny-paths.lua", env!("CARGO_MANIFEST_DIR"));
    let edge = Edge::start(&format!("plugins:\n  - script: \"{script}\"\n")).await;
    for attack in [
        "/.git/config",
        "/%2egit/config",
        "/%2Egit/config",
        "//.git/config",
        "/x/../.git/config",
        "/public/../.git/config",
        "/.GIT/config",
        "/console/.git/config",
        "/public/.env",
        "/admin/backup.sql.bak",
    ] {
        let resp = edge.raw(attack).await;
        assert_eq!(resp.status, 404, "{attack}: {}", resp.head);
    }
    let resp = edge.raw(".git/config").await;
    assert_eq!(resp.status, 400);
    assert_eq!(edge.served(), 0, "a denied path reached an upstream");
    let resp = edge.raw("/public/ok.txt").await;
    assert_eq!(resp.status, 200, "the plugin denies too much");
}
