//! The ABR ladder planner: which renditions to make from a probed source, at what size,
//! frame rate and bit rate, and whether its audio can be copied.

use crate::probe::MediaInfo;

/// HLS segment container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SegmentType {
    /// MPEG-TS segments (`.ts`): every player.
    #[default]
    Ts,
    /// Fragmented MP4 (`init.mp4` + `.m4s`): needed for HEVC/AV1 in browsers.
    Fmp4,
}

/// Ladder settings.
#[derive(Debug, Clone)]
pub struct LadderConfig {
    /// Rungs by their short side in pixels (1080 = "1080p"), any order.
    pub rungs: Vec<u32>,
    /// Output frame rate cap.
    pub max_fps: f64,
    /// A rung's bit rate never exceeds this × the source video's bit rate.
    pub source_bitrate_cap: f64,
    /// Audio is copied when it is AAC, at most stereo and at most this many bits/s.
    pub audio_copy_max_bps: u64,
    /// AAC bit rate when audio is encoded.
    pub audio_bitrate: u64,
    /// Target segment duration in seconds (key frames are forced on this grid).
    pub segment_seconds: u32,
    /// Segment container.
    pub segment_type: SegmentType,
    /// x264 preset.
    pub preset: String,
}

impl Default for LadderConfig {
    fn default() -> Self {
        LadderConfig {
            rungs: vec![1080, 720, 480, 360],
            max_fps: 60.0,
            source_bitrate_cap: 1.3,
            audio_copy_max_bps: 192_000,
            audio_bitrate: 128_000,
            segment_seconds: 4,
            segment_type: SegmentType::Ts,
            preset: "veryfast".into(),
        }
    }
}

/// One planned rendition.
#[derive(Debug, Clone, PartialEq)]
pub struct Rung {
    /// Name (`720p`), also its directory in the output.
    pub name: String,
    /// Output width (even).
    pub width: u32,
    /// Output height (even).
    pub height: u32,
    /// Video bit rate, bits/s.
    pub video_bitrate: u64,
    /// H.264 profile and level for the encoder (`high`, `4.0`).
    pub profile: &'static str,
    /// H.264 level.
    pub level: &'static str,
}

impl Rung {
    /// Peak bit rate allowed to the encoder's rate control (VBV), bits/s.
    pub fn maxrate(&self) -> u64 {
        self.video_bitrate.saturating_mul(3) / 2
    }
}

/// What happens to the audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioPlan {
    /// No audio stream.
    None,
    /// Copied as is (AAC, ≤ stereo, within the bit rate limit).
    Copy,
    /// Encoded to AAC-LC stereo at this bit rate.
    Encode {
        /// Bits per second.
        bitrate: u64,
        /// Output sample rate (the source's when it is 44.1 or 48 kHz, else 48 kHz).
        sample_rate: u32,
    },
}

/// A ladder for one source.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Renditions, largest first.
    pub rungs: Vec<Rung>,
    /// Output frame rate.
    pub fps: f64,
    /// Frames per GOP: one segment's worth, so every rendition's key frames line up.
    pub gop: u32,
    /// Segment duration in seconds.
    pub segment_seconds: u32,
    /// Segment container.
    pub segment_type: SegmentType,
    /// The audio plan.
    pub audio: AudioPlan,
    /// x264 preset.
    pub preset: String,
}

/// Why no ladder can be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The source has no video stream.
    #[error("the source has no video stream")]
    NoVideo,
    /// The configuration has no rungs.
    #[error("the ladder configuration has no rungs")]
    NoRungs,
}

/// Bits per pixel per frame by rendition short side (at 30 fps): smaller pictures need
/// more bits per pixel for the same perceived quality.
fn bits_per_pixel(short_side: u32) -> f64 {
    match short_side {
        0..=240 => 0.14,
        241..=360 => 0.12,
        361..=480 => 0.11,
        481..=720 => 0.10,
        721..=1080 => 0.08,
        _ => 0.07,
    }
}

fn even(x: f64) -> u32 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // clamped first
    let v = (x / 2.0).round().clamp(1.0, 8192.0) as u32;
    v * 2
}

