//! Arbitrary FLV tag sequences into the live origin's low-latency HLS (CMAF segmenter and
//! LL-HLS playlists): it must never panic; every playlist it serves, whole or as a delta
//! update, reads back with the crate's reader; every part, segment and init segment the
//! playlist names is served, and is whole boxes; blocking-reload questions about arbitrary
//! parts never panic. The tail of the input is also read as a playlist.
#![no_main]

use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use videopick_flv::{Tag, TagKind};
use videopick_hls::origin::{LiveOrigin, OriginConfig};
use videopick_hls::{MediaPlaylist, SegmenterConfig};

// A valid AVC sequence header (SPS/PPS) and AAC-LC config, so fuzzed frames get muxed.
const AVC_HEADER: &[u8] = &[
    0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0, 5, 0x67, 0x42, 0xc0, 0x1e, 0x95, 1, 0,
    4, 0x68, 0xce, 0x3c, 0x80,
];
const AAC_HEADER: &[u8] = &[0xaf, 0, 0x12, 0x10];

/// A run of whole ISO BMFF boxes.
fn whole_boxes(mut b: &[u8]) -> bool {
    while b.len() >= 8 {
        let size = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        if size < 8 || size > b.len() {
            return false;
        }
        b = &b[size..];
    }
    b.is_empty()
}

fn check(origin: &LiveOrigin, generation: u64) {
    let key = "live/f";
    for skip in [false, true] {
        let Some(text) = origin.ll_playlist(key, skip) else {
            return;
        };
        let text = std::str::from_utf8(&text).expect("a playlist is UTF-8");
        let parsed = MediaPlaylist::parse(text).expect("our playlist reads back");
        for e in parsed.entries() {
            let msn: u64 = e.uri.rsplit('-').next().unwrap().trim_end_matches(".m4s").parse().unwrap();
            let seg = origin.ll_segment(key, generation, msn).expect("a listed segment is served").to_bytes();
            assert!(whole_boxes(&seg));
        }
        for line in text.lines() {
            if let Some(attrs) = line.strip_prefix("#EXT-X-PART:") {
                let uri = attrs.split("URI=\"").nth(1).unwrap().split('"').next().unwrap();
                let tail = uri.trim_end_matches(".m4s").rsplit('-').next().unwrap();
                let (m, p) = tail.split_once('.').unwrap();
                let part = origin
                    .ll_part(key, generation, m.parse().unwrap(), p.parse().unwrap())
                    .expect("a listed part is served")
                    .to_bytes();
                assert_eq!(&part[4..8], b"moof");
                assert!(whole_boxes(&part));
            }
            if let Some(map) = line.strip_prefix("#EXT-X-MAP:URI=\"") {
                let n = map.trim_end_matches(".mp4\"").rsplit("init").next().unwrap();
                let init = origin.ll_init(key, generation, n.parse().unwrap()).expect("the map is served");
                assert_eq!(&init[4..8], b"ftyp");
                assert!(whole_boxes(&init));
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let b = |i: usize| data.get(i).copied().unwrap_or(0);
    let target = Duration::from_millis(200 + u64::from(b(0)) * 10);
    let part = Duration::from_millis(50 + u64::from(b(1)) * 2);
    let origin = LiveOrigin::new(OriginConfig {
        segmenter: SegmenterConfig::with_target(target),
        part_target: Some(part),
        ts: b(2) & 1 == 1,
        ll_window: 1 + usize::from(b(2) >> 4),
        ..OriginConfig::default()
    });
    let generation = 9;
    let mut feed = origin.feed("live/f", generation);
    let mut ts = u32::from_be_bytes([0, 0, b(3), 0]);
    let mut rest = data.get(4..).unwrap_or(&[]);
    let now = SystemTime::UNIX_EPOCH;
    // Records: kind (1), timestamp step (2, signed), length (2), body.
    while rest.len() >= 5 {
        let kind = rest[0];
        ts = ts.wrapping_add(i16::from_be_bytes([rest[1], rest[2]]) as i32 as u32);
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]])).min(rest.len() - 5);
        let body = &rest[5..5 + len];
        rest = &rest[5 + len..];
        let tag = match kind % 8 {
            0 => Tag::new(TagKind::Video, ts, AVC_HEADER),
            1 => Tag::new(TagKind::Audio, ts, AAC_HEADER),
            2 | 6 => Tag::new(TagKind::Video, ts, body.to_vec()),
            3 => Tag::new(TagKind::Audio, ts, body.to_vec()),
            4 => Tag::new(TagKind::Script, ts, body.to_vec()),
            5 => {
                feed.discontinuity();
                check(&origin, generation);
                continue;
            }
            _ => {
                // A blocking reload for an arbitrary part.
                let msn = u64::from(u16::from_be_bytes([rest.first().copied().unwrap_or(0), kind]));
                let _ = origin.blocking("live/f", msn, (len % 3 != 0).then_some(len as u32));
                continue;
            }
        };
        let _ = feed.push(&tag, now);
        check(&origin, generation);
    }
    feed.finish();
    check(&origin, generation);
    // And the reader on arbitrary text.
    if let Ok(text) = std::str::from_utf8(rest) {
        let _ = MediaPlaylist::parse(text);
    }
});
