//! How many epochs T-PBFT's trust takes to move misbehaving members out of the
//! committee, measured in the deterministic simulator.
//!
//! Three members of the genesis committee (nodes 1, 4 and 7) misbehave in one way
//! per run, for about twelve epochs of 48 batches; an honest node's view of each
//! epoch's committee is logged. For each behaviour the example prints, over the
//! seeds, the epoch at which each faulty member first sits on no committee (`K`),
//! the faulty seats per epoch, and how many honest genesis members lost their seat
//! at some epoch. A colluding group (`collude`) behaves well, but the commit proofs
//! its members propose name every colluder and as few honest signers as a quorum
//! needs: it stays seated, and the question is how many honest members it unseats.
//!
//! ```text
//! cargo run --release --example tpbft_trust -- [nodes] [seeds] [behaviour,...]
//! ```

use dwcp::consensus::registry::{Protocol, TpbftProtocol};
use dwcp::consensus::sim::{scenario, Behaviour, Simulation};
use dwcp::consensus::tpbft::{Tpbft, TpbftMessage};
use dwcp::core::crypto::SignatureScheme;
use dwcp::core::{Effects, Engine, EngineStatus, Input, NodeId, ProposalCommitted, Time};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const FAULTY: [u16; 3] = [1, 4, 7];
const RUN: Duration = Duration::from_secs(26);

/// Each epoch's committee and the trust (parts per billion, by node) it was
/// elected by.
type Log = Arc<Mutex<BTreeMap<u64, (Vec<NodeId>, Vec<u64>)>>>;

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
                l.entry(self.inner.epoch()).or_insert_with(|| {
                    let trust = self.inner.status().committee.map(|c| c.trust_ppb);
                    (self.inner.members().to_vec(), trust.unwrap_or_default())
                });
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

/// The committees node `n − 1` saw, by epoch, in one run, with their trust.
fn run(nodes: usize, behaviour: Behaviour, seed: u64) -> BTreeMap<u64, (Vec<NodeId>, Vec<u64>)> {
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
    let colluders: BTreeSet<NodeId> = if behaviour == Behaviour::Collude {
        FAULTY.map(NodeId).into()
    } else {
        BTreeSet::new()
    };
    let report = Simulation::new(cfg, move |keys, committee, recovered| {
        let id = keys.id;
        let node = Tpbft::new(keys, committee, pcfg.clone(), recovered).expect("a node");
        Logged {
            inner: if colluders.contains(&id) {
                node.colluding(colluders.clone())
            } else {
                node
            },
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
    let only: Option<String> = args.next();
    println!(
        "T-PBFT trust: N = {nodes}, committee 10, epochs of 48 batches, faulty genesis \
         members {FAULTY:?}, {seeds} seeds, {} s of load per run",
        RUN.as_secs() - 2
    );
    println!("behaviour | epochs run (median) | K: epoch each faulty member left (median / max; never = still seated) | honest genesis members unseated per run (mean) | faulty members' share of the last committee's trust (mean) | faulty seats by epoch (mean)");
    for (name, b) in [
        ("slacker", Behaviour::Slacker),
        ("turncoat", Behaviour::Turncoat),
        ("silent", Behaviour::Silent),
        ("collude", Behaviour::Collude),
        ("honest (control)", Behaviour::Honest),
    ] {
        if only
            .as_ref()
            .is_some_and(|o| !o.split(',').any(|w| name.starts_with(w)))
        {
            continue;
        }
        let mut left: Vec<Option<u64>> = Vec::new();
        let mut seats: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        let mut epochs = Vec::new();
        let mut unseated = 0usize;
        let mut share = Vec::new();
        for seed in 0..seeds {
            let log = run(nodes, b, seed);
            epochs.push(log.keys().next_back().copied().unwrap_or(0));
            for f in FAULTY.map(NodeId) {
                left.push(
                    log.iter()
                        .find(|(_, (members, _))| !members.contains(&f))
                        .map(|(e, _)| *e),
                );
            }
            let genesis = log.get(&0).map(|e| e.0.clone()).unwrap_or_default();
            unseated += genesis
                .iter()
                .filter(|g| !FAULTY.contains(&g.0))
                .filter(|g| log.values().any(|(members, _)| !members.contains(g)))
                .count();
            if let Some((members, trust)) = log.values().next_back() {
                let of = |m: &NodeId| trust.get(usize::from(m.0)).copied().unwrap_or(0) as f64;
                let total: f64 = members.iter().map(of).sum();
                let bad: f64 = members
                    .iter()
                    .filter(|m| FAULTY.contains(&m.0))
                    .map(of)
                    .sum();
                if total > 0.0 {
                    share.push(bad / total);
                }
            }
            for (e, (members, _)) in &log {
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
            "{name} | {} | {k_text} | {:.1} | {:.1}% | {}",
            epochs[epochs.len() / 2],
            unseated as f64 / seeds as f64,
            100.0 * share.iter().fold(0.0, |a, b| a + b) / share.len().max(1) as f64,
            per_epoch.join(" ")
        );
    }
}
