//! FLV timestamps onto one monotonic output timeline, shared by the TS and CMAF
//! segmenters: 32-bit millisecond wrap, small steps back, and jumps (a republish, a
//! publisher's clock reset) re-based so output time continues one frame after the newest.

use std::time::Duration;

/// Maps FLV millisecond timestamps to output milliseconds.
#[derive(Debug, Clone)]
pub(crate) struct Timeline {
    jump_ms: i64,
    start_ms: i64,
    last_raw: Option<u32>,
    extended: i64,
    shift: i64,
    newest_ms: Option<i64>,
    rebase: bool,
}

impl Timeline {
    /// A timeline starting at `start_ms`; a step of more than `jump` is a discontinuity.
    pub(crate) fn new(jump: Duration, start_ms: i64) -> Timeline {
        Timeline {
            jump_ms: i64::try_from(jump.as_millis()).unwrap_or(i64::MAX),
            start_ms,
            last_raw: None,
            extended: 0,
            shift: 0,
            newest_ms: None,
            rebase: true,
        }
    }

    /// Re-base at the next timestamp (a new publisher: its clock starts anew).
    pub(crate) fn rebase(&mut self) {
        self.rebase = true;
        self.last_raw = None;
    }

    /// The output time of `raw`, and whether time jumped there (the caller closes what
    /// it has open and marks a discontinuity).
    pub(crate) fn map(&mut self, raw: u32) -> (i64, bool) {
        if let Some(last) = self.last_raw {
            // Wrapping difference: handles the 32-bit wrap and small steps back.
            self.extended += i64::from(raw.wrapping_sub(last).cast_signed());
        } else {
            self.extended = i64::from(raw);
        }
        self.last_raw = Some(raw);
        let mut jumped = false;
        if !self.rebase
            && let Some(newest) = self.newest_ms
        {
            let t = self.extended + self.shift;
            if t > newest.saturating_add(self.jump_ms) || t < newest.saturating_sub(self.jump_ms) {
                jumped = true;
                self.rebase = true;
            }
        }
        if self.rebase {
            self.rebase = false;
            // Continue one frame after the newest output, or start the timeline.
            let next = self.newest_ms.map_or(self.start_ms, |n| n + 40);
            self.shift = next - self.extended;
        }
        let t = (self.extended + self.shift).max(0);
        self.newest_ms = Some(self.newest_ms.map_or(t, |n| n.max(t)));
        (t, jumped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_steps_back_and_jumps() {
        let mut t = Timeline::new(Duration::from_secs(10), 1400);
        assert_eq!(t.map(5000), (1400, false));
        assert_eq!(t.map(5040), (1440, false));
        // A small step back is kept as it is (B-frame reordering in DTS never does this,
        // but audio/video interleave may).
        assert_eq!(t.map(5020), (1420, false));
        // The 32-bit wrap continues smoothly.
        let mut w = Timeline::new(Duration::from_secs(10), 0);
        assert_eq!(w.map(u32::MAX - 19), (0, false));
        assert_eq!(w.map(20), (40, false));
        // A jump continues one frame after the newest, and says so.
        assert_eq!(t.map(900_000), (1480, true));
        assert_eq!(t.map(900_040), (1520, false));
        // A new publisher re-bases without a jump.
        t.rebase();
        assert_eq!(t.map(0), (1560, false));
    }
}
