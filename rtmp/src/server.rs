//! The server side of an RTMP connection, sans-IO.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use videopick_flv::amf0::{self, Amf0Value, AmfLimits};
use videopick_flv::{Tag, TagKind};

use crate::chunk::{ChunkLimits, RawMessage, msg_type};
use crate::conn::{
    CSID_AUDIO, CSID_COMMAND, CSID_CONTROL, CSID_STREAM, CSID_VIDEO, Conn, as_u32, split_query,
    status,
};
use crate::error::{Result, RtmpError};
use crate::handshake::ServerHandshake;
use crate::message::{Command, Message, UserControl, split_aggregate};

/// Configuration of a [`ServerSession`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Chunk size we send with (announced after connect; default 4096).
    pub chunk_size: u32,
    /// Window Acknowledgement Size we ask the client to ack at (default 2.5 MB).
    pub window_ack_size: u32,
    /// Set Peer Bandwidth we send (default 2.5 MB, dynamic).
    pub peer_bandwidth: u32,
    /// Limits on the incoming chunk stream.
    pub chunk_limits: ChunkLimits,
    /// Limits on AMF bodies.
    pub amf_limits: AmfLimits,
    /// Most message streams one connection may create (default 16).
    pub max_streams: u32,
    /// The S1 time field (injected: the session reads no clock).
    pub handshake_epoch: u32,
    /// Seed of the handshake's random bytes.
    pub handshake_seed: u64,
    /// Most bytes sent to a player that it may leave unacknowledged before
    /// [`ServerSession::send_tag`] fails (default 8 windows, 20 MB; `None`: no limit). A
    /// player acknowledges every window it receives, so a stuck or hostile one shows here.
    pub max_unacknowledged: Option<u32>,
    /// Send a PingRequest after this long without one (default 30 s; `None`: never).
    pub ping_interval: Option<Duration>,
    /// End the session when nothing at all arrives this long after a ping (default 60 s).
    pub ping_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            chunk_size: 4096,
            window_ack_size: 2_500_000,
            peer_bandwidth: 2_500_000,
            chunk_limits: ChunkLimits::default(),
            amf_limits: AmfLimits::default(),
            max_streams: 16,
            handshake_epoch: 0,
            handshake_seed: 0x5eed,
            ping_interval: Some(Duration::from_secs(30)),
            ping_timeout: Duration::from_secs(60),
            max_unacknowledged: Some(8 * 2_500_000),
        }
    }
}

impl ServerConfig {
    /// Set the handshake time field and random seed.
    #[must_use]
    pub fn handshake(mut self, epoch: u32, seed: u64) -> Self {
        self.handshake_epoch = epoch;
        self.handshake_seed = seed;
        self
    }
    /// Set [`ServerConfig::ping_interval`] and [`ServerConfig::ping_timeout`].
    #[must_use]
    pub fn ping(mut self, interval: Option<Duration>, timeout: Duration) -> Self {
        self.ping_interval = interval;
        self.ping_timeout = timeout;
        self
    }

    /// Set [`ServerConfig::max_unacknowledged`].
    #[must_use]
    pub fn max_unacknowledged(mut self, bytes: Option<u32>) -> Self {
        self.max_unacknowledged = bytes;
        self
    }

    /// Set [`ServerConfig::chunk_size`].
    #[must_use]
    pub fn chunk_size(mut self, size: u32) -> Self {
        self.chunk_size = size;
        self
    }
    /// Set [`ServerConfig::chunk_limits`].
    #[must_use]
    pub fn chunk_limits(mut self, limits: ChunkLimits) -> Self {
        self.chunk_limits = limits;
        self
    }
    /// Set [`ServerConfig::max_streams`].
    #[must_use]
    pub fn max_streams(mut self, n: u32) -> Self {
        self.max_streams = n;
        self
    }
}

/// Identifies a request the application must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(u64);

