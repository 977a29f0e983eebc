//! The tokio RTMP server: an accept loop and one task per connection driving a
//! [`ServerSession`], wired to a [`Hub`].
//!
//! Players get tags in the hub's shared pre-chunked form when their chunk size and stream id
//! match (the common case), so the per-viewer cost is a vectored write of bytes built once;
//! writes are batched every [`NetConfig::write_interval`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use tracing::Instrument as _;
use videopick_rtmp::{PublishRejection, ServerConfig, ServerEvent, ServerSession};

use crate::auth::{Action, AuthRequest, Authorize};
use crate::fanout::{EndReason, Fanout, FanoutSocket, FanoutViewer, RtmpLink};
use crate::hub::{
    Hub, HubItem, LiveEvent, LiveEventKind, Publisher, SHARED_CHUNK_SIZE, SHARED_STREAM_ID,
    Subscription, SubscriptionEnd,
};
use crate::io::{next_write_slot, write_all_vectored};
use crate::proxy::{ProxyHeader, TrustedProxies, parse_proxy_header};

/// Settings of the tokio server.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NetConfig {
    /// Per-session protocol settings.
    pub session: ServerConfig,
    /// Time allowed for the handshake and `connect` (default 10 s).
    pub handshake_timeout: Duration,
    /// A connection that sends nothing for this long is closed (default 90 s; players
    /// answer the session's pings, so live ones are never idle that long).
    pub idle_timeout: Duration,
    /// Players' writes are batched: at most one write per interval (default 20 ms). Longer
    /// intervals cost less CPU per viewer and add that much delivery delay.
    pub write_interval: Duration,
    /// Most tags written in one batch (default 512).
    pub max_batch: usize,
    /// Peers whose word on the real client is believed (see [`NetConfig::proxy_protocol`]).
    pub trusted_proxies: TrustedProxies,
    /// Connections from trusted proxies start with a PROXY protocol header (v1 or v2, as
    /// HAProxy or Nginx `proxy_protocol on` send it); the client's address in it becomes
    /// the peer of auth requests, events and logs. Others connect as usual.
    pub proxy_protocol: bool,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            session: ServerConfig::default(),
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(90),
            write_interval: Duration::from_millis(20),
            trusted_proxies: TrustedProxies::default(),
            proxy_protocol: false,
            max_batch: 512,
        }
    }
}

impl NetConfig {
    /// Set [`NetConfig::write_interval`].
    #[must_use]
    pub fn write_interval(mut self, interval: Duration) -> Self {
        self.write_interval = interval;
        self
    }
    /// Set [`NetConfig::handshake_timeout`].
    #[must_use]
    pub fn handshake_timeout(mut self, t: Duration) -> Self {
        self.handshake_timeout = t;
        self
    }
    /// Set [`NetConfig::idle_timeout`].
    #[must_use]
    pub fn idle_timeout(mut self, t: Duration) -> Self {
        self.idle_timeout = t;
        self
    }
    /// Set [`NetConfig::session`].
    #[must_use]
    pub fn session(mut self, s: ServerConfig) -> Self {
        self.session = s;
        self
    }
}

/// Handshake random bytes of one session: a fresh seed from the operating system for each
/// connection (a peer cannot predict another session's bytes from its own).
fn session_seed() -> u64 {
    getrandom::u64().unwrap_or_else(|_| {
        // No OS randomness (should not happen on Linux): fall back to the hasher's keys.
        use std::hash::{BuildHasher as _, RandomState};
        RandomState::new().hash_one(Instant::now())
    })
}

/// Server-wide counters.
#[derive(Debug, Default)]
pub struct NetStats {
    /// Connections accepted.
    pub connections_total: AtomicU64,
    /// Connections open now.
    pub connections_open: AtomicU64,
    /// Bytes read from clients.
    pub bytes_in: AtomicU64,
    /// Bytes written to clients.
    pub bytes_out: AtomicU64,
    /// Players attached now.
    pub players: AtomicU64,
    /// Connections ended by a protocol error or a timeout.
    pub errors: AtomicU64,
}

