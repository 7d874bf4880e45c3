//! The one canonical request, computed once, in the earliest phase, before anything reads the
//! request: routing, policy, plugins, the access log and the upstream all see the same target
//! and the same framing. A request that has no single reading is refused with 400.
//!
//! Pingora keeps a request target that is not origin-form (`admin/secret.txt`, `oauth2/session`)
//! verbatim for the upstream while `uri.path()` reads `/`: routing would decide on one path and
//! the upstream serve another. So the target is rebuilt here from the canonical path
//! (`path::canonicalize`) and written back, and only the rebuilt one travels on.

use crate::header_names::same_variable;
use crate::path::{self, PathError, Separators};
use pingora::http::authority::{is_http_family_scheme, raw_target_authority, RawTargetAuthority};
use pingora::http::RequestHeader;
use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    Path(PathError),
    #[error("only origin-form and http(s) absolute-form request targets are served")]
    TargetForm,
    #[error("the query holds a control character")]
    QueryControl,
    #[error("the request has more than one Authorization header")]
    DuplicateAuthorization,
    #[error("the request's Content-Length is not one decimal number")]
    ContentLength,
    #[error("the request's Transfer-Encoding is not `chunked`")]
    TransferEncoding,
}

impl RequestError {
    /// The sentence the client reads in the 400 page.
    pub fn message(self) -> &'static str {
        match self {
            RequestError::Path(PathError::NotAbsolute) | RequestError::TargetForm => {
                "The request target must be a path starting with `/`."
            }
            RequestError::Path(PathError::BadEscape) => {
                "The path holds a malformed percent-escape."
            }
            RequestError::Path(PathError::ControlCharacter) => {
                "The path holds a control character or a space."
            }
            RequestError::Path(PathError::EncodedSeparator) => {
                "The path holds an encoded slash or backslash."
            }
            RequestError::Path(PathError::Backslash) => "The path holds a backslash.",
            RequestError::Path(PathError::PathParameter) => "The path holds a `;`.",
            RequestError::Path(PathError::DoubleEncoding) => "The path is percent-encoded twice.",
            RequestError::Path(PathError::InvalidUtf8) => "The path is not valid UTF-8.",
            RequestError::Path(PathError::AmbiguousSegment) => {
                "A path segment ends with a dot or a space."
            }
            RequestError::Path(PathError::ForbiddenCharacter) => {
                "The path holds a character that is not allowed."
            }
            RequestError::QueryControl => "The query holds a control character.",
            RequestError::DuplicateAuthorization => {
                "The request has more than one Authorization header."
            }
            RequestError::ContentLength => "The Content-Length header is not valid.",
            RequestError::TransferEncoding => "The Transfer-Encoding is not supported.",
        }
    }
}

/// What the canonical request carries beyond the rewritten header.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Canonical {
    /// For a path with encoded separators (`%2F`, `%5C`): the path with them read as `/`, which
    /// routing and policy decide on. Only routes that opt in serve such paths.
    pub separators_decoded: Option<String>,
}

/// Makes `req` the canonical request: target rebuilt in origin form, framing and credentials
/// unambiguous, spellings of framing headers removed.
pub fn canonicalize(req: &mut RequestHeader) -> Result<Canonical, RequestError> {
    check_framing(req)?;
    strip_framing_lookalikes(req);
    canonicalize_target(req)
}

fn canonicalize_target(req: &mut RequestHeader) -> Result<Canonical, RequestError> {
    let raw = req.raw_path();
    // Policy reads the URI and the next hop the raw target: where they differ at all (a header
    // built rather than parsed), the target is written back so that both read one thing.
    // (An empty path prints as `/` but reads as "".)
    let uri_is_raw = !req.uri.path().is_empty()
        && req.uri.path_and_query().map(|p| p.as_str().as_bytes()) == Some(raw);
    let (path_and_query, authority) = if raw.first() == Some(&b'/') {
        (raw, None)
    } else {
        match raw_target_authority(raw) {
            // Absolute-form (RFC 9112 §3.2.2): Pingora has already checked that `Host`, if
            // present, names the same authority.
            RawTargetAuthority::Absolute {
                scheme,
                authority,
                path_and_query,
            } if is_http_family_scheme(scheme) && !authority.is_empty() => {
                (path_and_query, Some(authority))
            }
            _ => return Err(RequestError::TargetForm),
        }
    };
    let (path, query) = match path_and_query.iter().position(|&c| c == b'?') {
        Some(i) => (&path_and_query[..i], Some(&path_and_query[i + 1..])),
        None => (path_and_query, None),
    };
    // `http://host?q` has no path; origin-form needs at least `/` (RFC 9112 §3.2.1).
    let path = if path.is_empty() { &b"/"[..] } else { path };
    let mut canonical = Canonical::default();
    let path = match path::canonicalize(path, Separators::Reject) {
        Ok(p) => p,
        Err(PathError::EncodedSeparator) => {
            let kept = path::canonicalize(path, Separators::Keep).map_err(RequestError::Path)?;
            let decoded = path::separators_decoded(&kept);
            // A dot segment may have taken the encoded separator away with its segment; the
            // path is then an ordinary one, decided as its canonical form would be.
            if decoded != kept {
                canonical.separators_decoded = Some(decoded);
            }
            kept
        }
        Err(e) => return Err(RequestError::Path(e)),
    };
    let query = query.map(canonical_query).transpose()?;
    let unchanged = uri_is_raw
        && authority.is_none()
        && matches!(path, Cow::Borrowed(_))
        && query.as_ref().is_none_or(|q| matches!(q, Cow::Borrowed(_)));
    if unchanged {
        return Ok(canonical);
    }
    let mut target = path.into_owned();
    if let Some(q) = query {
        target.push('?');
        target.push_str(&q);
    }
    let authority = authority.map(<[u8]>::to_vec);
    rewrite_target(req, target, authority)?;
    Ok(canonical)
}

