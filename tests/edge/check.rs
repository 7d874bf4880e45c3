use crate::support::proxy::BIN;
use std::process::Command;

struct Outcome {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn check(config: &str, upstreams: &str, env: &[(&str, &str)]) -> (Outcome, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("portcullis.yaml"), config).unwrap();
    std::fs::write(dir.path().join("upstreams.yaml"), upstreams).unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(dir.path().join("portcullis.yaml"))
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        Outcome {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        dir,
    )
}

const GOOD: &str = r#"listen:
  - address: "127.0.0.1:8080"
upstreams_file: upstreams.yaml
routes:
  - { prefix: /api/, upstream: api, strip_prefix: true, timeouts: { read: 30s } }
  - { prefix: "/desktop/{id}/", desktops: true, websocket: true }
  - { prefix: /, upstream: console }
"#;

const GOOD_UPSTREAMS: &str = r#"upstreams:
  console:
    backends: ["127.0.0.1:9001", "127.0.0.1:9002"]
    health_check: { path: /healthz, interval: 2s }
  api:
    backends: ["localhost:9003"]
    selection: consistent_hash
desktops:
  d-42: { backend: "127.0.0.1:9004", owner: alice }
"#;

#[test]
fn accepts_the_shipped_configs() {
    let root = env!("CARGO_MANIFEST_DIR");
    for file in ["conf/dev.yaml", "conf/portcullis.yaml"] {
        let out = Command::new(BIN)
            .args(["check", "--config", &format!("{root}/{file}")])
            .env("OIDC_CLIENT_SECRET", "s3cret")
            .env(
                "SESSION_KEY",
                "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            )
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn accepts_a_good_config() {
    let (out, _dir) = check(GOOD, GOOD_UPSTREAMS, &[]);
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout
            .contains("ok (1 listeners, 3 routes, 2 pools, 1 desktops, 0 plugins)"),
        "{}",
        out.stdout
    );
}

/// Each broken config, and the `file:line:column: message` fragments its report must hold.
#[test]
fn rejects_broken_configs_with_their_place() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "listen:\n  - address: \"127.0.0.1:8080\"\nupstreams_file: upstreams.yaml\nroutes:\n  - { prefix: /, upstream: console, stip_prefix: true }\n",
            GOOD_UPSTREAMS,
            &["portcullis.yaml:5:", "Unknown field `stip_prefix`"],
        ),
        (
            "listen:\n  - address: \"localhost\"\nupstreams_file: upstreams.yaml\nroutes:\n  - { prefix: /, upstream: nope }\n",
            GOOD_UPSTREAMS,
            &["portcullis.yaml:2:14: `localhost` is not a listen address", "portcullis.yaml:5:", "upstream `nope`", "defined: api, console"],
        ),
        (
            "listen:\n  - address: \"127.0.0.1:8080\"\nupstreams_file: upstreams.yaml\nroutes:\n  - { prefix: /a/, upstream: api }\n  - { prefix: /a/, upstream: console }\n",
            GOOD_UPSTREAMS,
            &["portcullis.yaml:6:", "already routed on line 5"],
        ),
        (
            "listen:\n  - address: \"127.0.0.1:8080\"\nupstreams_file: upstreams.yaml\nroutes:\n  - { prefix: \"/desktop/{id}x/\", desktops: true }\n  - { prefix: nothing, upstream: api }\n",
            GOOD_UPSTREAMS,
            &["portcullis.yaml:5:", "must be a whole last segment", "portcullis.yaml:6:", "must start with `/`"],
        ),
        (
            GOOD,
            "upstreams:\n  console:\n    backends: [\"127.0.0.1:99999\"]\n  api:\n    backends: []\n    health_check: { interval: soon }\ndesktops:\n  \"../x\": { backend: \"127.0.0.1:1\" }\n",
            &["upstreams.yaml:3:", "must be HOST:PORT", "upstreams.yaml:5:", "pool `api` has no backends", "upstreams.yaml:6:", "`soon` is not a duration", "upstreams.yaml:8:", "desktop id `../x`"],
        ),
        (
            GOOD,
            "upstreams:\n  console: { backends: [\"127.0.0.1:1\"] }\n  console: { backends: [\"127.0.0.1:2\"] }\n",
            &["upstreams.yaml:3:", "duplicate key `console` (first defined on line 2)"],
        ),
        (
            "listen:\n  - address: \"127.0.0.1:8080\"\n routes: [\n",
            GOOD_UPSTREAMS,
            &["portcullis.yaml:", "YAML syntax error"],
        ),
        (
            "listen:\n  - address: \"127.0.0.1:8080\"\nupstreams_file: missing.yaml\nroutes:\n  - { prefix: /, upstream: console }\n",
            GOOD_UPSTREAMS,
            &["portcullis.yaml:3:17: upstreams file", "missing.yaml", "cannot read file"],
        ),
        (
            "listen:\n  - address: \"${LISTEN_ADDR}\"\nupstreams_file: upstreams.yaml\nroutes:\n  - { prefix: /, upstream: console }\n",
            GOOD_UPSTREAMS,
            &["portcullis.yaml:2:14: environment variable `LISTEN_ADDR` is not set"],
        ),
    ];
    for (i, (config, upstreams, expected)) in cases.iter().enumerate() {
        let (out, _dir) = check(config, upstreams, &[]);
        assert!(!out.ok, "case {i} was accepted");
        for fragment in *expected {
            assert!(
                out.stderr.contains(fragment),
                "case {i}: `{fragment}` missing from:\n{}",
                out.stderr
            );
        }
    }
}

