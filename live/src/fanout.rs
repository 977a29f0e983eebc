//! Live fan-out in groups: one task writes a stream's bytes to many viewers (HTTP-FLV,
//! and RTMP players through [`Fanout::join_rtmp`]).
//!
//! A viewer with its own task costs a wake-up, a timer, a broadcast receive and a
//! readiness poll per write, on top of the kernel's `writev`; with a thousand viewers those
//! are a third of the server's CPU. Here the viewers of a stream are grouped (up to
//! [`GROUP_SIZE`] each) and a group's one task does what the kernel's floor does: once per
//! write interval it takes the stream's new tags once, builds their shared FLV bytes into
//! one slice list, and makes exactly one non-blocking `writev` per viewer. A viewer whose
//! socket does not take everything keeps the rest queued (shared [`Bytes`], never copies)
//! and the group waits for that socket to become writable; one queued longer than
//! [`crate::HubConfig::max_behind`] behind the live edge is dropped, as a slow
//! [`Subscription`] is.
//!
//! A joining viewer brings its own subscription, which holds the stream's headers and GOP
//! cache: the group writes that first, then the viewer follows the group's tags from the
//! first one it has not had ([`SharedTag::seq`] numbers them), and the subscription is
//! reduced to its [`ViewerTicket`] (the viewer stays counted).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use std::time::Duration;
//! use tokio::io::AsyncReadExt as _;
//! use videopick_flv::{Tag, TagKind};
//! use videopick_live::fanout::Fanout;
//! use videopick_live::{Hub, HubConfig};
//!
//! let hub = Hub::new(HubConfig::default());
//! let mut publisher = hub.publish("live/cam").unwrap();
//! publisher.send(Tag::new(TagKind::Audio, 0, &b"\xaf\x00\x12\x10"[..]));
//! let fanout = Fanout::new(hub.clone(), Duration::from_millis(20));
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let mut player = tokio::net::TcpStream::connect(listener.local_addr()?).await?;
//! let (sock, _) = listener.accept().await?;
//! let mut viewer = fanout.join(hub.subscribe("live/cam").unwrap(), sock);
//! publisher.send(Tag::new(TagKind::Audio, 23, &b"\xaf\x01\x21"[..]));
//!
//! // The FLV file header, the cached sequence header, then the live tag (each tag: an
//! // 11-byte header, its data, a 4-byte PreviousTagSize).
//! let mut got = vec![0u8; 13 + (11 + 4 + 4) + (11 + 3 + 4)];
//! player.read_exact(&mut got).await?;
//! assert_eq!(&got[..3], b"FLV");
//! assert_eq!(&got[got.len() - 7..got.len() - 4], b"\xaf\x01\x21");
//! drop(publisher); // the stream ends after its republish grace; stop the viewer now
//! viewer.stop();
//! assert!(viewer.finished().await.is_some());
//! # Ok(())
//! # }
//! ```

use std::collections::{HashMap, VecDeque};
use std::io::IoSlice;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Buf as _, Bytes};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::hub::{Hub, HubItem, SharedTag, Subscription, ViewerTicket, too_far_behind};
use crate::io::next_write_slot;

/// Most viewers one group (one task) writes to; a stream with more has several groups,
/// which the runtime runs on its worker threads.
pub const GROUP_SIZE: usize = 1024;

/// Slices per `writev` (Linux's `IOV_MAX` is 1024).
const MAX_SLICES: usize = 1024;

/// Tags a joining viewer takes from its own subscription at once (the GOP cache).
const JOIN_BATCH: usize = 8192;

/// Why a viewer's stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndReason {
    /// The stream ended (its publisher left and the republish grace passed).
    Ended,
    /// The viewer stayed too far behind the live edge.
    TooSlow,
    /// [`FanoutViewer::stop`] was called (the server is draining); the viewer's queued
    /// tags were written first, so the stream stops at a tag boundary.
    Stopped,
    /// A write failed (the viewer went away).
    WriteFailed,
}

