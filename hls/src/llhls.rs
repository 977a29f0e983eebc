//! Low-latency HLS media playlists (RFC 8216bis): segments made of parts, listed while
//! they are being written, with the server-control attributes a player needs for
//! blocking reloads and delta updates.
//!
//! ```text
//! #EXTM3U
//! #EXT-X-VERSION:9
//! #EXT-X-TARGETDURATION:2
//! #EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.000,CAN-SKIP-UNTIL=12.000
//! #EXT-X-PART-INF:PART-TARGET=0.333
//! #EXT-X-MEDIA-SEQUENCE:40
//! #EXT-X-MAP:URI="cam-7-init0.mp4"
//! #EXT-X-PROGRAM-DATE-TIME:…
//! #EXT-X-PART:DURATION=0.333,URI="cam-7-40.0.m4s",INDEPENDENT=YES
//! …
//! #EXTINF:2.000,
//! cam-7-40.m4s
//! #EXT-X-PART:DURATION=0.333,URI="cam-7-41.0.m4s",INDEPENDENT=YES
//! #EXT-X-PRELOAD-HINT:TYPE=PART,URI="cam-7-41.1.m4s"
//! ```
//!
//! The playlist also answers the questions of a blocking reload: whether the part a
//! request names exists yet ([`LowLatencyPlaylist::has_part`]) and whether it is too far
//! ahead to wait for ([`LowLatencyPlaylist::too_far`]).
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use videopick_hls::llhls::{LlPart, LowLatencyPlaylist};
//!
//! let mut p = LowLatencyPlaylist::new(Duration::from_millis(333), 10);
//! p.open_segment(0, false, SystemTime::now(), "init0.mp4");
//! for i in 0..6 {
//!     p.push_part(LlPart::new(Duration::from_millis(333), i == 0, format!("0.{i}.m4s")));
//! }
//! p.close_segment("0.m4s", Duration::from_secs(2));
//! p.open_segment(1, false, SystemTime::now(), "init0.mp4");
//! p.push_part(LlPart::new(Duration::from_millis(333), true, "1.0.m4s"));
//! p.set_preload_hint(Some("1.1.m4s".into()));
//!
//! assert!(p.has_part(1, Some(0)));
//! assert!(!p.has_part(1, Some(1))); // a blocking reload waits for it
//! assert!(p.has_part(0, Some(6))); // past segment 0's last part: part 0 of segment 1
//! assert!(p.too_far(4, None)); // more than two segments ahead: 400
//! let text = p.render(false);
//! assert!(text.contains("#EXT-X-PART:DURATION=0.333,URI=\"1.0.m4s\",INDEPENDENT=YES\n"));
//! assert!(text.ends_with("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"1.1.m4s\"\n"));
//! ```

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use crate::playlist::format_date_time;

/// One part of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlPart {
    /// Its duration (at most the part target).
    pub duration: Duration,
    /// It starts with a key frame: `INDEPENDENT=YES`.
    pub independent: bool,
    /// Its URI, relative to the playlist.
    pub uri: String,
}

impl LlPart {
    /// A part.
    pub fn new(duration: Duration, independent: bool, uri: impl Into<String>) -> LlPart {
        LlPart {
            duration,
            independent,
            uri: uri.into(),
        }
    }
}

/// One segment: complete (with a URI and duration) or still being written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlSegment {
    /// Media sequence number.
    pub sequence: u64,
    /// Preceded by EXT-X-DISCONTINUITY.
    pub discontinuity: bool,
    /// Wall-clock time of its first sample.
    pub program_date_time: SystemTime,
    /// The init segment (EXT-X-MAP) it needs.
    pub map: String,
    /// Its parts so far.
    pub parts: Vec<LlPart>,
    /// URI and duration, once complete.
    pub complete: Option<(String, Duration)>,
}

/// Where another rendition of the same presentation stands (EXT-X-RENDITION-REPORT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenditionReport {
    /// Its media playlist, relative to this one.
    pub uri: String,
    /// Its last media sequence number.
    pub last_msn: u64,
    /// Its last part in that segment.
    pub last_part: Option<u32>,
}

