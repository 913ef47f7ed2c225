//! Binomial tails, the one routine behind every ProBFT probability.
//!
//! The number of votes a replica receives from `k` other senders is exactly
//! `Bin(k, p)` (see [`super::params`]), so the start-up check, the parameter table
//! and later the simulator's predictions all reduce to `P[Bin(k, p) ≥ q]`. It must
//! be the same on every node and right far into the tail (risks of 1e-30 are
//! routine at n = 1000), so it is computed here once, in plain `f64`:
//!
//! - the largest term of the requested range is evaluated in log space by
//!   Loader's saddle-point method, to about 1e-15 relative, where the naive
//!   `ln C(k, i) + i·ln p + …` loses digits to cancellation (about 1e-12 for `k`
//!   in the thousands);
//! - the other terms follow from it by the ratio of neighbours,
//!   `pmf(i+1)/pmf(i) = (k − i)/(i + 1) · p/(1 − p)`, walking away from that
//!   largest term until a term falls below 1e-20 of the sum (terms only shrink
//!   away from the mode, and ever faster, so the rest is negligible).
//!
//! Each side of a split point is summed on its own, so a tail of 1e-30 keeps its
//! significant digits instead of being `1 − (1 − 1e-30)`. Results below about
//! 1e-308 underflow to 0.

/// The binomial distribution `Bin(trials, p)`: successes in `trials` independent
/// draws that each succeed with probability `p`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Binomial {
    trials: u64,
    p: f64,
}

/// Terms smaller than this fraction of the running sum end a walk away from the mode.
const NEGLIGIBLE: f64 = 1e-20;

impl Binomial {
    /// `Bin(trials, p)`; `p` is clamped into `[0, 1]` (a NaN becomes 0).
    pub fn new(trials: usize, p: f64) -> Binomial {
        let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        Binomial {
            trials: trials as u64,
            p,
        }
    }

    /// `P[X ≥ k]`, the upper tail.
    pub fn at_least(&self, k: usize) -> f64 {
        self.mass(k as u64, self.trials)
    }

    /// `P[X < k]`, the lower tail: `1 − at_least(k)`, but summed on its own side so
    /// that a small lower tail keeps its digits too.
    pub fn below(&self, k: usize) -> f64 {
        match (k as u64).checked_sub(1) {
            None => 0.0,
            Some(hi) => self.mass(0, hi),
        }
    }

    /// `P[lo ≤ X ≤ hi]`.
    fn mass(&self, lo: u64, hi: u64) -> f64 {
        let (n, p) = (self.trials, self.p);
        let hi = hi.min(n);
        if lo > hi {
            return 0.0;
        }
        if lo == 0 && hi == n {
            return 1.0;
        }
        // ln p or ln(1 − p) is −∞ here: all the mass sits on one point.
        if p == 0.0 {
            return if lo == 0 { 1.0 } else { 0.0 };
        }
        if p == 1.0 {
            return if hi == n { 1.0 } else { 0.0 };
        }
        // The mode of Bin(n, p) is ⌊(n + 1)p⌋; the largest term of [lo, hi] is the
        // point of the range closest to it.
        let mode = (((n + 1) as f64) * p).floor() as u64;
        let anchor = mode.clamp(lo, hi);
        let odds = p / (1.0 - p);
        let mut total = 1.0;
        let mut term = 1.0;
        for i in anchor..hi {
            term *= (n - i) as f64 / (i + 1) as f64 * odds;
            total += term;
            if term < total * NEGLIGIBLE {
                break;
            }
        }
        term = 1.0;
        for i in (lo + 1..=anchor).rev() {
            term *= i as f64 / ((n - i + 1) as f64 * odds);
            total += term;
            if term < total * NEGLIGIBLE {
                break;
            }
        }
        (ln_pmf(n, anchor, p) + total.ln()).exp().min(1.0)
    }
}

