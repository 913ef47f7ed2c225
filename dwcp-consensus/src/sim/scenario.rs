//! Ready-made scenarios: `n` nodes, `f` of them faulty in one way, one seed.

use super::adversary::Behaviour;
use super::config::{CrashPlan, SimConfig, SimReport, Workload};
use super::network::{LinkModel, Network, Partition};
use super::twins::{TwinsCase, TwinsSummary};
use dwcp_core::crypto::SignatureScheme;
use dwcp_core::Time;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// What the `partition` scenario does: no faulty node, the network splits instead.
pub const PARTITION: &str = "partition";

/// A scenario: `nodes` members, `faulty` of them with `behaviour` (or, for
/// `partition`, a healthy committee whose network splits twice and heals), one seed.
///
/// The client sends a burst of 20 transactions of 64 bytes every 50 ms for 3 s of
/// virtual time; faults stop by 2.5 s; the run ends at 12 s so that every node can
/// recover and catch up, which the liveness check then demands.
pub fn scenario(
    nodes: usize,
    faulty: usize,
    behaviour: &str,
    seed: u64,
) -> Result<SimConfig, String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut behaviours = vec![Behaviour::Honest; nodes];
    let mut network = Network {
        link: LinkModel::default(),
        partitions: Vec::new(),
    };
    if behaviour == PARTITION {
        network.link.loss = 0.01;
        for (start, end) in [(300u64, 1300u64), (1600, 2400)] {
            let mut ids: Vec<usize> = (0..nodes).collect();
            ids.shuffle(&mut rng);
            let cut = rng.gen_range(1..=(nodes / 2).max(1));
            let mut group_of = vec![0u8; nodes];
            for i in &ids[..cut] {
                group_of[*i] = 1;
            }
            network.partitions.push(Partition {
                start: Time(start * 1000),
                end: Time(end * 1000),
                group_of,
            });
        }
    } else {
        let b: Behaviour = behaviour.parse()?;
        let mut ids: Vec<usize> = (0..nodes).collect();
        ids.shuffle(&mut rng);
        // Half the seeds make the first leader faulty.
        if seed.is_multiple_of(2) {
            if let Some(pos) = ids.iter().position(|i| *i == 0) {
                ids.swap(0, pos);
            }
        }
        for i in ids.into_iter().take(faulty.min(nodes)) {
            behaviours[i] = b;
        }
    }
    Ok(SimConfig {
        nodes,
        seed,
        scheme: SignatureScheme::Ed25519,
        network,
        behaviours,
        crash: CrashPlan {
            mean_uptime: Duration::from_millis(400),
            mean_downtime: Duration::from_millis(150),
            until: Time(2_500_000),
            crash_all_at: None,
        },
        workload: Workload {
            burst_interval: Duration::from_millis(50),
            burst_size: 20,
            tx_size: 64,
            until: Time(3_000_000),
        },
        end: Time(12_000_000),
        restore_tail: 4096,
        keep_log: false,
        store_dir: None,
    })
}

/// Runs `run` for every number of `cases`, spread over `threads` threads, and sums
/// up the Twins reports it returns (each with a label and its case).
pub fn run_sweep_cases(
    cases: std::ops::Range<u64>,
    threads: usize,
    run: impl Fn(u64) -> (String, SimReport, TwinsCase) + Sync,
) -> TwinsSummary {
    let threads = threads.max(1);
    let run = &run;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let cases = cases.clone();
                scope.spawn(move || {
                    let mut sum = TwinsSummary::default();
                    for i in cases.skip(t).step_by(threads) {
                        let (label, report, case) = run(i);
                        sum.add(&label, &case, &report);
                    }
                    sum
                })
            })
            .collect();
        let mut total = TwinsSummary::default();
        for w in workers {
            total.merge(w.join().expect("a twins worker panicked"));
        }
        total
    })
}

/// Totals over many seeds of one scenario.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SweepSummary {
    /// Engine name.
    pub engine: String,
    /// Committee size.
    pub nodes: usize,
    /// Faulty nodes.
    pub faulty: usize,
    /// The behaviour of the faulty nodes.
    pub behaviour: String,
    /// Seeds run.
    pub seeds: u64,
    /// Safety violations found, over all seeds.
    pub safety_violations: u64,
    /// Runs in which some transaction was not committed by every honest node.
    pub liveness_failures: u64,
    /// Batches committed, over all seeds.
    pub decisions: u64,
    /// Messages per committed batch.
    pub msgs_per_decision: f64,
    /// Bytes per committed batch.
    pub bytes_per_decision: f64,
    /// Median over seeds of the median commit latency, virtual ms.
    pub p50_latency_ms: f64,
    /// Median over seeds of the 99th percentile commit latency, virtual ms.
    pub p99_latency_ms: f64,
    /// View changes, summed over seeds (most of any honest node per seed).
    pub view_changes: u64,
    /// Simulated messages, all seeds.
    pub messages: u64,
    /// Discrete events processed, all seeds.
    pub events: u64,
    /// Up to five violation descriptions, with their seeds.
    pub examples: Vec<String>,
    /// Messages and bytes per committed batch, by message kind.
    pub per_decision_by_kind: std::collections::BTreeMap<&'static str, (f64, f64)>,
    #[serde(skip)]
    by_kind: std::collections::BTreeMap<&'static str, (u64, u64)>,
    #[serde(skip)]
    p50s: Vec<f64>,
    #[serde(skip)]
    p99s: Vec<f64>,
    #[serde(skip)]
    bytes: u64,
}

impl SweepSummary {
    /// An empty summary for this scenario.
    pub fn new(engine: &str, nodes: usize, faulty: usize, behaviour: &str) -> Self {
        SweepSummary {
            engine: engine.to_string(),
            nodes,
            faulty,
            behaviour: behaviour.to_string(),
            ..Default::default()
        }
    }

    /// Adds one run.
    pub fn add(&mut self, r: &SimReport) {
        self.seeds += 1;
        self.safety_violations += r.violations.len() as u64;
        for v in r
            .violations
            .iter()
            .take(5usize.saturating_sub(self.examples.len()))
        {
            self.examples.push(format!("seed {}: {v}", r.seed));
        }
        if !r.live {
            self.liveness_failures += 1;
        }
        self.decisions += r.decisions;
        self.messages += r.messages;
        self.bytes += r.bytes;
        self.events += r.events;
        self.view_changes += r.view_changes;
        self.p50s.push(r.latency_p50_ms);
        self.p99s.push(r.latency_p99_ms);
        for (k, (m, b)) in &r.by_kind {
            let e = self.by_kind.entry(k).or_default();
            e.0 += m;
            e.1 += b;
        }
        let d = self.decisions.max(1) as f64;
        self.per_decision_by_kind = self
            .by_kind
            .iter()
            .map(|(k, (m, b))| (*k, (*m as f64 / d, *b as f64 / d)))
            .collect();
        self.msgs_per_decision = self.messages as f64 / d;
        self.bytes_per_decision = self.bytes as f64 / d;
        self.p50_latency_ms = median(&mut self.p50s.clone());
        self.p99_latency_ms = median(&mut self.p99s.clone());
    }
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}
