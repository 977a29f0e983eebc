//! The roles' settings: plain structs with defaults, read from a TOML file (one table
//! per role: `[media]`, `[jobs]`, `[chat]`; every key is the flag's name with `_`) and
//! overridden by the binaries' flags and environment. See `examples/videopick.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::jobs::RecordingJobs;

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
}

/// Parse a list of trusted proxies (addresses or CIDR networks).
pub fn trusted_proxies(list: &[String]) -> Result<videopick_live::proxy::TrustedProxies, String> {
    list.join(",").parse()
}

impl FileConfig {
    /// Parse TOML text.
    pub fn parse(text: &str) -> Result<FileConfig, String> {
        let mut c: FileConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.media.jobs = c.jobs.clone();
        Ok(c)
    }

    /// Read a TOML file.
    pub fn load(path: &Path) -> Result<FileConfig, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        FileConfig::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// Settings of the media role (the `[media]` table of a config file).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
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
    /// Proxies (addresses or CIDR networks, e.g. the Nginx in front) whose word on the real
    /// client is believed: `X-Forwarded-For` / `Forwarded` on HTTP, the PROXY protocol on
    /// RTMP with `proxy_protocol`. Empty: the peer address is the client.
    pub trusted_proxies: Vec<String>,
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
            api_token: None,
            handshake_timeout_secs: 10,
            hls: true,
            hls_apps: None,
            hls_segment_ms: 2000,
            hls_window: 6,
            record_apps: Vec::new(),
            record_flv: false,
            tus_max_size: 64 << 30,
            tus_expiration_hours: 24,
            upload_hook: None,
            http_read_kib: 32,
            http_header_timeout_secs: 10,
            trusted_proxies: Vec::new(),
            proxy_protocol: false,
            jobs: JobsConfig::default(),
        }
    }
}

/// Transcoding settings of the media role (the `[jobs]` table of a config file).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
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
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
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
        }
    }
}
