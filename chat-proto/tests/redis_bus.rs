//! `RedisBus` against the machine's Redis (127.0.0.1:6379), each test under its own key
//! prefix: a room's channel is subscribed only while the node has members in it, a node
//! drops its own echoes, messages are numbered once for all nodes and kept as history,
//! presence sums live nodes and forgets a dead one when its keys expire, and with Redis
//! unreachable every operation fails at once instead of queueing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use videopick_chat_proto::app::auth::{Identity, Role};
use videopick_chat_proto::app::bus::{Bus, BusError, BusEvent, Inbound};
use videopick_chat_proto::app::redis_bus::{RedisBus, RedisConfig};
use videopick_chat_proto::app::rules::{ChatMessage, RoomChange};

#[derive(Default)]
struct Node {
    events: Mutex<Vec<(String, BusEvent)>>,
    counts: Mutex<HashMap<String, usize>>,
}

impl Inbound for Node {
    fn deliver(&self, room: &str, event: BusEvent) {
        self.events.lock().unwrap().push((room.to_string(), event));
    }
    fn local_count(&self, room: &str) -> usize {
        self.counts.lock().unwrap().get(room).copied().unwrap_or(0)
    }
}

impl Node {
    fn set(&self, room: &str, n: usize) {
        self.counts.lock().unwrap().insert(room.to_string(), n);
    }
    fn take(&self) -> Vec<(String, BusEvent)> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }
}

