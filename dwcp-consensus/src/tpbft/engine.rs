//! The T-PBFT node: PBFT instances per epoch among trust-elected committees, and
//! observers outside them (see the module docs of [`super`] for the design).

use super::config::TpbftConfig;
use super::evidence::{CommitProof, EvidenceRecord, MisbehaviourProof, Verifier, EVIDENCE_TAG};
use super::ledger::TrustLedger;
use super::messages::TpbftMessage;
use super::observer::Observer;
use super::{committee_size_for, TrustParams};
use crate::pbft::{Instance, Pbft, ProposalRecord};
use bytes::Bytes;
use dwcp_core::{
    Committed, Committee, CommitteeRole, CommitteeStatus, Digest, Effect, Effects, Engine,
    EngineStatus, Input, NodeId, NodeKeys, ProposalCommitted, Recovered, Seq, Time, TimerId,
};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod observing;
mod restart;
mod status;
mod transfer;

/// The observer's tick: asks for batches when none arrived for a while.
const OBSERVER_TICK: TimerId = TimerId(2);
const OBSERVER_PERIOD: Duration = Duration::from_millis(100);
/// Messages of the next epoch held until this node gets there.
const MAX_FUTURE: usize = 4096;
/// Certified batches per fetch answer.
const FETCH_BATCH: u64 = 64;
/// Idle observer ticks at which an observer asks for batches every tick.
const FETCH_EAGER: u32 = 4;
/// After those, an idle observer asks every this many ticks.
const FETCH_IDLE: u32 = 5;
/// Most proofs of misbehaviour one batch carries.
const MAX_MISBEHAVIOUR: usize = 4;

