//! Durable job queues: the [`JobQueue`] trait, its embedded file-backed implementation
//! ([`FileQueue`], the default: one machine, survives restarts) and, with the `postgres`
//! feature, `PgQueue` (many workers on many machines share one database).
//!
//! A job moves `queued → running → succeeded | failed | cancelled`. Claiming takes the
//! highest priority, then the oldest due job, and leases it to one worker for a while;
//! the worker renews the lease with [`JobQueue::heartbeat`]. A lease that runs out (the
//! worker died or hung) puts the job back in the queue — or fails it when its attempts
//! are used up. [`JobQueue::fail`] retries with exponential backoff until then. Every
//! call that changes a running job names the worker and the attempt it holds (a
//! [`Claim`]), so a worker whose lease was taken over cannot complete or fail the job
//! the next worker is running.

use std::future::Future;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::file_queue::FileQueue;
#[cfg(feature = "postgres")]
pub use crate::pg_queue::PgQueue;

/// A job's id.
pub type JobId = i64;

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewJob {
    /// What to do (`ladder`, `remux`, …); the worker dispatches on it.
    pub kind: String,
    /// The job's parameters.
    pub payload: Value,
    /// Higher runs first.
    pub priority: i32,
    /// Runs at most this many times (at least 1).
    pub max_attempts: u32,
}

impl NewJob {
    /// A job of `kind` with `payload`, priority 0, 3 attempts.
    pub fn new(kind: impl Into<String>, payload: Value) -> NewJob {
        NewJob {
            kind: kind.into(),
            payload,
            priority: 0,
            max_attempts: 3,
        }
    }

    /// With priority `p` (higher first).
    #[must_use]
    pub fn priority(mut self, p: i32) -> NewJob {
        self.priority = p;
        self
    }

    /// With at most `n` attempts.
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> NewJob {
        self.max_attempts = n.max(1);
        self
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting (possibly until a retry's backoff ends).
    Queued,
    /// Leased to a worker.
    Running,
    /// Done.
    Succeeded,
    /// Out of attempts; `last_error` says why.
    Failed,
    /// Cancelled before it finished.
    Cancelled,
}

impl JobState {
    /// The name used in storage and APIs (`queued`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Parse [`JobState::as_str`]'s names.
    pub fn parse(s: &str) -> Option<JobState> {
        Some(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "succeeded" => JobState::Succeeded,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            _ => return None,
        })
    }

    /// No further change will happen.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// What to do.
    pub kind: String,
    /// Its parameters.
    pub payload: Value,
    /// Higher runs first.
    pub priority: i32,
    /// Where it is.
    pub state: JobState,
    /// Times it was claimed.
    pub attempts: u32,
    /// Most times it may run.
    pub max_attempts: u32,
    /// Percent done of the current attempt (0–100).
    pub progress: f64,
    /// The last failure.
    pub last_error: Option<String>,
    /// What the finished job produced.
    pub result: Option<Value>,
    /// The worker holding it (while running).
    pub worker: Option<String>,
    /// Not claimed before this time (retry backoff).
    #[serde(with = "epoch_ms")]
    pub run_after: SystemTime,
    /// The running worker's lease ends at this time.
    #[serde(with = "epoch_ms_opt")]
    pub lease_until: Option<SystemTime>,
    /// When it was enqueued.
    #[serde(with = "epoch_ms")]
    pub created_at: SystemTime,
    /// Its last change.
    #[serde(with = "epoch_ms")]
    pub updated_at: SystemTime,
}

/// A worker's hold on a running job: the job, and the attempt number that fences its
/// later calls.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// The job as claimed (state `running`, `attempts` counting this one).
    pub job: Job,
    /// The worker that holds it.
    pub worker: String,
}

impl Claim {
    /// The job's id.
    pub fn id(&self) -> JobId {
        self.job.id
    }

    /// The attempt this claim is.
    pub fn attempt(&self) -> u32 {
        self.job.attempts
    }
}

/// What a heartbeat learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// Still ours; the lease was renewed.
    Held,
    /// The job was cancelled: stop working on it.
    Cancelled,
    /// No longer ours (the lease ran out and another attempt took over, or it ended).
    Lost,
}

/// Queue failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The embedded queue's files.
    #[error("queue storage: {0}")]
    Io(#[from] std::io::Error),
    /// A stored job could not be read.
    #[error("corrupt job record {path}: {detail}")]
    Corrupt {
        /// The record.
        path: String,
        /// What is wrong.
        detail: String,
    },
    /// Another process holds the embedded queue.
    #[error("the job queue at {0} is in use by another process")]
    Locked(String),
    /// The database.
    #[error("database: {0}")]
    Database(String),
}

/// Retry timing.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Delay after the first failure; doubles with each further one.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(5),
            max: Duration::from_secs(600),
        }
    }
}

impl Backoff {
    /// The delay before attempt `failed + 1`, after `failed` failures (≥ 1).
    pub fn delay(&self, failed: u32) -> Duration {
        let shift = failed.saturating_sub(1).min(30);
        self.base.saturating_mul(1 << shift).min(self.max)
    }
}

