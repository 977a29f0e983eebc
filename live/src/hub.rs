//! The stream hub: live streams keyed by `app/stream`, one publisher each, any number of
//! subscribers fed from one shared broadcast.
//!
//! A subscriber first gets the stream's metadata, sequence headers and GOP cache (from the
//! last key frame), then live tags. Every tag is shared ([`SharedTag`] is an `Arc`), never
//! copied per viewer. Each subscriber reads a bounded broadcast ring: one that falls behind
//! the ring skips to the next key frame, and one that stays behind longer than
//! [`HubConfig::max_behind`] is dropped — it never blocks the publisher or other viewers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::broadcast;
use videopick_flv::{AudioData, Tag, TagKind, VideoData};

use videopick_rtmp::chunk::{RawMessage, encode_standalone, msg_type};

/// Settings of a [`Hub`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HubConfig {
    /// Keep the tags since the last key frame for new viewers (default true).
    pub gop_cache: bool,
    /// Most bytes the GOP cache may hold; beyond it the cache is dropped until the next key
    /// frame (default 16 MiB).
    pub gop_max_bytes: usize,
    /// Tags each stream's broadcast ring holds (default 1024, ~20 s of a 25 fps stream
    /// with audio). A viewer further behind skips to the next key frame.
    pub queue_tags: usize,
    /// A viewer whose tags are this far (media time) behind the live edge is dropped
    /// (default 10 s).
    pub max_behind: Duration,
    /// After a publisher leaves, viewers stay attached this long for a republish
    /// (default 10 s).
    pub republish_grace: Duration,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            gop_cache: true,
            gop_max_bytes: 16 << 20,
            queue_tags: 1024,
            max_behind: Duration::from_secs(10),
            republish_grace: Duration::from_secs(10),
        }
    }
}

/// RTMP chunk size used for the shared, pre-chunked form of tags.
pub const SHARED_CHUNK_SIZE: u32 = 4096;
/// Message stream id the shared pre-chunked form is encoded for (what players get from
/// their first `createStream`).
pub const SHARED_STREAM_ID: u32 = 1;
/// Chunk stream ids of the shared form (distinct from the session's own).
pub const SHARED_CSID_AUDIO: u32 = 4;
/// Chunk stream id for shared video.
pub const SHARED_CSID_VIDEO: u32 = 8;
/// Chunk stream id for shared script data.
pub const SHARED_CSID_DATA: u32 = 9;

#[derive(Debug)]
struct TagInner {
    tag: Tag,
    /// Order within its stream (0 for a tag that was not published through a hub).
    seq: u64,
    keyframe: bool,
    sequence_header: bool,
    rtmp: OnceLock<Bytes>,
    flv: OnceLock<Bytes>,
}

/// A tag shared by every subscriber, with lazily built wire forms (RTMP chunks at
/// [`SHARED_CHUNK_SIZE`], the FLV tag header) computed once for all viewers.
#[derive(Debug, Clone)]
pub struct SharedTag(Arc<TagInner>);

impl SharedTag {
    /// Wrap a tag, classifying it once.
    pub fn new(tag: Tag) -> SharedTag {
        SharedTag::with_seq(tag, 0)
    }

    fn with_seq(tag: Tag, seq: u64) -> SharedTag {
        let (keyframe, sequence_header) = match tag.kind {
            TagKind::Video => VideoData::parse(&tag.data).map_or((false, false), |v| {
                (
                    v.is_keyframe() && !v.is_sequence_header(),
                    v.is_sequence_header(),
                )
            }),
            TagKind::Audio => (
                false,
                AudioData::parse(&tag.data).is_ok_and(|a| a.is_sequence_header()),
            ),
            TagKind::Script => (false, false),
        };
        SharedTag(Arc::new(TagInner {
            tag,
            seq,
            keyframe,
            sequence_header,
            rtmp: OnceLock::new(),
            flv: OnceLock::new(),
        }))
    }

    /// The tag.
    pub fn tag(&self) -> &Tag {
        &self.0.tag
    }

    /// The tag's place in its stream: tags published to a hub are numbered from 1 in the
    /// order they were sent (0 for a tag wrapped outside a hub).
    pub fn seq(&self) -> u64 {
        self.0.seq
    }

