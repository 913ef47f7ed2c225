//! The PBFT replica state machine (Castro & Liskov, OSDI '99): normal case (§4.2),
//! garbage collection with checkpoints (§4.3), view changes (§4.4), and catch-up of
//! committed batches proved by commit certificates.

use super::config::PbftConfig;
use super::messages::{
    batch_digest, chain_next, CheckpointVote, CommittedEntry, NewView, PbftMessage, Phase,
    PrePrepare, PreparedCert, ViewChange, Vote,
};
use super::wal::{WalEntry, TAG_COMMIT, TAG_NEW_VIEW, TAG_PREPARE, TAG_PRE_PREPARE, TAG_VIEW};
use crate::dedup::DedupWindow;
use bytes::Bytes;
use dwcp_core::application::SharedValidator;
use dwcp_core::codec::{decode, encode};
use dwcp_core::{
    Checkpoint, Committed, Committee, Digest, Effects, Engine, EngineStatus, Input, NodeId,
    NodeKeys, ProposalCommitted, Record, Recovered, Seq, Signed, Time, TimerId, View, WalKey,
};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

const TICK: TimerId = TimerId(1);
const MAX_DECODE: usize = 64 * 1024 * 1024;
/// Proposal samples kept for a driver that does not drain them; older ones are dropped.
const MAX_UNDRAINED_SAMPLES: usize = 4096;

/// Why a replica could not be built from its stored state.
#[derive(Debug, thiserror::Error)]
pub enum PbftError {
    /// A stored record does not decode.
    #[error("corrupt stored record at {key:?}: {reason}")]
    CorruptRecord {
        /// The record's key.
        key: WalKey,
        /// The decoder's complaint.
        reason: String,
    },
    /// The stored checkpoint does not decode.
    #[error("corrupt stored checkpoint at seq {0}")]
    CorruptCheckpoint(Seq),
    /// The keys do not belong to a committee member.
    #[error("{0} is not a member of the committee")]
    NotAMember(NodeId),
}

/// Votes and the proposal for one sequence number.
#[derive(Default, Debug)]
struct Slot {
    /// The accepted pre-prepare and its view.
    pre_prepare: Option<Signed<PrePrepare>>,
    prepares: BTreeMap<(View, NodeId), Signed<Vote>>,
    commits: BTreeMap<(View, NodeId), Signed<Vote>>,
    /// Latest prepared certificate held (any view).
    prepared: Option<PreparedCert>,
    committed: bool,
}

impl Slot {
    fn view(&self) -> Option<View> {
        self.pre_prepare.as_ref().map(|p| p.value().view)
    }
}

/// A batch this replica proposed as primary and has not yet executed.
#[derive(Debug, Clone, Copy)]
struct OwnProposal {
    digest: Digest,
    at: Time,
    transactions: u64,
}

/// Progress of a view change this replica started or joined.
#[derive(Debug, Clone)]
struct ViewChanging {
    target: View,
    started: Time,
    attempt: u32,
}

/// One PBFT replica.
pub struct Pbft {
    id: NodeId,
    keys: NodeKeys,
    committee: Committee,
    cfg: PbftConfig,
    quorum: usize,

    view: View,
    changing: Option<ViewChanging>,
    view_changes_seen: u64,

    slots: BTreeMap<Seq, Slot>,
    stable_seq: Seq,
    stable_proof: Vec<Signed<CheckpointVote>>,
    checkpoint_votes: BTreeMap<Seq, BTreeMap<NodeId, Signed<CheckpointVote>>>,
    my_checkpoints: BTreeMap<Seq, Digest>,

    /// What this replica signed, so that it never signs a contradiction, even after restart.
    my_pre_prepares: BTreeMap<Seq, (View, Digest)>,
    my_prepares: BTreeMap<Seq, (View, Digest)>,
    my_commits: BTreeMap<Seq, (View, Digest)>,

    last_executed: Seq,
    chain: Digest,
    executed: DedupWindow,
    retained: BTreeMap<Seq, CommittedEntry>,
    /// Peers waiting for the committed log read from the store, by first seq.
    log_readers: BTreeMap<Seq, Vec<NodeId>>,
    /// Stored logs peers sent, chain-verified from our log, until `f+1` agree.
    transfers: BTreeMap<NodeId, Vec<Committed>>,

    pending: BTreeMap<u64, (Digest, Bytes)>,
    pending_index: HashMap<Digest, u64>,
    next_arrival: u64,
    proposed: HashSet<Digest>,
    next_seq: Seq,
    last_progress: Time,
    /// The request whose wait times the primary (§4.4): the oldest one pending when
    /// the timer started. A primary that orders others but censors it is replaced.
    watched: Option<(Digest, Time)>,
    last_tick_executed: Seq,

    view_changes: BTreeMap<View, BTreeMap<NodeId, Signed<ViewChange>>>,
    latest_vc_of: HashMap<NodeId, View>,
    own_view_change: Option<Signed<ViewChange>>,
    new_view: Option<Signed<NewView>>,
    future: VecDeque<(NodeId, PbftMessage)>,
    highest_seen: Seq,
    fetch_cursor: usize,
    restored: bool,
    /// Fresh batches this replica proposed, by sequence number, until executed; at
    /// most `window` of them, since a primary proposes only inside the window.
    own_proposals: BTreeMap<Seq, OwnProposal>,
    /// Own proposals that executed, waiting for [`Engine::drain_proposal_commits`].
    proposal_commits: VecDeque<ProposalCommitted>,
    /// The application's admission rules; `None` accepts everything.
    validator: Option<SharedValidator>,
    /// Pre-prepares refused: too large, or refused by the application.
    invalid_proposals: u64,
    /// Client transactions the application refused.
    refused_transactions: u64,
}

