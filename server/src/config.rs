//! The roles' settings: plain structs with defaults, read from a TOML file (one table
//! per role: `[media]`, `[jobs]`, `[chat]`; every key is the flag's name with `_`) and
//! overridden by the binaries' flags and environment. See `examples/videopick.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// What happens to a finished recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordingJobs {
    /// Nothing.
    None,
    /// Remux to `vod/<recording>/video.mp4`.
    Remux,
    /// Remux, then an HLS ladder from the MP4.
    Ladder,
}

impl std::str::FromStr for RecordingJobs {
    type Err = String;
    fn from_str(s: &str) -> Result<RecordingJobs, String> {
        match s {
            "none" => Ok(RecordingJobs::None),
            "remux" => Ok(RecordingJobs::Remux),
            "ladder" => Ok(RecordingJobs::Ladder),
            other => Err(format!("{other:?}: expected none, remux or ladder")),
        }
    }
}

/// What a key's value is, on the command line and in the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Text (addresses, paths, URLs, secrets).
    Text,
    /// A whole number.
    Number,
    /// On or off (`--flag` alone means on).
    Switch,
    /// Comma-separated text.
    TextList,
    /// Comma-separated whole numbers.
    NumberList,
}

/// One setting: its key in the file (the flag is `--` and the key with `-`), its
/// environment variable, its kind, the help heading it is listed under, and its help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The key (`http_read_kib`).
    pub name: &'static str,
    /// The environment variable (empty: none).
    pub env: &'static str,
    /// Its kind.
    pub kind: Kind,
    /// The `--help` heading.
    pub heading: &'static str,
    /// What it does.
    pub help: &'static str,
    /// A secret: its value is never shown (in `--help`, logs or errors).
    pub secret: bool,
}

impl Key {
    const fn new(
        name: &'static str,
        env: &'static str,
        kind: Kind,
        heading: &'static str,
        help: &'static str,
    ) -> Key {
        Key {
            name,
            env,
            kind,
            heading,
            help,
            secret: false,
        }
    }

    const fn secret(
        name: &'static str,
        env: &'static str,
        kind: Kind,
        heading: &'static str,
        help: &'static str,
    ) -> Key {
        Key {
            secret: true,
            ..Key::new(name, env, kind, heading, help)
        }
    }
}

