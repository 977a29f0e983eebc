//! The media server role: RTMP ingest/play, HTTP-FLV, stream stats, storage housekeeping
//! and metrics, wired from the crates. Used by `media-server` and `videopick`.

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

use crate::Housekeeper;
use crate::hls::HlsService;
use crate::http::{respond, serve};
use crate::live::LiveHttp;

/// Command-line options of the media server role (each also read from the environment).
#[derive(Debug, Clone, clap::Args)]
#[allow(clippy::struct_excessive_bools)] // on/off command-line flags
pub struct MediaArgs {
    /// Storage root (production: /mnt/storage).
    #[arg(long, env = "VIDEOPICK_STORAGE", default_value = "./data")]
    pub storage: std::path::PathBuf,
    /// RTMP listen address (ingest and play).
    #[arg(long, env = "VIDEOPICK_RTMP", default_value = "127.0.0.1:1935")]
    pub rtmp: SocketAddr,
    /// HTTP listen address (HTTP-FLV, API, /metrics).
    #[arg(long, env = "VIDEOPICK_HTTP", default_value = "127.0.0.1:8000")]
    pub http: SocketAddr,
    /// Viewers' writes are batched: at most one write per this many milliseconds (RTMP and
    /// HTTP-FLV). Lower is less delay, higher is less CPU per viewer.
    #[arg(long, env = "VIDEOPICK_WRITE_INTERVAL_MS", default_value_t = 20)]
    pub write_interval_ms: u64,
    /// Keep the last GOP for new viewers (instant start).
    #[arg(long, env = "VIDEOPICK_GOP_CACHE", default_value_t = true, action = clap::ArgAction::Set)]
    pub gop_cache: bool,
    /// Seconds viewers stay attached waiting for a publisher to come back.
    #[arg(long, env = "VIDEOPICK_REPUBLISH_GRACE_SECS", default_value_t = 10)]
    pub republish_grace_secs: u64,
    /// Bytes always left free on the storage file system by space reservations.
    #[arg(long, env = "VIDEOPICK_MIN_FREE_BYTES", default_value_t = 1 << 30)]
    pub min_free_bytes: u64,
    /// Seconds after which an abandoned entry in tmp/ is swept.
    #[arg(long, env = "VIDEOPICK_TMP_TTL_SECS", default_value_t = 86_400)]
    pub tmp_ttl_secs: u64,
    /// Remove recordings older than this many days (unset: keep forever).
    #[arg(long, env = "VIDEOPICK_RECORDINGS_MAX_AGE_DAYS")]
    pub recordings_max_age_days: Option<u64>,
    /// Remove the oldest recordings beyond this many bytes in total (unset: no limit).
    #[arg(long, env = "VIDEOPICK_RECORDINGS_MAX_BYTES")]
    pub recordings_max_bytes: Option<u64>,
    /// Seconds between storage housekeeping passes.
    #[arg(long, env = "VIDEOPICK_HOUSEKEEPING_SECS", default_value_t = 60)]
    pub housekeeping_secs: u64,
    /// Key file: publishing `app/stream` needs `?key=<secret>` as listed (`app/stream secret`
    /// per line).
    #[arg(long, env = "VIDEOPICK_PUBLISH_KEYS")]
    pub publish_keys: Option<std::path::PathBuf>,
    /// Shared secret for signed keys: publishing needs `?sign=<expiry>-<hmac-sha256 hex of
    /// "/app/stream-expiry">`.
    #[arg(long, env = "VIDEOPICK_SIGN_SECRET", hide_env_values = true)]
    pub sign_secret: Option<String>,
    /// With --sign-secret: playing needs a signature too.
    #[arg(long, env = "VIDEOPICK_SIGN_PLAY")]
    pub sign_play: bool,
    /// HTTP hook: each publish and play is POSTed as JSON to this http:// URL; a 2xx answer
    /// allows it.
    #[arg(long, env = "VIDEOPICK_AUTH_HOOK")]
    pub auth_hook: Option<String>,
    /// Allow every publish and play even on public listeners (only behind another gate).
    #[arg(long, env = "VIDEOPICK_ALLOW_ALL")]
    pub allow_all: bool,
    /// Lifecycle events (publish, unpublish, play, stop) are POSTed as JSON to this http://
    /// URL, with retries.
    #[arg(long, env = "VIDEOPICK_EVENT_HOOK")]
    pub event_hook: Option<String>,
    /// Bearer token that guards `DELETE /api/streams/<app>/<stream>` (kick a publisher).
    #[arg(long, env = "VIDEOPICK_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// Seconds a new connection has for the RTMP handshake and connect.
    #[arg(long, env = "VIDEOPICK_HANDSHAKE_TIMEOUT_SECS", default_value_t = 10)]
    pub handshake_timeout_secs: u64,
    /// Serve live HLS at `/<app>/<stream>.m3u8`.
    #[arg(long, env = "VIDEOPICK_HLS", default_value_t = true, action = clap::ArgAction::Set)]
    pub hls: bool,
    /// Apps with live HLS, comma-separated (default: every app).
    #[arg(long, env = "VIDEOPICK_HLS_APPS", value_delimiter = ',')]
    pub hls_apps: Option<Vec<String>>,
    /// Target HLS segment duration in milliseconds (segments are cut at key frames).
    #[arg(long, env = "VIDEOPICK_HLS_SEGMENT_MS", default_value_t = 2000)]
    pub hls_segment_ms: u64,
    /// Segments listed in the live HLS playlist.
    #[arg(long, env = "VIDEOPICK_HLS_WINDOW", default_value_t = 6)]
    pub hls_window: usize,
    /// Apps whose every publish is recorded to storage (`*` for all), comma-separated;
    /// `?record=1` on the publish URL or an auth-hook answer `{"record": true}` records
    /// others, `?record=0` opts out.
    #[arg(long, env = "VIDEOPICK_RECORD_APPS", value_delimiter = ',')]
    pub record_apps: Vec<String>,
    /// Also write each recording as `stream.flv` beside its HLS segments.
    #[arg(long, env = "VIDEOPICK_RECORD_FLV")]
    pub record_flv: bool,
    /// Largest tus upload accepted at `/files/` (bytes).
    #[arg(long, env = "VIDEOPICK_TUS_MAX_SIZE", default_value_t = 64 << 30)]
    pub tus_max_size: u64,
    /// Hours an unfinished tus upload lives after its last write.
    #[arg(long, env = "VIDEOPICK_TUS_EXPIRATION_HOURS", default_value_t = 24)]
    pub tus_expiration_hours: u64,
    /// Upload hook: every tus request (authorize), each new upload (pre-create) and each
    /// finished or terminated one are POSTed as JSON to this http:// URL; a non-2xx answer
    /// to the first two is relayed to the client.
    #[arg(long, env = "VIDEOPICK_UPLOAD_HOOK")]
    pub upload_hook: Option<String>,
    /// Largest read from an HTTP connection, in KiB (8–1024): request bodies (uploads)
    /// arrive in frames up to this size. 32 keeps an active upload near 210 KiB of server
    /// memory; 64 uploads ~15 % faster for twice the memory.
    #[arg(long, env = "VIDEOPICK_HTTP_READ_KIB", default_value_t = 32,
          value_parser = clap::value_parser!(u16).range(8..=1024))]
    pub http_read_kib: u16,
    /// Transcoding.
    #[command(flatten)]
    pub jobs: crate::jobs::JobArgs,
}

