//! What the fuzz targets share: a tokio runtime to drive the library's async functions, a
//! scratch directory, a proxy snapshot built once from a fixed config, fixed session keys, and
//! a loopback identity provider with freshly made signing keys.
//!
//! Everything here is built once per process, on first use, and is never changed by an
//! input: a crash must reproduce from its input file alone. Nothing here talks to any address
//! but 127.0.0.1.

use jsonwebtoken::EncodingKey;
use portcullis::oidc::provider::Provider;
use portcullis::runtime::Snapshot;
use portcullis::session::crypto::KeyRing;
use portcullis::session::memory::MemoryStore;
use portcullis::session::{SessionSettings, Sessions};
use std::future::Future;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub mod split;

/// The configured session key of every target: 32 bytes that are not one repeated value.
pub const SESSION_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
/// A second key, kept for opening only (rotation).
pub const OLD_SESSION_KEY: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";

/// Runs a future of the library to completion on the one runtime of this process.
pub fn block_on<F: Future>(future: F) -> F::Output {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime")
        })
        .block_on(future)
}

/// A scratch directory of this process, for the config files the loader reads.
pub fn workdir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("portcullis-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir
    })
}

/// The key ring of [`SESSION_KEY`] (sealing) and [`OLD_SESSION_KEY`] (opening only).
pub fn key_ring() -> KeyRing {
    KeyRing::from_encoded(&[SESSION_KEY, OLD_SESSION_KEY]).expect("the fixed keys are valid")
}

/// Sessions in memory, sealed with [`key_ring`].
pub fn sessions() -> &'static Sessions {
    static SESSIONS: OnceLock<Sessions> = OnceLock::new();
    SESSIONS.get_or_init(|| {
        Sessions::new(
            Arc::new(MemoryStore::new(10_000)),
            key_ring(),
            SessionSettings::default(),
        )
    })
}

/// The main config of [`snapshot`]: every kind of route the router knows (exact and wildcard
/// hosts, prefixes with and without a trailing slash, stripped prefixes, encoded slashes,
/// desktops), so that routing decisions have something to disagree about.
pub const PROXY_CONFIG: &str = r#"
listen:
  - address: "127.0.0.1:18080"
upstreams_file: upstreams.yaml
routes:
  - { name: health, prefix: /healthz, upstream: web }
  - { name: console, prefix: /console/, upstream: web, strip_prefix: true }
  - { name: api, prefix: /api/, upstream: api, strip_prefix: true, encoded_slashes: true }
  - { name: api-v2, prefix: /api/v2, upstream: api }
  - { name: files, prefix: /files/, upstream: web, encoded_slashes: true }
  - { name: desktop, prefix: "/desktop/{id}/", desktops: true, strip_prefix: true, websocket: true }
  - { name: admin, host: admin.example.com, prefix: /, upstream: api }
  - { name: apps, host: "*.apps.example.com", prefix: /x/, upstream: api, strip_prefix: true }
  - { name: root, prefix: /, upstream: web }
"#;

pub const PROXY_UPSTREAMS: &str = r#"
upstreams:
  web:
    backends: ["127.0.0.1:18081"]
  api:
    backends: ["127.0.0.1:18082"]
desktops:
  d-1: { backend: "127.0.0.1:18083", owner: alice }
  d-42: { backend: "127.0.0.1:18084", owner: bob }
"#;

/// The snapshot `run` would serve for [`PROXY_CONFIG`], built by the same `load_and_build`.
pub fn snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let dir = workdir().join("proxy");
        std::fs::create_dir_all(&dir).expect("config directory");
        std::fs::write(dir.join("portcullis.yaml"), PROXY_CONFIG).expect("config file");
        std::fs::write(dir.join("upstreams.yaml"), PROXY_UPSTREAMS).expect("upstreams file");
        let (_, _, snapshot) =
            block_on(async { portcullis::runtime::load_and_build(&dir.join("portcullis.yaml")) })
                .unwrap_or_else(|p| panic!("the fixed proxy config is refused: {p:?}"));
        snapshot
    })
}

/// A loopback identity provider: discovery, a JWKS with an EC and an RSA signing key (and an
/// anonymous copy of the RSA key, and an encryption key that must never verify anything),
/// and a token endpoint that refuses every code.
pub struct Idp {
    pub issuer: String,
    /// Signs as `kid: ec1`, ES256.
    pub ec_key: EncodingKey,
    /// Signs as `kid: rsa1` (or without a `kid`), RS256.
    pub rsa_key: EncodingKey,
    /// Signs as `kid: enc1`, ES256: published for encryption only.
    pub enc_key: EncodingKey,
}

/// Audience and client id of [`provider`].
pub const CLIENT_ID: &str = "portcullis";
pub const API_AUDIENCE: &str = "api://portcullis";

