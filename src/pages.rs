//! Every answer the proxy writes itself: error pages (HTML for browsers, JSON for API clients,
//! chosen by `Accept`) and redirects. The one place where failures become HTTP.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;

mod login_hop;
pub use login_hop::{is_page_load, login_hop};

/// Why the proxy answered instead of the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    BadRequest(&'static str),
    NoRoute,
    NoSuchDesktop,
    NoHealthyBackend,
    UpstreamUnreachable,
    UpstreamTimeout,
    Internal,
    /// No session (or an invalid bearer token) on a protected route.
    Unauthorized,
    /// Logged in, but not allowed here.
    Forbidden,
    /// A cookie-authenticated state change (or WebSocket) started by a page of another origin.
    CrossOrigin,
    /// The login could not be completed (bad callback, refused code, invalid token).
    LoginFailed(&'static str),
    /// The identity provider or the session store cannot be reached.
    AuthUnavailable,
    MethodNotAllowed,
    /// Request line and headers over the configured size or count.
    HeadersTooLarge,
    /// Body over the route's `max_body`.
    PayloadTooLarge,
    /// A forward-auth request from an address not in `forward_auth.trusted_proxies`.
    UntrustedProxy,
}

impl Failure {
    pub fn status(self) -> u16 {
        match self {
            Failure::BadRequest(_) => 400,
            Failure::NoRoute | Failure::NoSuchDesktop => 404,
            Failure::UpstreamUnreachable => 502,
            Failure::NoHealthyBackend => 503,
            Failure::UpstreamTimeout => 504,
            Failure::Internal => 500,
            Failure::Unauthorized => 401,
            Failure::Forbidden | Failure::CrossOrigin | Failure::UntrustedProxy => 403,
            Failure::LoginFailed(_) => 400,
            Failure::AuthUnavailable => 503,
            Failure::MethodNotAllowed => 405,
            Failure::HeadersTooLarge => 431,
            Failure::PayloadTooLarge => 413,
        }
    }

    /// Stable, machine-readable; API clients may match on it.
    pub fn code(self) -> &'static str {
        match self {
            Failure::BadRequest(_) => "bad_request",
            Failure::NoRoute => "not_found",
            Failure::NoSuchDesktop => "no_such_desktop",
            Failure::NoHealthyBackend => "no_healthy_backend",
            Failure::UpstreamUnreachable => "bad_gateway",
            Failure::UpstreamTimeout => "gateway_timeout",
            Failure::Internal => "internal_error",
            Failure::Unauthorized => "unauthorized",
            Failure::Forbidden => "forbidden",
            Failure::CrossOrigin => "cross_origin",
            Failure::LoginFailed(_) => "login_failed",
            Failure::AuthUnavailable => "auth_unavailable",
            Failure::MethodNotAllowed => "method_not_allowed",
            Failure::HeadersTooLarge => "request_header_fields_too_large",
            Failure::PayloadTooLarge => "payload_too_large",
            Failure::UntrustedProxy => "untrusted_proxy",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Failure::BadRequest(why) => why,
            Failure::NoRoute => "Nothing is served at this address.",
            Failure::NoSuchDesktop => "This desktop does not exist or has been removed.",
            Failure::NoHealthyBackend => {
                "The service is temporarily unavailable. Please try again shortly."
            }
            Failure::UpstreamUnreachable => "The service could not be reached.",
            Failure::UpstreamTimeout => "The service took too long to answer.",
            Failure::Internal => "Something went wrong on our side.",
            Failure::Unauthorized => "You need to log in to see this.",
            Failure::Forbidden => "You are logged in, but you are not allowed to see this.",
            Failure::CrossOrigin => {
                "This request was started by a page of another site, so it was refused."
            }
            Failure::LoginFailed(why) => why,
            Failure::AuthUnavailable => {
                "Login is temporarily unavailable. Please try again shortly."
            }
            Failure::MethodNotAllowed => "This address does not accept that method.",
            Failure::HeadersTooLarge => "The request headers are too large.",
            Failure::PayloadTooLarge => "The request body is too large.",
            Failure::UntrustedProxy => {
                "Forward authentication answers only the proxies in forward_auth.trusted_proxies."
            }
        }
    }

    fn title(self) -> &'static str {
        match self.status() {
            400 => "Bad request",
            401 => "Login required",
            403 => "Forbidden",
            404 => "Not found",
            405 => "Method not allowed",
            413 => "Payload too large",
            431 => "Request headers too large",
            502 => "Bad gateway",
            503 => "Service unavailable",
            504 => "Gateway timeout",
            _ => "Internal error",
        }
    }
}

/// Browsers ask for HTML; everything else (fetch, curl, API clients) gets JSON.
pub fn wants_html(accept: Option<&[u8]>) -> bool {
    accept.is_some_and(|a| a.windows(9).any(|w| w.eq_ignore_ascii_case(b"text/html")))
}

/// The look of every page the proxy writes.
const STYLE: &str = concat!(
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;color:#222}",
    "code{color:#666}",
);