/// The `[media]` keys.
pub const MEDIA_KEYS: &[Key] = &[
    Key::new(
        "storage",
        "VIDEOPICK_STORAGE",
        Kind::Text,
        "Listeners and storage",
        "Storage root (production: /mnt/storage).",
    ),
    Key::new(
        "rtmp",
        "VIDEOPICK_RTMP",
        Kind::Text,
        "Listeners and storage",
        "RTMP listen address (ingest and play).",
    ),
    Key::new(
        "http",
        "VIDEOPICK_HTTP",
        Kind::Text,
        "Listeners and storage",
        "HTTP listen address (HTTP-FLV, API, /metrics).",
    ),
    Key::new(
        "write_interval_ms",
        "VIDEOPICK_WRITE_INTERVAL_MS",
        Kind::Number,
        "Live streaming",
        "Viewers' writes are batched: at most one write per this many milliseconds (RTMP and HTTP-FLV). Lower is less delay, higher is less CPU per viewer.",
    ),
    Key::new(
        "gop_cache",
        "VIDEOPICK_GOP_CACHE",
        Kind::Switch,
        "Live streaming",
        "Keep the last GOP for new viewers (instant start).",
    ),
    Key::new(
        "republish_grace_secs",
        "VIDEOPICK_REPUBLISH_GRACE_SECS",
        Kind::Number,
        "Live streaming",
        "Seconds viewers stay attached waiting for a publisher to come back.",
    ),
    Key::new(
        "min_free_bytes",
        "VIDEOPICK_MIN_FREE_BYTES",
        Kind::Number,
        "Storage housekeeping",
        "Bytes always left free on the storage file system by space reservations.",
    ),
    Key::new(
        "tmp_ttl_secs",
        "VIDEOPICK_TMP_TTL_SECS",
        Kind::Number,
        "Storage housekeeping",
        "Seconds after which an abandoned entry in tmp/ is swept.",
    ),
    Key::new(
        "recordings_max_age_days",
        "VIDEOPICK_RECORDINGS_MAX_AGE_DAYS",
        Kind::Number,
        "Storage housekeeping",
        "Remove recordings older than this many days (unset: keep forever).",
    ),
    Key::new(
        "recordings_max_bytes",
        "VIDEOPICK_RECORDINGS_MAX_BYTES",
        Kind::Number,
        "Storage housekeeping",
        "Remove the oldest recordings beyond this many bytes in total (unset: no limit).",
    ),
    Key::new(
        "housekeeping_secs",
        "VIDEOPICK_HOUSEKEEPING_SECS",
        Kind::Number,
        "Storage housekeeping",
        "Seconds between storage housekeeping passes.",
    ),
    Key::new(
        "publish_keys",
        "VIDEOPICK_PUBLISH_KEYS",
        Kind::Text,
        "Access",
        "Key file: publishing `app/stream` needs `?key=<secret>` as listed (`app/stream secret` per line).",
    ),
    Key::secret(
        "sign_secret",
        "VIDEOPICK_SIGN_SECRET",
        Kind::Text,
        "Access",
        "Shared secret for signed keys: publishing needs `?sign=<expiry>-<hmac-sha256 hex of \"/app/stream-expiry\">`.",
    ),
    Key::new(
        "sign_play",
        "VIDEOPICK_SIGN_PLAY",
        Kind::Switch,
        "Access",
        "With --sign-secret: playing needs a signature too.",
    ),
    Key::new(
        "auth_hook",
        "VIDEOPICK_AUTH_HOOK",
        Kind::Text,
        "Access",
        "HTTP hook: each publish and play is POSTed as JSON to this http(s):// URL; a 2xx answer allows it.",
    ),
    Key::new(
        "allow_all",
        "VIDEOPICK_ALLOW_ALL",
        Kind::Switch,
        "Access",
        "Allow every publish and play even on public listeners (only behind another gate).",
    ),
    Key::new(
        "event_hook",
        "VIDEOPICK_EVENT_HOOK",
        Kind::Text,
        "Hooks",
        "Lifecycle events (publish, unpublish, play, stop) are POSTed as JSON to this http(s):// URL, with retries.",
    ),
    Key::secret(
        "hook_secret",
        "VIDEOPICK_HOOK_SECRET",
        Kind::Text,
        "Hooks",
        "Sign every outgoing hook (auth, events, uploads) with this shared secret (X-Videopick-Signature: HMAC-SHA256), as the app server expects.",
    ),
    Key::new(
        "access_hook",
        "VIDEOPICK_ACCESS_HOOK",
        Kind::Text,
        "Hooks",
        "Ask the app server at this URL (its /api/v1/hooks/media, signed) whether a request may fetch /vod/<id>/ or /recordings/<id>/ files: private videos are their owners' only. Answers are remembered for a few seconds.",
    ),
    Key::new(
        "key_apps",
        "VIDEOPICK_KEY_APPS",
        Kind::TextList,
        "Hooks",
        "Apps whose stream names are secret stream keys (e.g. live, when the auth hook maps keys to channels): such names are never logged.",
    ),
    Key::secret(
        "api_token",
        "VIDEOPICK_API_TOKEN",
        Kind::Text,
        "Access",
        "Bearer token that guards the control API: `DELETE /api/streams/<app>/<stream>` (kick a publisher), job cancel/retry, `DELETE /api/media/<id>` (remove a video's files).",
    ),
    Key::new(
        "handshake_timeout_secs",
        "VIDEOPICK_HANDSHAKE_TIMEOUT_SECS",
        Kind::Number,
        "Live streaming",
        "Seconds a new connection has for the RTMP handshake and connect.",
    ),
    Key::new(
        "hls",
        "VIDEOPICK_HLS",
        Kind::Switch,
        "Live streaming",
        "Serve live HLS at `/<app>/<stream>.m3u8`.",
    ),
    Key::new(
        "hls_apps",
        "VIDEOPICK_HLS_APPS",
        Kind::TextList,
        "Live streaming",
        "Apps with live HLS, comma-separated (default: every app).",
    ),
    Key::new(
        "hls_segment_ms",
        "VIDEOPICK_HLS_SEGMENT_MS",
        Kind::Number,
        "Live streaming",
        "Target HLS segment duration in milliseconds (segments are cut at key frames).",
    ),
    Key::new(
        "hls_window",
        "VIDEOPICK_HLS_WINDOW",
        Kind::Number,
        "Live streaming",
        "Segments listed in the live HLS playlist.",
    ),
    Key::new(
        "hls_part_ms",
        "VIDEOPICK_HLS_PART_MS",
        Kind::Number,
        "Live streaming",
        "Low-latency HLS part target in milliseconds (CMAF parts, blocking reloads); 0 serves MPEG-TS HLS only.",
    ),
    Key::new(
        "hls_ts",
        "VIDEOPICK_HLS_TS",
        Kind::Switch,
        "Live streaming",
        "Keep the MPEG-TS variant of live HLS beside low-latency HLS, at `/<app>/<stream>.m3u8?format=ts`.",
    ),
    Key::new(
        "thumbnail_secs",
        "VIDEOPICK_THUMBNAIL_SECS",
        Kind::Number,
        "Live streaming",
        "Seconds between live thumbnails of the platform's channels (all-in-one).",
    ),
    Key::new(
        "record_apps",
        "VIDEOPICK_RECORD_APPS",
        Kind::TextList,
        "Live streaming",
        "Apps whose every publish is recorded to storage (`*` for all), comma-separated; `?record=1` on the publish URL or an auth-hook answer `{\"record\": true}` records others, `?record=0` opts out.",
    ),
    Key::new(
        "record_flv",
        "VIDEOPICK_RECORD_FLV",
        Kind::Switch,
        "Live streaming",
        "Also write each recording as `stream.flv` beside its HLS segments.",
    ),
    Key::new(
        "tus_max_size",
        "VIDEOPICK_TUS_MAX_SIZE",
        Kind::Number,
        "Uploads",
        "Largest tus upload accepted at `/files/` (bytes).",
    ),
    Key::new(
        "tus_expiration_hours",
        "VIDEOPICK_TUS_EXPIRATION_HOURS",
        Kind::Number,
        "Uploads",
        "Hours an unfinished tus upload lives after its last write.",
    ),
    Key::new(
        "upload_hook",
        "VIDEOPICK_UPLOAD_HOOK",
        Kind::Text,
        "Hooks",
        "Upload hook: every tus request (authorize), each new upload (pre-create) and each finished or terminated one are POSTed as JSON to this http(s):// URL; a non-2xx answer to the first two is relayed to the client.",
    ),
    Key::new(
        "http_read_kib",
        "VIDEOPICK_HTTP_READ_KIB",
        Kind::Number,
        "Listeners and storage",
        "Largest read from an HTTP connection, in KiB (8–1024): request bodies (uploads) arrive in frames up to this size. 32 keeps an active upload near 210 KiB of server memory; 64 uploads ~15 % faster for twice the memory.",
    ),
    Key::new(
        "http_header_timeout_secs",
        "VIDEOPICK_HTTP_HEADER_TIMEOUT_SECS",
        Kind::Number,
        "Listeners and storage",
        "Seconds an HTTP connection has to send a complete request head, from its opening or from its previous response when it idles on keep-alive.",
    ),
    Key::new(
        "tls_cert",
        "VIDEOPICK_TLS_CERT",
        Kind::Text,
        "Listeners and storage",
        "PEM certificate chain: the HTTP listener speaks TLS, HTTP/2 (ALPN h2, which Apple's players need for low-latency HLS) and HTTP/1.1. Needs tls_key.",
    ),
    Key::new(
        "tls_key",
        "VIDEOPICK_TLS_KEY",
        Kind::Text,
        "Listeners and storage",
        "PEM private key of tls_cert.",
    ),
    Key::new(
        "trusted_proxies",
        "VIDEOPICK_TRUSTED_PROXIES",
        Kind::TextList,
        "Access",
        "Proxies (addresses or CIDR networks, comma-separated) whose X-Forwarded-For / Forwarded (HTTP) and PROXY protocol header (RTMP, with --proxy-protocol) name the real client.",
    ),
    Key::new(
        "metrics_allow",
        "VIDEOPICK_METRICS_ALLOW",
        Kind::TextList,
        "Access",
        METRICS_ALLOW_HELP,
    ),
    Key::new(
        "proxy_protocol",
        "VIDEOPICK_PROXY_PROTOCOL",
        Kind::Switch,
        "Access",
        "RTMP connections from trusted proxies start with a PROXY protocol header (v1 or v2).",
    ),
];

