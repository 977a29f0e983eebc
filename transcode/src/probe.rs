//! `ffprobe` as a typed function: [`probe`] runs it, [`MediaInfo::from_ffprobe_json`] reads
//! its JSON (sans-IO, tolerant of missing fields, never panicking on odd values).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::process::{self, Tool};

/// What a probe can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// ffprobe could not be started (not installed?).
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// ffprobe ran but the file is not media it can read.
    #[error("not a media file ({path}): {message}")]
    NotMedia {
        /// The file.
        path: String,
        /// ffprobe's own words (the tail of its stderr), or what was missing.
        message: String,
    },
    /// ffprobe did not finish in time.
    #[error("ffprobe timed out after {0:?}")]
    Timeout(Duration),
    /// ffprobe's output was not the JSON it should print.
    #[error("unreadable ffprobe output: {0}")]
    Output(String),
}

/// A probed media file.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaInfo {
    /// Container names as ffprobe gives them (`mov,mp4,m4a,3gp,3g2,mj2`).
    pub container: String,
    /// Duration, when known.
    pub duration: Option<Duration>,
    /// Overall bit rate in bits per second, when known.
    pub bit_rate: Option<u64>,
    /// File size in bytes, when known.
    pub size: Option<u64>,
    /// The first video stream (cover art excluded).
    pub video: Option<VideoInfo>,
    /// The first audio stream.
    pub audio: Option<AudioInfo>,
}

/// A video stream.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoInfo {
    /// Codec (`h264`, `hevc`, `vp9`, `av1`, …).
    pub codec: String,
    /// Codec profile (`High`, `Main`, …), when given.
    pub profile: Option<String>,
    /// Coded width in pixels.
    pub width: u32,
    /// Coded height in pixels.
    pub height: u32,
    /// Frames per second (average, else the stream's base rate), when known.
    pub fps: Option<f64>,
    /// Clockwise rotation to apply for display: 0, 90, 180 or 270.
    pub rotation: u32,
    /// Bit rate in bits per second, when the container says.
    pub bit_rate: Option<u64>,
    /// Pixel format (`yuv420p`, …), when given.
    pub pix_fmt: Option<String>,
}

impl VideoInfo {
    /// Width and height as displayed (swapped for 90° and 270° rotations).
    pub fn display_size(&self) -> (u32, u32) {
        if self.rotation % 180 == 90 {
            (self.height, self.width)
        } else {
            (self.width, self.height)
        }
    }
}

/// An audio stream.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioInfo {
    /// Codec (`aac`, `mp3`, `opus`, …).
    pub codec: String,
    /// Codec profile (`LC`, `HE-AAC`, …), when given.
    pub profile: Option<String>,
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// Channel count.
    pub channels: u32,
    /// Bit rate in bits per second, when known.
    pub bit_rate: Option<u64>,
}

impl MediaInfo {
    /// Read `ffprobe -print_format json -show_format -show_streams` output. A file with
    /// neither a video nor an audio stream is [`ProbeError::NotMedia`].
    pub fn from_ffprobe_json(path: &str, json: &str) -> Result<MediaInfo, ProbeError> {
        let v: Value = serde_json::from_str(json).map_err(|e| ProbeError::Output(e.to_string()))?;
        let format = v.get("format").unwrap_or(&Value::Null);
        let streams = v
            .get("streams")
            .and_then(Value::as_array)
            .map_or(&[][..], Vec::as_slice);
        let is = |s: &&Value, kind: &str| s.get("codec_type").and_then(Value::as_str) == Some(kind);
        let attached_pic = |s: &&Value| {
            s.get("disposition")
                .and_then(|d| d.get("attached_pic"))
                .and_then(Value::as_i64)
                == Some(1)
        };
        let video = streams
            .iter()
            .find(|s| is(s, "video") && !attached_pic(s))
            .and_then(video_info);
        let audio = streams.iter().find(|s| is(s, "audio")).map(audio_info);
        if video.is_none() && audio.is_none() {
            return Err(ProbeError::NotMedia {
                path: path.into(),
                message: "no audio or video stream".into(),
            });
        }
        Ok(MediaInfo {
            container: str_field(format, "format_name").unwrap_or_default(),
            duration: num(format, "duration")
                .filter(|d| d.is_finite() && *d >= 0.0 && *d < 1e9)
                .map(Duration::from_secs_f64),
            bit_rate: uint(format, "bit_rate"),
            size: uint(format, "size"),
            video,
            audio,
        })
    }
}

