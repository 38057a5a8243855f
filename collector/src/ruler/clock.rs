//! The ruler's clock: where "now" comes from and how a group waits for its
//! next evaluation slot. Production uses [`SystemClock`] (wall time for
//! timestamps, tokio timers for waiting); tests use [`ManualClock`], whose
//! time only moves when the test moves it, so a test drives evaluations
//! slot by slot without sleeping.
//!
//! Invariant: a future returned by [`Clock::sleep_until`] resolves only
//! once [`Clock::now_ms`] has reached the target.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

/// A boxed future, as returned by [`Clock::sleep_until`].
pub type Sleep<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Time as the ruler sees it: milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    /// The current time (ms since the epoch).
    fn now_ms(&self) -> i64;

    /// Resolves once [`Clock::now_ms`] is at least `t_ms`.
    fn sleep_until(&self, t_ms: i64) -> Sleep<'_>;
}

/// The wall clock, with tokio timers for waiting.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

/// Milliseconds since the epoch of a system time (negative before it).
pub fn system_time_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        system_time_ms(SystemTime::now())
    }

    fn sleep_until(&self, t_ms: i64) -> Sleep<'_> {
        Box::pin(async move {
            // The wall clock can step (NTP): re-check after every wake-up
            // rather than trusting one timer computed from the old reading.
            loop {
                let now = self.now_ms();
                if now >= t_ms {
                    return;
                }
                let wait = u64::try_from(t_ms.saturating_sub(now)).unwrap_or(0);
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
        })
    }
}

/// A clock that moves only when told to: [`ManualClock::set`] and
/// [`ManualClock::advance`] wake every sleeper whose target was reached.
#[derive(Debug)]
pub struct ManualClock {
    now: watch::Sender<i64>,
}

impl ManualClock {
    pub fn new(start_ms: i64) -> Self {
        ManualClock {
            now: watch::Sender::new(start_ms),
        }
    }

    /// Moves time to `t_ms` (never backwards: an earlier value is ignored).
    pub fn set(&self, t_ms: i64) {
        self.now.send_if_modified(|now| {
            if t_ms > *now {
                *now = t_ms;
                true
            } else {
                false
            }
        });
    }

    pub fn advance(&self, by_ms: i64) {
        let now = *self.now.borrow();
        self.set(now.saturating_add(by_ms));
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        *self.now.borrow()
    }

    fn sleep_until(&self, t_ms: i64) -> Sleep<'_> {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as the clock, which outlives this
            // borrow, so `wait_for` cannot fail while we wait.
            let _ = rx.wait_for(|now| *now >= t_ms).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn manual_sleep_resolves_only_when_time_reaches_the_target() {
        let clock = ManualClock::new(1_000);
        let mut sleep = clock.sleep_until(5_000);
        // Polling once must leave it pending.
        assert!(futures_poll_once(&mut sleep).is_none());
        clock.advance(3_000);
        assert!(futures_poll_once(&mut sleep).is_none());
        clock.set(2_000); // backwards: ignored
        assert_eq!(clock.now_ms(), 4_000);
        clock.advance(1_000);
        sleep.await;
        assert_eq!(clock.now_ms(), 5_000);
    }

    #[tokio::test]
    async fn system_clock_past_target_resolves_at_once() {
        let c = SystemClock;
        c.sleep_until(c.now_ms() - 10).await;
        assert!(system_time_ms(UNIX_EPOCH - Duration::from_millis(5)) == -5);
    }

    fn futures_poll_once(f: &mut Sleep<'_>) -> Option<()> {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(()) => Some(()),
            std::task::Poll::Pending => None,
        }
    }
}
