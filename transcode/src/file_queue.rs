//! The embedded queue: every job is a small JSON file (`jobs/<id>.json`) rewritten
//! atomically (temporary file, fsync, rename, fsync of the directory) on each state
//! change; the live view is in memory. One process holds the queue (an exclusive lock
//! on `lock`). On open, a job that was running when the last process died goes back to
//! the queue (or fails, when that was its last attempt).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::sync::Notify;

use crate::queue::{
    Backoff, Claim, Job, JobId, JobQueue, JobState, Lease, NewJob, QueueError, from_ms, to_ms,
};

/// The embedded durable queue; cheap to clone.
#[derive(Debug, Clone)]
pub struct FileQueue {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    jobs: Mutex<Jobs>,
    /// Serialises state changes: each is computed, written, then applied.
    writer: tokio::sync::Mutex<()>,
    notify: Notify,
    backoff: Backoff,
    _lock: File,
}

#[derive(Debug, Default)]
struct Jobs {
    by_id: BTreeMap<JobId, Job>,
    next_id: JobId,
}

impl FileQueue {
    /// Open (or create) the queue in `dir`, with the default retry backoff.
    pub fn open(dir: impl Into<PathBuf>) -> Result<FileQueue, QueueError> {
        FileQueue::open_with(dir, Backoff::default())
    }

    /// Open (or create) the queue in `dir`.
    pub fn open_with(dir: impl Into<PathBuf>, backoff: Backoff) -> Result<FileQueue, QueueError> {
        let dir = dir.into();
        let jobs_dir = dir.join("jobs");
        fs::create_dir_all(&jobs_dir)?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))?;
        if lock.try_lock().is_err() {
            return Err(QueueError::Locked(dir.display().to_string()));
        }
        let mut jobs = Jobs::default();
        let now = now();
        for entry in fs::read_dir(&jobs_dir)? {
            let path = entry?.path();
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            if ext == "tmp" {
                let _ = fs::remove_file(&path); // an interrupted write; the old file stands
                continue;
            }
            if ext != "json" {
                continue;
            }
            let text = fs::read_to_string(&path)?;
            let mut job: Job = serde_json::from_str(&text).map_err(|e| QueueError::Corrupt {
                path: path.display().to_string(),
                detail: e.to_string(),
            })?;
            if job.state == JobState::Running {
                // The process running it is gone.
                interrupt(&mut job, now, "interrupted: the process running it stopped");
                write_job(&jobs_dir, &job)?;
            }
            jobs.next_id = jobs.next_id.max(job.id);
            jobs.by_id.insert(job.id, job);
        }
        Ok(FileQueue {
            inner: Arc::new(Inner {
                dir,
                jobs: Mutex::new(jobs),
                writer: tokio::sync::Mutex::new(()),
                notify: Notify::new(),
                backoff,
                _lock: lock,
            }),
        })
    }

    /// The queue's directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    fn jobs(&self) -> MutexGuard<'_, Jobs> {
        self.inner
            .jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Write `job` durably, then make it the live version.
    async fn store(&self, job: Job) -> Result<(), QueueError> {
        let dir = self.inner.dir.join("jobs");
        let copy = job.clone();
        tokio::task::spawn_blocking(move || write_job(&dir, &copy))
            .await
            .map_err(|e| QueueError::Io(std::io::Error::other(e.to_string())))??;
        self.jobs().by_id.insert(job.id, job);
        Ok(())
    }

    /// The running job `claim` still holds, if it does.
    fn held(&self, claim: &Claim) -> Option<Job> {
        self.jobs()
            .by_id
            .get(&claim.id())
            .filter(|j| {
                j.state == JobState::Running
                    && j.attempts == claim.attempt()
                    && j.worker.as_deref() == Some(claim.worker.as_str())
            })
            .cloned()
    }
}

/// Back to the queue (or failed, on its last attempt) after its runner went away.
fn interrupt(job: &mut Job, now: SystemTime, why: &str) {
    job.state = if job.attempts >= job.max_attempts {
        JobState::Failed
    } else {
        JobState::Queued
    };
    job.last_error = Some(why.to_string());
    job.worker = None;
    job.lease_until = None;
    job.run_after = now;
    job.updated_at = now;
}

fn write_job(dir: &Path, job: &Job) -> Result<(), QueueError> {
    let path = dir.join(format!("{}.json", job.id));
    let tmp = dir.join(format!("{}.json.tmp", job.id));
    let text = serde_json::to_vec(job).map_err(|e| QueueError::Corrupt {
        path: path.display().to_string(),
        detail: e.to_string(),
    })?;
    let mut f = File::create(&tmp)?;
    f.write_all(&text)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, &path)?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

fn later(now: SystemTime, d: Duration) -> SystemTime {
    from_ms(to_ms(now.checked_add(d).unwrap_or(now)))
}

/// The time, at the millisecond precision records keep (memory and disk agree).
fn now() -> SystemTime {
    from_ms(to_ms(SystemTime::now()))
}

