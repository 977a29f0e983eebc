//! Channels, their stream keys, and their live sessions.
//!
//! A stream key is shown once (at creation and at each rotation) and stored only as its
//! SHA-256: a publish to `rtmp://HOST/live` with the key as the stream name goes live as
//! `live/<slug>`; the key itself is never in a URL, an answer, an event or a log.

use serde::{Deserialize, Serialize};
use sqlx::Row as _;
use utoipa::ToSchema;

use crate::App;
use crate::accounts::{Role, User};
use crate::error::{AppError, Result};
use crate::ids::{new_id, new_secret, now_ms, secret_hash};

/// The owner of a channel, as everybody sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Owner {
    /// Account id.
    pub id: String,
    /// Username.
    pub username: String,
}

/// How a live stream is doing (from the media server).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct StreamHealth {
    /// Video codec (`h264`, `hevc`, `av1`, `vp9`).
    pub video_codec: Option<String>,
    /// Audio codec (`aac`, `opus`, …).
    pub audio_codec: Option<String>,
    /// Width in pixels.
    pub width: Option<u32>,
    /// Height in pixels.
    pub height: Option<u32>,
    /// Frames per second (measured).
    pub fps: Option<f64>,
    /// Ingest bitrate, kbit/s (measured).
    pub bitrate_kbps: Option<u64>,
}

/// A channel's live session, while it is live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LiveNow {
    /// Live session id.
    pub session_id: String,
    /// Title.
    pub title: String,
    /// Started, milliseconds since the Unix epoch.
    pub started_at: i64,
    /// Viewers now (HTTP-FLV, RTMP and HLS).
    pub viewers: i64,
    /// Most viewers at once in this session.
    pub peak_viewers: i64,
    /// Codecs, size, frame rate and bitrate.
    pub health: StreamHealth,
    /// The latest thumbnail (JPEG), once one was taken.
    pub thumbnail: Option<String>,
    /// HTTP-FLV URL (lowest latency).
    pub flv: String,
    /// HLS playlist URL.
    pub hls: String,
}

/// A channel, as everybody sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Channel {
    /// Channel id.
    pub id: String,
    /// URL name (`/live/<slug>.flv`).
    pub slug: String,
    /// Display name.
    pub name: String,
    /// About the channel.
    pub description: String,
    /// Who owns it.
    pub owner: Owner,
    /// Created, milliseconds since the Unix epoch.
    pub created_at: i64,
    /// The live session, while live.
    pub live: Option<LiveNow>,
}

/// A channel as its owner sees it (never with the key: that is shown once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChannelSettings {
    /// The public view.
    #[serde(flatten)]
    pub channel: Channel,
    /// Recordings of its live sessions become videos.
    pub record: bool,
    /// The title of the next (or current) live session.
    pub live_title: String,
}

/// A new or rotated stream key: shown this once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StreamKey {
    /// The secret: OBS "Stream Key".
    pub stream_key: String,
    /// OBS "Server".
    pub server: String,
}

/// A created channel and its key.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ChannelCreated {
    /// The channel.
    pub channel: ChannelSettings,
    /// Its key (shown once).
    pub key: StreamKey,
}

/// Create-a-channel input.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChannel {
    /// 3–32 characters: lowercase letters, digits and `-` (not at either end).
    #[schema(
        min_length = 3,
        max_length = 32,
        pattern = "^[a-z0-9][a-z0-9-]{1,30}[a-z0-9]$"
    )]
    pub slug: String,
    /// 1–80 characters.
    #[schema(min_length = 1, max_length = 80)]
    pub name: String,
    /// At most 2,000 characters.
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub description: String,
    /// Recordings become videos (default yes).
    #[serde(default)]
    pub record: Option<bool>,
}

/// Channel changes (absent fields stay).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelPatch {
    /// 1–80 characters.
    #[schema(min_length = 1, max_length = 80)]
    pub name: Option<String>,
    /// At most 2,000 characters.
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    /// Recordings become videos.
    pub record: Option<bool>,
    /// The live title (at most 140 characters); changes the current session's too.
    #[schema(max_length = 140)]
    pub live_title: Option<String>,
}

