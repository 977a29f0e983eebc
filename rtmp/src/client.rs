//! The client side of an RTMP connection, sans-IO: enough for a publisher, a player and a
//! relay.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use videopick_flv::amf0::{self, Amf0Value, AmfLimits};
use videopick_flv::{Tag, TagKind};

use crate::chunk::{ChunkLimits, RawMessage, msg_type};
use crate::conn::{CSID_AUDIO, CSID_COMMAND, CSID_STREAM, CSID_VIDEO, Conn, as_u32, same_tid};
use crate::error::{Result, RtmpError};
use crate::handshake::ClientHandshake;
use crate::message::{Command, Message, split_aggregate};
use crate::server::PublishMode;

/// Configuration of a [`ClientSession`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Application name (`live`).
    pub app: String,
    /// `tcUrl` (`rtmp://host:1935/live`).
    pub tc_url: String,
    /// `flashVer` sent in connect.
    pub flash_ver: String,
    /// Chunk size we send with (default 4096).
    pub chunk_size: u32,
    /// Window Acknowledgement Size we ask the server to ack at.
    pub window_ack_size: u32,
    /// Limits on the incoming chunk stream.
    pub chunk_limits: ChunkLimits,
    /// Limits on AMF bodies.
    pub amf_limits: AmfLimits,
    /// Use the complex (digest) handshake, as Flash Player and ffmpeg do (default true).
    pub complex_handshake: bool,
    /// The C1 time field.
    pub handshake_epoch: u32,
    /// Seed of the handshake's random bytes.
    pub handshake_seed: u64,
    /// How long the server may take to answer: the handshake and `connect`, then each
    /// `createStream`, `publish` and `play` (default 10 s).
    pub response_timeout: Duration,
}

impl ClientConfig {
    /// A client for `app` at `tc_url`.
    pub fn new(app: impl Into<String>, tc_url: impl Into<String>) -> ClientConfig {
        ClientConfig {
            app: app.into(),
            tc_url: tc_url.into(),
            flash_ver: "FMLE/3.0 (compatible; videopick)".into(),
            chunk_size: 4096,
            window_ack_size: 2_500_000,
            chunk_limits: ChunkLimits::default(),
            amf_limits: AmfLimits::default(),
            complex_handshake: true,
            handshake_epoch: 0,
            handshake_seed: 0xc11e,
            response_timeout: Duration::from_secs(10),
        }
    }

    /// Set [`ClientConfig::chunk_size`].
    #[must_use]
    pub fn chunk_size(mut self, size: u32) -> Self {
        self.chunk_size = size;
        self
    }

    /// Set [`ClientConfig::complex_handshake`].
    #[must_use]
    pub fn complex_handshake(mut self, on: bool) -> Self {
        self.complex_handshake = on;
        self
    }
}

/// What the client session reports.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// `connect` succeeded.
    Connected,
    /// `connect` failed (the server's code and description).
    ConnectFailed {
        /// Status code, e.g. `NetConnection.Connect.Rejected`.
        code: String,
        /// Description.
        description: String,
    },
    /// `createStream` answered.
    StreamCreated {
        /// Transaction id returned by [`ClientSession::create_stream`].
        transaction_id: f64,
        /// The new message stream id.
        stream_id: u32,
    },
    /// An `onStatus` for a stream (NetStream.Publish.Start, NetStream.Play.Start, …).
    Status {
        /// The stream it concerns.
        stream_id: u32,
        /// `status` or `error`.
        level: String,
        /// The code.
        code: String,
        /// The description.
        description: String,
    },
    /// A media or script tag received on a playing stream.
    Media {
        /// The stream.
        stream_id: u32,
        /// The tag.
        tag: Tag,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshake,
    Connecting,
    Connected,
    Closed,
}

/// The client side of one RTMP connection. Call order as for
/// [`ServerSession`](crate::ServerSession): feed input, drain events, drain output.
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    handshake: ClientHandshake,
    conn: Conn,
    state: State,
    next_tid: f64,
    pending_create: Vec<f64>,
    events: VecDeque<ClientEvent>,
    /// Since when an answer from the server is awaited.
    awaiting: Option<Instant>,
    /// The latest time the caller gave.
    now: Instant,
}

fn info_str(info: &Amf0Value, key: &str) -> String {
    info.get(key)
        .and_then(Amf0Value::as_str)
        .unwrap_or_default()
        .to_string()
}

