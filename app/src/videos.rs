//! Videos: created when an upload starts or a recording closes, processed by a
//! transcoding job (uploading → processing → ready | failed), listed and played by
//! visibility, counted once per viewer per 30 minutes.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use sqlx::Row as _;
use utoipa::ToSchema;

use crate::App;
use crate::accounts::{Role, User};
use crate::channels::check_text;
use crate::error::{AppError, Result};
use crate::ids::{new_id, now_ms};
use crate::page::{Page, PageQuery, page};

/// Where a video is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VideoState {
    /// Bytes are arriving.
    Uploading,
    /// Being transcoded (see `progress`).
    Processing,
    /// Playable.
    Ready,
    /// Processing failed (see `failure`).
    Failed,
}

/// Who may see a video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Visibility {
    /// Listed and playable by everybody.
    Public,
    /// Not listed; playable by whoever has its id.
    Unlisted,
    /// Only its owner (and admins).
    Private,
}

/// Where a video came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// An upload.
    Upload,
    /// A live session's recording.
    Recording,
}

fn parse<T: for<'de> Deserialize<'de>>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
}

fn name<T: Serialize>(t: T) -> String {
    match serde_json::to_value(t) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// One rendition of a ready video.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Rendition {
    /// Name (`720p`).
    pub name: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Video bitrate, kbit/s.
    pub bitrate_kbps: u32,
}

/// The channel a video belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ChannelRef {
    /// Channel slug.
    pub slug: String,
    /// Channel name.
    pub name: String,
}

/// A video.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Video {
    /// Video id (also its secret when unlisted).
    pub id: String,
    /// Its channel.
    pub channel: ChannelRef,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// State.
    pub state: VideoState,
    /// Processing progress, 0–100.
    pub progress: i64,
    /// Why processing failed.
    pub failure: Option<String>,
    /// Visibility.
    pub visibility: Visibility,
    /// Upload or recording.
    pub source: Source,
    /// Duration in milliseconds, once known.
    pub duration_ms: Option<i64>,
    /// Renditions, once ready.
    pub renditions: Vec<Rendition>,
    /// Poster image URL.
    pub poster: Option<String>,
    /// Storyboard (WebVTT of sprite thumbnails) URL.
    pub storyboard: Option<String>,
    /// HLS master playlist URL, once ready.
    pub playlist: Option<String>,
    /// Views.
    pub views: i64,
    /// Created, milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Last changed, milliseconds since the Unix epoch.
    pub updated_at: i64,
}

/// Video changes (absent fields stay).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VideoPatch {
    /// 1–140 characters.
    #[schema(min_length = 1, max_length = 140)]
    pub title: Option<String>,
    /// At most 5,000 characters.
    #[schema(max_length = 5000)]
    pub description: Option<String>,
    /// Visibility.
    pub visibility: Option<Visibility>,
}

/// How a tus upload takes part in concatenation (its `Upload-Concat`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum UploadKind {
    /// An ordinary upload: a video of its own.
    #[default]
    Whole,
    /// A part of a parallel upload: no video; only its creator may write to it or join it.
    Partial,
    /// The final upload joining these parts (upload ids, in order): the video.
    Final(Vec<String>),
}

/// A closed recording of a live stream, as the media side reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClosedRecording {
    /// The live stream, `app/name`.
    pub stream: String,
    /// The media side's id of the recording's files (`/recordings/<id>/`).
    pub id: String,
    /// Its duration.
    pub duration_ms: Option<i64>,
    /// The transcoding job queued for it (none: its own playlist is the video).
    pub job: Option<String>,
    /// The live session it recorded, when known (else the channel's latest one without a
    /// video).
    pub session: Option<String>,
}

/// What a finished transcoding job produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Processed {
    /// Duration in milliseconds.
    pub duration_ms: Option<i64>,
    /// Renditions.
    pub renditions: Vec<Rendition>,
    /// Poster URL.
    pub poster: Option<String>,
    /// Storyboard URL.
    pub storyboard: Option<String>,
    /// Master playlist URL.
    pub playlist: Option<String>,
}

/// A video row, as cached: the public view plus what access checks need.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct VideoRecord {
    pub(crate) video: Video,
    pub(crate) owner_id: String,
    pub(crate) job_id: Option<String>,
    pub(crate) upload_id: Option<String>,
    pub(crate) media_id: Option<String>,
}

