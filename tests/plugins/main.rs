//! Plugins: Lua scripts at the request and response phases, against the real binary — what
//! they can do, where they run, how they fail, how they reload, and the scripts we ship.

#[path = "../support/mod.rs"]
mod support;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::oidc::{Browser, Options, Stack};
use support::prom::scrape;
use support::proxy::BIN;
use support::{client, eventually, EchoUpstream, Proxy};

/// Writes `script` as `<dir>/<name>.lua` (renamed into place, as editors do).
fn write_script(dir: &Path, name: &str, script: &str) -> PathBuf {
    let path = dir.join(format!("{name}.lua"));
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, script).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

/// What the echo upstream received for a GET of `path`.
async fn echoed(proxy: &Proxy, path: &str) -> Value {
    let resp = client().get(proxy.url(path)).send().await.expect("answer");
    resp.json().await.expect("the upstream's JSON")
}

async fn proxy_with(plugins: &str, web: &EchoUpstream) -> Proxy {
    Proxy::start(
        &format!(
            "routes:\n  - {{ prefix: /api/, upstream: web, name: api }}\n  - {{ prefix: /, upstream: web, name: site }}\nplugins:\n{plugins}"
        ),
        &format!("upstreams:\n  web: {{ backends: [\"{}\"] }}\n", web.addr),
    )
    .await
}

const EXAMPLE: &str = r#"
function on_request(req)
  if req.path == "/blocked" then
    return { status = 403, headers = { ["content-type"] = "text/plain" }, body = "blocked by plugin\n" }
  end
  if req.path == "/old" then
    return { status = 301, headers = { location = "/new" } }
  end
  if req.path == "/teapot" then
    return 418
  end
  req:set_header("x-plugin", req.method .. " " .. req.path .. " " .. (req.query or "-") .. " " .. req.route .. " " .. req.client_ip)
  req:remove_header("x-drop-me")
end

function on_response(resp)
  resp:set_header("x-seen", resp.status .. " " .. (resp:request_header("x-plugin") or "?"))
  resp:remove_header("x-upstream-secret")
end
"#;

#[tokio::test]
async fn a_plugin_answers_redirects_and_rewrites_headers() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(dir.path(), "example", EXAMPLE);
    let web = EchoUpstream::start("web").await;
    let proxy = proxy_with(&format!("  - script: {}\n", script.display()), &web).await;
    let c = client();

    let resp = c.get(proxy.url("/blocked")).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(resp.headers()["content-type"], "text/plain");
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    assert!(resp.headers().contains_key("x-request-id"));
    assert_eq!(resp.text().await.unwrap(), "blocked by plugin\n");

    let resp = c.get(proxy.url("/old")).send().await.unwrap();
    assert_eq!(resp.status(), 301);
    assert_eq!(resp.headers()["location"], "/new");
    assert_eq!(
        c.get(proxy.url("/teapot")).send().await.unwrap().status(),
        418
    );
    assert_eq!(web.requests(), 0, "answered by the plugin, never upstream");

    let resp = c
        .get(proxy.url("/x?q=1"))
        .header("x-drop-me", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-seen"], "200 GET /x q=1 site 127.0.0.1");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["headers"]["x-plugin"], "GET /x q=1 site 127.0.0.1");
    assert!(body["headers"].get("x-drop-me").is_none(), "{body}");
}

#[tokio::test]
async fn a_plugin_runs_only_on_its_routes_with_its_config() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(
        dir.path(),
        "tagger",
        "function on_request(req) req:set_header('x-tag', config.tag .. ':' .. config.list[2]) end",
    );
    let web = EchoUpstream::start("web").await;
    let proxy = proxy_with(
        &format!(
            "  - script: {}\n    routes: [api]\n    config: {{ tag: hello, list: [a, b] }}\n",
            script.display()
        ),
        &web,
    )
    .await;
    let body: Value = echoed(&proxy, "/api/x").await;
    assert_eq!(body["headers"]["x-tag"], "hello:b");
    let body: Value = echoed(&proxy, "/other").await;
    assert!(body["headers"].get("x-tag").is_none(), "{body}");
}

#[tokio::test]
async fn a_failing_or_runaway_script_fails_its_request_only() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(
        dir.path(),
        "fragile",
        r#"
function on_request(req)
  if req.path == "/error" then error("boom") end
  if req.path == "/loop" then while true do end end
  if req.path == "/bad-answer" then return { status = 200, headers = { ["bad header"] = "x" } } end
  if req.path == "/bad-status" then return 42 end
end
function on_response(resp)
  if resp:request_header("x-fail-response") then error("late boom") end
end
"#,
    );
    let web = EchoUpstream::start("web").await;
    let proxy = proxy_with(&format!("  - script: {}\n", script.display()), &web).await;
    let c = client();
    for path in ["/error", "/loop", "/bad-answer", "/bad-status"] {
        let resp = c.get(proxy.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 500, "{path}");
    }
    // In the response phase the upstream's answer is under way: it goes out unchanged.
    let resp = c
        .get(proxy.url("/fine"))
        .header("x-fail-response", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        c.get(proxy.url("/fine")).send().await.unwrap().status(),
        200
    );
    let m = scrape(&proxy.ops_url("/metrics")).await;
    let errors = |phase| {
        m.value(
            "portcullis_plugin_errors_total",
            &[("plugin", "fragile"), ("phase", phase)],
        )
    };
    assert_eq!(errors("request"), 4.0);
    assert_eq!(errors("response"), 1.0);
    let log = proxy.log();
    assert!(
        log.contains("boom") && log.contains("instruction budget"),
        "{log}"
    );
}

