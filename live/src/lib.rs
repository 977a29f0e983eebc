//! Live streaming for VideoPick: the stream hub and everything a live stream feeds.
//!
//! ```text
//!  OBS/ffmpeg ─RTMP─► rtmp_server (tokio driver of videopick_rtmp::ServerSession)
//!                       │  auth::Authorize decides each publish/play (typed Denied)
//!                       ▼
//!                     Hub[app/stream] ── tag built once as SharedTag (RTMP chunks + FLV bytes)
//!                       ├─► Subscriptions: RTMP players (rtmp_server), HTTP-FLV (http_flv,
//!                       │     or fanout: one task per group of viewers, one writev each)
//!                       ├─► taps, inline in the publisher's task, any number per stream:
//!                       │     hls::LiveHls (in-memory origin), recorder::Recordings (TS, FLV)
//!                       └─► LiveEvent (publish/unpublish/play/stop) ─► events webhook
//! ```
//!
//! The hub's policies (GOP cache, lag skip/drop, republish grace) take the time from the
//! caller ([`Hub::sweep`] gets `now`), so they are tested on simulated time; the tokio
//! drivers around it are thin. Start a server, publish to it and play it back:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use videopick_flv::{Tag, TagKind};
//! use videopick_live::auth::AllowAll;
//! use videopick_live::rtmp_client::RtmpClient;
//! use videopick_live::rtmp_server::{NetConfig, RtmpServer};
//! use videopick_live::{Hub, HubConfig};
//!
//! let hub = Hub::new(HubConfig::default());
//! let server = RtmpServer::bind("127.0.0.1:0".parse()?, hub.clone(), Arc::new(AllowAll), NetConfig::default()).await?;
//! let url = format!("rtmp://{}/live/cam", server.local_addr()?);
//! tokio::spawn(server.serve(std::future::pending(), Duration::from_secs(1)));
//!
//! let mut publisher = RtmpClient::connect(&url, Duration::from_secs(5)).await?.publish().await?;
//! publisher.send(&Tag::new(TagKind::Audio, 0, &b"\xaf\x00\x12\x10"[..])).await?;
//! let mut player = RtmpClient::connect(&url, Duration::from_secs(5)).await?.play().await?;
//! publisher.send(&Tag::new(TagKind::Audio, 23, &b"\xaf\x01\x21"[..])).await?;
//! // The player starts with the cached sequence header, then live audio.
//! let first = player.next_tag().await?.expect("a tag");
//! assert_eq!(&first.data[..], b"\xaf\x00\x12\x10");
//! assert_eq!(hub.streams()[0].key(), "live/cam");
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod auth;
pub mod events;
pub mod fanout;
pub mod hls;
pub mod http_flv;
pub mod http_head;
pub mod hub;
pub mod io;
pub mod proxy;
pub mod recorder;
pub mod rtmp_client;
pub mod rtmp_server;

pub use hub::{Hub, HubConfig, LiveEvent, LiveEventKind, StreamTap, Subscription, TapContext};

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms(t: std::time::SystemTime) -> u64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Whether `app` is in `list` (`*` lists every app).
pub(crate) fn app_listed(list: &[String], app: &str) -> bool {
    list.iter().any(|a| a == "*" || a == app)
}
