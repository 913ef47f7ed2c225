//! Simulations of a registered engine: one run, the seeded scenarios, and Twins
//! sweeps. The simulator itself ([`crate::sim`]) knows no engine; this is where an
//! engine meets it.

use super::{Protocol, ProtocolVisitor, UnknownEngine};
use crate::sim::{
    run_sweep_cases, scenario, Behaviour, SimConfig, SimReport, Simulation, TwinsCase, TwinsCrash,
    TwinsShape, TwinsSummary,
};
use dwcp_core::{Committee, NodeId, NodeKeys, Recovered};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;

/// A simulation of engine `P` on its simulator parameters ([`Protocol::sim_config`]),
/// ready for a script ([`Simulation::with_script`]) or to run.
pub fn simulation<P: Protocol>(
    cfg: SimConfig,
) -> Simulation<P::Engine, impl FnMut(NodeKeys, Committee, Recovered) -> P::Engine> {
    simulation_with::<P>(cfg, P::sim_config())
}

/// A simulation of engine `P` on parameters `pcfg`. Every node's store hands back
/// at least the committed tail the engine needs on a restart.
pub fn simulation_with<P: Protocol>(
    cfg: SimConfig,
    pcfg: P::Config,
) -> Simulation<P::Engine, impl FnMut(NodeKeys, Committee, Recovered) -> P::Engine> {
    let cfg = SimConfig {
        restore_tail: cfg.restore_tail.max(P::restore_tail(&pcfg)),
        ..cfg
    };
    let colluders: BTreeSet<NodeId> = (0..cfg.nodes)
        .filter(|&i| cfg.behaviours.get(i) == Some(&Behaviour::Collude))
        .map(|i| NodeId(i as u16))
        .collect();
    Simulation::new(cfg, move |keys, committee, recovered| {
        let id: NodeId = keys.id;
        if colluders.contains(&id) {
            P::build_colluding(keys, committee, &pcfg, recovered, &colluders)
        } else {
            P::build(keys, committee, &pcfg, recovered)
        }
        .unwrap_or_else(|e| panic!("{id} cannot restore its own store: {e}"))
    })
    .with_engine_records(P::is_engine_record)
}

/// Runs one configured simulation of engine `P` on its simulator parameters.
pub fn simulate<P: Protocol>(cfg: SimConfig) -> SimReport {
    simulation::<P>(cfg).run()
}

/// Runs one configured simulation of the engine called `engine`.
pub fn run_simulation(engine: &str, cfg: SimConfig) -> Result<SimReport, UnknownEngine> {
    struct Run(SimConfig);
    impl ProtocolVisitor for Run {
        type Output = SimReport;
        fn visit<P: Protocol>(self) -> SimReport {
            simulation::<P>(self.0).run()
        }
    }
    super::with_protocol(engine, Run(cfg))
}

/// Runs one Twins case of engine `P` (see [`crate::sim::twins`]); `seed` fixes link
/// delays.
pub fn run_twins<P: Protocol>(case: &TwinsCase, seed: u64) -> SimReport {
    let mut cfg = case.sim_config(seed);
    cfg.end = P::TWINS_END;
    simulation::<P>(cfg).with_script(case.script()).run()
}

/// Runs the one-twin cases `ranks` of `shape` of engine `P` on `threads` threads,
/// each with `crash` if given (a case whose twin is the crashing node runs without
/// it), and sums them up.
pub fn twins_sweep<P: Protocol>(
    shape: TwinsShape,
    ranks: std::ops::Range<u64>,
    crash: Option<TwinsCrash>,
    threads: usize,
) -> TwinsSummary {
    run_sweep_cases(ranks, threads, |rank| {
        let mut case = shape.unrank(rank);
        case.crash = crash.filter(|c| !case.twins.contains(&c.node));
        (format!("rank {rank}"), run_twins::<P>(&case, rank), case)
    })
}

/// Runs random Twins cases number `cases` of `shape` of engine `P`, with `twins`
/// twinned identities, of the sequence drawn from `seed`, on `threads` threads;
/// case `i` depends only on `seed` and `i`, so any one reruns alone.
pub fn twins_random_sweep<P: Protocol>(
    shape: TwinsShape,
    twins: usize,
    cases: std::ops::Range<u64>,
    seed: u64,
    threads: usize,
) -> TwinsSummary {
    run_sweep_cases(cases, threads, |i| {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let case =
            TwinsCase::random(shape.nodes, twins, shape.rounds, &mut rng).with_slots(shape.slots);
        let r = run_twins::<P>(&case, seed.wrapping_add(i));
        (format!("case {i}"), r, case)
    })
}

/// Runs [`scenario()`] `(nodes, faulty, behaviour)` of engine `P` for seeds
/// `0..seeds` and says what went wrong in the first run with a safety violation,
/// without liveness, or without a single decision.
pub fn check_seeds<P: Protocol>(
    nodes: usize,
    faulty: usize,
    behaviour: &str,
    seeds: u64,
) -> Result<(), String> {
    for seed in 0..seeds {
        let r = simulation::<P>(scenario(nodes, faulty, behaviour, seed)?).run();
        let at = format!("{} {behaviour} n={nodes} seed {seed}", P::NAME);
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