/// `ln P[X = k]` for `Bin(n, p)` with `0 < p < 1`, by Loader's saddle-point
/// expansion (C. Loader, "Fast and accurate computation of binomial
/// probabilities", 2000; the method of R's `dbinom`): the large terms of
/// `ln C(n, k)` and `k·ln p` cancel analytically, leaving Stirling remainders and
/// deviance terms that are each computed to full relative precision.
fn ln_pmf(n: u64, k: u64, p: f64) -> f64 {
    let (nf, kf) = (n as f64, k as f64);
    if k == 0 {
        return nf * (-p).ln_1p();
    }
    if k == n {
        return nf * p.ln();
    }
    let rest = (n - k) as f64;
    let lc = stirling_remainder(n)
        - stirling_remainder(k)
        - stirling_remainder(n - k)
        - deviance(kf, nf * p)
        - deviance(rest, nf * (1.0 - p));
    lc - 0.5 * (2.0 * std::f64::consts::PI * kf * rest / nf).ln()
}

/// `ln k! − ((k + ½)·ln k − k + ½·ln 2π)`, the error of Stirling's formula:
/// from the exact factorial below 16, from its asymptotic series above (error
/// below the first omitted term, `691/(360360·k¹¹)`, under 1e-15 at `k = 16`).
fn stirling_remainder(k: u64) -> f64 {
    let x = k as f64;
    if k < 16 {
        let ln_factorial = ((1..=k).product::<u64>() as f64).ln();
        return ln_factorial - ((x + 0.5) * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI).ln());
    }
    let inv = 1.0 / x;
    let inv2 = inv * inv;
    inv * (1.0 / 12.0
        - inv2 * (1.0 / 360.0 - inv2 * (1.0 / 1260.0 - inv2 * (1.0 / 1680.0 - inv2 / 1188.0))))
}

