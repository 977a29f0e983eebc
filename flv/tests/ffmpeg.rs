//! Against the real thing: an FLV file written by ffmpeg (libx264 + AAC) is demuxed and its
//! tags compared with what `ffprobe -show_packets` says about the same file; our muxer's
//! output of those tags is read back by ffprobe.

use std::path::Path;
use std::process::Command;

use bytes::BytesMut;
use videopick_flv::{
    AudioData, AudioSpecificConfig, AvcConfig, FlvDemuxer, FlvHeader, FlvItem, FlvMuxer,
    OnMetaData, Tag, TagKind, VideoData, VideoPacket,
};

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?} (is ffmpeg installed?): {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn make_flv(path: &Path) {
    run(Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=320x240:rate=25",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=44100",
            "-t",
            "2",
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-g",
            "25",
            "-bf",
            "2",
            "-c:a",
            "aac",
            "-ac",
            "1",
            "-f",
            "flv",
        ])
        .arg(path));
}

#[derive(Debug, PartialEq)]
struct Packet {
    video: bool,
    dts: i64,
    pts: i64,
    size: usize,
    key: bool,
}

fn ffprobe_packets(path: &Path) -> Vec<Packet> {
    let csv = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_packets",
            "-show_entries",
            "packet=codec_type,pts,dts,size,flags",
            "-of",
            "csv=p=0",
        ])
        .arg(path));
    csv.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Packet {
                video: f[0] == "video",
                pts: f[1].parse().unwrap(),
                dts: f[2].parse().unwrap(),
                size: f[3].parse().unwrap(),
                key: f[4].starts_with('K'),
            }
        })
        .collect()
}

fn demux(path: &Path) -> Vec<Tag> {
    let mut buf = BytesMut::from(&std::fs::read(path).unwrap()[..]);
    let mut d = FlvDemuxer::new();
    let mut tags = Vec::new();
    while let Some(item) = d.decode(&mut buf).unwrap() {
        if let FlvItem::Tag(t) = item {
            tags.push(t);
        }
    }
    assert!(buf.is_empty(), "{} bytes left undecoded", buf.len());
    assert_eq!(d.previous_tag_size_mismatches(), 0);
    tags
}

#[test]
fn demuxes_ffmpeg_flv_exactly_as_ffprobe_sees_it() {
    let dir = tempfile_dir();
    let path = dir.join("in.flv");
    make_flv(&path);
    let tags = demux(&path);

    // Metadata and configs.
    let meta = OnMetaData::parse(&tags[0].data).unwrap();
    assert_eq!((meta.width, meta.height), (Some(320.0), Some(240.0)));
    let mut packets = Vec::new();
    let mut avc = None;
    let mut asc = None;
    for t in &tags {
        match t.kind {
            TagKind::Video => {
                let v = VideoData::parse(&t.data).unwrap();
                if v.is_sequence_header() {
                    avc = Some(AvcConfig::parse(&v.body).unwrap());
                } else if v.packet == VideoPacket::SequenceEnd {
                    // ffmpeg writes an AVC end-of-sequence tag; ffprobe shows no packet for it.
                    assert!(v.body.is_empty());
                } else {
                    packets.push(Packet {
                        video: true,
                        dts: i64::from(t.timestamp),
                        pts: i64::from(t.timestamp) + i64::from(v.composition_time),
                        size: v.body.len(),
                        key: v.is_keyframe(),
                    });
                }
            }
            TagKind::Audio => {
                let a = AudioData::parse(&t.data).unwrap();
                if a.is_sequence_header() {
                    asc = Some(AudioSpecificConfig::parse(&a.body).unwrap());
                } else {
                    packets.push(Packet {
                        video: false,
                        dts: i64::from(t.timestamp),
                        pts: i64::from(t.timestamp),
                        size: a.body.len(),
                        key: true,
                    });
                }
            }
            TagKind::Script => {}
        }
    }
    let avc = avc.expect("no AVC sequence header");
    let sps = avc.sps_info().unwrap();
    assert_eq!((sps.width, sps.height), (320, 240));
    assert_eq!(avc.codec_string()[..7].to_string(), "avc1.64");
    let asc = asc.expect("no AAC sequence header");
    assert_eq!(
        (asc.sample_rate, asc.channels(), asc.object_type),
        (44_100, 1, 2)
    );

    let probed = ffprobe_packets(&path);
    assert!(
        probed.iter().any(|p| p.pts != p.dts),
        "B-frames expected to test composition time"
    );
    assert_eq!(packets, probed);

    // Our muxer's output of the same tags reads back identically in ffprobe.
    let mut out = BytesMut::new();
    let mut mux = FlvMuxer::new();
    mux.write_header(
        FlvHeader {
            version: 1,
            has_audio: true,
            has_video: true,
        },
        &mut out,
    );
    for t in &tags {
        mux.write_tag(t, &mut out).unwrap();
    }
    let remuxed = dir.join("out.flv");
    std::fs::write(&remuxed, &out).unwrap();
    assert_eq!(ffprobe_packets(&remuxed), probed);
    std::fs::remove_dir_all(dir).unwrap();
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("videopick-flv-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
