//! The clap side of the VideoPick binaries: flags (each also an environment variable and a
//! key of a `--config` TOML file) mapped onto `videopick-server`'s config structs, the one
//! log set-up, and the signal that stops a role. Precedence: flag > environment > file >
//! default.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;

use videopick_server::FileConfig;
use videopick_server::config::{ChatConfig, JobsConfig, MediaConfig};
use videopick_server::jobs::RecordingJobs;

/// Flags every binary has.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonFlags {
    /// TOML file with `[media]`, `[jobs]` and `[chat]` tables (keys are the flags' names
    /// with `_`); flags and environment variables override it.
    #[arg(
        long,
        env = "VIDEOPICK_CONFIG",
        help_heading = "Configuration and logs"
    )]
    pub config: Option<PathBuf>,
    /// Log lines as JSON objects (for log shippers) instead of text. Filter with RUST_LOG
    /// (default `info`).
    #[arg(long, env = "VIDEOPICK_LOG_FORMAT", value_parser = ["text", "json"], default_value = "text", help_heading = "Configuration and logs")]
    pub log_format: String,
}

impl CommonFlags {
    /// Set up logging, then read the config file (defaults without one).
    pub fn start(&self) -> Result<FileConfig, String> {
        init_logs(self.log_format == "json");
        match &self.config {
            Some(path) => FileConfig::load(path),
            None => Ok(FileConfig::default()),
        }
    }
}

/// The one log set-up: `tracing` events to stderr, filtered by `RUST_LOG` (default
/// `info`), as text or JSON lines.
pub fn init_logs(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return ctrl_c.await.unwrap_or(());
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("signal received: stopping");
}

