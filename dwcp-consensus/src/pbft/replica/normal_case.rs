//! The normal case (Castro & Liskov §4.2): accepting the primary's pre-prepare,
//! collecting prepare and commit votes, and executing committed batches in sequence
//! order onto the hash-chained log.

use super::{Pbft, MAX_UNDRAINED_SAMPLES};
use crate::pbft::messages::{
    batch_digest, chain_next, execution_output, CheckpointVote, CoSignature, CommittedEntry,
    PbftMessage, Phase, PrePrepare, PreparedCert, Vote,
};
use crate::pbft::wal::{WalEntry, TAG_COMMIT, TAG_PREPARE};
use bytes::Bytes;
use dwcp_core::{Committed, Digest, Effects, NodeId, ProposalCommitted, Seq, Signed, Time, WalKey};

impl Pbft {
    pub(super) fn on_pre_prepare(
        &mut self,
        now: Time,
        from: NodeId,
        pp: Signed<PrePrepare>,
        cosigns: Vec<Signed<CoSignature>>,
        fx: &mut Effects<PbftMessage>,
    ) {
        let v = pp.value();
        self.note_seen(v.seq);
        if v.view > self.view || (self.changing.is_some() && v.view == self.view) {
            let msg = if cosigns.is_empty() {
                PbftMessage::PrePrepare(pp)
            } else {
                PbftMessage::CoSigned {
                    pre_prepare: pp,
                    cosigns,
                }
            };
            self.buffer(from, msg);
            return;
        }
        if v.view < self.view || !self.may_propose(v.view, pp.author()) {
            return;
        }
        if !self.in_window(v.seq) || v.seq <= self.last_executed {
            return;
        }
        if let Some(held) = self
            .slots
            .get(&v.seq)
            .and_then(|s| s.pre_prepare.as_ref())
            .filter(|h| h.value().view == v.view)
        {
            // The first pre-prepare of a view and slot stands; a second one by the
            // same author for another batch is proof that it equivocated.
            let conflicting = (held.author() == pp.author() && held.value().digest != v.digest)
                .then(|| held.clone());
            if let Some(held) = conflicting.filter(|_| pp.verify(&self.committee).is_ok()) {
                self.note_conflict(PbftMessage::PrePrepare(held), PbftMessage::PrePrepare(pp));
            }
            return;
        }
        // With a primary group, the proposer's signature and the co-signatures make
        // the group's threshold (checked together); otherwise the primary's alone.
        if batch_digest(&v.batch) != v.digest || !self.valid_cosigned(&pp, &cosigns) {
            return;
        }
        // A group member checked the batch already when it co-signed it.
        let cosigned_here = self
            .my_cosigns
            .get(&v.seq)
            .is_some_and(|c| (c.value().view, c.value().digest) == (v.view, v.digest));
        if !cosigned_here && !self.acceptable_batch(v.seq, &v.batch) {
            // Not prepared here: if no quorum prepares it, the request timers
            // replace the primary.
            self.invalid_proposals += 1;
            return;
        }
        self.accept_pre_prepare(now, pp, cosigns, fx);
    }

    /// Whether a fresh proposal is within the size bounds and the application
    /// accepts it. Batches a NEW-VIEW re-issues are not checked: a quorum prepared
    /// them already, and refusing them could lose a committed batch.
    pub(super) fn acceptable_batch(&self, seq: Seq, batch: &[Bytes]) -> bool {
        batch.len() <= self.cfg.batch_size
            && batch.iter().map(Bytes::len).sum::<usize>() <= self.cfg.max_batch_bytes
            && self
                .validator
                .as_ref()
                .is_none_or(|v| v.process_proposal(batch).is_ok())
            && self.record.as_ref().is_none_or(|r| r.check(seq, batch))
    }

