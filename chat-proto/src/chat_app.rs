//! The chat application on the server (feature `server`): `docs/chat-protocol.md` as an
//! [`App`]. Rooms live on this node (the buses for several nodes come next); a broadcast
//! is encoded once and pushed to every member's queue. Presence goes out at most once a
//! second per room.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use serde_json::{Value, json};

use crate::auth::{self, Identity, Role, TokenError};
use crate::chat::{ChatError, ChatLimits, Room, TokenBucket, valid_room};
use crate::fanout::Rooms;
use crate::server::{App, Conn, Socket};
use crate::socketio::Packet;

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
}

impl Default for ChatConfig {
    fn default() -> Self {
        ChatConfig {
            jwt_secret: Vec::new(),
            anonymous: false,
            limits: ChatLimits::default(),
            max_connections_per_ip: 100,
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
    /// Disconnects by reason (`transport close`, `ping timeout`, …).
    pub disconnects: Mutex<HashMap<String, u64>>,
}

impl ChatMetrics {
    /// Prometheus text for these counters.
    pub fn render(&self, connections: usize, rooms: usize) -> String {
        let mut s = format!(
            "# TYPE videopick_chat_connections gauge\nvideopick_chat_connections {connections}\n\
             # TYPE videopick_chat_rooms gauge\nvideopick_chat_rooms {rooms}\n\
             # TYPE videopick_chat_messages_in_total counter\nvideopick_chat_messages_in_total {}\n\
             # TYPE videopick_chat_messages_out_total counter\nvideopick_chat_messages_out_total {}\n\
             # TYPE videopick_chat_drops_total counter\nvideopick_chat_drops_total {}\n\
             # TYPE videopick_chat_refused_total counter\nvideopick_chat_refused_total {}\n\
             # TYPE videopick_chat_disconnects_total counter\n",
            self.messages_in.load(Ordering::Relaxed),
            self.messages_out.load(Ordering::Relaxed),
            self.drops.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        );
        for (reason, n) in lock(&self.disconnects).iter() {
            let _ = writeln!(
                s,
                "videopick_chat_disconnects_total{{reason=\"{reason}\"}} {n}"
            );
        }
        s
    }
}

/// Per room: when presence was last sent, and whether a send is scheduled.
type PresenceTimes = Mutex<HashMap<String, (Option<Instant>, bool)>>;

struct User {
    identity: Identity,
    bucket: TokenBucket,
    rooms: HashSet<String>,
    ip: IpAddr,
}

/// The chat [`App`].
pub struct ChatApp {
    config: ChatConfig,
    members: Arc<Rooms<Conn>>,
    /// Per room: when presence was last sent, and whether a send is scheduled.
    presence: Arc<PresenceTimes>,
    rooms: Mutex<HashMap<String, Room>>,
    users: Mutex<HashMap<u64, User>>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    metrics: Arc<ChatMetrics>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn ok(extra: Value) -> Value {
    let mut v = json!({"ok": true});
    if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
        o.extend(e);
    }
    v
}

impl ChatApp {
    /// The app with `config`.
    pub fn new(config: ChatConfig) -> ChatApp {
        ChatApp {
            config,
            members: Arc::new(Rooms::new()),
            presence: Arc::new(Mutex::new(HashMap::new())),
            rooms: Mutex::new(HashMap::new()),
            users: Mutex::new(HashMap::new()),
            per_ip: Mutex::new(HashMap::new()),
            metrics: Arc::new(ChatMetrics::default()),
        }
    }

    /// Counters.
    pub fn metrics(&self) -> &ChatMetrics {
        &self.metrics
    }

    /// Rooms with members on this node.
    pub fn room_count(&self) -> usize {
        self.members.rooms()
    }

    /// Encode `event` once and queue it for every member of `room`.
    fn broadcast(&self, room: &str, event: &str, payload: Value) {
        broadcast_to(&self.members, &self.metrics, room, event, payload);
    }

    /// The room's member count, at most once a second: a change inside the second is
    /// sent when the second is over (one update carries the latest count).
    fn presence(&self, room: &str) {
        const EVERY: Duration = Duration::from_secs(1);
        let now = Instant::now();
        let at = {
            let mut p = lock(&self.presence);
            let e = p.entry(room.to_string()).or_insert((None, false));
            if e.1 {
                return; // an update is already on its way
            }
            match e.0 {
                Some(last) if now < last + EVERY => {
                    e.1 = true;
                    last + EVERY
                }
                _ => {
                    e.0 = Some(now);
                    drop(p);
                    send_presence(&self.members, &self.metrics, &self.presence, room);
                    return;
                }
            }
        };
        let (members, metrics, presence, room) = (
            self.members.clone(),
            self.metrics.clone(),
            self.presence.clone(),
            room.to_string(),
        );
        tokio::spawn(async move {
            tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await;
            if let Some(e) = lock(&presence).get_mut(&room) {
                *e = (Some(Instant::now()), false);
            }
            send_presence(&members, &metrics, &presence, &room);
        });
    }

    fn leave_room(&self, conn: u64, room: &str) {
        self.members.leave(room, conn);
        if let Some(u) = lock(&self.users).get_mut(&conn) {
            u.rooms.remove(room);
        }
        self.presence(room);
    }

    #[allow(clippy::too_many_lines)] // the protocol's events in one dispatch, as documented
    fn handle(&self, socket: &Socket, name: &str, arg: &Value) -> Result<Value, ChatError> {
        let conn = socket.conn().id();
        let room = arg.get("room").and_then(Value::as_str).unwrap_or("");
        if !valid_room(room) {
            return Err(ChatError::new("bad_request", "a valid room is required"));
        }
        let (identity, joined, in_rooms) = {
            let users = lock(&self.users);
            let u = users
                .get(&conn)
                .ok_or_else(|| ChatError::new("unauthorized", "not connected"))?;
            (u.identity.clone(), u.rooms.contains(room), u.rooms.len())
        };
        let limits = self.config.limits;
        let now = Instant::now();
        match name {
            "join" => {
                if !joined {
                    if in_rooms >= limits.max_rooms {
                        return Err(ChatError::new("too_many_rooms", "too many rooms"));
                    }
                    lock(&self.rooms)
                        .entry(room.to_string())
                        .or_insert_with(|| Room::new(room))
                        .can_join(&identity)?;
                    self.members.join(room, conn, socket.conn().clone());
                    if let Some(u) = lock(&self.users).get_mut(&conn) {
                        u.rooms.insert(room.to_string());
                    }
                    self.presence(room);
                }
                let history: Vec<Value> = lock(&self.rooms)
                    .get(room)
                    .map(|r| r.history().map(|m| m.to_json(room)).collect())
                    .unwrap_or_default();
                Ok(ok(
                    json!({"room": room, "count": self.members.count(room), "history": history}),
                ))
            }
            "leave" => {
                if joined {
                    self.leave_room(conn, room);
                }
                Ok(ok(json!({"room": room})))
            }
            _ if !joined => Err(ChatError::new("not_in_room", "join the room first")),
            "message" => {
                let text = arg.get("text").and_then(Value::as_str).unwrap_or("");
                if identity.role != Role::Anonymous {
                    let limited = lock(&self.users).get_mut(&conn).map(|u| u.bucket.take(now));
                    if let Some(Err(wait)) = limited {
                        let mut e = ChatError::new("rate_limited", "too many messages");
                        e.retry_after = Some(wait);
                        return Err(e);
                    }
                }
                let m = lock(&self.rooms)
                    .entry(room.to_string())
                    .or_insert_with(|| Room::new(room))
                    .post(&identity, text, &limits, now, now_ms())?;
                self.metrics.messages_in.fetch_add(1, Ordering::Relaxed);
                self.broadcast(room, "message", m.to_json(room));
                Ok(ok(json!({"id": m.id})))
            }
            "delete" => {
                let id = arg
                    .get("id")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| ChatError::new("bad_request", "id is required"))?;
                lock(&self.rooms)
                    .get_mut(room)
                    .ok_or_else(|| ChatError::new("not_found", "no such room"))?
                    .delete(&identity, id)?;
                self.broadcast(room, "deleted", json!({"room": room, "id": id}));
                Ok(ok(json!({})))
            }
            "timeout" | "ban" => {
                let user = arg
                    .get("user")
                    .and_then(Value::as_str)
                    .ok_or_else(|| ChatError::new("bad_request", "user is required"))?;
                let seconds = arg.get("seconds").and_then(Value::as_u64).unwrap_or(60);
                {
                    let mut rooms = lock(&self.rooms);
                    let r = rooms
                        .get_mut(room)
                        .ok_or_else(|| ChatError::new("not_found", "no such room"))?;
                    if name == "ban" {
                        r.ban(&identity, user)?;
                    } else {
                        r.timeout(&identity, user, seconds, now)?;
                    }
                }
                let mut event = json!({"room": room, "action": name, "user": user});
                if name == "timeout" {
                    event["seconds"] = json!(seconds);
                }
                self.broadcast(room, "moderation", event);
                if name == "ban" {
                    // The banned user's connections leave the room.
                    let banned: Vec<u64> = lock(&self.users)
                        .iter()
                        .filter(|(_, u)| u.identity.id == user && u.rooms.contains(room))
                        .map(|(id, _)| *id)
                        .collect();
                    for c in banned {
                        self.leave_room(c, room);
                    }
                }
                Ok(ok(json!({})))
            }
            "slow_mode" => {
                let seconds = arg.get("seconds").and_then(Value::as_u64).unwrap_or(0);
                lock(&self.rooms)
                    .get_mut(room)
                    .ok_or_else(|| ChatError::new("not_found", "no such room"))?
                    .set_slow_mode(&identity, seconds)?;
                self.broadcast(
                    room,
                    "moderation",
                    json!({"room": room, "action": "slow_mode", "seconds": seconds}),
                );
                Ok(ok(json!({})))
            }
            _ => Err(ChatError::new("bad_request", "unknown event")),
        }
    }
}

fn broadcast_to(
    members: &Rooms<Conn>,
    metrics: &ChatMetrics,
    room: &str,
    event: &str,
    payload: Value,
) {
    let (text, _) = Packet::event("/", event, [payload]).encode();
    // Members whose queue overflows close themselves (their reaper disconnects them).
    let report = members.broadcast(room, &Bytes::from(text), None);
    metrics
        .messages_out
        .fetch_add(report.delivered as u64, Ordering::Relaxed);
    metrics
        .drops
        .fetch_add(report.dropped as u64, Ordering::Relaxed);
}

fn send_presence(
    members: &Rooms<Conn>,
    metrics: &ChatMetrics,
    presence: &PresenceTimes,
    room: &str,
) {
    let count = members.count(room);
    if count == 0 {
        lock(presence).remove(room);
        return;
    }
    broadcast_to(
        members,
        metrics,
        room,
        "presence",
        json!({"room": room, "count": count}),
    );
}

fn refuse(code: &str, message: &str) -> Value {
    json!({"message": message, "data": {"code": code}})
}

impl App for ChatApp {
    fn has_namespace(&self, nsp: &str) -> bool {
        nsp == "/"
    }

