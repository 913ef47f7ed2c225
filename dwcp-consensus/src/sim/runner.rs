//! The discrete-event loop: one seed fixes every delay, loss, crash and attack.
//! Routing and delivery of messages are in [`delivery`].

mod delivery;

use super::adversary::Behaviour;
use super::checker::Checker;
use super::config::{SimConfig, SimReport};
use super::network::Network;
use super::script::{Endpoint, Script, ScriptCtx};
use crate::statement::{Adversarial, Statement};
use bytes::Bytes;
use dwcp_core::codec::encode;
use dwcp_core::storage::{MemoryStore, RedbStore, Storage};
use dwcp_core::{
    Committed, Committee, Effect, Effects, Engine, Input, NodeId, NodeKeys, Recovered, Time,
    TimerId,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::time::Duration;

enum Event {
    Deliver {
        to: NodeId,
        /// One instance of `to`, or `None` for all of them.
        inst: Option<u8>,
        from: NodeId,
        bytes: Bytes,
    },
    Timer {
        node: NodeId,
        inst: u8,
        id: TimerId,
        incarnation: u64,
        stamp: u64,
    },
    Burst,
    Crash(NodeId),
    CrashAll,
    Restart(NodeId),
    Replay(NodeId),
    Wake,
    /// The node goes down (as a crash, without an automatic restart).
    Down(NodeId),
}

struct Scheduled {
    at: Time,
    order: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.order) == (o.at, o.order)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.order).cmp(&(self.at, self.order))
    }
}

struct Node<E: Engine> {
    behaviour: Behaviour,
    instances: [Option<E>; 2],
    store: Box<dyn Storage>,
    up: bool,
    incarnation: u64,
    timers: HashMap<(u8, TimerId), u64>,
    /// Crash at an effect boundary of the next input, drawn once its effects are known.
    crash_pending: bool,
    history: VecDeque<Bytes>,
    /// Last view or round, and slot in it, each instance sent a message of (for
    /// round-based schedules).
    round: [(u64, u64); 2],
}

/// A deterministic simulation of one committee.
pub struct Simulation<E: Engine, F> {
    cfg: SimConfig,
    build: F,
    committee: Committee,
    keys: Vec<NodeKeys>,
    nodes: Vec<Node<E>>,
    queue: BinaryHeap<Scheduled>,
    order: u64,
    now: Time,
    rng: ChaCha8Rng,
    network: Network,
    checker: Checker,
    report: SimReport,
    tx_counter: u64,
    fx: Effects<E::Message>,
    script: Option<Box<dyn Script<E::Message>>>,
    /// Store reads asked for by the effects being carried out, answered after them.
    reads: Vec<(NodeId, u8, dwcp_core::Seq, Vec<Committed>)>,
    /// Nodes a script speaks for.
    controlled: Vec<bool>,
    statements: Vec<Statement>,
}

const MAX_HISTORY: usize = 512;

