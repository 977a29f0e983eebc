//! RFC 8216 playlists: media playlists (live sliding window, EVENT, VOD) and master
//! playlists, rendered to text; media playlists can also be parsed back (this crate's own
//! and other well-formed ones), e.g. to close a recording after a crash.

// Calendar arithmetic on validated, in-range values (days since 1970, months 1..=12).
#![allow(clippy::cast_sign_loss, clippy::cast_possible_wrap)]

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{HlsError, Result};

/// Largest playlist text [`MediaPlaylist::parse`] accepts.
pub const MAX_PLAYLIST_BYTES: usize = 16 << 20;

/// Which kind of media playlist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaylistKind {
    /// A live sliding window of at most this many segments (no EXT-X-PLAYLIST-TYPE). The
    /// window never drops below three target durations of media (RFC 8216 §6.2.2).
    Live {
        /// Segments kept in the playlist.
        window: usize,
    },
    /// EXT-X-PLAYLIST-TYPE:EVENT: segments are only appended.
    Event,
    /// EXT-X-PLAYLIST-TYPE:VOD: complete and unchanging.
    Vod,
}

/// One segment line of a media playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaylistEntry {
    /// Media sequence number.
    pub sequence: u64,
    /// URI (relative to the playlist).
    pub uri: String,
    /// EXTINF duration.
    pub duration: Duration,
    /// Preceded by EXT-X-DISCONTINUITY.
    pub discontinuity: bool,
    /// EXT-X-PROGRAM-DATE-TIME of its first sample.
    pub program_date_time: Option<SystemTime>,
}

/// A media playlist being built (or read back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPlaylist {
    kind: PlaylistKind,
    entries: VecDeque<PlaylistEntry>,
    /// Sequence of the first entry when there is none yet.
    next_sequence: u64,
    discontinuity_sequence: u64,
    target_secs: u64,
    ended: bool,
    independent_segments: bool,
}

impl MediaPlaylist {
    /// An empty playlist of `kind`.
    pub fn new(kind: PlaylistKind) -> MediaPlaylist {
        MediaPlaylist {
            kind,
            entries: VecDeque::new(),
            next_sequence: 0,
            discontinuity_sequence: 0,
            target_secs: 1,
            ended: false,
            independent_segments: false,
        }
    }

    /// Declare EXT-X-INDEPENDENT-SEGMENTS (every segment starts with a key frame).
    pub fn set_independent_segments(&mut self, yes: bool) {
        self.independent_segments = yes;
    }

    /// Its kind.
    pub fn kind(&self) -> PlaylistKind {
        self.kind
    }

    /// Change its kind (e.g. an EVENT recording becomes VOD when it ends).
    pub fn set_kind(&mut self, kind: PlaylistKind) {
        self.kind = kind;
    }

