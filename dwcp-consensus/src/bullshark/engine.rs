//! The Bullshark engine: a Narwhal worker and primary and the Bullshark commit
//! rule behind the sans-IO [`Engine`] contract.
//!
//! Data flows one way. Transactions are sealed into [`Batch`]es and broadcast; a
//! batch's digest becomes *ready* once a quorum of nodes acknowledged storing it.
//! The proposer puts ready digests and the certificates of the previous round into
//! a [`Header`]; a node votes for a header once it holds its parents and batches,
//! at most once per author and round (persisted before the vote leaves); a quorum
//! of votes makes a [`Certificate`]. Certificates enter the [`Dag`] once their
//! parents are present (missing ones are fetched), and the [`Bullshark`] rule turns
//! the DAG into committed sub-DAGs. Their batches, in order and with repeats
//! dropped, become the [`Committed`] output.
//!
//! Durability: every batch this node stores (sealed here or received) is written
//! ([`Effect::Persist`](dwcp_core::Effect::Persist)) before its acknowledgement,
//! its broadcast by the author, or a vote for a header naming it leaves; every
//! certificate entering the DAG is written too. A restarted node rebuilds its
//! batches, DAG, headers, votes and order from [`Recovered`], offers its own batches
//! that no header named yet again, and lets the commit rule read the restored DAG.
//! The driver writes the records of one input (and of inputs waiting together)
//! in one transaction.
//!
//! The write-ahead records are keyed `(slot, tag)` with the slot a round, so that
//! `PruneBelow(gc round)` drops each record together with the part of the DAG it
//! belongs to:
//!
//! - `(r, a)` with `a` a member id (`0..=0xFFFF`): this node's vote for `a`'s header
//!   of round `r`, as the header's digest;
//! - `(r, TAG_HEADER = 0xFFFF_FFFF)`: this node's own header of round `r`;
//! - `(r, TAG_CERTIFICATE + a)` (from `0x1_0000`): `a`'s certificate of round `r` in the local DAG;
//! - `(r, t)` and `(r, t + 1)` with even `t >= TAG_BATCH = 0x2_0000`: a batch this node stores,
//!   as a `BatchRecord` (`t`) and its bytes (`t + 1`, the batch's own buffer). `r`
//!   is the round it was stored in: this node's round for its own batches (so that
//!   the header that names one is pruned no earlier than the batch), the highest
//!   round it knew of for a peer's. Tags are handed out in order within a slot and
//!   continue after a restart, so a batch never overwrites another. A batch still
//!   needed when garbage collection reaches its slot, or acknowledged again (its
//!   author is about to propose it), is written again in a higher slot.
//!
//! This file holds the node's state, its rebuilding from storage and start, and the
//! dispatch of inputs. The node's roles are in child modules, after Narwhal's
//! `primary` and `worker` crates:
//!
//! - `worker`: batches: sealing, storing before acknowledging, acknowledgements;
//! - `proposer`: the primary proposing headers and collecting the votes that
//!   certify them;
//! - `voter`: the primary voting for peers' headers, and certificates entering the
//!   DAG;
//! - `output`: the order the commit rule decides, repeats dropped, output, garbage
//!   collection;
//! - `synchronizer`: fetching missing certificates and batches, serving peers'
//!   requests, retransmissions;
//! - `state_transfer`: the committed order taken from peers by a node behind their
//!   garbage collection;
//! - `tests`: the engine's unit tests.

