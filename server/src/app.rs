//! The app role: the platform API (`videopick-app`: accounts, channels, stream keys,
//! live sessions, videos, chat tokens) over HTTP at `/api/v1/`, on its own listener
//! ([`AppServer`], the `app-server` binary, port 8080) or mounted on the media role's
//! listener ([`MediaServer::bind_platform`](crate::media::MediaServer::bind_platform),
//! the all-in-one `videopick`), where it is also wired to the hub in process: channel
//! stream keys decide publishes, lifecycle events open and close live sessions, viewer
//! counts and stream health are reported every few seconds.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use tower::ServiceExt as _;
use videopick_app::api::ClientAddr;
use videopick_app::{App, AppConfig as Platform, Cache, Db};
use videopick_hooks::{HookClient, HookConfig};
use videopick_live::auth::{Action, AuthRequest, Authorize, BoxFuture, Denied, Grant};
use videopick_live::hub::{Hub, LiveEventKind};

use crate::config::AppConfig;
use crate::http::{HttpResponse, respond, serve};
use crate::media::Error;
use crate::metrics::Metrics;

/// Largest API answer passed through (they are small JSON documents).
const MAX_ANSWER: usize = 16 << 20;

/// The platform and its HTTP API, ready to mount on a listener.
#[derive(Clone)]
pub struct AppRole {
    app: App,
    router: axum::Router,
    web: Option<crate::web::WebApp>,
}

impl std::fmt::Debug for AppRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppRole")
            .field("app", &self.app)
            .finish_non_exhaustive()
    }
}

impl AppConfig {
    /// The platform settings, with `chat_secret` and `rtmp_url` filled in from the other
    /// roles when not set.
    fn platform(
        &self,
        chat_secret: Option<&str>,
        media: Option<&crate::config::MediaConfig>,
    ) -> Platform {
        let rtmp = media.map(|m| m.rtmp);
        let mut p = Platform::default();
        p.max_upload_bytes = media.map(|m| m.tus_max_size);
        p.session_ttl = Duration::from_secs(self.session_ttl_hours.max(1) * 3600);
        p.cookie_secure = self.cookie_secure;
        p.allowed_origins.clone_from(&self.allowed_origins);
        p.chat_secret = self
            .chat_secret
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| chat_secret.map(str::to_string));
        p.chat_url = Some(self.chat_url.clone()).filter(|s| !s.is_empty());
        p.hook_secret = self.hook_secret.clone().filter(|s| !s.is_empty());
        p.live_app.clone_from(&self.live_app);
        p.media_base = self.media_base.trim_end_matches('/').to_string();
        p.rtmp_url = if self.rtmp_url.is_empty() {
            // The host the creator's browser used, on the RTMP listener's port.
            match rtmp.map(|a| a.port()) {
                Some(0) => format!("rtmp://{{host}}:{{rtmp_port}}/{}", self.live_app),
                port => format!("rtmp://{{host}}:{}/{}", port.unwrap_or(1935), self.live_app),
            }
        } else {
            self.rtmp_url.clone()
        };
        p
    }
}

