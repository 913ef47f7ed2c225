//! `dwcpd bench --in-process`: `n` drivers on threads of this process over a
//! [`LocalNetwork`], with real ed25519 signatures and BLAKE3 hashing, each on a
//! [`MemoryStore`] that keeps only the tail of the committed log, so that a long
//! run stays in flat memory.

use super::args::BenchArgs;
use super::load::{read_every, sample_of, Clients};
use super::summary::{memory_kib, memory_phrase, ConsensusLatency, Report};
use crate::admission::SubmitGate;
use crate::driver::inbox::DriverInput;
use crate::driver::local::LocalNetwork;
use crate::driver::{Driver, DriverError, ProposalSample};
use anyhow::Context;
use dwcp_core::codec::DEFAULT_MAX_FRAME;
use dwcp_core::crypto::SignatureScheme;
use dwcp_core::storage::{MemoryStore, Storage};
use dwcp_core::{Committed, Committee, Engine, MessageKind, NodeId, NodeKeys, Recovered};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Inputs queued per node (network frames and client bursts).
const INBOX: usize = 4_096;
/// Committed batches each node's store keeps (nothing restarts in process: the
/// tail only has to satisfy the store's contract).
const STORE_TAIL: usize = 2;
/// Period of the memory readings.
const MEMORY_PERIOD: Duration = Duration::from_secs(60);

/// `n` running drivers of one engine.
pub struct InProcessCluster {
    network: LocalNetwork,
    nodes: usize,
    drivers: Vec<JoinHandle<Result<(), DriverError>>>,
    commits: Receiver<Committed>,
    samples: Receiver<ProposalSample>,
    heights: Arc<Vec<AtomicU64>>,
    followers: Vec<JoinHandle<()>>,
}

/// Starts `args.nodes` drivers of the engine `build` makes, over a fresh
/// deterministic committee with ed25519 keys.
pub fn start<E, F>(args: &BenchArgs, build: F) -> anyhow::Result<InProcessCluster>
where
    E: Engine + Send + 'static,
    E::Message: MessageKind,
    F: Fn(NodeKeys, Committee, Recovered) -> anyhow::Result<E>,
{
    let (committee, keys) = Committee::deterministic(args.nodes, SignatureScheme::Ed25519, 7);
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..args.nodes).map(|_| sync_channel(INBOX)).unzip();
    let network = LocalNetwork::new(senders);
    let (sample_tx, samples) = channel();
    let heights: Arc<Vec<AtomicU64>> =
        Arc::new((0..args.nodes).map(|_| AtomicU64::new(0)).collect());
    let mut commits: Option<Receiver<Committed>> = None;
    let mut drivers = Vec::new();
    let mut followers = Vec::new();
    for (k, inbox) in keys.into_iter().zip(receivers) {
        let id = k.id;
        let store = MemoryStore::with_tail_limit(STORE_TAIL);
        let recovered = store.recover(STORE_TAIL)?;
        let engine = build(k, committee.clone(), recovered)?;
        let driver = Driver::new(id, committee.clone(), engine, store, DEFAULT_MAX_FRAME)
            .with_proposal_samples(sample_tx.clone());
        let (commit_tx, commit_rx) = channel();
        if id == NodeId(0) {
            commits = Some(commit_rx);
        } else {
            // Only node 0's log is counted; the others' heights show they keep up.
            let heights = heights.clone();
            followers.push(
                std::thread::Builder::new()
                    .name(format!("follow-{id}"))
                    .spawn(move || {
                        for c in commit_rx {
                            heights[id.index()].store(c.seq, Ordering::Relaxed);
                        }
                    })?,
            );
        }
        let transport = network.transport(id);
        drivers.push(
            std::thread::Builder::new()
                .name(format!("node-{id}"))
                .spawn(move || driver.run(&inbox, &transport, &commit_tx).map(|_| ()))?,
        );
    }
    Ok(InProcessCluster {
        network,
        nodes: args.nodes,
        drivers,
        commits: commits.context("a committee has a node 0")?,
        samples,
        heights,
        followers,
    })
}

/// Node 0's log as the benchmark counts it.
#[derive(Default)]
struct Tally {
    transactions: u64,
    bytes: u64,
    last_commit: Option<Instant>,
    sample_commits: HashMap<u64, Instant>,
}

impl Tally {
    fn add(&mut self, c: &Committed, at: Instant) {
        self.transactions += c.transactions.len() as u64;
        self.bytes += c.transactions.iter().map(|t| t.len() as u64).sum::<u64>();
        for id in c.transactions.iter().filter_map(|t| sample_of(t)) {
            self.sample_commits.entry(id).or_insert(at);
        }
        self.last_commit = Some(at);
    }
}

