//! A live HLS origin: per-stream rolling windows in memory (shared `Bytes`), fed by any
//! source of FLV tags, read by any HTTP server.
//!
//! Each stream gets low-latency HLS — CMAF parts and segments listed in a
//! [`LowLatencyPlaylist`] as they are cut — and, if configured, the classic MPEG-TS
//! variant. [`LiveOrigin::feed`] starts (or restarts) a stream and returns the
//! [`OriginFeed`] that owns its segmenters. Resource names carry the feed's generation
//! (`<stream>-<gen>-<seq>.ts`, `<stream>-<gen>-<msn>.<part>.m4s`,
//! `<stream>-<gen>-<msn>.m4s`, `<stream>-<gen>-init<n>.mp4`), so a URI never names two
//! different things and everything but the playlists can be cached as immutable.
//!
//! Blocking playlist reloads and requests for a hinted part wait with
//! [`LiveOrigin::part_ready`], a runtime-agnostic future woken once per new part of its
//! stream, however many requests wait on it; the caller adds its own timeout.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use videopick_flv::{Tag, TagKind};
//! use videopick_hls::origin::{LiveOrigin, OriginConfig};
//!
//! let origin = LiveOrigin::new(OriginConfig::default());
//! let mut feed = origin.feed("live/cam", 7);
//! let now = SystemTime::now();
//! feed.push(&Tag::new(TagKind::Audio, 0, &b"\xaf\x00\x12\x10"[..]), now)?;
//! for i in 0..100u32 {
//!     feed.push(&Tag::new(TagKind::Audio, i * 23, &b"\xaf\x01\x21\x10\x04"[..]), now)?;
//! }
//! // 2.3 s of audio: the first 2 s segment is complete and listed in both variants.
//! let ts = String::from_utf8(origin.playlist("live/cam").unwrap().to_vec()).unwrap();
//! assert!(ts.contains("cam-7-0.ts"));
//! assert_eq!(origin.segment("live/cam", 7, 0).unwrap().len() % 188, 0);
//! assert!(origin.segment("live/cam", 7, 1).is_none()); // still being written
//!
//! let ll = String::from_utf8(origin.ll_playlist("live/cam", false).unwrap().to_vec()).unwrap();
//! assert!(ll.contains("#EXT-X-MAP:URI=\"cam-7-init0.mp4\""));
//! assert!(ll.contains("#EXT-X-PART:DURATION=0.3"));
//! assert!(ll.contains("\ncam-7-0.m4s\n"));
//! assert!(origin.ll_part("live/cam", 7, 0, 0).is_some());
//! assert!(origin.ll_part("live/cam", 7, 1, 0).is_none()); // the part being written
//! # Ok::<(), videopick_hls::HlsError>(())
//! ```

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use videopick_flv::Tag;

use crate::cmaf::{CmafConfig, CmafEvent, CmafSegmenter};
use crate::error::Result;
use crate::llhls::{LlPart, LowLatencyPlaylist};
use crate::playlist::{MediaPlaylist, PlaylistEntry, PlaylistKind};
use crate::segmenter::{MediaInfo, Segment, Segmenter, SegmenterConfig};

/// A resource of the low-latency variant as the buffers it was written in (a part: its
/// `moof` and `mdat` header, then the samples as they arrived; a segment: its parts): served
/// with one vectored write, never copied into one buffer.
///
/// Clones share the buffers and one [attachment](Chunks::attachment): a value the IO layer
/// keeps with these bytes for as long as any clone lives (a file holding a copy of them, to
/// send with `sendfile`, say).
#[derive(Clone)]
pub struct Chunks(Arc<ChunksInner>);

struct ChunksInner {
    bufs: Box<[Bytes]>,
    attached: std::sync::OnceLock<Arc<dyn std::any::Any + Send + Sync>>,
}

impl Chunks {
    /// The buffers as one resource.
    pub fn new(bufs: Vec<Bytes>) -> Chunks {
        Chunks(Arc::new(ChunksInner {
            bufs: bufs.into_boxed_slice(),
            attached: std::sync::OnceLock::new(),
        }))
    }

