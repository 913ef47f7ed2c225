//! The PBFT replica state machine (Castro & Liskov, OSDI '99): normal case (§4.2),
//! garbage collection with checkpoints (§4.3), view changes (§4.4), and catch-up of
//! committed batches proved by commit certificates.
//!
//! This file holds the replica's state, its construction and recovery from the
//! store, small helpers the roles share, and the [`Engine`] entry points that
//! dispatch inputs and peer messages. Each role of the protocol is a child module
//! adding methods to [`Pbft`]:
//!
//! - `replica/requests.rs`: client requests, and the primary batching them into
//!   pre-prepares.
//! - `replica/normal_case.rs`: pre-prepares, prepare and commit votes, and execution
//!   of committed batches onto the log (§4.2).
//! - `replica/checkpoint.rs`: checkpoint votes and stable checkpoints (§4.3).
//! - `replica/catch_up.rs`: fetching committed batches from peers, and state
//!   transfer of stored logs that `f+1` members vouch for.
//! - `replica/view_change.rs`: view changes and new views (§4.4).
//! - `replica/housekeeping.rs`: the tick timer, re-sending, and start-up.
//! - `replica/tests.rs`: unit tests.

use super::config::PbftConfig;
use super::instance::{leader_of, Instance, PrimaryGroup};
use super::messages::{
    CheckpointVote, CoSignature, CommittedEntry, NewView, PbftMessage, PrePrepare, PreparedCert,
    ViewChange, Vote,
};
use super::wal::{WalEntry, TAG_VIEW};
use crate::dedup::DedupWindow;
use bytes::Bytes;
use dwcp_core::application::SharedValidator;
use dwcp_core::codec::{decode, encode};
use dwcp_core::committee::quorum_of;
use dwcp_core::{
    Committee, Digest, Effects, Engine, EngineStatus, Input, NodeId, NodeKeys, ProposalCommitted,
    Record, Recovered, Seq, Signed, Time, TimerId, View, WalKey,
};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

mod catch_up;
mod checkpoint;
mod housekeeping;
mod normal_case;
mod primary_group;
mod requests;
mod view_change;

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
    /// The instance's members or bounds do not fit the committee or the config.
    #[error("bad instance: {0}")]
    BadInstance(String),
}

/// Votes and the proposal for one sequence number.
#[derive(Default, Debug)]
struct Slot {
    /// The accepted pre-prepare and its view.
    pre_prepare: Option<Signed<PrePrepare>>,
    prepares: BTreeMap<(View, NodeId), Signed<Vote>>,
    commits: BTreeMap<(View, NodeId), Signed<Vote>>,
    /// The primary-group co-signatures that came with `pre_prepare`, if any.
    cosigns: Vec<Signed<CoSignature>>,
    /// Latest prepared certificate held (any view).
    prepared: Option<PreparedCert>,
    committed: bool,
    /// The pre-prepare and quorum of commits that committed it here.
    certificate: Option<CommittedEntry>,
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

/// A proposal of this replica waiting for its primary group's co-signatures.
#[derive(Debug, Clone)]
struct CoSigning {
    pre_prepare: Signed<PrePrepare>,
    cosigns: BTreeMap<NodeId, Signed<CoSignature>>,
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
    /// This instance's members, in id order (see [`Instance`]).
    members: Vec<NodeId>,
    /// The sequence number the instance starts after.
    base: Seq,
    /// The last sequence number it orders, if any.
    last: Option<Seq>,
    /// The instance's first view (views below it are other instances').
    first_view: View,
    /// The primary group, if proposals need co-signing (see [`PrimaryGroup`]).
    group: Option<PrimaryGroup>,

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
    /// Co-signatures this replica gave as a primary-group member.
    my_cosigns: BTreeMap<Seq, Signed<CoSignature>>,
    /// Own proposals waiting for co-signatures.
    cosigning: BTreeMap<Seq, CoSigning>,
    /// The view in which this group member took over proposing from a silent
    /// designated proposer.
    took_over: Option<View>,
    /// Times this replica took over proposing from a silent designated proposer.
    takeovers: u64,

    last_executed: Seq,
    chain: Digest,
    executed: DedupWindow,
    retained: BTreeMap<Seq, CommittedEntry>,
    /// Peers waiting for the committed log read from the store, by first seq.
    log_readers: super::transfer::StoreReads<()>,
    /// Stored logs peers sent, chain-verified from our log, until `f+1` agree.
    transfers: super::transfer::Transfers,

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
    /// The engine's record in each batch, if any.
    record: Option<std::sync::Arc<dyn ProposalRecord>>,
    /// Pre-prepares refused: too large, or refused by the application.
    invalid_proposals: u64,
    /// Client transactions the application refused.
    refused_transactions: u64,
    /// Pairs of conflicting statements by one member seen here, until drained.
    conflicts: VecDeque<(PbftMessage, PbftMessage)>,
    /// Such pairs seen since start.
    equivocations_seen: u64,
}

/// Conflicting pairs kept for [`Pbft::drain_conflicts`]; older ones are dropped.
const MAX_CONFLICTS: usize = 64;

/// A record an engine built on PBFT puts first in each batch (T-PBFT's evidence):
/// what the primary adds, and what a backup requires before it prepares.
pub trait ProposalRecord: Send + Sync {
    /// The record to put first in the batch proposed at `seq`, if any.
    fn make(&self, seq: Seq) -> Option<Bytes>;
    /// Whether a backup may prepare `batch` at `seq` (called for fresh proposals,
    /// not for batches a NEW-VIEW re-issues, which a quorum prepared already).
    fn check(&self, seq: Seq, batch: &[Bytes]) -> bool;
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
        Self::with_instance(keys, committee, cfg, Instance::default(), recovered)
    }

