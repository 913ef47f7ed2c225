//! What the simulator needs to know about an engine's messages to attack it and to
//! catch a node contradicting itself.

use dwcp_core::{Digest, NodeId};

/// Identifies one signed statement: two statements with the same key and different
/// digests from one author contradict each other (for example two prepares for the
/// same view and sequence number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatementKey {
    /// The kind of statement (engine-defined).
    pub kind: &'static str,
    /// View or round.
    pub view: u64,
    /// Sequence number, or 0.
    pub seq: u64,
}

/// Message hooks the simulator's Byzantine actors and checkers use.
pub trait Adversarial {
    /// The statement this message makes on its author's behalf, if any: author,
    /// key and digest of what is asserted.
    fn statement(&self) -> Option<(NodeId, StatementKey, Digest)>;
    /// Damages the signature (for the bad-signature actor); a no-op for unsigned messages.
    fn tamper_signature(&mut self);
}

/// The Byzantine or faulty behaviours the simulator can give a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Behaviour {
    /// Honest.
    Honest,
    /// Never sends anything.
    Silent,
    /// Runs two instances on one key and shows each half of the committee a different
    /// one: conflicting votes and, as leader, conflicting proposals.
    Equivocate,
    /// Sends random bytes in place of some messages.
    Garbage,
    /// Sends its messages with damaged signatures.
    BadSig,
    /// Re-sends old messages, its own and others', to random peers.
    Replay,
    /// Honest, but crashes at random effect boundaries and restarts from storage.
    Crash,
}

impl Behaviour {
    /// Whether the checkers hold this node to the protocol (crashing nodes are honest).
    pub fn is_honest(self) -> bool {
        matches!(self, Behaviour::Honest | Behaviour::Crash)
    }
}

impl std::str::FromStr for Behaviour {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "honest" => Behaviour::Honest,
            "silent" => Behaviour::Silent,
            "equivocate" => Behaviour::Equivocate,
            "garbage" => Behaviour::Garbage,
            "badsig" => Behaviour::BadSig,
            "replay" => Behaviour::Replay,
            "crash" => Behaviour::Crash,
            other => return Err(format!("unknown behaviour {other:?}")),
        })
    }
}