    /// The segments listed now.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = &PlaylistEntry> {
        self.entries.iter()
    }

    /// EXT-X-MEDIA-SEQUENCE.
    pub fn media_sequence(&self) -> u64 {
        self.entries
            .front()
            .map_or(self.next_sequence, |e| e.sequence)
    }

    /// EXT-X-DISCONTINUITY-SEQUENCE.
    pub fn discontinuity_sequence(&self) -> u64 {
        self.discontinuity_sequence
    }

    /// EXT-X-TARGETDURATION: the ceiling of the longest segment ever added, less 50 ms of
    /// tolerance (it never shrinks, so it does not change between reloads once reached).
    pub fn target_duration(&self) -> u64 {
        self.target_secs
    }

    /// Whether EXT-X-ENDLIST is present.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// Sum of the listed durations.
    pub fn duration(&self) -> Duration {
        self.entries.iter().map(|e| e.duration).sum()
    }

    /// Append a segment (a live window drops its oldest segments beyond the window).
    pub fn push(&mut self, entry: PlaylistEntry) {
        // The ceiling of the duration, ignoring up to 50 ms of overshoot: a 2.004 s segment
        // (an audio frame past the last video frame) keeps a 2 s target, which RFC 8216
        // allows (§4.3.3.1 bounds the *rounded* EXTINF) and which keeps the target from
        // changing between reloads (§6.2.1); 2.3 s makes it 3.
        let secs = (entry.duration.as_millis().saturating_sub(50)).div_ceil(1000) as u64;
        self.target_secs = self.target_secs.max(secs.max(1));
        self.next_sequence = entry.sequence + 1;
        self.entries.push_back(entry);
        if let PlaylistKind::Live { window } = self.kind {
            let min_keep = Duration::from_secs(3 * self.target_secs);
            while self.entries.len() > window.max(1) {
                let first = self.entries[0].duration;
                if self.duration().saturating_sub(first) < min_keep {
                    break;
                }
                let gone = self.entries.pop_front().expect("non-empty");
                if gone.discontinuity {
                    self.discontinuity_sequence += 1;
                }
            }
        }
    }

    /// Add EXT-X-ENDLIST.
    pub fn end(&mut self) {
        self.ended = true;
    }

    /// The playlist text.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(128 + self.entries.len() * 96);
        s.push_str("#EXTM3U\n#EXT-X-VERSION:3\n");
        let _ = writeln!(s, "#EXT-X-TARGETDURATION:{}", self.target_secs);
        let _ = writeln!(s, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence());
        if self.discontinuity_sequence > 0 {
            let _ = writeln!(
                s,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.discontinuity_sequence
            );
        }
        match self.kind {
            PlaylistKind::Live { .. } => {}
            PlaylistKind::Event => s.push_str("#EXT-X-PLAYLIST-TYPE:EVENT\n"),
            PlaylistKind::Vod => s.push_str("#EXT-X-PLAYLIST-TYPE:VOD\n"),
        }
        if self.independent_segments {
            s.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        }
        for e in &self.entries {
            if e.discontinuity {
                s.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if let Some(t) = e.program_date_time {
                let _ = writeln!(s, "#EXT-X-PROGRAM-DATE-TIME:{}", format_date_time(t));
            }
            let _ = writeln!(s, "#EXTINF:{:.3},", e.duration.as_secs_f64());
            s.push_str(&e.uri);
            s.push('\n');
        }
        if self.ended {
            s.push_str("#EXT-X-ENDLIST\n");
        }
        s
    }

    /// Parse a media playlist. Unknown tags are ignored; malformed known ones are errors.
    #[allow(clippy::too_many_lines)] // one arm per tag
    pub fn parse(text: &str) -> Result<MediaPlaylist> {
        if text.len() > MAX_PLAYLIST_BYTES {
            return Err(HlsError::Playlist {
                line: 0,
                detail: format!("playlist over {MAX_PLAYLIST_BYTES} bytes"),
            });
        }
        let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim()));
        match lines.next() {
            Some((_, "#EXTM3U")) => {}
            _ => {
                return Err(HlsError::Playlist {
                    line: 1,
                    detail: "does not start with #EXTM3U".into(),
                });
            }
        }
        let mut p = MediaPlaylist::new(PlaylistKind::Live { window: usize::MAX });
        let mut first_sequence: u64 = 0;
        let mut skipped: u64 = 0;
        let mut target = None;
        let mut duration: Option<Duration> = None;
        let mut discontinuity = false;
        let mut pdt = None;
        let mut entries = VecDeque::new();
        let bad = |line: usize, what: &str| HlsError::Playlist {
            line,
            detail: what.to_string(),
        };
        for (n, line) in lines {
            if line.is_empty() {
                continue;
            }
            if let Some(tag) = line.strip_prefix('#') {
                let (name, value) = tag.split_once(':').unwrap_or((tag, ""));
                match name {
                    "EXT-X-TARGETDURATION" => {
                        target = Some(value.parse::<u64>().map_err(|_| bad(n, "bad target"))?);
                    }
                    "EXT-X-MEDIA-SEQUENCE" => {
                        first_sequence = value.parse().map_err(|_| bad(n, "bad media sequence"))?;
                    }
                    "EXT-X-DISCONTINUITY-SEQUENCE" => {
                        p.discontinuity_sequence = value
                            .parse()
                            .map_err(|_| bad(n, "bad discontinuity sequence"))?;
                    }
                    "EXT-X-PLAYLIST-TYPE" => {
                        p.kind = match value {
                            "EVENT" => PlaylistKind::Event,
                            "VOD" => PlaylistKind::Vod,
                            _ => return Err(bad(n, "bad playlist type")),
                        };
                    }
                    "EXT-X-SKIP" => {
                        // A delta update: the first listed segment comes after these.
                        skipped = value
                            .split(',')
                            .find_map(|a| a.strip_prefix("SKIPPED-SEGMENTS="))
                            .and_then(|v| v.parse().ok())
                            .ok_or_else(|| bad(n, "bad EXT-X-SKIP"))?;
                    }
                    "EXT-X-INDEPENDENT-SEGMENTS" => p.independent_segments = true,
                    "EXT-X-ENDLIST" => p.ended = true,
                    "EXT-X-DISCONTINUITY" => discontinuity = true,
                    "EXT-X-PROGRAM-DATE-TIME" => {
                        pdt = Some(parse_date_time(value).ok_or_else(|| bad(n, "bad date"))?);
                    }
                    "EXTINF" => {
                        let secs = value.split(',').next().unwrap_or("");
                        let d: f64 = secs.parse().map_err(|_| bad(n, "bad EXTINF"))?;
                        if !d.is_finite() || !(0.0..=86_400.0).contains(&d) {
                            return Err(bad(n, "EXTINF out of range"));
                        }
                        duration = Some(Duration::from_secs_f64(d));
                    }
                    _ => {}
                }
                continue;
            }
            let d = duration
                .take()
                .ok_or_else(|| bad(n, "URI without EXTINF"))?;
            let sequence = first_sequence
                .checked_add(skipped)
                .and_then(|s| s.checked_add(entries.len() as u64))
                .ok_or_else(|| bad(n, "media sequence overflows"))?;
            entries.push_back(PlaylistEntry {
                sequence,
                uri: line.to_string(),
                duration: d,
                discontinuity: std::mem::take(&mut discontinuity),
                program_date_time: pdt.take(),
            });
        }
        p.target_secs = target.ok_or_else(|| bad(0, "no EXT-X-TARGETDURATION"))?;
        p.next_sequence = entries
            .back()
            .map_or(first_sequence.saturating_add(skipped), |e| {
                e.sequence.saturating_add(1)
            });
        p.entries = entries;
        Ok(p)
    }
}

