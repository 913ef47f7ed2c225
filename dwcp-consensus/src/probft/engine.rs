//! The ProBFT replica: the normal case (PROPOSE to all; PREPARE and COMMIT to VRF
//! samples; prepared on `q` PREPAREs, decided on `q` COMMITs with no evidence),
//! with the view change in `engine/view_change.rs` and catch-up in
//! `engine/catch_up.rs`.
//!
//! One slot is decided at a time: the leader proposes sequence number `s + 1` once
//! it decided `s`, so a view change concerns one slot, and a batch holds what
//! waited meanwhile.

use super::config::ProbftConfig;
use super::messages::{
    Certificate, Equivocation, Header, ProbftMessage, Proposal, SampledVote, ViewChange, Vote,
};
use super::sample::Phase;
use super::verify::Checker;
use crate::dedup::DedupWindow;
use crate::pbft::{batch_digest, chain_next, StoreReads, Transfers};
use bytes::Bytes;
use dwcp_core::codec::encode;
use dwcp_core::crypto::VrfProof;
use dwcp_core::{
    Committed, Committee, Digest, Effects, Engine, EngineStatus, Input, NodeId, NodeKeys, Record,
    Recovered, Seq, Signed, Time, TimerId, View, WalKey,
};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

mod catch_up;
mod requests;
mod restart;
mod view_change;

/// The housekeeping tick: view-change timeouts and resends.
const TICK: TimerId = TimerId(1);
/// Messages for later slots or views held until this replica gets there.
const MAX_FUTURE: usize = 4096;
/// Write-ahead tags: this replica's PREPARE, COMMIT and proposal of a slot.
const TAG_PREPARE: u32 = 1;
const TAG_COMMIT: u32 = 2;
const TAG_PROPOSAL: u32 = 3;
/// Write-ahead tag of the prepared certificate this replica holds for a slot.
const TAG_PREPARED: u32 = 4;
/// The write-ahead slot of the view this replica is in, and its view change.
const VIEW_SLOT: u64 = u64::MAX;
const TAG_VIEW: u32 = 1;
/// Largest write-ahead value decoded on a restart.
const MAX_RECORD: usize = 64 << 20;

/// The votes of one view, phase and digest received, by sender, with their VRF
/// proofs.
type Voters = BTreeMap<NodeId, (Signed<Vote>, VrfProof)>;

/// Why a replica could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ProbftError {
    /// The parameters do not run, or fail the start-up check.
    #[error("{0}")]
    Config(String),
    /// A write-ahead record does not decode.
    #[error("probft: write-ahead record {0:?} does not decode")]
    CorruptRecord(WalKey),
}

/// A view change under way.
#[derive(Clone, Copy, Debug)]
struct Change {
    target: View,
    attempt: u32,
    started: Time,
}

