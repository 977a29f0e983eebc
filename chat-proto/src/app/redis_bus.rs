//! The Redis bus (feature `redis`): chat rooms spanning several nodes.
//!
//! - One Pub/Sub channel per room (`{prefix}:room:{room}`), subscribed only while this
//!   node has members in the room; every payload starts with the sending node's id, and
//!   a node drops its own echoes (except messages: see [`Bus::post`]).
//! - Messages are numbered, kept (the last N, a sorted set scored by id) and published by
//!   one Lua script, so ids and publication order agree; a node delivers a room's messages
//!   in the order Redis published them. A node passes the highest id it has seen, so ids
//!   keep rising after Redis lost its data (a restart without persistence).
//! - Presence: one key per node and room with a TTL, refreshed by a heartbeat, summed by a
//!   Lua script; a node that dies stops counting when its keys expire.
//! - Bans, timeouts and slow mode are stored, so a node that starts serving a room applies
//!   them.
//! - Redis down: operations fail at once (the chat serves this node's members alone),
//!   `videopick_chat_bus_up` drops to 0, and a supervisor reconnects with backoff
//!   (100 ms doubling to 5 s) and resubscribes. Nothing is buffered for Redis meanwhile.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use tokio::sync::{mpsc, oneshot};

use crate::app::bus::{
    Bus, BusError, BusEvent, BusFuture, Inbound, SharedRoom, decode_payload, decode_record,
    encode_payload, lock, record_body,
};
use crate::app::rules::{ChatMessage, RoomChange};

/// Redis bus settings.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://host:port/db`.
    pub url: String,
    /// Prefix of every key and channel (nodes of one chat share it).
    pub prefix: String,
    /// This node's id; empty: a random one.
    pub node: String,
    /// Lifetime of a node's presence keys (refreshed every third of it).
    pub presence_ttl: Duration,
    /// Longest wait for a Redis answer.
    pub timeout: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".into(),
            prefix: "videopick:chat".into(),
            node: String::new(),
            presence_ttl: Duration::from_secs(15),
            timeout: Duration::from_secs(1),
        }
    }
}

/// Numbers, keeps and publishes a message. KEYS: sequence, history. ARGV: hint, keep,
/// body, channel, node, ttl seconds.
const POST: &str = r"
local id = redis.call('INCR', KEYS[1])
local hint = tonumber(ARGV[1])
if id < hint then
  id = hint
  redis.call('SET', KEYS[1], id)
end
local rec = id .. '\n' .. ARGV[3]
redis.call('ZADD', KEYS[2], id, rec)
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[2]) + 1))
redis.call('EXPIRE', KEYS[1], ARGV[6])
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('PUBLISH', ARGV[4], ARGV[5] .. '\nm\n' .. rec)
return id
";

/// Sets this node's count and sums the live ones. KEYS: the room's node set. ARGV: count
/// key prefix (node follows), node, count, ttl seconds.
const PRESENCE: &str = r"
local mine = ARGV[1] .. ARGV[2]
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', mine, ARGV[3], 'EX', ARGV[4])
  redis.call('SADD', KEYS[1], ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[4] * 4)
else
  redis.call('DEL', mine)
  redis.call('SREM', KEYS[1], ARGV[2])
end
local total = 0
for _, node in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local n = redis.call('GET', ARGV[1] .. node)
  if n then total = total + tonumber(n) else redis.call('SREM', KEYS[1], node) end
end
return total
";

/// How long a room's stored state lives without use.
const KEEP_SECS: i64 = 7 * 24 * 3600;
/// Sequencer lanes (a room always uses the same one, so its messages stay in order).
const LANES: usize = 4;

#[derive(Debug, Default)]
struct Metrics {
    reconnects: AtomicU64,
    errors: AtomicU64,
    published: AtomicU64,
    received: AtomicU64,
    echoes: AtomicU64,
}

struct Shared {
    config: RedisConfig,
    node: String,
    client: redis::Client,
    post: redis::Script,
    presence: redis::Script,
    inbound: OnceLock<Weak<dyn Inbound>>,
    /// The command connection while Redis is up.
    conn: Mutex<Option<MultiplexedConnection>>,
    up: AtomicBool,
    /// Rooms with members here (subscribed while Redis is up).
    rooms: Mutex<HashSet<String>>,
    /// Last count across nodes per room, to tell members when it changes.
    totals: Mutex<HashMap<String, usize>>,
    /// Wakes the heartbeat early (after a reconnect: Redis may have lost the counts).
    beat: tokio::sync::Notify,
    metrics: Metrics,
}

