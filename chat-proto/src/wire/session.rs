//! One Engine.IO v4 session on the server, sans-IO with injected time: the handshake,
//! heartbeats (the server pings every `ping_interval`; a pong must come within
//! `ping_timeout`), the upgrade from long-polling to WebSocket, bounded outgoing
//! queues and close semantics.
//!
//! Call order: [`Session::new`] (its first transmit is the `open` packet), then feed
//! [`Session::handle_packet`] with what the client sends, [`Session::send`] what the
//! application sends, call [`Session::handle_timeout`] at [`Session::poll_timeout`], and
//! drain [`Session::poll_transmit`] (one frame per packet on WebSocket) or
//! [`Session::poll_payload`] (one payload per poll on long-polling).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::wire::engineio::{self, Packet, PacketType};

/// Session settings (announced to the client in the handshake).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// Time between server pings.
    pub ping_interval: Duration,
    /// Time a pong may take.
    pub ping_timeout: Duration,
    /// Largest payload (polling) or message (WebSocket) accepted, in bytes.
    pub max_payload: usize,
    /// Packets queued for the client; when full, the oldest message is dropped.
    pub max_queue: usize,
    /// Messages a client may lose in a row (without reading in between) before the
    /// session is closed as stalled.
    pub max_dropped: u32,
    /// Socket.IO: a connection that joins no namespace within this time is closed.
    pub connect_timeout: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            ping_interval: Duration::from_secs(25),
            ping_timeout: Duration::from_secs(20),
            max_payload: 1_000_000,
            max_queue: 256,
            max_dropped: 256,
            connect_timeout: Duration::from_secs(45),
        }
    }
}

/// The transport in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTP long-polling.
    Polling,
    /// WebSocket.
    WebSocket,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// No pong within `ping_timeout`.
    PingTimeout,
    /// The client sent `close` (or closed the transport).
    ClientClose,
    /// The server closed it.
    ServerClose,
    /// The client sent something invalid (see [`SessionError`]).
    ProtocolError,
    /// The outgoing queue overflowed (a client that stopped reading).
    QueueFull,
}

/// A protocol violation by the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// A packet type the client may not send (`open`, `noop`, …).
    #[error("the client may not send {0:?} packets")]
    Unexpected(PacketType),
    /// `upgrade` without a probe first, or on the wrong transport.
    #[error("upgrade without a successful probe")]
    BadUpgrade,
    /// The session is closed.
    #[error("session closed")]
    Closed,
}

/// What a client packet meant for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A text message (a Socket.IO packet).
    Text(Bytes),
    /// A binary message (a Socket.IO attachment).
    Binary(Bytes),
    /// Nothing for the application (heartbeat, upgrade step).
    None,
}

/// A server-side Engine.IO session.
#[derive(Debug)]
pub struct Session {
    sid: String,
    config: EngineConfig,
    transport: Transport,
    /// A WebSocket probe succeeded; waiting for `upgrade`.
    probing: bool,
    /// Messages dropped since the client last took any.
    streak: u32,
    /// Messages dropped over the session's life.
    dropped: u64,
    /// A `noop` must end the pending poll (the client is moving to WebSocket).
    noop_due: bool,
    /// Packets for the client in order (WebSocket frames are written in this order too).
    outbox: VecDeque<Packet>,
    /// A probe answer, sent on the WebSocket ahead of everything else.
    probe_reply: bool,
    next_ping: Instant,
    pong_deadline: Option<Instant>,
    closed: Option<CloseReason>,
}

