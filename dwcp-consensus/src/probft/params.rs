//! ProBFT's parameters and the start-up check that refuses an unsafe or unlive set.
//!
//! # The model
//!
//! `n` replicas, at most `f_max` of them Byzantine (declared by the operator), two
//! knobs `l` and `o`:
//!
//! - quorum `q = ⌈l·√n⌉`: a replica is prepared (decides) on `q` matching PREPAREs
//!   (COMMITs);
//! - sample `s = ⌈o·q⌉`, capped at `n − 1`: every replica sends each PREPARE and
//!   COMMIT to `s` distinct other replicas chosen by its VRF ([`mod@super::sample`]).
//!
//! Each sender's sample is drawn uniformly from the `n − 1` others, independently
//! of every other sender, so a given receiver is in it with probability exactly
//! `p = s/(n − 1)`, and the votes it gets from `k` senders are exactly
//! `Bin(k, p)`. (The design note used `s/n`, an approximation.)
//!
//! **Counting rule.** A replica's own vote never counts towards `q`: `q` counts
//! votes from distinct *other* replicas whose samples contain the receiver. The
//! sample excludes its sender, so a replica's own vote is not a sampled vote, and
//! with this rule both figures below are exact or conservative. A correct replica
//! that decides has itself committed, so among `2·f_max` committers it hears at
//! most `2·f_max − 1` others, and `P[Bin(2·f_max − 1, p) ≥ q] ≤ P[Bin(2·f_max, p) ≥ q]`;
//! had it counted itself, its risk would be `P[Bin(2·f_max − 1, p) ≥ q − 1]`,
//! which is larger than the formula. The engine follows this rule.
//!
//! # The check
//!
//! - **Safety risk** per replica and view, `P[Bin(2·f_max, p) ≥ q] ≤ ε_safe`: the
//!   chance that a replica decides although only `2·f_max` replicas (the faulty
//!   ones and as many correct ones) committed, too few for a view change to be
//!   sure to see the value (the "view-change wall" of `notes/probft.md`).
//! - **Liveness** per view: a correct replica decides on its own with probability
//!   at least `π_live` while the faulty ones stay silent. It is prepared when `q`
//!   of the `n − f_max − 1` other correct replicas' PREPAREs reach it,
//!   `p_live = P[Bin(n − f_max − 1, p) ≥ q]`; it decides when `q` COMMITs do, and
//!   only prepared replicas send them: `p_decide ≈ P[Bin(n − f_max − 1, p·p_live) ≥ q]`,
//!   taking each other correct replica as prepared independently with probability
//!   `p_live`. The check requires `p_decide ≥ π_live`. (The first version checked
//!   `p_live` only; the simulator measured a decide rate of 0.66 where it
//!   predicted 0.90, and this model's 0.65: `examples/probft_decide_rate.rs`.) A
//!   replica that does not decide on its own takes the slot from a peer's
//!   decision certificate.
//!
//! With `f_max = ⌊(n − 1)/3⌋` the two binomials are (almost) the same, `2·f_max`
//! and `n − f_max − 1` trials, so no `l`, `o` passes: the operator must declare a
//! smaller `f_max`, that is, a weaker adversary. That is on purpose.
//!
//! Messages per decision: PROPOSE to all `n − 1`, then PREPARE and COMMIT from all
//! `n` replicas to `s` each, `(n − 1) + 2·n·s`, against PBFT's `(n − 1)(2n + 1)`.

use super::binomial::Binomial;
use std::fmt;

/// The default bound on the safety risk per replica and view.
pub const DEFAULT_EPS_SAFE: f64 = 1e-4;
/// The default lower bound on the probability that a view decides.
pub const DEFAULT_PI_LIVE: f64 = 0.85;

/// `⌈x⌉`, forgiving binary rounding: `o = 1.15`, `q = 20` gives `s = 23`, as a
/// person computes it, although `1.15·20` is `22.999…` or `23.000…1` in `f64`.
fn ceil_knob(x: f64) -> usize {
    (x - 1e-9).ceil() as usize
}