/// What a publish with a valid key becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishGrant {
    /// Channel id.
    pub channel_id: String,
    /// Stream name to publish as (`live/<slug>`).
    pub slug: String,
    /// Record it.
    pub record: bool,
}

/// Most channels one account may own.
pub const MAX_CHANNELS_PER_USER: i64 = 10;

/// Slugs that would collide with the site's own paths.
const RESERVED: &[&str] = &[
    "api",
    "admin",
    "live",
    "studio",
    "watch",
    "channel",
    "channels",
    "video",
    "videos",
    "files",
    "vod",
    "socket-io",
    "metrics",
    "healthz",
    "readyz",
    "login",
    "signup",
    "signin",
    "settings",
    "assets",
    "static",
    "search",
    "new",
    "me",
];

pub(crate) fn check_slug(s: &str) -> Result<()> {
    let ok = (3..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if !ok {
        return Err(AppError::invalid(
            "slug",
            "3–32 characters: lowercase letters, digits and - (not at either end)",
        ));
    }
    if RESERVED.contains(&s) {
        return Err(AppError::invalid("slug", "that name is reserved"));
    }
    Ok(())
}

pub(crate) fn check_text(field: &'static str, s: &str, min: usize, max: usize) -> Result<()> {
    let n = s.chars().count();
    if n < min || n > max {
        return Err(AppError::invalid(field, format!("{min}–{max} characters")));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(AppError::invalid(field, "no control characters"));
    }
    Ok(())
}

/// A channel row with its open live session, as cached.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ChannelRecord {
    pub(crate) channel: Channel,
    pub(crate) owner_id: String,
    pub(crate) record: bool,
    pub(crate) live_title: String,
}

impl ChannelRecord {
    pub(crate) fn may_manage(&self, user: &User) -> bool {
        user.role == Role::Admin || user.id == self.owner_id
    }

    fn settings(self) -> ChannelSettings {
        ChannelSettings {
            channel: self.channel,
            record: self.record,
            live_title: self.live_title,
        }
    }
}

const CHANNEL_SELECT: &str = "SELECT c.id, c.owner_id, u.username AS owner_name, c.slug, c.name, \
    c.description, c.record, c.live_title, c.created_at, l.id AS session_id, l.title AS session_title, \
    l.started_at, l.viewers, l.peak_viewers, l.health, l.thumbnail_at \
    FROM app_channels c JOIN app_users u ON u.id = c.owner_id \
    LEFT JOIN app_live_sessions l ON l.channel_id = c.id AND l.ended_at IS NULL";

impl App {
    fn channel_from(&self, row: &sqlx::any::AnyRow) -> Result<ChannelRecord> {
        let slug: String = row.try_get("slug")?;
        let session: Option<String> = row.try_get("session_id")?;
        let live = match session {
            None => None,
            Some(session_id) => {
                let health: String = row.try_get("health")?;
                let thumb: Option<i64> = row.try_get("thumbnail_at")?;
                let base = &self.config().media_base;
                let app = &self.config().live_app;
                Some(LiveNow {
                    session_id,
                    title: row.try_get("session_title")?,
                    started_at: row.try_get("started_at")?,
                    viewers: row.try_get("viewers")?,
                    peak_viewers: row.try_get("peak_viewers")?,
                    health: serde_json::from_str(&health).unwrap_or_default(),
                    thumbnail: thumb.map(|t| format!("{base}/thumbnails/{app}/{slug}.jpg?t={t}")),
                    flv: format!("{base}/{app}/{slug}.flv"),
                    hls: format!("{base}/{app}/{slug}.m3u8"),
                })
            }
        };
        Ok(ChannelRecord {
            owner_id: row.try_get("owner_id")?,
            record: row.try_get::<i64, _>("record")? != 0,
            live_title: row.try_get("live_title")?,
            channel: Channel {
                id: row.try_get("id")?,
                owner: Owner {
                    id: row.try_get("owner_id")?,
                    username: row.try_get("owner_name")?,
                },
                slug,
                name: row.try_get("name")?,
                description: row.try_get("description")?,
                created_at: row.try_get("created_at")?,
                live,
            },
        })
    }

