//! Criterion benches of T-PBFT's trust computation: fixed-point EigenTrust global
//! trust (normalise, then `K = 150` steps at `a = 0.15`) on dense evidence, where
//! every node has rated every other, for N = 16, 64, 100 and 200; and the epoch's
//! committee and primary-group selection from the result.
//!
//! Run: `cargo bench --bench eigentrust` (add `-- --warm-up-time 1 --measurement-time 3`
//! for a quick pass).

#![allow(missing_docs)] // criterion_main! generates an undocumented `main`

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dwcp::consensus::tpbft::{
    committee, committee_size_for, primary_group, LocalTrust, TrustParams, DEFAULT_COMMITTEE_SIZE,
    DEFAULT_PRIMARY_GROUP_SIZE,
};
use dwcp::core::NodeId;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SIZES: [u16; 4] = [16, 64, 100, 200];

/// Every node rated every other: 0..20 satisfied and 0..5 unsatisfied interactions.
fn dense(n: u16, seed: u64) -> LocalTrust {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut lt = LocalTrust::new(usize::from(n)).expect("n");
    for i in 0..n {
        for j in 0..n {
            let (sat, unsat) = (rng.gen_range(0..20), rng.gen_range(0..5));
            lt.add(NodeId(i), NodeId(j), sat, unsat).expect("in range");
        }
    }
    lt
}

fn genesis(n: u16) -> Vec<NodeId> {
    let c = committee_size_for(usize::from(n), DEFAULT_COMMITTEE_SIZE);
    (0..n).take(c).map(NodeId).collect()
}

fn global_trust(c: &mut Criterion) {
    let params = TrustParams::default();
    let mut g = c.benchmark_group("eigentrust_global_trust");
    for n in SIZES {
        let lt = dense(n, u64::from(n));
        let pre = genesis(n);
        g.throughput(Throughput::Elements(u64::from(n)));
        g.bench_function(n.to_string(), |b| {
            b.iter(|| black_box(&lt).global_trust(black_box(&pre), &params))
        });
    }
    g.finish();
}

fn selection(c: &mut Criterion) {
    let n = 200;
    let trust = dense(n, 7)
        .global_trust(&genesis(n), &TrustParams::default())
        .expect("trust");
    let size = committee_size_for(usize::from(n), 31);
    let mut g = c.benchmark_group("tpbft_selection_200");
    g.bench_function("committee_31", |b| {
        b.iter(|| committee(black_box(&trust), size, black_box(9), &[]))
    });
    let members = committee(&trust, size, 9, &[]);
    g.bench_function("primary_group_4_of_31", |b| {
        b.iter(|| {
            primary_group(
                black_box(&members),
                DEFAULT_PRIMARY_GROUP_SIZE,
                black_box(9),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, global_trust, selection);
criterion_main!(benches);
