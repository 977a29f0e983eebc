//! Test helpers: an independent MPEG-TS checker, and FLV input made by the real ffmpeg.

#![allow(dead_code, unreachable_pub, clippy::too_many_lines)]

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use bytes::BytesMut;
use videopick_flv::{FlvDemuxer, FlvItem, Tag};
use videopick_hls::crc::crc32_mpeg2;
use videopick_hls::{PlaylistEntry, Segment};

/// What [`check_ts`] found.
#[derive(Debug, Default)]
pub struct TsReport {
    pub packets: usize,
    /// PES packets per PID.
    pub pes: HashMap<u16, usize>,
    /// PCR values (90 kHz base) in order.
    pub pcrs: Vec<u64>,
    /// PTS of each PES per PID.
    pub pts: HashMap<u16, Vec<u64>>,
    /// Streams from the PMT: (stream_type, pid).
    pub streams: Vec<(u8, u16)>,
    /// PIDs whose first PES has the random-access indicator.
    pub random_access_first: Vec<u16>,
}

fn ts33(b: &[u8]) -> u64 {
    (u64::from(b[0] >> 1) & 7) << 30
        | u64::from(b[1]) << 22
        | u64::from(b[2] >> 1) << 15
        | u64::from(b[3]) << 7
        | u64::from(b[4] >> 1)
}

/// Check the properties a demuxer relies on; `cc` carries continuity counters across
/// segments. Panics with a message on the first violation.
pub fn check_ts(data: &[u8], cc: &mut HashMap<u16, u8>) -> TsReport {
    assert_eq!(data.len() % 188, 0, "not a whole number of packets");
    let mut r = TsReport::default();
    let mut pes_buf: HashMap<u16, Vec<u8>> = HashMap::new();
    let mut pmt_pid = None;
    let mut pcr_pid = None;
    let mut first_pes_seen: HashMap<u16, bool> = HashMap::new();
    let finish_pes = |pid: u16, buf: Vec<u8>, r: &mut TsReport| {
        assert_eq!(&buf[..3], &[0, 0, 1], "PES start code on PID {pid}");
        let len = usize::from(u16::from_be_bytes([buf[4], buf[5]]));
        if len != 0 {
            assert_eq!(len, buf.len() - 6, "PES_packet_length on PID {pid}");
        } else {
            assert!(
                pid == 0x100,
                "unbounded PES length on a non-video PID {pid}"
            );
        }
        let flags = buf[7];
        assert!(flags & 0x80 != 0, "PES without PTS on PID {pid}");
        let pts = ts33(&buf[9..14]);
        if flags & 0x40 != 0 {
            let dts = ts33(&buf[14..19]);
            assert!(dts <= pts, "DTS after PTS on PID {pid}");
        }
        r.pts.entry(pid).or_default().push(pts);
        *r.pes.entry(pid).or_default() += 1;
    };
    for p in data.chunks(188) {
        r.packets += 1;
        assert_eq!(p[0], 0x47, "sync byte");
        assert_eq!(p[1] & 0x80, 0, "transport error indicator");
        let pusi = p[1] & 0x40 != 0;
        let pid = u16::from(p[1] & 0x1f) << 8 | u16::from(p[2]);
        let afc = (p[3] >> 4) & 3;
        assert_ne!(afc, 0, "reserved adaptation_field_control");
        let counter = p[3] & 0x0f;
        let has_payload = afc & 1 != 0;
        if has_payload {
            if let Some(prev) = cc.get(&pid) {
                assert_eq!(
                    counter,
                    (prev + 1) & 0x0f,
                    "continuity counter on PID {pid}"
                );
            }
            cc.insert(pid, counter);
        } else if let Some(prev) = cc.get(&pid) {
            assert_eq!(counter, *prev, "CC of a payload-less packet on PID {pid}");
        }
        let mut i = 4;
        let mut random_access = false;
        if afc & 2 != 0 {
            let len = usize::from(p[4]);
            assert!(len <= 183, "adaptation field length");
            if afc == 2 {
                assert_eq!(len, 183, "adaptation-only packet must fill the packet");
            }
            if len > 0 {
                let flags = p[5];
                random_access = flags & 0x40 != 0;
                if flags & 0x10 != 0 {
                    assert_eq!(Some(pid), pcr_pid, "PCR on a PID other than PCR_PID");
                    let b = &p[6..12];
                    let base = u64::from(b[0]) << 25
                        | u64::from(b[1]) << 17
                        | u64::from(b[2]) << 9
                        | u64::from(b[3]) << 1
                        | u64::from(b[4] >> 7);
                    r.pcrs.push(base);
                }
                // Stuffing after the flags' fields is 0xFF.
            }
            i = 5 + len;
        }
        if !has_payload {
            continue;
        }
        let payload = &p[i..];
        if pid == 0 || Some(pid) == pmt_pid {
            assert!(pusi, "PSI without payload_unit_start");
            let ptr = usize::from(payload[0]);
            let sec = &payload[1 + ptr..];
            let slen = usize::from(u16::from_be_bytes([sec[1], sec[2]]) & 0x0fff);
            let section = &sec[..3 + slen];
            assert_eq!(
                crc32_mpeg2(section),
                0,
                "CRC of table {} on PID {pid}",
                sec[0]
            );
            if pid == 0 {
                assert_eq!(sec[0], 0, "PAT table id");
                pmt_pid = Some(u16::from_be_bytes([sec[10], sec[11]]) & 0x1fff);
            } else {
                assert_eq!(sec[0], 2, "PMT table id");
                pcr_pid = Some(u16::from_be_bytes([sec[8], sec[9]]) & 0x1fff);
                let info = usize::from(u16::from_be_bytes([sec[10], sec[11]]) & 0x0fff);
                let mut j = 12 + info;
                r.streams.clear();
                while j < 3 + slen - 4 {
                    let ty = sec[j];
                    let spid = u16::from_be_bytes([sec[j + 1], sec[j + 2]]) & 0x1fff;
                    let es = usize::from(u16::from_be_bytes([sec[j + 3], sec[j + 4]]) & 0x0fff);
                    r.streams.push((ty, spid));
                    j += 5 + es;
                }
            }
            continue;
        }
        if pusi {
            if let Some(buf) = pes_buf.remove(&pid) {
                finish_pes(pid, buf, &mut r);
            }
            if let std::collections::hash_map::Entry::Vacant(e) = first_pes_seen.entry(pid) {
                e.insert(random_access);
                if random_access {
                    r.random_access_first.push(pid);
                }
            }
            pes_buf.insert(pid, payload.to_vec());
        } else {
            pes_buf
                .get_mut(&pid)
                .expect("continuation packet without a PES start")
                .extend_from_slice(payload);
        }
    }
    for (pid, buf) in pes_buf {
        finish_pes(pid, buf, &mut r);
    }
    r
}