/// A ProBFT replica.
pub struct Probft {
    id: NodeId,
    keys: NodeKeys,
    cfg: ProbftConfig,
    checker: Checker,
    f_max: usize,
    view: View,
    last: Seq,
    chain: Digest,
    executed: DedupWindow,
    /// The slot being decided (`last + 1`): the leader-signed headers seen, by
    /// view; the batches proposed, by digest; the votes received.
    headers: BTreeMap<View, Signed<Header>>,
    batches: HashMap<Digest, Vec<Bytes>>,
    votes: HashMap<(View, Phase, Digest), Voters>,
    /// The strongest prepared certificate for the slot being decided.
    prepared: Option<Certificate>,
    /// This replica's votes and proposals of slots above `last`, as persisted.
    my_votes: BTreeMap<(Seq, Phase), (View, Digest)>,
    my_proposals: BTreeMap<Seq, (View, Digest)>,
    /// Proof of each view whose leader equivocated: no vote and no decision there.
    evidence: BTreeMap<View, Equivocation>,
    /// Decided slots with their decision certificates, the newest `retain_decided`.
    decided: BTreeMap<Seq, Certificate>,
    pending: BTreeMap<u64, (Digest, Bytes)>,
    pending_index: HashMap<Digest, u64>,
    next_arrival: u64,
    future: Vec<(NodeId, ProbftMessage)>,
    changing: Option<Change>,
    my_view_change: Option<Signed<ViewChange>>,
    view_changes: BTreeMap<View, BTreeMap<NodeId, Signed<ViewChange>>>,
    sent_new_view: Option<Signed<super::messages::NewView>>,
    held_new_view: Option<(NodeId, Signed<super::messages::NewView>)>,
    /// A peer known to be at a later slot, and that slot: whom to fetch from.
    ahead: Option<(NodeId, Seq)>,
    /// The replica asked last when a slot stalled.
    fetch_cursor: usize,
    last_probe: Time,
    last_progress: Time,
    last_resend: Time,
    transfers: Transfers,
    log_readers: StoreReads<()>,
    counters: Counters,
    /// This replica's own proposals not yet decided, and the decided ones not yet
    /// drained: when each was proposed and decided (for benchmark latencies).
    own_proposals: BTreeMap<Seq, (Digest, Time, u64)>,
    proposal_commits: std::collections::VecDeque<dwcp_core::ProposalCommitted>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Counters {
    prepared_here: u64,
    decided_here: u64,
    decided_caught_up: u64,
    transferred: u64,
    evidence: u64,
    view_changes: u64,
    refused: u64,
}

impl Probft {
    /// Replica `keys.id` of `committee`, rebuilt from `recovered` (empty for a
    /// fresh one). Refuses parameters that fail the start-up check.
    pub fn new(
        keys: NodeKeys,
        committee: Committee,
        cfg: ProbftConfig,
        recovered: Recovered,
    ) -> Result<Probft, ProbftError> {
        cfg.validate().map_err(ProbftError::Config)?;
        let n = committee.size();
        let checked = cfg.quorum(n).map_err(ProbftError::Config)?;
        let (q, s, f_max) = (
            checked.figures().q,
            checked.figures().s,
            checked.params().f_max,
        );
        if !committee.contains(keys.id) {
            return Err(ProbftError::Config(format!(
                "probft: {} is not in the committee",
                keys.id
            )));
        }
        let mut p = Probft {
            id: keys.id,
            keys,
            executed: DedupWindow::new(cfg.dedup_window),
            cfg,
            checker: Checker::new(committee, q, s),
            f_max,
            view: 0,
            last: 0,
            chain: Digest::default(),
            headers: BTreeMap::new(),
            batches: HashMap::new(),
            votes: HashMap::new(),
            prepared: None,
            my_votes: BTreeMap::new(),
            my_proposals: BTreeMap::new(),
            evidence: BTreeMap::new(),
            decided: BTreeMap::new(),
            pending: BTreeMap::new(),
            pending_index: HashMap::new(),
            next_arrival: 0,
            future: Vec::new(),
            changing: None,
            my_view_change: None,
            view_changes: BTreeMap::new(),
            sent_new_view: None,
            held_new_view: None,
            ahead: None,
            fetch_cursor: 0,
            last_probe: Time::ZERO,
            last_progress: Time::ZERO,
            last_resend: Time::ZERO,
            transfers: Transfers::default(),
            log_readers: StoreReads::default(),
            counters: Counters::default(),
            own_proposals: BTreeMap::new(),
            proposal_commits: std::collections::VecDeque::new(),
        };
        p.restore(recovered)?;
        Ok(p)
    }

    /// Quorum and sample sizes in use: `(q, s)`.
    pub fn quorum(&self) -> (usize, usize) {
        (self.checker.q, self.checker.s)
    }

    fn n(&self) -> usize {
        self.checker.n()
    }

    fn leader(&self, view: View) -> NodeId {
        self.checker.committee().leader(view)
    }

    /// Whether this replica may vote and decide in `view`.
    fn voting_in(&self, view: View) -> bool {
        view == self.view
            && self.changing.is_none()
            && !(self.cfg.evidence_rule() && self.evidence.contains_key(&view))
    }

