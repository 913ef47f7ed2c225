//! A circuit breaker per peer link: closed while calls succeed, open after
//! `threshold` consecutive failures (calls refused without trying), half-open after
//! `open_for` (one trial call allowed: success closes it, failure opens it again).

use serde::Serialize;
use std::time::{Duration, Instant};

/// The breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused until the timeout passes.
    Open,
    /// One trial call is allowed.
    HalfOpen,
}

impl BreakerState {
    /// 0 closed, 1 half-open, 2 open: for a metrics gauge.
    pub fn as_gauge(self) -> i64 {
        match self {
            BreakerState::Closed => 0,
            BreakerState::HalfOpen => 1,
            BreakerState::Open => 2,
        }
    }
}

/// One link's breaker.
#[derive(Clone, Debug)]
pub struct CircuitBreaker {
    threshold: u32,
    open_for: Duration,
    failures: u32,
    opened_at: Option<Instant>,
    trial_in_flight: bool,
    /// Times the breaker has opened.
    pub trips: u64,
}

impl CircuitBreaker {
    /// Opens after `threshold` consecutive failures (at least 1), for `open_for`.
    pub fn new(threshold: u32, open_for: Duration) -> CircuitBreaker {
        CircuitBreaker {
            threshold: threshold.max(1),
            open_for,
            failures: 0,
            opened_at: None,
            trial_in_flight: false,
            trips: 0,
        }
    }

    /// The state at `now`.
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.opened_at {
            None => BreakerState::Closed,
            Some(t) if now.duration_since(t) >= self.open_for => BreakerState::HalfOpen,
            Some(_) => BreakerState::Open,
        }
    }

    /// Whether a call may be tried now; in half-open state only one at a time.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.state(now) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen => {
                if self.trial_in_flight {
                    false
                } else {
                    self.trial_in_flight = true;
                    true
                }
            }
        }
    }

    /// Time until a call may be tried (zero if now).
    pub fn wait(&self, now: Instant) -> Duration {
        match self.opened_at {
            Some(t) if self.state(now) == BreakerState::Open => {
                self.open_for.saturating_sub(now.duration_since(t))
            }
            _ => Duration::ZERO,
        }
    }

    /// Records a successful call: the breaker closes.
    pub fn on_success(&mut self) {
        self.failures = 0;
        self.opened_at = None;
        self.trial_in_flight = false;
    }

    /// Records a failed call.
    pub fn on_failure(&mut self, now: Instant) {
        self.trial_in_flight = false;
        match self.state(now) {
            BreakerState::HalfOpen => {
                self.opened_at = Some(now);
                self.trips += 1;
            }
            BreakerState::Open => {}
            BreakerState::Closed => {
                self.failures += 1;
                if self.failures >= self.threshold {
                    self.opened_at = Some(now);
                    self.trips += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_open_half_open_closed() {
        let t0 = Instant::now();
        let mut b = CircuitBreaker::new(3, Duration::from_secs(5));
        assert_eq!(b.state(t0), BreakerState::Closed);
        b.on_failure(t0);
        b.on_failure(t0);
        assert!(b.allow(t0), "two failures of three keep it closed");
        b.on_failure(t0);
        assert_eq!(b.state(t0), BreakerState::Open);
        assert!(!b.allow(t0 + Duration::from_secs(1)));
        assert_eq!(b.wait(t0 + Duration::from_secs(1)), Duration::from_secs(4));
        let later = t0 + Duration::from_secs(5);
        assert_eq!(b.state(later), BreakerState::HalfOpen);
        assert!(b.allow(later), "one trial");
        assert!(!b.allow(later), "only one trial at a time");
        b.on_failure(later);
        assert_eq!(
            b.state(later),
            BreakerState::Open,
            "a failed trial reopens it"
        );
        assert_eq!(b.trips, 2);
        let much_later = later + Duration::from_secs(5);
        assert!(b.allow(much_later));
        b.on_success();
        assert_eq!(b.state(much_later), BreakerState::Closed);
        assert!(b.allow(much_later));
    }

    #[test]
    fn success_resets_the_failure_count() {
        let t = Instant::now();
        let mut b = CircuitBreaker::new(2, Duration::from_secs(1));
        b.on_failure(t);
        b.on_success();
        b.on_failure(t);
        assert_eq!(b.state(t), BreakerState::Closed);
    }
}
