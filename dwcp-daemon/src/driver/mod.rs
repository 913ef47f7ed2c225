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
//!
//! What crosses the driver's edge (its inbox, the sink transports fill it
//! through, the [`Transport`] its messages leave by) is in [`inbox`]; an in-memory
//! network of drivers in [`local`].

pub mod inbox;
pub mod local;
#[cfg(test)]
mod tests;

use crate::metrics::{DriverMetrics, UNDECODABLE};
use bytes::Bytes;
use dwcp_core::codec::{decode, encode};
use dwcp_core::storage::{Storage, StorageError};
use dwcp_core::{
    Committed, Committee, Effect, Effects, Engine, EngineStatus, Input, MessageKind, NodeId,
    ProposalCommitted, Record, Seq, Time, TimerId,
};
use inbox::{DriverInput, Lanes, Transport};
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
