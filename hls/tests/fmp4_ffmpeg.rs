//! The fMP4 writer against the real ffmpeg/ffprobe and an independent MP4 parser
//! (`mp4-atom`): FLV from ffmpeg (H.264 with B-frames + AAC) becomes an init segment and
//! 2 s fragments that decode with no warnings, with every frame, and whose boxes another
//! reader sees as written (sample counts, durations, tfdt continuity).

// Test arithmetic on small known inputs (a few seconds of media).
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap,
    clippy::too_many_lines
)]

mod common;

use bytes::BytesMut;
use common::{decode_warnings, ffmpeg_to, ffprobe, read_flv};
use mp4_atom::{Any, DecodeMaybe};
use videopick_flv::{
    AudioData, AudioSpecificConfig, AvcConfig, FrameType, TagKind, VideoData, VideoPacket,
};
use videopick_hls::fmp4::{
    Sample, SampleEntry, TrackConfig, TrackFragment, fragment, init_segment,
};

struct Built {
    file: Vec<u8>,
    video_frames: usize,
    audio_frames: usize,
    /// Per fragment and track: (base decode time, sample count, total duration).
    runs: Vec<[(u64, usize, u64); 2]>,
}

/// An FLV file as init segment + fragments cut at the first key frame after 2 s.
fn build(tags: &[videopick_flv::Tag]) -> Built {
    let mut video_cfg = None;
    let mut audio_cfg = None;
    // (dts ms, cts ms, key, data)
    let mut video = Vec::new();
    let mut audio = Vec::new();
    for t in tags {
        match t.kind {
            TagKind::Video => {
                let v = VideoData::parse(&t.data).unwrap();
                match v.packet {
                    VideoPacket::SequenceStart => video_cfg = Some(v.body.clone()),
                    VideoPacket::CodedFrames | VideoPacket::CodedFramesX => video.push((
                        i64::from(t.timestamp),
                        v.composition_time,
                        v.frame_type == FrameType::Key,
                        v.body.clone(),
                    )),
                    _ => {}
                }
            }
            TagKind::Audio => {
                let a = AudioData::parse(&t.data).unwrap();
                match a.aac_packet_type {
                    Some(videopick_flv::AacPacketType::SequenceHeader) => {
                        audio_cfg = Some(a.body.clone());
                    }
                    Some(videopick_flv::AacPacketType::Raw) => audio.push(a.body.clone()),
                    None => {}
                }
            }
            TagKind::Script => {}
        }
    }
    let vcfg = video_cfg.expect("a video sequence header");
    let avc = AvcConfig::parse(&vcfg).unwrap();
    let sps = videopick_flv::avc::SpsInfo::parse(&avc.sps[0]).unwrap();
    let acfg = audio_cfg.expect("an audio sequence header");
    let asc = AudioSpecificConfig::parse(&acfg).unwrap();
    let mut file = BytesMut::new();
    file.extend_from_slice(&init_segment(&[
        TrackConfig {
            id: 1,
            timescale: 90_000,
            entry: SampleEntry::Avc {
                config: vcfg,
                width: sps.width as u16,
                height: sps.height as u16,
            },
        },
        TrackConfig {
            id: 2,
            timescale: asc.sample_rate,
            entry: SampleEntry::Aac {
                config: acfg,
                sample_rate: asc.sample_rate,
                channels: u16::from(asc.channel_config),
            },
        },
    ]));
    // Video samples: durations from the next frame's DTS (the last one repeats the previous).
    let vs: Vec<Sample> = video
        .iter()
        .enumerate()
        .map(|(i, (dts, cts, key, data))| {
            let next = video.get(i + 1).map_or(dts + 40, |n| n.0);
            Sample {
                duration: ((next - dts) * 90) as u32,
                data: data.clone(),
                key: *key,
                composition_offset: cts * 90,
            }
        })
        .collect();
    let as_: Vec<Sample> = audio
        .iter()
        .map(|d| Sample {
            duration: 1024,
            data: d.clone(),
            key: true,
            composition_offset: 0,
        })
        .collect();
    // Cut at key frames ≥ 2 s apart; audio up to the same time.
    let mut cuts = vec![0usize];
    for (i, (dts, _, key, _)) in video.iter().enumerate() {
        if *key && *dts - video[*cuts.last().unwrap()].0 >= 2000 {
            cuts.push(i);
        }
    }
    cuts.push(video.len());
    let mut runs = Vec::new();
    let (mut vt, mut at, mut ai) = (0u64, 0u64, 0usize);
    for (n, w) in cuts.windows(2).enumerate() {
        let vpart = &vs[w[0]..w[1]];
        let end_ms = video.get(w[1]).map_or(i64::MAX, |x| x.0);
        let mut aj = ai;
        while aj < as_.len() && (aj as i64 * 1024 * 1000 / i64::from(asc.sample_rate)) < end_ms {
            aj += 1;
        }
        let apart = &as_[ai..aj];
        let f = fragment(
            n as u32 + 1,
            &[
                TrackFragment {
                    track_id: 1,
                    base_decode_time: vt,
                    samples: vpart,
                },
                TrackFragment {
                    track_id: 2,
                    base_decode_time: at,
                    samples: apart,
                },
            ],
        );
        file.extend_from_slice(&f.to_bytes());
        let vd: u64 = vpart.iter().map(|s| u64::from(s.duration)).sum();
        let ad: u64 = apart.iter().map(|s| u64::from(s.duration)).sum();
        runs.push([(vt, vpart.len(), vd), (at, apart.len(), ad)]);
        vt += vd;
        at += ad;
        ai = aj;
    }
    Built {
        file: file.to_vec(),
        video_frames: vs.len(),
        audio_frames: as_.len(),
        runs,
    }
}

