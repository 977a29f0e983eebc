//! The chunk decoder never panics, respects its limits and decodes the same messages however
//! the input is split; decoded messages re-encode to a stream that decodes to them again.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use videopick_rtmp::chunk::{ChunkDecoder, ChunkEncoder, ChunkLimits, RawMessage};

fn decode(parts: &[&[u8]]) -> (Vec<RawMessage>, bool) {
    let limits = ChunkLimits::default().max_message_size(1 << 20);
    let mut d = ChunkDecoder::new(limits);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for p in parts {
        buf.extend_from_slice(p);
        loop {
            match d.decode(&mut buf) {
                Ok(Some(m)) => {
                    assert!(m.payload.len() <= 1 << 20);
                    out.push(m);
                }
                Ok(None) => break,
                Err(_) => return (out, true),
            }
        }
    }
    (out, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = (usize::from(split) * 7).min(rest.len());
    let whole = decode(&[rest]);
    assert_eq!(decode(&[&rest[..at], &rest[at..]]), whole);

    // Round trip what decoded, on a fresh connection at the default chunk size.
    let msgs: Vec<RawMessage> = whole
        .0
        .into_iter()
        .filter(|m| m.type_id != 1 && m.type_id != 2 && m.csid >= 3)
        .collect();
    let mut e = ChunkEncoder::new();
    let mut wire = BytesMut::new();
    for m in &msgs {
        e.encode(m, &mut wire);
    }
    let (again, failed) = decode(&[&wire]);
    assert!(!failed);
    assert_eq!(again, msgs);
});
