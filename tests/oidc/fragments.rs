//! A deep link's fragment (`/app/reports?id=7#frag`) survives login: a page load gets a page
//! that puts the fragment into the login's `redirect`, and the final redirect carries it.
//! Fragments that try to leave the site or break the header are refused like any target.

use crate::support::oidc::{Browser, Stack};

#[tokio::test]
async fn a_page_load_gets_a_page_that_keeps_the_fragment_and_other_clients_a_redirect() {
    let stack = Stack::start().await;
    let browser = Browser::new();
    let resp = browser
        .client
        .get(stack.url("/app/reports?id=7"))
        .header("accept", "text/html")
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-dest", "document")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'sha256-") && !csp.contains("unsafe"),
        "{csp}"
    );
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("href=\"/oauth2/login?redirect=/app/reports%3Fid%3D7\""),
        "{page}"
    );
    assert!(page.contains("location.hash"), "{page}");
    // Without Sec-Fetch-Dest (older clients, tools): the plain redirect.
    let resp = browser
        .client
        .get(stack.url("/app/reports?id=7"))
        .header("accept", "text/html")
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
}

/// What the page's script asks for: the redirect with the fragment appended, encoded.
#[tokio::test]
async fn the_fragment_comes_back_in_the_final_redirect() {
    let stack = Stack::start().await;
    let browser = Browser::new();
    let (hops, resp) = browser
        .navigate(&stack.url("/oauth2/login?redirect=/app/reports%3Fid%3D7%23section-2"))
        .await;
    assert_eq!(resp.status(), 200);
    let back = hops
        .iter()
        .find(|h| h.url.contains("/oauth2/callback"))
        .and_then(|h| h.headers.get("location"))
        .map(|l| l.to_str().unwrap().to_string());
    assert_eq!(back.as_deref(), Some("/app/reports?id=7#section-2"));
}

#[tokio::test]
async fn hostile_fragments_never_redirect_off_site() {
    let stack = Stack::start().await;
    for fragment in [
        "%23//evil.example",
        "%23/%5Cevil.example",
        "%23%0d%0aSet-Cookie:x=1",
        "%23%09//evil.example",
        "%23javascript:alert(1)",
        "%23%2F%2Fevil.example",
    ] {
        let browser = Browser::new();
        let (hops, _) = browser
            .navigate(&stack.url(&format!("/oauth2/login?redirect=/app{fragment}")))
            .await;
        let back = hops
            .iter()
            .find(|h| h.url.contains("/oauth2/callback"))
            .and_then(|h| h.headers.get("location"))
            .map(|l| l.to_str().unwrap().to_string())
            .unwrap();
        assert!(
            back.starts_with('/') && !back.starts_with("//") && !back.contains('\\'),
            "{fragment}: {back}"
        );
        assert!(
            !back.contains('\r') && !back.contains('\n'),
            "{fragment}: {back:?}"
        );
        let url = reqwest::Url::parse(&stack.url("/"))
            .unwrap()
            .join(&back)
            .unwrap();
        assert_eq!(
            url.origin(),
            reqwest::Url::parse(&stack.public).unwrap().origin(),
            "{fragment}"
        );
    }
    let long = format!("/oauth2/login?redirect=/app%23{}", "a".repeat(10_000));
    let browser = Browser::new();
    let (hops, _) = browser.navigate(&stack.url(&long)).await;
    assert!(hops.iter().all(|h| h.status < 500));
}
