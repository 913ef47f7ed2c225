//! The node driver: runs any [`Engine`] on its own thread, feeds it messages,
//! timers and transactions, and carries out its effects in order. Every `Persist`
//! is made durable before any later message leaves and before any commit is
//! published.
//!
//! Writes are grouped: the inputs already waiting in the inbox (up to
//! [`MAX_GROUP`]) are handled one after another, and their records go to the store
//! in one transaction (one fsync). A message that follows a record waits for that
//! transaction; a message that follows none leaves at once. Holding a message back
//! is always allowed (the network could have delayed it), so a record written
//! earlier than the message before it changes nothing a crash could reveal. A
//! `Commit` is a barrier: the records before it are durable, and the messages
//! before it sent, before it is appended to the log.
//!
//! After every input it also collects the engine's [`ProposalCommitted`] samples:
//! they feed the commit-latency histogram and, converted to wall-clock
//! [`Instant`]s, a benchmark that asked for them ([`Driver::with_proposal_samples`]).

use crate::metrics::{DriverMetrics, UNDECODABLE};
use bytes::Bytes;
use dwcp_core::codec::{decode, encode};
use dwcp_core::storage::{Storage, StorageError};
use dwcp_core::{
    Committed, Committee, Effect, Effects, Engine, EngineStatus, Input, MessageKind, NodeId,
    ProposalCommitted, Record, Seq, Time, TimerId,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TrySendError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Where encoded messages go. Implementations must not block for long: queue the
/// frame and return (a slow peer is the transport's problem, not the engine's).
pub trait Transport: Send {
    /// Queues `frame` for member `to`.
    fn send(&self, to: NodeId, frame: Bytes);
}

/// What reaches a driver from outside.
#[derive(Debug)]
pub enum DriverInput {
    /// An authenticated frame from a committee member, not yet decoded.
    Frame {
        /// The member the channel belongs to.
        from: NodeId,
        /// The encoded engine message.
        frame: Bytes,
    },
    /// A large frame (a batch of transactions, say) admitted by the inbox's
    /// [`crate::admission::SubmitGate`] for bulk bytes; the permit returns its bytes
    /// once the driver takes it. Bounding the bulk bytes waiting bounds how long a
    /// small consensus message can wait behind them.
    Bulk {
        /// The member the channel belongs to.
        from: NodeId,
        /// The encoded engine message.
        frame: Bytes,
        /// Its place under the inbox's bulk cap.
        permit: crate::admission::Permit,
    },
    /// Client transactions.
    Submit(Vec<Bytes>),
    /// Client transactions admitted by a [`crate::admission::SubmitGate`]; the
    /// permit returns their bytes to the gate once the driver takes them.
    Admitted(Vec<Bytes>, crate::admission::Permit),
    /// Stop after the current input.
    Shutdown,
}

/// Why a driver stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The store refused a write: continuing could break what the node signed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
}

/// Counters a driver keeps about its traffic.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DriverStats {
    /// Frames received and decoded.
    pub frames_in: u64,
    /// Frames that failed to decode (dropped).
    pub frames_rejected: u64,
    /// Frames handed to the transport (a broadcast counts once per peer).
    pub frames_out: u64,
    /// Bytes handed to the transport.
    pub bytes_out: u64,
    /// Batches committed.
    pub commits: u64,
    /// Storage transactions.
    pub persists: u64,
}

/// A [`ProposalCommitted`] sample on the wall clock of the driver's process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProposalSample {
    /// The node whose engine made the proposal.
    pub node: NodeId,
    /// When the engine made the proposal.
    pub proposed: Instant,
    /// When the engine committed it.
    pub committed: Instant,
    /// Transactions the proposal carried.
    pub transactions: u64,
}

/// Runs one engine for one node.
pub struct Driver<E: Engine, S: Storage> {
    id: NodeId,
    committee: Committee,
    engine: E,
    store: S,
    epoch: Instant,
    timers: HashMap<TimerId, Instant>,
    max_frame: usize,
    fx: Effects<E::Message>,
    /// Records of the current group not yet written.
    unsaved: Vec<Record>,
    /// Messages of the current group waiting for `unsaved` to be written.
    unsent: Vec<Effect<E::Message>>,
    stats: DriverStats,
    status: Option<Arc<std::sync::Mutex<EngineStatus>>>,
    metrics: Option<DriverMetrics>,
    samples: Vec<ProposalCommitted>,
    /// Store reads the engine asked for, answered once the effects that asked ran.
    reads: Vec<(Seq, Vec<Committed>)>,
    sample_sink: Option<Sender<ProposalSample>>,
}

