//! The epoch snapshot: what a T-PBFT node's committed log implies beyond the tail
//! its store hands back on a restart. A node writes one at the start of each epoch,
//! under one reserved write-ahead key, replacing the one before.
//!
//! # The key
//!
//! [`EpochSnapshot::KEY`] has slot `u64::MAX − 1`, which neither PBFT's pruning nor
//! any PBFT instance touches:
//!
//! - an instance prunes its records with `PruneBelow(s + 1)`, `s` its newest stable
//!   checkpoint, a sequence number far below `u64::MAX − 2`;
//! - an instance reads back the records whose slot lies in its own sequence range
//!   (above its base, up to its last sequence number) and, above that range, only
//!   its view slot `u64::MAX − base`. Epoch `e`'s base is `e · E`, and `E` is above
//!   the watermark window, itself at least twice the checkpoint interval, so
//!   `E ≥ 3` and no base is 1.
//!
//! The tag is T-PBFT's own as well, so a reader of the raw store can tell it apart.

use super::ledger::TrustLedger;
use bytes::Bytes;
use dwcp_core::codec::{decode, encode};
use dwcp_core::{Digest, NodeId, Record, Seq, WalKey};

/// Largest snapshot decoded. Evidence only rates members by members, so a real
/// ledger is sparse and far smaller; the bound only stops a corrupt length.
const MAX_SNAPSHOT: usize = 256 << 20;

/// The state an epoch starts from: everything a node needs, besides the committed
/// batches of the epoch itself, to know which committee it is in and to compute
/// the next one exactly as the nodes that never stopped do.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EpochSnapshot {
    /// The epoch.
    pub epoch: u64,
    /// Sequence numbers per epoch when it was written (a node may not change it).
    pub epoch_length: u64,
    /// The chain digest at the epoch's base (its first sequence number less one).
    pub base_chain: Digest,
    /// The epoch's committee, in id order.
    pub members: Vec<NodeId>,
    /// The previous epoch's committee (empty in epoch 0): the commit proofs that
    /// the epoch's first batches carry are of batches of that epoch.
    pub previous: Vec<NodeId>,
    /// The trust ledger after every batch up to the epoch's base.
    pub ledger: TrustLedger,
}

impl EpochSnapshot {
    /// The write-ahead key it is stored under (see the module docs).
    pub const KEY: WalKey = WalKey {
        slot: u64::MAX - 1,
        tag: u32::from_be_bytes(*b"TPse"),
    };

    /// The sequence number the epoch starts after.
    pub fn base(&self) -> Seq {
        self.epoch.saturating_mul(self.epoch_length)
    }

    /// The record that stores it.
    pub fn record(&self) -> Record {
        Record::Put {
            key: Self::KEY,
            value: Bytes::from(encode(self)),
        }
    }

    /// The snapshot among a store's write-ahead records, if there is one, or why
    /// it does not decode.
    pub fn find(wal: &[(WalKey, Bytes)]) -> Result<Option<EpochSnapshot>, String> {
        let Some((_, bytes)) = wal.iter().find(|(k, _)| *k == Self::KEY) else {
            return Ok(None);
        };
        decode(bytes, MAX_SNAPSHOT)
            .map(Some)
            .map_err(|e| format!("the epoch snapshot does not decode: {e}"))
    }
}
