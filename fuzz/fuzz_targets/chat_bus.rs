//! Payloads between chat nodes (what arrives on a room's Redis channel) and history
//! records: no panic on hostile bytes; what decodes encodes back to the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use videopick_chat_proto::app::bus::{decode_payload, decode_record, encode_payload, encode_record};

fuzz_target!(|data: &[u8]| {
    if let Some((node, event)) = decode_payload(data) {
        let again = encode_payload(node, &event);
        assert_eq!(decode_payload(again.as_bytes()), Some((node, event)));
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(m) = decode_record(text)
    {
        assert_eq!(decode_record(&encode_record(&m)), Some(m));
    }
});
