//! The PostgreSQL queue (feature `postgres`): jobs in one table (`videopick_jobs`, created
//! by the crate's embedded migrations), claimed with `FOR UPDATE SKIP LOCKED` in priority
//! order, leases that return stalled jobs to the queue when they expire, and
//! `LISTEN`/`NOTIFY` on `videopick_jobs` to wake idle workers at once.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::Row;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions, PgRow};
use tokio::sync::Notify;

use crate::queue::{
    Backoff, Claim, Job, JobId, JobQueue, JobState, Lease, NewJob, QueueError, from_ms,
};

/// The channel enqueues notify.
const CHANNEL: &str = "videopick_jobs";

const COLUMNS: &str = "id, kind, payload, priority, state, attempts, max_attempts, progress, \
    last_error, result, worker, \
    (extract(epoch from run_after) * 1000)::bigint AS run_after_ms, \
    (extract(epoch from lease_until) * 1000)::bigint AS lease_until_ms, \
    (extract(epoch from created_at) * 1000)::bigint AS created_at_ms, \
    (extract(epoch from updated_at) * 1000)::bigint AS updated_at_ms";

/// Retry delay in SQL: `base · 2^(attempts−1)`, capped; `$b` and `$m` are milliseconds.
fn backoff_sql(b: usize, m: usize) -> String {
    format!(
        "now() + LEAST(${b}::float8 * power(2, LEAST(GREATEST(attempts - 1, 0), 30)), ${m}::float8) \
         * interval '1 millisecond'"
    )
}

/// A job queue in PostgreSQL; cheap to clone (clones share the pool and the listener).
#[derive(Debug, Clone)]
pub struct PgQueue {
    pool: PgPool,
    backoff: Backoff,
    wake: Arc<Notify>,
    listener: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for PgQueue {
    fn drop(&mut self) {
        if Arc::strong_count(&self.listener) == 1 {
            self.listener.abort();
        }
    }
}

fn db(e: &sqlx::Error) -> QueueError {
    QueueError::Database(e.to_string())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl PgQueue {
    /// Connect to `url` (e.g. `postgres://user@host/db`), apply the migrations and start
    /// listening for new jobs. Must be called inside a tokio runtime.
    pub async fn connect(url: &str, backoff: Backoff) -> Result<PgQueue, QueueError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| db(&e))?;
        PgQueue::with_pool(pool, backoff).await
    }