/// A durable job queue shared by producers and workers.
pub trait JobQueue: Send + Sync + 'static {
    /// Add a job; returns its id. Idle workers are woken.
    fn enqueue(&self, job: NewJob) -> impl Future<Output = Result<JobId, QueueError>> + Send;

    /// Take the most urgent due job for `worker`, leased for `lease`. Expired leases are
    /// dealt with first (their jobs re-queued, or failed when out of attempts).
    fn claim(
        &self,
        worker: &str,
        lease: Duration,
    ) -> impl Future<Output = Result<Option<Claim>, QueueError>> + Send;

    /// Renew the lease (and record progress, 0–100).
    fn heartbeat(
        &self,
        claim: &Claim,
        lease: Duration,
        progress: f64,
    ) -> impl Future<Output = Result<Lease, QueueError>> + Send;

    /// Finish the job with `result`. False when the claim was no longer valid.
    fn complete(
        &self,
        claim: &Claim,
        result: Value,
    ) -> impl Future<Output = Result<bool, QueueError>> + Send;

    /// Record a failure: back to the queue after a backoff while attempts remain, else
    /// `failed`. Returns the new state (`None` when the claim was no longer valid).
    fn fail(
        &self,
        claim: &Claim,
        error: &str,
    ) -> impl Future<Output = Result<Option<JobState>, QueueError>> + Send;

    /// Cancel a queued or running job (a running one stops at its next heartbeat).
    /// False when it had already ended or does not exist.
    fn cancel(&self, id: JobId) -> impl Future<Output = Result<bool, QueueError>> + Send;

    /// Run a failed or cancelled job again: back to the queue now, with a fresh set of
    /// attempts (its last error is kept until the next attempt ends). False when the job
    /// is not failed or cancelled.
    fn retry(&self, id: JobId) -> impl Future<Output = Result<bool, QueueError>> + Send;

    /// One job.
    fn get(&self, id: JobId) -> impl Future<Output = Result<Option<Job>, QueueError>> + Send;

    /// Jobs, newest first, optionally only those in `state`; at most `limit`.
    fn list(
        &self,
        state: Option<JobState>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Job>, QueueError>> + Send;

    /// Wait until a job may be available (one was enqueued) or `timeout` passed.
    fn wait(&self, timeout: Duration) -> impl Future<Output = ()> + Send;
}

pub(crate) fn to_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) fn from_ms(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

mod epoch_ms {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(super::to_ms(*t))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        Ok(super::from_ms(i64::deserialize(d)?))
    }
}

mod epoch_ms_opt {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::ref_option)] // serde's `with` signature
    pub(super) fn serialize<S: Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&super::to_ms(*t)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        Ok(Option::<i64>::deserialize(d)?.map(super::from_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let b = Backoff {
            base: Duration::from_secs(5),
            max: Duration::from_secs(60),
        };
        let d: Vec<u64> = (1..=6).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(d, [5, 10, 20, 40, 60, 60]);
        assert_eq!(b.delay(u32::MAX), Duration::from_secs(60));
    }
}

/// Either queue behind one type: the embedded one or PostgreSQL, chosen at run time.
#[cfg(feature = "postgres")]
#[derive(Debug, Clone)]
pub enum AnyQueue {
    /// The embedded queue.
    File(FileQueue),
    /// PostgreSQL.
    Pg(PgQueue),
}

#[cfg(feature = "postgres")]
macro_rules! delegate {
    ($self:ident, $q:ident => $e:expr) => {
        match $self {
            AnyQueue::File($q) => $e,
            AnyQueue::Pg($q) => $e,
        }
    };
}

#[cfg(feature = "postgres")]
impl JobQueue for AnyQueue {
    async fn enqueue(&self, job: NewJob) -> Result<JobId, QueueError> {
        delegate!(self, q => q.enqueue(job).await)
    }
    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Claim>, QueueError> {
        delegate!(self, q => q.claim(worker, lease).await)
    }
    async fn heartbeat(&self, c: &Claim, lease: Duration, p: f64) -> Result<Lease, QueueError> {
        delegate!(self, q => q.heartbeat(c, lease, p).await)
    }
    async fn complete(&self, c: &Claim, result: Value) -> Result<bool, QueueError> {
        delegate!(self, q => q.complete(c, result).await)
    }
    async fn fail(&self, c: &Claim, error: &str) -> Result<Option<JobState>, QueueError> {
        delegate!(self, q => q.fail(c, error).await)
    }
    async fn cancel(&self, id: JobId) -> Result<bool, QueueError> {
        delegate!(self, q => q.cancel(id).await)
    }
    async fn retry(&self, id: JobId) -> Result<bool, QueueError> {
        delegate!(self, q => q.retry(id).await)
    }
    async fn get(&self, id: JobId) -> Result<Option<Job>, QueueError> {
        delegate!(self, q => q.get(id).await)
    }
    async fn list(&self, state: Option<JobState>, limit: usize) -> Result<Vec<Job>, QueueError> {
        delegate!(self, q => q.list(state, limit).await)
    }
    async fn wait(&self, timeout: Duration) {
        delegate!(self, q => q.wait(timeout).await);
    }
}