/// PBFT's messages per decision at `n` replicas: PRE-PREPARE to `n − 1`, then
/// PREPARE and COMMIT from all to all, `(n − 1)(2n + 1)`.
pub fn pbft_messages_per_decision(n: usize) -> u64 {
    (n as u64).saturating_sub(1) * (2 * n as u64 + 1)
}

/// A ProBFT configuration: committee size, declared fault bound, the two knobs and
/// the thresholds the start-up check applies.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProbftParams {
    /// Replicas in the committee.
    pub n: usize,
    /// The most Byzantine replicas the configuration must tolerate.
    pub f_max: usize,
    /// Quorum knob: `q = ⌈l·√n⌉`.
    pub l: f64,
    /// Sample knob: `s = ⌈o·q⌉` (capped at `n − 1`).
    pub o: f64,
    /// Largest accepted safety risk per replica and view.
    pub eps_safe: f64,
    /// Smallest accepted probability that a correct replica decides a view's slots
    /// on its own ([`Figures::p_decide`]).
    pub pi_live: f64,
}

impl ProbftParams {
    /// A configuration with the default thresholds [`DEFAULT_EPS_SAFE`] and
    /// [`DEFAULT_PI_LIVE`].
    pub fn new(n: usize, f_max: usize, l: f64, o: f64) -> ProbftParams {
        ProbftParams {
            n,
            f_max,
            l,
            o,
            eps_safe: DEFAULT_EPS_SAFE,
            pi_live: DEFAULT_PI_LIVE,
        }
    }

    /// The start-up check: computes [`Figures`] and accepts the configuration only
    /// if the safety risk is at most `eps_safe` and liveness at least `pi_live`.
    pub fn check(&self) -> Result<Checked, ParamsError> {
        if !(self.eps_safe > 0.0 && self.eps_safe < 1.0) {
            return Err(ParamsError::Knob {
                name: "eps_safe",
                value: self.eps_safe,
                expected: "0 < eps_safe < 1",
            });
        }
        if !(self.pi_live > 0.0 && self.pi_live <= 1.0) {
            return Err(ParamsError::Knob {
                name: "pi_live",
                value: self.pi_live,
                expected: "0 < pi_live ≤ 1",
            });
        }
        let figures = Figures::evaluate(self.n, self.f_max, self.l, self.o)?;
        if figures.accepted(self.eps_safe, self.pi_live) {
            Ok(Checked {
                params: *self,
                figures,
            })
        } else {
            Err(ParamsError::Rejected(Rejection {
                figures,
                eps_safe: self.eps_safe,
                pi_live: self.pi_live,
            }))
        }
    }
}

/// A configuration that passed [`ProbftParams::check`], with its figures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Checked {
    params: ProbftParams,
    figures: Figures,
}

impl Checked {
    /// The accepted configuration.
    pub fn params(&self) -> &ProbftParams {
        &self.params
    }

    /// Its quorum, sample size and probabilities.
    pub fn figures(&self) -> &Figures {
        &self.figures
    }
}

/// What one `(n, f_max, l, o)` point gives: sizes, probabilities and cost.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figures {
    /// Replicas.
    pub n: usize,
    /// Declared fault bound.
    pub f_max: usize,
    /// Quorum knob.
    pub l: f64,
    /// Sample knob.
    pub o: f64,
    /// Quorum: matching votes from other replicas needed to be prepared or decide.
    pub q: usize,
    /// Sample size: recipients of each PREPARE and COMMIT.
    pub s: usize,
    /// `s/(n − 1)`: the probability that a given receiver is in a sender's sample.
    pub p: f64,
    /// `P[Bin(2·f_max, p) ≥ q]`: the safety risk per replica and view.
    pub risk: f64,
    /// `P[Bin(n − f_max − 1, p) ≥ q]`: the probability that a correct replica is
    /// prepared in a view with a correct leader and `f_max` silent replicas.
    pub p_live: f64,
    /// `P[Bin(n − f_max − 1, p·p_live) ≥ q]`: the probability that it also gets
    /// `q` COMMITs, which only prepared replicas send (taking each as prepared
    /// independently with probability `p_live`), so decides on its own.
    pub p_decide: f64,
}

