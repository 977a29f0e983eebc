//! Live HLS and recordings over the RTMP hub.
//!
//! For every publish, one task subscribes to the stream and segments it once
//! ([`videopick_hls::OriginFeed`]); the segments go to the in-memory live origin (served at
//! `/<app>/<stream>.m3u8`) and, when the publish is recorded, to storage under
//! `recordings/` as TS files plus an EVENT playlist rewritten atomically after each
//! segment, closed into VOD (`EXT-X-ENDLIST`) when the stream ends. Recordings left open
//! by a crash are closed at the next start ([`recover_recordings`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use hyper::{Method, StatusCode};
use tokio::sync::{broadcast, mpsc};
use videopick_flv::{FlvHeader, FlvMuxer};
use videopick_hls::{
    LiveOrigin, MediaPlaylist, OriginConfig, OriginFeed, PlaylistEntry, PlaylistKind, Segment,
    SegmenterConfig,
};
use videopick_rtmp::auth::{json_str, post_json_with_retries};
use videopick_rtmp::hub::{Hub, SharedTag, StreamTap};
use videopick_storage::{Area, ObjectLock, RecordingId, Storage, StreamKey};

use crate::http::{HttpResponse, respond};

/// HLS and recording settings.
#[derive(Debug, Clone)]
pub struct HlsSettings {
    /// Serve live HLS at all.
    pub live: bool,
    /// Apps with live HLS (`None`: every app).
    pub live_apps: Option<Vec<String>>,
    /// Target segment duration.
    pub segment: Duration,
    /// Segments in the live playlist.
    pub window: usize,
    /// Apps whose every publish is recorded (`*` for all); `?record=1` or the auth hook's
    /// `{"record": true}` records others, `?record=0` / `false` opts out.
    pub record_apps: Vec<String>,
    /// Also write `stream.flv` beside the TS segments of each recording.
    pub record_flv: bool,
}

impl Default for HlsSettings {
    fn default() -> Self {
        HlsSettings {
            live: true,
            live_apps: None,
            segment: Duration::from_secs(2),
            window: 6,
            record_apps: Vec::new(),
            record_flv: false,
        }
    }
}

/// A recording that was closed (its playlist is VOD and ends with `EXT-X-ENDLIST`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingEvent {
    /// Recording id (`<app>.<stream>.<unix ms>`), as in `/recordings/<id>/index.m3u8`.
    pub id: String,
    /// `app/stream`.
    pub stream: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Total duration of its segments.
    pub duration: Duration,
    /// Number of segments.
    pub segments: usize,
    /// Closed at start-up after a crash (not by its stream ending).
    pub recovered: bool,
}

/// Live HLS origin + recorder. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HlsService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    storage: Storage,
    settings: HlsSettings,
    origin: Arc<LiveOrigin>,
    events: broadcast::Sender<RecordingEvent>,
}

/// Messages queued to a recording task (beyond this, the recording stops rather than let
/// memory grow behind a slow disk).
const RECORDER_QUEUE: usize = 1024;

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64
}

impl HlsService {
    /// Attach to `hub`: every new stream gets a tap that segments it inline.
    pub fn start(hub: &Hub, storage: Storage, settings: HlsSettings) -> HlsService {
        let origin = LiveOrigin::new(OriginConfig {
            segmenter: SegmenterConfig::with_target(settings.segment),
            window: settings.window,
            extra: 3,
        });
        let svc = HlsService {
            inner: Arc::new(Inner {
                storage,
                settings,
                origin,
                events: broadcast::channel(256).0,
            }),
        };
        let me = svc.clone();
        hub.set_tap_factory(Arc::new(move |key, record| me.make_tap(key, record)));
        svc
    }

    /// The live origin.
    pub fn origin(&self) -> &Arc<LiveOrigin> {
        &self.inner.origin
    }

    /// Closed recordings, as they happen.
    pub fn recordings(&self) -> broadcast::Receiver<RecordingEvent> {
        self.inner.events.subscribe()
    }