fn str_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_owned)
}

/// A number that ffprobe may print as a JSON number or as a string.
fn num(v: &Value, key: &str) -> Option<f64> {
    match v.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // range-checked first
fn uint(v: &Value, key: &str) -> Option<u64> {
    num(v, key)
        .filter(|n| n.is_finite() && *n >= 0.0 && *n < 1.8e19)
        .map(|n| n as u64)
}

fn small(v: &Value, key: &str) -> Option<u32> {
    uint(v, key).and_then(|n| u32::try_from(n).ok())
}

/// `30000/1001` → 29.97; `0/0` → None.
fn rate(s: &str) -> Option<f64> {
    let (n, d) = s.split_once('/').unwrap_or((s, "1"));
    let (n, d): (f64, f64) = (n.trim().parse().ok()?, d.trim().parse().ok()?);
    let r = n / d;
    (r.is_finite() && r > 0.0 && r < 1000.0).then_some(r)
}

fn video_info(s: &Value) -> Option<VideoInfo> {
    let width = small(s, "width").filter(|w| *w > 0)?;
    let height = small(s, "height").filter(|h| *h > 0)?;
    let fps = ["avg_frame_rate", "r_frame_rate"]
        .iter()
        .find_map(|k| s.get(*k).and_then(Value::as_str).and_then(rate));
    Some(VideoInfo {
        codec: str_field(s, "codec_name").unwrap_or_default(),
        profile: str_field(s, "profile"),
        width,
        height,
        fps,
        rotation: rotation(s),
        bit_rate: uint(s, "bit_rate"),
        pix_fmt: str_field(s, "pix_fmt"),
    })
}

/// Clockwise display rotation from the display matrix (counter-clockwise degrees) or the
/// older `rotate` tag (clockwise), snapped to a multiple of 90.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // rem_euclid(360) of a rounded finite value
fn rotation(s: &Value) -> u32 {
    let from_matrix = s
        .get("side_data_list")
        .and_then(Value::as_array)
        .and_then(|l| l.iter().find_map(|d| num(d, "rotation")))
        .map(|r| -r);
    let from_tag = s.get("tags").and_then(|t| num(t, "rotate"));
    let Some(deg) = from_matrix.or(from_tag).filter(|d| d.is_finite()) else {
        return 0;
    };
    let snapped = ((deg / 90.0).round() * 90.0) as i64;
    snapped.rem_euclid(360) as u32
}

fn audio_info(s: &Value) -> AudioInfo {
    AudioInfo {
        codec: str_field(s, "codec_name").unwrap_or_default(),
        profile: str_field(s, "profile"),
        sample_rate: small(s, "sample_rate").unwrap_or(0),
        channels: small(s, "channels").unwrap_or(0),
        bit_rate: uint(s, "bit_rate"),
    }
}

/// Probe `path` with `ffprobe` (give another program, e.g. a full path, with
/// [`probe_with`]). Fails with [`ProbeError::NotMedia`] for files that are not media.
pub async fn probe(path: &Path) -> Result<MediaInfo, ProbeError> {
    probe_with("ffprobe", path, Duration::from_secs(60)).await
}

/// [`probe`] with an explicit program and time limit.
pub async fn probe_with(
    program: &str,
    path: &Path,
    timeout: Duration,
) -> Result<MediaInfo, ProbeError> {
    let shown = path.display().to_string();
    let mut cmd = Tool::new(program);
    cmd.args([
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
        "--",
    ]);
    cmd.arg(path);
    let out = match process::output(cmd, timeout, 8 << 20).await {
        Ok(o) => o,
        Err(process::OutputError::Spawn(e)) => {
            return Err(ProbeError::Spawn {
                program: program.into(),
                source: e,
            });
        }
        Err(process::OutputError::Timeout) => return Err(ProbeError::Timeout(timeout)),
        Err(process::OutputError::Io(e)) => return Err(ProbeError::Output(e.to_string())),
    };
    if !out.success {
        let message = out.stderr_tail.trim();
        return Err(ProbeError::NotMedia {
            path: shown,
            message: if message.is_empty() {
                format!("ffprobe exited with {}", out.status)
            } else {
                message.to_string()
            },
        });
    }
    let json = String::from_utf8_lossy(&out.stdout);
    MediaInfo::from_ffprobe_json(&shown, &json)
}
