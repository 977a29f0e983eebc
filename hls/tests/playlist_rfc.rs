//! Playlists checked with an independent parser (`m3u8-rs`) and against RFC 8216 rules,
//! explicitly: a live origin fed a real ffmpeg-encoded stream (with a republish) is
//! reloaded after every segment, as a player would.

// Small, non-negative durations and counts: casts between them are exact here.
#![allow(
    clippy::cast_sign_loss,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation
)]

mod common;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::{ffmpeg_to, read_flv};
use videopick_hls::origin::{LiveOrigin, OriginConfig};
use videopick_hls::{MasterPlaylist, SegmenterConfig, Variant};

fn parse_media(text: &str) -> m3u8_rs::MediaPlaylist {
    m3u8_rs::parse_media_playlist_res(text.as_bytes())
        .unwrap_or_else(|e| panic!("m3u8-rs rejects our playlist: {e:?}\n{text}"))
}

#[test]
#[allow(clippy::too_many_lines)] // one reload story with its checks
fn live_reloads_follow_rfc_8216() {
    let dir = tempfile::tempdir().unwrap();
    let flv = dir.path().join("in.flv");
    ffmpeg_to(
        "-f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine=sample_rate=44100 -t 12 -c:v libx264 -preset ultrafast -g 50 -c:a aac",
        &flv,
    );
    let tags = read_flv(&flv);
    let origin = LiveOrigin::new(OriginConfig {
        segmenter: SegmenterConfig::with_target(Duration::from_secs(2)),
        window: 3,
        extra: 2,
        ..OriginConfig::default()
    });
    let mut feed = origin.feed("live/x", 42);
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_680_000);
    let mut snapshots = Vec::new();
    let mut all: HashMap<u64, (String, bool)> = HashMap::new();
    // Two publishes of the same 12 s (the second a republish: one discontinuity).
    for round in 0..2u64 {
        if round == 1 {
            feed.discontinuity();
        }
        for t in &tags {
            let now = t0 + Duration::from_millis(round * 12_000 + u64::from(t.timestamp));
            if !feed.push(t, now).unwrap().is_empty() {
                snapshots
                    .push(String::from_utf8(origin.playlist("live/x").unwrap().to_vec()).unwrap());
            }
        }
    }
    feed.finish();
    let last = String::from_utf8(origin.playlist("live/x").unwrap().to_vec()).unwrap();
    assert!(snapshots.len() >= 10, "{} reloads", snapshots.len());

    let mut produced = Duration::ZERO;
    let mut prev_seq = 0;
    let mut prev_target = None;
    for text in &snapshots {
        let p = parse_media(text);
        // 4.3.1.2: EXTINF with decimals needs version >= 3.
        assert!(p.version.unwrap_or(1) >= 3, "{text}");
        // 4.3.3.1: each EXTINF rounded is <= EXT-X-TARGETDURATION.
        for s in &p.segments {
            assert!(
                f64::from(s.duration).round() as u64 <= p.target_duration,
                "{} > target {}\n{text}",
                s.duration,
                p.target_duration
            );
        }
        // 6.2.1: the target duration does not change between reloads (regular GOPs here).
        if let Some(t) = prev_target {
            assert_eq!(p.target_duration, t, "target changed\n{text}");
        }
        prev_target = Some(p.target_duration);
        // 6.2.1: media sequence never goes back; a sequence number always names the same
        // URI with the same discontinuity.
        assert!(p.media_sequence >= prev_seq);
        prev_seq = p.media_sequence;
        for (i, s) in p.segments.iter().enumerate() {
            let seq = p.media_sequence + i as u64;
            let e = all
                .entry(seq)
                .or_insert_with(|| (s.uri.clone(), s.discontinuity));
            assert_eq!(
                (&e.0, e.1),
                (&s.uri, s.discontinuity),
                "sequence {seq} changed"
            );
            assert_eq!(s.uri, format!("x-42-{seq}.ts"));
        }
        // 6.2.2: the playlist never shrinks below three target durations of media.
        let listed: f64 = p.segments.iter().map(|s| f64::from(s.duration)).sum();
        produced = produced.max(Duration::from_secs_f64(listed));
        let floor = (3 * p.target_duration) as f64;
        assert!(
            listed + 0.001 >= floor.min(produced.as_secs_f64()),
            "{listed} s listed\n{text}"
        );
        // 6.2.2: EXT-X-DISCONTINUITY-SEQUENCE counts the discontinuities removed.
        let removed = all
            .iter()
            .filter(|(seq, (_, disc))| **seq < p.media_sequence && *disc)
            .count() as u64;
        assert_eq!(p.discontinuity_sequence, removed, "{text}");
        // Program date-times advance with the media.
        let dates: Vec<_> = p
            .segments
            .iter()
            .filter_map(|s| s.program_date_time)
            .collect();
        assert_eq!(dates.len(), p.segments.len());
        assert!(dates.windows(2).all(|w| w[0] < w[1]), "{text}");
        // A live playlist has no type and no end.
        assert!(!p.end_list && p.playlist_type.is_none(), "{text}");
    }
    assert_eq!(all.values().filter(|(_, d)| *d).count(), 1, "one republish");
    let p = parse_media(&last);
    assert!(p.end_list, "the finished stream ends its playlist");
}