    /// The channel `slug` with its live state, from the cache when it is there.
    pub(crate) async fn channel_record(&self, slug: &str) -> Result<ChannelRecord> {
        if check_slug(slug).is_err() {
            return Err(AppError::NotFound("channel"));
        }
        let key = format!("channel:{slug}");
        if let Some(c) = self.cache().get_json::<ChannelRecord>(&key).await {
            return Ok(c);
        }
        let row = sqlx::query(&format!("{CHANNEL_SELECT} WHERE c.slug = $1"))
            .bind(slug)
            .fetch_optional(&self.db().pool)
            .await?
            .ok_or(AppError::NotFound("channel"))?;
        let c = self.channel_from(&row)?;
        self.cache().put_json(&key, &c).await;
        Ok(c)
    }

    /// The channel `slug`, as everybody sees it.
    pub async fn channel(&self, slug: &str) -> Result<Channel> {
        Ok(self.channel_record(slug).await?.channel)
    }

    /// The channel `slug` as its owner (or an admin) sees it.
    pub async fn channel_settings(&self, user: &User, slug: &str) -> Result<ChannelSettings> {
        let c = self.channel_record(slug).await?;
        if !c.may_manage(user) {
            return Err(AppError::Forbidden("not your channel".into()));
        }
        Ok(c.settings())
    }

    /// The channels `user` owns.
    pub async fn my_channels(&self, user: &User) -> Result<Vec<ChannelSettings>> {
        let rows = sqlx::query(&format!(
            "{CHANNEL_SELECT} WHERE c.owner_id = $1 ORDER BY c.created_at, c.id"
        ))
        .bind(&user.id)
        .fetch_all(&self.db().pool)
        .await?;
        rows.iter()
            .map(|r| self.channel_from(r).map(ChannelRecord::settings))
            .collect()
    }

    fn stream_key(&self) -> (String, StreamKey) {
        let key = new_secret("sk_");
        (
            secret_hash(&key),
            StreamKey {
                stream_key: key,
                server: self.rtmp_url(),
            },
        )
    }

