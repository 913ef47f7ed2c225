//! PBFT under the simulator: every faulty behaviour at n = 4 and n = 7, over 210
//! seeds in all, with zero safety violations and every run live after healing; a
//! node restarted from its `redb` store at every effect boundary never contradicts
//! itself; and the checker catches the fork a too-small quorum causes.

use dwcp_consensus::pbft::{Pbft, PbftConfig};
use dwcp_consensus::registry::{check_seeds, simulate, PbftProtocol, Protocol};
use dwcp_consensus::sim::{scenario, Behaviour, SimReport, Simulation};

const SEEDS: u64 = 15;

fn sweep(nodes: usize, faulty: usize, behaviour: &str) {
    if let Err(e) = check_seeds::<PbftProtocol>(nodes, faulty, behaviour, SEEDS) {
        panic!("{e}");
    }
}

macro_rules! sweeps {
    ($($name:ident: $n:expr, $f:expr, $b:expr;)*) => {$(
        #[test]
        fn $name() {
            sweep($n, $f, $b);
        }
    )*};
}

sweeps! {
    n4_silent: 4, 1, "silent";
    n4_equivocate: 4, 1, "equivocate";
    n4_garbage: 4, 1, "garbage";
    n4_badsig: 4, 1, "badsig";
    n4_replay: 4, 1, "replay";
    n4_crash: 4, 1, "crash";
    n4_partition: 4, 0, "partition";
    n7_silent: 7, 2, "silent";
    n7_equivocate: 7, 2, "equivocate";
    n7_garbage: 7, 2, "garbage";
    n7_badsig: 7, 2, "badsig";
    n7_replay: 7, 2, "replay";
    n7_crash: 7, 2, "crash";
    n7_partition: 7, 0, "partition";
}

fn run_with(cfg: dwcp_consensus::sim::SimConfig, pcfg: PbftConfig) -> SimReport {
    Simulation::new(cfg, move |keys, committee, recovered| {
        Pbft::new(keys, committee, pcfg.clone(), recovered).expect("restore")
    })
    .run()
}

#[test]
fn restart_from_redb_at_every_effect_boundary_never_contradicts() {
    for (n, f, seed) in [(4, 1, 1u64), (7, 2, 2)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = scenario(n, f, "crash", seed).expect("scenario");
        cfg.store_dir = Some(dir.path().to_path_buf());
        cfg.crash.mean_uptime = std::time::Duration::from_millis(40);
        cfg.crash.mean_downtime = std::time::Duration::from_millis(60);
        let r = run_with(cfg, PbftProtocol::sim_config());
        assert!(
            r.crashes >= 16,
            "only {} crashes: not every boundary was hit",
            r.crashes
        );
        assert!(r.violations.is_empty(), "n={n}: {:?}", r.violations);
        assert!(r.live, "n={n}: {:?}", r.node_status);
    }
}

#[test]
fn checker_catches_the_fork_of_a_weakened_quorum() {
    let mut forks = 0;
    for seed in 0..10u64 {
        let mut cfg = scenario(4, 1, "equivocate", seed).expect("scenario");
        // Node 0 leads view 0 and equivocates.
        cfg.behaviours = vec![
            Behaviour::Equivocate,
            Behaviour::Honest,
            Behaviour::Honest,
            Behaviour::Honest,
        ];
        let weak = PbftConfig {
            unsafe_quorum_override: Some(2), // f + 1 where 2f + 1 is needed
            ..PbftProtocol::sim_config()
        };
        let r = run_with(cfg.clone(), weak);
        if r.violations.iter().any(|v| v.starts_with("agreement")) {
            forks += 1;
        }
        let correct = run_with(cfg, PbftProtocol::sim_config());
        assert!(
            correct.violations.is_empty(),
            "seed {seed}: {:?}",
            correct.violations
        );
    }
    assert!(
        forks >= 5,
        "the weakened quorum forked in only {forks} of 10 runs"
    );
}

#[test]
fn same_seed_same_run() {
    let a = simulate::<PbftProtocol>(scenario(4, 1, "crash", 7).expect("scenario"));
    let b = simulate::<PbftProtocol>(scenario(4, 1, "crash", 7).expect("scenario"));
    assert_eq!(
        (a.messages, a.bytes, a.decisions, a.events),
        (b.messages, b.bytes, b.decisions, b.events)
    );
}

#[test]
fn honest_run_has_textbook_message_count() {
    // With n = 4 and no faults every batch costs (n-1) + (n-1)^2 + n(n-1) = 24
    // messages, plus a checkpoint round of n(n-1) = 12 every 16 batches.
    let r = simulate::<PbftProtocol>(scenario(4, 0, "honest", 3).expect("scenario"));
    assert!(r.violations.is_empty() && r.live);
    let per = r.messages as f64 / r.decisions as f64;
    assert!(
        (24.0..=24.0 + 12.0 / 16.0 + 0.5).contains(&per),
        "{per} messages per decision"
    );
}

#[test]
fn a_committee_of_one_commits_alone() {
    let r = simulate::<PbftProtocol>(scenario(1, 0, "honest", 4).expect("scenario"));
    assert!(r.violations.is_empty() && r.live, "{:?}", r.violations);
    assert!(r.decisions > 0);
    assert_eq!(r.messages, 0, "nobody to talk to");
}

/// A replica down while 10,000 batches commit rejoins: its peers keep only the
/// newest 1,024 batches (with commit certificates) in memory, so it catches up
/// from their stores, taking each part once `f+1` of them sent the same chain.
#[test]
fn a_replica_down_for_ten_thousand_batches_rejoins_from_its_peers_stores() {
    let mut cfg = scenario(4, 0, "honest", 11).expect("scenario");
    cfg.scheme = dwcp_core::crypto::SignatureScheme::InsecureFast;
    cfg.workload.burst_interval = std::time::Duration::from_millis(2);
    cfg.workload.burst_size = 4;
    cfg.workload.until = dwcp_core::Time(7_000_000);
    cfg.end = dwcp_core::Time(20_000_000);
    let pcfg = PbftConfig {
        batch_size: 1,
        ..PbftProtocol::sim_config()
    };
    let down = dwcp_core::NodeId(3);
    let r = Simulation::new(cfg, move |keys, committee, recovered| {
        Pbft::new(keys, committee, pcfg.clone(), recovered).expect("restore")
    })
    .with_outage(down, dwcp_core::Time(100_000), dwcp_core::Time(6_500_000))
    .run();
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert!(r.live, "{:?}", r.node_status);
    let heights: Vec<u64> = r
        .node_status
        .iter()
        .map(|s| s.as_ref().map_or(0, |s| s.last_committed))
        .collect();
    assert!(
        heights[0] >= 12_000,
        "{heights:?}: 10,000 batches while it was down"
    );
    assert!(heights.iter().all(|h| *h == heights[0]), "{heights:?}");
}
