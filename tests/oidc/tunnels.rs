use crate::support::oidc::{Browser, Options, Stack, DEFAULT_ROUTES};
use crate::support::ws::{closed_within, open_tunnel, Tunnel};
use futures_util::{SinkExt, StreamExt};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// The owner's tunnel to desktop `d-alice`, with the browser's session cookie.
async fn open(stack: &Stack, browser: &Browser) -> Tunnel {
    let url = format!("ws://{}/desktop/d-alice/tunnel", stack.proxy.addr);
    let cookie = browser.cookie_header(stack, "/");
    let (ws, resp, _) = open_tunnel(|| {
        let mut req = url.clone().into_client_request().unwrap();
        req.headers_mut().insert("cookie", cookie.parse().unwrap());
        req
    })
    .await;
    assert_eq!(resp.status(), 101);
    ws
}

#[tokio::test]
async fn logout_closes_the_sessions_open_tunnel_within_a_second() {
    let stack = Stack::start().await;
    let browser = Browser::new();
    browser.login(&stack, "/").await;
    let mut ws = open(&stack, &browser).await;
    // Idle on both sides: nothing in the request path would notice the logout.
    let (hops, _) = browser.log_out(&stack, "").await;
    assert_eq!(hops[0].status, 303);
    let took = closed_within(&mut ws, Duration::from_secs(2))
        .await
        .expect("tunnel still open 2 s after logout");
    assert!(took <= Duration::from_secs(1), "closed after {took:?}");
}

#[tokio::test]
async fn front_channel_logout_closes_tunnels_too_and_others_stay_open() {
    let stack = Stack::start().await;
    let first = Browser::new();
    first.login(&stack, "/").await;
    let sid = stack.idp.sid_of_last_login().unwrap();
    let second = Browser::new();
    second.login(&stack, "/").await;
    let mut doomed = open(&stack, &first).await;
    let mut kept = open(&stack, &second).await;
    let resp = reqwest::get(stack.url(&format!(
        "/oauth2/logout/frontchannel?{}",
        stack.idp.frontchannel_logout_query(&sid)
    )))
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(closed_within(&mut doomed, Duration::from_secs(2))
        .await
        .is_some());
    kept.send(Message::text("still here")).await.unwrap();
    assert_eq!(
        kept.next().await.unwrap().unwrap(),
        Message::text("still here")
    );
}

#[tokio::test]
async fn a_page_on_another_origin_cannot_open_the_users_tunnel() {
    let routes = DEFAULT_ROUTES.replace(
        "websocket: true }",
        "websocket: true, origins: [\"https://console.example.test\"] }",
    );
    let stack = Stack::start_with(Options {
        routes: &routes,
        ..Options::default()
    })
    .await;
    let browser = Browser::new();
    browser.login(&stack, "/").await;
    let url = format!("ws://{}/desktop/d-alice/tunnel", stack.proxy.addr);
    let cookie = browser.cookie_header(&stack, "/");
    let request = |origin: &str| {
        let mut req = url.clone().into_client_request().unwrap();
        req.headers_mut().insert("cookie", cookie.parse().unwrap());
        req.headers_mut().insert("origin", origin.parse().unwrap());
        req
    };
    // The victim's browser sends the cookie (a sibling subdomain is same-site); the Origin
    // it must also send gives the page away.
    for origin in [
        "https://evil.example.test",
        &format!("http://{}.evil.test", stack.proxy.addr.ip()),
        &format!("http://localhost:{}", stack.proxy.addr.port()),
        "null",
    ] {
        match tokio_tungstenite::connect_async(request(origin)).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 403, "origin {origin}")
            }
            other => panic!("origin {origin}: {:?}", other.map(|(_, r)| r.status())),
        }
    }
    for origin in [
        format!("http://{}", stack.proxy.addr),
        "https://console.example.test".to_string(),
    ] {
        let (_ws, resp, _) = open_tunnel(|| request(&origin)).await;
        assert_eq!(resp.status(), 101, "origin {origin}");
    }
}
