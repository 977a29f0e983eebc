//! The worker loop: claim a job, run it with the [`Transcoder`], renew the lease and
//! report progress while it runs, then complete or fail it. Usable from any binary; run
//! several (on one or many machines) against one queue.
//!
//! Job kinds and payloads (see [`ladder_job`] and [`remux_job`]):
//! - `ladder` `{"video_id": "…", "input": "/path"}` → the HLS ladder and thumbnails in
//!   `vod/<video_id>/`;
//! - `remux` `{"video_id": "…", "input": "/path/index.m3u8", "then_ladder": bool}` →
//!   `vod/<video_id>/video.mp4`, then (if asked) a `ladder` job made from that file, so
//!   the two never write the same directory at once.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use videopick_storage::VideoId;

use crate::queue::{Claim, JobQueue, JobState, Lease, NewJob};
use crate::transcoder::{Cancel, JobError, Transcoder};

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// This worker's name in the queue (unique across machines: host + pid + index).
    pub name: String,
    /// How long a claim lasts without a heartbeat.
    pub lease: Duration,
    /// Time between heartbeats (well under `lease`).
    pub heartbeat: Duration,
    /// Longest wait for new work before looking again (also picks up retries whose
    /// backoff ended).
    pub poll: Duration,
    /// Time limit per job attempt.
    pub job_timeout: Option<Duration>,
    /// Where attempt durations are observed, by job kind and result (see
    /// [`job_duration_metric`]); `None`: not measured.
    pub metrics: Option<JobDurations>,
}

