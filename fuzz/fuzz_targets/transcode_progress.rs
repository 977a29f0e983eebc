//! ffmpeg's `-progress` stream, arbitrary bytes in arbitrary chunks: no panic, percent
//! within 0–100 and never decreasing, 100 only with `progress=end`.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use videopick_transcode::progress::ProgressParser;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let total = Duration::from_millis(u64::from(split) * 100);
    let mut p = ProgressParser::new(Some(total));
    let mut last = 0.0_f64;
    let chunk = usize::from(split % 17) + 1;
    for c in rest.chunks(chunk) {
        p.push(c, |r| {
            if let Some(x) = r.percent {
                assert!((0.0..=100.0).contains(&x), "{x}");
                assert!(x >= last, "{x} < {last}");
                assert!(x < 100.0 || r.done, "100 before the end");
                last = x;
            }
        });
    }
});
