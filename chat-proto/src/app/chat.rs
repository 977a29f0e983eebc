//! The chat application on the server (feature `server`): `docs/chat-protocol.md` as an
//! [`App`]. Rooms span nodes through a [`Bus`] ([`LocalBus`] by default); a broadcast is
//! encoded once and pushed to every member's queue here, batched per room within the
//! flush interval. Presence goes out at most once a second per room (less often in very
//! large rooms).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use serde_json::{Value, json};

use crate::app::auth::{self, Identity, Role, TokenError};
use crate::app::bus::{Bus, BusEvent, Inbound, LocalBus, lock};
use crate::app::rules::{ChatError, ChatLimits, Room, RoomChange, TokenBucket, valid_room};
use crate::fanout::Rooms;
use crate::server::{App, Conn, Socket};
use crate::wire::socketio::Packet;

/// Chat settings.
#[derive(Debug, Clone)]
pub struct ChatConfig {
    /// HS256 secret of the connect tokens.
    pub jwt_secret: Vec<u8>,
    /// Let clients without a token read (as anonymous viewers).
    pub anonymous: bool,
    /// Message and room limits.
    pub limits: ChatLimits,
    /// Connections per client IP address.
    pub max_connections_per_ip: usize,
    /// Broadcast batching: in a busy room, what is broadcast within this interval reaches
    /// each member as one batch (one lock, one write); the first broadcast after a quiet
    /// interval goes at once. Zero: every broadcast goes at once.
    pub flush_interval: Duration,
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            jwt_secret: Vec::new(),
            anonymous: false,
            limits: ChatLimits::default(),
            max_connections_per_ip: 100,
            flush_interval: Duration::ZERO,
        }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct ChatMetrics {
    /// Messages accepted.
    pub messages_in: AtomicU64,
    /// Deliveries queued (one message to one member).
    pub messages_out: AtomicU64,
    /// Deliveries that pushed out an older message of a slow member.
    pub drops: AtomicU64,
    /// Connections refused at CONNECT.
    pub refused: AtomicU64,
    /// Bus operations that failed (the shared store was unreachable).
    pub bus_errors: AtomicU64,
    /// Messages delivered to this node's members only, because the bus was down.
    pub bus_fallbacks: AtomicU64,
    /// Disconnects by reason (`transport close`, `ping timeout`, …).
    pub disconnects: Mutex<HashMap<String, u64>>,
}

/// Per room: when presence was last sent to the members here, and what is pending.
#[derive(Debug, Default)]
struct PresenceState {
    last: Option<Instant>,
    scheduled: bool,
    /// Members came or went here (count through the bus, then publish).
    local_change: bool,
    /// The latest count another node published.
    remote: Option<usize>,
    /// The count last sent.
    count: usize,
}

/// A room's broadcasts waiting for the end of the flush interval.
#[derive(Debug, Default)]
struct RoomBatch {
    frames: Vec<Bytes>,
    scheduled: bool,
    /// When the room last sent.
    last: Option<Instant>,
}

/// How often a room's members hear its count: every second up to 5,000 members, then
/// less often as the room grows (every 2 s at 10,000, 20 s at 100,000, at most 30 s) —
/// a count every second to each of 100,000 members would be 100,000 deliveries a second
/// of presence alone.
fn presence_interval(members: usize) -> Duration {
    let steps = u32::try_from(members / 5000)
        .unwrap_or(u32::MAX)
        .clamp(1, 30);
    Duration::from_secs(1) * steps
}

type PresenceTimes = Mutex<HashMap<String, PresenceState>>;

struct User {
    identity: Identity,
    bucket: TokenBucket,
    rooms: HashSet<String>,
    ip: IpAddr,
}

/// The chat [`App`]: the rules here, rooms spanning nodes through a [`Bus`].
pub struct ChatApp {
    core: Arc<Core>,
}

struct Core {
    /// Itself, for tasks started from `&self` callbacks.
    this: Weak<Core>,
    config: ChatConfig,
    bus: Arc<dyn Bus>,
    members: Rooms<Conn>,
    /// Per room: when presence was last sent, and whether a send is scheduled.
    presence: PresenceTimes,
    rooms: Mutex<HashMap<String, Room>>,
    /// Per room: broadcasts waiting for the end of the flush interval.
    batches: Mutex<HashMap<String, Arc<Mutex<RoomBatch>>>>,
    users: Mutex<HashMap<u64, User>>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    metrics: ChatMetrics,
    /// What this node tells the other nodes, in order ([`Core::publish`]).
    publisher: std::sync::OnceLock<tokio::sync::mpsc::Sender<(String, BusEvent)>>,
}

