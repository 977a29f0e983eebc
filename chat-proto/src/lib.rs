//! Chat for VideoPick, wire-compatible with Socket.IO: an unmodified `socket.io-client` v4
//! talks to it. This first layer is the wire protocol, sans-IO and bounded: Engine.IO v4
//! packets and long-polling payloads ([`engineio`]), Socket.IO v5 packets with binary
//! attachments ([`socketio`]), the server side of an Engine.IO session with heartbeats and
//! the polling → WebSocket upgrade ([`session`]) and WebSocket framing ([`websocket`]).
//! Above it: HS256 tokens from the CONNECT auth payload ([`auth`]), the chat rules —
//! messages, history, moderation, rate limits, error codes ([`chat`], specified in
//! `docs/chat-protocol.md`) — and the room fan-out engine ([`fanout`]). Feature `server`:
//! the tokio/hyper adapter (`server`) serving Engine.IO over long-polling and WebSocket
//! with the upgrade between them, and Socket.IO namespaces to an `App`; an unmodified
//! `socket.io-client` connects to it — and `chat_app`, the chat as an `App` (the
//! `chat-server` binary serves it); [`bus`], the bus between chat nodes (in-process by
//! default; feature `redis`: `RedisBus` over Redis Pub/Sub).
//!
//! ```
//! use bytes::Bytes;
//! use serde_json::json;
//! use videopick_chat_proto::{engineio, socketio};
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

pub mod auth;
pub mod bus;
pub mod chat;
#[cfg(feature = "server")]
pub mod chat_app;
pub mod engineio;
pub mod fanout;
#[cfg(feature = "redis")]
pub mod redis_bus;
#[cfg(feature = "server")]
pub mod server;
pub mod session;
pub mod socketio;
pub mod websocket;