struct Ctx {
    hub: Hub,
    /// Players on the shared chunk form are written by groups (one writev each).
    fanout: Fanout,
    auth: Arc<dyn Authorize>,
    config: NetConfig,
    stats: Arc<NetStats>,
}

/// A running RTMP server's handle.
pub struct RtmpServer {
    listener: TcpListener,
    ctx: Arc<Ctx>,
}

impl std::fmt::Debug for RtmpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RtmpServer")
            .field("addr", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

impl RtmpServer {
    /// Bind `addr` for `hub`, deciding publishes and plays with `auth`. Must run inside a
    /// tokio runtime (the listener registers with its reactor).
    #[allow(clippy::unused_async)] // async keeps it in a runtime and leaves room for DNS
    pub async fn bind(
        addr: SocketAddr,
        hub: Hub,
        auth: Arc<dyn Authorize>,
        config: NetConfig,
    ) -> std::io::Result<RtmpServer> {
        // A deep accept queue: connection bursts (a stream going viral, a reconnect storm)
        // must not be dropped by the kernel before we can accept them.
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        Ok(RtmpServer {
            listener: socket.listen(4096)?,
            ctx: Arc::new(Ctx {
                fanout: Fanout::new(hub.clone(), config.write_interval),
                hub,
                auth,
                config,
                stats: Arc::new(NetStats::default()),
            }),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Counters shared with the connection tasks.
    pub fn stats(&self) -> Arc<NetStats> {
        self.ctx.stats.clone()
    }

    /// Accept connections until `shutdown` completes; then ask every connection to end
    /// cleanly (publishers and players get a status and a FIN, not a reset) and wait for
    /// them, at most `drain` long.
    pub async fn serve(self, shutdown: impl Future<Output = ()>, drain: Duration) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((sock, peer)) => {
                        let ctx = self.ctx.clone();
                        let stop = stop_rx.clone();
                        // One span per connection: every event of it names the peer (and,
                        // once known, the stream) — never a key or signature.
                        let span = tracing::info_span!("rtmp", %peer, stream = tracing::field::Empty);
                        tasks.spawn(
                            async move { connection(sock, peer, ctx, stop).await }
                                .instrument(span),
                        );
                    }
                    // Out of file descriptors or similar: back off instead of spinning.
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                },
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        let _ = stop_tx.send(true);
        let _ =
            tokio::time::timeout(drain, async { while tasks.join_next().await.is_some() {} }).await;
    }
}

/// A player whose media a fan-out group writes (the write half is with the group).
struct Grouped {
    sid: u32,
    key: String,
}

struct Conn {
    session: ServerSession,
    /// `None` while a fan-out group holds it.
    wr: Option<OwnedWriteHalf>,
    grouped: Option<Grouped>,
    group_viewer: Option<FanoutViewer>,
    group_link: Option<RtmpLink>,
    peer: SocketAddr,
    app: String,
    tc_url: Option<String>,
    publisher: Option<(u32, Publisher)>,
    player: Option<(u32, Subscription)>,
    pending_writes: Vec<Bytes>,
}

impl Conn {
    /// Detach the publisher (its viewers are told) and report it.
    fn end_publish(&mut self, ctx: &Ctx) {
        if let Some((_, p)) = self.publisher.take() {
            let key = p.key().to_string();
            drop(p);
            ctx.hub
                .emit(LiveEventKind::Unpublish, &key, "rtmp", Some(self.peer));
        }
    }

    /// Detach the player and report it. A grouped player is stopped (its queued tags are
    /// written first); the next flush takes the write half back.
    fn end_play(&mut self, ctx: &Ctx) {
        if let Some((_, sub)) = self.player.take() {
            ctx.stats.players.fetch_sub(1, Ordering::Relaxed);
            ctx.hub
                .emit(LiveEventKind::Stop, sub.key(), "rtmp", Some(self.peer));
        }
        if let Some(g) = self.grouped.take() {
            ctx.stats.players.fetch_sub(1, Ordering::Relaxed);
            ctx.hub
                .emit(LiveEventKind::Stop, &g.key, "rtmp", Some(self.peer));
            if let Some(v) = &self.group_viewer {
                v.stop();
            }
        }
    }

    /// Hand the playing stream to its fan-out group, once the play answer is written.
    fn join_group(&mut self, ctx: &Ctx) {
        let eligible = self.player.as_ref().is_some_and(|(sid, _)| {
            *sid == SHARED_STREAM_ID && self.session.out_chunk_size() == SHARED_CHUNK_SIZE
        });
        if !eligible || !self.pending_writes.is_empty() {
            return;
        }
        let (Some((sid, sub)), Some(wr)) = (self.player.take(), self.wr.take()) else {
            return;
        };
        let key = sub.key().to_string();
        let (viewer, link) = ctx.fanout.join_rtmp(sub, wr);
        self.grouped = Some(Grouped { sid, key });
        self.group_viewer = Some(viewer);
        self.group_link = Some(link);
    }

    /// The group is done with the player (stopped, or ended on its own): take the write
    /// half back. Err when it cannot be had (the connection then ends).
    async fn reclaim(&mut self) -> std::io::Result<Option<EndReason>> {
        let Some(mut v) = self.group_viewer.take() else {
            return Ok(None);
        };
        self.group_link = None;
        match v.finished().await {
            Some(f) => Ok(Some(self.take_back(f))),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        }
    }

    /// The write half a group handed back, and why it did.
    fn take_back(&mut self, f: crate::fanout::Finished) -> EndReason {
        if let FanoutSocket::WriteHalf(w) = f.sock {
            self.wr = Some(w);
        }
        f.reason
    }

    /// The group ended this player on its own (the stream ended, it fell too far behind,
    /// a write failed): take the write half back and end the connection accordingly.
    async fn group_ended(
        &mut self,
        ctx: &Ctx,
        f: Option<crate::fanout::Finished>,
    ) -> Result<(), End> {
        self.group_viewer = None;
        self.group_link = None;
        match f.map(|f| self.take_back(f)) {
            Some(EndReason::Ended) => {
                self.end_play(ctx);
                self.flush(&ctx.stats).await?;
                Ok(())
            }
            Some(EndReason::TooSlow) => Err(End::Timeout),
            _ => Err(End::Io),
        }
    }

    /// A publish/unpublish item for a grouped player: the session tells the player.
    fn group_event(&mut self, item: Option<&HubItem>) {
        let Some(sid) = self.grouped.as_ref().map(|g| g.sid) else {
            return;
        };
        match item {
            Some(HubItem::Unpublished) => self.session.notify_unpublish(sid),
            Some(HubItem::Published) => self.session.notify_publish(sid),
            _ => {}
        }
    }

    /// The server is draining: tell players their stream ended and publishers they were
    /// stopped, and write it all (then the connection closes).
    async fn drain(&mut self, ctx: &Ctx) -> std::io::Result<()> {
        if let Some(sid) = self.player.as_ref().map(|(s, _)| *s) {
            self.session.notify_unpublish(sid);
            self.end_play(ctx);
        }
        if let Some(sid) = self.grouped.as_ref().map(|g| g.sid) {
            // The group writes what it has queued, then hands the socket back.
            self.end_play(ctx);
            self.session.notify_unpublish(sid);
        }
        if let Some(sid) = self.publisher.as_ref().map(|(s, _)| *s) {
            self.session.kick(sid, "server shutting down");
            self.end_publish(ctx);
        }
        self.flush(&ctx.stats).await
    }

    /// Account the media bytes the group wrote since the last look (acknowledgement
    /// window, counters).
    fn account_group(&mut self, stats: &NetStats) -> videopick_rtmp::Result<()> {
        if let (Some(g), Some(link)) = (&self.grouped, &self.group_link) {
            let n = link.take_media_bytes();
            if n > 0 {
                stats.bytes_out.fetch_add(n, Ordering::Relaxed);
                self.session
                    .prechunked_sent(g.sid, usize::try_from(n).unwrap_or(usize::MAX))?;
            }
        }
        Ok(())
    }

    async fn flush(&mut self, stats: &NetStats) -> std::io::Result<()> {
        while let Some(b) = self.session.poll_transmit() {
            self.pending_writes.push(b);
        }
        if self.pending_writes.is_empty() {
            return Ok(());
        }
        if let Some(link) = &self.group_link
            && self.grouped.is_some()
        {
            // The group is the socket's one writer: the session's output goes after what
            // it has queued.
            let n: usize = self.pending_writes.iter().map(Bytes::len).sum();
            link.send(self.pending_writes.drain(..));
            stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
            return Ok(());
        }
        if self.wr.is_none() {
            self.reclaim().await?;
        }
        if let Some(wr) = &mut self.wr {
            let n = write_all_vectored(wr, &mut self.pending_writes).await?;
            stats.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
            // A new viewer's first batch (the GOP cache) is large; don't keep its capacity
            // for the life of the connection.
            self.pending_writes.shrink_to(SMALL_BATCH);
        }
        Ok(())
    }

    /// Queue one hub item for the player on `sid`.
    fn queue_item(&mut self, sid: u32, item: HubItem) -> videopick_rtmp::Result<()> {
        match item {
            HubItem::Tag(t) => {
                let shared =
                    sid == SHARED_STREAM_ID && self.session.out_chunk_size() == SHARED_CHUNK_SIZE;
                if shared {
                    // Session output (status, acks) must precede the shared bytes.
                    while let Some(b) = self.session.poll_transmit() {
                        self.pending_writes.push(b);
                    }
                    let bytes = t.rtmp_chunks().clone();
                    self.session.prechunked_sent(sid, bytes.len())?;
                    if let Some((_, sub)) = &self.player {
                        sub.count_out(bytes.len());
                    }
                    self.pending_writes.push(bytes);
                } else {
                    self.session.send_tag(sid, t.tag())?;
                }
            }
            HubItem::Unpublished => self.session.notify_unpublish(sid),
            HubItem::Published => self.session.notify_publish(sid),
        }
        Ok(())
    }

    fn auth_request(&self, action: Action, name: &str, query: Option<&String>) -> AuthRequest {
        AuthRequest {
            action,
            app: self.app.clone(),
            stream: name.to_string(),
            query: query.cloned(),
            tc_url: self.tc_url.clone(),
            peer: self.peer,
        }
    }

    async fn on_publish(
        &mut self,
        ctx: &Ctx,
        req: &videopick_rtmp::PublishRequest,
    ) -> videopick_rtmp::Result<()> {
        let auth = self.auth_request(Action::Publish, &req.name, req.query.as_ref());
        // A name that is a secret stream key is not logged; the span gets the name the
        // publish is granted under.
        let secret = ctx.auth.secret_names(&self.app);
        if !secret {
            tracing::Span::current().record("stream", format!("{}/{}", self.app, req.name));
        }
        let grant = match ctx.auth.authorize(&auth).await {
            Ok(g) => g,
            Err(why) => {
                tracing::info!(app = %self.app, reason = %why, "publish refused");
                return self
                    .session
                    .reject_publish(req.id, &PublishRejection::Unauthorized(why.to_string()));
            }
        };
        // `?record=1` / `?record=0` on the publish URL, else what the authorizer said.
        let record = match crate::auth::query_param(req.query.as_deref(), "record") {
            Some("1" | "true" | "yes") => Some(true),
            Some("0" | "false" | "no") => Some(false),
            _ => grant.record,
        };
        let name = grant.stream.as_deref().unwrap_or(&req.name);
        let key = format!("{}/{}", self.app, name);
        if secret || grant.stream.is_some() {
            tracing::Span::current().record("stream", key.as_str());
        }
        if self.publisher.is_some() {
            return self
                .session
                .reject_publish(req.id, &PublishRejection::BadName);
        }
        match ctx.hub.publish_with(&key, record) {
            Ok(p) => {
                self.session.accept_publish(req.id)?;
                ctx.hub.emit_event(LiveEvent {
                    kind: LiveEventKind::Publish,
                    key: key.clone(),
                    protocol: "rtmp",
                    peer: Some(self.peer),
                    at: std::time::SystemTime::now(),
                    record,
                });
                self.publisher = Some((req.stream_id, p));
                Ok(())
            }
            Err(_) => self
                .session
                .reject_publish(req.id, &PublishRejection::BadName),
        }
    }

    async fn on_play(
        &mut self,
        ctx: &Ctx,
        req: &videopick_rtmp::PlayRequest,
    ) -> videopick_rtmp::Result<()> {
        let auth = self.auth_request(Action::Play, &req.name, req.query.as_ref());
        tracing::Span::current().record("stream", format!("{}/{}", self.app, req.name));
        if let Err(why) = ctx.auth.authorize(&auth).await {
            tracing::info!(reason = %why, "play refused");
            return self.session.reject_play(req.id, &why.to_string());
        }
        let key = format!("{}/{}", self.app, req.name);
        match (self.player.is_some(), ctx.hub.subscribe(&key)) {
            (false, Some(mut sub)) => {
                sub.set_protocol(crate::hub::Protocol::Rtmp);
                self.session.accept_play(req.id)?;
                ctx.stats.players.fetch_add(1, Ordering::Relaxed);
                ctx.hub
                    .emit(LiveEventKind::Play, &key, "rtmp", Some(self.peer));
                self.player = Some((req.stream_id, sub));
                Ok(())
            }
            _ => self
                .session
                .reject_play(req.id, &format!("{key} is not live")),
        }
    }

    async fn handle_events(&mut self, ctx: &Ctx, buf: &mut BytesMut) -> videopick_rtmp::Result<()> {
        loop {
            let mut answered = false;
            while let Some(ev) = self.session.poll_event() {
                match ev {
                    ServerEvent::Connect(req) => {
                        self.app.clone_from(&req.app);
                        self.tc_url.clone_from(&req.tc_url);
                        self.session.accept_connect(req.id)?;
                        answered = true;
                    }
                    ServerEvent::Publish(req) => {
                        answered = true;
                        self.on_publish(ctx, &req).await?;
                    }
                    ServerEvent::Play(req) => {
                        answered = true;
                        self.on_play(ctx, &req).await?;
                    }
                    ServerEvent::Media { stream_id, tag } => {
                        if let Some((sid, p)) = &mut self.publisher
                            && *sid == stream_id
                        {
                            p.send(tag);
                        }
                    }
                    ServerEvent::Unpublish { stream_id }
                        if self
                            .publisher
                            .as_ref()
                            .is_some_and(|(s, _)| *s == stream_id) =>
                    {
                        self.end_publish(ctx);
                    }
                    ServerEvent::PlayStop { stream_id }
                        if self.player.as_ref().is_some_and(|(s, _)| *s == stream_id) =>
                    {
                        self.end_play(ctx);
                    }
                    _ => {}
                }
            }
            if !answered {
                return Ok(());
            }
            // Input waits while a request is unanswered; continue with what is buffered.
            self.session.handle_input(Instant::now(), buf)?;
        }
    }
}

async fn connection(
    sock: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Ctx>,
    mut stop: watch::Receiver<bool>,
) {
    ctx.stats.connections_total.fetch_add(1, Ordering::Relaxed);
    ctx.stats.connections_open.fetch_add(1, Ordering::Relaxed);
    let _ = sock.set_nodelay(true);
    let mut sock = sock;
    let mut peer = peer;
    let mut input = BytesMut::with_capacity(4096);
    if ctx.config.proxy_protocol && ctx.config.trusted_proxies.trusts(peer.ip()) {
        let header = tokio::time::timeout(
            ctx.config.handshake_timeout,
            read_proxy_header(&mut sock, &mut input),
        )
        .await;
        match header {
            Ok(Ok(ProxyHeader::Proxied { source, .. })) => peer = source,
            Ok(Ok(ProxyHeader::Local)) => {}
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "rtmp: bad PROXY header");
                ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
                ctx.stats.connections_open.fetch_sub(1, Ordering::Relaxed);
                return;
            }
            Err(_) => {
                ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
                ctx.stats.connections_open.fetch_sub(1, Ordering::Relaxed);
                return;
            }
        }
    }
    let (mut rd, wr) = sock.into_split();
    let mut conn = Conn {
        session: ServerSession::new(
            ctx.config
                .session
                .clone()
                .handshake(ctx.config.session.handshake_epoch, session_seed()),
        ),
        wr: Some(wr),
        grouped: None,
        group_viewer: None,
        group_link: None,
        peer,
        app: String::new(),
        tc_url: None,
        publisher: None,
        player: None,
        pending_writes: Vec::new(),
    };
    let result = run(&mut conn, &mut rd, input, &ctx, &mut stop).await;
    if result.is_err() {
        ctx.stats.errors.fetch_add(1, Ordering::Relaxed);
    }
    conn.end_play(&ctx);
    // Dropping the publisher tells its viewers.
    conn.end_publish(&ctx);
    let _ = conn.flush(&ctx.stats).await;
    if conn.wr.is_none() {
        let _ = conn.reclaim().await;
    }
    if let Some(wr) = conn.wr.as_mut() {
        let _ = wr.shutdown().await;
    }
    ctx.stats.connections_open.fetch_sub(1, Ordering::Relaxed);
}