impl Pbft {
    /// A replica for `keys.id` in `committee`, rebuilt from `recovered` (empty for a
    /// fresh start).
    pub fn new(
        keys: NodeKeys,
        committee: Committee,
        cfg: PbftConfig,
        recovered: Recovered,
    ) -> Result<Pbft, PbftError> {
        if !committee.contains(keys.id) {
            return Err(PbftError::NotAMember(keys.id));
        }
        #[cfg(feature = "unsafe-test-hooks")]
        let quorum = cfg
            .unsafe_quorum_override
            .unwrap_or_else(|| committee.quorum_threshold());
        #[cfg(not(feature = "unsafe-test-hooks"))]
        let quorum = committee.quorum_threshold();
        let dedup_window = cfg.dedup_window;
        let mut p = Pbft {
            id: keys.id,
            keys,
            committee,
            cfg,
            quorum,
            view: 0,
            changing: None,
            view_changes_seen: 0,
            slots: BTreeMap::new(),
            stable_seq: 0,
            stable_proof: Vec::new(),
            checkpoint_votes: BTreeMap::new(),
            my_checkpoints: BTreeMap::new(),
            my_pre_prepares: BTreeMap::new(),
            my_prepares: BTreeMap::new(),
            my_commits: BTreeMap::new(),
            last_executed: 0,
            chain: Digest::ZERO,
            executed: DedupWindow::new(dedup_window),
            retained: BTreeMap::new(),
            log_readers: BTreeMap::new(),
            transfers: BTreeMap::new(),
            pending: BTreeMap::new(),
            pending_index: HashMap::new(),
            next_arrival: 0,
            proposed: HashSet::new(),
            next_seq: 1,
            last_progress: Time::ZERO,
            watched: None,
            last_tick_executed: 0,
            view_changes: BTreeMap::new(),
            latest_vc_of: HashMap::new(),
            own_view_change: None,
            new_view: None,
            future: VecDeque::new(),
            highest_seen: 0,
            fetch_cursor: 0,
            restored: false,
            own_proposals: BTreeMap::new(),
            proposal_commits: VecDeque::new(),
            validator: None,
            invalid_proposals: 0,
            refused_transactions: 0,
        };
        p.restore(recovered)?;
        Ok(p)
    }

    /// Checks transactions and proposals with `validator` (see
    /// [`dwcp_core::Validator`]): refused transactions are dropped on arrival, and
    /// this replica does not prepare a fresh proposal its application refuses.
    pub fn with_validator(mut self, validator: SharedValidator) -> Pbft {
        self.validator = Some(validator);
        self
    }

    fn restore(&mut self, rec: Recovered) -> Result<(), PbftError> {
        self.restored =
            !rec.wal.is_empty() || !rec.committed_tail.is_empty() || !rec.checkpoints.is_empty();
        if let Some(c) = rec.committed_tail.last() {
            self.last_executed = c.seq;
            self.chain = c.digest;
        }
        self.executed.restore(&rec.committed_tail);
        if let Some(cp) = rec.checkpoints.last() {
            let proof: Vec<Signed<CheckpointVote>> =
                decode(&cp.data, MAX_DECODE).map_err(|_| PbftError::CorruptCheckpoint(cp.seq))?;
            self.stable_seq = cp.seq;
            self.stable_proof = proof;
            self.my_checkpoints.insert(cp.seq, cp.digest);
        }
        let mut entries = Vec::with_capacity(rec.wal.len());
        for (key, value) in &rec.wal {
            let e: WalEntry = decode(value, MAX_DECODE).map_err(|e| PbftError::CorruptRecord {
                key: *key,
                reason: e.to_string(),
            })?;
            if let WalEntry::View { view, view_change } = &e {
                self.view = *view;
                if let Some(vc) = view_change {
                    self.changing = Some(ViewChanging {
                        target: *view,
                        started: Time::ZERO,
                        attempt: 0,
                    });
                    self.own_view_change = Some(vc.clone());
                }
            }
            entries.push(e);
        }
        for e in entries {
            match e {
                WalEntry::View { .. } => {}
                WalEntry::NewView(nv) => {
                    if nv.value().view == self.view {
                        self.new_view = Some(nv);
                    }
                }
                WalEntry::PrePrepare(pp) => {
                    let v = pp.value();
                    self.my_pre_prepares.insert(v.seq, (v.view, v.digest));
                    if v.view == self.view && v.seq > self.stable_seq {
                        self.next_seq = self.next_seq.max(v.seq + 1);
                        self.slots.entry(v.seq).or_default().pre_prepare = Some(pp.clone());
                    }
                }
                WalEntry::Prepare(vote) => {
                    let v = *vote.value();
                    self.my_prepares.insert(v.seq, (v.view, v.digest));
                    if v.seq > self.stable_seq {
                        self.slots
                            .entry(v.seq)
                            .or_default()
                            .prepares
                            .insert((v.view, self.id), vote);
                    }
                }
                WalEntry::Commit { vote, cert } => {
                    let v = *vote.value();
                    self.my_commits.insert(v.seq, (v.view, v.digest));
                    if v.seq > self.stable_seq {
                        let slot = self.slots.entry(v.seq).or_default();
                        slot.commits.insert((v.view, self.id), vote);
                        slot.prepared = Some(cert);
                    }
                }
            }
        }
        self.restore_own_new_view();
        self.next_seq = self
            .next_seq
            .max(self.last_executed + 1)
            .max(self.stable_seq + 1);
        Ok(())
    }

    /// A stored NEW-VIEW of the current view is one this replica issued as its
    /// primary: it is in that view, and the pre-prepares the NEW-VIEW re-issued are
    /// its own at their sequence numbers, whether or not their own records reached
    /// the store before a crash. Without this a restarted primary could sign a
    /// second batch for a (view, seq) its NEW-VIEW already fixed.
    fn restore_own_new_view(&mut self) {
        let Some(nv) = self.new_view.clone() else {
            return;
        };
        let view = nv.value().view;
        if view != self.view {
            return;
        }
        if self.changing.as_ref().is_some_and(|c| c.target == view) {
            self.changing = None;
            self.own_view_change = None;
        }
        for pp in &nv.value().pre_prepares {
            let v = pp.value();
            self.my_pre_prepares.insert(v.seq, (v.view, v.digest));
            self.next_seq = self.next_seq.max(v.seq + 1);
            if v.seq > self.stable_seq && v.seq > self.last_executed {
                let slot = self.slots.entry(v.seq).or_default();
                if slot.view().is_none_or(|w| w <= view) {
                    slot.pre_prepare = Some(pp.clone());
                }
            }
        }
    }

