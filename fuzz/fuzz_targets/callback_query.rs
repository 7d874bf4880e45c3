//! `/oauth2/callback?code&state[&iss][&error]`: the request target through the canonical
//! request, the query parsed as `oauth2_endpoints::answer` parses it, then
//! `login::complete` against a login attempt started by `login::start` and a loopback provider
//! whose token endpoint refuses every code.
//!
//! Input: line 1 is the query string, in which `STATE` stands for the `state` of a login the
//! harness has just started (otherwise no state could ever match); line 2, when not empty, is
//! the value of any other login cookie the callback asks for.
//!
//! Invariants: nothing panics; no callback completes (the provider refuses every code, so a
//! success would mean a check was skipped); a missing or repeated `state` is malformed; an
//! `iss` other than the provider's is refused; a provider error is reported as at most 64
//! printable ASCII characters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pingora::http::RequestHeader;
use portcullis::oidc::login::{self, CallbackError};
use portcullis_fuzz::split;

fuzz_target!(|data: &[u8]| {
    let [query, other_cookie] = split::fields(data, 2)[..] else {
        return;
    };
    let provider = portcullis_fuzz::provider();
    let sessions = portcullis_fuzz::sessions();
    let (authorize, set_cookie) =
        login::start(provider, sessions.keys(), false, "/console/").expect("a login starts");
    let authorize = url::Url::parse(&authorize).expect("authorize URL");
    let state = authorize
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("state in the authorize URL");
    let login_cookie = cookie::Cookie::parse(set_cookie).expect("login cookie");

    // The query as the proxy sees it: through the canonical request.
    let query = replace(query, b"STATE", state.as_bytes());
    let mut target = b"/oauth2/callback?".to_vec();
    target.extend_from_slice(&query);
    let Ok(mut req) = RequestHeader::build("GET", &target, None) else {
        return;
    };
    if portcullis::canonical::canonicalize(&mut req).is_err() {
        return;
    }
    let pairs = portcullis::request::query_pairs(&req);

    let other_cookie = split::text(other_cookie).into_owned();
    let result = portcullis_fuzz::block_on(login::complete(provider, sessions, &pairs, |name| {
        if name == login_cookie.name() {
            Some(login_cookie.value().to_string())
        } else {
            (!other_cookie.is_empty()).then(|| other_cookie.clone())
        }
    }));
    let count = |name: &str| pairs.iter().filter(|(k, _)| k == name).count();
    match result {
        Ok(_) => panic!("a callback completed although the provider refuses every code: {pairs:?}"),
        Err(CallbackError::ProviderError(message)) => {
            assert!(message.len() <= 64, "{message:?}");
            assert!(message.bytes().all(|b| b.is_ascii_graphic()), "{message:?}");
        }
        Err(CallbackError::Malformed) => {}
        Err(e) => {
            assert_eq!(
                count("state"),
                1,
                "{pairs:?}: state missing or repeated, yet {e:?}"
            );
            if let Some((_, iss)) = pairs.iter().find(|(k, _)| k == "iss") {
                if iss.trim_end_matches('/') != provider.settings.issuer {
                    assert!(
                        matches!(
                            e,
                            CallbackError::WrongIssuer | CallbackError::UnknownAttempt
                        ),
                        "{pairs:?}: foreign iss, yet {e:?}"
                    );
                }
            }
        }
    }
});

fn replace(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}
