//! Ordering and output: the sub-DAGs Bullshark's commit rule decides get their place
//! in the order and are persisted, their batches leave in order with repeats
//! dropped, and everything below the garbage-collection round is pruned.

use bytes::Bytes;
use dwcp_core::codec::encode;
use dwcp_core::{
    Checkpoint, Committed, Digest, Effects, NodeId, ProposalCommitted, Record, Round, Time, WalKey,
};
use std::collections::HashSet;

use super::{BullsharkEngine, CommitState, Ordered};
use crate::bullshark::commit::{CommitRule, CommittedSubDag};
use crate::bullshark::messages::BullsharkMessage;
use crate::bullshark::transfer::{chain_next, state_digest, OrderEntry};

impl BullsharkEngine {
    pub(super) fn order(
        &mut self,
        now: Time,
        subdags: Vec<CommittedSubDag>,
        fx: &mut Effects<BullsharkMessage>,
    ) {
        // The committed set after each sub-DAG, for peers that will take this
        // position by state transfer: the rule's set now, less what later sub-DAGs of
        // this step committed, above that sub-DAG's garbage-collection round.
        let all = self.rule.state().committed;
        let mut states = Vec::with_capacity(subdags.len());
        let mut later: HashSet<Digest> = HashSet::new();
        for sub in subdags.iter().rev() {
            let floor = sub.leader_round().saturating_sub(self.cfg.gc_depth);
            states.push(
                all.iter()
                    .filter(|(r, d)| *r >= floor && !later.contains(d))
                    .copied()
                    .collect::<Vec<_>>(),
            );
            later.extend(sub.certificates.iter().map(|c| c.digest()));
        }
        states.reverse();
        for (sub, committed) in subdags.into_iter().zip(states) {
            let mut batches = Vec::new();
            for cert in &sub.certificates {
                if cert.author() == self.id {
                    if let Some((_, proposed, transactions)) = self.proposals.remove(&cert.digest())
                    {
                        self.samples.push(ProposalCommitted {
                            proposed,
                            committed: now,
                            transactions,
                        });
                    }
                }
                batches.extend(cert.batches().iter().map(|d| (*d, cert.author())));
            }
            self.position += 1;
            if !batches.is_empty() {
                self.seq += 1;
            }
            let leader = sub.leader.digest();
            let leader_round = sub.leader_round();
            self.chain = chain_next(
                &self.chain,
                self.position,
                self.seq,
                &leader,
                leader_round,
                &batches,
            );
            let entry = OrderEntry {
                position: self.position,
                seq: self.seq,
                chain: self.chain,
                leader,
                leader_round,
                batches,
                state: state_digest(&committed),
            };
            if !entry.batches.is_empty() {
                self.queue.push_back(Ordered {
                    seq: self.seq,
                    chain: self.chain,
                    batches: entry.batches.clone(),
                });
            }
            self.remember_entry(entry, committed);
        }
        // The decision is durable before anything that depends on it happens, and
        // before the records it makes obsolete are pruned.
        self.persist_commit_state(fx);
        let gc = self
            .rule
            .last_committed_round()
            .saturating_sub(self.cfg.gc_depth);
        if gc > self.dag.gc_round() {
            self.garbage_collect(gc, fx);
        }
    }

    pub(super) fn persist_commit_state(&self, fx: &mut Effects<BullsharkMessage>) {
        let state = CommitState {
            rule: self.rule.state(),
            position: self.position,
            seq: self.seq,
            chain: self.chain,
            queue: self.queue.iter().cloned().collect(),
        };
        fx.persist(Record::Checkpoint(Checkpoint {
            seq: self.seq,
            digest: self.chain,
            data: Bytes::from(encode(&state)),
        }));
    }