/// A live low-latency media playlist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LowLatencyPlaylist {
    part_target: Duration,
    window: usize,
    segments: VecDeque<LlSegment>,
    next_sequence: u64,
    discontinuity_sequence: u64,
    target_secs: u64,
    hint: Option<String>,
    reports: Vec<RenditionReport>,
    ended: bool,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl LowLatencyPlaylist {
    /// An empty playlist with parts of at most `part_target`, listing at most `window`
    /// complete segments (never less than three target durations of them).
    pub fn new(part_target: Duration, window: usize) -> LowLatencyPlaylist {
        LowLatencyPlaylist {
            part_target: part_target.max(Duration::from_millis(1)),
            window: window.max(1),
            segments: VecDeque::new(),
            next_sequence: 0,
            discontinuity_sequence: 0,
            target_secs: 1,
            hint: None,
            reports: Vec::new(),
            ended: false,
        }
    }

    /// `EXT-X-PART-INF:PART-TARGET`.
    pub fn part_target(&self) -> Duration {
        self.part_target
    }

    /// `EXT-X-TARGETDURATION` (the ceiling of the longest segment, less 50 ms of
    /// tolerance; it never shrinks).
    pub fn target_duration(&self) -> Duration {
        Duration::from_secs(self.target_secs)
    }

    /// `PART-HOLD-BACK`: three part targets (the spec's floor for players to stay
    /// behind the live edge).
    pub fn part_hold_back(&self) -> Duration {
        self.part_target * 3
    }

    /// `CAN-SKIP-UNTIL`: six target durations (the spec's minimum).
    pub fn can_skip_until(&self) -> Duration {
        self.target_duration() * 6
    }

    /// The segments listed, oldest first (the last may be incomplete).
    pub fn segments(&self) -> impl ExactSizeIterator<Item = &LlSegment> {
        self.segments.iter()
    }

    /// EXT-X-MEDIA-SEQUENCE.
    pub fn media_sequence(&self) -> u64 {
        self.segments
            .front()
            .map_or(self.next_sequence, |s| s.sequence)
    }

    /// Whether EXT-X-ENDLIST is present.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    /// The newest part: (media sequence number, part index).
    pub fn last_part(&self) -> Option<(u64, u32)> {
        self.segments.iter().rev().find_map(|s| {
            let n = u32::try_from(s.parts.len()).ok()?;
            n.checked_sub(1).map(|p| (s.sequence, p))
        })
    }

    /// Start segment `sequence` (the previous one must be closed).
    pub fn open_segment(
        &mut self,
        sequence: u64,
        discontinuity: bool,
        program_date_time: SystemTime,
        map: impl Into<String>,
    ) {
        if self.segments.back().is_some_and(|s| s.complete.is_none()) {
            // An unclosed segment is dropped, as its parts never became a segment.
            self.segments.pop_back();
        }
        self.next_sequence = sequence.saturating_add(1);
        self.segments.push_back(LlSegment {
            sequence,
            discontinuity,
            program_date_time,
            map: map.into(),
            parts: Vec::new(),
            complete: None,
        });
    }

    /// Add a part to the open segment (ignored when none is open).
    pub fn push_part(&mut self, part: LlPart) {
        if let Some(s) = self.segments.back_mut()
            && s.complete.is_none()
        {
            s.parts.push(part);
        }
    }

    /// Complete the open segment; the oldest complete segments beyond the window go.
    pub fn close_segment(&mut self, uri: impl Into<String>, duration: Duration) {
        let Some(s) = self.segments.back_mut() else {
            return;
        };
        if s.complete.is_some() {
            return;
        }
        s.complete = Some((uri.into(), duration));
        let whole = duration.as_millis().saturating_sub(50).div_ceil(1000);
        self.target_secs = self
            .target_secs
            .max(u64::try_from(whole).unwrap_or(u64::MAX).max(1));
        let min_keep = self.target_duration() * 3;
        while self.segments.len() > self.window {
            let rest: Duration = self
                .segments
                .iter()
                .skip(1)
                .filter_map(|s| s.complete.as_ref().map(|c| c.1))
                .sum();
            if rest < min_keep {
                break;
            }
            if let Some(gone) = self.segments.pop_front()
                && gone.discontinuity
            {
                self.discontinuity_sequence += 1;
            }
        }
    }

    /// The next part a player may request ahead (EXT-X-PRELOAD-HINT), if any.
    pub fn set_preload_hint(&mut self, uri: Option<String>) {
        self.hint = uri;
    }

    /// The hinted URI.
    pub fn preload_hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// Where the other renditions stand (EXT-X-RENDITION-REPORT).
    pub fn set_rendition_reports(&mut self, reports: Vec<RenditionReport>) {
        self.reports = reports;
    }

    /// The stream ended: EXT-X-ENDLIST, no hint; an incomplete segment is dropped.
    pub fn end(&mut self) {
        if self.segments.back().is_some_and(|s| s.complete.is_none()) {
            self.segments.pop_back();
        }
        self.hint = None;
        self.ended = true;
    }

    /// Whether the playlist holds part `part` of segment `msn` (or, without a part,
    /// segment `msn` complete), or anything later — what a blocking reload waits for
    /// (RFC 8216bis §6.2.5.2; a part index past a complete segment's last part means
    /// part 0 of the next segment).
    pub fn has_part(&self, msn: u64, part: Option<u32>) -> bool {
        let Some(last) = self.segments.back() else {
            return false;
        };
        match part {
            None => {
                // Segment msn complete, or a later one exists.
                self.segments
                    .iter()
                    .rev()
                    .find(|s| s.complete.is_some())
                    .is_some_and(|s| s.sequence >= msn)
            }
            Some(p) => {
                if last.sequence > msn.saturating_add(1) {
                    return true;
                }
                match self.segments.iter().find(|s| s.sequence == msn) {
                    Some(s) => {
                        let n = s.parts.len();
                        if (p as usize) < n {
                            true
                        } else if s.complete.is_some() {
                            // Past its last part: part 0 of the next segment.
                            self.segments
                                .iter()
                                .find(|x| x.sequence == msn.saturating_add(1))
                                .is_some_and(|x| !x.parts.is_empty())
                        } else {
                            false
                        }
                    }
                    // Older than the window: everything asked for exists.
                    None => msn < self.media_sequence(),
                }
            }
        }
    }

    /// Whether a blocking reload for (`msn`, `part`) is too far ahead to wait for
    /// (RFC 8216bis §6.2.5.2: more than two segments past the last, or more parts past
    /// the last part than the Advance Part Limit); the server answers 400.
    pub fn too_far(&self, msn: u64, part: Option<u32>) -> bool {
        let last_complete = self
            .segments
            .iter()
            .rev()
            .find(|s| s.complete.is_some())
            .map(|s| s.sequence)
            .or_else(|| self.segments.back().map(|s| s.sequence.saturating_sub(1)))
            .unwrap_or(self.next_sequence);
        if msn > last_complete.saturating_add(2) {
            return true;
        }
        let Some(p) = part else { return false };
        // Advance Part Limit: 3 / part target (seconds), or 3 when it is a second or more.
        let part_ms = u64::try_from(self.part_target.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let limit = if part_ms < 1000 {
            3000u64.div_ceil(part_ms)
        } else {
            3
        };
        let Some((lmsn, lpart)) = self.last_part() else {
            return false;
        };
        let p = u64::from(p);
        let ahead = match msn.cmp(&lmsn) {
            std::cmp::Ordering::Less => 0,
            std::cmp::Ordering::Equal => p.saturating_sub(u64::from(lpart)),
            std::cmp::Ordering::Greater => {
                // Parts per segment, as the targets have it.
                let per = (self.target_secs.saturating_mul(1000) + part_ms / 2) / part_ms;
                (msn - lmsn - 1)
                    .saturating_mul(per)
                    .saturating_add(per.saturating_sub(1 + u64::from(lpart)))
                    .saturating_add(p + 1)
            }
        };
        ahead > limit
    }

    /// The playlist text: whole, or (`skip`) as a delta update that replaces the
    /// segments older than CAN-SKIP-UNTIL with EXT-X-SKIP (ignored once ended).
    pub fn render(&self, skip: bool) -> String {
        let mut s = String::with_capacity(512 + self.segments.len() * 400);
        s.push_str("#EXTM3U\n#EXT-X-VERSION:9\n");
        let _ = writeln!(s, "#EXT-X-TARGETDURATION:{}", self.target_secs);
        if !self.ended {
            let _ = writeln!(
                s,
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={:.3},CAN-SKIP-UNTIL={:.3}",
                secs(self.part_hold_back()),
                secs(self.can_skip_until())
            );
        }
        let _ = writeln!(
            s,
            "#EXT-X-PART-INF:PART-TARGET={:.3}",
            secs(self.part_target)
        );
        let _ = writeln!(s, "#EXT-X-MEDIA-SEQUENCE:{}", self.media_sequence());
        if self.discontinuity_sequence > 0 {
            let _ = writeln!(
                s,
                "#EXT-X-DISCONTINUITY-SEQUENCE:{}",
                self.discontinuity_sequence
            );
        }
        s.push_str("#EXT-X-INDEPENDENT-SEGMENTS\n");
        // Segments from here on are listed; those before are skipped in a delta update.
        let skipped = if skip && !self.ended {
            self.skippable()
        } else {
            0
        };
        if skipped > 0 {
            let _ = writeln!(s, "#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}");
        }
        // Parts are listed for the segments within three target durations of the end.
        let parts_from = self.parts_from();
        let mut map: Option<&str> = None;
        for (i, seg) in self.segments.iter().enumerate().skip(skipped) {
            if seg.discontinuity && i > 0 {
                s.push_str("#EXT-X-DISCONTINUITY\n");
            }
            if map != Some(seg.map.as_str()) {
                let _ = writeln!(s, "#EXT-X-MAP:URI=\"{}\"", seg.map);
                map = Some(&seg.map);
            }
            let _ = writeln!(
                s,
                "#EXT-X-PROGRAM-DATE-TIME:{}",
                format_date_time(seg.program_date_time)
            );
            if i >= parts_from {
                for p in &seg.parts {
                    let _ = write!(
                        s,
                        "#EXT-X-PART:DURATION={:.3},URI=\"{}\"",
                        secs(p.duration),
                        p.uri
                    );
                    s.push_str(if p.independent {
                        ",INDEPENDENT=YES\n"
                    } else {
                        "\n"
                    });
                }
            }
            if let Some((uri, d)) = &seg.complete {
                let _ = writeln!(s, "#EXTINF:{:.3},", secs(*d));
                s.push_str(uri);
                s.push('\n');
            }
        }
        if let Some(h) = self.hint.as_ref().filter(|_| !self.ended) {
            let _ = writeln!(s, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"{h}\"");
        }
        for r in &self.reports {
            let _ = write!(
                s,
                "#EXT-X-RENDITION-REPORT:URI=\"{}\",LAST-MSN={}",
                r.uri, r.last_msn
            );
            if let Some(p) = r.last_part {
                let _ = write!(s, ",LAST-PART={p}");
            }
            s.push('\n');
        }
        if self.ended {
            s.push_str("#EXT-X-ENDLIST\n");
        }
        s
    }

    /// How many leading segments a delta update skips: those further from the end of
    /// the last complete segment than CAN-SKIP-UNTIL.
    fn skippable(&self) -> usize {
        let boundary = self.can_skip_until();
        let mut after = Duration::ZERO; // from the end of segment i to the end
        let complete: Vec<Duration> = self
            .segments
            .iter()
            .map(|s| s.complete.as_ref().map_or(Duration::ZERO, |c| c.1))
            .collect();
        let mut skip = 0;
        for i in (0..complete.len()).rev() {
            if after >= boundary && self.segments[i].complete.is_some() {
                skip = i + 1;
                break;
            }
            after += complete[i];
        }
        skip
    }

    /// The oldest segment whose parts are listed (parts of older ones may be dropped).
    pub fn parts_listed_from(&self) -> Option<u64> {
        self.segments.get(self.parts_from()).map(|s| s.sequence)
    }

    /// The index of the first segment whose parts are listed.
    fn parts_from(&self) -> usize {
        let keep = self.target_duration() * 3;
        let mut after = Duration::ZERO;
        for (i, seg) in self.segments.iter().enumerate().rev() {
            after += seg
                .complete
                .as_ref()
                .map_or_else(|| seg.parts.iter().map(|p| p.duration).sum(), |c| c.1);
            if after > keep {
                return i + 1;
            }
        }
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playlist::MediaPlaylist;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// `segments` complete 2 s segments of 6 parts, then an open one with `open` parts.
    fn playlist(segments: u64, open: u32, window: usize) -> LowLatencyPlaylist {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut p = LowLatencyPlaylist::new(ms(333), window);
        for seq in 0..=segments {
            p.open_segment(seq, seq == 3, t + Duration::from_secs(2 * seq), "init.mp4");
            let n = if seq == segments { open } else { 6 };
            for i in 0..n {
                p.push_part(LlPart::new(ms(333), i == 0, format!("{seq}.{i}.m4s")));
            }
            if seq < segments {
                p.close_segment(format!("{seq}.m4s"), ms(1998));
            }
        }
        p.set_preload_hint(Some(format!("{segments}.{open}.m4s")));
        p
    }

    #[test]
    fn the_tags_a_low_latency_player_needs() {
        let p = playlist(3, 2, 10);
        let text = p.render(false);
        assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:2\n"));
        assert!(text.contains(
            "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.999,CAN-SKIP-UNTIL=12.000\n"
        ));
        assert!(text.contains("#EXT-X-PART-INF:PART-TARGET=0.333\n"));
        assert!(text.contains("#EXT-X-MAP:URI=\"init.mp4\"\n"));
        assert_eq!(text.matches("#EXT-X-MAP").count(), 1);
        assert_eq!(text.matches("#EXT-X-PROGRAM-DATE-TIME").count(), 4);
        assert!(text.contains("#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:"));
        // Segments within 3 target durations (6 s) of the end list their parts: the open
        // one (0.666 s) and segments 2, 1 (4.662 s) and 0 would pass 6 s, so 0 has none.
        assert!(!text.contains("\"0.0.m4s\""));
        assert!(text.contains("#EXT-X-PART:DURATION=0.333,URI=\"1.0.m4s\",INDEPENDENT=YES\n"));
        assert!(text.contains("#EXT-X-PART:DURATION=0.333,URI=\"3.1.m4s\"\n"));
        assert!(text.ends_with("URI=\"3.1.m4s\"\n#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"3.2.m4s\"\n"));
        // Our own reader sees the complete segments.
        let back = MediaPlaylist::parse(&text).unwrap();
        let uris: Vec<_> = back.entries().map(|e| e.uri.clone()).collect();
        assert_eq!(uris, ["0.m4s", "1.m4s", "2.m4s"]);
        assert_eq!(back.entries().nth(2).unwrap().sequence, 2);
    }

    #[test]
    fn blocking_reload_questions() {
        let p = playlist(3, 2, 10);
        assert!(p.has_part(3, Some(1)));
        assert!(!p.has_part(3, Some(2)));
        assert!(p.has_part(2, Some(5)));
        assert!(
            p.has_part(2, Some(6)),
            "past the last part of 2 is 3.0, which exists"
        );
        assert!(p.has_part(2, None));
        assert!(!p.has_part(3, None), "segment 3 is not complete");
        assert!(!p.has_part(4, Some(0)));
        assert!(p.has_part(0, Some(0)));
        assert_eq!(p.last_part(), Some((3, 1)));
        // Segment 2 is the last complete one: up to 4 may be waited for.
        assert!(!p.too_far(4, None));
        assert!(p.too_far(5, None));
        // 3 / 0.333 s = 10 parts ahead at most.
        assert!(!p.too_far(3, Some(11)));
        assert!(p.too_far(3, Some(12)));
        assert!(!p.too_far(4, Some(5)));
        assert!(p.too_far(4, Some(6)));
        // Past the last part of a complete segment: the next segment's first part.
        let q = playlist(3, 0, 10);
        assert!(!q.has_part(2, Some(6)));
    }

    #[test]
    fn delta_updates_skip_what_is_older_than_can_skip_until() {
        let p = playlist(12, 1, 20);
        let full = p.render(false);
        let delta = p.render(true);
        assert!(!full.contains("EXT-X-SKIP"));
        // 12 complete segments of 1.998 s: those whose end is ≥ 12 s from the end of
        // the last complete one are skipped (segments 0..=4: 7 × 1.998 s after 4).
        assert!(delta.contains("#EXT-X-MEDIA-SEQUENCE:0\n"));
        assert!(delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=5\n"));
        assert!(!delta.contains("\n4.m4s\n") && delta.contains("\n5.m4s\n"));
        // The init segment is named again before the first listed segment.
        let after_skip = delta.split("#EXT-X-SKIP").nth(1).unwrap();
        assert!(after_skip.contains("#EXT-X-MAP:URI=\"init.mp4\""));
        let back = MediaPlaylist::parse(&delta).unwrap();
        assert_eq!(back.entries().next().unwrap().sequence, 5);
        assert_eq!(back.entries().next().unwrap().uri, "5.m4s");
        // The window (20) is not reached; a smaller window drops segments and counts the
        // discontinuity that went with them.
        let small = playlist(12, 1, 4);
        assert_eq!(small.media_sequence(), 8);
        assert!(
            small
                .render(false)
                .contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n")
        );
        assert!(!small.render(true).contains("EXT-X-SKIP"));
    }

    #[test]
    fn ended_and_rendition_reports() {
        let mut p = playlist(3, 2, 10);
        p.set_rendition_reports(vec![RenditionReport {
            uri: "low.m3u8".into(),
            last_msn: 3,
            last_part: Some(1),
        }]);
        assert!(
            p.render(false)
                .contains("#EXT-X-RENDITION-REPORT:URI=\"low.m3u8\",LAST-MSN=3,LAST-PART=1\n")
        );
        p.end();
        let text = p.render(true);
        assert!(text.ends_with("#EXT-X-ENDLIST\n"));
        assert!(!text.contains("PRELOAD-HINT") && !text.contains("SERVER-CONTROL"));
        assert!(!text.contains("\"3.0.m4s\""), "the open segment's parts go");
        assert!(!text.contains("EXT-X-SKIP"));
    }
}