use crate::dedup::DedupWindow;
use bytes::Bytes;
use dwcp_core::application::SharedValidator;
use dwcp_core::codec::decode;
use dwcp_core::{
    Committee, Digest, Effects, Engine, EngineStatus, Input, NodeId, NodeKeys, ProposalCommitted,
    Recovered, Round, Seq, Signed, Time, TimerId, WalKey,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use super::batch::{Batch, BatchMaker};
use super::certificate::Certificate;
use super::commit::{CommitRule, RuleState};
use super::config::BullsharkConfig;
use super::dag::{Dag, Inserted};
use super::header::Header;
use super::leader::RoundRobin;
use super::messages::{BullsharkMessage, MAX_RANGE};
use super::ordering::Bullshark;
use super::transfer::{CommittedSet, OrderEntry, Transfer};
use super::vote::HeaderVote;

mod output;
mod proposer;
mod state_transfer;
mod synchronizer;
#[cfg(test)]
mod tests;
mod voter;
mod worker;

const TIMER_BATCH: TimerId = TimerId(1);
const TIMER_HEADER: TimerId = TimerId(2);
const TIMER_SYNC: TimerId = TimerId(3);

/// Write-ahead tag of this node's own header (slot = its round).
const TAG_HEADER: u32 = u32::MAX;

/// Write-ahead tag of a DAG certificate, plus its author's id (slot = its round).
const TAG_CERTIFICATE: u32 = 0x0001_0000;

/// The first write-ahead tag of stored batches, two tags each (slot = the round it
/// was stored in).
const TAG_BATCH: u32 = 0x0002_0000;

/// Most decoded bytes of a stored write-ahead record or checkpoint.
const MAX_RECORD: usize = 64 << 20;

/// Why an engine could not be rebuilt from storage.
#[derive(Debug, thiserror::Error)]
pub enum BullsharkError {
    /// A stored record does not decode.
    #[error("corrupt stored state: {0}")]
    Corrupt(String),
    /// The store handed back fewer committed batches than repeats are dropped over
    /// (see [`BullsharkConfig::restore_tail`]).
    #[error("recovered {got} committed batches, dropping repeats needs the last {need}")]
    TailTooShort {
        /// Batches recovered.
        got: usize,
        /// Batches needed.
        need: usize,
    },
    /// The committed log is ahead of the engine's own checkpoint.
    #[error("committed log reaches seq {log} but the engine's state only {state}")]
    LogAhead {
        /// Last seq in the log.
        log: Seq,
        /// Last seq the state knows.
        state: Seq,
    },
}

/// A committed sub-DAG waiting to be output: its place in the order and the
/// batches it carries, each with the member to fetch it from if missing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Ordered {
    seq: Seq,
    chain: Digest,
    batches: Vec<(Digest, NodeId)>,
}

/// What a node keeps durable about the order, written before anything it decided
/// leaves: the rule's state, the position in the order, and the decided sub-DAGs
/// not yet output.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct CommitState {
    rule: RuleState,
    position: u64,
    seq: Seq,
    chain: Digest,
    queue: Vec<Ordered>,
}

/// What a stored batch's write-ahead record holds besides its bytes.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
struct BatchRecord {
    author: NodeId,
    nonce: u64,
    origin: NodeId,
    /// A header names it already (written again by garbage collection after the
    /// header's record was pruned): never to be proposed again.
    proposed: bool,
}

struct StoredBatch {
    batch: Batch,
    origin: NodeId,
    /// The write-ahead key of its record (its bytes are under the next tag): the
    /// slot is the round it arrived in, or a later one it was written again in;
    /// garbage collection drops it below that, and its output deletes it.
    key: WalKey,
    /// Counted against its origin's allowance of batches no certificate names.
    unreferenced: bool,
}

struct OwnBatch {
    acks: BTreeSet<NodeId>,
    transactions: u64,
    bytes: usize,
    /// When to send it again to the members that have not acknowledged it.
    resend_at: Time,
    /// The wait after that resend: doubling from `sync_retry` up to
    /// [`MAX_RESEND_BACKOFF`] times it, so that a receiver slowed by a backlog is not
    /// buried under copies of what it has yet to read.
    backoff: Duration,
}

/// Longest wait between resends of an unacknowledged batch, in `sync_retry`s.
const MAX_RESEND_BACKOFF: u32 = 16;

/// A digest this node is fetching.
struct Wanted {
    hint: NodeId,
    attempts: u32,
    last: Time,
    /// The output waits for it: never give up.
    urgent: bool,
}

