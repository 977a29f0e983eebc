//! The tokio/hyper adapter (feature `server`): Engine.IO over HTTP long-polling and
//! WebSocket (with the upgrade between them) at `/socket.io/`, Socket.IO namespaces on
//! top, and an [`App`] called for connects, events and disconnects.
//!
//! Every connection's state sits behind one short-held lock; the app's callbacks run
//! outside it, so they may emit at once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

use crate::wire::engineio::{self, Packet as EioPacket, PacketType as EioType};
use crate::wire::session::{EngineConfig, Incoming as SessionIncoming, Session, Transport};
use crate::wire::socketio::{self, Packet, PacketType};
use crate::wire::websocket::{self, Message};

/// What the application does with sockets.
pub trait App: Send + Sync + 'static {
    /// Whether namespace `nsp` exists (others are refused with "Invalid namespace").
    fn has_namespace(&self, nsp: &str) -> bool;
    /// A client asks to join `socket.nsp()` with `auth` (the CONNECT payload): `Err(data)`
    /// refuses it with a CONNECT_ERROR carrying `data` (e.g. `{"message": "…"}`).
    fn connect(&self, socket: &Socket, auth: Option<&Value>) -> Result<(), Value>;
    /// The client joined (its CONNECT answer is queued); it may be sent events now.
    fn connected(&self, socket: &Socket, auth: Option<&Value>);
    /// An event (EVENT or BINARY_EVENT) on a joined namespace.
    fn event(&self, socket: &Socket, packet: Packet);
    /// The socket left (`reason` as socket.io names it).
    fn disconnect(&self, socket: &Socket, reason: &str);
}

/// One Socket.IO socket: a connection joined to a namespace.
#[derive(Debug, Clone)]
pub struct Socket {
    conn: Arc<Conn>,
    nsp: String,
    id: String,
}

impl Socket {
    /// The socket id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its namespace.
    pub fn nsp(&self) -> &str {
        &self.nsp
    }

    /// The connection (shared by the sockets of one client).
    pub fn conn(&self) -> &Arc<Conn> {
        &self.conn
    }

    /// Emit `event` with `args` to this socket. False when the connection is gone or its
    /// queue is full (it is then closed).
    pub fn emit(&self, event: &str, args: Vec<Value>) -> bool {
        self.conn.send(&Packet::event(&self.nsp, event, args))
    }

    /// Answer ack `id` with `args`.
    pub fn ack(&self, id: u64, args: Vec<Value>) -> bool {
        self.conn.send(&Packet::ack(&self.nsp, id, args))
    }
}

/// One client connection (an Engine.IO session).
#[derive(Debug)]
pub struct Conn {
    id: u64,
    sid: String,
    peer: SocketAddr,
    state: Mutex<ConnState>,
    /// Something to write (polls and the WebSocket writer wait on it).
    wake: Notify,
    /// The session may have ended (the reaper waits on it).
    check: Notify,
    /// The session has ended (its reaper says so; readers and writers stop on it).
    gone: Notify,
}

#[derive(Debug)]
struct ConnState {
    session: Session,
    decoder: socketio::Decoder,
    /// Joined namespaces → socket ids.
    sockets: HashMap<String, String>,
    /// A poll request is pending.
    polling: bool,
    /// A namespace was joined at some point (the connect timeout no longer applies).
    joined_once: bool,
    /// The WebSocket's TCP write half, when the connection is plain TCP: messages are
    /// then written straight to it by whoever sends them (see [`ConnState::try_direct`]).
    direct: Option<Arc<OwnedWriteHalf>>,
    /// Framed bytes a direct write (or the writer) could not hand to the socket yet; the
    /// writer sends them before anything else.
    out: Vec<u8>,
}

/// What [`ConnState::try_direct`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direct {
    /// Not written: queue the frames as usual.
    NotNow,
    /// All written to the socket.
    Written,
    /// Partly written; the rest is in `out` for the writer (wake it).
    Partial,
}

/// At most this many frames are written at once without queueing.
const MAX_DIRECT_FRAMES: usize = 16;

impl ConnState {
    /// The WebSocket's write half is gone: no more direct writes, nothing left to send.
    fn end_direct(&mut self) {
        self.direct = None;
        self.out = Vec::new();
    }

