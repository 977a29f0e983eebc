//! Rate limits (token buckets per key, in process): sign-in attempts per client address
//! and per account name, sign-ups per client address.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Most keys tracked at once; beyond it the full buckets are forgotten first.
const MAX_KEYS: usize = 100_000;

/// A set of token buckets: `burst` attempts at once, refilled at `per` each.
#[derive(Debug)]
pub struct RateLimiter {
    burst: f64,
    per: Duration,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `burst` attempts, then one more every `per`.
    pub fn new(burst: u32, per: Duration) -> RateLimiter {
        RateLimiter {
            burst: f64::from(burst.max(1)),
            per: per.max(Duration::from_millis(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Take one attempt for `key` at `now`: `Ok` if allowed, else how long to wait.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut b = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if b.len() >= MAX_KEYS && !b.contains_key(key) {
            let (burst, per) = (self.burst, self.per);
            b.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() / per.as_secs_f64()
                    < burst
            });
            if b.len() >= MAX_KEYS {
                b.clear();
            }
        }
        let (tokens, at) = b.entry(key.to_string()).or_insert((self.burst, now));
        let refill = now.saturating_duration_since(*at).as_secs_f64() / self.per.as_secs_f64();
        *tokens = (*tokens + refill).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(self.per.mul_f64(1.0 - *tokens))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_one_per_period() {
        let l = RateLimiter::new(3, Duration::from_secs(10));
        let t = Instant::now();
        for _ in 0..3 {
            assert!(l.check("a", t).is_ok());
        }
        let wait = l.check("a", t).unwrap_err();
        assert!(wait <= Duration::from_secs(10) && wait > Duration::from_secs(9));
        assert!(l.check("b", t).is_ok(), "keys are independent");
        assert!(l.check("a", t + Duration::from_secs(10)).is_ok());
        assert!(l.check("a", t + Duration::from_secs(10)).is_err());
    }
}