/// Counters a test or a benchmark can read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BullsharkStats {
    /// Headers this node proposed.
    pub headers_proposed: u64,
    /// Batches this node sealed.
    pub batches_sealed: u64,
    /// Certificates in the DAG (all authors), ever.
    pub certificates: u64,
    /// Conflicting headers or certificates seen from one author in one round.
    pub equivocations: u64,
    /// Messages refused for a bad signature or form.
    pub rejected: u64,
    /// Proposals made after the timeout without the leader's support.
    pub leader_timeouts: u64,
    /// Transactions dropped because too many were waiting.
    pub dropped_transactions: u64,
    /// Repeated transactions dropped from the output.
    pub repeats_dropped: u64,
    /// Positions of the committed order taken from peers (state transfer) because
    /// this node fell behind their garbage collection.
    pub transfers: u64,
    /// Peers' batches not acknowledged because the application refused them.
    pub refused_batches: u64,
    /// Client transactions the application refused.
    pub refused_transactions: u64,
}

/// A Bullshark node: Narwhal worker, primary and the Bullshark commit rule.
pub struct BullsharkEngine {
    id: NodeId,
    keys: NodeKeys,
    committee: Committee,
    cfg: BullsharkConfig,
    quorum: usize,
    validity: usize,
    schedule: RoundRobin,

    // Worker.
    maker: BatchMaker,
    batches: HashMap<Digest, StoredBatch>,
    unreferenced_bytes: Vec<usize>,
    own_batches: BTreeMap<Digest, OwnBatch>,
    /// Own batches held by a quorum, waiting for a header: digest, transactions, bytes.
    ready: Vec<(Digest, u64, usize)>,
    retired: VecDeque<(Digest, usize)>,
    retired_set: HashSet<Digest>,
    retired_bytes: usize,
    /// The next free write-ahead tag for a batch, by slot.
    batch_tags: BTreeMap<Round, u32>,

    // Primary.
    round: Round,
    own_header: Option<Signed<Header>>,
    own_votes: BTreeMap<NodeId, Signed<HeaderVote>>,
    own_certified: bool,
    last_own_certificate: Option<Arc<Certificate>>,
    last_header_at: Time,
    voted: HashMap<(Round, NodeId), Digest>,
    pending_headers: BTreeMap<NodeId, Signed<Header>>,
    proposals: HashMap<Digest, (Round, Time, u64)>,

    // DAG, synchronisation and ordering.
    dag: Dag,
    rule: Bullshark,
    pending: HashMap<Digest, (Arc<Certificate>, NodeId)>,
    waiting_on: HashMap<Digest, BTreeSet<Digest>>,
    want_certs: BTreeMap<Digest, Wanted>,
    want_batches: BTreeMap<Digest, Wanted>,
    outbox: BTreeMap<NodeId, (Vec<Digest>, Vec<Digest>)>,
    last_range_request: Option<Time>,
    seq: Seq,
    chain: Digest,
    queue: VecDeque<Ordered>,
    output_seq: Seq,
    /// Leaders committed so far (with or without batches).
    position: u64,
    dedup: DedupWindow,
    samples: Vec<ProposalCommitted>,
    stats: BullsharkStats,

    // State transfer.
    /// Recent committed order entries, each with the committed set after it and its
    /// size in bytes, for peers that fell behind garbage collection.
    history: VecDeque<(OrderEntry, CommittedSet, usize)>,
    history_bytes: usize,
    transfer: Option<Transfer>,
    /// The application's admission rules.
    /// `None` accepts everything without looking at a batch's transactions.
    validator: Option<SharedValidator>,
}

impl BullsharkStats {
    /// The counters as `(name, count)` pairs, for [`EngineStatus::counters`].
    pub fn counters(&self) -> Vec<(std::borrow::Cow<'static, str>, u64)> {
        [
            ("headers_proposed", self.headers_proposed),
            ("batches_sealed", self.batches_sealed),
            ("certificates", self.certificates),
            ("equivocations", self.equivocations),
            ("rejected_messages", self.rejected),
            ("leader_timeouts", self.leader_timeouts),
            ("dropped_transactions", self.dropped_transactions),
            ("repeats_dropped", self.repeats_dropped),
            ("state_transfers", self.transfers),
            ("refused_batches", self.refused_batches),
            ("refused_transactions", self.refused_transactions),
        ]
        .into_iter()
        .map(|(name, n)| (name.into(), n))
        .collect()
    }
}

