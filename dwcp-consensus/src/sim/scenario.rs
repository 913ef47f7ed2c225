//! Ready-made scenarios: `n` nodes, `f` of them faulty in one way, one seed.

use super::adversary::Behaviour;
use super::network::{LinkModel, Network, Partition};
use super::runner::{CrashPlan, SimConfig, SimReport, Simulation, Workload};
use super::twins::{TwinsCase, TwinsCrash, TwinsSummary};
use crate::bullshark::{BullsharkConfig, BullsharkEngine};
use crate::pbft::{Pbft, PbftConfig};
use dwcp_core::crypto::SignatureScheme;
use dwcp_core::{Committee, NodeId, NodeKeys, Recovered, Time};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// The engines the simulator can run by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    /// [`crate::pbft::Pbft`].
    Pbft,
    /// [`crate::bullshark::BullsharkEngine`].
    Bullshark,
}

impl std::str::FromStr for EngineKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pbft" => Ok(EngineKind::Pbft),
            "bullshark" => Ok(EngineKind::Bullshark),
            other => Err(format!(
                "unknown engine {other:?} (available: pbft, bullshark)"
            )),
        }
    }
}

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

/// Runs one configured simulation of `kind`.
pub fn run_engine(kind: EngineKind, cfg: SimConfig) -> SimReport {
    match kind {
        EngineKind::Pbft => pbft_simulation(cfg).run(),
        EngineKind::Bullshark => bullshark_simulation(cfg).run(),
    }
}

/// Runs one Twins case of `kind` (see [`super::twins`]); `seed` fixes link delays.
pub fn run_twins(kind: EngineKind, case: &TwinsCase, seed: u64) -> SimReport {
    let mut cfg = case.sim_config(seed);
    if kind == EngineKind::Bullshark {
        // A round every 100 ms: it commits within a second of the network healing
        // at 4 s, where PBFT may first need view changes with doubling timeouts.
        cfg.end = Time(8_000_000);
    }
    match kind {
        EngineKind::Pbft => pbft_simulation(cfg).with_script(case.script()).run(),
        EngineKind::Bullshark => bullshark_simulation(cfg).with_script(case.script()).run(),
    }
}

/// The shape of a Twins case space: committee size and what is scripted before
/// the network heals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TwinsShape {
    /// Committee size.
    pub nodes: usize,
    /// Scripted steps: rounds, or round slots if `slots > 1`.
    pub rounds: usize,
    /// Steps per round ([`TwinsCase::slots`]); 0 scripts whole rounds.
    pub slots: u64,
}

impl TwinsShape {
    /// `rounds` whole rounds of a committee of `nodes`.
    pub fn new(nodes: usize, rounds: usize) -> TwinsShape {
        TwinsShape {
            nodes,
            rounds,
            slots: 0,
        }
    }

    /// Case `rank` of the one-twin space of this shape.
    pub fn unrank(&self, rank: u64) -> TwinsCase {
        TwinsCase::unrank(self.nodes, self.rounds, rank).with_slots(self.slots)
    }
}

/// Runs the one-twin cases `ranks` of `shape` on `threads` threads, each with
/// `crash` if given (a case whose twin is the crashing node runs without it), and
/// sums them up.
pub fn twins_sweep(
    kind: EngineKind,
    shape: TwinsShape,
    ranks: std::ops::Range<u64>,
    crash: Option<TwinsCrash>,
    threads: usize,
) -> TwinsSummary {
    sweep_cases(ranks, threads, |rank| {
        let mut case = shape.unrank(rank);
        case.crash = crash.filter(|c| !case.twins.contains(&c.node));
        (format!("rank {rank}"), run_twins(kind, &case, rank), case)
    })
}

/// Runs random Twins cases number `cases` of `shape` with `twins` twinned
/// identities, of the sequence drawn from `seed`, on `threads` threads; case `i`
/// depends only on `seed` and `i`, so any one reruns alone.
pub fn twins_random_sweep(
    kind: EngineKind,
    shape: TwinsShape,
    twins: usize,
    cases: std::ops::Range<u64>,
    seed: u64,
    threads: usize,
) -> TwinsSummary {
    sweep_cases(cases, threads, |i| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let case =
            TwinsCase::random(shape.nodes, twins, shape.rounds, &mut rng).with_slots(shape.slots);
        let r = run_twins(kind, &case, seed.wrapping_add(i));
        (format!("case {i}"), r, case)
    })
}

