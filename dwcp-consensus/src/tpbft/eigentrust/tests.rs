//! Unit and property tests of fixed-point EigenTrust: determinism, the fallback and
//! exclusion rules, conservation of mass, and agreement with the `f64` reference
//! within the bound derived in the module docs.

use super::*;
use proptest::prelude::*;

fn id(i: usize) -> NodeId {
    NodeId(u16::try_from(i).expect("small id"))
}

fn ids(v: &[u16]) -> Vec<NodeId> {
    v.iter().copied().map(NodeId).collect()
}

fn sum(t: &[Trust]) -> u64 {
    t.iter().map(|x| x.0).sum()
}

/// The L1 bound on `‖t̂⁽ᴷ⁾ − t⁽ᴷ⁾‖₁` from the module docs, in units of 2⁻⁴⁰:
/// `2N` (pre-trust rounding) + `(3N + 2 + 2aN)/a` (per-step errors through the
/// contraction) + 1 (the reference's own `f64` error).
fn fixed_vs_exact_bound(n: usize, alpha: f64) -> f64 {
    let n = n as f64;
    (2.0 * n + (3.0 * n + 2.0 + 2.0 * alpha * n) / alpha + 1.0) * Trust::ULP
}

/// The bound on the mass deficit `ONE − Σ t̂`, in units: `min(K, 1/a)·2N`.
fn mass_bound(n: usize, params: &TrustParams) -> u64 {
    let by_steps = u64::from(params.iterations) * 2 * n as u64;
    let by_contraction = (2.0 * n as f64 / params.alpha.to_f64()).ceil() as u64;
    by_steps.min(by_contraction)
}

fn l1(a: &[Trust], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x.to_f64() - y).abs()).sum()
}

/// A dense, deterministic, uneven rating pattern among `n` nodes.
fn dense(n: usize) -> LocalTrust {
    let mut lt = LocalTrust::new(n).expect("n");
    for i in 0..n {
        for j in 0..n {
            let sat = ((i * 7 + j * 13) % 11) as u64;
            let unsat = ((i * 3 + j * 5) % 4) as u64;
            lt.add(id(i), id(j), sat, unsat).expect("in range");
        }
    }
    lt
}

#[test]
fn default_params() {
    let p = TrustParams::default();
    assert_eq!(p.alpha, Trust(164_926_744_166)); // ⌊0.15·2⁴⁰⌋
    assert_eq!(p.iterations, 150);
    assert!(p.validate().is_ok());
    let bound = p.convergence_bound();
    assert!(bound > 5.0e-11 && bound < 5.5e-11, "{bound}");
}

#[test]
fn params_are_validated() {
    let bad = |alpha, iterations| TrustParams { alpha, iterations }.validate();
    assert_eq!(bad(Trust::ZERO, 10), Err(TrustError::InvalidAlpha));
    assert_eq!(bad(Trust::ONE, 10), Err(TrustError::InvalidAlpha));
    assert_eq!(bad(Trust(u64::MAX), 10), Err(TrustError::InvalidAlpha));
    assert_eq!(bad(DEFAULT_ALPHA, 0), Err(TrustError::ZeroIterations));
    assert!(bad(Trust(1), 1).is_ok());
    assert!(bad(Trust(Trust::ONE.0 - 1), 1).is_ok());
    let lt = LocalTrust::new(3).expect("n");
    let p = TrustParams {
        alpha: Trust::ZERO,
        iterations: 5,
    };
    assert_eq!(
        lt.global_trust(&ids(&[0]), &p),
        Err(TrustError::InvalidAlpha)
    );
    assert_eq!(
        reference_global_trust(&lt, &ids(&[0]), 1.0, 5),
        Err(TrustError::InvalidAlpha)
    );
}

#[test]
fn ids_from_outside_are_checked() {
    let mut lt = LocalTrust::new(3).expect("n");
    let unknown = TrustError::UnknownNode {
        id: NodeId(3),
        n: 3,
    };
    assert_eq!(lt.add_satisfied(NodeId(0), NodeId(3)), Err(unknown.clone()));
    assert_eq!(
        lt.add_unsatisfied(NodeId(3), NodeId(0)),
        Err(unknown.clone())
    );
    assert_eq!(lt.exclude(NodeId(3)), Err(unknown.clone()));
    assert_eq!(lt.pre_trust(&ids(&[0, 3])), Err(unknown));
    assert_eq!(lt.pre_trust(&[]), Err(TrustError::NoPreTrust));
    assert_eq!(
        LocalTrust::new(MAX_NODES + 1),
        Err(TrustError::TooManyNodes(MAX_NODES + 1))
    );
    assert!(LocalTrust::new(MAX_NODES).is_ok());
    let c = lt.normalise();
    assert_eq!(c.weight(NodeId(0), NodeId(99)), None);
    assert_eq!(c.weight(NodeId(99), NodeId(0)), None);
    assert!(!c.falls_back(NodeId(99)));
}

