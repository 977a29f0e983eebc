//! The platform layer of VideoPick: accounts and sessions, channels with their stream
//! keys, live sessions, videos and views, chat tokens — on SQLite (embedded) or
//! PostgreSQL through one query layer, with hot reads cached in process or in Redis, and
//! the REST API (`/api/v1`, [`api::router`]) with its OpenAPI 3.1 document.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use videopick_app::{App, AppConfig, Db, accounts::SignUp, channels::NewChannel};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let app = App::new(Db::open_in(dir.path()).await?, AppConfig::default());
//! let me = app
//!     .sign_up(SignUp { username: "minji".into(), email: "minji@example.com".into(), password: "correct horse".into() })
//!     .await?;
//! let created = app
//!     .create_channel(&me.user, NewChannel { slug: "minji-live".into(), name: "민지 라이브".into(), description: String::new(), record: None })
//!     .await?;
//! // OBS publishes to rtmp://HOST/live with the key as the stream key: it goes live as live/minji-live.
//! let grant = app.authorize_publish("live", &created.key.stream_key).await?.unwrap();
//! assert_eq!(grant.slug, "minji-live");
//! assert!(app.authorize_publish("live", "sk_wrong").await?.is_none());
//! # Ok::<(), videopick_app::AppError>(()) }).unwrap();
//! ```
//!
//! The embedding server connects the media side through [`MediaControl`] (end a publish,
//! cancel a job, remove a video's files) and feeds lifecycle facts in with
//! [`App::stream_started`], [`App::stream_stats`], [`App::upload_started`],
//! [`App::job_finished`] and the like.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod accounts;
pub mod api;
pub mod cache;
pub mod channels;
pub mod chat;
mod db;
mod error;
pub mod hooks;
mod ids;
pub mod limits;
pub mod page;
pub mod videos;

use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

pub use db::{Backend, Db};
pub use error::{AppError, Result};

pub use cache::Cache;

/// A boxed future, as [`MediaControl`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// What the platform asks of the media side.
pub trait MediaControl: Send + Sync + 'static {
    /// End the publish of `app/name` now (its key was rotated).
    fn end_publish<'a>(&'a self, app: &'a str, name: &'a str) -> BoxFuture<'a, ()>;
    /// Cancel the transcoding job `job_id`.
    fn cancel_job<'a>(&'a self, job_id: &'a str) -> BoxFuture<'a, ()>;
    /// Remove a deleted video's files: its upload or recording (`media_id`, the media
    /// side's id of them) and its job's outputs.
    fn remove_video_files<'a>(
        &'a self,
        video_id: &'a str,
        media_id: Option<&'a str>,
        job_id: Option<&'a str>,
    ) -> BoxFuture<'a, ()>;
}

/// No media side: every request is only logged.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMedia;

impl MediaControl for NoMedia {
    fn end_publish<'a>(&'a self, app: &'a str, name: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            tracing::debug!(stream = %format!("{app}/{name}"), "no media side to end a publish");
        })
    }
    fn cancel_job<'a>(&'a self, job_id: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            tracing::debug!(job = %job_id, "no media side to cancel a job");
        })
    }
    fn remove_video_files<'a>(
        &'a self,
        video_id: &'a str,
        _media_id: Option<&'a str>,
        _job_id: Option<&'a str>,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            tracing::debug!(video = %video_id, "no media side to remove files");
        })
    }
}

/// Rate limits of the account endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Sign-in attempts per client address (and per login name) in a burst …
    pub sign_in_burst: u32,
    /// … then one more each this long.
    pub sign_in_every: Duration,
    /// Sign-ups per client address in a burst …
    pub sign_up_burst: u32,
    /// … then one more each this long.
    pub sign_up_every: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            sign_in_burst: 10,
            sign_in_every: Duration::from_secs(6),
            sign_up_burst: 5,
            sign_up_every: Duration::from_secs(60),
        }
    }
}