    fn hold(&mut self, from: NodeId, msg: ProbftMessage) {
        if self.future.len() < MAX_FUTURE {
            self.future.push((from, msg));
        }
    }

    // ---- the normal case -------------------------------------------------------

    /// As the view's leader with nothing in flight, proposes what waits.
    ///
    /// It proposes one slot ahead, too: `last + 2` once it is prepared on its own
    /// proposal for `last + 1` (it sent its COMMIT), so that the next slot does
    /// not wait for this leader's own decision, which its samples may not bring.
    /// Replicas hold the proposal until they decided the slot before it.
    fn try_propose(&mut self, now: Time, fx: &mut Effects<ProbftMessage>) {
        if self.leader(self.view) != self.id || self.changing.is_some() || self.pending.is_empty() {
            return;
        }
        let next = self.last + 1;
        let (seq, skip) = match self.my_proposals.get(&next) {
            None => (next, None),
            Some(&(view, digest))
                if view == self.view
                    && self.my_votes.get(&(next, Phase::Commit)) == Some(&(view, digest)) =>
            {
                (next + 1, Some(digest))
            }
            Some(_) => return,
        };
        if self.my_proposals.contains_key(&seq) {
            return;
        }
        let batch = self.next_batch(skip.as_ref());
        if batch.is_empty() {
            return;
        }
        self.propose(now, seq, batch, fx);
    }

    /// Signs and sends the proposal of `batch` for `seq` in the current view, once
    /// durably recorded.
    fn propose(&mut self, now: Time, seq: Seq, batch: Vec<Bytes>, fx: &mut Effects<ProbftMessage>) {
        let proposal = self.sign_proposal(seq, batch, fx);
        self.note_proposed(now, &proposal);
        fx.broadcast(ProbftMessage::Propose(proposal.clone()));
        self.on_proposal(now, proposal, fx);
    }

    fn sign_proposal(
        &mut self,
        seq: Seq,
        batch: Vec<Bytes>,
        fx: &mut Effects<ProbftMessage>,
    ) -> Proposal {
        let header = Header {
            view: self.view,
            seq,
            digest: batch_digest(&batch),
        };
        self.my_proposals.insert(seq, (header.view, header.digest));
        fx.persist(Record::Put {
            key: WalKey {
                slot: seq,
                tag: TAG_PROPOSAL,
            },
            value: Bytes::from(encode(&(header.view, header.digest))),
        });
        Proposal {
            header: Signed::new(header, self.id, &self.keys.signing),
            batch,
        }
    }

    fn on_proposal(&mut self, now: Time, p: Proposal, fx: &mut Effects<ProbftMessage>) {
        let h = *p.header.value();
        if h.seq <= self.last || h.view < self.view {
            return;
        }
        if h.seq > self.last + 1 || h.view > self.view {
            self.note_ahead(p.header.author(), h.seq, fx);
            self.hold(p.header.author(), ProbftMessage::Propose(p));
            return;
        }
        if !self.checker.header(&p.header)
            || p.batch.len() > self.cfg.batch_size
            || p.batch.iter().map(Bytes::len).sum::<usize>() > self.cfg.max_batch_bytes
            || batch_digest(&p.batch) != h.digest
        {
            self.counters.refused += 1;
            return;
        }
        if !self.note_header(now, &p.header, fx) {
            return;
        }
        self.batches.insert(h.digest, p.batch);
        self.vote(Phase::Prepare, &p.header, fx);
        self.check_slot(now, fx);
    }