fn prefix(test: &str) -> String {
    format!(
        "test:{test}:{}:{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

async fn node(prefix: &str, id: &str, url: &str) -> (RedisBus, Arc<Node>) {
    let bus = RedisBus::start(RedisConfig {
        url: url.into(),
        prefix: prefix.into(),
        node: id.into(),
        presence_ttl: Duration::from_millis(1500),
        timeout: Duration::from_millis(500),
    })
    .unwrap();
    let n = Arc::new(Node::default());
    let inbound: Arc<dyn Inbound> = n.clone();
    bus.start(Arc::downgrade(&inbound) as Weak<dyn Inbound>);
    // Keep the node alive as long as the test holds it.
    std::mem::forget(inbound);
    let t = Instant::now();
    while !bus.is_up() {
        assert!(t.elapsed() < Duration::from_secs(5), "redis on {url} is up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (bus, n)
}

async fn subscribers(prefix: &str, room: &str) -> u64 {
    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let (_, n): (String, u64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(format!("{prefix}:room:{room}"))
        .query_async(&mut c)
        .await
        .unwrap();
    n
}

async fn eventually<F: Fn() -> bool>(what: &str, f: F) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < Duration::from_secs(5), "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn message(text: &str) -> ChatMessage {
    ChatMessage {
        id: 0,
        user: Identity {
            id: "u1".into(),
            name: "Ann".into(),
            role: Role::Viewer,
            room: None,
        },
        text: text.into(),
        ts: 1_800_000_000_000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_subscribed_only_while_members_are_here_and_echoes_are_dropped() {
    let p = prefix("subs");
    let url = "redis://127.0.0.1:6379";
    let (a, na) = node(&p, "a", url).await;
    let (b, nb) = node(&p, "b", url).await;
    assert_eq!(subscribers(&p, "r").await, 0);

    na.set("r", 1);
    let shared = a.subscribe("r").await.unwrap();
    assert_eq!(shared.map(|s| s.changes), Some(vec![]), "first time: state");
    assert_eq!(a.subscribe("r").await, Ok(None), "already subscribed");
    assert_eq!(subscribers(&p, "r").await, 1, "only node a");

    // b has no members in r: it receives nothing of it; a drops its own echo.
    let ban = BusEvent::Change(RoomChange::Ban("bob".into()));
    a.publish("r", &ban).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(na.take().is_empty() && nb.take().is_empty());

    // Once b has a member it receives a's events, and the stored ban.
    nb.set("r", 2);
    let shared = b.subscribe("r").await.unwrap().unwrap();
    assert_eq!(shared.changes, vec![RoomChange::Ban("bob".into())]);
    let slow = BusEvent::Change(RoomChange::SlowMode(7));
    a.publish("r", &slow).await.unwrap();
    eventually("b got slow mode", || {
        nb.events
            .lock()
            .unwrap()
            .contains(&("r".into(), slow.clone()))
    })
    .await;
    assert!(na.take().is_empty(), "no echo");

    // Messages: numbered once, delivered to both nodes (the sender's too), kept.
    let mut ids = Vec::new();
    for i in 0..5 {
        let bus = if i % 2 == 0 { &a } else { &b };
        ids.push(
            bus.post("r", &message(&format!("m{i}")), 1, 3)
                .await
                .unwrap(),
        );
    }
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    let texts = |n: &Node| {
        n.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, e)| match e {
                BusEvent::Message(m) => Some((m.id, m.text.clone())),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    eventually("both nodes got 5 messages", || {
        texts(&na).len() == 5 && texts(&nb).len() == 5
    })
    .await;
    assert_eq!(texts(&na), texts(&nb));
    assert_eq!(texts(&na)[4], (5, "m4".to_string()));
    let history = a.history("r", 10).await.unwrap().unwrap();
    let kept: Vec<u64> = history.iter().map(|m| m.id).collect();
    assert_eq!(kept, [3, 4, 5], "capped at the last 3");
    assert_eq!(history[2].user.name, "Ann");
    // A hint above the sequence (Redis lost it, or ids given while it was down) wins.
    assert_eq!(b.post("r", &message("x"), 100, 3).await, Ok(100));
    assert_eq!(a.post("r", &message("y"), 1, 3).await, Ok(101));
    // A delete removes it from the history.
    a.publish("r", &BusEvent::Change(RoomChange::Delete(100)))
        .await
        .unwrap();
    let kept: Vec<u64> = a
        .history("r", 10)
        .await
        .unwrap()
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(kept, [5, 101], "the last 3 were 5, 100, 101");

    // a's last member leaves: a unsubscribes.
    na.set("r", 0);
    a.release("r");
    eventually_async(|| async { subscribers(&p, "r").await == 1 }).await;
}

async fn eventually_async<F, Fut>(f: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t = Instant::now();
    while !f().await {
        assert!(t.elapsed() < Duration::from_secs(5), "condition never held");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_sums_live_nodes_and_forgets_a_dead_one() {
    let p = prefix("presence");
    let url = "redis://127.0.0.1:6379";
    let (a, na) = node(&p, "a", url).await;
    na.set("r", 3);
    a.subscribe("r").await.unwrap();
    assert_eq!(a.presence("r", 3).await, Ok(3));
    {
        let (b, nb) = node(&p, "b", url).await;
        nb.set("r", 2);
        b.subscribe("r").await.unwrap();
        assert_eq!(b.presence("r", 2).await, Ok(5));
        assert_eq!(a.presence("r", 3).await, Ok(5));
        // b dies without a word (dropped: its heartbeat stops).
    }
    // Its key lives out its TTL (1.5 s); then a's heartbeat (every 0.5 s) sees 3 and
    // tells its members.
    let t = Instant::now();
    eventually("a's members were told the count fell to 3", || {
        na.events
            .lock()
            .unwrap()
            .iter()
            .any(|(_, e)| *e == BusEvent::Presence(3))
    })
    .await;
    assert!(
        t.elapsed() > Duration::from_millis(500),
        "not before its TTL"
    );
    assert_eq!(a.presence("r", 3).await, Ok(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_unreachable_everything_fails_fast() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bus = RedisBus::start(RedisConfig {
        url: format!("redis://127.0.0.1:{port}"),
        prefix: prefix("down"),
        node: "d".into(),
        ..RedisConfig::default()
    })
    .unwrap();
    let n = Arc::new(Node::default());
    let inbound: Arc<dyn Inbound> = n.clone();
    bus.start(Arc::downgrade(&inbound));
    n.set("r", 1);
    let t = Instant::now();
    assert!(matches!(bus.subscribe("r").await, Err(BusError::Down(_))));
    assert!(matches!(
        bus.post("r", &message("m"), 1, 10).await,
        Err(BusError::Down(_))
    ));
    assert!(matches!(bus.history("r", 10).await, Err(BusError::Down(_))));
    assert!(matches!(bus.presence("r", 1).await, Err(BusError::Down(_))));
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(!bus.is_up());
    assert!(!bus.metrics().expect("the redis bus reports").up);
    assert!(
        RedisBus::start(RedisConfig {
            node: "bad id".into(),
            ..RedisConfig::default()
        })
        .is_err()
    );
}
