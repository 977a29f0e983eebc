//! Recordings: a TS recorder tap (HLS segments + an EVENT playlist rewritten atomically
//! after each segment, closed into VOD with `EXT-X-ENDLIST` when the stream ends) and an
//! FLV recorder tap (`stream.flv` beside the segments), each its own tap with its own task,
//! under `recordings/` of the storage. Recordings left open by a crash are closed at the
//! next start ([`Recordings::recover`]).
//!
//! A tap runs in the publisher's task and never blocks: it hands work to its recording
//! task through a bounded queue; a recording whose disk does not keep up is stopped (its
//! playlist lists only complete segments), never allowed to grow memory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::{broadcast, mpsc};
use videopick_flv::{FlvHeader, FlvMuxer, Tag};
use videopick_hls::{
    MediaPlaylist, PlaylistEntry, PlaylistKind, Segment, Segmenter, SegmenterConfig,
};
use videopick_hooks::HookClient;
use videopick_storage::{Area, ObjectLock, RecordingId, Storage, StreamKey};

use crate::hub::{Hub, SharedTag, StreamTap, TapContext};
use crate::unix_ms;

/// Recording settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecorderConfig {
    /// Apps whose every publish is recorded (`*` for all); `?record=1` or an authorizer's
    /// grant records others, `?record=0` / `false` opts out.
    pub apps: Vec<String>,
    /// Also write `stream.flv` beside the TS segments of each recording.
    pub flv: bool,
    /// Target segment duration of the recorded HLS (default 2 s).
    pub segment: Duration,
}

