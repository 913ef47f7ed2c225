//! How many epochs T-PBFT's trust takes to move misbehaving members out of the
//! committee, measured in the deterministic simulator.
//!
//! Three members of the genesis committee (nodes 1, 4 and 7) misbehave in one way
//! per run, for about twelve epochs of 48 batches; an honest node's view of each
//! epoch's committee is logged. For each behaviour the example prints, over the
//! seeds, the epoch at which each faulty member first sits on no committee (`K`),
//! and the faulty seats per epoch.
//!
//! ```text
//! cargo run --release --example tpbft_trust -- [nodes] [seeds]
//! ```

use dwcp::consensus::registry::{Protocol, TpbftProtocol};
use dwcp::consensus::sim::{scenario, Behaviour, Simulation};
use dwcp::consensus::tpbft::{Tpbft, TpbftMessage};
use dwcp::core::crypto::SignatureScheme;
use dwcp::core::{Effects, Engine, EngineStatus, Input, NodeId, ProposalCommitted, Time};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const FAULTY: [u16; 3] = [1, 4, 7];
const RUN: Duration = Duration::from_secs(26);

type Log = Arc<Mutex<BTreeMap<u64, Vec<NodeId>>>>;

/// A T-PBFT node that logs each epoch's committee.
struct Logged {
    inner: Tpbft,
    log: Option<Log>,
}

impl Engine for Logged {
    type Message = TpbftMessage;

    fn handle(&mut self, now: Time, input: Input<TpbftMessage>, fx: &mut Effects<TpbftMessage>) {
        self.inner.handle(now, input, fx);
        if let Some(log) = &self.log {
            if let Ok(mut l) = log.lock() {
                l.entry(self.inner.epoch())
                    .or_insert_with(|| self.inner.members().to_vec());
            }
        }
    }

    fn status(&self) -> EngineStatus {
        self.inner.status()
    }

    fn drain_proposal_commits(&mut self, out: &mut Vec<ProposalCommitted>) {
        self.inner.drain_proposal_commits(out);
    }
}

/// The committees node `n − 1` saw, by epoch, in one run.
fn run(nodes: usize, behaviour: Behaviour, seed: u64) -> BTreeMap<u64, Vec<NodeId>> {
    let mut cfg = scenario(nodes, 0, "honest", seed).expect("scenario");
    cfg.scheme = SignatureScheme::InsecureFast;
    for f in FAULTY {
        cfg.behaviours[usize::from(f)] = behaviour;
    }
    cfg.workload.until = Time::ZERO.after(RUN - Duration::from_secs(2));
    cfg.end = Time::ZERO.after(RUN);
    let log: Log = Arc::default();
    let pcfg = TpbftProtocol::sim_config();
    let watcher = NodeId(nodes as u16 - 1);
    let l = log.clone();
    let report = Simulation::new(cfg, move |keys, committee, recovered| {
        let id = keys.id;
        Logged {
            inner: Tpbft::new(keys, committee, pcfg.clone(), recovered).expect("a node"),
            log: (id == watcher).then(|| l.clone()),
        }
    })
    .with_engine_records(TpbftProtocol::is_engine_record)
    .run();
    assert!(report.violations.is_empty(), "{:?}", report.violations);
    let out = log.lock().expect("log").clone();
    out
}

fn main() {
    let mut args = std::env::args().skip(1);
    let nodes: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);
    let seeds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    println!(
        "T-PBFT trust: N = {nodes}, committee 10, epochs of 48 batches, faulty genesis \
         members {FAULTY:?}, {seeds} seeds, {} s of load per run",
        RUN.as_secs() - 2
    );
    println!("behaviour | epochs run (median) | K: epoch each faulty member left (median / max; never = still seated) | faulty seats by epoch (mean)");
    for (name, b) in [
        ("slacker", Behaviour::Slacker),
        ("turncoat", Behaviour::Turncoat),
        ("silent", Behaviour::Silent),
        ("honest (control)", Behaviour::Honest),
    ] {
        let mut left: Vec<Option<u64>> = Vec::new();
        let mut seats: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        let mut epochs = Vec::new();
        for seed in 0..seeds {
            let log = run(nodes, b, seed);
            epochs.push(log.keys().next_back().copied().unwrap_or(0));
            for f in FAULTY.map(NodeId) {
                left.push(
                    log.iter()
                        .find(|(_, members)| !members.contains(&f))
                        .map(|(e, _)| *e),
                );
            }
            for (e, members) in &log {
                let bad = members.iter().filter(|m| FAULTY.contains(&m.0)).count();
                seats.entry(*e).or_default().push(bad);
            }
        }
        epochs.sort_unstable();
        let mut k: Vec<u64> = left.iter().flatten().copied().collect();
        k.sort_unstable();
        let never = left.iter().filter(|l| l.is_none()).count();
        let k_text = if k.is_empty() {
            format!("never ({never} of {})", left.len())
        } else {
            format!(
                "{} / {}{}",
                k[k.len() / 2],
                k[k.len() - 1],
                if never > 0 {
                    format!(", never {never} of {}", left.len())
                } else {
                    String::new()
                }
            )
        };
        let per_epoch: Vec<String> = seats
            .iter()
            .map(|(e, v)| {
                let mean = v.iter().sum::<usize>() as f64 / v.len() as f64;
                format!("{e}:{mean:.1}")
            })
            .collect();
        println!(
            "{name} | {} | {k_text} | {}",
            epochs[epochs.len() / 2],
            per_epoch.join(" ")
        );
    }
}
