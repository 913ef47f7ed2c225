//! Trust and selection together: the colluding clique of the design note, the
//! hazard it poses to a committee and primary group chosen by rank, and the two
//! mitigations (a primary group by lottery; evidence from committee members only).

use super::eigentrust::{Trust, TrustParams};
use super::selection::{committee, committee_size_for, primary_group};
use super::LocalTrust;
use dwcp_core::NodeId;

const N: usize = 100;
const COLLUDERS: std::ops::Range<u16> = 75..100;
const GENESIS: std::ops::Range<u16> = 0..10;

fn is_colluder(id: NodeId) -> bool {
    COLLUDERS.contains(&id.0)
}

fn genesis() -> Vec<NodeId> {
    GENESIS.map(NodeId).collect()
}

fn share(t: &[Trust], who: impl Fn(NodeId) -> bool) -> f64 {
    let total: u64 = t.iter().map(|x| x.0).sum();
    let part: u64 = t
        .iter()
        .enumerate()
        .filter(|(i, _)| who(NodeId(*i as u16)))
        .map(|(_, x)| x.0)
        .sum();
    part as f64 / total as f64
}

/// 75 honest nodes rate everyone else uniformly, colluders included (the clique
/// behaves well); the 25 colluders rate only each other. Pre-trust: the honest
/// genesis committee 0..10.
fn clique_trust() -> Vec<Trust> {
    let mut lt = LocalTrust::new(N).expect("n");
    for i in 0..N as u16 {
        for j in 0..N as u16 {
            if i != j && (!COLLUDERS.contains(&i) || COLLUDERS.contains(&j)) {
                lt.add_satisfied(NodeId(i), NodeId(j)).expect("in range");
            }
        }
    }
    lt.global_trust(&genesis(), &TrustParams::default())
        .expect("trust")
}

#[test]
fn a_clique_takes_the_predicted_share_of_trust() {
    let t = clique_trust();
    let a = TrustParams::default().alpha.to_f64();
    // β: the share of an honest node's ratings that point into the clique.
    let beta = 25.0 / 99.0;
    let predicted = (1.0 - a) * beta / (a + (1.0 - a) * beta);
    let got = share(&t, is_colluder);
    assert!((got - predicted).abs() < 1e-6, "{got} vs {predicted}");
    assert!((0.58..0.60).contains(&got), "{got}");
    // Each colluder holds about 1/a times an honest node outside genesis.
    let ratio = t[80].to_f64() / t[50].to_f64();
    assert!((6.5..6.8).contains(&ratio), "{ratio}");
}

#[test]
fn by_rank_the_clique_takes_the_committee_and_the_group_by_lottery_only_its_share() {
    let t = clique_trust();
    // Ranking hands the clique all of a 10-member committee and all 25 colluders
    // land in the top 31: this is the hazard when every node produces evidence.
    for epoch in 0..5 {
        assert!(committee(&t, committee_size_for(N, 10), epoch, &[])
            .into_iter()
            .all(is_colluder));
    }
    let size = committee_size_for(N, 31);
    assert_eq!(size, 31);
    let (mut committee_seats, mut committee_colluders) = (0usize, 0usize);
    let (mut group_seats, mut group_colluders, mut by_rank_colluders) = (0usize, 0, 0);
    for epoch in 0..1000 {
        let c = committee(&t, size, epoch, &[]);
        assert_eq!(c.iter().filter(|id| is_colluder(**id)).count(), 25);
        committee_seats += c.len();
        committee_colluders += c.iter().filter(|id| is_colluder(**id)).count();
        let g = primary_group(&c, 4, epoch);
        group_seats += g.len();
        group_colluders += g.iter().filter(|id| is_colluder(**id)).count();
        // The top 4 members by trust, for contrast.
        let mut by_rank = c.clone();
        by_rank.sort_by_key(|id| std::cmp::Reverse(t[id.index()]));
        by_rank_colluders += by_rank[..4].iter().filter(|id| is_colluder(**id)).count();
    }
    let committee_frac = committee_colluders as f64 / committee_seats as f64;
    let group_frac = group_colluders as f64 / group_seats as f64;
    assert!(
        (group_frac - committee_frac).abs() <= 0.05,
        "{group_frac} vs {committee_frac}"
    );
    assert_eq!(
        by_rank_colluders, group_seats,
        "by rank the clique holds every seat"
    );
}

#[test]
fn with_evidence_from_committee_members_only_the_clique_gains_nothing() {
    // Only the genesis committee produces evidence (rating everyone else
    // uniformly); everyone else's row is empty and falls back to the pre-trust.
    let mut lt = LocalTrust::new(N).expect("n");
    for i in GENESIS {
        for j in 0..N as u16 {
            if i != j {
                lt.add_satisfied(NodeId(i), NodeId(j)).expect("in range");
            }
        }
    }
    let t = lt
        .global_trust(&genesis(), &TrustParams::default())
        .expect("trust");
    // A colluder is worth exactly what an honest non-member is.
    assert_eq!(t[80], t[50]);
    for epoch in 0..20 {
        assert_eq!(committee(&t, 10, epoch, &[]), genesis());
    }
}