    /// A video key frame with coded data.
    pub fn is_keyframe(&self) -> bool {
        self.0.keyframe
    }

    /// An audio or video sequence header.
    pub fn is_sequence_header(&self) -> bool {
        self.0.sequence_header
    }

    /// The tag as RTMP chunks (format-0 header, chunk size [`SHARED_CHUNK_SIZE`], message
    /// stream [`SHARED_STREAM_ID`]), built once and shared by every RTMP viewer.
    pub fn rtmp_chunks(&self) -> &Bytes {
        self.0.rtmp.get_or_init(|| {
            let t = &self.0.tag;
            let (csid, type_id) = match t.kind {
                TagKind::Audio => (SHARED_CSID_AUDIO, msg_type::AUDIO),
                TagKind::Video => (SHARED_CSID_VIDEO, msg_type::VIDEO),
                TagKind::Script => (SHARED_CSID_DATA, msg_type::DATA_AMF0),
            };
            let mut out = BytesMut::with_capacity(t.data.len() + 16 + t.data.len() / 4096 + 1);
            encode_standalone(
                &RawMessage {
                    csid,
                    timestamp: t.timestamp,
                    type_id,
                    stream_id: SHARED_STREAM_ID,
                    payload: t.data.clone(),
                },
                SHARED_CHUNK_SIZE,
                &mut out,
            );
            out.freeze()
        })
    }

    /// The tag in FLV form (tag header, body, PreviousTagSize), built once and shared by
    /// every HTTP-FLV viewer.
    pub fn flv_bytes(&self) -> &Bytes {
        self.0.flv.get_or_init(|| {
            let t = &self.0.tag;
            let mut out = BytesMut::with_capacity(t.data.len() + 15);
            // Tags from RTMP are under 16 MiB (24-bit message length), so this cannot fail.
            let _ = videopick_flv::FlvMuxer::new().write_tag(t, &mut out);
            out.freeze()
        })
    }
}

/// What a subscription yields.
#[derive(Debug, Clone)]
pub enum HubItem {
    /// A tag to deliver.
    Tag(SharedTag),
    /// The publisher left; the stream may come back within the grace period.
    Unpublished,
    /// A publisher (re)started; new sequence headers follow as tags.
    Published,
}

/// Why a publish was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// Someone is already publishing this key.
    #[error("stream {0} is already being published")]
    AlreadyPublishing(String),
}

/// Why a subscription ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubscriptionEnd {
    /// The publisher left and did not come back within the grace period.
    #[error("stream ended")]
    Ended,
    /// The viewer stayed too far behind the live edge.
    #[error("viewer fell too far behind")]
    TooSlow,
}

#[derive(Debug, Default)]
struct Cache {
    metadata: Option<SharedTag>,
    video_seq: Option<SharedTag>,
    audio_seq: Option<SharedTag>,
    gop: Vec<SharedTag>,
    gop_bytes: usize,
}

/// Live figures of one stream.
#[derive(Debug, Default)]
pub struct StreamStats {
    /// Bytes of tag bodies received from the publisher.
    pub bytes_in: AtomicU64,
    /// Tags received.
    pub tags_in: AtomicU64,
    /// Subscribers attached now.
    pub subscribers: AtomicU64,
    /// Viewers dropped for being too slow.
    pub dropped_slow: AtomicU64,
    /// Tags skipped by lagging viewers.
    pub skipped_tags: AtomicU64,
    /// RTMP players attached now.
    pub rtmp_viewers: AtomicU64,
    /// HTTP-FLV viewers attached now.
    pub http_flv_viewers: AtomicU64,
    /// Bytes written to viewers (all protocols).
    pub bytes_out: AtomicU64,
}

