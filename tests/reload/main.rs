//! Live configuration: the upstreams file is rewritten under load, by every method tools use,
//! and no request to a route that exists before and after a change fails.

#[path = "../support/mod.rs"]
mod support;

use futures_util::{SinkExt, StreamExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{client, eventually, EchoUpstream, Proxy};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const ROUTES: &str = "routes:\n  - { prefix: \"/desktop/{id}/\", desktops: true, strip_prefix: true, websocket: true }\n  - { prefix: /, upstream: web }\n";

fn upstreams(web: &[&EchoUpstream], desktops: &[(&str, &EchoUpstream)]) -> String {
    let backends: Vec<String> = web.iter().map(|b| format!("\"{}\"", b.addr)).collect();
    let mut s = format!("upstreams:\n  web:\n    backends: [{}]\n    health_check: {{ path: /healthz, interval: 1s }}\ndesktops:\n", backends.join(", "));
    for (id, d) in desktops {
        s.push_str(&format!(
            "  {id}: {{ backend: \"{}\", owner: alice }}\n",
            d.addr
        ));
    }
    s
}

/// Write styles seen in the wild.
#[derive(Clone, Copy, Debug)]
enum Write {
    /// Truncate and write in place (shell redirection, many tools).
    InPlace,
    /// Write a temporary file and rename it over (editors, atomic writers).
    Rename,
}

fn write(path: &Path, content: &str, how: Write) {
    match how {
        Write::InPlace => std::fs::write(path, content).unwrap(),
        Write::Rename => {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, content).unwrap();
            std::fs::rename(&tmp, path).unwrap();
        }
    }
}