impl<E, F> Simulation<E, F>
where
    E: Engine,
    E::Message: Adversarial,
    F: FnMut(NodeKeys, Committee, Recovered) -> E,
{
    /// Sets up a run; `build` makes an engine from keys, committee and recovered state.
    pub fn new(cfg: SimConfig, build: F) -> Self {
        let (committee, keys) = Committee::deterministic(cfg.nodes, cfg.scheme, cfg.seed);
        let honest = (0..cfg.nodes)
            .map(|i| {
                cfg.behaviours
                    .get(i)
                    .copied()
                    .unwrap_or(Behaviour::Honest)
                    .is_honest()
            })
            .collect();
        let nodes = (0..cfg.nodes)
            .map(|i| Node {
                behaviour: cfg.behaviours.get(i).copied().unwrap_or(Behaviour::Honest),
                instances: [None, None],
                store: match &cfg.store_dir {
                    None => Box::new(MemoryStore::new()) as Box<dyn Storage>,
                    Some(dir) => Box::new(
                        RedbStore::open(dir.join(format!("node-{i}.redb"))).unwrap_or_else(|e| {
                            panic!("cannot open a store in {}: {e}", dir.display())
                        }),
                    ),
                },
                up: false,
                incarnation: 0,
                timers: HashMap::new(),
                crash_pending: false,
                history: VecDeque::new(),
                round: [(0, 0); 2],
            })
            .collect();
        Simulation {
            rng: ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5eed_d00d),
            network: cfg.network.clone(),
            report: SimReport {
                seed: cfg.seed,
                ..Default::default()
            },
            cfg,
            build,
            committee,
            keys,
            nodes,
            queue: BinaryHeap::new(),
            order: 0,
            now: Time::ZERO,
            checker: Checker::new(honest),
            tx_counter: 0,
            fx: Effects::new(),
            script: None,
            reads: Vec::new(),
            controlled: Vec::new(),
            statements: Vec::new(),
        }
    }

    /// Hands the network schedule and the voices of the [`Behaviour::Scripted`] and
    /// [`Behaviour::Twin`] nodes to `script`.
    pub fn with_script(mut self, script: impl Script<E::Message> + 'static) -> Self {
        self.script = Some(Box::new(script));
        self
    }

    /// Takes `node` down at `from` (a crash at an input boundary) and restarts it from
    /// its store at `until`: an outage of a chosen length, whatever its behaviour.
    pub fn with_outage(mut self, node: NodeId, from: Time, until: Time) -> Self {
        self.schedule(from, Event::Down(node));
        self.schedule(until, Event::Restart(node));
        self
    }

    /// Treats committed transactions for which `is_record` holds as the engine's own
    /// records (T-PBFT's evidence), not client transactions: validity and liveness
    /// skip them; agreement and order still cover them through the log's digests.
    pub fn with_engine_records(mut self, is_record: fn(&[u8]) -> bool) -> Self {
        self.checker.engine_record = Some(is_record);
        self
    }

    /// Wakes the script at `at` (as if it had asked with [`ScriptCtx::wake_at`]).
    pub fn wake_script_at(mut self, at: Time) -> Self {
        self.schedule(at, Event::Wake);
        self
    }

    fn schedule(&mut self, at: Time, event: Event) {
        self.order += 1;
        self.queue.push(Scheduled {
            at,
            order: self.order,
            event,
        });
    }

    fn exp_delay(&mut self, mean: Duration) -> Duration {
        let u: f64 = self.rng.gen_range(1e-6..1.0);
        Duration::from_micros((-u.ln() * mean.as_micros() as f64) as u64 + 1)
    }

    /// Runs to the end and reports.
    pub fn run(mut self) -> SimReport {
        self.controlled = self
            .nodes
            .iter()
            .map(|n| matches!(n.behaviour, Behaviour::Scripted | Behaviour::Twin))
            .collect();
        for i in 0..self.cfg.nodes {
            let id = NodeId(i as u16);
            match self.nodes[i].behaviour {
                Behaviour::Silent => {}
                b => {
                    self.boot(id);
                    if b == Behaviour::Crash {
                        let d = self.exp_delay(self.cfg.crash.mean_uptime);
                        self.schedule(Time::ZERO.after(d), Event::Crash(id));
                    }
                    if b == Behaviour::Replay {
                        self.schedule(
                            Time::ZERO.after(Duration::from_millis(20)),
                            Event::Replay(id),
                        );
                    }
                }
            }
        }
        self.schedule(Time::ZERO, Event::Burst);
        if let Some(at) = self.cfg.crash.crash_all_at {
            self.schedule(at, Event::CrashAll);
        }
        while let Some(s) = self.queue.pop() {
            if s.at > self.cfg.end {
                break;
            }
            self.now = s.at;
            self.report.events += 1;
            self.step(s.event);
        }
        self.finish()
    }

    fn boot(&mut self, id: NodeId) {
        let i = id.index();
        let recovered = self.nodes[i]
            .store
            .recover(self.cfg.restore_tail)
            .unwrap_or_default();
        let twins = self.nodes[i].behaviour.instances();
        for inst in 0..twins {
            let e = (self.build)(
                self.keys[i].clone(),
                self.committee.clone(),
                recovered.clone(),
            );
            self.nodes[i].instances[inst] = Some(e);
        }
        self.nodes[i].up = true;
        self.nodes[i].incarnation += 1;
        self.nodes[i].timers.clear();
        for inst in 0..twins {
            self.input(id, inst as u8, Input::Start);
        }
    }

    fn step(&mut self, event: Event) {
        match event {
            Event::Deliver {
                to,
                inst,
                from,
                bytes,
            } => self.deliver(to, inst, from, bytes),
            Event::Timer {
                node,
                inst,
                id,
                incarnation,
                stamp,
            } => {
                let n = &self.nodes[node.index()];
                if n.up && n.incarnation == incarnation && n.timers.get(&(inst, id)) == Some(&stamp)
                {
                    self.nodes[node.index()].timers.remove(&(inst, id));
                    self.input(node, inst, Input::Timeout(id));
                }
            }
            Event::Burst => self.burst(),
            Event::Crash(id) => {
                if self.nodes[id.index()].up {
                    self.nodes[id.index()].crash_pending = true;
                }
            }
            Event::CrashAll => {
                for i in 0..self.cfg.nodes {
                    if self.nodes[i].up {
                        self.crash(NodeId(i as u16));
                    }
                }
            }
            Event::Restart(id) => {
                self.boot(id);
                if self.nodes[id.index()].behaviour == Behaviour::Crash
                    && self.now < self.cfg.crash.until
                {
                    let d = self.exp_delay(self.cfg.crash.mean_uptime);
                    self.schedule(self.now.after(d), Event::Crash(id));
                }
            }
            Event::Replay(id) => self.replay(id),
            Event::Wake => self.with_script_ctx(|script, ctx| script.wake(ctx)),
            Event::Down(id) => {
                let node = &mut self.nodes[id.index()];
                node.up = false;
                node.instances = [None, None];
                node.timers.clear();
            }
        }
    }

    /// Runs `f` on the script, then carries out what it asked for.
    fn with_script_ctx<R: Default>(
        &mut self,
        f: impl FnOnce(&mut dyn Script<E::Message>, &mut ScriptCtx<'_, E::Message>) -> R,
    ) -> R {
        let Some(mut script) = self.script.take() else {
            return R::default();
        };
        let mut ctx = ScriptCtx {
            now: self.now,
            keys: &self.keys,
            committee: &self.committee,
            controlled: &self.controlled,
            sends: Vec::new(),
            wakes: Vec::new(),
            round: 0,
            slot: 0,
        };
        let r = f(script.as_mut(), &mut ctx);
        let (sends, wakes) = (ctx.sends, ctx.wakes);
        self.script = Some(script);
        for at in wakes {
            self.schedule(at.max(self.now), Event::Wake);
        }
        for (from, to, msg) in sends {
            if to != from {
                self.transmit(from, to, None, Bytes::from(encode(&msg)), Duration::ZERO);
            }
        }
        r
    }

    fn burst(&mut self) {
        let w = self.cfg.workload.clone();
        let mut txs = Vec::with_capacity(w.burst_size);
        for _ in 0..w.burst_size {
            self.tx_counter += 1;
            let mut tx = vec![0u8; w.tx_size.max(16)];
            tx[..8].copy_from_slice(&self.cfg.seed.to_le_bytes());
            tx[8..16].copy_from_slice(&self.tx_counter.to_le_bytes());
            let tx = Bytes::from(tx);
            txs.push(tx);
        }
        // A client whose sends every node refuses (all are down) has submitted nothing.
        if self.nodes.iter().any(|n| n.up) {
            for tx in &txs {
                self.checker.on_submit(tx, self.now);
            }
        }
        for i in 0..self.cfg.nodes {
            let id = NodeId(i as u16);
            if !self.nodes[i].up {
                continue;
            }
            if self.nodes[i].behaviour == Behaviour::Twin {
                for inst in 0..2 {
                    self.input(id, inst, Input::Submit(txs.clone()));
                }
            } else if self.nodes[i].behaviour == Behaviour::Equivocate {
                let (even, odd): (Vec<_>, Vec<_>) = txs
                    .iter()
                    .cloned()
                    .enumerate()
                    .partition(|(k, _)| k % 2 == 0);
                self.input(
                    id,
                    0,
                    Input::Submit(even.into_iter().map(|x| x.1).collect()),
                );
                self.input(id, 1, Input::Submit(odd.into_iter().map(|x| x.1).collect()));
            } else {
                self.input(id, 0, Input::Submit(txs.clone()));
            }
        }
        let next = self.now.after(w.burst_interval);
        if next < w.until {
            self.schedule(next, Event::Burst);
        }
    }

    fn input(&mut self, id: NodeId, inst: u8, input: Input<E::Message>) {
        let i = id.index();
        let Some(mut engine) = self.nodes[i].instances[inst as usize].take() else {
            return;
        };
        let mut fx = std::mem::take(&mut self.fx);
        engine.handle(self.now, input, &mut fx);
        self.nodes[i].instances[inst as usize] = Some(engine);
        // A crash falls on any boundary of this input's effects with equal odds:
        // before the first, between two, or after the last.
        let crash_at = if std::mem::take(&mut self.nodes[i].crash_pending) {
            Some(self.rng.gen_range(0..=fx.len()))
        } else {
            None
        };
        let mut crashed = false;
        for (k, effect) in fx.drain().enumerate() {
            if crash_at == Some(k) {
                crashed = true;
                break;
            }
            let scripted_crash = match self.script.as_mut() {
                Some(s) => s.crash_after(
                    Endpoint {
                        node: id,
                        instance: inst,
                    },
                    &effect,
                ),
                None => false,
            };
            self.apply(id, inst, effect);
            if scripted_crash {
                crashed = true;
                break;
            }
        }
        if crash_at.is_some() && !crashed {
            crashed = true; // the boundary after the last effect
        }
        self.fx = fx;
        if crashed {
            self.reads.clear();
            self.crash(id);
            return;
        }
        for (node, inst, from, batches) in std::mem::take(&mut self.reads) {
            self.input(node, inst, Input::StoredCommitted { from, batches });
        }
    }

    fn crash(&mut self, id: NodeId) {
        let node = &mut self.nodes[id.index()];
        node.up = false;
        node.instances = [None, None];
        node.timers.clear();
        self.report.crashes += 1;
        let d = self.exp_delay(self.cfg.crash.mean_downtime);
        self.schedule(self.now.after(d), Event::Restart(id));
    }

    fn apply(&mut self, id: NodeId, inst: u8, effect: Effect<E::Message>) {
        let i = id.index();
        match effect {
            Effect::Persist(r) => {
                if self.nodes[i].behaviour.keeps_a_store() {
                    if let Err(e) = self.nodes[i].store.apply(&[r]) {
                        self.checker
                            .violations
                            .push(format!("{id} could not persist: {e}"));
                    }
                }
            }
            Effect::Send { to, msg } => self.route(id, inst, Some(to), msg),
            Effect::Broadcast { msg } => self.route(id, inst, None, msg),
            Effect::SetTimer { id: t, after } => {
                self.order += 1;
                let stamp = self.order;
                self.nodes[i].timers.insert((inst, t), stamp);
                let incarnation = self.nodes[i].incarnation;
                let at = self.now.after(after);
                self.queue.push(Scheduled {
                    at,
                    order: stamp,
                    event: Event::Timer {
                        node: id,
                        inst,
                        id: t,
                        incarnation,
                        stamp,
                    },
                });
            }
            Effect::CancelTimer(t) => {
                self.nodes[i].timers.remove(&(inst, t));
            }
            Effect::ReadCommitted { from, limit } => {
                let batches = self.nodes[i]
                    .store
                    .committed(from, limit)
                    .unwrap_or_default();
                self.reads.push((id, inst, from, batches));
            }
            Effect::Commit(c) => {
                if inst != 0 {
                    return;
                }
                if self.nodes[i].behaviour.keeps_a_store() {
                    if let Err(e) = self.nodes[i]
                        .store
                        .append_committed(std::slice::from_ref(&c))
                    {
                        self.checker
                            .violations
                            .push(format!("{id} log rejected its own commit: {e}"));
                    }
                }
                self.checker.on_commit(id, &c, self.now);
                if self.cfg.keep_log
                    && self.report.log.len() < c.seq as usize
                    && self.first_honest() == Some(id)
                {
                    self.report.log.push(c);
                }
            }
        }
    }

    fn first_honest(&self) -> Option<NodeId> {
        self.nodes
            .iter()
            .position(|n| n.behaviour.is_honest())
            .map(|i| NodeId(i as u16))
    }

    fn finish(mut self) -> SimReport {
        let honest: Vec<usize> = (0..self.cfg.nodes)
            .filter(|i| self.nodes[*i].behaviour.is_honest())
            .collect();
        self.report.decisions = self.checker.decisions();
        self.report.transactions_submitted = self.checker.submitted();
        self.report.transactions_committed = self.checker.committed_transactions();
        self.report.live = self.checker.all_committed_by(honest.len());
        self.report.view_changes = honest
            .iter()
            .filter_map(|i| {
                self.nodes[*i].instances[0]
                    .as_ref()
                    .map(|e| e.status().view_changes)
            })
            .max()
            .unwrap_or(0);
        self.report.node_status = self
            .nodes
            .iter()
            .map(|n| n.instances[0].as_ref().map(|e| e.status()))
            .collect();
        let mut lat = std::mem::take(&mut self.checker.latencies);
        lat.sort_unstable();
        let pct = |p: f64| -> f64 {
            if lat.is_empty() {
                return 0.0;
            }
            let k = ((lat.len() - 1) as f64 * p).round() as usize;
            lat[k] as f64 / 1000.0
        };
        self.report.latency_p50_ms = pct(0.5);
        self.report.latency_p99_ms = pct(0.99);
        self.report.violations = std::mem::take(&mut self.checker.violations);
        self.report
    }
}
