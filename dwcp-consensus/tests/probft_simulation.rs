//! ProBFT in the simulator: honest runs commit everywhere with far fewer messages
//! than PBFT, and faulty replicas up to the declared `f_max` break neither safety
//! nor liveness.

use dwcp_consensus::registry::{check_seeds, simulate, PbftProtocol, ProbftProtocol};
use dwcp_consensus::sim::scenario;

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
