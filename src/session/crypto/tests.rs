use super::*;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE};
use rand::Rng as _;

const AAD: &[u8] = b"portcullis_session";

/// A fixed key with bytes that differ between the base64 alphabets.
fn key_bytes(seed: u8) -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    for (i, b) in key.iter_mut().enumerate() {
        *b = seed
            .wrapping_mul(31)
            .wrapping_add((i as u8).wrapping_mul(0x3f))
            ^ 0xfb;
    }
    key
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn ring(seeds: &[u8]) -> KeyRing {
    let texts: Vec<String> = seeds
        .iter()
        .map(|&s| URL_SAFE_NO_PAD.encode(key_bytes(s)))
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    KeyRing::from_encoded(&refs).unwrap()
}

#[test]
fn round_trip() {
    let ring = KeyRing::generate();
    for plaintext in [&b""[..], b"x", b"{\"sub\":\"alice\"}", &[0u8; 5000]] {
        let sealed = ring.seal(plaintext, AAD);
        assert_eq!(sealed.len(), MIN_SEALED_LEN + plaintext.len());
        assert_eq!(ring.open(&sealed, AAD).unwrap(), plaintext);
        let text = ring.seal_to_string(plaintext, AAD);
        assert_eq!(ring.open_str(&text, AAD).unwrap(), plaintext);
    }
}

#[test]
fn layout_and_fresh_nonces() {
    let ring = ring(&[1]);
    let a = ring.seal(b"same", AAD);
    let b = ring.seal(b"same", AAD);
    assert_eq!(a[0], VERSION);
    assert_eq!(a[1..5], key_id(&key_bytes(1)));
    assert_ne!(a[5..29], b[5..29], "nonce reused");
    assert_ne!(a, b);
}

#[test]
fn seal_to_string_is_unpadded_base64url() {
    let ring = KeyRing::generate();
    for len in 0..40 {
        let text = ring.seal_to_string(&vec![0xfb; len], AAD);
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }
}

#[test]
fn wrong_aad_is_forged() {
    let ring = KeyRing::generate();
    let sealed = ring.seal(b"state", b"portcullis_login");
    for aad in [
        &b""[..],
        b"portcullis_session",
        b"portcullis_login\0",
        b"portcullis_logi",
    ] {
        assert!(
            matches!(ring.open(&sealed, aad), Err(OpenError::Forged)),
            "{aad:?}"
        );
    }
    let sealed = ring.seal(b"state", b"");
    assert!(matches!(ring.open(&sealed, b"x"), Err(OpenError::Forged)));
}

#[test]
fn every_flipped_bit_is_rejected() {
    let ring = ring(&[1]);
    let sealed = ring.seal(b"hello", AAD);
    for position in 0..sealed.len() {
        for bit in 0..8 {
            let mut tampered = sealed.clone();
            tampered[position] ^= 1 << bit;
            let result = ring.open(&tampered, AAD);
            // Version byte: unknown format. Key id: no such key in the
            // ring. Anything after: the tag does not verify.
            let expected = match position {
                0 => matches!(result, Err(OpenError::Malformed)),
                1..=4 => matches!(result, Err(OpenError::UnknownKey)),
                _ => matches!(result, Err(OpenError::Forged)),
            };
            assert!(expected, "byte {position} bit {bit}: {result:?}");
        }
    }
}

#[test]
fn value_routed_to_another_key_is_forged() {
    // Another ring member's id swapped in: the value is routed to that
    // key and must fail, not decrypt to garbage.
    let ring = ring(&[1, 2]);
    let mut sealed = ring.seal(b"hello", AAD);
    sealed[1..5].copy_from_slice(&key_id(&key_bytes(2)));
    assert!(matches!(ring.open(&sealed, AAD), Err(OpenError::Forged)));
}

#[test]
fn every_truncation_is_rejected() {
    let ring = KeyRing::generate();
    let sealed = ring.seal(b"a short session", AAD);
    for len in 0..sealed.len() {
        let result = ring.open(&sealed[..len], AAD);
        assert!(result.is_err(), "length {len} opened");
        if len < MIN_SEALED_LEN {
            assert!(matches!(result, Err(OpenError::Malformed)));
        }
    }
    let text = ring.seal_to_string(b"a short session", AAD);
    for len in 0..text.len() {
        assert!(
            ring.open_str(&text[..len], AAD).is_err(),
            "length {len} opened"
        );
    }
    // Extending is no better than truncating.
    let mut longer = sealed.clone();
    longer.push(0);
    assert!(ring.open(&longer, AAD).is_err());
}

