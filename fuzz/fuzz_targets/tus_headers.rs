//! Every tus header parser on arbitrary text: no panics, and whatever parses re-encodes
//! to a value that parses to the same thing (metadata, concat, base64).
#![no_main]

use libfuzzer_sys::fuzz_target;
use videopick_tus::base64;
use videopick_tus::headers::{
    Checksum, Concat, Metadata, check_version, parse_defer_length, parse_u64,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = check_version(Some(text));
    if let Ok(n) = parse_u64("Upload-Offset", text) {
        assert_eq!(parse_u64("Upload-Offset", &n.to_string()), Ok(n));
    }
    let _ = parse_defer_length(text);
    if let Ok(m) = Metadata::parse(text, 4096) {
        let again = Metadata::parse(&m.to_header(), 1 << 20).expect("canonical form parses");
        assert_eq!(again, m);
    }
    if let Ok(c) = Concat::parse(text) {
        assert_eq!(Concat::parse(&c.to_header()), Ok(c));
    }
    if let Ok(c) = Checksum::parse(text) {
        assert_eq!(c.digest.len(), c.algorithm.digest_len());
    }
    if let Some(bytes) = base64::decode(text) {
        assert_eq!(base64::encode(&bytes), text, "decoding is canonical");
    }
});
