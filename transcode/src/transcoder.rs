//! Whole jobs: probe → plan → ffmpeg → thumbnails → atomic publish to `vod/<video-id>/`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use videopick_storage::{Storage, StorageError, VideoId};

use crate::command::{self, Storyboard};
use crate::plan::{LadderConfig, Plan, PlanError, plan_ladder};
use crate::probe::{MediaInfo, ProbeError, probe_with};
use crate::progress::Progress;
use crate::runner::{RunError, RunOptions, Runner};

/// Why a job failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The source could not be probed (not media, ffprobe missing, …).
    #[error("probe: {0}")]
    Probe(#[from] ProbeError),
    /// No ladder fits the source.
    #[error("plan: {0}")]
    Plan(#[from] PlanError),
    /// ffmpeg failed, was cancelled or timed out.
    #[error("ffmpeg: {0}")]
    Run(#[from] RunError),
    /// Staging or publishing the output failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
}

impl JobError {
    /// The job was cancelled (not a failure to retry).
    pub fn is_cancelled(&self) -> bool {
        matches!(self, JobError::Run(RunError::Cancelled))
    }
}

/// A cancellation signal shared by a job's steps; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    inner: Arc<(AtomicBool, Notify)>,
}

impl Cancel {
    /// A signal not yet raised.
    pub fn new() -> Cancel {
        Cancel::default()
    }

    /// Raise it: running ffmpeg processes of the job are killed.
    pub fn cancel(&self) {
        self.inner.0.store(true, Ordering::SeqCst);
        self.inner.1.notify_waiters();
    }

    /// Whether it was raised.
    pub fn is_cancelled(&self) -> bool {
        self.inner.0.load(Ordering::SeqCst)
    }

    /// Completes once raised.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.inner.1.notified();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// Job settings.
#[derive(Debug, Clone)]
pub struct TranscoderConfig {
    /// The ladder.
    pub ladder: LadderConfig,
    /// Make a poster and a storyboard with each ladder.
    pub thumbnails: bool,
    /// Most thumbnails in a storyboard.
    pub storyboard_max: u32,
    /// Time limit for ffprobe.
    pub probe_timeout: Duration,
}

impl Default for TranscoderConfig {
    fn default() -> Self {
        TranscoderConfig {
            ladder: LadderConfig::default(),
            thumbnails: true,
            storyboard_max: 100,
            probe_timeout: Duration::from_secs(60),
        }
    }
}

/// What a ladder job published.
#[derive(Debug, Clone)]
pub struct LadderOutput {
    /// `vod/<video-id>/` (holding `master.m3u8`, one directory per rung, and
    /// `poster.jpg`, `storyboard.jpg`, `storyboard.vtt` when thumbnails are on).
    pub dir: PathBuf,
    /// The probed source.
    pub source: MediaInfo,
    /// The ladder that was made.
    pub plan: Plan,
}

/// Runs jobs into a storage root; cheap to clone.
#[derive(Debug, Clone)]
pub struct Transcoder {
    storage: Storage,
    runner: Runner,
    config: Arc<TranscoderConfig>,
}

/// Share of a ladder job's progress given to the ladder itself (thumbnails take the rest).
const LADDER_SHARE: f64 = 0.9;

impl Transcoder {
    /// Jobs writing into `storage`, running ffmpeg through `runner`.
    pub fn new(storage: Storage, runner: Runner, config: TranscoderConfig) -> Transcoder {
        Transcoder {
            storage,
            runner,
            config: Arc::new(config),
        }
    }

    /// The storage root.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The runner.
    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    /// Probe `input` with the runner's ffprobe.
    pub async fn probe(&self, input: &Path) -> Result<MediaInfo, JobError> {
        Ok(probe_with(
            &self.runner.config().ffprobe,
            input,
            self.config.probe_timeout,
        )
        .await?)
    }

    /// Transcode `input` into an HLS ladder (+ thumbnails) and publish it at
    /// `vod/<video>/`, replacing an earlier one; other files already there (e.g. a
    /// recording's `video.mp4`) are kept. `timeout` bounds the whole job. Progress percent
    /// rises monotonically to 100 when the job is done.
    pub async fn ladder(
        &self,
        video: &VideoId,
        input: &Path,
        timeout: Option<Duration>,
        cancel: &Cancel,
        mut on_progress: impl FnMut(Progress),
    ) -> Result<LadderOutput, JobError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let source = self.probe(input).await?;
        let plan = plan_ladder(&source, &self.config.ladder)?;
        let (storage, target) = (self.storage.clone(), self.storage.vod_dir(video));
        let staging = blocking(move || storage.atomic_dir(target)).await?;
        let out = staging.path().to_path_buf();

        let args = command::ladder(input, &out, &plan);
        let options = RunOptions {
            duration: source.duration,
            timeout: remaining(deadline, timeout)?,
        };
        let mut last = 0.0_f64;
        self.runner
            .run(args, &options, cancel.cancelled(), |mut p| {
                p.percent = p.percent.map(|x| x * LADDER_SHARE);
                p.done = false;
                last = p.percent.unwrap_or(last);
                on_progress(p);
            })
            .await?;

        if self.config.thumbnails {
            self.thumbnails(input, &source, &out, deadline, timeout, cancel)
                .await?;
        }

        let dir = blocking(move || {
            keep_siblings(&staging)?;
            staging.commit_replace()
        })
        .await?;
        on_progress(Progress {
            out_time: source.duration.unwrap_or_default(),
            percent: Some(100.0_f64.max(last)),
            speed: None,
            eta: Some(Duration::ZERO),
            frame: 0,
            done: true,
        });
        Ok(LadderOutput { dir, source, plan })
    }

    async fn thumbnails(
        &self,
        input: &Path,
        source: &MediaInfo,
        out: &Path,
        deadline: Option<Instant>,
        timeout: Option<Duration>,
        cancel: &Cancel,
    ) -> Result<(), JobError> {
        let duration = source.duration.unwrap_or_default();
        let at = (duration / 10).min(Duration::from_secs(5));
        let options = |deadline| RunOptions {
            duration: None,
            timeout: remaining(deadline, timeout).ok().flatten(),
        };
        self.runner
            .run(
                command::poster(input, at, &out.join("poster.jpg")),
                &options(deadline),
                cancel.cancelled(),
                |_| {},
            )
            .await?;
        if let (Some(v), false) = (&source.video, duration.is_zero()) {
            let (w, h) = v.display_size();
            let layout = Storyboard::new(duration, w, h, self.config.storyboard_max);
            self.runner
                .run(
                    command::storyboard(input, &layout, &out.join("storyboard.jpg")),
                    &options(deadline),
                    cancel.cancelled(),
                    |_| {},
                )
                .await?;
            let vtt = out.join("storyboard.vtt");
            let text = layout.vtt("storyboard.jpg");
            blocking(move || {
                std::fs::write(&vtt, text).map_err(|e| StorageError::io("write", &vtt, e))
            })
            .await?;
        }
        Ok(())
    }

    /// Remux a recording (its HLS playlist, or any file ffmpeg reads) to
    /// `vod/<video>/video.mp4` without re-encoding, `faststart`; published atomically.
    pub async fn remux(
        &self,
        video: &VideoId,
        input: &Path,
        timeout: Option<Duration>,
        cancel: &Cancel,
        on_progress: impl FnMut(Progress),
    ) -> Result<PathBuf, JobError> {
        let source = self.probe(input).await?;
        let (storage, target) = (
            self.storage.clone(),
            self.storage.vod_dir(video).join("video.mp4"),
        );
        let file = blocking(move || storage.atomic_file(target)).await?;
        let options = RunOptions {
            duration: source.duration,
            timeout,
        };
        self.runner
            .run(
                command::remux_mp4(input, file.tmp_path()),
                &options,
                cancel.cancelled(),
                on_progress,
            )
            .await?;
        Ok(blocking(move || file.commit()).await?)
    }
}

/// Time left before `deadline`; a timeout error once it passed.
fn remaining(
    deadline: Option<Instant>,
    total: Option<Duration>,
) -> Result<Option<Duration>, JobError> {
    match deadline {
        None => Ok(None),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                Err(RunError::Timeout(total.unwrap_or_default()).into())
            } else {
                Ok(Some(left))
            }
        }
    }
}

/// Hard-link the target's existing top-level files that the new tree does not have into
/// it, so a replace keeps them (a recording's `video.mp4` survives a new ladder).
fn keep_siblings(staging: &videopick_storage::AtomicDir) -> Result<(), StorageError> {
    let Ok(entries) = std::fs::read_dir(staging.target()) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let Ok(kind) = e.file_type() else { continue };
        let dest = staging.path().join(e.file_name());
        if kind.is_file() && !dest.exists() {
            std::fs::hard_link(e.path(), &dest)
                .map_err(|err| StorageError::io("keep", e.path(), err))?;
        }
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Invalid(format!("blocking task failed: {e}")))?
}
