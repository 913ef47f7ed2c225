//! An observer's log: a node outside the epoch's committee applies each batch the
//! committee commits, in order, once it has checked the batch's pre-prepare and
//! its quorum of commit votes against the epoch's members. It drops repeats and
//! extends the hash chain exactly as a member does ([`execution_output`]), so its
//! committed log is the members' log, digest for digest.

use super::evidence::{CommitProof, EvidenceError, Verifier};
use crate::dedup::DedupWindow;
use crate::pbft::{batch_digest, chain_next, execution_output, CommittedEntry};
use dwcp_core::{Committed, Digest, Seq};
use std::collections::BTreeMap;

/// Batches held ahead of a gap, at most.
pub const MAX_WAITING: usize = 4096;

/// The committed log of a node that does not vote.
#[derive(Clone, Debug)]
pub struct Observer {
    last: Seq,
    chain: Digest,
    executed: DedupWindow,
    waiting: BTreeMap<Seq, CommittedEntry>,
}

impl Observer {
    /// A log that has applied everything up to `last`, whose chain is `chain`, with
    /// the members' repeat window (`dedup_window` sequence numbers, restored from
    /// the committed tail by the caller through [`Observer::restore_window`]).
    pub fn new(last: Seq, chain: Digest, dedup_window: u64) -> Observer {
        Observer {
            last,
            chain,
            executed: DedupWindow::new(dedup_window),
            waiting: BTreeMap::new(),
        }
    }

    /// Rebuilds the repeat window from the tail of the committed log.
    pub fn restore_window(&mut self, tail: &[Committed]) {
        self.executed.restore(tail);
    }

    /// The last sequence number applied.
    pub fn last(&self) -> Seq {
        self.last
    }

    /// Whether a batch above a gap waits: the log is behind what members sent.
    pub fn has_gap(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// The chain digest at [`Observer::last`].
    pub fn chain(&self) -> Digest {
        self.chain
    }

    /// Moves the log to `c`, a batch taken by state transfer (stored batches that
    /// enough members vouch for; see `engine/transfer.rs`) rather than checked here.
    pub fn skip_to(&mut self, c: &Committed) {
        self.last = c.seq;
        self.chain = c.digest;
        self.executed.record(
            c.seq,
            c.transactions.iter().map(|t| Digest::of(t)).collect(),
        );
        self.waiting = self.waiting.split_off(&(c.seq + 1));
    }

    /// Checks `entry` against `v` (the epoch's members) and returns the batches it
    /// lets this log apply, in order: none if it fills no gap yet (it waits) or was
    /// applied already. An entry that does not check out is refused and changes
    /// nothing.
    pub fn accept(
        &mut self,
        entry: CommittedEntry,
        v: &Verifier<'_>,
    ) -> Result<Vec<Committed>, EvidenceError> {
        let pp = entry.pre_prepare.value();
        if pp.seq <= self.last || self.waiting.contains_key(&pp.seq) {
            return Ok(Vec::new());
        }
        if pp.seq > self.last + MAX_WAITING as u64 {
            return Ok(Vec::new());
        }
        check(&entry, v)?;
        self.waiting.insert(pp.seq, entry);
        let mut out = Vec::new();
        while let Some(e) = self.waiting.remove(&(self.last + 1)) {
            let pp = e.pre_prepare.value();
            let (transactions, digests, output) = execution_output(&self.executed, pp);
            self.chain = chain_next(&self.chain, pp.seq, &output);
            self.last = pp.seq;
            self.executed.record(pp.seq, digests);
            out.push(Committed {
                seq: pp.seq,
                digest: self.chain,
                transactions,
            });
        }
        Ok(out)
    }
}

/// Whether `entry` is a batch its epoch committed: the leader's signed pre-prepare
/// for a batch with that digest, and a quorum of members' commit votes for it.
fn check(entry: &CommittedEntry, v: &Verifier<'_>) -> Result<(), EvidenceError> {
    let pp = entry.pre_prepare.value();
    if !v.epoch.may_propose(pp.view, entry.pre_prepare.author()) {
        return Err(EvidenceError::Inconsistent("not a proposer of the view"));
    }
    if batch_digest(&pp.batch) != pp.digest {
        return Err(EvidenceError::Inconsistent(
            "the batch does not match its digest",
        ));
    }
    if entry.commits.iter().any(|c| {
        let c = c.value();
        (c.view, c.seq, c.digest) != (pp.view, pp.seq, pp.digest)
    }) {
        return Err(EvidenceError::Inconsistent(
            "commit votes for another batch",
        ));
    }
    if !v.epoch.members.contains(&entry.pre_prepare.author())
        || v.committee
            .verify_batch(&[entry.pre_prepare.verify_item()])
            .is_err()
    {
        return Err(EvidenceError::Signature);
    }
    CommitProof {
        votes: entry.commits.clone(),
    }
    .verify(v)
    .map(|_| ())
}

#[cfg(test)]
mod tests;