/// The `[jobs]` keys.
pub const JOBS_KEYS: &[Key] = &[
    Key::secret(
        "jobs_db",
        "VIDEOPICK_JOBS_DB",
        Kind::Text,
        "Transcoding",
        "PostgreSQL URL of a job queue shared by several machines; default: the embedded queue in `<storage>/queue`.",
    ),
    Key::new(
        "transcode_workers",
        "VIDEOPICK_TRANSCODE_WORKERS",
        Kind::Number,
        "Transcoding",
        "Workers in this process (0: only enqueue; workers run elsewhere).",
    ),
    Key::new(
        "ffmpeg_concurrency",
        "VIDEOPICK_FFMPEG_CONCURRENCY",
        Kind::Number,
        "Transcoding",
        "ffmpeg processes at once in this process.",
    ),
    Key::new(
        "transcode_recordings",
        "VIDEOPICK_TRANSCODE_RECORDINGS",
        Kind::Text,
        "Transcoding",
        "What a finished recording becomes.",
    ),
    Key::new(
        "ladder",
        "VIDEOPICK_LADDER",
        Kind::NumberList,
        "Transcoding",
        "Ladder rungs by short side in pixels, comma-separated.",
    ),
    Key::new(
        "ladder_fmp4",
        "VIDEOPICK_LADDER_FMP4",
        Kind::Switch,
        "Transcoding",
        "Use fMP4 segments for the ladder (default MPEG-TS).",
    ),
    Key::new(
        "job_timeout_mins",
        "VIDEOPICK_JOB_TIMEOUT_MINS",
        Kind::Number,
        "Transcoding",
        "Time limit of one job attempt, in minutes.",
    ),
    Key::new(
        "job_attempts",
        "VIDEOPICK_JOB_ATTEMPTS",
        Kind::Number,
        "Transcoding",
        "Attempts per job.",
    ),
];

