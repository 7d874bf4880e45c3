//! What the upstream learns about the original request: `X-Forwarded-*`, `X-Real-IP` and the
//! request id. Client-sent copies are replaced, never appended to: Portcullis is the edge, so
//! anything a client claims about its own address is a spoofing attempt.

use pingora::http::RequestHeader;
use std::net::SocketAddr;

const CLIENT_CLAIMS: [&str; 5] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
];

pub struct Origin<'a> {
    pub client: Option<&'a SocketAddr>,
    pub tls: bool,
    pub host: Option<&'a str>,
    pub request_id: &'a str,
}

pub fn set_forwarding_headers(req: &mut RequestHeader, origin: &Origin<'_>) -> pingora::Result<()> {
    for name in CLIENT_CLAIMS {
        req.remove_header(name);
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