/// The media role's flags (each also an environment variable and a `[media]` key).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MediaFlags {
    /// Storage root (production: /mnt/storage).
    /// (default: ./data)
    #[arg(
        long,
        env = "VIDEOPICK_STORAGE",
        help_heading = "Listeners and storage"
    )]
    pub storage: Option<PathBuf>,
    /// RTMP listen address (ingest and play).
    /// (default: 127.0.0.1:1935)
    #[arg(long, env = "VIDEOPICK_RTMP", help_heading = "Listeners and storage")]
    pub rtmp: Option<SocketAddr>,
    /// HTTP listen address (HTTP-FLV, API, /metrics).
    /// (default: 127.0.0.1:8000)
    #[arg(long, env = "VIDEOPICK_HTTP", help_heading = "Listeners and storage")]
    pub http: Option<SocketAddr>,
    /// Viewers' writes are batched: at most one write per this many milliseconds (RTMP and
    /// HTTP-FLV). Lower is less delay, higher is less CPU per viewer.
    /// (default: 20)
    #[arg(
        long,
        env = "VIDEOPICK_WRITE_INTERVAL_MS",
        help_heading = "Live streaming"
    )]
    pub write_interval_ms: Option<u64>,
    /// Keep the last GOP for new viewers (instant start).
    /// (default: true)
    #[arg(long, env = "VIDEOPICK_GOP_CACHE", help_heading = "Live streaming", num_args = 0..=1, default_missing_value = "true")]
    pub gop_cache: Option<bool>,
    /// Seconds viewers stay attached waiting for a publisher to come back.
    /// (default: 10)
    #[arg(
        long,
        env = "VIDEOPICK_REPUBLISH_GRACE_SECS",
        help_heading = "Live streaming"
    )]
    pub republish_grace_secs: Option<u64>,
    /// Bytes always left free on the storage file system by space reservations.
    /// (default: 1073741824)
    #[arg(
        long,
        env = "VIDEOPICK_MIN_FREE_BYTES",
        help_heading = "Storage housekeeping"
    )]
    pub min_free_bytes: Option<u64>,
    /// Seconds after which an abandoned entry in tmp/ is swept.
    /// (default: 86400)
    #[arg(
        long,
        env = "VIDEOPICK_TMP_TTL_SECS",
        help_heading = "Storage housekeeping"
    )]
    pub tmp_ttl_secs: Option<u64>,
    /// Remove recordings older than this many days (unset: keep forever).
    #[arg(
        long,
        env = "VIDEOPICK_RECORDINGS_MAX_AGE_DAYS",
        help_heading = "Storage housekeeping"
    )]
    pub recordings_max_age_days: Option<u64>,
    /// Remove the oldest recordings beyond this many bytes in total (unset: no limit).
    #[arg(
        long,
        env = "VIDEOPICK_RECORDINGS_MAX_BYTES",
        help_heading = "Storage housekeeping"
    )]
    pub recordings_max_bytes: Option<u64>,
    /// Seconds between storage housekeeping passes.
    /// (default: 60)
    #[arg(
        long,
        env = "VIDEOPICK_HOUSEKEEPING_SECS",
        help_heading = "Storage housekeeping"
    )]
    pub housekeeping_secs: Option<u64>,
    /// Key file: publishing `app/stream` needs `?key=<secret>` as listed (`app/stream secret`
    /// per line).
    #[arg(long, env = "VIDEOPICK_PUBLISH_KEYS", help_heading = "Access")]
    pub publish_keys: Option<PathBuf>,
    /// Shared secret for signed keys: publishing needs `?sign=<expiry>-<hmac-sha256 hex of
    /// "/app/stream-expiry">`.
    #[arg(
        long,
        env = "VIDEOPICK_SIGN_SECRET",
        hide_env_values = true,
        help_heading = "Access"
    )]
    pub sign_secret: Option<String>,
    /// With --sign-secret: playing needs a signature too.
    #[arg(long, env = "VIDEOPICK_SIGN_PLAY", help_heading = "Access", num_args = 0..=1, default_missing_value = "true")]
    pub sign_play: Option<bool>,
    /// HTTP hook: each publish and play is POSTed as JSON to this http(s):// URL; a 2xx answer
    /// allows it.
    #[arg(long, env = "VIDEOPICK_AUTH_HOOK", help_heading = "Access")]
    pub auth_hook: Option<String>,
    /// Allow every publish and play even on public listeners (only behind another gate).
    #[arg(long, env = "VIDEOPICK_ALLOW_ALL", help_heading = "Access", num_args = 0..=1, default_missing_value = "true")]
    pub allow_all: Option<bool>,
    /// Lifecycle events (publish, unpublish, play, stop) are POSTed as JSON to this http(s)://
    /// URL, with retries.
    #[arg(long, env = "VIDEOPICK_EVENT_HOOK", help_heading = "Hooks")]
    pub event_hook: Option<String>,
    /// Bearer token that guards `DELETE /api/streams/<app>/<stream>` (kick a publisher).
    #[arg(
        long,
        env = "VIDEOPICK_API_TOKEN",
        hide_env_values = true,
        help_heading = "Access"
    )]
    pub api_token: Option<String>,
    /// Seconds a new connection has for the RTMP handshake and connect.
    /// (default: 10)
    #[arg(
        long,
        env = "VIDEOPICK_HANDSHAKE_TIMEOUT_SECS",
        help_heading = "Live streaming"
    )]
    pub handshake_timeout_secs: Option<u64>,
    /// Serve live HLS at `/<app>/<stream>.m3u8`.
    /// (default: true)
    #[arg(long, env = "VIDEOPICK_HLS", help_heading = "Live streaming", num_args = 0..=1, default_missing_value = "true")]
    pub hls: Option<bool>,
    /// Apps with live HLS, comma-separated (default: every app).
    #[arg(
        long,
        env = "VIDEOPICK_HLS_APPS",
        value_delimiter = ',',
        help_heading = "Live streaming"
    )]
    pub hls_apps: Option<Vec<String>>,
    /// Target HLS segment duration in milliseconds (segments are cut at key frames).
    /// (default: 2000)
    #[arg(
        long,
        env = "VIDEOPICK_HLS_SEGMENT_MS",
        help_heading = "Live streaming"
    )]
    pub hls_segment_ms: Option<u64>,
    /// Segments listed in the live HLS playlist.
    /// (default: 6)
    #[arg(long, env = "VIDEOPICK_HLS_WINDOW", help_heading = "Live streaming")]
    pub hls_window: Option<usize>,
    /// Apps whose every publish is recorded to storage (`*` for all), comma-separated;
    /// `?record=1` on the publish URL or an auth-hook answer `{"record": true}` records
    /// others, `?record=0` opts out.
    #[arg(
        long,
        env = "VIDEOPICK_RECORD_APPS",
        value_delimiter = ',',
        help_heading = "Live streaming"
    )]
    pub record_apps: Option<Vec<String>>,
    /// Also write each recording as `stream.flv` beside its HLS segments.
    #[arg(long, env = "VIDEOPICK_RECORD_FLV", help_heading = "Live streaming", num_args = 0..=1, default_missing_value = "true")]
    pub record_flv: Option<bool>,
    /// Largest tus upload accepted at `/files/` (bytes).
    /// (default: 68719476736)
    #[arg(long, env = "VIDEOPICK_TUS_MAX_SIZE", help_heading = "Uploads")]
    pub tus_max_size: Option<u64>,
    /// Hours an unfinished tus upload lives after its last write.
    /// (default: 24)
    #[arg(long, env = "VIDEOPICK_TUS_EXPIRATION_HOURS", help_heading = "Uploads")]
    pub tus_expiration_hours: Option<u64>,
    /// Upload hook: every tus request (authorize), each new upload (pre-create) and each
    /// finished or terminated one are POSTed as JSON to this http(s):// URL; a non-2xx answer
    /// to the first two is relayed to the client.
    #[arg(long, env = "VIDEOPICK_UPLOAD_HOOK", help_heading = "Hooks")]
    pub upload_hook: Option<String>,
    /// Largest read from an HTTP connection, in KiB (8–1024): request bodies (uploads)
    /// arrive in frames up to this size. 32 keeps an active upload near 210 KiB of server
    /// memory; 64 uploads ~15 % faster for twice the memory.
    /// (default: 32)
    #[arg(long, env = "VIDEOPICK_HTTP_READ_KIB", value_parser = clap::value_parser!(u16).range(8..=1024), help_heading = "Listeners and storage")]
    pub http_read_kib: Option<u16>,
    /// Seconds an HTTP connection has to send a complete request head, from its opening or
    /// from its previous response when it idles on keep-alive. (default: 10)
    #[arg(
        long,
        env = "VIDEOPICK_HTTP_HEADER_TIMEOUT_SECS",
        help_heading = "Listeners and storage"
    )]
    pub http_header_timeout_secs: Option<u64>,
    /// Proxies (addresses or CIDR networks, comma-separated) whose X-Forwarded-For /
    /// Forwarded (HTTP) and PROXY protocol header (RTMP, with --proxy-protocol) name the
    /// real client.
    #[arg(
        long,
        env = "VIDEOPICK_TRUSTED_PROXIES",
        value_delimiter = ',',
        help_heading = "Access"
    )]
    pub trusted_proxies: Option<Vec<String>>,
    /// RTMP connections from trusted proxies start with a PROXY protocol header (v1 or v2).
    #[arg(long, env = "VIDEOPICK_PROXY_PROTOCOL", num_args = 0..=1, default_missing_value = "true", help_heading = "Access")]
    pub proxy_protocol: Option<bool>,
}