    /// POST each closed recording to `url` as JSON (`{"event":"recording","id","stream",
    /// "duration_ms","segments","recovered"}`), with retries: the hand-off to transcoding.
    pub fn spawn_recording_webhook(&self, url: String) -> tokio::task::JoinHandle<()> {
        let mut rx = self.recordings();
        tokio::spawn(async move {
            loop {
                let ev = match rx.recv().await {
                    Ok(ev) => ev,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                post_json_with_retries(&url, &recording_json(&ev)).await;
            }
        })
    }

    /// Announce recordings closed outside the service (crash recovery at start-up).
    pub fn announce(&self, ev: RecordingEvent) {
        let _ = self.inner.events.send(ev);
    }

    fn app_listed(list: &[String], app: &str) -> bool {
        list.iter().any(|a| a == "*" || a == app)
    }

    fn make_tap(&self, key: &str, record: Option<bool>) -> Option<Box<dyn StreamTap>> {
        let app = key.split('/').next().unwrap_or("");
        let s = &self.inner.settings;
        let live = s.live
            && s.live_apps
                .as_ref()
                .is_none_or(|apps| Self::app_listed(apps, app));
        let record = record.unwrap_or_else(|| Self::app_listed(&s.record_apps, app));
        if !live && !record {
            return None;
        }
        let started = SystemTime::now();
        let generation = unix_ms(started);
        // Without live HLS the segments still come from a feed, of a private origin.
        let origin = if live {
            self.inner.origin.clone()
        } else {
            LiveOrigin::new(*self.inner.origin.config())
        };
        let feed = origin.feed(key, generation);
        let recorder = record.then(|| {
            let (tx, rx) = mpsc::channel(RECORDER_QUEUE);
            let job = RecorderJob {
                storage: self.inner.storage.clone(),
                key: key.to_string(),
                started,
                flv: s.record_flv,
                events: self.inner.events.clone(),
            };
            tokio::spawn(job.run(rx));
            tx
        });
        Some(Box::new(HlsTap {
            feed,
            live,
            generation,
            recorder,
            record_flv: s.record_flv,
            warned: false,
        }))
    }

    /// Answer HLS requests: live playlists and segments, recordings.
    pub async fn route<B>(&self, req: &hyper::Request<B>) -> Option<HttpResponse> {
        let path = req.uri().path();
        #[allow(clippy::case_sensitive_file_extension_comparisons)] // the URL contract
        let ours = path.ends_with(".m3u8") || path.ends_with(".ts");
        if !ours {
            return None;
        }
        if req.method() == Method::OPTIONS {
            let mut r = cors(respond(StatusCode::NO_CONTENT, "text/plain", ""));
            r.headers_mut().insert(
                "access-control-allow-methods",
                hyper::header::HeaderValue::from_static("GET, HEAD, OPTIONS"),
            );
            return Some(r);
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return None;
        }
        let rest = path.strip_prefix('/')?;
        if let Some(rec) = rest.strip_prefix("recordings/") {
            return Some(cors(self.recording_file(rec).await));
        }
        let (app, file) = rest.split_once('/')?;
        if app.is_empty() || file.contains('/') {
            return None;
        }
        Some(cors(self.live_file(app, file)))
    }

    fn live_file(&self, app: &str, file: &str) -> HttpResponse {
        let origin = &self.inner.origin;
        if let Some(stream) = file.strip_suffix(".m3u8") {
            return match origin.playlist(&format!("{app}/{stream}")) {
                Some(text) => cached(
                    respond(StatusCode::OK, "application/vnd.apple.mpegurl", text),
                    "no-cache",
                ),
                None => not_found(),
            };
        }
        // `<stream>-<generation>-<sequence>.ts`
        let found = file.strip_suffix(".ts").and_then(|name| {
            let mut it = name.rsplitn(3, '-');
            let seq: u64 = it.next()?.parse().ok()?;
            let generation: u64 = it.next()?.parse().ok()?;
            let stream = it.next()?;
            origin.segment(&format!("{app}/{stream}"), generation, seq)
        });
        match found {
            Some(data) => cached(
                respond(StatusCode::OK, "video/mp2t", data),
                "public, max-age=31536000, immutable",
            ),
            None => not_found(),
        }
    }

    async fn recording_file(&self, rest: &str) -> HttpResponse {
        let Some((id, file)) = rest.split_once('/') else {
            return not_found();
        };
        let Some(dir) = recording_dir(&self.inner.storage, id) else {
            return not_found();
        };
        let is_segment = file
            .strip_suffix(".ts")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if file != "index.m3u8" && !is_segment {
            return not_found();
        }
        match tokio::fs::read(dir.join(file)).await {
            Ok(data) if is_segment => cached(
                respond(StatusCode::OK, "video/mp2t", data),
                "public, max-age=31536000, immutable",
            ),
            Ok(data) => {
                let ended = data.ends_with(b"#EXT-X-ENDLIST\n");
                cached(
                    respond(StatusCode::OK, "application/vnd.apple.mpegurl", data),
                    if ended {
                        "public, max-age=3600"
                    } else {
                        "no-cache"
                    },
                )
            }
            Err(_) => not_found(),
        }
    }
}

/// A recording event as the webhook JSON.
pub fn recording_json(ev: &RecordingEvent) -> String {
    format!(
        "{{\"event\":\"recording\",\"id\":{},\"stream\":{},\"duration_ms\":{},\"segments\":{},\"recovered\":{}}}",
        json_str(&ev.id),
        json_str(&ev.stream),
        ev.duration.as_millis(),
        ev.segments,
        ev.recovered
    )
}

fn cors(mut r: HttpResponse) -> HttpResponse {
    r.headers_mut().insert(
        "access-control-allow-origin",
        hyper::header::HeaderValue::from_static("*"),
    );
    r
}

fn cached(mut r: HttpResponse, value: &'static str) -> HttpResponse {
    r.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static(value),
    );
    r
}