    fn is_primary(&self) -> bool {
        self.changing.is_none() && self.committee.leader(self.view) == self.id
    }

    fn f(&self) -> usize {
        self.committee.max_faulty()
    }

    fn in_window(&self, seq: Seq) -> bool {
        seq > self.stable_seq && seq <= self.stable_seq + self.cfg.window
    }

    fn persist(&self, key: WalKey, entry: &WalEntry, fx: &mut Effects<PbftMessage>) {
        fx.persist(Record::Put {
            key,
            value: Bytes::from(encode(entry)),
        });
    }

    fn persist_view(&self, fx: &mut Effects<PbftMessage>) {
        let entry = WalEntry::View {
            view: self.view,
            view_change: self
                .own_view_change
                .clone()
                .filter(|_| self.changing.is_some()),
        };
        self.persist(
            WalKey {
                slot: u64::MAX,
                tag: TAG_VIEW,
            },
            &entry,
            fx,
        );
    }

    // ----- client requests -------------------------------------------------------

    fn on_submit(&mut self, now: Time, txs: Vec<Bytes>, fx: &mut Effects<PbftMessage>) {
        let primary = self.committee.leader(self.view);
        if self.cfg.forward_requests && primary != self.id && self.changing.is_none() {
            fx.send(primary, PbftMessage::Request(txs.clone()));
        }
        self.add_requests(now, txs, fx);
    }

