//! What an engine's messages say about their senders: the signed statements each
//! carries, and the round and slot it belongs to. The simulator's checker holds
//! every honest author to its statements, Twins schedules partition by round and
//! slot, and its Byzantine actors damage signatures. Each engine implements
//! [`Adversarial`] for its message type; nothing here depends on the simulator.

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

/// Message hooks the simulator's Byzantine actors and checkers use (and, through
/// [`dwcp_core::MessageKind`], the kind its message counts are reported by).
pub trait Adversarial: dwcp_core::MessageKind {
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