/// One variant stream of a master playlist.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// Peak bits per second (BANDWIDTH).
    pub bandwidth: u64,
    /// Average bits per second (AVERAGE-BANDWIDTH), if known.
    pub average_bandwidth: Option<u64>,
    /// Width × height (RESOLUTION).
    pub resolution: Option<(u32, u32)>,
    /// FRAME-RATE.
    pub frame_rate: Option<f64>,
    /// CODECS, e.g. `avc1.64001f,mp4a.40.2`.
    pub codecs: Option<String>,
    /// URI of the variant's media playlist.
    pub uri: String,
}

/// A master (multivariant) playlist.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MasterPlaylist {
    /// The variants, in order.
    pub variants: Vec<Variant>,
    /// Declare EXT-X-INDEPENDENT-SEGMENTS.
    pub independent_segments: bool,
}

impl MasterPlaylist {
    /// The playlist text.
    pub fn render(&self) -> String {
        let mut s = String::from("#EXTM3U\n#EXT-X-VERSION:3\n");
        if self.independent_segments {
            s.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        }
        for v in &self.variants {
            let _ = write!(s, "#EXT-X-STREAM-INF:BANDWIDTH={}", v.bandwidth.max(1));
            if let Some(a) = v.average_bandwidth {
                let _ = write!(s, ",AVERAGE-BANDWIDTH={}", a.max(1));
            }
            if let Some((w, h)) = v.resolution {
                let _ = write!(s, ",RESOLUTION={w}x{h}");
            }
            if let Some(f) = v.frame_rate.filter(|f| f.is_finite() && *f > 0.0) {
                let _ = write!(s, ",FRAME-RATE={f:.3}");
            }
            if let Some(c) = v.codecs.as_deref().filter(|c| !c.is_empty()) {
                let _ = write!(s, ",CODECS=\"{c}\"");
            }
            s.push('\n');
            s.push_str(&v.uri);
            s.push('\n');
        }
        s
    }
}

/// `2026-11-26T08:15:11.123Z`.
pub fn format_date_time(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Parse `YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm)`.
pub fn parse_date_time(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if t.bytes().all(|c| c.is_ascii_digit()) {
            t.parse().ok()
        } else {
            None
        }
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0u64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let f = &frac[..digits.min(9)];
        millis = f.parse::<u64>().ok()? * 1000 / 10u64.pow(f.len() as u32);
        rest = &frac[digits..];
    }
    let offset_secs = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let oh: i64 = rest.get(1..3)?.parse().ok()?;
            let om: i64 = rest.get(4..6)?.parse().ok()?;
            let o = oh * 3600 + om * 60;
            if rest.starts_with('-') { -o } else { o }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    let secs = days * 86_400 + h * 3600 + mi * 60 + se - offset_secs;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis))
}