impl AppRole {
    /// Open the database (`config.db`, or SQLite under `data`) and the cache, apply the
    /// migrations. `chat_secret` and `media` (the RTMP port, the upload limit) come from
    /// the process's other roles.
    pub async fn open(
        config: &AppConfig,
        data: &Path,
        chat_secret: Option<&str>,
        media: Option<&crate::config::MediaConfig>,
    ) -> Result<AppRole, Error> {
        let platform = config.platform(chat_secret, media);
        let db = if config.db.is_empty() {
            Db::open_in(data).await?
        } else {
            Db::open(&config.db).await?
        };
        let cache = if config.cache.is_empty() {
            Cache::local(platform.cache_ttl)
        } else {
            Cache::redis(&config.cache, &config.cache_prefix, platform.cache_ttl)?
        };
        tracing::info!(db = ?db.backend(), cache = if cache.is_redis() { "redis" } else { "local" }, "app role ready");
        let app = App::with_cache(db, cache, platform);
        // Expired sessions go now and then.
        let sweeper = app.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                if let Err(e) = sweeper.sweep_sessions().await {
                    tracing::warn!(error = %e, "session sweep failed");
                }
            }
        });
        // The chat on another origin is where the page may connect besides its own.
        let connect = app
            .config()
            .chat_url
            .iter()
            .filter(|u| u.contains("://"))
            .map(|u| {
                // Its origin: scheme, host and port.
                let rest = u.split_once("://").map_or("", |x| x.1);
                let scheme = u.split_once("://").map_or("http", |x| x.0);
                format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest))
            })
            .collect();
        let web = crate::web::WebApp::open(&config.web_dir, connect).map(|w| {
            let base = &app.config().media_base;
            // The media server's origin, when it is not the page's.
            let origin = base.split_once("://").map(|(scheme, rest)| {
                format!("{scheme}://{}", rest.split('/').next().unwrap_or(rest))
            });
            w.with_media_origin(origin)
        });
        if web.is_some() {
            tracing::info!(dir = %config.web_dir.display(), "web app served at /");
        } else {
            tracing::info!(
                dir = %config.web_dir.display(),
                "no web app built there (npm run build in web/): the API only"
            );
        }
        Ok(AppRole {
            router: videopick_app::api::router(app.clone()),
            app,
            web,
        })
    }

    /// The web application, when built.
    pub fn web(&self) -> Option<&crate::web::WebApp> {
        self.web.as_ref()
    }

    /// The platform.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// Whether `path` is the API's.
    pub fn owns(path: &str) -> bool {
        path.starts_with("/api/v1/") || path == "/api/v1"
    }

    /// Answer one request (`peer`: the client, trusted proxies applied).
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> HttpResponse {
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut().insert(ClientAddr(peer.ip()));
        let Ok(resp) = self.router.clone().oneshot(req).await;
        let (parts, body) = resp.into_parts();
        match http_body_util::Limited::new(body, MAX_ANSWER)
            .collect()
            .await
        {
            Ok(b) => hyper::Response::from_parts(parts, Full::new(b.to_bytes()).boxed()),
            Err(e) => {
                tracing::warn!(error = %e, "api answer unreadable");
                respond(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "text/plain",
                    "internal error\n",
                )
            }
        }
    }
}

/// Publishes to the platform's live app need a channel's stream key and go live under
/// the channel's slug; other apps are decided by `others` (refused without one). Plays
/// are decided by `others` too, and allowed without one.
pub(crate) struct ChannelKeys {
    app: App,
    others: Option<Arc<dyn Authorize>>,
}

impl ChannelKeys {
    pub(crate) fn new(app: App, others: Option<Arc<dyn Authorize>>) -> ChannelKeys {
        ChannelKeys { app, others }
    }
}

impl Authorize for ChannelKeys {
    fn secret_names(&self, app: &str) -> bool {
        app == self.app.config().live_app
    }

    fn authorize<'a>(&'a self, req: &'a AuthRequest) -> BoxFuture<'a, Result<Grant, Denied>> {
        Box::pin(async move {
            let live = req.app == self.app.config().live_app;
            match (req.action, live, &self.others) {
                (Action::Publish, true, _) => {
                    match self.app.authorize_publish(&req.app, &req.stream).await {
                        Ok(Some(g)) => Ok(Grant {
                            record: Some(g.record),
                            stream: Some(g.slug),
                        }),
                        Ok(None) => Err(Denied::WrongKey),
                        Err(e) => {
                            tracing::warn!(error = %e, "stream keys cannot be checked");
                            Err(Denied::Other(
                                "stream keys cannot be checked now; try again shortly".into(),
                            ))
                        }
                    }
                }
                (_, _, Some(others)) => others.authorize(req).await,
                (Action::Play, _, None) => Ok(Grant::default()),
                (Action::Publish, false, None) => {
                    Err(Denied::UnknownStream(format!("{}/{}", req.app, req.stream)))
                }
            }
        })
    }
}