/// Changes and presence waiting to go to the other nodes, at most.
const PUBLISH_QUEUE: usize = 4096;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ok(extra: Value) -> Value {
    let mut v = json!({"ok": true});
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    v
}

/// An event's answer: now, or once the bus has done its part.
enum Answer {
    Now(Result<Value, ChatError>),
    Later(Pin<Box<dyn Future<Output = Result<Value, ChatError>> + Send>>),
}

impl From<Result<Value, ChatError>> for Answer {
    fn from(r: Result<Value, ChatError>) -> Answer {
        Answer::Now(r)
    }
}

impl ChatApp {
    /// The app with `config` on one node ([`LocalBus`]).
    pub fn new(config: ChatConfig) -> ChatApp {
        ChatApp::with_bus(config, Arc::new(LocalBus::new()))
    }

    /// The app with `config`, its rooms spanning nodes over `bus` (started here).
    pub fn with_bus(config: ChatConfig, bus: Arc<dyn Bus>) -> ChatApp {
        let core = Arc::new_cyclic(|this| Core {
            this: this.clone(),
            config,
            bus,
            members: Rooms::new(),
            presence: Mutex::new(HashMap::new()),
            rooms: Mutex::new(HashMap::new()),
            batches: Mutex::new(HashMap::new()),
            users: Mutex::new(HashMap::new()),
            per_ip: Mutex::new(HashMap::new()),
            metrics: ChatMetrics::default(),
            publisher: std::sync::OnceLock::new(),
        });
        let inbound: Arc<dyn Inbound> = core.clone();
        core.bus.start(Arc::downgrade(&inbound));
        ChatApp { core }
    }

    /// Counters.
    pub fn metrics(&self) -> &ChatMetrics {
        &self.core.metrics
    }

    /// Rooms with members on this node.
    pub fn room_count(&self) -> usize {
        self.core.members.rooms()
    }

    /// The bus's figures, if it reports any.
    pub fn bus_metrics(&self) -> Option<crate::app::bus::BusMetrics> {
        self.core.bus.metrics()
    }
}

impl Inbound for Core {
    fn deliver(&self, room: &str, event: BusEvent) {
        match event {
            BusEvent::Message(m) => {
                let payload = m.to_json(room);
                lock(&self.rooms)
                    .entry(room.to_string())
                    .or_insert_with(|| Room::new(room))
                    .remember(m, self.config.limits.history);
                self.broadcast(room, "message", payload);
            }
            BusEvent::Change(c) => {
                lock(&self.rooms)
                    .entry(room.to_string())
                    .or_insert_with(|| Room::new(room))
                    .apply(&c, Instant::now());
                self.changed(room, &c);
            }
            BusEvent::Presence(count) => {
                if let Some(core) = self.this.upgrade() {
                    core.schedule_presence(room, Some(count));
                }
            }
        }
    }

    fn local_count(&self, room: &str) -> usize {
        self.members.count(room)
    }
}

impl Core {
    /// Encode `event` once and queue it for every member of `room` here.
    ///
    /// With a flush interval, a busy room's broadcasts are batched: the first after a
    /// quiet interval goes out at once, the others within the interval go out together
    /// when it ends — each member then takes the batch under one lock and its writer sends
    /// it in one write.
    fn broadcast(&self, room: &str, event: &str, payload: Value) {
        let (text, _) = Packet::event("/", event, [payload]).encode();
        let frame = Bytes::from(text);
        let flush = self.config.flush_interval;
        let core = self.this.upgrade();
        let (false, Some(core)) = (flush.is_zero(), core) else {
            // Members whose queue overflows close themselves (their reaper disconnects them).
            let report = self.members.broadcast(room, &frame, None);
            self.counted(&report);
            return;
        };
        let batch = lock(&self.batches)
            .entry(room.to_string())
            .or_default()
            .clone();
        let mut b = lock(&batch);
        let now = Instant::now();
        if b.frames.is_empty() && !b.scheduled && b.last.is_none_or(|l| now >= l + flush) {
            // A quiet room: out at once (under the room's batch lock, which keeps order).
            b.last = Some(now);
            let report = self.members.broadcast(room, &frame, None);
            drop(b);
            self.counted(&report);
            return;
        }
        b.frames.push(frame);
        if b.scheduled {
            return;
        }
        b.scheduled = true;
        let at = b.last.map_or(now, |l| l + flush);
        drop(b);
        let room = room.to_string();
        tokio::spawn(async move {
            tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
            let report = {
                let mut b = lock(&batch);
                b.scheduled = false;
                b.last = Some(Instant::now());
                let frames = std::mem::take(&mut b.frames);
                core.members.broadcast_many(&room, &frames)
            };
            core.counted(&report);
            if core.members.count(&room) == 0 {
                let mut batches = lock(&core.batches);
                if batches
                    .get(&room)
                    .is_some_and(|b| Arc::strong_count(b) == 1)
                {
                    batches.remove(&room);
                }
            }
        });
    }

