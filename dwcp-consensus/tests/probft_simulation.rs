//! ProBFT in the simulator: honest runs commit everywhere with far fewer messages
//! than PBFT, and faulty replicas up to the declared `f_max` break neither safety
//! nor liveness.

use dwcp_consensus::probft::ProbftConfig;
use dwcp_consensus::registry::probft_actors::SplitVote;
use dwcp_consensus::registry::{
    check_seeds, simulate, simulation_with, PbftProtocol, ProbftProtocol, Protocol,
};
use dwcp_consensus::sim::{scenario, Behaviour};

#[test]
fn an_honest_committee_decides_everything_everywhere() {
    for n in [4, 16] {
        let r = simulate::<ProbftProtocol>(scenario(n, 0, "honest", 1).unwrap());
        assert!(r.violations.is_empty(), "n = {n}: {:?}", r.violations);
        assert!(r.live, "n = {n}: {:?}", r.node_status);
        assert!(r.decisions > 20, "n = {n}: {} decisions", r.decisions);
    }
}

#[test]
fn at_n_64_it_sends_a_fraction_of_pbfts_messages() {
    let p = simulate::<ProbftProtocol>(scenario(64, 0, "honest", 2).unwrap());
    let b = simulate::<PbftProtocol>(scenario(64, 0, "honest", 2).unwrap());
    assert!(p.violations.is_empty() && p.live, "{:?}", p.violations);
    let (mp, mb) = (
        p.messages as f64 / p.decisions as f64,
        b.messages as f64 / b.decisions as f64,
    );
    assert!(
        mp < 0.8 * mb,
        "probft {mp:.0} vs pbft {mb:.0} messages per decision"
    );
}

#[test]
fn faulty_replicas_up_to_f_max() {
    for b in [
        "silent",
        "equivocate",
        "garbage",
        "badsig",
        "replay",
        "crash",
    ] {
        check_seeds::<ProbftProtocol>(16, 3, b, 3).unwrap_or_else(|e| panic!("{b}: {e}"));
    }
}

/// The split vote (design note): an equivocating leader shows half the replicas
/// one proposal and half another, and its accomplices vote on both sides, towards
/// each replica for the value it holds. Counting votes alone forks; with the
/// evidence rule (a replica holding two headers for one view and slot stops
/// voting there) the same runs stay safe. The positive control shows the checker
/// catches the fork. The quorums are sized for `f_max = 5` with a loose `ε_safe`
/// (risk about 0.6 per replica and view), so that five Byzantine replicas make
/// the attack likely at n = 16.
#[test]
fn a_split_vote_forks_without_the_evidence_rule_and_not_with_it() {
    let loose = ProbftConfig {
        f_max: Some(5),
        l: Some(1.6),
        o: Some(1.45),
        eps_safe: 0.99,
        pi_live: 0.01,
        ..ProbftProtocol::sim_config()
    };
    let s = loose.quorum(16).unwrap().figures().s;
    let mut forks = [0usize; 2];
    for (k, rule) in [true, false].into_iter().enumerate() {
        for seed in 0..10u64 {
            let mut cfg = scenario(16, 0, "honest", seed).unwrap();
            // The equivocating leader of view 0 and four accomplices.
            for b in [0, 3, 6, 9, 12] {
                cfg.behaviours[b] = Behaviour::Scripted;
            }
            let pcfg = ProbftConfig {
                unsafe_no_evidence_rule: !rule,
                ..loose.clone()
            };
            let r = simulation_with::<ProbftProtocol>(cfg, pcfg)
                .with_script(SplitVote::new(0, &[3, 6, 9, 12], |n| n.0 % 2 == 1, s))
                .run();
            if !r.violations.is_empty() {
                forks[k] += 1;
            }
        }
    }
    assert_eq!(forks[0], 0, "with the evidence rule");
    assert!(
        forks[1] > 0,
        "without it the split vote must fork: {forks:?}"
    );
}
