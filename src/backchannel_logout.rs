//! `POST /oauth2/logout/backchannel` (OpenID Connect Back-Channel Logout 1.0 §2.5–2.8): the
//! provider ends sessions server to server. It carries no cookie, so there is nothing for a
//! forged cross-site request to ride on; what proves it is the signed logout token, and a
//! token is honoured once (its `jti`), on whichever replica receives it first.

use crate::metrics::metrics;
use crate::oidc::tokens::{verify_logout_token, TokenError};
use crate::oidc::Oidc;
use crate::pages::Reply;
use crate::session::Tagged;
use pingora::http::RequestHeader;
use serde_json::json;
use std::time::Duration;

/// A logout token is a kilobyte or two; a form ten times that is not one.
pub const MAX_BODY: usize = 16 * 1024;

/// How long a `jti` is remembered: as long as a token carrying it can be accepted.
const REMEMBER_JTI: Duration =
    Duration::from_secs(crate::oidc::tokens::LOGOUT_TOKEN_MAX_AGE_SECS + 2 * 60 + 60);

/// Why the body could not be read.
#[derive(Debug)]
pub enum BodyError {
    TooLarge,
    Unreadable,
}

/// §2.8: 200 when the sessions are ended, 400 with a JSON error for a request or token we
/// refuse, 503 only when we could not judge a token (provider or store unreachable) so the
/// provider may retry.
pub async fn answer(
    oidc: &Oidc,
    req: &RequestHeader,
    body: Result<bytes::Bytes, BodyError>,
) -> Reply {
    match end_sessions(oidc, req, body).await {
        Ok(()) => Reply::empty(200).header("cache-control", "no-store"),
        Err(Refusal::Invalid(why)) => {
            tracing::info!(reason = %why, "back-channel logout refused");
            metrics()
                .logouts
                .with_label_values(&["backchannel_refused"])
                .inc();
            error(400, "invalid_request", &why)
        }
        Err(Refusal::Unavailable(why)) => {
            tracing::warn!(reason = %why, "back-channel logout could not be judged");
            error(503, "temporarily_unavailable", "try again later")
        }
    }
}

enum Refusal {
    Invalid(String),
    Unavailable(String),
}

fn error(status: u16, code: &str, description: &str) -> Reply {
    Reply::json(
        status,
        &json!({ "error": code, "error_description": description }),
    )
    .header("cache-control", "no-store")
}

async fn end_sessions(
    oidc: &Oidc,
    req: &RequestHeader,
    body: Result<bytes::Bytes, BodyError>,
) -> Result<(), Refusal> {
    let invalid = |why: &str| Refusal::Invalid(why.to_string());
    if req.method != http::Method::POST {
        return Err(invalid("back-channel logout takes a POST"));
    }
    if !is_form(req) {
        return Err(invalid(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let body = body.map_err(|e| match e {
        BodyError::TooLarge => invalid("the body is too large for a logout token"),
        BodyError::Unreadable => invalid("the body could not be read"),
    })?;
    let token = logout_token_of(&body)?;
    let token = verify_logout_token(&oidc.provider, &token)
        .await
        .map_err(|e| match e {
            TokenError::Provider(p) => Refusal::Unavailable(p.to_string()),
            other => Refusal::Invalid(other.to_string()),
        })?;
    let first = oidc
        .sessions
        .use_once(
            &format!("logout-jti:{}:{}", token.issuer, token.jti),
            REMEMBER_JTI,
        )
        .await
        .map_err(|e| Refusal::Unavailable(e.to_string()))?;
    if !first {
        return Err(invalid("this logout token was already used"));
    }
    // §2.7: `sid` names one provider session; without it, every session of the subject ends.
    let (what, by) = match (&token.sid, &token.sub) {
        (Some(sid), _) => (Tagged::Sid(sid), "sid"),
        (None, Some(sub)) => (Tagged::Sub(sub), "sub"),
        (None, None) => return Err(invalid("nothing to end")),
    };
    let ended = oidc
        .sessions
        .delete_all(what)
        .await
        .map_err(|e| Refusal::Unavailable(e.to_string()))?;
    tracing::info!(sessions = ended, by, "back-channel logout");
    metrics()
        .logouts
        .with_label_values(&["backchannel"])
        .inc_by(ended as u64);
    Ok(())
}

fn is_form(req: &RequestHeader) -> bool {
    let mut types = req.headers.get_all(http::header::CONTENT_TYPE).iter();
    let (Some(only), None) = (types.next(), types.next()) else {
        return false;
    };
    only.to_str()
        .ok()
        .and_then(|t| t.split(';').next())
        .is_some_and(|media| {
            media
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Exactly one `logout_token`: a second one would leave which was judged to chance.
fn logout_token_of(body: &[u8]) -> Result<String, Refusal> {
    let mut tokens = url::form_urlencoded::parse(body)
        .filter(|(name, _)| name == "logout_token")
        .map(|(_, value)| value.into_owned());
    match (tokens.next(), tokens.next()) {
        (Some(token), None) if !token.is_empty() => Ok(token),
        (None, _) => Err(Refusal::Invalid("no `logout_token` in the body".into())),
        _ => Err(Refusal::Invalid(
            "exactly one non-empty `logout_token` is expected".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(body: &[u8]) -> String {
        match logout_token_of(body) {
            Err(Refusal::Invalid(why)) => why,
            Err(Refusal::Unavailable(why)) => panic!("unavailable: {why}"),
            Ok(t) => panic!("accepted {t:?}"),
        }
    }

    #[test]
    fn the_body_holds_exactly_one_logout_token() {
        assert!(matches!(logout_token_of(b"logout_token=a.b.c"), Ok(t) if t == "a.b.c"));
        assert!(matches!(logout_token_of(b"x=1&logout_token=a%2Eb.c&y"), Ok(t) if t == "a.b.c"));
        assert!(refused(b"").contains("no `logout_token`"));
        assert!(refused(b"logout_token=").contains("exactly one"));
        assert!(refused(b"logout_token=a&logout_token=b").contains("exactly one"));
        assert!(refused(b"logout_token=a&logout_token=a").contains("exactly one"));
        assert!(refused(b"logout%5Ftoken2=a").contains("no `logout_token`"));
        assert!(refused(&[0xff, 0xfe, b'=', 0x80]).contains("no `logout_token`"));
    }

    #[test]
    fn only_a_single_form_content_type_is_taken() {
        let with = |types: &[&str]| {
            let mut req =
                RequestHeader::build("POST", b"/oauth2/logout/backchannel", None).unwrap();
            for t in types {
                req.append_header("content-type", *t).unwrap();
            }
            is_form(&req)
        };
        assert!(with(&["application/x-www-form-urlencoded"]));
        assert!(with(&["Application/X-WWW-Form-Urlencoded; charset=UTF-8"]));
        assert!(!with(&[]));
        assert!(!with(&["application/json"]));
        assert!(!with(&["text/plain"]));
        assert!(!with(&[
            "application/x-www-form-urlencoded",
            "application/json"
        ]));
    }
}