/// How a publisher wants its stream handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishMode {
    /// `live`: not recorded.
    Live,
    /// `record`: record, replacing an existing recording.
    Record,
    /// `append`: record, appending to an existing recording.
    Append,
}

/// A client's `connect`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectRequest {
    /// Answer with [`ServerSession::accept_connect`] or [`ServerSession::reject_connect`].
    pub id: RequestId,
    /// The application name (`live` of `rtmp://host/live`), without a query string.
    pub app: String,
    /// A query string given with the app (`live?token=…`).
    pub app_query: Option<String>,
    /// The `tcUrl` the client connected to.
    pub tc_url: Option<String>,
    /// The whole command object.
    pub object: Amf0Value,
}

/// A client's `publish`.
#[derive(Debug, Clone, PartialEq)]
pub struct PublishRequest {
    /// Answer with [`ServerSession::accept_publish`] or [`ServerSession::reject_publish`].
    pub id: RequestId,
    /// The message stream it publishes on.
    pub stream_id: u32,
    /// The stream name, without a query string.
    pub name: String,
    /// The query string (`key=…&sign=…`), if any.
    pub query: Option<String>,
    /// live / record / append.
    pub mode: PublishMode,
}

/// A client's `play`.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayRequest {
    /// Answer with [`ServerSession::accept_play`] or [`ServerSession::reject_play`].
    pub id: RequestId,
    /// The message stream to play on.
    pub stream_id: u32,
    /// The stream name, without a query string.
    pub name: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// Start: -2 live or recorded, -1 live only, ≥ 0 seconds into a recording.
    pub start: f64,
    /// Duration in seconds, -1 for all.
    pub duration: f64,
    /// Whether to flush a previous playlist.
    pub reset: bool,
}

/// What the server session reports to the application.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A `connect` awaits an answer; no further input is processed until it has one.
    Connect(ConnectRequest),
    /// A `publish` awaits an answer; no further input is processed until it has one.
    Publish(PublishRequest),
    /// A `play` awaits an answer; no further input is processed until it has one.
    Play(PlayRequest),
    /// A media or script tag from a publishing stream (`@setDataFrame` already removed).
    Media {
        /// The publishing stream.
        stream_id: u32,
        /// The tag.
        tag: Tag,
    },
    /// The publisher stopped (FCUnpublish, closeStream or deleteStream).
    Unpublish {
        /// The stream that was publishing.
        stream_id: u32,
    },
    /// A player stopped (closeStream or deleteStream).
    PlayStop {
        /// The stream that was playing.
        stream_id: u32,
    },
    /// `receiveAudio` from a player.
    ReceiveAudio {
        /// The stream.
        stream_id: u32,
        /// Whether audio is wanted.
        enabled: bool,
    },
    /// `receiveVideo` from a player.
    ReceiveVideo {
        /// The stream.
        stream_id: u32,
        /// Whether video is wanted.
        enabled: bool,
    },
}

/// Why a publish is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishRejection {
    /// The name is in use or invalid (`NetStream.Publish.BadName`).
    BadName,
    /// Not allowed (`NetStream.Publish.Unauthorized`, with a description).
    Unauthorized(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Idle,
    Publishing,
    Playing,
}