#[derive(Debug)]
struct StreamInner {
    key: String,
    state: Mutex<StreamState>,
    tx: broadcast::Sender<HubItem>,
    /// Timestamp of the newest tag (the live edge), for lag checks.
    live_edge: AtomicU32,
    /// Sequence number of the newest tag ([`SharedTag::seq`]).
    seq: AtomicU64,
    stats: StreamStats,
    created: Instant,
    /// Wakes the current publisher's connection when the stream is kicked.
    kick: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct StreamState {
    publisher: Option<u64>,
    cache: Cache,
    /// When the last publisher left (for the grace period).
    unpublished_at: Option<Instant>,
    tap: TapSlot,
}

/// Something that sees every tag of a stream inline, in the publisher's task, with no
/// queue and no wake-up of its own: the cheapest way to mux or record a stream once. It
/// runs under the stream's lock, so it must not block (hand slow work to a task).
pub trait StreamTap: Send {
    /// A tag from the publisher (metadata, sequence headers and media, in order).
    fn tag(&mut self, tag: &SharedTag);
    /// A new publisher took the stream over within the republish grace period.
    fn republished(&mut self) {}
    /// The stream ended: its publisher left and the grace period passed (seen by
    /// [`Hub::sweep`]).
    fn ended(self: Box<Self>) {}
}

/// What a [`TapFactory`] is told of a new stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TapContext {
    /// `app/stream`.
    pub key: String,
    /// The publish's recording choice ([`LiveEvent::record`]).
    pub record: Option<bool>,
    /// When the stream was published (the same for every tap of the stream: recorders
    /// name their files after it).
    pub started: std::time::SystemTime,
}

/// Makes a tap for a new stream; `None` when this kind of tap does not apply to it.
pub type TapFactory = Arc<dyn Fn(&TapContext) -> Option<Box<dyn StreamTap>> + Send + Sync>;

/// The taps of a stream: `None` until its first publish made them.
#[derive(Default)]
struct TapSlot(Option<Vec<Box<dyn StreamTap>>>);

impl std::fmt::Debug for TapSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(taps) => write!(f, "TapSlot({} taps)", taps.len()),
            None => f.write_str("TapSlot(not made)"),
        }
    }
}

/// A live stream's handle, for stats.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    inner: Arc<StreamInner>,
}

impl StreamInfo {
    /// `app/stream`.
    pub fn key(&self) -> &str {
        &self.inner.key
    }
    /// Counters.
    pub fn stats(&self) -> &StreamStats {
        &self.inner.stats
    }
    /// When the stream was first published.
    pub fn created(&self) -> Instant {
        self.inner.created
    }
    /// Whether a publisher is attached now.
    pub fn is_live(&self) -> bool {
        lock(&self.inner.state).publisher.is_some()
    }
    /// The current metadata and sequence-header tags (for codec details).
    pub fn headers(&self) -> (Option<Tag>, Option<Tag>, Option<Tag>) {
        let s = lock(&self.inner.state);
        let t = |x: &Option<SharedTag>| x.as_ref().map(|t| t.tag().clone());
        (
            t(&s.cache.metadata),
            t(&s.cache.video_seq),
            t(&s.cache.audio_seq),
        )
    }
}

/// The hub's clock: the runtime's (so tests on tokio's paused, simulated time drive every
/// policy), the system's outside a runtime.
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct HubInner {
    config: HubConfig,
    streams: Mutex<HashMap<String, Arc<StreamInner>>>,
    next_publisher: AtomicU64,
    events: broadcast::Sender<LiveEvent>,
    tap_factories: Mutex<Vec<TapFactory>>,
}

impl std::fmt::Debug for HubInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubInner")
            .field("config", &self.config)
            .field("streams", &lock(&self.streams).len())
            .finish_non_exhaustive()
    }
}

/// What happened, for the in-process event channel and webhooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveEventKind {
    /// A publisher started.
    Publish,
    /// A publisher stopped.
    Unpublish,
    /// A viewer started.
    Play,
    /// A viewer stopped.
    Stop,
}

impl LiveEventKind {
    /// Lower-case name (`publish`, `unpublish`, `play`, `stop`).
    pub fn as_str(self) -> &'static str {
        match self {
            LiveEventKind::Publish => "publish",
            LiveEventKind::Unpublish => "unpublish",
            LiveEventKind::Play => "play",
            LiveEventKind::Stop => "stop",
        }
    }
}

/// A lifecycle event of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveEvent {
    /// What happened.
    pub kind: LiveEventKind,
    /// `app/stream`.
    pub key: String,
    /// `rtmp` or `http-flv`.
    pub protocol: &'static str,
    /// The client's address.
    pub peer: Option<std::net::SocketAddr>,
    /// When.
    pub at: std::time::SystemTime,
    /// For a publish: record it (`Some(true)`, from `?record=1` or the authorizer's grant),
    /// don't (`Some(false)`), or follow the server's configuration (`None`).
    pub record: Option<bool>,
}

