//! A near miss of the attack run: Lua patterns run in C, out of reach of the plugins'
//! instruction budget. A plugin that matches a client-controlled path against a
//! backtracking pattern must fail that request quickly, and the proxy must keep serving.

use crate::support::{client, EchoUpstream, Proxy};
use std::time::{Duration, Instant};

/// Generous for a busy machine; an unguarded match of these patterns takes minutes.
const QUICKLY: Duration = Duration::from_secs(5);

async fn proxy_with_script(script: &str, web: &EchoUpstream) -> Proxy {
    let dir = tempfile::tempdir().expect("script dir").keep();
    let path = dir.join("matcher.lua");
    std::fs::write(&path, script).expect("write script");
    Proxy::start(
        &format!(
            "routes:\n  - {{ prefix: /, upstream: web }}\nplugins:\n  - script: {}\n",
            path.display()
        ),
        &format!("upstreams:\n  web: {{ backends: [\"{}\"] }}\n", web.addr),
    )
    .await
}

/// Sends `attacks` concurrently (more than the proxy has worker threads) and, while they
/// are in flight, an ordinary request. Every attack must fail with 500 within `QUICKLY`,
/// and the ordinary request must be served.
async fn attack_while_serving(proxy: &Proxy, attack_path: &str) {
    let c = client();
    let attacks: Vec<_> = (0..6)
        .map(|_| {
            let c = c.clone();
            let url = proxy.url(attack_path);
            tokio::spawn(async move {
                let started = Instant::now();
                let status = c.get(url).send().await.map(|r| r.status().as_u16());
                (status.ok(), started.elapsed())
            })
        })
        .collect();
    let started = Instant::now();
    let ordinary = c.get(proxy.url("/ok")).send().await;
    assert_eq!(ordinary.map(|r| r.status().as_u16()).ok(), Some(200));
    assert!(
        started.elapsed() < QUICKLY,
        "ordinary request took {:?}",
        started.elapsed()
    );
    for attack in attacks {
        let (status, took) = attack.await.expect("attack task");
        assert_eq!(status, Some(500), "{attack_path}");
        assert!(took < QUICKLY, "{attack_path} took {took:?}");
    }
}

#[tokio::test]
async fn optional_items_in_a_plugin_pattern_cannot_stall_the_proxy() {
    let web = EchoUpstream::start("web").await;
    // 30 optional `a` then 30 `a`: 2^30 ways to fail on a path of 30 `a`.
    let proxy = proxy_with_script(
        r#"
local suspicious = ("a?"):rep(30) .. ("a"):rep(30)
function on_request(req)
  if req.path:find(suspicious) then req:set_header("x-suspicious", "1") end
end
"#,
        &web,
    )
    .await;
    attack_while_serving(&proxy, &format!("/{}", "a".repeat(30))).await;
    assert!(proxy.log().contains("too costly"), "{}", proxy.log());
}

#[tokio::test]
async fn a_plugin_repeating_an_affordable_match_cannot_stall_the_proxy() {
    let web = EchoUpstream::start("web").await;
    // Each call alone is affordable (quadratic on the path); a thousand of them per
    // request are not, though they cost the instruction budget next to nothing.
    let proxy = proxy_with_script(
        r#"
function on_request(req)
  local hits = 0
  for i = 1, 1000 do
    if req.path:find("^/.-.-b") then hits = hits + 1 end
  end
end
"#,
        &web,
    )
    .await;
    attack_while_serving(&proxy, &format!("/{}", "a".repeat(1500))).await;
    assert!(
        proxy.log().contains("pattern-matching budget") || proxy.log().contains("too costly"),
        "{}",
        proxy.log()
    );
}

#[tokio::test]
async fn backtracking_repetitions_on_a_long_path_cannot_stall_the_proxy() {
    let web = EchoUpstream::start("web").await;
    let proxy = proxy_with_script(
        r#"
function on_request(req)
  if req.path:match("^/(.-)/(.-)/(.-)/(.-)%.php$") then return 403 end
end
"#,
        &web,
    )
    .await;
    attack_while_serving(&proxy, &format!("/{}", "a/".repeat(3000))).await;
}