#[derive(Debug)]
enum Pending {
    Connect {
        id: RequestId,
        tid: f64,
        encoding: f64,
    },
    Publish {
        id: RequestId,
        sid: u32,
        name: String,
    },
    Play {
        id: RequestId,
        sid: u32,
        name: String,
        reset: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Handshake,
    Connecting,
    Connected,
    Closed,
}

/// The server side of one RTMP connection.
///
/// Call order:
/// 1. [`handle_input`](Self::handle_input) with bytes read from the socket (the consumed
///    ones are removed from the buffer);
/// 2. [`poll_event`](Self::poll_event) until `None`, answering requests
///    ([`accept_connect`](Self::accept_connect), [`accept_publish`](Self::accept_publish),
///    [`accept_play`](Self::accept_play) or their `reject_*`) now or later;
/// 3. [`poll_transmit`](Self::poll_transmit) until `None`, writing the bytes to the socket;
/// 4. after answering a request, call `handle_input` again (with no new bytes if need be):
///    input is not processed while a request is unanswered, which keeps memory bounded;
/// 5. at [`poll_timeout`](Self::poll_timeout), call [`handle_timeout`](Self::handle_timeout)
///    (keep-alive pings; a peer that sends nothing after a ping times out).
///
/// The session reads no clock (time is passed in) and does no I/O. [`is_closed`](Self::is_closed) tells when to
/// close the socket (after sending what `poll_transmit` returns).
#[derive(Debug)]
pub struct ServerSession {
    config: ServerConfig,
    handshake: ServerHandshake,
    conn: Conn,
    state: State,
    pending: Option<Pending>,
    next_request: u64,
    streams: Vec<(u32, Role)>,
    next_stream_id: u32,
    events: VecDeque<ServerEvent>,
    dropped_media: u64,
    /// Time origin of ping timestamps (first `now` seen).
    epoch: Option<Instant>,
    next_ping: Option<Instant>,
    /// A ping is outstanding since then and nothing has arrived since.
    awaiting_since: Option<Instant>,
}

fn arg_str(args: &[Amf0Value], i: usize) -> Option<&str> {
    args.get(i).and_then(Amf0Value::as_str)
}

impl ServerSession {
    /// A session waiting for the client's handshake.
    pub fn new(config: ServerConfig) -> Self {
        ServerSession {
            handshake: ServerHandshake::new(config.handshake_epoch, config.handshake_seed),
            conn: Conn::new(config.chunk_limits, config.amf_limits),
            config,
            state: State::Handshake,
            pending: None,
            next_request: 1,
            streams: Vec::new(),
            next_stream_id: 1,
            events: VecDeque::new(),
            dropped_media: 0,
            epoch: None,
            next_ping: None,
            awaiting_since: None,
        }
    }

    /// True once the handshake is complete.
    pub fn is_handshake_done(&self) -> bool {
        self.handshake.is_done()
    }

    /// True once the session has ended (a rejected connect); close the socket after
    /// sending the pending output.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Media messages dropped because their stream was not publishing.
    pub fn dropped_media(&self) -> u64 {
        self.dropped_media
    }

    /// The chunk size we send with.
    pub fn out_chunk_size(&self) -> u32 {
        self.conn.encoder.chunk_size()
    }

    /// The last sequence number the peer acknowledged (bytes it has received from us).
    pub fn acknowledged_by_peer(&self) -> u32 {
        self.conn.peer_acked
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next (pings), if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        match self.awaiting_since {
            Some(since) => Some(since + self.config.ping_timeout),
            None => self.next_ping,
        }
    }

    /// Run timers due at `now`: send a PingRequest when one is due; fail with
    /// [`RtmpError::Timeout`] when a ping went unanswered (no input at all) for the timeout.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<()> {
        if self.state == State::Closed {
            return Ok(());
        }
        if let Some(since) = self.awaiting_since {
            if now >= since + self.config.ping_timeout {
                self.state = State::Closed;
                return Err(RtmpError::Timeout("no answer to ping"));
            }
            return Ok(());
        }
        if let (Some(due), Some(interval)) = (self.next_ping, self.config.ping_interval)
            && now >= due
        {
            let epoch = *self.epoch.get_or_insert(now);
            let ms = (now.duration_since(epoch).as_millis() & 0xffff_ffff) as u32;
            self.conn.send(
                CSID_CONTROL,
                0,
                0,
                &Message::UserControl(UserControl::PingRequest(ms)),
            );
            self.awaiting_since = Some(now);
            self.next_ping = Some(now + interval);
        }
        Ok(())
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// Bytes to send to the client.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.conn.poll_transmit()
    }

    /// True when [`poll_transmit`](Self::poll_transmit) has bytes.
    pub fn has_output(&self) -> bool {
        self.conn.has_output()
    }

