//! The chat application's rules, sans-IO with injected time (see `docs/chat-protocol.md`):
//! room names, message validation, per-room message ids and history, moderation (delete,
//! timeout, ban, slow mode), the per-user token bucket, and the stable error codes.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::app::auth::{Identity, Role};

/// Chat limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatLimits {
    /// Longest message, in characters.
    pub max_len: usize,
    /// Messages a user may send in a burst.
    pub rate_burst: u32,
    /// The window the burst refills over.
    pub rate_window: Duration,
    /// Rooms one connection may be in.
    pub max_rooms: usize,
    /// Messages kept per room for history on join.
    pub history: usize,
}

impl Default for ChatLimits {
    fn default() -> Self {
        ChatLimits {
            max_len: 500,
            rate_burst: 20,
            rate_window: Duration::from_secs(30),
            max_rooms: 10,
            history: 50,
        }
    }
}

/// An error answered in an ack: `{ok: false, error: {code, message, retry_after?}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatError {
    /// Stable code (`rate_limited`, `forbidden`, …).
    pub code: &'static str,
    /// Human-readable text.
    pub message: String,
    /// When trying again can succeed.
    pub retry_after: Option<Duration>,
}

impl ChatError {
    /// An error with `code` and `message`.
    pub fn new(code: &'static str, message: impl Into<String>) -> ChatError {
        ChatError {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    fn retry(mut self, after: Duration) -> ChatError {
        self.retry_after = Some(after);
        self
    }

    /// The ack payload.
    pub fn to_json(&self) -> Value {
        let mut e = json!({"code": self.code, "message": self.message});
        if let Some(r) = self.retry_after {
            e["retry_after"] = json!(r.as_secs_f64().ceil());
        }
        json!({"ok": false, "error": e})
    }
}

/// Room names: 1–64 of letters, digits, `-`, `_`, `.`, `:`.
pub fn valid_room(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// A token bucket: `burst` tokens refilled evenly over `window`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    burst: f64,
    per_sec: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(burst: u32, window: Duration, now: Instant) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            burst,
            per_sec: burst / window.as_secs_f64().max(0.001),
            tokens: burst,
            last: now,
        }
    }

    /// Take a token, or say how long until one is there.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + dt * self.per_sec).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec))
        }
    }
}

/// A message as stored and broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// Its id in the room (1, 2, 3, …).
    pub id: u64,
    /// The sender.
    pub user: Identity,
    /// The text.
    pub text: String,
    /// Unix milliseconds.
    pub ts: u64,
}

impl ChatMessage {
    /// Read back a [`to_json`](Self::to_json) payload (as relayed between nodes).
    pub fn from_json(v: &Value) -> Option<ChatMessage> {
        let user = v.get("user")?;
        Some(ChatMessage {
            id: v.get("id")?.as_u64()?,
            user: Identity {
                id: user.get("id")?.as_str()?.to_string(),
                name: user.get("name")?.as_str()?.to_string(),
                role: Role::parse(user.get("role")?.as_str()?)?,
                room: None,
            },
            text: v.get("text")?.as_str()?.to_string(),
            ts: v.get("ts")?.as_u64()?,
        })
    }

    /// The `message` event payload.
    pub fn to_json(&self, room: &str) -> Value {
        json!({
            "room": room,
            "id": self.id,
            "user": {"id": self.user.id, "name": self.user.name, "role": self.user.role.as_str()},
            "text": self.text,
            "ts": self.ts,
        })
    }
}

/// A moderation change to a room's state, as [`Room::apply`] takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomChange {
    /// The user may not join or post.
    Ban(String),
    /// The user may not post for this long.
    Timeout(String, Duration),
    /// Slow mode, in seconds (0: off).
    SlowMode(u64),
    /// The message with this id is gone.
    Delete(u64),
}

/// One room's state on a node.
#[derive(Debug)]
pub struct Room {
    name: String,
    next_id: u64,
    history: VecDeque<ChatMessage>,
    slow_mode: Option<Duration>,
    last_post: HashMap<String, Instant>,
    timeouts: HashMap<String, Instant>,
    bans: HashSet<String>,
}

fn moderator(by: &Identity) -> Result<(), ChatError> {
    if by.role.moderates() {
        Ok(())
    } else {
        Err(ChatError::new("forbidden", "only moderators can do that"))
    }
}

