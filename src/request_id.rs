//! `X-Request-Id`: kept when the client sent a sane one (so a trace can cross the edge),
//! otherwise generated.

pub const HEADER: &str = "x-request-id";

/// Accepts what tracing systems emit (UUIDs, ULIDs, hex, W3C trace ids) and nothing that could
/// smuggle content into logs or headers.
pub fn is_acceptable(id: &[u8]) -> bool {
    (1..=128).contains(&id.len())
        && id
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(c))
}

pub fn generate() -> String {
    format!("{:032x}", rand::random::<u128>())
}

pub fn from_client(value: Option<&[u8]>) -> String {
    match value {
        Some(v) if is_acceptable(v) => String::from_utf8_lossy(v).into_owned(),
        _ => generate(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_sane_ids_and_replaces_others() {
        assert_eq!(from_client(Some(b"abc-123_x.y:z")), "abc-123_x.y:z");
        for bad in [&b""[..], b"a b", b"a\nb", b"<script>", &[b'a'; 129]] {
            let id = from_client(Some(bad));
            assert_eq!(id.len(), 32, "{bad:?}");
            assert_ne!(id.as_bytes(), bad);
        }
        assert_ne!(generate(), generate());
    }
}