    /// Process bytes from the client that arrived at `now`, consuming them from `buf`.
    /// An error ends the session.
    pub fn handle_input(&mut self, now: Instant, buf: &mut BytesMut) -> Result<()> {
        let before = buf.len();
        self.epoch.get_or_insert(now);
        if before > 0 {
            // Anything from the peer proves it alive.
            self.awaiting_since = None;
        }
        let result = self.process(buf);
        self.conn.count_received(before - buf.len());
        if self.state == State::Connected && self.next_ping.is_none() {
            self.next_ping = self.config.ping_interval.map(|i| now + i);
        }
        if result.is_ok() {
            self.conn.maybe_ack();
        } else {
            self.state = State::Closed;
        }
        result
    }

    fn process(&mut self, buf: &mut BytesMut) -> Result<()> {
        if self.state == State::Closed {
            return Ok(());
        }
        if self.state == State::Handshake {
            self.handshake.handle_input(buf)?;
            while let Some(b) = self.handshake.poll_transmit() {
                self.conn.push_raw(&b);
            }
            if !self.handshake.is_done() {
                return Ok(());
            }
            self.state = State::Connecting;
        }
        while self.pending.is_none() && self.state != State::Closed {
            let Some((raw, msg)) = self.conn.decode_next(buf)? else {
                break;
            };
            self.handle_message(&raw, msg)?;
        }
        Ok(())
    }

    fn role(&self, sid: u32) -> Option<Role> {
        self.streams
            .iter()
            .find(|(s, _)| *s == sid)
            .map(|(_, r)| *r)
    }

    fn set_role(&mut self, sid: u32, role: Role) {
        if let Some(e) = self.streams.iter_mut().find(|(s, _)| *s == sid) {
            e.1 = role;
        }
    }

    fn request_id(&mut self) -> RequestId {
        let id = RequestId(self.next_request);
        self.next_request += 1;
        id
    }

    fn handle_message(&mut self, raw: &RawMessage, msg: Message) -> Result<()> {
        if self.conn.handle_control(&msg) {
            return Ok(());
        }
        match msg {
            Message::Command { command, .. } => self.handle_command(raw.stream_id, &command),
            Message::Audio(data) => {
                self.media(raw.stream_id, Tag::new(TagKind::Audio, raw.timestamp, data));
                Ok(())
            }
            Message::Video(data) => {
                self.media(raw.stream_id, Tag::new(TagKind::Video, raw.timestamp, data));
                Ok(())
            }
            Message::Data { body, .. } => {
                let body = strip_set_data_frame(&body, self.conn.amf_limits)?;
                self.media(
                    raw.stream_id,
                    Tag::new(TagKind::Script, raw.timestamp, body),
                );
                Ok(())
            }
            Message::Aggregate(body) => {
                for tag in split_aggregate(raw.timestamp, &body)? {
                    self.media(raw.stream_id, tag);
                }
                Ok(())
            }
            // User control from clients (SetBufferLength, …) and unknown types need no answer.
            _ => Ok(()),
        }
    }

    fn media(&mut self, stream_id: u32, tag: Tag) {
        if self.role(stream_id) == Some(Role::Publishing) {
            self.events.push_back(ServerEvent::Media { stream_id, tag });
        } else {
            self.dropped_media += 1;
        }
    }

