//! The bus between chat nodes: what one node tells the others about a
//! room, and the shared state a room needs when it spans nodes — one message sequence,
//! the history, the member count. [`LocalBus`] is the single-node bus (the default);
//! `RedisBus` (feature `redis`) spans processes over Redis Pub/Sub.
//!
//! Messages go through [`Bus::post`], which numbers them and hands them back to every
//! node — this one included — through [`Inbound::deliver`], so that each node sees a
//! room's messages in one order. Moderation and presence changes are applied by the node
//! where they happen and [`published`](Bus::publish) to the others; a node drops its own
//! echoes.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use serde_json::{Value, json};

use crate::app::rules::{ChatMessage, RoomChange};

/// A bus operation in flight.
pub type BusFuture<T> = Pin<Box<dyn Future<Output = Result<T, BusError>> + Send>>;

/// Why a bus operation failed (the node then serves its local members alone).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    /// The shared store is unreachable.
    #[error("bus down: {0}")]
    Down(String),
}

/// What crosses between nodes about a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    /// A numbered message.
    Message(ChatMessage),
    /// A moderation change (delete, timeout, ban, slow mode).
    Change(RoomChange),
    /// The room's member count across nodes.
    Presence(usize),
}

impl BusEvent {
    /// The event as JSON (the Redis bus's payload).
    pub fn to_json(&self) -> Value {
        match self {
            BusEvent::Message(m) => json!({"message": m.to_json("")}),
            BusEvent::Presence(n) => json!({"presence": n}),
            BusEvent::Change(RoomChange::Ban(u)) => json!({"ban": u}),
            BusEvent::Change(RoomChange::Timeout(u, d)) => {
                json!({"timeout": u, "seconds": d.as_secs()})
            }
            BusEvent::Change(RoomChange::SlowMode(s)) => json!({"slow_mode": s}),
            BusEvent::Change(RoomChange::Delete(id)) => json!({"delete": id}),
        }
    }

    /// Read back [`to_json`](Self::to_json); `None` for anything else.
    pub fn from_json(v: &Value) -> Option<BusEvent> {
        let o = v.as_object()?;
        let (key, val) = o.iter().find(|(k, _)| k.as_str() != "seconds")?;
        Some(match key.as_str() {
            "message" => BusEvent::Message(ChatMessage::from_json(val)?),
            "presence" => BusEvent::Presence(usize::try_from(val.as_u64()?).ok()?),
            "ban" => BusEvent::Change(RoomChange::Ban(val.as_str()?.to_string())),
            "timeout" => BusEvent::Change(RoomChange::Timeout(
                val.as_str()?.to_string(),
                Duration::from_secs(o.get("seconds")?.as_u64()?),
            )),
            "slow_mode" => BusEvent::Change(RoomChange::SlowMode(val.as_u64()?)),
            "delete" => BusEvent::Change(RoomChange::Delete(val.as_u64()?)),
            _ => return None,
        })
    }
}

/// A mutex's guard, poisoned or not (the chat's state stays usable after a panic).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A message as a history record and the tail of its payload: `id \n json` (the JSON
/// without its id, which the shared sequencer gives).
pub fn encode_record(m: &ChatMessage) -> String {
    format!("{}\n{}", m.id, record_body(m))
}

/// The JSON part of a record: the message without its id (and room).
pub(crate) fn record_body(m: &ChatMessage) -> String {
    let mut body = m.to_json("");
    if let Some(o) = body.as_object_mut() {
        o.remove("id");
        o.remove("room");
    }
    body.to_string()
}

/// Read an [`encode_record`] record back; `None` for anything else.
pub fn decode_record(rec: &str) -> Option<ChatMessage> {
    let (id, body) = rec.split_once('\n')?;
    let mut v: Value = serde_json::from_str(body).ok()?;
    v.as_object_mut()?
        .insert("id".into(), json!(id.parse::<u64>().ok()?));
    ChatMessage::from_json(&v)
}

/// An event as it travels between nodes (the Redis bus's Pub/Sub payload): the sending
/// node's id, then `m` and an [`encode_record`] record for a message, or `e` and the
/// event's JSON.
pub fn encode_payload(node: &str, event: &BusEvent) -> String {
    match event {
        BusEvent::Message(m) => format!("{node}\nm\n{}", encode_record(m)),
        other => format!("{node}\ne\n{}", other.to_json()),
    }
}