impl MediaFlags {
    /// Write the flags given (on the command line or in the environment) over `c`.
    pub fn apply(self, c: &mut MediaConfig) {
        if let Some(v) = self.storage {
            c.storage = v;
        }
        if let Some(v) = self.rtmp {
            c.rtmp = v;
        }
        if let Some(v) = self.http {
            c.http = v;
        }
        if let Some(v) = self.write_interval_ms {
            c.write_interval_ms = v;
        }
        if let Some(v) = self.gop_cache {
            c.gop_cache = v;
        }
        if let Some(v) = self.republish_grace_secs {
            c.republish_grace_secs = v;
        }
        if let Some(v) = self.min_free_bytes {
            c.min_free_bytes = v;
        }
        if let Some(v) = self.tmp_ttl_secs {
            c.tmp_ttl_secs = v;
        }
        if let Some(v) = self.recordings_max_age_days {
            c.recordings_max_age_days = Some(v);
        }
        if let Some(v) = self.recordings_max_bytes {
            c.recordings_max_bytes = Some(v);
        }
        if let Some(v) = self.housekeeping_secs {
            c.housekeeping_secs = v;
        }
        if let Some(v) = self.publish_keys {
            c.publish_keys = Some(v);
        }
        if let Some(v) = self.sign_secret {
            c.sign_secret = Some(v);
        }
        if let Some(v) = self.sign_play {
            c.sign_play = v;
        }
        if let Some(v) = self.auth_hook {
            c.auth_hook = Some(v);
        }
        if let Some(v) = self.allow_all {
            c.allow_all = v;
        }
        if let Some(v) = self.event_hook {
            c.event_hook = Some(v);
        }
        if let Some(v) = self.api_token {
            c.api_token = Some(v);
        }
        if let Some(v) = self.handshake_timeout_secs {
            c.handshake_timeout_secs = v;
        }
        if let Some(v) = self.hls {
            c.hls = v;
        }
        if let Some(v) = self.hls_apps {
            c.hls_apps = Some(v);
        }
        if let Some(v) = self.hls_segment_ms {
            c.hls_segment_ms = v;
        }
        if let Some(v) = self.hls_window {
            c.hls_window = v;
        }
        if let Some(v) = self.record_apps {
            c.record_apps = v;
        }
        if let Some(v) = self.record_flv {
            c.record_flv = v;
        }
        if let Some(v) = self.tus_max_size {
            c.tus_max_size = v;
        }
        if let Some(v) = self.tus_expiration_hours {
            c.tus_expiration_hours = v;
        }
        if let Some(v) = self.upload_hook {
            c.upload_hook = Some(v);
        }
        if let Some(v) = self.http_read_kib {
            c.http_read_kib = v;
        }
        if let Some(v) = self.http_header_timeout_secs {
            c.http_header_timeout_secs = v;
        }
        if let Some(v) = self.trusted_proxies {
            c.trusted_proxies = v;
        }
        if let Some(v) = self.proxy_protocol {
            c.proxy_protocol = v;
        }
    }
}

