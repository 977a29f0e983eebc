//! The media role: RTMP ingest/play, HTTP-FLV, live HLS and recordings, tus uploads,
//! transcoding jobs and VOD files, stream stats, storage housekeeping and metrics.
//!
//! [`MediaServer::bind`] opens storage and both listeners (so their addresses are known,
//! even for port 0); [`MediaServer::run`] serves until the shutdown future completes, then
//! drains: publishers and players get a clean end, open recordings are closed to their
//! last complete segment, then it returns.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use videopick_hooks::{HookClient, HookConfig};
use videopick_live::auth::{AllOf, AllowAll, Authorize, HttpHook, SignedKeys, StaticKeys};
use videopick_live::events::spawn_event_webhook;
use videopick_live::hls::{HlsConfig, LiveHls};
use videopick_live::hub::{Hub, HubConfig};
use videopick_live::recorder::{RecorderConfig, Recordings};
use videopick_live::rtmp_server::{NetConfig, RtmpServer};
use videopick_storage::{RetentionPolicy, Storage, StorageOptions, SyncPolicy};
use videopick_tus::FileStore;
use videopick_tus::service::{TusConfig, TusService};

use crate::config::MediaConfig;
use crate::hls_http::HlsService;
use crate::housekeeping::Housekeeper;
use crate::http::{respond, serve};
use crate::metrics::Metrics;
use crate::streams::LiveHttp;

impl MediaConfig {
    fn hub_config(&self) -> HubConfig {
        let mut c = HubConfig::default();
        c.gop_cache = self.gop_cache;
        c.republish_grace = Duration::from_secs(self.republish_grace_secs);
        c
    }

    /// The authorization to use: the one chosen, or allow-all when every listener is on
    /// loopback; an error for public listeners without a choice.
    fn authorization(
        &self,
        hooks: &HookClient,
        platform: Option<&videopick_app::App>,
    ) -> Result<Arc<dyn Authorize>, Error> {
        // The API's writes (kick a publisher, cancel or retry jobs) need a token on a
        // listener others can reach.
        if !self.http.ip().is_loopback() && self.api_token.as_deref().is_none_or(str::is_empty) {
            return Err(format!(
                "--http {} is not a loopback address: set --api-token (it guards kicking publishers and the jobs API)",
                self.http
            )
            .into());
        }
        if let Some(app) = platform {
            // Channels' stream keys guard the live app; the flags decide the others
            // (anyone, when every listener is on loopback; nobody else otherwise).
            let loopback = self.rtmp.ip().is_loopback() && self.http.ip().is_loopback();
            let others = match self.authorizer(hooks)? {
                Some(a) => Some(a),
                None if loopback => Some(Arc::new(AllowAll) as Arc<dyn Authorize>),
                None => None,
            };
            return Ok(Arc::new(crate::app::ChannelKeys::new(app.clone(), others)));
        }
        if let Some(a) = self.authorizer(hooks)? {
            return Ok(a);
        }
        for (what, addr) in [("--rtmp", self.rtmp), ("--http", self.http)] {
            if !addr.ip().is_loopback() {
                return Err(format!(
                    "{what} {addr} is not a loopback address: choose who may publish and play (--publish-keys, --sign-secret, --auth-hook, or --allow-all)"
                )
                .into());
            }
        }
        Ok(Arc::new(AllowAll))
    }

    /// The authorization the flags ask for; `None` when none was chosen.
    fn authorizer(&self, hooks: &HookClient) -> Result<Option<Arc<dyn Authorize>>, Error> {
        let mut all: Vec<Arc<dyn Authorize>> = Vec::new();
        if let Some(path) = &self.publish_keys {
            all.push(Arc::new(StaticKeys::load(path)?));
        }
        if let Some(secret) = &self.sign_secret {
            all.push(Arc::new(SignedKeys::new(
                secret.as_bytes().to_vec(),
                self.sign_play,
            )));
        }
        if let Some(url) = &self.auth_hook {
            all.push(Arc::new(
                HttpHook::new(url.clone(), hooks.clone()).secret_apps(self.key_apps.clone()),
            ));
        }
        Ok(match all.len() {
            0 if self.allow_all => Some(Arc::new(AllowAll)),
            0 => None,
            1 => all.pop(),
            _ => Some(Arc::new(AllOf(all))),
        })
    }
}

