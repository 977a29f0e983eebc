//! Arbitrary samples into the fMP4 fragment writer: it must never panic, and every
//! fragment must be boxes whose sizes add up, whose `trun` data offsets land on each
//! track's samples in the `mdat`, and whose sample sizes cover the payload exactly.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use videopick_hls::fmp4::{Sample, TrackFragment, fragment};

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fuzz_target!(|data: &[u8]| {
    // Each 4-byte group is a sample: track (bit 7 of byte 0), key flag (bit 6), size
    // (bytes 1–2 mod 2048), duration (byte 3), composition offset (signed byte 0 low bits).
    let mut tracks: [Vec<Sample>; 2] = [Vec::new(), Vec::new()];
    for (i, c) in data.chunks_exact(4).take(2000).enumerate() {
        let size = usize::from(u16::from_be_bytes([c[1], c[2]]) % 2048);
        let s = Sample {
            duration: u32::from(c[3]) * 100,
            data: Bytes::from(vec![(i % 251) as u8; size]),
            key: c[0] & 0x40 != 0,
            composition_offset: i32::from((c[0] & 0x3f) as i8 - 32) * 100,
        };
        tracks[usize::from(c[0] >> 7)].push(s);
    }
    let frags: Vec<TrackFragment<'_>> = tracks
        .iter()
        .enumerate()
        .filter(|(_, s)| !s.is_empty())
        .map(|(i, s)| TrackFragment { track_id: i as u32 + 1, base_decode_time: u64::from(data.len() as u32), samples: s })
        .collect();
    let f = fragment(data.len() as u32, &frags);
    let b = f.to_bytes();
    assert_eq!(b.len(), f.len());
    let moof = u32_at(&b, 0) as usize;
    assert_eq!(&b[4..8], b"moof");
    assert_eq!(&b[moof + 4..moof + 8], b"mdat");
    assert_eq!(moof + u32_at(&b, moof) as usize, b.len());
    // Walk the truns in order: each data offset is where that track's bytes begin.
    let mut expect = moof + 8;
    let mut at = 8;
    let mut t = 0;
    while at + 8 <= moof {
        let kind = &b[at + 4..at + 8];
        let size = u32_at(&b, at) as usize;
        if kind == b"traf" {
            at += 8;
            continue;
        }
        if kind == b"trun" {
            let count = u32_at(&b, at + 12) as usize;
            let off = u32_at(&b, at + 16) as usize;
            assert_eq!(off, expect);
            let sizes: usize = (0..count).map(|k| u32_at(&b, at + 20 + k * 16 + 4) as usize).sum();
            let own: usize = frags[t].samples.iter().map(|s| s.data.len()).sum();
            assert_eq!(sizes, own);
            expect += own;
            t += 1;
        }
        at += size.max(8);
    }
    assert_eq!(t, frags.len());
    assert_eq!(expect, b.len());
});
