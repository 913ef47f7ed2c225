//! What a T-PBFT node shows on a status page: its epoch, the committee, the
//! primary group, its own role, and every node's trust.
//!
//! The driver asks for the status after every input, so the committee part is
//! computed once per epoch (and on a restart) and cloned from then on; trust is
//! global trust from the evidence committed up to the epoch's start, which costs a
//! full EigenTrust run.

use super::super::Trust;
use super::Tpbft;
use dwcp_core::{CommitteeRole, CommitteeStatus};

/// A trust value in parts per billion of the total.
fn ppb(t: Trust) -> u64 {
    let v = (u128::from(t.0) * 1_000_000_000) >> Trust::FRAC_BITS;
    u64::try_from(v).unwrap_or(u64::MAX)
}

impl Tpbft {
    /// Recomputes the status's committee part for the current epoch.
    pub(super) fn refresh_trust(&mut self) {
        let trust = self.ledger.trust().unwrap_or_default();
        let raw: Vec<u8> = trust.iter().flat_map(|t| t.0.to_le_bytes()).collect();
        let trust_digest = dwcp_core::Digest::of_parts("dwcp tpbft trust vector", &[&raw]);
        self.committee_status = CommitteeStatus {
            epoch: self.epoch,
            members: self.members.clone(),
            primary_group: self
                .cfg
                .primary_group(&self.members, self.epoch)
                .map(|g| g.members)
                .unwrap_or_default(),
            role: if self.is_member() {
                CommitteeRole::Member
            } else {
                CommitteeRole::Observer
            },
            trust_ppb: trust.into_iter().map(ppb).collect(),
            trust_digest,
        };
    }

    /// The committee part of the status.
    pub(super) fn committee_status(&self) -> CommitteeStatus {
        self.committee_status.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_per_billion() {
        assert_eq!(ppb(Trust::ONE), 1_000_000_000);
        assert_eq!(ppb(Trust::ZERO), 0);
        assert_eq!(ppb(Trust(Trust::ONE.0 / 4)), 250_000_000);
    }
}