    /// Send the room's pending batch now.
    fn flush_now(&self, room: &str) {
        let Some(batch) = lock(&self.batches).get(room).cloned() else {
            return;
        };
        let report = {
            let mut b = lock(&batch);
            if b.frames.is_empty() {
                return;
            }
            b.last = Some(Instant::now());
            let frames = std::mem::take(&mut b.frames);
            self.members.broadcast_many(room, &frames)
        };
        self.counted(&report);
    }

    fn counted(&self, report: &crate::fanout::Broadcast) {
        self.metrics
            .messages_out
            .fetch_add(report.delivered as u64, Ordering::Relaxed);
        self.metrics
            .drops
            .fetch_add(report.dropped as u64, Ordering::Relaxed);
    }

    /// Tell the room's members here about a moderation change (applied already); a
    /// banned user's connections here leave the room.
    fn changed(&self, room: &str, change: &RoomChange) {
        let (event, payload) = match change {
            RoomChange::Delete(id) => ("deleted", json!({"room": room, "id": id})),
            RoomChange::Timeout(user, left) => (
                "moderation",
                json!({"room": room, "action": "timeout", "user": user, "seconds": left.as_secs()}),
            ),
            RoomChange::Ban(user) => (
                "moderation",
                json!({"room": room, "action": "ban", "user": user}),
            ),
            RoomChange::SlowMode(seconds) => (
                "moderation",
                json!({"room": room, "action": "slow_mode", "seconds": seconds}),
            ),
        };
        self.broadcast(room, event, payload);
        if let RoomChange::Ban(user) = change {
            // The banned user hears of it before leaving the room.
            self.flush_now(room);
            let banned: Vec<u64> = lock(&self.users)
                .iter()
                .filter(|(_, u)| u.identity.id == *user && u.rooms.contains(room))
                .map(|(id, _)| *id)
                .collect();
            if let Some(core) = self.this.upgrade() {
                for c in banned {
                    core.leave_room(c, room);
                }
            }
        }
    }