// Days since 1970-01-01 ⇄ proleptic Gregorian dates (H. Hinnant's algorithms).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, ms: u64, disc: bool) -> PlaylistEntry {
        PlaylistEntry {
            sequence: seq,
            uri: format!("s-{seq}.ts"),
            duration: Duration::from_millis(ms),
            discontinuity: disc,
            program_date_time: None,
        }
    }

    #[test]
    fn dates_round_trip() {
        for secs in [0u64, 951_782_400, 1_795_680_911, 4_102_444_800] {
            let t = UNIX_EPOCH + Duration::from_millis(secs * 1000 + 123);
            let s = format_date_time(t);
            assert_eq!(parse_date_time(&s), Some(t), "{s}");
        }
        assert_eq!(
            format_date_time(UNIX_EPOCH + Duration::from_secs(1_795_680_911)),
            "2026-11-26T08:15:11.000Z"
        );
        assert_eq!(
            parse_date_time("2026-11-26T10:15:11.5+02:00"),
            Some(UNIX_EPOCH + Duration::from_millis(1_795_680_911_500))
        );
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-11-26T08:15:11",
            "x026-11-26T08:15:11Z",
        ] {
            assert_eq!(parse_date_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn live_window_slides_and_counts_discontinuities() {
        let mut p = MediaPlaylist::new(PlaylistKind::Live { window: 3 });
        for i in 0..6 {
            p.push(entry(i, 2000, i == 1 || i == 4));
        }
        assert_eq!(p.entries().len(), 3);
        assert_eq!(p.media_sequence(), 3);
        // Segment 1's discontinuity left the window; segment 4's is still listed.
        assert_eq!(p.discontinuity_sequence(), 1);
        let text = p.render();
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:3\n"), "{text}");
        assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"), "{text}");
        assert!(!text.contains("PLAYLIST-TYPE"), "{text}");
        assert_eq!(MediaPlaylist::parse(&text).unwrap(), p_parsed(&p));
    }

    fn p_parsed(p: &MediaPlaylist) -> MediaPlaylist {
        let mut q = p.clone();
        q.kind = PlaylistKind::Live { window: usize::MAX };
        q
    }

    #[test]
    fn live_window_keeps_three_target_durations() {
        let mut p = MediaPlaylist::new(PlaylistKind::Live { window: 1 });
        for i in 0..5 {
            p.push(entry(i, 2000, false));
        }
        // Target 2 s: 6 s must stay listed even though the window asks for one segment.
        assert_eq!(p.entries().len(), 3);
    }

    #[test]
    fn target_duration_is_the_ceiling_of_the_longest() {
        let mut p = MediaPlaylist::new(PlaylistKind::Event);
        p.push(entry(0, 2000, false));
        assert_eq!(p.target_duration(), 2);
        p.push(entry(1, 2040, false));
        assert_eq!(p.target_duration(), 2, "a 40 ms overshoot rounds to 2 s");
        p.push(entry(1, 2051, false));
        assert_eq!(p.target_duration(), 3);
        p.push(entry(2, 1000, false));
        assert_eq!(p.target_duration(), 3);
    }

    #[test]
    fn vod_round_trips() {
        let mut p = MediaPlaylist::new(PlaylistKind::Vod);
        let mut e = entry(0, 2040, false);
        e.program_date_time = Some(UNIX_EPOCH + Duration::from_millis(1_795_680_911_250));
        p.push(e);
        p.push(entry(1, 1960, true));
        p.end();
        let text = p.render();
        assert!(text.ends_with("#EXT-X-ENDLIST\n"));
        assert!(text.contains("#EXTINF:2.040,\ns-0.ts\n"));
        assert_eq!(MediaPlaylist::parse(&text).unwrap(), p);
    }

    #[test]
    fn parse_rejects_garbage() {
        assert!(MediaPlaylist::parse("").is_err());
        assert!(MediaPlaylist::parse("#EXTM3U\n#EXT-X-TARGETDURATION:2\nx.ts\n").is_err());
        assert!(MediaPlaylist::parse("#EXTM3U\n#EXTINF:abc,\nx.ts\n").is_err());
        assert!(MediaPlaylist::parse("#EXTM3U\n#EXTINF:2,\nx.ts\n").is_err());
    }

    #[test]
    fn master_lists_variants() {
        let m = MasterPlaylist {
            variants: vec![Variant {
                bandwidth: 2_800_000,
                average_bandwidth: Some(2_500_000),
                resolution: Some((1280, 720)),
                frame_rate: Some(30.0),
                codecs: Some("avc1.64001f,mp4a.40.2".into()),
                uri: "720p/index.m3u8".into(),
            }],
            independent_segments: true,
        };
        assert_eq!(
            m.render(),
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-STREAM-INF:BANDWIDTH=2800000,AVERAGE-BANDWIDTH=2500000,RESOLUTION=1280x720,FRAME-RATE=30.000,CODECS=\"avc1.64001f,mp4a.40.2\"\n720p/index.m3u8\n"
        );
    }
}