/// Why a T-PBFT node cannot start.
#[derive(Debug, thiserror::Error)]
pub enum TpbftError {
    /// The parameters do not run.
    #[error("{0}")]
    Config(String),
    /// The epoch's PBFT instance refused.
    #[error(transparent)]
    Pbft(#[from] crate::pbft::PbftError),
    /// Trust could not be computed.
    #[error(transparent)]
    Trust(#[from] super::TrustError),
    /// The store's contents cannot restart this node (see `engine/restart.rs`).
    #[error("tpbft cannot restart from its store: {0}")]
    Store(String),
}

/// What the proposal record reads and the commit path writes.
struct Shared {
    committee: Committee,
    /// Each epoch's instance (members, views, primary group), while proofs of it
    /// may still arrive.
    epochs: BTreeMap<u64, Instance>,
    epoch_length: u64,
    window: u64,
    /// Commit proofs of batches this node committed as a member.
    certs: BTreeMap<Seq, CommitProof>,
    /// The next committee's digest, once computed.
    next_digest: Option<Digest>,
    /// Proofs of misbehaviour seen here and not yet committed, by offender.
    misbehaviour: BTreeMap<NodeId, MisbehaviourProof>,
    /// The colluding group this node's proposals favour ([`Tpbft::colluding`]);
    /// empty on an honest node.
    colluders: BTreeSet<NodeId>,
}

impl Shared {
    fn epoch_of(&self, seq: Seq) -> u64 {
        seq.saturating_sub(1) / self.epoch_length
    }

    fn last_of(&self, epoch: u64) -> Seq {
        (epoch + 1) * self.epoch_length
    }

    /// The evidence `proof` establishes, and the epoch it is from with its
    /// instance.
    fn verify(&self, proof: &CommitProof) -> Option<(super::Evidence, u64, &Instance)> {
        let seq = proof.votes.first()?.value().seq;
        let number = self.epoch_of(seq);
        let epoch = self.epochs.get(&number)?;
        let e = proof.verify(&Verifier::new(&self.committee, epoch)).ok()?;
        Some((e, number, epoch))
    }

    /// The offender `proof` shows, if it verifies against the epoch of its view.
    fn verify_misbehaviour(&self, proof: &MisbehaviourProof) -> Option<NodeId> {
        let epoch = self.epochs.get(&(proof.view() >> 32))?;
        match proof.verify(&Verifier::new(&self.committee, epoch)) {
            Ok(super::Evidence::Misbehaved { node }) => Some(node),
            _ => None,
        }
    }
}

/// The evidence record of each batch (see [`ProposalRecord`]): the commit proof of
/// the batch a window back, and on an epoch's last batch the next committee.
struct Record(Arc<Mutex<Shared>>);

impl Record {
    fn expected(&self, s: &Shared, seq: Seq) -> Option<Option<Digest>> {
        if seq == s.last_of(s.epoch_of(seq)) {
            s.next_digest.map(Some)
        } else {
            Some(None)
        }
    }
}

impl ProposalRecord for Record {
    fn make(&self, seq: Seq) -> Option<Bytes> {
        let s = self.0.lock().ok()?;
        let next_committee = self.expected(&s, seq)?;
        let commits = seq
            .checked_sub(s.window)
            .and_then(|back| {
                let proof = s.certs.get(&back)?;
                if s.colluders.is_empty() {
                    return Some(proof.clone());
                }
                let epoch = s.epochs.get(&s.epoch_of(back))?;
                proof.favouring(&s.colluders, &epoch.members)
            })
            .into_iter()
            .collect();
        let misbehaviour = s
            .misbehaviour
            .values()
            .take(MAX_MISBEHAVIOUR)
            .cloned()
            .collect();
        Some(
            EvidenceRecord {
                commits,
                next_committee,
                misbehaviour,
            }
            .to_transaction(),
        )
    }

    fn check(&self, seq: Seq, batch: &[Bytes]) -> bool {
        let Ok(s) = self.0.lock() else {
            return false;
        };
        let Some(Some(Ok(record))) = batch.first().map(|tx| EvidenceRecord::from_transaction(tx))
        else {
            return false;
        };
        if batch[1..].iter().any(|tx| tx.starts_with(EVIDENCE_TAG))
            || record.commits.len() > 1
            || record.misbehaviour.len() > MAX_MISBEHAVIOUR
            || self.expected(&s, seq) != Some(record.next_committee)
            || record
                .misbehaviour
                .iter()
                .any(|p| s.verify_misbehaviour(p).is_none())
        {
            return false;
        }
        record.commits.iter().all(|p| {
            p.votes.first().map(|v| v.value().seq) == seq.checked_sub(s.window)
                && s.verify(p).is_some()
        })
    }
}

/// A T-PBFT node.
pub struct Tpbft {
    id: NodeId,
    keys: NodeKeys,
    committee: Committee,
    cfg: TpbftConfig,
    size: usize,
    genesis: Vec<NodeId>,
    epoch: u64,
    members: Vec<NodeId>,
    ledger: TrustLedger,
    next: Option<Vec<NodeId>>,
    inner: Option<Pbft>,
    observer: Observer,
    tail: VecDeque<Committed>,
    last: Seq,
    chain: Digest,
    shared: Arc<Mutex<Shared>>,
    future: VecDeque<(NodeId, TpbftMessage)>,
    /// Batches this node committed as a member, with their certificates and
    /// epochs, for nodes that fetch what they missed (across an epoch's end too).
    recent: BTreeMap<Seq, (u64, crate::pbft::CommittedEntry)>,
    /// Peers waiting for batches read from the store, by first sequence number,
    /// each with the old epoch whose instance asked (`None`: an observer).
    log_readers: crate::pbft::StoreReads<Option<u64>>,
    /// Stored batches members sent this observer, until enough agree.
    transfers: crate::pbft::Transfers,
    /// The highest sequence number of a certified batch this node was sent.
    heard: Seq,
    /// The observer's log position at its last tick, and ticks since it moved.
    observer_progress: (Seq, u32),
    /// Fetches this observer sent (it asks one member at a time, in turn).
    fetches: usize,
    /// Client transactions this observer forwarded and has not seen commit: sent
    /// when, and how many times.
    forwarded: BTreeMap<Digest, (Bytes, Time, usize)>,
    /// View changes and PBFT's counters of the epochs' instances this node left.
    past: (u64, BTreeMap<std::borrow::Cow<'static, str>, u64>),
    /// The store's records and checkpoints, for the instance built on a restart.
    restore_from: Recovered,
    /// The epoch snapshot to write on start, after a restart that crossed an epoch.
    pending_snapshot: Option<dwcp_core::Record>,
    /// The status's committee part, refreshed at each epoch.
    committee_status: CommitteeStatus,
}

impl Tpbft {
    /// A node `keys.id` of the registered nodes `committee` (every node's keys),
    /// rebuilt from its store's `recovered` state (empty for a fresh node, which
    /// starts at genesis: the first `committee_size` nodes form epoch 0's
    /// committee). A store from which the node's epoch cannot be told is refused
    /// (see `engine/restart.rs`).
    pub fn new(
        keys: NodeKeys,
        committee: Committee,
        cfg: TpbftConfig,
        recovered: Recovered,
    ) -> Result<Tpbft, TpbftError> {
        cfg.validate().map_err(TpbftError::Config)?;
        let size = committee_size_for(committee.size(), cfg.committee_size);
        let genesis: Vec<NodeId> = committee.ids().take(size).collect();
        let ledger = TrustLedger::new(committee.size(), &genesis, TrustParams::default())?;
        let shared = Arc::new(Mutex::new(Shared {
            committee: committee.clone(),
            epochs: BTreeMap::from([(0, cfg.schedule(&genesis, 0))]),
            epoch_length: cfg.epoch_length,
            window: cfg.pbft.window,
            certs: BTreeMap::new(),
            next_digest: None,
            misbehaviour: BTreeMap::new(),
            colluders: BTreeSet::new(),
        }));
        let mut node = Tpbft {
            id: keys.id,
            keys,
            committee,
            size,
            genesis: genesis.clone(),
            epoch: 0,
            members: genesis,
            ledger,
            next: None,
            inner: None,
            observer: Observer::new(0, Digest::ZERO, cfg.pbft.dedup_window),
            tail: VecDeque::new(),
            last: 0,
            chain: Digest::ZERO,
            shared,
            future: VecDeque::new(),
            recent: BTreeMap::new(),
            log_readers: Default::default(),
            heard: 0,
            transfers: Default::default(),
            observer_progress: (0, 0),
            fetches: 0,
            forwarded: BTreeMap::new(),
            past: (0, BTreeMap::new()),
            restore_from: Recovered::default(),
            pending_snapshot: None,
            committee_status: CommitteeStatus {
                epoch: 0,
                members: Vec::new(),
                primary_group: Vec::new(),
                role: CommitteeRole::Observer,
                trust_ppb: Vec::new(),
                trust_digest: Digest::ZERO,
            },
            cfg,
        };
        // The instance starts at its epoch's base, and takes the position from the
        // tail and its own records.
        let base = node.restore(recovered)?;
        let position = (node.last, node.chain);
        (node.last, node.chain) = base;
        node.inner = node.instance()?;
        (node.last, node.chain) = position;
        node.restore_from = Recovered::default();
        Ok(node)
    }

    /// This node as a member of the colluding group `colluders`, for the
    /// simulator's [`crate::sim::Behaviour::Collude`]: it proposes a commit proof
    /// only if every colluder on that epoch's committee signed it, and then names
    /// only as many others as a quorum needs ([`CommitProof::favouring`]).
    /// Everything else stays honest.
    pub fn colluding(self, colluders: BTreeSet<NodeId>) -> Tpbft {
        if let Ok(mut s) = self.shared.lock() {
            s.colluders = colluders;
        }
        self
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The current epoch's committee.
    pub fn members(&self) -> &[NodeId] {
        &self.members
    }

    /// The genesis committee (the pre-trusted set).
    pub fn genesis(&self) -> &[NodeId] {
        &self.genesis
    }

    fn is_member(&self) -> bool {
        self.members.contains(&self.id)
    }

    fn epoch_last(&self) -> Seq {
        (self.epoch + 1) * self.cfg.epoch_length
    }

    /// This node's PBFT instance for the current epoch, if it is a member.
    fn instance(&self) -> Result<Option<Pbft>, TpbftError> {
        if !self.is_member() {
            return Ok(None);
        }
        let tail: Vec<Committed> = self.tail.iter().cloned().collect();
        let p = Pbft::with_instance(
            self.keys.clone(),
            self.committee.clone(),
            self.cfg.pbft.clone(),
            Instance {
                base: (self.last, self.chain),
                last: Some(self.epoch_last()),
                ..self.cfg.schedule(&self.members, self.epoch)
            },
            Recovered {
                committed_tail: tail,
                ..self.restore_from.clone()
            },
        )?
        .with_proposal_record(Arc::new(Record(self.shared.clone())));
        Ok(Some(p))
    }

    /// Runs the instance on `input` and carries out its effects as this epoch's.
    fn run_inner(
        &mut self,
        now: Time,
        input: Input<crate::pbft::PbftMessage>,
        fx: &mut Effects<TpbftMessage>,
    ) {
        let Some(inner) = self.inner.as_mut() else {
            return;
        };
        let mut inner_fx = Effects::new();
        inner.handle(now, input, &mut inner_fx);
        let conflicts = inner.drain_conflicts();
        if !conflicts.is_empty() {
            self.note_misbehaviour(conflicts);
        }
        let epoch = self.epoch;
        let members = self.members.clone();
        for e in inner_fx.drain() {
            match e {
                Effect::Send { to, msg } => fx.send(to, TpbftMessage::Pbft { epoch, msg }),
                Effect::Broadcast { msg } => {
                    for m in members.iter().filter(|m| **m != self.id) {
                        fx.send(
                            *m,
                            TpbftMessage::Pbft {
                                epoch,
                                msg: msg.clone(),
                            },
                        );
                    }
                }
                Effect::Commit(c) => self.on_commit(now, c, fx),
                Effect::SetTimer { id, after } => fx.set_timer(id, after),
                Effect::CancelTimer(id) => fx.cancel_timer(id),
                Effect::Persist(r) => fx.persist(r),
                Effect::ReadCommitted { from, limit } => fx.read_committed(from, limit),
            }
        }
    }

    /// Keeps, for the next proposals' evidence, each new offender's proof among
    /// `conflicts` (pairs of conflicting statements the instance received).
    fn note_misbehaviour(
        &mut self,
        conflicts: Vec<(crate::pbft::PbftMessage, crate::pbft::PbftMessage)>,
    ) {
        let Ok(mut s) = self.shared.lock() else {
            return;
        };
        for (a, b) in conflicts {
            let Some(proof) = MisbehaviourProof::from_messages(&a, &b) else {
                continue;
            };
            let offender = proof.offender();
            if self.ledger.local().is_excluded(offender) || s.misbehaviour.contains_key(&offender) {
                continue;
            }
            if s.verify_misbehaviour(&proof) == Some(offender) {
                s.misbehaviour.insert(offender, proof);
            }
        }
    }

    /// Everything a committed batch means here: the log, its evidence, the
    /// observers' copies, and the epoch's end.
    fn on_commit(&mut self, now: Time, c: Committed, fx: &mut Effects<TpbftMessage>) {
        let seq = c.seq;
        self.last = seq;
        self.chain = c.digest;
        self.record_evidence(&c);
        if self.is_member() {
            if let Some(entry) = self.inner.as_ref().and_then(|p| p.certified(seq)).cloned() {
                if let Ok(mut s) = self.shared.lock() {
                    s.certs.insert(
                        seq,
                        CommitProof {
                            votes: entry.commits.clone(),
                        },
                    );
                    let keep = seq.saturating_sub(2 * s.window);
                    s.certs = s.certs.split_off(&keep);
                }
                self.recent.insert(seq, (self.epoch, entry.clone()));
                let keep = seq.saturating_sub(2 * self.cfg.epoch_length);
                self.recent = self.recent.split_off(&keep);
                for o in self.observers_fed(seq) {
                    fx.send(
                        o,
                        TpbftMessage::Certified {
                            epoch: self.epoch,
                            entry: entry.clone(),
                        },
                    );
                }
            }
        }
        if !self.forwarded.is_empty() {
            for tx in &c.transactions {
                self.forwarded.remove(&Digest::of(tx));
            }
        }
        self.tail.push_back(c.clone());
        while self.tail.len() as u64 > self.cfg.pbft.dedup_window.max(1) {
            self.tail.pop_front();
        }
        fx.commit(c);
        let last = self.epoch_last();
        if seq == last.saturating_sub(self.cfg.pbft.window) {
            self.compute_next();
        }
        if seq == last {
            self.next_epoch(now, fx);
        }
    }

    fn compute_next(&mut self) {
        if let Ok((members, digest)) =
            self.ledger
                .next_committee(&self.members, self.size, self.epoch + 1)
        {
            if let Ok(mut s) = self.shared.lock() {
                s.next_digest = Some(digest);
            }
            self.next = Some(members);
        }
    }

    fn next_epoch(&mut self, now: Time, fx: &mut Effects<TpbftMessage>) {
        if !self.advance_epoch() {
            return;
        }
        // After the epoch's last commit, before anything of the new epoch.
        fx.persist(self.snapshot().record());
        // What the ending epoch's instance had not ordered goes on.
        let mut carried = self
            .inner
            .as_ref()
            .map(Pbft::pending_transactions)
            .unwrap_or_default();
        if let Some(s) = self.inner.as_ref().map(Pbft::status) {
            self.past.0 += s.view_changes;
            for (k, v) in s.counters {
                *self.past.1.entry(k).or_default() += v;
            }
        }
        self.inner = self.instance().unwrap_or(None);
        if self.inner.is_some() {
            self.run_inner(now, Input::Start, fx);
            // An observer that joins the committee orders what it forwarded itself.
            carried.extend(
                std::mem::take(&mut self.forwarded)
                    .into_values()
                    .map(|(tx, _, _)| tx),
            );
            if !carried.is_empty() {
                self.run_inner(now, Input::Submit(carried), fx);
            }
        } else {
            self.observer = Observer::new(self.last, self.chain, self.cfg.pbft.dedup_window);
            let tail: Vec<Committed> = self.tail.iter().cloned().collect();
            self.observer.restore_window(&tail);
            // A member that leaves the committee forwards what it held.
            if !carried.is_empty() {
                self.forward(now, carried, fx);
            }
        }
        let held: Vec<_> = self.future.drain(..).collect();
        for (from, msg) in held {
            self.on_message(now, from, msg, fx);
        }
    }

    fn on_message(
        &mut self,
        now: Time,
        from: NodeId,
        msg: TpbftMessage,
        fx: &mut Effects<TpbftMessage>,
    ) {
        match msg {
            TpbftMessage::Pbft { epoch, msg } => {
                if epoch < self.epoch {
                    // A member still in an epoch this node has left asks for what it
                    // missed: certified batches answer it.
                    if let crate::pbft::PbftMessage::Fetch { from: first } = msg {
                        self.serve(from, first, Some(epoch), fx);
                    }
                } else if epoch == self.epoch {
                    self.run_inner(now, Input::Message { from, msg }, fx);
                } else if epoch == self.epoch + 1 && self.future.len() < MAX_FUTURE {
                    self.future
                        .push_back((from, TpbftMessage::Pbft { epoch, msg }));
                }
            }
            TpbftMessage::Certified { epoch, entry } => {
                self.heard = self.heard.max(entry.pre_prepare.value().seq);
                if self.inner.is_some() {
                    // A member behind in its own epoch takes certified batches
                    // through PBFT's catch-up, which checks them again.
                    if epoch == self.epoch {
                        let msg = crate::pbft::PbftMessage::Entries(vec![entry]);
                        self.run_inner(now, Input::Message { from, msg }, fx);
                    }
                    return;
                }
                if epoch == self.epoch + 1 && self.future.len() < MAX_FUTURE {
                    self.future
                        .push_back((from, TpbftMessage::Certified { epoch, entry }));
                    return;
                }
                if epoch != self.epoch {
                    return;
                }
                let Some(epoch) = self
                    .shared
                    .lock()
                    .ok()
                    .and_then(|s| s.epochs.get(&self.epoch).cloned())
                else {
                    return;
                };
                let accepted = self
                    .observer
                    .accept(entry, &Verifier::new(&self.committee, &epoch));
                let Ok(batches) = accepted else {
                    return;
                };
                for c in batches {
                    let epoch_before = self.epoch;
                    self.on_commit(now, c, fx);
                    if self.epoch != epoch_before {
                        break;
                    }
                }
            }
            TpbftMessage::Forward(txs) => self.run_inner(now, Input::Submit(txs), fx),
            TpbftMessage::FetchCertified { from: first } => self.serve(from, first, None, fx),
            TpbftMessage::Log(batches) => self.on_log(now, from, batches, fx),
        }
    }
}

impl Engine for Tpbft {
    type Message = TpbftMessage;

    fn handle(&mut self, now: Time, input: Input<TpbftMessage>, fx: &mut Effects<TpbftMessage>) {
        match input {
            Input::Start => {
                if let Some(r) = self.pending_snapshot.take() {
                    fx.persist(r);
                }
                fx.set_timer(OBSERVER_TICK, OBSERVER_PERIOD);
                self.run_inner(now, Input::Start, fx);
            }
            Input::Message { from, msg } => self.on_message(now, from, msg, fx),
            Input::Timeout(OBSERVER_TICK) => self.observer_tick(now, fx),
            Input::Timeout(id) => self.run_inner(now, Input::Timeout(id), fx),
            Input::Submit(txs) => {
                let txs: Vec<Bytes> = txs
                    .into_iter()
                    .filter(|t| !t.starts_with(EVIDENCE_TAG))
                    .collect();
                if self.inner.is_some() {
                    self.run_inner(now, Input::Submit(txs), fx);
                } else if !txs.is_empty() {
                    self.forward(now, txs, fx);
                }
            }
            Input::StoredCommitted { from, batches } => {
                self.on_stored(from, &batches, fx);
                self.run_inner(now, Input::StoredCommitted { from, batches }, fx)
            }
        }
    }

    fn status(&self) -> EngineStatus {
        let inner = self.inner.as_ref().map(|p| p.status());
        // PBFT's counters, over every epoch this node took part in.
        let mut totals = self.past.1.clone();
        for (k, v) in inner.iter().flat_map(|s| s.counters.iter()) {
            *totals.entry(k.clone()).or_default() += v;
        }
        let mut counters = vec![
            ("epoch".into(), self.epoch),
            ("member".into(), u64::from(self.is_member())),
        ];
        counters.extend(totals);
        EngineStatus {
            engine: "tpbft".into(),
            view: inner.as_ref().map_or(0, |s| s.view),
            last_committed: self.last,
            view_changes: self.past.0 + inner.as_ref().map_or(0, |s| s.view_changes),
            counters,
            committee: Some(self.committee_status()),
        }
    }

    fn drain_proposal_commits(&mut self, out: &mut Vec<ProposalCommitted>) {
        if let Some(p) = self.inner.as_mut() {
            p.drain_proposal_commits(out);
        }
    }
}