/// Any error of the roles (start-up: storage, listeners, configuration).
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A bound media role, ready to [`MediaServer::run`].
pub struct MediaServer {
    rtmp: RtmpServer,
    http: tokio::net::TcpListener,
    hub: Hub,
    handler: Handler,
    takeover: Arc<dyn crate::http::Takeover>,
    plain: Arc<dyn crate::plain::PlainPath>,
    body: Arc<dyn crate::http::BodyTaker>,
    read_max: usize,
    header_timeout: Duration,
    trusted: videopick_live::proxy::TrustedProxies,
    tls: Option<Arc<rustls::ServerConfig>>,
    storage: Storage,
    recordings: Recordings,
    platform: Option<videopick_app::App>,
}

impl std::fmt::Debug for MediaServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaServer")
            .field("rtmp", &self.rtmp.local_addr().ok())
            .field("http", &self.http.local_addr().ok())
            .finish_non_exhaustive()
    }
}

type Handler = Arc<
    dyn Fn(
            hyper::Request<hyper::body::Incoming>,
            SocketAddr,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = crate::http::HttpResponse> + Send>>
        + Send
        + Sync,
>;

/// Live HLS on the plain path: the requests the handler would give to [`HlsService`] — no
/// other route claims them first — counted in the same metrics.
struct PlainHls {
    hls: HlsService,
    tus: videopick_tus::service::TusService,
    metrics: crate::metrics::Metrics,
}

impl crate::plain::PlainPath for PlainHls {
    fn answer(&self, path: &str, query: &str) -> Option<crate::plain::PlainAnswer> {
        // The handler's routes before HLS: the app API, tus, thumbnails, the media API,
        // VOD and recordings (both access-checked).
        let earlier = ["/api/", "/vod/", "/thumbnails/", "/recordings/"];
        if self.tus.owns(path)
            || crate::app::AppRole::owns(path)
            || earlier.iter().any(|p| path.starts_with(p))
        {
            return None;
        }
        let started = std::time::Instant::now();
        let route = crate::metrics::media_route(path);
        let answer = self.hls.plain(path, query)?;
        let metrics = self.metrics.clone();
        Some(Box::pin(async move {
            let resp = answer.await;
            metrics.observe_http("media", route, resp.status.as_u16(), started.elapsed());
            resp
        }))
    }
}

impl MediaServer {
    /// Open the storage, the job queue and both listeners, and start the background work
    /// (housekeeping, hub sweep, workers, hooks). Fails on a configuration that would be
    /// unsafe (public listeners without authorization or API token) or unusable.
    pub async fn bind(config: MediaConfig) -> Result<MediaServer, Error> {
        MediaServer::bind_with(config, Metrics::new()).await
    }

    /// [`MediaServer::bind`], registering its metrics in `metrics` (shared with the
    /// process's other roles: each role's `/metrics` shows them all).
    pub async fn bind_with(config: MediaConfig, metrics: Metrics) -> Result<MediaServer, Error> {
        MediaServer::bind_inner(config, metrics, None).await
    }

    /// [`MediaServer::bind_with`] plus the app role on the same HTTP listener, wired in
    /// process (the all-in-one): the platform API at `/api/v1/` (its SQLite database under
    /// the storage root unless `app.db` names one), channels' stream keys decide publishes
    /// to the live app, lifecycle events and viewer counts feed live sessions, closed
    /// recordings become videos. `chat_secret` lets the API mint chat tokens.
    pub async fn bind_platform(
        config: MediaConfig,
        metrics: Metrics,
        app: &crate::config::AppConfig,
        chat_secret: Option<&str>,
    ) -> Result<MediaServer, Error> {
        let role =
            crate::app::AppRole::open(app, &config.storage, chat_secret, Some(&config)).await?;
        MediaServer::bind_inner(config, metrics, Some(role)).await
    }

    /// The platform, when bound with [`MediaServer::bind_platform`].
    pub fn platform(&self) -> Option<&videopick_app::App> {
        self.platform.as_ref()
    }

    #[allow(clippy::too_many_lines)] // the start-up sequence, step by step
    async fn bind_inner(
        config: MediaConfig,
        metrics: Metrics,
        role: Option<crate::app::AppRole>,
    ) -> Result<MediaServer, Error> {
        if !(8..=1024).contains(&config.http_read_kib) {
            return Err(format!("http_read_kib is {}: use 8 to 1024", config.http_read_kib).into());
        }
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(crate::http::tls_config(cert, key)?),
            (None, None) => None,
            _ => return Err("tls_cert and tls_key go together".into()),
        };
        let mut hook_config = HookConfig::default();
        hook_config.signing_secret = config
            .hook_secret
            .as_ref()
            .filter(|s| !s.is_empty())
            .map(|s| s.as_bytes().to_vec());
        let mut hooks = HookClient::new(hook_config)?;
        metrics.register(|r| hooks = hooks.clone().with_metrics(r));
        let platform = role.as_ref().map(|r| r.app().clone());
        let auth = config.authorization(&hooks, platform.as_ref())?;
        let (storage, keeper) = open_storage(&config)?;

        let hub = Hub::new(config.hub_config());
        hub.spawn_sweeper(Duration::from_secs(1));
        let write_interval = Duration::from_millis(config.write_interval_ms);
        let trusted = crate::config::trusted_proxies(&config.trusted_proxies)?;
        metrics.allow_from(crate::config::trusted_proxies(&config.metrics_allow)?);
        let mut net = NetConfig::default()
            .write_interval(write_interval)
            .handshake_timeout(Duration::from_secs(config.handshake_timeout_secs));
        net.trusted_proxies = trusted.clone();
        net.proxy_protocol = config.proxy_protocol;
        let rtmp = RtmpServer::bind(config.rtmp, hub.clone(), auth, net).await?;
        if let Some(app) = &platform {
            app.set_rtmp_port(rtmp.local_addr()?.port());
        }
        let live = LiveHttp::new(
            hub.clone(),
            rtmp.stats(),
            write_interval,
            config.api_token.clone(),
        );
        let live_takeover = live.clone();
        let jobs =
            crate::jobs::Jobs::start(&config.jobs, &storage, config.api_token.clone(), &metrics)
                .await?;
        let sessions = platform.as_ref().map(|app| {
            app.set_media(Arc::new(crate::app::InProcessMedia::new(
                hub.clone(),
                jobs.clone(),
                storage.clone(),
            )));
            if let Some(jobs) = &jobs {
                crate::app::follow_jobs(app, jobs.queue().clone(), Duration::from_secs(2));
            }
            crate::thumbnails::spawn(
                app.clone(),
                hub.clone(),
                storage.clone(),
                Duration::from_secs(config.thumbnail_secs.max(1)),
                2,
            );
            crate::app::connect_hub(app, &hub, live.clone(), Duration::from_secs(5))
        });
        let wired = platform.clone().zip(sessions);
        let (hls, recordings) = start_hls(&config, &hub, &storage, jobs.as_ref(), &hooks, wired);
        let tus = start_tus(&config, &storage, jobs.as_ref(), &hooks, platform.clone());
        if let Some(url) = &config.event_hook {
            spawn_event_webhook(&hub, hooks.clone(), url.clone());
            spawn_stats_webhook(live.clone(), hooks.clone(), url.clone());
        }
        metrics.register_collector(live.clone());
        metrics.register_collector(keeper);
        metrics.register_collector(crate::metrics::TusCollector(tus.clone()));
        let http = tokio::net::TcpListener::bind(config.http).await?;
        tracing::info!(storage = %storage.root().display(), rtmp = %rtmp.local_addr()?, http = %http.local_addr()?, "media role listening");

        let thumbs = storage.clone();
        let api_token: Option<Arc<str>> = config.api_token.as_deref().map(Arc::from);
        let access = match (&role, &config.access_hook) {
            (None, Some(url)) if !url.is_empty() => Some(Arc::new(
                crate::remote::RemoteAccess::new(hooks.clone(), url.clone()),
            )),
            _ => None,
        };
        // Live HLS without hyper (see `crate::plain`); live streams have no access check
        // (the access hook guards VOD and recordings, which stay on the handler).
        let plain: Arc<dyn crate::plain::PlainPath> = Arc::new(PlainHls {
            hls: hls.clone(),
            tus: tus.clone(),
            metrics: metrics.clone(),
        });
        // tus PATCH bodies straight from the socket (see `crate::uploads::TusDirect`).
        let body: Arc<dyn crate::http::BodyTaker> = Arc::new(crate::uploads::TusDirect {
            tus: tus.clone(),
            metrics: metrics.clone(),
        });
        let handler: Handler = Arc::new(
            move |req: hyper::Request<hyper::body::Incoming>, peer: SocketAddr| {
                let started = std::time::Instant::now();
                let route = crate::metrics::media_route(req.uri().path());
                let sync =
                    live.route(&req, peer)
                        .or_else(|| match (req.method(), req.uri().path()) {
                            (&hyper::Method::GET, "/metrics") => Some(metrics.answer(peer.ip())),
                            (&hyper::Method::GET, "/healthz" | "/readyz") => {
                                Some(respond(StatusCode::OK, "text/plain", "ok\n"))
                            }
                            _ => None,
                        });
                let (hls, tus, jobs, metrics, role, storage, api_token, access) = (
                    hls.clone(),
                    tus.clone(),
                    jobs.clone(),
                    metrics.clone(),
                    role.clone(),
                    thumbs.clone(),
                    api_token.clone(),
                    access.clone(),
                );
                Box::pin(async move {
                    let resp = async {
                        if let Some(r) = sync {
                            return r;
                        }
                        if let Some(role) = &role
                            && crate::app::AppRole::owns(req.uri().path())
                        {
                            return role.handle(req, peer).await;
                        }
                        if tus.owns(req.uri().path()) {
                            return tus.handle(req).await;
                        }
                        if role.is_some()
                            && let Some(r) =
                                crate::thumbnails::serve(&storage, req.uri().path()).await
                        {
                            return r;
                        }
                        if let Some(r) =
                            crate::remote::media_api(&storage, api_token.as_deref(), &req).await
                        {
                            return r;
                        }
                        if let Some(role) = &role
                            && (req.uri().path().starts_with("/vod/")
                                || req.uri().path().starts_with("/recordings/"))
                            && let Some(refused) = crate::app::vod_access(role.app(), &req).await
                        {
                            return refused;
                        }
                        if let Some(access) = &access
                            && let Some(refused) = access.check(&req).await
                        {
                            return refused;
                        }
                        if let Some(jobs) = &jobs
                            && let Some(r) = jobs.route(&req).await
                        {
                            return r;
                        }
                        if let Some(r) = hls.route(&req).await {
                            return r;
                        }
                        // Last: the web app's assets and page routes.
                        if let Some(web) = role.as_ref().and_then(|r| r.web())
                            && let Some(r) = web.serve(&req).await
                        {
                            return r;
                        }
                        respond(StatusCode::NOT_FOUND, "text/plain", "not found\n")
                    }
                    .await;
                    metrics.observe_http("media", route, resp.status().as_u16(), started.elapsed());
                    resp
                })
            },
        );
        Ok(MediaServer {
            rtmp,
            http,
            hub,
            handler,
            takeover: Arc::new(live_takeover),
            plain,
            body,
            read_max: usize::from(config.http_read_kib) * 1024,
            header_timeout: Duration::from_secs(config.http_header_timeout_secs.max(1)),
            trusted,
            tls,
            storage,
            recordings,
            platform,
        })
    }

    /// The RTMP listener's address.
    pub fn rtmp_addr(&self) -> std::io::Result<SocketAddr> {
        self.rtmp.local_addr()
    }

    /// The HTTP listener's address.
    pub fn http_addr(&self) -> std::io::Result<SocketAddr> {
        self.http.local_addr()
    }

    /// The stream hub (live streams, events).
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The storage.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Serve until `shutdown` completes, then drain (at most a few seconds) and return.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send) {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut rtmp_stop = stop_rx.clone();
        let rtmp_task = tokio::spawn(self.rtmp.serve(
            async move {
                let _ = rtmp_stop.changed().await;
            },
            Duration::from_secs(3),
        ));
        let mut http_stop = stop_rx;
        let handler = self.handler;
        let http_task = tokio::spawn(serve(
            self.http,
            move |req, peer| handler(req, peer),
            crate::http::Shortcuts {
                takeover: Some(self.takeover),
                plain: Some(self.plain),
                body: Some(self.body),
            },
            crate::http::ServeOptions {
                max_read: self.read_max,
                header_timeout: self.header_timeout,
                trusted: self.trusted,
                drain: Duration::from_secs(5),
                tls: self.tls,
            },
            async move {
                let _ = http_stop.changed().await;
            },
        ));
        shutdown.await;
        tracing::info!("media role draining");
        let _ = stop_tx.send(true);
        let _ = rtmp_task.await;
        let _ = http_task.await;
        // Streams whose publishers left end now: their recordings close.
        self.hub.end_all();
        if !self.recordings.drain(Duration::from_secs(10)).await {
            tracing::warn!("recordings still writing at exit: the next start closes them");
        }
        tracing::info!("media role stopped");
    }
}

