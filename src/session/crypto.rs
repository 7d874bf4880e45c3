//! Authenticated encryption of session data and login-state cookies.
//!
//! Anything the proxy hands to a browser or writes to a session store is
//! sealed with XChaCha20-Poly1305, so a client can neither read it (tokens,
//! PKCE verifiers) nor alter or forge it (whose session it is, where to go
//! after login). A key ring supports rotation: the first key seals, every key
//! opens.
//!
//! It must not: print, log or put key material in an error; build its own
//! primitives; hand back anything from a value that failed authentication; or
//! interpret the plaintext (serialisation and expiry belong to the caller).

use std::fmt;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

/// Format version, the first byte of every sealed value, so the format can
/// change later without old values being misread.
const VERSION: u8 = 1;
const KEY_LEN: usize = 32;
const KEY_ID_LEN: usize = 4;
/// Version and key id. Authenticated along with the caller's AAD, so neither
/// can be altered without detection.
const HEADER_LEN: usize = 1 + KEY_ID_LEN;
/// XChaCha20's 192-bit nonce is long enough to pick at random for every
/// message with no realistic chance of reuse (reuse would leak the XOR of two
/// plaintexts and the Poly1305 key).
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const MIN_SEALED_LEN: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;
/// Longest string [`KeyRing::open_str`] will decode. Cookies are capped near
/// 4 KiB and store entries are small; refusing early keeps a hostile client
/// from making us decode and authenticate megabytes.
const MAX_ENCODED_LEN: usize = 16 * 1024;

const KEY_FORMAT: &str = "expected 32 random bytes written as base64 (standard or URL-safe \
                          alphabet, padding optional) or as 64 hex digits, e.g. the output of \
                          `openssl rand -base64 32`";

/// Base64 decoders for key text: operators paste keys from many tools, so
/// either alphabet is accepted, padded or not.
const STANDARD_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const URL_SAFE_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A configured key is unusable. Messages say what a valid key looks like and
/// which one (by position, counting from 0) is wrong, never its text: error
/// messages end up in logs.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("no session keys configured; {KEY_FORMAT}")]
    NoKeys,
    #[error("session key [{index}] is neither base64 nor hex; {KEY_FORMAT}")]
    Encoding { index: usize },
    #[error("session key [{index}] is {len} bytes long; {KEY_FORMAT}")]
    Length { index: usize, len: usize },
    #[error("session key [{index}] repeats a single byte value (such as all zeros), so it is a placeholder, not a secret; {KEY_FORMAT}")]
    Placeholder { index: usize },
    #[error(
        "session key [{index}] is the same key as session key [{first}]; each key must be distinct"
    )]
    Duplicate { index: usize, first: usize },
    #[error("session keys [{first}] and [{index}] share a key id; replace one with a newly generated key")]
    KeyIdCollision { index: usize, first: usize },
}

/// A sealed value could not be opened. Callers treat every variant as "no
/// session"; the distinction is for logs and metrics.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("sealed value is malformed (bad encoding, too short, too long or unknown version)")]
    Malformed,
    #[error("sealed value names a key that is not in the key ring (rotated out?)")]
    UnknownKey,
    /// Authentication failed: tampered with, forged, or sealed for another
    /// context (AAD).
    #[error("sealed value failed authentication")]
    Forged,
}

/// One key, ready to use. The cipher wipes its copy of the key on drop; the
/// id is public information.
struct RingKey {
    id: [u8; KEY_ID_LEN],
    cipher: XChaCha20Poly1305,
    /// A separate key for keyed digests, derived so that a digest reveals nothing about the
    /// encryption key.
    mac_key: Zeroizing<[u8; KEY_LEN]>,
}

impl RingKey {
    fn new(key: &[u8; KEY_LEN]) -> RingKey {
        let mut mac_key = Zeroizing::new([0u8; KEY_LEN]);
        mac_key.copy_from_slice(
            &Sha256::new()
                .chain_update(b"portcullis digest key")
                .chain_update(key)
                .finalize(),
        );
        RingKey {
            id: key_id(key),
            cipher: XChaCha20Poly1305::new(key.into()),
            mac_key,
        }
    }
}

/// First 4 bytes of SHA-256(key): picks the key to open with, without
/// revealing anything useful about the key itself.
fn key_id(key: &[u8; KEY_LEN]) -> [u8; KEY_ID_LEN] {
    let digest = Sha256::digest(key);
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&digest[..KEY_ID_LEN]);
    id
}

/// Keys from config: the first seals, all open (rotation: add the new key
/// first, keep the old one until sessions sealed with it have expired).
pub struct KeyRing {
    sealing: RingKey,
    opening_only: Vec<RingKey>,
}