    /// Records a leader-signed header of the slot being decided; on a second one
    /// for its view with another digest, keeps the proof, passes it on and leaves
    /// the view. Returns whether the header stands (no evidence against it).
    fn note_header(
        &mut self,
        now: Time,
        h: &Signed<Header>,
        fx: &mut Effects<ProbftMessage>,
    ) -> bool {
        let view = h.value().view;
        match self.headers.get(&view) {
            None => {
                self.headers.insert(view, h.clone());
                !self.evidence.contains_key(&view) || !self.cfg.evidence_rule()
            }
            Some(known) if known.value().digest == h.value().digest => {
                !self.evidence.contains_key(&view) || !self.cfg.evidence_rule()
            }
            Some(known) => {
                let e = Equivocation {
                    a: known.clone(),
                    b: h.clone(),
                };
                self.on_evidence_held(now, e, fx);
                !self.cfg.evidence_rule()
            }
        }
    }

    /// Sends this replica's vote of `phase` for `header` to its sample, once
    /// durably recorded; never a second digest for one slot, phase and view.
    fn vote(&mut self, phase: Phase, header: &Signed<Header>, fx: &mut Effects<ProbftMessage>) {
        let h = *header.value();
        if !self.voting_in(h.view) {
            return;
        }
        if let Some((view, _)) = self.my_votes.get(&(h.seq, phase)) {
            if *view >= h.view {
                return;
            }
        }
        self.my_votes.insert((h.seq, phase), (h.view, h.digest));
        fx.persist(Record::Put {
            key: WalKey {
                slot: h.seq,
                tag: match phase {
                    Phase::Prepare => TAG_PREPARE,
                    Phase::Commit => TAG_COMMIT,
                },
            },
            value: Bytes::from(encode(&(h.view, h.digest))),
        });
        let vote = Signed::new(
            Vote {
                phase,
                view: h.view,
                seq: h.seq,
                digest: h.digest,
            },
            self.id,
            &self.keys.signing,
        );
        let (proof, sample) = self.checker.own_sample(&self.keys, h.view, phase);
        let msg = SampledVote {
            header: header.clone(),
            vote,
            proof,
        };
        for &to in sample.members() {
            fx.send(
                NodeId(to as u16),
                ProbftMessage::Vote(Box::new(msg.clone())),
            );
        }
    }

    fn on_vote(
        &mut self,
        now: Time,
        from: NodeId,
        v: SampledVote,
        fx: &mut Effects<ProbftMessage>,
    ) {
        let x = *v.vote.value();
        if v.vote.author() != from || x.seq <= self.last || x.view < self.view {
            return;
        }
        if x.seq > self.last + 1 || x.view > self.view {
            self.note_ahead(from, x.seq, fx);
            self.hold(from, ProbftMessage::Vote(Box::new(v)));
            return;
        }
        if !self.checker.vote(&v, self.id) {
            self.counters.refused += 1;
            return;
        }
        if !self.note_header(now, &v.header, fx) {
            return;
        }
        let voters = self.votes.entry((x.view, x.phase, x.digest)).or_default();
        if voters.contains_key(&from) {
            return;
        }
        voters.insert(from, (v.vote, v.proof));
        self.check_slot(now, fx);
    }

    /// Moves the slot being decided on: prepared on a proposal and `q` PREPAREs
    /// (then this replica COMMITs), decided on that and `q` COMMITs.
    fn check_slot(&mut self, now: Time, fx: &mut Effects<ProbftMessage>) {
        let view = self.view;
        if !self.voting_in(view) {
            return;
        }
        let Some(header) = self.headers.get(&view) else {
            return;
        };
        let h = *header.value();
        let q = self.checker.q;
        let prepares = self.votes.get(&(view, Phase::Prepare, h.digest));
        if !self.batches.contains_key(&h.digest) || prepares.is_none_or(|p| p.len() < q) {
            return;
        }
        // The batch is copied only into certificates, not at every vote.
        let header = header.clone();
        if self
            .prepared
            .as_ref()
            .is_none_or(|c| c.header().view < view)
        {
            let votes = prepares
                .into_iter()
                .flatten()
                .map(|(_, v)| v.clone())
                .collect();
            let cert = Certificate {
                holder: self.id,
                proposal: Proposal {
                    header: header.clone(),
                    batch: self.batches[&h.digest].clone(),
                },
                votes,
            };
            // Before the COMMIT it backs leaves: a view change after a restart
            // still reports it.
            fx.persist(Record::Put {
                key: WalKey {
                    slot: h.seq,
                    tag: TAG_PREPARED,
                },
                value: Bytes::from(encode(&cert)),
            });
            self.prepared = Some(cert);
            self.counters.prepared_here += 1;
        }
        self.vote(Phase::Commit, &header, fx);
        self.try_propose(now, fx);
        let commits = self.votes.get(&(view, Phase::Commit, h.digest));
        if commits.is_none_or(|c| c.len() < q) {
            return;
        }
        let votes = commits
            .into_iter()
            .flatten()
            .map(|(_, v)| v.clone())
            .collect();
        self.counters.decided_here += 1;
        let proposal = Proposal {
            header,
            batch: self.batches[&h.digest].clone(),
        };
        self.decide(
            now,
            Certificate {
                holder: self.id,
                proposal,
                votes,
            },
            fx,
        );
    }