/// Transcoding flags (each also an environment variable and a `[jobs]` key).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct JobFlags {
    /// PostgreSQL URL of a job queue shared by several machines; default: the embedded
    /// queue in `<storage>/queue`.
    #[arg(long, env = "VIDEOPICK_JOBS_DB", hide_env_values = true)]
    pub jobs_db: Option<String>,
    /// Workers in this process (0: only enqueue; workers run elsewhere).
    /// (default: 1)
    #[arg(long, env = "VIDEOPICK_TRANSCODE_WORKERS")]
    pub transcode_workers: Option<usize>,
    /// ffmpeg processes at once in this process.
    /// (default: 1)
    #[arg(long, env = "VIDEOPICK_FFMPEG_CONCURRENCY")]
    pub ffmpeg_concurrency: Option<usize>,
    /// What a finished recording becomes.
    /// (default: remux)
    #[arg(long, env = "VIDEOPICK_TRANSCODE_RECORDINGS")]
    pub transcode_recordings: Option<RecordingJobs>,
    /// Ladder rungs by short side in pixels, comma-separated.
    /// (default: 1080,720,480,360)
    #[arg(long, env = "VIDEOPICK_LADDER", value_delimiter = ',')]
    pub ladder: Option<Vec<u32>>,
    /// Use fMP4 segments for the ladder (default MPEG-TS).
    #[arg(long, env = "VIDEOPICK_LADDER_FMP4", num_args = 0..=1, default_missing_value = "true")]
    pub ladder_fmp4: Option<bool>,
    /// Time limit of one job attempt, in minutes.
    /// (default: 360)
    #[arg(long, env = "VIDEOPICK_JOB_TIMEOUT_MINS")]
    pub job_timeout_mins: Option<u64>,
    /// Attempts per job.
    /// (default: 3)
    #[arg(long, env = "VIDEOPICK_JOB_ATTEMPTS")]
    pub job_attempts: Option<u32>,
}

