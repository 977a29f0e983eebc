//! The room fan-out engine, runtime-agnostic: a broadcast is one shared [`Bytes`] frame
//! pushed into every member's bounded [`Outbox`]; each connection's writer drains its own
//! outbox. A member that stops reading loses its oldest frames first and is cut off
//! once it has lost too many in a row; it never delays the others or grows memory.
//!
//! ```
//! use std::sync::Arc;
//! use bytes::Bytes;
//! use videopick_chat_proto::fanout::{Outbox, OutboxConfig, Rooms};
//!
//! let rooms: Rooms = Rooms::new();
//! let (a, b) = (Arc::new(Outbox::new(OutboxConfig::default())), Arc::new(Outbox::new(OutboxConfig::default())));
//! rooms.join("live", 1, a.clone());
//! rooms.join("live", 2, b.clone());
//! let report = rooms.broadcast("live", &Bytes::from_static(b"42[\"message\",{}]"), None);
//! assert_eq!(report.delivered, 2);
//! assert_eq!(a.try_pop(), Some(Bytes::from_static(b"42[\"message\",{}]")));
//! ```

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

/// A connection's id (unique in the process).
pub type ConnId = u64;

/// Outbox limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxConfig {
    /// Frames held for a member; a full outbox drops its oldest frame.
    pub capacity: usize,
    /// Frames a member may lose without reading in between before it is cut off.
    pub max_dropped: u32,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            capacity: 128,
            max_dropped: 256,
        }
    }
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued.
    Queued,
    /// Queued after dropping the oldest frame (the member is behind).
    DroppedOldest,
    /// The member lost too many frames in a row: it is now closed (disconnect it).
    Overflowed,
    /// The outbox was already closed.
    Closed,
}

#[derive(Debug, Default)]
struct State {
    frames: VecDeque<Bytes>,
    waker: Option<Waker>,
    /// Frames dropped since the writer last took any.
    streak: u32,
    dropped: u64,
    closed: bool,
}

/// One connection's bounded queue of outgoing frames.
#[derive(Debug)]
pub struct Outbox {
    config: OutboxConfig,
    state: Mutex<State>,
}