/// The `[chat]` keys.
pub const CHAT_KEYS: &[Key] = &[
    Key::new(
        "listen",
        "VIDEOPICK_CHAT_LISTEN",
        Kind::Text,
        "Chat",
        "Address to listen on.",
    ),
    Key::secret(
        "jwt_secret",
        "VIDEOPICK_JWT_SECRET",
        Kind::Text,
        "Chat",
        "HS256 secret of the connect tokens.",
    ),
    Key::new(
        "anonymous",
        "VIDEOPICK_CHAT_ANONYMOUS",
        Kind::Switch,
        "Chat",
        "Let clients without a token read as anonymous viewers.",
    ),
    Key::new(
        "max_message_len",
        "VIDEOPICK_CHAT_MAX_LEN",
        Kind::Number,
        "Chat",
        "Longest message, in characters.",
    ),
    Key::new(
        "rate",
        "VIDEOPICK_CHAT_RATE",
        Kind::Number,
        "Chat",
        "Messages per user in a burst (refilled over `--rate-window-secs`).",
    ),
    Key::new(
        "rate_window_secs",
        "VIDEOPICK_CHAT_RATE_WINDOW_SECS",
        Kind::Number,
        "Chat",
        "The rate window in seconds.",
    ),
    Key::new(
        "max_rooms",
        "VIDEOPICK_CHAT_MAX_ROOMS",
        Kind::Number,
        "Chat",
        "Rooms per connection.",
    ),
    Key::new(
        "history",
        "VIDEOPICK_CHAT_HISTORY",
        Kind::Number,
        "Chat",
        "Messages of history per room.",
    ),
    Key::new(
        "max_connections_per_ip",
        "VIDEOPICK_CHAT_MAX_CONNS_PER_IP",
        Kind::Number,
        "Chat",
        "Connections per client IP address.",
    ),
    Key::new(
        "ping_interval_ms",
        "VIDEOPICK_CHAT_PING_INTERVAL_MS",
        Kind::Number,
        "Chat",
        "Engine.IO ping interval, ms.",
    ),
    Key::new(
        "ping_timeout_ms",
        "VIDEOPICK_CHAT_PING_TIMEOUT_MS",
        Kind::Number,
        "Chat",
        "Engine.IO ping timeout, ms.",
    ),
    Key::new(
        "max_payload",
        "VIDEOPICK_CHAT_MAX_PAYLOAD",
        Kind::Number,
        "Chat",
        "Largest client payload, bytes.",
    ),
    Key::new(
        "queue",
        "VIDEOPICK_CHAT_QUEUE",
        Kind::Number,
        "Chat",
        "Messages queued for a slow client before the oldest are dropped.",
    ),
    Key::secret(
        "redis",
        "VIDEOPICK_CHAT_REDIS",
        Kind::Text,
        "Chat",
        "Redis URL: rooms span every `chat-server` on this Redis (Pub/Sub, shared history, presence and moderation). Without it the chat is one process.",
    ),
    Key::new(
        "redis_prefix",
        "VIDEOPICK_CHAT_REDIS_PREFIX",
        Kind::Text,
        "Chat",
        "Prefix of the chat's Redis keys and channels.",
    ),
    Key::new(
        "node_id",
        "VIDEOPICK_CHAT_NODE_ID",
        Kind::Text,
        "Chat",
        "This node's id on the bus (default: random).",
    ),
    Key::new(
        "flush_ms",
        "VIDEOPICK_CHAT_FLUSH_MS",
        Kind::Number,
        "Chat",
        "Broadcast batching, ms: in a busy room, what is broadcast within this interval reaches each member as one batch in one write (the first broadcast after a quiet interval goes at once). 0 sends each broadcast as it comes; under fan-out load, writes per second are what costs CPU.",
    ),
    Key::new(
        "reuse_port",
        "VIDEOPICK_CHAT_REUSE_PORT",
        Kind::Switch,
        "Chat",
        "Bind with SO_REUSEPORT: several chat-server processes share one port (the kernel spreads connections over them; with `--redis` their rooms are one).",
    ),
    Key::new(
        "test_suite",
        "",
        Kind::Switch,
        "Chat",
        "Serve the Socket.IO v5 protocol test suite's configuration instead of the chat: echo handlers, a `/custom` namespace, 300 ms pings with a 200 ms timeout, and a 1.5 s connect timeout.",
    ),
    Key::new(
        "header_timeout_secs",
        "VIDEOPICK_CHAT_HEADER_TIMEOUT_SECS",
        Kind::Number,
        "Chat",
        "Seconds a connection has to send a complete request head, from its opening or from its previous response when it idles on keep-alive.",
    ),
    Key::new(
        "allowed_origins",
        "VIDEOPICK_CHAT_ALLOWED_ORIGINS",
        Kind::TextList,
        "Chat",
        "Origins of the pages that may use the chat from a browser (comma-separated, e.g. https://videopick.example; * for any): their long-polling and preflight requests get CORS answers, other origins are refused.",
    ),
    Key::new(
        "trusted_proxies",
        "VIDEOPICK_CHAT_TRUSTED_PROXIES",
        Kind::TextList,
        "Chat",
        "Proxies (addresses or CIDR networks, comma-separated) whose X-Forwarded-For / Forwarded name the real client.",
    ),
    Key::new(
        "metrics_allow",
        "VIDEOPICK_CHAT_METRICS_ALLOW",
        Kind::TextList,
        "Chat",
        METRICS_ALLOW_HELP,
    ),
];