/// Bind and run the media role until `shutdown` completes (see [`MediaServer`]).
pub async fn run(
    config: MediaConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), Error> {
    MediaServer::bind(config).await?.run(shutdown).await;
    Ok(())
}

/// Every 5 s while streams are live, `{"event": "stats", "streams": [...]}` (as
/// `/api/streams`) to the event webhook: viewers and health for an app on another machine.
fn spawn_stats_webhook(live: LiveHttp, hooks: HookClient, url: String) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Ok(mut v) = serde_json::from_str::<serde_json::Value>(&live.streams_json()) else {
                continue;
            };
            if v["streams"].as_array().is_none_or(Vec::is_empty) {
                continue;
            }
            v["event"] = "stats".into();
            if let Err(e) = hooks.post_json(&url, &v).await {
                tracing::debug!(error = %e, "stats webhook failed");
            }
        }
    });
}

/// Open the storage root and start its housekeeping (tmp sweep, recording retention).
fn open_storage(args: &MediaConfig) -> Result<(Storage, Housekeeper), Error> {
    let options = StorageOptions::default()
        .min_free_bytes(args.min_free_bytes)
        .tmp_ttl(Duration::from_secs(args.tmp_ttl_secs));
    let storage = Storage::open_with(&args.storage, options)?;
    let retention = RetentionPolicy {
        max_age: args
            .recordings_max_age_days
            .map(|d| Duration::from_secs(d * 86_400)),
        max_total_bytes: args.recordings_max_bytes,
    };
    let keeper = Housekeeper::new(storage.clone(), retention);
    tokio::spawn(
        keeper
            .clone()
            .run_every(Duration::from_secs(args.housekeeping_secs.max(1))),
    );
    Ok((storage, keeper))
}

