//! Sans-IO RTMP for VideoPick: handshake, chunk stream codec, messages, server and client
//! sessions.
//!
//! ```text
//!  socket bytes ─► ServerSession::handle_input ─► handshake ─► ChunkDecoder ─► Message
//!                                                                   │
//!       ServerEvent (Connect/Publish/Play requests, Media tags) ◄───┘
//!       application answers: accept_* / reject_*, send_tag
//!  socket ◄─ ServerSession::poll_transmit ◄─ ChunkEncoder ◄─ replies, status, media
//! ```
//!
//! No sockets, no clocks, no tasks: the caller moves bytes and decides. The same holds for
//! [`ClientSession`], which publishes or plays.
//!
//! ```
//! use bytes::BytesMut;
//! use videopick_flv::{Tag, TagKind};
//! use videopick_rtmp::{ClientConfig, ClientEvent, ClientSession, PublishMode, ServerConfig, ServerEvent, ServerSession};
//!
//! let now = std::time::Instant::now(); // time is injected; a test may simulate it
//! let mut server = ServerSession::new(ServerConfig::default());
//! let mut client = ClientSession::new(ClientConfig::new("live", "rtmp://localhost/live"), now);
//! let (mut to_server, mut to_client) = (BytesMut::new(), BytesMut::new());
//! let mut got = Vec::new();
//! let mut stream = None;
//! for _ in 0..20 {
//!     while let Some(b) = client.poll_transmit() { to_server.extend_from_slice(&b); }
//!     server.handle_input(now, &mut to_server)?;
//!     while let Some(ev) = server.poll_event() {
//!         match ev {
//!             ServerEvent::Connect(req) => server.accept_connect(req.id)?,
//!             ServerEvent::Publish(req) => server.accept_publish(req.id)?,
//!             ServerEvent::Media { tag, .. } => got.push(tag),
//!             _ => {}
//!         }
//!         server.handle_input(now, &mut to_server)?; // continue after answering
//!     }
//!     while let Some(b) = server.poll_transmit() { to_client.extend_from_slice(&b); }
//!     client.handle_input(now, &mut to_client)?;
//!     while let Some(ev) = client.poll_event() {
//!         match ev {
//!             ClientEvent::Connected => { client.create_stream()?; }
//!             ClientEvent::StreamCreated { stream_id, .. } => client.publish(stream_id, "cam", PublishMode::Live)?,
//!             ClientEvent::Status { stream_id, code, .. } if code == "NetStream.Publish.Start" => {
//!                 stream = Some(stream_id);
//!                 client.send_tag(stream_id, &Tag::new(TagKind::Audio, 0, &b"\xaf\x00\x12\x10"[..]))?;
//!             }
//!             _ => {}
//!         }
//!     }
//! }
//! assert!(stream.is_some());
//! // Nothing is awaited from the server any more: no timer.
//! assert_eq!(client.poll_timeout(), None);
//! assert_eq!(&got[0].data[..], b"\xaf\x00\x12\x10");
//! # Ok::<(), videopick_rtmp::RtmpError>(())
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod chunk;
mod client;
mod conn;
mod error;
pub mod handshake;
pub mod message;
mod server;

pub use client::{ClientConfig, ClientEvent, ClientSession};
pub use error::{Result, RtmpError};
pub use server::{
    ConnectRequest, PlayRequest, PublishMode, PublishRejection, PublishRequest, RequestId,
    ServerConfig, ServerEvent, ServerSession,
};