/// The `[app]` keys.
pub const APP_KEYS: &[Key] = &[
    Key::new(
        "listen",
        "VIDEOPICK_APP_LISTEN",
        Kind::Text,
        "App",
        "Address the app-server listens on (the all-in-one serves the API on the media role's HTTP listener).",
    ),
    Key::new(
        "data",
        "VIDEOPICK_APP_DATA",
        Kind::Text,
        "App",
        "Directory of the embedded SQLite database when no --db is given (the all-in-one uses the storage root).",
    ),
    Key::secret(
        "db",
        "VIDEOPICK_DB",
        Kind::Text,
        "App",
        "Database URL: postgres://USER@HOST/DB, or sqlite://PATH (default: SQLite under the data directory).",
    ),
    Key::new(
        "cache",
        "VIDEOPICK_CACHE",
        Kind::Text,
        "App",
        "Redis URL of the cache of hot reads shared by app nodes (default: in process).",
    ),
    Key::new(
        "cache_prefix",
        "VIDEOPICK_CACHE_PREFIX",
        Kind::Text,
        "App",
        "Prefix of the cache's Redis keys.",
    ),
    Key::new(
        "session_ttl_hours",
        "VIDEOPICK_SESSION_TTL_HOURS",
        Kind::Number,
        "App",
        "How long a sign-in lasts, in hours.",
    ),
    Key::new(
        "cookie_secure",
        "VIDEOPICK_COOKIE_SECURE",
        Kind::Switch,
        "App",
        "Mark the session cookie Secure (the site is served over HTTPS).",
    ),
    Key::new(
        "allowed_origins",
        "VIDEOPICK_ALLOWED_ORIGINS",
        Kind::TextList,
        "App",
        "Origins besides the API's own whose pages may make signed-in changes (comma-separated, e.g. https://videopick.example).",
    ),
    Key::secret(
        "chat_secret",
        "VIDEOPICK_APP_CHAT_SECRET",
        Kind::Text,
        "App",
        "The chat's token secret, to mint chat tokens (the all-in-one uses --jwt-secret).",
    ),
    Key::new(
        "chat_url",
        "VIDEOPICK_CHAT_URL",
        Kind::Text,
        "App",
        "The chat's public Socket.IO URL, told to clients with their tokens.",
    ),
    Key::secret(
        "hook_secret",
        "VIDEOPICK_HOOK_SECRET",
        Kind::Text,
        "App",
        "Shared secret of the signed hooks between a media server and the app server.",
    ),
    Key::secret(
        "jobs_db",
        "VIDEOPICK_APP_JOBS_DB",
        Kind::Text,
        "App",
        "The media servers' shared PostgreSQL job queue (their --jobs-db): the app-server follows uploads' and recordings' jobs there.",
    ),
    Key::new(
        "media_api",
        "VIDEOPICK_MEDIA_API",
        Kind::Text,
        "App",
        "The media server's HTTP URL (e.g. http://10.0.0.2:8000): the app-server ends publishes when keys are rotated, cancels deleted videos' jobs and removes their files there.",
    ),
    Key::secret(
        "media_token",
        "VIDEOPICK_MEDIA_TOKEN",
        Kind::Text,
        "App",
        "The media server's --api-token, for those calls.",
    ),
    Key::new(
        "rtmp_url",
        "VIDEOPICK_RTMP_URL",
        Kind::Text,
        "App",
        "The public RTMP server URL shown to creators (OBS \"Server\"); default from the RTMP listener.",
    ),
    Key::new(
        "live_app",
        "VIDEOPICK_LIVE_APP",
        Kind::Text,
        "App",
        "The RTMP application channels publish to with their stream keys.",
    ),
    Key::new(
        "media_base",
        "VIDEOPICK_MEDIA_BASE",
        Kind::Text,
        "App",
        "URL prefix of the media server's HTTP-FLV, HLS and thumbnails when it is not the API's origin.",
    ),
    Key::new(
        "web_dir",
        "VIDEOPICK_WEB_DIR",
        Kind::Text,
        "App",
        "The built web application (`npm run build` in web/ makes web/dist), served at / with the API; missing: API only.",
    ),
    Key::new(
        "header_timeout_secs",
        "VIDEOPICK_APP_HEADER_TIMEOUT_SECS",
        Kind::Number,
        "App",
        "Seconds a connection to the app-server has to send a complete request head.",
    ),
    Key::new(
        "trusted_proxies",
        "VIDEOPICK_APP_TRUSTED_PROXIES",
        Kind::TextList,
        "App",
        "Proxies (addresses or CIDR networks, comma-separated) whose X-Forwarded-For / Forwarded name the real client of the app-server.",
    ),
    Key::new(
        "metrics_allow",
        "VIDEOPICK_APP_METRICS_ALLOW",
        Kind::TextList,
        "App",
        METRICS_ALLOW_HELP,
    ),
];

/// A config file: every table optional, unknown keys refused.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct FileConfig {
    /// `[media]`.
    pub media: MediaConfig,
    /// `[jobs]`.
    pub jobs: JobsConfig,
    /// `[chat]`.
    pub chat: ChatConfig,
    /// `[app]`.
    pub app: AppConfig,
}

/// What `metrics_allow` does (the same in every table).
const METRICS_ALLOW_HELP: &str = "Networks (addresses or CIDR networks, comma-separated) whose peers may read /metrics, e.g. the private network Prometheus scrapes from; others get 404. Empty: anyone. Lists set in several tables of one process add up. The client is the peer, or the one a trusted proxy names.";

/// Parse a list of trusted proxies (addresses or CIDR networks).
pub fn trusted_proxies(list: &[String]) -> Result<videopick_live::proxy::TrustedProxies, String> {
    list.join(",").parse()
}