/// Read a PROXY header from `sock`; bytes after it stay in `buf`.
async fn read_proxy_header(
    sock: &mut TcpStream,
    buf: &mut BytesMut,
) -> Result<ProxyHeader, crate::proxy::ProxyError> {
    loop {
        if let Some((header, used)) = parse_proxy_header(buf)? {
            let _ = buf.split_to(used);
            return Ok(header);
        }
        match sock.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(crate::proxy::ProxyError::Malformed("connection closed")),
            Ok(_) => {}
        }
    }
}

#[derive(Debug)]
enum End {
    Io,
    Protocol,
    Timeout,
}

impl From<videopick_rtmp::RtmpError> for End {
    fn from(_: videopick_rtmp::RtmpError) -> End {
        End::Protocol
    }
}

impl From<std::io::Error> for End {
    fn from(_: std::io::Error) -> End {
        End::Io
    }
}

/// Queue `first` and every other ready item for the player. `Ok(false)`: its stream ended.
fn deliver(
    conn: &mut Conn,
    max_batch: usize,
    first: HubItem,
    batch: &mut Vec<HubItem>,
) -> Result<bool, End> {
    let sid = conn.player.as_ref().map_or(0, |(s, _)| *s);
    batch.clear();
    batch.push(first);
    let more = conn
        .player
        .as_mut()
        .map_or(Ok(()), |(_, s)| s.try_recv_ready(max_batch, batch));
    for it in batch.drain(..) {
        conn.queue_item(sid, it)?;
    }
    batch.shrink_to(SMALL_BATCH);
    match more {
        Ok(()) => Ok(true),
        Err(SubscriptionEnd::TooSlow) => Err(End::Timeout),
        Err(SubscriptionEnd::Ended) => Ok(false),
    }
}

