//! Cheap token-bucket rate limits keyed by client (endpoint id or IP
//! address): one mutex, one small map, O(1) per check.
//!
//! Memory is bounded: a bucket that has refilled to its burst is the same
//! as no bucket, so such entries are dropped when the map reaches its
//! capacity (at most once a second, so a full map cannot make every check
//! a sweep). When the map is full of active clients, new keys are refused:
//! failing closed is the safe side for an admission gate.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::Mutex,
    time::{Duration, Instant},
};

/// A rate: `burst` attempts at once, refilled at `per_sec` a second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Attempts allowed back to back.
    pub burst: u32,
    /// Attempts regained per second.
    pub per_sec: f64,
}

impl Rate {
    /// Seconds for an empty bucket to refill.
    fn refill_secs(&self) -> f64 {
        f64::from(self.burst) / self.per_sec
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
struct State<K> {
    buckets: HashMap<K, Bucket>,
    last_sweep: Option<Instant>,
}

/// Token buckets, one per key.
#[derive(Debug)]
pub struct Limiter<K> {
    rate: Rate,
    capacity: usize,
    state: Mutex<State<K>>,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// Buckets at `rate`, for at most `capacity` keys at once.
    pub fn new(rate: Rate, capacity: usize) -> Self {
        Self {
            rate,
            capacity: capacity.max(1),
            state: Mutex::new(State {
                buckets: HashMap::new(),
                last_sweep: None,
            }),
        }
    }

    /// Takes one token for `key` at `now`; `false` when the key is over
    /// its rate (or the table is full of busy keys).
    pub fn check(&self, key: &K, now: Instant) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        let burst = f64::from(self.rate.burst);
        if let Some(b) = state.buckets.get_mut(key) {
            let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
            b.tokens = (b.tokens + elapsed * self.rate.per_sec).min(burst);
            b.at = now;
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                return true;
            }
            return false;
        }
        if self.rate.burst == 0 {
            return false;
        }
        if state.buckets.len() >= self.capacity {
            let due = state
                .last_sweep
                .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1));
            if due {
                state.last_sweep = Some(now);
                let full_after = self.rate.refill_secs();
                state
                    .buckets
                    .retain(|_, b| now.saturating_duration_since(b.at).as_secs_f64() < full_after);
            }
            if state.buckets.len() >= self.capacity {
                return false;
            }
        }
        state.buckets.insert(
            key.clone(),
            Bucket {
                tokens: burst - 1.0,
                at: now,
            },
        );
        true
    }

    /// Keys currently tracked.
    pub fn len(&self) -> usize {
        self.state.lock().map(|s| s.buckets.len()).unwrap_or(0)
    }

    /// Whether no key is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let l = Limiter::new(
            Rate {
                burst: 3,
                per_sec: 2.0,
            },
            10,
        );
        let t = Instant::now();
        assert!((0..3).all(|_| l.check(&"a", t)));
        assert!(!l.check(&"a", t));
        // Another key has its own bucket.
        assert!(l.check(&"b", t));
        // Half a second regains one token, and only one.
        let t1 = t + Duration::from_millis(500);
        assert!(l.check(&"a", t1));
        assert!(!l.check(&"a", t1));
        // A long pause refills to the burst, never beyond.
        let t2 = t1 + Duration::from_secs(60);
        assert!((0..3).all(|_| l.check(&"a", t2)));
        assert!(!l.check(&"a", t2));
    }

    #[test]
    fn full_table_drops_idle_keys_and_refuses_when_all_busy() {
        let l = Limiter::new(
            Rate {
                burst: 2,
                per_sec: 1.0,
            },
            2,
        );
        let t = Instant::now();
        assert!(l.check(&1, t));
        assert!(l.check(&2, t));
        // Full of recently active keys: a new key is refused.
        assert!(!l.check(&3, t));
        assert_eq!(l.len(), 2);
        // Once the old keys have refilled (2 s), they are swept.
        let later = t + Duration::from_secs(3);
        assert!(l.check(&3, later));
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn zero_burst_refuses_everything() {
        let l = Limiter::new(
            Rate {
                burst: 0,
                per_sec: 1.0,
            },
            2,
        );
        assert!(!l.check(&1, Instant::now()));
    }
}
