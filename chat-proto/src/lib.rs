//! Chat for VideoPick, wire-compatible with Socket.IO: an unmodified `socket.io-client` v4
//! talks to it. Four layers, one module each:
//!
//! - [`wire`] — the wire protocol, sans-IO and bounded: Engine.IO v4 packets and
//!   long-polling payloads (`wire::engineio`), Socket.IO v5 packets with binary
//!   attachments (`wire::socketio`), the server side of an Engine.IO session with
//!   heartbeats and the polling → WebSocket upgrade (`wire::session`), WebSocket framing
//!   (`wire::websocket`).
//! - [`fanout`] — the room fan-out engine: frames built once, bounded outboxes, slow
//!   members drop their oldest messages, then are cut off.
//! - [`app`] — the chat itself: HS256 tokens (`app::auth`), the rules — messages,
//!   history, moderation, rate limits, error codes (`app::rules`, specified in
//!   `docs/chat-protocol.md`) —, the bus between nodes (`app::bus`; feature `redis`:
//!   `app::redis_bus`), and (feature `server`) `app::chat`, the chat as a server `App`.
//! - `server` (feature `server`) — the tokio/hyper adapter serving Engine.IO over
//!   long-polling and WebSocket with the upgrade between them, and Socket.IO namespaces to
//!   an `App`. `echo` holds the Socket.IO protocol test suite's echo app (what
//!   `chat-server --test-suite` serves).
//!
//! ```
//! use bytes::Bytes;
//! use serde_json::json;
//! use videopick_chat_proto::wire::{engineio, socketio};
//!
//! // A polling payload from socket.io-client: CONNECT to `/` with an auth object, then an
//! // event asking for an ack (id 1).
//! let payload = Bytes::from_static(b"40{\"token\":\"t\"}\x1e421[\"join\",{\"room\":\"live\"}]");
//! let packets = engineio::decode_payload(&payload, 1_000_000, 64)?;
//! let mut decoder = socketio::Decoder::new();
//! let mut got = Vec::new();
//! for p in packets {
//!     if let engineio::Packet::Text(engineio::PacketType::Message, text) = p {
//!         let text = std::str::from_utf8(&text).unwrap();
//!         got.extend(decoder.text(text)?);
//!     }
//! }
//! assert_eq!(got[0].data, Some(json!({"token": "t"})));
//! assert_eq!((got[1].event_name(), got[1].id), (Some("join"), Some(1)));
//!
//! // The ack goes back in one Engine.IO message.
//! let (text, _) = socketio::Packet::ack("/", 1, vec![json!({"ok": true})]).encode();
//! let frame = engineio::encode_frame(&engineio::Packet::message(text));
//! assert_eq!(&frame.1[..], b"431[{\"ok\":true}]");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod app;
#[cfg(feature = "server")]
pub mod echo;
pub mod fanout;
#[cfg(feature = "server")]
pub mod server;
pub mod wire;