    /// Appends a decided slot to the log (dropping repeats), keeps its
    /// certificate, and moves to the next slot.
    fn decide(&mut self, now: Time, cert: Certificate, fx: &mut Effects<ProbftMessage>) {
        let seq = cert.header().seq;
        debug_assert_eq!(seq, self.last + 1);
        let digest = cert.header().digest;
        let batch = cert.proposal.batch.clone();
        self.note_decided(now, seq, digest);
        self.append(now, seq, digest, batch, fx);
        self.decided.insert(seq, cert);
        while self.decided.len() > self.cfg.retain_decided {
            self.decided.pop_first();
        }
        self.after_append(now, fx);
    }

    /// Appends `batch` (proposal digest `digest`) at `seq`: its transactions not
    /// output within the repeat window, the chain extended over them.
    fn append(
        &mut self,
        now: Time,
        seq: Seq,
        digest: Digest,
        batch: Vec<Bytes>,
        fx: &mut Effects<ProbftMessage>,
    ) {
        let fresh = self.executed.fresh(batch.iter().cloned(), true);
        let output = if fresh.transactions.len() == batch.len() {
            digest
        } else {
            batch_digest(&fresh.transactions)
        };
        let c = Committed {
            seq,
            digest: chain_next(&self.chain, seq, &output),
            transactions: fresh.transactions,
        };
        self.output(now, c, fresh.digests, fx);
    }

    /// After the log grew: the next slot starts clean, the write-ahead records of
    /// decided slots go, and what waited for this slot is handled.
    fn after_append(&mut self, now: Time, fx: &mut Effects<ProbftMessage>) {
        self.headers.clear();
        self.batches.clear();
        self.votes.clear();
        self.prepared = None;
        self.my_votes = self.my_votes.split_off(&(self.last + 1, Phase::Prepare));
        self.my_proposals = self.my_proposals.split_off(&(self.last + 1));
        fx.persist(Record::PruneBelow(self.last + 1));
        self.replay_future(now, fx);
        self.try_propose(now, fx);
        self.try_new_view(now, fx);
        if let Some((from, nv)) = self.held_new_view.take() {
            self.on_new_view(now, from, nv, fx);
        }
    }

    /// Handles the held messages that are now due.
    fn replay_future(&mut self, now: Time, fx: &mut Effects<ProbftMessage>) {
        let (last, view) = (self.last, self.view);
        let held = std::mem::take(&mut self.future);
        let (due, later): (Vec<_>, Vec<_>) = held.into_iter().partition(|(_, m)| match m {
            ProbftMessage::Propose(p) => {
                p.header.value().seq == last + 1 && p.header.value().view <= view
            }
            ProbftMessage::Vote(v) => v.vote.value().seq == last + 1 && v.vote.value().view <= view,
            _ => true,
        });
        self.future = later
            .into_iter()
            .filter(|(_, m)| match m {
                ProbftMessage::Propose(p) => p.header.value().seq > last,
                ProbftMessage::Vote(v) => v.vote.value().seq > last,
                _ => false,
            })
            .collect();
        for (from, m) in due {
            self.on_message(now, from, m, fx);
        }
    }