    /// Write Socket.IO message `frames` straight to the WebSocket when nothing is ahead of
    /// them: one non-blocking `writev` from the sender's thread instead of a queue entry,
    /// a task wake-up and the writer's own write. What the socket does not take is kept,
    /// framed, in `out` for the writer.
    fn try_direct(&mut self, frames: &[Bytes]) -> Direct {
        use crate::wire::websocket::{Opcode, frame_header};
        let Some(wr) = &self.direct else {
            return Direct::NotNow;
        };
        if frames.is_empty()
            || frames.len() > MAX_DIRECT_FRAMES
            || !self.out.is_empty()
            || !self.session.can_send_direct()
        {
            return Direct::NotNow;
        }
        let mut heads = [([0u8; 10], 0usize); MAX_DIRECT_FRAMES];
        for (h, f) in heads.iter_mut().zip(frames) {
            *h = frame_header(Opcode::Text, 1 + f.len());
        }
        let message = [EioType::Message.as_char()];
        let mut all = [std::io::IoSlice::new(&[]); MAX_DIRECT_FRAMES * 3];
        let mut total = 0;
        for (((h, k), f), s) in heads.iter().zip(frames).zip(all.chunks_exact_mut(3)) {
            s[0] = std::io::IoSlice::new(&h[..*k]);
            s[1] = std::io::IoSlice::new(&message);
            s[2] = std::io::IoSlice::new(f);
            total += k + 1 + f.len();
        }
        let slices = &all[..frames.len() * 3];
        // Straight to the socket, without tokio's readiness bookkeeping: when the socket
        // is full, the writer's `writable()` may see stale readiness once, then its own
        // `try_write` clears it.
        let sock: &TcpStream = (**wr).as_ref();
        let flags = rustix::net::SendFlags::NOSIGNAL | rustix::net::SendFlags::DONTWAIT;
        let written = match rustix::net::sendmsg(
            sock,
            slices,
            &mut rustix::net::SendAncillaryBuffer::default(),
            flags,
        ) {
            Ok(n) => n,
            Err(rustix::io::Errno::AGAIN) => 0,
            // A broken socket: queue, and let the writer meet the error and close.
            Err(_) => return Direct::NotNow,
        };
        self.session.sent_direct();
        if written == total {
            return Direct::Written;
        }
        let mut skip = written;
        for s in slices {
            if skip >= s.len() {
                skip -= s.len();
            } else {
                self.out.extend_from_slice(&s[skip..]);
                skip = 0;
            }
        }
        Direct::Partial
    }
}

impl Conn {
    /// A process-unique id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The Engine.IO session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    fn state(&self) -> MutexGuard<'_, ConnState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queue a Socket.IO packet (and its attachments).
    pub fn send(&self, p: &Packet) -> bool {
        let (text, attachments) = p.encode();
        self.send_raw(Bytes::from(text), attachments)
    }

    /// Write `frames` straight to the socket if nothing is ahead of them
    /// ([`ConnState::try_direct`]), waking the writer for what a full socket left; false
    /// when they must be queued instead.
    fn send_direct(&self, st: &mut ConnState, frames: &[Bytes]) -> bool {
        match st.try_direct(frames) {
            Direct::Written => true,
            Direct::Partial => {
                self.wake.notify_waiters();
                true
            }
            Direct::NotNow => false,
        }
    }

    /// Queue an already encoded Socket.IO packet (a shared broadcast frame).
    pub fn send_raw(&self, text: Bytes, attachments: &[Bytes]) -> bool {
        let ok = {
            let mut st = self.state();
            if attachments.is_empty() && self.send_direct(&mut st, std::slice::from_ref(&text)) {
                return true;
            }
            let mut ok = st.session.send(EioPacket::Text(EioType::Message, text));
            for a in attachments {
                ok = ok && st.session.send(EioPacket::Binary(a.clone()));
            }
            ok
        };
        self.wake.notify_waiters();
        if !ok {
            self.check.notify_one();
        }
        ok
    }

    /// Close from the server side.
    pub fn close(&self) {
        self.state().session.close();
        self.wake.notify_waiters();
        self.check.notify_one();
    }

    fn is_closed(&self) -> bool {
        self.state().session.closed().is_some()
    }
}

