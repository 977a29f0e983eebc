-- The platform's catalog. Portable SQL: the same file runs on SQLite and PostgreSQL
-- (TEXT ids, BIGINT epoch milliseconds, BIGINT 0/1 flags: sqlx's Any driver cannot
-- decode SQLite's BOOLEAN).

CREATE TABLE app_users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    username_key TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL,
    email_key TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE app_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES app_users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX app_sessions_user ON app_sessions (user_id);

CREATE TABLE app_channels (
    id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL REFERENCES app_users(id) ON DELETE CASCADE,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,
    record BIGINT NOT NULL,
    live_title TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX app_channels_owner ON app_channels (owner_id, created_at);

CREATE TABLE app_live_sessions (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES app_channels(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    viewers BIGINT NOT NULL,
    peak_viewers BIGINT NOT NULL,
    health TEXT NOT NULL,
    thumbnail_at BIGINT,
    video_id TEXT
);
CREATE INDEX app_live_sessions_channel ON app_live_sessions (channel_id, started_at);
CREATE INDEX app_live_sessions_open ON app_live_sessions (ended_at, started_at);

CREATE TABLE app_videos (
    id TEXT PRIMARY KEY,
    channel_id TEXT NOT NULL REFERENCES app_channels(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    state TEXT NOT NULL,
    progress BIGINT NOT NULL,
    failure TEXT,
    visibility TEXT NOT NULL,
    source TEXT NOT NULL,
    duration_ms BIGINT,
    renditions TEXT NOT NULL,
    poster TEXT,
    storyboard TEXT,
    playlist TEXT,
    upload_id TEXT UNIQUE,
    media_id TEXT,
    job_id TEXT,
    live_session_id TEXT,
    views BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX app_videos_channel ON app_videos (channel_id, created_at);
CREATE INDEX app_videos_public ON app_videos (visibility, state, created_at);
CREATE INDEX app_videos_job ON app_videos (job_id);

CREATE TABLE app_video_views (
    video_id TEXT NOT NULL REFERENCES app_videos(id) ON DELETE CASCADE,
    viewer TEXT NOT NULL,
    counted_at BIGINT NOT NULL,
    PRIMARY KEY (video_id, viewer)
);
