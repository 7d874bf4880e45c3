//! The step before login for a browser's page load: a page instead of a redirect, because a
//! URL's fragment (`/console/reports?id=7#frag`) never reaches a server. Browsers carry it
//! across redirects but it dies at the provider's login form; only a page of our own origin
//! can read it and put it into the `redirect` it comes back to. Without JavaScript the page
//! still moves on (a `<noscript>` refresh and a link), just without the fragment.

use super::{escape_html, Reply, STYLE};
use bytes::Bytes;

/// Static, so that its CSP hash is too: appends the fragment, encoded, to the login link's
/// `redirect` value (the link's last parameter) and replaces this page in the history.
const SCRIPT: &str = "var a=document.getElementById(\"go\");\
location.replace(a.href+(location.hash.length>1?encodeURIComponent(location.hash):\"\"));";

/// `location`: the same-origin `/oauth2/login?redirect=…` the gate built. 401: the request
/// was not authorized; the page only moves the browser on.
pub fn login_hop(location: &str) -> Reply {
    let location = escape_html(location);
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"robots\" content=\"noindex\"><title>Signing in…</title>\
         <noscript><meta http-equiv=\"refresh\" content=\"0;url={location}\"></noscript>\
         <style>{STYLE}</style></head>\n<body><h1>Signing in…</h1>\
         <p><a id=\"go\" href=\"{location}\">Continue to the login page</a></p>\
         <script>{SCRIPT}</script></body></html>\n"
    );
    Reply::new(401, Bytes::from(body))
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .header(
            "content-security-policy",
            format!(
                "default-src 'none'; script-src '{}'; style-src '{}'; frame-ancestors 'none'; \
                 base-uri 'none'; form-action 'none'",
                sha256_source(SCRIPT),
                super::style_hash()
            ),
        )
}

fn sha256_source(text: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    format!(
        "sha256-{}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(text.as_bytes()))
    )
}

/// Whether the request is a browser loading a page (not a fetch, an image, a frame's
/// subresource): Fetch Metadata's `Sec-Fetch-Dest: document`, which only browsers send.
pub fn is_page_load(req: &pingora::http::RequestHeader) -> bool {
    req.headers
        .get("sec-fetch-dest")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"document"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hop_page_escapes_its_location_and_allows_only_its_own_script() {
        let reply = login_hop("/oauth2/login?redirect=/a%22%3E<script>x</script>&b");
        assert_eq!(reply.status, 401);
        let body = String::from_utf8(reply.body_bytes().to_vec()).unwrap();
        assert!(!body.contains("<script>x</script>"), "{body}");
        assert!(
            body.contains("&lt;script&gt;x&lt;/script&gt;&amp;b"),
            "{body}"
        );
        let csp = reply.header_value("content-security-policy").unwrap();
        assert!(
            csp.contains(&sha256_source(SCRIPT)) && !csp.contains("unsafe-inline"),
            "{csp}"
        );
        assert_eq!(body.matches("<script>").count(), 1);
    }
}