impl fmt::Debug for KeyRing {
    /// Key ids only, sealing key first: enough to tell rings apart in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = self
            .keys()
            .map(|key| key.id.iter().map(|b| format!("{b:02x}")).collect())
            .collect();
        f.debug_struct("KeyRing").field("key_ids", &ids).finish()
    }
}

impl KeyRing {
    /// Each key: 32 random bytes written as base64 (standard or URL-safe
    /// alphabet, padded or not) or as 64 hex digits; surrounding whitespace
    /// (a trailing newline from a secret file) is ignored. Rejects an empty
    /// list, wrong lengths, duplicate keys, and placeholder keys that repeat
    /// one byte (all zeros and the like).
    pub fn from_encoded(keys: &[&str]) -> Result<KeyRing, KeyError> {
        let mut ring: Vec<RingKey> = Vec::with_capacity(keys.len());
        let mut seen: Vec<Zeroizing<[u8; KEY_LEN]>> = Vec::with_capacity(keys.len());
        for (index, text) in keys.iter().enumerate() {
            let key = decode_key(text, index)?;
            // A key like 00…00 or ff…ff was typed, not generated: every value
            // sealed with it is readable and forgeable by anyone.
            if key.iter().all(|&b| b == key[0]) {
                return Err(KeyError::Placeholder { index });
            }
            if let Some(first) = seen.iter().position(|k| **k == *key) {
                return Err(KeyError::Duplicate { index, first });
            }
            let ring_key = RingKey::new(&key);
            // Values name their key by id; two keys with one id would make
            // opening ambiguous.
            if let Some(first) = ring.iter().position(|k| k.id == ring_key.id) {
                return Err(KeyError::KeyIdCollision { index, first });
            }
            seen.push(key);
            ring.push(ring_key);
        }
        let mut ring = ring.into_iter();
        let sealing = ring.next().ok_or(KeyError::NoKeys)?;
        Ok(KeyRing {
            sealing,
            opening_only: ring.collect(),
        })
    }

    /// A ring of one random key (embedded default, tests). Values sealed with
    /// it die with the process.
    pub fn generate() -> KeyRing {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        rand::rng().fill_bytes(key.as_mut_slice());
        KeyRing {
            sealing: RingKey::new(&key),
            opening_only: Vec::new(),
        }
    }

    /// sealed = version (1 byte, = 1) | key id (4 bytes: first 4 of
    /// SHA-256(key)) | nonce (24) | ciphertext + tag. `aad` binds the
    /// ciphertext to its context (e.g. the cookie name or store key) so one
    /// sealed value cannot be replayed as another.
    ///
    /// The only failure XChaCha20-Poly1305 has is a plaintext over 256 GiB;
    /// for that this returns an empty vector, which [`KeyRing::open`] rejects
    /// as malformed, rather than panicking.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let key = &self.sealing;
        let header = header(key.id);
        let mut nonce = [0u8; NONCE_LEN];
        // ThreadRng: a CSPRNG seeded from the OS and reseeded periodically.
        rand::rng().fill_bytes(&mut nonce);