/// Feed the hub's lifecycle into the platform: publishes open live sessions, unpublishes
/// close them, and every `every` the live streams' viewers and health are reported.
/// Returns the open sessions by stream key (for recordings).
pub(crate) fn connect_hub(
    app: &App,
    hub: &Hub,
    live: crate::streams::LiveHttp,
    every: Duration,
) -> Sessions {
    let sessions = Sessions::default();
    let prefix = format!("{}/", app.config().live_app);
    let mut events = hub.events();
    let (a, s, p) = (app.clone(), sessions.clone(), prefix);
    tokio::spawn(async move {
        loop {
            let ev = match events.recv().await {
                Ok(ev) => ev,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(events = n, "app: missed lifecycle events");
                    continue;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            let Some(name) = ev.key.strip_prefix(&p) else {
                continue;
            };
            let (app_name, name) = (a.config().live_app.clone(), name.to_string());
            match ev.kind {
                LiveEventKind::Publish => match a.stream_started(&app_name, &name).await {
                    Ok(Some(id)) => s.set(&ev.key, Some(id)),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(stream = %ev.key, error = %e, "app: live session not started");
                    }
                },
                LiveEventKind::Unpublish => match a.stream_ended(&app_name, &name).await {
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(stream = %ev.key, error = %e, "app: live session not ended");
                    }
                },
                _ => {}
            }
        }
    });
    let a = app.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&live.streams_json()) else {
                continue;
            };
            let streams = v["streams"].as_array().cloned().unwrap_or_default();
            if let Err(e) = a.streams_report(&streams).await {
                tracing::debug!(error = %e, "app: stream stats not stored");
            }
        }
    });
    sessions
}

/// The live session open for each stream key (`live/<slug>`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Sessions(Arc<Mutex<HashMap<String, String>>>);

impl Sessions {
    fn set(&self, key: &str, id: Option<String>) {
        let mut m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match id {
            Some(id) => {
                m.insert(key.to_string(), id);
            }
            None => {
                m.remove(key);
            }
        }
    }

    /// The session of `key`, forgotten.
    pub(crate) fn take(&self, key: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key)
    }
}

/// The app role on its own listener (the `app-server` binary).
pub struct AppServer {
    listener: tokio::net::TcpListener,
    role: AppRole,
    metrics: Metrics,
    trusted: videopick_live::proxy::TrustedProxies,
    header_timeout: Duration,
}

impl std::fmt::Debug for AppServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppServer")
            .field("addr", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl AppServer {
    /// Open the platform and bind `config.listen`.
    pub async fn bind(config: AppConfig) -> Result<AppServer, Error> {
        AppServer::bind_with(config, Metrics::new()).await
    }

    /// [`AppServer::bind`], registering its metrics in `metrics`.
    pub async fn bind_with(config: AppConfig, metrics: Metrics) -> Result<AppServer, Error> {
        let trusted = crate::config::trusted_proxies(&config.trusted_proxies)?;
        metrics.allow_from(crate::config::trusted_proxies(&config.metrics_allow)?);
        let role = AppRole::open(&config, &config.data, None, None).await?;
        if !config.media_api.is_empty() {
            // The media server on another machine: key rotations end its publishes,
            // deleted videos' jobs and files go there.
            let client = HookClient::new(HookConfig::default())?;
            role.app().set_media(Arc::new(crate::remote::HttpMedia::new(
                client,
                &config.media_api,
                config.media_token.clone(),
            )));
        }
        if !config.jobs_db.is_empty() {
            // The media servers' shared job queue: videos follow their jobs from here.
            let queue = videopick_transcode::queue::PgQueue::connect(
                &config.jobs_db,
                videopick_transcode::queue::Backoff::default(),
            )
            .await
            .map_err(|e| format!("--jobs-db: {e}"))?;
            follow_jobs(
                role.app(),
                videopick_transcode::queue::AnyQueue::Pg(queue),
                Duration::from_secs(2),
            );
        }
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        tracing::info!(addr = %listener.local_addr()?, "app role listening");
        Ok(AppServer {
            listener,
            role,
            metrics,
            trusted,
            header_timeout: Duration::from_secs(config.header_timeout_secs.max(1)),
        })
    }

    /// The listener's address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The platform.
    pub fn app(&self) -> &App {
        self.role.app()
    }

    /// Serve until `shutdown` completes, then drain and return.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send) {
        let (role, metrics) = (self.role, self.metrics);
        serve(
            self.listener,
            move |req, peer| {
                let (role, metrics) = (role.clone(), metrics.clone());
                async move {
                    let started = std::time::Instant::now();
                    let path = req.uri().path().to_string();
                    let resp = match (req.method(), path.as_str()) {
                        (&hyper::Method::GET, "/metrics") => metrics.answer(peer.ip()),
                        (&hyper::Method::GET, "/healthz" | "/readyz") => {
                            respond(StatusCode::OK, "text/plain", "ok\n")
                        }
                        (_, p) if AppRole::owns(p) => role.handle(req, peer).await,
                        _ => match role.web() {
                            Some(web) => web.serve(&req).await,
                            None => None,
                        }
                        .unwrap_or_else(|| {
                            respond(StatusCode::NOT_FOUND, "text/plain", "not found\n")
                        }),
                    };
                    metrics.observe_http(
                        "app",
                        crate::metrics::app_route(&path),
                        resp.status().as_u16(),
                        started.elapsed(),
                    );
                    resp
                }
            },
            crate::http::Shortcuts::default(),
            crate::http::ServeOptions {
                max_read: 64 * 1024,
                header_timeout: self.header_timeout,
                trusted: self.trusted,
                drain: Duration::from_secs(5),
                tls: None,
            },
            shutdown,
        )
        .await;
        tracing::info!("app role stopped");
    }
}

