//! The segmenter's output against the real ffmpeg/ffprobe: inputs are encoded by ffmpeg,
//! segmented here, and must decode with no warnings at all.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::{check_ts, decode_warnings, ffmpeg_to, ffprobe, read_flv, segment_all, write_vod};
use videopick_flv::{
    FrameType, HevcConfig, HevcNalArray, Tag, TagKind, VideoCodec, VideoData, VideoPacket,
};
use videopick_hls::{Segment, SegmenterConfig};

const TARGET: Duration = Duration::from_secs(2);
const GOP: Duration = Duration::from_secs(2);

/// `secs` of 320x240 H.264 (2 s GOP, B-frames) with a 440 Hz tone encoded by `audio`.
fn h264_aac_flv(dir: &Path, secs: u32, audio: &str) -> std::path::PathBuf {
    let out = dir.join("in.flv");
    ffmpeg_to(
        &format!(
            "-f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine=frequency=440:sample_rate=44100 -t {secs} -c:v libx264 -preset ultrafast -g 50 -bf 2 -pix_fmt yuv420p {audio}"
        ),
        &out,
    );
    out
}

/// Check every segment's packets (continuity across segments), PCR spacing and cut points.
fn check_segments(segments: &[Segment], video: bool) {
    let mut cc = HashMap::new();
    let mut pcrs = Vec::new();
    for (i, s) in segments.iter().enumerate() {
        let r = check_ts(&s.data, &mut cc);
        pcrs.extend(r.pcrs);
        assert_eq!(s.sequence, i as u64);
        if video {
            assert_eq!(
                r.random_access_first,
                vec![0x100],
                "segment {i} starts without a key frame"
            );
        }
        assert!(
            s.duration <= TARGET + GOP,
            "segment {i} lasts {:?}",
            s.duration
        );
    }
    assert!(pcrs.windows(2).all(|w| w[0] <= w[1]), "PCR not monotonic");
    let max_gap = pcrs.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
    assert!(max_gap <= 3600, "PCR gap {max_gap} ticks > 40 ms");
}

fn json_f64(json: &str, key: &str) -> f64 {
    let i = json
        .find(&format!("\"{key}\""))
        .unwrap_or_else(|| panic!("{key} in {json}"));
    let rest = &json[i + key.len() + 2..];
    let rest = rest.trim_start_matches([':', ' ', '"']);
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap();
    rest[..end].parse().unwrap()
}

#[test]
fn h264_aac_segments_decode_cleanly_with_the_right_duration() {
    let dir = tempfile::tempdir().unwrap();
    let flv = h264_aac_flv(dir.path(), 12, "-c:a aac -b:a 128k");
    let tags = read_flv(&flv);
    let segments = segment_all(&tags, SegmenterConfig::with_target(TARGET));
    assert_eq!(segments.len(), 6, "12 s in 2 s GOPs");
    check_segments(&segments, true);
    let playlist = write_vod(dir.path(), &segments);

    let (ok, warnings) = decode_warnings(&playlist);
    assert!(ok && warnings.is_empty(), "ffmpeg warned:\n{warnings}");
    let probe = ffprobe(
        &playlist,
        &["-show_format", "-show_streams", "-count_frames"],
    );
    let duration = json_f64(&probe, "duration");
    assert!((duration - 12.0).abs() <= 2.0, "duration {duration}");
    assert!(probe.contains("\"codec_name\": \"h264\""), "{probe}");
    assert!(probe.contains("\"codec_name\": \"aac\""), "{probe}");
    assert!(probe.contains("\"width\": 320") && probe.contains("\"height\": 240"));
    assert!(
        probe.contains("\"nb_read_frames\": \"300\""),
        "all 300 frames: {probe}"
    );
}

#[test]
fn media_info_gives_codecs_and_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let flv = h264_aac_flv(dir.path(), 3, "-c:a aac");
    let mut s = videopick_hls::Segmenter::new(SegmenterConfig::default());
    for t in read_flv(&flv) {
        s.push(&t, std::time::SystemTime::now()).unwrap();
    }
    s.finish();
    let info = s.media_info();
    // x264 ultrafast picks Constrained Baseline (profile 66) or High (100) depending on
    // options; the string must match the SPS bytes either way.
    let codecs = info.codecs();
    assert!(
        codecs.starts_with("avc1.") && codecs.ends_with(",mp4a.40.2"),
        "{codecs}"
    );
    assert_eq!(info.resolution, Some((320, 240)));
    assert!(info.peak_bandwidth >= info.average_bandwidth && info.average_bandwidth > 0);
}