#[test]
fn h264_and_aac_fragments_decode_with_every_frame() {
    let dir = tempfile::tempdir().unwrap();
    let flv = dir.path().join("in.flv");
    ffmpeg_to(
        "-f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine=frequency=440:sample_rate=44100 -t 7 -c:v libx264 -preset ultrafast -g 50 -bf 2 -pix_fmt yuv420p -c:a aac",
        &flv,
    );
    let built = build(&read_flv(&flv));
    assert!(built.runs.len() >= 3, "{} fragments", built.runs.len());
    let out = dir.path().join("out.mp4");
    std::fs::write(&out, &built.file).unwrap();

    // ffmpeg decodes it with no warnings; ffprobe counts every frame.
    let (ok, warnings) = decode_warnings(&out);
    assert!(ok && warnings.trim().is_empty(), "{warnings}");
    let v = ffprobe(
        &out,
        &[
            "-select_streams",
            "v:0",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames,codec_name,width,height",
        ],
    );
    assert!(v.contains("\"codec_name\": \"h264\""), "{v}");
    assert!(
        v.contains("\"width\": 320") && v.contains("\"height\": 240"),
        "{v}"
    );
    assert!(
        v.contains(&format!("\"nb_read_frames\": \"{}\"", built.video_frames)),
        "{v}"
    );
    let a = ffprobe(
        &out,
        &[
            "-select_streams",
            "a:0",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames,codec_name,sample_rate,channels",
        ],
    );
    assert!(
        a.contains("\"codec_name\": \"aac\"") && a.contains("\"sample_rate\": \"44100\""),
        "{a}"
    );
    assert!(
        a.contains(&format!("\"nb_read_frames\": \"{}\"", built.audio_frames)),
        "{a}"
    );

    // Another reader's view of the boxes.
    let mut buf = std::io::Cursor::new(&built.file[..]);
    let mut moofs = Vec::new();
    let mut mdats = 0;
    let mut moov = None;
    while let Some(atom) = Any::decode_maybe(&mut buf).unwrap() {
        match atom {
            Any::Moov(m) => moov = Some(m),
            Any::Moof(m) => moofs.push(m),
            Any::Mdat(_) => mdats += 1,
            _ => {}
        }
    }
    let moov = moov.expect("a moov");
    assert_eq!(moov.trak.len(), 2);
    assert_eq!(moov.mvex.as_ref().unwrap().trex.len(), 2);
    assert_eq!(moov.trak[0].mdia.mdhd.timescale, 90_000);
    assert_eq!(moov.trak[1].mdia.mdhd.timescale, 44_100);
    assert_eq!((moofs.len(), mdats), (built.runs.len(), built.runs.len()));
    for (i, (moof, run)) in moofs.iter().zip(&built.runs).enumerate() {
        assert_eq!(moof.mfhd.sequence_number, i as u32 + 1);
        for (t, traf) in moof.traf.iter().enumerate() {
            let (base, count, dur) = run[t];
            assert_eq!(
                traf.tfdt.as_ref().unwrap().base_media_decode_time,
                base,
                "fragment {i} track {t}"
            );
            let entries: Vec<_> = traf.trun.iter().flat_map(|r| r.samples.iter()).collect();
            assert_eq!(entries.len(), count, "fragment {i} track {t}");
            let total: u64 = entries
                .iter()
                .map(|e| u64::from(e.duration.unwrap_or(0)))
                .sum();
            assert_eq!(total, dur, "fragment {i} track {t}");
            if t == 0 {
                // Each video fragment starts with a key frame.
                let flags = entries[0].flags.unwrap_or(0);
                assert_eq!(
                    flags & 0x0001_0000,
                    0,
                    "fragment {i} starts with a non-sync sample"
                );
            }
        }
        // tfdt continuity: this fragment starts where the previous ended.
        if i > 0 {
            for (now, prev) in run.iter().zip(&built.runs[i - 1]) {
                assert_eq!(now.0, prev.0 + prev.2);
            }
        }
    }
}
