//! PBFT in the registry.

use super::{thousands, BenchParams, Protocol};
use crate::pbft::{Pbft, PbftConfig};
use dwcp_core::{Committee, NodeKeys, Recovered};

/// Committed batches handed back to a restarted PBFT replica, at least: its
/// position and hash chain come from the newest, its repeat window from the rest.
const RESTORE_TAIL: usize = 4096;

/// PBFT (Castro and Liskov, OSDI '99): [`crate::pbft`].
pub struct PbftProtocol;

impl Protocol for PbftProtocol {
    const NAME: &'static str = "pbft";
    const SUMMARY: &'static str =
        "PBFT with signed messages: the baseline, O(n²) messages per batch";
    const BENCH_USES: &'static [&'static str] = &["batch_size", "timeout_delay"];

    type Config = PbftConfig;
    type Engine = Pbft;

    fn validate(cfg: &PbftConfig) -> Result<(), String> {
        cfg.validate()
    }

    fn build(
        keys: NodeKeys,
        committee: Committee,
        cfg: &PbftConfig,
        recovered: Recovered,
    ) -> Result<Pbft, String> {
        Pbft::new(keys, committee, cfg.clone(), recovered).map_err(|e| e.to_string())
    }

    fn restore_tail(cfg: &PbftConfig) -> usize {
        usize::try_from(cfg.dedup_window)
            .unwrap_or(usize::MAX)
            .max(RESTORE_TAIL)
    }

    /// The simulated client sends every transaction to every replica, so backups
    /// need not relay them to the primary.
    fn sim_config() -> PbftConfig {
        PbftConfig {
            forward_requests: false,
            ..PbftConfig::default()
        }
    }

    /// Narwhal's `batch_size` (bytes) becomes transactions per pre-prepare,
    /// `timeout_delay` the view-change timeout.
    fn bench_config(p: &BenchParams) -> Result<PbftConfig, String> {
        let mut c = PbftConfig::default();
        if let Some(bytes) = p.batch_size {
            c.batch_size = (bytes / p.tx_size.max(1)).max(1);
        }
        if let Some(t) = p.timeout_delay {
            c.view_change_timeout = t;
        }
        c.validate()?;
        Ok(c)
    }

    fn describe(c: &PbftConfig) -> Vec<String> {
        vec![
            format!(
                "Batch size: {} transactions per pre-prepare",
                thousands(c.batch_size as u64)
            ),
            format!(
                "Timeout delay: {} ms (view-change timeout)",
                thousands(c.view_change_timeout.as_millis() as u64)
            ),
            format!(
                "Window: {} sequence numbers, checkpoint every {}",
                c.window, c.checkpoint_interval
            ),
        ]
    }
}
