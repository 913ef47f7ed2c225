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

use crate::dedup::DedupWindow;
use bytes::Bytes;
use dwcp_core::application::SharedValidator;
use dwcp_core::codec::{decode, encode};
use dwcp_core::{
    Checkpoint, Committed, Committee, Digest, Effects, Engine, EngineStatus, Input, NodeId,
    NodeKeys, ProposalCommitted, Record, Recovered, Round, Seq, Signed, Time, TimerId, WalKey,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use super::batch::{Batch, BatchMaker};
use super::certificate::{check_header_with, Certificate};
use super::commit::{CommitRule, CommittedSubDag, RuleState};
use super::config::BullsharkConfig;
use super::dag::{Dag, DagError, Inserted};
use super::header::Header;
use super::leader::{LeaderSchedule, RoundRobin};
use super::messages::{BullsharkMessage, MAX_RANGE, MAX_REQUEST};
use super::ordering::Bullshark;
use super::transfer::{
    chain_next, state_digest, Base, CommittedSet, Decided, OrderEntry, OrderReply, Transfer,
    MAX_ENTRIES,
};
use super::vote::HeaderVote;

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

    // ----- worker ------------------------------------------------------------------

    fn on_submit(&mut self, now: Time, txs: Vec<Bytes>, fx: &mut Effects<BullsharkMessage>) {
        let mut waiting: usize = self.own_batches.values().map(|b| b.bytes).sum::<usize>()
            + self.ready.iter().map(|(_, _, b)| b).sum::<usize>()
            + self.maker.size();
        for tx in txs {
            if self
                .validator
                .as_ref()
                .is_some_and(|v| v.check_tx(&tx).is_err())
            {
                self.stats.refused_transactions += 1;
                continue;
            }
            waiting += 4 + tx.len();
            if waiting > self.cfg.max_pending_bytes {
                self.stats.dropped_transactions += 1;
                continue;
            }
            if self.maker.count() == 0 {
                fx.set_timer(TIMER_BATCH, self.cfg.max_batch_delay);
            }
            if !self.maker.push(&tx) {
                self.stats.dropped_transactions += 1;
                continue;
            }
            if self.maker.size() >= self.cfg.batch_size {
                self.seal(now, fx);
            }
        }
    }

    /// Whether the application accepts every transaction of a peer's batch.
    fn batch_acceptable(&self, batch: &Batch) -> bool {
        let Some(v) = &self.validator else {
            return true;
        };
        let txs: Vec<Bytes> = batch.transactions().collect();
        v.process_proposal(&txs).is_ok()
    }

    fn seal(&mut self, now: Time, fx: &mut Effects<BullsharkMessage>) {
        let count = self.maker.count() as u64;
        let bytes = self.maker.size();
        // The round and this run's counter make the nonce: a restarted worker
        // (counter back at zero) seals in a later round.
        let nonce = (self.horizon() << 32) | (self.stats.batches_sealed & 0xffff_ffff);
        let Some(batch) = self.maker.seal(self.id, nonce) else {
            return;
        };
        fx.cancel_timer(TIMER_BATCH);
        self.stats.batches_sealed += 1;
        let digest = batch.digest();
        self.own_batches.insert(
            digest,
            OwnBatch {
                acks: BTreeSet::from([self.id]),
                transactions: count,
                bytes,
                resend_at: now.after(self.cfg.sync_retry),
                backoff: self.cfg.sync_retry,
            },
        );
        // Durable before any copy leaves: this node counts as one of its holders.
        let key = self.batch_key(self.round);
        Self::persist_batch(key, &batch, self.id, false, fx);
        self.batches.insert(
            digest,
            StoredBatch {
                batch: batch.clone(),
                origin: self.id,
                key,
                unreferenced: false,
            },
        );
        fx.broadcast(BullsharkMessage::Batch(batch));
        self.check_ready(digest, now, fx);
    }

    /// A fresh write-ahead key for a batch stored in `round` (or at the
    /// garbage-collection round, if that is higher).
    fn batch_key(&mut self, round: Round) -> WalKey {
        let mut slot = round.max(self.dag.gc_round());
        loop {
            let next = self.batch_tags.entry(slot).or_insert(TAG_BATCH);
            // Two tags per batch, below `TAG_HEADER`; a full slot spills into the next.
            if *next < TAG_HEADER - 1 {
                let tag = *next;
                *next += 2;
                return WalKey { slot, tag };
            }
            slot += 1;
        }
    }

    /// Makes a batch durable under `key`: its record, then its bytes (shared with
    /// the batch, not copied).
    fn persist_batch(
        key: WalKey,
        batch: &Batch,
        origin: NodeId,
        proposed: bool,
        fx: &mut Effects<BullsharkMessage>,
    ) {
        let record = BatchRecord {
            author: batch.author(),
            nonce: batch.nonce(),
            origin,
            proposed,
        };
        fx.persist(Record::Put {
            key,
            value: Bytes::from(encode(&record)),
        });
        fx.persist(Record::Put {
            key: WalKey {
                slot: key.slot,
                tag: key.tag + 1,
            },
            value: batch.payload().clone(),
        });
    }

    fn check_ready(&mut self, digest: Digest, now: Time, fx: &mut Effects<BullsharkMessage>) {
        let Some(own) = self.own_batches.get(&digest) else {
            return;
        };
        if own.acks.len() >= self.quorum {
            let (transactions, bytes) = (own.transactions, own.bytes);
            self.own_batches.remove(&digest);
            self.ready.push((digest, transactions, bytes));
            self.try_propose(now, fx);
        }
    }

    fn on_batch(
        &mut self,
        now: Time,
        from: NodeId,
        batch: Batch,
        fx: &mut Effects<BullsharkMessage>,
    ) {
        let digest = batch.digest();
        let solicited = self.want_batches.remove(&digest).is_some();
        let horizon = self.horizon();
        if let Some(stored) = self.batches.get(&digest) {
            if stored.key.slot < horizon {
                // Acknowledged again (its author, maybe restarted, wants to propose
                // it now): kept from now on as if it had just arrived, on disk too.
                let (batch, origin) = (stored.batch.clone(), stored.origin);
                let key = self.batch_key(horizon);
                Self::persist_batch(key, &batch, origin, false, fx);
                if let Some(stored) = self.batches.get_mut(&digest) {
                    stored.key = key;
                }
            }
            fx.send(from, BullsharkMessage::BatchAck(digest));
            return;
        }
        if batch.len() > self.cfg.batch_size.saturating_mul(2).max(1 << 16)
            || batch.check().is_err()
        {
            self.stats.rejected += 1;
            return;
        }
        if !solicited && !self.batch_acceptable(&batch) {
            // Never acknowledged, so no header naming it gathers this node's vote.
            // A batch a certificate already names (solicited) is stored whatever
            // it holds: the order is decided, and every node must output it.
            self.stats.refused_batches += 1;
            return;
        }
        let unreferenced = !solicited;
        if unreferenced {
            let used = &mut self.unreferenced_bytes[from.index()];
            if *used + batch.len() > self.cfg.max_unreferenced_batch_bytes {
                return;
            }
            *used += batch.len();
        }
        // Narwhal's worker: store the batch, then acknowledge it. The
        // acknowledgement (and any vote for a header naming it) promises that the
        // batch survives a crash of this node.
        let key = self.batch_key(horizon);
        Self::persist_batch(key, &batch, from, false, fx);
        self.batches.insert(
            digest,
            StoredBatch {
                batch,
                origin: from,
                key,
                unreferenced,
            },
        );
        if !solicited {
            fx.send(from, BullsharkMessage::BatchAck(digest));
        }
        self.retry_pending_headers(now, fx);
        self.drain_output(now, fx);
    }

    fn on_batch_ack(
        &mut self,
        now: Time,
        from: NodeId,
        digest: Digest,
        fx: &mut Effects<BullsharkMessage>,
    ) {
        if let Some(own) = self.own_batches.get_mut(&digest) {
            own.acks.insert(from);
            self.check_ready(digest, now, fx);
        }
    }

    fn mark_referenced(&mut self, cert: &Certificate) {
        for d in cert.batches() {
            if let Some(b) = self.batches.get_mut(d) {
                if b.unreferenced {
                    b.unreferenced = false;
                    let used = &mut self.unreferenced_bytes[b.origin.index()];
                    *used = used.saturating_sub(b.batch.len());
                }
            }
        }
    }

    // ----- primary: proposing --------------------------------------------------------

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

    fn try_propose(&mut self, now: Time, fx: &mut Effects<BullsharkMessage>) {
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

    fn record_vote(
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

    fn on_own_vote(
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

    fn on_vote(
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

    // ----- primary: voting -----------------------------------------------------------

    fn on_header(
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

    fn retry_pending_headers(&mut self, now: Time, fx: &mut Effects<BullsharkMessage>) {
        if self.pending_headers.is_empty() {
            return;
        }
        let authors: Vec<NodeId> = self.pending_headers.keys().copied().collect();
        for a in authors {
            self.try_vote(now, a, fx);
        }
    }

    // ----- the DAG -------------------------------------------------------------------

    fn on_certificate(
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
    fn insert_verified(
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

    // ----- ordering and output ---------------------------------------------------------

    fn order(
        &mut self,
        now: Time,
        subdags: Vec<CommittedSubDag>,
        fx: &mut Effects<BullsharkMessage>,
    ) {
        // The committed set after each sub-DAG, for peers that will take this
        // position by state transfer: the rule's set now, less what later sub-DAGs of
        // this step committed, above that sub-DAG's garbage-collection round.
        let all = self.rule.state().committed;
        let mut states = Vec::with_capacity(subdags.len());
        let mut later: HashSet<Digest> = HashSet::new();
        for sub in subdags.iter().rev() {
            let floor = sub.leader_round().saturating_sub(self.cfg.gc_depth);
            states.push(
                all.iter()
                    .filter(|(r, d)| *r >= floor && !later.contains(d))
                    .copied()
                    .collect::<Vec<_>>(),
            );
            later.extend(sub.certificates.iter().map(|c| c.digest()));
        }
        states.reverse();
        for (sub, committed) in subdags.into_iter().zip(states) {
            let mut batches = Vec::new();
            for cert in &sub.certificates {
                if cert.author() == self.id {
                    if let Some((_, proposed, transactions)) = self.proposals.remove(&cert.digest())
                    {
                        self.samples.push(ProposalCommitted {
                            proposed,
                            committed: now,
                            transactions,
                        });
                    }
                }
                batches.extend(cert.batches().iter().map(|d| (*d, cert.author())));
            }
            self.position += 1;
            if !batches.is_empty() {
                self.seq += 1;
            }
            let leader = sub.leader.digest();
            let leader_round = sub.leader_round();
            self.chain = chain_next(
                &self.chain,
                self.position,
                self.seq,
                &leader,
                leader_round,
                &batches,
            );
            let entry = OrderEntry {
                position: self.position,
                seq: self.seq,
                chain: self.chain,
                leader,
                leader_round,
                batches,
                state: state_digest(&committed),
            };
            if !entry.batches.is_empty() {
                self.queue.push_back(Ordered {
                    seq: self.seq,
                    chain: self.chain,
                    batches: entry.batches.clone(),
                });
            }
            self.remember_entry(entry, committed);
        }
        // The decision is durable before anything that depends on it happens, and
        // before the records it makes obsolete are pruned.
        self.persist_commit_state(fx);
        let gc = self
            .rule
            .last_committed_round()
            .saturating_sub(self.cfg.gc_depth);
        if gc > self.dag.gc_round() {
            self.garbage_collect(gc, fx);
        }
    }

    fn persist_commit_state(&self, fx: &mut Effects<BullsharkMessage>) {
        let state = CommitState {
            rule: self.rule.state(),
            position: self.position,
            seq: self.seq,
            chain: self.chain,
            queue: self.queue.iter().cloned().collect(),
        };
        fx.persist(Record::Checkpoint(Checkpoint {
            seq: self.seq,
            digest: self.chain,
            data: Bytes::from(encode(&state)),
        }));
    }

    fn garbage_collect(&mut self, gc: Round, fx: &mut Effects<BullsharkMessage>) {
        self.dag.garbage_collect(gc);
        self.rule.garbage_collect(gc);
        let needed: HashSet<Digest> = self
            .queue
            .iter()
            .flat_map(|o| o.batches.iter().map(|(d, _)| *d))
            .collect();
        let ready: HashSet<Digest> = self.ready.iter().map(|(d, _, _)| *d).collect();
        // Batches still needed (to output, or own ones not proposed yet) are written
        // again above the pruning point before their records go. Committed batches
        // kept for peers stay in memory only: their transactions are in the log.
        let mut moved: Vec<Digest> = self
            .batches
            .iter()
            .filter(|(d, b)| {
                b.key.slot < gc
                    && (needed.contains(*d)
                        || self.own_batches.contains_key(*d)
                        || ready.contains(*d))
            })
            .map(|(d, _)| *d)
            .collect();
        moved.sort_unstable();
        for d in moved {
            let key = self.batch_key(gc);
            let proposed = !(self.own_batches.contains_key(&d) || ready.contains(&d));
            if let Some(b) = self.batches.get_mut(&d) {
                b.key = key;
                Self::persist_batch(key, &b.batch, b.origin, proposed, fx);
            }
        }
        fx.persist(Record::PruneBelow(gc));
        self.batch_tags = self.batch_tags.split_off(&gc);
        self.voted.retain(|(r, _), _| *r >= gc);
        self.pending.retain(|_, (c, _)| c.round() >= gc);
        let pending = &self.pending;
        self.waiting_on.retain(|_, children| {
            children.retain(|c| pending.contains_key(c));
            !children.is_empty()
        });
        self.want_certs
            .retain(|d, _| self.waiting_on.contains_key(d));
        self.pending_headers.retain(|_, h| h.value().round >= gc);
        self.proposals.retain(|_, (r, _, _)| *r >= gc);
        let own = &self.own_batches;
        // Committed batches stay until the retention budget pushes them out (in
        // `drain_output`), whatever their round: a peer that restarted may still
        // need them to output what it missed.
        let retired = &self.retired_set;
        let unreferenced = &mut self.unreferenced_bytes;
        self.batches.retain(|d, b| {
            let keep = b.key.slot >= gc
                || needed.contains(d)
                || own.contains_key(d)
                || ready.contains(d)
                || retired.contains(d);
            if !keep && b.unreferenced {
                let used = &mut unreferenced[b.origin.index()];
                *used = used.saturating_sub(b.batch.len());
            }
            keep
        });
    }

    /// Outputs decided sub-DAGs in order, as long as their batches are here.
    fn drain_output(&mut self, now: Time, fx: &mut Effects<BullsharkMessage>) {
        while let Some(front) = self.queue.front() {
            let missing: Vec<(Digest, NodeId)> = front
                .batches
                .iter()
                .filter(|(d, _)| !self.batches.contains_key(d))
                .copied()
                .collect();
            if !missing.is_empty() {
                for (d, author) in missing {
                    self.want_batch(d, author, now, true);
                }
                return;
            }
            let Some(entry) = self.queue.pop_front() else {
                return;
            };
            if entry.seq <= self.output_seq {
                continue;
            }
            let batches = &self.batches;
            let fresh = self.dedup.fresh(
                entry
                    .batches
                    .iter()
                    .filter_map(|(d, _)| batches.get(d))
                    .flat_map(|stored| stored.batch.transactions()),
                false,
            );
            self.stats.repeats_dropped += fresh.repeats as u64;
            self.dedup.record(entry.seq, fresh.digests);
            let transactions = fresh.transactions;
            let mut output: Vec<WalKey> = Vec::with_capacity(entry.batches.len());
            for (d, _) in &entry.batches {
                if let Some(b) = self.batches.get(d) {
                    output.push(b.key);
                    if self.retired_set.insert(*d) {
                        self.retired.push_back((*d, b.batch.len()));
                        self.retired_bytes += b.batch.len();
                    }
                }
            }
            self.output_seq = entry.seq;
            fx.commit(Committed {
                seq: entry.seq,
                digest: entry.chain,
                transactions,
            });
            // Their transactions are in the committed log now (the driver writes it
            // before any later record): the batches' own records can go, rather than
            // wait for garbage collection with every byte of them.
            // The bytes go first: a crash between the two leaves a record without its
            // bytes, which a restart skips like an interrupted write.
            for key in output {
                fx.persist(Record::Delete(WalKey {
                    slot: key.slot,
                    tag: key.tag + 1,
                }));
                fx.persist(Record::Delete(key));
            }
        }
        // Committed batches stay a while for peers that still fetch them.
        while self.retired_bytes > self.cfg.retain_committed_batch_bytes {
            let Some((d, len)) = self.retired.pop_front() else {
                break;
            };
            self.retired_bytes -= len;
            self.retired_set.remove(&d);
            self.batches.remove(&d);
        }
    }

    // ----- synchronisation -------------------------------------------------------------

    fn want_certificate(&mut self, digest: Digest, hint: NodeId, now: Time) {
        if self.dag.is_present(&digest) || self.want_certs.contains_key(&digest) {
            return;
        }
        self.want_certs.insert(
            digest,
            Wanted {
                hint,
                attempts: 0,
                last: now,
                urgent: false,
            },
        );
        self.outbox.entry(hint).or_default().0.push(digest);
    }

    fn want_batch(&mut self, digest: Digest, hint: NodeId, now: Time, urgent: bool) {
        if let Some(w) = self.want_batches.get_mut(&digest) {
            w.urgent |= urgent;
            return;
        }
        if self.batches.contains_key(&digest) {
            return;
        }
        self.want_batches.insert(
            digest,
            Wanted {
                hint,
                attempts: 0,
                last: now,
                urgent,
            },
        );
        self.outbox.entry(hint).or_default().1.push(digest);
    }

    /// The member to ask on the `attempt`-th try: the hint first, then the others in turn.
    fn peer_for(&self, hint: NodeId, attempt: u32) -> NodeId {
        let n = self.committee.size();
        let mut k = (hint.index() + attempt as usize) % n;
        if k == self.id.index() {
            k = (k + 1) % n;
        }
        NodeId(k as u16)
    }

    /// Retransmissions and retries, every `sync_retry`.
    fn on_sync_tick(&mut self, now: Time, fx: &mut Effects<BullsharkMessage>) {
        fx.set_timer(TIMER_SYNC, self.cfg.sync_retry);
        if let Some(h) = &self.own_header {
            if !self.own_certified {
                for to in self.committee.ids() {
                    if to != self.id && !self.own_votes.contains_key(&to) {
                        fx.send(to, BullsharkMessage::Header(h.clone()));
                    }
                }
            }
        }
        if let Some(c) = &self.last_own_certificate {
            fx.broadcast(BullsharkMessage::Certificate((**c).clone()));
        }
        let max_backoff = self.cfg.sync_retry * MAX_RESEND_BACKOFF;
        for (digest, own) in &mut self.own_batches {
            if now < own.resend_at {
                continue;
            }
            let Some(b) = self.batches.get(digest) else {
                continue;
            };
            for to in self.committee.ids() {
                if !own.acks.contains(&to) {
                    fx.send(to, BullsharkMessage::Batch(b.batch.clone()));
                }
            }
            own.backoff = (own.backoff * 2).min(max_backoff);
            own.resend_at = now.after(own.backoff);
        }
        let retry = self.cfg.sync_retry;
        let max = self.cfg.max_sync_attempts;
        let mut asks: Vec<(NodeId, Digest, bool)> = Vec::new();
        let mut certificate_lost = false;
        for (kind, wanted) in [
            (true, &mut self.want_certs),
            (false, &mut self.want_batches),
        ] {
            wanted.retain(|d, w| {
                if now.since(w.last) < retry {
                    return true;
                }
                if w.attempts >= max && !w.urgent {
                    certificate_lost |= kind;
                    return false;
                }
                w.attempts = w.attempts.saturating_add(1);
                w.last = now;
                asks.push((w.hint, *d, kind));
                true
            });
        }
        for (hint, d, is_cert) in asks {
            let attempts = if is_cert {
                self.want_certs.get(&d).map(|w| w.attempts)
            } else {
                self.want_batches.get(&d).map(|w| w.attempts)
            }
            .unwrap_or(0);
            let to = self.peer_for(hint, attempts);
            let slot = self.outbox.entry(to).or_default();
            if is_cert {
                slot.0.push(d);
            } else {
                slot.1.push(d);
            }
        }
        // A parent no peer could send in all those attempts was collected by them.
        if certificate_lost {
            self.request_transfer(now, fx);
        }
        if let Some(t) = &self.transfer {
            if t.attempts >= max {
                self.transfer = None;
            } else if now.since(t.asked) >= retry {
                self.request_transfer(now, fx);
            }
        }
        self.try_propose(now, fx);
        self.drain_output(now, fx);
    }

    /// Far behind a peer: ask it for everything above our DAG at once, rather than
    /// walking back one round per round trip (at most once per `sync_retry`).
    fn catch_up(&mut self, now: Time, from: NodeId, fx: &mut Effects<BullsharkMessage>) {
        if from == self.id {
            return;
        }
        if let Some(last) = self.last_range_request {
            if now.since(last) < self.cfg.sync_retry {
                return;
            }
        }
        self.last_range_request = Some(now);
        let start = self.dag.highest_round().max(self.dag.gc_round()).max(1);
        fx.send(from, BullsharkMessage::CertificateRange(start));
    }

    fn on_certificate_range(
        &mut self,
        from: NodeId,
        start: Round,
        fx: &mut Effects<BullsharkMessage>,
    ) {
        let start = start.max(self.dag.gc_round()).max(1);
        let mut certs = Vec::new();
        let mut r = start;
        while r <= self.dag.highest_round() && certs.len() < MAX_RANGE {
            certs.extend(self.dag.round(r).map(|c| (**c).clone()));
            r += 1;
        }
        certs.truncate(MAX_RANGE);
        if !certs.is_empty() {
            fx.send(from, BullsharkMessage::Certificates(certs));
        }
    }

    fn on_certificate_request(
        &mut self,
        from: NodeId,
        digests: Vec<Digest>,
        fx: &mut Effects<BullsharkMessage>,
    ) {
        for d in digests.iter().take(MAX_REQUEST) {
            if let Some(c) = self.dag.get(d) {
                fx.send(from, BullsharkMessage::Certificate((**c).clone()));
            }
        }
    }

    fn on_batch_request(
        &mut self,
        from: NodeId,
        digests: Vec<Digest>,
        fx: &mut Effects<BullsharkMessage>,
    ) {
        for d in digests.iter().take(MAX_REQUEST) {
            if let Some(b) = self.batches.get(d) {
                fx.send(from, BullsharkMessage::Batch(b.batch.clone()));
            }
        }
    }

    fn flush_requests(&mut self, fx: &mut Effects<BullsharkMessage>) {
        for (to, (certs, batches)) in std::mem::take(&mut self.outbox) {
            if to == self.id {
                continue;
            }
            for chunk in certs.chunks(MAX_REQUEST) {
                fx.send(to, BullsharkMessage::CertificateRequest(chunk.to_vec()));
            }
            for chunk in batches.chunks(MAX_REQUEST) {
                fx.send(to, BullsharkMessage::BatchRequest(chunk.to_vec()));
            }
        }
    }

    // ----- state transfer --------------------------------------------------------------

    fn remember_entry(&mut self, entry: OrderEntry, committed: CommittedSet) {
        let bytes = 128 + 40 * (entry.batches.len() + committed.len());
        self.history.push_back((entry, committed, bytes));
        self.history_bytes += bytes;
        while self.history_bytes > self.cfg.retain_order_bytes {
            let Some((_, _, b)) = self.history.pop_front() else {
                break;
            };
            self.history_bytes -= b;
        }
    }

    fn base(&self) -> Base {
        Base {
            position: self.position,
            seq: self.seq,
            chain: self.chain,
        }
    }

    fn transfer_due(&self, now: Time) -> bool {
        self.transfer
            .as_ref()
            .is_none_or(|t| now.since(t.asked) >= self.cfg.sync_retry)
    }

    /// Asks every peer for the committed order after this node's (at most once per
    /// `sync_retry`, and `max_sync_attempts` times without success).
    fn request_transfer(&mut self, now: Time, fx: &mut Effects<BullsharkMessage>) {
        if self.committee.size() == 1 {
            return;
        }
        let base = self.base();
        match &mut self.transfer {
            Some(t) if t.base() == base => {
                if now.since(t.asked) < self.cfg.sync_retry {
                    return;
                }
                t.asked = now;
                t.attempts += 1;
            }
            _ => self.transfer = Some(Transfer::new(base, now)),
        }
        fx.broadcast(BullsharkMessage::OrderRequest(base.position + 1));
    }

    /// Serves the committed order from position `first` on, if it is still retained.
    fn on_order_request(&mut self, from: NodeId, first: u64, fx: &mut Effects<BullsharkMessage>) {
        let Some(start) = self.history.front().map(|(e, _, _)| e.position) else {
            return;
        };
        let Some(skip) = first.checked_sub(start) else {
            return;
        };
        let mut entries = Vec::new();
        let mut committed = None;
        for (e, c, _) in self.history.iter().skip(skip as usize).take(MAX_ENTRIES) {
            entries.push(e.clone());
            committed = Some(c);
        }
        let Some(committed) = committed else {
            return;
        };
        let reply = OrderReply {
            entries,
            committed: committed.clone(),
        };
        fx.send(from, BullsharkMessage::Order(reply));
    }

    fn on_order(
        &mut self,
        now: Time,
        from: NodeId,
        reply: OrderReply,
        fx: &mut Effects<BullsharkMessage>,
    ) {
        let base = self.base();
        let Some(t) = &mut self.transfer else {
            return;
        };
        if t.base() != base {
            // The DAG moved this node on meanwhile; a new request starts afresh.
            self.transfer = None;
            return;
        }
        t.add(from, reply);
        let Some(decided) = t.decided(self.validity) else {
            return;
        };
        self.transfer = None;
        let more = decided.entries.len() >= MAX_ENTRIES;
        self.install(now, from, decided, fx);
        if more {
            self.request_transfer(now, fx);
        }
    }

    /// Continues the order from a position `f+1` members vouched for: its entries
    /// join the output queue (their batches are fetched as usual), the commit rule
    /// and the DAG restart there, and the DAG above it is fetched.
    fn install(
        &mut self,
        now: Time,
        from: NodeId,
        decided: Decided,
        fx: &mut Effects<BullsharkMessage>,
    ) {
        let Some(last) = decided.entries.last() else {
            return;
        };
        let (position, seq, chain) = (last.position, last.seq, last.chain);
        let leader_round = last.leader_round;
        self.rule.restore(RuleState {
            last_committed_round: leader_round,
            committed: decided.committed.clone(),
        });
        self.queue.extend(
            decided
                .entries
                .into_iter()
                .filter(|e| !e.batches.is_empty())
                .map(|e| Ordered {
                    seq: e.seq,
                    chain: e.chain,
                    batches: e.batches,
                }),
        );
        self.position = position;
        self.seq = seq;
        self.chain = chain;
        // This node's own history would have a gap: it serves from the next entry.
        self.history.clear();
        self.history_bytes = 0;
        self.stats.transfers += 1;
        self.persist_commit_state(fx);
        let gc = leader_round.saturating_sub(self.cfg.gc_depth);
        if gc > self.dag.gc_round() {
            self.garbage_collect(gc, fx);
        }
        self.dag.settle(decided.committed);
        // Certificates that waited for parents now settled can enter the DAG.
        let mut waiting: Vec<(Arc<Certificate>, NodeId)> =
            self.pending.drain().map(|(_, p)| p).collect();
        self.waiting_on.clear();
        waiting.sort_by_key(|(c, _)| (c.round(), c.author(), c.digest()));
        for (cert, origin) in waiting {
            self.insert_verified(now, cert, origin, fx);
        }
        self.last_range_request = None;
        self.catch_up(now, from, fx);
        self.drain_output(now, fx);
        self.try_propose(now, fx);
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
        }
    }

    fn drain_proposal_commits(&mut self, out: &mut Vec<ProposalCommitted>) {
        out.append(&mut self.samples);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bullshark::notation::{certificate, committee};
    use dwcp_core::storage::{MemoryStore, Storage};
    use dwcp_core::Effect;

    fn engine(id: u16, keys: &[NodeKeys], c: &Committee, rec: Recovered) -> BullsharkEngine {
        BullsharkEngine::new(
            keys[id as usize].clone(),
            c.clone(),
            BullsharkConfig::default(),
            rec,
        )
        .expect("engine")
    }

    fn feed(
        e: &mut BullsharkEngine,
        now: Time,
        input: Input<BullsharkMessage>,
        store: &mut MemoryStore,
    ) -> Vec<Effect<BullsharkMessage>> {
        let mut fx = Effects::new();
        e.handle(now, input, &mut fx);
        let out: Vec<_> = fx.drain().collect();
        for effect in &out {
            if let Effect::Persist(r) = effect {
                store.apply(std::slice::from_ref(r)).expect("persist");
            }
        }
        out
    }

    fn header(
        keys: &[NodeKeys],
        c: &Committee,
        author: u16,
        batches: Vec<Digest>,
    ) -> Signed<Header> {
        let parents = Certificate::genesis(c)
            .iter()
            .map(Certificate::digest)
            .collect();
        Signed::new(
            Header {
                author: NodeId(author),
                round: 1,
                batches,
                parents,
            },
            NodeId(author),
            &keys[author as usize].signing,
        )
    }

    fn votes(out: &[Effect<BullsharkMessage>]) -> Vec<(NodeId, Digest)> {
        out.iter()
            .filter_map(|e| match e {
                Effect::Send {
                    to,
                    msg: BullsharkMessage::Vote(v),
                } => Some((*to, v.value().header)),
                _ => None,
            })
            .collect()
    }

    fn batch(tx: &[u8]) -> Batch {
        let mut m = BatchMaker::default();
        m.push(tx);
        m.seal(NodeId(0), 0).expect("batch")
    }

    #[test]
    fn a_header_is_voted_for_only_once_its_batches_are_here() {
        let (c, keys) = committee(4);
        let mut store = MemoryStore::new();
        let mut e = engine(1, &keys, &c, Recovered::default());
        feed(&mut e, Time::ZERO, Input::Start, &mut store);
        let b = batch(b"tx");
        let h = header(&keys, &c, 0, vec![b.digest()]);
        let msg = BullsharkMessage::Header(h.clone());
        let out = feed(
            &mut e,
            Time(1),
            Input::Message {
                from: NodeId(0),
                msg,
            },
            &mut store,
        );
        assert!(votes(&out).is_empty());
        assert!(out.iter().any(|e| matches!(
            e,
            Effect::Send { to: NodeId(0), msg: BullsharkMessage::BatchRequest(d) } if d == &vec![b.digest()]
        )));
        let out = feed(
            &mut e,
            Time(2),
            Input::Message {
                from: NodeId(0),
                msg: BullsharkMessage::Batch(b),
            },
            &mut store,
        );
        assert_eq!(votes(&out), vec![(NodeId(0), *h.digest())]);
        // The vote is on disk before it leaves.
        let persist = out.iter().position(|e| matches!(e, Effect::Persist(_)));
        let send = out.iter().position(|e| {
            matches!(
                e,
                Effect::Send {
                    msg: BullsharkMessage::Vote(_),
                    ..
                }
            )
        });
        assert!(persist < send);
    }

    #[test]
    fn one_vote_per_author_and_round_even_across_a_restart() {
        let (c, keys) = committee(4);
        let mut store = MemoryStore::new();
        let mut e = engine(1, &keys, &c, Recovered::default());
        feed(&mut e, Time::ZERO, Input::Start, &mut store);
        let first = header(&keys, &c, 0, vec![]);
        let second = header(&keys, &c, 0, vec![]);
        let other = Signed::new(
            Header {
                parents: first.value().parents.iter().rev().copied().collect(),
                ..first.value().clone()
            },
            NodeId(0),
            &keys[0].signing,
        );
        assert_eq!(first.digest(), second.digest());
        assert_ne!(first.digest(), other.digest());
        let msg = |h: &Signed<Header>| Input::Message {
            from: NodeId(0),
            msg: BullsharkMessage::Header(h.clone()),
        };
        let out = feed(&mut e, Time(1), msg(&first), &mut store);
        assert_eq!(votes(&out), vec![(NodeId(0), *first.digest())]);
        assert!(votes(&feed(&mut e, Time(2), msg(&other), &mut store)).is_empty());
        assert_eq!(e.stats().equivocations, 1);
        // A lost vote is sent again, identically.
        assert_eq!(
            votes(&feed(&mut e, Time(3), msg(&first), &mut store)),
            vec![(NodeId(0), *first.digest())]
        );

        let mut restarted = engine(1, &keys, &c, store.recover(4096).expect("recover"));
        feed(&mut restarted, Time(4), Input::Start, &mut store);
        assert!(votes(&feed(&mut restarted, Time(5), msg(&other), &mut store)).is_empty());
        assert_eq!(
            votes(&feed(&mut restarted, Time(6), msg(&first), &mut store)),
            vec![(NodeId(0), *first.digest())]
        );
    }

    #[test]
    fn a_restarted_node_offers_the_header_it_signed_not_a_new_one() {
        let (c, keys) = committee(4);
        let mut store = MemoryStore::new();
        let mut e = engine(0, &keys, &c, Recovered::default());
        feed(&mut e, Time::ZERO, Input::Start, &mut store);
        feed(
            &mut e,
            Time(1),
            Input::Submit(vec![Bytes::from_static(b"a")]),
            &mut store,
        );
        let later = Time::ZERO.after(Duration::from_secs(1));
        let out = feed(&mut e, later, Input::Timeout(TIMER_HEADER), &mut store);
        let headers = |out: &[Effect<BullsharkMessage>]| -> Vec<Digest> {
            out.iter()
                .filter_map(|e| match e {
                    Effect::Broadcast {
                        msg: BullsharkMessage::Header(h),
                    } => Some(*h.digest()),
                    _ => None,
                })
                .collect()
        };
        let signed = headers(&out);
        assert_eq!(signed.len(), 1);
        assert_eq!(e.status().view, 1);

        let mut restarted = engine(0, &keys, &c, store.recover(4096).expect("recover"));
        let out = feed(&mut restarted, later, Input::Start, &mut store);
        assert_eq!(headers(&out), signed);
        let much_later = later.after(Duration::from_secs(5));
        let out = feed(
            &mut restarted,
            much_later,
            Input::Timeout(TIMER_HEADER),
            &mut store,
        );
        assert!(headers(&out).is_empty(), "round 1 was signed already");
    }

    #[test]
    fn certificates_far_ahead_are_refused_without_buffering() {
        let (c, keys) = committee(4);
        let mut store = MemoryStore::new();
        let mut e = engine(1, &keys, &c, Recovered::default());
        feed(&mut e, Time::ZERO, Input::Start, &mut store);
        let far = certificate(
            &c,
            &keys,
            NodeId(0),
            500,
            vec![Digest::of(b"p1"), Digest::of(b"p2"), Digest::of(b"p3")],
            vec![],
        );
        let out = feed(
            &mut e,
            Time(1),
            Input::Message {
                from: NodeId(0),
                msg: BullsharkMessage::Certificate(far),
            },
            &mut store,
        );
        // Nothing is buffered or fetched; the node asks for the committed order
        // instead, since its peers may have collected what it misses.
        assert!(
            matches!(
                out.as_slice(),
                [Effect::Broadcast {
                    msg: BullsharkMessage::OrderRequest(1)
                }]
            ),
            "{out:?}"
        );
        assert!(e.pending.is_empty() && e.want_certs.is_empty());
        // A certificate that does not verify proves nothing and asks for nothing.
        let mut forged = certificate(
            &c,
            &keys,
            NodeId(2),
            600,
            vec![Digest::of(b"p1"), Digest::of(b"p2"), Digest::of(b"p3")],
            vec![],
        );
        forged.votes[0].corrupt_signature();
        let out = feed(
            &mut e,
            Time(1_000_000),
            Input::Message {
                from: NodeId(2),
                msg: BullsharkMessage::Certificate(forged),
            },
            &mut store,
        );
        assert!(out.is_empty(), "{out:?}");
    }

    /// Position of the first effect matching `f`.
    fn first(
        out: &[Effect<BullsharkMessage>],
        f: impl Fn(&Effect<BullsharkMessage>) -> bool,
    ) -> Option<usize> {
        out.iter().position(f)
    }

    #[test]
    fn a_batch_is_stored_before_it_is_acknowledged_and_survives_a_restart() {
        let (c, keys) = committee(4);
        let mut store = MemoryStore::new();
        let mut e = engine(1, &keys, &c, Recovered::default());
        feed(&mut e, Time::ZERO, Input::Start, &mut store);
        let b = batch(b"tx");
        let out = feed(
            &mut e,
            Time(1),
            Input::Message {
                from: NodeId(0),
                msg: BullsharkMessage::Batch(b.clone()),
            },
            &mut store,
        );
        let stored = first(
            &out,
            |e| matches!(e, Effect::Persist(Record::Put { value, .. }) if value == b.payload()),
        );
        let ack = first(
            &out,
            |e| matches!(e, Effect::Send { to: NodeId(0), msg: BullsharkMessage::BatchAck(d) } if *d == b.digest()),
        );
        assert!(stored.is_some() && ack.is_some(), "{out:?}");
        assert!(stored < ack, "acknowledged before it was stored: {out:?}");
        // The stored bytes are the batch's own buffer, not a copy.
        let Some(Effect::Persist(Record::Put { value, .. })) = stored.map(|i| &out[i]) else {
            unreachable!()
        };
        assert_eq!(value.as_ptr(), b.payload().as_ptr());

        // Restarted from its store, the node still holds the batch it vouched for:
        // it serves it and votes for a header naming it without fetching it.
        let mut restarted = engine(1, &keys, &c, store.recover(4096).expect("recover"));
        feed(&mut restarted, Time(2), Input::Start, &mut store);
        let out = feed(
            &mut restarted,
            Time(3),
            Input::Message {
                from: NodeId(2),
                msg: BullsharkMessage::BatchRequest(vec![b.digest()]),
            },
            &mut store,
        );
        assert!(
            out.iter().any(|e| matches!(e, Effect::Send { to: NodeId(2), msg: BullsharkMessage::Batch(x) } if *x == b)),
            "{out:?}"
        );
        let h = header(&keys, &c, 0, vec![b.digest()]);
        let out = feed(
            &mut restarted,
            Time(4),
            Input::Message {
                from: NodeId(0),
                msg: BullsharkMessage::Header(h.clone()),
            },
            &mut store,
        );
        assert_eq!(votes(&out), vec![(NodeId(0), *h.digest())]);
    }

    #[test]
    fn an_own_batch_not_yet_proposed_is_offered_again_after_a_restart() {
        let (c, keys) = committee(4);
        let mut store = MemoryStore::new();
        let mut e = engine(0, &keys, &c, Recovered::default());
        feed(&mut e, Time::ZERO, Input::Start, &mut store);
        feed(
            &mut e,
            Time(1),
            Input::Submit(vec![Bytes::from_static(b"a")]),
            &mut store,
        );
        let out = feed(&mut e, Time(2), Input::Timeout(TIMER_BATCH), &mut store);
        let sealed = out
            .iter()
            .find_map(|e| match e {
                Effect::Broadcast {
                    msg: BullsharkMessage::Batch(b),
                } => Some(b.clone()),
                _ => None,
            })
            .expect("sealed");
        let stored = first(
            &out,
            |e| matches!(e, Effect::Persist(Record::Put { value, .. }) if value == sealed.payload()),
        );
        let sent = first(&out, |e| {
            matches!(
                e,
                Effect::Broadcast {
                    msg: BullsharkMessage::Batch(_)
                }
            )
        });
        assert!(stored < sent, "{out:?}");

        // Down before a quorum acknowledged it: the restarted worker sends it again.
        let mut restarted = engine(0, &keys, &c, store.recover(4096).expect("recover"));
        feed(&mut restarted, Time(3), Input::Start, &mut store);
        let out = feed(
            &mut restarted,
            Time::ZERO.after(Duration::from_secs(1)),
            Input::Timeout(TIMER_SYNC),
            &mut store,
        );
        let resent: BTreeSet<NodeId> = out
            .iter()
            .filter_map(|e| match e {
                Effect::Send {
                    to,
                    msg: BullsharkMessage::Batch(b),
                } if *b == sealed => Some(*to),
                _ => None,
            })
            .collect();
        assert_eq!(resent, BTreeSet::from([NodeId(1), NodeId(2), NodeId(3)]));
    }

    #[test]
    fn corrupt_stored_state_is_an_error() {
        let (c, keys) = committee(4);
        let rec = Recovered {
            wal: vec![(
                WalKey {
                    slot: 1,
                    tag: TAG_HEADER,
                },
                Bytes::from_static(b"\xff\xff"),
            )],
            ..Recovered::default()
        };
        let err = BullsharkEngine::new(keys[0].clone(), c, BullsharkConfig::default(), rec);
        assert!(matches!(err, Err(BullsharkError::Corrupt(_))));
    }
}