impl JobFlags {
    /// Write the flags given (on the command line or in the environment) over `c`.
    pub fn apply(self, c: &mut JobsConfig) {
        if let Some(v) = self.jobs_db {
            c.jobs_db = Some(v);
        }
        if let Some(v) = self.transcode_workers {
            c.transcode_workers = v;
        }
        if let Some(v) = self.ffmpeg_concurrency {
            c.ffmpeg_concurrency = v;
        }
        if let Some(v) = self.transcode_recordings {
            c.transcode_recordings = v;
        }
        if let Some(v) = self.ladder {
            c.ladder = v;
        }
        if let Some(v) = self.ladder_fmp4 {
            c.ladder_fmp4 = v;
        }
        if let Some(v) = self.job_timeout_mins {
            c.job_timeout_mins = v;
        }
        if let Some(v) = self.job_attempts {
            c.job_attempts = v;
        }
    }
}

/// The chat role's flags (each also an environment variable and a `[chat]` key).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ChatFlags {
    /// Address to listen on.
    /// (default: 127.0.0.1:3001)
    #[arg(long, env = "VIDEOPICK_CHAT_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// HS256 secret of the connect tokens.
    #[arg(long, env = "VIDEOPICK_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// Let clients without a token read as anonymous viewers.
    #[arg(long, env = "VIDEOPICK_CHAT_ANONYMOUS", num_args = 0..=1, default_missing_value = "true")]
    pub anonymous: Option<bool>,
    /// Longest message, in characters.
    /// (default: 500)
    #[arg(long, env = "VIDEOPICK_CHAT_MAX_LEN")]
    pub max_message_len: Option<usize>,
    /// Messages per user in a burst (refilled over `--rate-window-secs`).
    /// (default: 20)
    #[arg(long, env = "VIDEOPICK_CHAT_RATE")]
    pub rate: Option<u32>,
    /// The rate window in seconds.
    /// (default: 30)
    #[arg(long, env = "VIDEOPICK_CHAT_RATE_WINDOW_SECS")]
    pub rate_window_secs: Option<u64>,
    /// Rooms per connection.
    /// (default: 10)
    #[arg(long, env = "VIDEOPICK_CHAT_MAX_ROOMS")]
    pub max_rooms: Option<usize>,
    /// Messages of history per room.
    /// (default: 50)
    #[arg(long, env = "VIDEOPICK_CHAT_HISTORY")]
    pub history: Option<usize>,
    /// Connections per client IP address.
    /// (default: 100)
    #[arg(long, env = "VIDEOPICK_CHAT_MAX_CONNS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
    /// Engine.IO ping interval, ms.
    /// (default: 25_000)
    #[arg(long, env = "VIDEOPICK_CHAT_PING_INTERVAL_MS")]
    pub ping_interval_ms: Option<u64>,
    /// Engine.IO ping timeout, ms.
    /// (default: 20_000)
    #[arg(long, env = "VIDEOPICK_CHAT_PING_TIMEOUT_MS")]
    pub ping_timeout_ms: Option<u64>,
    /// Largest client payload, bytes.
    /// (default: 100_000)
    #[arg(long, env = "VIDEOPICK_CHAT_MAX_PAYLOAD")]
    pub max_payload: Option<usize>,
    /// Messages queued for a slow client before the oldest are dropped.
    /// (default: 256)
    #[arg(long, env = "VIDEOPICK_CHAT_QUEUE")]
    pub queue: Option<usize>,
    /// Redis URL: rooms span every `chat-server` on this Redis (Pub/Sub, shared history,
    /// presence and moderation). Without it the chat is one process.
    #[arg(long, env = "VIDEOPICK_CHAT_REDIS", hide_env_values = true)]
    pub redis: Option<String>,
    /// Prefix of the chat's Redis keys and channels.
    /// (default: videopick:chat)
    #[arg(long, env = "VIDEOPICK_CHAT_REDIS_PREFIX")]
    pub redis_prefix: Option<String>,
    /// This node's id on the bus (default: random).
    /// (default: random)
    #[arg(long, env = "VIDEOPICK_CHAT_NODE_ID")]
    pub node_id: Option<String>,
    /// Broadcast batching, ms: in a busy room, what is broadcast within this interval
    /// reaches each member as one batch in one write (the first broadcast after a quiet
    /// interval goes at once). 0 sends each broadcast as it comes; under fan-out load,
    /// writes per second are what costs CPU.
    /// (default: 20)
    #[arg(long, env = "VIDEOPICK_CHAT_FLUSH_MS")]
    pub flush_ms: Option<u64>,
    /// Bind with SO_REUSEPORT: several chat-server processes share one port (the kernel
    /// spreads connections over them; with `--redis` their rooms are one).
    #[arg(long, env = "VIDEOPICK_CHAT_REUSE_PORT", num_args = 0..=1, default_missing_value = "true")]
    pub reuse_port: Option<bool>,
    /// Serve the Socket.IO v5 protocol test suite's configuration instead of the chat:
    /// echo handlers, a `/custom` namespace, 300 ms pings with a 200 ms timeout, and a
    /// 1.5 s connect timeout.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub test_suite: Option<bool>,
    /// Seconds a connection has to send a complete request head, from its opening or from
    /// its previous response when it idles on keep-alive. (default: 10)
    #[arg(long, env = "VIDEOPICK_CHAT_HEADER_TIMEOUT_SECS")]
    pub header_timeout_secs: Option<u64>,
    /// Proxies (addresses or CIDR networks, comma-separated) whose X-Forwarded-For /
    /// Forwarded name the real client.
    #[arg(long, env = "VIDEOPICK_CHAT_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<String>>,
}