impl crate::fanout::Member for Conn {
    /// A batch of broadcast frames under one lock and at most one wake-up.
    fn push_many(&self, frames: &[Bytes]) -> (crate::fanout::Pushed, usize) {
        use crate::fanout::Pushed;
        let (ok, dropped, first) = {
            let mut st = self.state();
            if self.send_direct(&mut st, frames) {
                return (Pushed::Queued, 0);
            }
            let before = st.session.dropped();
            let first = st.session.queued() == 0;
            let mut ok = true;
            for f in frames {
                ok = st
                    .session
                    .send(EioPacket::Text(EioType::Message, f.clone()));
                if !ok {
                    break;
                }
            }
            (ok, st.session.dropped() - before, first)
        };
        if first {
            self.wake.notify_waiters();
        }
        let dropped = usize::try_from(dropped).unwrap_or(usize::MAX);
        match (ok, dropped) {
            (true, 0) => (Pushed::Queued, 0),
            (true, d) => (Pushed::DroppedOldest, d),
            (false, d) => {
                self.check.notify_one();
                (Pushed::Overflowed, d)
            }
        }
    }

    /// A broadcast frame (an encoded Socket.IO packet without attachments).
    fn push(&self, frame: Bytes) -> crate::fanout::Pushed {
        let (ok, dropped, first) = {
            let mut st = self.state();
            if self.send_direct(&mut st, std::slice::from_ref(&frame)) {
                return crate::fanout::Pushed::Queued;
            }
            let before = st.session.dropped();
            let first = st.session.queued() == 0;
            let ok = st.session.send(EioPacket::Text(EioType::Message, frame));
            (ok, st.session.dropped() > before, first)
        };
        // A writer (or poll) drains the whole queue once woken: only the first packet of
        // a batch needs to wake it. At a million deliveries a second this matters.
        if first {
            self.wake.notify_waiters();
        }
        match (ok, dropped) {
            (true, false) => crate::fanout::Pushed::Queued,
            (true, true) => crate::fanout::Pushed::DroppedOldest,
            (false, _) => {
                self.check.notify_one();
                crate::fanout::Pushed::Overflowed
            }
        }
    }
}

/// Completes once `conn`'s session has closed.
async fn session_closed(conn: &Conn) {
    loop {
        let notified = conn.gone.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if conn.is_closed() {
            return;
        }
        notified.await;
    }
}

/// The Engine.IO/Socket.IO server; cheap to clone.
pub struct Server<A: App> {
    inner: Arc<Inner<A>>,
}

impl<A: App> Clone for Server<A> {
    fn clone(&self) -> Self {
        Server {
            inner: self.inner.clone(),
        }
    }
}

/// Recovers the TCP stream under an upgraded connection, with any bytes read past the
/// upgrade request, so that WebSocket frames can be written straight to the socket by
/// whoever sends them (no per-message wake-up of a writer task). `Err` gives the
/// connection back when it is not plain TCP (TLS, say); it is then served through its
/// `AsyncRead`/`AsyncWrite` as before. [`Server::new`] recovers hyper-util's
/// `TokioIo<TcpStream>`; a server that wraps its streams passes its own to
/// [`Server::with_unwrap`].
pub type UnwrapUpgraded =
    fn(hyper::upgrade::Upgraded) -> Result<(TcpStream, Bytes), hyper::upgrade::Upgraded>;

/// [`UnwrapUpgraded`] for connections served as `TokioIo<TcpStream>`.
pub fn unwrap_tokio_tcp(
    upgraded: hyper::upgrade::Upgraded,
) -> Result<(TcpStream, Bytes), hyper::upgrade::Upgraded> {
    upgraded
        .downcast::<hyper_util::rt::TokioIo<TcpStream>>()
        .map(|parts| (parts.io.into_inner(), parts.read_buf))
}

struct Inner<A> {
    app: A,
    config: EngineConfig,
    unwrap: UnwrapUpgraded,
    conns: Mutex<HashMap<String, Arc<Conn>>>,
    next_id: AtomicU64,
}

type Resp = Response<Full<Bytes>>;

/// A WebSocket connection's read buffer between messages.
const IDLE_READ_BUF: usize = 512;

fn resp(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    r
}

fn error(code: u8, message: &str) -> Resp {
    resp(
        StatusCode::BAD_REQUEST,
        json!({"code": code, "message": message}).to_string(),
    )
}

fn random_id() -> String {
    use std::io::Read;
    let mut b = [0u8; 15];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        b[..15].copy_from_slice(&t.to_le_bytes()[..15]);
    }
    let mut out = Vec::new();
    engineio::base64_encode(&b, &mut out);
    String::from_utf8(out)
        .unwrap_or_default()
        .replace('+', "-")
        .replace('/', "_")
}

