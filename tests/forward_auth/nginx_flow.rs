//! The flow an nginx user sees: login through nginx, identity at the upstream, 401 → login,
//! 403 for a user the route refuses, bearer tokens on API routes.

use crate::support::oidc::Browser;
use crate::{alice, bob, logged_in, Edge};
use serde_json::Value;

#[tokio::test]
async fn a_login_through_nginx_reaches_the_upstream_with_the_verified_identity() {
    let edge = Edge::start().await;
    let browser = Browser::new();
    let (hops, resp) = browser.navigate(&edge.url("/reports?id=7")).await;
    assert_eq!(resp.status(), 200);
    // nginx answered the first request with our login location, built from the original URI.
    assert_eq!(hops[0].status, 302);
    assert_eq!(
        hops[0].headers["location"],
        edge.url("/oauth2/login?redirect=/reports%3Fid%3D7")
            .as_str()
    );
    assert!(
        resp.url().as_str().ends_with("/reports?id=7"),
        "{}",
        resp.url()
    );
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["headers"]["x-remote-user"], "alice");
    assert_eq!(body["headers"]["x-remote-groups"], "staff");
    assert_eq!(body["headers"]["x-remote-email"], "alice@example.com");
}

#[tokio::test]
async fn an_api_client_without_a_login_gets_401_never_a_redirect_and_a_bearer_token_works() {
    let edge = Edge::start().await;
    let resp = crate::support::client()
        .get(edge.url("/api/items"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    // The API location has no `error_page 401`: nginx passes the 401 on.
    assert_eq!(resp.status(), 401);
    let token = edge.idp.access_token_for(&alice(), "portcullis");
    let resp = crate::support::client()
        .get(edge.url("/api/items"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["headers"]["x-remote-user"], "alice");
}

#[tokio::test]
async fn a_user_the_route_refuses_gets_403_not_a_login_loop() {
    let edge = Edge::start().await;
    let alice_browser = logged_in(&edge, alice()).await;
    assert_eq!(
        alice_browser.status_of(&edge.url("/admin/users")).await,
        403
    );
    let bob_browser = logged_in(&edge, bob()).await;
    assert_eq!(bob_browser.status_of(&edge.url("/admin/users")).await, 200);
    // Bob is an admin (admin_groups), so he may use any desktop; Alice may use her own.
    assert_eq!(
        alice_browser
            .status_of(&edge.url("/desktop/d-alice/"))
            .await,
        200
    );
    edge.idp
        .set_user(crate::support::idp::TestUser::new("eve-sub", "eve"));
    let eve = logged_in(&edge, crate::support::idp::TestUser::new("eve-sub", "eve")).await;
    assert_eq!(eve.status_of(&edge.url("/desktop/d-alice/")).await, 403);
    assert_eq!(eve.status_of(&edge.url("/desktop/d-nobody/")).await, 403);
}

#[tokio::test]
async fn identity_headers_sent_by_a_client_never_reach_the_upstream() {
    let edge = Edge::start().await;
    let alice_browser = logged_in(&edge, alice()).await;
    for (path, expected) in [("/public/x", None), ("/home", Some("alice"))] {
        let resp = alice_browser
            .client
            .get(edge.url(path))
            .header("x-remote-user", "admin")
            .header("x-remote-groups", "admins")
            .header("x_remote_user", "admin")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["headers"]["x-remote-user"].as_str(),
            expected,
            "{path}: {body}"
        );
        assert_ne!(body["headers"]["x-remote-groups"], "admins", "{path}");
    }
    // Without a session: the forged header does not log anyone in.
    let resp = crate::support::client()
        .get(edge.url("/home"))
        .header("x-remote-user", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
}