#[test]
fn self_ratings_and_empty_pairs_are_ignored() {
    let mut lt = LocalTrust::new(3).expect("n");
    lt.add(NodeId(1), NodeId(1), 50, 0).expect("ok");
    lt.add(NodeId(1), NodeId(2), 0, 0).expect("ok");
    assert_eq!(lt, LocalTrust::new(3).expect("n"));
    assert_eq!(
        lt.interactions(NodeId(1), NodeId(1)),
        Interactions::default()
    );
}

#[test]
fn counts_saturate() {
    let mut lt = LocalTrust::new(2).expect("n");
    lt.add(NodeId(0), NodeId(1), u64::MAX, 3).expect("ok");
    lt.add(NodeId(0), NodeId(1), u64::MAX, u64::MAX)
        .expect("ok");
    let e = lt.interactions(NodeId(0), NodeId(1));
    assert_eq!((e.sat, e.unsat), (u64::MAX, u64::MAX));
    assert_eq!(e.local(), 0);
    assert_eq!(e.positive(), 0);
    // Extreme counts do not overflow the normalisation or the iteration.
    let mut lt = LocalTrust::new(3).expect("n");
    lt.add(NodeId(0), NodeId(1), u64::MAX, 0).expect("ok");
    lt.add(NodeId(0), NodeId(2), u64::MAX, 0).expect("ok");
    lt.add(NodeId(1), NodeId(2), u64::MAX, 1).expect("ok");
    let c = lt.normalise();
    assert_eq!(
        c.weight(NodeId(0), NodeId(1)),
        Some(Trust(Trust::ONE.0 / 2))
    );
    assert_eq!(c.weight(NodeId(1), NodeId(2)), Some(Trust::ONE));
    let t = lt
        .global_trust(&ids(&[0]), &TrustParams::default())
        .expect("trust");
    assert!(sum(&t) <= Trust::ONE.0);
}

#[test]
fn negative_local_trust_counts_as_zero() {
    let mut lt = LocalTrust::new(3).expect("n");
    lt.add(NodeId(0), NodeId(1), 2, 5).expect("ok");
    lt.add(NodeId(0), NodeId(2), 3, 1).expect("ok");
    assert_eq!(lt.interactions(NodeId(0), NodeId(1)).local(), -3);
    let c = lt.normalise();
    assert_eq!(c.weight(NodeId(0), NodeId(1)), Some(Trust::ZERO));
    assert_eq!(c.weight(NodeId(0), NodeId(2)), Some(Trust::ONE));
}

#[test]
fn pre_trust_is_uniform_with_the_remainder_on_the_lowest_id() {
    let lt = LocalTrust::new(10).expect("n");
    let p = lt.pre_trust(&ids(&[7, 2, 5, 2])).expect("p");
    let share = Trust::ONE.0 / 3;
    assert_eq!(Trust::ONE.0 - 3 * share, 1);
    assert_eq!(p[2], Trust(share + 1));
    assert_eq!(p[5], Trust(share));
    assert_eq!(p[7], Trust(share));
    assert_eq!(sum(&p), Trust::ONE.0);
    assert_eq!(p.iter().filter(|x| x.0 > 0).count(), 3);
}

#[test]
fn an_empty_matrix_gives_the_pre_trust_exactly() {
    for n in [1, 2, 7, 30] {
        let lt = LocalTrust::new(n).expect("n");
        let pre: Vec<NodeId> = (0..n).step_by(3).map(id).collect();
        let p = lt.pre_trust(&pre).expect("p");
        for iterations in [1, 2, 150] {
            let params = TrustParams {
                iterations,
                ..TrustParams::default()
            };
            assert_eq!(lt.global_trust(&pre, &params).expect("t"), p);
        }
    }
}