fn query<'a>(uri: &'a hyper::Uri, key: &str) -> Option<&'a str> {
    uri.query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// How a server that reads requests itself answers a `/socket.io/` request (see
/// [`Server::handle_direct`]).
pub enum Answer<A: App> {
    /// Write this response; the connection may then carry the next request.
    Response(Response<Full<Bytes>>),
    /// A WebSocket upgrade: write the response (`101 Switching Protocols`), then give the
    /// connection to [`Upgrade::run_tcp`].
    Upgrade(Response<Full<Bytes>>, Upgrade<A>),
}

/// An accepted WebSocket upgrade whose connection is yet to be handed over. Dropped
/// without [`Upgrade::run_tcp`] (the `101` could not be written), a session it opened
/// closes.
pub struct Upgrade<A: App> {
    server: Server<A>,
    /// The session the socket carries; `None` for a second upgrade of a session that
    /// already has its WebSocket (the socket is closed at once, as the reference server
    /// does, leaving the session on its first one).
    conn: Option<Arc<Conn>>,
    /// Whether this upgrade opened the session (no polling before it).
    fresh: bool,
}

impl<A: App> Drop for Upgrade<A> {
    fn drop(&mut self) {
        if self.fresh
            && let Some(conn) = self.conn.take()
        {
            conn.close();
        }
    }
}

impl<A: App> Upgrade<A> {
    /// Serve the WebSocket on `tcp` (the `101` written), with `read`: bytes that came
    /// after the upgrade request. Returns when the socket ends.
    pub async fn run_tcp(mut self, tcp: TcpStream, read: Bytes) {
        self.fresh = false;
        let Some(conn) = self.conn.take() else {
            return close_at_once(tcp).await;
        };
        self.server.run_websocket_tcp(conn, tcp, read).await;
    }

    /// Serve the WebSocket on a connection hyper upgraded.
    async fn run_upgraded(mut self, upgraded: hyper::upgrade::Upgraded) {
        let upgraded = match (self.server.inner.unwrap)(upgraded) {
            Ok((tcp, read)) => return self.run_tcp(tcp, read).await,
            Err(upgraded) => upgraded,
        };
        self.fresh = false;
        let io = hyper_util::rt::TokioIo::new(upgraded);
        let Some(conn) = self.conn.take() else {
            return close_at_once(io).await;
        };
        self.server.run_websocket(conn, io).await;
    }
}

/// End a WebSocket that has no session to serve (a second upgrade of one): a close frame
/// (1000, normal closure), then the end of the stream.
async fn close_at_once<S: tokio::io::AsyncWrite + Unpin>(mut io: S) {
    let _ = io.write_all(&websocket::close_frame(1000)).await;
    let _ = io.shutdown().await;
}

/// What [`Server::route`] made of a request.
enum Routed<A: App> {
    Done(Resp),
    Upgrade(Resp, Upgrade<A>),
}

impl<A: App> Server<A> {
    /// A server for `app`.
    pub fn new(app: A, config: EngineConfig) -> Server<A> {
        Server::with_unwrap(app, config, unwrap_tokio_tcp)
    }

