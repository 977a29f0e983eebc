//! The wire protocol, sans-IO and bounded: Engine.IO v4 packets and payloads, Socket.IO v5
//! packets, the server side of an Engine.IO session, WebSocket framing.

pub mod engineio;
pub mod session;
pub mod socketio;
pub mod websocket;