/// Runs the load against a fresh in-process cluster and measures it.
pub fn run(args: &BenchArgs, cluster: InProcessCluster) -> anyhow::Result<Report> {
    let origin = Instant::now();
    let stop_at = origin + args.duration;
    let done = Arc::new(AtomicBool::new(false));
    let readings = read_every(origin, MEMORY_PERIOD, done.clone(), || memory_kib(None));
    let clients = Clients::start(cluster.nodes, args.rate, args.tx_size, stop_at, |i| {
        let inbox = cluster.network.inbox(NodeId(i as u16));
        // As a node's HTTP API does: refuse bursts once 64 MiB of client
        // transactions wait, so they never crowd out consensus frames.
        let gate = SubmitGate::new(64 << 20);
        move |txs| {
            let Some(permit) = gate.try_admit(&txs) else {
                return false;
            };
            inbox
                .as_ref()
                .is_some_and(|n| n.try_send(DriverInput::Admitted(txs, permit)).is_ok())
        }
    })?;

    let mut tally = Tally::default();
    loop {
        let left = stop_at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match cluster.commits.recv_timeout(left) {
            Ok(c) => tally.add(&c, Instant::now()),
            Err(RecvTimeoutError::Timeout) => break,
            Err(RecvTimeoutError::Disconnected) => anyhow::bail!("node 0's driver stopped"),
        }
    }
    let load = clients.join()?;
    let end_memory = memory_kib(None);
    done.store(true, Ordering::Relaxed);
    let readings = readings.join().unwrap_or_default();

    let heights: Vec<String> = cluster
        .heights
        .iter()
        .enumerate()
        .map(|(i, h)| {
            if i == 0 {
                "-".into()
            } else {
                h.load(Ordering::Relaxed).to_string()
            }
        })
        .collect();
    for i in 0..cluster.nodes {
        if let Some(inbox) = cluster.network.inbox(NodeId(i as u16)) {
            let _ = inbox.send(DriverInput::Shutdown);
        }
    }
    let mut stopped_with_error = Vec::new();
    for (i, d) in cluster.drivers.into_iter().enumerate() {
        match d.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => stopped_with_error.push(format!("node {i}: {e}")),
            Err(_) => stopped_with_error.push(format!("node {i}: panicked")),
        }
    }
    for f in cluster.followers {
        let _ = f.join();
    }
    if !stopped_with_error.is_empty() {
        anyhow::bail!("drivers failed: {}", stopped_with_error.join("; "));
    }

    let secs = |t: Instant| t.saturating_duration_since(origin).as_secs_f64();
    let proposals: Vec<ProposalSample> = cluster
        .samples
        .try_iter()
        .filter(|s| s.committed <= stop_at)
        .collect();
    let mut end_to_end = Vec::new();
    for (id, sent) in &load.samples {
        if let Some(at) = tally.sample_commits.get(id) {
            end_to_end.push(at.saturating_duration_since(*sent).as_secs_f64());
        }
    }
    let mut notes = vec![
        format!(
            "Committed heights of nodes 1..{} at the end: {}",
            cluster.nodes - 1,
            heights[1..].join(" ")
        ),
        format!(
            "Frames dropped (inbox full, or 32 MiB of large frames waiting): {}",
            cluster.network.dropped()
        ),
    ];
    for (minute, m) in readings.into_iter().enumerate() {
        if let Some(m) = m {
            notes.push(format!(
                "Memory at {} min: {}",
                minute + 1,
                memory_phrase(m)
            ));
        }
    }
    if let Some(m) = end_memory {
        notes.push(format!("Memory at the end: {}", memory_phrase(m)));
        notes.push(format!("Peak RSS: {:.1} MiB", m.1 as f64 / 1024.0));
    }
    Ok(Report {
        mode: format!(
            "in-process: {} drivers on threads of one process over LocalNetwork, ed25519, MemoryStore keeping the last {STORE_TAIL} batches",
            cluster.nodes
        ),
        committed_tx: tally.transactions,
        committed_bytes: tally.bytes,
        first_proposal: proposals.iter().map(|s| secs(s.proposed)).reduce(f64::min),
        first_proposal_note: None,
        first_send: load.first_send.map(secs),
        last_commit: tally.last_commit.map(secs),
        consensus: ConsensusLatency::Samples(
            proposals
                .iter()
                .map(|s| s.committed.saturating_duration_since(s.proposed).as_secs_f64())
                .collect(),
        ),
        end_to_end,
        load,
        notes,
    })
}