impl<E: Engine, S: Storage> Driver<E, S>
where
    E::Message: MessageKind,
{
    /// A driver for `engine` (already rebuilt from `store`) as member `id`.
    pub fn new(id: NodeId, committee: Committee, engine: E, store: S, max_frame: usize) -> Self {
        Driver {
            id,
            committee,
            engine,
            store,
            epoch: Instant::now(),
            timers: HashMap::new(),
            max_frame,
            fx: Effects::new(),
            unsaved: Vec::new(),
            unsent: Vec::new(),
            stats: DriverStats::default(),
            status: None,
            metrics: None,
            samples: Vec::new(),
            reads: Vec::new(),
            sample_sink: None,
        }
    }

    /// Updates `metrics` (commit latency, traffic by message type) as it runs.
    pub fn with_metrics(mut self, metrics: DriverMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Sends every [`ProposalCommitted`] sample of the engine to `sink`, on the wall
    /// clock. A sink nobody reads any more is dropped silently.
    pub fn with_proposal_samples(mut self, sink: Sender<ProposalSample>) -> Self {
        self.sample_sink = Some(sink);
        self
    }

    /// The wall-clock instant of engine time `t` (engine time counts from the
    /// driver's creation).
    pub fn instant_of(&self, t: Time) -> Instant {
        self.epoch + Duration::from_micros(t.0)
    }

    /// Publishes the engine's status to `sink` after every input.
    pub fn with_status(mut self, sink: Arc<std::sync::Mutex<EngineStatus>>) -> Self {
        self.status = Some(sink);
        self
    }

    /// Traffic counters so far.
    pub fn stats(&self) -> &DriverStats {
        &self.stats
    }

    /// The engine.
    pub fn engine(&self) -> &E {
        &self.engine
    }

    fn now(&self) -> Time {
        Time(self.epoch.elapsed().as_micros() as u64)
    }

    /// Feeds one input and carries out the effects, every record written before
    /// it returns.
    pub fn step(
        &mut self,
        input: Input<E::Message>,
        transport: &dyn Transport,
        commits: &Sender<Committed>,
    ) -> Result<(), DriverError> {
        self.feed(input, transport, commits)?;
        self.end_group(transport)
    }

    /// Feeds one input of a group and carries out what of its effects need not
    /// wait for the group's write.
    fn feed(
        &mut self,
        input: Input<E::Message>,
        transport: &dyn Transport,
        commits: &Sender<Committed>,
    ) -> Result<(), DriverError> {
        let now = self.now();
        let mut fx = std::mem::take(&mut self.fx);
        self.engine.handle(now, input, &mut fx);
        let mut result = self.apply(&mut fx, transport, commits);
        while result.is_ok() && !self.reads.is_empty() {
            for (from, batches) in std::mem::take(&mut self.reads) {
                self.engine
                    .handle(now, Input::StoredCommitted { from, batches }, &mut fx);
                result = self.apply(&mut fx, transport, commits);
                if result.is_err() {
                    break;
                }
            }
        }
        self.fx = fx;
        self.collect_samples();
        if let Some(sink) = &self.status {
            if let Ok(mut st) = sink.lock() {
                *st = self.engine.status();
            }
        }
        result
    }

    /// Writes the group's records in one transaction, then sends what waited for them.
    fn end_group(&mut self, transport: &dyn Transport) -> Result<(), DriverError> {
        self.flush()?;
        self.send_waiting(transport);
        Ok(())
    }

    fn collect_samples(&mut self) {
        // The buffer is taken out and put back to keep its allocation.
        let mut samples = std::mem::take(&mut self.samples);
        self.engine.drain_proposal_commits(&mut samples);
        for s in samples.drain(..) {
            if let Some(m) = &self.metrics {
                m.observe_commit_latency(s.committed.since(s.proposed).as_secs_f64());
            }
            if let Some(sink) = &self.sample_sink {
                let sample = ProposalSample {
                    node: self.id,
                    proposed: self.instant_of(s.proposed),
                    committed: self.instant_of(s.committed),
                    transactions: s.transactions,
                };
                if sink.send(sample).is_err() {
                    self.sample_sink = None;
                }
            }
        }
        self.samples = samples;
    }

    fn apply(
        &mut self,
        fx: &mut Effects<E::Message>,
        transport: &dyn Transport,
        commits: &Sender<Committed>,
    ) -> Result<(), DriverError> {
        // Consecutive commits (a catch-up executes dozens in one input) share one
        // write of the log; anything after them waits for it, as after one commit.
        let mut due: Vec<Committed> = Vec::new();
        for effect in fx.drain() {
            if !matches!(effect, Effect::Commit(_)) {
                self.write_commits(&mut due, commits)?;
            }
            match effect {
                Effect::Persist(r) => self.unsaved.push(r),
                e @ (Effect::Send { .. } | Effect::Broadcast { .. }) => {
                    if self.unsaved.is_empty() && self.unsent.is_empty() {
                        self.transmit(e, transport);
                    } else {
                        // Behind a record not yet written (or a message waiting
                        // for one): in order, after the group's write.
                        self.unsent.push(e);
                    }
                }
                Effect::SetTimer { id, after } => {
                    self.timers.insert(id, Instant::now() + after);
                }
                Effect::CancelTimer(id) => {
                    self.timers.remove(&id);
                }
                Effect::ReadCommitted { from, limit } => {
                    // Commits before it are written: it reads what they wrote.
                    let batches = self.store.committed(from, limit)?;
                    self.reads.push((from, batches));
                }
                Effect::Commit(c) => {
                    if due.is_empty() {
                        // Records and messages before a commit go first.
                        self.end_group(transport)?;
                    }
                    due.push(c);
                }
            }
        }
        self.write_commits(&mut due, commits)
    }

    /// Appends `due` to the committed log in one write, then hands the batches to
    /// the application.
    fn write_commits(
        &mut self,
        due: &mut Vec<Committed>,
        commits: &Sender<Committed>,
    ) -> Result<(), DriverError> {
        if due.is_empty() {
            return Ok(());
        }
        self.store.append_committed(due)?;
        self.stats.commits += due.len() as u64;
        for c in due.drain(..) {
            // The application may have stopped listening; the log is on disk.
            let _ = commits.send(c);
        }
        Ok(())
    }

    fn transmit(&mut self, effect: Effect<E::Message>, transport: &dyn Transport) {
        match effect {
            Effect::Send { to, msg } => {
                let frame = Bytes::from(encode(&msg));
                self.stats.frames_out += 1;
                self.stats.bytes_out += frame.len() as u64;
                if let Some(m) = &self.metrics {
                    m.on_sent(msg.kind(), frame.len(), 1);
                }
                transport.send(to, frame);
            }
            Effect::Broadcast { msg } => {
                let frame = Bytes::from(encode(&msg));
                let mut copies = 0;
                for to in self.committee.ids().filter(|p| *p != self.id) {
                    copies += 1;
                    transport.send(to, frame.clone());
                }
                self.stats.frames_out += copies;
                self.stats.bytes_out += frame.len() as u64 * copies;
                if let Some(m) = &self.metrics {
                    m.on_sent(msg.kind(), frame.len(), copies);
                }
            }
            _ => {}
        }
    }

    fn send_waiting(&mut self, transport: &dyn Transport) {
        let mut waiting = std::mem::take(&mut self.unsent);
        for e in waiting.drain(..) {
            self.transmit(e, transport);
        }
        // The buffer is put back to keep its allocation.
        self.unsent = waiting;
    }

    fn flush(&mut self) -> Result<(), DriverError> {
        if !self.unsaved.is_empty() {
            self.store.apply(&self.unsaved)?;
            self.stats.persists += 1;
            self.unsaved.clear();
        }
        Ok(())
    }

    fn next_deadline(&self) -> Option<(TimerId, Instant)> {
        self.timers
            .iter()
            .min_by_key(|(_, at)| **at)
            .map(|(id, at)| (*id, *at))
    }

    /// Decodes a member's frame and feeds it to the engine, as part of a group.
    fn on_frame(
        &mut self,
        from: NodeId,
        frame: &[u8],
        transport: &dyn Transport,
        commits: &Sender<Committed>,
    ) -> Result<(), DriverError> {
        if !self.committee.contains(from) {
            return Ok(());
        }
        match decode::<E::Message>(frame, self.max_frame) {
            Ok(msg) => {
                self.stats.frames_in += 1;
                if let Some(m) = &self.metrics {
                    m.on_received(msg.kind(), frame.len());
                }
                self.feed(Input::Message { from, msg }, transport, commits)?;
            }
            Err(_) => {
                self.stats.frames_rejected += 1;
                if let Some(m) = &self.metrics {
                    m.on_received(UNDECODABLE, frame.len());
                }
            }
        }
        Ok(())
    }

    /// Runs until [`DriverInput::Shutdown`] or until every sender of `inbox` is gone.
    ///
    /// Inputs are taken in three lanes: small frames from peers (headers, votes,
    /// certificates, acknowledgements, requests) first, then large frames from
    /// peers (batches), then client submissions (and the shutdown behind them).
    /// A consensus message so waits for the one input being handled, not for every
    /// batch queued before it; and a node short of time serves its peers before
    /// taking new transactions, which then wait at the admission gate and are
    /// refused there, before any work is spent on them. Within a lane the order is
    /// kept.
    pub fn run(
        mut self,
        inbox: &Receiver<DriverInput>,
        transport: &dyn Transport,
        commits: &Sender<Committed>,
    ) -> Result<Self, DriverError> {
        self.step(Input::Start, transport, commits)?;
        let mut lanes = Lanes::default();
        loop {
            let wait = match self.next_deadline() {
                Some((id, at)) => {
                    let now = Instant::now();
                    if at <= now {
                        self.timers.remove(&id);
                        self.step(Input::Timeout(id), transport, commits)?;
                        continue;
                    }
                    at - now
                }
                None => Duration::from_secs(3600),
            };
            let next = match lanes.next(inbox) {
                Some(input) => input,
                None => match inbox.recv_timeout(wait) {
                    Ok(input) => input,
                    Err(RecvTimeoutError::Disconnected) => return Ok(self),
                    Err(RecvTimeoutError::Timeout) => continue,
                },
            };
            // A group: this input and those already waiting behind it, then one write.
            let started = Instant::now();
            let mut stop = self.take(next, transport, commits)?;
            let mut taken = 1;
            while !stop && taken < MAX_GROUP && started.elapsed() < MAX_GROUP_TIME {
                let Some(input) = lanes.next(inbox) else {
                    break;
                };
                stop = self.take(input, transport, commits)?;
                taken += 1;
            }
            self.end_group(transport)?;
            if stop {
                return Ok(self);
            }
        }
    }

    /// Feeds one input from the inbox into the current group; `true` means stop.
    fn take(
        &mut self,
        input: DriverInput,
        transport: &dyn Transport,
        commits: &Sender<Committed>,
    ) -> Result<bool, DriverError> {
        match input {
            DriverInput::Frame { from, frame } => {
                self.on_frame(from, &frame, transport, commits)?
            }
            DriverInput::Bulk {
                from,
                frame,
                permit,
            } => {
                drop(permit);
                self.on_frame(from, &frame, transport, commits)?
            }
            DriverInput::Submit(txs) => self.feed(Input::Submit(txs), transport, commits)?,
            DriverInput::Admitted(txs, permit) => {
                drop(permit);
                self.feed(Input::Submit(txs), transport, commits)?
            }
            DriverInput::Shutdown => return Ok(true),
        }
        Ok(false)
    }
}

/// Most inputs a driver handles before writing their records in one transaction.
/// Only inputs already waiting are grouped: an idle node writes after each one.
pub const MAX_GROUP: usize = 64;

/// Longest a driver keeps taking inputs into one group: a message held back for
/// the group's write waits at most about this long plus the write (an fsync is
/// about 0.5 ms on this project's machine, so longer groups save little more).
pub const MAX_GROUP_TIME: Duration = Duration::from_millis(2);

/// Inputs taken from a driver's inbox, sorted into lanes by priority: small
/// frames, large frames, client submissions. Each lane holds at most [`LANE_CAP`]
/// inputs; past that they stay in the bounded inbox, whose senders then see it full.
#[derive(Default)]
struct Lanes {
    control: std::collections::VecDeque<DriverInput>,
    bulk: std::collections::VecDeque<DriverInput>,
    clients: std::collections::VecDeque<DriverInput>,
}

/// Most inputs held in one lane of a driver.
const LANE_CAP: usize = 4_096;

impl Lanes {
    /// Moves what waits in `inbox` into the lanes, then takes the first input of
    /// the first lane that has one.
    fn next(&mut self, inbox: &Receiver<DriverInput>) -> Option<DriverInput> {
        while self.control.len() < LANE_CAP
            && self.bulk.len() < LANE_CAP
            && self.clients.len() < LANE_CAP
        {
            let Ok(input) = inbox.try_recv() else {
                break;
            };
            match input {
                DriverInput::Frame { .. } => self.control.push_back(input),
                DriverInput::Bulk { .. } => self.bulk.push_back(input),
                DriverInput::Submit(_) | DriverInput::Admitted(..) | DriverInput::Shutdown => {
                    self.clients.push_back(input)
                }
            }
        }
        self.control
            .pop_front()
            .or_else(|| self.bulk.pop_front())
            .or_else(|| self.clients.pop_front())
    }
}

/// The in-process network: one bounded inbox per member. Replacing an inbox (a
/// restarted node) is seen by every transport at once, as a reconnect would be.
#[derive(Clone, Default)]
pub struct LocalNetwork {
    inboxes: Arc<RwLock<Vec<FrameSink>>>,
    dropped: Arc<AtomicU64>,
}

impl LocalNetwork {
    /// A network over these inboxes, indexed by member id.
    pub fn new(inboxes: Vec<SyncSender<DriverInput>>) -> Self {
        LocalNetwork {
            inboxes: Arc::new(RwLock::new(
                inboxes.into_iter().map(FrameSink::new).collect(),
            )),
            dropped: Default::default(),
        }
    }

    /// Points member `id`'s traffic at a new inbox.
    pub fn replace(&self, id: NodeId, inbox: SyncSender<DriverInput>) {
        if let Ok(mut v) = self.inboxes.write() {
            if let Some(slot) = v.get_mut(id.index()) {
                *slot = FrameSink::new(inbox);
            }
        }
    }

    /// Member `id`'s inbox, to submit transactions or stop it.
    pub fn inbox(&self, id: NodeId) -> Option<SyncSender<DriverInput>> {
        self.sink(id).map(|s| s.inbox)
    }

    fn sink(&self, id: NodeId) -> Option<FrameSink> {
        self.inboxes.read().ok()?.get(id.index()).cloned()
    }

    /// The transport member `from` sends through.
    pub fn transport(&self, from: NodeId) -> LocalTransport {
        LocalTransport {
            from,
            network: self.clone(),
        }
    }

    /// Frames dropped because an inbox was full or closed.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// What became of a frame handed to a [`FrameSink`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// It waits in the inbox.
    Queued,
    /// The inbox, or its allowance of large frames, was full: dropped.
    Dropped,
    /// The driver is gone.
    Closed,
}

/// Where a transport hands a node's incoming frames: the driver's inbox, and the
/// cap on bytes of large frames waiting in it ([`crate::admission::BULK_BYTES`]),
/// so that a small consensus message never queues behind more than that.
#[derive(Clone, Debug)]
pub struct FrameSink {
    inbox: SyncSender<DriverInput>,
    bulk: Arc<crate::admission::SubmitGate>,
}

impl FrameSink {
    /// A sink into `inbox`.
    pub fn new(inbox: SyncSender<DriverInput>) -> FrameSink {
        FrameSink {
            inbox,
            bulk: crate::admission::SubmitGate::new(crate::admission::BULK_BYTES),
        }
    }

    /// Queues `frame` from `from` without blocking, or drops it.
    pub fn deliver(&self, from: NodeId, frame: Bytes) -> Delivery {
        let input = if frame.len() >= crate::admission::BULK_FRAME {
            let Some(permit) = self.bulk.try_admit_bytes(frame.len()) else {
                return Delivery::Dropped;
            };
            DriverInput::Bulk {
                from,
                frame,
                permit,
            }
        } else {
            DriverInput::Frame { from, frame }
        };
        match self.inbox.try_send(input) {
            Ok(()) => Delivery::Queued,
            Err(TrySendError::Full(_)) => Delivery::Dropped,
            Err(TrySendError::Disconnected(_)) => Delivery::Closed,
        }
    }
}

/// Member `from`'s side of a [`LocalNetwork`]. A full inbox drops the frame (and
/// counts it), as a congested link would; the engines retransmit.
#[derive(Clone)]
pub struct LocalTransport {
    from: NodeId,
    network: LocalNetwork,
}

impl Transport for LocalTransport {
    fn send(&self, to: NodeId, frame: Bytes) {
        let Some(peer) = self.network.sink(to) else {
            return;
        };
        if peer.deliver(self.from, frame) != Delivery::Queued {
            self.network.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dwcp_consensus::pbft::{Pbft, PbftConfig};
    use dwcp_core::crypto::SignatureScheme;
    use dwcp_core::storage::RedbStore;
    use dwcp_core::NodeKeys;
    use std::sync::mpsc::{channel, sync_channel};
    use std::thread;

    const MAX_FRAME: usize = 16 << 20;

    /// What a test may attach to a driver.
    #[derive(Default)]
    struct Probes {
        metrics: Option<DriverMetrics>,
        samples: Option<Sender<ProposalSample>>,
    }

    fn spawn(
        keys: NodeKeys,
        committee: Committee,
        path: std::path::PathBuf,
        inbox: Receiver<DriverInput>,
        transport: LocalTransport,
        commits: Sender<Committed>,
        probes: Probes,
    ) -> thread::JoinHandle<()> {
        thread::spawn(move || {
            let store = RedbStore::open(&path).expect("open store");
            let recovered = store.recover(4096).expect("recover");
            let id = keys.id;
            let cfg = PbftConfig {
                tick: Duration::from_millis(20),
                view_change_timeout: Duration::from_millis(500),
                ..PbftConfig::default()
            };
            let engine = Pbft::new(keys, committee.clone(), cfg, recovered).expect("engine");
            let mut driver = Driver::new(id, committee, engine, store, MAX_FRAME);
            if let Some(m) = probes.metrics {
                driver = driver.with_metrics(m);
            }
            if let Some(s) = probes.samples {
                driver = driver.with_proposal_samples(s);
            }
            driver.run(&inbox, &transport, &commits).expect("driver");
        })
    }

    fn txs(from: u32, count: u32) -> Vec<Bytes> {
        (from..from + count)
            .map(|k| Bytes::from(format!("tx-{k:08}")))
            .collect()
    }

    /// Collects commits from one node until it has seen every transaction in `want`.
    fn wait_for(rx: &Receiver<Committed>, log: &mut Vec<Committed>, want: u32) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while log.iter().map(|c| c.transactions.len() as u32).sum::<u32>() < want {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(c) => log.push(c),
                Err(e) => panic!("waiting for {want} transactions: {e}; have {}", log.len()),
            }
        }
    }

    #[test]
    fn peers_small_frames_go_first_then_batches_then_clients() {
        let (tx, rx) = std::sync::mpsc::sync_channel(16);
        let sink = FrameSink::new(tx.clone());
        let gate = crate::admission::SubmitGate::new(1 << 20);
        let big = Bytes::from(vec![7u8; crate::admission::BULK_FRAME]);
        let txs = vec![Bytes::from_static(b"tx")];
        tx.send(DriverInput::Submit(txs.clone())).unwrap();
        assert_eq!(sink.deliver(NodeId(1), big.clone()), Delivery::Queued);
        let permit = gate.try_admit(&txs).unwrap();
        tx.send(DriverInput::Admitted(txs.clone(), permit)).unwrap();
        assert_eq!(
            sink.deliver(NodeId(2), Bytes::from_static(b"vote")),
            Delivery::Queued
        );
        tx.send(DriverInput::Shutdown).unwrap();
        assert_eq!(
            sink.deliver(NodeId(3), Bytes::from_static(b"ack")),
            Delivery::Queued
        );
        let mut lanes = Lanes::default();
        let order: Vec<String> = std::iter::from_fn(|| lanes.next(&rx))
            .map(|i| match i {
                DriverInput::Frame { from, .. } => format!("frame {from}"),
                DriverInput::Bulk { from, .. } => format!("bulk {from}"),
                DriverInput::Submit(_) => "submit".into(),
                DriverInput::Admitted(..) => "admitted".into(),
                DriverInput::Shutdown => "shutdown".into(),
            })
            .collect();
        assert_eq!(
            order,
            ["frame n2", "frame n3", "bulk n1", "submit", "admitted", "shutdown"]
        );
        // The admitted bytes went back to the gate when the input was taken.
        assert_eq!(gate.queued(), 0);
    }

    #[test]
    fn large_frames_past_the_bulk_cap_are_dropped_small_ones_still_pass() {
        let (tx, _rx) = std::sync::mpsc::sync_channel(1024);
        let sink = FrameSink::new(tx);
        let big = Bytes::from(vec![7u8; 1 << 20]);
        let fit = crate::admission::BULK_BYTES >> 20;
        for _ in 0..fit {
            assert_eq!(sink.deliver(NodeId(1), big.clone()), Delivery::Queued);
        }
        assert_eq!(sink.deliver(NodeId(1), big), Delivery::Dropped);
        assert_eq!(
            sink.deliver(NodeId(1), Bytes::from_static(b"vote")),
            Delivery::Queued
        );
    }

    #[test]
    fn four_drivers_agree_then_a_restarted_node_catches_up_from_redb() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (committee, keys) = Committee::deterministic(4, SignatureScheme::Ed25519, 11);
        let mut inboxes = Vec::new();
        let mut senders = Vec::new();
        for _ in 0..4 {
            let (tx, rx) = sync_channel(10_000);
            senders.push(tx);
            inboxes.push(Some(rx));
        }
        let net = LocalNetwork::new(senders);
        let mut commit_rx = Vec::new();
        let mut handles = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let (ctx, crx) = channel();
            commit_rx.push(crx);
            let inbox = inboxes[i].take().expect("inbox");
            let path = dir.path().join(format!("n{i}.redb"));
            handles.push(Some(spawn(
                k.clone(),
                committee.clone(),
                path,
                inbox,
                net.transport(k.id),
                ctx,
                Probes::default(),
            )));
        }
        let submit = |ids: &[usize], batch: Vec<Bytes>| {
            for i in ids {
                let inbox = net.inbox(NodeId(*i as u16)).expect("inbox");
                inbox
                    .send(DriverInput::Submit(batch.clone()))
                    .expect("submit");
            }
        };
        // Clients send to every replica.
        submit(&[0, 1, 2, 3], txs(0, 200));
        let mut logs: Vec<Vec<Committed>> = vec![Vec::new(); 4];
        for i in 0..4 {
            wait_for(&commit_rx[i], &mut logs[i], 200);
        }
        for i in 1..4 {
            assert_eq!(logs[i], logs[0], "node {i} diverged");
        }

        // Stop node 3 (its thread ends, its store stays); the rest keep committing.
        net.inbox(NodeId(3))
            .expect("inbox")
            .send(DriverInput::Shutdown)
            .expect("shutdown");
        handles[3].take().expect("handle").join().expect("join");
        let before = logs[3].last().map(|c| c.seq).unwrap_or(0);
        submit(&[0, 1, 2], txs(200, 100));
        for i in 0..3 {
            wait_for(&commit_rx[i], &mut logs[i], 300);
        }

        // Restart node 3 from its redb file: it fetches exactly what it missed.
        let (tx3, rx3) = sync_channel(10_000);
        net.replace(NodeId(3), tx3);
        let (ctx, crx) = channel();
        let path = dir.path().join("n3.redb");
        handles[3] = Some(spawn(
            keys[3].clone(),
            committee.clone(),
            path,
            rx3,
            net.transport(NodeId(3)),
            ctx,
            Probes::default(),
        ));
        let mut caught_up = Vec::new();
        wait_for(&crx, &mut caught_up, 100);
        assert_eq!(
            caught_up.first().map(|c| c.seq),
            Some(before + 1),
            "must resume right after its last commit"
        );
        for c in &caught_up {
            let same = logs[0]
                .iter()
                .find(|x| x.seq == c.seq)
                .expect("seq known to node 0");
            assert_eq!(c, same, "restarted node diverged at seq {}", c.seq);
        }

        for i in 0..4 {
            let _ = net
                .inbox(NodeId(i))
                .expect("inbox")
                .send(DriverInput::Shutdown);
        }
        for h in handles.into_iter().flatten() {
            h.join().expect("join");
        }
    }

    #[test]
    fn the_primarys_driver_reports_proposal_samples_and_counts_traffic_by_type() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (committee, keys) = Committee::deterministic(4, SignatureScheme::Ed25519, 12);
        let metrics = crate::metrics::Metrics::new("pbft", NodeId(0));
        let (sample_tx, sample_rx) = channel();
        let mut senders = Vec::new();
        let mut receivers = Vec::new();
        for _ in 0..4 {
            let (tx, rx) = sync_channel(10_000);
            senders.push(tx);
            receivers.push(rx);
        }
        let net = LocalNetwork::new(senders);
        let mut commit_rx = Vec::new();
        let mut handles = Vec::new();
        for (k, inbox) in keys.iter().zip(receivers) {
            let (ctx, crx) = channel();
            commit_rx.push(crx);
            let probes = if k.id == NodeId(0) {
                Probes {
                    metrics: Some(metrics.driver()),
                    samples: Some(sample_tx.clone()),
                }
            } else {
                Probes::default()
            };
            let path = dir.path().join(format!("n{}.redb", k.id.0));
            handles.push(spawn(
                k.clone(),
                committee.clone(),
                path,
                inbox,
                net.transport(k.id),
                ctx,
                probes,
            ));
        }
        drop(sample_tx);
        let before = Instant::now();
        net.inbox(NodeId(0))
            .expect("inbox")
            .send(DriverInput::Submit(txs(0, 50)))
            .expect("submit");
        let mut log = Vec::new();
        wait_for(&commit_rx[0], &mut log, 50);
        for i in 0..4 {
            let _ = net
                .inbox(NodeId(i))
                .expect("inbox")
                .send(DriverInput::Shutdown);
        }
        for h in handles {
            h.join().expect("join");
        }

        let samples: Vec<ProposalSample> = sample_rx.iter().collect();
        assert!(!samples.is_empty(), "node 0 is the primary of view 0");
        assert_eq!(samples.iter().map(|s| s.transactions).sum::<u64>(), 50);
        for s in &samples {
            assert_eq!(s.node, NodeId(0));
            assert!(s.proposed >= before && s.committed >= s.proposed, "{s:?}");
        }
        let text = metrics.render(
            &EngineStatus::default(),
            &crate::net::transport::TransportStats::default(),
            &[],
            &[],
            &[],
        );
        let count = format!(
            "dwcp_consensus_commit_latency_seconds_count{{engine=\"pbft\",node=\"0\"}} {}",
            samples.len()
        );
        assert!(text.contains(&count), "{text}");
        // The primary sends pre-prepares and commits; it receives prepares and commits.
        let series = |dir: &str, kind: &str| {
            format!("dwcp_{dir}_total{{engine=\"pbft\",node=\"0\",type=\"{kind}\"}} ")
        };
        for (dir, kind) in [
            ("messages_sent", "pre_prepare"),
            ("message_bytes_sent", "pre_prepare"),
            ("messages_sent", "commit"),
            ("messages_received", "prepare"),
            ("message_bytes_received", "commit"),
        ] {
            assert!(text.contains(&series(dir, kind)), "{dir} {kind}: {text}");
        }
        assert!(
            !text.contains(&series("messages_sent", "prepare")),
            "a primary sends no prepares: {text}"
        );
    }

    /// An engine that stores a record for each message, then answers it.
    struct Echo;

    #[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
    struct Ping(u64);

    impl MessageKind for Ping {
        fn kind(&self) -> &'static str {
            "ping"
        }
    }

    impl Engine for Echo {
        type Message = Ping;
        fn handle(&mut self, _now: Time, input: Input<Ping>, fx: &mut Effects<Ping>) {
            if let Input::Message { from, msg } = input {
                fx.persist(Record::Put {
                    key: dwcp_core::WalKey {
                        slot: msg.0,
                        tag: 0,
                    },
                    value: Bytes::new(),
                });
                fx.send(from, msg);
            }
        }
        fn status(&self) -> EngineStatus {
            EngineStatus::default()
        }
    }

    /// A store that counts its write transactions and notes the slots written
    /// (and the sequence numbers of the committed log).
    struct Counting {
        writes: Arc<AtomicU64>,
        appends: Arc<AtomicU64>,
        written: Arc<std::sync::Mutex<Vec<u64>>>,
        inner: dwcp_core::storage::MemoryStore,
    }

    impl Storage for Counting {
        fn apply(&mut self, records: &[Record]) -> Result<(), StorageError> {
            self.writes.fetch_add(1, Ordering::SeqCst);
            let mut written = self.written.lock().expect("lock");
            for r in records {
                if let Record::Put { key, .. } = r {
                    written.push(key.slot);
                }
            }
            self.inner.apply(records)
        }
        fn append_committed(&mut self, batches: &[Committed]) -> Result<(), StorageError> {
            self.appends.fetch_add(1, Ordering::SeqCst);
            let mut written = self.written.lock().expect("lock");
            written.extend(batches.iter().map(|b| b.seq));
            self.inner.append_committed(batches)
        }
        fn committed(&self, from: u64, limit: usize) -> Result<Vec<Committed>, StorageError> {
            self.inner.committed(from, limit)
        }
        fn last_committed(&self) -> Result<u64, StorageError> {
            self.inner.last_committed()
        }
        fn recover(&self, tail: usize) -> Result<dwcp_core::Recovered, StorageError> {
            self.inner.recover(tail)
        }
    }

    /// A transport that notes, for each answer, whether its record was written.
    struct Watch {
        written: Arc<std::sync::Mutex<Vec<u64>>>,
        seen: std::sync::Mutex<Vec<(u64, bool)>>,
    }

    impl Transport for Watch {
        fn send(&self, _to: NodeId, frame: Bytes) {
            let Ping(i) = decode(&frame, MAX_FRAME).expect("a ping");
            let stored = self.written.lock().expect("lock").contains(&i);
            self.seen.lock().expect("lock").push((i, stored));
        }
    }

    #[test]
    fn records_of_waiting_inputs_share_one_write_and_answers_wait_for_it() {
        let (committee, _) = Committee::deterministic(2, SignatureScheme::Ed25519, 3);
        let writes = Arc::new(AtomicU64::new(0));
        let written = Arc::new(std::sync::Mutex::new(Vec::new()));
        let store = Counting {
            writes: writes.clone(),
            appends: Arc::new(AtomicU64::new(0)),
            written: written.clone(),
            inner: dwcp_core::storage::MemoryStore::new(),
        };
        let driver = Driver::new(NodeId(0), committee, Echo, store, MAX_FRAME);
        let (tx, rx) = sync_channel(100);
        for i in 1..=10 {
            tx.send(DriverInput::Frame {
                from: NodeId(1),
                frame: Bytes::from(encode(&Ping(i))),
            })
            .expect("queue");
        }
        tx.send(DriverInput::Shutdown).expect("queue");
        let transport = Watch {
            written,
            seen: std::sync::Mutex::new(Vec::new()),
        };
        let (ctx, _crx) = channel();
        let driver = driver.run(&rx, &transport, &ctx).expect("run");
        assert_eq!(
            *transport.seen.lock().expect("lock"),
            (1..=10).map(|i| (i, true)).collect::<Vec<_>>(),
            "every answer left, in order, after its record was written"
        );
        // Grouping stops after MAX_GROUP_TIME; a thread that lost the CPU for that
        // long may write twice, never ten times.
        assert!(driver.stats().persists < 10, "{:?}", driver.stats());
        assert_eq!(writes.load(Ordering::SeqCst), driver.stats().persists);
        assert_eq!(
            driver.store.recover(0).expect("recover").wal.len(),
            10,
            "every record written"
        );
    }

    /// Commits one batch per submitted transaction, then tells node 1 its height.
    struct Committer(u64);

    impl Engine for Committer {
        type Message = Ping;
        fn handle(&mut self, _now: Time, input: Input<Ping>, fx: &mut Effects<Ping>) {
            if let Input::Submit(txs) = input {
                for tx in txs {
                    self.0 += 1;
                    fx.commit(Committed {
                        seq: self.0,
                        digest: dwcp_core::Digest::of(&tx),
                        transactions: vec![tx],
                    });
                }
                fx.send(NodeId(1), Ping(self.0));
            }
        }
        fn status(&self) -> EngineStatus {
            EngineStatus::default()
        }
    }

    #[test]
    fn consecutive_commits_share_one_write_of_the_log_and_messages_wait_for_it() {
        let (committee, _) = Committee::deterministic(2, SignatureScheme::Ed25519, 3);
        let appends = Arc::new(AtomicU64::new(0));
        let written = Arc::new(std::sync::Mutex::new(Vec::new()));
        let store = Counting {
            writes: Arc::new(AtomicU64::new(0)),
            appends: appends.clone(),
            written: written.clone(),
            inner: dwcp_core::storage::MemoryStore::new(),
        };
        let driver = Driver::new(NodeId(0), committee, Committer(0), store, MAX_FRAME);
        let (tx, rx) = sync_channel(10);
        let txs: Vec<Bytes> = (0..64u32)
            .map(|i| Bytes::from(i.to_le_bytes().to_vec()))
            .collect();
        tx.send(DriverInput::Submit(txs)).expect("queue");
        tx.send(DriverInput::Shutdown).expect("queue");
        let transport = Watch {
            written,
            seen: std::sync::Mutex::new(Vec::new()),
        };
        let (ctx, crx) = channel();
        let driver = driver.run(&rx, &transport, &ctx).expect("run");
        assert_eq!(appends.load(Ordering::SeqCst), 1, "64 commits, one write");
        assert_eq!(
            *transport.seen.lock().expect("lock"),
            vec![(64, true)],
            "the message after the commits left once they were written"
        );
        let delivered: Vec<u64> = crx.try_iter().map(|c| c.seq).collect();
        assert_eq!(
            delivered,
            (1..=64).collect::<Vec<_>>(),
            "in order, once each"
        );
        assert_eq!(driver.stats().commits, 64);
        assert_eq!(driver.store.last_committed().expect("last"), 64);
    }
}
