//! The sans-IO engine contract: inputs in, effects out.
//!
//! An engine is a deterministic state machine. It never blocks, reads a clock,
//! touches a socket or a disk: the driver (the simulator, the daemon, a benchmark
//! harness) feeds it [`Input`]s with the current [`Time`] and carries out the
//! [`Effect`]s it pushes, in order. Every [`Effect::Persist`] must be durable before
//! any later `Send` or `Broadcast` leaves the node.

use crate::{Digest, NodeId, Seq, Time};
use bytes::Bytes;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::borrow::Cow;
use std::fmt::Debug;
use std::time::Duration;

/// An engine-chosen timer name; setting a timer with the same id replaces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TimerId(pub u64);

/// What the driver feeds an engine.
#[derive(Clone, Debug)]
pub enum Input<M> {
    /// A fresh start, or the first input after the engine was rebuilt from storage.
    Start,
    /// A message from a committee member. The driver has authenticated the channel,
    /// so `from` is who sent it; signatures inside `msg` are the engine's to check.
    Message {
        /// The sending member.
        from: NodeId,
        /// The decoded message.
        msg: M,
    },
    /// A timer set earlier with [`Effect::SetTimer`] fired.
    Timeout(TimerId),
    /// Client transactions (opaque bytes), submitted as a batch.
    Submit(Vec<Bytes>),
    /// The answer to [`Effect::ReadCommitted`]: the stored committed batches from
    /// the asked sequence number on, oldest first (empty if the store has none).
    StoredCommitted {
        /// The first sequence number asked for.
        from: Seq,
        /// The batches, at most as many as asked for.
        batches: Vec<Committed>,
    },
}

/// What an engine asks its driver to do.
#[derive(Clone, Debug)]
pub enum Effect<M> {
    /// Send `msg` to one member.
    Send {
        /// The recipient.
        to: NodeId,
        /// The message.
        msg: M,
    },
    /// Send `msg` to every other member.
    Broadcast {
        /// The message.
        msg: M,
    },
    /// Deliver [`Input::Timeout`] after `after`, replacing any timer with this id.
    SetTimer {
        /// The timer.
        id: TimerId,
        /// Delay from now.
        after: Duration,
    },
    /// Forget a timer.
    CancelTimer(TimerId),
    /// Make a record durable before any later message leaves.
    Persist(Record),
    /// Output: the next batch in the total order.
    Commit(Committed),
    /// Read up to `limit` committed batches from `from` on out of the store and
    /// answer with [`Input::StoredCommitted`] (after this call's other effects):
    /// how an engine serves its committed log to a peer beyond what it keeps in
    /// memory.
    ReadCommitted {
        /// First sequence number.
        from: Seq,
        /// Most batches.
        limit: usize,
    },
}

/// The effects of one [`Engine::handle`] call, in the order they must happen.
#[derive(Debug)]
pub struct Effects<M> {
    list: Vec<Effect<M>>,
}

impl<M> Default for Effects<M> {
    fn default() -> Self {
        Effects { list: Vec::new() }
    }
}

impl<M> Effects<M> {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }
    /// Pushes any effect.
    pub fn push(&mut self, e: Effect<M>) {
        self.list.push(e);
    }
    /// Pushes a `Send`.
    pub fn send(&mut self, to: NodeId, msg: M) {
        self.list.push(Effect::Send { to, msg });
    }
    /// Pushes a `Broadcast`.
    pub fn broadcast(&mut self, msg: M) {
        self.list.push(Effect::Broadcast { msg });
    }
    /// Pushes a `SetTimer`.
    pub fn set_timer(&mut self, id: TimerId, after: Duration) {
        self.list.push(Effect::SetTimer { id, after });
    }
    /// Pushes a `CancelTimer`.
    pub fn cancel_timer(&mut self, id: TimerId) {
        self.list.push(Effect::CancelTimer(id));
    }
    /// Pushes a `Persist`.
    pub fn persist(&mut self, r: Record) {
        self.list.push(Effect::Persist(r));
    }
    /// Pushes [`Effect::ReadCommitted`].
    pub fn read_committed(&mut self, from: Seq, limit: usize) {
        self.list.push(Effect::ReadCommitted { from, limit });
    }

    /// Pushes [`Effect::Commit`].
    pub fn commit(&mut self, c: Committed) {
        self.list.push(Effect::Commit(c));
    }
    /// Number of pending effects.
    pub fn len(&self) -> usize {
        self.list.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    /// Takes the effects out in order, leaving the list empty (its allocation is kept).
    pub fn drain(&mut self) -> std::vec::Drain<'_, Effect<M>> {
        self.list.drain(..)
    }
    /// The pending effects.
    pub fn as_slice(&self) -> &[Effect<M>] {
        &self.list
    }
}

/// One batch of the total order, as the application sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    /// Position in the order, from 1, without gaps.
    pub seq: Seq,
    /// Digest of the agreed proposal.
    pub digest: Digest,
    /// The transactions, in order (a proposal may carry none).
    pub transactions: Vec<Bytes>,
}