    /// Create a channel owned by `user` (who becomes a creator) with a new stream key.
    pub async fn create_channel(&self, user: &User, input: NewChannel) -> Result<ChannelCreated> {
        check_slug(&input.slug)?;
        check_text("name", &input.name, 1, 80)?;
        check_text("description", &input.description, 0, 2000)?;
        let owned: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM app_channels WHERE owner_id = $1")
                .bind(&user.id)
                .fetch_one(&self.db().pool)
                .await?;
        if owned >= MAX_CHANNELS_PER_USER {
            return Err(AppError::Conflict(format!(
                "an account may own at most {MAX_CHANNELS_PER_USER} channels"
            )));
        }
        let (hash, key) = self.stream_key();
        let now = now_ms();
        let mut tx = self.db().pool.begin().await?;
        let r = sqlx::query(
            "INSERT INTO app_channels (id, owner_id, slug, name, description, key_hash, record, live_title, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(new_id())
        .bind(&user.id)
        .bind(&input.slug)
        .bind(input.name.trim())
        .bind(&input.description)
        .bind(&hash)
        .bind(i64::from(input.record.unwrap_or(true)))
        .bind("")
        .bind(now)
        .execute(&mut *tx)
        .await;
        if let Err(e) = r {
            return Err(match AppError::from(e) {
                AppError::Conflict(_) => AppError::Conflict("that channel name is taken".into()),
                other => other,
            });
        }
        if user.role == Role::Viewer {
            sqlx::query("UPDATE app_users SET role = 'creator' WHERE id = $1 AND role = 'viewer'")
                .bind(&user.id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.cache()
            .invalidate(&[format!("channel:{}", input.slug)])
            .await;
        let channel = self.channel_record(&input.slug).await?.settings();
        tracing::info!(channel = %channel.channel.id, slug = %channel.channel.slug, user = %user.id, "channel created");
        Ok(ChannelCreated { channel, key })
    }

    /// Change a channel's name, description, recording setting or live title.
    pub async fn update_channel(
        &self,
        user: &User,
        slug: &str,
        patch: ChannelPatch,
    ) -> Result<ChannelSettings> {
        let c = self.channel_record(slug).await?;
        if !c.may_manage(user) {
            return Err(AppError::Forbidden("not your channel".into()));
        }
        if let Some(n) = &patch.name {
            check_text("name", n, 1, 80)?;
        }
        if let Some(d) = &patch.description {
            check_text("description", d, 0, 2000)?;
        }
        if let Some(t) = &patch.live_title {
            check_text("live_title", t, 0, 140)?;
        }
        let now = now_ms();
        let mut tx = self.db().pool.begin().await?;
        sqlx::query(
            "UPDATE app_channels SET name = COALESCE($1, name), description = COALESCE($2, description), \
             record = COALESCE($3, record), live_title = COALESCE($4, live_title), updated_at = $5 WHERE id = $6",
        )
        .bind(patch.name.as_deref().map(str::trim))
        .bind(patch.description.as_deref())
        .bind(patch.record.map(i64::from))
        .bind(patch.live_title.as_deref())
        .bind(now)
        .bind(&c.channel.id)
        .execute(&mut *tx)
        .await?;
        if let Some(t) = patch.live_title.as_deref().filter(|t| !t.is_empty()) {
            sqlx::query("UPDATE app_live_sessions SET title = $1 WHERE channel_id = $2 AND ended_at IS NULL")
                .bind(t)
                .bind(&c.channel.id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.channel_changed(slug).await;
        Ok(self.channel_record(slug).await?.settings())
    }

    /// A new stream key for the channel (the old one stops working at once); with
    /// `end_live`, a publish in progress is ended too.
    pub async fn rotate_key(&self, user: &User, slug: &str, end_live: bool) -> Result<StreamKey> {
        let c = self.channel_record(slug).await?;
        if !c.may_manage(user) {
            return Err(AppError::Forbidden("not your channel".into()));
        }
        let (hash, key) = self.stream_key();
        sqlx::query("UPDATE app_channels SET key_hash = $1, updated_at = $2 WHERE id = $3")
            .bind(&hash)
            .bind(now_ms())
            .bind(&c.channel.id)
            .execute(&self.db().pool)
            .await?;
        tracing::info!(channel = %c.channel.id, end_live, "stream key rotated");
        if end_live && c.channel.live.is_some() {
            self.media()
                .end_publish(&self.config().live_app, slug)
                .await;
        }
        Ok(key)
    }

    /// Who may publish with `key` to `app`: the channel it belongs to, or `None`.
    pub async fn authorize_publish(&self, app: &str, key: &str) -> Result<Option<PublishGrant>> {
        if app != self.config().live_app || key.len() > 128 || key.is_empty() {
            return Ok(None);
        }
        let row = sqlx::query("SELECT id, slug, record FROM app_channels WHERE key_hash = $1")
            .bind(secret_hash(key))
            .fetch_optional(&self.db().pool)
            .await?;
        Ok(match row {
            None => None,
            Some(r) => Some(PublishGrant {
                channel_id: r.try_get("id")?,
                slug: r.try_get("slug")?,
                record: r.try_get::<i64, _>("record")? != 0,
            }),
        })
    }

    /// Channels live now, most viewers first (cached).
    pub async fn live_now(&self) -> Result<Vec<Channel>> {
        if let Some(l) = self.cache().get_json::<Vec<Channel>>("live").await {
            return Ok(l);
        }
        let rows = sqlx::query(
            &format!("{CHANNEL_SELECT} WHERE l.id IS NOT NULL ORDER BY l.viewers DESC, l.started_at DESC, l.id LIMIT 500")
        )
        .fetch_all(&self.db().pool)
        .await?;
        let list = rows
            .iter()
            .map(|r| self.channel_from(r).map(|c| c.channel))
            .collect::<Result<Vec<_>>>()?;
        self.cache().put_json("live", &list).await;
        Ok(list)
    }

    pub(crate) async fn channel_changed(&self, slug: &str) {
        self.cache()
            .invalidate(&[format!("channel:{slug}"), "live".to_string()])
            .await;
    }

    /// `app/name` went live: a new live session for the channel `name` (a session left
    /// open by a crash is closed first). `None` when no channel has that slug.
    pub async fn stream_started(&self, app: &str, name: &str) -> Result<Option<String>> {
        if app != self.config().live_app {
            return Ok(None);
        }
        let Ok(c) = self.channel_record(name).await else {
            return Ok(None);
        };
        let now = now_ms();
        let id = new_id();
        let title = if c.live_title.is_empty() {
            c.channel.name.clone()
        } else {
            c.live_title.clone()
        };
        let mut tx = self.db().pool.begin().await?;
        sqlx::query("UPDATE app_live_sessions SET ended_at = $1, viewers = 0 WHERE channel_id = $2 AND ended_at IS NULL")
            .bind(now)
            .bind(&c.channel.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO app_live_sessions (id, channel_id, title, started_at, viewers, peak_viewers, health) \
             VALUES ($1, $2, $3, $4, 0, 0, '{}')",
        )
        .bind(&id)
        .bind(&c.channel.id)
        .bind(&title)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.channel_changed(name).await;
        tracing::info!(channel = %c.channel.id, session = %id, "live session started");
        Ok(Some(id))
    }

    /// `app/name` ended: its live session closes. Its id, if one was open.
    pub async fn stream_ended(&self, app: &str, name: &str) -> Result<Option<String>> {
        if app != self.config().live_app {
            return Ok(None);
        }
        let Ok(c) = self.channel_record(name).await else {
            return Ok(None);
        };
        let open: Option<String> = sqlx::query_scalar(
            "SELECT id FROM app_live_sessions WHERE channel_id = $1 AND ended_at IS NULL ORDER BY started_at DESC LIMIT 1",
        )
        .bind(&c.channel.id)
        .fetch_optional(&self.db().pool)
        .await?;
        sqlx::query("UPDATE app_live_sessions SET ended_at = $1, viewers = 0 WHERE channel_id = $2 AND ended_at IS NULL")
            .bind(now_ms())
            .bind(&c.channel.id)
            .execute(&self.db().pool)
            .await?;
        self.channel_changed(name).await;
        if let Some(id) = &open {
            tracing::info!(channel = %c.channel.id, session = %id, "live session ended");
        }
        Ok(open)
    }

    /// Viewers and health of the live stream `app/name` now.
    pub async fn stream_stats(
        &self,
        app: &str,
        name: &str,
        viewers: i64,
        health: &StreamHealth,
    ) -> Result<()> {
        if app != self.config().live_app || check_slug(name).is_err() {
            return Ok(());
        }
        let health = serde_json::to_string(health).unwrap_or_else(|_| "{}".into());
        let r = sqlx::query(
            "UPDATE app_live_sessions SET viewers = $1, \
             peak_viewers = CASE WHEN peak_viewers < $1 THEN $1 ELSE peak_viewers END, health = $2 \
             WHERE ended_at IS NULL AND channel_id = (SELECT id FROM app_channels WHERE slug = $3) \
             AND (viewers <> $1 OR health <> $2)",
        )
        .bind(viewers.max(0))
        .bind(&health)
        .bind(name)
        .execute(&self.db().pool)
        .await?;
        if r.rows_affected() > 0 {
            self.channel_changed(name).await;
        }
        Ok(())
    }

    /// A new thumbnail of `app/name` was stored.
    pub async fn thumbnail_taken(&self, app: &str, name: &str) -> Result<()> {
        if app != self.config().live_app || check_slug(name).is_err() {
            return Ok(());
        }
        sqlx::query(
            "UPDATE app_live_sessions SET thumbnail_at = $1 WHERE ended_at IS NULL \
             AND channel_id = (SELECT id FROM app_channels WHERE slug = $2)",
        )
        .bind(now_ms())
        .bind(name)
        .execute(&self.db().pool)
        .await?;
        self.channel_changed(name).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_rules() {
        for ok in ["abc", "kim-live", "a1b2c3", "x".repeat(32).as_str()] {
            assert!(check_slug(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab",
            "-abc",
            "abc-",
            "ABC",
            "a_b",
            "api",
            "한글",
            "x".repeat(33).as_str(),
        ] {
            assert!(check_slug(bad).is_err(), "{bad}");
        }
        assert!(check_text("name", "", 1, 80).is_err());
        assert!(check_text("name", "라이브 방송", 1, 80).is_ok());
        assert!(check_text("name", "a\u{7}b", 1, 80).is_err());
    }
}