#[test]
fn h264_mp3_decodes_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let flv = h264_aac_flv(dir.path(), 5, "-c:a libmp3lame -b:a 128k");
    let segments = segment_all(&read_flv(&flv), SegmenterConfig::with_target(TARGET));
    check_segments(&segments, true);
    let playlist = write_vod(dir.path(), &segments);
    let (ok, warnings) = decode_warnings(&playlist);
    assert!(ok && warnings.is_empty(), "ffmpeg warned:\n{warnings}");
    let probe = ffprobe(&playlist, &["-show_streams"]);
    assert!(probe.contains("\"codec_name\": \"mp3\""), "{probe}");
}

#[test]
fn audio_only_and_video_only_streams() {
    let dir = tempfile::tempdir().unwrap();
    // Audio only: time-based cuts.
    let a = dir.path().join("a.flv");
    ffmpeg_to(
        "-f lavfi -i sine=frequency=440:sample_rate=48000 -t 7 -c:a aac",
        &a,
    );
    let segments = segment_all(&read_flv(&a), SegmenterConfig::with_target(TARGET));
    assert_eq!(segments.len(), 4, "7 s of audio in 2 s segments");
    check_segments(&segments, false);
    let adir = dir.path().join("a");
    std::fs::create_dir(&adir).unwrap();
    let playlist = write_vod(&adir, &segments);
    let (ok, warnings) = decode_warnings(&playlist);
    assert!(
        ok && warnings.is_empty(),
        "audio-only: ffmpeg warned:\n{warnings}"
    );
    let d = json_f64(&ffprobe(&playlist, &["-show_format"]), "duration");
    assert!((d - 7.0).abs() < 0.5, "audio-only duration {d}");

    // Video only.
    let v = dir.path().join("v.flv");
    ffmpeg_to(
        "-f lavfi -i testsrc2=size=160x120:rate=30 -t 5 -c:v libx264 -preset ultrafast -g 30",
        &v,
    );
    let segments = segment_all(&read_flv(&v), SegmenterConfig::with_target(TARGET));
    check_segments(&segments, true);
    let vdir = dir.path().join("v");
    std::fs::create_dir(&vdir).unwrap();
    let playlist = write_vod(&vdir, &segments);
    let (ok, warnings) = decode_warnings(&playlist);
    assert!(
        ok && warnings.is_empty(),
        "video-only: ffmpeg warned:\n{warnings}"
    );
    let probe = ffprobe(&playlist, &["-show_streams", "-count_frames"]);
    assert!(probe.contains("\"nb_read_frames\": \"150\""), "{probe}");
}

#[test]
fn republish_and_timestamp_jump_are_discontinuities_with_monotonic_output() {
    let dir = tempfile::tempdir().unwrap();
    let flv = h264_aac_flv(dir.path(), 4, "-c:a aac");
    let tags = read_flv(&flv);
    let mut s = videopick_hls::Segmenter::new(SegmenterConfig::with_target(TARGET));
    let now = std::time::SystemTime::now();
    let mut segments = Vec::new();
    // First publish, a republish starting again at 0 ms, then a 60 s forward jump.
    for t in &tags {
        s.push(t, now).unwrap();
    }
    s.discontinuity();
    for t in &tags {
        s.push(t, now).unwrap();
    }
    for t in &tags {
        let mut t = t.clone();
        t.timestamp += 60_000 + 4_000;
        s.push(&t, now).unwrap();
    }
    s.finish();
    while let Some(seg) = s.pop_segment() {
        segments.push(seg);
    }
    let disc: Vec<u64> = segments
        .iter()
        .filter(|s| s.discontinuity)
        .map(|s| s.sequence)
        .collect();
    assert_eq!(
        disc,
        vec![2, 4],
        "{:?}",
        segments.iter().map(|s| s.duration).collect::<Vec<_>>()
    );
    check_segments(&segments, true);
    let playlist = write_vod(dir.path(), &segments);
    let text = std::fs::read_to_string(&playlist).unwrap();
    assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 2);
    let (ok, warnings) = decode_warnings(&playlist);
    assert!(ok && warnings.is_empty(), "ffmpeg warned:\n{warnings}");
    let d = json_f64(&ffprobe(&playlist, &["-show_format"]), "duration");
    assert!((d - 12.0).abs() < 1.0, "three 4 s publishes, re-based: {d}");
}