pub fn idp() -> &'static Idp {
    static IDP: OnceLock<Idp> = OnceLock::new();
    IDP.get_or_init(start_idp)
}

fn start_idp() -> Idp {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use p256::elliptic_curve::sec1::ToEncodedPoint as _;
    use p256::pkcs8::EncodePrivateKey as _;
    use rsa::traits::PublicKeyParts as _;

    let ec_jwk = |secret: &p256::SecretKey, kid: &str, usage: &str| {
        let point = secret.public_key().to_encoded_point(false);
        serde_json::json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "use": usage, "alg": "ES256",
            "x": URL_SAFE_NO_PAD.encode(point.x().expect("uncompressed")),
            "y": URL_SAFE_NO_PAD.encode(point.y().expect("uncompressed")),
        })
    };
    let ec_pem = |secret: &p256::SecretKey| {
        let pem = secret
            .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
            .expect("PKCS#8");
        EncodingKey::from_ec_pem(pem.as_bytes()).expect("EC key")
    };
    let ec = random_ec_key();
    let enc = random_ec_key();
    // 1024 bits, not 2048: signing runs per input, and the big-number arithmetic under coverage
    // instrumentation took ~0.3 s per 2048-bit signature (most of the target's time); the
    // verifier's path does not depend on the modulus length.
    let rsa = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).expect("RSA key");
    let rsa_jwk = |kid: Option<&str>| {
        let mut jwk = serde_json::json!({
            "kty": "RSA", "use": "sig", "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(rsa.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(rsa.e().to_bytes_be()),
        });
        if let Some(kid) = kid {
            jwk["kid"] = kid.into();
        }
        jwk
    };
    let jwks = serde_json::json!({ "keys": [
        ec_jwk(&ec, "ec1", "sig"), rsa_jwk(Some("rsa1")), rsa_jwk(None), ec_jwk(&enc, "enc1", "enc"),
    ]})
    .to_string();
    let rsa_pem = rsa
        .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
        .expect("PKCS#8");

    let listener = TcpListener::bind("127.0.0.1:0").expect("loopback listener");
    let issuer = format!("http://{}", listener.local_addr().expect("bound"));
    let discovery = serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "end_session_endpoint": format!("{issuer}/logout"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
    })
    .to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = answer(stream, &discovery, &jwks);
        }
    });
    Idp {
        issuer,
        ec_key: ec_pem(&ec),
        rsa_key: EncodingKey::from_rsa_pem(rsa_pem.as_bytes()).expect("RSA key"),
        enc_key: ec_pem(&enc),
    }
}

fn random_ec_key() -> p256::SecretKey {
    use rsa::rand_core::RngCore as _;
    loop {
        let mut bytes = [0u8; 32];
        rsa::rand_core::OsRng.fill_bytes(&mut bytes);
        if let Ok(key) = p256::SecretKey::from_slice(&bytes) {
            return key;
        }
    }
}

/// One request, one answer, then close: enough HTTP/1.1 for `reqwest`.
fn answer(mut stream: TcpStream, discovery: &str, jwks: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        if stream.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length.min(1 << 20)];
    stream.read_exact(&mut body)?;
    let target = head.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = match target {
        "/.well-known/openid-configuration" => ("200 OK", discovery),
        "/jwks" => ("200 OK", jwks),
        "/token" => ("400 Bad Request", r#"{"error":"invalid_grant"}"#),
        _ => ("404 Not Found", "{}"),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// The OpenID Connect client of the targets, with discovery and keys fetched from [`idp`].
pub fn provider() -> &'static Provider {
    static PROVIDER: OnceLock<Provider> = OnceLock::new();
    PROVIDER.get_or_init(|| {
        use portcullis::oidc::settings::{ClaimNames, ClientAuth, OidcSettings};
        let settings = OidcSettings {
            issuer: idp().issuer.clone(),
            client_id: CLIENT_ID.into(),
            client_auth: ClientAuth::SecretBasic(portcullis::secret::Secret::new(
                "fuzz-client-secret".into(),
            )),
            scopes: vec!["openid".into()],
            public_url: "https://work.example.com".into(),
            claims: ClaimNames {
                user: "preferred_username".into(),
                groups: "groups".into(),
                email: "email".into(),
            },
            prompt: None,
            ui_locales: None,
            acr_values: None,
            admin_groups: vec!["admins".into()],
            api_audiences: vec![API_AUDIENCE.into()],
            post_logout_redirect: "/".into(),
        };
        let client = portcullis::oidc::settings::build(&settings).expect("client settings");
        let provider = Provider::new(client);
        block_on(provider.discover()).expect("discovery from the loopback provider");
        provider
    })
}
