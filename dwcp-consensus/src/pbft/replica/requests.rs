//! Client requests and proposing: a replica admits transactions to its pending set
//! (relaying them to the primary), and the primary batches them and assigns each
//! batch a sequence number in a signed pre-prepare (Castro & Liskov §4.2).

use super::{OwnProposal, Pbft};
use crate::pbft::messages::{batch_digest, PbftMessage, PrePrepare};
use crate::pbft::wal::{WalEntry, TAG_PRE_PREPARE};
use bytes::Bytes;
use dwcp_core::{Digest, Effects, Seq, Signed, Time, WalKey};

impl Pbft {
    pub(super) fn on_submit(&mut self, now: Time, txs: Vec<Bytes>, fx: &mut Effects<PbftMessage>) {
        if self.cfg.forward_requests && self.changing.is_none() {
            // In a primary group's view every group member may propose, so each
            // gets the transactions; otherwise only the primary.
            let to: Vec<_> = match self.group_view(self.view) {
                Some(g) => g.members.clone(),
                None => vec![self.leader(self.view)],
            };
            for p in to.into_iter().filter(|p| *p != self.id) {
                fx.send(p, PbftMessage::Request(txs.clone()));
            }
        }
        self.add_requests(now, txs, fx);
    }

    pub(super) fn add_requests(
        &mut self,
        now: Time,
        txs: Vec<Bytes>,
        fx: &mut Effects<PbftMessage>,
    ) {
        let was_empty = self.pending.is_empty();
        for tx in txs {
            if self.pending.len() >= self.cfg.max_pending {
                break;
            }
            let d = Digest::of(&tx);
            if self.executed.contains(&d) || self.pending_index.contains_key(&d) {
                continue;
            }
            if tx.len() > self.cfg.max_batch_bytes
                || self
                    .validator
                    .as_ref()
                    .is_some_and(|v| v.check_tx(&tx).is_err())
            {
                self.refused_transactions += 1;
                continue;
            }
            let a = self.next_arrival;
            self.next_arrival += 1;
            self.pending.insert(a, (d, tx));
            self.pending_index.insert(d, a);
        }
        if was_empty && !self.pending.is_empty() {
            self.last_progress = now;
        }
        self.try_propose(now, fx);
    }

    pub(super) fn try_propose(&mut self, now: Time, fx: &mut Effects<PbftMessage>) {
        while self.is_primary() && self.in_window(self.next_seq) {
            let unproposed = self.pending.len().saturating_sub(self.proposed.len());
            let in_flight = self.next_seq.saturating_sub(self.last_executed + 1);
            if unproposed == 0 || (unproposed < self.cfg.batch_size && in_flight > 0) {
                return;
            }
            let mut batch = Vec::with_capacity(self.cfg.batch_size.min(unproposed + 1));
            let mut bytes = 0;
            // An engine built on PBFT may put a record of its own first (T-PBFT's
            // evidence); it counts toward the batch's bounds like a transaction.
            let prefix = self.record.as_ref().and_then(|r| r.make(self.next_seq));
            if let Some(tx) = prefix.filter(|tx| tx.len() <= self.cfg.max_batch_bytes) {
                bytes += tx.len();
                batch.push(tx);
            }
            let fixed = batch.len();
            for (d, tx) in self.pending.values() {
                if batch.len() >= self.cfg.batch_size
                    || (!batch.is_empty() && bytes + tx.len() > self.cfg.max_batch_bytes)
                {
                    break;
                }
                if self.proposed.insert(*d) {
                    bytes += tx.len();
                    batch.push(tx.clone());
                }
            }
            if batch.len() == fixed {
                return;
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            self.issue_pre_prepare(now, seq, batch, fx);
        }
    }

    /// Signs, persists, records and broadcasts a pre-prepare as primary of `self.view`.
    fn issue_pre_prepare(
        &mut self,
        now: Time,
        seq: Seq,
        batch: Vec<Bytes>,
        fx: &mut Effects<PbftMessage>,
    ) {
        let digest = batch_digest(&batch);
        let transactions = batch.len() as u64;
        if let Some((v, d)) = self.my_pre_prepares.get(&seq) {
            if *v == self.view && *d != digest {
                return; // never propose two batches for one (view, seq)
            }
        }
        let pp = Signed::new(
            PrePrepare {
                view: self.view,
                seq,
                digest,
                batch,
            },
            self.id,
            &self.keys.signing,
        );
        self.remember_own_pre_prepare(&pp, fx);
        self.own_proposals.insert(
            seq,
            OwnProposal {
                digest,
                at: now,
                transactions,
            },
        );
        if self.request_cosigns(&pp, fx) {
            return; // goes to the backups once the group co-signed it
        }
        self.slots.entry(seq).or_default().pre_prepare = Some(pp.clone());
        fx.broadcast(PbftMessage::PrePrepare(pp));
        // In a committee of one the primary's own pre-prepare is a quorum.
        self.check_prepared(now, seq, fx);
    }

    /// Records a pre-prepare this replica signed as primary, durably, so that it
    /// never proposes another batch for the same view and sequence number.
    pub(super) fn remember_own_pre_prepare(
        &mut self,
        pp: &Signed<PrePrepare>,
        fx: &mut Effects<PbftMessage>,
    ) {
        let v = pp.value();
        self.my_pre_prepares.insert(v.seq, (v.view, v.digest));
        self.persist(
            WalKey {
                slot: v.seq,
                tag: TAG_PRE_PREPARE,
            },
            &WalEntry::PrePrepare(pp.clone()),
            fx,
        );
    }
}
