//! Checkpoints and garbage collection (Castro & Liskov §4.3): votes on the log's hash
//! chain every K batches, and a quorum making a checkpoint stable so that the log
//! below it is dropped.

use super::Pbft;
use crate::pbft::messages::{CheckpointVote, PbftMessage};
use bytes::Bytes;
use dwcp_core::codec::encode;
use dwcp_core::{Checkpoint, Digest, Effects, Record, Seq, Signed, Time};

impl Pbft {
    pub(super) fn on_checkpoint(
        &mut self,
        now: Time,
        vote: Signed<CheckpointVote>,
        fx: &mut Effects<PbftMessage>,
    ) {
        let v = *vote.value();
        let limit = self.stable_seq + 64 * self.cfg.checkpoint_interval.max(1) + self.cfg.window;
        if v.seq <= self.stable_seq
            || !v.seq.is_multiple_of(self.cfg.checkpoint_interval)
            || v.seq > limit
        {
            return;
        }
        if !self.is_member(vote.author()) {
            return;
        }
        let votes = self.checkpoint_votes.entry(v.seq).or_default();
        if votes.contains_key(&vote.author()) || vote.verify(&self.committee).is_err() {
            return;
        }
        votes.insert(vote.author(), vote);
        let agreeing = votes
            .values()
            .filter(|s| s.value().state == v.state)
            .count();
        if agreeing > self.f() {
            self.note_seen(v.seq);
        }
        self.check_stable(now, v.seq, fx);
    }

    pub(super) fn check_stable(&mut self, now: Time, seq: Seq, fx: &mut Effects<PbftMessage>) {
        if seq <= self.stable_seq || seq > self.last_executed {
            return;
        }
        let Some(mine) = self.my_checkpoints.get(&seq).copied() else {
            return;
        };
        let Some(votes) = self.checkpoint_votes.get(&seq) else {
            return;
        };
        let proof: Vec<Signed<CheckpointVote>> = votes
            .values()
            .filter(|s| s.value().state == mine)
            .take(self.quorum)
            .cloned()
            .collect();
        if proof.len() < self.quorum {
            return;
        }
        self.make_stable(now, seq, mine, proof, fx);
    }

    fn make_stable(
        &mut self,
        now: Time,
        seq: Seq,
        state: Digest,
        proof: Vec<Signed<CheckpointVote>>,
        fx: &mut Effects<PbftMessage>,
    ) {
        fx.persist(Record::Checkpoint(Checkpoint {
            seq,
            digest: state,
            data: Bytes::from(encode(&proof)),
        }));
        fx.persist(Record::PruneBelow(seq + 1));
        self.stable_seq = seq;
        self.stable_proof = proof;
        self.slots = self.slots.split_off(&(seq + 1));
        self.checkpoint_votes = self.checkpoint_votes.split_off(&(seq + 1));
        self.my_checkpoints = self.my_checkpoints.split_off(&seq);
        self.my_pre_prepares = self.my_pre_prepares.split_off(&(seq + 1));
        self.my_prepares = self.my_prepares.split_off(&(seq + 1));
        self.my_commits = self.my_commits.split_off(&(seq + 1));
        self.my_cosigns = self.my_cosigns.split_off(&(seq + 1));
        self.cosigning = self.cosigning.split_off(&(seq + 1));
        self.next_seq = self.next_seq.max(seq + 1);
        self.try_propose(now, fx);
    }
}