    /// A server for `app` whose connections' IO type `unwrap` knows how to take apart
    /// (see [`UnwrapUpgraded`]).
    pub fn with_unwrap(app: A, config: EngineConfig, unwrap: UnwrapUpgraded) -> Server<A> {
        Server {
            inner: Arc::new(Inner {
                app,
                config,
                unwrap,
                conns: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// The application.
    pub fn app(&self) -> &A {
        &self.inner.app
    }

    /// The largest payload a client may send (a poll's body, a WebSocket message).
    pub fn max_payload(&self) -> usize {
        self.inner.config.max_payload
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.conns().len()
    }

    fn conns(&self) -> MutexGuard<'_, HashMap<String, Arc<Conn>>> {
        self.inner
            .conns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Answer a request under `/socket.io/` (serve it with hyper's `with_upgrades()`).
    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Resp {
        let (mut parts, body) = req.into_parts();
        let on_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
        let max = self.inner.config.max_payload;
        let body = async move {
            Limited::new(body, max)
                .collect()
                .await
                .ok()
                .map(http_body_util::Collected::to_bytes)
        };
        match self.route(&parts, body, peer).await {
            Routed::Done(resp) => resp,
            Routed::Upgrade(resp, upgrade) => {
                let Some(on_upgrade) = on_upgrade else {
                    // Not served with upgrades: `upgrade` drops, closing what it opened.
                    return error(3, "Bad request");
                };
                tokio::spawn(async move {
                    if let Ok(upgraded) = on_upgrade.await {
                        upgrade.run_upgraded(upgraded).await;
                    }
                });
                resp
            }
        }
    }

    /// Answer a request under `/socket.io/` that the caller read itself from a plain-TCP
    /// connection (no hyper): its head as `parts` and its complete `body` (a poll's
    /// payload; empty for a GET). A WebSocket upgrade comes back as [`Answer::Upgrade`]
    /// for the caller to write the `101` and hand the connection over.
    pub async fn handle_direct(
        &self,
        parts: &hyper::http::request::Parts,
        body: Bytes,
        peer: SocketAddr,
    ) -> Answer<A> {
        let max = self.inner.config.max_payload;
        let body = async move { (body.len() <= max).then_some(body) };
        match self.route(parts, body, peer).await {
            Routed::Done(resp) => Answer::Response(resp),
            Routed::Upgrade(resp, upgrade) => Answer::Upgrade(resp, upgrade),
        }
    }

    /// The Engine.IO request `parts` (with `body`, read only for a POST; `None` when it is
    /// larger than `max_payload`).
    async fn route(
        &self,
        parts: &hyper::http::request::Parts,
        body: impl std::future::Future<Output = Option<Bytes>>,
        peer: SocketAddr,
    ) -> Routed<A> {
        let uri = &parts.uri;
        if query(uri, "EIO") != Some("4") {
            return Routed::Done(error(5, "Unsupported protocol version"));
        }
        let sid = query(uri, "sid").map(str::to_string);
        Routed::Done(match (query(uri, "transport"), &parts.method) {
            (Some("websocket"), &Method::GET) => {
                return self.websocket(&parts.headers, sid.as_deref(), peer);
            }
            (Some("polling"), &Method::GET) => match sid {
                None => self.open_polling(peer),
                Some(sid) => self.poll(&sid).await,
            },
            (Some("polling"), &Method::POST) => match sid {
                Some(sid) => self.post(&sid, body).await,
                None => error(1, "Session ID unknown"),
            },
            (Some("polling" | "websocket"), _) => error(2, "Bad handshake method"),
            _ => error(0, "Transport unknown"),
        })
    }

    fn new_conn(&self, transport: Transport, peer: SocketAddr) -> Arc<Conn> {
        let sid = random_id();
        let conn = Arc::new(Conn {
            id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
            sid: sid.clone(),
            peer,
            state: Mutex::new(ConnState {
                session: Session::new(sid.clone(), self.inner.config, transport, Instant::now()),
                decoder: socketio::Decoder::new(),
                sockets: HashMap::new(),
                polling: false,
                joined_once: false,
                direct: None,
                out: Vec::new(),
            }),
            wake: Notify::new(),
            check: Notify::new(),
            gone: Notify::new(),
        });
        self.conns().insert(sid, conn.clone());
        self.spawn_reaper(conn.clone());
        conn
    }

    /// Heartbeats, and cleanup once the session ends.
    fn spawn_reaper(&self, conn: Arc<Conn>) {
        let server = self.clone();
        let connect_by = Instant::now() + self.inner.config.connect_timeout;
        tokio::spawn(async move {
            loop {
                let next = {
                    let mut st = conn.state();
                    let now = Instant::now();
                    if now >= connect_by && st.sockets.is_empty() && !st.joined_once {
                        // No namespace joined in time (Socket.IO's connect timeout).
                        st.session.close();
                    }
                    st.session.poll_timeout().map(|t| {
                        if st.joined_once {
                            t
                        } else {
                            t.min(connect_by.max(now))
                        }
                    })
                };
                conn.wake.notify_waiters();
                let Some(next) = next else { break };
                tokio::select! {
                    () = tokio::time::sleep_until(tokio::time::Instant::from_std(next)) => {
                        conn.state().session.handle_timeout(Instant::now());
                        conn.wake.notify_waiters();
                    }
                    () = conn.check.notified() => {}
                }
            }
            server.conns().remove(conn.sid());
            conn.gone.notify_waiters();
            let (sockets, reason) = {
                let mut st = conn.state();
                let reason = match st.session.closed() {
                    Some(crate::wire::session::CloseReason::PingTimeout) => "ping timeout",
                    Some(crate::wire::session::CloseReason::ClientClose) => "transport close",
                    Some(crate::wire::session::CloseReason::ServerClose) => "server shutting down",
                    _ => "transport error",
                };
                (std::mem::take(&mut st.sockets), reason)
            };
            conn.wake.notify_waiters();
            for (nsp, id) in sockets {
                let socket = Socket {
                    conn: conn.clone(),
                    nsp,
                    id,
                };
                server.inner.app.disconnect(&socket, reason);
            }
        });
    }

    fn open_polling(&self, peer: SocketAddr) -> Resp {
        let conn = self.new_conn(Transport::Polling, peer);
        let body = conn.state().session.poll_payload().unwrap_or_default();
        resp(StatusCode::OK, body)
    }

    fn conn(&self, sid: &str) -> Option<Arc<Conn>> {
        self.conns().get(sid).cloned()
    }

    async fn poll(&self, sid: &str) -> Resp {
        let Some(conn) = self.conn(sid) else {
            return error(1, "Session ID unknown");
        };
        {
            let mut st = conn.state();
            if st.session.closed().is_some() || st.session.transport() != Transport::Polling {
                return error(3, "Bad request");
            }
            if st.polling {
                drop(st);
                conn.close();
                return error(3, "Bad request");
            }
            st.polling = true;
        }
        let body = loop {
            let notified = conn.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = conn.state();
                if let Some(p) = st.session.poll_payload() {
                    break p;
                }
                if st.session.closed().is_some() {
                    // A poll pending when the session closes ends with a noop.
                    break vec![EioType::Noop.as_char()];
                }
                if st.session.transport() != Transport::Polling {
                    break vec![EioType::Noop.as_char()];
                }
            }
            notified.await;
        };
        conn.state().polling = false;
        resp(StatusCode::OK, body)
    }

    async fn post(
        &self,
        sid: &str,
        body: impl std::future::Future<Output = Option<Bytes>>,
    ) -> Resp {
        let Some(conn) = self.conn(sid) else {
            return error(1, "Session ID unknown");
        };
        let max = self.inner.config.max_payload;
        let Some(body) = body.await else {
            conn.close();
            return resp(StatusCode::PAYLOAD_TOO_LARGE, "payload too large");
        };
        let Ok(packets) = engineio::decode_payload(&body, max, 1024) else {
            conn.close();
            return error(3, "Bad request");
        };
        for p in packets {
            self.client_packet(&conn, p, Transport::Polling);
        }
        resp(StatusCode::OK, "ok")
    }

    /// One Engine.IO packet from the client.
    fn client_packet(&self, conn: &Arc<Conn>, p: EioPacket, via: Transport) {
        let incoming = conn.state().session.handle_packet(p, via, Instant::now());
        conn.wake.notify_waiters();
        let done = match incoming {
            Ok(SessionIncoming::Text(t)) => match std::str::from_utf8(&t) {
                Ok(text) => conn.state().decoder.text(text),
                Err(_) => Err(socketio::DecodeError::BadJson),
            },
            Ok(SessionIncoming::Binary(b)) => conn.state().decoder.binary(b),
            Ok(SessionIncoming::None) => Ok(None),
            Err(_) => {
                conn.check.notify_one();
                return;
            }
        };
        match done {
            Ok(Some(packet)) => self.on_packet(conn, packet),
            Ok(None) => {}
            Err(_) => conn.close(),
        }
        if conn.is_closed() {
            conn.check.notify_one();
        }
    }

    fn on_packet(&self, conn: &Arc<Conn>, p: Packet) {
        let app = &self.inner.app;
        match p.kind {
            PacketType::Connect => {
                if !app.has_namespace(&p.nsp) {
                    conn.send(&Packet {
                        kind: PacketType::ConnectError,
                        nsp: p.nsp,
                        id: None,
                        data: Some(json!({"message": "Invalid namespace"})),
                        attachments: Vec::new(),
                    });
                    return;
                }
                let socket = Socket {
                    conn: conn.clone(),
                    nsp: p.nsp.clone(),
                    id: random_id(),
                };
                match app.connect(&socket, p.data.as_ref()) {
                    Ok(()) => {
                        {
                            let mut st = conn.state();
                            st.sockets.insert(socket.nsp.clone(), socket.id.clone());
                            st.joined_once = true;
                        }
                        conn.send(&Packet {
                            kind: PacketType::Connect,
                            nsp: socket.nsp.clone(),
                            id: None,
                            data: Some(json!({"sid": socket.id})),
                            attachments: Vec::new(),
                        });
                        app.connected(&socket, p.data.as_ref());
                    }
                    Err(data) => {
                        conn.send(&Packet {
                            kind: PacketType::ConnectError,
                            nsp: p.nsp,
                            id: None,
                            data: Some(data),
                            attachments: Vec::new(),
                        });
                    }
                }
            }
            PacketType::Event | PacketType::BinaryEvent => {
                let id = conn.state().sockets.get(&p.nsp).cloned();
                if let Some(id) = id {
                    let socket = Socket {
                        conn: conn.clone(),
                        nsp: p.nsp.clone(),
                        id,
                    };
                    app.event(&socket, p);
                }
            }
            PacketType::Disconnect => {
                let id = conn.state().sockets.remove(&p.nsp);
                if let Some(id) = id {
                    let socket = Socket {
                        conn: conn.clone(),
                        nsp: p.nsp,
                        id,
                    };
                    app.disconnect(&socket, "client namespace disconnect");
                }
            }
            PacketType::Ack | PacketType::BinaryAck => {}
            PacketType::ConnectError => conn.close(),
        }
    }

    /// Accept a WebSocket upgrade: the `101` response and what the socket will carry (or
    /// the refusal).
    fn websocket(
        &self,
        headers: &hyper::HeaderMap,
        sid: Option<&str>,
        peer: SocketAddr,
    ) -> Routed<A> {
        let key = headers
            .get("sec-websocket-key")
            .and_then(|v| v.to_str().ok());
        let upgrade = headers
            .get(hyper::header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
        let (Some(key), true) = (key, upgrade) else {
            return Routed::Done(error(3, "Bad request"));
        };
        let conn = match sid {
            Some(sid) => match self.conn(sid) {
                Some(c) if c.state().session.transport() == Transport::Polling => Some(c),
                // A second upgrade of a session that already upgraded.
                Some(_) => None,
                None => return Routed::Done(error(1, "Session ID unknown")),
            },
            None => Some(self.new_conn(Transport::WebSocket, peer)),
        };
        let upgrade = Upgrade {
            server: self.clone(),
            conn,
            fresh: sid.is_none(),
        };
        let mut r = resp(StatusCode::SWITCHING_PROTOCOLS, Bytes::new());
        let h = r.headers_mut();
        h.remove(hyper::header::CONTENT_TYPE);
        h.insert(
            hyper::header::UPGRADE,
            hyper::header::HeaderValue::from_static("websocket"),
        );
        h.insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("Upgrade"),
        );
        if let Ok(v) = websocket::accept_key(key).parse() {
            h.insert("sec-websocket-accept", v);
        }
        Routed::Upgrade(r, upgrade)
    }

    async fn run_websocket<S>(&self, conn: Arc<Conn>, stream: S)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let (rd, mut wr) = tokio::io::split(stream);
        let writer_conn = conn.clone();
        let writer = tokio::spawn(async move {
            let conn = writer_conn;
            let mut out: Vec<u8> = Vec::new();
            loop {
                let notified = conn.wake.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                let closed = {
                    let mut st = conn.state();
                    st.session.transmit_into(&mut out);
                    st.session.closed().is_some()
                        && (st.session.transport() == Transport::WebSocket
                            || st.session.queued() == 0)
                };
                if !out.is_empty() {
                    // A client that stopped reading blocks this write; its session closing
                    // (queue overflow, ping timeout) ends the wait.
                    let written = tokio::select! {
                        r = wr.write_all(&out) => r.is_ok(),
                        () = session_closed(&conn) => false,
                    };
                    if !written {
                        conn.close();
                        return;
                    }
                    if out.capacity() > 16 * 1024 {
                        out = Vec::new(); // an idle connection keeps no large buffer
                    } else {
                        out.clear();
                    }
                }
                if closed {
                    let _ = wr.write_all(&websocket::close_frame(1000)).await;
                    let _ = wr.shutdown().await;
                    return;
                }
                notified.await;
            }
        });
        self.read_websocket(&conn, rd, BytesMut::with_capacity(IDLE_READ_BUF))
            .await;
        // The transport is gone: so is the session (unless it never moved here).
        if conn.state().session.transport() == Transport::WebSocket {
            conn.close();
        }
        let _ = writer.await;
    }

    /// A plain-TCP WebSocket: messages are written straight to the socket by their
    /// senders ([`ConnState::try_direct`]); a writer task sends only what they could not
    /// (a full socket), control packets and the close.
    async fn run_websocket_tcp(&self, conn: Arc<Conn>, tcp: TcpStream, read: Bytes) {
        let (rd, wr) = tcp.into_split();
        let wr = Arc::new(wr);
        conn.state().direct = Some(wr.clone());
        let writer = tokio::spawn(direct_writer(conn.clone(), wr));
        let mut buf = BytesMut::with_capacity(IDLE_READ_BUF.max(read.len()));
        buf.extend_from_slice(&read);
        drop(read);
        self.read_websocket(&conn, rd, buf).await;
        if conn.state().session.transport() == Transport::WebSocket {
            conn.close();
            let _ = writer.await;
        } else {
            // A probe that never became the transport: the polling session goes on.
            writer.abort();
            conn.state().end_direct();
        }
    }

    /// Read and handle the client's frames until the transport or the session ends.
    async fn read_websocket<R>(&self, conn: &Arc<Conn>, mut rd: R, mut buf: BytesMut)
    where
        R: tokio::io::AsyncRead + Unpin,
    {
        let mut decoder = websocket::Decoder::new(self.inner.config.max_payload);
        'read: loop {
            // Frames already read (bytes that came with the upgrade) go first.
            loop {
                match decoder.decode(&mut buf) {
                    Ok(None) => break,
                    Ok(Some(Message::Text(t))) => {
                        let Ok(p) = engineio::decode_text(&t) else {
                            conn.close();
                            break 'read;
                        };
                        self.client_packet(conn, p, Transport::WebSocket);
                    }
                    Ok(Some(Message::Binary(b))) => {
                        self.client_packet(conn, EioPacket::Binary(b), Transport::WebSocket);
                    }
                    Ok(Some(Message::Ping(_) | Message::Pong(_))) => {}
                    Ok(Some(Message::Close(_))) | Err(_) => {
                        conn.close();
                        break 'read;
                    }
                }
                if conn.is_closed() {
                    break 'read;
                }
            }
            if buf.capacity() > IDLE_READ_BUF && buf.is_empty() {
                // Small while idle: what a quiet connection holds is part of its memory cost.
                buf = BytesMut::with_capacity(IDLE_READ_BUF);
            }
            if buf.capacity() - buf.len() < 128 {
                buf.reserve(4096);
            }
            let read = tokio::select! {
                r = rd.read_buf(&mut buf) => r,
                () = session_closed(conn) => break,
            };
            match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    }
}

/// The writer of a plain-TCP WebSocket: sends what direct writes left (`out`), then the
/// queue (control packets, and messages that arrived while the socket was full), waiting
/// for the socket to become writable in between; ends with the close frame.
async fn direct_writer(conn: Arc<Conn>, wr: Arc<OwnedWriteHalf>) {
    /// A drained `out` keeps at most this much capacity.
    const KEEP: usize = 256;
    loop {
        let notified = conn.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (pending, closed, failed) = {
            let mut guard = conn.state();
            let st = &mut *guard;
            let mut failed = false;
            loop {
                if st.out.is_empty() && st.session.transmit_into(&mut st.out) == 0 {
                    break;
                }
                match wr.try_write(&st.out) {
                    Ok(n) if n > 0 => {
                        st.out.drain(..n);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    _ => {
                        failed = true;
                        break;
                    }
                }
                if !st.out.is_empty() {
                    break;
                }
            }
            if st.out.is_empty() && st.out.capacity() > KEEP {
                st.out = Vec::new();
            }
            let closed = st.session.closed().is_some()
                && (st.session.transport() == Transport::WebSocket || st.session.queued() == 0);
            (!st.out.is_empty(), closed, failed)
        };
        if failed {
            break;
        }
        if pending {
            // A client that stopped reading keeps this waiting; its session closing
            // (queue overflow, ping timeout) ends the wait.
            let ready = tokio::select! {
                r = wr.writable() => r.is_ok(),
                () = session_closed(&conn) => false,
            };
            if !ready {
                break;
            }
            continue;
        }
        if closed {
            let _ = wr.try_write(&websocket::close_frame(1000));
            break;
        }
        notified.await;
    }
    conn.close();
    conn.state().end_direct();
}