/// Run ffmpeg with `args`, panicking with its stderr on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg is installed (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Run ffmpeg with the whitespace-separated `args`, writing `out`.
pub fn ffmpeg_to(args: &str, out: &Path) {
    let mut all: Vec<&str> = args.split_whitespace().collect();
    all.push(out.to_str().unwrap());
    ffmpeg(&all);
}

/// Read every tag of an FLV file.
pub fn read_flv(path: &Path) -> Vec<Tag> {
    let mut buf = BytesMut::from(&std::fs::read(path).unwrap()[..]);
    let mut d = FlvDemuxer::new();
    let mut tags = Vec::new();
    while let Some(item) = d.decode(&mut buf).unwrap() {
        if let FlvItem::Tag(t) = item {
            tags.push(t);
        }
    }
    tags
}

/// `ffmpeg -v warning -i <input> -f null -`: returns (success, stderr).
pub fn decode_warnings(input: &Path) -> (bool, String) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "warning", "-i"])
        .arg(input)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// ffprobe JSON of `input` (format and streams).
pub fn ffprobe(input: &Path, extra: &[&str]) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json"])
        .args(extra)
        .arg(input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Write segments as `<seq>.ts` and a VOD playlist into `dir`; returns the playlist path.
pub fn write_vod(dir: &Path, segments: &[Segment]) -> std::path::PathBuf {
    let mut p = videopick_hls::MediaPlaylist::new(videopick_hls::PlaylistKind::Vod);
    for s in segments {
        std::fs::write(dir.join(format!("{}.ts", s.sequence)), &s.data).unwrap();
        p.push(PlaylistEntry {
            sequence: s.sequence,
            uri: format!("{}.ts", s.sequence),
            duration: s.duration,
            discontinuity: s.discontinuity,
            program_date_time: Some(s.program_date_time),
        });
    }
    p.end();
    let path = dir.join("index.m3u8");
    std::fs::write(&path, p.render()).unwrap();
    path
}

/// Segment `tags` with `config`, returning every segment.
pub fn segment_all(tags: &[Tag], config: videopick_hls::SegmenterConfig) -> Vec<Segment> {
    let mut s = videopick_hls::Segmenter::new(config);
    let t0 = SystemTime::now();
    let mut out = Vec::new();
    for t in tags {
        s.push(t, t0 + Duration::from_millis(u64::from(t.timestamp)))
            .unwrap();
        while let Some(seg) = s.pop_segment() {
            out.push(seg);
        }
    }
    s.finish();
    while let Some(seg) = s.pop_segment() {
        out.push(seg);
    }
    out
}

/// An FLV AVC sequence header tag body (baseline, one SPS and PPS).
pub fn avc_header() -> Vec<u8> {
    let c = videopick_flv::AvcConfig {
        version: 1,
        profile: 0x42,
        compatibility: 0xc0,
        level: 0x1e,
        nalu_length_size: 4,
        sps: vec![bytes::Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1e, 0x95])],
        pps: vec![bytes::Bytes::from_static(&[0x68, 0xce, 0x3c, 0x80])],
        extension: bytes::Bytes::new(),
    };
    let mut v = vec![0x17, 0, 0, 0, 0];
    v.extend_from_slice(&c.to_bytes().unwrap());
    v
}