impl Room {
    /// An empty room.
    pub fn new(name: impl Into<String>) -> Room {
        Room {
            name: name.into(),
            next_id: 1,
            history: VecDeque::new(),
            slow_mode: None,
            last_post: HashMap::new(),
            timeouts: HashMap::new(),
            bans: HashSet::new(),
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// May `user` join?
    pub fn can_join(&self, user: &Identity) -> Result<(), ChatError> {
        if self.bans.contains(&user.id) {
            return Err(ChatError::new("banned", "you are banned from this room"));
        }
        Ok(())
    }

    /// Validate and record a message from `user` (rate limiting is the caller's bucket).
    pub fn post(
        &mut self,
        user: &Identity,
        text: &str,
        limits: &ChatLimits,
        now: Instant,
        now_ms: u64,
    ) -> Result<ChatMessage, ChatError> {
        let mut m = self.accept(user, text, limits, now, now_ms)?;
        m.id = self.next_id;
        self.remember(m.clone(), limits.history);
        Ok(m)
    }

    /// The id the next message gets here (one more than the highest seen).
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Validate a message from `user` without giving it an id or keeping it (a shared
    /// sequencer numbers it): the rules of [`post`](Self::post), id 0.
    pub fn accept(
        &mut self,
        user: &Identity,
        text: &str,
        limits: &ChatLimits,
        now: Instant,
        now_ms: u64,
    ) -> Result<ChatMessage, ChatError> {
        if user.role == Role::Anonymous {
            return Err(ChatError::new("unauthorized", "sign in to chat"));
        }
        self.can_join(user)?;
        if let Some(&until) = self.timeouts.get(&user.id) {
            if now < until {
                return Err(
                    ChatError::new("timed_out", "you are timed out in this room")
                        .retry(until - now),
                );
            }
            self.timeouts.remove(&user.id);
        }
        let len = text.chars().count();
        if text.trim().is_empty() || len > limits.max_len {
            return Err(ChatError::new(
                "too_long",
                format!("a message has 1 to {} characters", limits.max_len),
            ));
        }
        if let (Some(gap), false) = (self.slow_mode, user.role.moderates()) {
            if let Some(&last) = self.last_post.get(&user.id)
                && now < last + gap
            {
                return Err(ChatError::new("slow_mode", "slow mode is on").retry(last + gap - now));
            }
            if self.last_post.len() > 100_000 {
                self.last_post.retain(|_, t| now < *t + gap);
            }
            self.last_post.insert(user.id.clone(), now);
        }
        Ok(ChatMessage {
            id: 0,
            user: user.clone(),
            text: text.to_string(),
            ts: now_ms,
        })
    }

    /// Keep `m` in the history (a message relayed from another node, or one posted here).
    pub fn remember(&mut self, m: ChatMessage, keep: usize) {
        self.next_id = self.next_id.max(m.id + 1);
        // Relayed messages can arrive out of order; keep the history sorted by id.
        let at = self.history.partition_point(|h| h.id < m.id);
        if self.history.get(at).is_some_and(|h| h.id == m.id) {
            return;
        }
        self.history.insert(at, m);
        while self.history.len() > keep {
            self.history.pop_front();
        }
    }

    /// Apply a moderation state loaded from the shared store or relayed from another
    /// node (no role check: the moderator was checked where it happened).
    pub fn apply(&mut self, change: &RoomChange, now: Instant) {
        match change {
            RoomChange::Ban(user) => {
                self.bans.insert(user.clone());
            }
            RoomChange::Timeout(user, left) => {
                self.timeouts.insert(user.clone(), now + *left);
            }
            RoomChange::SlowMode(seconds) => {
                self.slow_mode = (*seconds > 0).then(|| Duration::from_secs((*seconds).min(3600)));
            }
            RoomChange::Delete(id) => self.history.retain(|m| m.id != *id),
        }
    }

    /// The last messages, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &ChatMessage> {
        self.history.iter()
    }

    /// Delete message `id` (moderators).
    pub fn delete(&mut self, by: &Identity, id: u64) -> Result<(), ChatError> {
        moderator(by)?;
        let before = self.history.len();
        self.history.retain(|m| m.id != id);
        if before == self.history.len() && id >= self.next_id {
            return Err(ChatError::new("not_found", "no such message"));
        }
        Ok(())
    }

    /// Time `user` out for `seconds` (moderators).
    pub fn timeout(
        &mut self,
        by: &Identity,
        user: &str,
        seconds: u64,
        now: Instant,
    ) -> Result<(), ChatError> {
        moderator(by)?;
        let secs = seconds.clamp(1, 7 * 24 * 3600);
        self.timeouts
            .insert(user.to_string(), now + Duration::from_secs(secs));
        Ok(())
    }

    /// Ban `user` (moderators).
    pub fn ban(&mut self, by: &Identity, user: &str) -> Result<(), ChatError> {
        moderator(by)?;
        self.bans.insert(user.to_string());
        Ok(())
    }

    /// Slow mode: one message per `seconds` per user (0 turns it off; moderators).
    pub fn set_slow_mode(&mut self, by: &Identity, seconds: u64) -> Result<(), ChatError> {
        moderator(by)?;
        self.slow_mode = (seconds > 0).then(|| Duration::from_secs(seconds.min(3600)));
        self.last_post.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, role: Role) -> Identity {
        Identity {
            id: id.into(),
            name: id.into(),
            role,
            room: None,
        }
    }

    #[test]
    fn ids_history_and_validation() {
        let limits = ChatLimits {
            history: 3,
            max_len: 10,
            ..ChatLimits::default()
        };
        let t = Instant::now();
        let mut r = Room::new("live:cam");
        let alice = user("alice", Role::Viewer);
        for i in 1..=5u64 {
            let m = r
                .post(&alice, &format!("hi {i}"), &limits, t, 1000 + i)
                .unwrap();
            assert_eq!(m.id, i);
        }
        let ids: Vec<u64> = r.history().map(|m| m.id).collect();
        assert_eq!(ids, [3, 4, 5]);
        assert_eq!(
            r.post(&alice, "  ", &limits, t, 0).unwrap_err().code,
            "too_long"
        );
        assert_eq!(
            r.post(&alice, "12345678901", &limits, t, 0)
                .unwrap_err()
                .code,
            "too_long"
        );
        assert!(
            r.post(&alice, "ünïcödé!!!", &limits, t, 0).is_ok(),
            "characters, not bytes"
        );
        let anon = user("a", Role::Anonymous);
        assert_eq!(
            r.post(&anon, "x", &limits, t, 0).unwrap_err().code,
            "unauthorized"
        );
        let json = r.history().last().unwrap().to_json("live:cam");
        assert_eq!(json["user"]["role"], "viewer");
        assert_eq!(json["id"], 6);
    }

    #[test]
    fn moderation() {
        let limits = ChatLimits::default();
        let t = Instant::now();
        let mut r = Room::new("r");
        let (bob, moder) = (user("bob", Role::Viewer), user("mod", Role::Moderator));
        let m = r.post(&bob, "spam", &limits, t, 0).unwrap();
        assert_eq!(r.delete(&bob, m.id).unwrap_err().code, "forbidden");
        r.delete(&moder, m.id).unwrap();
        assert_eq!(r.history().count(), 0);
        assert_eq!(r.delete(&moder, 99).unwrap_err().code, "not_found");

        r.timeout(&moder, "bob", 10, t).unwrap();
        let e = r
            .post(&bob, "hi", &limits, t + Duration::from_secs(4), 0)
            .unwrap_err();
        assert_eq!(
            (e.code, e.retry_after),
            ("timed_out", Some(Duration::from_secs(6)))
        );
        assert!(
            r.post(&bob, "hi", &limits, t + Duration::from_secs(10), 0)
                .is_ok()
        );

        r.set_slow_mode(&moder, 5).unwrap();
        assert!(
            r.post(&bob, "a", &limits, t + Duration::from_secs(20), 0)
                .is_ok()
        );
        let e = r
            .post(&bob, "b", &limits, t + Duration::from_secs(22), 0)
            .unwrap_err();
        assert_eq!(e.code, "slow_mode");
        assert_eq!(e.to_json()["error"]["retry_after"], 3.0);
        assert!(
            r.post(&moder, "x", &limits, t + Duration::from_secs(22), 0)
                .is_ok(),
            "moderators are exempt"
        );
        assert!(
            r.post(&bob, "c", &limits, t + Duration::from_secs(25), 0)
                .is_ok()
        );

        r.ban(&moder, "bob").unwrap();
        assert_eq!(r.can_join(&bob).unwrap_err().code, "banned");
        assert_eq!(
            r.post(&bob, "d", &limits, t + Duration::from_secs(60), 0)
                .unwrap_err()
                .code,
            "banned"
        );
    }

    #[test]
    fn token_bucket_allows_bursts_then_the_average_rate() {
        let t = Instant::now();
        let mut b = TokenBucket::new(20, Duration::from_secs(30), t);
        for _ in 0..20 {
            b.take(t).unwrap();
        }
        let wait = b.take(t).unwrap_err();
        assert!(
            wait.abs_diff(Duration::from_millis(1500)) < Duration::from_micros(1),
            "{wait:?}"
        );
        assert!(b.take(t + Duration::from_millis(1490)).is_err());
        assert!(b.take(t + Duration::from_millis(1510)).is_ok());
        assert!(
            b.take(t + Duration::from_millis(1520)).is_err(),
            "one token per 1.5 s"
        );
    }

    #[test]
    fn room_names() {
        for ok in ["live", "live:cam1", "a.b-c_d", &"x".repeat(64)] {
            assert!(valid_room(ok), "{ok}");
        }
        for bad in ["", "a b", "a/b", "é", &"x".repeat(65)] {
            assert!(!valid_room(bad), "{bad}");
        }
    }
}