enum Ctl {
    Subscribe(
        String,
        oneshot::Sender<Result<Option<SharedRoom>, BusError>>,
    ),
    Release(String),
}

struct PostReq {
    room: String,
    body: String,
    hint: u64,
    keep: usize,
    reply: oneshot::Sender<Result<u64, BusError>>,
}

/// The Redis bus; see the module docs.
pub struct RedisBus {
    shared: Arc<Shared>,
    ctl: mpsc::Sender<Ctl>,
    lanes: Vec<mpsc::Sender<PostReq>>,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("node", &self.shared.node)
            .field("up", &self.shared.up.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn down(e: impl std::fmt::Display) -> BusError {
    BusError::Down(e.to_string())
}

fn random_node() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    std::process::id().hash(&mut h);
    SystemTime::now().hash(&mut h);
    format!("{:016x}", h.finish())
}

impl RedisBus {
    /// A bus on `config.url`, its supervisor, sequencer lanes and heartbeat started on the
    /// current tokio runtime. Redis need not be up: the bus connects when it can.
    pub fn start(mut config: RedisConfig) -> Result<RedisBus, BusError> {
        let client = redis::Client::open(config.url.as_str()).map_err(down)?;
        if config.node.is_empty() {
            config.node = random_node();
        }
        if !config
            .node
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(BusError::Down(
                "a node id is letters, digits, - and _".into(),
            ));
        }
        let shared = Arc::new(Shared {
            node: config.node.clone(),
            config,
            client,
            post: redis::Script::new(POST),
            presence: redis::Script::new(PRESENCE),
            inbound: OnceLock::new(),
            conn: Mutex::new(None),
            up: AtomicBool::new(false),
            rooms: Mutex::new(HashSet::new()),
            totals: Mutex::new(HashMap::new()),
            beat: tokio::sync::Notify::new(),
            metrics: Metrics::default(),
        });
        let (ctl, ctl_rx) = mpsc::channel(4096);
        tokio::spawn(supervise(shared.clone(), ctl_rx));
        let mut lanes = Vec::new();
        for _ in 0..LANES {
            let (tx, rx) = mpsc::channel(4096);
            tokio::spawn(sequence(shared.clone(), rx));
            lanes.push(tx);
        }
        tokio::spawn(heartbeat(shared.clone()));
        Ok(RedisBus { shared, ctl, lanes })
    }

    /// Whether Redis is reachable now.
    pub fn is_up(&self) -> bool {
        self.shared.up.load(Ordering::Relaxed)
    }
}

impl Shared {
    fn key(&self, kind: &str, room: &str) -> String {
        format!("{}:{kind}:{room}", self.config.prefix)
    }

    fn channel(&self, room: &str) -> String {
        self.key("room", room)
    }

    fn conn(&self) -> Result<MultiplexedConnection, BusError> {
        lock(&self.conn)
            .clone()
            .ok_or_else(|| BusError::Down("redis is not connected".into()))
    }

    fn inbound(&self) -> Option<Arc<dyn Inbound>> {
        self.inbound.get().and_then(Weak::upgrade)
    }

    fn local_count(&self, room: &str) -> usize {
        self.inbound().map_or(0, |i| i.local_count(room))
    }

    fn failed<T>(&self, e: impl std::fmt::Display) -> Result<T, BusError> {
        self.metrics.errors.fetch_add(1, Ordering::Relaxed);
        Err(down(e))
    }