impl ClientSession {
    /// A session that starts at `now` with the handshake (C0+C1 are ready in
    /// `poll_transmit`); the server has [`ClientConfig::response_timeout`] to complete it
    /// and answer `connect`.
    pub fn new(config: ClientConfig, now: Instant) -> Self {
        let mut handshake = ClientHandshake::new(
            config.handshake_epoch,
            config.handshake_seed,
            config.complex_handshake,
        );
        let mut conn = Conn::new(config.chunk_limits, config.amf_limits);
        while let Some(b) = handshake.poll_transmit() {
            conn.push_raw(&b);
        }
        ClientSession {
            config,
            handshake,
            conn,
            state: State::Handshake,
            next_tid: 2.0,
            pending_create: Vec::new(),
            events: VecDeque::new(),
            awaiting: Some(now),
            now,
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next (an answer is
    /// due), if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        self.awaiting
            .map(|since| since + self.config.response_timeout)
    }

    /// Run timers due at `now`: fail with [`RtmpError::Timeout`] (and close) when the
    /// server has not answered within [`ClientConfig::response_timeout`].
    pub fn handle_timeout(&mut self, now: Instant) -> Result<()> {
        self.now = self.now.max(now);
        if self.poll_timeout().is_some_and(|due| now >= due) {
            self.state = State::Closed;
            return Err(RtmpError::Timeout("the server did not answer"));
        }
        Ok(())
    }

    /// An answer is awaited from now on (a request was just sent).
    fn await_answer(&mut self) {
        self.awaiting.get_or_insert(self.now);
    }

    /// True after `connect` succeeded.
    pub fn is_connected(&self) -> bool {
        self.state == State::Connected
    }

    /// True after a failed connect or an error.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The last sequence number the peer acknowledged (bytes it has received from us).
    pub fn acknowledged_by_peer(&self) -> u32 {
        self.conn.peer_acked
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Bytes to send to the server.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.conn.poll_transmit()
    }

    /// True when [`poll_transmit`](Self::poll_transmit) has bytes.
    pub fn has_output(&self) -> bool {
        self.conn.has_output()
    }

    /// Process bytes from the server that arrived at `now`, consuming them from `buf`.
    pub fn handle_input(&mut self, now: Instant, buf: &mut BytesMut) -> Result<()> {
        self.now = self.now.max(now);
        let before = buf.len();
        let events = self.events.len();
        let r = self.process(buf);
        // An answer arrived: nothing is awaited until the next request.
        if self.events.iter().skip(events).any(|e| {
            matches!(
                e,
                ClientEvent::Connected
                    | ClientEvent::ConnectFailed { .. }
                    | ClientEvent::StreamCreated { .. }
                    | ClientEvent::Status { .. }
            )
        }) && self.pending_create.is_empty()
        {
            self.awaiting = None;
        }
        self.conn.count_received(before - buf.len());
        if r.is_ok() {
            self.conn.maybe_ack();
        } else {
            self.state = State::Closed;
        }
        r
    }

    fn process(&mut self, buf: &mut BytesMut) -> Result<()> {
        if self.state == State::Handshake {
            self.handshake.handle_input(buf)?;
            if !self.handshake.is_done() {
                return Ok(());
            }
            while let Some(b) = self.handshake.poll_transmit() {
                self.conn.push_raw(&b);
            }
            self.send_connect();
            self.state = State::Connecting;
        }
        while self.state != State::Closed {
            let Some((raw, msg)) = self.conn.decode_next(buf)? else {
                break;
            };
            self.handle_message(&raw, msg);
        }
        Ok(())
    }

    fn send_connect(&mut self) {
        self.conn.set_chunk_size(self.config.chunk_size);
        let s = |x: &str| Amf0Value::String(x.into());
        let mut c = Command::new("connect", 1.0);
        c.object = Amf0Value::Object(vec![
            ("app".into(), s(&self.config.app)),
            ("type".into(), s("nonprivate")),
            ("flashVer".into(), s(&self.config.flash_ver)),
            ("tcUrl".into(), s(&self.config.tc_url)),
            ("fpad".into(), Amf0Value::Boolean(false)),
            ("capabilities".into(), Amf0Value::Number(15.0)),
            ("audioCodecs".into(), Amf0Value::Number(4071.0)),
            ("videoCodecs".into(), Amf0Value::Number(252.0)),
            ("videoFunction".into(), Amf0Value::Number(1.0)),
            ("objectEncoding".into(), Amf0Value::Number(0.0)),
        ]);
        self.conn.send_command(0, CSID_COMMAND, c);
        let ack = self.config.window_ack_size;
        self.conn.send(
            crate::conn::CSID_CONTROL,
            0,
            0,
            &Message::WindowAckSize(ack),
        );
    }

    fn handle_message(&mut self, raw: &RawMessage, msg: Message) {
        if self.conn.handle_control(&msg) {
            return;
        }
        let sid = raw.stream_id;
        match msg {
            Message::Command { command, .. } => self.handle_command(sid, &command),
            Message::Audio(d) => self.events.push_back(ClientEvent::Media {
                stream_id: sid,
                tag: Tag::new(TagKind::Audio, raw.timestamp, d),
            }),
            Message::Video(d) => self.events.push_back(ClientEvent::Media {
                stream_id: sid,
                tag: Tag::new(TagKind::Video, raw.timestamp, d),
            }),
            Message::Data { body, .. } => {
                let is_access = amf0::Amf0Decoder::new(&body, self.conn.amf_limits)
                    .next_value()
                    .ok()
                    .flatten()
                    .and_then(|v| v.as_str().map(|s| s == "|RtmpSampleAccess"))
                    .unwrap_or(false);
                if !is_access {
                    self.events.push_back(ClientEvent::Media {
                        stream_id: sid,
                        tag: Tag::new(TagKind::Script, raw.timestamp, body),
                    });
                }
            }
            Message::Aggregate(body) => {
                if let Ok(tags) = split_aggregate(raw.timestamp, &body) {
                    for tag in tags {
                        self.events.push_back(ClientEvent::Media {
                            stream_id: sid,
                            tag,
                        });
                    }
                }
            }
            _ => {}
        }
    }

    fn handle_command(&mut self, sid: u32, cmd: &Command) {
        let info = cmd.args.first().cloned().unwrap_or(Amf0Value::Null);
        match cmd.name.as_str() {
            "_result" | "_error"
                if same_tid(cmd.transaction_id, 1.0) && self.state == State::Connecting =>
            {
                let code = info_str(&info, "code");
                if cmd.name == "_result" && code == "NetConnection.Connect.Success" {
                    self.state = State::Connected;
                    self.events.push_back(ClientEvent::Connected);
                } else {
                    self.state = State::Closed;
                    self.events.push_back(ClientEvent::ConnectFailed {
                        code,
                        description: info_str(&info, "description"),
                    });
                }
            }
            "_result" => {
                if let Some(pos) = self
                    .pending_create
                    .iter()
                    .position(|t| same_tid(*t, cmd.transaction_id))
                {
                    self.pending_create.remove(pos);
                    if let Some(stream_id) = info.as_f64().and_then(as_u32) {
                        self.events.push_back(ClientEvent::StreamCreated {
                            transaction_id: cmd.transaction_id,
                            stream_id,
                        });
                    }
                }
            }
            "onStatus" => self.events.push_back(ClientEvent::Status {
                stream_id: sid,
                level: info_str(&info, "level"),
                code: info_str(&info, "code"),
                description: info_str(&info, "description"),
            }),
            _ => {}
        }
    }

    fn tid(&mut self) -> f64 {
        let t = self.next_tid;
        self.next_tid += 1.0;
        t
    }

    fn require_connected(&self) -> Result<()> {
        if self.state == State::Connected {
            Ok(())
        } else {
            Err(RtmpError::Misuse("not connected".into()))
        }
    }

    /// Send `createStream`; the answer comes as [`ClientEvent::StreamCreated`] with the
    /// returned transaction id.
    pub fn create_stream(&mut self) -> Result<f64> {
        self.require_connected()?;
        let tid = self.tid();
        self.pending_create.push(tid);
        self.conn
            .send_command(0, CSID_COMMAND, Command::new("createStream", tid));
        self.await_answer();
        Ok(tid)
    }

    /// Send `publish` (`name` may carry `?query`); the answer is a [`ClientEvent::Status`]
    /// (`NetStream.Publish.Start` or an error).
    pub fn publish(&mut self, stream_id: u32, name: &str, mode: PublishMode) -> Result<()> {
        self.require_connected()?;
        let mut c = Command::new("publish", 0.0);
        c.args = vec![
            Amf0Value::String(name.into()),
            Amf0Value::String(
                match mode {
                    PublishMode::Live => "live",
                    PublishMode::Record => "record",
                    PublishMode::Append => "append",
                }
                .into(),
            ),
        ];
        self.conn.send_command(stream_id, CSID_STREAM, c);
        self.await_answer();
        Ok(())
    }

    /// Send `play` for a live or recorded stream (start -2: either).
    pub fn play(&mut self, stream_id: u32, name: &str) -> Result<()> {
        self.require_connected()?;
        let mut c = Command::new("play", 0.0);
        c.args = vec![Amf0Value::String(name.into()), Amf0Value::Number(-2.0)];
        self.conn.send_command(stream_id, CSID_STREAM, c);
        self.await_answer();
        Ok(())
    }

    /// Send a tag on a publishing stream. Script tags are sent as `@setDataFrame` data
    /// messages, as publishers do.
    pub fn send_tag(&mut self, stream_id: u32, tag: &Tag) -> Result<()> {
        self.require_connected()?;
        let (csid, type_id, payload) = match tag.kind {
            TagKind::Audio => (CSID_AUDIO, msg_type::AUDIO, tag.data.clone()),
            TagKind::Video => (CSID_VIDEO, msg_type::VIDEO, tag.data.clone()),
            TagKind::Script => {
                let mut body = Vec::with_capacity(tag.data.len() + 16);
                amf0::encode(&Amf0Value::String("@setDataFrame".into()), &mut body);
                body.extend_from_slice(&tag.data);
                (CSID_STREAM, msg_type::DATA_AMF0, Bytes::from(body))
            }
        };
        self.conn.send_raw(&RawMessage {
            csid,
            timestamp: tag.timestamp,
            type_id,
            stream_id,
            payload,
        });
        Ok(())
    }

    /// Stop publishing or playing on `stream_id` (`deleteStream`).
    pub fn delete_stream(&mut self, stream_id: u32) -> Result<()> {
        self.require_connected()?;
        let mut c = Command::new("deleteStream", 0.0);
        c.args.push(Amf0Value::Number(f64::from(stream_id)));
        self.conn.send_command(0, CSID_COMMAND, c);
        Ok(())
    }
}
