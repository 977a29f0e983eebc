//! Criterion benches of VideoPick's hot paths live in `benches/`; run them with
//! `cargo bench -p videopick-benches`. Results are recorded in `docs/BENCHMARKS.md`.
//!
//! This library only holds helpers shared by the benches.
//!
//! ```
//! let data = videopick_benches::payload(4);
//! assert_eq!(data.len(), 4);
//! ```

/// A deterministic, non-compressible-looking payload of `len` bytes.
pub fn payload(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

/// FLV tags of a realistic live stream lasting `seconds`: H.264 video at 25 fps and about
/// 2.37 Mbit/s (a 60 KB key frame every 2 s, ~11.3 KB otherwise) plus AAC audio at ~128 kbit/s
/// (43 frames/s of 372 bytes), interleaved by timestamp, sequence headers first.
pub fn stream_tags(seconds: u32) -> Vec<videopick_flv::Tag> {
    use videopick_flv::{Tag, TagKind};
    let mut tags = vec![
        Tag::new(TagKind::Video, 0, payload_with(&[0x17, 0, 0, 0, 0], 40)),
        Tag::new(TagKind::Audio, 0, vec![0xaf, 0, 0x12, 0x10]),
    ];
    let mut media = Vec::new();
    for i in 0..seconds * 25 {
        let key = i % 50 == 0;
        let size = if key { 60_000 } else { 11_300 };
        let head = if key {
            [0x17, 1, 0, 0, 0]
        } else {
            [0x27, 1, 0, 0, 0]
        };
        media.push(Tag::new(TagKind::Video, i * 40, payload_with(&head, size)));
    }
    for i in 0..seconds * 43 {
        media.push(Tag::new(
            TagKind::Audio,
            i * 1000 / 43,
            payload_with(&[0xaf, 1], 372),
        ));
    }
    media.sort_by_key(|t| t.timestamp);
    tags.extend(media);
    tags
}

/// Frame `i` (40 ms each) of the synthetic live stream `live-load` publishes and
/// `loopback-floor` sends: 25 fps video (a key frame every 2 s, 6× a delta frame) and
/// AAC-sized audio (about 43 frames of 372 bytes a second, 128 kbit/s of the budget).
pub fn live_frame(i: u32, kbps: u64) -> Vec<videopick_flv::Tag> {
    use videopick_flv::{Tag, TagKind};
    let video_bytes_per_frame =
        usize::try_from(kbps.saturating_sub(128) * 1000 / 8 / 25).unwrap_or(usize::MAX);
    let key = i.is_multiple_of(50);
    // Average over a GOP of 50: one key at 6x, 49 deltas at d: 6d + 49d = 50*avg.
    let delta = video_bytes_per_frame * 50 / 55;
    let size = if key { delta * 6 } else { delta };
    let mut v = vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0];
    v.resize(size.max(6), (i % 251) as u8);
    let ts = i * 40;
    let mut out = vec![Tag::new(TagKind::Video, ts, v)];
    // ~43 AAC frames per second of 372 bytes: interleave about 2 per video frame.
    for k in 0..2 {
        if (i * 2 + k) % 25 < 22 {
            out.push(Tag::new(
                TagKind::Audio,
                ts + k * 20,
                [0xaf, 1, 0x21, 0, 0, 0].repeat(62),
            ));
        }
    }
    out
}

fn payload_with(head: &[u8], len: usize) -> Vec<u8> {
    let mut v = head.to_vec();
    v.extend(payload(len.saturating_sub(head.len())));
    v
}

/// The AMF0 body of an RTMP `connect` command as OBS sends it.
pub fn connect_command() -> Vec<u8> {
    use videopick_flv::amf0::{self, Amf0Value as V};
    let s = |x: &str| V::String(x.into());
    amf0::encode_all(&[
        s("connect"),
        V::Number(1.0),
        V::Object(vec![
            ("app".into(), s("live")),
            ("type".into(), s("nonprivate")),
            ("flashVer".into(), s("FMLE/3.0 (compatible; FMSc/1.0)")),
            ("swfUrl".into(), s("rtmp://127.0.0.1:1935/live")),
            ("tcUrl".into(), s("rtmp://127.0.0.1:1935/live")),
            ("fpad".into(), V::Boolean(false)),
            ("capabilities".into(), V::Number(15.0)),
            ("audioCodecs".into(), V::Number(4071.0)),
            ("videoCodecs".into(), V::Number(252.0)),
            ("videoFunction".into(), V::Number(1.0)),
        ]),
    ])
}

/// `(CPU time in ms (user + system), RSS in KiB)` of process `pid`, from `/proc`; the
/// load tools sample the server under test with it.
pub fn proc_sample(pid: u32) -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields after the command: state is index 0, utime 11, stime 12 (clock ticks, 100/s).
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .ok()?;
    Some((ticks * 10, rss))
}
