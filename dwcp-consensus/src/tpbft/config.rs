//! T-PBFT parameters.

use crate::pbft::PbftConfig;

/// Parameters of a T-PBFT node.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TpbftConfig {
    /// The PBFT the committee runs.
    pub pbft: PbftConfig,
    /// Committee size wanted: the largest `3f_c + 1` at most this and the node count.
    pub committee_size: usize,
    /// Sequence numbers per epoch: a multiple of the checkpoint interval, above the
    /// watermark window.
    pub epoch_length: u64,
    /// Restart without replaying the evidence of the epoch's stored batches (the
    /// ledger stays as the epoch snapshot has it). Only for the test that shows the
    /// restart tests catch it; it exists only with the `unsafe-test-hooks` feature.
    #[cfg(feature = "unsafe-test-hooks")]
    #[serde(skip)]
    pub unsafe_skip_replay: bool,
}

impl Default for TpbftConfig {
    fn default() -> Self {
        TpbftConfig {
            pbft: PbftConfig::default(),
            committee_size: super::DEFAULT_COMMITTEE_SIZE,
            epoch_length: 256,
            #[cfg(feature = "unsafe-test-hooks")]
            unsafe_skip_replay: false,
        }
    }
}

impl TpbftConfig {
    /// Why these parameters cannot run, if they cannot.
    pub fn validate(&self) -> Result<(), String> {
        self.pbft.validate()?;
        if self.committee_size == 0 {
            return Err("tpbft: committee_size must be positive".into());
        }
        if self.pbft.batch_size < 2 {
            // The evidence record takes the first place of every batch.
            return Err("tpbft: pbft.batch_size must be at least 2".into());
        }
        let k = self.pbft.checkpoint_interval;
        if !self.epoch_length.is_multiple_of(k) || self.epoch_length <= self.pbft.window {
            return Err(format!(
                "tpbft: epoch_length ({}) must be a multiple of checkpoint_interval ({k}) \
                 and above the window ({})",
                self.epoch_length, self.pbft.window
            ));
        }
        Ok(())
    }
}
