//! FFmpeg job orchestration for VideoPick: probe a source, plan an ABR ladder, build the
//! ffmpeg commands, run them with progress, cancellation and time limits, and publish the
//! results atomically into the storage crate's `vod/` area.
//!
//! ```text
//! source ─► probe (ffprobe JSON → MediaInfo) ─► plan_ladder (rungs ≤ source, fps cap,
//!   bits-per-pixel rates, audio copy or AAC) ─► command::ladder (one ffmpeg: decode once,
//!   split + scale per rung, aligned key frames, HLS VOD + master) ─► Runner (progress,
//!   cancel, timeout, nice, concurrency limit) ─► tmp/ ─► atomic publish ─► vod/<video-id>/
//! ```
//!
//! The planner, the command builders and the progress parser are pure; everything that
//! runs a process is async (tokio).
//!
//! ```
//! use std::path::Path;
//! use std::time::Duration;
//! use videopick_transcode::plan::{plan_ladder, LadderConfig};
//! use videopick_transcode::probe::MediaInfo;
//! use videopick_transcode::progress::ProgressParser;
//!
//! // What `probe` reads from ffprobe for a 640×360 H.264 + AAC file.
//! let json = r#"{"streams": [
//!     {"codec_type": "video", "codec_name": "h264", "width": 640, "height": 360,
//!      "avg_frame_rate": "30/1"},
//!     {"codec_type": "audio", "codec_name": "aac", "profile": "LC",
//!      "sample_rate": "48000", "channels": 2, "bit_rate": "128000"}],
//!   "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "duration": "6.0"}}"#;
//! let info = MediaInfo::from_ffprobe_json("in.mp4", json)?;
//! assert_eq!(info.duration, Some(Duration::from_secs(6)));
//!
//! // No rung above the source: a 360p source gets a 360p rendition only.
//! let plan = plan_ladder(&info, &LadderConfig::default())?;
//! assert_eq!(plan.rungs.len(), 1);
//! assert_eq!((plan.rungs[0].width, plan.rungs[0].height), (640, 360));
//!
//! // The ffmpeg command for it, ready for `Runner::run`.
//! let args = videopick_transcode::command::ladder(Path::new("in.mp4"), Path::new("out"), &plan);
//! assert!(args.iter().any(|a| a == "-master_pl_name"));
//!
//! // ffmpeg's `-progress` output becomes percent and ETA.
//! let mut parser = ProgressParser::new(info.duration);
//! let mut last = None;
//! parser.push(b"out_time_us=3000000\nspeed=2x\nprogress=continue\n", |p| last = Some(p));
//! let p = last.unwrap();
//! assert_eq!((p.percent, p.eta), (Some(50.0), Some(Duration::from_millis(1500))));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod command;
mod file_queue;
#[cfg(feature = "postgres")]
mod pg_queue;
pub mod plan;
pub mod probe;
mod process;
pub mod progress;
pub mod queue;
pub mod runner;
mod transcoder;
pub mod worker;

pub use transcoder::{Cancel, JobError, LadderOutput, Transcoder, TranscoderConfig};