    /// One Pub/Sub message: `node \n kind \n rest`.
    fn on_message(&self, channel: &str, payload: &[u8]) {
        let Some(room) = channel
            .strip_prefix(self.config.prefix.as_str())
            .and_then(|c| c.strip_prefix(":room:"))
        else {
            return;
        };
        let Some((node, event)) = decode_payload(payload) else {
            return;
        };
        self.metrics.received.fetch_add(1, Ordering::Relaxed);
        // Messages come back to their own node too: that is how it delivers them.
        if node == self.node && !matches!(event, BusEvent::Message(_)) {
            self.metrics.echoes.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if let BusEvent::Presence(n) = event {
            lock(&self.totals).insert(room.to_string(), n);
        }
        if let Some(i) = self.inbound() {
            i.deliver(room, event);
        }
    }

    async fn presence(&self, room: &str, local: usize) -> Result<usize, BusError> {
        let mut conn = self.conn()?;
        let counts = format!("{}:count:", self.config.prefix);
        let total: Result<u64, _> = self
            .presence
            .key(self.key("nodes", room))
            .arg(counts)
            .arg(format!("{}:{room}", self.node))
            .arg(local)
            .arg(self.config.presence_ttl.as_secs().max(1))
            .invoke_async(&mut conn)
            .await;
        match total {
            Ok(n) => {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                lock(&self.totals).insert(room.to_string(), n);
                Ok(n)
            }
            Err(e) => self.failed(e),
        }
    }

    /// Store a moderation change and tell the other nodes about `event`.
    async fn publish(&self, room: &str, event: &BusEvent) -> Result<(), BusError> {
        let mut conn = self.conn()?;
        let mut pipe = redis::pipe();
        match event {
            BusEvent::Change(RoomChange::Ban(user)) => {
                pipe.sadd(self.key("bans", room), user).ignore();
                pipe.expire(self.key("bans", room), KEEP_SECS).ignore();
            }
            BusEvent::Change(RoomChange::Timeout(user, left)) => {
                let until = unix_ms() + u64::try_from(left.as_millis()).unwrap_or(0);
                pipe.hset(self.key("timeouts", room), user, until).ignore();
                pipe.expire(self.key("timeouts", room), KEEP_SECS).ignore();
            }
            BusEvent::Change(RoomChange::SlowMode(s)) => {
                pipe.set_ex(self.key("slow", room), s, KEEP_SECS.unsigned_abs())
                    .ignore();
            }
            BusEvent::Change(RoomChange::Delete(id)) => {
                pipe.zrembyscore(self.key("hist", room), id, id).ignore();
            }
            BusEvent::Presence(_) | BusEvent::Message(_) => {}
        }
        let payload = encode_payload(&self.node, event);
        pipe.publish(self.channel(room), payload).ignore();
        match pipe.query_async::<()>(&mut conn).await {
            Ok(()) => {
                self.metrics.published.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => self.failed(e),
        }
    }

    /// Bans, running timeouts and slow mode of `room` in Redis.
    async fn load_room(&self, room: &str) -> Result<SharedRoom, BusError> {
        let mut conn = self.conn()?;
        let (bans, timeouts, slow): (Vec<String>, HashMap<String, u64>, Option<u64>) =
            match redis::pipe()
                .smembers(self.key("bans", room))
                .hgetall(self.key("timeouts", room))
                .get(self.key("slow", room))
                .query_async(&mut conn)
                .await
            {
                Ok(v) => v,
                Err(e) => return self.failed(e),
            };
        let now = unix_ms();
        let mut changes: Vec<RoomChange> = bans.into_iter().map(RoomChange::Ban).collect();
        for (user, until) in timeouts {
            if until > now {
                changes.push(RoomChange::Timeout(
                    user,
                    Duration::from_millis(until - now),
                ));
            }
        }
        if let Some(s) = slow.filter(|s| *s > 0) {
            changes.push(RoomChange::SlowMode(s));
        }
        Ok(SharedRoom { changes })
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

type Connected = (
    MultiplexedConnection,
    redis::aio::PubSubSink,
    redis::aio::PubSubStream,
);

/// A command connection and a Pub/Sub connection, the rooms with members here subscribed.
async fn connect(shared: &Shared) -> Result<Connected, redis::RedisError> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(shared.config.timeout))
        .set_response_timeout(Some(shared.config.timeout));
    let cmd = shared
        .client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let pubsub = tokio::time::timeout(shared.config.timeout, shared.client.get_async_pubsub())
        .await
        .map_err(|_| {
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut))
        })??;
    let (mut sink, stream) = pubsub.split();
    // Resubscribe the rooms that still have members here.
    let rooms: Vec<String> = lock(&shared.rooms).iter().cloned().collect();
    for room in rooms {
        if shared.local_count(&room) > 0 {
            sink.subscribe(shared.channel(&room)).await?;
        } else {
            lock(&shared.rooms).remove(&room);
        }
    }
    Ok((cmd, sink, stream))
}

