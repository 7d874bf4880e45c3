//! How an SSO proxy comes to trust the shared session cookie: a hand-off from the server.
//!
//! A `Domain=example.com` cookie can be set by any host under the domain, and by any page
//! script served there, so a proxy that believed it alone would take whatever session a
//! sibling tossed in (fixation) or could be made to switch between two (swap). Instead the
//! server, which trusts only its own `__Host-` cookie, sends the browser to the proxy with a
//! sealed ticket naming the proxy's host and the session; the proxy redeems it once and sets a
//! `__Host-` binding cookie for itself holding an HMAC of (host, session). From then on it
//! honours a shared cookie only if the binding names it — of several shared cookies, the one
//! bound; a tossed one never is. `__Host-` cookies are host-only, `Path=/` and `Secure`, so
//! no other host can set or overwrite the binding.

use crate::session::crypto::KeyRing;
use serde::{Deserialize, Serialize};

/// How long a ticket is good for: one redirect.
pub const TICKET_TTL_SECS: u64 = 60;

/// Binds the sealed ticket to its purpose, so no other sealed value can stand in.
const TICKET_AAD: &[u8] = b"portcullis sso hand-off";

/// What a ticket says: the session (the id half of the shared cookie), the one host it is
/// for, where to send the browser after, and a nonce that makes it single-use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub session_id: String,
    pub host: String,
    pub target: String,
    pub expires: u64,
    pub nonce: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HandoffError {
    #[error("the ticket is not one of ours")]
    Forged,
    #[error("the ticket has expired")]
    Expired,
    #[error("the ticket is for another host")]
    OtherHost,
}

/// Seals a ticket for `host` (lower case, with port if any) to bind `session_id`.
pub fn issue(keys: &KeyRing, session_id: &str, host: &str, target: &str, now: u64) -> String {
    let mut nonce = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
    let ticket = Ticket {
        session_id: session_id.to_string(),
        host: host.to_ascii_lowercase(),
        target: target.to_string(),
        expires: now + TICKET_TTL_SECS,
        nonce: nonce.iter().map(|b| format!("{b:02x}")).collect(),
    };
    // Serialising plain strings and numbers cannot fail.
    let json = serde_json::to_vec(&ticket).unwrap_or_default();
    keys.seal_to_string(&json, TICKET_AAD)
}

/// Opens a ticket presented at `host`. The caller makes it single-use (by its nonce).
pub fn open(keys: &KeyRing, sealed: &str, host: &str, now: u64) -> Result<Ticket, HandoffError> {
    let json = keys
        .open_str(sealed, TICKET_AAD)
        .map_err(|_| HandoffError::Forged)?;
    let ticket: Ticket = serde_json::from_slice(&json).map_err(|_| HandoffError::Forged)?;
    if ticket.expires < now {
        return Err(HandoffError::Expired);
    }
    if !ticket.host.eq_ignore_ascii_case(host) {
        return Err(HandoffError::OtherHost);
    }
    Ok(ticket)
}

/// The binding cookie's value for `session_id` at `host`.
pub fn binding(keys: &KeyRing, host: &str, session_id: &str) -> String {
    keys.digest(&binding_input(host, session_id))
}

/// Whether `value` binds `session_id` at `host`, under any key of the ring (a binding set
/// before a key rotation stays good). Compared in constant time.
pub fn is_bound(keys: &KeyRing, host: &str, session_id: &str, value: &str) -> bool {
    use subtle::ConstantTimeEq;
    keys.digests(&binding_input(host, session_id))
        .iter()
        .any(|d| bool::from(d.as_bytes().ct_eq(value.as_bytes())))
}

/// Length-prefixed, so no (host, id) pair reads as another.
fn binding_input(host: &str, session_id: &str) -> String {
    let host = host.to_ascii_lowercase();
    format!("sso-binding {}:{host}{session_id}", host.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    #[test]
    fn a_ticket_opens_once_for_its_host_and_time() {
        let keys = KeyRing::generate();
        let t = issue(
            &keys,
            "sess-1",
            "Console.example.com",
            "https://console.example.com/x",
            NOW,
        );
        let opened = open(&keys, &t, "console.example.com", NOW + 10).unwrap();
        assert_eq!(opened.session_id, "sess-1");
        assert_eq!(opened.target, "https://console.example.com/x");
        assert_eq!(
            open(&keys, &t, "other.example.com", NOW),
            Err(HandoffError::OtherHost)
        );
        assert_eq!(
            open(&keys, &t, "console.example.com", NOW + TICKET_TTL_SECS + 1),
            Err(HandoffError::Expired)
        );
        assert_eq!(
            open(&KeyRing::generate(), &t, "console.example.com", NOW),
            Err(HandoffError::Forged)
        );
        let mut tampered = t.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(
            open(&keys, &tampered, "console.example.com", NOW),
            Err(HandoffError::Forged)
        );
        for junk in ["", "x", "%%%", &"A".repeat(40_000)] {
            assert_eq!(
                open(&keys, junk, "console.example.com", NOW),
                Err(HandoffError::Forged)
            );
        }
        // Another sealed value of ours (a session, a login state) is not a ticket.
        let other = keys.seal_to_string(
            br#"{"session_id":"s","host":"h","target":"/","expires":9999999999,"nonce":"n"}"#,
            b"portcullis login state",
        );
        assert_eq!(open(&keys, &other, "h", NOW), Err(HandoffError::Forged));
        let n2 = open(
            &keys,
            &issue(&keys, "sess-1", "console.example.com", "/", NOW),
            "console.example.com",
            NOW,
        )
        .unwrap();
        assert_ne!(n2.nonce, opened.nonce);
    }

    #[test]
    fn a_binding_names_one_session_at_one_host_and_survives_rotation() {
        let old = KeyRing::generate();
        let b = binding(&old, "console.example.com", "sess-1");
        assert!(is_bound(&old, "Console.Example.com", "sess-1", &b));
        assert!(!is_bound(&old, "console.example.com", "sess-2", &b));
        assert!(!is_bound(&old, "api.example.com", "sess-1", &b));
        assert!(!is_bound(&old, "console.example.com", "sess-1", ""));
        assert!(!is_bound(
            &old,
            "console.example.com",
            "sess-1",
            &b[..b.len() - 1]
        ));
        // Input framing: (host "a\nb", id "c") and (host "a", id "b\nc") differ.
        assert_ne!(binding(&old, "a\nb", "c"), binding(&old, "a", "b\nc"));
    }
}