        let mut sealed = Vec::with_capacity(MIN_SEALED_LEN + plaintext.len());
        sealed.extend_from_slice(&header);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(plaintext);
        let body_start = HEADER_LEN + NONCE_LEN;
        let Some(body) = sealed.get_mut(body_start..) else {
            return Vec::new();
        };
        match key.cipher.encrypt_in_place_detached(
            &XNonce::from(nonce),
            &full_aad(&header, aad),
            body,
        ) {
            Ok(tag) => {
                sealed.extend_from_slice(&tag);
                sealed
            }
            Err(_) => Vec::new(),
        }
    }

    /// Opens a value made by [`KeyRing::seal`] with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < MIN_SEALED_LEN {
            return Err(OpenError::Malformed);
        }
        let (header, rest) = sealed
            .split_first_chunk::<HEADER_LEN>()
            .ok_or(OpenError::Malformed)?;
        let (nonce, body) = rest
            .split_first_chunk::<NONCE_LEN>()
            .ok_or(OpenError::Malformed)?;
        let (ciphertext, tag) = body
            .split_last_chunk::<TAG_LEN>()
            .ok_or(OpenError::Malformed)?;
        let (&version, id) = header.split_first().ok_or(OpenError::Malformed)?;
        if version != VERSION {
            return Err(OpenError::Malformed);
        }
        let key = self
            .keys()
            .find(|key| key.id == id)
            .ok_or(OpenError::UnknownKey)?;

        let mut plaintext = ciphertext.to_vec();
        // The tag is checked before anything is decrypted, and nothing is
        // returned unless it verifies.
        key.cipher
            .decrypt_in_place_detached(
                &XNonce::from(*nonce),
                &full_aad(header, aad),
                &mut plaintext,
                &Tag::from(*tag),
            )
            .map_err(|_| OpenError::Forged)?;
        Ok(plaintext)
    }

    /// [`KeyRing::seal`], as base64url without padding: safe in cookies and
    /// URLs as is.
    pub fn seal_to_string(&self, plaintext: &[u8], aad: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.seal(plaintext, aad))
    }

    /// Opens a value made by [`KeyRing::seal_to_string`]. Inputs over 16 KiB
    /// are refused before decoding; anything but canonical unpadded base64url
    /// is [`OpenError::Malformed`].
    pub fn open_str(&self, sealed: &str, aad: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() > MAX_ENCODED_LEN {
            return Err(OpenError::Malformed);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| OpenError::Malformed)?;
        self.open(&bytes, aad)
    }

    /// Sealing key first, then the keys kept for opening only.
    fn keys(&self) -> impl Iterator<Item = &RingKey> {
        std::iter::once(&self.sealing).chain(&self.opening_only)
    }

    /// A ring of exactly this key (a per-session data key).
    pub fn from_key(key: &[u8; KEY_LEN]) -> KeyRing {
        KeyRing {
            sealing: RingKey::new(key),
            opening_only: Vec::new(),
        }
    }

    /// HMAC-SHA-256 of `value` under the sealing key, hex: an index name (`user:alice`) that
    /// can be looked up by whoever holds the key but reads as noise in a store dump.
    pub fn digest(&self, value: &str) -> String {
        digest_with(&self.sealing, value)
    }

    /// The digest under every key of the ring, sealing key first (lookups across a rotation).
    pub fn digests(&self, value: &str) -> Vec<String> {
        self.keys().map(|k| digest_with(k, value)).collect()
    }
}

fn digest_with(key: &RingKey, value: &str) -> String {
    use hmac::Mac as _;
    let Ok(mut mac) = <hmac::Hmac<Sha256> as hmac::Mac>::new_from_slice(key.mac_key.as_slice())
    else {
        // HMAC accepts keys of any length; this branch cannot be taken.
        return String::new();
    };
    mac.update(value.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn header(id: [u8; KEY_ID_LEN]) -> [u8; HEADER_LEN] {
    let [a, b, c, d] = id;
    [VERSION, a, b, c, d]
}

/// What the AEAD authenticates besides the ciphertext: the header, so the
/// version and key id cannot be swapped, then the caller's context. The
/// header has a fixed length, so the concatenation is unambiguous.
fn full_aad(header: &[u8; HEADER_LEN], aad: &[u8]) -> Vec<u8> {
    let mut full = Vec::with_capacity(HEADER_LEN + aad.len());
    full.extend_from_slice(header);
    full.extend_from_slice(aad);
    full
}

/// Decodes one configured key. Every buffer that holds key bytes is wiped
/// when dropped.
fn decode_key(text: &str, index: usize) -> Result<Zeroizing<[u8; KEY_LEN]>, KeyError> {
    let text = text.trim();
    // Room for base64's rounded-up length estimate, which exceeds the input
    // length for very short inputs.
    let mut buf = Zeroizing::new(vec![0u8; text.len() + 3]);
    // Only hex text has an even length and no characters outside 0-9a-f: a
    // 32-byte base64 key is 43 characters, or 44 ending in `=`.
    let len = if text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        decode_hex(text.as_bytes(), &mut buf)
    } else {
        STANDARD_ANY_PAD
            .decode_slice(text, &mut buf)
            .or_else(|_| URL_SAFE_ANY_PAD.decode_slice(text, &mut buf))
            .map_err(|_| KeyError::Encoding { index })?
    };
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    match buf.get(..len) {
        Some(bytes) if len == KEY_LEN => key.copy_from_slice(bytes),
        _ => return Err(KeyError::Length { index, len }),
    }
    Ok(key)
}

/// Decodes hex digit pairs into `out` (at least half as long as `hex`);
/// returns the number of bytes written. The caller has checked the digits.
fn decode_hex(hex: &[u8], out: &mut [u8]) -> usize {
    let mut written = 0;
    for (pair, slot) in hex.chunks_exact(2).zip(out.iter_mut()) {
        *slot = (hex_digit(pair[0]) << 4) | hex_digit(pair[1]);
        written += 1;
    }
    written
}

fn hex_digit(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        b'A'..=b'F' => digit - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
mod tests;