/// While Redis is away: answer the chat for `backoff`; false once the bus is gone.
async fn wait_down(shared: &Shared, ctl: &mut mpsc::Receiver<Ctl>, backoff: Duration) -> bool {
    let until = tokio::time::Instant::now() + backoff;
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(until) => return true,
            c = ctl.recv() => match c {
                None => return false,
                Some(Ctl::Subscribe(room, reply)) => {
                    lock(&shared.rooms).insert(room);
                    let _ = reply.send(Err(BusError::Down("redis is not connected".into())));
                }
                Some(Ctl::Release(room)) => {
                    if shared.local_count(&room) == 0 {
                        lock(&shared.rooms).remove(&room);
                    }
                }
            },
        }
    }
}

/// Connects, subscribes, relays Pub/Sub messages, reconnects.
async fn supervise(shared: Arc<Shared>, mut ctl: mpsc::Receiver<Ctl>) {
    let mut backoff = Duration::from_millis(100);
    let mut ever = false;
    let mut logged_down = false;
    loop {
        let (cmd, mut sink, mut stream) = match connect(&shared).await {
            Ok(c) => c,
            Err(e) => {
                if !logged_down {
                    // The URL is not logged: it may carry a password.
                    tracing::warn!(error = %e, "chat bus: redis unreachable; serving local members, retrying");
                    logged_down = true;
                }
                // Keep answering the chat while waiting to retry.
                if !wait_down(&shared, &mut ctl, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        *lock(&shared.conn) = Some(cmd);
        shared.up.store(true, Ordering::Relaxed);
        shared.beat.notify_one();
        if ever {
            shared.metrics.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        tracing::info!(node = %shared.node, "chat bus: connected to redis");
        ever = true;
        backoff = Duration::from_millis(100);
        let reason = loop {
            tokio::select! {
                m = stream.next() => match m {
                    Some(m) => shared.on_message(m.get_channel_name(), m.get_payload_bytes()),
                    None => break "connection lost".to_string(),
                },
                c = ctl.recv() => match c {
                    None => return,
                    Some(Ctl::Subscribe(room, reply)) => {
                        if lock(&shared.rooms).contains(&room) {
                            let _ = reply.send(Ok(None));
                            continue;
                        }
                        if let Err(e) = sink.subscribe(shared.channel(&room)).await {
                            lock(&shared.rooms).insert(room);
                            let _ = reply.send(shared.failed(&e));
                            break e.to_string();
                        }
                        lock(&shared.rooms).insert(room.clone());
                        let _ = reply.send(shared.load_room(&room).await.map(Some));
                    }
                    Some(Ctl::Release(room)) => {
                        if shared.local_count(&room) == 0 && lock(&shared.rooms).remove(&room) {
                            lock(&shared.totals).remove(&room);
                            if let Err(e) = sink.unsubscribe(shared.channel(&room)).await {
                                break e.to_string();
                            }
                        }
                    }
                },
            }
        };
        shared.up.store(false, Ordering::Relaxed);
        *lock(&shared.conn) = None;
        tracing::warn!(%reason, "chat bus: lost redis; serving local members, reconnecting");
        logged_down = true;
    }
}

/// Posts one lane's messages in order.
async fn sequence(shared: Arc<Shared>, mut rx: mpsc::Receiver<PostReq>) {
    while let Some(req) = rx.recv().await {
        let result = match shared.conn() {
            Err(e) => Err(e),
            Ok(mut conn) => {
                let r: Result<u64, _> = shared
                    .post
                    .key(shared.key("seq", &req.room))
                    .key(shared.key("hist", &req.room))
                    .arg(req.hint)
                    .arg(req.keep.max(1))
                    .arg(&req.body)
                    .arg(shared.channel(&req.room))
                    .arg(&shared.node)
                    .arg(KEEP_SECS)
                    .invoke_async(&mut conn)
                    .await;
                match r {
                    Ok(id) => {
                        shared.metrics.published.fetch_add(1, Ordering::Relaxed);
                        Ok(id)
                    }
                    Err(e) => shared.failed(e),
                }
            }
        };
        let _ = req.reply.send(result);
    }
}

/// Refreshes this node's presence keys and tells members when a room's count changed
/// (another node came or went).
async fn heartbeat(s: Arc<Shared>) {
    let every = (s.config.presence_ttl / 3).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = s.beat.notified() => {}
        }
        if Arc::strong_count(&s) == 1 {
            return; // the bus is gone
        }
        if !s.up.load(Ordering::Relaxed) {
            continue;
        }
        let rooms: Vec<String> = lock(&s.rooms).iter().cloned().collect();
        for room in rooms {
            let local = s.local_count(&room);
            let before = lock(&s.totals).get(&room).copied();
            let Ok(total) = s.presence(&room, local).await else {
                continue;
            };
            if before != Some(total) && local > 0 {
                // Members here and on the other nodes learn the new count.
                if let Some(i) = s.inbound() {
                    i.deliver(&room, BusEvent::Presence(total));
                }
                let _ = s.publish(&room, &BusEvent::Presence(total)).await;
            }
        }
    }
}

impl RedisBus {
    /// The answer a supervisor or lane task sends back, within twice the Redis timeout;
    /// `queued` false: the request could not even be queued.
    fn answer<T: Send + 'static>(
        &self,
        queued: bool,
        rx: oneshot::Receiver<Result<T, BusError>>,
    ) -> BusFuture<T> {
        if !queued {
            return Box::pin(std::future::ready(Err(BusError::Down("bus busy".into()))));
        }
        let timeout = self.shared.config.timeout * 2;
        Box::pin(async move {
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(r)) => r,
                _ => Err(BusError::Down("no answer from the bus".into())),
            }
        })
    }
}