impl ChatFlags {
    /// Write the flags given (on the command line or in the environment) over `c`.
    pub fn apply(self, c: &mut ChatConfig) {
        if let Some(v) = self.listen {
            c.listen = v;
        }
        if let Some(v) = self.jwt_secret {
            c.jwt_secret = Some(v);
        }
        if let Some(v) = self.anonymous {
            c.anonymous = v;
        }
        if let Some(v) = self.max_message_len {
            c.max_message_len = v;
        }
        if let Some(v) = self.rate {
            c.rate = v;
        }
        if let Some(v) = self.rate_window_secs {
            c.rate_window_secs = v;
        }
        if let Some(v) = self.max_rooms {
            c.max_rooms = v;
        }
        if let Some(v) = self.history {
            c.history = v;
        }
        if let Some(v) = self.max_connections_per_ip {
            c.max_connections_per_ip = v;
        }
        if let Some(v) = self.ping_interval_ms {
            c.ping_interval_ms = v;
        }
        if let Some(v) = self.ping_timeout_ms {
            c.ping_timeout_ms = v;
        }
        if let Some(v) = self.max_payload {
            c.max_payload = v;
        }
        if let Some(v) = self.queue {
            c.queue = v;
        }
        if let Some(v) = self.redis {
            c.redis = Some(v);
        }
        if let Some(v) = self.redis_prefix {
            c.redis_prefix = v;
        }
        if let Some(v) = self.node_id {
            c.node_id = v;
        }
        if let Some(v) = self.flush_ms {
            c.flush_ms = v;
        }
        if let Some(v) = self.reuse_port {
            c.reuse_port = v;
        }
        if let Some(v) = self.test_suite {
            c.test_suite = v;
        }
        if let Some(v) = self.header_timeout_secs {
            c.header_timeout_secs = v;
        }
        if let Some(v) = self.trusted_proxies {
            c.trusted_proxies = v;
        }
    }
}