    fn connect(&self, socket: &Socket, auth: Option<&Value>) -> Result<(), Value> {
        let token = auth.and_then(|a| a.get("token")).and_then(Value::as_str);
        let now_secs = now_ms() / 1000;
        let identity = match token {
            Some(t) => auth::verify(t, &self.config.jwt_secret, now_secs).map_err(|e| {
                self.metrics.refused.fetch_add(1, Ordering::Relaxed);
                match e {
                    TokenError::Expired => refuse("token_expired", "token expired"),
                    e => refuse("unauthorized", &e.to_string()),
                }
            })?,
            None if self.config.anonymous => Identity {
                id: format!("anon-{}", socket.conn().id()),
                name: "anonymous".into(),
                role: Role::Anonymous,
            },
            None => {
                self.metrics.refused.fetch_add(1, Ordering::Relaxed);
                return Err(refuse("unauthorized", "a token is required"));
            }
        };
        let ip = socket.conn().peer().ip();
        {
            let mut per_ip = lock(&self.per_ip);
            let n = per_ip.entry(ip).or_insert(0);
            if *n >= self.config.max_connections_per_ip {
                self.metrics.refused.fetch_add(1, Ordering::Relaxed);
                return Err(refuse(
                    "too_many_connections",
                    "too many connections from your address",
                ));
            }
            *n += 1;
        }
        let limits = self.config.limits;
        lock(&self.users).insert(
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
        let answer = self
            .handle(socket, &name, &arg)
            .unwrap_or_else(|e| e.to_json());
        if let Some(id) = p.id {
            socket.ack(id, vec![answer]);
        }
    }

    fn disconnect(&self, socket: &Socket, reason: &str) {
        *lock(&self.metrics.disconnects)
            .entry(reason.to_string())
            .or_insert(0) += 1;
        let Some(user) = lock(&self.users).remove(&socket.conn().id()) else {
            return;
        };
        {
            let mut per_ip = lock(&self.per_ip);
            if let Some(n) = per_ip.get_mut(&user.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    per_ip.remove(&user.ip);
                }
            }
        }
        for room in user.rooms {
            self.members.leave(&room, socket.conn().id());
            self.presence(&room);
        }
    }
}

impl std::fmt::Debug for ChatApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatApp")
            .field("rooms", &self.members.rooms())
            .finish_non_exhaustive()
    }
}

/// The server side of the official Socket.IO v5 protocol test suite
/// (`docs/socket.io-protocol/v5-test-suite/test-suite.js` in the socket.io repository):
/// namespaces `/` and `/custom`; on connect the handshake's auth is emitted back as
/// `auth`; `message` is echoed as `message-back` (binary attachments too);
/// `message-with-ack` is acknowledged with its arguments. Run it with an
/// [`EngineConfig`](crate::session::EngineConfig) of 300 ms ping interval and 200 ms ping
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
