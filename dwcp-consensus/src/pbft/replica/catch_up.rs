//! Catch-up of a replica that fell behind: committed batches fetched from peers with
//! their commit certificates, and state transfer of stored logs that `f+1` members
//! vouch for.

use super::Pbft;
use crate::pbft::messages::{batch_digest, CommittedEntry, PbftMessage, Phase};
use dwcp_core::{Committed, Digest, Effects, NodeId, Seq, Time};
use std::collections::HashSet;

impl Pbft {
    pub(super) fn note_seen(&mut self, seq: Seq) {
        self.highest_seen = self.highest_seen.max(seq);
    }

    pub(super) fn request_fetch(&mut self, fx: &mut Effects<PbftMessage>) {
        let n = self.members.len();
        let mut sent = 0;
        let mut tries = 0;
        while sent < self.f() + 1 && tries < n {
            let to = self.members[self.fetch_cursor % n];
            self.fetch_cursor += 1;
            tries += 1;
            if to != self.id {
                fx.send(
                    to,
                    PbftMessage::Fetch {
                        from: self.last_executed + 1,
                    },
                );
                sent += 1;
            }
        }
    }

    pub(super) fn on_fetch(&mut self, from: NodeId, first: Seq, fx: &mut Effects<PbftMessage>) {
        if first == 0 || first > self.last_executed {
            return;
        }
        if self
            .retained
            .first_key_value()
            .is_some_and(|(s, _)| *s <= first)
        {
            let entries: Vec<CommittedEntry> = self
                .retained
                .range(first..)
                .take(self.cfg.fetch_batch)
                .map(|(_, e)| e.clone())
                .collect();
            fx.send(from, PbftMessage::Entries(entries));
            return;
        }
        // Older than the certified tail kept in memory (or lost with a restart):
        // read it from the store.
        if self.log_readers.want(from, (), first) {
            fx.read_committed(first, self.cfg.fetch_batch);
        }
    }

    /// Sends the stored batches read for `from` to the peers that asked for them.
    pub(super) fn on_stored_committed(
        &mut self,
        from: Seq,
        batches: Vec<Committed>,
        fx: &mut Effects<PbftMessage>,
    ) {
        for (p, ()) in self.log_readers.answered(from, &batches) {
            fx.send(p, PbftMessage::Log(batches.clone()));
        }
    }

    /// A peer's stored log from our next sequence number on. Each batch must extend
    /// our hash chain; the batches execute once `f+1` members (so one honest) sent
    /// the same chain up to them.
    pub(super) fn on_log(
        &mut self,
        now: Time,
        from: NodeId,
        batches: Vec<Committed>,
        fx: &mut Effects<PbftMessage>,
    ) {
        if batches.len() > self.cfg.fetch_batch
            || !self
                .transfers
                .offer(from, batches, self.last_executed, self.chain)
        {
            return;
        }
        self.apply_vouched_transfers(now, fx);
    }

    /// Executes the longest run of transferred batches that `f+1` members vouch for.
    fn apply_vouched_transfers(&mut self, now: Time, fx: &mut Effects<PbftMessage>) {
        self.transfers.trim(self.last_executed, self.chain);
        let batches = self.transfers.vouched(self.f());
        if batches.is_empty() {
            return;
        }
        let vouched = batches.len();
        let end = self.last;
        for c in batches
            .into_iter()
            .filter(|c| end.is_none_or(|l| c.seq <= l))
        {
            let digests = c.transactions.iter().map(|t| Digest::of(t)).collect();
            self.append(now, c.seq, c.digest, c.transactions, digests, fx);
        }
        self.after_catch_up(now, fx);
        // More to come: ask for the next part while the buffers run dry.
        if self.transfers.exhausted(vouched) {
            self.request_fetch(fx);
        }
    }

    /// After batches executed through catch-up: checkpoints may now be stable and
    /// slots above the log may execute.
    fn after_catch_up(&mut self, now: Time, fx: &mut Effects<PbftMessage>) {
        // The slots stay until a stable checkpoint covers them: a prepared
        // certificate of a slot executed here is evidence the next view change
        // must carry, or a new primary could fill that slot with another batch.
        let seqs: Vec<Seq> = self.checkpoint_votes.keys().copied().collect();
        for s in seqs {
            self.check_stable(now, s, fx);
        }
        self.try_execute(now, fx);
    }

    fn valid_entry(&self, e: &CommittedEntry) -> bool {
        let pp = e.pre_prepare.value();
        if !self.may_propose(pp.view, e.pre_prepare.author())
            || batch_digest(&pp.batch) != pp.digest
        {
            return false;
        }
        let mut authors = HashSet::new();
        let mut items = vec![e.pre_prepare.verify_item()];
        for c in &e.commits {
            let v = c.value();
            if v.phase != Phase::Commit
                || v.view != pp.view
                || v.seq != pp.seq
                || v.digest != pp.digest
            {
                return false;
            }
            if !authors.insert(c.author()) || !self.is_member(c.author()) {
                return false;
            }
            items.push(c.verify_item());
        }
        authors.len() >= self.quorum && self.committee.verify_batch(&items).is_ok()
    }

    pub(super) fn on_entries(
        &mut self,
        now: Time,
        from: NodeId,
        entries: Vec<CommittedEntry>,
        fx: &mut Effects<PbftMessage>,
    ) {
        let full = entries.len() >= self.cfg.fetch_batch;
        let mut progressed = false;
        for e in entries {
            let seq = e.pre_prepare.value().seq;
            if seq != self.last_executed + 1 || self.last.is_some_and(|l| seq > l) {
                continue;
            }
            if !self.valid_entry(&e) {
                break;
            }
            self.execute(now, e, fx);
            progressed = true;
        }
        if progressed {
            if full {
                fx.send(
                    from,
                    PbftMessage::Fetch {
                        from: self.last_executed + 1,
                    },
                );
            }
            self.after_catch_up(now, fx);
        }
    }
}
