//! Arbitrary FLV tag sequences into the HLS segmenter: it must never panic, and every
//! segment it emits must be valid transport packets (sync bytes, whole packets, continuity
//! counters, adaptation field lengths, PES start codes, PSI CRCs).
#![no_main]

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use videopick_flv::{Tag, TagKind};
use videopick_hls::{Segmenter, SegmenterConfig};

// A valid AVC sequence header (SPS/PPS) and AAC-LC config, so fuzzed frames get muxed.
const AVC_HEADER: &[u8] = &[
    0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0, 5, 0x67, 0x42, 0xc0, 0x1e, 0x95, 1, 0,
    4, 0x68, 0xce, 0x3c, 0x80,
];
const AAC_HEADER: &[u8] = &[0xaf, 0, 0x12, 0x10];

fn check(data: &[u8], cc: &mut HashMap<u16, u8>) {
    assert_eq!(data.len() % 188, 0);
    for p in data.chunks(188) {
        assert_eq!(p[0], 0x47);
        let pid = u16::from(p[1] & 0x1f) << 8 | u16::from(p[2]);
        let afc = (p[3] >> 4) & 3;
        assert_ne!(afc, 0);
        let counter = p[3] & 0x0f;
        if afc & 1 != 0 {
            if let Some(prev) = cc.get(&pid) {
                assert_eq!(counter, (prev + 1) & 0x0f);
            }
            cc.insert(pid, counter);
        }
        let mut i = 4;
        if afc & 2 != 0 {
            assert!(p[4] <= 183);
            if afc == 2 {
                assert_eq!(p[4], 183);
            }
            i = 5 + usize::from(p[4]);
        }
        if afc & 1 != 0 && p[1] & 0x40 != 0 {
            let payload = &p[i..];
            if pid == 0 || pid == 0x1000 {
                let sec = &payload[1..];
                let len = usize::from(u16::from_be_bytes([sec[1], sec[2]]) & 0xfff);
                assert_eq!(videopick_hls::crc::crc32_mpeg2(&sec[..3 + len]), 0);
            } else {
                assert_eq!(&payload[..3], &[0, 0, 1]);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let target = Duration::from_millis(100 + u64::from(data.first().copied().unwrap_or(0)) * 10);
    let mut s = Segmenter::new(SegmenterConfig::with_target(target));
    let mut cc = HashMap::new();
    let mut ts = u32::from_be_bytes([0, 0, data.get(1).copied().unwrap_or(0), 0]);
    let mut rest = data.get(2..).unwrap_or(&[]);
    let now = SystemTime::UNIX_EPOCH;
    // Records: kind (1), timestamp step (2, signed), length (2), body.
    while rest.len() >= 5 {
        let kind = rest[0];
        ts = ts.wrapping_add(i16::from_be_bytes([rest[1], rest[2]]) as i32 as u32);
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]])).min(rest.len() - 5);
        let body = &rest[5..5 + len];
        rest = &rest[5 + len..];
        let tag = match kind % 6 {
            0 => Tag::new(TagKind::Video, ts, AVC_HEADER),
            1 => Tag::new(TagKind::Audio, ts, AAC_HEADER),
            2 => Tag::new(TagKind::Video, ts, body.to_vec()),
            3 => Tag::new(TagKind::Audio, ts, body.to_vec()),
            4 => Tag::new(TagKind::Script, ts, body.to_vec()),
            _ => {
                s.discontinuity();
                continue;
            }
        };
        let _ = s.push(&tag, now);
        while let Some(seg) = s.pop_segment() {
            check(&seg.data, &mut cc);
        }
    }
    s.finish();
    while let Some(seg) = s.pop_segment() {
        check(&seg.data, &mut cc);
    }
});
