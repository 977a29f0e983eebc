//! AMF3 decoding (references, traits, vectors, dictionaries) never panics, stays within its
//! element budget, and what decodes round-trips through the encoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use videopick_flv::amf0::AmfLimits;
use videopick_flv::amf3::{self, Amf3Decoder};

fuzz_target!(|data: &[u8]| {
    let mut d = Amf3Decoder::new(data, AmfLimits::default());
    let mut values = Vec::new();
    while !d.remaining().is_empty() {
        match d.decode() {
            Ok(v) => values.push(v),
            Err(_) => break,
        }
    }
    assert!(d.elements() <= AmfLimits::default().max_elements + 1);
    if !values.is_empty() {
        let bytes = amf3::encode_all(&values);
        let mut d2 = Amf3Decoder::new(&bytes, AmfLimits::default().max_elements(usize::MAX));
        let back: Vec<_> = values.iter().map(|_| d2.decode().expect("re-encoded AMF3 must decode")).collect();
        assert_eq!(amf3::encode_all(&back), bytes);
    }
});
