//! Client transactions: what waits to be ordered, the next batch from it, and
//! when this replica's own proposals of them decided.

use super::Probft;
use crate::probft::messages::{ProbftMessage, Proposal};
use bytes::Bytes;
use dwcp_core::{Committed, Digest, Effects, ProposalCommitted, Seq, Time};

/// Latency samples kept until a driver drains them.
const MAX_UNDRAINED: usize = 4096;

impl Probft {
    /// Queues `txs` to be ordered (dropping repeats of what waits or was output
    /// within the repeat window, and what exceeds `max_pending`), then proposes if
    /// this replica leads.
    pub(super) fn submit(&mut self, now: Time, txs: Vec<Bytes>, fx: &mut Effects<ProbftMessage>) {
        for tx in txs {
            if self.pending.len() >= self.cfg.max_pending {
                self.counters.refused += 1;
                continue;
            }
            let d = Digest::of(&tx);
            if self.executed.contains(&d) || self.pending_index.contains_key(&d) {
                continue;
            }
            self.pending.insert(self.next_arrival, (d, tx));
            self.pending_index.insert(d, self.next_arrival);
            self.next_arrival += 1;
        }
        self.try_propose(now, fx);
    }

    /// What waits, up to a batch, without what `skip` (a proposal in flight) holds.
    pub(super) fn next_batch(&self, skip: Option<&Digest>) -> Vec<Bytes> {
        let in_flight: std::collections::HashSet<Digest> = skip
            .and_then(|d| self.batches.get(d))
            .map(|b| b.iter().map(|t| Digest::of(t)).collect())
            .unwrap_or_default();
        let mut bytes = 0usize;
        self.pending
            .values()
            .filter(|(d, _)| !in_flight.contains(d))
            .take(self.cfg.batch_size)
            .take_while(|(_, tx)| {
                bytes += tx.len();
                bytes <= self.cfg.max_batch_bytes
            })
            .map(|(_, tx)| tx.clone())
            .collect()
    }

    /// Notes this replica's own proposal, for [`dwcp_core::Engine::drain_proposal_commits`].
    pub(super) fn note_proposed(&mut self, now: Time, p: &Proposal) {
        let h = p.header.value();
        let txs = p.batch.len() as u64;
        self.own_proposals.insert(h.seq, (h.digest, now, txs));
    }

    /// Notes that slot `seq` decided `digest`: if that was this replica's
    /// proposal, a sample of its consensus latency.
    pub(super) fn note_decided(&mut self, now: Time, seq: Seq, digest: Digest) {
        if let Some((d, at, transactions)) = self.own_proposals.remove(&seq) {
            if d == digest {
                if self.proposal_commits.len() >= MAX_UNDRAINED {
                    self.proposal_commits.pop_front();
                }
                self.proposal_commits.push_back(ProposalCommitted {
                    proposed: at,
                    committed: now,
                    transactions,
                });
            }
        }
        self.own_proposals = self.own_proposals.split_off(&(seq + 1));
    }

    /// Moves the log to `c` (its transactions' digests `digests`), whether decided
    /// here or taken by state transfer: what waited for it is done, and it is
    /// output.
    pub(super) fn output(
        &mut self,
        now: Time,
        c: Committed,
        digests: Vec<Digest>,
        fx: &mut Effects<ProbftMessage>,
    ) {
        for d in &digests {
            if let Some(a) = self.pending_index.remove(d) {
                self.pending.remove(&a);
            }
        }
        self.executed.record(c.seq, digests);
        self.last = c.seq;
        self.chain = c.digest;
        self.last_progress = now;
        fx.commit(c);
    }
}
