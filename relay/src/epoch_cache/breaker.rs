//! The circuit breaker in front of the shared epoch cache: after Redis failed or was too
//! slow once, batches stop asking it (and so stop paying the timeout) until a backoff has
//! passed; then one batch probes it, and its answer closes the breaker or doubles the
//! backoff.
//!
//! Pure logic: the caller passes the time, so tests drive it without a clock.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// First wait after a failure before Redis is probed again.
pub const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait between probes while Redis stays unavailable.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What a batch should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Ask Redis (the breaker is closed).
    Shared,
    /// Ask Redis as the one probe after a backoff.
    Probe,
    /// Do not ask Redis: resolve locally.
    Local,
}

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Redis answers: every batch asks it.
    Closed,
    /// Redis failed: no batch asks it before `retry_at`.
    Open {
        /// When the next probe may go.
        retry_at: Instant,
        /// The wait that led to `retry_at`.
        backoff: Duration,
    },
    /// One batch is asking Redis; the others resolve locally meanwhile.
    Probing {
        /// When the probe went; a probe that never reports (its request was cancelled)
        /// expires after [`Breaker::probe_expiry`].
        started: Instant,
        /// The wait that led to this probe.
        backoff: Duration,
    },
}

/// Closed → (failure) → open → (backoff passed) → probing → closed or open again.
#[derive(Debug)]
pub struct Breaker {
    /// The current state; the lock is held for a few instructions, never across an `.await`.
    state: Mutex<State>,
    /// How long a probe may stay unanswered before another batch may probe.
    probe_expiry: Duration,
}

impl Breaker {
    /// A closed breaker whose probes expire after `probe_expiry` (a little more than
    /// the call timeout).
    pub fn new(probe_expiry: Duration) -> Self {
        Breaker {
            state: Mutex::new(State::Closed),
            probe_expiry,
        }
    }

    /// A breaker that starts open, as when Redis could not be reached at start.
    pub fn new_open(probe_expiry: Duration, now: Instant) -> Self {
        let breaker = Self::new(probe_expiry);
        *breaker.lock() = State::Open {
            retry_at: now + MIN_BACKOFF,
            backoff: MIN_BACKOFF,
        };
        breaker
    }

    /// Where a batch arriving at `now` should go.
    pub fn route(&self, now: Instant) -> Route {
        let mut state = self.lock();
        match *state {
            State::Closed => Route::Shared,
            State::Open { retry_at, backoff } if now >= retry_at => {
                *state = State::Probing {
                    started: now,
                    backoff,
                };
                Route::Probe
            }
            State::Probing { started, backoff } if now >= started + self.probe_expiry => {
                *state = State::Probing {
                    started: now,
                    backoff,
                };
                Route::Probe
            }
            State::Open { .. } | State::Probing { .. } => Route::Local,
        }
    }

    /// Redis answered. Returns `true` when this closes an open breaker.
    pub fn on_success(&self) -> bool {
        let mut state = self.lock();
        let was_open = *state != State::Closed;
        *state = State::Closed;
        was_open
    }

    /// Redis failed or timed out at `now`. Returns `true` when this opens a closed
    /// breaker.
    pub fn on_failure(&self, now: Instant) -> bool {
        let mut state = self.lock();
        match *state {
            State::Closed => {
                *state = State::Open {
                    retry_at: now + MIN_BACKOFF,
                    backoff: MIN_BACKOFF,
                };
                true
            }
            State::Probing { backoff, .. } => {
                let backoff = (backoff * 2).min(MAX_BACKOFF);
                *state = State::Open {
                    retry_at: now + backoff,
                    backoff,
                };
                false
            }
            // A call that started before the breaker opened: the backoff stands.
            State::Open { .. } => false,
        }
    }

    /// Whether batches currently ask Redis.
    pub fn is_closed(&self) -> bool {
        *self.lock() == State::Closed
    }

    /// The state, even if a panic poisoned the lock (it holds plain values).
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A breaker whose probes expire after a second, and a fixed start time.
    fn breaker() -> (Breaker, Instant) {
        (Breaker::new(Duration::from_secs(1)), Instant::now())
    }

    /// Closed: every batch asks Redis; one failure opens it for the minimum backoff.
    #[test]
    fn one_failure_opens_for_the_backoff() {
        let (breaker, t0) = breaker();
        assert_eq!(breaker.route(t0), Route::Shared);
        assert!(breaker.on_failure(t0));
        assert_eq!(breaker.route(t0), Route::Local);
        assert_eq!(breaker.route(t0 + MIN_BACKOFF / 2), Route::Local);
        assert!(!breaker.is_closed());
    }

    /// After the backoff exactly one batch probes; the others stay local; a successful
    /// probe closes the breaker.
    #[test]
    fn one_probe_then_closed() {
        let (breaker, t0) = breaker();
        breaker.on_failure(t0);
        let t1 = t0 + MIN_BACKOFF;
        assert_eq!(breaker.route(t1), Route::Probe);
        assert_eq!(breaker.route(t1), Route::Local);
        assert!(breaker.on_success());
        assert_eq!(breaker.route(t1), Route::Shared);
        assert!(!breaker.on_success(), "already closed");
    }

    /// Each failed probe doubles the wait, up to the maximum.
    #[test]
    fn failed_probes_back_off_up_to_the_maximum() {
        let (breaker, mut now) = breaker();
        breaker.on_failure(now);
        let mut expected = MIN_BACKOFF;
        for _ in 0..10 {
            now += expected;
            assert_eq!(breaker.route(now), Route::Probe);
            assert!(!breaker.on_failure(now));
            expected = (expected * 2).min(MAX_BACKOFF);
            assert_eq!(
                breaker.route(now + expected - Duration::from_millis(1)),
                Route::Local
            );
        }
        assert_eq!(expected, MAX_BACKOFF);
    }

    /// A probe that never reports (its request was dropped) does not block probing for
    /// ever.
    #[test]
    fn a_lost_probe_expires() {
        let (breaker, t0) = breaker();
        breaker.on_failure(t0);
        let t1 = t0 + MIN_BACKOFF;
        assert_eq!(breaker.route(t1), Route::Probe);
        assert_eq!(breaker.route(t1 + Duration::from_millis(999)), Route::Local);
        assert_eq!(breaker.route(t1 + Duration::from_secs(1)), Route::Probe);
    }

    /// Failures of calls that started before the breaker opened leave the backoff alone.
    #[test]
    fn late_failures_do_not_extend_the_backoff() {
        let (breaker, t0) = breaker();
        assert!(breaker.on_failure(t0));
        assert!(!breaker.on_failure(t0 + Duration::from_millis(150)));
        assert_eq!(breaker.route(t0 + MIN_BACKOFF), Route::Probe);
    }

    /// Starting open: the first probe goes after the minimum backoff.
    #[test]
    fn starts_open_when_asked() {
        let t0 = Instant::now();
        let breaker = Breaker::new_open(Duration::from_secs(1), t0);
        assert_eq!(breaker.route(t0), Route::Local);
        assert_eq!(breaker.route(t0 + MIN_BACKOFF), Route::Probe);
    }
}