impl FileConfig {
    /// Parse TOML text.
    pub fn parse(text: &str) -> Result<FileConfig, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
        FileConfig::from_table(table)
    }

    /// The settings of a TOML table (`[media]`, `[jobs]`, `[chat]` tables inside).
    pub fn from_table(table: toml::Table) -> Result<FileConfig, String> {
        let mut c: FileConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| e.to_string())?;
        c.media.jobs = c.jobs.clone();
        Ok(c)
    }

    /// The defaults as a TOML table (what `--help` shows as each key's default).
    pub fn defaults() -> toml::Table {
        let mut t = toml::Table::new();
        for (name, value) in [
            ("media", toml::Table::try_from(MediaConfig::default())),
            ("jobs", toml::Table::try_from(JobsConfig::default())),
            ("chat", toml::Table::try_from(ChatConfig::default())),
            ("app", toml::Table::try_from(AppConfig::default())),
        ] {
            if let Ok(v) = value {
                t.insert(name.into(), toml::Value::Table(v));
            }
        }
        t
    }

    /// Read a TOML file.
    pub fn load(path: &Path) -> Result<FileConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        FileConfig::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Settings of the media role (the `[media]` table of a config file).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
#[allow(clippy::struct_excessive_bools)] // on/off settings
pub struct MediaConfig {
    /// Storage root (production: /mnt/storage).
    pub storage: PathBuf,
    /// RTMP listen address (ingest and play).
    pub rtmp: SocketAddr,
    /// HTTP listen address (HTTP-FLV, API, /metrics).
    pub http: SocketAddr,
    /// Viewers' writes are batched: at most one write per this many milliseconds (RTMP and
    /// HTTP-FLV). Lower is less delay, higher is less CPU per viewer.
    pub write_interval_ms: u64,
    /// Keep the last GOP for new viewers (instant start).
    pub gop_cache: bool,
    /// Seconds viewers stay attached waiting for a publisher to come back.
    pub republish_grace_secs: u64,
    /// Bytes always left free on the storage file system by space reservations.
    pub min_free_bytes: u64,
    /// Seconds after which an abandoned entry in tmp/ is swept.
    pub tmp_ttl_secs: u64,
    /// Remove recordings older than this many days (unset: keep forever).
    pub recordings_max_age_days: Option<u64>,
    /// Remove the oldest recordings beyond this many bytes in total (unset: no limit).
    pub recordings_max_bytes: Option<u64>,
    /// Seconds between storage housekeeping passes.
    pub housekeeping_secs: u64,
    /// Key file: publishing `app/stream` needs `?key=<secret>` as listed (`app/stream secret`
    /// per line).
    pub publish_keys: Option<PathBuf>,
    /// Shared secret for signed keys: publishing needs `?sign=<expiry>-<hmac-sha256 hex of
    /// "/app/stream-expiry">`.
    pub sign_secret: Option<String>,
    /// With --sign-secret: playing needs a signature too.
    pub sign_play: bool,
    /// HTTP hook: each publish and play is POSTed as JSON to this http(s):// URL; a 2xx answer
    /// allows it.
    pub auth_hook: Option<String>,
    /// Allow every publish and play even on public listeners (only behind another gate).
    pub allow_all: bool,
    /// Lifecycle events (publish, unpublish, play, stop) are POSTed as JSON to this http(s)://
    /// URL, with retries.
    pub event_hook: Option<String>,
    /// Sign outgoing hooks with this shared secret.
    pub hook_secret: Option<String>,
    /// Ask the app server at this URL whether a request may fetch a video's files.
    pub access_hook: Option<String>,
    /// Apps whose stream names are secret stream keys (never logged).
    pub key_apps: Vec<String>,
    /// Bearer token that guards `DELETE /api/streams/<app>/<stream>` (kick a publisher).
    pub api_token: Option<String>,
    /// Seconds a new connection has for the RTMP handshake and connect.
    pub handshake_timeout_secs: u64,
    /// Serve live HLS at `/<app>/<stream>.m3u8`.
    pub hls: bool,
    /// Apps with live HLS, comma-separated (default: every app).
    pub hls_apps: Option<Vec<String>>,
    /// Target HLS segment duration in milliseconds (segments are cut at key frames).
    pub hls_segment_ms: u64,
    /// Segments listed in the live HLS playlist.
    pub hls_window: usize,
    /// Low-latency HLS part target in milliseconds (CMAF parts, blocking reloads); 0
    /// serves MPEG-TS HLS only.
    pub hls_part_ms: u64,
    /// Keep the MPEG-TS variant of live HLS beside low-latency HLS, at
    /// `/<app>/<stream>.m3u8?format=ts`.
    pub hls_ts: bool,
    /// Seconds between live thumbnails of the platform's channels (all-in-one).
    pub thumbnail_secs: u64,
    /// Apps whose every publish is recorded to storage (`*` for all), comma-separated;
    /// `?record=1` on the publish URL or an auth-hook answer `{"record": true}` records
    /// others, `?record=0` opts out.
    pub record_apps: Vec<String>,
    /// Also write each recording as `stream.flv` beside its HLS segments.
    pub record_flv: bool,
    /// Largest tus upload accepted at `/files/` (bytes).
    pub tus_max_size: u64,
    /// Hours an unfinished tus upload lives after its last write.
    pub tus_expiration_hours: u64,
    /// Upload hook: every tus request (authorize), each new upload (pre-create) and each
    /// finished or terminated one are POSTed as JSON to this http(s):// URL; a non-2xx answer
    /// to the first two is relayed to the client.
    pub upload_hook: Option<String>,
    /// Largest read from an HTTP connection, in KiB (8–1024): request bodies (uploads)
    /// arrive in frames up to this size. 32 keeps an active upload near 210 KiB of server
    /// memory; 64 uploads ~15 % faster for twice the memory.
    pub http_read_kib: u16,
    /// Seconds an HTTP connection has to send a complete request head, from its opening or
    /// from its previous response when it idles on keep-alive; then it is closed.
    pub http_header_timeout_secs: u64,
    /// PEM certificate chain: the HTTP listener speaks TLS, HTTP/2 (ALPN h2, which Apple's
    /// players need for low-latency HLS) and HTTP/1.1. Needs `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Proxies (addresses or CIDR networks, e.g. the Nginx in front) whose word on the real
    /// client is believed: `X-Forwarded-For` / `Forwarded` on HTTP, the PROXY protocol on
    /// RTMP with `proxy_protocol`. Empty: the peer address is the client.
    pub trusted_proxies: Vec<String>,
    /// Networks whose peers may read `/metrics` (others get 404); empty: anyone.
    pub metrics_allow: Vec<String>,
    /// RTMP connections from trusted proxies start with a PROXY protocol header (v1 or v2).
    pub proxy_protocol: bool,
    /// Transcoding (the `[jobs]` table of a config file).
    #[serde(skip)]
    pub jobs: JobsConfig,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            storage: PathBuf::from("./data"),
            rtmp: SocketAddr::from(([127, 0, 0, 1], 1935)),
            http: SocketAddr::from(([127, 0, 0, 1], 8000)),
            write_interval_ms: 20,
            gop_cache: true,
            republish_grace_secs: 10,
            min_free_bytes: 1 << 30,
            tmp_ttl_secs: 86_400,
            recordings_max_age_days: None,
            recordings_max_bytes: None,
            housekeeping_secs: 60,
            publish_keys: None,
            sign_secret: None,
            sign_play: false,
            auth_hook: None,
            allow_all: false,
            event_hook: None,
            hook_secret: None,
            access_hook: None,
            key_apps: Vec::new(),
            api_token: None,
            handshake_timeout_secs: 10,
            hls: true,
            hls_apps: None,
            hls_segment_ms: 2000,
            hls_window: 6,
            hls_part_ms: 333,
            hls_ts: true,
            thumbnail_secs: 30,
            record_apps: Vec::new(),
            record_flv: false,
            tus_max_size: 64 << 30,
            tus_expiration_hours: 24,
            upload_hook: None,
            http_read_kib: 32,
            http_header_timeout_secs: 10,
            tls_cert: None,
            tls_key: None,
            trusted_proxies: Vec::new(),
            metrics_allow: Vec::new(),
            proxy_protocol: false,
            jobs: JobsConfig::default(),
        }
    }
}