fn not_found() -> HttpResponse {
    respond(StatusCode::NOT_FOUND, "text/plain", "not found\n")
}

/// `app/stream` → the storage stream key `app.stream` (None if either part is not a valid
/// id component).
fn stream_key(key: &str) -> Option<StreamKey> {
    let (app, stream) = key.split_once('/')?;
    StreamKey::new(format!("{app}.{stream}")).ok()
}

/// The directory of recording `id` (`<app>.<stream>.<unix ms>`).
pub fn recording_dir(storage: &Storage, id: &str) -> Option<PathBuf> {
    let rid = RecordingId::new(id).ok()?;
    let (stream, ms) = id.rsplit_once('.')?;
    if ms.is_empty() || !ms.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sk = StreamKey::new(stream).ok()?;
    Some(storage.recording_dir(&sk, &rid))
}

/// The per-stream tap: segments inline in the publisher's task; hands recording work to
/// the stream's recorder task.
struct HlsTap {
    feed: OriginFeed,
    live: bool,
    generation: u64,
    recorder: Option<mpsc::Sender<RecorderMsg>>,
    record_flv: bool,
    warned: bool,
}

enum RecorderMsg {
    Tag(videopick_flv::Tag),
    Segments(Vec<Segment>),
    Finish,
}

impl HlsTap {
    fn send(&mut self, msg: RecorderMsg) {
        if let Some(tx) = &self.recorder
            && let Err(e) = tx.try_send(msg)
        {
            let why = match e {
                mpsc::error::TrySendError::Full(_) => "storage is not keeping up",
                mpsc::error::TrySendError::Closed(_) => "its writer stopped",
            };
            eprintln!("videopick: recording of {} stopped: {why}", self.feed.key());
            self.recorder = None;
        }
    }

    fn segments(&mut self, segments: Vec<Segment>) {
        if !segments.is_empty() {
            self.send(RecorderMsg::Segments(segments));
        }
    }
}

impl StreamTap for HlsTap {
    fn tag(&mut self, tag: &SharedTag) {
        if self.record_flv {
            self.send(RecorderMsg::Tag(tag.tag().clone()));
        }
        match self.feed.push(tag.tag(), SystemTime::now()) {
            Ok(segments) => self.segments(segments),
            Err(e) if !self.warned => {
                eprintln!("videopick: hls {}: {e} (tag skipped)", self.feed.key());
                self.warned = true;
            }
            Err(_) => {}
        }
    }

    fn republished(&mut self) {
        let segments = self.feed.discontinuity();
        self.segments(segments);
    }