/// Capacity kept by per-connection batch vectors between writes.
const SMALL_BATCH: usize = 32;

#[allow(
    clippy::too_many_lines,
    reason = "one select loop over everything a connection waits on; branches call Conn methods"
)]
async fn run(
    conn: &mut Conn,
    rd: &mut tokio::net::tcp::OwnedReadHalf,
    // Bytes already read (after a PROXY header); players send little (acks, pings): a small
    // buffer keeps a thousand of them cheap; a publisher's buffer grows to 64 KiB reads.
    mut buf: BytesMut,
    ctx: &Ctx,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), End> {
    let cfg = &ctx.config;
    let start = Instant::now();
    if !buf.is_empty() {
        conn.session.handle_input(start, &mut buf)?;
        conn.handle_events(ctx, &mut buf).await?;
    }
    let mut last_input = start;
    let mut write_due = start;
    let mut batch: Vec<HubItem> = Vec::new();
    // Timers live across iterations and are re-armed only when their deadline moves: a
    // player loops ~50 times a second, and registering fresh timers each time showed up.
    let timer_sleep = tokio::time::sleep_until(start.into());
    tokio::pin!(timer_sleep);
    let mut timer_at = start;
    let write_sleep = tokio::time::sleep_until(start.into());
    tokio::pin!(write_sleep);
    loop {
        conn.account_group(&ctx.stats)?;
        conn.flush(&ctx.stats).await?;
        if conn.session.is_closed() {
            return Ok(());
        }
        if conn.player.is_some() {
            conn.join_group(ctx);
        }
        let grouped = conn.grouped.is_some();
        let connected = conn.session.is_handshake_done() && !conn.app.is_empty();
        let deadline = if connected {
            last_input + cfg.idle_timeout
        } else {
            start + cfg.handshake_timeout
        };
        let timer = conn
            .session
            .poll_timeout()
            .map_or(deadline, |t| t.min(deadline));
        if timer != timer_at {
            timer_sleep.as_mut().reset(timer.into());
            timer_at = timer;
        }
        let playing = conn.player.is_some();
        let publishing = conn.publisher.is_some();
        buf.reserve(if publishing { 64 * 1024 } else { 4096 });
        let now = Instant::now();
        tokio::select! {
            biased;
            () = async { conn.publisher.as_ref().expect("guarded").1.kicked().await }, if publishing => {
                if let Some(sid) = conn.publisher.as_ref().map(|(s, _)| *s) {
                    conn.session.kick(sid, "stopped by the server");
                }
                conn.end_publish(ctx);
                conn.flush(&ctx.stats).await?;
                return Ok(());
            }
            _ = stop.changed() => {
                conn.drain(ctx).await?;
                return Ok(());
            }
            r = rd.read_buf(&mut buf) => {
                let n = r?;
                if n == 0 {
                    return Ok(());
                }
                ctx.stats.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                last_input = Instant::now();
                // The player acknowledges bytes the group wrote while this task waited:
                // count them as sent before the session reads the acknowledgement.
                conn.account_group(&ctx.stats)?;
                conn.session.handle_input(last_input, &mut buf)?;
                conn.handle_events(ctx, &mut buf).await?;
            }
            f = async { conn.group_viewer.as_mut().expect("guarded").finished().await },
                if grouped =>
            {
                return conn.group_ended(ctx, f).await;
            }
            item = async { conn.group_link.as_mut().expect("guarded").event().await },
                if grouped =>
            {
                conn.group_event(item.as_ref());
            }
            item = async { conn.player.as_mut().map(|(_, s)| s).expect("guarded").recv().await },
                if playing && now >= write_due =>
            {
                match item {
                    Ok(first) => {
                        if !deliver(conn, cfg.max_batch, first, &mut batch)? {
                            return Ok(());
                        }
                        write_due = next_write_slot(Instant::now(), cfg.write_interval);
                        write_sleep.as_mut().reset(write_due.into());
                    }
                    Err(SubscriptionEnd::TooSlow) => return Err(End::Timeout),
                    Err(SubscriptionEnd::Ended) => {
                        conn.end_play(ctx);
                        conn.flush(&ctx.stats).await?;
                        return Ok(());
                    }
                }
            }
            () = &mut write_sleep, if playing && now < write_due => {}
            () = &mut timer_sleep => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(End::Timeout);
                }
                conn.session.handle_timeout(now)?;
            }
        }
    }
}
