-- The transcode job queue (videopick-transcode `PgQueue`).
CREATE TABLE IF NOT EXISTS videopick_jobs (
    id            BIGSERIAL PRIMARY KEY,
    kind          TEXT NOT NULL,
    payload       JSONB NOT NULL,
    priority      INTEGER NOT NULL DEFAULT 0,
    state         TEXT NOT NULL DEFAULT 'queued'
                  CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    progress      DOUBLE PRECISION NOT NULL DEFAULT 0,
    last_error    TEXT,
    result        JSONB,
    worker        TEXT,
    run_after     TIMESTAMPTZ NOT NULL DEFAULT now(),
    lease_until   TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Claiming: the most urgent due job first.
CREATE INDEX IF NOT EXISTS videopick_jobs_due
    ON videopick_jobs (priority DESC, run_after, id) WHERE state = 'queued';
-- Reaping: running jobs by lease end.
CREATE INDEX IF NOT EXISTS videopick_jobs_leases
    ON videopick_jobs (lease_until) WHERE state = 'running';
