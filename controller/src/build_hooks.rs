//! How often a build hook may start builds: a token bucket per hook, kept
//! in memory. A CMS that saves ten times in a minute starts a few builds,
//! not ten; each controller counts on its own, so with several behind one
//! address the allowance grows with them (a bound on load, not a quota).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Builds a hook may start at once before it has to wait.
pub const BURST: u32 = 5;
/// How long a hook waits for each further build after its burst.
pub const REFILL_EVERY: Duration = Duration::from_secs(10);
/// Buckets kept before full ones (idle for a burst's worth of refills)
/// are forgotten; only hooks that exist get one, so this is rarely reached.
const PRUNE_ABOVE: usize = 10_000;

#[derive(Debug, Default)]
pub struct BuildHookLimiter {
    buckets: Mutex<HashMap<i64, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Builds the hook may start now, in fractions of one.
    tokens: f64,
    refreshed: Instant,
}

impl BuildHookLimiter {
    /// Takes one build from hook `hook_id`'s allowance, or says how long
    /// until the next one is allowed.
    pub fn take(&self, hook_id: i64) -> Result<(), Duration> {
        self.take_at(hook_id, Instant::now())
    }

    fn take_at(&self, hook_id: i64, now: Instant) -> Result<(), Duration> {
        let mut buckets = self
            .buckets
            .lock()
            .expect("the build hook limiter is never poisoned");
        if buckets.len() > PRUNE_ABOVE {
            buckets.retain(|_, bucket| refilled(*bucket, now) < f64::from(BURST));
        }
        let bucket = buckets.entry(hook_id).or_insert(Bucket {
            tokens: f64::from(BURST),
            refreshed: now,
        });
        bucket.tokens = refilled(*bucket, now);
        bucket.refreshed = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(REFILL_EVERY.mul_f64(1.0 - bucket.tokens))
        }
    }
}

fn refilled(bucket: Bucket, now: Instant) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.refreshed);
    (bucket.tokens + elapsed.as_secs_f64() / REFILL_EVERY.as_secs_f64()).min(f64::from(BURST))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hook_starts_a_burst_then_one_build_per_period_and_hooks_count_apart() {
        let limiter = BuildHookLimiter::default();
        let start = Instant::now();
        for _ in 0..BURST {
            assert_eq!(limiter.take_at(1, start), Ok(()));
        }
        let wait = limiter.take_at(1, start).unwrap_err();
        assert_eq!(wait, REFILL_EVERY);
        assert_eq!(
            limiter.take_at(2, start),
            Ok(()),
            "another hook has its own allowance"
        );

        let half = start + REFILL_EVERY / 2;
        let wait = limiter.take_at(1, half).unwrap_err();
        assert!(wait <= REFILL_EVERY / 2 + Duration::from_millis(1), "{wait:?}");
        assert_eq!(limiter.take_at(1, start + REFILL_EVERY), Ok(()));
        assert!(limiter.take_at(1, start + REFILL_EVERY).is_err());
    }
}