impl MediaArgs {
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
    ) -> Result<Arc<dyn Authorize>, Box<dyn std::error::Error>> {
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
    fn authorizer(
        &self,
        hooks: &HookClient,
    ) -> Result<Option<Arc<dyn Authorize>>, Box<dyn std::error::Error>> {
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
            all.push(Arc::new(HttpHook::new(url.clone(), hooks.clone())));
        }
        Ok(match all.len() {
            0 if self.allow_all => Some(Arc::new(AllowAll)),
            0 => None,
            1 => all.pop(),
            _ => Some(Arc::new(AllOf(all))),
        })
    }
}

/// Sweep the hub every second: this also ends streams (closing their recordings) once
/// their grace period passed.
fn spawn_hub_sweeper(hub: &Hub) {
    let sweeper = hub.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            sweeper.sweep(std::time::Instant::now());
        }
    });
}

/// Run the media server until Ctrl-C or SIGTERM; `name` prefixes log lines.
pub async fn run(name: &str, args: MediaArgs) -> Result<(), Box<dyn std::error::Error>> {
    let hooks = HookClient::new(HookConfig::default())?;
    let auth = args.authorization(&hooks)?;
    let (storage, keeper) = open_storage(&args)?;

    let hub = Hub::new(args.hub_config());
    let write_interval = Duration::from_millis(args.write_interval_ms);
    let rtmp = RtmpServer::bind(
        args.rtmp,
        hub.clone(),
        auth,
        NetConfig::default()
            .write_interval(write_interval)
            .handshake_timeout(Duration::from_secs(args.handshake_timeout_secs)),
    )
    .await?;
    let live = LiveHttp::new(
        hub.clone(),
        rtmp.stats(),
        write_interval,
        args.api_token.clone(),
    );
    let live_takeover = live.clone();
    let jobs = crate::jobs::Jobs::start(&args.jobs, &storage, args.api_token.clone()).await?;
    let hls = start_hls(name, &args, &hub, &storage, jobs.as_ref(), &hooks);
    let tus = start_tus(&args, &storage, jobs.as_ref(), &hooks);
    if let Some(url) = &args.event_hook {
        spawn_event_webhook(&hub, hooks.clone(), url.clone());
    }
    let http = tokio::net::TcpListener::bind(args.http).await?;
    println!("{name}: storage {}", storage.root().display());
    println!("{name}: rtmp on rtmp://{}", rtmp.local_addr()?);
    println!("{name}: listening on http://{}", http.local_addr()?);

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut rtmp_stop = stop_rx.clone();
    let rtmp_task = tokio::spawn(rtmp.serve(
        async move {
            let _ = rtmp_stop.changed().await;
        },
        Duration::from_secs(3),
    ));
    spawn_hub_sweeper(&hub);

    let handler = move |req: hyper::Request<hyper::body::Incoming>, peer: SocketAddr| {
        let sync = live
            .route(&req, peer)
            .or_else(|| match (req.method(), req.uri().path()) {
                (&hyper::Method::GET, "/metrics") => {
                    let mut text = keeper.render_metrics();
                    text.push_str(&live.render_metrics());
                    text.push_str(&tus.render_metrics());
                    Some(respond(
                        StatusCode::OK,
                        "text/plain; version=0.0.4; charset=utf-8",
                        text,
                    ))
                }
                (&hyper::Method::GET, "/healthz") => {
                    Some(respond(StatusCode::OK, "text/plain", "ok\n"))
                }
                _ => None,
            });
        let hls = hls.clone();
        let tus = tus.clone();
        let jobs = jobs.clone();
        async move {
            if let Some(r) = sync {
                return r;
            }
            if tus.owns(req.uri().path()) {
                return tus.handle(req).await;
            }
            if let Some(jobs) = &jobs
                && let Some(r) = jobs.route(&req).await
            {
                return r;
            }
            match hls.route(&req).await {
                Some(r) => r,
                None => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
            }
        }
    };
    let mut http_stop = stop_rx;
    let takeover: Arc<dyn crate::http::Takeover> = Arc::new(live_takeover);
    let http_task = tokio::spawn(serve(
        http,
        handler,
        Some(takeover),
        usize::from(args.http_read_kib) * 1024,
        async move {
            let _ = http_stop.changed().await;
        },
    ));
    shutdown_signal().await;
    let _ = stop_tx.send(true);
    let _ = rtmp_task.await;
    let _ = http_task.await;
    println!("{name}: shut down");
    Ok(())
}