impl JobQueue for FileQueue {
    async fn enqueue(&self, new: NewJob) -> Result<JobId, QueueError> {
        let _w = self.inner.writer.lock().await;
        let now = now();
        let id = self.jobs().next_id + 1;
        let job = Job {
            id,
            kind: new.kind,
            payload: new.payload,
            priority: new.priority,
            state: JobState::Queued,
            attempts: 0,
            max_attempts: new.max_attempts.max(1),
            progress: 0.0,
            last_error: None,
            result: None,
            worker: None,
            run_after: now,
            lease_until: None,
            created_at: now,
            updated_at: now,
        };
        self.store(job).await?;
        self.jobs().next_id = id;
        self.inner.notify.notify_waiters();
        self.inner.notify.notify_one();
        Ok(id)
    }

    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Claim>, QueueError> {
        let _w = self.inner.writer.lock().await;
        let now = now();
        let expired: Vec<Job> = self
            .jobs()
            .by_id
            .values()
            .filter(|j| j.state == JobState::Running && j.lease_until.is_some_and(|l| l < now))
            .cloned()
            .collect();
        for mut job in expired {
            interrupt(
                &mut job,
                now,
                "lease expired: the worker stopped renewing it",
            );
            if job.state == JobState::Queued {
                job.run_after = later(now, self.inner.backoff.delay(job.attempts));
            }
            self.store(job).await?;
        }
        let next = self
            .jobs()
            .by_id
            .values()
            .filter(|j| j.state == JobState::Queued && j.run_after <= now)
            .min_by(|a, b| {
                b.priority
                    .cmp(&a.priority)
                    .then(a.run_after.cmp(&b.run_after))
                    .then(a.id.cmp(&b.id))
            })
            .cloned();
        let Some(mut job) = next else {
            return Ok(None);
        };
        job.state = JobState::Running;
        job.attempts += 1;
        job.progress = 0.0;
        job.worker = Some(worker.to_string());
        job.lease_until = Some(later(now, lease));
        job.updated_at = now;
        self.store(job.clone()).await?;
        Ok(Some(Claim {
            job,
            worker: worker.to_string(),
        }))
    }

    async fn heartbeat(
        &self,
        claim: &Claim,
        lease: Duration,
        progress: f64,
    ) -> Result<Lease, QueueError> {
        // Leases and progress live in memory: after a crash every running job is
        // re-queued anyway, so there is nothing to make durable.
        let now = now();
        let mut jobs = self.jobs();
        let Some(job) = jobs.by_id.get_mut(&claim.id()) else {
            return Ok(Lease::Lost);
        };
        if job.state == JobState::Cancelled && job.attempts == claim.attempt() {
            return Ok(Lease::Cancelled);
        }
        if job.state != JobState::Running
            || job.attempts != claim.attempt()
            || job.worker.as_deref() != Some(claim.worker.as_str())
        {
            return Ok(Lease::Lost);
        }
        job.lease_until = Some(later(now, lease));
        if progress.is_finite() {
            job.progress = progress.clamp(job.progress, 100.0);
        }
        Ok(Lease::Held)
    }

    async fn complete(&self, claim: &Claim, result: Value) -> Result<bool, QueueError> {
        let _w = self.inner.writer.lock().await;
        let Some(mut job) = self.held(claim) else {
            return Ok(false);
        };
        let now = now();
        job.state = JobState::Succeeded;
        job.progress = 100.0;
        job.result = Some(result);
        job.lease_until = None;
        job.updated_at = now;
        self.store(job).await?;
        Ok(true)
    }

    async fn fail(&self, claim: &Claim, error: &str) -> Result<Option<JobState>, QueueError> {
        let _w = self.inner.writer.lock().await;
        let Some(mut job) = self.held(claim) else {
            return Ok(None);
        };
        let now = now();
        job.last_error = Some(error.to_string());
        job.lease_until = None;
        job.worker = None;
        job.updated_at = now;
        if job.attempts >= job.max_attempts {
            job.state = JobState::Failed;
        } else {
            job.state = JobState::Queued;
            job.run_after = later(now, self.inner.backoff.delay(job.attempts));
        }
        let state = job.state;
        self.store(job).await?;
        Ok(Some(state))
    }

    async fn cancel(&self, id: JobId) -> Result<bool, QueueError> {
        let _w = self.inner.writer.lock().await;
        let Some(mut job) = self.jobs().by_id.get(&id).cloned() else {
            return Ok(false);
        };
        if job.state.is_final() {
            return Ok(false);
        }
        job.state = JobState::Cancelled;
        job.lease_until = None;
        job.worker = None;
        job.updated_at = now();
        self.store(job).await?;
        Ok(true)
    }

    async fn retry(&self, id: JobId) -> Result<bool, QueueError> {
        let _w = self.inner.writer.lock().await;
        let Some(mut job) = self.jobs().by_id.get(&id).cloned() else {
            return Ok(false);
        };
        if !matches!(job.state, JobState::Failed | JobState::Cancelled) {
            return Ok(false);
        }
        let now = now();
        job.state = JobState::Queued;
        job.attempts = 0;
        job.progress = 0.0;
        job.worker = None;
        job.lease_until = None;
        job.run_after = now;
        job.updated_at = now;
        self.store(job).await?;
        self.inner.notify.notify_waiters();
        self.inner.notify.notify_one();
        Ok(true)
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>, QueueError> {
        Ok(self.jobs().by_id.get(&id).cloned())
    }

    async fn list(&self, state: Option<JobState>, limit: usize) -> Result<Vec<Job>, QueueError> {
        Ok(self
            .jobs()
            .by_id
            .values()
            .rev()
            .filter(|j| state.is_none_or(|s| j.state == s))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn wait(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.inner.notify.notified()).await;
    }
}