/// Plan the ladder for `source`: only rungs at or below its (displayed) short side, the
/// aspect kept with even dimensions, the frame rate capped, bit rates from the
/// bits-per-pixel table capped by the source's own rate. A source smaller than every
/// rung gets one rendition at its own size.
pub fn plan_ladder(source: &MediaInfo, config: &LadderConfig) -> Result<Plan, PlanError> {
    let video = source.video.as_ref().ok_or(PlanError::NoVideo)?;
    if config.rungs.is_empty() {
        return Err(PlanError::NoRungs);
    }
    let (dw, dh) = video.display_size();
    let short = dw.min(dh);
    let landscape = dw >= dh;
    let fps = video
        .fps
        .unwrap_or(30.0)
        .min(config.max_fps.max(1.0))
        .max(1.0);
    // The source's video rate: the stream's, else the container's minus the audio.
    let source_rate = video.bit_rate.or_else(|| {
        let audio = source.audio.as_ref().and_then(|a| a.bit_rate).unwrap_or(0);
        source.bit_rate.map(|b| b.saturating_sub(audio))
    });
    let mut heights: Vec<u32> = config
        .rungs
        .iter()
        .copied()
        .filter(|&r| r > 0 && r <= short)
        .collect();
    heights.sort_unstable_by(|a, b| b.cmp(a));
    heights.dedup();
    if heights.is_empty() {
        heights.push(short);
    }
    let rungs = heights
        .into_iter()
        .map(|r| {
            let r = (r & !1).max(2); // even, and never 0 (a 1-pixel-high source)
            let long = even(f64::from(r) * f64::from(dw.max(dh)) / f64::from(short));
            let (width, height) = if landscape { (long, r) } else { (r, long) };
            // High frame rates compress better per frame: count frames above 30 at half.
            let eff_fps = if fps > 30.0 {
                30.0 + (fps - 30.0) / 2.0
            } else {
                fps
            };
            let mut rate = f64::from(width) * f64::from(height) * eff_fps * bits_per_pixel(r);
            if let Some(src) = source_rate.filter(|&s| s > 0) {
                #[allow(clippy::cast_precision_loss)]
                let cap = src as f64 * config.source_bitrate_cap;
                rate = rate.min(cap);
            }
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let video_bitrate = rate.max(64_000.0) as u64;
            let (profile, level) = h264_profile_level(width, height, fps);
            Rung {
                name: format!("{r}p"),
                width,
                height,
                video_bitrate,
                profile,
                level,
            }
        })
        .collect();
    let audio = match &source.audio {
        None => AudioPlan::None,
        Some(a)
            if a.codec == "aac"
                && (1..=2).contains(&a.channels)
                && a.profile.as_deref().is_none_or(|p| p == "LC")
                && a.bit_rate.is_none_or(|b| b <= config.audio_copy_max_bps) =>
        {
            AudioPlan::Copy
        }
        Some(a) => AudioPlan::Encode {
            bitrate: config.audio_bitrate,
            sample_rate: if matches!(a.sample_rate, 44_100 | 48_000) {
                a.sample_rate
            } else {
                48_000
            },
        },
    };
    let seg = config.segment_seconds.max(1);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // fps ≤ max_fps
    let gop = (fps * f64::from(seg)).round().max(1.0) as u32;
    Ok(Plan {
        rungs,
        fps,
        gop,
        segment_seconds: seg,
        segment_type: config.segment_type,
        audio,
        preset: config.preset.clone(),
    })
}