impl Session {
    /// A new session `sid` opened over `transport` at `now`; its handshake is queued.
    pub fn new(
        sid: impl Into<String>,
        config: EngineConfig,
        transport: Transport,
        now: Instant,
    ) -> Session {
        let sid = sid.into();
        let open = format!(
            "{{\"sid\":\"{}\",\"upgrades\":{},\"pingInterval\":{},\"pingTimeout\":{},\"maxPayload\":{}}}",
            sid,
            if transport == Transport::Polling {
                "[\"websocket\"]"
            } else {
                "[]"
            },
            config.ping_interval.as_millis(),
            config.ping_timeout.as_millis(),
            config.max_payload
        );
        let mut outbox = VecDeque::new();
        outbox.push_back(Packet::Text(PacketType::Open, Bytes::from(open)));
        Session {
            sid,
            config,
            transport,
            probing: false,
            streak: 0,
            dropped: 0,
            noop_due: false,
            outbox,
            probe_reply: false,
            next_ping: now + config.ping_interval,
            pong_deadline: None,
            closed: None,
        }
    }

    /// The session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// The transport in use.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Why it ended, once it has.
    pub fn closed(&self) -> Option<CloseReason> {
        self.closed
    }

    /// A packet from the client (over `via`: a WebSocket probe arrives over WebSocket
    /// while the session is still on polling).
    pub fn handle_packet(
        &mut self,
        packet: Packet,
        via: Transport,
        now: Instant,
    ) -> Result<Incoming, SessionError> {
        if self.closed.is_some() {
            return Err(SessionError::Closed);
        }
        let _ = now;
        match packet {
            Packet::Binary(b) => Ok(Incoming::Binary(b)),
            Packet::Text(PacketType::Message, data) => Ok(Incoming::Text(data)),
            Packet::Text(PacketType::Pong, _) => {
                self.pong_deadline = None;
                Ok(Incoming::None)
            }
            Packet::Text(PacketType::Ping, data)
                if via == Transport::WebSocket
                    && self.transport == Transport::Polling
                    && &data[..] == b"probe" =>
            {
                self.probing = true;
                self.probe_reply = true;
                self.noop_due = true;
                Ok(Incoming::None)
            }
            Packet::Text(PacketType::Upgrade, _) => {
                if !self.probing || via != Transport::WebSocket {
                    return Err(self.fail(SessionError::BadUpgrade));
                }
                self.probing = false;
                self.transport = Transport::WebSocket;
                Ok(Incoming::None)
            }
            Packet::Text(PacketType::Close, _) => {
                self.closed = Some(CloseReason::ClientClose);
                Ok(Incoming::None)
            }
            Packet::Text(kind, _) => Err(self.fail(SessionError::Unexpected(kind))),
        }
    }

    fn fail(&mut self, e: SessionError) -> SessionError {
        self.closed = Some(CloseReason::ProtocolError);
        e
    }

    /// Queue a message for the client. When the queue is full the oldest queued message
    /// is dropped; after `max_dropped` drops in a row the session closes with
    /// [`CloseReason::QueueFull`] and this returns false.
    pub fn send(&mut self, packet: Packet) -> bool {
        if self.closed.is_some() {
            return false;
        }
        if self.outbox.len() >= self.config.max_queue.max(1) {
            let oldest = self
                .outbox
                .iter()
                .position(|p| p.kind() == PacketType::Message);
            let Some(i) = oldest else {
                self.closed = Some(CloseReason::QueueFull);
                return false;
            };
            self.outbox.remove(i);
            self.dropped += 1;
            self.streak += 1;
            if self.streak > self.config.max_dropped {
                self.outbox.clear();
                self.closed = Some(CloseReason::QueueFull);
                return false;
            }
        }
        self.outbox.push_back(packet);
        true
    }

    /// Messages dropped because the client read too slowly.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Close from the server side; a `close` packet is queued for the client.
    pub fn close(&mut self) {
        if self.closed.is_none() {
            self.outbox
                .push_back(Packet::Text(PacketType::Close, Bytes::new()));
            self.closed = Some(CloseReason::ServerClose);
        }
    }