/// Annex B HEVC from ffmpeg (ffmpeg 5.1 cannot put HEVC in FLV) turned into Enhanced RTMP
/// FLV tags: a sequence start with an HVCC record, then one coded-frames tag per AU.
#[allow(clippy::too_many_lines)] // one linear conversion, clearer in one piece
fn hevc_tags(path: &Path, fps: u32) -> Vec<Tag> {
    let data = std::fs::read(path).unwrap();
    // Split on start codes.
    let mut nals: Vec<&[u8]> = Vec::new();
    let mut i = 0;
    let mut start = None;
    while i + 3 <= data.len() {
        if data[i..i + 3] == [0, 0, 1] {
            if let Some(s) = start {
                let mut end = i;
                while end > s && data[end - 1] == 0 {
                    end -= 1;
                }
                nals.push(&data[s..end]);
            }
            i += 3;
            start = Some(i);
        } else {
            i += 1;
        }
    }
    nals.push(&data[start.unwrap()..]);
    let ty = |n: &[u8]| (n[0] >> 1) & 0x3f;
    let ps = |t: u8| -> Vec<Bytes> {
        let n = nals.iter().find(|n| ty(n) == t).unwrap();
        vec![Bytes::copy_from_slice(n)]
    };
    let config = HevcConfig {
        version: 1,
        profile_space: 0,
        high_tier: false,
        profile_idc: 1,
        compatibility_flags: 0x6000_0000,
        constraint_flags: 0x9000_0000_0000,
        level_idc: 60,
        min_spatial_segmentation: 0,
        parallelism_type: 0,
        chroma_format: 1,
        bit_depth_luma_minus8: 0,
        bit_depth_chroma_minus8: 0,
        avg_frame_rate: 0,
        constant_frame_rate: 0,
        num_temporal_layers: 1,
        temporal_id_nested: true,
        nalu_length_size: 4,
        arrays: [32u8, 33, 34]
            .into_iter()
            .map(|t| HevcNalArray {
                complete: true,
                nal_type: t,
                nalus: ps(t),
            })
            .collect(),
    };
    let tag = |ts: u32, frame_type, packet, body: Bytes| {
        let v = VideoData {
            frame_type,
            codec: VideoCodec::Hevc,
            packet,
            composition_time: 0,
            enhanced: true,
            body,
        };
        Tag::new(TagKind::Video, ts, v.to_bytes().unwrap())
    };
    let mut tags = vec![tag(
        0,
        FrameType::Key,
        VideoPacket::SequenceStart,
        config.to_bytes().unwrap(),
    )];
    // Group into access units at each AUD (x265 aud=1).
    let mut au = BytesMut::new();
    let mut key = false;
    let mut n = 0u32;
    let mut flush = |au: &mut BytesMut, key: &mut bool, tags: &mut Vec<Tag>| {
        if !au.is_empty() {
            let ft = if *key {
                FrameType::Key
            } else {
                FrameType::Inter
            };
            tags.push(tag(
                n * 1000 / fps,
                ft,
                VideoPacket::CodedFramesX,
                au.split().freeze(),
            ));
            n += 1;
            *key = false;
        }
    };
    for nal in &nals {
        let t = ty(nal);
        if t == 35 {
            flush(&mut au, &mut key, &mut tags);
            continue;
        }
        if (16..=23).contains(&t) {
            key = true;
        }
        au.put_u32(nal.len() as u32);
        au.put_slice(nal);
    }
    flush(&mut au, &mut key, &mut tags);
    tags
}

#[test]
fn hevc_segments_decode_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("in.hevc");
    ffmpeg_to(
        "-f lavfi -i testsrc2=size=320x240:rate=25 -t 6 -c:v libx265 -preset ultrafast -x265-params aud=1:bframes=0:keyint=50:min-keyint=50:scenecut=0:log-level=error -f hevc",
        &raw,
    );
    let tags = hevc_tags(&raw, 25);
    let segments = segment_all(&tags, SegmenterConfig::with_target(TARGET));
    assert_eq!(segments.len(), 3);
    check_segments(&segments, true);
    let playlist = write_vod(dir.path(), &segments);
    let (ok, warnings) = decode_warnings(&playlist);
    assert!(ok && warnings.is_empty(), "ffmpeg warned:\n{warnings}");
    let probe = ffprobe(&playlist, &["-show_streams", "-count_frames"]);
    assert!(probe.contains("\"codec_name\": \"hevc\""), "{probe}");
    assert!(probe.contains("\"nb_read_frames\": \"150\""), "{probe}");
}
