//! ffprobe's JSON (from a hostile upload, ffprobe echoes tags and odd values): parsing and
//! then planning a ladder never panic, and a plan has even sizes within the source.
#![no_main]

use libfuzzer_sys::fuzz_target;
use videopick_transcode::plan::{LadderConfig, plan_ladder};
use videopick_transcode::probe::MediaInfo;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(info) = MediaInfo::from_ffprobe_json("fuzz", text) else {
        return;
    };
    if let Ok(plan) = plan_ladder(&info, &LadderConfig::default()) {
        assert!(!plan.rungs.is_empty());
        assert!(plan.fps >= 1.0 && plan.fps <= 60.0, "{}", plan.fps);
        for r in &plan.rungs {
            assert!(r.width % 2 == 0 && r.height % 2 == 0 && r.width > 0 && r.height > 0);
            assert!(r.video_bitrate >= 64_000);
        }
    }
});