    /// Accepts a verified pre-prepare of the current view and sends our prepare.
    pub(super) fn accept_pre_prepare(
        &mut self,
        now: Time,
        pp: Signed<PrePrepare>,
        cosigns: Vec<Signed<CoSignature>>,
        fx: &mut Effects<PbftMessage>,
    ) {
        let (view, seq, digest) = (pp.value().view, pp.value().seq, pp.value().digest);
        let slot = self.slots.entry(seq).or_default();
        if let Some(existing) = &slot.pre_prepare {
            if existing.value().view == view {
                return; // first one wins; a different one is the primary equivocating
            }
        }
        if let Some((pv, pd)) = self.my_prepares.get(&seq) {
            if *pv == view && *pd != digest {
                return;
            }
        }
        let author = pp.author();
        slot.pre_prepare = Some(pp);
        slot.cosigns = cosigns;
        if author != self.id {
            self.abandon_cosigning(seq);
        }
        // A group member that proposed another batch for this slot counts its own
        // pre-prepare as its vote, and does not prepare a second one.
        let proposed_other = self
            .my_pre_prepares
            .get(&seq)
            .is_some_and(|(v, d)| *v == view && *d != digest);
        if author != self.id && !proposed_other {
            let vote = Signed::new(
                Vote {
                    phase: Phase::Prepare,
                    view,
                    seq,
                    digest,
                },
                self.id,
                &self.keys.signing,
            );
            self.my_prepares.insert(seq, (view, digest));
            self.persist(
                WalKey {
                    slot: seq,
                    tag: TAG_PREPARE,
                },
                &WalEntry::Prepare(vote.clone()),
                fx,
            );
            self.slots
                .entry(seq)
                .or_default()
                .prepares
                .insert((view, self.id), vote.clone());
            fx.broadcast(PbftMessage::Vote(vote));
        }
        self.check_prepared(now, seq, fx);
    }

    pub(super) fn on_vote(
        &mut self,
        now: Time,
        from: NodeId,
        vote: Signed<Vote>,
        fx: &mut Effects<PbftMessage>,
    ) {
        let v = *vote.value();
        if v.phase == Phase::Commit {
            self.note_seen(v.seq);
        }
        if v.view > self.view || (self.changing.is_some() && v.view == self.view) {
            self.buffer(from, PbftMessage::Vote(vote));
            return;
        }
        if v.view < self.view {
            return;
        }
        if !self.in_window(v.seq) || v.seq <= self.last_executed {
            return;
        }
        if v.phase == Phase::Prepare
            && self.group_view(v.view).is_none()
            && vote.author() == self.leader(v.view)
        {
            return; // the primary's pre-prepare stands for its prepare
        }
        let key = (v.view, vote.author());
        let slot = self.slots.entry(v.seq).or_default();
        let held = match v.phase {
            Phase::Prepare => slot.prepares.get(&key),
            Phase::Commit => slot.commits.get(&key),
        };
        if let Some(held) = held.cloned() {
            if held.value().digest != v.digest && vote.verify(&self.committee).is_ok() {
                self.note_conflict(PbftMessage::Vote(held), PbftMessage::Vote(vote));
            }
            return;
        }
        if !self.is_member(vote.author()) || vote.verify(&self.committee).is_err() {
            return;
        }
        let slot = self.slots.entry(v.seq).or_default();
        match v.phase {
            Phase::Prepare => {
                slot.prepares.insert(key, vote);
                self.check_prepared(now, v.seq, fx);
            }
            Phase::Commit => {
                slot.commits.insert(key, vote);
                self.check_committed(now, v.seq, fx);
            }
        }
    }

    pub(super) fn check_prepared(&mut self, now: Time, seq: Seq, fx: &mut Effects<PbftMessage>) {
        let view = self.view;
        let Some(slot) = self.slots.get(&seq) else {
            return;
        };
        let Some(pp) = slot.pre_prepare.clone() else {
            return;
        };
        if pp.value().view != view || self.my_commits.get(&seq).is_some_and(|(v, _)| *v == view) {
            self.check_committed(now, seq, fx);
            return;
        }
        let digest = pp.value().digest;
        let prepares: Vec<Signed<Vote>> = slot
            .prepares
            .range((view, NodeId(0))..=(view, NodeId(u16::MAX)))
            .map(|(_, s)| s)
            // The proposer's pre-prepare stands for its prepare.
            .filter(|s| s.value().digest == digest && s.author() != pp.author())
            .cloned()
            .collect();
        if prepares.len() + 1 < self.quorum {
            return;
        }
        let cert = PreparedCert {
            pre_prepare: pp,
            prepares: prepares.into_iter().take(self.quorum - 1).collect(),
        };
        let vote = Signed::new(
            Vote {
                phase: Phase::Commit,
                view,
                seq,
                digest,
            },
            self.id,
            &self.keys.signing,
        );
        self.my_commits.insert(seq, (view, digest));
        self.persist(
            WalKey {
                slot: seq,
                tag: TAG_COMMIT,
            },
            &WalEntry::Commit {
                vote: vote.clone(),
                cert: cert.clone(),
            },
            fx,
        );
        let slot = self.slots.entry(seq).or_default();
        slot.prepared = Some(cert);
        slot.commits.insert((view, self.id), vote.clone());
        fx.broadcast(PbftMessage::Vote(vote));
        self.check_committed(now, seq, fx);
    }