impl VideoRecord {
    fn may_manage(&self, user: &User) -> bool {
        user.role == Role::Admin || user.id == self.owner_id
    }

    fn may_watch(&self, user: Option<&User>) -> bool {
        self.video.visibility != Visibility::Private || user.is_some_and(|u| self.may_manage(u))
    }
}

const VIDEO_SELECT: &str = "SELECT v.id, v.title, v.description, v.state, v.progress, v.failure, \
    v.visibility, v.source, v.duration_ms, v.renditions, v.poster, v.storyboard, v.playlist, v.views, \
    v.created_at, v.updated_at, v.job_id, v.upload_id, v.media_id, c.slug, c.name AS channel_name, c.owner_id \
    FROM app_videos v JOIN app_channels c ON c.id = v.channel_id";

fn video_from(row: &sqlx::any::AnyRow) -> Result<VideoRecord> {
    let state: String = row.try_get("state")?;
    let vis: String = row.try_get("visibility")?;
    let source: String = row.try_get("source")?;
    let renditions: String = row.try_get("renditions")?;
    Ok(VideoRecord {
        owner_id: row.try_get("owner_id")?,
        job_id: row.try_get("job_id")?,
        upload_id: row.try_get("upload_id")?,
        media_id: row.try_get("media_id")?,
        video: Video {
            id: row.try_get("id")?,
            channel: ChannelRef {
                slug: row.try_get("slug")?,
                name: row.try_get("channel_name")?,
            },
            title: row.try_get("title")?,
            description: row.try_get("description")?,
            state: parse(&state).unwrap_or(VideoState::Failed),
            progress: row.try_get("progress")?,
            failure: row.try_get("failure")?,
            visibility: parse(&vis).unwrap_or(Visibility::Private),
            source: parse(&source).unwrap_or(Source::Upload),
            duration_ms: row.try_get("duration_ms")?,
            renditions: serde_json::from_str(&renditions).unwrap_or_default(),
            poster: row.try_get("poster")?,
            storyboard: row.try_get("storyboard")?,
            playlist: row.try_get("playlist")?,
            views: row.try_get("views")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        },
    })
}

/// What a new video needs.
#[derive(Debug, Clone)]
pub(crate) struct NewVideo<'a> {
    pub(crate) channel_id: &'a str,
    pub(crate) title: &'a str,
    pub(crate) description: &'a str,
    pub(crate) state: VideoState,
    pub(crate) visibility: Visibility,
    pub(crate) source: Source,
    pub(crate) upload_id: Option<&'a str>,
    pub(crate) media_id: Option<&'a str>,
    pub(crate) live_session_id: Option<&'a str>,
}