    /// The buffers, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &Bytes> {
        self.0.bufs.iter()
    }

    /// Total size in bytes.
    pub fn len(&self) -> usize {
        self.0.bufs.iter().map(Bytes::len).sum()
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes in one buffer (a copy: for tests and small consumers).
    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(self.len());
        for c in &self.0.bufs {
            b.extend_from_slice(c);
        }
        b.freeze()
    }

    /// The value attached to these bytes, made by `make` on first use (when `make` returns
    /// `None`, nothing is attached and the next call tries again). Every clone sees the same
    /// value; it is dropped with the last clone. `None` also when a value of another type is
    /// attached.
    pub fn attachment<T: std::any::Any + Send + Sync>(
        &self,
        make: impl FnOnce(&Chunks) -> Option<T>,
    ) -> Option<Arc<T>> {
        let attached = if let Some(a) = self.0.attached.get() {
            Arc::clone(a)
        } else {
            let made: Arc<dyn std::any::Any + Send + Sync> = Arc::new(make(self)?);
            // Two first users may both make one: the first stored wins.
            Arc::clone(self.0.attached.get_or_init(|| made))
        };
        attached.downcast::<T>().ok()
    }
}

impl PartialEq for Chunks {
    fn eq(&self, other: &Chunks) -> bool {
        self.0.bufs == other.0.bufs
    }
}

impl Eq for Chunks {}

impl std::fmt::Debug for Chunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunks")
            .field("buffers", &self.0.bufs.len())
            .field("len", &self.len())
            .field("attached", &self.0.attached.get().is_some())
            .finish()
    }
}

/// Origin settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginConfig {
    /// Segmenting (target duration …) of the TS variant; the CMAF segments use the same
    /// target.
    pub segmenter: SegmenterConfig,
    /// Segments listed in the TS playlist (default 6).
    pub window: usize,
    /// Segments kept in memory beyond the window, for players holding an older playlist
    /// (default 3).
    pub extra: usize,
    /// Low-latency HLS: the part target (default 333 ms); `None` turns it off.
    pub part_target: Option<Duration>,
    /// Segments listed in the low-latency playlist (default 12: long enough for delta
    /// updates to skip some).
    pub ll_window: usize,
    /// Keep the MPEG-TS variant too (default on).
    pub ts: bool,
}

impl Default for OriginConfig {
    fn default() -> Self {
        OriginConfig {
            segmenter: SegmenterConfig::default(),
            window: 6,
            extra: 3,
            part_target: Some(Duration::from_millis(333)),
            ll_window: 12,
            ts: true,
        }
    }
}

#[derive(Debug)]
struct TsState {
    playlist: MediaPlaylist,
    text: Bytes,
    segments: VecDeque<(u64, Bytes)>,
}

#[derive(Debug)]
struct LlState {
    playlist: LowLatencyPlaylist,
    /// Rendered on the first request after a change (none while nobody watches): the
    /// whole playlist and the delta update.
    full: Option<Bytes>,
    delta: Option<Bytes>,
    inits: VecDeque<(u32, Bytes)>,
    /// Parts held, by (segment, part).
    parts: VecDeque<(u64, u32, Chunks)>,
    /// Complete segments (their parts' buffers).
    segments: VecDeque<(u64, Chunks)>,
    /// The open segment's parts' buffers, for its whole-segment resource.
    open: Vec<Bytes>,
    init: u32,
    /// A segment is complete (the playlist is served from then on, so that players
    /// without low-latency support find something to play).
    started: bool,
}

#[derive(Debug)]
struct StreamState {
    generation: u64,
    ts: Option<TsState>,
    ll: Option<LlState>,
    info: MediaInfo,
    /// The feed ended (or a newer one replaced it).
    closed: bool,
    /// Requests waiting for the next part.
    waiters: Vec<Waker>,
}

impl StreamState {
    /// Whether a request waiting for part `part` of segment `msn` (or the segment) has its
    /// answer: the part (or something later) exists, or the stream ended or was replaced.
    fn part_ready(&self, msn: u64, part: Option<u32>) -> bool {
        self.closed
            || self
                .ll
                .as_ref()
                .is_none_or(|l| l.playlist.is_ended() || l.playlist.has_part(msn, part))
    }

    fn wake(&mut self) {
        for w in self.waiters.drain(..) {
            w.wake();
        }
    }
}

#[derive(Debug)]
struct OriginStream {
    name: String,
    state: Mutex<StreamState>,
}

/// What a blocking playlist request should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocking {
    /// Answer with the playlist.
    Ready,
    /// Wait for [`LiveOrigin::part_ready`] (with a timeout of
    /// [`LiveOrigin::block_timeout`]).
    Wait,
    /// Too far ahead: 400 Bad Request.
    TooFar,
}