impl Figures {
    /// Computes `q`, `s` and both probabilities. Fails if the committee or knobs make
    /// no sense (`n < 2`, `3·f_max ≥ n`, non-positive or non-finite knobs), if
    /// `q > n − 1` or if `s < q`.
    pub fn evaluate(n: usize, f_max: usize, l: f64, o: f64) -> Result<Figures, ParamsError> {
        if n < 2 || 3 * f_max >= n {
            return Err(ParamsError::Committee { n, f_max });
        }
        for (name, value) in [("l", l), ("o", o)] {
            if !(value.is_finite() && value > 0.0) {
                return Err(ParamsError::Knob {
                    name,
                    value,
                    expected: "a finite number above 0",
                });
            }
        }
        let q = ceil_knob(l * (n as f64).sqrt());
        if q > n - 1 {
            return Err(ParamsError::QuorumTooLarge { q, n });
        }
        let s = ceil_knob(o * q as f64).min(n - 1);
        if s < q {
            return Err(ParamsError::SampleTooSmall { q, s });
        }
        let p = s as f64 / (n - 1) as f64;
        let p_live = Binomial::new(n - f_max - 1, p).at_least(q);
        Ok(Figures {
            n,
            f_max,
            l,
            o,
            q,
            s,
            p,
            risk: Binomial::new(2 * f_max, p).at_least(q),
            p_live,
            p_decide: Binomial::new(n - f_max - 1, p * p_live).at_least(q),
        })
    }

    /// Whether the risk is at most `eps_safe` and the decide rate at least
    /// `pi_live`.
    pub fn accepted(&self, eps_safe: f64, pi_live: f64) -> bool {
        self.risk <= eps_safe && self.p_decide >= pi_live
    }

    /// `(n − 1) + 2·n·s`: PROPOSE to all, PREPARE and COMMIT to `s` each.
    pub fn messages_per_decision(&self) -> u64 {
        (self.n as u64 - 1) + 2 * self.n as u64 * self.s as u64
    }

    /// Messages per decision as a fraction of PBFT's at the same `n`.
    pub fn ratio_vs_pbft(&self) -> f64 {
        self.messages_per_decision() as f64 / pbft_messages_per_decision(self.n) as f64
    }
}

/// Every distinct `(q, s)` the search grid reaches at `n` and `f_max`, cheapest
/// first, whether accepted or not: for display and for [`cheapest`].
///
/// The grid is `l` from 1.0 to 8.0 in steps of 0.1 and `o` from 1.05 to 4.0 in
/// steps of 0.05. Many points give the same `q` and `s`, hence the same figures;
/// each pair is listed once, under its smallest `l` and then smallest `o`. Rows are
/// ordered by messages per decision (that is, by `s`), then `l`, then `o`. Empty if
/// `n < 2` or `3·f_max ≥ n`.
pub fn table(n: usize, f_max: usize) -> Vec<Figures> {
    let mut rows: Vec<Figures> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for tenths in 10..=80u32 {
        for twentieths in 21..=80u32 {
            let (l, o) = (f64::from(tenths) / 10.0, f64::from(twentieths) / 20.0);
            let Ok(row) = Figures::evaluate(n, f_max, l, o) else {
                continue;
            };
            if seen.insert((row.q, row.s)) {
                rows.push(row);
            }
        }
    }
    rows.sort_by(|a, b| {
        a.s.cmp(&b.s)
            .then(a.l.total_cmp(&b.l))
            .then(a.o.total_cmp(&b.o))
    });
    rows
}

/// The accepted configuration with the fewest messages per decision on the grid of
/// [`table`]; ties go to the smallest `s`, then the smallest `l`, then the
/// smallest `o`. `None` if no grid point passes (always so at `f_max = ⌊(n−1)/3⌋`).
pub fn cheapest(n: usize, f_max: usize, eps_safe: f64, pi_live: f64) -> Option<ProbftParams> {
    table(n, f_max)
        .into_iter()
        .find(|row| row.accepted(eps_safe, pi_live))
        .map(|row| ProbftParams {
            n,
            f_max,
            l: row.l,
            o: row.o,
            eps_safe,
            pi_live,
        })
}