impl App {
    pub(crate) async fn video_record(&self, id: &str) -> Result<VideoRecord> {
        if id.is_empty()
            || id.len() > 32
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(AppError::NotFound("video"));
        }
        let key = format!("video:{id}");
        if let Some(v) = self.cache().get_json::<VideoRecord>(&key).await {
            return Ok(v);
        }
        let row = sqlx::query(&format!("{VIDEO_SELECT} WHERE v.id = $1"))
            .bind(id)
            .fetch_optional(&self.db().pool)
            .await?
            .ok_or(AppError::NotFound("video"))?;
        let v = video_from(&row)?;
        self.cache().put_json(&key, &v).await;
        Ok(v)
    }

    /// The video `id`, if `viewer` may watch it (a private video is "not found" to others).
    pub async fn video(&self, viewer: Option<&User>, id: &str) -> Result<Video> {
        let v = self.video_record(id).await?;
        if !v.may_watch(viewer) {
            return Err(AppError::NotFound("video"));
        }
        Ok(v.video)
    }

    pub(crate) async fn insert_video(&self, v: NewVideo<'_>) -> Result<String> {
        let id = new_id();
        let now = now_ms();
        sqlx::query(
            "INSERT INTO app_videos (id, channel_id, title, description, state, progress, visibility, source, \
             renditions, upload_id, media_id, live_session_id, views, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, $7, '[]', $8, $9, $10, 0, $11, $11)",
        )
        .bind(&id)
        .bind(v.channel_id)
        .bind(v.title)
        .bind(v.description)
        .bind(name(v.state))
        .bind(name(v.visibility))
        .bind(name(v.source))
        .bind(v.upload_id)
        .bind(v.media_id)
        .bind(v.live_session_id)
        .bind(now)
        .execute(&self.db().pool)
        .await?;
        if let Some(m) = v.media_id {
            self.cache().invalidate(&[format!("media:{m}")]).await;
        }
        Ok(id)
    }

    async fn list(&self, filter: &str, binds: &[&str], q: &PageQuery) -> Result<Page<Video>> {
        let limit = q.limit()?;
        let cursor = q.cursor()?;
        let n = binds.len();
        let mut sql = format!("{VIDEO_SELECT} WHERE {filter}");
        if cursor.is_some() {
            let _ = write!(
                sql,
                " AND (v.created_at < ${a} OR (v.created_at = ${a} AND v.id < ${b}))",
                a = n + 1,
                b = n + 2
            );
        }
        let _ = write!(
            sql,
            " ORDER BY v.created_at DESC, v.id DESC LIMIT {}",
            limit + 1
        );
        let mut query = sqlx::query(&sql);
        for b in binds {
            query = query.bind(*b);
        }
        if let Some(c) = &cursor {
            query = query.bind(c.at).bind(c.id.clone());
        }
        let rows = query.fetch_all(&self.db().pool).await?;
        let videos = rows
            .iter()
            .map(|r| video_from(r).map(|v| v.video))
            .collect::<Result<Vec<_>>>()?;
        Ok(page(videos, limit, |v| (v.created_at, &v.id)))
    }

    /// Public, ready videos, newest first; with `search`, those whose title contains it.
    pub async fn latest_videos(&self, search: Option<&str>, q: &PageQuery) -> Result<Page<Video>> {
        match search.map(str::trim).filter(|s| !s.is_empty()) {
            None => {
                self.list("v.visibility = 'public' AND v.state = 'ready'", &[], q)
                    .await
            }
            Some(s) => {
                if s.chars().count() > 100 {
                    return Err(AppError::invalid("q", "at most 100 characters"));
                }
                let escaped: String = s
                    .to_lowercase()
                    .chars()
                    .flat_map(|c| match c {
                        '%' | '_' | '\\' => vec!['\\', c],
                        c => vec![c],
                    })
                    .collect();
                let pattern = format!("%{escaped}%");
                self.list(
                    "v.visibility = 'public' AND v.state = 'ready' AND lower(v.title) LIKE $1 ESCAPE '\\'",
                    &[&pattern],
                    q,
                )
                .await
            }
        }
    }

    /// A channel's videos: the public, ready ones — or all of them for its owner.
    pub async fn channel_videos(
        &self,
        viewer: Option<&User>,
        slug: &str,
        q: &PageQuery,
    ) -> Result<Page<Video>> {
        let c = self.channel_record(slug).await?;
        if viewer.is_some_and(|u| c.may_manage(u)) {
            self.list("v.channel_id = $1", &[&c.channel.id], q).await
        } else {
            self.list(
                "v.channel_id = $1 AND v.visibility = 'public' AND v.state = 'ready'",
                &[&c.channel.id],
                q,
            )
            .await
        }
    }

    /// Every video of every channel `user` owns.
    pub async fn my_videos(&self, user: &User, q: &PageQuery) -> Result<Page<Video>> {
        self.list("c.owner_id = $1", &[&user.id], q).await
    }

    /// Change a video's title, description or visibility.
    pub async fn update_video(&self, user: &User, id: &str, patch: VideoPatch) -> Result<Video> {
        let v = self.video_record(id).await?;
        if !v.may_watch(Some(user)) {
            return Err(AppError::NotFound("video"));
        }
        if !v.may_manage(user) {
            return Err(AppError::Forbidden("not your video".into()));
        }
        if let Some(t) = &patch.title {
            check_text("title", t, 1, 140)?;
        }
        if let Some(d) = &patch.description {
            check_text("description", d, 0, 5000)?;
        }
        sqlx::query(
            "UPDATE app_videos SET title = COALESCE($1, title), description = COALESCE($2, description), \
             visibility = COALESCE($3, visibility), updated_at = $4 WHERE id = $5",
        )
        .bind(patch.title.as_deref().map(str::trim))
        .bind(patch.description.as_deref())
        .bind(patch.visibility.map(name))
        .bind(now_ms())
        .bind(id)
        .execute(&self.db().pool)
        .await?;
        self.video_changed(id).await;
        Ok(self.video_record(id).await?.video)
    }

    /// Delete a video: its job is cancelled and its files removed from storage.
    pub async fn delete_video(&self, user: &User, id: &str) -> Result<()> {
        let v = self.video_record(id).await?;
        if !v.may_watch(Some(user)) {
            return Err(AppError::NotFound("video"));
        }
        if !v.may_manage(user) {
            return Err(AppError::Forbidden("not your video".into()));
        }
        sqlx::query("DELETE FROM app_videos WHERE id = $1")
            .bind(id)
            .execute(&self.db().pool)
            .await?;
        self.video_changed(id).await;
        if let Some(m) = &v.media_id {
            self.cache().invalidate(&[format!("media:{m}")]).await;
        }
        let media = self.media();
        if let Some(job) = &v.job_id {
            media.cancel_job(job).await;
        }
        media
            .remove_video_files(id, v.media_id.as_deref(), v.job_id.as_deref())
            .await;
        tracing::info!(video = %id, user = %user.id, "video deleted");
        Ok(())
    }

    /// Count a view of `id` by `viewer` (an account id or a hash of the client's address):
    /// once per viewer per video per 30 minutes. Whether it counted.
    pub async fn count_view(
        &self,
        viewer: Option<&User>,
        viewer_key: &str,
        id: &str,
    ) -> Result<bool> {
        let v = self.video_record(id).await?;
        if !v.may_watch(viewer) || v.video.state != VideoState::Ready {
            return Err(AppError::NotFound("video"));
        }
        let now = now_ms();
        let window = 30 * 60 * 1000;
        let mut tx = self.db().pool.begin().await?;
        let r = sqlx::query(
            "INSERT INTO app_video_views (video_id, viewer, counted_at) VALUES ($1, $2, $3) \
             ON CONFLICT (video_id, viewer) DO UPDATE SET counted_at = excluded.counted_at \
             WHERE app_video_views.counted_at <= $4",
        )
        .bind(id)
        .bind(viewer_key)
        .bind(now)
        .bind(now - window)
        .execute(&mut *tx)
        .await?;
        let counted = r.rows_affected() > 0;
        if counted {
            sqlx::query("UPDATE app_videos SET views = views + 1 WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        if counted {
            self.video_changed(id).await;
        }
        Ok(counted)
    }

    pub(crate) async fn video_changed(&self, id: &str) {
        self.cache().invalidate(&[format!("video:{id}")]).await;
    }

    /// Set a video's processing state by its job: progress (0–100).
    pub async fn job_progress(&self, job_id: &str, percent: i64) -> Result<()> {
        let r = sqlx::query(
            "UPDATE app_videos SET state = 'processing', progress = $1, updated_at = $2 \
             WHERE job_id = $3 AND state IN ('uploading', 'processing') AND progress <> $1",
        )
        .bind(percent.clamp(0, 100))
        .bind(now_ms())
        .bind(job_id)
        .execute(&self.db().pool)
        .await?;
        if r.rows_affected() > 0 {
            self.job_video_changed(job_id).await?;
        }
        Ok(())
    }

    /// The video `id` is ready as it is (no processing), with `done` (a recording's own
    /// playlist, say).
    pub async fn video_ready(&self, id: &str, done: &Processed) -> Result<()> {
        self.mark_ready("id", id, done).await?;
        self.video_changed(id).await;
        Ok(())
    }

    /// The job of a video finished: it is ready, with what the job made.
    pub async fn job_finished(&self, job_id: &str, done: &Processed) -> Result<()> {
        self.mark_ready("job_id", job_id, done).await?;
        self.job_video_changed(job_id).await
    }

    /// The videos whose `column` (`id` or `job_id`) is `key` are ready with `done`.
    async fn mark_ready(&self, column: &'static str, key: &str, done: &Processed) -> Result<()> {
        sqlx::query(&format!(
            "UPDATE app_videos SET state = 'ready', progress = 100, failure = NULL, duration_ms = $1, \
             renditions = $2, poster = $3, storyboard = $4, playlist = $5, updated_at = $6 WHERE {column} = $7"
        ))
        .bind(done.duration_ms)
        .bind(serde_json::to_string(&done.renditions).unwrap_or_else(|_| "[]".into()))
        .bind(done.poster.as_deref())
        .bind(done.storyboard.as_deref())
        .bind(done.playlist.as_deref())
        .bind(now_ms())
        .bind(key)
        .execute(&self.db().pool)
        .await?;
        Ok(())
    }

    /// The job of a video failed for good.
    pub async fn job_failed(&self, job_id: &str, reason: &str) -> Result<()> {
        let reason: String = reason.chars().take(500).collect();
        sqlx::query("UPDATE app_videos SET state = 'failed', failure = $1, updated_at = $2 WHERE job_id = $3")
            .bind(&reason)
            .bind(now_ms())
            .bind(job_id)
            .execute(&self.db().pool)
            .await?;
        self.job_video_changed(job_id).await
    }

    async fn job_video_changed(&self, job_id: &str) -> Result<()> {
        let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM app_videos WHERE job_id = $1")
            .bind(job_id)
            .fetch_all(&self.db().pool)
            .await?;
        for id in ids {
            self.video_changed(&id).await;
        }
        Ok(())
    }

    /// A transcoding job `job_id` now processes the video `video_id`.
    pub async fn attach_job(&self, video_id: &str, job_id: &str) -> Result<()> {
        sqlx::query(
            "UPDATE app_videos SET job_id = $1, state = 'processing', updated_at = $2 WHERE id = $3",
        )
        .bind(job_id)
        .bind(now_ms())
        .bind(video_id)
        .execute(&self.db().pool)
        .await?;
        self.video_changed(video_id).await;
        Ok(())
    }

    /// The video made from the upload `upload_id`, if any.
    pub async fn video_of_upload(&self, upload_id: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT id FROM app_videos WHERE upload_id = $1")
                .bind(upload_id)
                .fetch_optional(&self.db().pool)
                .await?,
        )
    }

    /// A closed recording `recording` (the media side's id of its files) of the live
    /// stream `app/name` (whose session was `session`): a video in `processing`, when the
    /// channel keeps recordings. Its id.
    pub(crate) async fn recording_closed(
        &self,
        app: &str,
        name: &str,
        recording: &str,
        session: Option<&str>,
    ) -> Result<Option<String>> {
        if app != self.config().live_app {
            return Ok(None);
        }
        let Ok(c) = self.channel_record(name).await else {
            return Ok(None);
        };
        if !c.record {
            return Ok(None);
        }
        // Told from another machine, the session is not known: the channel's latest one
        // that has no video yet (a channel publishes once at a time).
        let latest =
            match session {
                Some(_) => None,
                None => sqlx::query_scalar::<_, String>(
                    "SELECT id FROM app_live_sessions WHERE channel_id = $1 AND video_id IS NULL \
                     ORDER BY started_at DESC LIMIT 1",
                )
                .bind(&c.channel.id)
                .fetch_optional(&self.db().pool)
                .await?,
            };
        let session = session.or(latest.as_deref());
        let title = match session {
            Some(s) => {
                sqlx::query_scalar::<_, String>("SELECT title FROM app_live_sessions WHERE id = $1")
                    .bind(s)
                    .fetch_optional(&self.db().pool)
                    .await?
                    .unwrap_or_else(|| c.channel.name.clone())
            }
            None => c.channel.name.clone(),
        };
        let id = self
            .insert_video(NewVideo {
                channel_id: &c.channel.id,
                title: &title,
                description: "",
                state: VideoState::Processing,
                visibility: Visibility::Public,
                source: Source::Recording,
                upload_id: None,
                media_id: Some(recording),
                live_session_id: session,
            })
            .await?;
        if let Some(s) = session {
            sqlx::query("UPDATE app_live_sessions SET video_id = $1 WHERE id = $2")
                .bind(&id)
                .bind(s)
                .execute(&self.db().pool)
                .await?;
        }
        Ok(Some(id))
    }

    /// A closed recording (told in process or by the media server's event hook): when its
    /// channel keeps recordings, a video — processing with the recording's job, or ready at
    /// once with the recording's own playlist when recordings are not transcoded. Its id.
    pub async fn recording_finished(&self, r: &ClosedRecording) -> Result<Option<String>> {
        let valid = |s: &str| {
            !s.is_empty()
                && s.len() <= 200
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        };
        if !valid(&r.id) {
            return Err(AppError::invalid("id", "a recording id ([A-Za-z0-9._-])"));
        }
        let Some((app, name)) = r.stream.split_once('/') else {
            return Err(AppError::invalid("stream", "app/name"));
        };
        let Some(video) = self
            .recording_closed(app, name, &r.id, r.session.as_deref())
            .await?
        else {
            return Ok(None);
        };
        match &r.job {
            Some(job) => self.attach_job(&video, job).await?,
            None => {
                self.video_ready(
                    &video,
                    &Processed {
                        duration_ms: r.duration_ms,
                        playlist: Some(format!("/recordings/{}/index.m3u8", r.id)),
                        ..Processed::default()
                    },
                )
                .await?;
            }
        }
        tracing::info!(video = %video, recording = %r.id, "recording became a video");
        Ok(Some(video))
    }

    /// The channel a new upload of `user` goes to: `slug` if given (and theirs), else
    /// their first channel.
    pub(crate) async fn upload_channel(&self, user: &User, slug: Option<&str>) -> Result<String> {
        match slug {
            Some(s) => {
                let c = self.channel_record(s).await?;
                if !c.may_manage(user) {
                    return Err(AppError::Forbidden("not your channel".into()));
                }
                Ok(c.channel.id)
            }
            None => sqlx::query_scalar(
                "SELECT id FROM app_channels WHERE owner_id = $1 ORDER BY created_at, id LIMIT 1",
            )
            .bind(&user.id)
            .fetch_optional(&self.db().pool)
            .await?
            .ok_or_else(|| AppError::Conflict("create a channel before uploading".into())),
        }
    }

    /// An upload `upload_id` by `user` starts: its video, in `uploading` (title and
    /// channel from the upload's metadata `filename`/`title`, `channel`, `visibility`).
    pub async fn upload_started(
        &self,
        user: &User,
        upload_id: &str,
        meta: &std::collections::HashMap<String, String>,
    ) -> Result<String> {
        let channel_id = self
            .upload_channel(user, meta.get("channel").map(String::as_str))
            .await?;
        let title: String = meta
            .get("title")
            .or_else(|| meta.get("filename"))
            .or_else(|| meta.get("name"))
            .map_or("Untitled", String::as_str)
            .chars()
            .filter(|c| !c.is_control())
            .take(140)
            .collect();
        let title = if title.trim().is_empty() {
            "Untitled".to_string()
        } else {
            title.trim().to_string()
        };
        let visibility = match meta.get("visibility").map(String::as_str) {
            None | Some("public") => Visibility::Public,
            Some("unlisted") => Visibility::Unlisted,
            Some("private") => Visibility::Private,
            Some(_) => {
                return Err(AppError::invalid(
                    "visibility",
                    "public, unlisted or private",
                ));
            }
        };
        self.insert_video(NewVideo {
            channel_id: &channel_id,
            title: &title,
            description: "",
            state: VideoState::Uploading,
            visibility,
            source: Source::Upload,
            upload_id: Some(upload_id),
            media_id: Some(upload_id),
            live_session_id: None,
        })
        .await
    }
}