#[test]
fn zero_rows_fall_back_to_the_pre_trust() {
    // Node 0 rates node 1; node 1 rates only node 2 badly; node 2 rates nobody.
    let mut lt = LocalTrust::new(4).expect("n");
    lt.add_satisfied(NodeId(0), NodeId(1)).expect("ok");
    lt.add_unsatisfied(NodeId(1), NodeId(2)).expect("ok");
    let c = lt.normalise();
    assert!(!c.falls_back(NodeId(0)));
    assert!(c.falls_back(NodeId(1)));
    assert!(c.falls_back(NodeId(2)));
    assert_eq!(c.weight(NodeId(1), NodeId(3)), None);
    // With one pre-trusted node 3, a step of the fallback rows sends their trust
    // to node 3 exactly as if they rated node 3 alone.
    let mut explicit = LocalTrust::new(4).expect("n");
    explicit.add_satisfied(NodeId(0), NodeId(1)).expect("ok");
    for i in [1, 2] {
        explicit.add_satisfied(NodeId(i), NodeId(3)).expect("ok");
    }
    // Node 3's own row falls back in both, to itself.
    let params = TrustParams::default();
    let pre = ids(&[3]);
    assert_eq!(
        lt.global_trust(&pre, &params).expect("t"),
        explicit.global_trust(&pre, &params).expect("t")
    );
}

#[test]
fn an_excluded_node_gets_zero_trust() {
    let mut lt = dense(12);
    lt.exclude(NodeId(4)).expect("ok");
    lt.exclude(NodeId(0)).expect("ok");
    assert_eq!(lt.excluded(), ids(&[0, 4]));
    let c = lt.normalise();
    for i in 0..12 {
        assert_eq!(c.weight(id(i), NodeId(4)), Some(Trust::ZERO));
    }
    // Node 0 is pre-trusted but excluded: its pre-trust goes to the others.
    let pre = ids(&[0, 1, 2, 3]);
    let p = lt.pre_trust(&pre).expect("p");
    assert_eq!(p[0], Trust::ZERO);
    assert_eq!(p[1], Trust(Trust::ONE.0 / 3 + 1));
    let t = lt.global_trust(&pre, &TrustParams::default()).expect("t");
    assert_eq!(t[0], Trust::ZERO);
    assert_eq!(t[4], Trust::ZERO);
    assert!(t
        .iter()
        .enumerate()
        .all(|(i, x)| i == 0 || i == 4 || x.0 > 0));
    assert!(!super::super::committee(&t, 12, 3, &lt.excluded()).contains(&NodeId(4)));
    // Everyone pre-trusted excluded: no trust can be computed.
    assert_eq!(
        lt.global_trust(&ids(&[0, 4]), &TrustParams::default()),
        Err(TrustError::NoPreTrust)
    );
}

#[test]
fn runs_are_bit_identical() {
    let lt = dense(40);
    let pre: Vec<NodeId> = (0..10).map(id).collect();
    let params = TrustParams::default();
    let a = lt.global_trust(&pre, &params).expect("t");
    let b = lt.clone().global_trust(&pre, &params).expect("t");
    assert_eq!(a, b);
    assert_eq!(lt.normalise(), lt.normalise());
}

#[test]
fn dense_200_matches_the_reference() {
    let n = 200;
    let lt = dense(n);
    let pre: Vec<NodeId> = (0..10).map(id).collect();
    let params = TrustParams::default();
    let t = lt.global_trust(&pre, &params).expect("t");
    let a = params.alpha.to_f64();
    let r = reference_global_trust(&lt, &pre, a, params.iterations).expect("r");
    let err = l1(&t, &r);
    assert!(err <= fixed_vs_exact_bound(n, a), "{err:e}");
    let deficit = Trust::ONE.0 - sum(&t);
    assert!(deficit <= mass_bound(n, &params), "{deficit}");
}

#[test]
fn near_the_converged_limit() {
    // Against the reference run to convergence (0.85^2000 underflows any error),
    // the fixed point after K steps is within 2(1 − a)^K plus rounding.
    let n = 50;
    let lt = dense(n);
    let pre: Vec<NodeId> = (0..7).map(id).collect();
    for iterations in [20, 60, 150] {
        let params = TrustParams {
            iterations,
            ..TrustParams::default()
        };
        let t = lt.global_trust(&pre, &params).expect("t");
        let a = params.alpha.to_f64();
        let limit = reference_global_trust(&lt, &pre, a, 2000).expect("r");
        let bound = params.convergence_bound() + fixed_vs_exact_bound(n, a);
        let err = l1(&t, &limit);
        assert!(err <= bound, "K = {iterations}: {err:e} > {bound:e}");
    }
}

#[derive(Clone, Debug)]
enum Evidence {
    Sat(u16, u16),
    Unsat(u16, u16),
    Exclude(u16),
}

fn apply(n: usize, evidence: &[Evidence]) -> LocalTrust {
    let mut lt = LocalTrust::new(n).expect("n");
    for e in evidence {
        match *e {
            Evidence::Sat(i, j) => lt.add_satisfied(NodeId(i), NodeId(j)),
            Evidence::Unsat(i, j) => lt.add_unsatisfied(NodeId(i), NodeId(j)),
            Evidence::Exclude(j) => lt.exclude(NodeId(j)),
        }
        .expect("in range");
    }
    lt
}