#[tokio::test]
async fn an_edited_script_applies_at_once_and_a_broken_edit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let version =
        |n: u32| format!("function on_request(req) req:set_header('x-version', '{n}') end");
    let script = write_script(dir.path(), "versioned", &version(1));
    let web = EchoUpstream::start("web").await;
    let proxy = proxy_with(&format!("  - script: {}\n", script.display()), &web).await;
    let seen = || async {
        let body: Value = echoed(&proxy, "/x").await;
        body["headers"]["x-version"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(seen().await, "1");
    write_script(dir.path(), "versioned", &version(2));
    assert!(
        eventually(Duration::from_secs(3), || async { seen().await == "2" }).await,
        "the edited script never applied"
    );
    write_script(
        dir.path(),
        "versioned",
        "function on_request(req) this is not lua end",
    );
    let refused = || async {
        scrape(&proxy.ops_url("/metrics"))
            .await
            .value("portcullis_config_reloads_total", &[("outcome", "failed")])
            >= 1.0
    };
    assert!(eventually(Duration::from_secs(3), refused).await);
    assert_eq!(seen().await, "2", "the last good script keeps serving");
    assert!(proxy.log().contains("versioned.lua:1:"), "{}", proxy.log());
}

#[test]
fn check_names_the_script_and_line_of_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let broken = write_script(
        dir.path(),
        "broken",
        "function on_request(req)\n  return (\nend\n",
    );
    let idle = write_script(dir.path(), "idle", "x = 1\n");
    let config = dir.path().join("portcullis.yaml");
    std::fs::write(
        &config,
        format!(
            "listen:\n  - address: \"127.0.0.1:8080\"\nroutes:\n  - {{ prefix: /, upstream: web }}\nupstreams_file: up.yaml\nplugins:\n  - script: {}\n  - script: {}\n  - script: missing.lua\n  - script: {}\n    routes: [nope]\n",
            broken.display(),
            idle.display(),
            broken.display(),
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("up.yaml"),
        "upstreams:\n  web: { backends: [\"127.0.0.1:9\"] }\n",
    )
    .unwrap();
    let out = std::process::Command::new(BIN)
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for fragment in [
        "portcullis.yaml:7:",
        "broken.lua:3:",
        "portcullis.yaml:8:",
        "defines neither `on_request` nor `on_response`",
        "portcullis.yaml:9:",
        "cannot read plugin",
        "already listed",
        "no route is named `nope`",
    ] {
        assert!(
            stderr.contains(fragment),
            "`{fragment}` missing from:\n{stderr}"
        );
    }
}

fn shipped(name: &str) -> String {
    format!("{}/plugins/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn the_shipped_scripts_do_what_they_say() {
    let web = EchoUpstream::start("web").await;
    let proxy = proxy_with(
        &format!(
            "  - script: {}\n  - script: {}\n    config: {{ content-security-policy: \"default-src 'self'\", x-frame-options: \"\" }}\n",
            shipped("deny-paths.lua"),
            shipped("security-headers.lua")
        ),
        &web,
    )
    .await;
    let c = client();
    for path in ["/.git/config", "/.ENV", "/app/index.php.bak", "/notes~"] {
        assert_eq!(
            c.get(proxy.url(path)).send().await.unwrap().status(),
            404,
            "{path}"
        );
    }
    assert_eq!(web.requests(), 0);
    let resp = c.get(proxy.url("/index.html")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers();
    assert_eq!(h["content-security-policy"], "default-src 'self'");
    assert!(h.get("x-frame-options").is_none(), "emptied by config");
    assert_eq!(h["cross-origin-opener-policy"], "same-origin");
    assert!(h["permissions-policy"]
        .to_str()
        .unwrap()
        .contains("camera=()"));
}

#[tokio::test]
async fn plugins_see_the_verified_identity() {
    let extra = format!(
        "plugins:\n  - script: {}\n    routes: [app]\n    config: {{ allow_groups: [admins], message: closed }}\n",
        shipped("maintenance.lua")
    );
    let routes = "\n  - { prefix: /app/, upstream: app, auth: login, name: app }\n  - { prefix: /, upstream: app, auth: login }\n";
    let stack = Stack::start_with(Options {
        routes,
        extra: &extra,
        ..Options::default()
    })
    .await;
    let browser = Browser::new();
    browser.login(&stack, "/").await;
    // alice is in staff and users, not admins: the window is closed for her on /app/ only.
    let resp = browser
        .client
        .get(stack.url("/app/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "300");
    assert_eq!(resp.text().await.unwrap(), "closed\n");
    assert_eq!(browser.status_of(&stack.url("/elsewhere")).await, 200);
    // Without a session the access decision comes first: plugins never see anonymous users
    // on protected routes.
    assert_eq!(Browser::new().status_of(&stack.url("/app/x")).await, 401);
}
