//! ffmpeg argument lists for each job kind (pure functions: easy to test, to log and to
//! run by hand). The runner adds `-progress pipe:1 -nostats` and runs them.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use crate::plan::{AudioPlan, Plan, SegmentType};

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

/// Common head: no banner, no stdin, overwrite, messages from `level` up on stderr.
fn head(input: &Path, level: &str) -> Vec<OsString> {
    let mut a = os(&["-hide_banner", "-nostdin", "-y", "-v", level, "-i"]);
    a.push(input.into());
    a
}

/// The whole ladder in one ffmpeg process: the source is decoded once, `split` into one
/// branch per rung, each `scale`d and encoded with the same GOP (key frames aligned
/// across renditions, no scene-cut key frames), written as HLS VOD under
/// `out_dir/<rung>/index.m3u8` with `out_dir/master.m3u8` listing every rendition
/// (BANDWIDTH, RESOLUTION, CODECS).
pub fn ladder(input: &Path, out_dir: &Path, plan: &Plan) -> Vec<OsString> {
    let n = plan.rungs.len();
    let mut graph = format!("[0:v:0]fps={},split={n}", plan.fps);
    for i in 0..n {
        let _ = write!(graph, "[s{i}]");
    }
    for (i, r) in plan.rungs.iter().enumerate() {
        let _ = write!(
            graph,
            ";[s{i}]scale={}:{}:flags=bicubic,setsar=1,format=yuv420p[v{i}]",
            r.width, r.height
        );
    }
    let mut a = head(input, "warning");
    a.push("-filter_complex".into());
    a.push(graph.into());
    let audio = plan.audio != AudioPlan::None;
    for i in 0..n {
        a.push("-map".into());
        a.push(format!("[v{i}]").into());
        if audio {
            a.extend(os(&["-map", "0:a:0"]));
        }
    }
    let gop = plan.gop.to_string();
    a.extend(os(&[
        "-c:v",
        "libx264",
        "-preset",
        &plan.preset,
        "-g",
        &gop,
        "-keyint_min",
        &gop,
        "-sc_threshold",
        "0",
        "-bf",
        "2",
    ]));
    for (i, r) in plan.rungs.iter().enumerate() {
        let rate = r.video_bitrate.to_string();
        a.extend(os(&[
            &format!("-b:v:{i}"),
            &rate,
            &format!("-maxrate:v:{i}"),
            &r.maxrate().to_string(),
            &format!("-bufsize:v:{i}"),
            &r.video_bitrate.saturating_mul(2).to_string(),
            &format!("-profile:v:{i}"),
            r.profile,
            &format!("-level:v:{i}"),
            r.level,
        ]));
    }
    match plan.audio {
        AudioPlan::None => {}
        AudioPlan::Copy => a.extend(os(&["-c:a", "copy"])),
        AudioPlan::Encode {
            bitrate,
            sample_rate,
        } => a.extend(os(&[
            "-c:a",
            "aac",
            "-b:a",
            &bitrate.to_string(),
            "-ac",
            "2",
            "-ar",
            &sample_rate.to_string(),
        ])),
    }
    hls_output(&mut a, out_dir, plan, audio);
    a
}

/// The HLS muxer's options: VOD playlists per rung and the master playlist.
fn hls_output(a: &mut Vec<OsString>, out_dir: &Path, plan: &Plan, audio: bool) {
    let (seg_type, seg_name) = match plan.segment_type {
        SegmentType::Ts => ("mpegts", "seg_%05d.ts"),
        SegmentType::Fmp4 => ("fmp4", "seg_%05d.m4s"),
    };
    a.extend(os(&[
        "-f",
        "hls",
        "-hls_time",
        &plan.segment_seconds.to_string(),
        "-hls_playlist_type",
        "vod",
        "-hls_flags",
        "independent_segments",
        "-hls_segment_type",
        seg_type,
    ]));
    if plan.segment_type == SegmentType::Fmp4 {
        a.extend(os(&["-hls_fmp4_init_filename", "init.mp4"]));
    }
    a.push("-hls_segment_filename".into());
    a.push(out_dir.join("%v").join(seg_name).into());
    a.extend(os(&["-master_pl_name", "master.m3u8", "-var_stream_map"]));
    let map: Vec<String> = plan
        .rungs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if audio {
                format!("v:{i},a:{i},name:{}", r.name)
            } else {
                format!("v:{i},name:{}", r.name)
            }
        })
        .collect();
    a.push(map.join(" ").into());
    a.push(out_dir.join("%v").join("index.m3u8").into());
}

/// A poster image: one frame at `at`, at most 720 pixels high, as JPEG.
pub fn poster(input: &Path, at: Duration, out: &Path) -> Vec<OsString> {
    let mut a = os(&["-hide_banner", "-nostdin", "-y", "-v", "error", "-ss"]);
    a.push(format!("{:.3}", at.as_secs_f64()).into());
    a.push("-i".into());
    a.push(input.into());
    a.extend(os(&[
        "-frames:v",
        "1",
        "-vf",
        "scale=-2:'min(720,ih)'",
        "-q:v",
        "3",
        "-update",
        "1",
    ]));
    a.push(out.into());
    a
}

