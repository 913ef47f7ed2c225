//! PBFT (Castro & Liskov, OSDI '99) with signed messages: the baseline engine.
//!
//! Normal case: the primary of view `v` assigns a batch a sequence number in a
//! signed pre-prepare; backups answer with prepares; a replica holding the
//! pre-prepare and a quorum minus one matching prepares is *prepared* and sends a
//! commit; a quorum of commits commits the batch, which executes in sequence order.
//! Per batch that is `(n-1) + (n-1)² + n(n-1) ≈ 2n²` messages.
//!
//! Every `checkpoint_interval` batches replicas exchange checkpoint votes on the
//! hash chain of the log; a quorum makes it stable and the log below it is dropped.
//! A replica whose requests wait longer than `view_change_timeout` asks for the next
//! view with its prepared certificates; the new primary proves its choice with a
//! quorum of those and re-issues what may have committed.
//!
//! A replica that falls behind fetches committed batches from its peers: the newest
//! `retain_committed` with their commit certificates, from memory; older ones (or
//! any, from a peer that restarted) read from the peer's store. The log's hash chain
//! ([`chain_next`]) covers each batch as it was output, so a stored log proves
//! itself against a chain: a replica checks that a peer's part extends its own
//! chain and executes it once `f+1` members (so at least one honest) sent the same
//! chain. This is the state transfer of a replica that was down for longer than
//! the peers keep in memory.

mod config;
mod instance;
mod messages;
mod replica;
mod transfer;
mod wal;

pub use config::PbftConfig;
pub use instance::{Instance, PrimaryGroup};
pub use messages::{
    batch_digest, chain_next, execution_output, CheckpointVote, CoSignature, CommittedEntry,
    NewView, PbftMessage, Phase, PrePrepare, PreparedCert, ViewChange, Vote,
};
#[cfg(test)]
pub(crate) use replica::instance_tests::Members;
pub use replica::{Pbft, PbftError, ProposalRecord};
pub(crate) use transfer::{StoreReads, Transfers};
