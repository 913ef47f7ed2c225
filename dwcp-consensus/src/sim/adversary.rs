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

/// One signed statement: who signed it, what it is about, and what it asserts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Statement {
    /// The signer.
    pub author: NodeId,
    /// What the statement is about.
    pub key: StatementKey,
    /// What it asserts (the digest of the proposal, vote target or envelope).
    pub digest: Digest,
}

/// Message hooks the simulator's Byzantine actors and checkers use.
pub trait Adversarial {
    /// Every signed statement this message carries: its own, and every one embedded
    /// in it (votes inside certificates, view changes inside a new view, certified
    /// entries in a state transfer), each under its own author.
    fn statements(&self, out: &mut Vec<Statement>);
    /// The view or round this message belongs to, for schedules that partition the
    /// network by round (Twins); `None` for messages of no particular round.
    fn round(&self) -> Option<u64>;
    /// The proposal slot this message belongs to within its round (PBFT's sequence
    /// number), for schedules that split one round's proposals apart; `None` (the
    /// default) for engines with one proposal per round and for messages of no slot.
    fn slot(&self) -> Option<u64> {
        None
    }
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
    /// Runs the honest engine, but a [`super::Script`] decides where its messages go
    /// and may send further validly signed messages in its name.
    Scripted,
    /// Twins (Bano et al., OPODIS 2021): two honest instances sharing one key and
    /// identity, each with its own state; a [`super::Script`] (usually
    /// [`super::twins::TwinsSchedule`]) decides which instances hear each other.
    Twin,
}

impl Behaviour {
    /// Whether the checkers hold this node to the protocol (crashing nodes are honest).
    pub fn is_honest(self) -> bool {
        matches!(self, Behaviour::Honest | Behaviour::Crash)
    }

    /// Whether the node's store keeps what its engine persists and commits: every
    /// node that runs one instance of honest code (twins and equivocators run two
    /// on one key, which one store cannot hold apart).
    pub fn keeps_a_store(self) -> bool {
        self.is_honest() || self == Behaviour::Scripted
    }

    /// How many engine instances a node with this behaviour runs on its key.
    pub fn instances(self) -> usize {
        match self {
            Behaviour::Equivocate | Behaviour::Twin => 2,
            _ => 1,
        }
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
            "scripted" => Behaviour::Scripted,
            "twin" => Behaviour::Twin,
            other => return Err(format!("unknown behaviour {other:?}")),
        })
    }
}