/// How the platform behaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AppConfig {
    /// How long a session lasts.
    pub session_ttl: Duration,
    /// Mark the session cookie `Secure` (served over TLS).
    pub cookie_secure: bool,
    /// Origins besides the API's own from which cookie-authenticated writes are accepted
    /// (`https://videopick.example`).
    pub allowed_origins: Vec<String>,
    /// The chat server's token secret (HS256); without it no chat tokens are minted.
    pub chat_secret: Option<String>,
    /// The chat's Socket.IO URL, told to clients with their token (`{host}`: the host name
    /// of the request, e.g. `http://{host}:3001`).
    pub chat_url: Option<String>,
    /// How long a chat token lasts.
    pub chat_token_ttl: Duration,
    /// Shared secret of the signed hooks between machines (media server → app).
    pub hook_secret: Option<String>,
    /// OBS "Server" (`rtmp://HOST/live`; `{host}`: the host name of the request,
    /// `{rtmp_port}`: the port of the RTMP listener in this process).
    pub rtmp_url: String,
    /// The RTMP application channels publish to.
    pub live_app: String,
    /// Prefix of media URLs (HTTP-FLV, HLS, thumbnails): empty when the media server
    /// shares the API's origin, else `http://media.example:8000`.
    pub media_base: String,
    /// Largest upload the media side accepts (told to the web app; none: unknown).
    pub max_upload_bytes: Option<u64>,
    /// Rate limits.
    pub limits: Limits,
    /// Longest a cached read may be stale if an invalidation is lost.
    pub cache_ttl: Duration,
}

impl Default for AppConfig {
    fn default() -> AppConfig {
        AppConfig {
            session_ttl: Duration::from_secs(30 * 86_400),
            cookie_secure: false,
            allowed_origins: Vec::new(),
            chat_secret: None,
            chat_url: None,
            chat_token_ttl: Duration::from_secs(3600),
            hook_secret: None,
            rtmp_url: "rtmp://127.0.0.1:1935/live".into(),
            live_app: "live".into(),
            media_base: String::new(),
            max_upload_bytes: None,
            limits: Limits::default(),
            cache_ttl: Duration::from_secs(30),
        }
    }
}

/// The platform. Cheap to clone.
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    cache: Cache,
    config: AppConfig,
    media: RwLock<Arc<dyn MediaControl>>,
    /// The RTMP listener's port, once bound (for `{rtmp_port}` in `rtmp_url`).
    rtmp_port: std::sync::atomic::AtomicU16,
    sign_in: limits::RateLimiter,
    sign_up: limits::RateLimiter,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("db", &self.inner.db.backend())
            .field("cache", &self.inner.cache)
            .finish_non_exhaustive()
    }
}

impl App {
    /// The platform on `db`, with an in-process cache.
    pub fn new(db: Db, config: AppConfig) -> App {
        let cache = Cache::local(config.cache_ttl);
        App::with_cache(db, cache, config)
    }

    /// The platform on `db` with `cache`.
    pub fn with_cache(db: Db, cache: Cache, config: AppConfig) -> App {
        let l = config.limits;
        App {
            inner: Arc::new(Inner {
                db,
                cache,
                sign_in: limits::RateLimiter::new(l.sign_in_burst, l.sign_in_every),
                sign_up: limits::RateLimiter::new(l.sign_up_burst, l.sign_up_every),
                config,
                media: RwLock::new(Arc::new(NoMedia)),
                rtmp_port: std::sync::atomic::AtomicU16::new(0),
            }),
        }
    }

    /// Connect the media side.
    pub fn set_media(&self, media: Arc<dyn MediaControl>) {
        *self
            .inner
            .media
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = media;
    }

    /// The RTMP listener in this process is bound to `port` (fills `{rtmp_port}` in
    /// [`AppConfig::rtmp_url`]).
    pub fn set_rtmp_port(&self, port: u16) {
        self.inner
            .rtmp_port
            .store(port, std::sync::atomic::Ordering::Relaxed);
    }

    /// OBS "Server": [`AppConfig::rtmp_url`] with the RTMP port filled in (`{host}` is left
    /// for the API to fill with the request's host).
    pub fn rtmp_url(&self) -> String {
        let url = &self.inner.config.rtmp_url;
        if url.contains("{rtmp_port}") {
            let port = match self
                .inner
                .rtmp_port
                .load(std::sync::atomic::Ordering::Relaxed)
            {
                0 => 1935,
                p => p,
            };
            url.replace("{rtmp_port}", &port.to_string())
        } else {
            url.clone()
        }
    }

    pub(crate) fn media(&self) -> Arc<dyn MediaControl> {
        self.inner
            .media
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The cache.
    pub fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    /// The configuration.
    pub fn config(&self) -> &AppConfig {
        &self.inner.config
    }

    pub(crate) fn sign_in_limiter(&self) -> &limits::RateLimiter {
        &self.inner.sign_in
    }

    pub(crate) fn sign_up_limiter(&self) -> &limits::RateLimiter {
        &self.inner.sign_up
    }
}
