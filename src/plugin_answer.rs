//! What a plugin script answers instead of the upstream: plain data, so that `pages` (which
//! turns it into a reply) need not import the script engine in `plugins`.

/// An answer a script gave instead of the upstream's.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    pub body: Vec<u8>,
}
