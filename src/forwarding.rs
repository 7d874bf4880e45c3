//! What the upstream learns about the original request: `X-Forwarded-*`, `X-Real-IP` and the
//! request id. Client-sent copies are replaced, never appended to: Portcullis is the edge, so
//! anything a client claims about its own address is a spoofing attempt.

use crate::header_names::{same_variable, starts_as};
use pingora::http::RequestHeader;
use std::net::SocketAddr;

/// What a client may claim about its own address or the URL it used, in headers frameworks
/// trust behind a proxy (Spring and Express read `X-Forwarded-Prefix`/`-Port`; Symfony and IIS
/// route on `X-Original-URL`).
const CLIENT_CLAIMS: [&str; 8] = [
    "forwarded",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "x-cluster-client-ip",
    "x-original-url",
    "x-original-uri",
    "x-rewrite-url",
];

/// Every `X-Forwarded-*` field (`-For`, `-Proto`, `-Host`, `-Port`, `-Prefix`, `-Ssl`, …).
const CLIENT_CLAIM_PREFIX: &str = "x-forwarded-";

pub struct Origin<'a> {
    pub client: Option<&'a SocketAddr>,
    pub tls: bool,
    pub host: Option<&'a str>,
    pub request_id: &'a str,
}

pub fn set_forwarding_headers(req: &mut RequestHeader, origin: &Origin<'_>) -> pingora::Result<()> {
    let claims: Vec<_> = req
        .headers
        .keys()
        .filter(|k| {
            let k = k.as_str();
            starts_as(k, CLIENT_CLAIM_PREFIX) || CLIENT_CLAIMS.iter().any(|c| same_variable(k, c))
        })
        .cloned()
        .collect();
    for name in claims {
        req.remove_header(&name);
    }
    if let Some(addr) = origin.client {
        let ip = addr.ip().to_string();
        req.insert_header("x-forwarded-for", ip.as_str())?;
        req.insert_header("x-real-ip", ip)?;
    }
    req.insert_header(
        "x-forwarded-proto",
        if origin.tls { "https" } else { "http" },
    )?;
    if let Some(host) = origin.host {
        req.insert_header("x-forwarded-host", host)?;
    }
    req.insert_header(crate::request_id::HEADER, origin.request_id)?;
    Ok(())
}
