//! The cache of hot reads (live list, channel page, video page): in-process by default,
//! Redis when several app nodes share it. Every write invalidates what it changed (in
//! Redis that reaches every node); entries also expire after a short time, which bounds
//! staleness if an invalidation could not be delivered. When Redis is away, reads go to
//! the database and writes still succeed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::aio::ConnectionManager;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Most entries the in-process cache keeps.
const LOCAL_MAX: usize = 20_000;
/// How long one Redis operation may take before the cache is bypassed.
const REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// After a Redis failure, how long to bypass it before trying again.
const REDIS_BACKOFF: Duration = Duration::from_secs(1);

/// The cache. Cheap to share behind the [`App`](crate::App).
pub struct Cache {
    ttl: Duration,
    kind: Kind,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.kind {
            Kind::Local(_) => "local",
            Kind::Redis(_) => "redis",
        };
        f.debug_struct("Cache")
            .field("kind", &kind)
            .field("ttl", &self.ttl)
            .finish()
    }
}

enum Kind {
    Local(Mutex<HashMap<String, (Instant, Bytes)>>),
    Redis(RedisCache),
}

struct RedisCache {
    client: redis::Client,
    prefix: String,
    conn: tokio::sync::Mutex<Option<ConnectionManager>>,
    down_until: Mutex<Option<Instant>>,
}

impl RedisCache {
    fn down(&self) -> bool {
        let mut d = self
            .down_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match *d {
            Some(t) if Instant::now() < t => true,
            Some(_) => {
                *d = None;
                false
            }
            None => false,
        }
    }

    fn failed(&self, what: &str, e: &dyn std::fmt::Display) {
        let mut d = self
            .down_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if d.is_none() {
            tracing::warn!(error = %e, "cache: redis {what} failed; reading from the database meanwhile");
        }
        *d = Some(Instant::now() + REDIS_BACKOFF);
    }

    async fn conn(&self) -> Option<ConnectionManager> {
        if self.down() {
            return None;
        }
        let mut slot = self.conn.lock().await;
        if let Some(c) = &*slot {
            return Some(c.clone());
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        match tokio::time::timeout(
            REDIS_TIMEOUT * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await
        {
            Ok(Ok(c)) => {
                *slot = Some(c.clone());
                Some(c)
            }
            Ok(Err(e)) => {
                self.failed("connect", &e);
                None
            }
            Err(e) => {
                self.failed("connect", &e);
                None
            }
        }
    }
}

impl Cache {
    /// An in-process cache whose entries live at most `ttl`.
    pub fn local(ttl: Duration) -> Cache {
        Cache {
            ttl,
            kind: Kind::Local(Mutex::new(HashMap::new())),
        }
    }

    /// A Redis cache at `url` (`redis://host:port/db`), keys under `prefix`.
    pub fn redis(url: &str, prefix: &str, ttl: Duration) -> Result<Cache, redis::RedisError> {
        Ok(Cache {
            ttl,
            kind: Kind::Redis(RedisCache {
                client: redis::Client::open(url)?,
                prefix: prefix.to_string(),
                conn: tokio::sync::Mutex::new(None),
                down_until: Mutex::new(None),
            }),
        })
    }

    /// Whether this is a Redis cache.
    pub fn is_redis(&self) -> bool {
        matches!(self.kind, Kind::Redis(_))
    }

    /// The bytes under `key`, if cached and fresh.
    pub async fn get(&self, key: &str) -> Option<Bytes> {
        match &self.kind {
            Kind::Local(m) => {
                let m = m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                m.get(key)
                    .filter(|(at, _)| at.elapsed() < self.ttl)
                    .map(|(_, b)| b.clone())
            }
            Kind::Redis(r) => {
                let mut c = r.conn().await?;
                let k = format!("{}{key}", r.prefix);
                match tokio::time::timeout(
                    REDIS_TIMEOUT,
                    redis::cmd("GET")
                        .arg(&k)
                        .query_async::<Option<Vec<u8>>>(&mut c),
                )
                .await
                {
                    Ok(Ok(v)) => v.map(Bytes::from),
                    Ok(Err(e)) => {
                        r.failed("GET", &e);
                        None
                    }
                    Err(e) => {
                        r.failed("GET", &e);
                        None
                    }
                }
            }
        }
    }

    /// Cache `value` under `key`.
    pub async fn put(&self, key: &str, value: Bytes) {
        match &self.kind {
            Kind::Local(m) => {
                let mut m = m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if m.len() >= LOCAL_MAX {
                    let ttl = self.ttl;
                    m.retain(|_, (at, _)| at.elapsed() < ttl);
                    if m.len() >= LOCAL_MAX {
                        m.clear();
                    }
                }
                m.insert(key.to_string(), (Instant::now(), value));
            }
            Kind::Redis(r) => {
                let Some(mut c) = r.conn().await else { return };
                let k = format!("{}{key}", r.prefix);
                let ms = u64::try_from(self.ttl.as_millis())
                    .unwrap_or(u64::MAX)
                    .max(1);
                let mut cmd = redis::cmd("SET");
                cmd.arg(&k).arg(value.as_ref()).arg("PX").arg(ms);
                let set = cmd.query_async::<()>(&mut c);
                match tokio::time::timeout(REDIS_TIMEOUT, set).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => r.failed("SET", &e),
                    Err(e) => r.failed("SET", &e),
                }
            }
        }
    }

    /// Forget `keys` (on every node sharing the cache).
    pub async fn invalidate(&self, keys: &[String]) {
        match &self.kind {
            Kind::Local(m) => {
                let mut m = m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                for k in keys {
                    m.remove(k);
                }
            }
            Kind::Redis(r) => {
                let Some(mut c) = r.conn().await else { return };
                let mut cmd = redis::cmd("DEL");
                for k in keys {
                    cmd.arg(format!("{}{k}", r.prefix));
                }
                match tokio::time::timeout(REDIS_TIMEOUT, cmd.query_async::<()>(&mut c)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => r.failed("DEL", &e),
                    Err(e) => r.failed("DEL", &e),
                }
            }
        }
    }

    pub(crate) async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let b = self.get(key).await?;
        serde_json::from_slice(&b).ok()
    }

    pub(crate) async fn put_json<T: Serialize>(&self, key: &str, value: &T) {
        if let Ok(v) = serde_json::to_vec(value) {
            self.put(key, Bytes::from(v)).await;
        }
    }
}
