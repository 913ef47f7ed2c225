//! The primary's proposer (Narwhal's `primary/src/proposer.rs`): a header once a
//! quorum of the previous round's certificates is in the DAG and Bullshark's leader
//! rule lets the round advance, and the votes that make the header a certificate.

use bytes::Bytes;
use dwcp_core::codec::encode;
use dwcp_core::{Digest, Effects, NodeId, Record, Round, Signed, Time, WalKey};
use std::sync::Arc;

use super::{BullsharkEngine, TAG_HEADER, TIMER_HEADER};
use crate::bullshark::certificate::Certificate;
use crate::bullshark::header::Header;
use crate::bullshark::leader::LeaderSchedule;
use crate::bullshark::messages::BullsharkMessage;
use crate::bullshark::vote::HeaderVote;

impl BullsharkEngine {
    /// The highest round whose certificates form a quorum, if it is at least `from`.
    fn quorum_round(&self, from: Round) -> Option<Round> {
        let mut r = self.dag.highest_round();
        loop {
            if self.dag.round(r).count() >= self.quorum {
                return Some(r);
            }
            if r <= from || r == 0 {
                return None;
            }
            r -= 1;
        }
    }

    /// Bullshark's proposer rule: whether the leader lets a node build on round
    /// `parents_round` before its timeout. After an even round, the leader's vertex
    /// must be among the parents; after an odd round, `f+1` of its vertices must
    /// support the previous leader, or `2f+1` not.
    fn leader_lets_advance(&self, parents_round: Round) -> bool {
        if parents_round < 2 {
            return true;
        }
        if parents_round.is_multiple_of(2) {
            let leader = self.schedule.leader(parents_round);
            return self.dag.get_at(parents_round, leader).is_some();
        }
        let leader_round = parents_round - 1;
        let Some(leader) = self
            .dag
            .get_at(leader_round, self.schedule.leader(leader_round))
        else {
            return true;
        };
        let target = leader.digest();
        let (mut support, mut against) = (0, 0);
        for c in self.dag.round(parents_round) {
            if c.parents().contains(&target) {
                support += 1;
            } else {
                against += 1;
            }
        }
        support >= self.validity || against >= self.quorum
    }

    pub(super) fn try_propose(&mut self, now: Time, fx: &mut Effects<BullsharkMessage>) {
        let Some(parents_round) = self.quorum_round(self.round) else {
            return;
        };
        let round = parents_round + 1;
        if round <= self.round {
            return;
        }
        let timer_expired = now >= self.last_header_at.after(self.cfg.max_header_delay);
        let enough_digests = self.ready.len() * 32 >= self.cfg.header_size;
        let advance = self.leader_lets_advance(parents_round);
        if !(timer_expired || (enough_digests && advance)) {
            return;
        }
        if !advance {
            self.stats.leader_timeouts += 1;
        }
        let parents: Vec<Digest> = self.dag.round(parents_round).map(|c| c.digest()).collect();
        let take = self.ready.len().min(self.cfg.max_header_batches);
        let ready: Vec<_> = self.ready.drain(..take).collect();
        let transactions = ready.iter().map(|(_, n, _)| n).sum();
        let header = Signed::new(
            Header {
                author: self.id,
                round,
                batches: ready.into_iter().map(|(d, _, _)| d).collect(),
                parents,
            },
            self.id,
            &self.keys.signing,
        );
        let digest = *header.digest();
        fx.persist(Record::Put {
            key: WalKey {
                slot: round,
                tag: TAG_HEADER,
            },
            value: Bytes::from(encode(&header)),
        });
        self.record_vote(round, self.id, digest, fx);
        self.stats.headers_proposed += 1;
        self.proposals.insert(digest, (round, now, transactions));
        self.round = round;
        self.last_header_at = now;
        self.own_votes.clear();
        self.own_certified = false;
        self.own_header = Some(header.clone());
        fx.set_timer(TIMER_HEADER, self.cfg.max_header_delay);
        fx.broadcast(BullsharkMessage::Header(header.clone()));
        let vote = Signed::new(HeaderVote::for_header(&header), self.id, &self.keys.signing);
        self.on_own_vote(now, vote, fx);
    }

    pub(super) fn record_vote(
        &mut self,
        round: Round,
        author: NodeId,
        digest: Digest,
        fx: &mut Effects<BullsharkMessage>,
    ) {
        fx.persist(Record::Put {
            key: WalKey {
                slot: round,
                tag: u32::from(author.0),
            },
            value: Bytes::from(encode(&digest)),
        });
        self.voted.insert((round, author), digest);
    }

    pub(super) fn on_own_vote(
        &mut self,
        now: Time,
        vote: Signed<HeaderVote>,
        fx: &mut Effects<BullsharkMessage>,
    ) {
        let Some(header) = &self.own_header else {
            return;
        };
        if self.own_certified || *vote.value() != HeaderVote::for_header(header) {
            return;
        }
        self.own_votes.insert(vote.author(), vote);
        if self.own_votes.len() >= self.quorum {
            self.own_certified = true;
            let cert = Certificate {
                header: header.clone(),
                votes: self.own_votes.values().cloned().collect(),
            };
            let cert = Arc::new(cert);
            self.last_own_certificate = Some(Arc::clone(&cert));
            fx.broadcast(BullsharkMessage::Certificate((*cert).clone()));
            self.insert_verified(now, cert, self.id, fx);
        }
    }

    pub(super) fn on_vote(
        &mut self,
        now: Time,
        from: NodeId,
        vote: Signed<HeaderVote>,
        fx: &mut Effects<BullsharkMessage>,
    ) {
        if vote.author() != from || self.own_votes.contains_key(&from) {
            return;
        }
        let Some(header) = &self.own_header else {
            return;
        };
        if *vote.value() != HeaderVote::for_header(header) {
            return;
        }
        if vote.verify(&self.committee).is_err() {
            self.stats.rejected += 1;
            return;
        }
        self.on_own_vote(now, vote, fx);
    }
}