/// Transcoding settings of the media role (the `[jobs]` table of a config file).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
#[allow(clippy::struct_excessive_bools)] // on/off settings
pub struct JobsConfig {
    /// PostgreSQL URL of a job queue shared by several machines; default: the embedded
    /// queue in `<storage>/queue`.
    pub jobs_db: Option<String>,
    /// Workers in this process (0: only enqueue; workers run elsewhere).
    pub transcode_workers: usize,
    /// ffmpeg processes at once in this process.
    pub ffmpeg_concurrency: usize,
    /// What a finished recording becomes.
    pub transcode_recordings: RecordingJobs,
    /// Ladder rungs by short side in pixels, comma-separated.
    pub ladder: Vec<u32>,
    /// Use fMP4 segments for the ladder (default MPEG-TS).
    pub ladder_fmp4: bool,
    /// Time limit of one job attempt, in minutes.
    pub job_timeout_mins: u64,
    /// Attempts per job.
    pub job_attempts: u32,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            jobs_db: None,
            transcode_workers: 1,
            ffmpeg_concurrency: 1,
            transcode_recordings: RecordingJobs::Remux,
            ladder: vec![1080, 720, 480, 360],
            ladder_fmp4: false,
            job_timeout_mins: 360,
            job_attempts: 3,
        }
    }
}