    fn ended(mut self: Box<Self>) {
        let last = self.feed.finish();
        self.segments(last);
        self.send(RecorderMsg::Finish);
        if self.live {
            // Keep the ended playlist (with EXT-X-ENDLIST) a little for late players.
            let origin = self.feed.origin().clone();
            let key = self.feed.key().to_string();
            let generation = self.generation;
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(async move {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        origin.remove(&key, generation);
                    });
                }
                Err(_) => origin.remove(&key, generation),
            }
        }
    }
}

/// What a recording task needs.
struct RecorderJob {
    storage: Storage,
    key: String,
    started: SystemTime,
    flv: bool,
    events: broadcast::Sender<RecordingEvent>,
}

impl RecorderJob {
    /// Write what the tap sends until `Finish` (then close the recording) or until the tap
    /// is gone without finishing (server stopping: the next start closes it).
    async fn run(self, mut rx: mpsc::Receiver<RecorderMsg>) {
        let key = self.key.clone();
        let storage = self.storage.clone();
        let (started, flv) = (self.started, self.flv);
        let made =
            tokio::task::spawn_blocking(move || Recorder::start(&storage, &key, started, flv))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r);
        let mut rec = match made {
            Ok(r) => r,
            Err(e) => {
                eprintln!("videopick: not recording {}: {e}", self.key);
                return;
            }
        };
        let mut finished = false;
        while let Some(msg) = rx.recv().await {
            let step = match msg {
                RecorderMsg::Tag(t) => {
                    rec.write_flv_tag(&t);
                    Ok(())
                }
                RecorderMsg::Segments(s) => rec.add(s).await,
                RecorderMsg::Finish => {
                    finished = true;
                    break;
                }
            };
            if let Err(e) = step {
                eprintln!("videopick: recording {} stopped: {e}", self.key);
                return;
            }
        }
        if !finished {
            return; // the server is stopping: the next start closes this recording
        }
        match rec.finish().await {
            Ok(ev) => {
                println!(
                    "videopick: recording {} closed ({} segments, {:.1} s)",
                    ev.id,
                    ev.segments,
                    ev.duration.as_secs_f64()
                );
                let _ = self.events.send(ev);
            }
            Err(e) => eprintln!("videopick: closing recording of {} failed: {e}", self.key),
        }
    }
}

/// Writes one recording.
struct Recorder {
    storage: Storage,
    id: String,
    key: String,
    dir: PathBuf,
    playlist: MediaPlaylist,
    _lock: ObjectLock,
    flv: Option<(std::fs::File, FlvMuxer, BytesMut)>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recorder({})", self.id)
    }
}

impl Recorder {
    fn start(
        storage: &Storage,
        key: &str,
        started: SystemTime,
        flv: bool,
    ) -> Result<Recorder, String> {
        let sk = stream_key(key)
            .ok_or_else(|| format!("{key:?} cannot name a recording (use [A-Za-z0-9._-])"))?;
        let id = format!("{}.{}", sk.as_str(), unix_ms(started));
        let rid = RecordingId::new(id.clone()).map_err(|e| e.to_string())?;
        let dir = storage.recording_dir(&sk, &rid);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        // Held while recording: retention sweeps and crash recovery skip this directory.
        let lock = storage.try_lock(&dir).map_err(|e| e.to_string())?;
        let flv = if flv {
            let path = dir.join("stream.flv");
            let file =
                std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut mux = FlvMuxer::new();
            let mut buf = BytesMut::new();
            mux.write_header(
                FlvHeader {
                    version: 1,
                    has_audio: true,
                    has_video: true,
                },
                &mut buf,
            );
            Some((file, mux, buf))
        } else {
            None
        };
        let mut playlist = MediaPlaylist::new(PlaylistKind::Event);
        playlist.set_independent_segments(true);
        Ok(Recorder {
            storage: storage.clone(),
            id,
            key: key.to_string(),
            dir,
            playlist,
            _lock: lock,
            flv,
        })
    }

    fn write_flv_tag(&mut self, tag: &videopick_flv::Tag) {
        if let Some((_, mux, buf)) = &mut self.flv {
            let _ = mux.write_tag(tag, buf);
        }
    }

