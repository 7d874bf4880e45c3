use crate::support::oidc::{Browser, Stack};
use futures_util::{SinkExt, StreamExt};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the owner's tunnel and proves it carries traffic both ways. Retries twice for
/// Pingora #946 (see tests/edge/desktops.rs).
async fn open(stack: &Stack, browser: &Browser) -> Ws {
    for _ in 0..3 {
        let mut req = format!("ws://{}/desktop/d-alice/tunnel", stack.proxy.addr)
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("cookie", browser.cookie_header(stack, "/").parse().unwrap());
        let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.expect("tunnel");
        assert_eq!(resp.status(), 101);
        if !matches!(ws.next().await, Some(Ok(Message::Text(_)))) {
            continue;
        }
        if ws.send(Message::text("probe")).await.is_ok()
            && matches!(ws.next().await, Some(Ok(m)) if m == Message::text("probe"))
        {
            return ws;
        }
    }
    panic!("no working tunnel");
}

/// Waits for the proxy to end an idle tunnel; returns how long it took.
async fn closed_within(ws: &mut Ws, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    loop {
        match tokio::time::timeout(limit.saturating_sub(started.elapsed()), ws.next()).await {
            Err(_) => return None,
            Ok(None) | Ok(Some(Err(_))) | Ok(Some(Ok(Message::Close(_)))) => {
                return Some(started.elapsed())
            }
            Ok(Some(Ok(_))) => {}
        }
    }
}

#[tokio::test]
async fn logout_closes_the_sessions_open_tunnel_within_a_second() {
    let stack = Stack::start().await;
    let browser = Browser::new();
    browser.login(&stack, "/").await;
    let mut ws = open(&stack, &browser).await;
    // Idle on both sides: nothing in the request path would notice the logout.
    let resp = browser
        .client
        .get(stack.url("/oauth2/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
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