/// A closed recording of a channel's stream becomes a video (processed by `job`).
pub(crate) async fn recording_closed(
    app: &App,
    sessions: &Sessions,
    ev: &videopick_live::recorder::RecordingEvent,
    job: Option<videopick_transcode::queue::JobId>,
) {
    let closed = videopick_app::videos::ClosedRecording {
        stream: ev.stream.clone(),
        id: ev.id.clone(),
        duration_ms: i64::try_from(ev.duration.as_millis()).ok(),
        job: job.map(|j| j.to_string()),
        session: sessions.take(&ev.stream),
    };
    if let Err(e) = app.recording_finished(&closed).await {
        tracing::warn!(recording = %ev.id, error = %e, "app: recording not made a video");
    }
}

/// The media side in the same process: the hub, the job queue, the storage.
pub(crate) struct InProcessMedia {
    hub: Hub,
    jobs: Option<crate::jobs::Jobs>,
    storage: videopick_storage::Storage,
}

impl InProcessMedia {
    pub(crate) fn new(
        hub: Hub,
        jobs: Option<crate::jobs::Jobs>,
        storage: videopick_storage::Storage,
    ) -> InProcessMedia {
        InProcessMedia { hub, jobs, storage }
    }
}

impl videopick_app::MediaControl for InProcessMedia {
    fn end_publish<'a>(&'a self, app: &'a str, name: &'a str) -> videopick_app::BoxFuture<'a, ()> {
        Box::pin(async move {
            if self.hub.kick(&format!("{app}/{name}")) {
                tracing::info!(stream = %format!("{app}/{name}"), "publish ended: its key was rotated");
            }
        })
    }

    fn cancel_job<'a>(&'a self, job_id: &'a str) -> videopick_app::BoxFuture<'a, ()> {
        Box::pin(async move {
            use videopick_transcode::queue::JobQueue as _;
            let (Some(jobs), Ok(id)) = (&self.jobs, job_id.parse()) else {
                return;
            };
            if let Err(e) = jobs.queue().cancel(id).await {
                tracing::warn!(job = job_id, error = %e, "job not cancelled");
            }
        })
    }

    fn remove_video_files<'a>(
        &'a self,
        video_id: &'a str,
        media_id: Option<&'a str>,
        _job_id: Option<&'a str>,
    ) -> videopick_app::BoxFuture<'a, ()> {
        Box::pin(async move {
            let Some(media) = media_id else { return };
            let removed = crate::remote::remove_media(&self.storage, media).await;
            tracing::info!(
                video = video_id,
                directories = removed,
                "video files removed"
            );
        })
    }
}

