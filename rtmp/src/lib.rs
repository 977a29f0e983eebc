//! Sans-IO RTMP for VideoPick: handshake, chunk stream codec, messages, server and client
//! sessions.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod chunk;
mod error;
pub mod handshake;

pub use error::{Result, RtmpError};
pub mod message;