    fn check_committed(&mut self, now: Time, seq: Seq, fx: &mut Effects<PbftMessage>) {
        let view = self.view;
        let Some(slot) = self.slots.get_mut(&seq) else {
            return;
        };
        if slot.committed {
            return;
        }
        let Some(cert) = &slot.prepared else { return };
        let pp = &cert.pre_prepare;
        if pp.value().view != view || slot.view() != Some(view) {
            return;
        }
        let digest = pp.value().digest;
        let commits: Vec<Signed<Vote>> = slot
            .commits
            .range((view, NodeId(0))..=(view, NodeId(u16::MAX)))
            .map(|(_, s)| s)
            .filter(|s| s.value().digest == digest)
            .cloned()
            .collect();
        if commits.len() >= self.quorum {
            // The certificate is fixed here: a later view may re-issue the batch
            // and prepare it again before it executes, but its commits in that
            // view may never reach a quorum here. It holds every matching commit
            // received so far (the first quorum to arrive, mostly), not a quorum
            // chosen by id: T-PBFT rates members by who signed.
            slot.certificate = Some(CommittedEntry {
                pre_prepare: pp.clone(),
                commits,
            });
            slot.committed = true;
            self.try_execute(now, fx);
        }
    }

    pub(super) fn try_execute(&mut self, now: Time, fx: &mut Effects<PbftMessage>) {
        loop {
            let next = self.last_executed + 1;
            let Some(slot) = self.slots.get(&next) else {
                break;
            };
            if !slot.committed {
                break;
            }
            let Some(entry) = slot.certificate.clone() else {
                break;
            };
            self.execute(now, entry, fx);
        }
        self.try_propose(now, fx);
    }

    /// Appends a batch committed here (with its commit certificate) to the log:
    /// drops repeats, extends the hash chain, emits the commit and, every K batches,
    /// a checkpoint vote.
    pub(super) fn execute(
        &mut self,
        now: Time,
        entry: CommittedEntry,
        fx: &mut Effects<PbftMessage>,
    ) {
        let pp = entry.pre_prepare.value();
        let seq = pp.seq;
        debug_assert_eq!(seq, self.last_executed + 1);
        // The chain covers what is output, so that a stored log proves itself.
        let (txs, digests, output) = execution_output(&self.executed, pp);
        let proposal = pp.digest;
        self.append(
            now,
            seq,
            chain_next(&self.chain, seq, &output),
            txs,
            digests,
            fx,
        );
        self.note_own_proposal_executed(now, seq, proposal);
        self.retained.insert(seq, entry);
        while self.retained.len() > self.cfg.retain_committed {
            self.retained.pop_first();
        }
    }

    /// The end of every execution, certified here or transferred: the repeat
    /// window, the chain, the commit and, every K batches, a checkpoint vote.
    pub(super) fn append(
        &mut self,
        now: Time,
        seq: Seq,
        chain: Digest,
        txs: Vec<Bytes>,
        digests: Vec<Digest>,
        fx: &mut Effects<PbftMessage>,
    ) {
        for d in &digests {
            if let Some(a) = self.pending_index.remove(d) {
                self.pending.remove(&a);
            }
            self.proposed.remove(d);
        }
        self.executed.record(seq, digests);
        self.chain = chain;
        self.last_executed = seq;
        self.last_progress = now;
        if let Some(slot) = self.slots.get_mut(&seq) {
            slot.committed = true;
        }
        fx.commit(Committed {
            seq,
            digest: self.chain,
            transactions: txs,
        });
        if seq.is_multiple_of(self.cfg.checkpoint_interval) {
            self.my_checkpoints.insert(seq, self.chain);
            let vote = Signed::new(
                CheckpointVote {
                    seq,
                    state: self.chain,
                },
                self.id,
                &self.keys.signing,
            );
            self.checkpoint_votes
                .entry(seq)
                .or_default()
                .insert(self.id, vote.clone());
            fx.broadcast(PbftMessage::Checkpoint(vote));
            self.check_stable(now, seq, fx);
        }
    }

    /// Turns this replica's proposal for `seq` into a latency sample if the batch that
    /// executed there is the one it proposed (possibly re-issued by a later primary),
    /// and forgets proposals at or below `seq`: they can no longer execute.
    fn note_own_proposal_executed(&mut self, now: Time, seq: Seq, digest: Digest) {
        if let Some(p) = self.own_proposals.get(&seq) {
            if p.digest == digest {
                if self.proposal_commits.len() >= MAX_UNDRAINED_SAMPLES {
                    self.proposal_commits.pop_front();
                }
                self.proposal_commits.push_back(ProposalCommitted {
                    proposed: p.at,
                    committed: now,
                    transactions: p.transactions,
                });
            }
        }
        self.own_proposals = self.own_proposals.split_off(&(seq + 1));
    }
}