impl BullsharkEngine {
    /// Checks transactions and peers' batches with `validator` (see
    /// [`dwcp_core::Validator`]): refused transactions are dropped on submission,
    /// and a peer's batch the application refuses is never acknowledged, so no
    /// header naming it gets this node's vote.
    pub fn with_validator(mut self, validator: SharedValidator) -> BullsharkEngine {
        self.validator = Some(validator);
        self
    }

    /// A node `keys.id` of `committee`, rebuilt from `recovered` (empty for a fresh
    /// node). The store must hand back the newest [`BullsharkConfig::restore_tail`]
    /// committed batches (or all, if it holds fewer).
    pub fn new(
        keys: NodeKeys,
        committee: Committee,
        cfg: BullsharkConfig,
        recovered: Recovered,
    ) -> Result<BullsharkEngine, BullsharkError> {
        let n = committee.size();
        let dedup_window = cfg.dedup_window;
        let mut e = BullsharkEngine {
            id: keys.id,
            quorum: {
                #[cfg(feature = "unsafe-test-hooks")]
                let q = cfg
                    .unsafe_quorum_override
                    .unwrap_or_else(|| committee.quorum_threshold());
                #[cfg(not(feature = "unsafe-test-hooks"))]
                let q = committee.quorum_threshold();
                q
            },
            validity: committee.validity_threshold(),
            schedule: RoundRobin::new(&committee),
            dag: Dag::new(&committee),
            rule: Bullshark::new(&committee).with_gc_depth(cfg.gc_depth),
            keys,
            committee,
            cfg,
            maker: BatchMaker::default(),
            batches: HashMap::new(),
            unreferenced_bytes: vec![0; n],
            own_batches: BTreeMap::new(),
            ready: Vec::new(),
            retired: VecDeque::new(),
            retired_set: HashSet::new(),
            retired_bytes: 0,
            batch_tags: BTreeMap::new(),
            round: 0,
            own_header: None,
            own_votes: BTreeMap::new(),
            own_certified: false,
            last_own_certificate: None,
            last_header_at: Time::ZERO,
            voted: HashMap::new(),
            pending_headers: BTreeMap::new(),
            proposals: HashMap::new(),
            pending: HashMap::new(),
            waiting_on: HashMap::new(),
            want_certs: BTreeMap::new(),
            want_batches: BTreeMap::new(),
            outbox: BTreeMap::new(),
            last_range_request: None,
            position: 0,
            seq: 0,
            chain: Digest::ZERO,
            queue: VecDeque::new(),
            output_seq: 0,
            dedup: DedupWindow::new(dedup_window),
            samples: Vec::new(),
            stats: BullsharkStats::default(),
            history: VecDeque::new(),
            history_bytes: 0,
            transfer: None,
            validator: None,
        };
        e.restore(recovered)?;
        Ok(e)
    }