    /// When [`Session::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        Some(self.pong_deadline.unwrap_or(self.next_ping))
    }

    /// Time passed: send a ping when due, or close when a pong is overdue.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        if let Some(deadline) = self.pong_deadline {
            if now >= deadline {
                self.closed = Some(CloseReason::PingTimeout);
            }
            return;
        }
        if now >= self.next_ping {
            self.outbox
                .push_back(Packet::Text(PacketType::Ping, Bytes::new()));
            self.pong_deadline = Some(now + self.config.ping_timeout);
            self.next_ping = now + self.config.ping_interval;
        }
    }

    /// The next WebSocket frame to write (the probe answer first, then the queue once the
    /// session is on WebSocket): (binary, bytes).
    pub fn poll_transmit(&mut self) -> Option<(bool, Bytes)> {
        if self.probe_reply {
            self.probe_reply = false;
            return Some(engineio::encode_frame(&Packet::Text(
                PacketType::Pong,
                Bytes::from_static(b"probe"),
            )));
        }
        if self.transport != Transport::WebSocket {
            return None;
        }
        let p = self.outbox.pop_front()?;
        self.streak = 0;
        self.release_outbox();
        Some(engineio::encode_frame(&p))
    }

    /// A drained queue gives its memory back: a burst (presence updates while thousands
    /// of clients connect) must not leave every session holding a queue sized for it.
    fn release_outbox(&mut self) {
        if self.outbox.is_empty() && self.outbox.capacity() > 4 {
            self.outbox = VecDeque::new();
        }
    }

    /// Append every frame ready for the WebSocket to `out`, framed (RFC 6455 headers
    /// included) without an intermediate copy per packet; how many. The writer's batch
    /// path: a broadcast frame is copied once, into the connection's write buffer.
    pub fn transmit_into(&mut self, out: &mut Vec<u8>) -> usize {
        use crate::wire::websocket::{Opcode, frame_header};
        let mut n = 0;
        if self.probe_reply {
            self.probe_reply = false;
            let (h, k) = frame_header(Opcode::Text, 6);
            out.extend_from_slice(&h[..k]);
            out.extend_from_slice(b"3probe");
            n += 1;
        }
        if self.transport != Transport::WebSocket {
            return n;
        }
        while let Some(p) = self.outbox.pop_front() {
            self.streak = 0;
            match &p {
                Packet::Binary(b) => {
                    let (h, k) = frame_header(Opcode::Binary, b.len());
                    out.extend_from_slice(&h[..k]);
                    out.extend_from_slice(b);
                }
                Packet::Text(t, data) => {
                    let (h, k) = frame_header(Opcode::Text, 1 + data.len());
                    out.extend_from_slice(&h[..k]);
                    out.push(t.as_char());
                    out.extend_from_slice(data);
                }
            }
            n += 1;
        }
        self.release_outbox();
        n
    }

    /// The body for a pending poll: queued packets up to `max_payload` bytes, a `noop`
    /// when the client is upgrading, or `None` when there is nothing to say yet (hold the
    /// poll until there is, or until the next ping).
    pub fn poll_payload(&mut self) -> Option<Vec<u8>> {
        if self.transport != Transport::Polling {
            return None;
        }
        if self.noop_due {
            self.noop_due = false;
            return Some(vec![PacketType::Noop.as_char()]);
        }
        if self.outbox.is_empty() {
            return None;
        }
        let mut take = 0;
        let mut size = 0;
        for p in &self.outbox {
            let len = match p {
                Packet::Text(_, d) => 1 + d.len(),
                Packet::Binary(b) => 1 + b.len().div_ceil(3) * 4,
            } + usize::from(take > 0);
            if take > 0 && size + len > self.config.max_payload {
                break;
            }
            size += len;
            take += 1;
        }
        let batch: Vec<Packet> = self.outbox.drain(..take).collect();
        self.streak = 0;
        self.release_outbox();
        Some(engineio::encode_payload(&batch))
    }

    /// Packets waiting for the client.
    pub fn queued(&self) -> usize {
        self.outbox.len()
    }

    /// True when a message may bypass the queue and be written to the WebSocket at once:
    /// the session is open, on WebSocket, and nothing (queued packets, a probe answer) is
    /// due before it.
    pub fn can_send_direct(&self) -> bool {
        self.closed.is_none()
            && self.transport == Transport::WebSocket
            && self.outbox.is_empty()
            && !self.probe_reply
    }

    /// Messages were written to the WebSocket without queueing: the client is reading, so
    /// its run of dropped messages ends.
    pub fn sent_direct(&mut self) {
        self.streak = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(s: &'static str) -> Packet {
        Packet::message(Bytes::from_static(s.as_bytes()))
    }

    #[test]
    fn handshake_heartbeat_and_timeout() {
        let t0 = Instant::now();
        let cfg = EngineConfig {
            ping_interval: Duration::from_millis(300),
            ping_timeout: Duration::from_millis(200),
            ..EngineConfig::default()
        };
        let mut s = Session::new("abc", cfg, Transport::Polling, t0);
        let open = String::from_utf8(s.poll_payload().unwrap()).unwrap();
        assert_eq!(
            open,
            r#"0{"sid":"abc","upgrades":["websocket"],"pingInterval":300,"pingTimeout":200,"maxPayload":1000000}"#
        );
        assert_eq!(s.poll_payload(), None, "nothing more to say");
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_millis(300)));
        s.handle_timeout(t0 + Duration::from_millis(300));
        assert_eq!(s.poll_payload().as_deref(), Some(&b"2"[..]));
        s.handle_packet(
            Packet::Text(PacketType::Pong, Bytes::new()),
            Transport::Polling,
            t0,
        )
        .unwrap();
        assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_millis(600)));
        s.handle_timeout(t0 + Duration::from_millis(600));
        s.handle_timeout(t0 + Duration::from_millis(799));
        assert_eq!(s.closed(), None);
        s.handle_timeout(t0 + Duration::from_millis(800));
        assert_eq!(s.closed(), Some(CloseReason::PingTimeout));
    }

    #[test]
    fn transmit_into_frames_what_poll_transmit_gives() {
        use crate::wire::websocket::{Decoder, Message};
        use bytes::BytesMut;
        let t0 = Instant::now();
        let packets = [
            msg("42[\"message\",{}]"),
            Packet::Binary(Bytes::from(vec![7u8; 300])),
            Packet::message(Bytes::from("x".repeat(70_000))),
        ];
        let mut a = Session::new("x", EngineConfig::default(), Transport::WebSocket, t0);
        let mut b = Session::new("x", EngineConfig::default(), Transport::WebSocket, t0);
        for p in &packets {
            assert!(a.send(p.clone()) && b.send(p.clone()));
        }
        let mut out = Vec::new();
        assert_eq!(
            a.transmit_into(&mut out),
            4,
            "the open packet and three more"
        );
        assert_eq!(a.transmit_into(&mut out), 0);
        // A masked copy of `out` is what a client would have sent; decode the server's
        // frames by masking them with a zero key through the server-side decoder.
        let mut want = Vec::new();
        while let Some((binary, data)) = b.poll_transmit() {
            want.push(if binary {
                Message::Binary(data)
            } else {
                Message::Text(data)
            });
        }
        let mut masked = BytesMut::new();
        let mut at = 0;
        while at < out.len() {
            let len7 = usize::from(out[at + 1] & 0x7f);
            let (len, head) = match len7 {
                126 => (
                    usize::from(u16::from_be_bytes([out[at + 2], out[at + 3]])),
                    4,
                ),
                127 => (
                    usize::try_from(u64::from_be_bytes(out[at + 2..at + 10].try_into().unwrap()))
                        .unwrap(),
                    10,
                ),
                n => (n, 2),
            };
            masked.extend_from_slice(&out[at..at + head]);
            let second = masked.len() - head + 1;
            masked[second] |= 0x80;
            masked.extend_from_slice(&[0, 0, 0, 0]);
            masked.extend_from_slice(&out[at + head..at + head + len]);
            at += head + len;
        }
        let mut dec = Decoder::new(1 << 20);
        let mut got = Vec::new();
        while let Some(m) = dec.decode(&mut masked).unwrap() {
            got.push(m);
        }
        assert_eq!(got, want);
    }

    #[test]
    fn upgrade_from_polling_to_websocket() {
        let t0 = Instant::now();
        let mut s = Session::new("x", EngineConfig::default(), Transport::Polling, t0);
        let _ = s.poll_payload();
        assert!(s.send(msg("40{\"sid\":\"y\"}")));
        // The probe arrives over the new WebSocket: answered there; the poll gets a noop.
        let probe = Packet::Text(PacketType::Ping, Bytes::from_static(b"probe"));
        s.handle_packet(probe, Transport::WebSocket, t0).unwrap();
        assert_eq!(
            s.poll_transmit(),
            Some((false, Bytes::from_static(b"3probe")))
        );
        assert_eq!(
            s.poll_transmit(),
            None,
            "nothing on the WebSocket before upgrade"
        );
        assert_eq!(s.poll_payload().as_deref(), Some(&b"6"[..]));
        s.handle_packet(
            Packet::Text(PacketType::Upgrade, Bytes::new()),
            Transport::WebSocket,
            t0,
        )
        .unwrap();
        assert_eq!(s.transport(), Transport::WebSocket);
        assert_eq!(s.poll_payload(), None);
        assert_eq!(
            s.poll_transmit(),
            Some((false, Bytes::from_static(b"440{\"sid\":\"y\"}")))
        );
    }

    #[test]
    fn protocol_errors_close_the_session() {
        let t0 = Instant::now();
        let mut s = Session::new("x", EngineConfig::default(), Transport::Polling, t0);
        let up = Packet::Text(PacketType::Upgrade, Bytes::new());
        assert_eq!(
            s.handle_packet(up, Transport::WebSocket, t0),
            Err(SessionError::BadUpgrade)
        );
        assert_eq!(s.closed(), Some(CloseReason::ProtocolError));
        let mut s = Session::new("x", EngineConfig::default(), Transport::WebSocket, t0);
        let open = Packet::Text(PacketType::Open, Bytes::new());
        assert!(s.handle_packet(open, Transport::WebSocket, t0).is_err());
    }

    #[test]
    fn a_client_that_stops_reading_overflows_and_closes() {
        let t0 = Instant::now();
        let cfg = EngineConfig {
            max_queue: 3,
            max_dropped: 2,
            ..EngineConfig::default()
        };
        let mut s = Session::new("x", cfg, Transport::WebSocket, t0);
        assert!(s.send(msg("a")) && s.send(msg("b")));
        // Full (open + 2): the oldest message goes, the handshake stays.
        assert!(s.send(msg("c")) && s.send(msg("d")));
        assert_eq!(s.dropped(), 2);
        assert_eq!(
            s.poll_transmit().unwrap().1[0],
            b'0',
            "the open packet is kept"
        );
        assert_eq!(&s.poll_transmit().unwrap().1[..], b"4c");
        // Reading reset the streak; a client that never reads is cut off.
        let mut s = Session::new("x", cfg, Transport::WebSocket, t0);
        assert!(s.send(msg("a")) && s.send(msg("b")) && s.send(msg("c")) && s.send(msg("d")));
        assert!(!s.send(msg("e")), "a third drop in a row");
        assert_eq!(s.closed(), Some(CloseReason::QueueFull));
    }

    #[test]
    fn polling_payloads_respect_max_payload() {
        let t0 = Instant::now();
        let cfg = EngineConfig {
            max_payload: 20,
            ..EngineConfig::default()
        };
        let mut s = Session::new("x", cfg, Transport::Polling, t0);
        let _ = s.poll_payload();
        for _ in 0..3 {
            s.send(msg("2[\"0123456789\"]"));
        }
        assert_eq!(s.poll_payload().unwrap(), b"42[\"0123456789\"]");
        assert_eq!(s.queued(), 2);
    }
}