/// The H.264 profile and the lowest level that fits the picture size and frame rate.
fn h264_profile_level(width: u32, height: u32, fps: f64) -> (&'static str, &'static str) {
    let mbs = f64::from(width.div_ceil(16) * height.div_ceil(16));
    let mbps = mbs * fps;
    // (level, max macroblocks per frame, max macroblocks per second), ITU-T H.264 table A-1.
    let levels = [
        ("3.0", 1620.0, 40_500.0),
        ("3.1", 3600.0, 108_000.0),
        ("3.2", 5120.0, 216_000.0),
        ("4.0", 8192.0, 245_760.0),
        ("4.2", 8704.0, 522_240.0),
        ("5.0", 22_080.0, 589_824.0),
        ("5.1", 36_864.0, 983_040.0),
        ("5.2", 36_864.0, 2_073_600.0),
    ];
    let level = levels
        .iter()
        .find(|(_, fs, rate)| mbs <= *fs && mbps <= *rate)
        .map_or("6.0", |l| l.0);
    let profile = if height <= 360 { "main" } else { "high" };
    (profile, level)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::{AudioInfo, VideoInfo};

    fn source(w: u32, h: u32, fps: f64, rotation: u32, vrate: Option<u64>) -> MediaInfo {
        MediaInfo {
            container: "mov,mp4".into(),
            duration: None,
            bit_rate: None,
            size: None,
            video: Some(VideoInfo {
                codec: "h264".into(),
                profile: None,
                width: w,
                height: h,
                fps: Some(fps),
                rotation,
                bit_rate: vrate,
                pix_fmt: None,
            }),
            audio: Some(AudioInfo {
                codec: "aac".into(),
                profile: Some("LC".into()),
                sample_rate: 44_100,
                channels: 2,
                bit_rate: Some(128_000),
            }),
        }
    }

    #[test]
    fn only_rungs_at_or_below_the_source() {
        let p = plan_ladder(&source(640, 360, 30.0, 0, None), &LadderConfig::default()).unwrap();
        let names: Vec<_> = p.rungs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["360p"]);
        assert_eq!((p.rungs[0].width, p.rungs[0].height), (640, 360));
        let p = plan_ladder(&source(1920, 1080, 30.0, 0, None), &LadderConfig::default()).unwrap();
        let sizes: Vec<_> = p.rungs.iter().map(|r| (r.width, r.height)).collect();
        assert_eq!(sizes, [(1920, 1080), (1280, 720), (854, 480), (640, 360)]);
        assert_eq!(p.audio, AudioPlan::Copy);
        assert_eq!(p.gop, 120);
    }

    #[test]
    fn aspect_rotation_fps_and_bitrate_caps() {
        // A phone video: coded 1920x1080, rotated 90° → portrait 1080x1920.
        let p = plan_ladder(
            &source(1920, 1080, 60.0, 90, None),
            &LadderConfig::default(),
        )
        .unwrap();
        assert_eq!((p.rungs[1].width, p.rungs[1].height), (720, 1280));
        // 21:9 at 120 fps: even sizes, fps capped at 60.
        let p = plan_ladder(
            &source(2560, 1080, 120.0, 0, None),
            &LadderConfig::default(),
        )
        .unwrap();
        assert!((p.fps - 60.0).abs() < 1e-9);
        for r in &p.rungs {
            assert!(r.width % 2 == 0 && r.height % 2 == 0, "{r:?}");
        }
        assert_eq!((p.rungs[1].width, p.rungs[1].height), (1706, 720));
        // A low-rate source caps every rung at 1.3× its rate.
        let p = plan_ladder(
            &source(1280, 720, 30.0, 0, Some(1_000_000)),
            &LadderConfig::default(),
        )
        .unwrap();
        assert!(p.rungs.iter().all(|r| r.video_bitrate <= 1_300_000));
        // Degenerate sizes still give even, non-zero renditions (found by fuzzing).
        let p = plan_ladder(&source(1920, 1, 30.0, 90, None), &LadderConfig::default()).unwrap();
        assert_eq!((p.rungs[0].width, p.rungs[0].height), (2, 3840));
        // Tiny sources still get one rendition.
        let p = plan_ladder(&source(320, 240, 25.0, 0, None), &LadderConfig::default()).unwrap();
        assert_eq!(p.rungs.len(), 1);
        assert_eq!(
            (
                p.rungs[0].width,
                p.rungs[0].height,
                p.rungs[0].name.as_str()
            ),
            (320, 240, "240p")
        );
    }

    #[test]
    fn audio_is_copied_only_when_it_fits() {
        let mut s = source(1280, 720, 30.0, 0, None);
        s.audio.as_mut().unwrap().channels = 6;
        assert!(matches!(
            plan_ladder(&s, &LadderConfig::default()).unwrap().audio,
            AudioPlan::Encode {
                bitrate: 128_000,
                sample_rate: 44_100
            }
        ));
        let mut s = source(1280, 720, 30.0, 0, None);
        let a = s.audio.as_mut().unwrap();
        a.codec = "mp3".into();
        a.sample_rate = 22_050;
        assert!(matches!(
            plan_ladder(&s, &LadderConfig::default()).unwrap().audio,
            AudioPlan::Encode {
                sample_rate: 48_000,
                ..
            }
        ));
        let mut s = source(1280, 720, 30.0, 0, None);
        s.audio = None;
        assert_eq!(
            plan_ladder(&s, &LadderConfig::default()).unwrap().audio,
            AudioPlan::None
        );
        s.video = None;
        assert_eq!(
            plan_ladder(&s, &LadderConfig::default()).unwrap_err(),
            PlanError::NoVideo
        );
    }

    #[test]
    fn levels_fit_the_picture() {
        assert_eq!(h264_profile_level(1920, 1080, 30.0), ("high", "4.0"));
        assert_eq!(h264_profile_level(1920, 1080, 60.0), ("high", "4.2"));
        assert_eq!(h264_profile_level(640, 360, 30.0), ("main", "3.0"));
        assert_eq!(h264_profile_level(1280, 720, 30.0), ("high", "3.1"));
    }
}