/// Runs `run` for every number of `cases`, spread over `threads` threads.
fn sweep_cases(
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

/// A simulation of PBFT replicas configured by [`sim_pbft_config`], ready for a
/// script ([`Simulation::with_script`]) or to run.
pub fn pbft_simulation(
    cfg: SimConfig,
) -> Simulation<Pbft, impl FnMut(NodeKeys, Committee, Recovered) -> Pbft> {
    let pcfg = sim_pbft_config();
    Simulation::new(cfg, move |keys, committee, recovered| {
        let id: NodeId = keys.id;
        Pbft::new(keys, committee, pcfg.clone(), recovered)
            .unwrap_or_else(|e| panic!("{id} cannot restore its own store: {e}"))
    })
}

/// A simulation of Bullshark nodes configured by [`sim_bullshark_config`], ready
/// for a script ([`Simulation::with_script`]) or to run.
pub fn bullshark_simulation(
    cfg: SimConfig,
) -> Simulation<BullsharkEngine, impl FnMut(NodeKeys, Committee, Recovered) -> BullsharkEngine> {
    let bcfg = sim_bullshark_config();
    let cfg = SimConfig {
        restore_tail: cfg.restore_tail.max(bcfg.restore_tail()),
        ..cfg
    };
    Simulation::new(cfg, move |keys, committee, recovered| {
        let id: NodeId = keys.id;
        BullsharkEngine::new(keys, committee, bcfg.clone(), recovered)
            .unwrap_or_else(|e| panic!("{id} cannot restore its own store: {e}"))
    })
}

/// Bullshark as the scenarios run it: small batches sealed quickly, a header at
/// least every 100 ms, and repeats dropped (the simulated client sends every
/// transaction to every node).
pub fn sim_bullshark_config() -> BullsharkConfig {
    BullsharkConfig {
        batch_size: 16 * 1024,
        max_batch_delay: Duration::from_millis(20),
        header_size: 32,
        max_header_delay: Duration::from_millis(100),
        sync_retry: Duration::from_millis(100),
        ..BullsharkConfig::default()
    }
}

/// PBFT as the scenarios run it: the simulated client sends every transaction to
/// every replica, so backups need not relay them.
pub fn sim_pbft_config() -> PbftConfig {
    PbftConfig {
        forward_requests: false,
        ..PbftConfig::default()
    }
}

/// Runs [`scenario`] `(nodes, faulty, behaviour)` of `kind` for seeds `0..seeds` and
/// says what went wrong in the first run with a safety violation, without liveness,
/// or without a single decision.
pub fn check_seeds(
    kind: EngineKind,
    nodes: usize,
    faulty: usize,
    behaviour: &str,
    seeds: u64,
) -> Result<(), String> {
    for seed in 0..seeds {
        let r = run_engine(kind, scenario(nodes, faulty, behaviour, seed)?);
        let at = format!("{kind:?} {behaviour} n={nodes} seed {seed}");
        if !r.violations.is_empty() {
            return Err(format!("{at}: {:?}", r.violations));
        }
        if !r.live {
            return Err(format!(
                "{at} not live ({} of {} committed): {:?}",
                r.transactions_committed, r.transactions_submitted, r.node_status
            ));
        }
        if r.decisions == 0 {
            return Err(format!("{at} decided nothing"));
        }
    }
    Ok(())
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
    #[serde(skip)]
    p50s: Vec<f64>,
    #[serde(skip)]
    p99s: Vec<f64>,
    #[serde(skip)]
    bytes: u64,
}

impl SweepSummary {
    /// An empty summary for this scenario.
    pub fn new(engine: EngineKind, nodes: usize, faulty: usize, behaviour: &str) -> Self {
        SweepSummary {
            engine: format!("{engine:?}").to_lowercase(),
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
        let d = self.decisions.max(1) as f64;
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