impl App {
    /// A tus upload `upload_id` is being created by `user`: an ordinary or final upload
    /// gets its video (see [`App::upload_started`]); a part of a parallel upload is only
    /// recorded as `user`'s. A final upload may join only `user`'s own parts. The video's
    /// id, if one was made.
    pub async fn upload_created(
        &self,
        user: &User,
        upload_id: &str,
        kind: &UploadKind,
        meta: &std::collections::HashMap<String, String>,
    ) -> Result<Option<String>> {
        match kind {
            UploadKind::Partial => {
                sqlx::query(
                    "INSERT INTO app_upload_parts (upload_id, owner_id, created_at) VALUES ($1, $2, $3)",
                )
                .bind(upload_id)
                .bind(&user.id)
                .bind(now_ms())
                .execute(&self.db().pool)
                .await?;
                Ok(None)
            }
            UploadKind::Final(parts) => {
                for part in parts {
                    if !self.may_use_upload(user, part).await? {
                        return Err(AppError::NotFound("upload"));
                    }
                }
                self.upload_started(user, upload_id, meta).await.map(Some)
            }
            UploadKind::Whole => self.upload_started(user, upload_id, meta).await.map(Some),
        }
    }
}

/// Who may touch an upload, and what a media file's video allows.
impl App {
    /// Whether `user` may act on the upload `upload_id` (resume, read its offset, cancel,
    /// join it into a final upload): the owner of its video (or, for a part of a parallel
    /// upload, its creator), or an admin. An upload the platform does not know is nobody's.
    pub async fn may_use_upload(&self, user: &User, upload_id: &str) -> Result<bool> {
        if user.role == Role::Admin {
            return Ok(true);
        }
        let owner: Option<String> = sqlx::query_scalar(
            "SELECT c.owner_id FROM app_videos v JOIN app_channels c ON c.id = v.channel_id WHERE v.upload_id = $1 \
             UNION ALL SELECT owner_id FROM app_upload_parts WHERE upload_id = $2",
        )
        .bind(upload_id)
        .bind(upload_id)
        .fetch_optional(&self.db().pool)
        .await?;
        Ok(owner.is_some_and(|o| o == user.id))
    }

