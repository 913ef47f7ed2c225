//! T-PBFT parameters.

use crate::pbft::{Instance, PbftConfig, PrimaryGroup};
use dwcp_core::NodeId;

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
    /// Members of each epoch's primary group (`m`); each proposal needs
    /// `m − ⌊(m − 1)/3⌋` of their signatures. 0 turns the group off: a single
    /// primary per view, as in PBFT.
    pub primary_group_size: usize,
    /// How long a request may wait for the designated group member before another
    /// group member proposes it; below the view-change timeout.
    #[serde(rename = "takeover_after_ms", with = "dwcp_core::millis")]
    pub takeover_after: std::time::Duration,
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
            primary_group_size: super::DEFAULT_PRIMARY_GROUP_SIZE,
            takeover_after: std::time::Duration::from_millis(400),
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
        if self.primary_group_size > 0 && self.takeover_after >= self.pbft.view_change_timeout {
            return Err(format!(
                "tpbft: takeover_after_ms ({}) must be below view_change_timeout_ms ({}), or \
                 a silent group member causes a view change before anyone takes over",
                self.takeover_after.as_millis(),
                self.pbft.view_change_timeout.as_millis()
            ));
        }
        Ok(())
    }

    /// Epoch `epoch`'s PBFT instance among `members` (in id order), without its
    /// bounds: its first view `epoch · 2³²` (each epoch's views are its own, so
    /// that no two epochs sign view changes for one view) and its primary group.
    pub fn schedule(&self, members: &[NodeId], epoch: u64) -> Instance {
        Instance {
            members: members.to_vec(),
            first_view: epoch << 32,
            group: self.primary_group(members, epoch),
            ..Instance::default()
        }
    }

    /// The primary group of `epoch`'s committee `members`, if the group is on.
    pub fn primary_group(&self, members: &[NodeId], epoch: u64) -> Option<PrimaryGroup> {
        if self.primary_group_size == 0 {
            return None;
        }
        let group = super::primary_group(members, self.primary_group_size, epoch);
        let m = group.len();
        Some(PrimaryGroup {
            members: group,
            threshold: m - (m - 1) / 3,
            takeover_after: self.takeover_after,
        })
    }
}