    /// Use an existing pool (apply the migrations, start listening).
    pub async fn with_pool(pool: PgPool, backoff: Backoff) -> Result<PgQueue, QueueError> {
        let mut migrator = sqlx::migrate!("./migrations");
        // The platform's catalog (`videopick-app`) may keep its migrations in the same table.
        migrator.set_ignore_missing(true);
        migrator
            .run(&pool)
            .await
            .map_err(|e| QueueError::Database(e.to_string()))?;
        let wake = Arc::new(Notify::new());
        let mut listener = PgListener::connect_with(&pool).await.map_err(|e| db(&e))?;
        listener.listen(CHANNEL).await.map_err(|e| db(&e))?;
        let task = {
            let wake = wake.clone();
            tokio::spawn(async move {
                loop {
                    // `recv` reconnects (and re-listens) after a lost connection.
                    match listener.recv().await {
                        Ok(_) => {
                            wake.notify_waiters();
                            wake.notify_one();
                        }
                        Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
                    }
                }
            })
        };
        Ok(PgQueue {
            pool,
            backoff,
            wake,
            listener: Arc::new(task),
        })
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn job(row: &PgRow) -> Result<Job, QueueError> {
    let get_err = |e: sqlx::Error| db(&e);
    let state: String = row.try_get("state").map_err(get_err)?;
    let int = |k: &str| -> Result<u32, QueueError> {
        let v: i32 = row.try_get(k).map_err(get_err)?;
        Ok(u32::try_from(v).unwrap_or(0))
    };
    Ok(Job {
        id: row.try_get("id").map_err(get_err)?,
        kind: row.try_get("kind").map_err(get_err)?,
        payload: row.try_get("payload").map_err(get_err)?,
        priority: row.try_get("priority").map_err(get_err)?,
        state: JobState::parse(&state).ok_or_else(|| QueueError::Corrupt {
            path: "videopick_jobs.state".into(),
            detail: state.clone(),
        })?,
        attempts: int("attempts")?,
        max_attempts: int("max_attempts")?,
        progress: row.try_get("progress").map_err(get_err)?,
        last_error: row.try_get("last_error").map_err(get_err)?,
        result: row.try_get("result").map_err(get_err)?,
        worker: row.try_get("worker").map_err(get_err)?,
        run_after: from_ms(row.try_get("run_after_ms").map_err(get_err)?),
        lease_until: row
            .try_get::<Option<i64>, _>("lease_until_ms")
            .map_err(get_err)?
            .map(from_ms),
        created_at: from_ms(row.try_get("created_at_ms").map_err(get_err)?),
        updated_at: from_ms(row.try_get("updated_at_ms").map_err(get_err)?),
    })
}

fn attempt(claim: &Claim) -> i32 {
    i32::try_from(claim.attempt()).unwrap_or(i32::MAX)
}

impl JobQueue for PgQueue {
    async fn enqueue(&self, new: NewJob) -> Result<JobId, QueueError> {
        let row = sqlx::query(
            "WITH j AS (INSERT INTO videopick_jobs (kind, payload, priority, max_attempts) \
             VALUES ($1, $2, $3, $4) RETURNING id) \
             SELECT id, pg_notify($5, id::text)::text AS n FROM j",
        )
        .bind(&new.kind)
        .bind(&new.payload)
        .bind(new.priority)
        .bind(i32::try_from(new.max_attempts.max(1)).unwrap_or(i32::MAX))
        .bind(CHANNEL)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| db(&e))?;
        row.try_get("id").map_err(|e| db(&e))
    }

    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Claim>, QueueError> {
        // Expired leases first: their workers are gone or hung.
        sqlx::query(&format!(
            "UPDATE videopick_jobs SET \
               state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END, \
               last_error = 'lease expired: the worker stopped renewing it', \
               worker = NULL, lease_until = NULL, updated_at = now(), \
               run_after = {} \
             WHERE state = 'running' AND lease_until < now()",
            backoff_sql(1, 2)
        ))
        .bind(ms(self.backoff.base))
        .bind(ms(self.backoff.max))
        .execute(&self.pool)
        .await
        .map_err(|e| db(&e))?;
        let row = sqlx::query(&format!(
            "UPDATE videopick_jobs SET state = 'running', attempts = attempts + 1, progress = 0, \
               worker = $1, lease_until = now() + $2::float8 * interval '1 millisecond', \
               updated_at = now() \
             WHERE id = (SELECT id FROM videopick_jobs \
                         WHERE state = 'queued' AND run_after <= now() \
                         ORDER BY priority DESC, run_after, id \
                         LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING {COLUMNS}"
        ))
        .bind(worker)
        .bind(ms(lease))
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db(&e))?;
        row.map(|r| {
            Ok(Claim {
                job: job(&r)?,
                worker: worker.to_string(),
            })
        })
        .transpose()
    }