pub fn render(failure: Failure, request_id: &str, html: bool) -> (Bytes, &'static str) {
    if html {
        // Every interpolated value is static or a request id restricted to [A-Za-z0-9-_.:].
        let body = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{status} {title}</title>\
             <style>{STYLE}</style></head>\n<body><h1>{title}</h1><p>{message}</p>\
             <p><code>request id: {id}</code></p></body></html>\n",
            status = failure.status(),
            title = failure.title(),
            message = failure.message(),
            id = request_id,
        );
        (Bytes::from(body), "text/html; charset=utf-8")
    } else {
        let body = serde_json::json!({
            "error": failure.code(),
            "message": failure.message(),
            "status": failure.status(),
            "request_id": request_id,
        });
        (Bytes::from(format!("{body}\n")), "application/json")
    }
}

/// The page a logout link from elsewhere lands on (clients written for Wonderwall link to
/// `/oauth2/logout`): one button that POSTs the logout, so that another site's `<img>`,
/// iframe or link cannot end the user's session. `action`: the form's same-origin target,
/// built by the caller from validated parts (escaped all the same). `redirect_origins`:
/// origins the logout answer redirects to (the provider's end-session endpoint); browsers
/// check `form-action` on every redirect that follows the submission.
pub fn logout_confirmation(action: &str, redirect_origins: &[String]) -> Reply {
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"robots\" content=\"noindex\"><title>Log out</title>\
         <style>{STYLE}</style></head>\n<body><h1>Log out?</h1>\
         <p>Do you want to end your session?</p>\
         <form method=\"post\" action=\"{action}\"><button type=\"submit\">Log out</button></form>\
         <p><a href=\"/\">Stay logged in</a></p></body></html>\n",
        action = escape_html(action),
    );
    Reply::new(200, Bytes::from(body))
        .header("content-type", "text/html; charset=utf-8")
        .header(
            "content-security-policy",
            confirmation_policy(redirect_origins),
        )
        // For browsers without CSP `frame-ancestors`: a framed button invites clickjacking.
        .header("x-frame-options", "DENY")
}

/// Nothing runs, loads or frames; the page's own style (by hash) and its one form, whose
/// submission may go only to us and on to where logout redirects.
fn confirmation_policy(redirect_origins: &[String]) -> String {
    let mut form_action = String::from("'self'");
    // Serialized origins only: anything else could break out of the directive.
    let is_origin = |o: &&String| {
        o.contains("://")
            && o.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b":/.-[]".contains(&b))
    };
    for origin in redirect_origins.iter().filter(is_origin) {
        form_action.push(' ');
        form_action.push_str(origin);
    }
    format!(
        "default-src 'none'; style-src '{style}'; form-action {form_action}; \
         frame-ancestors 'none'; base-uri 'none'",
        style = style_hash(),
    )
}

/// CSP source of `STYLE` (`sha256-…`), so the pages need no `'unsafe-inline'`.
fn style_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        use base64::Engine;
        use sha2::Digest;
        let digest = sha2::Sha256::digest(STYLE.as_bytes());
        format!(
            "sha256-{}",
            base64::engine::general_purpose::STANDARD.encode(digest)
        )
    })
}

fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An answer the proxy writes itself.
pub struct Reply {
    pub status: u16,
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    body: Bytes,
}

impl Reply {
    pub fn failure(failure: Failure, request_id: &str, html: bool) -> Reply {
        let (body, content_type) = render(failure, request_id, html);
        let mut reply = Reply::new(failure.status(), body).header("content-type", content_type);
        if failure == Failure::Unauthorized {
            // RFC 6750 §3: tell API clients how to authenticate.
            reply = reply.header("www-authenticate", "Bearer realm=\"portcullis\"");
        }
        reply
    }

    /// A redirect to a location the caller built or validated (never a raw client value).
    pub fn redirect(status: u16, location: &str) -> Reply {
        Reply::new(status, Bytes::new()).header("location", location)
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply::new(status, Bytes::from(format!("{value}\n")))
            .header("content-type", "application/json")
    }

    pub fn empty(status: u16) -> Reply {
        Reply::new(status, Bytes::new())
    }

    fn new(status: u16, body: Bytes) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        // Our own values are built from validated parts; one that is not a valid field value
        // is dropped rather than sent.
        if let Ok(value) = http::HeaderValue::try_from(value.into()) {
            self.headers
                .push((http::HeaderName::from_static(name), value));
        }
        self
    }

    #[cfg(test)]
    pub fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    #[cfg(test)]
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .and_then(|(_, v)| v.to_str().ok())
    }

    /// A header whose name the config chose (identity headers).
    pub fn header_named(mut self, name: &str, value: &str) -> Reply {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::try_from(name),
            http::HeaderValue::try_from(value),
        ) {
            self.headers.push((name, value));
        }
        self
    }

    /// A plugin's answer (its headers were checked when the script returned them).
    pub fn from_plugin(answer: crate::plugin_answer::Answer) -> Reply {
        let mut reply = Reply::new(answer.status, Bytes::from(answer.body));
        reply.headers = answer.headers;
        reply
    }

    /// Writes the answer. Keep-alive is kept: these are ordinary answers, not broken streams.
    pub async fn send(self, session: &mut Session, to: &Envelope<'_>) -> pingora::Result<()> {
        let mut header = ResponseHeader::build(self.status, Some(self.headers.len() + 6))?;
        for (name, value) in self.headers {
            header.append_header(name, value)?;
        }
        header.insert_header(http::header::CONTENT_LENGTH, self.body.len())?;
        if header.headers.get(http::header::CACHE_CONTROL).is_none() {
            header.insert_header(http::header::CACHE_CONTROL, "no-store")?;
        }
        header.insert_header(crate::request_id::HEADER, to.request_id)?;
        add_security_headers(&mut header, to.hsts)?;
        let head_only = session.req_header().method == http::Method::HEAD || self.body.is_empty();
        session
            .write_response_header(Box::new(header), head_only)
            .await?;
        if !head_only {
            session.write_response_body(Some(self.body), true).await?;
        }
        Ok(())
    }
}