/// Open the storage root and start its housekeeping (tmp sweep, recording retention).
fn open_storage(args: &MediaArgs) -> Result<(Storage, Housekeeper), Box<dyn std::error::Error>> {
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
    args: &MediaArgs,
    storage: &Storage,
    jobs: Option<&crate::jobs::Jobs>,
    hooks: &HookClient,
) -> TusService {
    let store = FileStore::new(storage.clone(), SyncPolicy::default());
    if let Some(jobs) = jobs {
        let (jobs, store) = (jobs.clone(), store.clone());
        tokio::spawn(async move {
            let n = jobs.queue_missed_uploads(&store).await;
            if n > 0 {
                println!("videopick: queued {n} finished uploads that had no transcoding job");
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
        ),
    );
    let sweeper = tus.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            match sweeper.sweep_expired().await {
                Ok(gone) if !gone.is_empty() => {
                    println!("videopick: removed {} expired uploads", gone.len());
                }
                Ok(_) => {}
                Err(e) => eprintln!("videopick: upload expiration sweep failed: {e}"),
            }
        }
    });
    tus
}

/// Close recordings a crash left open, then start live HLS and recording (and the
/// recording webhook, which also hears of the recovered ones).
fn start_hls(
    name: &str,
    args: &MediaArgs,
    hub: &Hub,
    storage: &Storage,
    jobs: Option<&crate::jobs::Jobs>,
    hooks: &HookClient,
) -> HlsService {
    let segment = Duration::from_millis(args.hls_segment_ms.max(100));
    let mut live = HlsConfig::default();
    live.apps.clone_from(&args.hls_apps);
    live.segment = segment;
    live.window = args.hls_window.max(1);
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
    if let Some(url) = &args.event_hook {
        recordings.spawn_webhook(hooks.clone(), url.clone());
    }
    // Closed recordings (the recovered ones too) become jobs.
    let mut closed = recordings.events();
    let jobs = jobs.cloned();
    tokio::spawn(async move {
        let Some(jobs) = jobs else { return };
        loop {
            match closed.recv().await {
                Ok(ev) => {
                    jobs.recording_finished(&ev.id, &ev.dir.join("index.m3u8"))
                        .await;
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    eprintln!(
                        "videopick: {n} closed recordings were not queued for transcoding (too many at once)"
                    );
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    for ev in recordings.recover() {
        println!(
            "{name}: closed recording {} left open by a crash ({} segments, {:.1} s)",
            ev.id,
            ev.segments,
            ev.duration.as_secs_f64()
        );
    }
    HlsService::new(storage.clone(), live.origin().clone())
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return ctrl_c.await.unwrap_or(());
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
