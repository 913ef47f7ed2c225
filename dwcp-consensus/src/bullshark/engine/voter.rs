//! The primary's core (Narwhal's `primary/src/core.rs`): voting for a peer's header
//! once its parents and batches are here, at most once per author and round, and
//! adding certificates to the DAG, buffering those whose parents are still missing.

use bytes::Bytes;
use dwcp_core::codec::encode;
use dwcp_core::{Digest, Effects, NodeId, Record, Signed, Time, WalKey};
use std::sync::Arc;

use super::{BullsharkEngine, TAG_CERTIFICATE};
use crate::bullshark::certificate::{check_header_with, Certificate};
use crate::bullshark::commit::CommitRule;
use crate::bullshark::dag::{DagError, Inserted};
use crate::bullshark::header::Header;
use crate::bullshark::messages::BullsharkMessage;
use crate::bullshark::vote::HeaderVote;

impl BullsharkEngine {
    pub(super) fn on_header(
        &mut self,
        now: Time,
        from: NodeId,
        header: Signed<Header>,
        fx: &mut Effects<BullsharkMessage>,
    ) {
        let (author, round) = (header.value().author, header.value().round);
        if author != from || author == self.id {
            return;
        }
        if check_header_with(&header, &self.committee, self.quorum).is_err()
            || header.value().batches.len() > self.cfg.max_header_batches
        {
            self.stats.rejected += 1;
            return;
        }
        if round < self.dag.gc_round() || round > self.horizon() + self.cfg.max_round_ahead {
            return;
        }
        if let Some(voted) = self.voted.get(&(round, author)) {
            if voted == header.digest() {
                // Our vote was lost: the same vote again.
                let vote =
                    Signed::new(HeaderVote::for_header(&header), self.id, &self.keys.signing);
                fx.send(author, BullsharkMessage::Vote(vote));
            } else {
                self.stats.equivocations += 1;
            }
            return;
        }
        if header.verify(&self.committee).is_err() {
            self.stats.rejected += 1;
            return;
        }
        match self.pending_headers.get(&author) {
            Some(p) if p.value().round > round => return,
            _ => {}
        }
        self.pending_headers.insert(author, header);
        self.try_vote(now, author, fx);
    }

    /// Votes for `author`'s pending header if its parents and batches are all here.
    fn try_vote(&mut self, now: Time, author: NodeId, fx: &mut Effects<BullsharkMessage>) {
        let Some(header) = self.pending_headers.get(&author) else {
            return;
        };
        let h = header.value();
        let round = h.round;
        if round < self.dag.gc_round() || self.voted.contains_key(&(round, author)) {
            self.pending_headers.remove(&author);
            return;
        }
        let mut missing_parents = Vec::new();
        if round > self.dag.gc_round() {
            for p in &h.parents {
                match self.dag.get(p) {
                    Some(c) if c.round() + 1 != round => {
                        self.pending_headers.remove(&author);
                        self.stats.rejected += 1;
                        return;
                    }
                    Some(_) => {}
                    None if self.dag.is_present(p) => {}
                    None => missing_parents.push(*p),
                }
            }
        }
        if h.batches.iter().any(|d| self.retired_set.contains(d)) {
            // A batch already in the order: a replay, never voted for.
            self.pending_headers.remove(&author);
            self.stats.rejected += 1;
            return;
        }
        let missing_batches: Vec<Digest> = h
            .batches
            .iter()
            .filter(|d| !self.batches.contains_key(d))
            .copied()
            .collect();
        if !missing_parents.is_empty() || !missing_batches.is_empty() {
            for d in missing_parents {
                self.want_certificate(d, author, now);
            }
            for d in missing_batches {
                self.want_batch(d, author, now, false);
            }
            return;
        }
        let digest = *header.digest();
        let vote = Signed::new(HeaderVote::for_header(header), self.id, &self.keys.signing);
        self.pending_headers.remove(&author);
        self.record_vote(round, author, digest, fx);
        fx.send(author, BullsharkMessage::Vote(vote));
    }

