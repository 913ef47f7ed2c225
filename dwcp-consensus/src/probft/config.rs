//! ProBFT parameters: the probabilistic quorum (`f_max`, `l`, `o`, checked at
//! start-up against `ε_safe` and `π_live`) and the replica's batching and timers.

use super::params::{cheapest, Checked, ProbftParams, DEFAULT_EPS_SAFE, DEFAULT_PI_LIVE};
use std::time::Duration;

/// Parameters of a ProBFT replica.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProbftConfig {
    /// Byzantine replicas the quorums are sized against; `None` takes `⌊n/5⌋`.
    /// `⌊(n−1)/3⌋` never passes the start-up check (see [`super::params`]).
    pub f_max: Option<usize>,
    /// The quorum knob: `q = ⌈l·√n⌉`. With `o`, or neither: `None` for both takes
    /// the cheapest setting the start-up check accepts ([`cheapest`]).
    pub l: Option<f64>,
    /// The sample knob: each vote goes to `s = ⌈o·q⌉` replicas.
    pub o: Option<f64>,
    /// Largest accepted probability, per replica and view, that `2·f_max`
    /// replicas make a quorum for this replica.
    pub eps_safe: f64,
    /// Smallest accepted probability that a correct replica decides in a view with
    /// a correct leader and `f_max` silent replicas.
    pub pi_live: f64,
    /// Most transactions in one proposal; a replica refuses a larger one.
    pub batch_size: usize,
    /// Most transaction bytes in one proposal; a replica refuses a larger one.
    pub max_batch_bytes: usize,
    /// Longest wait for a fuller batch before the leader proposes what it has.
    #[serde(rename = "max_batch_delay_ms", with = "dwcp_core::millis")]
    pub max_batch_delay: Duration,
    /// Time in a view without a decision, with work waiting, before a view change
    /// (doubled at each further attempt, up to 64 times).
    #[serde(rename = "view_change_timeout_ms", with = "dwcp_core::millis")]
    pub view_change_timeout: Duration,
    /// Decided slots kept in memory with their decision certificates, for peers
    /// that catch up.
    pub retain_decided: usize,
    /// Decided slots per catch-up reply.
    pub fetch_batch: usize,
    /// Sequence numbers over which executed transactions are remembered to drop
    /// repeats.
    pub dedup_window: u64,
    /// Most client transactions waiting to be ordered; further ones are dropped.
    pub max_pending: usize,
    /// Relay transactions submitted to a replica to the current leader (they
    /// also wait here, for a later leader). Turn off when clients send every
    /// transaction to every replica (as the simulator's client does).
    pub forward_requests: bool,
    /// Apply the evidence rule (a replica that holds two leader-signed headers for
    /// one view and sequence number stops voting in that view and does not
    /// decide). Only the `unsafe-test-hooks` feature can turn it off, for the test
    /// that shows the simulator catches the forks a split vote then causes.
    #[cfg(feature = "unsafe-test-hooks")]
    #[serde(skip)]
    pub unsafe_no_evidence_rule: bool,
}

impl Default for ProbftConfig {
    fn default() -> Self {
        ProbftConfig {
            f_max: None,
            l: None,
            o: None,
            eps_safe: DEFAULT_EPS_SAFE,
            pi_live: DEFAULT_PI_LIVE,
            batch_size: 512,
            max_batch_bytes: 32 << 20,
            max_batch_delay: Duration::from_millis(5),
            view_change_timeout: Duration::from_millis(800),
            retain_decided: 1024,
            fetch_batch: 64,
            dedup_window: 4096,
            max_pending: 1 << 20,
            forward_requests: true,
            #[cfg(feature = "unsafe-test-hooks")]
            unsafe_no_evidence_rule: false,
        }
    }
}

impl ProbftConfig {
    /// The declared fault bound for `n` replicas.
    pub fn f_max_for(&self, n: usize) -> usize {
        self.f_max.unwrap_or(n / 5)
    }

    /// The quorum and sample sizes for `n` replicas, or why the configuration does
    /// not pass the start-up check (with both figures and what to change).
    pub fn quorum(&self, n: usize) -> Result<Checked, String> {
        let f = self.f_max_for(n);
        let params = match (self.l, self.o) {
            (Some(l), Some(o)) => ProbftParams {
                eps_safe: self.eps_safe,
                pi_live: self.pi_live,
                ..ProbftParams::new(n, f, l, o)
            },
            (None, None) => cheapest(n, f, self.eps_safe, self.pi_live).ok_or_else(|| {
                format!(
                    "probft: no l, o passes the start-up check at n = {n}, f_max = {f} \
                     (ε_safe {}, π_live {}): lower f_max; `dwcpd probft-params --nodes {n} \
                     --f-max {f}` shows the table",
                    self.eps_safe, self.pi_live
                )
            })?,
            _ => return Err("probft: set both l and o, or neither".into()),
        };
        params.check().map_err(|e| format!("probft: {e}"))
    }

    /// Why the replica-independent parameters cannot run, if they cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.batch_size == 0 || self.fetch_batch == 0 || self.retain_decided == 0 {
            return Err(
                "probft: batch_size, fetch_batch and retain_decided must be positive".into(),
            );
        }
        if self.view_change_timeout.is_zero() {
            return Err("probft: view_change_timeout_ms must be positive".into());
        }
        if matches!((self.l, self.o), (Some(_), None) | (None, Some(_))) {
            return Err("probft: set both l and o, or neither".into());
        }
        Ok(())
    }

    /// Whether the evidence rule applies (always, outside test builds).
    pub(crate) fn evidence_rule(&self) -> bool {
        #[cfg(feature = "unsafe-test-hooks")]
        {
            !self.unsafe_no_evidence_rule
        }
        #[cfg(not(feature = "unsafe-test-hooks"))]
        {
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_take_the_cheapest_accepted_setting_and_refuse_f_at_a_third() {
        let c = ProbftConfig::default();
        let q = c.quorum(100).expect("n = 100, f_max = 20 has a setting");
        assert_eq!(q.params().f_max, 20);
        assert!(q.figures().risk <= c.eps_safe && q.figures().p_live >= c.pi_live);
        let third = ProbftConfig {
            f_max: Some(33),
            ..ProbftConfig::default()
        };
        assert!(third.quorum(100).is_err());
        let half = ProbftConfig {
            l: Some(2.0),
            ..ProbftConfig::default()
        };
        assert!(half.validate().is_err());
    }
}
