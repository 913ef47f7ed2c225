//! Bullshark in the registry.

use super::{thousands, BenchParams, Protocol};
use crate::bullshark::{BullsharkConfig, BullsharkEngine};
use dwcp_core::{Committee, NodeKeys, Recovered, Time};
use std::time::Duration;

/// Bullshark on a Narwhal-style DAG (Spiegelman et al., CCS '22):
/// [`crate::bullshark`].
pub struct BullsharkProtocol;

impl Protocol for BullsharkProtocol {
    const NAME: &'static str = "bullshark";
    const SUMMARY: &'static str =
        "Bullshark on a Narwhal-style certified DAG: the throughput engine";
    const BENCH_USES: &'static [&'static str] = &[
        "workers",
        "batch_size",
        "max_batch_delay",
        "header_size",
        "max_header_delay",
        "gc_depth",
        "sync_retry_delay",
    ];
    /// A round every 100 ms: it commits within a second of the network healing
    /// at 4 s, where PBFT may first need view changes with doubling timeouts.
    const TWINS_END: Time = Time(8_000_000);

    type Config = BullsharkConfig;
    type Engine = BullsharkEngine;

    fn validate(cfg: &BullsharkConfig) -> Result<(), String> {
        cfg.validate()
    }

    fn build(
        keys: NodeKeys,
        committee: Committee,
        cfg: &BullsharkConfig,
        recovered: Recovered,
    ) -> Result<BullsharkEngine, String> {
        BullsharkEngine::new(keys, committee, cfg.clone(), recovered).map_err(|e| e.to_string())
    }

    fn restore_tail(cfg: &BullsharkConfig) -> usize {
        cfg.restore_tail()
    }

    /// Small batches sealed quickly, a header at least every 100 ms, and repeats
    /// dropped (the simulated client sends every transaction to every node).
    fn sim_config() -> BullsharkConfig {
        BullsharkConfig {
            batch_size: 16 * 1024,
            max_batch_delay: Duration::from_millis(20),
            header_size: 32,
            max_header_delay: Duration::from_millis(100),
            sync_retry: Duration::from_millis(100),
            ..BullsharkConfig::default()
        }
    }

    /// Narwhal's node parameters map one to one. Each client transaction goes to
    /// one node, so repeats need not be dropped.
    fn bench_config(p: &BenchParams) -> Result<BullsharkConfig, String> {
        if p.workers.unwrap_or(1) != 1 {
            return Err("bullshark runs one worker per node (--workers 1)".into());
        }
        let d = BullsharkConfig::default();
        let c = BullsharkConfig {
            dedup_window: 0,
            batch_size: p.batch_size.unwrap_or(d.batch_size),
            max_batch_delay: p.max_batch_delay.unwrap_or(d.max_batch_delay),
            header_size: p.header_size.unwrap_or(d.header_size),
            max_header_delay: p.max_header_delay.unwrap_or(d.max_header_delay),
            gc_depth: p.gc_depth.unwrap_or(d.gc_depth),
            sync_retry: p.sync_retry_delay.unwrap_or(d.sync_retry),
            ..d
        };
        c.validate()?;
        Ok(c)
    }

    fn describe(c: &BullsharkConfig) -> Vec<String> {
        vec![
            "Workers per node: 1".to_string(),
            format!("Batch size: {} B", thousands(c.batch_size as u64)),
            format!(
                "Max batch delay: {} ms",
                thousands(c.max_batch_delay.as_millis() as u64)
            ),
            format!("Header size: {} B", thousands(c.header_size as u64)),
            format!(
                "Max header delay: {} ms",
                thousands(c.max_header_delay.as_millis() as u64)
            ),
            format!("GC depth: {} rounds", c.gc_depth),
            format!(
                "Sync retry delay: {} ms",
                thousands(c.sync_retry.as_millis() as u64)
            ),
        ]
    }
}
