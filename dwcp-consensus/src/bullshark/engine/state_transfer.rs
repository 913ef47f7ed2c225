//! State transfer (see [`transfer`](crate::bullshark::transfer)): serving the recent
//! committed order to peers, and taking the order from `f+1` matching peers when this
//! node fell behind their garbage collection.

use dwcp_core::{Effects, NodeId, Time};
use std::sync::Arc;

use super::{BullsharkEngine, Ordered};
use crate::bullshark::certificate::Certificate;
use crate::bullshark::commit::{CommitRule, RuleState};
use crate::bullshark::messages::BullsharkMessage;
use crate::bullshark::transfer::{
    Base, CommittedSet, Decided, OrderEntry, OrderReply, Transfer, MAX_ENTRIES,
};

impl BullsharkEngine {
    pub(super) fn remember_entry(&mut self, entry: OrderEntry, committed: CommittedSet) {
        let bytes = 128 + 40 * (entry.batches.len() + committed.len());
        self.history.push_back((entry, committed, bytes));
        self.history_bytes += bytes;
        while self.history_bytes > self.cfg.retain_order_bytes {
            let Some((_, _, b)) = self.history.pop_front() else {
                break;
            };
            self.history_bytes -= b;
        }
    }

    fn base(&self) -> Base {
        Base {
            position: self.position,
            seq: self.seq,
            chain: self.chain,
        }
    }

    pub(super) fn transfer_due(&self, now: Time) -> bool {
        self.transfer
            .as_ref()
            .is_none_or(|t| now.since(t.asked) >= self.cfg.sync_retry)
    }

    /// Asks every peer for the committed order after this node's (at most once per
    /// `sync_retry`, and `max_sync_attempts` times without success).
    pub(super) fn request_transfer(&mut self, now: Time, fx: &mut Effects<BullsharkMessage>) {
        if self.committee.size() == 1 {
            return;
        }
        let base = self.base();
        match &mut self.transfer {
            Some(t) if t.base() == base => {
                if now.since(t.asked) < self.cfg.sync_retry {
                    return;
                }
                t.asked = now;
                t.attempts += 1;
            }
            _ => self.transfer = Some(Transfer::new(base, now)),
        }
        fx.broadcast(BullsharkMessage::OrderRequest(base.position + 1));
    }

    /// Serves the committed order from position `first` on, if it is still retained.
    pub(super) fn on_order_request(
        &mut self,
        from: NodeId,
        first: u64,
        fx: &mut Effects<BullsharkMessage>,
    ) {
        let Some(start) = self.history.front().map(|(e, _, _)| e.position) else {
            return;
        };
        let Some(skip) = first.checked_sub(start) else {
            return;
        };
        let mut entries = Vec::new();
        let mut committed = None;
        for (e, c, _) in self.history.iter().skip(skip as usize).take(MAX_ENTRIES) {
            entries.push(e.clone());
            committed = Some(c);
        }
        let Some(committed) = committed else {
            return;
        };
        let reply = OrderReply {
            entries,
            committed: committed.clone(),
        };
        fx.send(from, BullsharkMessage::Order(reply));
    }

    pub(super) fn on_order(
        &mut self,
        now: Time,
        from: NodeId,
        reply: OrderReply,
        fx: &mut Effects<BullsharkMessage>,
    ) {
        let base = self.base();
        let Some(t) = &mut self.transfer else {
            return;
        };
        if t.base() != base {
            // The DAG moved this node on meanwhile; a new request starts afresh.
            self.transfer = None;
            return;
        }
        t.add(from, reply);
        let Some(decided) = t.decided(self.validity) else {
            return;
        };
        self.transfer = None;
        let more = decided.entries.len() >= MAX_ENTRIES;
        self.install(now, from, decided, fx);
        if more {
            self.request_transfer(now, fx);
        }
    }

    /// Continues the order from a position `f+1` members vouched for: its entries
    /// join the output queue (their batches are fetched as usual), the commit rule
    /// and the DAG restart there, and the DAG above it is fetched.
    fn install(
        &mut self,
        now: Time,
        from: NodeId,
        decided: Decided,
        fx: &mut Effects<BullsharkMessage>,
    ) {
        let Some(last) = decided.entries.last() else {
            return;
        };
        let (position, seq, chain) = (last.position, last.seq, last.chain);
        let leader_round = last.leader_round;
        self.rule.restore(RuleState {
            last_committed_round: leader_round,
            committed: decided.committed.clone(),
        });
        self.queue.extend(
            decided
                .entries
                .into_iter()
                .filter(|e| !e.batches.is_empty())
                .map(|e| Ordered {
                    seq: e.seq,
                    chain: e.chain,
                    batches: e.batches,
                }),
        );
        self.position = position;
        self.seq = seq;
        self.chain = chain;
        // This node's own history would have a gap: it serves from the next entry.
        self.history.clear();
        self.history_bytes = 0;
        self.stats.transfers += 1;
        self.persist_commit_state(fx);
        let gc = leader_round.saturating_sub(self.cfg.gc_depth);
        if gc > self.dag.gc_round() {
            self.garbage_collect(gc, fx);
        }
        self.dag.settle(decided.committed);
        // Certificates that waited for parents now settled can enter the DAG.
        let mut waiting: Vec<(Arc<Certificate>, NodeId)> =
            self.pending.drain().map(|(_, p)| p).collect();
        self.waiting_on.clear();
        waiting.sort_by_key(|(c, _)| (c.round(), c.author(), c.digest()));
        for (cert, origin) in waiting {
            self.insert_verified(now, cert, origin, fx);
        }
        self.last_range_request = None;
        self.catch_up(now, from, fx);
        self.drain_output(now, fx);
        self.try_propose(now, fx);
    }
}