/// Attempt durations by `kind` and `result` (`succeeded`, `failed`, `cancelled`).
pub type JobDurations = prometheus_client::metrics::family::Family<
    [(&'static str, String); 2],
    prometheus_client::metrics::histogram::Histogram,
>;

/// A [`JobDurations`] family, registered in `registry` as `videopick_job_duration_seconds`
/// (buckets from 1 s to about 3 h), with every kind and result present from the start.
pub fn job_duration_metric(registry: &mut prometheus_client::registry::Registry) -> JobDurations {
    let family = JobDurations::new_with_constructor(|| {
        prometheus_client::metrics::histogram::Histogram::new(
            prometheus_client::metrics::histogram::exponential_buckets(1.0, 2.0, 14),
        )
    });
    registry.register(
        "videopick_job_duration_seconds",
        "Duration of transcoding job attempts, by kind and result.",
        family.clone(),
    );
    // Every kind and result from the start, at zero: dashboards and alerts (`increase` of
    // the failures) see the series before the first job ends.
    for kind in ["ladder", "remux"] {
        for result in ["succeeded", "failed", "cancelled"] {
            let _ =
                family.get_or_create(&[("kind", kind.to_string()), ("result", result.to_string())]);
        }
    }
    family
}

impl WorkerConfig {
    /// Defaults for a worker named `name`: 30 s leases renewed every 5 s, polling each
    /// second, 6 h per attempt.
    pub fn named(name: impl Into<String>) -> WorkerConfig {
        WorkerConfig {
            name: name.into(),
            lease: Duration::from_secs(30),
            heartbeat: Duration::from_secs(5),
            poll: Duration::from_secs(1),
            job_timeout: Some(Duration::from_secs(6 * 3600)),
            metrics: None,
        }
    }
}

/// A `ladder` job for `video` from `input`.
pub fn ladder_job(video: &VideoId, input: &std::path::Path) -> NewJob {
    NewJob::new(
        "ladder",
        json!({"video_id": video.as_str(), "input": input.to_string_lossy()}),
    )
}

/// A `remux` job for `video` from a recording's playlist `input`; `then_ladder` chains
/// a ladder job made from the MP4.
pub fn remux_job(video: &VideoId, input: &std::path::Path, then_ladder: bool) -> NewJob {
    NewJob::new(
        "remux",
        json!({"video_id": video.as_str(), "input": input.to_string_lossy(), "then_ladder": then_ladder}),
    )
}

/// Claims and runs jobs from a queue.
#[derive(Debug, Clone)]
pub struct Worker<Q> {
    queue: Q,
    transcoder: Transcoder,
    config: Arc<WorkerConfig>,
}

/// Why a job's payload cannot be run.
#[derive(Debug, thiserror::Error)]
enum PayloadError {
    #[error("unknown job kind {0:?}")]
    Kind(String),
    #[error("bad payload: {0}")]
    Field(&'static str),
}

impl<Q: JobQueue + Clone> Worker<Q> {
    /// A worker on `queue` running jobs with `transcoder`.
    pub fn new(queue: Q, transcoder: Transcoder, config: WorkerConfig) -> Worker<Q> {
        Worker {
            queue,
            transcoder,
            config: Arc::new(config),
        }
    }

    /// Run jobs until `shutdown` completes (a job running then is cancelled and goes back
    /// to the queue through its lease).
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                more = self.run_next() => {
                    if !more {
                        tokio::select! {
                            () = &mut shutdown => return,
                            () = self.queue.wait(self.config.poll) => {}
                        }
                    }
                }
            }
        }
    }

    /// Claim and run one job; false when none was due (or the queue failed: logged).
    pub async fn run_next(&self) -> bool {
        let claim = match self.queue.claim(&self.config.name, self.config.lease).await {
            Ok(Some(c)) => c,
            Ok(None) => return false,
            Err(e) => {
                tracing::warn!(worker = %self.config.name, error = %e, "claim failed");
                return false;
            }
        };
        let span = tracing::info_span!("job", id = claim.id(), kind = %claim.job.kind, attempt = claim.attempt());
        tracing::Instrument::instrument(self.run_claim(&claim), span).await;
        true
    }

    async fn run_claim(&self, claim: &Claim) {
        let cancel = Cancel::new();
        let progress = Arc::new(AtomicU64::new(0f64.to_bits()));
        let beat = {
            let (queue, claim, cancel, progress, config) = (
                self.queue.clone(),
                claim.clone(),
                cancel.clone(),
                progress.clone(),
                self.config.clone(),
            );
            async move {
                let mut tick = tokio::time::interval(config.heartbeat);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let p = f64::from_bits(progress.load(Ordering::Relaxed));
                    match queue.heartbeat(&claim, config.lease, p).await {
                        Ok(Lease::Held) => {}
                        Ok(Lease::Cancelled | Lease::Lost) => {
                            cancel.cancel();
                            return;
                        }
                        // The database is away: keep working; the lease may still hold.
                        Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                    }
                }
            }
        };
        let started = std::time::Instant::now();
        let work = self.execute(claim, &cancel, &progress);
        tokio::pin!(work);
        let outcome = tokio::select! {
            r = &mut work => r,
            // Cancelled or lost: the job stops (ffmpeg's group is killed, its staging
            // removed); there is nothing to report.
            () = beat => work.await,
        };
        if let Some(m) = &self.config.metrics {
            let result = match &outcome {
                Ok(_) => "succeeded",
                Err(_) if cancel.is_cancelled() => "cancelled",
                Err(_) => "failed",
            };
            m.get_or_create(&[
                ("kind", claim.job.kind.clone()),
                ("result", result.to_string()),
            ])
            .observe(started.elapsed().as_secs_f64());
        }
        let reported = match outcome {
            Ok(result) => self.queue.complete(claim, result).await.map(|_| ()),
            Err(_) if cancel.is_cancelled() => Ok(()),
            Err(e) => self.queue.fail(claim, &e).await.map(|state| {
                if state == Some(JobState::Failed) {
                    tracing::warn!(job = claim.id(), attempts = claim.attempt(), error = %e, "job failed");
                }
            }),
        };
        if let Err(e) = reported {
            tracing::warn!(job = claim.id(), error = %e, "reporting the job's end failed");
        }
    }

    async fn execute(
        &self,
        claim: &Claim,
        cancel: &Cancel,
        progress: &AtomicU64,
    ) -> Result<Value, String> {
        let job = &claim.job;
        let field = |k: &'static str| {
            job.payload
                .get(k)
                .and_then(Value::as_str)
                .ok_or(PayloadError::Field(k))
        };
        let parsed = (|| -> Result<(VideoId, PathBuf), PayloadError> {
            let video =
                VideoId::new(field("video_id")?).map_err(|_| PayloadError::Field("video_id"))?;
            Ok((video, PathBuf::from(field("input")?)))
        })();
        let (video, input) = parsed.map_err(|e| e.to_string())?;
        let report = |p: crate::progress::Progress| {
            if let Some(x) = p.percent {
                progress.store(x.to_bits(), Ordering::Relaxed);
            }
        };
        let timeout = self.config.job_timeout;
        match job.kind.as_str() {
            "ladder" => {
                let out = self
                    .transcoder
                    .ladder(&video, &input, timeout, cancel, report)
                    .await
                    .map_err(|e| describe(&e))?;
                Ok(json!({
                    "dir": out.dir.to_string_lossy(),
                    "master": format!("/vod/{}/master.m3u8", video.as_str()),
                    "duration_ms": out.source.duration.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                    "rungs": out.plan.rungs.iter().map(|r| json!({
                        "name": r.name, "width": r.width, "height": r.height, "bitrate": r.video_bitrate,
                    })).collect::<Vec<_>>(),
                }))
            }
            "remux" => {
                let mp4 = self
                    .transcoder
                    .remux(&video, &input, timeout, cancel, report)
                    .await
                    .map_err(|e| describe(&e))?;
                let mut result = json!({"mp4": mp4.to_string_lossy()});
                if job.payload.get("then_ladder").and_then(Value::as_bool) == Some(true) {
                    let next = ladder_job(&video, &mp4).priority(job.priority);
                    let id = self.queue.enqueue(next).await.map_err(|e| e.to_string())?;
                    result["ladder_job"] = json!(id);
                }
                Ok(result)
            }
            other => Err(PayloadError::Kind(other.to_string()).to_string()),
        }
    }
}

fn describe(e: &JobError) -> String {
    e.to_string()
}