    /// Store `segments`, then the playlist that lists them (each file atomically, so the
    /// playlist never names a segment that is not complete on disk).
    async fn add(&mut self, segments: Vec<Segment>) -> Result<(), String> {
        if segments.is_empty() {
            return Ok(());
        }
        for s in &segments {
            self.playlist.push(PlaylistEntry {
                sequence: s.sequence,
                uri: format!("{}.ts", s.sequence),
                duration: s.duration,
                discontinuity: s.discontinuity,
                program_date_time: Some(s.program_date_time),
            });
        }
        let text = Bytes::from(self.playlist.render());
        let flv = self
            .flv
            .as_mut()
            .map(|(f, _, buf)| (f.try_clone(), buf.split().freeze()));
        let storage = self.storage.clone();
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            for s in &segments {
                let path = dir.join(format!("{}.ts", s.sequence));
                storage
                    .write_atomic(&path, &s.data)
                    .map_err(|e| e.to_string())?;
            }
            storage
                .write_atomic(dir.join("index.m3u8"), &text)
                .map_err(|e| e.to_string())?;
            if let Some((file, data)) = flv {
                use std::io::Write as _;
                let mut f = file.map_err(|e| e.to_string())?;
                f.write_all(&data).map_err(|e| e.to_string())?;
            }
            Ok(())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    async fn finish(mut self) -> Result<RecordingEvent, String> {
        self.playlist.set_kind(PlaylistKind::Vod);
        self.playlist.end();
        let text = self.playlist.render();
        let storage = self.storage.clone();
        let path = self.dir.join("index.m3u8");
        let flv = self
            .flv
            .take()
            .map(|(file, _, mut buf)| (file, buf.split().freeze()));
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            if let Some((mut file, data)) = flv {
                use std::io::Write as _;
                file.write_all(&data).map_err(|e| e.to_string())?;
                file.sync_all().map_err(|e| e.to_string())?;
            }
            storage
                .write_atomic(path, text.as_bytes())
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        Ok(RecordingEvent {
            id: self.id.clone(),
            stream: self.key.clone(),
            dir: self.dir.clone(),
            duration: self.playlist.duration(),
            segments: self.playlist.entries().len(),
            recovered: false,
        })
    }
}

/// Close every recording left open by a crash: list only segments that are complete on
/// disk, make the playlist VOD with `EXT-X-ENDLIST`, write it atomically. Recordings whose
/// lock is held (being written by a running server) are left alone.
pub fn recover_recordings(storage: &Storage) -> Vec<RecordingEvent> {
    let mut out = Vec::new();
    let root = storage.area_dir(Area::Recordings);
    for rec in dirs_at_depth(&root, 4) {
        let index = rec.join("index.m3u8");
        let Ok(text) = std::fs::read_to_string(&index) else {
            continue;
        };
        let Ok(playlist) = MediaPlaylist::parse(&text) else {
            eprintln!(
                "videopick: unreadable recording playlist {}",
                index.display()
            );
            continue;
        };
        if playlist.is_ended() {
            continue;
        }
        let Ok(_lock) = storage.try_lock(&rec) else {
            continue;
        };
        let mut closed = MediaPlaylist::new(PlaylistKind::Vod);
        closed.set_independent_segments(true);
        for e in playlist.entries() {
            let complete = std::fs::metadata(rec.join(&e.uri))
                .is_ok_and(|m| m.len() > 0 && m.len() % 188 == 0);
            if complete {
                closed.push(e.clone());
            }
        }
        closed.end();
        if let Err(e) = storage.write_atomic(&index, closed.render().as_bytes()) {
            eprintln!("videopick: closing {}: {e}", index.display());
            continue;
        }
        let id = rec
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stream = id
            .rsplit_once('.')
            .map(|(s, _)| s.replacen('.', "/", 1))
            .unwrap_or_default();
        out.push(RecordingEvent {
            id,
            stream,
            dir: rec.clone(),
            duration: closed.duration(),
            segments: closed.entries().len(),
            recovered: true,
        });
    }
    out
}

fn dirs_at_depth(root: &Path, depth: usize) -> Vec<PathBuf> {
    let mut level = vec![root.to_path_buf()];
    for _ in 0..depth {
        let mut next = Vec::new();
        for d in level {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    next.push(e.path());
                }
            }
        }
        level = next;
    }
    level.sort();
    level
}
