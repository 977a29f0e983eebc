//! Property tests: whatever FLV tags arrive (valid, malformed, out of order, with jumps
//! and wraps), the segmenter never panics and every segment is valid MPEG-TS.

mod common;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use bytes::{BufMut, BytesMut};
use common::{avc_header, check_ts};
use proptest::prelude::*;
use videopick_flv::{Tag, TagKind};
use videopick_hls::{Segmenter, SegmenterConfig};

#[derive(Debug, Clone)]
enum Item {
    AvcHeader,
    AacHeader,
    Video {
        key: bool,
        cts: i32,
        nals: Vec<Vec<u8>>,
        bad_len: bool,
    },
    Audio(Vec<u8>),
    Mp3(Vec<u8>),
    Garbage(u8, Vec<u8>),
    Republish,
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        1 => Just(Item::AvcHeader),
        1 => Just(Item::AacHeader),
        8 => (any::<bool>(), -100i32..400, prop::collection::vec(prop::collection::vec(any::<u8>(), 1..600), 0..4), prop::bool::weighted(0.05))
            .prop_map(|(key, cts, nals, bad_len)| Item::Video { key, cts, nals, bad_len }),
        6 => prop::collection::vec(any::<u8>(), 0..800).prop_map(Item::Audio),
        1 => prop::collection::vec(any::<u8>(), 0..600).prop_map(Item::Mp3),
        1 => (prop_oneof![Just(8u8), Just(9u8), Just(18u8)], prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(k, d)| Item::Garbage(k, d)),
        1 => Just(Item::Republish),
    ]
}

fn step() -> impl Strategy<Value = i64> {
    prop_oneof![
        20 => 0i64..50,
        2 => -30i64..0,
        1 => 10_000i64..100_000,
        1 => -100_000i64..-10_000,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn any_tag_sequence_gives_valid_ts(
        start in prop_oneof![Just(0u32), Just(u32::MAX - 3_000), any::<u32>()],
        items in prop::collection::vec((item(), step()), 1..300),
        target_ms in 200u64..3000,
    ) {
        let mut s = Segmenter::new(SegmenterConfig::with_target(Duration::from_millis(target_ms)));
        let now = SystemTime::UNIX_EPOCH;
        let mut ts = start;
        let mut out = Vec::new();
        for (it, step) in items {
            ts = ts.wrapping_add_signed(step as i32);
            let tag = match it {
                Item::AvcHeader => Tag::new(TagKind::Video, ts, avc_header()),
                Item::AacHeader => Tag::new(TagKind::Audio, ts, &b"\xaf\x00\x12\x10"[..]),
                Item::Video { key, cts, nals, bad_len } => {
                    let mut b = BytesMut::new();
                    b.put_u8(if key { 0x17 } else { 0x27 });
                    b.put_u8(1);
                    b.put_slice(&cts.to_be_bytes()[1..]);
                    for n in nals {
                        b.put_u32(n.len() as u32 + u32::from(bad_len));
                        b.put_slice(&n);
                    }
                    Tag::new(TagKind::Video, ts, b.freeze())
                }
                Item::Audio(d) => {
                    let mut b = vec![0xaf, 1];
                    b.extend_from_slice(&d);
                    Tag::new(TagKind::Audio, ts, b)
                }
                Item::Mp3(d) => {
                    let mut b = vec![0x2f];
                    b.extend_from_slice(&d);
                    Tag::new(TagKind::Audio, ts, b)
                }
                Item::Garbage(k, d) => Tag::new(TagKind::from_type_byte(k).unwrap(), ts, d),
                Item::Republish => {
                    s.discontinuity();
                    continue;
                }
            };
            let _ = s.push(&tag, now);
            while let Some(seg) = s.pop_segment() {
                out.push(seg);
            }
        }
        s.finish();
        while let Some(seg) = s.pop_segment() {
            out.push(seg);
        }
        let mut cc = HashMap::new();
        let mut pcrs = Vec::new();
        for (i, seg) in out.iter().enumerate() {
            prop_assert_eq!(seg.sequence, i as u64);
            let r = check_ts(&seg.data, &mut cc);
            pcrs.extend(r.pcrs);
            // Output time never runs backwards across the whole stream.
            prop_assert!(seg.duration > Duration::ZERO);
        }
        prop_assert!(pcrs.windows(2).all(|w| w[0] <= w[1]), "PCR went back");
    }
}

#[test]
fn mpeg_timestamps_wrap_at_33_bits() {
    // 27 hours of audio in 5 s steps crosses 2^33 ticks (26.5 h); PTS must wrap, not
    // saturate or panic, and stay 90 × output milliseconds modulo 2^33.
    let mut s = Segmenter::new(SegmenterConfig::with_target(Duration::from_secs(4)));
    let now = SystemTime::UNIX_EPOCH;
    s.push(&Tag::new(TagKind::Audio, 0, &b"\xaf\x00\x12\x10"[..]), now)
        .unwrap();
    let mut cc = HashMap::new();
    let mut last_pts = None;
    let mut wrapped = false;
    for i in 0..(27 * 720u32) {
        s.push(
            &Tag::new(TagKind::Audio, i * 5000, &b"\xaf\x01\x21\x10\x04"[..]),
            now,
        )
        .unwrap();
        while let Some(seg) = s.pop_segment() {
            let r = check_ts(&seg.data, &mut cc);
            for pts in r.pts.values().flatten() {
                assert!(*pts < 1 << 33);
                if let Some(prev) = last_pts
                    && *pts < prev
                {
                    // A wrap: the step is still 5 s modulo 2^33.
                    assert_eq!((pts + (1 << 33) - prev), 5000 * 90);
                    wrapped = true;
                }
                last_pts = Some(*pts);
            }
        }
    }
    assert!(wrapped, "27 h of timestamps must cross the 33-bit wrap");
}
