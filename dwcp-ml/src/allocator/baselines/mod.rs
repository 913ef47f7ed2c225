//! The placement policies people actually use, each implemented as documented by its
//! authors or its reference implementation, behind [`crate::allocator::Allocator`].
//!
//! All of them place greedily: a workload waits in the queue only when it fits on no
//! node. They see the same [`ClusterState`] as MADDPG (including node speeds) but, like
//! their real counterparts, score resources only.

pub mod best_fit;
pub mod drf;
pub mod first_fit;
pub mod kube;
pub mod random;
pub mod round_robin;
pub mod tetris;

use super::cluster::ClusterState;
use super::resources::Resources;
use super::Allocator;

/// Free capacity during one `allocate` call, updated as placements are decided.
#[derive(Debug, Clone)]
pub struct Ledger {
    /// Capacity of each node.
    pub capacity: Vec<Resources>,
    /// Allocated resources of each node, including this call's placements.
    pub allocated: Vec<Resources>,
}

impl Ledger {
    /// Snapshot of the cluster.
    pub fn new(state: &ClusterState) -> Self {
        Self {
            capacity: state.nodes.iter().map(|n| n.capacity).collect(),
            allocated: state.nodes.iter().map(|n| n.allocated).collect(),
        }
    }

    /// True when `demand` fits on `node`.
    pub fn fits(&self, node: usize, demand: Resources) -> bool {
        self.allocated[node]
            .plus(demand)
            .fits_in(self.capacity[node])
    }

    /// Records a placement.
    pub fn take(&mut self, node: usize, demand: Resources) {
        self.allocated[node] = self.allocated[node].plus(demand);
    }

    /// Share of each resource of `node` allocated after adding `demand`.
    pub fn share_after(&self, node: usize, demand: Resources) -> [f32; 4] {
        self.allocated[node].plus(demand).ratio(self.capacity[node])
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.capacity.len()
    }

    /// True for an empty cluster.
    pub fn is_empty(&self) -> bool {
        self.capacity.is_empty()
    }
}

/// Size of a demand for the "decreasing" orderings: the sum of its components
/// normalised by the mean node capacity (the usual multi-dimensional FFD key).
pub fn normalised_size(demand: Resources, state: &ClusterState) -> f32 {
    let n = state.nodes.len().max(1) as f32;
    let mean = state.total_capacity();
    let mean = Resources::new(mean.cpu / n, mean.mem / n, mean.net / n, mean.disk / n);
    demand.ratio(mean).iter().sum()
}

/// Every baseline, in report order, with deterministic seeds.
pub fn all(seed: u64) -> Vec<Box<dyn Allocator>> {
    vec![
        Box::new(random::RandomFit::new(seed)),
        Box::new(round_robin::RoundRobin::default()),
        Box::new(first_fit::FirstFitDecreasing),
        Box::new(best_fit::BestFitDecreasing),
        Box::new(kube::KubeScoring::new(kube::KubeStrategy::LeastAllocated)),
        Box::new(kube::KubeScoring::new(kube::KubeStrategy::MostAllocated)),
        Box::new(kube::KubeScoring::new(
            kube::KubeStrategy::BalancedAllocation,
        )),
        Box::new(kube::KubeScoring::new(kube::KubeStrategy::Default)),
        Box::new(drf::Drf),
        Box::new(tetris::Tetris),
    ]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::allocator::env::{Env, EnvConfig};
    use crate::allocator::trace::DemandTraces;

    /// Runs every baseline through a short trace episode and checks that each returns
    /// only valid placements and keeps the environment's invariants.
    #[test]
    fn every_baseline_places_validly_and_completes_an_episode() {
        let traces = DemandTraces::embedded().expect("trace");
        let cfg = EnvConfig {
            ticks: 16,
            ..EnvConfig::default()
        };
        for mut a in all(1) {
            let mut env = Env::new(traces.training()[3], &cfg, 5).expect("env");
            while !env.done() {
                let p = a.allocate(env.state(), env.pending());
                env.step(&p).unwrap_or_else(|e| panic!("{}: {e}", a.name()));
                env.check_invariants()
                    .unwrap_or_else(|e| panic!("{}: {e}", a.name()));
            }
            let m = env.metrics();
            assert!(m.on_time > 0, "{} placed nothing on time", a.name());
        }
    }
}
