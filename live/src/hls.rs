//! Live HLS: a tap per stream that segments it inline, in the publisher's task, into the
//! in-memory [`LiveOrigin`] (served at `/<app>/<stream>.m3u8` by the server): low-latency
//! HLS with CMAF parts, and the MPEG-TS variant for old players.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use videopick_hls::{LiveOrigin, OriginConfig, OriginFeed, SegmenterConfig};

use crate::hub::{Hub, SharedTag, StreamTap};
use crate::unix_ms;

/// Live HLS settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HlsConfig {
    /// Apps with live HLS (`None`: every app).
    pub apps: Option<Vec<String>>,
    /// Target segment duration (segments are cut at key frames; default 2 s).
    pub segment: Duration,
    /// Segments listed in the live TS playlist (default 6).
    pub window: usize,
    /// Low-latency HLS part target (default 333 ms); `None`: TS only.
    pub part_target: Option<Duration>,
    /// Keep the MPEG-TS variant beside low-latency HLS (default on).
    pub ts: bool,
    /// How long an ended stream's playlist (with `EXT-X-ENDLIST`) stays for late players
    /// (default 30 s).
    pub linger: Duration,
}

impl Default for HlsConfig {
    fn default() -> Self {
        HlsConfig {
            apps: None,
            segment: Duration::from_secs(2),
            window: 6,
            part_target: Some(Duration::from_millis(333)),
            ts: true,
            linger: Duration::from_secs(30),
        }
    }
}

/// The live HLS origin, fed by one tap per stream. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LiveHls {
    origin: Arc<LiveOrigin>,
    config: Arc<HlsConfig>,
}

impl LiveHls {
    /// An origin with `config`; [`LiveHls::attach`] it to a hub.
    pub fn new(config: HlsConfig) -> LiveHls {
        let origin = LiveOrigin::new(OriginConfig {
            segmenter: SegmenterConfig::with_target(config.segment),
            window: config.window,
            part_target: config.part_target,
            // Without low-latency HLS, TS is the only variant.
            ts: config.ts || config.part_target.is_none(),
            ..OriginConfig::default()
        });
        LiveHls {
            origin,
            config: Arc::new(config),
        }
    }

    /// Give every stream of `hub` published from now on (in a listed app) a live HLS tap.
    pub fn attach(&self, hub: &Hub) {
        let me = self.clone();
        hub.add_tap_factory(Arc::new(move |ctx| me.tap(&ctx.key, ctx.started)));
    }

    /// The origin (playlists and segments by stream key).
    pub fn origin(&self) -> &Arc<LiveOrigin> {
        &self.origin
    }

    fn tap(&self, key: &str, started: SystemTime) -> Option<Box<dyn StreamTap>> {
        let app = key.split('/').next().unwrap_or("");
        if let Some(apps) = &self.config.apps
            && !crate::app_listed(apps, app)
        {
            return None;
        }
        let generation = unix_ms(started);
        Some(Box::new(HlsTap {
            feed: self.origin.feed(key, generation),
            generation,
            linger: self.config.linger,
            warned: false,
        }))
    }
}

/// Segments one stream into the origin.
struct HlsTap {
    feed: OriginFeed,
    generation: u64,
    linger: Duration,
    warned: bool,
}

impl StreamTap for HlsTap {
    fn tag(&mut self, tag: &SharedTag) {
        if let Err(e) = self.feed.push(tag.tag(), SystemTime::now())
            && !self.warned
        {
            tracing::warn!(stream = self.feed.key(), error = %e, "hls: tag skipped");
            self.warned = true;
        }
    }

    fn republished(&mut self) {
        self.feed.discontinuity();
    }

    fn ended(mut self: Box<Self>) {
        self.feed.finish();
        // Keep the ended playlist (with EXT-X-ENDLIST) a little for late players.
        let origin = self.feed.origin().clone();
        let key = self.feed.key().to_string();
        let generation = self.generation;
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let linger = self.linger;
                rt.spawn(async move {
                    tokio::time::sleep(linger).await;
                    origin.remove(&key, generation);
                });
            }
            Err(_) => origin.remove(&key, generation),
        }
    }
}