/// `x·ln(x/m) + m − x`, the deviance of observing `x` against mean `m`, without
/// cancellation when `x ≈ m` (a series in `v = (x − m)/(x + m)` there).
fn deviance(x: f64, m: f64) -> f64 {
    if (x - m).abs() < 0.1 * (x + m) {
        let v = (x - m) / (x + m);
        let mut sum = (x - m) * v;
        let mut term = 2.0 * x * v;
        let v2 = v * v;
        for j in 1..1000 {
            term *= v2;
            let next = sum + term / f64::from(2 * j + 1);
            if next == sum {
                break;
            }
            sum = next;
        }
        sum
    } else {
        x * (x / m).ln() + m - x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(got: f64, want: f64, rel: f64) -> bool {
        (got - want).abs() <= rel * want.abs()
    }

    /// `P[X ≥ k]` term by term with exact binomial coefficients, for small `n`.
    fn direct_at_least(n: u64, p: f64, k: u64) -> f64 {
        let choose = |i: u64| -> f64 {
            // C(n, i) for n ≤ 60 fits in a u64; build it exactly.
            let mut c: u64 = 1;
            for j in 0..i {
                c = c * (n - j) / (j + 1);
            }
            c as f64
        };
        (k..=n)
            .map(|i| choose(i) * p.powi(i as i32) * (1.0 - p).powi((n - i) as i32))
            .sum()
    }

    #[test]
    fn stirling_remainder_is_continuous_where_the_series_takes_over() {
        let stirling = |k: u64| {
            let x = k as f64;
            (x + 0.5) * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI).ln()
        };
        // 16! and 17! are exactly representable in f64.
        for (k, factorial) in [(16u64, 20_922_789_888_000f64), (17, 355_687_428_096_000f64)] {
            let exact = factorial.ln() - stirling(k);
            assert!((stirling_remainder(k) - exact).abs() < 1e-13, "at {k}");
        }
        // The remainder is about 1/(12k) everywhere.
        for k in 1..3000u64 {
            let r = stirling_remainder(k) * 12.0 * k as f64;
            assert!((0.9..=1.0).contains(&r), "at {k}: {r}");
        }
    }

    #[test]
    fn deviance_agrees_on_both_sides_of_its_switch() {
        for (x, m) in [(10.0f64, 9.0f64), (100.0, 90.0), (100.0, 81.0), (3.0, 2.5)] {
            let direct = x * (x / m).ln() + m - x;
            assert!(
                (deviance(x, m) - direct).abs() < 1e-12 * direct.max(1e-3),
                "{x}, {m}"
            );
        }
        assert_eq!(deviance(5.0, 5.0), 0.0);
    }

    /// Reference tails computed exactly with Python's `fractions` module
    /// (`sum(comb(n, i) * p**i * (1-p)**(n-i) for i in range(k, n+1))`).
    #[test]
    fn far_tails_match_exact_rational_values() {
        let cases = [
            (2000, 0.5, 1250, 1.687_731_855_720_064_8e-29),
            (1000, 128.0 / 999.0, 300, 3.356_910_365_235_659e-46),
            (400, 80.0 / 399.0, 150, 6.204_573_893_971_4e-16),
            (160, 100.0 / 333.0, 120, 1.275_389_103_610_245e-31),
            (2000, 0.01, 80, 1.862_548_643_922_923_5e-24),
            (66, 40.0 / 99.0, 20, 0.965_785_158_242_006_8),
        ];
        for (n, p, k, want) in cases {
            let got = Binomial::new(n, p).at_least(k);
            assert!(
                close(got, want, 1e-9),
                "Bin({n}, {p}) ≥ {k}: {got:e} vs {want:e}"
            );
        }
        let lower = [
            (1999, 0.7, 1200, 1.049_938_496_699_7e-21),
            (800, 1.0 / 3.0, 200, 1.235_737_046_951_339_5e-7),
        ];
        for (n, p, k, want) in lower {
            let got = Binomial::new(n, p).below(k);
            assert!(
                close(got, want, 1e-9),
                "Bin({n}, {p}) < {k}: {got:e} vs {want:e}"
            );
        }
    }

    #[test]
    fn degenerate_cases() {
        assert_eq!(Binomial::new(10, 0.3).at_least(0), 1.0);
        assert_eq!(Binomial::new(10, 0.3).below(0), 0.0);
        assert_eq!(Binomial::new(10, 0.3).at_least(11), 0.0);
        assert_eq!(Binomial::new(10, 0.0).at_least(1), 0.0);
        assert_eq!(Binomial::new(10, 0.0).below(1), 1.0);
        assert_eq!(Binomial::new(10, 1.0).at_least(10), 1.0);
        assert_eq!(Binomial::new(10, 1.0).below(10), 0.0);
        assert_eq!(Binomial::new(0, 0.5).at_least(1), 0.0);
        assert_eq!(Binomial::new(0, 0.5).at_least(0), 1.0);
    }

    proptest! {
        #[test]
        fn tail_is_monotone_in_the_threshold(n in 0usize..2500, p in 0.0f64..=1.0, k in 0usize..2500) {
            let b = Binomial::new(n, p);
            prop_assert!(b.at_least(k + 1) <= b.at_least(k) * (1.0 + 1e-12));
        }

        #[test]
        fn tail_and_complement_sum_to_one(n in 0usize..2500, p in 0.0f64..=1.0, k in 0usize..2600) {
            let b = Binomial::new(n, p);
            let sum = b.at_least(k) + b.below(k);
            prop_assert!((sum - 1.0).abs() < 1e-12, "sum {}", sum);
        }

        #[test]
        fn tail_matches_direct_summation(n in 0u64..=60, p in 0.001f64..0.999, k in 0u64..=61) {
            let got = Binomial::new(n as usize, p).at_least(k as usize);
            let want = direct_at_least(n, p, k);
            // The direct sum is itself only good to about 1e-13 of its largest term.
            prop_assert!((got - want).abs() <= 1e-10 * want + 1e-14, "{} vs {}", got, want);
        }
    }
}
