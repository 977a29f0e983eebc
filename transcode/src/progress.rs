//! Sans-IO reader of ffmpeg's `-progress pipe:1` output: `key=value` lines in blocks
//! ending with `progress=continue` or `progress=end`, turned into [`Progress`] reports
//! (percent, speed, ETA) that never go backwards.

use std::time::Duration;

/// One progress report.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Media time written so far.
    pub out_time: Duration,
    /// Percent done (0–100), when the input's duration is known; never decreases and is
    /// 100 only at the end.
    pub percent: Option<f64>,
    /// Encoding speed relative to real time (`1.5` = 1.5×), when ffmpeg knows it.
    pub speed: Option<f64>,
    /// Estimated time left, from the speed and the media time still to go.
    pub eta: Option<Duration>,
    /// Frames written.
    pub frame: u64,
    /// ffmpeg said `progress=end`.
    pub done: bool,
}

/// Longest line kept; longer ones are cut (ffmpeg's are short; the input is a pipe).
const MAX_LINE: usize = 1024;

/// Feeds on ffmpeg's progress bytes, in any chunking; see [`ProgressParser::push`].
#[derive(Debug)]
pub struct ProgressParser {
    total: Option<Duration>,
    line: Vec<u8>,
    skipping: bool,
    out_time: Duration,
    speed: Option<f64>,
    frame: u64,
    last_percent: f64,
    /// `progress=end` was seen: nothing after it counts.
    ended: bool,
}

impl ProgressParser {
    /// A parser for a job whose output will last `total` (its input's duration), if known.
    pub fn new(total: Option<Duration>) -> ProgressParser {
        ProgressParser {
            total: total.filter(|t| !t.is_zero()),
            line: Vec::new(),
            skipping: false,
            out_time: Duration::ZERO,
            speed: None,
            frame: 0,
            last_percent: 0.0,
            ended: false,
        }
    }

    /// Feed bytes; calls `report` for every completed block (none after the end block).
    pub fn push(&mut self, bytes: &[u8], mut report: impl FnMut(Progress)) {
        for &b in bytes {
            if self.ended {
                return;
            }
            if b == b'\n' {
                if !self.skipping {
                    let line = std::mem::take(&mut self.line);
                    if let Some(p) = self.line_done(&line) {
                        report(p);
                    }
                }
                self.line.clear();
                self.skipping = false;
            } else if self.line.len() < MAX_LINE {
                self.line.push(b);
            } else {
                self.skipping = true;
            }
        }
    }

    fn line_done(&mut self, line: &[u8]) -> Option<Progress> {
        let line = std::str::from_utf8(line).ok()?.trim();
        let (key, value) = line.split_once('=')?;
        let value = value.trim();
        match key.trim() {
            // `out_time_ms` is microseconds too (an old ffmpeg misnomer); prefer `_us`.
            "out_time_us" | "out_time_ms" => {
                if let Ok(us) = value.parse::<u64>() {
                    self.out_time = self.out_time.max(Duration::from_micros(us));
                }
            }
            "speed" => {
                self.speed = value
                    .trim_end_matches('x')
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0);
            }
            "frame" => {
                if let Ok(f) = value.parse() {
                    self.frame = f;
                }
            }
            "progress" => {
                self.ended = value == "end";
                return Some(self.report(self.ended));
            }
            _ => {}
        }
        None
    }

    fn report(&mut self, done: bool) -> Progress {
        let percent = self.total.map(|t| {
            let p = if done {
                100.0
            } else {
                (self.out_time.as_secs_f64() / t.as_secs_f64() * 100.0).clamp(0.0, 99.9)
            };
            self.last_percent = self.last_percent.max(p);
            self.last_percent
        });
        let eta = match (self.total, self.speed) {
            _ if done => Some(Duration::ZERO),
            (Some(t), Some(s)) => {
                let left = t.saturating_sub(self.out_time).as_secs_f64() / s;
                (left.is_finite() && left < 1e9).then(|| Duration::from_secs_f64(left))
            }
            _ => None,
        };
        Progress {
            out_time: self.out_time,
            percent,
            speed: self.speed,
            eta,
            frame: self.frame,
            done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_in_any_chunking_become_monotonic_reports() {
        let text = "frame=10\nout_time_us=1000000\nspeed=2.00x\nprogress=continue\n\
                    frame=20\nout_time_us=500000\nspeed=N/A\nprogress=continue\n\
                    frame=40\nout_time_us=3000000\nspeed=1.5x\nprogress=continue\n\
                    out_time_us=4000000\nprogress=end\n\
                    out_time_us=1000\nprogress=continue\n";
        for chunk in [1, 3, 7, 1000] {
            let mut p = ProgressParser::new(Some(Duration::from_secs(4)));
            let mut got = Vec::new();
            for c in text.as_bytes().chunks(chunk) {
                p.push(c, |r| got.push(r));
            }
            assert_eq!(got.len(), 4, "nothing after the end block");
            assert_eq!(got[0].percent, Some(25.0));
            assert_eq!(got[0].eta, Some(Duration::from_millis(1500)));
            assert_eq!(got[1].percent, Some(25.0), "out_time going back does not");
            assert_eq!(got[1].speed, None);
            assert_eq!(got[2].percent, Some(75.0));
            assert_eq!(got[2].frame, 40);
            assert!(got[3].done && got[3].percent == Some(100.0));
        }
    }

    #[test]
    fn garbage_and_long_lines_are_ignored() {
        let mut p = ProgressParser::new(None);
        let mut n = 0;
        let mut junk = vec![b'x'; 5000];
        junk.extend_from_slice(b"=progress=end\n\xff\xfe=\nprogress=continue\n");
        p.push(&junk, |r| {
            assert_eq!(r.percent, None);
            n += 1;
        });
        assert_eq!(n, 1);
    }
}