/// Why a ProBFT configuration was refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ParamsError {
    /// The committee cannot tolerate `f_max` faults at all.
    #[error("ProBFT needs n ≥ 2 and 3·f_max < n; got n = {n}, f_max = {f_max}")]
    Committee {
        /// Replicas.
        n: usize,
        /// Declared fault bound.
        f_max: usize,
    },
    /// A knob or threshold is out of range.
    #[error("{name} = {value} is out of range: need {expected}")]
    Knob {
        /// The knob.
        name: &'static str,
        /// Its value.
        value: f64,
        /// The accepted range.
        expected: &'static str,
    },
    /// The quorum exceeds the replicas that can vote for a receiver.
    #[error("q = ⌈l·√n⌉ = {q} exceeds the n − 1 = {} other replicas; lower l", n - 1)]
    QuorumTooLarge {
        /// The quorum.
        q: usize,
        /// Replicas.
        n: usize,
    },
    /// Samples smaller than the quorum: nobody could ever be prepared.
    #[error("s = {s} is smaller than q = {q}; raise o above 1")]
    SampleTooSmall {
        /// The quorum.
        q: usize,
        /// The sample size.
        s: usize,
    },
    /// The risk is too high or liveness too low.
    #[error("{0}")]
    Rejected(Rejection),
}

/// A configuration that failed a threshold: both figures, both thresholds, and what
/// to change.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rejection {
    /// The figures of the refused configuration.
    pub figures: Figures,
    /// The safety threshold applied.
    pub eps_safe: f64,
    /// The liveness threshold applied.
    pub pi_live: f64,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = &self.figures;
        let safe = x.risk <= self.eps_safe;
        let live = x.p_decide >= self.pi_live;
        let verdict = |ok: bool| if ok { "ok" } else { "FAILS" };
        write!(
            f,
            "ProBFT parameters refused: n = {}, f_max = {}, l = {}, o = {} (q = {}, s = {}, \
             p = s/(n − 1) = {:.4}); safety risk P[Bin(2·f_max, p) ≥ q] = {:.3e}, must be \
             ≤ {:.1e}: {}; prepared P[Bin(n − f_max − 1, p) ≥ q] = {:.4}, decides \
             P[Bin(n − f_max − 1, p·{:.4}) ≥ q] = {:.4}, must be ≥ {}: {}. ",
            x.n,
            x.f_max,
            x.l,
            x.o,
            x.q,
            x.s,
            x.p,
            x.risk,
            self.eps_safe,
            verdict(safe),
            x.p_live,
            x.p_live,
            x.p_decide,
            self.pi_live,
            verdict(live),
        )?;
        // The mean vote count must sit below q among 2·f_max senders and above q
        // among n − f_max − 1: (n − 1)/(n − f_max − 1) < o < (n − 1)/(2·f_max).
        // Inside that window a larger l (so q) sharpens both figures.
        let others = (x.n - 1) as f64;
        let o_min = others / (x.n - x.f_max - 1) as f64;
        let o_max = others / (2 * x.f_max) as f64;
        if o_min >= o_max {
            write!(
                f,
                "No o works at this f_max (it would need {o_min:.3} < o < {o_max:.3}): \
                 lower f_max (⌊(n − 1)/3⌋ never passes)"
            )?;
        } else {
            let mut fixes = Vec::new();
            if !safe {
                fixes.push(format!("lower o (below {o_max:.3})"));
            }
            if !live {
                fixes.push(format!("raise o (above {o_min:.3})"));
            }
            fixes.push("raise l".to_owned());
            fixes.push("lower f_max".to_owned());
            write!(
                f,
                "To pass: {}; `dwcpd probft-params --nodes {} --f-max {}` shows the cheapest \
                 setting that does",
                fixes.join(", or "),
                x.n,
                x.f_max
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