#[test]
fn secrets_come_from_the_environment() {
    let config = "listen:\n  - address: \"${LISTEN_ADDR}\"\nupstreams_file: upstreams.yaml\nroutes:\n  - { prefix: /, upstream: console }\n";
    let (out, _dir) = check(config, GOOD_UPSTREAMS, &[("LISTEN_ADDR", "127.0.0.1:9999")]);
    assert!(out.ok, "{}", out.stderr);
}

#[test]
fn help_explains_each_subcommand() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("run") && help.contains("check"), "{help}");
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn rejects_broken_identity_settings_with_their_place() {
    let head = "listen:\n  - address: \"127.0.0.1:8080\"\nupstreams_file: upstreams.yaml\n";
    let oidc = "oidc:\n  issuer: https://idp.example.com\n  client_id: c\n  client_secret: s\n  public_url: https://work.example.com\n";
    let cases: &[(String, &[&str])] = &[
        (
            format!("{head}routes:\n  - {{ prefix: /, upstream: console, auth: login }}\n"),
            &["portcullis.yaml:5:", "`auth: login` needs an `oidc:` section"],
        ),
        (
            format!("{head}{oidc}routes:\n  - {{ prefix: /, upstream: console, allow: owner }}\n  - {{ prefix: /p/, upstream: console, auth: public, allow: [staff] }}\n  - {{ prefix: /q/, upstream: console, auth: sometimes }}\n"),
            &["portcullis.yaml:10:", "`allow: owner` only applies to a desktops route", "portcullis.yaml:11:", "`allow` needs a logged-in user", "portcullis.yaml:12:", "auth `sometimes` is unknown"],
        ),
        (
            format!("{head}oidc:\n  issuer: http://idp.example.com\n  client_id: c\n  client_secret: s\n  public_url: https://work.example.com/app\nroutes:\n  - {{ prefix: /, upstream: console }}\n"),
            &["portcullis.yaml:5:", "issuer must use https"],
        ),
        (
            format!("{head}oidc:\n  issuer: https://idp.example.com\n  client_id: c\n  public_url: https://work.example.com\n  client_auth: client_secret_jwt\nroutes:\n  - {{ prefix: /, upstream: console }}\n"),
            &["portcullis.yaml:8:", "client_auth `client_secret_jwt` is unknown"],
        ),
        (
            format!("{head}oidc:\n  issuer: https://idp.example.com\n  client_id: c\n  public_url: https://work.example.com\nroutes:\n  - {{ prefix: /, upstream: console }}\n"),
            &["portcullis.yaml:6:", "needs `client_secret"],
        ),
        (
            format!("{head}{oidc}session:\n  key: c2hvcnQ=\n  cookie_name: \"bad name\"\nidentity_headers: {{ user: Cookie }}\nroutes:\n  - {{ prefix: /, upstream: console }}\n"),
            &["portcullis.yaml:10:", "session key", "portcullis.yaml:11:", "cookie_name", "portcullis.yaml:12:", "cannot carry identity"],
        ),        (
            format!("{head}oidc:\n  issuer: https://idp.example.com\n  client_id: c\n  client_secret: s\n  public_url: http://127.0.0.1:8080\nsession:\n  cookie_name: __Host-s\nroutes:\n  - {{ prefix: /, upstream: console }}\n"),
            &["portcullis.yaml:10:", "needs an https `public_url`"],
        ),
    ];
    for (i, (config, expected)) in cases.iter().enumerate() {
        let (out, _dir) = check(config, GOOD_UPSTREAMS, &[]);
        assert!(!out.ok, "case {i} was accepted");
        for fragment in *expected {
            assert!(
                out.stderr.contains(fragment),
                "case {i}: `{fragment}` missing from:\n{}",
                out.stderr
            );
        }
    }
}

