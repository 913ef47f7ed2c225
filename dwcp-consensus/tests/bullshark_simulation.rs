//! Bullshark under the simulator: every faulty behaviour at n = 4 and n = 7, over
//! 225 seeds in all, with zero safety violations and every run live after healing;
//! a node restarted from its `redb` store at every effect boundary never signs a
//! second header for a round or votes twice; a node cut off or down for longer than
//! garbage collection keeps rounds catches up by state transfer.

use dwcp_consensus::bullshark::{BullsharkConfig, BullsharkEngine};
use dwcp_consensus::registry::{check_seeds, simulate, BullsharkProtocol, Protocol};
use dwcp_consensus::sim::{scenario, Partition, SimConfig, SimReport, Simulation};
use dwcp_core::Time;
use std::time::Duration;

const SEEDS: u64 = 15;

fn sweep(nodes: usize, faulty: usize, behaviour: &str) {
    if let Err(e) = check_seeds::<BullsharkProtocol>(nodes, faulty, behaviour, SEEDS) {
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
    n4_honest: 4, 0, "honest";
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

fn run_with(cfg: SimConfig) -> SimReport {
    let bcfg = BullsharkProtocol::sim_config();
    Simulation::new(cfg, move |keys, committee, recovered| {
        BullsharkEngine::new(keys, committee, bcfg.clone(), recovered).expect("restore")
    })
    .run()
}

#[test]
fn restart_from_redb_at_every_effect_boundary_never_contradicts() {
    for (n, f, seed) in [(4, 1, 1u64), (7, 2, 2)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = scenario(n, f, "crash", seed).expect("scenario");
        cfg.store_dir = Some(dir.path().to_path_buf());
        cfg.crash.mean_uptime = Duration::from_millis(40);
        cfg.crash.mean_downtime = Duration::from_millis(60);
        let r = run_with(cfg);
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
fn same_seed_same_run() {
    let run = || simulate::<BullsharkProtocol>(scenario(4, 1, "crash", 7).expect("scenario"));
    let (a, b) = (run(), run());
    assert_eq!(
        (a.messages, a.bytes, a.decisions, a.events),
        (b.messages, b.bytes, b.decisions, b.events)
    );
}

#[test]
fn a_committee_of_one_commits_alone() {
    let r = simulate::<BullsharkProtocol>(scenario(1, 0, "honest", 4).expect("scenario"));
    assert!(r.violations.is_empty() && r.live, "{:?}", r.violations);
    assert!(r.decisions > 0);
    assert_eq!(r.messages, 0, "nobody to talk to");
}

#[test]
fn a_long_partition_of_the_leader_heals() {
    // Node 0 (the first leader) is cut off for 2 s, longer than many leader
    // timeouts; the others go on without it, and it catches up after healing.
    let mut cfg = scenario(4, 0, "honest", 9).expect("scenario");
    cfg.network.partitions.push(Partition {
        start: Time(200_000),
        end: Time(2_200_000),
        group_of: vec![1, 0, 0, 0],
    });
    let r = run_with(cfg);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert!(r.live, "{:?}", r.node_status);
    assert!(r.view_changes > 0, "the leader's absence cost no timeout");
}

/// Node 3 is cut off for 5.8 s while the others go on for about 50 rounds with
/// garbage collection 10 rounds below the last commit: when the partition heals,
/// nobody holds the rounds it misses any more.
fn behind_garbage_collection(seed: u64, bcfg: BullsharkConfig) -> SimReport {
    let mut cfg = scenario(4, 0, "honest", seed).expect("scenario");
    cfg.network.partitions.push(Partition {
        start: Time(200_000),
        end: Time(6_000_000),
        group_of: vec![0, 0, 0, 1],
    });
    cfg.end = Time(15_000_000);
    Simulation::new(cfg, move |keys, committee, recovered| {
        BullsharkEngine::new(keys, committee, bcfg.clone(), recovered).expect("restore")
    })
    .run()
}

#[test]
fn a_node_behind_garbage_collection_rejoins_by_state_transfer() {
    let bcfg = BullsharkConfig {
        gc_depth: 10,
        ..BullsharkProtocol::sim_config()
    };
    for seed in 0..4 {
        let r = behind_garbage_collection(seed, bcfg.clone());
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        assert!(r.live, "seed {seed}: {:?}", r.node_status);
        // It takes part in the DAG again, not only in the output.
        let rounds: Vec<u64> = r.node_status.iter().flatten().map(|s| s.view).collect();
        let (lo, hi) = (rounds.iter().min(), rounds.iter().max());
        assert!(
            hi.zip(lo).is_some_and(|(hi, lo)| hi - lo <= 4),
            "seed {seed}: rounds {rounds:?}"
        );
    }
    // Without the committed order to take from its peers, the node never catches up.
    let r = behind_garbage_collection(
        0,
        BullsharkConfig {
            retain_order_bytes: 0,
            ..bcfg
        },
    );
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert!(!r.live, "the scenario does not need state transfer");
}

#[test]
fn a_node_down_for_longer_than_garbage_collection_rejoins_from_its_store() {
    let bcfg = BullsharkConfig {
        gc_depth: 10,
        ..BullsharkProtocol::sim_config()
    };
    for seed in 0..4 {
        let mut cfg = scenario(4, 1, "crash", seed).expect("scenario");
        cfg.crash.mean_uptime = Duration::from_millis(500);
        cfg.crash.mean_downtime = Duration::from_millis(2500);
        cfg.crash.until = Time(1_500_000);
        cfg.end = Time(15_000_000);
        let bcfg = bcfg.clone();
        let r = Simulation::new(cfg, move |keys, committee, recovered| {
            BullsharkEngine::new(keys, committee, bcfg.clone(), recovered).expect("restore")
        })
        .run();
        assert!(r.crashes >= 1, "seed {seed}: no crash");
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        assert!(r.live, "seed {seed}: {:?}", r.node_status);
    }
}

/// The whole committee loses power at once at `crash_at`, and every node restarts
/// from its store; the client goes on sending once nodes are back.
fn whole_cluster_crash(seed: u64, crash_at: Time, end: Time) -> SimReport {
    let mut cfg = scenario(4, 0, "honest", seed).expect("scenario");
    cfg.crash.crash_all_at = Some(crash_at);
    cfg.crash.mean_downtime = Duration::from_millis(300);
    cfg.workload.until = Time(2_000_000);
    cfg.end = end;
    cfg.keep_log = true;
    run_with(cfg)
}

#[test]
fn a_whole_cluster_crash_loses_no_acknowledged_batch() {
    for seed in 0..4 {
        // Bursts every 50 ms are sealed 20 ms later: at 1.035 s every transaction
        // sent so far is in a batch, and the latest batches are acknowledged but
        // not committed yet.
        let crash_at = Time(1_035_000);
        let before = whole_cluster_crash(seed, crash_at, Time(crash_at.0 - 1));
        assert!(
            before.transactions_committed < before.transactions_submitted,
            "seed {seed}: everything was committed before the crash"
        );
        let r = whole_cluster_crash(seed, crash_at, Time(12_000_000));
        assert_eq!(r.crashes, 4, "seed {seed}");
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        // Every transaction, those in batches stored before the crash included, is
        // committed by every node after it.
        assert!(r.live, "seed {seed}: {:?}", r.node_status);
        assert!(
            r.decisions > before.decisions,
            "seed {seed}: no commit after"
        );
        // The order decided before the crash stands: same digests at the same places.
        assert_eq!(
            r.log[..before.log.len()],
            before.log[..],
            "seed {seed}: the log was rewritten"
        );
    }
}

/// Refuses every tenth transaction of the simulated client (by its counter).
struct EveryTenth;

impl dwcp_core::Validator for EveryTenth {
    fn check_tx(&self, tx: &[u8]) -> Result<(), dwcp_core::Refused> {
        let counter = tx
            .get(8..16)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes);
        match counter {
            Some(k) if k % 10 == 0 => Err(dwcp_core::Refused("every tenth".into())),
            _ => Ok(()),
        }
    }
}

/// Nodes 1-3 check transactions with their application; node 0 does not (it is
/// Byzantine, or misconfigured) and seals refused ones into its batches. The others
/// never acknowledge those batches, so they never become ready, never enter a
/// header and never commit; everything else commits everywhere.
#[test]
fn batches_the_application_refuses_are_never_acknowledged() {
    let mut cfg = scenario(4, 0, "honest", 4).expect("scenario");
    cfg.keep_log = true;
    let bcfg = BullsharkProtocol::sim_config();
    let r = Simulation::new(cfg, move |keys, committee, recovered| {
        let checked = keys.id != dwcp_core::NodeId(0);
        let node = BullsharkEngine::new(keys, committee, bcfg.clone(), recovered).expect("node");
        if checked {
            node.with_validator(std::sync::Arc::new(EveryTenth))
        } else {
            node
        }
    })
    .run();
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    let refused = |tx: &bytes::Bytes| dwcp_core::Validator::check_tx(&EveryTenth, tx).is_err();
    let committed: Vec<&bytes::Bytes> = r.log.iter().flat_map(|c| &c.transactions).collect();
    assert!(
        !committed.iter().any(|tx| refused(tx)),
        "a refused transaction committed"
    );
    let expected = r.transactions_submitted - r.transactions_submitted / 10;
    assert_eq!(
        committed.len(),
        expected,
        "every accepted transaction committed"
    );
    let refusals: u64 = r.node_status[1..]
        .iter()
        .flatten()
        .flat_map(|s| &s.counters)
        .filter(|(name, _)| name == "refused_batches")
        .map(|(_, n)| n)
        .sum();
    assert!(refusals > 0, "node 0's batches were refused");
}