    pub(super) fn garbage_collect(&mut self, gc: Round, fx: &mut Effects<BullsharkMessage>) {
        self.dag.garbage_collect(gc);
        self.rule.garbage_collect(gc);
        let needed: HashSet<Digest> = self
            .queue
            .iter()
            .flat_map(|o| o.batches.iter().map(|(d, _)| *d))
            .collect();
        let ready: HashSet<Digest> = self.ready.iter().map(|(d, _, _)| *d).collect();
        // Batches still needed (to output, or own ones not proposed yet) are written
        // again above the pruning point before their records go. Committed batches
        // kept for peers stay in memory only: their transactions are in the log.
        let mut moved: Vec<Digest> = self
            .batches
            .iter()
            .filter(|(d, b)| {
                b.key.slot < gc
                    && (needed.contains(*d)
                        || self.own_batches.contains_key(*d)
                        || ready.contains(*d))
            })
            .map(|(d, _)| *d)
            .collect();
        moved.sort_unstable();
        for d in moved {
            let key = self.batch_key(gc);
            let proposed = !(self.own_batches.contains_key(&d) || ready.contains(&d));
            if let Some(b) = self.batches.get_mut(&d) {
                b.key = key;
                Self::persist_batch(key, &b.batch, b.origin, proposed, fx);
            }
        }
        fx.persist(Record::PruneBelow(gc));
        self.batch_tags = self.batch_tags.split_off(&gc);
        self.voted.retain(|(r, _), _| *r >= gc);
        self.pending.retain(|_, (c, _)| c.round() >= gc);
        let pending = &self.pending;
        self.waiting_on.retain(|_, children| {
            children.retain(|c| pending.contains_key(c));
            !children.is_empty()
        });
        self.want_certs
            .retain(|d, _| self.waiting_on.contains_key(d));
        self.pending_headers.retain(|_, h| h.value().round >= gc);
        self.proposals.retain(|_, (r, _, _)| *r >= gc);
        let own = &self.own_batches;
        // Committed batches stay until the retention budget pushes them out (in
        // `drain_output`), whatever their round: a peer that restarted may still
        // need them to output what it missed.
        let retired = &self.retired_set;
        let unreferenced = &mut self.unreferenced_bytes;
        self.batches.retain(|d, b| {
            let keep = b.key.slot >= gc
                || needed.contains(d)
                || own.contains_key(d)
                || ready.contains(d)
                || retired.contains(d);
            if !keep && b.unreferenced {
                let used = &mut unreferenced[b.origin.index()];
                *used = used.saturating_sub(b.batch.len());
            }
            keep
        });
    }

    /// Outputs decided sub-DAGs in order, as long as their batches are here.
    pub(super) fn drain_output(&mut self, now: Time, fx: &mut Effects<BullsharkMessage>) {
        while let Some(front) = self.queue.front() {
            let missing: Vec<(Digest, NodeId)> = front
                .batches
                .iter()
                .filter(|(d, _)| !self.batches.contains_key(d))
                .copied()
                .collect();
            if !missing.is_empty() {
                for (d, author) in missing {
                    self.want_batch(d, author, now, true);
                }
                return;
            }
            let Some(entry) = self.queue.pop_front() else {
                return;
            };
            if entry.seq <= self.output_seq {
                continue;
            }
            let batches = &self.batches;
            let fresh = self.dedup.fresh(
                entry
                    .batches
                    .iter()
                    .filter_map(|(d, _)| batches.get(d))
                    .flat_map(|stored| stored.batch.transactions()),
                false,
            );
            self.stats.repeats_dropped += fresh.repeats as u64;
            self.dedup.record(entry.seq, fresh.digests);
            let transactions = fresh.transactions;
            let mut output: Vec<WalKey> = Vec::with_capacity(entry.batches.len());
            for (d, _) in &entry.batches {
                if let Some(b) = self.batches.get(d) {
                    output.push(b.key);
                    if self.retired_set.insert(*d) {
                        self.retired.push_back((*d, b.batch.len()));
                        self.retired_bytes += b.batch.len();
                    }
                }
            }
            self.output_seq = entry.seq;
            fx.commit(Committed {
                seq: entry.seq,
                digest: entry.chain,
                transactions,
            });
            // Their transactions are in the committed log now (the driver writes it
            // before any later record): the batches' own records can go, rather than
            // wait for garbage collection with every byte of them.
            // The bytes go first: a crash between the two leaves a record without its
            // bytes, which a restart skips like an interrupted write.
            for key in output {
                fx.persist(Record::Delete(WalKey {
                    slot: key.slot,
                    tag: key.tag + 1,
                }));
                fx.persist(Record::Delete(key));
            }
        }
        // Committed batches stay a while for peers that still fetch them.
        while self.retired_bytes > self.cfg.retain_committed_batch_bytes {
            let Some((d, len)) = self.retired.pop_front() else {
                break;
            };
            self.retired_bytes -= len;
            self.retired_set.remove(&d);
            self.batches.remove(&d);
        }
    }
}