/// A storyboard: thumbnails every `layout.interval`, tiled into one JPEG sprite; pair it
/// with [`Storyboard::vtt`].
pub fn storyboard(input: &Path, layout: &Storyboard, out: &Path) -> Vec<OsString> {
    let mut a = head(input, "error");
    a.extend(os(&[
        "-vf",
        &format!(
            "fps=1/{},scale={}:{},tile={}x{}",
            layout.interval.as_secs_f64(),
            layout.tile_width,
            layout.tile_height,
            layout.columns,
            layout.rows
        ),
        "-frames:v",
        "1",
        "-q:v",
        "5",
        "-update",
        "1",
    ]));
    a.push(out.into());
    a
}

/// Recording → MP4 without re-encoding: the streams copied, ADTS AAC turned into MP4's
/// form, the index moved to the front (`faststart`) so playback starts before the
/// download ends.
pub fn remux_mp4(input: &Path, out: &Path) -> Vec<OsString> {
    let mut a = head(input, "warning");
    a.extend(os(&[
        "-map",
        "0:v?",
        "-map",
        "0:a?",
        "-c",
        "copy",
        "-bsf:a",
        "aac_adtstoasc",
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
    ]));
    a.push(out.into());
    a
}

/// The geometry of a storyboard sprite.
#[derive(Debug, Clone, PartialEq)]
pub struct Storyboard {
    /// Time between thumbnails.
    pub interval: Duration,
    /// Thumbnails in the sprite.
    pub count: u32,
    /// Sprite columns.
    pub columns: u32,
    /// Sprite rows.
    pub rows: u32,
    /// One thumbnail's width (even).
    pub tile_width: u32,
    /// One thumbnail's height (even).
    pub tile_height: u32,
    /// The video's duration.
    pub duration: Duration,
}

impl Storyboard {
    /// A layout for a video of `duration` displayed at `width`×`height`: thumbnails 160
    /// pixels wide, at least a second apart, at most `max_count` of them, 10 per row.
    pub fn new(duration: Duration, width: u32, height: u32, max_count: u32) -> Storyboard {
        let secs = duration.as_secs_f64().max(0.001);
        let max = f64::from(max_count.max(1));
        let interval = (secs / max).ceil().max(1.0);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // ≤ max_count
        let count = ((secs / interval).ceil() as u32).clamp(1, max_count.max(1));
        let columns = count.min(10);
        let rows = count.div_ceil(columns);
        let tile_width = 160;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // clamped
        let tile_height =
            ((f64::from(tile_width) * f64::from(height.max(1)) / f64::from(width.max(1)) / 2.0)
                .round()
                .clamp(1.0, 4096.0) as u32)
                * 2;
        Storyboard {
            interval: Duration::from_secs_f64(interval),
            count,
            columns,
            rows,
            tile_width,
            tile_height,
            duration,
        }
    }

    /// The WebVTT index: one cue per thumbnail pointing into `sprite` with a media
    /// fragment (`sprite#xywh=x,y,w,h`).
    pub fn vtt(&self, sprite: &str) -> String {
        let mut s = String::from("WEBVTT\n");
        for i in 0..self.count {
            let start = self.interval * i;
            if start >= self.duration && i > 0 {
                break;
            }
            let end = (self.interval * (i + 1)).min(self.duration.max(start));
            let (x, y) = (
                (i % self.columns) * self.tile_width,
                (i / self.columns) * self.tile_height,
            );
            let _ = write!(
                s,
                "\n{} --> {}\n{sprite}#xywh={x},{y},{},{}\n",
                vtt_time(start),
                vtt_time(end),
                self.tile_width,
                self.tile_height
            );
        }
        s
    }
}

fn vtt_time(d: Duration) -> String {
    let ms = d.as_millis();
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storyboard_layout_and_vtt() {
        let sb = Storyboard::new(Duration::from_secs(6), 1280, 720, 100);
        assert_eq!((sb.count, sb.columns, sb.rows), (6, 6, 1));
        assert_eq!((sb.tile_width, sb.tile_height), (160, 90));
        let vtt = sb.vtt("storyboard.jpg");
        assert!(vtt.starts_with(
            "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\nstoryboard.jpg#xywh=0,0,160,90\n"
        ));
        assert!(vtt.contains("00:00:05.000 --> 00:00:06.000\nstoryboard.jpg#xywh=800,0,160,90\n"));
        // Two hours: at most 100 thumbnails, 72 s apart, 10 per row.
        let sb = Storyboard::new(Duration::from_secs(7200), 1920, 1080, 100);
        assert_eq!((sb.count, sb.columns, sb.rows), (100, 10, 10));
        assert_eq!(sb.interval, Duration::from_secs(72));
        assert!(
            sb.vtt("s.jpg")
                .contains("01:58:48.000 --> 02:00:00.000\ns.jpg#xywh=1440,810,160,90")
        );
    }
}