impl Default for RecorderConfig {
    fn default() -> Self {
        RecorderConfig {
            apps: Vec::new(),
            flv: false,
            segment: Duration::from_secs(2),
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
    /// Its directory (a server path: kept out of public answers).
    pub dir: PathBuf,
    /// Total duration of its segments.
    pub duration: Duration,
    /// Number of segments.
    pub segments: usize,
    /// Closed at start-up after a crash (not by its stream ending).
    pub recovered: bool,
}

/// A recording event as the webhook's JSON body: `{"event": "recording", "id", "stream",
/// "duration_ms", "segments", "recovered"}` (no server paths).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RecordingBody {
    /// Always `recording`.
    pub event: &'static str,
    /// Recording id.
    pub id: String,
    /// `app/stream`.
    pub stream: String,
    /// Duration in milliseconds.
    pub duration_ms: u64,
    /// Segments.
    pub segments: usize,
    /// Closed by crash recovery.
    pub recovered: bool,
}

impl From<&RecordingEvent> for RecordingBody {
    fn from(ev: &RecordingEvent) -> RecordingBody {
        RecordingBody {
            event: "recording",
            id: ev.id.clone(),
            stream: ev.stream.clone(),
            duration_ms: u64::try_from(ev.duration.as_millis()).unwrap_or(u64::MAX),
            segments: ev.segments,
            recovered: ev.recovered,
        }
    }
}

/// Messages queued to a recording task (beyond this, the recording stops rather than let
/// memory grow behind a slow disk).
const RECORDER_QUEUE: usize = 1024;

/// The recorders of a hub's streams. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Recordings {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    storage: Storage,
    config: RecorderConfig,
    events: broadcast::Sender<RecordingEvent>,
    /// Recording tasks running, and a wake-up when one ends (for [`Recordings::drain`]).
    active: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

/// Held by a recording task: counts it as active until it ends.
struct Active(Arc<Inner>);

impl Active {
    fn new(inner: &Arc<Inner>) -> Active {
        inner
            .active
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Active(inner.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0
            .active
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.0.idle.notify_waiters();
    }
}

impl Recordings {
    /// Recordings under `storage` with `config`; [`Recordings::attach`] them to a hub.
    pub fn new(storage: Storage, config: RecorderConfig) -> Recordings {
        Recordings {
            inner: Arc::new(Inner {
                storage,
                config,
                events: broadcast::channel(256).0,
                active: std::sync::atomic::AtomicUsize::new(0),
                idle: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Wait (at most `timeout`) until every recording task has finished its writes: after
    /// [`Hub::end_all`], the recordings are closed when this returns true.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let idle = self.inner.idle.notified();
                if self.inner.active.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }

    /// Record the streams of `hub` published from now on that the configuration or the
    /// publish asks to record: a TS recorder tap, and an FLV recorder tap if configured.
    pub fn attach(&self, hub: &Hub) {
        let me = self.clone();
        hub.add_tap_factory(Arc::new(move |ctx| me.ts_tap(ctx)));
        if self.inner.config.flv {
            let me = self.clone();
            hub.add_tap_factory(Arc::new(move |ctx| me.flv_tap(ctx)));
        }
    }

    /// Closed recordings, as they happen.
    pub fn events(&self) -> broadcast::Receiver<RecordingEvent> {
        self.inner.events.subscribe()
    }

    /// Announce a recording closed elsewhere (by [`Recordings::recover`]).
    pub fn announce(&self, ev: RecordingEvent) {
        let _ = self.inner.events.send(ev);
    }

    /// POST each closed recording to `url` as [`RecordingBody`] JSON through `client`,
    /// with retries: the hand-off to transcoding.
    pub fn spawn_webhook(&self, client: HookClient, url: String) -> tokio::task::JoinHandle<()> {
        let mut rx = self.events();
        tokio::spawn(async move {
            loop {
                let ev = match rx.recv().await {
                    Ok(ev) => ev,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let _ = client.deliver(&url, &RecordingBody::from(&ev)).await;
            }
        })
    }

    /// Close every recording left open by a crash and announce each (see
    /// [`recover_recordings`]).
    pub fn recover(&self) -> Vec<RecordingEvent> {
        let found = recover_recordings(&self.inner.storage);
        for ev in &found {
            self.announce(ev.clone());
        }
        found
    }

    /// Whether `ctx`'s stream is to be recorded.
    fn wanted(&self, ctx: &TapContext) -> bool {
        let app = ctx.key.split('/').next().unwrap_or("");
        ctx.record
            .unwrap_or_else(|| crate::app_listed(&self.inner.config.apps, app))
    }

    fn ts_tap(&self, ctx: &TapContext) -> Option<Box<dyn StreamTap>> {
        if !self.wanted(ctx) {
            return None;
        }
        let (tx, rx) = mpsc::channel(RECORDER_QUEUE);
        let job = TsJob {
            _active: Active::new(&self.inner),
            storage: self.inner.storage.clone(),
            key: ctx.key.clone(),
            started: ctx.started,
            events: self.inner.events.clone(),
        };
        tokio::spawn(job.run(rx));
        Some(Box::new(TsTap {
            key: ctx.key.clone(),
            segmenter: Segmenter::new(SegmenterConfig::with_target(self.inner.config.segment)),
            tx: Some(tx),
            warned: false,
        }))
    }

    fn flv_tap(&self, ctx: &TapContext) -> Option<Box<dyn StreamTap>> {
        if !self.wanted(ctx) {
            return None;
        }
        let (tx, rx) = mpsc::channel(RECORDER_QUEUE);
        let storage = self.inner.storage.clone();
        let (key, started) = (ctx.key.clone(), ctx.started);
        let active = Active::new(&self.inner);
        tokio::spawn(async move {
            let _active = active;
            if let Err(e) = write_flv_recording(storage, &key, started, rx).await {
                tracing::warn!(stream = %key, error = %e, "flv recording stopped");
            }
        });
        Some(Box::new(FlvTap {
            key: ctx.key.clone(),
            tx: Some(tx),
        }))
    }
}

/// Send `msg` on a recording's queue; a full or closed queue stops that recording.
fn queue<T>(tx: &mut Option<mpsc::Sender<T>>, key: &str, what: &str, msg: T) {
    if let Some(sender) = tx
        && let Err(e) = sender.try_send(msg)
    {
        let why = match e {
            mpsc::error::TrySendError::Full(_) => "storage is not keeping up",
            mpsc::error::TrySendError::Closed(_) => "its writer stopped",
        };
        tracing::warn!(stream = key, why, "{what} recording stopped");
        *tx = None;
    }
}

enum TsMsg {
    Segments(Vec<Segment>),
    Finish,
}

/// Segments a recorded stream inline; its task writes the segments.
struct TsTap {
    key: String,
    segmenter: Segmenter,
    tx: Option<mpsc::Sender<TsMsg>>,
    warned: bool,
}

impl TsTap {
    fn flush(&mut self) {
        let mut done = Vec::new();
        while let Some(s) = self.segmenter.pop_segment() {
            done.push(s);
        }
        if !done.is_empty() {
            queue(&mut self.tx, &self.key, "ts", TsMsg::Segments(done));
        }
    }
}

impl StreamTap for TsTap {
    fn tag(&mut self, tag: &SharedTag) {
        if self.tx.is_none() {
            return;
        }
        if let Err(e) = self.segmenter.push(tag.tag(), SystemTime::now())
            && !self.warned
        {
            tracing::warn!(stream = %self.key, error = %e, "recording: tag skipped");
            self.warned = true;
        }
        self.flush();
    }

    fn republished(&mut self) {
        self.segmenter.discontinuity();
        self.flush();
    }

    fn ended(mut self: Box<Self>) {
        self.segmenter.finish();
        self.flush();
        queue(&mut self.tx, &self.key, "ts", TsMsg::Finish);
    }
}

enum FlvMsg {
    Tag(Tag),
    Finish,
}

/// Hands every tag of a recorded stream to its FLV writer task.
struct FlvTap {
    key: String,
    tx: Option<mpsc::Sender<FlvMsg>>,
}

impl StreamTap for FlvTap {
    fn tag(&mut self, tag: &SharedTag) {
        queue(
            &mut self.tx,
            &self.key,
            "flv",
            FlvMsg::Tag(tag.tag().clone()),
        );
    }

    fn ended(mut self: Box<Self>) {
        queue(&mut self.tx, &self.key, "flv", FlvMsg::Finish);
    }
}

/// `app/stream` → the storage stream key `app.stream` (None if either part is not a valid
/// id component).
fn stream_key(key: &str) -> Option<StreamKey> {
    let (app, stream) = key.split_once('/')?;
    StreamKey::new(format!("{app}.{stream}")).ok()
}

/// The id and directory of the recording of `key` started at `started`.
fn recording_of(
    storage: &Storage,
    key: &str,
    started: SystemTime,
) -> Result<(String, PathBuf), String> {
    let sk = stream_key(key)
        .ok_or_else(|| format!("{key:?} cannot name a recording (use [A-Za-z0-9._-])"))?;
    let id = format!("{}.{}", sk.as_str(), unix_ms(started));
    let rid = RecordingId::new(id.clone()).map_err(|e| e.to_string())?;
    let dir = storage.recording_dir(&sk, &rid);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok((id, dir))
}

/// The directory of recording `id` (`<app>.<stream>.<unix ms>`); `None` for an id that
/// does not name one.
pub fn recording_dir(storage: &Storage, id: &str) -> Option<PathBuf> {
    let rid = RecordingId::new(id).ok()?;
    let (stream, ms) = id.rsplit_once('.')?;
    if ms.is_empty() || !ms.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let sk = StreamKey::new(stream).ok()?;
    Some(storage.recording_dir(&sk, &rid))
}

/// Write an FLV recording until `Finish` (then synced) or until the tap is gone.
async fn write_flv_recording(
    storage: Storage,
    key: &str,
    started: SystemTime,
    mut rx: mpsc::Receiver<FlvMsg>,
) -> Result<(), String> {
    let key2 = key.to_string();
    let file = tokio::task::spawn_blocking(move || -> Result<std::fs::File, String> {
        let (_, dir) = recording_of(&storage, &key2, started)?;
        let path = dir.join("stream.flv");
        std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))
    })
    .await
    .map_err(|e| e.to_string())??;
    let mut file = tokio::fs::File::from_std(file);
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
    while let Some(msg) = rx.recv().await {
        match msg {
            FlvMsg::Tag(t) => {
                mux.write_tag(&t, &mut buf).map_err(|e| e.to_string())?;
                if buf.len() >= 256 * 1024 {
                    file.write_all(&buf.split())
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
            FlvMsg::Finish => {
                file.write_all(&buf.split())
                    .await
                    .map_err(|e| e.to_string())?;
                file.sync_all().await.map_err(|e| e.to_string())?;
                return Ok(());
            }
        }
    }
    // The server is stopping: keep what was received.
    file.write_all(&buf.split())
        .await
        .map_err(|e| e.to_string())?;
    file.sync_all().await.map_err(|e| e.to_string())
}

/// What a TS recording task needs.
struct TsJob {
    /// Counts this task as writing until it ends.
    _active: Active,
    storage: Storage,
    key: String,
    started: SystemTime,
    events: broadcast::Sender<RecordingEvent>,
}

impl TsJob {
    /// Write what the tap sends until `Finish` (then close the recording) or until the tap
    /// is gone without finishing (server stopping: the next start closes it).
    async fn run(self, mut rx: mpsc::Receiver<TsMsg>) {
        let key = self.key.clone();
        let storage = self.storage.clone();
        let started = self.started;
        let made = tokio::task::spawn_blocking(move || TsRecorder::start(&storage, &key, started))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
        let mut rec = match made {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(stream = %self.key, error = %e, "not recording");
                return;
            }
        };
        let mut finished = false;
        while let Some(msg) = rx.recv().await {
            match msg {
                TsMsg::Segments(s) => {
                    if let Err(e) = rec.add(s).await {
                        tracing::warn!(stream = %self.key, error = %e, "recording stopped");
                        return;
                    }
                }
                TsMsg::Finish => {
                    finished = true;
                    break;
                }
            }
        }
        if !finished {
            return; // the server is stopping: the next start closes this recording
        }
        match rec.finish().await {
            Ok(ev) => {
                tracing::info!(
                    recording = %ev.id,
                    segments = ev.segments,
                    seconds = ev.duration.as_secs_f64(),
                    "recording closed"
                );
                let _ = self.events.send(ev);
            }
            Err(e) => tracing::warn!(stream = %self.key, error = %e, "closing recording failed"),
        }
    }
}

/// Writes one TS recording.
struct TsRecorder {
    storage: Storage,
    id: String,
    key: String,
    dir: PathBuf,
    playlist: MediaPlaylist,
    _lock: ObjectLock,
}

impl TsRecorder {
    fn start(storage: &Storage, key: &str, started: SystemTime) -> Result<TsRecorder, String> {
        let (id, dir) = recording_of(storage, key, started)?;
        // Held while recording: retention sweeps and crash recovery skip this directory.
        let lock = storage.try_lock(&dir).map_err(|e| e.to_string())?;
        let mut playlist = MediaPlaylist::new(PlaylistKind::Event);
        playlist.set_independent_segments(true);
        Ok(TsRecorder {
            storage: storage.clone(),
            id,
            key: key.to_string(),
            dir,
            playlist,
            _lock: lock,
        })
    }

    /// Store `segments`, then the playlist that lists them (each file atomically, so the
    /// playlist never names a segment that is not complete on disk).
    async fn add(&mut self, segments: Vec<Segment>) -> Result<(), String> {
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
                .map(|_| ())
                .map_err(|e| e.to_string())
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
        tokio::task::spawn_blocking(move || {
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
            tracing::warn!(path = %index.display(), "unreadable recording playlist");
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
            tracing::warn!(path = %index.display(), error = %e, "closing a recording");
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
