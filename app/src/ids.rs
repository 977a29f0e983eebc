//! Random identifiers and secrets, their hashes, and the clock.

use std::fmt::Write as _;

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// `n` random bytes from the OS, written as base64url without padding.
pub(crate) fn random(n: usize) -> String {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).expect("the OS random source works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A new public id: 9 random bytes = 12 base64url characters (72 bits: not guessable,
/// so an unlisted video's id is its secret).
pub(crate) fn new_id() -> String {
    random(9)
}

/// A new secret (session token, stream key) with a readable prefix: 32 random bytes.
pub(crate) fn new_secret(prefix: &str) -> String {
    format!("{prefix}{}", random(32))
}

/// The SHA-256 of a high-entropy secret, in hex: what is stored instead of it (a random
/// 256-bit secret needs no slow hash; a lookup by hash stays an index lookup).
pub(crate) fn secret_hash(secret: &str) -> String {
    let d = Sha256::digest(secret.as_bytes());
    let mut s = String::with_capacity(64);
    for b in d {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_url_safe_and_distinct() {
        let a = new_id();
        assert_eq!(a.len(), 12);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
        assert_ne!(a, new_id());
        let k = new_secret("sk_");
        assert!(k.starts_with("sk_") && k.len() == 3 + 43);
        assert_eq!(secret_hash("abc").len(), 64);
        assert_eq!(
            secret_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
