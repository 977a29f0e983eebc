//! Property tests of the CMAF segmenter: whatever FLV tags arrive (valid, malformed, with
//! B-frame offsets, jumps, 32-bit wraps, republishes, audio-only or video-only), it never
//! panics, every part is one `moof` + `mdat` that an independent MP4 parser reads with
//! sample sizes matching the data, segments and parts are numbered without gaps, a
//! segment lasts the sum of its parts, and each track's decode time never goes back.

mod common;

use std::io::Cursor;
use std::time::{Duration, SystemTime};

use bytes::{BufMut, BytesMut};
use common::avc_header;
use mp4_atom::{Any, DecodeMaybe};
use proptest::prelude::*;
use videopick_flv::{Tag, TagKind};
use videopick_hls::cmaf::{CmafConfig, CmafEvent, CmafSegmenter};

#[derive(Debug, Clone)]
enum Item {
    AvcHeader,
    AacHeader,
    Video { key: bool, cts: i32, data: Vec<u8> },
    Audio(Vec<u8>),
    Garbage(u8, Vec<u8>),
    Republish,
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![
        1 => Just(Item::AvcHeader),
        1 => Just(Item::AacHeader),
        8 => (prop::bool::weighted(0.1), -200i32..400, prop::collection::vec(any::<u8>(), 1..300))
            .prop_map(|(key, cts, data)| Item::Video { key, cts, data }),
        6 => prop::collection::vec(any::<u8>(), 0..200).prop_map(Item::Audio),
        1 => (prop_oneof![Just(8u8), Just(9u8), Just(18u8)], prop::collection::vec(any::<u8>(), 0..40))
            .prop_map(|(k, d)| Item::Garbage(k, d)),
        1 => Just(Item::Republish),
    ]
}

fn step() -> impl Strategy<Value = i64> {
    prop_oneof![
        30 => 0i64..50,
        2 => -30i64..0,
        1 => 10_000i64..100_000,
        1 => -100_000i64..-10_000,
    ]
}

fn kinds() -> impl Strategy<Value = (bool, bool)> {
    prop_oneof![Just((true, true)), Just((true, false)), Just((false, true))]
}

/// Check one part's bytes; (track id, tfdt, summed durations) per traf.
fn read_part(bytes: &[u8]) -> Vec<(u32, u64, u64)> {
    let mut cur = Cursor::new(bytes);
    let Some(Any::Moof(moof)) = Any::decode_maybe(&mut cur).unwrap() else {
        panic!("a part starts with moof");
    };
    let Some(Any::Mdat(mdat)) = Any::decode_maybe(&mut cur).unwrap() else {
        panic!("then mdat");
    };
    assert_eq!(cur.position() as usize, bytes.len(), "nothing after mdat");
    let mut sizes = 0u64;
    let mut out = Vec::new();
    for traf in &moof.traf {
        let mut total = 0u64;
        for trun in &traf.trun {
            for s in &trun.samples {
                total += u64::from(s.duration.unwrap_or(0));
                sizes += u64::from(s.size.unwrap_or(0));
            }
        }
        let tfdt = traf.tfdt.as_ref().unwrap().base_media_decode_time;
        out.push((traf.tfhd.track_id, tfdt, total));
    }
    assert_eq!(
        sizes,
        mdat.data.len() as u64,
        "sample sizes add up to the mdat"
    );
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn any_tag_sequence_gives_sound_parts(
        start in prop_oneof![Just(0u32), Just(u32::MAX - 3_000), any::<u32>()],
        (audio, video) in kinds(),
        items in prop::collection::vec((item(), step()), 1..400),
        part_ms in 100u64..600,
        segment_ms in 500u64..3000,
    ) {
        let mut s = CmafSegmenter::new(CmafConfig {
            part_target: Duration::from_millis(part_ms),
            segment_target: Duration::from_millis(segment_ms),
            ..CmafConfig::default()
        });
        let now = SystemTime::UNIX_EPOCH;
        let mut ts = start;
        let mut events = Vec::new();
        for (it, step) in items {
            ts = ts.wrapping_add_signed(step as i32);
            let tag = match it {
                Item::AvcHeader if video => Tag::new(TagKind::Video, ts, avc_header()),
                Item::AacHeader if audio => Tag::new(TagKind::Audio, ts, &b"\xaf\x00\x12\x10"[..]),
                Item::Video { key, cts, data } if video => {
                    let mut b = BytesMut::new();
                    b.put_u8(if key { 0x17 } else { 0x27 });
                    b.put_u8(1);
                    b.put_slice(&cts.to_be_bytes()[1..]);
                    b.put_slice(&data);
                    Tag::new(TagKind::Video, ts, b.freeze())
                }
                Item::Audio(d) if audio => {
                    let mut b = vec![0xaf, 1];
                    b.extend_from_slice(&d);
                    Tag::new(TagKind::Audio, ts, b)
                }
                Item::Garbage(k, d) if (k != 9 || video) && (k != 8 || audio) => {
                    Tag::new(TagKind::from_type_byte(k).unwrap(), ts, d)
                }
                Item::Republish => {
                    s.discontinuity();
                    continue;
                }
                _ => continue,
            };
            let _ = s.push(&tag, now);
            while let Some(e) = s.pop() {
                events.push(e);
            }
        }
        s.finish();
        while let Some(e) = s.pop() {
            events.push(e);
        }

        let mut next_segment = 0u64;
        let mut next_part = 0u32;
        let mut parts_total = Duration::ZERO;
        let mut init_seen = false;
        let mut track_end: [Option<u64>; 3] = [None; 3];
        for e in &events {
            match e {
                CmafEvent::Init(b) => {
                    prop_assert_eq!(&b[4..8], b"ftyp");
                    prop_assert_eq!(next_part, 0, "a new init segment only between segments");
                    init_seen = true;
                }
                CmafEvent::Part(p) => {
                    prop_assert!(init_seen, "a part before any init segment");
                    prop_assert_eq!((p.segment, p.index), (next_segment, next_part));
                    if !video {
                        prop_assert!(p.independent, "audio-only parts are all independent");
                    }
                    next_part += 1;
                    parts_total += p.duration;
                    for (track, tfdt, total) in read_part(&p.fragment.to_bytes()) {
                        let slot = &mut track_end[track as usize];
                        if let Some(end) = *slot {
                            prop_assert!(tfdt >= end, "track {} went back: {} < {}", track, tfdt, end);
                        }
                        *slot = Some(tfdt + total);
                    }
                }
                CmafEvent::SegmentEnd { sequence, duration, .. } => {
                    prop_assert_eq!(*sequence, next_segment);
                    prop_assert!(next_part > 0, "an empty segment");
                    prop_assert_eq!(*duration, parts_total, "a segment is its parts");
                    next_segment += 1;
                    next_part = 0;
                    parts_total = Duration::ZERO;
                }
            }
        }
        prop_assert_eq!(next_part, 0, "finish closes the last segment");
    }
}
