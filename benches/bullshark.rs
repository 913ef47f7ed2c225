//! Criterion bench of the Bullshark engine's CPU cost per committed transaction:
//! four nodes in one thread, with real ed25519 signatures, BLAKE3 and the wire
//! encoding, exchanging every message through encode/decode on a virtual clock.
//! No threads, channels or sockets: what is left is the engines' own work, which
//! bounds what the in-process benchmark (`dwcpd bench --in-process`) can reach.
//!
//! Run: `cargo bench --bench bullshark` (add `-- --warm-up-time 1 --measurement-time 5`
//! for a quick pass).

#![allow(missing_docs)] // criterion_main! generates an undocumented `main`

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dwcp::consensus::bullshark::{BullsharkConfig, BullsharkEngine, BullsharkMessage};
use dwcp::core::codec::{decode, encode, DEFAULT_MAX_FRAME};
use dwcp::core::crypto::SignatureScheme;
use dwcp::core::{Committee, Effect, Effects, Engine, Input, NodeId, Recovered, Time, TimerId};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

const NODES: usize = 4;
const TX_SIZE: usize = 512;

struct Cluster {
    engines: Vec<BullsharkEngine>,
    wire: VecDeque<(usize, usize, Bytes)>,
    timers: BTreeMap<(Time, usize, u64), ()>,
    armed: BTreeMap<(usize, u64), Time>,
    now: Time,
    committed: usize,
    fx: Effects<BullsharkMessage>,
}

impl Cluster {
    fn new() -> Cluster {
        let (committee, keys) = Committee::deterministic(NODES, SignatureScheme::Ed25519, 1);
        let cfg = BullsharkConfig {
            dedup_window: 0,
            ..BullsharkConfig::default()
        };
        let engines = keys
            .into_iter()
            .map(|k| {
                BullsharkEngine::new(k, committee.clone(), cfg.clone(), Recovered::default())
                    .expect("engine")
            })
            .collect();
        let mut c = Cluster {
            engines,
            wire: VecDeque::new(),
            timers: BTreeMap::new(),
            armed: BTreeMap::new(),
            now: Time::ZERO,
            committed: 0,
            fx: Effects::new(),
        };
        for i in 0..NODES {
            c.input(i, Input::Start);
        }
        c
    }

    fn input(&mut self, i: usize, input: Input<BullsharkMessage>) {
        let mut fx = std::mem::take(&mut self.fx);
        self.engines[i].handle(self.now, input, &mut fx);
        for e in fx.drain() {
            match e {
                Effect::Send { to, msg } => {
                    self.wire
                        .push_back((to.index(), i, Bytes::from(encode(&msg))))
                }
                Effect::Broadcast { msg } => {
                    let frame = Bytes::from(encode(&msg));
                    for to in (0..NODES).filter(|t| *t != i) {
                        self.wire.push_back((to, i, frame.clone()));
                    }
                }
                Effect::SetTimer { id, after } => {
                    let at = self.now.after(after);
                    if let Some(old) = self.armed.insert((i, id.0), at) {
                        self.timers.remove(&(old, i, id.0));
                    }
                    self.timers.insert((at, i, id.0), ());
                }
                Effect::CancelTimer(id) => {
                    if let Some(old) = self.armed.remove(&(i, id.0)) {
                        self.timers.remove(&(old, i, id.0));
                    }
                }
                Effect::Commit(c) if i == 0 => self.committed += c.transactions.len(),
                Effect::Commit(_) | Effect::Persist(_) | Effect::ReadCommitted { .. } => {}
            }
        }
        self.fx = fx;
    }

    /// Delivers every message in flight, then fires the timers that are due (or,
    /// with `idle`, the earliest one, moving the clock to it).
    fn step(&mut self, idle: bool) {
        while let Some((to, from, frame)) = self.wire.pop_front() {
            let msg: BullsharkMessage = decode(&frame, DEFAULT_MAX_FRAME).expect("decode");
            self.input(
                to,
                Input::Message {
                    from: NodeId(from as u16),
                    msg,
                },
            );
        }
        while let Some((&(at, i, id), ())) = self.timers.first_key_value() {
            if at > self.now && !idle {
                break;
            }
            self.timers.remove(&(at, i, id));
            self.armed.remove(&(i, id));
            self.now = self.now.max(at);
            self.input(i, Input::Timeout(TimerId(id)));
            if idle {
                break;
            }
        }
    }

    /// Submits `total` transactions spread over the nodes, a burst of 128 every
    /// 200 µs of virtual time (640k tx/s offered), and runs until node 0 committed
    /// them all.
    fn run(&mut self, total: usize) {
        let target = self.committed + total;
        let per_burst = 128;
        let mut sent = 0;
        let mut k = 0u64;
        while self.committed < target {
            if sent < total {
                let node = (k as usize) % NODES;
                let txs = (0..per_burst)
                    .map(|j| {
                        let mut tx = vec![0u8; TX_SIZE];
                        tx[..8].copy_from_slice(&k.to_le_bytes());
                        tx[8..16].copy_from_slice(&(j as u64).to_le_bytes());
                        Bytes::from(tx)
                    })
                    .collect();
                self.input(node, Input::Submit(txs));
                sent += per_burst;
                k += 1;
                self.now = self.now.after(Duration::from_micros(200));
            }
            self.step(sent >= total);
        }
    }
}

fn pipeline(c: &mut Criterion) {
    let mut g = c.benchmark_group("bullshark");
    g.sample_size(10);
    let total = 100_000;
    g.throughput(Throughput::Elements(total as u64));
    g.bench_function("commit_100k_tx_512B_4_nodes_one_thread", |b| {
        let mut cluster = Cluster::new();
        b.iter(|| cluster.run(total));
    });
    g.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
