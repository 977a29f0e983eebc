//! VideoPick's server roles as a library: each role is a plain config struct and a
//! `run(config, shutdown)` future, so a Rust application embeds a media or chat server
//! the way the `videopick`, `media-server` and `chat-server` binaries do (they only map
//! flags, environment and a TOML file onto these structs, set up logging and wait for a
//! signal).
//!
//! ```text
//!  config::MediaConfig ─► media::MediaServer::bind ─► run(shutdown)
//!      RTMP (live::rtmp_server) ─► live::Hub ─┬─► HTTP-FLV, /api/streams (streams)
//!                                             ├─► live HLS and recordings (hls_http)
//!      HTTP: tus /files/ (uploads) ─► transcoding jobs, /api/jobs, /vod/ (jobs)
//!      /metrics, /healthz; storage housekeeping (housekeeping)
//!  config::ChatConfig ─► chat::ChatServer::bind ─► run(shutdown)   (Socket.IO chat)
//! ```
//!
//! Start the media role on ephemeral ports and publish to it with the RTMP client:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), videopick_server::Error> {
//! use std::time::Duration;
//! use videopick_flv::{Tag, TagKind};
//! use videopick_live::rtmp_client::RtmpClient;
//! use videopick_server::config::MediaConfig;
//! use videopick_server::media::MediaServer;
//!
//! let dir = tempfile::tempdir()?;
//! let mut config = MediaConfig::default();
//! config.storage = dir.path().into();
//! config.min_free_bytes = 0;
//! config.rtmp = "127.0.0.1:0".parse()?;
//! config.http = "127.0.0.1:0".parse()?;
//! let server = MediaServer::bind(config).await?;
//! let (rtmp, http) = (server.rtmp_addr()?, server.http_addr()?);
//! let hub = server.hub().clone();
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let running = tokio::spawn(server.run(async move { let _ = stopped.await; }));
//!
//! let url = format!("rtmp://{rtmp}/live/cam");
//! let mut publisher = RtmpClient::connect(&url, Duration::from_secs(5)).await?.publish().await?;
//! publisher.send(&Tag::new(TagKind::Audio, 0, &b"\xaf\x00\x12\x10"[..])).await?;
//! while hub.streams().is_empty() {
//!     tokio::time::sleep(Duration::from_millis(10)).await;
//! }
//! assert_eq!(hub.streams()[0].key(), "live/cam");
//! assert!(http.port() > 0);
//! publisher.finish().await?;
//! let _ = stop.send(());
//! running.await?;
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod app;
pub mod chat;
pub mod config;
pub mod hls_http;
pub mod housekeeping;
pub mod http;
pub mod jobs;
pub mod media;
pub mod metrics;
pub mod plain;
mod remote;
pub mod streams;
mod thumbnails;
pub mod uploads;
pub mod web;

pub use config::{AppConfig, ChatConfig, FileConfig, JobsConfig, MediaConfig};
pub use media::Error;