    fn on_message(
        &mut self,
        now: Time,
        from: NodeId,
        msg: ProbftMessage,
        fx: &mut Effects<ProbftMessage>,
    ) {
        if !self.checker.committee().contains(from) {
            return;
        }
        match msg {
            ProbftMessage::Propose(p) => self.on_proposal(now, p, fx),
            ProbftMessage::Vote(v) => self.on_vote(now, from, *v, fx),
            ProbftMessage::Evidence(e) => {
                if self.checker.equivocation(&e) {
                    self.on_evidence_held(now, *e, fx);
                }
            }
            ProbftMessage::ViewChange(vc) => self.on_view_change(now, from, *vc, fx),
            ProbftMessage::NewView(nv) => self.on_new_view(now, from, *nv, fx),
            ProbftMessage::Fetch { from: first } => self.on_fetch(from, first, fx),
            ProbftMessage::Decided(certs) => self.on_decided(now, from, certs, fx),
            ProbftMessage::Log(batches) => self.on_log(now, from, batches, fx),
            ProbftMessage::Forward(txs) => {
                if txs.len() <= self.cfg.batch_size {
                    self.submit(now, txs, fx);
                }
            }
        }
    }

    fn on_tick(&mut self, now: Time, fx: &mut Effects<ProbftMessage>) {
        fx.set_timer(TICK, self.tick());
        self.view_change_tick(now, fx);
        self.catch_up_tick(now, fx);
    }

    fn tick(&self) -> Duration {
        (self.cfg.view_change_timeout / 8).max(Duration::from_millis(1))
    }

    /// Whether there is work this replica waits on: transactions to order, or a
    /// slot in progress.
    fn waiting(&self) -> bool {
        !self.pending.is_empty() || !self.headers.is_empty() || !self.votes.is_empty()
    }
}

impl Engine for Probft {
    type Message = ProbftMessage;

    fn handle(&mut self, now: Time, input: Input<ProbftMessage>, fx: &mut Effects<ProbftMessage>) {
        match input {
            Input::Start => {
                self.last_progress = now;
                fx.set_timer(TICK, self.tick());
                if let Some(vc) = self.my_view_change.clone() {
                    // Restarted mid view change: the same view change again.
                    fx.send(
                        self.leader(vc.value().new_view),
                        ProbftMessage::ViewChange(Box::new(vc)),
                    );
                }
            }
            Input::Message { from, msg } => self.on_message(now, from, msg, fx),
            Input::Timeout(TICK) => self.on_tick(now, fx),
            Input::Timeout(_) => {}
            Input::Submit(txs) => {
                let leader = self.leader(self.view);
                if self.cfg.forward_requests && leader != self.id && !txs.is_empty() {
                    fx.send(leader, ProbftMessage::Forward(txs.clone()));
                }
                self.submit(now, txs, fx);
            }
            Input::StoredCommitted { from, batches } => self.on_stored(from, batches, fx),
        }
    }

    fn status(&self) -> EngineStatus {
        let c = &self.counters;
        let (proved, verified) = self.checker.vrf_work;
        EngineStatus {
            engine: "probft".into(),
            view: self.view,
            last_committed: self.last,
            view_changes: c.view_changes,
            counters: vec![
                ("prepared_here".into(), c.prepared_here),
                ("decided_here".into(), c.decided_here),
                ("decided_caught_up".into(), c.decided_caught_up),
                ("state_transfers".into(), c.transferred),
                ("equivocations_seen".into(), c.evidence),
                ("refused".into(), c.refused),
                ("vrf_proofs".into(), proved),
                ("vrf_verifications".into(), verified),
            ],
            committee: None,
        }
    }

    fn drain_proposal_commits(&mut self, out: &mut Vec<dwcp_core::ProposalCommitted>) {
        out.extend(self.proposal_commits.drain(..));
    }
}