/// A bad value that only its component's build can judge (a certificate, a key, a script) is
/// refused by `check` at the line that names it, as the build run by `run` would refuse it.
#[test]
fn component_builds_refuse_bad_values_at_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let ca = crate::support::pki::TestCa::new();
    let (crt, _) = ca.issue(dir.path(), "site", &["a.example"]);
    std::fs::write(dir.path().join("upstreams.yaml"), GOOD_UPSTREAMS).unwrap();
    std::fs::write(dir.path().join("not-a-key.pem"), "just text\n").unwrap();
    std::fs::write(dir.path().join("idle.lua"), "x = 1\n").unwrap();
    let head = "listen:\n  - address: \"127.0.0.1:8080\"\nupstreams_file: upstreams.yaml\nroutes:\n  - { prefix: /, upstream: console }\n";
    let oidc = "oidc:\n  issuer: https://idp.example.com\n  client_id: c\n  public_url: https://work.example.com\n";
    let cases: Vec<(String, &[&str])> = vec![
        // tls: a key file that holds no key, placed at `key`, not at `cert`.
        (
            format!("listen:\n  - address: \"127.0.0.1:8443\"\n    tls:\n      cert: {}\n      key: not-a-key.pem\nupstreams_file: upstreams.yaml\nroutes:\n  - {{ prefix: /, upstream: console }}\n", crt.display()),
            &["portcullis.yaml:5:", "no usable private key"],
        ),
        // tls: a certificate file that does not exist.
        (
            "listen:\n  - address: \"127.0.0.1:8443\"\n    tls:\n      cert: missing.crt\n      key: not-a-key.pem\nupstreams_file: upstreams.yaml\nroutes:\n  - { prefix: /, upstream: console }\n".to_string(),
            &["portcullis.yaml:4:", "missing.crt", "cannot read certificates"],
        ),
        // session: a key ring that does not decode.
        (
            format!("{head}session:\n  key: c2hvcnQ=\n"),
            &["portcullis.yaml:7:", "session key"],
        ),
        // oidc: a private_key_jwt key file that holds no key.
        (
            format!("{head}{oidc}  client_auth: private_key_jwt\n  client_key_file: not-a-key.pem\n"),
            &["portcullis.yaml:11:", "client_key_file holds no RSA or EC"],
        ),
        // oidc: a logout target that would be an open redirect.
        (
            format!("{head}{oidc}  client_secret: s\n  post_logout_redirect: //evil.example/\n"),
            &["portcullis.yaml:11:", "post_logout_redirect must be a plain path"],
        ),
        // plugins: a script that defines no phase.
        (
            format!("{head}plugins:\n  - script: idle.lua\n"),
            &["portcullis.yaml:7:", "plugin", "defines neither"],
        ),
        // router: a prefix matching cannot serve.
        (
            "listen:\n  - address: \"127.0.0.1:8080\"\nupstreams_file: upstreams.yaml\nroutes:\n  - { prefix: nothing, upstream: console }\n".to_string(),
            &["portcullis.yaml:5:", "must start with `/`"],
        ),
    ];
    for (i, (config, expected)) in cases.iter().enumerate() {
        let path = dir.path().join("portcullis.yaml");
        std::fs::write(&path, config).unwrap();
        let out = Command::new(BIN)
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "case {i} was accepted");
        for fragment in *expected {
            assert!(
                stderr.contains(fragment),
                "case {i}: `{fragment}` missing from:\n{stderr}"
            );
        }
    }
    // The upstreams file: a pool with no backends, at its line there.
    std::fs::write(dir.path().join("portcullis.yaml"), GOOD).unwrap();
    std::fs::write(
        dir.path().join("upstreams.yaml"),
        "upstreams:\n  console: { backends: [\"127.0.0.1:1\"] }\n  api:\n    backends: []\ndesktops: {}\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(dir.path().join("portcullis.yaml"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("upstreams.yaml:4:") && stderr.contains("pool `api` has no backends"),
        "{stderr}"
    );
}