    fn restore(&mut self, rec: Recovered) -> Result<(), BullsharkError> {
        let corrupt = |e: dwcp_core::codec::CodecError| BullsharkError::Corrupt(e.to_string());
        // Batch digests this node named in a header of its own.
        let mut proposed: HashSet<Digest> = HashSet::new();
        let mut certificates: Vec<Certificate> = Vec::new();
        let mut batches: Vec<(WalKey, BatchRecord, Bytes)> = Vec::new();
        let mut record: Option<(WalKey, BatchRecord)> = None;
        for (key, value) in &rec.wal {
            match key.tag {
                TAG_HEADER => {
                    let h: Signed<Header> = decode(value, MAX_RECORD).map_err(corrupt)?;
                    proposed.extend(h.value().batches.iter().copied());
                    if h.value().round >= self.round {
                        self.round = h.value().round;
                        self.own_header = Some(h);
                    }
                }
                t if t >= TAG_BATCH => {
                    if t % 2 == 0 {
                        record = Some((*key, decode(value, MAX_RECORD).map_err(corrupt)?));
                    } else {
                        // The bytes follow their record; anything else is a torn pair.
                        let Some((k, r)) = record.take() else {
                            return Err(BullsharkError::Corrupt(format!(
                                "batch bytes at {key:?} without their record"
                            )));
                        };
                        if k.slot != key.slot || k.tag + 1 != t {
                            return Err(BullsharkError::Corrupt(format!(
                                "batch bytes at {key:?} without their record"
                            )));
                        }
                        batches.push((k, r, value.clone()));
                    }
                }
                t if t >= TAG_CERTIFICATE => {
                    certificates.push(decode(value, MAX_RECORD).map_err(corrupt)?);
                }
                t => {
                    let author = u16::try_from(t).map_err(|_| {
                        BullsharkError::Corrupt(format!("unknown record tag {t:#x}"))
                    })?;
                    let d: Digest = decode(value, MAX_RECORD).map_err(corrupt)?;
                    self.voted.insert((key.slot, NodeId(author)), d);
                }
            }
        }
        if let Some(cp) = rec.checkpoints.last() {
            let state: CommitState = decode(&cp.data, MAX_RECORD).map_err(corrupt)?;
            let gc = state
                .rule
                .last_committed_round
                .saturating_sub(self.cfg.gc_depth);
            self.dag.garbage_collect(gc);
            self.dag.settle(state.rule.committed.iter().copied());
            self.rule.restore(state.rule);
            self.position = state.position;
            self.seq = state.seq;
            self.chain = state.chain;
            self.queue = state.queue.into();
        }
        // The DAG as this node held it: each certificate was verified before it was
        // stored, and parents come before children in round order.
        certificates.sort_by_key(|c| (c.round(), c.author()));
        for cert in certificates {
            if cert.round() == 0 || !self.committee.contains(cert.author()) {
                continue;
            }
            proposed.extend(
                cert.batches()
                    .iter()
                    .copied()
                    .filter(|_| cert.author() == self.id),
            );
            if let Ok(Inserted::New) = self.dag.insert(Arc::new(cert)) {
                self.stats.certificates += 1;
            }
        }
        for (key, r, payload) in batches {
            let batch = Batch::from_parts(r.author, r.nonce, payload);
            let Ok(transactions) = batch.check() else {
                return Err(BullsharkError::Corrupt(format!(
                    "stored batch at {key:?} is malformed"
                )));
            };
            let next = self.batch_tags.entry(key.slot).or_insert(TAG_BATCH);
            *next = (*next).max(key.tag.saturating_add(2));
            let digest = batch.digest();
            if r.origin == self.id && !r.proposed && !proposed.contains(&digest) {
                // Sealed but never proposed: collect acknowledgements again (peers
                // that stored it answer at once) and propose it.
                self.own_batches.insert(
                    digest,
                    OwnBatch {
                        acks: BTreeSet::from([self.id]),
                        transactions: transactions as u64,
                        bytes: batch.len(),
                        resend_at: Time::ZERO,
                        backoff: self.cfg.sync_retry,
                    },
                );
            }
            self.batches.insert(
                digest,
                StoredBatch {
                    batch,
                    origin: r.origin,
                    key,
                    unreferenced: false,
                },
            );
        }
        let last_logged = rec.committed_tail.last().map(|c| c.seq).unwrap_or(0);
        if last_logged > self.seq {
            return Err(BullsharkError::LogAhead {
                log: last_logged,
                state: self.seq,
            });
        }
        let need = (self.cfg.dedup_window.min(last_logged)) as usize;
        if self.cfg.dedup_window > 0 && rec.committed_tail.len() < need {
            return Err(BullsharkError::TailTooShort {
                got: rec.committed_tail.len(),
                need,
            });
        }
        self.output_seq = last_logged;
        self.queue.retain(|o| o.seq > last_logged);
        self.dedup.restore(&rec.committed_tail);
        Ok(())
    }

    /// Counters since start.
    pub fn stats(&self) -> &BullsharkStats {
        &self.stats
    }

    /// The local DAG.
    pub fn dag(&self) -> &Dag {
        &self.dag
    }

    /// The highest round this node knows of, from its DAG, its own proposals or its
    /// committed order.
    fn horizon(&self) -> Round {
        self.dag
            .highest_round()
            .max(self.round)
            .max(self.rule.last_committed_round())
    }

