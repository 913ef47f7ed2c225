//! Twins sweeps (Bano et al., OPODIS 2021) of every engine, small enough for CI: a
//! fixed slice of the one-twin space at n = 4 and seeded random cases at n = 7 with
//! two twins. `dwcpd twins` runs the large sweeps whose figures BENCHMARKS.md quotes.
//! The positive control shows the sweep has teeth: PBFT with a quorum of f + 1
//! forks within the first cases.

use dwcp_consensus::pbft::{Pbft, PbftConfig};
use dwcp_consensus::sim::{
    sim_pbft_config, twins_random_sweep, twins_sweep, EngineKind, Simulation, TwinsCase,
    TwinsSummary,
};

fn assert_clean(what: &str, s: &TwinsSummary) {
    assert_eq!(s.unsafe_cases, 0, "{what}: {:?}", s.examples);
    assert_eq!(s.liveness_failures, 0, "{what}: {:?}", s.examples);
    assert!(
        s.split_cases > s.cases / 2,
        "{what}: most cases split a twin"
    );
    assert!(s.view_change_cases > 0, "{what}: some case changed view");
}

#[test]
fn pbft_one_twin_n4() {
    let s = twins_sweep(EngineKind::Pbft, 4, 4, 0..400, 2);
    assert_eq!(s.cases, 400);
    assert_clean("pbft n=4", &s);
}

#[test]
fn pbft_two_twins_n7_random() {
    let s = twins_random_sweep(EngineKind::Pbft, 7, 2, 4, 0..40, 7, 2);
    assert_eq!(s.cases, 40);
    assert_clean("pbft n=7", &s);
}

#[test]
fn pbft_with_a_quorum_of_f_plus_one_forks_under_twins() {
    let weakened = PbftConfig {
        unsafe_quorum_override: Some(2),
        ..sim_pbft_config()
    };
    let first_fork = (0..200u64).find(|rank| {
        let case = TwinsCase::unrank(4, 4, *rank);
        let pcfg = weakened.clone();
        let r = Simulation::new(case.sim_config(*rank), move |keys, committee, recovered| {
            Pbft::new(keys, committee, pcfg.clone(), recovered).expect("replica")
        })
        .with_script(case)
        .run();
        r.violations.iter().any(|v| v.starts_with("agreement"))
    });
    assert!(first_fork.is_some(), "no fork in 200 cases");
}