impl Bus for RedisBus {
    fn node(&self) -> &str {
        &self.shared.node
    }

    fn start(&self, inbound: Weak<dyn Inbound>) {
        let _ = self.shared.inbound.set(inbound);
    }

    fn subscribe(&self, room: &str) -> BusFuture<Option<SharedRoom>> {
        let (tx, rx) = oneshot::channel();
        let sent = self.ctl.try_send(Ctl::Subscribe(room.to_string(), tx));
        self.answer(sent.is_ok(), rx)
    }

    fn release(&self, room: &str) {
        let _ = self.ctl.try_send(Ctl::Release(room.to_string()));
    }

    fn post(&self, room: &str, message: &ChatMessage, hint: u64, keep: usize) -> BusFuture<u64> {
        let (tx, rx) = oneshot::channel();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        room.hash(&mut h);
        #[allow(clippy::cast_possible_truncation)] // modulo a small number
        let lane = &self.lanes[(h.finish() % LANES as u64) as usize];
        let req = PostReq {
            room: room.to_string(),
            // The script puts the id in front: `id \n json`.
            body: record_body(message),
            hint,
            keep,
            reply: tx,
        };
        let sent = lane.try_send(req);
        self.answer(sent.is_ok(), rx)
    }

    fn publish(&self, room: &str, event: &BusEvent) -> BusFuture<()> {
        let shared = self.shared.clone();
        let room = room.to_string();
        let event = event.clone();
        Box::pin(async move { shared.publish(&room, &event).await })
    }

    fn history(&self, room: &str, n: usize) -> BusFuture<Option<Vec<ChatMessage>>> {
        let shared = self.shared.clone();
        let key = shared.key("hist", room);
        Box::pin(async move {
            if n == 0 {
                return Ok(Some(Vec::new()));
            }
            let mut conn = shared.conn()?;
            let start = -isize::try_from(n).unwrap_or(isize::MAX);
            let recs: Vec<String> = match redis::cmd("ZRANGE")
                .arg(&key)
                .arg(start)
                .arg(-1)
                .query_async(&mut conn)
                .await
            {
                Ok(r) => r,
                Err(e) => return shared.failed(e),
            };
            Ok(Some(recs.iter().filter_map(|r| decode_record(r)).collect()))
        })
    }

    fn presence(&self, room: &str, local: usize) -> BusFuture<usize> {
        let shared = self.shared.clone();
        let room = room.to_string();
        Box::pin(async move { shared.presence(&room, local).await })
    }

    fn metrics(&self) -> Option<crate::app::bus::BusMetrics> {
        let m = &self.shared.metrics;
        Some(crate::app::bus::BusMetrics {
            up: self.shared.up.load(Ordering::Relaxed),
            subscriptions: lock(&self.shared.rooms).len() as u64,
            reconnects: m.reconnects.load(Ordering::Relaxed),
            errors: m.errors.load(Ordering::Relaxed),
            published: m.published.load(Ordering::Relaxed),
            received: m.received.load(Ordering::Relaxed),
            echoes_dropped: m.echoes.load(Ordering::Relaxed),
        })
    }
}