    /// Publish to the other nodes, one after another in the order of the calls: they must
    /// apply a delete before the ban that follows it (or the banned member, gone from the
    /// room, never hears of the delete). A failure, or a full queue, is counted (the bus
    /// reports its state).
    fn publish(self: &Arc<Self>, room: &str, event: &BusEvent) {
        let tx = self.publisher.get_or_init(|| {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<(String, BusEvent)>(PUBLISH_QUEUE);
            // A weak reference: the queue's sender lives in the core, so the task ends
            // when the core goes.
            let core = self.this.clone();
            tokio::spawn(async move {
                while let Some((room, event)) = rx.recv().await {
                    let Some(fut) = core.upgrade().map(|c| c.bus.publish(&room, &event)) else {
                        break;
                    };
                    if fut.await.is_err()
                        && let Some(c) = core.upgrade()
                    {
                        c.metrics.bus_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
            tx
        });
        if tx.try_send((room.to_string(), event.clone())).is_err() {
            self.metrics.bus_errors.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The room's member count changed here: members hear of it at most once a second
    /// (a change inside the second is sent when the second is over, with the latest count
    /// across nodes), and the other nodes are told.
    fn presence(self: &Arc<Self>, room: &str) {
        self.schedule_presence(room, None);
    }

    /// Presence for the members here: after a local change (`remote` None: count across
    /// nodes through the bus, then publish), or a count another node published (sent as
    /// is). Either way at most one update a second per room, so N nodes do not make N
    /// updates a second.
    fn schedule_presence(self: &Arc<Self>, room: &str, remote: Option<usize>) {
        let now = Instant::now();
        let at = {
            let mut p = lock(&self.presence);
            let e = p.entry(room.to_string()).or_default();
            let every = presence_interval(e.count);
            match remote {
                Some(n) => e.remote = Some(n),
                None => e.local_change = true,
            }
            if e.scheduled {
                return; // an update is already on its way and will carry this
            }
            e.scheduled = true;
            match e.last {
                Some(last) if now < last + every => last + every,
                _ => now,
            }
        };
        let (core, room) = (self.clone(), room.to_string());
        tokio::spawn(async move {
            tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
            let (local_change, remote) = {
                let mut p = lock(&core.presence);
                let e = p.entry(room.clone()).or_default();
                e.last = Some(Instant::now());
                e.scheduled = false;
                (std::mem::take(&mut e.local_change), e.remote.take())
            };
            let local = core.members.count(&room);
            let count = if local_change {
                core.bus.presence(&room, local).await.unwrap_or_else(|_| {
                    core.metrics.bus_errors.fetch_add(1, Ordering::Relaxed);
                    local
                })
            } else {
                remote.unwrap_or(local)
            };
            if let Some(e) = lock(&core.presence).get_mut(&room) {
                e.count = count;
            }
            if local == 0 {
                let mut p = lock(&core.presence);
                if p.get(&room).is_some_and(|e| !e.scheduled) {
                    p.remove(&room);
                }
            } else {
                core.broadcast(&room, "presence", json!({"room": room, "count": count}));
            }
            if local_change {
                core.publish(&room, &BusEvent::Presence(count));
            }
        });
    }

    fn leave_room(self: &Arc<Self>, conn: u64, room: &str) {
        let left = self.members.leave(room, conn);
        if let Some(u) = lock(&self.users).get_mut(&conn) {
            u.rooms.remove(room);
        }
        if left == 0 {
            self.bus.release(room);
        }
        self.presence(room);
    }

    fn join(self: &Arc<Self>, socket: &Socket, identity: &Identity, room: &str) -> Answer {
        let conn = socket.conn().id();
        // The subscription is asked for now, so that it is in place (or failed) before
        // anything this member sends next is handled.
        let subscribed = self.bus.subscribe(room);
        self.members.join(room, conn, socket.conn().clone());
        if let Some(u) = lock(&self.users).get_mut(&conn) {
            u.rooms.insert(room.to_string());
        }
        self.presence(room);
        let (core, room, identity) = (self.clone(), room.to_string(), identity.clone());
        Answer::Later(Box::pin(async move {
            match subscribed.await {
                Ok(Some(shared)) => {
                    let now = Instant::now();
                    let mut rooms = lock(&core.rooms);
                    let r = rooms
                        .entry(room.clone())
                        .or_insert_with(|| Room::new(room.as_str()));
                    for c in &shared.changes {
                        r.apply(c, now);
                    }
                    let banned = r.can_join(&identity);
                    drop(rooms);
                    if let Err(e) = banned {
                        core.leave_room(conn, &room);
                        return Err(e);
                    }
                }
                Ok(None) => {}
                Err(_) => {
                    core.metrics.bus_errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            let keep = core.config.limits.history;
            let history = match core.bus.history(&room, keep).await {
                Ok(Some(h)) => h,
                other => {
                    if other.is_err() {
                        core.metrics.bus_errors.fetch_add(1, Ordering::Relaxed);
                    }
                    lock(&core.rooms)
                        .get(&room)
                        .map(|r| r.history().cloned().collect())
                        .unwrap_or_default()
                }
            };
            let local = core.members.count(&room);
            let count = core.bus.presence(&room, local).await.unwrap_or(local);
            let history: Vec<Value> = history.iter().map(|m| m.to_json(&room)).collect();
            Ok(ok(
                json!({"room": room, "count": count, "history": history}),
            ))
        }))
    }

    fn post(self: &Arc<Self>, conn: u64, identity: &Identity, room: &str, text: &str) -> Answer {
        let limits = self.config.limits;
        let now = Instant::now();
        if identity.role != Role::Anonymous {
            let limited = lock(&self.users).get_mut(&conn).map(|u| u.bucket.take(now));
            if let Some(Err(wait)) = limited {
                let mut e = ChatError::new("rate_limited", "too many messages");
                e.retry_after = Some(wait);
                return Answer::Now(Err(e));
            }
        }
        let (m, hint) = {
            let mut rooms = lock(&self.rooms);
            let r = rooms
                .entry(room.to_string())
                .or_insert_with(|| Room::new(room));
            match r.accept(identity, text, &limits, now, now_ms()) {
                Ok(m) => (m, r.next_id()),
                Err(e) => return Answer::Now(Err(e)),
            }
        };
        self.metrics.messages_in.fetch_add(1, Ordering::Relaxed);
        // Numbered by the bus, which delivers it here and to the other nodes.
        let posted = self.bus.post(room, &m, hint, limits.history);
        let (core, room) = (self.clone(), room.to_string());
        Answer::Later(Box::pin(async move {
            let id = if let Ok(id) = posted.await {
                id
            } else {
                // The bus is down: the members here still get it.
                core.metrics.bus_errors.fetch_add(1, Ordering::Relaxed);
                core.metrics.bus_fallbacks.fetch_add(1, Ordering::Relaxed);
                let mut m = m;
                m.id = lock(&core.rooms)
                    .get(&room)
                    .map_or(hint, |r| r.next_id().max(hint));
                let id = m.id;
                core.deliver(&room, BusEvent::Message(m));
                id
            };
            Ok(ok(json!({"id": id})))
        }))
    }

    /// `timeout`, `ban` or `slow_mode` by `identity` in `room`: the change it made.
    fn moderate(
        &self,
        identity: &Identity,
        name: &str,
        room: &str,
        arg: &Value,
    ) -> Result<RoomChange, ChatError> {
        let user = arg.get("user").and_then(Value::as_str);
        let seconds = arg.get("seconds").and_then(Value::as_u64);
        let mut rooms = lock(&self.rooms);
        let r = rooms
            .get_mut(room)
            .ok_or_else(|| ChatError::new("not_found", "no such room"))?;
        match (name, user) {
            ("slow_mode", _) => {
                let s = seconds.unwrap_or(0).min(3600);
                r.set_slow_mode(identity, s)
                    .map(|()| RoomChange::SlowMode(s))
            }
            (_, None) => Err(ChatError::new("bad_request", "user is required")),
            ("ban", Some(user)) => r.ban(identity, user).map(|()| RoomChange::Ban(user.into())),
            (_, Some(user)) => {
                let s = seconds.unwrap_or(60).clamp(1, 7 * 24 * 3600);
                r.timeout(identity, user, s, Instant::now())
                    .map(|()| RoomChange::Timeout(user.into(), Duration::from_secs(s)))
            }
        }
    }

    fn handle(self: &Arc<Self>, socket: &Socket, name: &str, arg: &Value) -> Answer {
        let conn = socket.conn().id();
        let room = arg.get("room").and_then(Value::as_str).unwrap_or("");
        if !valid_room(room) {
            return Err(ChatError::new("bad_request", "a valid room is required")).into();
        }
        let (identity, joined, in_rooms) = {
            let users = lock(&self.users);
            let Some(u) = users.get(&conn) else {
                return Err(ChatError::new("unauthorized", "not connected")).into();
            };
            // A moderator's token may be for one room only.
            (
                u.identity.in_room(room),
                u.rooms.contains(room),
                u.rooms.len(),
            )
        };
        let limits = self.config.limits;
        let change = match name {
            "join" => {
                let history = || {
                    let h: Vec<Value> = lock(&self.rooms)
                        .get(room)
                        .map(|r| r.history().map(|m| m.to_json(room)).collect())
                        .unwrap_or_default();
                    h
                };
                if joined {
                    let count = self.members.count(room);
                    return Ok(ok(
                        json!({"room": room, "count": count, "history": history()}),
                    ))
                    .into();
                }
                if in_rooms >= limits.max_rooms {
                    return Err(ChatError::new("too_many_rooms", "too many rooms")).into();
                }
                let can = lock(&self.rooms)
                    .entry(room.to_string())
                    .or_insert_with(|| Room::new(room))
                    .can_join(&identity);
                if let Err(e) = can {
                    return Err(e).into();
                }
                return self.join(socket, &identity, room);
            }
            "leave" => {
                if joined {
                    self.leave_room(conn, room);
                }
                return Ok(ok(json!({"room": room}))).into();
            }
            _ if !joined => {
                return Err(ChatError::new("not_in_room", "join the room first")).into();
            }
            "message" => {
                let text = arg.get("text").and_then(Value::as_str).unwrap_or("");
                return self.post(conn, &identity, room, text);
            }
            "delete" => {
                let Some(id) = arg.get("id").and_then(Value::as_u64) else {
                    return Err(ChatError::new("bad_request", "id is required")).into();
                };
                let mut rooms = lock(&self.rooms);
                let Some(r) = rooms.get_mut(room) else {
                    return Err(ChatError::new("not_found", "no such room")).into();
                };
                if let Err(e) = r.delete(&identity, id) {
                    return Err(e).into();
                }
                RoomChange::Delete(id)
            }
            "timeout" | "ban" | "slow_mode" => match self.moderate(&identity, name, room, arg) {
                Ok(c) => c,
                Err(e) => return Err(e).into(),
            },
            _ => return Err(ChatError::new("bad_request", "unknown event")).into(),
        };
        self.changed(room, &change);
        self.publish(room, &BusEvent::Change(change));
        Ok(ok(json!({}))).into()
    }
}

fn refuse(code: &str, message: &str) -> Value {
    json!({"message": message, "data": {"code": code}})
}

impl App for ChatApp {
    fn has_namespace(&self, nsp: &str) -> bool {
        nsp == "/"
    }

    fn connect(&self, socket: &Socket, auth: Option<&Value>) -> Result<(), Value> {
        let core = &self.core;
        let token = auth.and_then(|a| a.get("token")).and_then(Value::as_str);
        let now_secs = now_ms() / 1000;
        let identity = match token {
            Some(t) => auth::verify(t, &core.config.jwt_secret, now_secs).map_err(|e| {
                core.metrics.refused.fetch_add(1, Ordering::Relaxed);
                match e {
                    TokenError::Expired => refuse("token_expired", "token expired"),
                    e => refuse("unauthorized", &e.to_string()),
                }
            })?,
            None if core.config.anonymous => Identity {
                id: format!("anon-{}", socket.conn().id()),
                name: "anonymous".into(),
                role: Role::Anonymous,
                room: None,
            },
            None => {
                core.metrics.refused.fetch_add(1, Ordering::Relaxed);
                return Err(refuse("unauthorized", "a token is required"));
            }
        };
        let ip = socket.conn().peer().ip();
        {
            let mut per_ip = lock(&core.per_ip);
            let n = per_ip.entry(ip).or_insert(0);
            if *n >= core.config.max_connections_per_ip {
                core.metrics.refused.fetch_add(1, Ordering::Relaxed);
                return Err(refuse(
                    "too_many_connections",
                    "too many connections from your address",
                ));
            }
            *n += 1;
        }
        let limits = core.config.limits;
        lock(&core.users).insert(
            socket.conn().id(),
            User {
                identity,
                bucket: TokenBucket::new(limits.rate_burst, limits.rate_window, Instant::now()),
                rooms: HashSet::new(),
                ip,
            },
        );
        Ok(())
    }

    fn connected(&self, _socket: &Socket, _auth: Option<&Value>) {}

    fn event(&self, socket: &Socket, p: Packet) {
        let Some(name) = p.event_name().map(str::to_string) else {
            return;
        };
        let arg = p
            .data
            .as_ref()
            .and_then(Value::as_array)
            .and_then(|a| a.get(1))
            .cloned()
            .unwrap_or(Value::Null);
        let answer = |r: Result<Value, ChatError>| r.unwrap_or_else(|e| e.to_json());
        match self.core.handle(socket, &name, &arg) {
            Answer::Now(r) => {
                if let Some(id) = p.id {
                    socket.ack(id, vec![answer(r)]);
                }
            }
            Answer::Later(fut) => {
                let socket = socket.clone();
                tokio::spawn(async move {
                    let r = fut.await;
                    if let Some(id) = p.id {
                        socket.ack(id, vec![answer(r)]);
                    }
                });
            }
        }
    }

    fn disconnect(&self, socket: &Socket, reason: &str) {
        let core = &self.core;
        *lock(&core.metrics.disconnects)
            .entry(reason.to_string())
            .or_insert(0) += 1;
        let Some(user) = lock(&core.users).remove(&socket.conn().id()) else {
            return;
        };
        {
            let mut per_ip = lock(&core.per_ip);
            if let Some(n) = per_ip.get_mut(&user.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    per_ip.remove(&user.ip);
                }
            }
        }
        for room in user.rooms {
            if core.members.leave(&room, socket.conn().id()) == 0 {
                core.bus.release(&room);
            }
            core.presence(&room);
        }
    }
}

impl std::fmt::Debug for ChatApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatApp")
            .field("node", &self.core.bus.node())
            .field("rooms", &self.core.members.rooms())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::presence_interval;
    use std::time::Duration;

    #[test]
    fn presence_slows_down_as_rooms_grow() {
        let secs = |n| presence_interval(n).as_secs();
        assert_eq!([secs(0), secs(4_999), secs(10_000)], [1, 1, 2]);
        assert_eq!([secs(100_000), secs(10_000_000)], [20, 30]);
        assert_eq!(presence_interval(usize::MAX), Duration::from_secs(30));
    }
}