#[test]
fn master_playlist_codecs_match_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let flv = dir.path().join("in.flv");
    ffmpeg_to(
        "-f lavfi -i testsrc2=size=640x360:rate=30 -f lavfi -i sine=sample_rate=48000 -t 4 -c:v libx264 -profile:v high -preset veryfast -g 60 -c:a aac",
        &flv,
    );
    let mut s = videopick_hls::Segmenter::new(SegmenterConfig::default());
    for t in read_flv(&flv) {
        s.push(&t, SystemTime::now()).unwrap();
    }
    s.finish();
    let info = s.media_info();

    // What ffprobe says about the same file.
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=profile,level",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(&flv)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("profile=High"), "{text}");
    let level: u8 = text
        .lines()
        .find_map(|l| l.strip_prefix("level="))
        .unwrap()
        .parse()
        .unwrap();
    let video = info.video_codec.clone().unwrap();
    assert!(
        video.starts_with("avc1.64"),
        "High profile is 0x64: {video}"
    );
    assert_eq!(
        &video[9..11],
        format!("{level:02x}"),
        "level {level}: {video}"
    );
    assert_eq!(info.audio_codec.as_deref(), Some("mp4a.40.2"));
    assert_eq!(info.resolution, Some((640, 360)));

    let master = MasterPlaylist {
        variants: vec![Variant {
            bandwidth: info.peak_bandwidth,
            average_bandwidth: Some(info.average_bandwidth),
            resolution: info.resolution,
            frame_rate: info.frame_rate,
            codecs: Some(info.codecs()),
            uri: "360p.m3u8".into(),
        }],
        independent_segments: true,
    };
    let text = master.render();
    let m = m3u8_rs::parse_master_playlist_res(text.as_bytes()).unwrap();
    assert!(m.independent_segments);
    let v = &m.variants[0];
    assert_eq!(v.uri, "360p.m3u8");
    assert_eq!(v.bandwidth, info.peak_bandwidth);
    assert_eq!(v.codecs.as_deref(), Some(info.codecs().as_str()));
    let r = v.resolution.unwrap();
    assert_eq!((r.width, r.height), (640, 360));
    // The SPS of x264 carries timing info: 30 fps.
    assert!(
        v.frame_rate.is_some_and(|f| (f - 30.0).abs() < 0.01),
        "{text}"
    );
}

#[test]
fn event_and_vod_playlists_parse_with_their_type() {
    use videopick_hls::{MediaPlaylist, PlaylistEntry, PlaylistKind};
    let mut p = MediaPlaylist::new(PlaylistKind::Event);
    for i in 0..3 {
        p.push(PlaylistEntry {
            sequence: i,
            uri: format!("{i}.ts"),
            duration: Duration::from_millis(2002),
            discontinuity: false,
            program_date_time: None,
        });
    }
    let e = parse_media(&p.render());
    assert_eq!(e.playlist_type, Some(m3u8_rs::MediaPlaylistType::Event));
    assert_eq!(e.segments.len(), 3);
    assert_eq!(e.target_duration, 2, "2.002 s rounds to a 2 s target");
    p.set_kind(PlaylistKind::Vod);
    p.end();
    let v = parse_media(&p.render());
    assert_eq!(v.playlist_type, Some(m3u8_rs::MediaPlaylistType::Vod));
    assert!(v.end_list);
    assert!((v.segments[2].duration - 2.002).abs() < 1e-6);
}
