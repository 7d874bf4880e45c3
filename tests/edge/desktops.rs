use crate::support::ws::open_tunnel;
use crate::support::{client, EchoUpstream, Proxy};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

struct Desktops {
    proxy: Proxy,
    _d42: EchoUpstream,
    _d7: EchoUpstream,
    console: EchoUpstream,
}

async fn desktops() -> Desktops {
    let d42 = EchoUpstream::start("d-42").await;
    let d7 = EchoUpstream::start("d-7").await;
    let console = EchoUpstream::start("console").await;
    let proxy = Proxy::start(
        r#"
routes:
  - { prefix: "/desktop/{id}/", desktops: true, strip_prefix: true, websocket: true }
  - { prefix: /, upstream: console }
"#,
        &format!(
            "upstreams:\n  console: {{ backends: [\"{}\"] }}\ndesktops:\n  d-42: {{ backend: \"{}\", owner: alice }}\n  d-7: {{ backend: \"{}\", owner: bob }}\n",
            console.addr, d42.addr, d7.addr
        ),
    )
    .await;
    Desktops {
        proxy,
        _d42: d42,
        _d7: d7,
        console,
    }
}

#[tokio::test]
async fn each_desktop_reaches_its_own_backend_with_the_prefix_stripped() {
    let d = desktops().await;
    for (id, server) in [("d-42", "d-42"), ("d-7", "d-7")] {
        let resp = client()
            .get(d.proxy.url(&format!("/desktop/{id}/vnc/index.html")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["server"], server);
        assert_eq!(body["uri"], "/vnc/index.html");
    }
}

#[tokio::test]
async fn desktop_ids_match_whole_segments_only() {
    let d = desktops().await;
    for path in ["/desktop/d-42x/", "/desktop/d-4/", "/desktop/D-42/"] {
        let resp = client().get(d.proxy.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "no_such_desktop", "{path}");
    }
    // An unknown desktop never falls through to the catch-all route.
    assert_eq!(d.console.requests(), 0);
    let resp = client()
        .get(d.proxy.url("/desktop/d-42"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 301);
    assert_eq!(resp.headers()["location"], "/desktop/d-42/");
}

#[tokio::test]
async fn websocket_tunnel_echoes_through_the_desktop_route() {
    let d = desktops().await;
    let url = format!(
        "ws://{}/desktop/d-42/workstation-0.0.1/websocket-tunnel",
        d.proxy.addr
    );
    let (mut ws, response, greeting) = open_tunnel(|| {
        let mut request = url.clone().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("sec-websocket-protocol", "guacamole".parse().unwrap());
        request
    })
    .await;
    assert_eq!(response.status(), 101);
    assert_eq!(response.headers()["sec-websocket-protocol"], "guacamole");
    assert_eq!(greeting, "path:/workstation-0.0.1/websocket-tunnel");
    for i in 0..50 {
        let text = format!("4.sync,{i}.;");
        ws.send(Message::text(text.clone())).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), Message::text(text));
    }
    let blob: Vec<u8> = (0..=255).cycle().take(256 * 1024).collect();
    ws.send(Message::binary(blob.clone())).await.unwrap();
    assert_eq!(ws.next().await.unwrap().unwrap(), Message::binary(blob));
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn many_quick_handshakes_all_complete() {
    // Pingora issue #946: a fast upstream could see the tunnel torn down right after the 101.
    let d = desktops().await;
    let url = format!("ws://{}/desktop/d-7/tunnel", d.proxy.addr);
    let handshakes = (0..40).map(|i| {
        let url = url.clone();
        async move {
            let (mut ws, _, _) = open_tunnel(|| url.clone().into_client_request().unwrap()).await;
            ws.send(Message::text(format!("m{i}"))).await.expect("send");
            ws.next().await.expect("echo").expect("frame") == Message::text(format!("m{i}"))
        }
    });
    let results = futures_util::future::join_all(handshakes).await;
    assert!(results.iter().all(|ok| *ok));
}

#[tokio::test]
async fn upgrades_are_refused_on_routes_without_websocket() {
    let d = desktops().await;
    let url = format!("ws://{}/console-socket", d.proxy.addr);
    let err = tokio_tungstenite::connect_async(url)
        .await
        .expect_err("no upgrade on a plain route");
    assert!(err.to_string().contains("200"), "{err}");
    // The upstream saw a plain request, without the upgrade headers.
    assert_eq!(d.console.requests(), 1);
}