/// The hub. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new(HubConfig::default())
    }
}

impl Hub {
    /// A hub with `config`.
    pub fn new(config: HubConfig) -> Hub {
        Hub {
            inner: Arc::new(HubInner {
                config,
                streams: Mutex::new(HashMap::new()),
                next_publisher: AtomicU64::new(1),
                events: broadcast::channel(1024).0,
                tap_factories: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Give every stream published from now on a tap made by `factory`, beside the taps of
    /// the factories added before (live HLS, a TS recorder and an FLV recorder are three
    /// factories; a stream gets one tap from each that applies).
    pub fn add_tap_factory(&self, factory: TapFactory) {
        lock(&self.inner.tap_factories).push(factory);
    }

    /// The configuration.
    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// Lifecycle events (bounded: a receiver that falls 1024 events behind loses the oldest).
    pub fn events(&self) -> broadcast::Receiver<LiveEvent> {
        self.inner.events.subscribe()
    }

    /// Report a lifecycle event to every [`Hub::events`] receiver.
    pub fn emit(
        &self,
        kind: LiveEventKind,
        key: &str,
        protocol: &'static str,
        peer: Option<std::net::SocketAddr>,
    ) {
        self.emit_event(LiveEvent {
            kind,
            key: key.to_string(),
            protocol,
            peer,
            at: std::time::SystemTime::now(),
            record: None,
        });
    }

    /// Report a lifecycle event built by the caller.
    pub fn emit_event(&self, event: LiveEvent) {
        let _ = self.inner.events.send(event);
    }

    /// Ask the publisher of `key` to stop (its connection ends). True if it was live.
    pub fn kick(&self, key: &str) -> bool {
        let Some(stream) = lock(&self.inner.streams).get(key).cloned() else {
            return false;
        };
        let live = lock(&stream.state).publisher.is_some();
        if live {
            stream.kick.notify_waiters();
        }
        live
    }

    /// Start publishing `key`. Fails if another publisher holds it. A stream whose
    /// publisher left less than the grace period ago is taken over with its viewers.
    pub fn publish(&self, key: &str) -> Result<Publisher, HubError> {
        self.publish_with(key, None)
    }

    /// [`Hub::publish`], telling the tap factories whether to record (see
    /// [`LiveEvent::record`]).
    pub fn publish_with(&self, key: &str, record: Option<bool>) -> Result<Publisher, HubError> {
        let mut streams = lock(&self.inner.streams);
        let stream = streams
            .entry(key.to_string())
            .or_insert_with(|| {
                let (tx, _) = broadcast::channel(self.inner.config.queue_tags.max(16));
                Arc::new(StreamInner {
                    key: key.to_string(),
                    state: Mutex::new(StreamState::default()),
                    tx,
                    live_edge: AtomicU32::new(0),
                    seq: AtomicU64::new(0),
                    stats: StreamStats::default(),
                    created: now(),
                    kick: tokio::sync::Notify::new(),
                })
            })
            .clone();
        let mut state = lock(&stream.state);
        if state.publisher.is_some() {
            return Err(HubError::AlreadyPublishing(key.to_string()));
        }
        let id = self.inner.next_publisher.fetch_add(1, Ordering::Relaxed);
        state.publisher = Some(id);
        state.cache = Cache::default();
        state.unpublished_at = None;
        if let Some(taps) = state.tap.0.as_mut() {
            for tap in taps {
                tap.republished();
            }
        } else {
            let factories = lock(&self.inner.tap_factories).clone();
            let ctx = TapContext {
                key: key.to_string(),
                record,
                started: std::time::SystemTime::now(),
            };
            state.tap.0 = Some(factories.iter().filter_map(|f| f(&ctx)).collect());
        }
        let _ = stream.tx.send(HubItem::Published);
        drop(state);
        Ok(Publisher {
            hub: self.clone(),
            stream: stream.clone(),
            id,
        })
    }

    /// Subscribe to `key` if it is live (or within its republish grace period).
    pub fn subscribe(&self, key: &str) -> Option<Subscription> {
        self.subscribe_with(key, true)
    }

    /// A subscription that starts at the live edge (no cached tags) and is not counted as
    /// a viewer: what a fan-out group reads for all its viewers.
    pub(crate) fn subscribe_edge(&self, key: &str) -> Option<Subscription> {
        self.subscribe_with(key, false)
    }

    fn subscribe_with(&self, key: &str, viewer: bool) -> Option<Subscription> {
        let stream = lock(&self.inner.streams).get(key)?.clone();
        let state = lock(&stream.state);
        state.publisher?;
        let mut initial = Vec::new();
        if viewer {
            let c = &state.cache;
            initial.extend(c.metadata.iter().cloned());
            initial.extend(c.video_seq.iter().cloned());
            initial.extend(c.audio_seq.iter().cloned());
            initial.extend(c.gop.iter().cloned());
        }
        let rx = stream.tx.subscribe();
        // Tags are numbered and sent under the state lock: this is the last one before rx.
        let position = stream.seq.load(Ordering::Relaxed);
        drop(state);
        let ticket = viewer.then(|| {
            stream.stats.subscribers.fetch_add(1, Ordering::Relaxed);
            ViewerTicket {
                stream: stream.clone(),
                protocol: None,
            }
        });
        Some(Subscription {
            stream,
            rx,
            initial: initial.into(),
            policy: ViewerPolicy::new(
                self.inner.config.max_behind,
                self.inner.config.republish_grace,
            ),
            ticket,
            position,
        })
    }

    /// What a decoder needs for one picture of the live stream `key` now: its video
    /// sequence header and the newest cached key frame (no viewer is counted). `None`
    /// when it is not live, has no video, or no key frame is cached yet.
    pub fn snapshot(&self, key: &str) -> Option<Vec<SharedTag>> {
        let stream = lock(&self.inner.streams).get(key)?.clone();
        let state = lock(&stream.state);
        state.publisher?;
        let c = &state.cache;
        let seq = c.video_seq.clone()?;
        let key_frame = c.gop.iter().find(|t| t.is_keyframe())?.clone();
        Some(vec![seq, key_frame])
    }

    /// Live streams (with a publisher now).
    pub fn streams(&self) -> Vec<StreamInfo> {
        let mut v: Vec<StreamInfo> = lock(&self.inner.streams)
            .values()
            .map(|s| StreamInfo { inner: s.clone() })
            .filter(StreamInfo::is_live)
            .collect();
        v.sort_by(|a, b| a.key().cmp(b.key()));
        v
    }

    /// Sweep every `every` in a task of its own (ending streams whose grace period passed,
    /// which closes their recordings), until the hub is dropped.
    pub fn spawn_sweeper(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(inner) = weak.upgrade() else { return };
                Hub { inner }.sweep(now());
            }
        })
    }

    /// End every stream that has no publisher now, grace period or not (a server that is
    /// shutting down closes its recordings).
    pub fn end_all(&self) {
        let far = now() + self.inner.config.republish_grace + Duration::from_secs(1);
        self.sweep(far);
    }

    /// Forget streams whose publisher left more than the grace period before `now` and that
    /// nobody watches.
    /// Streams whose grace period passed have their tap ended.
    pub fn sweep(&self, now: Instant) {
        let grace = self.inner.config.republish_grace;
        let mut ended = Vec::new();
        lock(&self.inner.streams).retain(|_, s| {
            let mut st = lock(&s.state);
            let in_grace = st
                .unpublished_at
                .is_some_and(|t| now.duration_since(t) < grace);
            if st.publisher.is_none() && !in_grace {
                ended.extend(st.tap.0.take().into_iter().flatten());
            }
            st.publisher.is_some() || in_grace || s.tx.receiver_count() > 0
        });
        for tap in ended {
            tap.ended();
        }
    }
}

/// The publishing side of a stream; unpublishes when dropped.
#[derive(Debug)]
pub struct Publisher {
    hub: Hub,
    stream: Arc<StreamInner>,
    id: u64,
}

impl Publisher {
    /// The stream key.
    pub fn key(&self) -> &str {
        &self.stream.key
    }

