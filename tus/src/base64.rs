//! Standard base64 (RFC 4648 §4, with padding), as tus uses for metadata values and
//! checksums. Decoding is strict: padding required, no whitespace, canonical trailing bits.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Encode `data`.
pub fn encode(data: &[u8]) -> String {
    STANDARD.encode(data)
}

/// Decode `text`; `None` if it is not canonical padded base64.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4648_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(plain.as_bytes()), enc);
            assert_eq!(decode(enc).as_deref(), Some(plain.as_bytes()));
        }
    }

    #[test]
    fn rejects_non_canonical_input() {
        for bad in ["Zg", "Zg=", "Z===", "Zh==", "Zm9v Yg==", "Zg==Zg==", "****"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn round_trips_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        for n in 0..all.len() {
            assert_eq!(decode(&encode(&all[..n])).unwrap(), &all[..n]);
        }
    }
}