fn evidence(n: u16) -> impl Strategy<Value = Evidence> {
    prop_oneof![
        6 => (0..n, 0..n).prop_map(|(i, j)| Evidence::Sat(i, j)),
        3 => (0..n, 0..n).prop_map(|(i, j)| Evidence::Unsat(i, j)),
        1 => (0..n).prop_map(Evidence::Exclude),
    ]
}

/// A small random case: N, the recorded counts, the pre-trusted set, and the
/// parameters (a anywhere in [0.05, 0.95], K in 1..=80).
fn case() -> impl Strategy<Value = (usize, LocalTrust, Vec<NodeId>, TrustParams)> {
    (1u16..=12).prop_flat_map(|n| {
        let counts = prop::collection::vec((0..n, 0..n, 0u64..6, 0u64..4), 0..60);
        let excluded = prop::collection::vec(0..n, 0..3);
        let pre = prop::collection::vec(0..n, 1..5);
        let alpha = (Trust::ONE.0 / 20)..(Trust::ONE.0 / 20 * 19);
        (counts, excluded, pre, alpha, 1u32..=80).prop_map(
            move |(counts, excluded, pre, alpha, iterations)| {
                let mut lt = LocalTrust::new(usize::from(n)).expect("n");
                for (i, j, s, u) in counts {
                    lt.add(NodeId(i), NodeId(j), s, u).expect("in range");
                }
                for j in excluded {
                    lt.exclude(NodeId(j)).expect("in range");
                }
                let params = TrustParams {
                    alpha: Trust(alpha),
                    iterations,
                };
                (usize::from(n), lt, ids(&pre), params)
            },
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn evidence_order_does_not_matter(
        (n, original, shuffled) in (2u16..=10).prop_flat_map(|n| {
            prop::collection::vec(evidence(n), 0..80)
                .prop_flat_map(move |ev| (Just(n), Just(ev.clone()), Just(ev).prop_shuffle()))
        })
    ) {
        let a = apply(usize::from(n), &original);
        let b = apply(usize::from(n), &shuffled);
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(a.normalise(), b.normalise());
        let pre = ids(&[0, 1]);
        let params = TrustParams::default();
        prop_assert_eq!(a.global_trust(&pre, &params), b.global_trust(&pre, &params));
    }

    #[test]
    fn fixed_point_tracks_the_f64_reference((n, lt, pre, params) in case()) {
        let a = params.alpha.to_f64();
        let fixed = lt.global_trust(&pre, &params);
        let reference = reference_global_trust(&lt, &pre, a, params.iterations);
        match (fixed, reference) {
            (Ok(t), Ok(r)) => {
                let bound = fixed_vs_exact_bound(n, a);
                let err = l1(&t, &r);
                prop_assert!(err <= bound, "L1 error {:e} > {:e}", err, bound);
                for (x, y) in t.iter().zip(&r) {
                    prop_assert!((x.to_f64() - y).abs() <= bound);
                }
            }
            (Err(e), Err(f)) => prop_assert_eq!(e, f),
            (x, y) => prop_assert!(false, "{:?} vs {:?}", x, y),
        }
    }

    #[test]
    fn trust_sums_to_one_within_the_mass_bound((n, lt, pre, params) in case()) {
        if let Ok(t) = lt.global_trust(&pre, &params) {
            let total = sum(&t);
            prop_assert!(total <= Trust::ONE.0);
            let deficit = Trust::ONE.0 - total;
            prop_assert!(deficit <= mass_bound(n, &params), "deficit {}", deficit);
            for j in lt.excluded() {
                prop_assert_eq!(t[j.index()], Trust::ZERO);
            }
        }
    }

    #[test]
    fn fallback_rows_equal_explicit_pre_trust_rows((n, lt, pre, params) in case()) {
        // Writing p̂ into every fallback row by hand gives the same trust, when the
        // pre-trust is a single node (so p̂ is exactly one count).
        let Some(&first) = pre.iter().find(|j| !lt.is_excluded(**j)) else {
            return Ok(());
        };
        let pre = vec![first];
        let c = lt.normalise();
        let mut explicit = lt.clone();
        for i in 0..n {
            if c.falls_back(id(i)) && id(i) != first {
                explicit.add_satisfied(id(i), first).expect("in range");
            }
        }
        // The pre-trusted node's own fallback row cannot be written (self-rating).
        if !c.falls_back(first) {
            prop_assert_eq!(
                lt.global_trust(&pre, &params).expect("t"),
                explicit.global_trust(&pre, &params).expect("t")
            );
        }
    }
}