/// Settings of the chat role (the `[chat]` table of a config file).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
#[allow(clippy::struct_excessive_bools)] // on/off settings
pub struct ChatConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// HS256 secret of the connect tokens.
    pub jwt_secret: Option<String>,
    /// Let clients without a token read as anonymous viewers.
    pub anonymous: bool,
    /// Longest message, in characters.
    pub max_message_len: usize,
    /// Messages per user in a burst (refilled over `--rate-window-secs`).
    pub rate: u32,
    /// The rate window in seconds.
    pub rate_window_secs: u64,
    /// Rooms per connection.
    pub max_rooms: usize,
    /// Messages of history per room.
    pub history: usize,
    /// Connections per client IP address.
    pub max_connections_per_ip: usize,
    /// Engine.IO ping interval, ms.
    pub ping_interval_ms: u64,
    /// Engine.IO ping timeout, ms.
    pub ping_timeout_ms: u64,
    /// Largest client payload, bytes.
    pub max_payload: usize,
    /// Messages queued for a slow client before the oldest are dropped.
    pub queue: usize,
    /// Redis URL: rooms span every `chat-server` on this Redis (Pub/Sub, shared history,
    /// presence and moderation). Without it the chat is one process.
    pub redis: Option<String>,
    /// Prefix of the chat's Redis keys and channels.
    pub redis_prefix: String,
    /// This node's id on the bus (default: random).
    pub node_id: String,
    /// Broadcast batching, ms: in a busy room, what is broadcast within this interval
    /// reaches each member as one batch in one write (the first broadcast after a quiet
    /// interval goes at once). 0 sends each broadcast as it comes; under fan-out load,
    /// writes per second are what costs CPU.
    pub flush_ms: u64,
    /// Bind with SO_REUSEPORT: several chat-server processes share one port (the kernel
    /// spreads connections over them; with `--redis` their rooms are one).
    pub reuse_port: bool,
    /// Serve the Socket.IO v5 protocol test suite's configuration instead of the chat:
    /// echo handlers, a `/custom` namespace, 300 ms pings with a 200 ms timeout, and a
    /// 1.5 s connect timeout.
    pub test_suite: bool,
    /// Seconds a connection has to send a complete request head, from its opening or from
    /// its previous response when it idles on keep-alive; then it is closed.
    pub header_timeout_secs: u64,
    /// Proxies (addresses or CIDR networks) whose `X-Forwarded-For` / `Forwarded` name the
    /// real client (for the per-address connection limit and logs).
    pub trusted_proxies: Vec<String>,
    /// Networks whose peers may read `/metrics` (others get 404); empty: anyone.
    pub metrics_allow: Vec<String>,
    /// Origins of the pages that may use the chat from a browser (`*`: any). Their
    /// requests get CORS answers (preflights too); requests from other origins are refused.
    /// Requests without an `Origin` (non-browser clients) are always served.
    pub allowed_origins: Vec<String>,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 3001)),
            jwt_secret: None,
            anonymous: false,
            max_message_len: 500,
            rate: 20,
            rate_window_secs: 30,
            max_rooms: 10,
            history: 50,
            max_connections_per_ip: 100,
            ping_interval_ms: 25_000,
            ping_timeout_ms: 20_000,
            max_payload: 100_000,
            queue: 256,
            redis: None,
            redis_prefix: "videopick:chat".into(),
            node_id: String::new(),
            flush_ms: 20,
            reuse_port: false,
            test_suite: false,
            header_timeout_secs: 10,
            trusted_proxies: Vec::new(),
            metrics_allow: Vec::new(),
            allowed_origins: vec!["*".into()],
        }
    }
}

/// Settings of the app role (the `[app]` table of a config file).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct AppConfig {
    /// Address the app-server listens on.
    pub listen: SocketAddr,
    /// Directory of the embedded SQLite database (app-server without `db`).
    pub data: PathBuf,
    /// Database URL (`postgres://…`, `sqlite://…`); empty: SQLite under the data directory
    /// (the all-in-one: under the storage root).
    pub db: String,
    /// Redis URL of the shared cache; empty: in process.
    pub cache: String,
    /// Prefix of the cache's Redis keys.
    pub cache_prefix: String,
    /// How long a sign-in lasts, in hours.
    pub session_ttl_hours: u64,
    /// Mark the session cookie `Secure`.
    pub cookie_secure: bool,
    /// Origins besides the API's own allowed to make cookie-authenticated changes.
    pub allowed_origins: Vec<String>,
    /// The chat's token secret (the all-in-one uses the chat role's).
    pub chat_secret: Option<String>,
    /// The chat's public Socket.IO URL.
    pub chat_url: String,
    /// Shared secret of the signed hooks between machines.
    pub hook_secret: Option<String>,
    /// The media servers' shared PostgreSQL job queue (app-server); empty: none.
    pub jobs_db: String,
    /// The media server's HTTP URL for control calls (app-server); empty: none.
    pub media_api: String,
    /// The media server's API token.
    pub media_token: Option<String>,
    /// The public RTMP URL shown to creators; empty: from the RTMP listener.
    pub rtmp_url: String,
    /// The RTMP application channels publish to.
    pub live_app: String,
    /// URL prefix of media (HTTP-FLV, HLS, thumbnails) when not the API's origin.
    pub media_base: String,
    /// The built web application's directory (served at `/` when it holds `index.html`).
    pub web_dir: PathBuf,
    /// Seconds a connection has to send a complete request head.
    pub header_timeout_secs: u64,
    /// Proxies whose `X-Forwarded-For` / `Forwarded` name the real client.
    pub trusted_proxies: Vec<String>,
    /// Networks whose peers may read `/metrics` (others get 404); empty: anyone.
    pub metrics_allow: Vec<String>,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data: PathBuf::from("./data"),
            db: String::new(),
            cache: String::new(),
            cache_prefix: "videopick:app:".into(),
            session_ttl_hours: 720,
            cookie_secure: false,
            allowed_origins: Vec::new(),
            chat_secret: None,
            chat_url: String::new(),
            hook_secret: None,
            jobs_db: String::new(),
            media_api: String::new(),
            media_token: None,
            rtmp_url: String::new(),
            live_app: "live".into(),
            media_base: String::new(),
            web_dir: PathBuf::from("web/dist"),
            header_timeout_secs: 10,
            trusted_proxies: Vec::new(),
            metrics_allow: Vec::new(),
        }
    }
}
