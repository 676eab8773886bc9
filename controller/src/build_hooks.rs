//! How often a build hook may start builds: a token bucket per hook
//! (`governor`'s keyed limiter), kept in memory. A CMS that saves ten times
//! in a minute starts a few builds, not ten; each controller counts on its
//! own, so with several behind one address the allowance grows with them
//! (a bound on load, not a quota).

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::Duration;

/// The trigger of a build a hook started.
pub const TRIGGER: &str = "build_hook";

/// Builds a hook may start at once before it has to wait.
pub const BURST: u32 = 5;
/// How long a hook waits for each further build after its burst.
pub const REFILL_EVERY: Duration = Duration::from_secs(10);
/// Hooks remembered before those whose allowance is full again are
/// forgotten; only hooks that exist get one, so this is rarely reached.
const PRUNE_ABOVE: usize = 10_000;

pub struct BuildHookLimiter<C: Clock = DefaultClock> {
    limiter: RateLimiter<i64, DefaultKeyedStateStore<i64>, C, NoOpMiddleware<C::Instant>>,
    clock: C,
}

impl Default for BuildHookLimiter {
    fn default() -> Self {
        BuildHookLimiter::with_clock(DefaultClock::default())
    }
}

impl<C: Clock + Clone> BuildHookLimiter<C> {
    fn with_clock(clock: C) -> Self {
        let quota = Quota::with_period(REFILL_EVERY)
            .expect("the refill period is not zero")
            .allow_burst(NonZeroU32::new(BURST).expect("the burst is not zero"));
        BuildHookLimiter {
            limiter: RateLimiter::dashmap_with_clock(quota, clock.clone()),
            clock,
        }
    }

    /// Takes one build from hook `hook_id`'s allowance, or says how long
    /// until the next one is allowed.
    pub fn take(&self, hook_id: i64) -> Result<(), Duration> {
        if self.limiter.len() > PRUNE_ABOVE {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&hook_id)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    #[test]
    fn a_hook_starts_a_burst_then_one_build_per_period_and_hooks_count_apart() {
        let clock = FakeRelativeClock::default();
        let limiter = BuildHookLimiter::with_clock(clock.clone());
        for _ in 0..BURST {
            assert_eq!(limiter.take(1), Ok(()));
        }
        assert_eq!(limiter.take(1), Err(REFILL_EVERY));
        assert_eq!(limiter.take(2), Ok(()), "another hook has its own allowance");

        clock.advance(REFILL_EVERY / 2);
        assert_eq!(limiter.take(1), Err(REFILL_EVERY / 2));
        clock.advance(REFILL_EVERY / 2);
        assert_eq!(limiter.take(1), Ok(()));
        assert!(limiter.take(1).is_err());
    }
}