    fn handle_command(&mut self, sid: u32, cmd: &Command) -> Result<()> {
        if self.state == State::Connecting && cmd.name != "connect" {
            return Err(RtmpError::protocol(format!(
                "command {:?} before connect",
                cmd.name
            )));
        }
        match cmd.name.as_str() {
            "connect" => self.on_connect(cmd),
            "createStream" => {
                self.on_create_stream(cmd);
                Ok(())
            }
            "releaseStream" | "FCPublish" | "FCSubscribe" | "_checkbw" => {
                if cmd.transaction_id != 0.0 {
                    let mut r = Command::new("_result", cmd.transaction_id);
                    r.args.push(Amf0Value::Undefined);
                    self.conn.send_command(0, CSID_COMMAND, r);
                }
                Ok(())
            }
            "publish" => {
                self.on_publish(sid, cmd);
                Ok(())
            }
            "play" => {
                self.on_play(sid, cmd);
                Ok(())
            }
            "FCUnpublish" => {
                // FCUnpublish names the stream; a connection publishes at most one here.
                let publishing: Vec<u32> = self
                    .streams
                    .iter()
                    .filter(|(_, r)| *r == Role::Publishing)
                    .map(|(s, _)| *s)
                    .collect();
                for sid in publishing {
                    self.stop(sid);
                }
                Ok(())
            }
            "closeStream" => {
                self.stop(sid);
                Ok(())
            }
            "deleteStream" => {
                let target = cmd
                    .args
                    .first()
                    .and_then(Amf0Value::as_f64)
                    .and_then(as_u32)
                    .unwrap_or(sid);
                self.stop(target);
                self.streams.retain(|(s, _)| *s != target);
                Ok(())
            }
            "receiveAudio" | "receiveVideo" => {
                let enabled = cmd
                    .args
                    .first()
                    .and_then(Amf0Value::as_bool)
                    .unwrap_or(true);
                self.events.push_back(if cmd.name == "receiveAudio" {
                    ServerEvent::ReceiveAudio {
                        stream_id: sid,
                        enabled,
                    }
                } else {
                    ServerEvent::ReceiveVideo {
                        stream_id: sid,
                        enabled,
                    }
                });
                Ok(())
            }
            "getStreamLength" => {
                let mut r = Command::new("_result", cmd.transaction_id);
                r.args.push(Amf0Value::Number(0.0));
                self.conn.send_command(0, CSID_COMMAND, r);
                Ok(())
            }
            // play2 (bitrate switching), pause, seek and unknown commands are tolerated.
            _ => Ok(()),
        }
    }

    fn stop(&mut self, sid: u32) {
        match self.role(sid) {
            Some(Role::Publishing) => {
                self.events
                    .push_back(ServerEvent::Unpublish { stream_id: sid });
                self.set_role(sid, Role::Idle);
            }
            Some(Role::Playing) => {
                self.events
                    .push_back(ServerEvent::PlayStop { stream_id: sid });
                self.set_role(sid, Role::Idle);
            }
            _ => {}
        }
    }

    fn on_connect(&mut self, cmd: &Command) -> Result<()> {
        if self.state != State::Connecting {
            return Err(RtmpError::protocol("second connect on one connection"));
        }
        let app_full = cmd
            .object
            .get("app")
            .and_then(Amf0Value::as_str)
            .unwrap_or("");
        let (app, app_query) = split_query(app_full.trim_end_matches('/'));
        let tc_url = cmd
            .object
            .get("tcUrl")
            .and_then(Amf0Value::as_str)
            .map(str::to_owned);
        let encoding = cmd
            .object
            .get("objectEncoding")
            .and_then(Amf0Value::as_f64)
            .unwrap_or(0.0);
        let id = self.request_id();
        self.pending = Some(Pending::Connect {
            id,
            tid: cmd.transaction_id,
            encoding,
        });
        self.events.push_back(ServerEvent::Connect(ConnectRequest {
            id,
            app,
            app_query,
            tc_url,
            object: cmd.object.clone(),
        }));
        Ok(())
    }

    fn on_create_stream(&mut self, cmd: &Command) {
        if self.streams.len() as u32 >= self.config.max_streams {
            let mut r = Command::new("_error", cmd.transaction_id);
            r.args.push(status(
                "error",
                "NetConnection.Call.Failed",
                "too many streams",
            ));
            self.conn.send_command(0, CSID_COMMAND, r);
            return;
        }
        let sid = self.next_stream_id;
        self.next_stream_id += 1;
        self.streams.push((sid, Role::Idle));
        let mut r = Command::new("_result", cmd.transaction_id);
        r.args.push(Amf0Value::Number(f64::from(sid)));
        self.conn.send_command(0, CSID_COMMAND, r);
    }

