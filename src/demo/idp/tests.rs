use super::*;

fn idp() -> Idp {
    Idp::new(
        "http://localhost:8090".into(),
        Client {
            id: "demo".into(),
            secret: "s3cret".into(),
            redirect_uris: vec!["http://localhost:8080/oauth2/callback".into()],
            post_logout_redirect_uris: vec!["http://localhost:8080/oauth2/logout/callback".into()],
        },
    )
    .unwrap()
}

fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn authorize(verifier: &str) -> HashMap<String, String> {
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    params(&[
        ("client_id", "demo"),
        ("redirect_uri", "http://localhost:8080/oauth2/callback"),
        ("response_type", "code"),
        ("scope", "openid profile"),
        ("state", "st"),
        ("nonce", "n"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
        ("user", "alice"),
    ])
}

fn token_request(body: &str, basic: Option<&str>) -> Request {
    let mut headers = vec![(
        "content-type".to_string(),
        "application/x-www-form-urlencoded".to_string(),
    )];
    if let Some(b) = basic {
        headers.push((
            "authorization".into(),
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(b)
            ),
        ));
    }
    Request {
        method: "POST".into(),
        path: "/token".into(),
        query: String::new(),
        headers,
        body: body.as_bytes().to_vec(),
    }
}

fn code_of(resp: &Response) -> String {
    let location = resp.header("location").unwrap();
    let url = url::Url::parse(location).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned()
}

#[test]
fn a_code_is_redeemed_once_with_its_pkce_verifier() {
    let idp = idp();
    let verifier = "v".repeat(43);
    let code = code_of(&idp.authorize_submit(&authorize(&verifier)));
    let wrong = format!("grant_type=authorization_code&code={code}&redirect_uri=http%3A%2F%2Flocalhost%3A8080%2Foauth2%2Fcallback&code_verifier={}", "w".repeat(43));
    assert_eq!(
        idp.token(&token_request(&wrong, Some("demo:s3cret")))
            .status,
        400
    );
    // The wrong verifier consumed the code: single use, whatever happened.
    let right = format!("grant_type=authorization_code&code={code}&redirect_uri=http%3A%2F%2Flocalhost%3A8080%2Foauth2%2Fcallback&code_verifier={verifier}");
    assert_eq!(
        idp.token(&token_request(&right, Some("demo:s3cret")))
            .status,
        400
    );
    let code = code_of(&idp.authorize_submit(&authorize(&verifier)));
    let right = right.replace(
        &right[right.find("code=").unwrap() + 5..right.find("&redirect").unwrap()],
        &code,
    );
    let ok = idp.token(&token_request(&right, Some("demo:s3cret")));
    assert_eq!(ok.status, 200);
    assert_eq!(
        idp.token(&token_request(&right, Some("demo:s3cret")))
            .status,
        400,
        "replayed code"
    );
}

#[test]
fn bad_clients_and_redirect_uris_are_refused_without_redirecting() {
    let idp = idp();
    for (k, v) in [
        ("redirect_uri", "http://evil.example/cb"),
        ("redirect_uri", "http://localhost:8080/oauth2/callback/x"),
        ("client_id", "other"),
        ("code_challenge_method", "plain"),
        ("response_type", "token"),
    ] {
        let mut p = authorize("x");
        p.insert(k.into(), v.into());
        let resp = idp.authorize_submit(&p);
        assert_eq!(resp.status, 400, "{k}={v}");
        assert!(resp.header("location").is_none());
    }
    let body = "grant_type=refresh_token&refresh_token=nope";
    assert_eq!(
        idp.token(&token_request(body, Some("demo:wrong"))).status,
        401
    );
    assert_eq!(idp.token(&token_request(body, None)).status, 401);
    let both = format!("{body}&client_id=demo&client_secret=s3cret");
    assert_eq!(
        idp.token(&token_request(&both, Some("demo:s3cret"))).status,
        401
    );
    assert_eq!(
        idp.token(&token_request(body, Some("demo:s3cret"))).status,
        400
    );
    let resp = idp.end_session(&params(&[(
        "post_logout_redirect_uri",
        "http://evil.example/",
    )]));
    assert_eq!(resp.status, 400);
}