    fn on_start(&mut self, now: Time, fx: &mut Effects<BullsharkMessage>) {
        fx.set_timer(TIMER_SYNC, self.cfg.sync_retry);
        fx.set_timer(TIMER_HEADER, self.cfg.max_header_delay);
        self.last_header_at = now;
        // The commit rule reads the restored DAG for what it had not committed yet
        // (a crash may have come between storing a certificate and the decision
        // it led to).
        let mut restored: Vec<Arc<Certificate>> = Vec::new();
        for r in self.rule.last_committed_round() + 1..=self.dag.highest_round() {
            restored.extend(self.dag.round(r).cloned());
        }
        for cert in restored {
            if cert.round() > self.rule.last_committed_round() {
                let subdags = self.rule.on_certificate(&self.dag, &cert);
                if !subdags.is_empty() {
                    self.order(now, subdags, fx);
                }
            }
        }
        if let Some(own) = self
            .own_header
            .as_ref()
            .and_then(|h| self.dag.get(h.digest()))
        {
            self.own_certified = true;
            self.last_own_certificate = Some(Arc::clone(own));
        }
        if let Some(h) = self.own_header.clone().filter(|_| !self.own_certified) {
            fx.broadcast(BullsharkMessage::Header(h.clone()));
            let vote = Signed::new(HeaderVote::for_header(&h), self.id, &self.keys.signing);
            self.on_own_vote(now, vote, fx);
        }
        self.drain_output(now, fx);
        self.try_propose(now, fx);
    }
}

impl Engine for BullsharkEngine {
    type Message = BullsharkMessage;

    fn handle(
        &mut self,
        now: Time,
        input: Input<BullsharkMessage>,
        fx: &mut Effects<BullsharkMessage>,
    ) {
        match input {
            Input::Start => self.on_start(now, fx),
            Input::Submit(txs) => self.on_submit(now, txs, fx),
            Input::Timeout(TIMER_BATCH) => self.seal(now, fx),
            Input::Timeout(TIMER_HEADER) => self.try_propose(now, fx),
            Input::Timeout(TIMER_SYNC) => self.on_sync_tick(now, fx),
            // Bullshark serves state transfer from memory; it never reads the log.
            Input::Timeout(_) | Input::StoredCommitted { .. } => {}
            Input::Message { from, msg } => {
                if from == self.id || !self.committee.contains(from) {
                    return;
                }
                match msg {
                    BullsharkMessage::Batch(b) => self.on_batch(now, from, b, fx),
                    BullsharkMessage::BatchAck(d) => self.on_batch_ack(now, from, d, fx),
                    BullsharkMessage::BatchRequest(ds) => self.on_batch_request(from, ds, fx),
                    BullsharkMessage::Header(h) => self.on_header(now, from, h, fx),
                    BullsharkMessage::Vote(v) => self.on_vote(now, from, v, fx),
                    BullsharkMessage::Certificate(c) => self.on_certificate(now, from, c, fx),
                    BullsharkMessage::CertificateRequest(ds) => {
                        self.on_certificate_request(from, ds, fx)
                    }
                    BullsharkMessage::CertificateRange(start) => {
                        self.on_certificate_range(from, start, fx)
                    }
                    BullsharkMessage::Certificates(certs) => {
                        for c in certs.into_iter().take(MAX_RANGE) {
                            self.on_certificate(now, from, c, fx);
                        }
                    }
                    BullsharkMessage::OrderRequest(first) => self.on_order_request(from, first, fx),
                    BullsharkMessage::Order(reply) => self.on_order(now, from, reply, fx),
                }
            }
        }
        self.flush_requests(fx);
    }

    fn status(&self) -> EngineStatus {
        EngineStatus {
            engine: "bullshark".into(),
            view: self.horizon(),
            last_committed: self.output_seq,
            view_changes: self.stats.leader_timeouts,
            counters: self.stats.counters(),
            committee: None,
        }
    }

    fn drain_proposal_commits(&mut self, out: &mut Vec<ProposalCommitted>) {
        out.append(&mut self.samples);
    }
}
