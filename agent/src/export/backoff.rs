//! Exponential backoff with jitter between attempts while the collector is
//! unreachable. The random source is a seeded generator owned by the
//! backoff, so tests get a fixed sequence and thousands of agents that lost
//! the same collector do not come back in step.
//!
//! Invariants: every delay is in `[d/2, d]` where `d` doubles from
//! `initial` up to `max`; `reset` after a success starts again at `initial`.

use std::time::Duration;

/// Backoff settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

/// The state of one retry sequence.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    current: Duration,
    rng: u64,
}

impl Backoff {
    pub fn new(policy: BackoffPolicy, seed: u64) -> Backoff {
        Backoff {
            policy,
            current: policy.initial,
            // xorshift has one fixed point, zero; avoid it.
            rng: seed | 1,
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.current.min(self.policy.max);
        self.current = self.current.saturating_mul(2).min(self.policy.max);
        let half = d / 2;
        // `half + jitter` with jitter uniform in [0, d - half].
        let span = u64::try_from((d - half).as_nanos()).unwrap_or(u64::MAX);
        let jitter = if span == 0 {
            0
        } else {
            self.random() % (span + 1)
        };
        half + Duration::from_nanos(jitter)
    }

    /// The longest delay, for failures that only an operator can fix.
    pub fn max_delay(&mut self) -> Duration {
        self.current = self.policy.max;
        self.next_delay()
    }

    pub fn reset(&mut self) {
        self.current = self.policy.initial;
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: plenty for spreading retries.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn delays_double_within_jitter_bounds_and_reset(seed in any::<u64>(), n in 1usize..20) {
            let policy = BackoffPolicy {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(5),
            };
            let mut b = Backoff::new(policy, seed);
            let mut ceiling = policy.initial;
            for _ in 0..n {
                let d = b.next_delay();
                prop_assert!(d >= ceiling / 2 && d <= ceiling, "{d:?} outside [{:?}, {ceiling:?}]", ceiling / 2);
                ceiling = (ceiling * 2).min(policy.max);
            }
            b.reset();
            prop_assert!(b.next_delay() <= policy.initial);
        }
    }

    #[test]
    fn seeds_spread_the_retries() {
        let policy = BackoffPolicy::default();
        let a: Vec<Duration> = {
            let mut b = Backoff::new(policy, 1);
            (0..5).map(|_| b.next_delay()).collect()
        };
        let c: Vec<Duration> = {
            let mut b = Backoff::new(policy, 2);
            (0..5).map(|_| b.next_delay()).collect()
        };
        assert_ne!(a, c);
    }
}