    fn on_publish(&mut self, sid: u32, cmd: &Command) {
        if self.role(sid) != Some(Role::Idle) {
            self.on_status(
                sid,
                "error",
                "NetStream.Publish.BadName",
                "stream id not available",
            );
            return;
        }
        let (name, query) = split_query(arg_str(&cmd.args, 0).unwrap_or(""));
        let mode = match arg_str(&cmd.args, 1) {
            Some("record") => PublishMode::Record,
            Some("append") => PublishMode::Append,
            _ => PublishMode::Live,
        };
        let id = self.request_id();
        self.pending = Some(Pending::Publish {
            id,
            sid,
            name: name.clone(),
        });
        self.events.push_back(ServerEvent::Publish(PublishRequest {
            id,
            stream_id: sid,
            name,
            query,
            mode,
        }));
    }

    fn on_play(&mut self, sid: u32, cmd: &Command) {
        if self.role(sid) != Some(Role::Idle) {
            self.on_status(
                sid,
                "error",
                "NetStream.Play.Failed",
                "stream id not available",
            );
            return;
        }
        let (name, query) = split_query(arg_str(&cmd.args, 0).unwrap_or(""));
        let num = |i: usize, d: f64| cmd.args.get(i).and_then(Amf0Value::as_f64).unwrap_or(d);
        let reset = cmd.args.get(3).and_then(Amf0Value::as_bool).unwrap_or(true);
        let id = self.request_id();
        self.pending = Some(Pending::Play {
            id,
            sid,
            name: name.clone(),
            reset,
        });
        self.events.push_back(ServerEvent::Play(PlayRequest {
            id,
            stream_id: sid,
            name,
            query,
            start: num(1, -2.0),
            duration: num(2, -1.0),
            reset,
        }));
    }

    fn on_status(&mut self, sid: u32, level: &str, code: &str, description: &str) {
        let mut c = Command::new("onStatus", 0.0);
        c.args.push(status(level, code, description));
        self.conn.send_command(sid, CSID_STREAM, c);
    }

    fn take_pending(&mut self, id: RequestId) -> Result<Pending> {
        let matches = match &self.pending {
            Some(
                Pending::Connect { id: p, .. }
                | Pending::Publish { id: p, .. }
                | Pending::Play { id: p, .. },
            ) => *p == id,
            None => false,
        };
        if !matches {
            return Err(RtmpError::Misuse(format!("request {id:?} is not pending")));
        }
        self.pending
            .take()
            .ok_or_else(|| RtmpError::Misuse("no pending request".into()))
    }

    /// Accept the pending `connect`: sends window size, peer bandwidth, chunk size and
    /// `_result` (NetConnection.Connect.Success).
    pub fn accept_connect(&mut self, id: RequestId) -> Result<()> {
        let Pending::Connect { tid, encoding, .. } = self.take_pending(id)? else {
            return Err(RtmpError::Misuse("not a connect request".into()));
        };
        self.conn.send(
            CSID_CONTROL,
            0,
            0,
            &Message::WindowAckSize(self.config.window_ack_size),
        );
        self.conn.send(
            CSID_CONTROL,
            0,
            0,
            &Message::SetPeerBandwidth {
                size: self.config.peer_bandwidth,
                limit: 2,
            },
        );
        self.conn.set_chunk_size(self.config.chunk_size);
        let mut r = Command::new("_result", tid);
        r.object = Amf0Value::Object(vec![
            ("fmsVer".into(), Amf0Value::String("FMS/3,0,1,123".into())),
            ("capabilities".into(), Amf0Value::Number(31.0)),
            ("mode".into(), Amf0Value::Number(1.0)),
        ]);
        let Amf0Value::Object(mut info) = status(
            "status",
            "NetConnection.Connect.Success",
            "Connection succeeded.",
        ) else {
            unreachable!("status() builds an object")
        };
        info.push(("objectEncoding".into(), Amf0Value::Number(encoding)));
        r.args.push(Amf0Value::Object(info));
        self.conn.send_command(0, CSID_COMMAND, r);
        self.state = State::Connected;
        Ok(())
    }

