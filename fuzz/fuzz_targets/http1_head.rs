//! Raw HTTP/1 request heads through Pingora's own server-side reader
//! (`HttpSession::read_request`: `httparse`, Pingora's request-line escaping, its
//! Content-Length / Transfer-Encoding / authority validation) and then through Portcullis's
//! first steps on what it parsed, in the order `early_request_filter` and `request_filter` run
//! them: client identity headers stripped, header limits, the canonical request, the routing
//! decision (over `portcullis_fuzz::PROXY_CONFIG`), and the request facts (`request`, `host`).
//!
//! Input: the bytes a client sends on a fresh connection, which then closes.
//!
//! Invariants: nothing panics; a canonical request has a canonical origin-form target of
//! printable ASCII, at most one Authorization, Content-Length and Transfer-Encoding; routing
//! and the upstream read the same host; a rewritten upstream target parses as a URI (the proxy
//! would fail the request with a 500 otherwise).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pingora::protocols::http::v1::server::HttpSession;
use portcullis::dispatch::{self, Decision};
use portcullis::path::{self, Separators};
use tokio::io::AsyncWriteExt as _;

fuzz_target!(|data: &[u8]| {
    let parsed = portcullis_fuzz::block_on(async {
        let (mut client, server) = tokio::io::duplex(data.len() + 64);
        client.write_all(data).await.expect("in-memory write");
        drop(client);
        let mut session = HttpSession::new(Box::new(server));
        match session.read_request().await {
            Ok(Some(_)) => Some(session.req_header().clone()),
            _ => None,
        }
    });
    let Some(mut req) = parsed else {
        return;
    };
    let snapshot = portcullis_fuzz::snapshot();

    portcullis::identity::strip_client_identity(&mut req, &snapshot.identity_headers);
    if portcullis::proxy::header_limits::check(&req, snapshot).is_some() {
        return;
    }
    let Ok(canonical) = portcullis::canonical::canonicalize(&mut req) else {
        return;
    };

    let raw = req.raw_path().to_vec();
    let target = String::from_utf8(raw).expect("a canonical target is UTF-8");
    assert!(
        target.bytes().all(|b| b.is_ascii_graphic()),
        "canonical target {target:?} is not printable ASCII"
    );
    assert!(
        target.starts_with('/'),
        "canonical target {target:?} is not origin-form"
    );
    let path = req.uri.path();
    assert_eq!(
        target.split('?').next(),
        Some(path),
        "raw target and URI disagree"
    );
    match path::canonicalize(path.as_bytes(), Separators::Keep) {
        Ok(p) => assert_eq!(
            p, path,
            "canonical path {path:?} changes when normalised again"
        ),
        Err(e) => panic!("canonical path {path:?} refused when normalised again: {e:?}"),
    }
    for single in ["authorization", "content-length", "transfer-encoding"] {
        assert!(
            req.headers.get_all(single).iter().count() <= 1,
            "two {single} fields passed"
        );
    }

    // Routing reads the host the upstream will read.
    let host = portcullis::request::request_host(&req);
    if req.uri.authority().is_none() {
        let header = req
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok());
        assert_eq!(
            host, header,
            "routing and the upstream read different hosts"
        );
    }
    if let Some(h) = host {
        let mut buf = [0u8; portcullis::host::MAX_LEN];
        if let Some(c) = portcullis::host::canonical(h, &mut buf) {
            assert!(
                portcullis::host::is_valid(c),
                "canonical host {c:?} is not valid"
            );
        }
    }
    let _ = portcullis::request::may_change_state(&req);
    let _ = portcullis::request::cookie(&req, "portcullis_session");
    let _ = portcullis::request::cookies(&req).count();

    if let Decision::Forward(fwd) = dispatch::decide(snapshot, &req, &canonical, true) {
        if let Some(uri) = &fwd.upstream_uri {
            if let Err(e) = uri.parse::<http::Uri>() {
                panic!("rewritten upstream target {uri:?} does not parse: {e}");
            }
        }
    }
});
