//! How fast this machine compresses *right now*, relative to what the model and the
//! calibration profile predict.
//!
//! The profile is measured once; the machine's speed is not constant. On a cloud VM
//! a busy neighbour on the sibling hyperthread, or the node's own consensus work on
//! the same cores, makes every codec slower together, by tens of percent for seconds
//! at a time. Each time the selector compresses a chunk it knows the predicted and
//! the measured compress time; [`SpeedTracker`] keeps an exponentially weighted mean
//! of ln(measured / predicted) over those observations, and the selector scales its
//! compress-time estimates by the resulting factor. Only compression is tracked:
//! decompression runs on the peer, whose speed the sender does not observe.
//!
//! The state is one atomic word, so a selector shared between threads adapts
//! without a lock; concurrent observations may race, which only drops one of them.

use std::sync::atomic::{AtomicU64, Ordering};

/// The default weight of a new observation.
pub const DEFAULT_WEIGHT: f64 = 0.25;
/// The factor never leaves `[1 / MAX_FACTOR, MAX_FACTOR]`: a wild observation (a
/// descheduled thread, a page fault storm) must not make every decision absurd.
pub const MAX_FACTOR: f64 = 4.0;

/// An exponentially weighted estimate of measured / predicted compress time.
#[derive(Debug)]
pub struct SpeedTracker {
    /// ln of the factor, as `f64` bits.
    log_factor: AtomicU64,
    /// Weight of a new observation, in `[0, 1]`; 0 disables tracking.
    weight: f64,
}

impl SpeedTracker {
    /// A tracker at factor 1 that weighs each observation by `weight` (clamped to
    /// `[0, 1]`; 0 never moves the factor).
    pub fn new(weight: f64) -> Self {
        SpeedTracker {
            log_factor: AtomicU64::new(0f64.to_bits()),
            weight: if weight.is_finite() {
                weight.clamp(0.0, 1.0)
            } else {
                0.0
            },
        }
    }

    /// The weight of a new observation.
    pub fn weight(&self) -> f64 {
        self.weight
    }

    /// The current factor: how many times slower than predicted compression runs.
    pub fn factor(&self) -> f64 {
        f64::from_bits(self.log_factor.load(Ordering::Relaxed)).exp()
    }

    /// Records that a compression predicted to take `predicted_s` seconds before
    /// scaling took `measured_s`. Non-positive or non-finite inputs are ignored.
    pub fn observe(&self, predicted_s: f64, measured_s: f64) {
        if self.weight == 0.0
            || !(predicted_s > 0.0 && predicted_s.is_finite())
            || !(measured_s > 0.0 && measured_s.is_finite())
        {
            return;
        }
        let bound = MAX_FACTOR.ln();
        let obs = (measured_s / predicted_s).ln().clamp(-bound, bound);
        let old = f64::from_bits(self.log_factor.load(Ordering::Relaxed));
        let new = (old + self.weight * (obs - old)).clamp(-bound, bound);
        self.log_factor.store(new.to_bits(), Ordering::Relaxed);
    }

    /// Back to factor 1.
    pub fn reset(&self) {
        self.log_factor.store(0f64.to_bits(), Ordering::Relaxed);
    }
}

impl Default for SpeedTracker {
    fn default() -> Self {
        SpeedTracker::new(DEFAULT_WEIGHT)
    }
}

impl Clone for SpeedTracker {
    fn clone(&self) -> Self {
        SpeedTracker {
            log_factor: AtomicU64::new(self.log_factor.load(Ordering::Relaxed)),
            weight: self.weight,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn starts_at_one_and_follows_a_steady_slowdown() {
        let t = SpeedTracker::new(0.25);
        assert_eq!(t.factor(), 1.0);
        for _ in 0..60 {
            t.observe(10e-6, 15e-6);
        }
        assert!((t.factor() - 1.5).abs() < 1e-3, "{}", t.factor());
        t.reset();
        assert_eq!(t.factor(), 1.0);
    }

    #[test]
    fn one_observation_moves_it_by_the_weight_in_log_space() {
        let t = SpeedTracker::new(0.5);
        t.observe(1.0, 4.0);
        assert!((t.factor() - 2.0).abs() < 1e-12);
    }

    #[test]
    fn zero_weight_and_bad_inputs_do_nothing() {
        let off = SpeedTracker::new(0.0);
        off.observe(1.0, 3.0);
        assert_eq!(off.factor(), 1.0);
        let t = SpeedTracker::new(f64::NAN);
        assert_eq!(t.weight(), 0.0);
        let t = SpeedTracker::new(0.5);
        for (p, m) in [
            (0.0, 1.0),
            (1.0, 0.0),
            (-1.0, 1.0),
            (f64::NAN, 1.0),
            (1.0, f64::INFINITY),
        ] {
            t.observe(p, m);
        }
        assert_eq!(t.factor(), 1.0);
    }

    #[test]
    fn clones_carry_the_state_but_not_the_future() {
        let t = SpeedTracker::new(1.0);
        t.observe(1.0, 2.0);
        let c = t.clone();
        t.observe(1.0, 1.0);
        assert!((c.factor() - 2.0).abs() < 1e-12);
        assert!((t.factor() - 1.0).abs() < 1e-12);
    }

    proptest! {
        #[test]
        fn factor_stays_bounded(
            weight in 0.0f64..=1.0,
            obs in proptest::collection::vec((1e-12f64..1e3, 1e-12f64..1e3), 0..50),
        ) {
            let t = SpeedTracker::new(weight);
            for (p, m) in obs {
                t.observe(p, m);
                let f = t.factor();
                prop_assert!(f.is_finite());
                prop_assert!((1.0 / MAX_FACTOR - 1e-9..=MAX_FACTOR + 1e-9).contains(&f), "{}", f);
            }
        }
    }
}