    /// Completes when [`Hub::kick`] is called for this stream.
    pub async fn kicked(&self) {
        self.stream.kick.notified().await;
    }

    /// Publish a tag: update the caches and broadcast it to every subscriber.
    pub fn send(&mut self, tag: Tag) {
        let len = tag.data.len();
        // One publisher at a time sends, so numbering outside the lock keeps the order.
        let seq = self.stream.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let shared = SharedTag::with_seq(tag, seq);
        let cfg = &self.hub.inner.config;
        let mut state = lock(&self.stream.state);
        let c = &mut state.cache;
        let t = shared.tag();
        match t.kind {
            TagKind::Script => c.metadata = Some(shared.clone()),
            TagKind::Video if shared.is_sequence_header() => c.video_seq = Some(shared.clone()),
            TagKind::Audio if shared.is_sequence_header() => c.audio_seq = Some(shared.clone()),
            _ => {
                if cfg.gop_cache {
                    if shared.is_keyframe() {
                        c.gop.clear();
                        c.gop_bytes = 0;
                    }
                    // Only cache once a key frame started the GOP.
                    if !c.gop.is_empty() || shared.is_keyframe() {
                        c.gop_bytes += len;
                        if c.gop_bytes > cfg.gop_max_bytes {
                            c.gop.clear();
                            c.gop_bytes = 0;
                        } else {
                            c.gop.push(shared.clone());
                        }
                    }
                }
                self.stream.live_edge.store(t.timestamp, Ordering::Relaxed);
            }
        }
        self.stream
            .stats
            .bytes_in
            .fetch_add(len as u64, Ordering::Relaxed);
        self.stream.stats.tags_in.fetch_add(1, Ordering::Relaxed);
        for tap in state.tap.0.iter_mut().flatten() {
            tap.tag(&shared);
        }
        // Sent under the lock so a new subscriber's snapshot and its ring never overlap or
        // miss a tag.
        let _ = self.stream.tx.send(HubItem::Tag(shared));
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        let mut state = lock(&self.stream.state);
        if state.publisher == Some(self.id) {
            state.publisher = None;
            state.unpublished_at = Some(now());
            state.cache = Cache::default();
            let _ = self.stream.tx.send(HubItem::Unpublished);
        }
    }
}

/// One viewer's view of a stream.
#[derive(Debug)]
pub struct Subscription {
    stream: Arc<StreamInner>,
    rx: broadcast::Receiver<HubItem>,
    initial: std::collections::VecDeque<SharedTag>,
    policy: ViewerPolicy,
    /// Counts the viewer while it lives (`None` for a fan-out group's own reader).
    ticket: Option<ViewerTicket>,
    /// The newest [`SharedTag::seq`] this subscription has passed (delivered or skipped).
    position: u64,
}

/// A viewer counted in its stream's stats (subscribers, per-protocol viewers) until
/// dropped; what is left of a [`Subscription`] whose tags come another way.
#[derive(Debug)]
pub struct ViewerTicket {
    stream: Arc<StreamInner>,
    protocol: Option<Protocol>,
}

impl ViewerTicket {
    fn protocol_counter(&self, p: Protocol) -> &AtomicU64 {
        match p {
            Protocol::Rtmp => &self.stream.stats.rtmp_viewers,
            Protocol::HttpFlv => &self.stream.stats.http_flv_viewers,
        }
    }