    fn add_requests(&mut self, now: Time, txs: Vec<Bytes>, fx: &mut Effects<PbftMessage>) {
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

    fn try_propose(&mut self, now: Time, fx: &mut Effects<PbftMessage>) {
        while self.is_primary() && self.next_seq <= self.stable_seq + self.cfg.window {
            let unproposed = self.pending.len().saturating_sub(self.proposed.len());
            let in_flight = self.next_seq.saturating_sub(self.last_executed + 1);
            if unproposed == 0 || (unproposed < self.cfg.batch_size && in_flight > 0) {
                return;
            }
            let mut batch = Vec::with_capacity(self.cfg.batch_size.min(unproposed));
            let mut bytes = 0;
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
            if batch.is_empty() {
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
        self.slots.entry(seq).or_default().pre_prepare = Some(pp.clone());
        fx.broadcast(PbftMessage::PrePrepare(pp));
        // In a committee of one the primary's own pre-prepare is a quorum.
        self.check_prepared(now, seq, fx);
    }

    /// Records a pre-prepare this replica signed as primary, durably, so that it
    /// never proposes another batch for the same view and sequence number.
    fn remember_own_pre_prepare(&mut self, pp: &Signed<PrePrepare>, fx: &mut Effects<PbftMessage>) {
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

    // ----- normal case -------------------------------------------------------------

    fn on_pre_prepare(
        &mut self,
        now: Time,
        from: NodeId,
        pp: Signed<PrePrepare>,
        fx: &mut Effects<PbftMessage>,
    ) {
        let v = pp.value();
        self.note_seen(v.seq);
        if v.view > self.view || (self.changing.is_some() && v.view == self.view) {
            self.buffer(from, PbftMessage::PrePrepare(pp));
            return;
        }
        if v.view < self.view || pp.author() != self.committee.leader(v.view) {
            return;
        }
        if !self.in_window(v.seq) || v.seq <= self.last_executed {
            return;
        }
        if batch_digest(&v.batch) != v.digest || pp.verify(&self.committee).is_err() {
            return;
        }
        if !self.acceptable_batch(&v.batch) {
            // Not prepared here: if no quorum prepares it, the request timers
            // replace the primary.
            self.invalid_proposals += 1;
            return;
        }
        self.accept_pre_prepare(now, pp, fx);
    }

    /// Whether a fresh proposal is within the size bounds and the application
    /// accepts it. Batches a NEW-VIEW re-issues are not checked: a quorum prepared
    /// them already, and refusing them could lose a committed batch.
    fn acceptable_batch(&self, batch: &[Bytes]) -> bool {
        batch.len() <= self.cfg.batch_size
            && batch.iter().map(Bytes::len).sum::<usize>() <= self.cfg.max_batch_bytes
            && self
                .validator
                .as_ref()
                .is_none_or(|v| v.process_proposal(batch).is_ok())
    }

    /// Accepts a verified pre-prepare of the current view and sends our prepare.
    fn accept_pre_prepare(
        &mut self,
        now: Time,
        pp: Signed<PrePrepare>,
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
        slot.pre_prepare = Some(pp);
        if self.committee.leader(view) != self.id {
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

    fn on_vote(
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
        if v.phase == Phase::Prepare && vote.author() == self.committee.leader(v.view) {
            return; // the primary's pre-prepare stands for its prepare
        }
        let key = (v.view, vote.author());
        let slot = self.slots.entry(v.seq).or_default();
        let known = match v.phase {
            Phase::Prepare => slot.prepares.contains_key(&key),
            Phase::Commit => slot.commits.contains_key(&key),
        };
        if known || vote.verify(&self.committee).is_err() {
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

    fn check_prepared(&mut self, now: Time, seq: Seq, fx: &mut Effects<PbftMessage>) {
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
            .filter(|s| s.value().digest == digest)
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
        let matching = slot
            .commits
            .range((view, NodeId(0))..=(view, NodeId(u16::MAX)))
            .filter(|(_, s)| s.value().digest == digest)
            .count();
        if matching >= self.quorum {
            slot.committed = true;
            self.try_execute(now, fx);
        }
    }

    fn try_execute(&mut self, now: Time, fx: &mut Effects<PbftMessage>) {
        loop {
            let next = self.last_executed + 1;
            let Some(slot) = self.slots.get(&next) else {
                break;
            };
            if !slot.committed {
                break;
            }
            let Some(cert) = &slot.prepared else { break };
            let pp = cert.pre_prepare.clone();
            let view = pp.value().view;
            let digest = pp.value().digest;
            let commits: Vec<Signed<Vote>> = slot
                .commits
                .range((view, NodeId(0))..=(view, NodeId(u16::MAX)))
                .map(|(_, s)| s)
                .filter(|s| s.value().digest == digest)
                .take(self.quorum)
                .cloned()
                .collect();
            self.execute(
                now,
                CommittedEntry {
                    pre_prepare: pp,
                    commits,
                },
                fx,
            );
        }
        self.try_propose(now, fx);
    }

    /// Appends a batch committed here (with its commit certificate) to the log:
    /// drops repeats, extends the hash chain, emits the commit and, every K batches,
    /// a checkpoint vote.
    fn execute(&mut self, now: Time, entry: CommittedEntry, fx: &mut Effects<PbftMessage>) {
        let pp = entry.pre_prepare.value();
        let seq = pp.seq;
        debug_assert_eq!(seq, self.last_executed + 1);
        let fresh = self.executed.fresh(pp.batch.iter().cloned(), true);
        let (txs, digests) = (fresh.transactions, fresh.digests);
        // The chain covers what is output, so that a stored log proves itself; with
        // nothing dropped that is the batch whose digest the pre-prepare names.
        let output = if txs.len() == pp.batch.len() {
            pp.digest
        } else {
            batch_digest(&txs)
        };
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
    fn append(
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

    // ----- checkpoints -------------------------------------------------------------

    fn on_checkpoint(
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

    fn check_stable(&mut self, now: Time, seq: Seq, fx: &mut Effects<PbftMessage>) {
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
        self.next_seq = self.next_seq.max(seq + 1);
        self.try_propose(now, fx);
    }

    // ----- catch-up ----------------------------------------------------------------

    fn note_seen(&mut self, seq: Seq) {
        self.highest_seen = self.highest_seen.max(seq);
    }

    fn request_fetch(&mut self, fx: &mut Effects<PbftMessage>) {
        let n = self.committee.size();
        let mut sent = 0;
        let mut tries = 0;
        while sent < self.f() + 1 && tries < n {
            let to = NodeId((self.fetch_cursor % n) as u16);
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

    fn on_fetch(&mut self, from: NodeId, first: Seq, fx: &mut Effects<PbftMessage>) {
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
        // read it from the store. One outstanding read per peer.
        for waiting in self.log_readers.values_mut() {
            waiting.retain(|p| *p != from);
        }
        self.log_readers.retain(|_, w| !w.is_empty());
        let waiting = self.log_readers.entry(first).or_default();
        waiting.push(from);
        if waiting.len() == 1 {
            fx.read_committed(first, self.cfg.fetch_batch);
        }
    }

    /// Sends the stored batches read for `from` to the peers that asked for them.
    fn on_stored_committed(
        &mut self,
        from: Seq,
        batches: Vec<Committed>,
        fx: &mut Effects<PbftMessage>,
    ) {
        let Some(peers) = self.log_readers.remove(&from) else {
            return;
        };
        if batches.first().is_none_or(|c| c.seq != from) {
            return;
        }
        for p in peers {
            fx.send(p, PbftMessage::Log(batches.clone()));
        }
    }

    /// A peer's stored log from our next sequence number on. Each batch must extend
    /// our hash chain; the batches execute once `f+1` members (so one honest) sent
    /// the same chain up to them.
    fn on_log(
        &mut self,
        now: Time,
        from: NodeId,
        batches: Vec<Committed>,
        fx: &mut Effects<PbftMessage>,
    ) {
        if batches.len() > self.cfg.fetch_batch {
            return;
        }
        let mut chain = self.chain;
        let mut verified = Vec::with_capacity(batches.len());
        for (k, c) in batches.into_iter().enumerate() {
            let next = chain_next(&chain, c.seq, &batch_digest(&c.transactions));
            if c.seq != self.last_executed + 1 + k as u64 || next != c.digest {
                break;
            }
            chain = next;
            verified.push(c);
        }
        if verified.is_empty() {
            return;
        }
        self.transfers.insert(from, verified);
        self.apply_vouched_transfers(now, fx);
    }

    /// Executes the longest run of transferred batches that `f+1` members vouch for.
    fn apply_vouched_transfers(&mut self, now: Time, fx: &mut Effects<PbftMessage>) {
        // Buffers that no longer start right after our log are trimmed, or dropped
        // if they disagree with it.
        let (last, chain) = (self.last_executed, self.chain);
        self.transfers.retain(|_, bs| {
            let keep_from = bs.iter().position(|c| c.seq > last).unwrap_or(bs.len());
            if keep_from > 0 && bs[keep_from - 1].digest != chain {
                return false;
            }
            bs.drain(..keep_from);
            !bs.is_empty()
        });
        // Every buffer starts at our next batch and is chain-verified from our
        // chain, so agreeing on the chain at position k means agreeing on every
        // batch up to it: the longest such run is taken from any buffer holding it.
        let mut agreed: Option<(usize, Digest)> = None;
        for k in 0..self.cfg.fetch_batch {
            let mut counts: HashMap<Digest, usize> = HashMap::new();
            let vouched = self
                .transfers
                .values()
                .filter_map(|bs| bs.get(k))
                .find_map(|c| {
                    let n = counts.entry(c.digest).or_default();
                    *n += 1;
                    (*n > self.f()).then_some(c.digest)
                });
            match vouched {
                Some(d) => agreed = Some((k + 1, d)),
                None => break,
            }
        }
        let Some((vouched, target)) = agreed else {
            return;
        };
        let Some(batches) = self
            .transfers
            .values()
            .find(|bs| bs.get(vouched - 1).is_some_and(|c| c.digest == target))
            .map(|bs| bs[..vouched].to_vec())
        else {
            return;
        };
        for c in batches {
            let digests = c.transactions.iter().map(|t| Digest::of(t)).collect();
            self.append(now, c.seq, c.digest, c.transactions, digests, fx);
        }
        self.after_catch_up(now, fx);
        // More to come: ask for the next part while the buffers run dry.
        if self.transfers.values().all(|bs| bs.len() <= vouched) {
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
        if e.pre_prepare.author() != self.committee.leader(pp.view)
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
            if !authors.insert(c.author()) || !self.committee.contains(c.author()) {
                return false;
            }
            items.push(c.verify_item());
        }
        authors.len() >= self.quorum && self.committee.verify_batch(&items).is_ok()
    }

    fn on_entries(
        &mut self,
        now: Time,
        from: NodeId,
        entries: Vec<CommittedEntry>,
        fx: &mut Effects<PbftMessage>,
    ) {
        let full = entries.len() >= self.cfg.fetch_batch;
        let mut progressed = false;
        for e in entries {
            if e.pre_prepare.value().seq != self.last_executed + 1 {
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

    // ----- view changes ------------------------------------------------------------

    fn start_view_change(
        &mut self,
        now: Time,
        target: View,
        attempt: u32,
        fx: &mut Effects<PbftMessage>,
    ) {
        if target <= self.view && self.changing.is_none() {
            return;
        }
        if let Some(c) = &self.changing {
            if target <= c.target {
                return;
            }
        }
        let prepared: Vec<PreparedCert> = self
            .slots
            .range(self.stable_seq + 1..)
            .filter_map(|(_, s)| s.prepared.clone())
            .collect();
        let vc = Signed::new(
            ViewChange {
                new_view: target,
                stable_seq: self.stable_seq,
                stable_proof: self.stable_proof.clone(),
                prepared,
            },
            self.id,
            &self.keys.signing,
        );
        self.view = target;
        self.changing = Some(ViewChanging {
            target,
            started: now,
            attempt,
        });
        self.own_view_change = Some(vc.clone());
        self.new_view = None;
        self.proposed.clear();
        self.view_changes_seen += 1;
        self.persist_view(fx);
        self.record_view_change(vc.clone());
        fx.broadcast(PbftMessage::ViewChange(vc));
        self.try_new_view(now, fx);
    }

    fn record_view_change(&mut self, vc: Signed<ViewChange>) {
        let author = vc.author();
        let view = vc.value().new_view;
        if let Some(old) = self.latest_vc_of.get(&author).copied() {
            if old >= view {
                return;
            }
            if let Some(m) = self.view_changes.get_mut(&old) {
                m.remove(&author);
            }
        }
        self.latest_vc_of.insert(author, view);
        self.view_changes
            .entry(view)
            .or_default()
            .insert(author, vc);
    }

    /// Checks a view-change message's signatures and certificates (§4.4).
    fn valid_view_change(&self, vc: &Signed<ViewChange>) -> bool {
        let v = vc.value();
        let mut items = vec![vc.verify_item()];
        if v.stable_seq > 0 {
            let Some(first) = v.stable_proof.first() else {
                return false;
            };
            let state = first.value().state;
            let mut authors = HashSet::new();
            for s in &v.stable_proof {
                if s.value().seq != v.stable_seq
                    || s.value().state != state
                    || !authors.insert(s.author())
                {
                    return false;
                }
                items.push(s.verify_item());
            }
            if authors.len() < self.quorum {
                return false;
            }
        }
        for cert in &v.prepared {
            let pp = cert.pre_prepare.value();
            if pp.view >= v.new_view
                || pp.seq <= v.stable_seq
                || pp.seq > v.stable_seq + self.cfg.window
                || cert.pre_prepare.author() != self.committee.leader(pp.view)
                || batch_digest(&pp.batch) != pp.digest
            {
                return false;
            }
            items.push(cert.pre_prepare.verify_item());
            let mut authors = HashSet::new();
            for p in &cert.prepares {
                let pv = p.value();
                if pv.phase != Phase::Prepare
                    || pv.view != pp.view
                    || pv.seq != pp.seq
                    || pv.digest != pp.digest
                    || p.author() == cert.pre_prepare.author()
                    || !authors.insert(p.author())
                {
                    return false;
                }
                items.push(p.verify_item());
            }
            if authors.len() + 1 < self.quorum {
                return false;
            }
        }
        items.iter().all(|(a, _, _)| self.committee.contains(*a))
            && self.committee.verify_batch(&items).is_ok()
    }

    fn on_view_change(
        &mut self,
        now: Time,
        from: NodeId,
        vc: Signed<ViewChange>,
        fx: &mut Effects<PbftMessage>,
    ) {
        let w = vc.value().new_view;
        let current = self.view;
        if w < current || (w == current && self.changing.is_none()) {
            // The sender is behind: show it the view we are in, if we can prove it.
            if let Some(nv) = &self.new_view {
                if self.changing.is_none() {
                    fx.send(from, PbftMessage::NewView(nv.clone()));
                }
            }
            return;
        }
        if self.latest_vc_of.get(&vc.author()).is_some_and(|v| *v >= w)
            || !self.valid_view_change(&vc)
        {
            return;
        }
        self.record_view_change(vc);
        // §4.5.2: f+1 replicas want a higher view: join the smallest of them.
        let mut higher: Vec<View> = self
            .latest_vc_of
            .iter()
            .filter(|(a, v)| **a != self.id && **v > self.view)
            .map(|(_, v)| *v)
            .collect();
        if higher.len() > self.f() {
            higher.sort_unstable();
            // At least f+1 replicas, so one honest, want this view or a higher one.
            let target = higher[higher.len() - (self.f() + 1)];
            self.start_view_change(now, target, 0, fx);
        }
        self.try_new_view(now, fx);
    }

    /// The pre-prepares a new primary must issue, from a quorum of view changes:
    /// the batch prepared in the highest view for every sequence number between the
    /// highest stable checkpoint and the highest prepared one, else an empty batch.
    fn plan_new_view(vcs: &[Signed<ViewChange>]) -> (Seq, Vec<(Seq, Vec<Bytes>)>) {
        let min_s = vcs.iter().map(|v| v.value().stable_seq).max().unwrap_or(0);
        let mut best: BTreeMap<Seq, &PrePrepare> = BTreeMap::new();
        for vc in vcs {
            for cert in &vc.value().prepared {
                let pp = cert.pre_prepare.value();
                if pp.seq <= min_s {
                    continue;
                }
                let entry = best.entry(pp.seq).or_insert(pp);
                if pp.view > entry.view {
                    *entry = pp;
                }
            }
        }
        let max_s = best.keys().next_back().copied().unwrap_or(min_s);
        let plan = (min_s + 1..=max_s)
            .map(|s| {
                (
                    s,
                    best.get(&s).map(|pp| pp.batch.clone()).unwrap_or_default(),
                )
            })
            .collect();
        (min_s, plan)
    }

    fn try_new_view(&mut self, now: Time, fx: &mut Effects<PbftMessage>) {
        let Some(c) = self.changing.clone() else {
            return;
        };
        if self.committee.leader(c.target) != self.id
            || self
                .new_view
                .as_ref()
                .is_some_and(|nv| nv.value().view >= c.target)
        {
            return; // not ours to announce, or announced already
        }
        let Some(vcs) = self.view_changes.get(&c.target) else {
            return;
        };
        if vcs.len() < self.quorum || !vcs.contains_key(&self.id) {
            return;
        }
        let mut chosen: Vec<Signed<ViewChange>> = Vec::with_capacity(self.quorum);
        if let Some(own) = vcs.get(&self.id) {
            chosen.push(own.clone());
        }
        chosen.extend(
            vcs.iter()
                .filter(|(a, _)| **a != self.id)
                .take(self.quorum - 1)
                .map(|(_, v)| v.clone()),
        );
        let (_, plan) = Self::plan_new_view(&chosen);
        let pre_prepares: Vec<Signed<PrePrepare>> = plan
            .into_iter()
            .map(|(seq, batch)| {
                Signed::new(
                    PrePrepare {
                        view: c.target,
                        seq,
                        digest: batch_digest(&batch),
                        batch,
                    },
                    self.id,
                    &self.keys.signing,
                )
            })
            .collect();
        let nv = Signed::new(
            NewView {
                view: c.target,
                view_changes: chosen,
                pre_prepares,
            },
            self.id,
            &self.keys.signing,
        );
        self.persist(
            WalKey {
                slot: u64::MAX,
                tag: TAG_NEW_VIEW,
            },
            &WalEntry::NewView(nv.clone()),
            fx,
        );
        fx.broadcast(PbftMessage::NewView(nv.clone()));
        self.enter_view(now, nv, fx);
    }

    fn on_new_view(&mut self, now: Time, nv: Signed<NewView>, fx: &mut Effects<PbftMessage>) {
        let v = nv.value();
        let w = v.view;
        let acceptable = match &self.changing {
            Some(c) => w >= c.target,
            None => w > self.view,
        };
        if !acceptable
            || nv.author() != self.committee.leader(w)
            || nv.verify(&self.committee).is_err()
        {
            return;
        }
        let mut authors = HashSet::new();
        for vc in &v.view_changes {
            if vc.value().new_view != w
                || !authors.insert(vc.author())
                || !self.valid_view_change(vc)
            {
                return;
            }
        }
        if authors.len() < self.quorum {
            return;
        }
        let (_, plan) = Self::plan_new_view(&v.view_changes);
        if plan.len() != v.pre_prepares.len() {
            return;
        }
        for ((seq, batch), pp) in plan.iter().zip(&v.pre_prepares) {
            let p = pp.value();
            if p.view != w
                || p.seq != *seq
                || p.digest != batch_digest(batch)
                || p.batch != *batch
                || pp.author() != nv.author()
            {
                return;
            }
        }
        if self
            .committee
            .verify_batch(
                &v.pre_prepares
                    .iter()
                    .map(|p| p.verify_item())
                    .collect::<Vec<_>>(),
            )
            .is_err()
        {
            return;
        }
        self.enter_view(now, nv, fx);
    }

    fn enter_view(&mut self, now: Time, nv: Signed<NewView>, fx: &mut Effects<PbftMessage>) {
        let w = nv.value().view;
        let (min_s, _) = Self::plan_new_view(&nv.value().view_changes);
        self.view = w;
        self.changing = None;
        self.own_view_change = None;
        self.proposed.clear();
        self.watched = None;
        self.last_progress = now;
        self.persist_view(fx);
        self.view_changes = self.view_changes.split_off(&(w + 1));
        self.latest_vc_of.retain(|_, v| *v > w);
        let max_s = nv
            .value()
            .pre_prepares
            .last()
            .map(|p| p.value().seq)
            .unwrap_or(min_s);
        // Proposals of older views above the re-issued range are void.
        for (_, slot) in self.slots.range_mut(max_s + 1..) {
            if !slot.committed {
                slot.pre_prepare = None;
            }
        }
        self.next_seq = max_s.max(min_s).max(self.last_executed) + 1;
        self.new_view = Some(nv.clone());
        if min_s > self.last_executed {
            self.note_seen(min_s);
            self.request_fetch(fx);
        }
        for pp in nv.value().pre_prepares.clone() {
            let seq = pp.value().seq;
            if seq <= self.last_executed || !self.in_window(seq) {
                continue;
            }
            if self.committee.leader(w) == self.id {
                self.remember_own_pre_prepare(&pp, fx);
            }
            self.accept_pre_prepare(now, pp, fx);
        }
        let buffered: Vec<(NodeId, PbftMessage)> = self.future.drain(..).collect();
        for (from, m) in buffered {
            self.on_message(now, from, m, fx);
        }
        self.try_propose(now, fx);
    }

    fn buffer(&mut self, from: NodeId, msg: PbftMessage) {
        if self.future.len() >= self.cfg.max_buffered {
            self.future.pop_front();
        }
        self.future.push_back((from, msg));
    }

    // ----- housekeeping ------------------------------------------------------------

    fn on_tick(&mut self, now: Time, fx: &mut Effects<PbftMessage>) {
        fx.set_timer(TICK, self.cfg.tick);
        let stalled = self.last_executed == self.last_tick_executed;
        self.last_tick_executed = self.last_executed;
        match self.changing.clone() {
            None => {
                if self
                    .watched
                    .is_some_and(|(d, _)| !self.pending_index.contains_key(&d))
                {
                    self.watched = None;
                }
                if self.watched.is_none() {
                    self.watched = self.pending.first_key_value().map(|(_, (d, _))| (*d, now));
                }
                let overdue = self
                    .watched
                    .is_some_and(|(_, since)| now.since(since) >= self.cfg.view_change_timeout);
                let waiting = !self.pending.is_empty()
                    || self
                        .slots
                        .range(self.last_executed + 1..)
                        .any(|(_, s)| s.pre_prepare.is_some());
                if overdue
                    || (waiting && now.since(self.last_progress) >= self.cfg.view_change_timeout)
                {
                    self.start_view_change(now, self.view + 1, 0, fx);
                    return;
                }
                if stalled && waiting && now.since(self.last_progress) >= self.cfg.tick * 2 {
                    self.resend_votes(fx);
                }
            }
            Some(c) => {
                let have_quorum = self
                    .view_changes
                    .get(&c.target)
                    .is_some_and(|m| m.len() >= self.quorum);
                let patience = self.cfg.view_change_timeout * 2u32.saturating_pow(c.attempt.min(6));
                if have_quorum && now.since(c.started) >= patience {
                    self.start_view_change(now, c.target + 1, c.attempt + 1, fx);
                    return;
                }
                if let Some(vc) = &self.own_view_change {
                    fx.broadcast(PbftMessage::ViewChange(vc.clone()));
                }
                self.try_new_view(now, fx);
            }
        }
        // Behind, or stuck: ask peers for what they committed (they answer only if
        // they have something newer).
        let stuck = self.changing.is_some() || !self.pending.is_empty();
        if stalled && (self.highest_seen > self.last_executed || stuck) {
            self.request_fetch(fx);
        }
    }

    /// Re-sends this replica's own messages for undecided slots of the current view,
    /// for peers that lost them.
    fn resend_votes(&self, fx: &mut Effects<PbftMessage>) {
        for slot in self.slots.range(self.last_executed + 1..).map(|(_, s)| s) {
            if let Some(pp) = &slot.pre_prepare {
                if pp.author() == self.id && pp.value().view == self.view {
                    fx.broadcast(PbftMessage::PrePrepare(pp.clone()));
                }
            }
            for phase_votes in [&slot.prepares, &slot.commits] {
                if let Some(v) = phase_votes.get(&(self.view, self.id)) {
                    fx.broadcast(PbftMessage::Vote(v.clone()));
                }
            }
        }
        if let Some(nv) = &self.new_view {
            if nv.author() == self.id {
                fx.broadcast(PbftMessage::NewView(nv.clone()));
            }
        }
    }

    fn on_start(&mut self, now: Time, fx: &mut Effects<PbftMessage>) {
        self.last_progress = now;
        fx.set_timer(TICK, self.cfg.tick);
        if self.restored {
            if let Some(c) = &mut self.changing {
                c.started = now;
            }
            if let Some(vc) = &self.own_view_change {
                let vc = vc.clone();
                self.record_view_change(vc.clone());
                fx.broadcast(PbftMessage::ViewChange(vc));
            }
            self.resend_votes(fx);
            fx.broadcast(PbftMessage::Fetch {
                from: self.last_executed + 1,
            });
        }
    }

    fn on_message(
        &mut self,
        now: Time,
        from: NodeId,
        msg: PbftMessage,
        fx: &mut Effects<PbftMessage>,
    ) {
        if !self.committee.contains(from) || from == self.id {
            return;
        }
        match msg {
            PbftMessage::PrePrepare(pp) => self.on_pre_prepare(now, from, pp, fx),
            PbftMessage::Vote(v) => self.on_vote(now, from, v, fx),
            PbftMessage::Checkpoint(c) => self.on_checkpoint(now, c, fx),
            PbftMessage::ViewChange(vc) => self.on_view_change(now, from, vc, fx),
            PbftMessage::NewView(nv) => self.on_new_view(now, nv, fx),
            PbftMessage::Fetch { from: first } => self.on_fetch(from, first, fx),
            PbftMessage::Entries(es) => self.on_entries(now, from, es, fx),
            PbftMessage::Log(batches) => self.on_log(now, from, batches, fx),
            PbftMessage::Request(txs) => self.add_requests(now, txs, fx),
        }
    }
}

impl Engine for Pbft {
    type Message = PbftMessage;

    fn handle(&mut self, now: Time, input: Input<PbftMessage>, fx: &mut Effects<PbftMessage>) {
        match input {
            Input::Start => self.on_start(now, fx),
            Input::Message { from, msg } => self.on_message(now, from, msg, fx),
            Input::Timeout(TICK) => self.on_tick(now, fx),
            Input::Timeout(_) => {}
            Input::Submit(txs) => self.on_submit(now, txs, fx),
            Input::StoredCommitted { from, batches } => self.on_stored_committed(from, batches, fx),
        }
    }

    fn status(&self) -> EngineStatus {
        EngineStatus {
            engine: "pbft".into(),
            view: self.view,
            last_committed: self.last_executed,
            view_changes: self.view_changes_seen,
            counters: vec![
                ("invalid_proposals".into(), self.invalid_proposals),
                ("refused_transactions".into(), self.refused_transactions),
            ],
        }
    }

    /// The primary's pre-prepares of fresh batches that executed here: proposed when
    /// the primary signed the pre-prepare, committed when this replica executed it.
    fn drain_proposal_commits(&mut self, out: &mut Vec<ProposalCommitted>) {
        out.extend(self.proposal_commits.drain(..));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dwcp_core::crypto::SignatureScheme;
    use dwcp_core::Effect;
    use std::time::Duration;

    /// Four replicas, messages delivered in order, each delivery 1 ms after the last.
    struct Cluster {
        replicas: Vec<Pbft>,
        wire: VecDeque<(NodeId, NodeId, PbftMessage)>,
        clock: Time,
        committed: Vec<u64>,
    }

    impl Cluster {
        fn new(n: usize) -> Cluster {
            let (committee, keys) = Committee::deterministic(n, SignatureScheme::Ed25519, 5);
            let cfg = PbftConfig {
                batch_size: 10,
                ..PbftConfig::default()
            };
            let replicas = keys
                .into_iter()
                .map(|k| Pbft::new(k, committee.clone(), cfg.clone(), Recovered::default()))
                .collect::<Result<Vec<_>, _>>()
                .expect("replicas");
            Cluster {
                replicas,
                wire: VecDeque::new(),
                clock: Time::ZERO,
                committed: vec![0; n],
            }
        }

        fn step(&mut self, i: usize, input: Input<PbftMessage>) {
            let mut fx = Effects::new();
            self.replicas[i].handle(self.clock, input, &mut fx);
            let me = NodeId(i as u16);
            for e in fx.drain() {
                match e {
                    Effect::Send { to, msg } => self.wire.push_back((me, to, msg)),
                    Effect::Broadcast { msg } => {
                        for to in (0..self.replicas.len()).map(|j| NodeId(j as u16)) {
                            if to != me {
                                self.wire.push_back((me, to, msg.clone()));
                            }
                        }
                    }
                    Effect::Commit(c) => self.committed[i] += c.transactions.len() as u64,
                    _ => {}
                }
            }
        }

        fn deliver_all(&mut self) {
            while let Some((from, to, msg)) = self.wire.pop_front() {
                self.clock = self.clock.after(Duration::from_millis(1));
                self.step(to.index(), Input::Message { from, msg });
            }
        }

        fn drain(&mut self, i: usize) -> Vec<ProposalCommitted> {
            let mut out = Vec::new();
            self.replicas[i].drain_proposal_commits(&mut out);
            out
        }
    }

    fn txs(from: u32, count: u32) -> Vec<Bytes> {
        (from..from + count)
            .map(|k| Bytes::from(format!("tx {k}")))
            .collect()
    }

    #[test]
    fn the_primary_reports_each_executed_proposal_once_with_commit_after_proposal() {
        let mut c = Cluster::new(4);
        for i in 0..4 {
            c.step(i, Input::Start);
        }
        // Clients send to the primary only; backups would relay anyway.
        c.step(0, Input::Submit(txs(0, 35)));
        c.deliver_all();
        c.clock = c.clock.after(Duration::from_millis(10));
        c.step(0, Input::Submit(txs(35, 5)));
        c.deliver_all();
        assert_eq!(c.committed, vec![40; 4], "everything committed everywhere");

        let samples = c.drain(0);
        assert!(
            samples.len() >= 4,
            "40 transactions in batches of 10: {samples:?}"
        );
        assert_eq!(samples.iter().map(|s| s.transactions).sum::<u64>(), 40);
        for s in &samples {
            assert!(
                s.committed.0 > s.proposed.0,
                "a commit needs messages after the proposal: {s:?}"
            );
        }
        assert!(c.drain(0).is_empty(), "drained samples are gone");
        for i in 1..4 {
            assert!(c.drain(i).is_empty(), "backup {i} proposed nothing");
        }
        assert!(
            c.replicas[0].own_proposals.is_empty(),
            "executed proposals are forgotten"
        );
    }

    /// Refuses transactions that start with "bad".
    struct NoBad;
    impl dwcp_core::Validator for NoBad {
        fn check_tx(&self, tx: &[u8]) -> Result<(), dwcp_core::Refused> {
            if tx.starts_with(b"bad") {
                Err(dwcp_core::Refused("bad".into()))
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn backups_do_not_prepare_what_their_application_refuses() {
        let mut c = Cluster::new(4);
        // The primary runs without the application's rules (or is Byzantine).
        let (committee, keys) = Committee::deterministic(4, SignatureScheme::Ed25519, 5);
        c.replicas = keys
            .into_iter()
            .map(|k| {
                let backup = k.id != NodeId(0);
                let r = Pbft::new(
                    k,
                    committee.clone(),
                    PbftConfig::default(),
                    Recovered::default(),
                )
                .expect("replica");
                if backup {
                    r.with_validator(std::sync::Arc::new(NoBad))
                } else {
                    r
                }
            })
            .collect();
        for i in 0..4 {
            c.step(i, Input::Start);
        }
        c.step(0, Input::Submit(vec![Bytes::from_static(b"bad tx")]));
        c.deliver_all();
        assert_eq!(
            c.committed,
            vec![0; 4],
            "refused by every backup: not prepared"
        );
        assert!(c.replicas[1..]
            .iter()
            .all(|r| r.status().counters[0] == ("invalid_proposals".into(), 1)));

        // A backup drops a refused transaction on arrival and counts it.
        c.step(1, Input::Submit(vec![Bytes::from_static(b"bad again")]));
        assert_eq!(c.replicas[1].pending.len(), 0);
        assert_eq!(
            c.replicas[1].status().counters[1],
            ("refused_transactions".into(), 1)
        );
    }

    #[test]
    fn backups_refuse_a_batch_above_the_bounds() {
        let mut c = Cluster::new(4);
        for i in 1..4 {
            c.replicas[i].cfg.max_batch_bytes = 8;
        }
        for i in 0..4 {
            c.step(i, Input::Start);
        }
        c.step(0, Input::Submit(vec![Bytes::from_static(b"twelve bytes")]));
        c.deliver_all();
        assert_eq!(
            c.committed,
            vec![0; 4],
            "too large for the backups: not prepared"
        );
        assert!(c.replicas[1..]
            .iter()
            .all(|r| r.status().counters[0] == ("invalid_proposals".into(), 1)));
    }

    #[test]
    fn undrained_samples_are_bounded() {
        let mut c = Cluster::new(1);
        c.step(0, Input::Start);
        let batches = MAX_UNDRAINED_SAMPLES as u32 + 10;
        for b in 0..batches {
            c.clock = c.clock.after(Duration::from_millis(1));
            c.step(0, Input::Submit(txs(b * 10, 10)));
        }
        assert_eq!(c.committed[0], u64::from(batches) * 10);
        let samples = c.drain(0);
        assert_eq!(
            samples.len(),
            MAX_UNDRAINED_SAMPLES,
            "the oldest were dropped"
        );
        assert!(samples.iter().all(|s| s.committed >= s.proposed));
    }
}