/// What a group writes to: a whole connection (HTTP-FLV) or the write half of one whose
/// reads stay with its task (RTMP).
#[derive(Debug)]
pub enum FanoutSocket {
    /// A connection the group owns.
    Stream(TcpStream),
    /// The write half of a connection.
    WriteHalf(OwnedWriteHalf),
}

impl FanoutSocket {
    fn tcp(&self) -> &TcpStream {
        match self {
            FanoutSocket::Stream(s) => s,
            FanoutSocket::WriteHalf(w) => w.as_ref(),
        }
    }

    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
        self.tcp().try_write_vectored(bufs)
    }

    /// Shut the writing side down (FIN after what was written).
    pub async fn shutdown(&mut self) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt as _;
        match self {
            FanoutSocket::Stream(s) => s.shutdown().await,
            FanoutSocket::WriteHalf(w) => w.shutdown().await,
        }
    }
}

/// How a group frames the tags: the FLV form (after a file header) or the shared RTMP
/// chunks ([`SharedTag::rtmp_chunks`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Wire {
    Flv,
    Rtmp,
}

/// An RTMP player's side of its membership: the session's own output goes through the
/// group (one writer per socket), the media bytes written are reported back for the
/// session's acknowledgement window, and publish/unpublish items come back to be told
/// to the player by the session.
#[derive(Debug)]
pub struct RtmpLink {
    shared: Arc<LinkShared>,
    wake: Arc<Notify>,
    events: mpsc::UnboundedReceiver<HubItem>,
}

#[derive(Debug, Default)]
struct LinkShared {
    control: Mutex<Vec<Bytes>>,
    pending: AtomicBool,
    media_bytes: AtomicU64,
}

impl RtmpLink {
    /// Queue the session's own output (whole RTMP messages) after what the group has
    /// queued for this player.
    pub fn send(&self, bytes: impl IntoIterator<Item = Bytes>) {
        let mut c = lock(&self.shared.control);
        let before = c.len();
        c.extend(bytes);
        if c.len() > before {
            drop(c);
            self.shared.pending.store(true, Ordering::Release);
            self.wake.notify_one();
        }
    }

    /// Media bytes the group has sent since the last call (for
    /// `ServerSession::prechunked_sent`).
    pub fn take_media_bytes(&self) -> u64 {
        self.shared.media_bytes.swap(0, Ordering::Relaxed)
    }

    /// The next publish/unpublish item of the stream (the session tells the player).
    pub async fn event(&mut self) -> Option<HubItem> {
        self.events.recv().await
    }
}

/// A viewer handed back when its stream ends: the socket (to shut down) and the count.
#[derive(Debug)]
#[non_exhaustive]
pub struct Finished {
    /// The viewer's socket.
    pub sock: FanoutSocket,
    /// Bytes written to it (the FLV header included).
    pub bytes: u64,
    /// Why it ended.
    pub reason: EndReason,
}

/// The groups of every stream; cheap to clone.
#[derive(Debug, Clone)]
pub struct Fanout {
    inner: Arc<FanoutInner>,
}

#[derive(Debug)]
struct FanoutInner {
    hub: Hub,
    interval: Duration,
    groups: Mutex<HashMap<(String, Wire), Vec<GroupHandle>>>,
    next_id: AtomicU64,
}

#[derive(Debug)]
struct GroupHandle {
    id: u64,
    tx: mpsc::UnboundedSender<Joiner>,
    members: Arc<AtomicUsize>,
    wake: Arc<Notify>,
}

/// A viewer on its way into a group.
#[derive(Debug)]
struct Joiner {
    sub: Subscription,
    sock: FanoutSocket,
    stop: Arc<AtomicBool>,
    done: oneshot::Sender<Finished>,
    link: Option<(Arc<LinkShared>, mpsc::UnboundedSender<HubItem>)>,
}

