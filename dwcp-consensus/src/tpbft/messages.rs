//! What T-PBFT nodes send each other.

use crate::pbft::{CommittedEntry, PbftMessage};
use crate::statement::{Adversarial, Statement};
use bytes::Bytes;
use dwcp_core::{Committed, MessageKind, Seq};

/// A T-PBFT message.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TpbftMessage {
    /// A message of epoch `epoch`'s PBFT instance, among its committee.
    Pbft {
        /// The epoch.
        epoch: u64,
        /// The PBFT message.
        msg: PbftMessage,
    },
    /// A committed batch with its commit certificate, for an observer.
    Certified {
        /// The epoch that committed it.
        epoch: u64,
        /// The batch.
        entry: CommittedEntry,
    },
    /// Client transactions an observer hands to the committee.
    Forward(Vec<Bytes>),
    /// Committed batches a member read from its store for an observer further
    /// behind than the certified batches members keep in memory.
    Log(Vec<Committed>),
    /// An observer asks for certified batches from `from` on.
    FetchCertified {
        /// The first sequence number it lacks.
        from: Seq,
    },
}

impl MessageKind for TpbftMessage {
    fn kind(&self) -> &'static str {
        match self {
            TpbftMessage::Pbft { msg, .. } => msg.kind(),
            TpbftMessage::Certified { .. } => "certified",
            TpbftMessage::Forward(_) => "forward",
            TpbftMessage::FetchCertified { .. } => "fetch_certified",
            TpbftMessage::Log(_) => "log",
        }
    }
}

impl Adversarial for TpbftMessage {
    fn statements(&self, out: &mut Vec<Statement>) {
        match self {
            TpbftMessage::Pbft { msg, .. } => msg.statements(out),
            TpbftMessage::Certified { entry, .. } => {
                PbftMessage::Entries(vec![entry.clone()]).statements(out)
            }
            TpbftMessage::Forward(_)
            | TpbftMessage::FetchCertified { .. }
            | TpbftMessage::Log(_) => {}
        }
    }

    fn round(&self) -> Option<u64> {
        match self {
            TpbftMessage::Pbft { msg, .. } => msg.round(),
            _ => None,
        }
    }

    fn slot(&self) -> Option<u64> {
        match self {
            TpbftMessage::Pbft { msg, .. } => msg.slot(),
            _ => None,
        }
    }

    fn tamper_signature(&mut self) {
        match self {
            TpbftMessage::Pbft { msg, .. } => msg.tamper_signature(),
            TpbftMessage::Certified { entry, .. } => entry.pre_prepare.corrupt_signature(),
            TpbftMessage::Forward(_)
            | TpbftMessage::FetchCertified { .. }
            | TpbftMessage::Log(_) => {}
        }
    }
}