    /// Count a viewer dropped for being too slow.
    pub(crate) fn dropped_slow(&self) {
        self.stream
            .stats
            .dropped_slow
            .fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for ViewerTicket {
    fn drop(&mut self) {
        if let Some(p) = self.protocol {
            self.protocol_counter(p).fetch_sub(1, Ordering::Relaxed);
        }
        self.stream
            .stats
            .subscribers
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a viewer does with a live tag ([`ViewerPolicy::admit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Deliver it.
    Deliver,
    /// Skip it (waiting for a key frame after lagging or a republish).
    Skip,
    /// The viewer is too far behind the live edge: drop it.
    TooSlow,
}

/// One viewer's lag and republish decisions, sans-IO: fed the tags, control items and the
/// time, it says what to deliver and when the viewer's stream has ended.
///
/// ```
/// use std::time::{Duration, Instant};
/// use videopick_live::hub::{Admit, ViewerPolicy};
///
/// let t0 = Instant::now();
/// let mut p = ViewerPolicy::new(Duration::from_secs(10), Duration::from_secs(5));
/// assert_eq!(p.admit(1_000, 1_000, false, false), Admit::Deliver);
/// p.lagged(); // it missed tags: the next ones wait for a key frame
/// assert_eq!(p.admit(1_040, 1_040, false, false), Admit::Skip);
/// assert_eq!(p.admit(2_000, 2_000, true, false), Admit::Deliver);
/// assert_eq!(p.admit(2_000, 12_001, false, false), Admit::TooSlow);
/// p.unpublished(t0); // the publisher left: the viewer waits out the grace period
/// assert_eq!(p.deadline(), Some(t0 + Duration::from_secs(5)));
/// assert!(!p.ended(t0 + Duration::from_secs(4)) && p.ended(t0 + Duration::from_secs(5)));
/// ```
#[derive(Debug, Clone)]
pub struct ViewerPolicy {
    skipping: bool,
    max_behind_ms: u32,
    grace: Duration,
    unpublished_at: Option<Instant>,
}

impl ViewerPolicy {
    /// A viewer dropped beyond `max_behind` of media time, waiting `grace` for a
    /// republish.
    pub fn new(max_behind: Duration, grace: Duration) -> ViewerPolicy {
        ViewerPolicy {
            skipping: false,
            max_behind_ms: u32::try_from(max_behind.as_millis()).unwrap_or(u32::MAX),
            grace,
            unpublished_at: None,
        }
    }

    /// A tag at `timestamp` (ms) when the live edge is at `edge`: deliver, skip (waiting
    /// for a key frame), or drop the viewer. Headers and metadata always pass a skip.
    pub fn admit(&mut self, timestamp: u32, edge: u32, keyframe: bool, header: bool) -> Admit {
        if self.skipping {
            if keyframe {
                self.skipping = false;
            } else if !header {
                return Admit::Skip;
            }
        }
        if too_far_behind(edge, timestamp, self.max_behind_ms) {
            return Admit::TooSlow;
        }
        Admit::Deliver
    }

    /// The viewer missed tags (its queue overflowed): resume at the next key frame.
    pub fn lagged(&mut self) {
        self.skipping = true;
    }

    /// The publisher left at `now`.
    pub fn unpublished(&mut self, now: Instant) {
        self.unpublished_at = Some(now);
    }

    /// A publisher (re)started: the grace wait ends; resume at its first key frame.
    pub fn published(&mut self) {
        self.unpublished_at = None;
        self.skipping = true;
    }

    /// When the grace period ends, while the publisher is away.
    pub fn deadline(&self) -> Option<Instant> {
        self.unpublished_at.map(|t| t + self.grace)
    }

    /// Whether the stream has ended for this viewer at `now` (grace passed, no publisher).
    pub fn ended(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| now >= d)
    }
}

/// Whether a tag at `timestamp` (ms) is more than `max_ms` behind the live edge `edge`:
/// the lag limit of subscriptions and of fan-out groups' queues.
pub(crate) fn too_far_behind(edge: u32, timestamp: u32, max_ms: u32) -> bool {
    // A "negative" lag (timestamps ahead of the edge, e.g. audio) wraps to a huge value.
    let behind = edge.wrapping_sub(timestamp);
    behind > max_ms && behind < u32::MAX / 2
}

/// Which protocol a viewer uses, for per-protocol counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// RTMP play.
    Rtmp,
    /// HTTP-FLV.
    HttpFlv,
}

impl Subscription {
    /// Count this viewer under `protocol` in the stream's stats (until dropped).
    pub fn set_protocol(&mut self, protocol: Protocol) {
        if let Some(t) = self.ticket.as_mut()
            && t.protocol.is_none()
        {
            t.protocol_counter(protocol).fetch_add(1, Ordering::Relaxed);
            t.protocol = Some(protocol);
        }
    }

    /// The newest tag number ([`SharedTag::seq`]) this subscription has passed: the tags
    /// it will yield from now on are numbered above it.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Stop reading the stream but keep the viewer counted: the ticket, for a viewer whose
    /// tags now come from a fan-out group.
    pub(crate) fn into_ticket(self) -> Option<ViewerTicket> {
        self.ticket
    }

    /// The live edge's timestamp (ms, the newest tag's).
    pub(crate) fn live_edge(&self) -> u32 {
        self.stream.live_edge.load(Ordering::Relaxed)
    }

    /// Count `n` bytes delivered to this viewer.
    pub fn count_out(&self, n: usize) {
        self.stream
            .stats
            .bytes_out
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    /// The stream key.
    pub fn key(&self) -> &str {
        &self.stream.key
    }

    /// Apply skip-to-key-frame and the lag limit to a live tag: `Ok(None)` means skip it.
    fn admit(&mut self, t: SharedTag) -> Result<Option<SharedTag>, SubscriptionEnd> {
        let edge = self.stream.live_edge.load(Ordering::Relaxed);
        let header = t.is_sequence_header() || t.tag().kind == TagKind::Script;
        match self
            .policy
            .admit(t.tag().timestamp, edge, t.is_keyframe(), header)
        {
            Admit::Deliver => Ok(Some(t)),
            Admit::Skip => {
                self.stream
                    .stats
                    .skipped_tags
                    .fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
            Admit::TooSlow => {
                self.stream
                    .stats
                    .dropped_slow
                    .fetch_add(1, Ordering::Relaxed);
                Err(SubscriptionEnd::TooSlow)
            }
        }
    }

    /// Note a control item, returning what to hand to the viewer.
    fn control(&mut self, item: HubItem) -> HubItem {
        match item {
            HubItem::Unpublished => self.policy.unpublished(now()),
            // The new publisher's headers come next; resume at its first key frame.
            HubItem::Published => self.policy.published(),
            HubItem::Tag(_) => {}
        }
        item
    }

    fn lagged(&mut self, n: u64) {
        self.stream
            .stats
            .skipped_tags
            .fetch_add(n, Ordering::Relaxed);
        self.policy.lagged();
    }

    /// The next item: cached tags first, then live ones. After [`HubItem::Unpublished`],
    /// waits up to the grace period for a republish before returning
    /// [`SubscriptionEnd::Ended`].
    pub async fn recv(&mut self) -> Result<HubItem, SubscriptionEnd> {
        if let Some(t) = self.initial.pop_front() {
            self.position = self.position.max(t.seq());
            return Ok(HubItem::Tag(t));
        }
        loop {
            let item = if let Some(deadline) = self.policy.deadline() {
                match tokio::time::timeout_at(deadline.into(), self.rx.recv()).await {
                    Ok(r) => r,
                    Err(_) => return Err(SubscriptionEnd::Ended),
                }
            } else {
                self.rx.recv().await
            };
            match item {
                Ok(HubItem::Tag(t)) => {
                    self.position = self.position.max(t.seq());
                    if let Some(t) = self.admit(t)? {
                        return Ok(HubItem::Tag(t));
                    }
                }
                Ok(other) => return Ok(self.control(other)),
                Err(broadcast::error::RecvError::Lagged(n)) => self.lagged(n),
                Err(broadcast::error::RecvError::Closed) => return Err(SubscriptionEnd::Ended),
            }
        }
    }

    /// Append up to `max` items that are available right now, without waiting (for
    /// batched writes).
    pub fn try_recv_ready(
        &mut self,
        max: usize,
        out: &mut Vec<HubItem>,
    ) -> Result<(), SubscriptionEnd> {
        while out.len() < max {
            if let Some(t) = self.initial.pop_front() {
                self.position = self.position.max(t.seq());
                out.push(HubItem::Tag(t));
                continue;
            }
            match self.rx.try_recv() {
                Ok(HubItem::Tag(t)) => {
                    self.position = self.position.max(t.seq());
                    if let Some(t) = self.admit(t)? {
                        out.push(HubItem::Tag(t));
                    }
                }
                Ok(other) => {
                    let item = self.control(other);
                    out.push(item);
                }
                Err(broadcast::error::TryRecvError::Lagged(n)) => self.lagged(n),
                Err(broadcast::error::TryRecvError::Empty) => break,
                Err(broadcast::error::TryRecvError::Closed) => return Err(SubscriptionEnd::Ended),
            }
        }
        Ok(())
    }
}