impl Outbox {
    /// An empty outbox.
    pub fn new(config: OutboxConfig) -> Outbox {
        Outbox {
            config,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queue `frame` (a clone of a shared buffer: no copy) and wake the writer.
    pub fn push(&self, frame: Bytes) -> Pushed {
        let mut s = self.state();
        if s.closed {
            return Pushed::Closed;
        }
        let mut result = Pushed::Queued;
        if s.frames.len() >= self.config.capacity.max(1) {
            s.frames.pop_front();
            s.dropped += 1;
            s.streak += 1;
            result = Pushed::DroppedOldest;
            if s.streak > self.config.max_dropped {
                s.closed = true;
                s.frames.clear();
                result = Pushed::Overflowed;
            }
        }
        if result != Pushed::Overflowed {
            s.frames.push_back(frame);
        }
        let waker = s.waker.take();
        drop(s);
        if let Some(w) = waker {
            w.wake();
        }
        result
    }

    /// Take the next frame without waiting.
    pub fn try_pop(&self) -> Option<Bytes> {
        let mut s = self.state();
        let f = s.frames.pop_front();
        if f.is_some() {
            s.streak = 0;
        }
        f
    }

    /// Move up to `max` queued frames into `out` (for one vectored write), or register
    /// the waker: `Ready(0)` means closed.
    pub fn poll_drain(
        &self,
        cx: &mut Context<'_>,
        out: &mut Vec<Bytes>,
        max: usize,
    ) -> Poll<usize> {
        let mut s = self.state();
        if s.frames.is_empty() {
            if s.closed {
                return Poll::Ready(0);
            }
            if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                s.waker = Some(cx.waker().clone());
            }
            return Poll::Pending;
        }
        let n = s.frames.len().min(max.max(1));
        out.extend(s.frames.drain(..n));
        s.streak = 0;
        Poll::Ready(n)
    }

    /// Close: pushes are refused, the writer drains what is queued then sees the end.
    pub fn close(&self) {
        let mut s = self.state();
        s.closed = true;
        let waker = s.waker.take();
        drop(s);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Closed (by [`Outbox::close`] or an overflow).
    pub fn is_closed(&self) -> bool {
        self.state().closed
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.state().frames.len()
    }

    /// No frames waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Frames dropped over its life.
    pub fn dropped(&self) -> u64 {
        self.state().dropped
    }
}

/// A room member: anything that takes shared frames without blocking.
pub trait Member: Send + Sync {
    /// Queue `frame` for this member.
    fn push(&self, frame: Bytes) -> Pushed;

    /// Queue several frames, in order; what happened to the last one that did not simply
    /// queue (a member that queues a batch under one lock overrides this).
    fn push_many(&self, frames: &[Bytes]) -> (Pushed, usize) {
        let mut worst = Pushed::Queued;
        let mut dropped = 0;
        for f in frames {
            match self.push(f.clone()) {
                Pushed::Queued => {}
                Pushed::DroppedOldest => {
                    dropped += 1;
                    worst = Pushed::DroppedOldest;
                }
                other => return (other, dropped),
            }
        }
        (worst, dropped)
    }
}

impl Member for Outbox {
    fn push(&self, frame: Bytes) -> Pushed {
        Outbox::push(self, frame)
    }
}

/// What a broadcast did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Broadcast {
    /// Members the frame was queued for.
    pub delivered: usize,
    /// Of those, members that had to drop an older frame.
    pub dropped: usize,
    /// Members cut off by this broadcast (their outboxes overflowed): disconnect them.
    pub overflowed: Vec<ConnId>,
}

#[derive(Debug)]
struct Room<M> {
    members: HashMap<ConnId, Arc<M>>,
}

impl<M> Default for Room<M> {
    fn default() -> Self {
        Room {
            members: HashMap::new(),
        }
    }
}

const SHARDS: usize = 16;

/// Rooms and their members, sharded by room name so that broadcasts to different rooms
/// do not contend.
#[derive(Debug)]
pub struct Rooms<M = Outbox> {
    shards: Vec<RwLock<HashMap<String, Room<M>>>>,
}

impl<M: Member> Default for Rooms<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M: Member> Rooms<M> {
    /// No rooms.
    pub fn new() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
        }
    }

    fn shard(&self, room: &str) -> &RwLock<HashMap<String, Room<M>>> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        room.hash(&mut h);
        #[allow(clippy::cast_possible_truncation)] // modulo a small number
        let i = (h.finish() % SHARDS as u64) as usize;
        &self.shards[i]
    }

    /// Add `conn` to `room`; the room's member count after.
    pub fn join(&self, room: &str, conn: ConnId, outbox: Arc<M>) -> usize {
        let mut shard = self
            .shard(room)
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let r = shard.entry(room.to_string()).or_default();
        r.members.insert(conn, outbox);
        r.members.len()
    }

    /// Remove `conn` from `room` (the room goes when empty); the member count after.
    pub fn leave(&self, room: &str, conn: ConnId) -> usize {
        let mut shard = self
            .shard(room)
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(r) = shard.get_mut(room) else {
            return 0;
        };
        r.members.remove(&conn);
        let n = r.members.len();
        if n == 0 {
            shard.remove(room);
        }
        n
    }

    /// Members of `room` here.
    pub fn count(&self, room: &str) -> usize {
        self.shard(room)
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(room)
            .map_or(0, |r| r.members.len())
    }

    /// Rooms with members here.
    pub fn rooms(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .len()
            })
            .sum()
    }

    /// Queue `frames` (in order) for every member of `room`: one call per member, so a
    /// member that takes a batch under one lock pays its per-member cost once per batch.
    /// `delivered` and `dropped` count frames.
    pub fn broadcast_many(&self, room: &str, frames: &[Bytes]) -> Broadcast {
        let mut report = Broadcast::default();
        self.for_each_member(room, |id, member| {
            let (pushed, dropped) = member.push_many(frames);
            report.dropped += dropped;
            match pushed {
                Pushed::Overflowed => report.overflowed.push(id),
                Pushed::Closed => {}
                Pushed::Queued | Pushed::DroppedOldest => report.delivered += frames.len(),
            }
        });
        report
    }

    /// Call `f` for each member of `room` (under the shard's read lock).
    fn for_each_member(&self, room: &str, mut f: impl FnMut(ConnId, &M)) {
        let shard = self
            .shard(room)
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(r) = shard.get(room) {
            for (&id, member) in &r.members {
                f(id, member);
            }
        }
    }

    /// Queue `frame` for every member of `room` except `except`.
    pub fn broadcast(&self, room: &str, frame: &Bytes, except: Option<ConnId>) -> Broadcast {
        let mut report = Broadcast::default();
        self.for_each_member(room, |id, member| {
            if Some(id) == except {
                return;
            }
            match Member::push(member, frame.clone()) {
                Pushed::Queued => report.delivered += 1,
                Pushed::DroppedOldest => {
                    report.delivered += 1;
                    report.dropped += 1;
                }
                Pushed::Overflowed => report.overflowed.push(id),
                Pushed::Closed => {}
            }
        });
        report
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_slow_member_drops_oldest_then_is_cut_off_without_touching_others() {
        let cfg = OutboxConfig {
            capacity: 4,
            max_dropped: 3,
        };
        let rooms: Rooms = Rooms::new();
        let (fast, slow) = (Arc::new(Outbox::new(cfg)), Arc::new(Outbox::new(cfg)));
        rooms.join("r", 1, fast.clone());
        rooms.join("r", 2, slow.clone());
        let mut cut = Vec::new();
        for i in 0..10u8 {
            let report = rooms.broadcast("r", &Bytes::from(vec![i]), None);
            cut.extend(report.overflowed);
            assert_eq!(
                fast.try_pop(),
                Some(Bytes::from(vec![i])),
                "the fast one keeps up"
            );
        }
        // Slow: 4 queued, then drops at 4, 5, 6 (streak 3), cut off at the 4th drop (i = 7).
        assert_eq!(cut, [2]);
        assert!(slow.is_closed() && slow.is_empty());
        assert_eq!(slow.dropped(), 4);
        assert_eq!(slow.push(Bytes::new()), Pushed::Closed);
    }

    #[test]
    fn reading_resets_the_streak() {
        let cfg = OutboxConfig {
            capacity: 1,
            max_dropped: 1,
        };
        let o = Outbox::new(cfg);
        for _ in 0..100 {
            o.push(Bytes::from_static(b"a"));
            assert_eq!(o.push(Bytes::from_static(b"b")), Pushed::DroppedOldest);
            assert_eq!(o.try_pop(), Some(Bytes::from_static(b"b")));
        }
        assert!(!o.is_closed());
    }

    #[test]
    fn writers_are_woken_and_drain_in_batches() {
        let o = Outbox::new(OutboxConfig::default());
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut out = Vec::new();
        assert_eq!(o.poll_drain(&mut cx, &mut out, 8), Poll::Pending);
        for i in 0..10u8 {
            o.push(Bytes::from(vec![i]));
        }
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "one wake for the first push"
        );
        assert_eq!(o.poll_drain(&mut cx, &mut out, 8), Poll::Ready(8));
        assert_eq!(o.poll_drain(&mut cx, &mut out, 8), Poll::Ready(2));
        o.close();
        assert_eq!(o.poll_drain(&mut cx, &mut out, 8), Poll::Ready(0));
    }

    #[test]
    fn rooms_count_and_vanish_when_empty() {
        let rooms: Rooms = Rooms::new();
        let o = Arc::new(Outbox::new(OutboxConfig::default()));
        assert_eq!(rooms.join("a", 1, o.clone()), 1);
        assert_eq!(rooms.join("a", 2, o.clone()), 2);
        assert_eq!(rooms.join("b", 1, o.clone()), 1);
        assert_eq!(rooms.rooms(), 2);
        let r = rooms.broadcast("a", &Bytes::from_static(b"x"), Some(1));
        assert_eq!(r.delivered, 1, "the sender is skipped");
        assert_eq!(rooms.leave("a", 1), 1);
        assert_eq!(rooms.leave("a", 2), 0);
        assert_eq!(rooms.rooms(), 1);
        assert_eq!(rooms.count("a"), 0);
        assert_eq!(
            rooms.broadcast("nobody", &Bytes::new(), None),
            Broadcast::default()
        );
    }
}