/// A viewer in a group, from its connection's side.
#[derive(Debug)]
pub struct FanoutViewer {
    done: oneshot::Receiver<Finished>,
    stop: Arc<AtomicBool>,
    wake: Arc<Notify>,
}

impl FanoutViewer {
    /// End this viewer's stream at the next tag boundary (its queued tags are written
    /// first); [`FanoutViewer::finished`] then returns.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Wait until the viewer's stream ends; `None` if its group went away without
    /// handing the socket back (the runtime is shutting down).
    pub async fn finished(&mut self) -> Option<Finished> {
        (&mut self.done).await.ok()
    }

    /// [`FanoutViewer::finished`], calling [`FanoutViewer::stop`] when `stop` completes
    /// first (e.g. the server's drain signal).
    pub async fn finished_or_stop(
        &mut self,
        stop: impl std::future::Future<Output = ()>,
    ) -> Option<Finished> {
        tokio::select! {
            r = &mut self.done => return r.ok(),
            () = stop => {}
        }
        self.stop();
        (&mut self.done).await.ok()
    }
}

impl Drop for FanoutViewer {
    fn drop(&mut self) {
        // A connection task that goes away (aborted) takes its viewer out of the group.
        self.stop.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Fanout {
    /// Groups over `hub` writing at most once per `interval` (rounded up to the
    /// process-wide write grid of [`next_write_slot`]).
    pub fn new(hub: Hub, interval: Duration) -> Fanout {
        Fanout {
            inner: Arc::new(FanoutInner {
                hub,
                interval,
                groups: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
            }),
        }
    }

    /// Viewers being written to now, all streams.
    pub fn viewers(&self) -> usize {
        lock(&self.inner.groups)
            .values()
            .flatten()
            .map(|g| g.members.load(Ordering::Relaxed))
            .sum()
    }

    /// Hand a viewer to its stream's group: `sock` has had its response head; `sub` is
    /// the viewer's subscription (headers and GOP cache first). The group writes the FLV
    /// file header, the cache, then the live tags, until the stream ends, the viewer falls
    /// too far behind, a write fails or it is stopped.
    pub fn join(&self, sub: Subscription, sock: TcpStream) -> FanoutViewer {
        self.join_wire(sub, FanoutSocket::Stream(sock), Wire::Flv, None)
    }

    /// Hand an RTMP player to its stream's group: `wr` is its connection's write half,
    /// after the session's play answer was written; `sub` starts with the headers and
    /// GOP cache. The group writes the shared RTMP chunks of every tag (the session must
    /// use [`crate::hub::SHARED_CHUNK_SIZE`] and play on
    /// [`crate::hub::SHARED_STREAM_ID`]); the session's own output goes through the
    /// returned link.
    pub fn join_rtmp(&self, sub: Subscription, wr: OwnedWriteHalf) -> (FanoutViewer, RtmpLink) {
        let shared = Arc::new(LinkShared::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let viewer = self.join_wire(
            sub,
            FanoutSocket::WriteHalf(wr),
            Wire::Rtmp,
            Some((shared.clone(), tx)),
        );
        let link = RtmpLink {
            shared,
            wake: viewer.wake.clone(),
            events: rx,
        };
        (viewer, link)
    }

    fn join_wire(
        &self,
        sub: Subscription,
        sock: FanoutSocket,
        wire: Wire,
        link: Option<(Arc<LinkShared>, mpsc::UnboundedSender<HubItem>)>,
    ) -> FanoutViewer {
        let key = sub.key().to_string();
        let (done_tx, done_rx) = oneshot::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let mut joiner = Joiner {
            sub,
            sock,
            stop: stop.clone(),
            done: done_tx,
            link,
        };
        let mut groups = lock(&self.inner.groups);
        let list = groups.entry((key.clone(), wire)).or_default();
        // Joins are sent under the map lock, and a group leaves the map under it before
        // its last look at its queue: no joiner is ever sent to a group that is gone.
        for g in list.iter() {
            if g.members.load(Ordering::Relaxed) < GROUP_SIZE {
                g.members.fetch_add(1, Ordering::Relaxed);
                match g.tx.send(joiner) {
                    Ok(()) => {
                        return FanoutViewer {
                            done: done_rx,
                            stop,
                            wake: g.wake.clone(),
                        };
                    }
                    Err(mpsc::error::SendError(j)) => {
                        g.members.fetch_sub(1, Ordering::Relaxed);
                        joiner = j;
                    }
                }
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let members = Arc::new(AtomicUsize::new(1));
        let wake = Arc::new(Notify::new());
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        // A fresh channel's receiver is alive: this send cannot fail.
        let _ = tx.send(joiner);
        list.push(GroupHandle {
            id,
            tx,
            members: members.clone(),
            wake: wake.clone(),
        });
        drop(groups);
        let group = Group {
            fanout: self.inner.clone(),
            key,
            wire,
            id,
            rx,
            count: members,
            wake: wake.clone(),
            members: Vec::new(),
            max_behind_ms: u32::try_from(self.inner.hub.config().max_behind.as_millis())
                .unwrap_or(u32::MAX),
        };
        tokio::spawn(group.run());
        FanoutViewer {
            done: done_rx,
            stop,
            wake,
        }
    }
}

/// One viewer inside a group.
#[derive(Debug)]
struct Member {
    sock: FanoutSocket,
    /// An RTMP player's link to its session.
    link: Option<(Arc<LinkShared>, mpsc::UnboundedSender<HubItem>)>,
    ticket: Option<ViewerTicket>,
    /// The first tag number this viewer has not had.
    next_seq: u64,
    /// The timestamp of the newest tag given to it.
    last_ts: u32,
    /// Bytes not taken by the socket yet, with the timestamp of the tag they belong to.
    queue: VecDeque<(Bytes, u32)>,
    /// The socket refused bytes; wait for it to become writable.
    blocked: bool,
    stop: Arc<AtomicBool>,
    done: Option<oneshot::Sender<Finished>>,
    bytes: u64,
    end: Option<EndReason>,
}

impl Member {
    /// One `writev` of the queue (at most [`MAX_SLICES`] entries). Returns bytes written.
    fn flush_once(&mut self) -> usize {
        let slices: Vec<IoSlice<'_>> = self
            .queue
            .iter()
            .take(MAX_SLICES)
            .map(|(b, _)| IoSlice::new(b))
            .collect();
        let queued: usize = slices.iter().map(|s| s.len()).sum();
        match self.sock.try_write_vectored(&slices) {
            Ok(n) => {
                self.consume(n);
                if n < queued {
                    self.blocked = true;
                }
                n
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                self.blocked = true;
                0
            }
            Err(_) => {
                self.end = Some(EndReason::WriteFailed);
                0
            }
        }
    }

    /// Write queued bytes until the queue is empty or the socket refuses more.
    fn flush(&mut self) -> usize {
        let mut total = 0;
        while !self.queue.is_empty() && !self.blocked && self.end.is_none() {
            total += self.flush_once();
        }
        total
    }

    /// Drop it (too slow) when its oldest queued bytes are more than `max_ms` behind the
    /// live edge, as the hub drops a subscription that lags.
    fn check_lag(&mut self, edge: u32, max_ms: u32) {
        if let Some((_, ts)) = self.queue.front()
            && too_far_behind(edge, *ts, max_ms)
        {
            self.end = Some(EndReason::TooSlow);
        }
    }

    /// Drop `n` written bytes from the front of the queue.
    fn consume(&mut self, mut n: usize) {
        self.bytes += n as u64;
        while n > 0 {
            let Some((front, _)) = self.queue.front_mut() else {
                break;
            };
            if n >= front.len() {
                n -= front.len();
                self.queue.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
        // A joiner's first burst (the GOP cache) is large; don't keep its capacity.
        if self.queue.is_empty() && self.queue.capacity() > 64 {
            self.queue.shrink_to(16);
        }
    }
}

/// What woke a group.
enum Event {
    Joined(Joiner),
    Woken,
    Writable,
    Round,
    Item(Result<HubItem, crate::hub::SubscriptionEnd>),
}

struct Group {
    fanout: Arc<FanoutInner>,
    key: String,
    wire: Wire,
    id: u64,
    rx: mpsc::UnboundedReceiver<Joiner>,
    count: Arc<AtomicUsize>,
    wake: Arc<Notify>,
    members: Vec<Member>,
    max_behind_ms: u32,
}

/// Completes when a blocked member's socket is writable again (marking it unblocked);
/// never, when none is blocked.
async fn writable(members: &mut [Member]) {
    std::future::poll_fn(|cx| {
        let mut any = false;
        for m in members.iter_mut().filter(|m| m.blocked) {
            if m.sock.tcp().poll_write_ready(cx).is_ready() {
                m.blocked = false;
                any = true;
            }
        }
        if any { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
}

impl Group {
    async fn run(mut self) {
        let hub = self.fanout.hub.clone();
        let Some(mut sub) = hub.subscribe_edge(&self.key) else {
            self.close(EndReason::Ended);
            return;
        };
        let interval = self.fanout.interval;
        let mut next_round = Instant::now();
        let mut batch: Vec<HubItem> = Vec::new();
        loop {
            let due = Instant::now() >= next_round;
            let event = tokio::select! {
                biased;
                j = self.rx.recv() => match j {
                    Some(j) => Event::Joined(j),
                    None => Event::Woken,
                },
                () = self.wake.notified() => Event::Woken,
                () = writable(&mut self.members) => Event::Writable,
                () = tokio::time::sleep_until(next_round.into()), if !due => Event::Round,
                item = sub.recv(), if due => Event::Item(item),
            };
            let mut written = 0;
            // RTMP sessions' own output comes with a wake-up (RtmpLink::send).
            let woken = matches!(event, Event::Woken);
            match event {
                Event::Joined(j) => written += self.admit(j),
                Event::Woken | Event::Round => {}
                Event::Writable => {
                    for m in self.members.iter_mut().filter(|m| !m.blocked) {
                        written += m.flush();
                    }
                }
                Event::Item(Err(_)) => {
                    self.close(EndReason::Ended);
                    return;
                }
                Event::Item(Ok(first)) => {
                    // The next round is due an interval after this one starts (writing
                    // to a thousand viewers takes a few milliseconds).
                    let started = Instant::now();
                    batch.push(first);
                    let more = sub.try_recv_ready(512, &mut batch);
                    written += self.round(&mut batch, sub.live_edge());
                    batch.shrink_to(32);
                    next_round = next_write_slot(started, interval);
                    if more.is_err() {
                        self.close(EndReason::Ended);
                        return;
                    }
                }
            }
            if woken && self.wire == Wire::Rtmp {
                written += self.take_control();
            }
            if written > 0 {
                sub.count_out(written);
            }
            self.retire();
            if self.members.is_empty() {
                match self.leave() {
                    None => return,
                    Some(j) => {
                        let n = self.admit(j);
                        sub.count_out(n);
                    }
                }
            }
        }
    }

    /// Take a joiner in: its own subscription's tags (headers, GOP cache and anything
    /// since) are queued after the FLV file header and written now.
    fn admit(&mut self, j: Joiner) -> usize {
        let Joiner {
            mut sub,
            sock,
            stop,
            done,
            link,
        } = j;
        let mut items = Vec::new();
        let ended = sub.try_recv_ready(JOIN_BATCH, &mut items).is_err();
        let mut queue: VecDeque<(Bytes, u32)> = VecDeque::with_capacity(items.len() + 1);
        if self.wire == Wire::Flv {
            queue.push_back((crate::http_flv::file_header(), 0));
        }
        let mut media = 0;
        for i in items {
            match i {
                HubItem::Tag(t) => {
                    let b = self.wire_bytes(&t);
                    media += b.len();
                    queue.push_back((b, t.tag().timestamp));
                }
                other => {
                    if let Some((_, events)) = &link {
                        let _ = events.send(other);
                    }
                }
            }
        }
        if let Some((shared, _)) = &link {
            shared
                .media_bytes
                .fetch_add(media as u64, Ordering::Relaxed);
        }
        let next_seq = sub.position() + 1;
        let last_ts = queue.back().map_or(sub.live_edge(), |(_, ts)| *ts);
        let mut m = Member {
            sock,
            link,
            last_ts,
            ticket: sub.into_ticket(),
            next_seq,
            queue,
            blocked: false,
            stop,
            done: Some(done),
            bytes: 0,
            end: None,
        };
        let n = m.flush();
        if ended {
            m.end.get_or_insert(EndReason::Ended);
        }
        self.members.push(m);
        n
    }

    /// One write round: the batch's FLV bytes, once, to every member.
    fn round(&mut self, batch: &mut Vec<HubItem>, edge: u32) -> usize {
        let mut frame: Vec<(Bytes, u32, u64)> = Vec::with_capacity(batch.len());
        for i in batch.drain(..) {
            match i {
                HubItem::Tag(t) => frame.push((self.wire_bytes(&t), t.tag().timestamp, t.seq())),
                // RTMP sessions tell their players (publish/unpublish notifications).
                other if self.wire == Wire::Rtmp => {
                    for m in &self.members {
                        if let Some((_, events)) = &m.link {
                            let _ = events.send(other.clone());
                        }
                    }
                }
                _ => {}
            }
        }
        if frame.is_empty() {
            return 0;
        }
        let slices: Vec<IoSlice<'_>> = frame.iter().map(|(b, _, _)| IoSlice::new(b)).collect();
        let total: usize = frame.iter().map(|(b, _, _)| b.len()).sum();
        let (last_ts, last_seq) = frame.last().map_or((0, 0), |f| (f.1, f.2));
        let mut written = 0;
        for m in &mut self.members {
            if m.end.is_some() {
                continue;
            }
            if m.stop.load(Ordering::Relaxed) {
                // Stopped: nothing new, but a queue that does not drain still counts as
                // lag, so a stalled viewer cannot hold its stop open forever.
                m.check_lag(edge, self.max_behind_ms);
                continue;
            }
            let start = frame.partition_point(|f| f.2 < m.next_seq);
            if start == frame.len() {
                continue;
            }
            m.next_seq = last_seq + 1;
            m.last_ts = last_ts;
            if let Some((shared, _)) = &m.link {
                let media: usize = frame[start..].iter().map(|(b, _, _)| b.len()).sum();
                shared
                    .media_bytes
                    .fetch_add(media as u64, Ordering::Relaxed);
            }
            if start == 0 && m.queue.is_empty() && !m.blocked && slices.len() <= MAX_SLICES {
                // The common case: the shared slice list, one writev.
                match m.sock.try_write_vectored(&slices) {
                    Ok(n) => {
                        m.bytes += n as u64;
                        written += n;
                        if n < total {
                            m.blocked = true;
                            queue_rest(&mut m.queue, &frame, n);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        m.blocked = true;
                        queue_rest(&mut m.queue, &frame, 0);
                    }
                    Err(_) => m.end = Some(EndReason::WriteFailed),
                }
            } else {
                m.queue
                    .extend(frame[start..].iter().map(|(b, ts, _)| (b.clone(), *ts)));
                if !m.blocked {
                    written += m.flush_once();
                }
            }
            m.check_lag(edge, self.max_behind_ms);
        }
        written
    }

    /// Hand back the members that are done: ended, failed, too slow, or stopped with
    /// nothing left queued.
    fn retire(&mut self) {
        let mut i = 0;
        while i < self.members.len() {
            let m = &mut self.members[i];
            if m.end.is_none() && m.stop.load(Ordering::Relaxed) && m.queue.is_empty() {
                m.end = Some(EndReason::Stopped);
            }
            if m.end.is_some() {
                let m = self.members.swap_remove(i);
                self.finish(m);
            } else {
                i += 1;
            }
        }
    }

    fn finish(&self, mut m: Member) {
        let reason = m.end.unwrap_or(EndReason::Ended);
        if reason == EndReason::TooSlow
            && let Some(t) = &m.ticket
        {
            t.dropped_slow();
        }
        self.count.fetch_sub(1, Ordering::Relaxed);
        drop(m.ticket.take());
        if let Some(done) = m.done.take() {
            let _ = done.send(Finished {
                sock: m.sock,
                bytes: m.bytes,
                reason,
            });
        }
    }

    /// The stream ended: hand every member back, leave the map, and end joiners that
    /// were on their way.
    fn close(&mut self, reason: EndReason) {
        for mut m in std::mem::take(&mut self.members) {
            m.end.get_or_insert(reason);
            self.finish(m);
        }
        let mut groups = lock(&self.fanout.groups);
        self.remove_from(&mut groups);
        drop(groups);
        while let Ok(j) = self.rx.try_recv() {
            self.end_joiner(j, reason);
        }
    }

    fn end_joiner(&self, j: Joiner, reason: EndReason) {
        self.count.fetch_sub(1, Ordering::Relaxed);
        let _ = j.done.send(Finished {
            sock: j.sock,
            bytes: 0,
            reason,
        });
    }

    /// With no members left: leave the map unless a joiner is on its way (then it is
    /// returned, to be admitted, and the group stays).
    fn leave(&mut self) -> Option<Joiner> {
        let mut groups = lock(&self.fanout.groups);
        let joiner = self.rx.try_recv().ok();
        if joiner.is_none() {
            self.remove_from(&mut groups);
        }
        joiner
    }

    fn remove_from(&self, groups: &mut HashMap<(String, Wire), Vec<GroupHandle>>) {
        let k = (self.key.clone(), self.wire);
        if let Some(list) = groups.get_mut(&k) {
            list.retain(|g| g.id != self.id);
            if list.is_empty() {
                groups.remove(&k);
            }
        }
    }

    /// A tag's shared bytes in this group's framing.
    fn wire_bytes(&self, t: &SharedTag) -> Bytes {
        match self.wire {
            Wire::Flv => t.flv_bytes().clone(),
            Wire::Rtmp => t.rtmp_chunks().clone(),
        }
    }

    /// Move RTMP sessions' own output into their members' queues and write it.
    fn take_control(&mut self) -> usize {
        let mut written = 0;
        for m in &mut self.members {
            let Some((shared, _)) = &m.link else { continue };
            if !shared.pending.swap(false, Ordering::Acquire) {
                continue;
            }
            let bytes = std::mem::take(&mut *lock(&shared.control));
            // Control is not media: it takes the newest tag's timestamp (no lag of its own).
            let ts = m.last_ts;
            m.queue.extend(bytes.into_iter().map(|b| (b, ts)));
            if !m.blocked {
                written += m.flush();
            }
        }
        written
    }
}

/// Queue what a write of `written` bytes left of `frame`.
fn queue_rest(queue: &mut VecDeque<(Bytes, u32)>, frame: &[(Bytes, u32, u64)], mut written: usize) {
    for (b, ts, _) in frame {
        if written >= b.len() {
            written -= b.len();
            continue;
        }
        queue.push_back((b.slice(written..), *ts));
        written = 0;
    }
}
