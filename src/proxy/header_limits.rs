//! Refuses oversized request heads: they cost memory on every hop and are a classic way to
//! exhaust a proxy (RFC 6585 §5: 431). Counts only; allocates nothing.

use crate::metrics::metrics;
use crate::pages::Failure;
use crate::runtime::Snapshot;
use pingora::http::RequestHeader;

/// `Some(HeadersTooLarge)` when the head has more headers, or more bytes, than the snapshot
/// allows; the limit that tripped is counted in `limits_exceeded`.
pub fn check(req: &RequestHeader, runtime: &Snapshot) -> Option<Failure> {
    let count = req.headers.len();
    let target = req.uri.path_and_query().map_or(0, |p| p.as_str().len())
        + req.uri.authority().map_or(0, |a| a.as_str().len());
    let size: usize = target
        + req
            .headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>();
    let exceeded = if count > runtime.max_request_headers {
        "header_count"
    } else if size > runtime.max_request_header_size {
        "header_size"
    } else {
        return None;
    };
    metrics()
        .limits_exceeded
        .with_label_values(&[exceeded])
        .inc();
    Some(Failure::HeadersTooLarge)
}
