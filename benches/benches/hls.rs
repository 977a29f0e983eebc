//! HLS: MPEG-TS segmenting of a 2.5 Mbit/s H.264 + AAC stream (AVCC → Annex B, ADTS, PES,
//! 188-byte packets, segment cuts), CMAF part segmenting of the same stream, and the live
//! origin doing both (what a stream costs in media-server: parts, segments, playlists), in
//! bytes of media per second.

#![allow(missing_docs)] // criterion_group! generates an undocumented pub fn

use std::time::{Duration, SystemTime};

use bytes::{BufMut, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use videopick_flv::{Tag, TagKind};
use videopick_hls::cmaf::{CmafConfig, CmafEvent, CmafSegmenter};
use videopick_hls::origin::{LiveOrigin, OriginConfig};
use videopick_hls::{Segmenter, SegmenterConfig};

const AVC_HEADER: &[u8] = &[
    0x17, 0, 0, 0, 0, 1, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0, 5, 0x67, 0x42, 0xc0, 0x1e, 0x95, 1, 0, 4,
    0x68, 0xce, 0x3c, 0x80,
];

/// `seconds` of 25 fps video (2 s GOP; key frames 60 KB, others 11.3 KB, one slice NAL
/// each) and 43 AAC frames per second, in timestamp order.
fn stream(seconds: u32) -> Vec<Tag> {
    let mut tags = vec![
        Tag::new(TagKind::Video, 0, AVC_HEADER),
        Tag::new(TagKind::Audio, 0, &b"\xaf\x00\x12\x10"[..]),
    ];
    let mut media = Vec::new();
    for i in 0..seconds * 25 {
        let key = i % 50 == 0;
        let size = if key { 60_000 } else { 11_300 };
        let mut b = BytesMut::with_capacity(size + 9);
        b.put_slice(if key {
            &[0x17, 1, 0, 0, 0]
        } else {
            &[0x27, 1, 0, 0, 0]
        });
        b.put_u32(size as u32);
        b.put_u8(if key { 0x65 } else { 0x41 });
        b.put_bytes(0x5a, size - 1);
        media.push(Tag::new(TagKind::Video, i * 40, b.freeze()));
    }
    for i in 0..seconds * 43 {
        let mut b = vec![0xaf, 1];
        b.extend(std::iter::repeat_n(0x21, 370));
        media.push(Tag::new(TagKind::Audio, i * 1000 / 43, b));
    }
    media.sort_by_key(|t| t.timestamp);
    tags.extend(media);
    tags
}

fn hls(c: &mut Criterion) {
    let tags = stream(10);
    let media_bytes: usize = tags.iter().map(|t| t.data.len()).sum();
    let now = SystemTime::UNIX_EPOCH;
    let mut group = c.benchmark_group("hls");
    group.throughput(Throughput::Bytes(media_bytes as u64));
    group.bench_function("ts_segment_2.5mbps_10s", |b| {
        b.iter(|| {
            let mut s = Segmenter::new(SegmenterConfig::with_target(Duration::from_secs(2)));
            let mut out = 0;
            for t in &tags {
                s.push(t, now).unwrap();
                while let Some(seg) = s.pop_segment() {
                    out += seg.data.len();
                }
            }
            s.finish();
            while let Some(seg) = s.pop_segment() {
                out += seg.data.len();
            }
            assert!(out > media_bytes);
            out
        });
    });
    group.bench_function("cmaf_parts_2.5mbps_10s", |b| {
        b.iter(|| {
            let mut s = CmafSegmenter::new(CmafConfig::default());
            let mut out = 0;
            for t in &tags {
                s.push(t, now).unwrap();
                while let Some(e) = s.pop() {
                    if let CmafEvent::Part(p) = e {
                        out += p.fragment.len();
                    }
                }
            }
            s.finish();
            while let Some(e) = s.pop() {
                if let CmafEvent::Part(p) = e {
                    out += p.fragment.len();
                }
            }
            assert!(out > media_bytes);
            out
        });
    });
    // The origin as media-server runs it: both variants, and a player reloading the
    // low-latency playlist after every part (a blocking reload) and fetching the part.
    for (name, ts) in [
        ("origin_ll_2.5mbps_10s", false),
        ("origin_ll_ts_2.5mbps_10s", true),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let origin = LiveOrigin::new(OriginConfig {
                    ts,
                    ..OriginConfig::default()
                });
                let mut feed = origin.feed("live/b", 1);
                let mut served = 0;
                let mut last = None;
                for t in &tags {
                    feed.push(t, now).unwrap();
                    if let Some(text) = origin.ll_playlist("live/b", false)
                        && last != Some(text.len())
                    {
                        last = Some(text.len());
                        served += text.len();
                    }
                }
                feed.finish();
                assert!(served > 0);
                served
            });
        });
    }
    group.finish();
}

criterion_group!(benches, hls);
criterion_main!(benches);