/// Key of a write-ahead record: an engine-defined `slot` (a sequence number or
/// round, used for pruning) and a `tag` distinguishing records within a slot.
/// Writing a key twice replaces the older value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct WalKey {
    /// Pruning position.
    pub slot: u64,
    /// Record kind within the slot.
    pub tag: u32,
}

/// A stable checkpoint: the engine's own snapshot at a sequence number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Sequence number the snapshot describes.
    pub seq: Seq,
    /// Digest of the state at `seq`.
    pub digest: Digest,
    /// Engine-defined snapshot bytes (for example, the proof that it is stable).
    pub data: Bytes,
}

/// What an engine asks storage to keep.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// Insert or replace a write-ahead record.
    Put {
        /// Its key.
        key: WalKey,
        /// Its engine-encoded value.
        value: Bytes,
    },
    /// Delete write-ahead records whose slot is below this.
    PruneBelow(u64),
    /// Delete one write-ahead record (nothing if there is none).
    Delete(WalKey),
    /// Store a checkpoint; storage keeps the newest and the three before it.
    Checkpoint(Checkpoint),
}

/// What an engine is rebuilt from after a restart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Write-ahead records in key order.
    pub wal: Vec<(WalKey, Bytes)>,
    /// Stored checkpoints, oldest first (at most four).
    pub checkpoints: Vec<Checkpoint>,
    /// The newest committed batches, oldest first.
    pub committed_tail: Vec<Committed>,
}

/// A snapshot of an engine's progress, for status pages and simulation reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineStatus {
    /// The engine's name, such as `"pbft"`.
    pub engine: String,
    /// Current view or round.
    pub view: u64,
    /// Highest committed sequence number.
    pub last_committed: Seq,
    /// View changes (or leader timeouts) this node took part in.
    pub view_changes: u64,
    /// Engine-specific event counts since start, as `(name, count)` with short
    /// `snake_case` names (equivocations seen, transactions dropped, state
    /// transfers, ...): what an operator should see in metrics.
    #[serde(default)]
    pub counters: Vec<(Cow<'static, str>, u64)>,
    /// For an engine that runs among a committee it elects from its nodes (T-PBFT):
    /// the current committee and this node's part in it. `None` for the others.
    #[serde(default)]
    pub committee: Option<CommitteeStatus>,
}

/// The part a node plays in its engine's current committee.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitteeRole {
    /// It votes: one of the committee's members.
    Member,
    /// It follows the committee's certified output without voting.
    Observer,
}

/// An elected committee as a status page shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitteeStatus {
    /// The epoch (the period one committee serves).
    pub epoch: u64,
    /// The committee's members, in id order.
    pub members: Vec<NodeId>,
    /// The members that lead the committee's proposals this epoch, in their order.
    pub primary_group: Vec<NodeId>,
    /// This node's part.
    pub role: CommitteeRole,
    /// Each node's trust score (indexed by node id) in parts per billion of the
    /// total: the scores the engine elects committees by, as of the epoch's start.
    pub trust_ppb: Vec<u64>,
    /// A digest of the exact (fixed-point) trust vector behind `trust_ppb`: equal
    /// on every node that derived bit-identical trust.
    #[serde(default)]
    pub trust_digest: crate::Digest,
}

/// A consensus engine: a deterministic state machine over [`Input`]s and [`Effect`]s.
pub trait Engine {
    /// The engine's message type; the driver encodes it with [`crate::codec`].
    type Message: Serialize + DeserializeOwned + Clone + Debug + Send + 'static;

    /// Feeds one input; pushes what must happen into `fx`. Never blocks, never does I/O.
    fn handle(&mut self, now: Time, input: Input<Self::Message>, fx: &mut Effects<Self::Message>);

    /// Current progress.
    fn status(&self) -> EngineStatus;

    /// Moves out what this node observed about its own proposals reaching the
    /// committed order since the last call: the samples behind consensus latency
    /// (proposal to commit, as Narwhal's benchmark defines it). Drivers call it
    /// after each input; an engine that does not track proposals returns nothing.
    fn drain_proposal_commits(&mut self, out: &mut Vec<ProposalCommitted>) {
        let _ = out;
    }
}

/// The name of a message's type, for per-type traffic metrics (`pre_prepare`,
/// `vote`, `certificate`, ...). Drivers that count traffic by type require it of
/// [`Engine::Message`]; engines implement it with one `match` over their message enum.
///
/// Names are short `snake_case` constants: they become Prometheus label values, so
/// an engine should return a small fixed set.
pub trait MessageKind {
    /// The type of this message.
    fn kind(&self) -> &'static str;
}

/// One of this node's proposals (a PBFT pre-prepare, a Narwhal header) that became
/// part of the committed order, with the engine's clock at both ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProposalCommitted {
    /// When this node made the proposal.
    pub proposed: Time,
    /// When this node committed it.
    pub committed: Time,
    /// Transactions the proposal carried (before dropping repeats).
    pub transactions: u64,
}
