//! ProBFT in the registry.

use super::{thousands, BenchParams, Protocol};
use crate::probft::{Probft, ProbftConfig};
use dwcp_core::{Committee, NodeKeys, Recovered};

/// Committed batches handed back to a restarted ProBFT replica, at least: its
/// position and hash chain come from the newest, its repeat window from the rest.
const RESTORE_TAIL: usize = 4096;

/// ProBFT (Avelãs, Heydari, Alchieri, Distler and Bessani, PODC 2024):
/// [`crate::probft`].
pub struct ProbftProtocol;

impl Protocol for ProbftProtocol {
    const NAME: &'static str = "probft";
    const SUMMARY: &'static str =
        "ProBFT: votes to VRF-sampled replicas, quorums of l·√n, O(n√n) messages, safe w.h.p.";
    const BENCH_USES: &'static [&'static str] = &["batch_size", "timeout_delay"];

    type Config = ProbftConfig;
    type Engine = Probft;

    fn validate(cfg: &ProbftConfig) -> Result<(), String> {
        cfg.validate()
    }

    fn build(
        keys: NodeKeys,
        committee: Committee,
        cfg: &ProbftConfig,
        recovered: Recovered,
    ) -> Result<Probft, String> {
        Probft::new(keys, committee, cfg.clone(), recovered).map_err(|e| e.to_string())
    }

    fn restore_tail(cfg: &ProbftConfig) -> usize {
        usize::try_from(cfg.dedup_window)
            .unwrap_or(usize::MAX)
            .max(RESTORE_TAIL)
    }

    /// The simulated client sends every transaction to every replica.
    fn sim_config() -> ProbftConfig {
        ProbftConfig {
            forward_requests: false,
            ..ProbftConfig::default()
        }
    }

    /// Narwhal's `batch_size` (bytes) becomes transactions per proposal,
    /// `timeout_delay` the view-change timeout.
    fn bench_config(p: &BenchParams) -> Result<ProbftConfig, String> {
        let mut c = ProbftConfig::default();
        if let Some(bytes) = p.batch_size {
            c.batch_size = (bytes / p.tx_size.max(1)).max(1);
        }
        if let Some(t) = p.timeout_delay {
            c.view_change_timeout = t;
        }
        c.validate()?;
        Ok(c)
    }

    fn describe(c: &ProbftConfig) -> Vec<String> {
        vec![
            format!(
                "Batch size: {} transactions per proposal",
                thousands(c.batch_size as u64)
            ),
            format!(
                "Quorum: f_max {}, l {}, o {} (none: n/5 and the cheapest accepted)",
                c.f_max.map_or("n/5".into(), |f| f.to_string()),
                c.l.map_or("cheapest".into(), |l| l.to_string()),
                c.o.map_or("cheapest".into(), |o| o.to_string()),
            ),
            format!(
                "Timeout delay: {} ms (view-change timeout)",
                thousands(c.view_change_timeout.as_millis() as u64)
            ),
        ]
    }
}
