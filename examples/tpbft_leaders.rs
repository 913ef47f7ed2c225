//! Commit latency and view changes when a proposer is faulty: PBFT with a faulty
//! primary beside T-PBFT with a faulty designated proposer and with a faulty
//! other member of its primary group (and T-PBFT with the group turned off), in
//! the deterministic simulator, one run per seed on the same seeds.
//!
//! ```text
//! cargo run --release --example tpbft_leaders -- [seeds]
//! ```

use dwcp::consensus::registry::{
    simulation, simulation_with, PbftProtocol, Protocol, TpbftProtocol,
};
use dwcp::consensus::sim::{scenario, Behaviour, SimConfig, SimReport};
use dwcp::consensus::tpbft::{primary_group, DEFAULT_PRIMARY_GROUP_SIZE};
use dwcp::core::crypto::SignatureScheme;
use dwcp::core::NodeId;

const N: usize = 16;

/// One case: its name, and the run of one seed.
type Case = (String, Box<dyn Fn(u64) -> SimReport>);

fn config(seed: u64, faulty: NodeId, b: Behaviour) -> SimConfig {
    let mut cfg = scenario(N, 0, "honest", seed).expect("scenario");
    cfg.scheme = SignatureScheme::InsecureFast;
    cfg.behaviours[faulty.index()] = b;
    cfg
}

fn counter(r: &SimReport, name: &str) -> u64 {
    r.node_status
        .iter()
        .flatten()
        .flat_map(|s| s.counters.iter())
        .filter(|(k, _)| k == name)
        .map(|(_, v)| *v)
        .sum()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn main() {
    let seeds: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let genesis: Vec<NodeId> = (0..10).map(NodeId).collect();
    let group = primary_group(&genesis, DEFAULT_PRIMARY_GROUP_SIZE, 0);
    println!(
        "N = {N}; T-PBFT committee 10 (epochs of 48), primary group of epoch 0 {group:?}; \
         {seeds} seeds; latency is virtual time"
    );
    println!(
        "case | p50 / p99 commit latency | view changes per run | takeovers per run | not live"
    );
    let no_group = {
        let mut c = TpbftProtocol::sim_config();
        c.primary_group_size = 0;
        c
    };
    let (designated, other) = (group[0], group[1]);
    for b in [Behaviour::Silent, Behaviour::Equivocate] {
        let cases: Vec<Case> = vec![
            (
                format!("PBFT, primary of view 0 (n0) {b:?}"),
                Box::new(move |s| simulation::<PbftProtocol>(config(s, NodeId(0), b)).run()),
            ),
            (
                format!("T-PBFT, designated proposer ({designated}) {b:?}"),
                Box::new(move |s| simulation::<TpbftProtocol>(config(s, designated, b)).run()),
            ),
            (
                format!("T-PBFT, another group member ({other}) {b:?}"),
                Box::new(move |s| simulation::<TpbftProtocol>(config(s, other, b)).run()),
            ),
            (
                format!("T-PBFT without a group, primary of view 0 (n0) {b:?}"),
                Box::new({
                    let c = no_group.clone();
                    move |s| {
                        simulation_with::<TpbftProtocol>(config(s, NodeId(0), b), c.clone()).run()
                    }
                }),
            ),
        ];
        for (name, run) in cases {
            let (mut p50, mut p99) = (Vec::new(), Vec::new());
            let (mut vcs, mut takeovers, mut stalled) = (0, 0, 0);
            for seed in 0..seeds {
                let r = run(seed);
                assert!(r.violations.is_empty(), "{name}: {:?}", r.violations);
                p50.push(r.latency_p50_ms);
                p99.push(r.latency_p99_ms);
                vcs += r.view_changes;
                takeovers += counter(&r, "takeovers");
                stalled += u64::from(!r.live);
            }
            println!(
                "{name} | {:.0} / {:.0} ms | {:.1} | {:.1} | {stalled}",
                median(&mut p50),
                median(&mut p99),
                vcs as f64 / seeds as f64,
                takeovers as f64 / seeds as f64
            );
        }
    }
}