#[test]
fn rotation() {
    let old = ring(&[1]);
    let sealed_old = old.seal(b"old session", AAD);

    let rotated = ring(&[2, 1]);
    assert_eq!(rotated.open(&sealed_old, AAD).unwrap(), b"old session");
    let sealed_new = rotated.seal(b"new session", AAD);
    assert_eq!(sealed_new[1..5], key_id(&key_bytes(2)), "new key must seal");
    assert_eq!(rotated.open(&sealed_new, AAD).unwrap(), b"new session");
    // The old ring cannot open what the new key sealed.
    assert!(matches!(
        old.open(&sealed_new, AAD),
        Err(OpenError::UnknownKey)
    ));

    let retired = ring(&[2]);
    assert!(matches!(
        retired.open(&sealed_old, AAD),
        Err(OpenError::UnknownKey)
    ));
    assert_eq!(retired.open(&sealed_new, AAD).unwrap(), b"new session");
}

#[test]
fn keys_in_any_supported_encoding() {
    let key = key_bytes(7);
    let expected = key_id(&key);
    let encodings = [
        STANDARD.encode(key),
        STANDARD_NO_PAD.encode(key),
        URL_SAFE.encode(key),
        URL_SAFE_NO_PAD.encode(key),
        hex(&key),
        hex(&key).to_uppercase(),
        format!("  {}\n", STANDARD.encode(key)),
    ];
    // The fixture must actually exercise both alphabets.
    assert!(encodings[0].contains(['+', '/']) && encodings[2].contains(['-', '_']));
    for text in &encodings {
        let ring = KeyRing::from_encoded(&[text]).unwrap();
        assert_eq!(ring.sealing.id, expected, "{text:?}");
    }
}

#[test]
fn rejects_bad_keys() {
    let short = [0x5au8, 0xa5].repeat(16)[..31].to_vec();
    let long = [0x5au8, 0xa5].repeat(17)[..33].to_vec();
    type IsExpected = fn(&KeyError) -> bool;
    let cases: Vec<(String, IsExpected)> = vec![
        (STANDARD.encode(&short), |e| {
            matches!(e, KeyError::Length { len: 31, .. })
        }),
        (STANDARD.encode(&long), |e| {
            matches!(e, KeyError::Length { len: 33, .. })
        }),
        (URL_SAFE_NO_PAD.encode(&short), |e| {
            matches!(e, KeyError::Length { len: 31, .. })
        }),
        (hex(&short), |e| {
            matches!(e, KeyError::Length { len: 31, .. })
        }),
        (hex(&long), |e| {
            matches!(e, KeyError::Length { len: 33, .. })
        }),
        (String::new(), |e| {
            matches!(e, KeyError::Length { len: 0, .. })
        }),
        ("not a key at all!".into(), |e| {
            matches!(e, KeyError::Encoding { .. })
        }),
        ("a".into(), |e| matches!(e, KeyError::Encoding { .. })),
        ("YQ".into(), |e| {
            matches!(e, KeyError::Length { len: 1, .. })
        }),
        ("YWJjZA".into(), |e| {
            matches!(e, KeyError::Length { len: 4, .. })
        }),
        ("changeme".repeat(6), |e| {
            matches!(e, KeyError::Length { .. })
        }),
        // Mixed alphabets are neither standard nor URL-safe base64.
        (
            format!("+-{}", &URL_SAFE_NO_PAD.encode(key_bytes(3))[2..]),
            |e| matches!(e, KeyError::Encoding { .. }),
        ),
        ("g".repeat(64), |e| {
            matches!(e, KeyError::Length { len: 48, .. })
        }),
        (STANDARD.encode([0u8; 32]), |e| {
            matches!(e, KeyError::Placeholder { .. })
        }),
        ("0".repeat(64), |e| {
            matches!(e, KeyError::Placeholder { .. })
        }),
        ("f".repeat(64), |e| {
            matches!(e, KeyError::Placeholder { .. })
        }),
    ];
    for (text, is_expected) in &cases {
        let Err(error) = KeyRing::from_encoded(&[text]) else {
            panic!("accepted {text:?}");
        };
        assert!(is_expected(&error), "{text:?}: {error:?}");
        let message = error.to_string();
        assert!(message.contains("session key"), "{message}");
        if text.len() >= 8 {
            assert!(
                !message.contains(text.trim()),
                "message leaks key: {message}"
            );
        }
    }
}