/// The tus service at `/files/`, and its expiration sweeper.
fn start_tus(
    args: &MediaConfig,
    storage: &Storage,
    jobs: Option<&crate::jobs::Jobs>,
    hooks: &HookClient,
    platform: Option<videopick_app::App>,
) -> TusService {
    let store = FileStore::new(storage.clone(), SyncPolicy::default());
    if let Some(jobs) = jobs {
        let (jobs, store) = (jobs.clone(), store.clone());
        tokio::spawn(async move {
            let n = jobs.queue_missed_uploads(&store).await;
            if n > 0 {
                tracing::info!(
                    uploads = n,
                    "queued finished uploads that had no transcoding job"
                );
            }
        });
    }
    let tus = TusService::with_hooks(
        store,
        TusConfig {
            max_size: args.tus_max_size,
            expiration: Some(Duration::from_secs(args.tus_expiration_hours.max(1) * 3600)),
            ..TusConfig::default()
        },
        crate::uploads::hooks(
            hooks,
            args.upload_hook.clone(),
            args.event_hook.clone(),
            jobs.cloned(),
            platform.clone(),
        ),
    );
    let sweeper = tus.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            match sweeper.sweep_expired().await {
                Ok(gone) if !gone.is_empty() => {
                    tracing::info!(uploads = gone.len(), "removed expired uploads");
                    // Their videos never got their bytes: they go too.
                    if let Some(app) = &platform {
                        for id in &gone {
                            if let Err(e) = app.upload_gone(id.as_str()).await {
                                tracing::warn!(upload = %id.as_str(), error = %e, "app: expired upload's video not removed");
                            }
                        }
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "upload expiration sweep failed"),
            }
        }
    });
    tus
}