/// Read an [`encode_payload`] payload: the sending node and the event; `None` for
/// anything else (never panics on hostile bytes).
pub fn decode_payload(payload: &[u8]) -> Option<(&str, BusEvent)> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut parts = text.splitn(3, '\n');
    let (node, kind, rest) = (parts.next()?, parts.next()?, parts.next()?);
    let event = match kind {
        "m" => BusEvent::Message(decode_record(rest)?),
        "e" => BusEvent::from_json(&serde_json::from_str(rest).ok()?)?,
        _ => return None,
    };
    Some((node, event))
}

/// The moderation state a room has in the shared store, for a node that starts serving it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SharedRoom {
    /// Its changes: bans, running timeouts (with the time left), slow mode.
    pub changes: Vec<RoomChange>,
}

/// The node's side of the bus: where events for its rooms go.
pub trait Inbound: Send + Sync {
    /// An event for `room` (from another node, or a message this node posted).
    fn deliver(&self, room: &str, event: BusEvent);
    /// Members of `room` on this node.
    fn local_count(&self, room: &str) -> usize;
}

/// The bus.
pub trait Bus: Send + Sync + 'static {
    /// This node's id (on every event it publishes).
    fn node(&self) -> &str;
    /// Connect the bus to the node's rooms; call once, before anything else.
    fn start(&self, inbound: Weak<dyn Inbound>);
    /// The node has members in `room`: receive its events from now on. Completes once
    /// events are flowing; `Some` the first time, with the room's shared state.
    fn subscribe(&self, room: &str) -> BusFuture<Option<SharedRoom>>;
    /// The node may have no members left in `room` (it stops receiving its events if
    /// [`Inbound::local_count`] says so).
    fn release(&self, room: &str);
    /// Number `message` (its id at least `hint`), keep it in the room's history (the
    /// last `keep`) and deliver it to every node, this one included; its id.
    fn post(&self, room: &str, message: &ChatMessage, hint: u64, keep: usize) -> BusFuture<u64>;
    /// Tell the other nodes (and the shared store) about `event`.
    fn publish(&self, room: &str, event: &BusEvent) -> BusFuture<()>;
    /// The last `n` messages, oldest first; `None` when there is no shared history.
    fn history(&self, room: &str, n: usize) -> BusFuture<Option<Vec<ChatMessage>>>;
    /// Record that `local` members of `room` are here; the count across nodes.
    fn presence(&self, room: &str, local: usize) -> BusFuture<usize>;
    /// Figures about the bus for `/metrics` (`None`: a bus with nothing to report).
    fn metrics(&self) -> Option<BusMetrics> {
        None
    }
}

/// Figures of a bus between nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusMetrics {
    /// Whether the shared store is reachable now.
    pub up: bool,
    /// Rooms this node receives events of.
    pub subscriptions: u64,
    /// Reconnections to the store.
    pub reconnects: u64,
    /// Store operations that failed.
    pub errors: u64,
    /// Events published.
    pub published: u64,
    /// Events received.
    pub received: u64,
    /// This node's own events received back and dropped.
    pub echoes_dropped: u64,
}

fn ready<T: Send + 'static>(v: Result<T, BusError>) -> BusFuture<T> {
    Box::pin(std::future::ready(v))
}

/// The single-node bus: a message sequence per room, events delivered at once, counts
/// are this node's.
#[derive(Default)]
pub struct LocalBus {
    inbound: OnceLock<Weak<dyn Inbound>>,
    seq: Mutex<HashMap<String, u64>>,
}

impl std::fmt::Debug for LocalBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBus").finish_non_exhaustive()
    }
}

impl LocalBus {
    /// A bus for one node.
    pub fn new() -> LocalBus {
        LocalBus::default()
    }

    fn inbound(&self) -> Option<Arc<dyn Inbound>> {
        self.inbound.get().and_then(Weak::upgrade)
    }
}