#[test]
fn rejects_empty_duplicate_and_reports_position() {
    assert!(matches!(KeyRing::from_encoded(&[]), Err(KeyError::NoKeys)));
    let message = KeyError::NoKeys.to_string();
    assert!(message.contains("32 random bytes"), "{message}");

    let key = key_bytes(9);
    let b64 = STANDARD.encode(key);
    let as_hex = hex(&key);
    let other = URL_SAFE_NO_PAD.encode(key_bytes(10));
    // The same key in another encoding is still a duplicate.
    let result = KeyRing::from_encoded(&[&b64, &other, &as_hex]);
    assert!(
        matches!(result, Err(KeyError::Duplicate { index: 2, first: 0 })),
        "{result:?}"
    );

    let bad = KeyRing::from_encoded(&[&b64, "not base64!"]);
    assert!(
        matches!(bad, Err(KeyError::Encoding { index: 1 })),
        "{bad:?}"
    );
}

#[test]
fn debug_shows_key_ids_only() {
    let keys = [key_bytes(4), key_bytes(5)];
    let texts: Vec<String> = keys.iter().map(|k| STANDARD.encode(k)).collect();
    let ring = KeyRing::from_encoded(&[&texts[0], &texts[1]]).unwrap();
    let debug = format!("{ring:?} {ring:#?}");
    assert!(debug.contains(&hex(&key_id(&keys[0]))), "{debug}");
    assert!(debug.contains(&hex(&key_id(&keys[1]))), "{debug}");
    for key in &keys {
        for encoded in [
            hex(key),
            STANDARD_NO_PAD.encode(key),
            URL_SAFE_NO_PAD.encode(key),
            format!("{key:?}"),
        ] {
            // Not even a recognisable fragment of the key.
            for window in encoded.as_bytes().windows(12) {
                let fragment = std::str::from_utf8(window).unwrap_or_default();
                assert!(!debug.contains(fragment), "{debug} contains {fragment}");
            }
        }
    }
}

#[test]
fn open_str_limits_and_strictness() {
    let ring = KeyRing::generate();
    // Just under the limit opens; a value over it is refused unread,
    // though `open` would accept the same bytes.
    let fits = ring.seal_to_string(&[7u8; 12_000], AAD);
    assert!(fits.len() <= MAX_ENCODED_LEN);
    assert!(ring.open_str(&fits, AAD).is_ok());
    let big = ring.seal(&[7u8; 13_000], AAD);
    assert!(ring.open(&big, AAD).is_ok());
    let big = URL_SAFE_NO_PAD.encode(&big);
    assert!(big.len() > MAX_ENCODED_LEN);
    assert!(matches!(
        ring.open_str(&big, AAD),
        Err(OpenError::Malformed)
    ));

    // Padded or standard-alphabet renderings are not what we issue.
    let sealed = ring.seal(b"x", AAD);
    for other in [URL_SAFE.encode(&sealed), STANDARD.encode(&sealed)] {
        if other != URL_SAFE_NO_PAD.encode(&sealed) {
            assert!(matches!(
                ring.open_str(&other, AAD),
                Err(OpenError::Malformed)
            ));
        }
    }
    let text = ring.seal_to_string(b"x", AAD);
    for junk in [format!(" {text}"), format!("{text}\n"), format!("{text}.")] {
        assert!(matches!(
            ring.open_str(&junk, AAD),
            Err(OpenError::Malformed)
        ));
    }
}

#[test]
fn random_garbage_never_panics() {
    let ring = ring(&[1]);
    let id = key_id(&key_bytes(1));
    let mut rng = rand::rng();
    const ALPHABET: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=. %";
    for round in 0..1000 {
        let len = rng.random_range(0..200);
        let text: String = match round % 4 {
            // Arbitrary Unicode.
            0 => (0..len).map(|_| rng.random::<char>()).collect(),
            // Base64-ish characters.
            1 => (0..len)
                .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
                .collect(),
            // Well-formed base64url of random bytes.
            2 => {
                let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                URL_SAFE_NO_PAD.encode(bytes)
            }
            // A valid header, then random bytes: reaches the AEAD.
            _ => {
                let mut bytes = header(id).to_vec();
                bytes.extend((0..len).map(|_| rng.random::<u8>()));
                URL_SAFE_NO_PAD.encode(bytes)
            }
        };
        let result = ring.open_str(&text, AAD);
        assert!(result.is_err(), "garbage opened: {text:?}");
        if round % 4 == 3 && len >= NONCE_LEN + TAG_LEN {
            assert!(matches!(result, Err(OpenError::Forged)), "{result:?}");
        }
    }
}
