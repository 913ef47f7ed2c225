//! T-PBFT (S. Gao, T. Yu, J. Zhu, W. Cai, "T-PBFT: An EigenTrust-Based Practical
//! Byzantine Fault Tolerance Consensus Algorithm", *China Communications* 16(12),
//! 2019): PBFT run by a consensus group of high-trust nodes, where trust is
//! EigenTrust global trust (Kamvar, Schlosser, Garcia-Molina, WWW 2003) computed
//! from the transactions between nodes, and a *primary group* replaces PBFT's single
//! primary so that view changes become less likely.
//!
//! Only the paper's abstract was available; what it leaves open (group sizes, how
//! the primary group is drawn, which evidence feeds trust) is decided here and
//! documented where it is decided.
//!
//! The node is [`Tpbft`]. Its parts: deterministic fixed-point EigenTrust
//! ([`eigentrust`]), the ledger that turns committed evidence into trust and the
//! next committee ([`ledger`]), the per-epoch choice of committee and primary group
//! ([`selection`]), the proofs a batch carries ([`evidence`]), an observer's
//! log ([`observer`]), and the snapshot each epoch starts from, which lets a node
//! restart from its store ([`snapshot`]; how a restart works and why it is safe is
//! in `engine/restart.rs`). The primary group's co-signing and takeover live in
//! PBFT ([`crate::pbft::PrimaryGroup`]), which runs each epoch.
//!
//! # Design of the engine (decided here; the paper's body is not available)
//!
//! - **Safety is PBFT's, trust only chooses who serves.** Each epoch of `E`
//!   sequence numbers (a multiple of the checkpoint interval) is one PBFT instance
//!   among that epoch's committee of `c = 3f_c + 1`: the existing [`crate::pbft`]
//!   replica, given the committee as its voting membership (quorum `2f_c + 1`,
//!   leaders, catch-up peers), the epoch's first sequence number and chain as its
//!   starting point, and its last sequence number as a limit. Signatures stay under
//!   global node ids, so every statement is its author's across epochs and the
//!   simulator's checker needs no mapping.
//! - **Evidence is committed, so trust is identical everywhere.** The batch at
//!   sequence number `s` carries, first, an [`evidence::EvidenceRecord`]: the commit
//!   certificate of `s − W` (`W` the watermark window, so the proposer has it: it
//!   proposes `s` only once `s − W` is stable) and proofs of conflicting statements
//!   that members received (PBFT reports two pre-prepares, or two votes of one
//!   phase, by one member for one view and slot: [`crate::pbft::Pbft::drain_conflicts`]).
//!   Each proof stands on its signatures, so backups check it before they prepare
//!   whatever they have executed, and one sequence number's certificate is
//!   recorded once. Committed, the record feeds the [`ledger`] (see there for what
//!   each proof counts, and why proposing earns no credit): a commit certificate
//!   rates its signers; the views it shows were left by view changes rate their
//!   proposers as failed ([`TrustLedger::record_views`]: views only advance by view
//!   changes, so no view-change messages need committing); a proof of conflicting
//!   statements excludes its author from every later committee. Equivocation that
//!   no honest member receives both sides of (a twin that speaks to each member
//!   with one voice) leaves no proof; PBFT's quorums keep it harmless.
//! - **Reconfiguration is agreed.** Epoch `e + 1`'s committee is computed from the
//!   evidence committed up to `last(e) − W`, a point every member that proposes or
//!   prepares epoch `e`'s last batch has executed; that batch carries the
//!   committee's digest, and a backup that computes another does not prepare it.
//!   Observers apply the same evidence, so they know the next committee before it
//!   starts and can check its certificates.
//! - **Restarts.** At each epoch's start a node writes an
//!   [`snapshot::EpochSnapshot`] (the epoch, its committee and the previous one,
//!   the trust ledger) under a write-ahead key no PBFT instance prunes or reads. A
//!   restarted node loads it, replays the evidence of the epoch's batches from
//!   its committed tail (computing the next committee at the cut point, and
//!   changing epoch if the tail reaches the epoch's end), then rebuilds the
//!   epoch's PBFT instance from that instance's own records, or its observer log
//!   from the tail. It thus runs the very instance it ran before, and PBFT's
//!   write-ahead rule keeps it from contradicting itself.
//! - **Epoch changes.** At `last(e)` each node of the new committee starts the
//!   next PBFT instance from the committed position, its repeat window seeded
//!   from the committed tail (so members and observers keep dropping the same
//!   repeats); the others continue as observers. Messages carry their epoch; a
//!   node buffers the next epoch's messages until it gets there.
//! - **Observers** are the nodes outside the committee. Each committed batch goes to
//!   each observer from one member, with its `2f_c + 1` commit signatures:
//!   observer `k` (in id order) gets batch `s` from the member at position
//!   `(k + s) mod c`, so members share the work and one silent member leaves an
//!   observer gaps rather than a stall. An observer checks each certificate
//!   against the epoch's committee before applying it ([`observer`]); behind a gap,
//!   or idle, it asks one member at a time, in turn, for what it misses. At
//!   `N = 100`, `c = 10` that is 90 dissemination messages per batch besides the
//!   committee's own `2c² ≈ 200`. Observers forward a client's transactions to one
//!   member, and to the next one if they have not committed within a view-change
//!   timeout, so a faulty member cannot censor them. An observer that knows itself
//!   well behind holds its forwards until it caught up: a transaction that
//!   committed more than the members' repeat window of batches ago would commit
//!   again.
//! - **Far behind.** Members keep the certified batches of the last two epochs in
//!   memory. A node further behind (down for longer, or outpaced) gets committed
//!   batches from members' stores, which carry no certificate, and takes them only
//!   once `f_c + 1` members of the epoch it is in sent the same hash chain, and
//!   only up to that epoch's end; the batches' evidence then names the next
//!   committee, whose members vouch for the next epoch (`engine/transfer.rs`, on
//!   [`crate::pbft::Pbft`]'s shared state transfer). This assumes what every epoch
//!   assumes, at most `f_c` faulty members, also of epochs the node was absent
//!   for.
//! - **The primary group** (`m` members by lottery, not by rank: see
//!   [`selection::primary_group`]) leads the epoch's first `m` views in turn; a
//!   proposal reaches backups only with `k = m − ⌊(m−1)/3⌋` of the group's
//!   signatures (3 of 4), each member co-signing one digest per view and sequence
//!   number after checking the batch and its evidence as a backup would. If the
//!   designated member leaves a request waiting, the next group member takes over
//!   after a sub-timeout (`takeover_after`, staggered by rank) in the same view; if
//!   `m` views fail, the epoch's members lead in turn without co-signing. See
//!   [`crate::pbft::PrimaryGroup`]. Co-signing limits a faulty designated
//!   proposer; PBFT's prepare quorums, not co-signing, keep two proposals of one
//!   view and sequence number from both committing.
//! - **Who is rated for a batch.** A commit proof names its view, not the member
//!   whose pre-prepare it was (that is not in the commit votes, and trust must come
//!   from committed data only), so [`evidence::CommitProof::verify`] attributes
//!   the batch to the view's designated proposer. After a takeover the designated
//!   (silent) member's ledger row rates the signers; that only reshapes one row,
//!   as a faulty proposer's own choices do.

mod config;
pub mod eigentrust;
mod engine;
pub mod evidence;
pub mod ledger;
mod messages;
pub mod observer;
pub mod selection;
pub mod snapshot;

pub use config::TpbftConfig;
pub use eigentrust::{
    reference_global_trust, Interactions, LocalTrust, Normalised, Trust, TrustError, TrustParams,
};
pub use engine::{Tpbft, TpbftError};
pub use evidence::{
    CommitProof, EvidenceError, EvidenceRecord, MisbehaviourProof, Verifier, EVIDENCE_TAG,
};
pub use ledger::{Evidence, TrustLedger, DEMOTION_SHARE};
pub use messages::TpbftMessage;
pub use observer::Observer;
pub use selection::{
    committee, committee_digest, committee_size_for, primary_group, DEFAULT_COMMITTEE_SIZE,
    DEFAULT_PRIMARY_GROUP_SIZE,
};
pub use snapshot::EpochSnapshot;

#[cfg(test)]
mod tests;
