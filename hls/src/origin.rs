//! A live HLS origin: per-stream rolling windows of segments in memory (shared `Bytes`),
//! fed by any source of FLV tags, read by any HTTP server.
//!
//! [`LiveOrigin::feed`] starts (or restarts) a stream and returns the [`OriginFeed`] that
//! owns its segmenter; completed segments are listed in the live playlist only once they
//! are complete. Readers call [`LiveOrigin::playlist`] and [`LiveOrigin::segment`].
//! Segment names carry the feed's generation (`<stream>-<gen>-<seq>.ts`), so a URI never
//! names two different segments and segments can be cached as immutable.
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
//! // 2.3 s of audio: the first 2 s segment is complete and listed.
//! let text = String::from_utf8(origin.playlist("live/cam").unwrap().to_vec()).unwrap();
//! assert!(text.contains("cam-7-0.ts"));
//! assert_eq!(origin.segment("live/cam", 7, 0).unwrap().len() % 188, 0);
//! assert!(origin.segment("live/cam", 7, 1).is_none()); // still being written
//! # Ok::<(), videopick_hls::HlsError>(())
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use bytes::Bytes;
use videopick_flv::Tag;

use crate::error::Result;
use crate::playlist::{MediaPlaylist, PlaylistEntry, PlaylistKind};
use crate::segmenter::{MediaInfo, Segment, Segmenter, SegmenterConfig};

/// Origin settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginConfig {
    /// Segmenting (target duration …).
    pub segmenter: SegmenterConfig,
    /// Segments listed in the live playlist (default 6).
    pub window: usize,
    /// Segments kept in memory beyond the window, for players holding an older playlist
    /// (default 3).
    pub extra: usize,
}

impl Default for OriginConfig {
    fn default() -> Self {
        OriginConfig {
            segmenter: SegmenterConfig::default(),
            window: 6,
            extra: 3,
        }
    }
}

#[derive(Debug)]
struct StreamState {
    generation: u64,
    playlist: MediaPlaylist,
    text: Bytes,
    segments: VecDeque<(u64, Bytes)>,
    info: MediaInfo,
}

#[derive(Debug)]
struct OriginStream {
    name: String,
    state: Mutex<StreamState>,
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
        let stream = Arc::new(OriginStream {
            name,
            state: Mutex::new(StreamState {
                generation,
                playlist: MediaPlaylist::new(PlaylistKind::Live {
                    window: self.config.window,
                }),
                text: Bytes::new(),
                segments: VecDeque::new(),
                info: MediaInfo::default(),
            }),
        });
        self.streams
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.to_string(), stream.clone());
        OriginFeed {
            origin: self.clone(),
            key: key.to_string(),
            stream,
            segmenter: Segmenter::new(self.config.segmenter),
            extra: self.config.extra,
        }
    }

    fn stream(&self, key: &str) -> Option<Arc<OriginStream>> {
        self.streams
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// The live playlist of `key`, once it has a complete segment.
    pub fn playlist(&self, key: &str) -> Option<Bytes> {
        let s = self.stream(key)?;
        let st = lock(&s.state);
        (!st.text.is_empty()).then(|| st.text.clone())
    }

    /// Segment `sequence` of generation `generation` of `key`, if still held.
    pub fn segment(&self, key: &str, generation: u64, sequence: u64) -> Option<Bytes> {
        let s = self.stream(key)?;
        let st = lock(&s.state);
        if st.generation != generation {
            return None;
        }
        st.segments
            .iter()
            .find(|(n, _)| *n == sequence)
            .map(|(_, b)| b.clone())
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
        {
            streams.remove(key);
        }
    }
}

/// Feeds one stream of a [`LiveOrigin`]; owns its segmenter.
#[derive(Debug)]
pub struct OriginFeed {
    origin: Arc<LiveOrigin>,
    key: String,
    stream: Arc<OriginStream>,
    segmenter: Segmenter,
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

    /// Feed a tag; returns the segments it completed (already listed in the playlist), for
    /// callers that also record them.
    pub fn push(&mut self, tag: &Tag, now: SystemTime) -> Result<Vec<Segment>> {
        let r = self.segmenter.push(tag, now);
        let done = self.publish();
        r.map(|()| done)
    }

    /// A new publisher (or new codec parameters): the next segment starts a discontinuity.
    pub fn discontinuity(&mut self) -> Vec<Segment> {
        self.segmenter.discontinuity();
        self.publish()
    }

    /// The stream ended: publish the last segment and end the playlist (EXT-X-ENDLIST).
    pub fn finish(&mut self) -> Vec<Segment> {
        self.segmenter.finish();
        let done = self.publish();
        let mut st = lock(&self.stream.state);
        st.playlist.end();
        st.text = Bytes::from(st.playlist.render());
        done
    }

    /// The segmenter (media info, skipped tags …).
    pub fn segmenter(&self) -> &Segmenter {
        &self.segmenter
    }

    fn publish(&mut self) -> Vec<Segment> {
        let mut done = Vec::new();
        while let Some(seg) = self.segmenter.pop_segment() {
            done.push(seg);
        }
        if done.is_empty() {
            return done;
        }
        let info = self.segmenter.media_info();
        let mut st = lock(&self.stream.state);
        let generation = st.generation;
        for seg in &done {
            st.playlist.push(PlaylistEntry {
                sequence: seg.sequence,
                uri: format!("{}-{generation}-{}.ts", self.stream.name, seg.sequence),
                duration: seg.duration,
                discontinuity: seg.discontinuity,
                program_date_time: Some(seg.program_date_time),
            });
            st.segments.push_back((seg.sequence, seg.data.clone()));
            // Everything listed, plus a few older ones for players with an older playlist.
            let keep = st.playlist.entries().len() + self.extra;
            while st.segments.len() > keep {
                st.segments.pop_front();
            }
        }
        st.info = info;
        st.text = Bytes::from(st.playlist.render());
        done
    }
}