async fn status(proxy: &Proxy, path: &str) -> u16 {
    client()
        .get(proxy.url(path))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_hundred_rewrites_under_load_fail_no_request() {
    let a = EchoUpstream::start("a").await;
    let b = EchoUpstream::start("b").await;
    let stable = EchoUpstream::start("stable-desktop").await;
    let fresh = EchoUpstream::start("fresh-desktop").await;
    let proxy = Proxy::start(ROUTES, &upstreams(&[&a], &[("d-stable", &stable)])).await;
    let file = proxy.dir.path().join("upstreams.yaml");

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let load: Vec<_> = ["/", "/desktop/d-stable/x"]
        .into_iter()
        .map(|path| {
            let (stop, sent, failed, url) =
                (stop.clone(), sent.clone(), failed.clone(), proxy.url(path));
            tokio::spawn(async move {
                let c = client();
                while !stop.load(Ordering::Relaxed) {
                    let ok = c.get(&url).send().await.is_ok_and(|r| r.status() == 200);
                    sent.fetch_add(1, Ordering::Relaxed);
                    if !ok {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();

    let mut slowest = Duration::ZERO;
    for i in 1..=100u32 {
        let how = if i % 2 == 0 {
            Write::Rename
        } else {
            Write::InPlace
        };
        if i % 10 == 0 {
            // A broken file: refused as a whole, nothing changes.
            write(
                &file,
                "upstreams:\n  web: { backends: [\"not an address\"] }\ndesktops: [\n",
                how,
            );
            let refused = eventually(Duration::from_secs(3), || async {
                proxy.log().matches("config reload refused").count() >= (i / 10) as usize
            })
            .await;
            assert!(refused, "the broken file #{i} was not refused");
            assert_eq!(
                status(&proxy, &format!("/desktop/d-{}/", i - 1)).await,
                200,
                "the last good config stopped serving"
            );
            continue;
        }
        let web: Vec<&EchoUpstream> = if i % 3 == 0 { vec![&a, &b] } else { vec![&a] };
        let id = format!("d-{i}");
        write(
            &file,
            &upstreams(&web, &[("d-stable", &stable), (&id, &fresh)]),
            how,
        );
        let written = Instant::now();
        let reachable = eventually(Duration::from_secs(2), || async {
            status(&proxy, &format!("/desktop/{id}/")).await == 200
        })
        .await;
        assert!(reachable, "desktop {id} never became reachable");
        slowest = slowest.max(written.elapsed());
        if i > 1 && (i - 1) % 10 != 0 {
            assert_eq!(
                status(&proxy, &format!("/desktop/d-{}/", i - 1)).await,
                404,
                "removed desktop still served"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let (sent, failed) = (sent.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    eprintln!(
        "reload churn: {sent} requests, {failed} failed, slowest desktop appearance {slowest:?}"
    );
    assert!(sent > 200, "the load did not run ({sent} requests)");
    assert_eq!(
        failed, 0,
        "{failed} of {sent} requests failed during reloads"
    );
    assert!(
        slowest <= Duration::from_secs(1),
        "a new desktop took {slowest:?} to answer"
    );
}

#[tokio::test]
async fn a_kubernetes_configmap_symlink_swap_is_seen() {
    let web = EchoUpstream::start("web").await;
    let desk = EchoUpstream::start("desk").await;
    // ConfigMap volume layout: file -> ..data/file, ..data -> ..2026_xx (swapped atomically).
    let dir = tempfile::tempdir().unwrap();
    let gen1 = dir.path().join("..gen1");
    std::fs::create_dir(&gen1).unwrap();
    std::fs::write(gen1.join("upstreams.yaml"), upstreams(&[&web], &[])).unwrap();
    std::os::unix::fs::symlink("..gen1", dir.path().join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/upstreams.yaml", dir.path().join("upstreams.yaml")).unwrap();
    let file = dir.path().join("upstreams.yaml");
    let proxy = Proxy::start(ROUTES, &upstreams(&[&web], &[])).await;
    // Point the proxy's config at the ConfigMap-style file.
    let config = std::fs::read_to_string(proxy.config_path())
        .unwrap()
        .replace(
            "upstreams_file: upstreams.yaml",
            &format!("upstreams_file: {}", file.display()),
        );
    std::fs::write(proxy.config_path(), config).unwrap();
    assert!(
        eventually(Duration::from_secs(3), || async {
            proxy.log().contains("config reloaded")
        })
        .await
    );
    assert_eq!(status(&proxy, "/desktop/d-new/").await, 404);

    let gen2 = dir.path().join("..gen2");
    std::fs::create_dir(&gen2).unwrap();
    std::fs::write(
        gen2.join("upstreams.yaml"),
        upstreams(&[&web], &[("d-new", &desk)]),
    )
    .unwrap();
    std::os::unix::fs::symlink("..gen2", dir.path().join("..data_tmp")).unwrap();
    std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
    let swapped = Instant::now();
    assert!(
        eventually(Duration::from_secs(2), || async {
            status(&proxy, "/desktop/d-new/").await == 200
        })
        .await
    );
    assert!(swapped.elapsed() <= Duration::from_secs(1));
}

#[tokio::test]
async fn sighup_reloads_and_restart_only_settings_are_reported() {
    let web = EchoUpstream::start("web").await;
    let desk = EchoUpstream::start("desk").await;
    let proxy = Proxy::start(ROUTES, &upstreams(&[&web], &[])).await;
    proxy.signal("HUP");
    assert!(
        eventually(Duration::from_secs(3), || async {
            proxy.log().contains("reason=\"SIGHUP\"") || proxy.log().contains("reason=SIGHUP")
        })
        .await,
        "{}",
        proxy.log()
    );
    std::fs::write(
        proxy.dir.path().join("upstreams.yaml"),
        upstreams(&[&web], &[("d-1", &desk)]),
    )
    .unwrap();
    let config = std::fs::read_to_string(proxy.config_path())
        .unwrap()
        .replace("threads: 2", "threads: 3");
    std::fs::write(proxy.config_path(), config).unwrap();
    proxy.signal("HUP");
    assert!(
        eventually(Duration::from_secs(2), || async {
            status(&proxy, "/desktop/d-1/").await == 200
        })
        .await
    );
    assert!(
        eventually(Duration::from_secs(2), || async {
            proxy.log().contains("take effect only after a restart")
        })
        .await
    );
    assert_eq!(status(&proxy, "/").await, 200, "the proxy survived SIGHUP");
}

#[tokio::test]
async fn removing_a_desktop_closes_its_open_tunnel() {
    let web = EchoUpstream::start("web").await;
    let desk = EchoUpstream::start("desk").await;
    let other = EchoUpstream::start("other").await;
    let proxy = Proxy::start(
        ROUTES,
        &upstreams(&[&web], &[("d-1", &desk), ("d-2", &other)]),
    )
    .await;
    let open = |id: &'static str| {
        let url = format!("ws://{}/desktop/{id}/tunnel", proxy.addr);
        async move {
            support::ws::open_tunnel(|| url.clone().into_client_request().unwrap())
                .await
                .0
        }
    };
    let mut doomed = open("d-1").await;
    let mut kept = open("d-2").await;
    std::fs::write(
        proxy.dir.path().join("upstreams.yaml"),
        upstreams(&[&web], &[("d-2", &other)]),
    )
    .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match doomed.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the removed desktop's tunnel is still open");
    assert_eq!(status(&proxy, "/desktop/d-1/").await, 404);
    kept.send(Message::text("still")).await.unwrap();
    assert_eq!(kept.next().await.unwrap().unwrap(), Message::text("still"));
}

#[tokio::test]
async fn health_state_survives_a_reload_of_the_pool() {
    let a = EchoUpstream::start("a").await;
    let b = EchoUpstream::start("b").await;
    let c = EchoUpstream::start("c").await;
    let proxy = Proxy::start(ROUTES, &upstreams(&[&a, &b], &[])).await;
    b.set_healthy(false);
    let served = |expect: &'static str| {
        let url = proxy.url("/");
        async move {
            let body: serde_json::Value = client()
                .get(&url)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["server"] == expect
        }
    };
    // b leaves the rotation: two answers in a row from a.
    assert!(
        eventually(Duration::from_secs(5), || async {
            served("a").await && served("a").await
        })
        .await
    );
    let before = b.requests();
    // The pool changes (c joins); b's "down" must carry over, not reset to "up".
    std::fs::write(
        proxy.dir.path().join("upstreams.yaml"),
        upstreams(&[&a, &b, &c], &[]),
    )
    .unwrap();
    assert!(
        eventually(Duration::from_secs(3), || async { served("c").await }).await,
        "c never joined"
    );
    for _ in 0..20 {
        let _ = served("a").await;
    }
    assert_eq!(
        b.requests(),
        before,
        "the unhealthy backend got traffic after the reload"
    );
}
