//! T-PBFT in the registry.

use super::{thousands, BenchParams, PbftProtocol, Protocol};
use crate::tpbft::{Tpbft, TpbftConfig};
use dwcp_core::{Committee, NodeKeys, Recovered};

/// T-PBFT (Gao, Yu, Zhu and Cai, 2019): [`crate::tpbft`].
pub struct TpbftProtocol;

impl Protocol for TpbftProtocol {
    const NAME: &'static str = "tpbft";
    const SUMMARY: &'static str =
        "T-PBFT: PBFT among a committee that EigenTrust elects each epoch, observers outside it";
    const BENCH_USES: &'static [&'static str] = &["batch_size", "timeout_delay"];

    type Config = TpbftConfig;
    type Engine = Tpbft;

    fn validate(cfg: &TpbftConfig) -> Result<(), String> {
        cfg.validate()
    }

    fn build(
        keys: NodeKeys,
        committee: Committee,
        cfg: &TpbftConfig,
        recovered: Recovered,
    ) -> Result<Tpbft, String> {
        Tpbft::new(keys, committee, cfg.clone(), recovered).map_err(|e| e.to_string())
    }

    /// A colluder's commit proofs favour its group ([`Tpbft::colluding`]).
    fn build_colluding(
        keys: NodeKeys,
        committee: Committee,
        cfg: &TpbftConfig,
        recovered: Recovered,
        colluders: &std::collections::BTreeSet<dwcp_core::NodeId>,
    ) -> Result<Tpbft, String> {
        Ok(Self::build(keys, committee, cfg, recovered)?.colluding(colluders.clone()))
    }

    /// A restart replays the batches of the epoch its snapshot starts (at most
    /// `epoch_length` of them), with the repeat window before the newest
    /// (`dedup_window`); the watermark window is a margin. See
    /// `tpbft/engine/restart.rs`.
    fn restore_tail(cfg: &TpbftConfig) -> usize {
        let need = cfg
            .epoch_length
            .saturating_add(cfg.pbft.window)
            .saturating_add(cfg.pbft.dedup_window);
        usize::try_from(need).unwrap_or(usize::MAX)
    }

    /// The simulated client sends every transaction to every node, and epochs are
    /// short so that runs cross several.
    fn sim_config() -> TpbftConfig {
        TpbftConfig {
            pbft: crate::pbft::PbftConfig {
                window: 32,
                ..PbftProtocol::sim_config()
            },
            epoch_length: 48,
            ..TpbftConfig::default()
        }
    }

    fn bench_config(p: &BenchParams) -> Result<TpbftConfig, String> {
        let c = TpbftConfig {
            pbft: PbftProtocol::bench_config(p)?,
            ..TpbftConfig::default()
        };
        c.validate()?;
        Ok(c)
    }

    fn is_engine_record(tx: &[u8]) -> bool {
        tx.starts_with(crate::tpbft::EVIDENCE_TAG)
    }

    fn describe(c: &TpbftConfig) -> Vec<String> {
        vec![
            format!(
                "Batch size: {} transactions per pre-prepare",
                thousands(c.pbft.batch_size as u64)
            ),
            format!(
                "Committee: up to {} members, epochs of {} batches",
                c.committee_size, c.epoch_length
            ),
        ]
    }
}