    pub(super) fn retry_pending_headers(&mut self, now: Time, fx: &mut Effects<BullsharkMessage>) {
        if self.pending_headers.is_empty() {
            return;
        }
        let authors: Vec<NodeId> = self.pending_headers.keys().copied().collect();
        for a in authors {
            self.try_vote(now, a, fx);
        }
    }

    // ----- the DAG -------------------------------------------------------------------

    pub(super) fn on_certificate(
        &mut self,
        now: Time,
        from: NodeId,
        cert: Certificate,
        fx: &mut Effects<BullsharkMessage>,
    ) {
        let digest = cert.digest();
        let round = cert.round();
        if let Some((buffered, _)) = self.pending.get(&digest) {
            // Buffered for its parents, which we may have stopped asking for (every
            // request lost in a partition): ask again, from whoever sent it now.
            let missing = self.dag.missing_parents(buffered);
            for d in missing {
                self.waiting_on.entry(d).or_default().insert(digest);
                self.want_certificate(d, from, now);
            }
            return;
        }
        if round == 0 || self.dag.contains(&digest) {
            return;
        }
        if round < self.dag.gc_round() {
            return;
        }
        let far = round > self.horizon() + self.cfg.max_round_ahead;
        if far || round > self.horizon() + self.cfg.gc_depth {
            // The committee is so far ahead that peers may have collected the rounds
            // this node misses: take the committed order instead (a valid
            // certificate proves the round was reached).
            if self.transfer_due(now) && cert.verify_with(&self.committee, self.quorum).is_ok() {
                self.request_transfer(now, fx);
            }
            if far {
                return;
            }
        }
        if let Some(existing) = self.dag.get_at(round, cert.author()) {
            if existing.digest() != digest {
                self.stats.equivocations += 1;
            }
            return;
        }
        if cert.verify_with(&self.committee, self.quorum).is_err() {
            self.stats.rejected += 1;
            return;
        }
        self.insert_verified(now, Arc::new(cert), from, fx);
    }

    /// Inserts a verified certificate, then every buffered descendant it completes.
    pub(super) fn insert_verified(
        &mut self,
        now: Time,
        cert: Arc<Certificate>,
        from: NodeId,
        fx: &mut Effects<BullsharkMessage>,
    ) {
        let mut work = vec![(cert, from)];
        while let Some((cert, from)) = work.pop() {
            let digest = cert.digest();
            match self.dag.insert(Arc::clone(&cert)) {
                Ok(Inserted::New) => {
                    // The DAG survives a restart of the whole committee: no peer
                    // would hold it otherwise.
                    fx.persist(Record::Put {
                        key: WalKey {
                            slot: cert.round(),
                            tag: TAG_CERTIFICATE + u32::from(cert.author().0),
                        },
                        value: Bytes::from(encode(&*cert)),
                    });
                    self.want_certs.remove(&digest);
                    self.stats.certificates += 1;
                    self.mark_referenced(&cert);
                    let subdags = self.rule.on_certificate(&self.dag, &cert);
                    if !subdags.is_empty() {
                        self.order(now, subdags, fx);
                    }
                    if let Some(children) = self.waiting_on.remove(&digest) {
                        for child in children {
                            if let Some(p) = self.pending.remove(&child) {
                                work.push(p);
                            }
                        }
                    }
                }
                Ok(Inserted::Duplicate) => {}
                Err(DagError::MissingParents(missing)) => {
                    if cert.round() > self.dag.highest_round() + 2 {
                        self.catch_up(now, from, fx);
                    }
                    if self.pending.len() >= self.cfg.max_pending_certificates {
                        continue;
                    }
                    for d in missing {
                        self.waiting_on.entry(d).or_default().insert(digest);
                        self.want_certificate(d, from, now);
                    }
                    self.pending.insert(digest, (cert, from));
                }
                Err(DagError::Equivocation { .. }) => self.stats.equivocations += 1,
                Err(_) => self.stats.rejected += 1,
            }
        }
        self.retry_pending_headers(now, fx);
        self.try_propose(now, fx);
        self.drain_output(now, fx);
    }
}