    /// Reject the pending `connect` (NetConnection.Connect.Rejected); the session closes.
    pub fn reject_connect(&mut self, id: RequestId, description: &str) -> Result<()> {
        let Pending::Connect { tid, .. } = self.take_pending(id)? else {
            return Err(RtmpError::Misuse("not a connect request".into()));
        };
        let mut r = Command::new("_error", tid);
        r.args.push(status(
            "error",
            "NetConnection.Connect.Rejected",
            description,
        ));
        self.conn.send_command(0, CSID_COMMAND, r);
        self.state = State::Closed;
        Ok(())
    }

    /// Accept the pending `publish` (StreamBegin + NetStream.Publish.Start); media will
    /// arrive as [`ServerEvent::Media`].
    pub fn accept_publish(&mut self, id: RequestId) -> Result<()> {
        let Pending::Publish { sid, name, .. } = self.take_pending(id)? else {
            return Err(RtmpError::Misuse("not a publish request".into()));
        };
        self.set_role(sid, Role::Publishing);
        self.conn.send(
            CSID_CONTROL,
            0,
            0,
            &Message::UserControl(UserControl::StreamBegin(sid)),
        );
        self.on_status(
            sid,
            "status",
            "NetStream.Publish.Start",
            &format!("{name} is now published."),
        );
        Ok(())
    }

    /// Reject the pending `publish`.
    pub fn reject_publish(&mut self, id: RequestId, why: &PublishRejection) -> Result<()> {
        let Pending::Publish { sid, name, .. } = self.take_pending(id)? else {
            return Err(RtmpError::Misuse("not a publish request".into()));
        };
        match why {
            PublishRejection::BadName => self.on_status(
                sid,
                "error",
                "NetStream.Publish.BadName",
                &format!("{name} is already being published or is not a valid name."),
            ),
            PublishRejection::Unauthorized(d) => {
                self.on_status(sid, "error", "NetStream.Publish.Unauthorized", d);
            }
        }
        Ok(())
    }

    /// Accept the pending `play`: StreamBegin, NetStream.Play.Reset (if asked),
    /// NetStream.Play.Start and `|RtmpSampleAccess`. Then send tags with
    /// [`send_tag`](Self::send_tag).
    pub fn accept_play(&mut self, id: RequestId) -> Result<()> {
        let Pending::Play {
            sid, name, reset, ..
        } = self.take_pending(id)?
        else {
            return Err(RtmpError::Misuse("not a play request".into()));
        };
        self.set_role(sid, Role::Playing);
        self.conn.send(
            CSID_CONTROL,
            0,
            0,
            &Message::UserControl(UserControl::StreamBegin(sid)),
        );
        if reset {
            self.on_status(
                sid,
                "status",
                "NetStream.Play.Reset",
                &format!("Playing and resetting {name}."),
            );
        }
        self.on_status(
            sid,
            "status",
            "NetStream.Play.Start",
            &format!("Started playing {name}."),
        );
        let access = amf0::encode_all(&[
            Amf0Value::String("|RtmpSampleAccess".into()),
            Amf0Value::Boolean(true),
            Amf0Value::Boolean(true),
        ]);
        self.conn.send(
            CSID_STREAM,
            0,
            sid,
            &Message::Data {
                body: Bytes::from(access),
                amf3: false,
            },
        );
        Ok(())
    }

    /// Reject the pending `play` (NetStream.Play.StreamNotFound with `description`).
    pub fn reject_play(&mut self, id: RequestId, description: &str) -> Result<()> {
        let Pending::Play { sid, .. } = self.take_pending(id)? else {
            return Err(RtmpError::Misuse("not a play request".into()));
        };
        self.on_status(sid, "error", "NetStream.Play.StreamNotFound", description);
        Ok(())
    }

