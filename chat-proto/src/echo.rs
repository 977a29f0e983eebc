//! The Socket.IO v5 protocol test suite's app: what `chat-server --test-suite` serves so the
//! official suite (and our port of it, `tests/v5_suite.rs`) can run against this server.
//! Not a chat: it echoes.

use serde_json::{Value, json};

use crate::server::{App, Socket};
use crate::wire::socketio::Packet;

/// The server side of the official Socket.IO v5 protocol test suite
/// (`docs/socket.io-protocol/v5-test-suite/test-suite.js` in the socket.io repository):
/// namespaces `/` and `/custom`; on connect the handshake's auth is emitted back as
/// `auth`; `message` is echoed as `message-back` (binary attachments too);
/// `message-with-ack` is acknowledged with its arguments. Run it with an
/// [`EngineConfig`](crate::wire::session::EngineConfig) of 300 ms ping interval and 200 ms ping
/// timeout, as the suite expects.
#[derive(Debug, Default, Clone, Copy)]
pub struct EchoApp;

impl App for EchoApp {
    fn has_namespace(&self, nsp: &str) -> bool {
        nsp == "/" || nsp == "/custom"
    }

    fn connect(&self, _socket: &Socket, _auth: Option<&Value>) -> Result<(), Value> {
        Ok(())
    }

    fn connected(&self, socket: &Socket, auth: Option<&Value>) {
        socket.emit("auth", vec![auth.cloned().unwrap_or_else(|| json!({}))]);
    }

    fn event(&self, socket: &Socket, p: Packet) {
        let mut args = p
            .data
            .as_ref()
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if args.is_empty() {
            return;
        }
        let name = args.remove(0);
        match (name.as_str(), p.id) {
            (Some("message"), _) => {
                let mut back = Packet::event(socket.nsp(), "message-back", args);
                back.attachments = p.attachments;
                socket.conn().send(&back);
            }
            (Some("message-with-ack"), Some(id)) => {
                let mut ack = Packet::ack(socket.nsp(), id, args);
                ack.attachments = p.attachments;
                socket.conn().send(&ack);
            }
            _ => {}
        }
    }

    fn disconnect(&self, _socket: &Socket, _reason: &str) {}
}