    /// Every byte of the upload `upload_id` is stored; `job_id` (when one was queued)
    /// processes it now. The video's id, if the upload has one.
    pub async fn upload_finished(
        &self,
        upload_id: &str,
        job_id: Option<&str>,
    ) -> Result<Option<String>> {
        let Some(id) = self.video_of_upload(upload_id).await? else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE app_videos SET state = 'processing', job_id = COALESCE($1, job_id), updated_at = $2, \
             progress = CASE WHEN state = 'uploading' THEN 0 ELSE progress END \
             WHERE id = $3 AND state IN ('uploading', 'processing')",
        )
        .bind(job_id)
        .bind(now_ms())
        .bind(&id)
        .execute(&self.db().pool)
        .await?;
        self.video_changed(&id).await;
        Ok(Some(id))
    }

    /// The upload `upload_id` was cancelled (terminated) or expired before it finished:
    /// its video goes too.
    pub async fn upload_gone(&self, upload_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM app_upload_parts WHERE upload_id = $1")
            .bind(upload_id)
            .execute(&self.db().pool)
            .await?;
        let Some(id) = self.video_of_upload(upload_id).await? else {
            return Ok(());
        };
        sqlx::query("DELETE FROM app_videos WHERE id = $1 AND state = 'uploading'")
            .bind(&id)
            .execute(&self.db().pool)
            .await?;
        self.video_changed(&id).await;
        Ok(())
    }

    /// The jobs of videos being processed (to follow their progress).
    pub async fn processing_jobs(&self) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT job_id FROM app_videos WHERE state = 'processing' AND job_id IS NOT NULL LIMIT 1000",
        )
        .fetch_all(&self.db().pool)
        .await?)
    }

    /// Whether `viewer` may fetch the files of the media `media_id` (an upload or a
    /// recording): yes unless they belong to a private video that is not the viewer's.
    /// Cached: every segment request asks.
    pub async fn may_fetch_media(&self, viewer: Option<&User>, media_id: &str) -> Result<bool> {
        let key = format!("media:{media_id}");
        let video = if let Some(id) = self.cache().get(&key).await {
            String::from_utf8(id.to_vec()).unwrap_or_default()
        } else {
            let id: Option<String> =
                sqlx::query_scalar("SELECT id FROM app_videos WHERE media_id = $1")
                    .bind(media_id)
                    .fetch_optional(&self.db().pool)
                    .await?;
            let id = id.unwrap_or_default();
            self.cache().put(&key, bytes::Bytes::from(id.clone())).await;
            id
        };
        if video.is_empty() {
            // Not a video of the platform (files of the media side alone).
            return Ok(true);
        }
        match self.video_record(&video).await {
            Ok(v) => Ok(v.may_watch(viewer)),
            Err(AppError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl App {
    /// A job finished its part and queued `next` to go on (a recording's remux hands
    /// over to its ladder): the video follows `next` now.
    pub async fn hand_over_job(&self, job_id: &str, next: &str) -> Result<()> {
        sqlx::query("UPDATE app_videos SET job_id = $1, updated_at = $2 WHERE job_id = $3")
            .bind(next)
            .bind(now_ms())
            .bind(job_id)
            .execute(&self.db().pool)
            .await?;
        self.job_video_changed(next).await
    }
}
