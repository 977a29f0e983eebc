//! The CMAF segmenter against ffmpeg and an independent MP4 parser: FLV from ffmpeg becomes
//! an init segment and parts of at most the part target, grouped into segments that start
//! with key frames; init + every part decodes with every frame and no warning, and each
//! track's decode times run on without a gap from part to part.

// Test arithmetic on small known inputs.
#![allow(clippy::cast_possible_truncation, clippy::too_many_lines)]

mod common;

use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use common::{decode_warnings, ffmpeg_to, ffprobe, read_flv};
use mp4_atom::{Any, DecodeMaybe};
use videopick_flv::{TagKind, VideoData, VideoPacket};
use videopick_hls::cmaf::{CmafConfig, CmafEvent, CmafSegmenter};

const PART: Duration = Duration::from_millis(333);

/// Run `flv` through the segmenter; (the file init + parts, events, coded video frames).
fn segment(flv: &std::path::Path) -> (Vec<u8>, Vec<CmafEvent>, usize) {
    let tags = read_flv(flv);
    let frames = tags
        .iter()
        .filter(|t| t.kind == TagKind::Video)
        .filter(|t| {
            VideoData::parse(&t.data).is_ok_and(|v| {
                matches!(
                    v.packet,
                    VideoPacket::CodedFrames | VideoPacket::CodedFramesX
                )
            })
        })
        .count();
    let mut s = CmafSegmenter::new(CmafConfig {
        part_target: PART,
        ..CmafConfig::default()
    });
    let now = SystemTime::now();
    let mut events = Vec::new();
    for t in &tags {
        s.push(t, now).unwrap();
        while let Some(e) = s.pop() {
            events.push(e);
        }
    }
    s.finish();
    while let Some(e) = s.pop() {
        events.push(e);
    }
    let mut file = BytesMut::new();
    for e in &events {
        match e {
            CmafEvent::Init(b) => file.extend_from_slice(b),
            CmafEvent::Part(p) => file.extend_from_slice(&p.fragment.to_bytes()),
            CmafEvent::SegmentEnd { .. } => {}
        }
    }
    (file.to_vec(), events, frames)
}

/// Parts ≤ the part target, segments made of their parts, each segment's first part
/// independent; returns the number of segments.
fn check_events(events: &[CmafEvent], video: bool) -> usize {
    assert!(
        matches!(events[0], CmafEvent::Init(_)),
        "an init segment first"
    );
    let mut parts = Duration::ZERO;
    let mut expect_index = 0;
    let mut segments = 0;
    for e in &events[1..] {
        match e {
            CmafEvent::Init(_) => panic!("one init segment for one configuration"),
            CmafEvent::Part(p) => {
                assert_eq!(p.segment, segments as u64);
                assert_eq!(p.index, expect_index);
                assert!(
                    p.duration <= PART,
                    "part {}/{} lasts {:?}",
                    p.segment,
                    p.index,
                    p.duration
                );
                assert!(!p.duration.is_zero());
                if p.index == 0 {
                    assert!(
                        p.independent,
                        "segment {} starts without a key frame",
                        p.segment
                    );
                }
                if !video {
                    assert!(p.independent);
                }
                parts += p.duration;
                expect_index += 1;
            }
            CmafEvent::SegmentEnd {
                sequence, duration, ..
            } => {
                assert_eq!(*sequence, segments as u64);
                assert_eq!(*duration, parts, "segment {sequence} = its parts");
                if video {
                    assert!(*duration <= Duration::from_secs(4), "{duration:?}");
                }
                parts = Duration::ZERO;
                expect_index = 0;
                segments += 1;
            }
        }
    }
    segments
}

/// Each track's tfdt continues where the previous fragment of that track ended.
fn check_continuity(file: &[u8]) {
    let mut buf = std::io::Cursor::new(file);
    let mut next: [Option<u64>; 3] = [None; 3];
    let mut moofs = 0;
    while let Some(atom) = Any::decode_maybe(&mut buf).unwrap() {
        if let Any::Moof(m) = atom {
            moofs += 1;
            for traf in &m.traf {
                let id = traf.tfhd.track_id as usize;
                let base = traf.tfdt.as_ref().unwrap().base_media_decode_time;
                if let Some(n) = next[id] {
                    assert_eq!(base, n, "track {id} fragment {moofs}: gap or overlap");
                }
                let total: u64 = traf
                    .trun
                    .iter()
                    .flat_map(|r| r.samples.iter())
                    .map(|e| u64::from(e.duration.unwrap_or(0)))
                    .sum();
                next[id] = Some(base + total);
            }
        }
    }
    assert!(moofs > 0);
}

fn frames_read(file: &std::path::Path, stream: &str) -> String {
    ffprobe(
        file,
        &[
            "-select_streams",
            stream,
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames,codec_name",
        ],
    )
}

#[test]
fn h264_aac_with_b_frames_in_parts() {
    let dir = tempfile::tempdir().unwrap();
    let flv = dir.path().join("in.flv");
    ffmpeg_to(
        "-f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine=frequency=440:sample_rate=44100 -t 9 -c:v libx264 -preset ultrafast -g 50 -bf 2 -pix_fmt yuv420p -c:a aac",
        &flv,
    );
    let (file, events, frames) = segment(&flv);
    assert!(check_events(&events, true) >= 4);
    check_continuity(&file);
    let out = dir.path().join("out.mp4");
    std::fs::write(&out, &file).unwrap();
    let (ok, warnings) = decode_warnings(&out);
    assert!(ok && warnings.trim().is_empty(), "{warnings}");
    let v = frames_read(&out, "v:0");
    assert!(
        v.contains(&format!("\"nb_read_frames\": \"{frames}\"")),
        "{frames} frames: {v}"
    );
    assert!(frames_read(&out, "a:0").contains("\"codec_name\": \"aac\""));
}

#[test]
fn audio_only_and_video_only_streams() {
    let dir = tempfile::tempdir().unwrap();
    let audio = dir.path().join("a.flv");
    ffmpeg_to(
        "-f lavfi -i sine=frequency=440:sample_rate=48000 -t 5 -c:a aac",
        &audio,
    );
    let (file, events, _) = segment(&audio);
    assert!(check_events(&events, false) >= 2);
    check_continuity(&file);
    let out = dir.path().join("a.mp4");
    std::fs::write(&out, &file).unwrap();
    let (ok, warnings) = decode_warnings(&out);
    assert!(ok && warnings.trim().is_empty(), "{warnings}");

    let video = dir.path().join("v.flv");
    ffmpeg_to(
        "-f lavfi -i testsrc2=size=320x240:rate=30 -t 5 -c:v libx264 -preset ultrafast -g 30 -pix_fmt yuv420p",
        &video,
    );
    let (file, events, frames) = segment(&video);
    assert!(check_events(&events, true) >= 2);
    check_continuity(&file);
    let out = dir.path().join("v.mp4");
    std::fs::write(&out, &file).unwrap();
    let (ok, warnings) = decode_warnings(&out);
    assert!(ok && warnings.trim().is_empty(), "{warnings}");
    assert!(frames_read(&out, "v:0").contains(&format!("\"nb_read_frames\": \"{frames}\"")));
}