/// A part or segment of the low-latency variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LlResource {
    /// Here it is.
    Ready(Chunks),
    /// The hinted next part: wait for it, then ask again.
    Pending,
}

/// The origin: live streams by key (`app/stream`). Cheap to share (`Arc`).
#[derive(Debug)]
pub struct LiveOrigin {
    config: OriginConfig,
    streams: RwLock<HashMap<String, Arc<OriginStream>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LiveOrigin {
    /// An origin with no streams.
    pub fn new(config: OriginConfig) -> Arc<LiveOrigin> {
        Arc::new(LiveOrigin {
            config,
            streams: RwLock::new(HashMap::new()),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OriginConfig {
        &self.config
    }

    /// Start feeding `key` as generation `generation` (e.g. the publish time in ms),
    /// replacing whatever the origin held for it.
    pub fn feed(self: &Arc<Self>, key: &str, generation: u64) -> OriginFeed {
        let name = key.rsplit('/').next().unwrap_or(key).to_string();
        let c = self.config;
        let stream = Arc::new(OriginStream {
            name,
            state: Mutex::new(StreamState {
                generation,
                ts: c.ts.then(|| TsState {
                    playlist: MediaPlaylist::new(PlaylistKind::Live { window: c.window }),
                    text: Bytes::new(),
                    segments: VecDeque::new(),
                }),
                ll: c.part_target.map(|part| LlState {
                    playlist: LowLatencyPlaylist::new(part, c.ll_window),
                    full: None,
                    delta: None,
                    inits: VecDeque::new(),
                    parts: VecDeque::new(),
                    segments: VecDeque::new(),
                    open: Vec::new(),
                    init: 0,
                    started: false,
                }),
                info: MediaInfo::default(),
                closed: false,
                waiters: Vec::new(),
            }),
        });
        let old = self
            .streams
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_string(), stream.clone());
        if let Some(old) = old {
            let mut st = lock(&old.state);
            st.closed = true;
            st.wake();
        }
        OriginFeed {
            origin: self.clone(),
            key: key.to_string(),
            stream,
            segmenter: c.ts.then(|| Segmenter::new(c.segmenter)),
            cmaf: c.part_target.map(|part_target| {
                CmafSegmenter::new(CmafConfig {
                    part_target,
                    segment_target: c.segmenter.target_duration,
                    max_segment: c.segmenter.max_segment_duration,
                    jump_threshold: c.segmenter.jump_threshold,
                })
            }),
            extra: c.extra,
        }
    }

    fn stream(&self, key: &str) -> Option<Arc<OriginStream>> {
        self.streams
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// The live TS playlist of `key`, once it has a complete segment.
    pub fn playlist(&self, key: &str) -> Option<Bytes> {
        let s = self.stream(key)?;
        let st = lock(&s.state);
        let ts = st.ts.as_ref()?;
        (!ts.text.is_empty()).then(|| ts.text.clone())
    }

    /// TS segment `sequence` of generation `generation` of `key`, if still held.
    pub fn segment(&self, key: &str, generation: u64, sequence: u64) -> Option<Bytes> {
        let s = self.stream(key)?;
        let st = lock(&s.state);
        if st.generation != generation {
            return None;
        }
        st.ts
            .as_ref()?
            .segments
            .iter()
            .find(|(n, _)| *n == sequence)
            .map(|(_, b)| b.clone())
    }

    /// The low-latency playlist of `key` (whole, or as a delta update), once it has a
    /// complete segment.
    pub fn ll_playlist(&self, key: &str, skip: bool) -> Option<Bytes> {
        let s = self.stream(key)?;
        let mut st = lock(&s.state);
        let ll = st.ll.as_mut().filter(|l| l.started)?;
        let slot = if skip { &mut ll.delta } else { &mut ll.full };
        Some(
            slot.get_or_insert_with(|| Bytes::from(ll.playlist.render(skip)))
                .clone(),
        )
    }

    /// What a blocking reload of `key` for part `part` of segment `msn` (or the whole
    /// segment) should do now (`None`: no such stream).
    pub fn blocking(&self, key: &str, msn: u64, part: Option<u32>) -> Option<Blocking> {
        let s = self.stream(key)?;
        let st = lock(&s.state);
        let ll = st.ll.as_ref()?;
        Some(if st.part_ready(msn, part) {
            Blocking::Ready
        } else if ll.playlist.too_far(msn, part) {
            Blocking::TooFar
        } else {
            Blocking::Wait
        })
    }

    /// How long a blocking request may wait: three target durations (RFC 8216bis
    /// §6.2.5.2), then 503.
    pub fn block_timeout(&self, key: &str) -> Duration {
        self.stream(key)
            .and_then(|s| {
                lock(&s.state)
                    .ll
                    .as_ref()
                    .map(|l| l.playlist.target_duration() * 3)
            })
            .unwrap_or(self.config.segmenter.target_duration * 3)
    }

    /// Resolves when `key` has part `part` of segment `msn` (or the segment, or
    /// something later), or the stream ends or is replaced. Woken once per new part.
    pub fn part_ready(&self, key: &str, msn: u64, part: Option<u32>) -> PartReady {
        PartReady {
            stream: self.stream(key),
            msn,
            part,
        }
    }

    /// `f` on the low-latency state of `key`, if it is generation `generation`.
    fn with_ll<T>(
        &self,
        key: &str,
        generation: u64,
        f: impl FnOnce(&StreamState, &LlState) -> Option<T>,
    ) -> Option<T> {
        let s = self.stream(key)?;
        let st = lock(&s.state);
        if st.generation != generation {
            return None;
        }
        f(&st, st.ll.as_ref()?)
    }

    /// Init segment `n` of generation `generation` of `key`.
    pub fn ll_init(&self, key: &str, generation: u64, n: u32) -> Option<Bytes> {
        self.with_ll(key, generation, |_, ll| {
            ll.inits
                .iter()
                .find(|(i, _)| *i == n)
                .map(|(_, b)| b.clone())
        })
    }

    /// Part `part` of segment `msn`: held, or the hinted next part (not written yet).
    pub fn ll_part_or_hint(
        &self,
        key: &str,
        generation: u64,
        msn: u64,
        part: u32,
    ) -> Option<LlResource> {
        self.with_ll(key, generation, |st, ll| {
            if let Some((_, _, b)) = ll.parts.iter().find(|(m, p, _)| *m == msn && *p == part) {
                return Some(LlResource::Ready(b.clone()));
            }
            // The preload hint names the part after the newest.
            let hinted = ll.playlist.last_part().map(|(m, p)| (m, p + 1));
            (!st.closed && hinted == Some((msn, part))).then_some(LlResource::Pending)
        })
    }

    /// Part `part` of segment `msn` if it is held.
    pub fn ll_part(&self, key: &str, generation: u64, msn: u64, part: u32) -> Option<Chunks> {
        match self.ll_part_or_hint(key, generation, msn, part)? {
            LlResource::Ready(b) => Some(b),
            LlResource::Pending => None,
        }
    }

    /// Complete CMAF segment `msn`.
    pub fn ll_segment(&self, key: &str, generation: u64, msn: u64) -> Option<Chunks> {
        self.with_ll(key, generation, |_, ll| {
            ll.segments
                .iter()
                .find(|(n, _)| *n == msn)
                .map(|(_, b)| b.clone())
        })
    }

    /// Codecs, resolution and bitrate of `key`.
    pub fn media_info(&self, key: &str) -> Option<MediaInfo> {
        Some(lock(&self.stream(key)?.state).info.clone())
    }

    /// Keys of the streams held.
    pub fn keys(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .streams
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// Forget `key` if it is still generation `generation` (a newer feed is kept).
    pub fn remove(&self, key: &str, generation: u64) {
        let mut streams = self.streams.write().unwrap_or_else(PoisonError::into_inner);
        if streams
            .get(key)
            .is_some_and(|s| lock(&s.state).generation == generation)
            && let Some(s) = streams.remove(key)
        {
            let mut st = lock(&s.state);
            st.closed = true;
            st.wake();
        }
    }
}

/// The future of [`LiveOrigin::part_ready`].
#[derive(Debug)]
pub struct PartReady {
    stream: Option<Arc<OriginStream>>,
    msn: u64,
    part: Option<u32>,
}

impl Future for PartReady {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(s) = &self.stream else {
            return Poll::Ready(());
        };
        let mut st = lock(&s.state);
        if st.part_ready(self.msn, self.part) {
            return Poll::Ready(());
        }
        if !st.waiters.iter().any(|w| w.will_wake(cx.waker())) {
            st.waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Feeds one stream of a [`LiveOrigin`]; owns its segmenters.
#[derive(Debug)]
pub struct OriginFeed {
    origin: Arc<LiveOrigin>,
    key: String,
    stream: Arc<OriginStream>,
    segmenter: Option<Segmenter>,
    cmaf: Option<CmafSegmenter>,
    extra: usize,
}

impl OriginFeed {
    /// The stream key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The origin this feeds.
    pub fn origin(&self) -> &Arc<LiveOrigin> {
        &self.origin
    }

    /// Feed a tag; returns the TS segments it completed (already listed in the playlist),
    /// for callers that also record them.
    pub fn push(&mut self, tag: &Tag, now: SystemTime) -> Result<Vec<Segment>> {
        let ts = match &mut self.segmenter {
            Some(s) => s.push(tag, now),
            None => Ok(()),
        };
        let ll = match &mut self.cmaf {
            Some(c) => c.push(tag, now),
            None => Ok(()),
        };
        let done = self.publish();
        ts.and(ll).map(|()| done)
    }

    /// A new publisher (or new codec parameters): the next segment starts a discontinuity.
    pub fn discontinuity(&mut self) -> Vec<Segment> {
        if let Some(s) = &mut self.segmenter {
            s.discontinuity();
        }
        if let Some(c) = &mut self.cmaf {
            c.discontinuity();
        }
        self.publish()
    }

    /// The stream ended: publish the last segment and end the playlists (EXT-X-ENDLIST).
    pub fn finish(&mut self) -> Vec<Segment> {
        if let Some(s) = &mut self.segmenter {
            s.finish();
        }
        if let Some(c) = &mut self.cmaf {
            c.finish();
        }
        let done = self.publish();
        let mut st = lock(&self.stream.state);
        if let Some(ts) = &mut st.ts {
            ts.playlist.end();
            ts.text = Bytes::from(ts.playlist.render());
        }
        if let Some(ll) = &mut st.ll {
            ll.playlist.end();
            ll.full = None;
            ll.delta = None;
        }
        st.closed = true;
        st.wake();
        done
    }

    /// The TS segmenter (media info, skipped tags …), if the TS variant is on.
    pub fn segmenter(&self) -> Option<&Segmenter> {
        self.segmenter.as_ref()
    }

    fn publish(&mut self) -> Vec<Segment> {
        let mut done = Vec::new();
        if let Some(s) = &mut self.segmenter {
            while let Some(seg) = s.pop_segment() {
                done.push(seg);
            }
        }
        let mut events = Vec::new();
        if let Some(c) = &mut self.cmaf {
            while let Some(e) = c.pop() {
                events.push(e);
            }
        }
        if done.is_empty() && events.is_empty() {
            return done;
        }
        let info = match (&self.segmenter, &self.cmaf) {
            (Some(s), _) => s.media_info(),
            (None, Some(c)) => c.media_info(),
            (None, None) => MediaInfo::default(),
        };
        let name = &self.stream.name;
        let mut st = lock(&self.stream.state);
        let generation = st.generation;
        if let Some(ts) = &mut st.ts
            && !done.is_empty()
        {
            for seg in &done {
                ts.playlist.push(PlaylistEntry {
                    sequence: seg.sequence,
                    uri: format!("{name}-{generation}-{}.ts", seg.sequence),
                    duration: seg.duration,
                    discontinuity: seg.discontinuity,
                    program_date_time: Some(seg.program_date_time),
                });
                ts.segments.push_back((seg.sequence, seg.data.clone()));
                // Everything listed, plus a few older ones for players with an older
                // playlist.
                let keep = ts.playlist.entries().len() + self.extra;
                while ts.segments.len() > keep {
                    ts.segments.pop_front();
                }
            }
            ts.text = Bytes::from(ts.playlist.render());
        }
        let mut new_part = false;
        if let Some(ll) = &mut st.ll
            && !events.is_empty()
        {
            for e in events {
                new_part |= apply(ll, e, name, generation, self.extra);
            }
            ll.full = None;
            ll.delta = None;
        }
        st.info = info;
        if new_part {
            st.wake();
        }
        done
    }
}

/// Drop the init segments that neither the playlist nor the next part names.
fn prune_inits(ll: &mut LlState, name: &str, generation: u64) {
    let current = ll.init;
    let named: Vec<&str> = ll.playlist.segments().map(|s| s.map.as_str()).collect();
    ll.inits.retain(|(n, _)| {
        *n == current || named.contains(&format!("{name}-{generation}-init{n}.mp4").as_str())
    });
}

/// Apply one CMAF event to the low-latency state; whether it added a part.
fn apply(ll: &mut LlState, e: CmafEvent, name: &str, generation: u64, extra: usize) -> bool {
    let map = |n: u32| format!("{name}-{generation}-init{n}.mp4");
    match e {
        CmafEvent::Init(bytes) => {
            if !ll.inits.is_empty() {
                ll.init += 1;
            }
            ll.inits.push_back((ll.init, bytes));
            prune_inits(ll, name, generation);
            false
        }
        CmafEvent::Part(p) => {
            if ll
                .playlist
                .segments()
                .last()
                .is_none_or(|s| s.sequence != p.segment || s.complete.is_some())
            {
                // The first part of a segment opens it; its details come at its end, but
                // the playlist needs its discontinuity and date now: the segmenter knows.
                ll.playlist.open_segment(
                    p.segment,
                    p.discontinuity,
                    p.program_date_time,
                    map(ll.init),
                );
                ll.open.clear();
            }
            let mut chunks = Vec::with_capacity(1 + p.fragment.payload.len());
            chunks.push(p.fragment.header);
            chunks.extend(p.fragment.payload);
            ll.open.extend(chunks.iter().cloned());
            ll.parts
                .push_back((p.segment, p.index, Chunks::new(chunks)));
            ll.playlist.push_part(LlPart::new(
                p.duration,
                p.independent,
                format!("{name}-{generation}-{}.{}.m4s", p.segment, p.index),
            ));
            ll.playlist.set_preload_hint(Some(format!(
                "{name}-{generation}-{}.{}.m4s",
                p.segment,
                p.index + 1
            )));
            true
        }
        CmafEvent::SegmentEnd {
            sequence, duration, ..
        } => {
            ll.playlist
                .close_segment(format!("{name}-{generation}-{sequence}.m4s"), duration);
            let open = std::mem::take(&mut ll.open);
            ll.segments.push_back((sequence, Chunks::new(open)));
            ll.started = true;
            let listed = ll.playlist.segments().len();
            while ll.segments.len() > listed + extra {
                ll.segments.pop_front();
            }
            // Parts of the segments whose parts are listed, and of two before them for
            // players holding an older playlist.
            let oldest = ll
                .playlist
                .parts_listed_from()
                .map_or(0, |m| m.saturating_sub(2));
            while ll.parts.front().is_some_and(|(m, _, _)| *m < oldest) {
                ll.parts.pop_front();
            }
            prune_inits(ll, name, generation);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use videopick_flv::TagKind;

    use super::*;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Push AAC frames (23 ms each) until `origin` lists a new part; returns the new last
    /// part.
    fn until_next_part(origin: &LiveOrigin, feed: &mut OriginFeed, ts: &mut u32) -> (u64, u32) {
        let before = last(origin);
        loop {
            *ts += 23;
            feed.push(
                &Tag::new(TagKind::Audio, *ts, &b"\xaf\x01\x21\x10\x04"[..]),
                SystemTime::UNIX_EPOCH,
            )
            .unwrap();
            let now = last(origin);
            if now != before {
                return now;
            }
        }
    }

    fn last(origin: &LiveOrigin) -> (u64, u32) {
        let s = origin.stream("live/a").unwrap();
        let st = lock(&s.state);
        st.ll
            .as_ref()
            .unwrap()
            .playlist
            .last_part()
            .unwrap_or((0, 0))
    }

    #[test]
    fn an_attachment_is_made_once_and_shared_by_every_clone() {
        let chunks = Chunks::new(vec![
            Bytes::from_static(b"moof"),
            Bytes::from_static(b"mdat"),
        ]);
        let clone = chunks.clone();
        assert!(chunks.attachment(|_| None::<usize>).is_none()); // nothing made: try again
        let made = std::sync::atomic::AtomicUsize::new(0);
        let make = |c: &Chunks| {
            made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Some(c.len())
        };
        assert_eq!(chunks.attachment(make).as_deref(), Some(&8));
        assert_eq!(clone.attachment(make).as_deref(), Some(&8));
        assert_eq!(made.load(std::sync::atomic::Ordering::Relaxed), 1);
        // Another type is not what is attached.
        assert!(clone.attachment(|_| Some("text")).is_none());
        assert_eq!(chunks.to_bytes(), Bytes::from_static(b"moofmdat"));
        assert_eq!(
            chunks,
            Chunks::new(vec![
                Bytes::from_static(b"moof"),
                Bytes::from_static(b"mdat")
            ])
        );
    }

    #[test]
    fn a_thousand_waiting_requests_are_woken_once_by_one_part() {
        let origin = LiveOrigin::new(OriginConfig::default());
        let mut feed = origin.feed("live/a", 1);
        let mut ts = 0;
        feed.push(
            &Tag::new(TagKind::Audio, 0, &b"\xaf\x00\x12\x10"[..]),
            SystemTime::UNIX_EPOCH,
        )
        .unwrap();
        // Past the first segment, so the playlist is served.
        // Past the first segment (so the playlist is served), at the first part of a
        // segment (so the next two parts are in the same one).
        while origin.ll_playlist("live/a", false).is_none() || last(&origin).1 != 0 {
            until_next_part(&origin, &mut feed, &mut ts);
        }
        let (msn, part) = last(&origin);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut next: Vec<_> = (0..1000)
            .map(|_| Box::pin(origin.part_ready("live/a", msn, Some(part + 1))))
            .collect();
        // And one asking two parts ahead.
        let mut later = Box::pin(origin.part_ready("live/a", msn, Some(part + 2)));
        for f in &mut next {
            assert!(f.as_mut().poll(&mut cx).is_pending());
        }
        assert!(later.as_mut().poll(&mut cx).is_pending());
        // Waiting costs nothing: no wake-up before the part.
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        assert_eq!(
            origin.blocking("live/a", msn, Some(part + 1)),
            Some(Blocking::Wait)
        );

        let got = until_next_part(&origin, &mut feed, &mut ts);
        // One task polling them all registered its waker once: one wake-up for the part,
        // and every waiting future is now ready.
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        for f in &mut next {
            assert!(f.as_mut().poll(&mut cx).is_ready(), "{got:?}");
        }
        // The one further ahead waits on (and was woken to re-check).
        assert!(later.as_mut().poll(&mut cx).is_pending());
        let before = count.0.load(Ordering::SeqCst);
        until_next_part(&origin, &mut feed, &mut ts);
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            before + 1,
            "one wake-up per part"
        );
        assert!(later.as_mut().poll(&mut cx).is_ready());

        // Ending the stream wakes and releases everyone.
        let mut ended = Box::pin(origin.part_ready("live/a", msn + 100, None));
        assert!(ended.as_mut().poll(&mut cx).is_pending());
        feed.finish();
        assert!(ended.as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn each_waiting_request_is_woken_once_per_part() {
        let origin = LiveOrigin::new(OriginConfig::default());
        let mut feed = origin.feed("live/a", 1);
        let mut ts = 0;
        feed.push(
            &Tag::new(TagKind::Audio, 0, &b"\xaf\x00\x12\x10"[..]),
            SystemTime::UNIX_EPOCH,
        )
        .unwrap();
        while origin.ll_playlist("live/a", false).is_none() {
            until_next_part(&origin, &mut feed, &mut ts);
        }
        let (msn, part) = last(&origin);
        // 1,000 requests, each with its own waker (as 1,000 connections have).
        let counts: Vec<_> = (0..1000)
            .map(|_| Arc::new(Count(AtomicUsize::new(0))))
            .collect();
        let mut futures: Vec<_> = (0..1000)
            .map(|_| Box::pin(origin.part_ready("live/a", msn, Some(part + 1))))
            .collect();
        for (f, c) in futures.iter_mut().zip(&counts) {
            let w = Waker::from(c.clone());
            assert!(f.as_mut().poll(&mut Context::from_waker(&w)).is_pending());
            // A spurious re-poll does not register twice.
            assert!(f.as_mut().poll(&mut Context::from_waker(&w)).is_pending());
        }
        until_next_part(&origin, &mut feed, &mut ts);
        for (f, c) in futures.iter_mut().zip(&counts) {
            assert_eq!(c.0.load(Ordering::SeqCst), 1, "woken exactly once");
            let w = Waker::from(c.clone());
            assert!(f.as_mut().poll(&mut Context::from_waker(&w)).is_ready());
        }
        // Nobody is left registered: the next part wakes no one.
        until_next_part(&origin, &mut feed, &mut ts);
        assert!(counts.iter().all(|c| c.0.load(Ordering::SeqCst) == 1));
    }
}
