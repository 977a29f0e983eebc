//! The streaming FLV demuxer never panics and yields the same items however the input is
//! split (the first byte of the input picks the split point).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use videopick_flv::{FlvDemuxer, FlvItem};

fn run(chunks: &[&[u8]]) -> (Vec<FlvItem>, bool) {
    let mut d = FlvDemuxer::new();
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    for c in chunks {
        buf.extend_from_slice(c);
        loop {
            match d.decode(&mut buf) {
                Ok(Some(i)) => items.push(i),
                Ok(None) => break,
                Err(_) => return (items, true),
            }
        }
    }
    (items, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = usize::from(split).min(rest.len());
    let whole = run(&[rest]);
    let split = run(&[&rest[..at], &rest[at..]]);
    assert_eq!(whole, split);
});
