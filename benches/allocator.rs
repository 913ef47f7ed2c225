//! Allocation latency: MADDPG (the embedded model) and two baselines placing 1,000
//! pending workloads on a 100-node cluster that is already 30 % allocated, and one
//! agent's actor inference.
//!
//! Run: `cargo bench --bench allocator`.

// criterion's macros generate undocumented functions.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use dwcp::ml::allocator::baselines::{best_fit::BestFitDecreasing, kube};
use dwcp::ml::allocator::cluster::generate_cluster;
use dwcp::ml::allocator::features::{Round, OBS_DIM};
use dwcp::ml::allocator::policy::MaddpgAllocator;
use dwcp::ml::allocator::trace::DayTrace;
use dwcp::ml::allocator::workload::{generate_arrivals, WorkloadConfig};
use dwcp::ml::allocator::{Allocator, ClusterState, Workload};
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn scenario() -> (ClusterState, Vec<Workload>) {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let mut nodes = generate_cluster(100, &mut rng);
    for n in &mut nodes {
        let c = n.capacity;
        n.allocated = dwcp::ml::allocator::Resources::new(
            0.3 * c.cpu,
            0.3 * c.mem,
            0.3 * c.net,
            0.3 * c.disk,
        );
        n.running = 3;
    }
    let day = DayTrace {
        source: "bench".into(),
        day: 0,
        cpu: vec![1.0],
        mem: vec![1.0],
    };
    let cfg = WorkloadConfig {
        arrivals_per_node: 11.0,
        tenants: 4,
    };
    let mut pending: Vec<Workload> = generate_arrivals(&day, 100, &cfg, &mut rng)
        .into_iter()
        .flatten()
        .collect();
    pending.truncate(1000);
    assert_eq!(
        pending.len(),
        1000,
        "scenario must have 1,000 pending workloads"
    );
    (
        ClusterState {
            time: 0,
            nodes,
            tenant_allocated: Vec::new(),
        },
        pending,
    )
}

fn bench(c: &mut Criterion) {
    let (state, pending) = scenario();
    let mut maddpg = MaddpgAllocator::embedded().expect("embedded model");
    // Tail latency, which criterion's mean/median estimates do not show.
    let mut ms: Vec<f64> = (0..200)
        .map(|_| {
            let t = std::time::Instant::now();
            black_box(maddpg.allocate(&state, &pending));
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    let placed = maddpg.allocate(&state, &pending).len();
    println!(
        "maddpg allocate, 100 nodes, 1000 pending ({placed} placed): p50 {:.3} ms, p99 {:.3} ms over 200 calls",
        ms[99], ms[197]
    );
    let mut g = c.benchmark_group("allocate_100_nodes_1000_pending");
    g.sample_size(30);
    g.bench_function("maddpg", |b| {
        b.iter(|| black_box(maddpg.allocate(black_box(&state), black_box(&pending))))
    });
    let mut bfd = BestFitDecreasing;
    g.bench_function("best-fit-decreasing", |b| {
        b.iter(|| black_box(bfd.allocate(&state, &pending)))
    });
    let mut k8s = kube::KubeScoring::new(kube::KubeStrategy::Default);
    g.bench_function("k8s-default", |b| {
        b.iter(|| black_box(k8s.allocate(&state, &pending)))
    });
    g.finish();

    let round = Round::new(&state, pending.len());
    let mut obs = Array2::zeros((1, OBS_DIM));
    round.observe(0, &pending[0], obs.row_mut(0));
    let actor = maddpg.actor().clone();
    c.bench_function("actor_inference_one_agent", |b| {
        b.iter(|| black_box(actor.forward(black_box(obs.view()))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