impl Bus for LocalBus {
    fn node(&self) -> &'static str {
        "local"
    }

    fn start(&self, inbound: Weak<dyn Inbound>) {
        let _ = self.inbound.set(inbound);
    }

    fn subscribe(&self, _room: &str) -> BusFuture<Option<SharedRoom>> {
        ready(Ok(None))
    }

    fn release(&self, room: &str) {
        if self.inbound().is_none_or(|i| i.local_count(room) == 0) {
            // The room's state stays with the node (its Room keeps the next id).
            lock(&self.seq).remove(room);
        }
    }

    fn post(&self, room: &str, message: &ChatMessage, hint: u64, _keep: usize) -> BusFuture<u64> {
        let Some(inbound) = self.inbound() else {
            return ready(Err(BusError::Down("the node is gone".into())));
        };
        // Numbering and delivery under one lock: every member sees the room's ids in order.
        let mut seq = lock(&self.seq);
        let next = seq.entry(room.to_string()).or_insert(1);
        let id = (*next).max(hint);
        *next = id + 1;
        let mut m = message.clone();
        m.id = id;
        inbound.deliver(room, BusEvent::Message(m));
        ready(Ok(id))
    }

    fn publish(&self, _room: &str, _event: &BusEvent) -> BusFuture<()> {
        ready(Ok(()))
    }

    fn history(&self, _room: &str, _n: usize) -> BusFuture<Option<Vec<ChatMessage>>> {
        ready(Ok(None))
    }

    fn presence(&self, _room: &str, local: usize) -> BusFuture<usize> {
        ready(Ok(local))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::auth::{Identity, Role};

    #[test]
    fn events_round_trip_as_json() {
        let m = ChatMessage {
            id: 7,
            user: Identity {
                id: "u1".into(),
                name: "Ann \"A\"".into(),
                role: Role::Moderator,
                room: None,
            },
            text: "hi\nthere ✓".into(),
            ts: 1_700_000_000_123,
        };
        for e in [
            BusEvent::Message(m),
            BusEvent::Presence(12_345),
            BusEvent::Change(RoomChange::Ban("bob".into())),
            BusEvent::Change(RoomChange::Timeout("bob".into(), Duration::from_secs(30))),
            BusEvent::Change(RoomChange::SlowMode(5)),
            BusEvent::Change(RoomChange::Delete(3)),
        ] {
            let p = encode_payload("node-1", &e);
            assert_eq!(
                decode_payload(p.as_bytes()),
                Some(("node-1", e.clone())),
                "{p}"
            );
            let text = e.to_json().to_string();
            let back = BusEvent::from_json(&serde_json::from_str(&text).unwrap());
            assert_eq!(back, Some(e), "{text}");
        }
        for e in [
            BusEvent::Presence(3),
            BusEvent::Change(RoomChange::Delete(9)),
        ] {
            let p = encode_payload("n1", &e);
            assert_eq!(decode_payload(p.as_bytes()), Some(("n1", e)));
        }
        for bad in [
            &b""[..],
            b"n1",
            b"n1\nm\n",
            b"n1\nm\nx\n{}",
            b"n1\nq\n{}",
            b"\xff\ne\n{}",
        ] {
            assert_eq!(decode_payload(bad), None);
        }
        for bad in [
            json!(null),
            json!({}),
            json!({"ban": 3}),
            json!({"timeout": "x"}),
            json!({"message": {"id": 1}}),
            json!({"what": 1}),
        ] {
            assert_eq!(BusEvent::from_json(&bad), None, "{bad}");
        }
    }

    struct Sink(Mutex<Vec<(String, BusEvent)>>);
    impl Inbound for Sink {
        fn deliver(&self, room: &str, event: BusEvent) {
            self.0.lock().unwrap().push((room.into(), event));
        }
        fn local_count(&self, _room: &str) -> usize {
            1
        }
    }

    #[tokio::test]
    async fn local_bus_numbers_each_room_from_the_hint() {
        let bus = LocalBus::new();
        let sink: Arc<Sink> = Arc::new(Sink(Mutex::new(Vec::new())));
        let weak: Weak<dyn Inbound> = Arc::downgrade(&(sink.clone() as Arc<dyn Inbound>));
        bus.start(weak);
        let m = ChatMessage {
            id: 0,
            user: Identity {
                id: "u".into(),
                name: "u".into(),
                role: Role::Viewer,
                room: None,
            },
            text: "x".into(),
            ts: 1,
        };
        assert_eq!(bus.post("a", &m, 1, 50).await, Ok(1));
        assert_eq!(bus.post("a", &m, 1, 50).await, Ok(2));
        assert_eq!(bus.post("b", &m, 1, 50).await, Ok(1));
        // A room that knew higher ids (relayed, or before a restart) continues from them.
        assert_eq!(bus.post("a", &m, 10, 50).await, Ok(10));
        assert_eq!(bus.post("a", &m, 1, 50).await, Ok(11));
        let got: Vec<(String, u64)> = sink
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(r, e)| match e {
                BusEvent::Message(m) => (r.clone(), m.id),
                other => panic!("{other:?}"),
            })
            .collect();
        let want = [("a", 1), ("a", 2), ("b", 1), ("a", 10), ("a", 11)];
        assert_eq!(got, want.map(|(r, i)| (r.to_string(), i)));
        assert_eq!(bus.presence("a", 3).await, Ok(3));
        assert_eq!(bus.history("a", 5).await, Ok(None));
    }
}