    /// A replica for `keys.id` of `instance` within `committee` (whose keys verify
    /// every signature), rebuilt from `recovered`.
    pub fn with_instance(
        keys: NodeKeys,
        committee: Committee,
        cfg: PbftConfig,
        instance: Instance,
        recovered: Recovered,
    ) -> Result<Pbft, PbftError> {
        let mut members: Vec<NodeId> = if instance.members.is_empty() {
            committee.ids().collect()
        } else {
            instance.members.clone()
        };
        members.sort_unstable();
        members.dedup();
        if members.iter().any(|m| !committee.contains(*m)) {
            return Err(PbftError::BadInstance(
                "a member is not in the committee".into(),
            ));
        }
        if !members.contains(&keys.id) {
            return Err(PbftError::NotAMember(keys.id));
        }
        if let Some(g) = &instance.group {
            let mut sorted = g.members.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if g.members.is_empty()
                || sorted.len() != g.members.len()
                || g.members.iter().any(|m| !members.contains(m))
                || g.threshold == 0
                || g.threshold > g.members.len()
            {
                return Err(PbftError::BadInstance(
                    "the primary group must be distinct members of the instance, with a \
                     threshold between 1 and its size"
                        .into(),
                ));
            }
        }
        let (base, base_chain) = instance.base;
        if !base.is_multiple_of(cfg.checkpoint_interval.max(1))
            || instance.last.is_some_and(|l| l <= base)
        {
            return Err(PbftError::BadInstance(format!(
                "base {base} must be a multiple of the checkpoint interval and below the last \
                 sequence number {:?}",
                instance.last
            )));
        }
        #[cfg(feature = "unsafe-test-hooks")]
        let quorum = cfg
            .unsafe_quorum_override
            .unwrap_or_else(|| quorum_of(members.len()));
        #[cfg(not(feature = "unsafe-test-hooks"))]
        let quorum = quorum_of(members.len());
        let dedup_window = cfg.dedup_window;
        let mut p = Pbft {
            id: keys.id,
            keys,
            committee,
            cfg,
            quorum,
            members,
            base,
            last: instance.last,
            first_view: instance.first_view,
            group: instance.group,
            view: instance.first_view,
            changing: None,
            view_changes_seen: 0,
            slots: BTreeMap::new(),
            stable_seq: base,
            stable_proof: Vec::new(),
            checkpoint_votes: BTreeMap::new(),
            my_checkpoints: BTreeMap::new(),
            my_pre_prepares: BTreeMap::new(),
            my_prepares: BTreeMap::new(),
            my_commits: BTreeMap::new(),
            my_cosigns: BTreeMap::new(),
            cosigning: BTreeMap::new(),
            took_over: None,
            takeovers: 0,
            last_executed: base,
            chain: base_chain,
            executed: DedupWindow::new(dedup_window),
            retained: BTreeMap::new(),
            log_readers: Default::default(),
            transfers: Default::default(),
            pending: BTreeMap::new(),
            pending_index: HashMap::new(),
            next_arrival: 0,
            proposed: HashSet::new(),
            next_seq: base + 1,
            last_progress: Time::ZERO,
            watched: None,
            last_tick_executed: 0,
            view_changes: BTreeMap::new(),
            latest_vc_of: HashMap::new(),
            own_view_change: None,
            new_view: None,
            future: VecDeque::new(),
            highest_seen: base,
            fetch_cursor: 0,
            restored: false,
            own_proposals: BTreeMap::new(),
            proposal_commits: VecDeque::new(),
            validator: None,
            record: None,
            invalid_proposals: 0,
            refused_transactions: 0,
            conflicts: VecDeque::new(),
            equivocations_seen: 0,
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

    /// Puts `record.make(seq)`, when there is one, first in each batch this replica
    /// proposes at `seq` (an engine's own record, such as T-PBFT's evidence; it
    /// counts toward the batch bounds), and prepares a fresh proposal only if
    /// `record.check` accepts it.
    pub fn with_proposal_record(mut self, record: std::sync::Arc<dyn ProposalRecord>) -> Pbft {
        self.record = Some(record);
        self
    }

    /// The client transactions waiting to be ordered, oldest first: what an
    /// instance that ends (T-PBFT's epoch) hands to the next one.
    pub fn pending_transactions(&self) -> Vec<Bytes> {
        self.pending.values().map(|(_, tx)| tx.clone()).collect()
    }

    /// Pairs of validly signed, conflicting statements by one member (two
    /// pre-prepares, or two votes of one phase, for one view and sequence number
    /// with different digests) this replica received since the last call: proof
    /// of equivocation an engine built on PBFT can commit (T-PBFT excludes the
    /// author from later committees).
    pub fn drain_conflicts(&mut self) -> Vec<(PbftMessage, PbftMessage)> {
        self.conflicts.drain(..).collect()
    }

    fn note_conflict(&mut self, held: PbftMessage, new: PbftMessage) {
        self.equivocations_seen += 1;
        if self.conflicts.len() >= MAX_CONFLICTS {
            self.conflicts.pop_front();
        }
        self.conflicts.push_back((held, new));
    }

    /// The batch committed at `seq` with its commit certificate, while this replica
    /// keeps it (the newest `retain_committed` batches it executed through
    /// agreement or certified catch-up).
    pub fn certified(&self, seq: Seq) -> Option<&CommittedEntry> {
        self.retained.get(&seq)
    }

    fn restore(&mut self, rec: Recovered) -> Result<(), PbftError> {
        self.restored =
            !rec.wal.is_empty() || !rec.committed_tail.is_empty() || !rec.checkpoints.is_empty();
        if let Some(c) = rec.committed_tail.last().filter(|c| c.seq > self.base) {
            self.last_executed = c.seq;
            self.chain = c.digest;
        }
        self.executed.restore(&rec.committed_tail);
        // Checkpoints at or below the base are earlier instances'.
        if let Some(cp) = rec.checkpoints.iter().rev().find(|c| c.seq > self.base) {
            let proof: Vec<Signed<CheckpointVote>> =
                decode(&cp.data, MAX_DECODE).map_err(|_| PbftError::CorruptCheckpoint(cp.seq))?;
            self.stable_seq = cp.seq;
            self.stable_proof = proof;
            self.my_checkpoints.insert(cp.seq, cp.digest);
        }
        let mut entries = Vec::with_capacity(rec.wal.len());
        for (key, value) in &rec.wal {
            // Another instance's records: its view, or slots outside this one's range.
            let ours = if key.slot > self.last.unwrap_or(u64::MAX - 1) {
                key.slot == self.view_slot()
            } else {
                key.slot > self.base
            };
            if !ours {
                continue;
            }
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
                WalEntry::CoSign(c) => {
                    self.my_cosigns.insert(c.value().seq, c);
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
        self.changing.is_none()
            && (self.leader(self.view) == self.id || self.took_over == Some(self.view))
    }

    /// The primary of `view` (see [`Instance::leader`]).
    fn leader(&self, view: View) -> NodeId {
        leader_of(&self.members, self.group.as_ref(), self.first_view, view)
    }

    /// Whether `id` is a member of this instance: only members' statements count.
    fn is_member(&self, id: NodeId) -> bool {
        self.members.binary_search(&id).is_ok()
    }

    fn f(&self) -> usize {
        (self.members.len() - 1) / 3
    }

    /// The write-ahead slot of this instance's view and NEW-VIEW records: above
    /// every sequence number, and one per instance (by its base), so that an
    /// instance never restores another's view.
    fn view_slot(&self) -> u64 {
        u64::MAX - self.base
    }

    /// Whether `seq` is one this replica may order now: above the stable
    /// checkpoint, inside the watermark window, and not past the instance's end.
    fn in_window(&self, seq: Seq) -> bool {
        seq > self.stable_seq
            && seq <= self.stable_seq + self.cfg.window
            && self.last.is_none_or(|l| seq <= l)
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
                slot: self.view_slot(),
                tag: TAG_VIEW,
            },
            &entry,
            fx,
        );
    }

    fn on_message(
        &mut self,
        now: Time,
        from: NodeId,
        msg: PbftMessage,
        fx: &mut Effects<PbftMessage>,
    ) {
        if !self.is_member(from) || from == self.id {
            return;
        }
        match msg {
            PbftMessage::PrePrepare(pp) => self.on_pre_prepare(now, from, pp, Vec::new(), fx),
            PbftMessage::CoSigned {
                pre_prepare,
                cosigns,
            } => self.on_pre_prepare(now, from, pre_prepare, cosigns, fx),
            PbftMessage::CoSignRequest(pp) => self.on_cosign_request(now, from, pp, fx),
            PbftMessage::CoSign(c) => self.on_cosign(now, from, c, fx),
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
                ("takeovers".into(), self.takeovers),
                ("equivocations_seen".into(), self.equivocations_seen),
            ],
            committee: None,
        }
    }

    /// The primary's pre-prepares of fresh batches that executed here: proposed when
    /// the primary signed the pre-prepare, committed when this replica executed it.
    fn drain_proposal_commits(&mut self, out: &mut Vec<ProposalCommitted>) {
        out.extend(self.proposal_commits.drain(..));
    }
}

#[cfg(test)]
mod group_tests;
#[cfg(test)]
pub(crate) mod instance_tests;
#[cfg(test)]
mod tests;