    /// Send a tag to a playing stream. Fails with [`RtmpError::LimitExceeded`] (and the
    /// session closes) when the player has left more than
    /// [`ServerConfig::max_unacknowledged`] bytes unacknowledged.
    pub fn send_tag(&mut self, stream_id: u32, tag: &Tag) -> Result<()> {
        if self.role(stream_id) != Some(Role::Playing) {
            return Err(RtmpError::Misuse(format!(
                "stream {stream_id} is not playing"
            )));
        }
        self.check_unacknowledged()?;
        let (csid, type_id) = match tag.kind {
            TagKind::Audio => (CSID_AUDIO, msg_type::AUDIO),
            TagKind::Video => (CSID_VIDEO, msg_type::VIDEO),
            TagKind::Script => (CSID_STREAM, msg_type::DATA_AMF0),
        };
        self.conn.send_raw(&RawMessage {
            csid,
            timestamp: tag.timestamp,
            type_id,
            stream_id,
            payload: tag.data.clone(),
        });
        Ok(())
    }

    /// Account for tag bytes the caller wrote to the socket itself in the shared
    /// pre-chunked form (`SharedTag::rtmp_chunks` of the `videopick-live` hub): checks that
    /// `stream_id` is playing and the unacknowledged-bytes limit, and counts `len` as sent.
    pub fn prechunked_sent(&mut self, stream_id: u32, len: usize) -> Result<()> {
        if self.role(stream_id) != Some(Role::Playing) {
            return Err(RtmpError::Misuse(format!(
                "stream {stream_id} is not playing"
            )));
        }
        self.check_unacknowledged()?;
        self.conn.count_sent(len);
        Ok(())
    }

    fn check_unacknowledged(&mut self) -> Result<()> {
        if let Some(max) = self.config.max_unacknowledged {
            let pending = self.conn.unacknowledged();
            if pending > max {
                self.state = State::Closed;
                return Err(RtmpError::LimitExceeded {
                    what: "unacknowledged bytes",
                    value: u64::from(pending),
                    max: u64::from(max),
                });
            }
        }
        Ok(())
    }

    /// Tell a player its publisher went away (NetStream.Play.UnpublishNotify, StreamEOF).
    pub fn notify_unpublish(&mut self, stream_id: u32) {
        self.on_status(
            stream_id,
            "status",
            "NetStream.Play.UnpublishNotify",
            "The stream was unpublished.",
        );
        self.conn.send(
            CSID_CONTROL,
            0,
            0,
            &Message::UserControl(UserControl::StreamEof(stream_id)),
        );
    }

    /// Tell a player a publisher (re)started (NetStream.Play.PublishNotify, StreamBegin).
    pub fn notify_publish(&mut self, stream_id: u32) {
        self.conn.send(
            CSID_CONTROL,
            0,
            0,
            &Message::UserControl(UserControl::StreamBegin(stream_id)),
        );
        self.on_status(
            stream_id,
            "status",
            "NetStream.Play.PublishNotify",
            "The stream was published.",
        );
    }

    /// End a publisher's stream from the server side (kick): NetStream.Unpublish.Success,
    /// then the session closes.
    pub fn kick(&mut self, stream_id: u32, description: &str) {
        if self.role(stream_id) == Some(Role::Publishing) {
            self.on_status(
                stream_id,
                "status",
                "NetStream.Unpublish.Success",
                description,
            );
            self.stop(stream_id);
        }
        self.state = State::Closed;
    }
}

/// Remove a leading `@setDataFrame` from a data message body without copying.
fn strip_set_data_frame(body: &Bytes, limits: AmfLimits) -> Result<Bytes> {
    let mut d = amf0::Amf0Decoder::new(body, limits);
    if let Some(Amf0Value::String(s)) = d.next_value()?
        && s == "@setDataFrame"
    {
        let rest = d.remaining().len();
        return Ok(body.slice(body.len() - rest..));
    }
    Ok(body.clone())
}