/// Writes the canonical target back: the URI keeps its scheme and authority (h2's
/// `:authority`), and an absolute-form authority moves to `Host`, where it stays the one host
/// of the request.
fn rewrite_target(
    req: &mut RequestHeader,
    target: String,
    authority: Option<Vec<u8>>,
) -> Result<(), RequestError> {
    let path_and_query = http::uri::PathAndQuery::try_from(target)
        .map_err(|_| RequestError::Path(PathError::ForbiddenCharacter))?;
    let mut parts = http::uri::Parts::default();
    parts.scheme = req.uri.scheme().cloned();
    parts.authority = req.uri.authority().cloned();
    parts.path_and_query = Some(path_and_query);
    let uri = http::Uri::from_parts(parts).map_err(|_| RequestError::TargetForm)?;
    if let Some(authority) = authority {
        if !req.headers.contains_key(http::header::HOST) {
            let host =
                http::HeaderValue::from_bytes(&authority).map_err(|_| RequestError::TargetForm)?;
            req.insert_header(http::header::HOST, host)
                .map_err(|_| RequestError::TargetForm)?;
        }
    }
    req.set_uri(uri);
    Ok(())
}

/// The query goes upstream as sent, except that bytes no URL may hold raw are escaped so that
/// every parser splits it alike. Control characters have no reading at all.
fn canonical_query(query: &[u8]) -> Result<Cow<'_, str>, RequestError> {
    if query.iter().any(|&c| c < 0x20 || c == 0x7f) {
        return Err(RequestError::QueryControl);
    }
    let plain = |c: u8| c.is_ascii_graphic() && !b"\"#<>\\^`{|}".contains(&c);
    if query.iter().all(|&c| plain(c)) {
        // Plain printable ASCII is UTF-8.
        return Ok(Cow::Borrowed(
            std::str::from_utf8(query).unwrap_or_default(),
        ));
    }
    let mut out = String::with_capacity(query.len() + 16);
    for &c in query {
        if plain(c) {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    Ok(Cow::Owned(out))
}

/// One reading of the body's length and of the credentials (RFC 9112 §6.3; RFC 9110 §5.3: a
/// field that is not a list must not repeat). A second `Authorization` would let the upstream
/// read a credential the proxy never checked beside the identity it injects.
fn check_framing(req: &RequestHeader) -> Result<(), RequestError> {
    if req
        .headers
        .get_all(http::header::AUTHORIZATION)
        .iter()
        .count()
        > 1
    {
        return Err(RequestError::DuplicateAuthorization);
    }
    let mut lengths = req.headers.get_all(http::header::CONTENT_LENGTH).iter();
    if let Some(length) = lengths.next() {
        let digits = length.as_bytes();
        let valid = !digits.is_empty()
            && digits.len() <= 19
            && digits.iter().all(u8::is_ascii_digit)
            && lengths.next().is_none();
        if !valid {
            return Err(RequestError::ContentLength);
        }
    }
    let mut codings = req.headers.get_all(http::header::TRANSFER_ENCODING).iter();
    if let Some(coding) = codings.next() {
        let chunked = coding
            .as_bytes()
            .trim_ascii()
            .eq_ignore_ascii_case(b"chunked");
        if !chunked || codings.next().is_some() {
            return Err(RequestError::TransferEncoding);
        }
    }
    Ok(())
}

/// Fields that govern framing or routing on the hop, so that no upstream may read another
/// spelling of them (`Content_Length`, `Transfer.Encoding`) as the real one.
const FRAMING: [&str; 9] = [
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
];

/// Removes other spellings of the framing fields: CGI-style servers (PHP, WSGI, Rack) read
/// `Content_Length` as `CONTENT_LENGTH`, and a framing field only the upstream reads is how
/// requests are smuggled.
fn strip_framing_lookalikes(req: &mut RequestHeader) {
    let lookalikes: Vec<_> = req
        .headers
        .keys()
        .filter(|k| {
            let k = k.as_str();
            FRAMING.iter().any(|f| same_variable(k, f) && k != *f)
        })
        .cloned()
        .collect();
    for name in lookalikes {
        req.remove_header(&name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(target: &[u8], headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("GET", target, None).expect("request builds");
        for (k, v) in headers {
            req.append_header(k.to_string(), *v).expect("header");
        }
        req
    }

    fn target_of(target: &[u8]) -> Result<String, RequestError> {
        let mut req = request(target, &[("host", "a.test")]);
        canonicalize(&mut req)?;
        Ok(String::from_utf8_lossy(req.raw_path()).into_owned())
    }

    #[test]
    fn policy_and_the_next_hop_read_one_target_even_when_the_uri_differs_from_it() {
        // Pingora builds an empty target as URI "" with raw target "/" (found by fuzzing).
        let mut req = request(b"", &[("host", "a.test")]);
        canonicalize(&mut req).expect("canonical");
        assert_eq!((req.uri.path(), req.raw_path()), ("/", &b"/"[..]));
    }

    #[test]
    fn an_encoded_slash_that_a_dot_segment_removed_is_no_encoded_slash() {
        // Found by fuzzing: refused as sent, accepted as its own canonical form.
        let mut req = request(b"/a/x%2Fy/../b", &[("host", "a.test")]);
        let canonical = canonicalize(&mut req).expect("canonical");
        assert_eq!(req.raw_path(), b"/a/b");
        assert_eq!(canonical.separators_decoded, None);
    }

    #[test]
    fn the_upstream_target_is_the_canonical_one() {
        for (input, want) in [
            (&b"/console/"[..], "/console/"),
            (b"/a/../b?x=1&y=/../z", "/b?x=1&y=/../z"),
            (b"//.git/config", "/.git/config"),
            (b"/x/../.git/config", "/.git/config"),
            (b"/%2egit/config", "/.git/config"),
            (b"http://a.test/x/../y?q", "/y?q"),
            (b"http://a.test", "/"),
            (b"http://a.test?q=1", "/?q=1"),
            (b"/q?caf\xc3\xa9", "/q?caf%C3%A9"),
        ] {
            assert_eq!(
                target_of(input).as_deref(),
                Ok(want),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn targets_without_a_leading_slash_are_refused() {
        for input in [
            &b"admin/secret.txt"[..],
            b"public/../admin/x",
            b"%2e%2e/admin/x",
            b"oauth2/session",
            b".git/config",
            b"*",
            b"a.test:443",
            b"ftp://a.test/x",
            b"file:///etc/passwd",
            b"?x=1",
        ] {
            assert!(
                target_of(input).is_err(),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn absolute_form_authority_becomes_the_host() {
        let mut req = request(b"http://b.test/p", &[]);
        canonicalize(&mut req).expect("valid");
        assert_eq!(req.headers["host"], "b.test");
        assert_eq!(req.uri.path(), "/p");
    }

    #[test]
    fn encoded_separators_are_decided_on_their_decoded_form() {
        let mut req = request(b"/api/a%2fb", &[]);
        let canonical = canonicalize(&mut req).expect("kept for opt-in routes");
        assert_eq!(req.uri.path(), "/api/a%2Fb");
        assert_eq!(canonical.separators_decoded.as_deref(), Some("/api/a/b"));
        let mut req = request(b"/public/..%2Fadmin/x", &[]);
        assert_eq!(
            canonicalize(&mut req),
            Err(RequestError::Path(PathError::EncodedSeparator))
        );
    }

    #[test]
    fn ambiguous_framing_and_credentials_are_refused() {
        for headers in [
            &[("authorization", "Bearer a"), ("authorization", "Bearer b")][..],
            &[("content-length", "5, 5")],
            &[("content-length", "5"), ("content-length", "5")],
            &[("content-length", "+5")],
            &[("content-length", " 5")],
            &[("content-length", "")],
            &[("transfer-encoding", "gzip, chunked")],
            &[("transfer-encoding", "chunked, identity")],
            &[("transfer-encoding", "xchunked")],
            &[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ],
        ] {
            let mut req = request(b"/", headers);
            assert!(canonicalize(&mut req).is_err(), "{headers:?}");
        }
        let mut req = request(
            b"/",
            &[("content-length", "5"), ("transfer-encoding", "Chunked")],
        );
        assert!(canonicalize(&mut req).is_ok());
    }

    #[test]
    fn spellings_of_framing_fields_are_removed() {
        let mut req = request(
            b"/",
            &[
                ("content_length", "5"),
                ("Transfer_Encoding", "chunked"),
                ("transfer.encoding", "chunked"),
                ("x-keep", "1"),
                ("content-length", "0"),
            ],
        );
        canonicalize(&mut req).expect("valid");
        let mut names: Vec<_> = req.headers.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-length", "x-keep"]);
    }
}