/// What every answer to this request carries, whoever writes it.
pub struct Envelope<'a> {
    pub request_id: &'a str,
    /// The `Strict-Transport-Security` value when the request came over TLS.
    pub hsts: Option<&'a str>,
}

/// Headers that make browsers safer with any content: no MIME sniffing (stored XSS through
/// uploads), no full URLs leaking in `Referer`, and HSTS on TLS. An upstream's own choice of
/// the first two is kept.
pub fn add_security_headers(
    header: &mut ResponseHeader,
    hsts: Option<&str>,
) -> pingora::Result<()> {
    if header.headers.get("x-content-type-options").is_none() {
        header.insert_header("x-content-type-options", "nosniff")?;
    }
    if header.headers.get("referrer-policy").is_none() {
        header.insert_header("referrer-policy", "strict-origin-when-cross-origin")?;
    }
    if let Some(value) = hsts {
        header.insert_header("strict-transport-security", value)?;
    }
    Ok(())
}

/// Writes the failure page, HTML or JSON by the request's `Accept`.
pub async fn respond(
    session: &mut Session,
    failure: Failure,
    to: &Envelope<'_>,
) -> pingora::Result<()> {
    let html = wants_html(
        session
            .req_header()
            .headers
            .get(http::header::ACCEPT)
            .map(|v| v.as_bytes()),
    );
    Reply::failure(failure, to.request_id, html)
        .send(session, to)
        .await
}

pub async fn redirect(
    session: &mut Session,
    status: u16,
    location: &str,
    to: &Envelope<'_>,
) -> pingora::Result<()> {
    Reply::redirect(status, location).send(session, to).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_by_accept() {
        assert!(wants_html(Some(b"text/html,application/xhtml+xml;q=0.9")));
        assert!(wants_html(Some(b"TEXT/HTML")));
        assert!(!wants_html(Some(b"application/json")));
        assert!(!wants_html(Some(b"*/*")));
        assert!(!wants_html(None));
    }

    #[test]
    fn json_body_names_status_and_request_id() {
        let (body, ct) = render(Failure::NoHealthyBackend, "abc", false);
        assert_eq!(ct, "application/json");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["status"], 503);
        assert_eq!(v["error"], "no_healthy_backend");
        assert_eq!(v["request_id"], "abc");
    }

    #[test]
    fn logout_confirmation_escapes_its_action_and_allows_only_its_form() {
        let reply = logout_confirmation(
            "/oauth2/logout?redirect=/a\"><script>x</script>&b='",
            &[
                "https://idp.example:8443".to_string(),
                "https://x; script-src *".to_string(),
            ],
        );
        let body = std::str::from_utf8(&reply.body).unwrap();
        assert!(body.contains(
            "action=\"/oauth2/logout?redirect=/a&quot;&gt;&lt;script&gt;x&lt;/script&gt;&amp;b=&#39;\""
        ));
        assert!(!body.contains("<script>"));
        let header = |name: &str| {
            reply
                .headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.to_str().unwrap().to_string())
                .unwrap()
        };
        let csp = header("content-security-policy");
        assert!(
            csp.starts_with("default-src 'none'; style-src 'sha256-"),
            "{csp}"
        );
        assert!(
            csp.contains("; form-action 'self' https://idp.example:8443; frame-ancestors 'none'"),
            "{csp}"
        );
        assert!(!csp.contains("script-src"), "{csp}");
        assert_eq!(header("x-frame-options"), "DENY");
        assert_eq!(reply.status, 200);
    }

    #[test]
    fn the_hashed_style_is_the_style_the_page_carries() {
        // Browsers drop a style whose bytes differ from the hash by as much as a space.
        let reply = logout_confirmation("/oauth2/logout", &[]);
        let body = std::str::from_utf8(&reply.body).unwrap();
        assert!(body.contains(&format!("<style>{STYLE}</style>")));
        assert_eq!(style_hash().len(), "sha256-".len() + 44);
    }

    #[test]
    fn html_body_names_request_id() {
        let (body, ct) = render(Failure::NoRoute, "abc", true);
        assert!(ct.starts_with("text/html"));
        let s = std::str::from_utf8(&body).unwrap();
        assert!(s.contains("404 Not found") && s.contains("request id: abc"));
    }
}