    async fn heartbeat(
        &self,
        claim: &Claim,
        lease: Duration,
        progress: f64,
    ) -> Result<Lease, QueueError> {
        let progress = if progress.is_finite() {
            progress.clamp(0.0, 100.0)
        } else {
            0.0
        };
        let renewed = sqlx::query(
            "UPDATE videopick_jobs SET lease_until = now() + $4::float8 * interval '1 millisecond', \
               progress = GREATEST(progress, $5), updated_at = now() \
             WHERE id = $1 AND state = 'running' AND attempts = $2 AND worker = $3",
        )
        .bind(claim.id())
        .bind(attempt(claim))
        .bind(&claim.worker)
        .bind(ms(lease))
        .bind(progress)
        .execute(&self.pool)
        .await
        .map_err(|e| db(&e))?;
        if renewed.rows_affected() == 1 {
            return Ok(Lease::Held);
        }
        let row = sqlx::query("SELECT state, attempts FROM videopick_jobs WHERE id = $1")
            .bind(claim.id())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| db(&e))?;
        Ok(match row {
            Some(r)
                if r.try_get::<String, _>("state")
                    .is_ok_and(|s| s == "cancelled")
                    && r.try_get::<i32, _>("attempts")
                        .is_ok_and(|a| a == attempt(claim)) =>
            {
                Lease::Cancelled
            }
            _ => Lease::Lost,
        })
    }

    async fn complete(&self, claim: &Claim, result: Value) -> Result<bool, QueueError> {
        let done = sqlx::query(
            "UPDATE videopick_jobs SET state = 'succeeded', progress = 100, result = $4, \
               lease_until = NULL, updated_at = now() \
             WHERE id = $1 AND state = 'running' AND attempts = $2 AND worker = $3",
        )
        .bind(claim.id())
        .bind(attempt(claim))
        .bind(&claim.worker)
        .bind(&result)
        .execute(&self.pool)
        .await
        .map_err(|e| db(&e))?;
        Ok(done.rows_affected() == 1)
    }

    async fn fail(&self, claim: &Claim, error: &str) -> Result<Option<JobState>, QueueError> {
        let row = sqlx::query(&format!(
            "UPDATE videopick_jobs SET last_error = $4, worker = NULL, lease_until = NULL, \
               updated_at = now(), \
               state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'queued' END, \
               run_after = CASE WHEN attempts >= max_attempts THEN run_after ELSE {} END \
             WHERE id = $1 AND state = 'running' AND attempts = $2 AND worker = $3 \
             RETURNING state",
            backoff_sql(5, 6)
        ))
        .bind(claim.id())
        .bind(attempt(claim))
        .bind(&claim.worker)
        .bind(error)
        .bind(ms(self.backoff.base))
        .bind(ms(self.backoff.max))
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db(&e))?;
        Ok(row
            .and_then(|r| r.try_get::<String, _>("state").ok())
            .and_then(|s| JobState::parse(&s)))
    }

    async fn cancel(&self, id: JobId) -> Result<bool, QueueError> {
        let done = sqlx::query(
            "UPDATE videopick_jobs SET state = 'cancelled', lease_until = NULL, worker = NULL, \
               updated_at = now() \
             WHERE id = $1 AND state IN ('queued', 'running')",
        )
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(|e| db(&e))?;
        Ok(done.rows_affected() == 1)
    }

    async fn retry(&self, id: JobId) -> Result<bool, QueueError> {
        let done = sqlx::query(
            "WITH j AS (UPDATE videopick_jobs SET state = 'queued', attempts = 0, progress = 0, \
               worker = NULL, lease_until = NULL, run_after = now(), updated_at = now() \
             WHERE id = $1 AND state IN ('failed', 'cancelled') RETURNING id) \
             SELECT id, pg_notify($2, id::text)::text AS n FROM j",
        )
        .bind(id)
        .bind(CHANNEL)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db(&e))?;
        Ok(done.is_some())
    }

    async fn get(&self, id: JobId) -> Result<Option<Job>, QueueError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM videopick_jobs WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| db(&e))?;
        row.as_ref().map(job).transpose()
    }

    async fn list(&self, state: Option<JobState>, limit: usize) -> Result<Vec<Job>, QueueError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM videopick_jobs WHERE ($1::text IS NULL OR state = $1) \
             ORDER BY id DESC LIMIT $2"
        ))
        .bind(state.map(JobState::as_str))
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| db(&e))?;
        rows.iter().map(job).collect()
    }

    async fn wait(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.wake.notified()).await;
    }
}