/// Follow the jobs of videos being processed (every `every`): progress, then ready with
/// what the job made (renditions, poster, storyboard, playlist), or failed with why. A
/// recording's remux job hands over to the ladder job it queued. Works the same with the
/// embedded queue in process and with the PostgreSQL queue an app-server shares with the
/// media servers (`--jobs-db`).
pub(crate) fn follow_jobs(app: &App, queue: videopick_transcode::queue::AnyQueue, every: Duration) {
    let app = app.clone();
    tokio::spawn(async move {
        use videopick_transcode::queue::{JobQueue as _, JobState};
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let ids = match app.processing_jobs().await {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::debug!(error = %e, "app: processing videos not read");
                    continue;
                }
            };
            for id in ids {
                let Ok(n) = id.parse() else { continue };
                let Ok(Some(job)) = queue.get(n).await else {
                    continue;
                };
                let done = match job.state {
                    JobState::Queued | JobState::Running => {
                        #[allow(clippy::cast_possible_truncation)] // 0–100
                        let pct = job.progress.clamp(0.0, 100.0) as i64;
                        app.job_progress(&id, pct).await
                    }
                    JobState::Succeeded => {
                        let r = job.result.clone().unwrap_or_default();
                        if let Some(next) = r.get("ladder_job").and_then(serde_json::Value::as_i64)
                        {
                            app.hand_over_job(&id, &next.to_string()).await
                        } else {
                            app.job_finished(&id, &processed(&r, job.payload.get("video_id")))
                                .await
                        }
                    }
                    JobState::Failed => {
                        let why = job.last_error.as_deref().unwrap_or("processing failed");
                        // ffmpeg's errors name server paths: keep the last line's gist.
                        let why = why.rsplit(['/', '\n']).next().unwrap_or(why);
                        app.job_failed(&id, why).await
                    }
                    JobState::Cancelled => app.job_failed(&id, "processing was cancelled").await,
                };
                if let Err(e) = done {
                    tracing::debug!(job = %id, error = %e, "app: video state not updated");
                }
            }
        }
    });
}

/// What the app shows of a finished job's result (public URLs only).
fn processed(
    r: &serde_json::Value,
    video: Option<&serde_json::Value>,
) -> videopick_app::videos::Processed {
    use videopick_app::videos::{Processed, Rendition};
    let video = video
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let master = r.get("master").and_then(serde_json::Value::as_str);
    let renditions = r
        .get("rungs")
        .and_then(serde_json::Value::as_array)
        .map(|rungs| {
            rungs
                .iter()
                .map(|x| Rendition {
                    name: x["name"].as_str().unwrap_or_default().to_string(),
                    width: u32::try_from(x["width"].as_u64().unwrap_or(0)).unwrap_or(0),
                    height: u32::try_from(x["height"].as_u64().unwrap_or(0)).unwrap_or(0),
                    bitrate_kbps: u32::try_from(x["bitrate"].as_u64().unwrap_or(0) / 1000)
                        .unwrap_or(0),
                })
                .collect()
        })
        .unwrap_or_default();
    let ladder = master.is_some();
    Processed {
        duration_ms: r.get("duration_ms").and_then(serde_json::Value::as_i64),
        renditions,
        poster: ladder.then(|| format!("/vod/{video}/poster.jpg")),
        storyboard: ladder.then(|| format!("/vod/{video}/storyboard.vtt")),
        playlist: master
            .map(str::to_string)
            .or_else(|| r.get("mp4").map(|_| format!("/vod/{video}/video.mp4"))),
    }
}

/// Whether the request may fetch `/vod/<media>/…` or `/recordings/<media>/…` (a private
/// video's files only for its owner and admins). `None`: allowed; `Some`: the refusal to answer.
pub(crate) async fn vod_access<B>(app: &App, req: &Request<B>) -> Option<HttpResponse> {
    let path = req.uri().path();
    let rest = path
        .strip_prefix("/vod/")
        .or_else(|| path.strip_prefix("/recordings/"))?;
    let media = rest.split('/').next().unwrap_or_default();
    let user =
        match videopick_app::api::session_from_headers(app, req.method(), req.headers()).await {
            Ok((u, _)) => u,
            Err(_) => None,
        };
    match app.may_fetch_media(user.as_ref(), media).await {
        Ok(true) => None,
        Ok(false) => Some(respond(StatusCode::NOT_FOUND, "text/plain", "not found\n")),
        Err(e) => Some(respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            format!("{e}\n"),
        )),
    }
}
