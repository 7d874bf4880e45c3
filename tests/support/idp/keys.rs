//! RSA signing keys, leased from a process-wide pool because generating one is slow
//! in debug builds.

use super::*;

pub(super) struct KeyMaterial {
    pub(super) kid: String,
    /// base64url (no padding) big-endian modulus / exponent, as in a JWK.
    pub(super) n: String,
    pub(super) e: String,
    pub(super) encoding: EncodingKey,
    pub(super) decoding: DecodingKey,
    pub(super) public_pem: String,
}

impl KeyMaterial {
    pub(super) fn generate() -> KeyMaterial {
        let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
            .expect("RSA key generation failed");
        let der = private
            .to_pkcs1_der()
            .expect("PKCS#1 encoding of a fresh RSA key failed");
        let public = private.to_public_key();
        let n = B64_URL.encode(public.n().to_bytes_be());
        let e = B64_URL.encode(public.e().to_bytes_be());
        // RFC 7638 JWK thumbprint: members in lexicographic order, no spaces.
        let thumbprint_input = format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#);
        let kid = B64_URL.encode(Sha256::digest(thumbprint_input.as_bytes()));
        let decoding = DecodingKey::from_rsa_components(&n, &e)
            .expect("decoding key from fresh RSA components");
        let public_pem = public
            .to_public_key_pem(LineEnding::LF)
            .expect("PEM encoding of an RSA public key failed");
        KeyMaterial {
            kid,
            n,
            e,
            encoding: EncodingKey::from_rsa_der(der.as_bytes()),
            decoding,
            public_pem,
        }
    }

    pub(super) fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "use": "sig",
            "alg": "RS256",
            "kid": self.kid,
            "n": self.n,
            "e": self.e,
        })
    }

    pub(super) fn sign(&self, kid: &str, typ: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_string());
        header.typ = Some(typ.to_string());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("RS256 signing failed")
    }
}

pub(super) struct PoolSlot {
    pub(super) key: Arc<KeyMaterial>,
    pub(super) leased: bool,
}

/// Process-wide pool of generated keys; see the module docs.
pub(super) static KEY_POOL: Mutex<Vec<PoolSlot>> = Mutex::new(Vec::new());

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Takes a key no live IdP holds, generating one if the pool has none free.
pub(super) fn lease_key() -> Arc<KeyMaterial> {
    {
        let mut pool = lock(&KEY_POOL);
        if let Some(slot) = pool.iter_mut().find(|s| !s.leased) {
            slot.leased = true;
            return slot.key.clone();
        }
    }
    // Generate without holding the lock so parallel tests generate in parallel.
    let key = Arc::new(KeyMaterial::generate());
    lock(&KEY_POOL).push(PoolSlot {
        key: key.clone(),
        leased: true,
    });
    key
}

pub(super) fn release_key(kid: &str) {
    let mut pool = lock(&KEY_POOL);
    if let Some(slot) = pool.iter_mut().find(|s| s.key.kid == kid) {
        slot.leased = false;
    }
}
