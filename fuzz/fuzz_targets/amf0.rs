//! AMF0 decoding never panics, and whatever decodes re-encodes to bytes that decode to the
//! same values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use videopick_flv::amf0;

fuzz_target!(|data: &[u8]| {
    if let Ok(values) = amf0::decode_all(data) {
        let again = amf0::encode_all(&values);
        let back = amf0::decode_all(&again).expect("re-encoded AMF0 must decode");
        // NaN != NaN: compare the encodings instead of the values.
        assert_eq!(amf0::encode_all(&back), again);
    }
});