/// Close recordings a crash left open, then start live HLS and recording (and the
/// recording webhook, which also hears of the recovered ones).
fn start_hls(
    args: &MediaConfig,
    hub: &Hub,
    storage: &Storage,
    jobs: Option<&crate::jobs::Jobs>,
    hooks: &HookClient,
    platform: Option<(videopick_app::App, crate::app::Sessions)>,
) -> (HlsService, Recordings) {
    let segment = Duration::from_millis(args.hls_segment_ms.max(100));
    let mut live = HlsConfig::default();
    live.apps.clone_from(&args.hls_apps);
    live.segment = segment;
    live.window = args.hls_window.max(1);
    live.part_target =
        (args.hls_part_ms > 0).then(|| Duration::from_millis(args.hls_part_ms.clamp(50, 5000)));
    live.ts = args.hls_ts;
    let live = LiveHls::new(live);
    if args.hls {
        live.attach(hub);
    }
    let mut rec = RecorderConfig::default();
    rec.apps.clone_from(&args.record_apps);
    rec.flv = args.record_flv;
    rec.segment = segment;
    let recordings = Recordings::new(storage.clone(), rec);
    recordings.attach(hub);
    // Closed recordings (the recovered ones too) become jobs, and are told to the
    // platform in process or to the event webhook (with their job).
    let mut closed = recordings.events();
    let jobs = jobs.cloned();
    let webhook = args.event_hook.clone().map(|url| (hooks.clone(), url));
    tokio::spawn(async move {
        if jobs.is_none() && platform.is_none() && webhook.is_none() {
            return;
        }
        loop {
            match closed.recv().await {
                Ok(ev) => {
                    let job = match &jobs {
                        Some(jobs) => {
                            jobs.recording_finished(&ev.id, &ev.dir.join("index.m3u8"))
                                .await
                        }
                        None => None,
                    };
                    if let Some((app, sessions)) = &platform {
                        crate::app::recording_closed(app, sessions, &ev, job).await;
                    }
                    if let Some((client, url)) = &webhook {
                        let mut body = serde_json::to_value(
                            videopick_live::recorder::RecordingBody::from(&ev),
                        )
                        .unwrap_or_default();
                        body["job"] = job.map_or(serde_json::Value::Null, Into::into);
                        let (client, url) = (client.clone(), url.clone());
                        tokio::spawn(async move {
                            let _ = client.deliver(&url, &body).await;
                        });
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(
                        recordings = n,
                        "closed recordings were not queued for transcoding (too many at once)"
                    );
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    for ev in recordings.recover() {
        tracing::info!(
            recording = %ev.id,
            segments = ev.segments,
            seconds = ev.duration.as_secs_f64(),
            "closed a recording left open by a crash"
        );
    }
    (
        HlsService::new(storage.clone(), live.origin().clone()),
        recordings,
    )
}
