//! Kubernetes scheduler scoring (kube-scheduler `NodeResourcesFit` with the
//! `LeastAllocated` / `MostAllocated` strategies, and `NodeResourcesBalancedAllocation`).
//!
//! As in kube-scheduler, workloads are popped in priority order, infeasible nodes are
//! filtered out, each feasible node is scored on the requested shares it would have
//! after the placement, and the highest score wins (ties: lowest index). All four
//! resources are scored with equal weight.

use super::Ledger;
use crate::allocator::workload::queue_order;
use crate::allocator::{Allocator, ClusterState, Placement, Workload};

/// Which scoring plugin(s) to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeStrategy {
    /// Prefer the node with the most free capacity (spreading).
    LeastAllocated,
    /// Prefer the node with the least free capacity (bin packing).
    MostAllocated,
    /// Prefer the node whose resource shares are the most even.
    BalancedAllocation,
    /// The default profile: LeastAllocated + BalancedAllocation, equal weights.
    Default,
}

/// A kube-scheduler-style scorer.
#[derive(Debug, Clone)]
pub struct KubeScoring {
    strategy: KubeStrategy,
}

impl KubeScoring {
    /// Scorer with the given strategy.
    pub fn new(strategy: KubeStrategy) -> Self {
        Self { strategy }
    }
}

/// Score in 0..=100 of shares after placement, per plugin.
pub fn least_allocated(shares: &[f32; 4]) -> f32 {
    100.0 * shares.iter().map(|s| 1.0 - s).sum::<f32>() / 4.0
}

/// MostAllocated score in 0..=100.
pub fn most_allocated(shares: &[f32; 4]) -> f32 {
    100.0 * shares.iter().sum::<f32>() / 4.0
}

/// BalancedAllocation score in 0..=100: 100 × (1 − standard deviation of the shares).
pub fn balanced_allocation(shares: &[f32; 4]) -> f32 {
    let mean = shares.iter().sum::<f32>() / 4.0;
    let var = shares.iter().map(|s| (s - mean) * (s - mean)).sum::<f32>() / 4.0;
    100.0 * (1.0 - var.sqrt())
}

impl Allocator for KubeScoring {
    fn name(&self) -> &str {
        match self.strategy {
            KubeStrategy::LeastAllocated => "k8s-least-allocated",
            KubeStrategy::MostAllocated => "k8s-most-allocated",
            KubeStrategy::BalancedAllocation => "k8s-balanced-allocation",
            KubeStrategy::Default => "k8s-default",
        }
    }

    fn allocate(&mut self, state: &ClusterState, pending: &[Workload]) -> Vec<Placement> {
        let mut ledger = Ledger::new(state);
        let mut out = Vec::new();
        for i in queue_order(pending) {
            let w = &pending[i];
            let mut best: Option<(usize, f32)> = None;
            for n in 0..ledger.len() {
                if !ledger.fits(n, w.demand) {
                    continue;
                }
                let s = ledger.share_after(n, w.demand);
                let score = match self.strategy {
                    KubeStrategy::LeastAllocated => least_allocated(&s),
                    KubeStrategy::MostAllocated => most_allocated(&s),
                    KubeStrategy::BalancedAllocation => balanced_allocation(&s),
                    KubeStrategy::Default => least_allocated(&s) + balanced_allocation(&s),
                };
                if best.is_none_or(|(_, b)| score > b) {
                    best = Some((n, score));
                }
            }
            if let Some((node, _)) = best {
                ledger.take(node, w.demand);
                out.push(Placement {
                    workload: w.id,
                    node,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn scores_stay_in_range(s in prop::array::uniform4(0.0f32..=1.0)) {
            for v in [least_allocated(&s), most_allocated(&s), balanced_allocation(&s)] {
                prop_assert!((-1e-3..=100.001).contains(&v));
            }
            prop_assert!((least_allocated(&s) + most_allocated(&s) - 100.0).abs() < 1e-3);
        }
    }

    #[test]
    fn balanced_prefers_even_shares() {
        assert!(balanced_allocation(&[0.5; 4]) > balanced_allocation(&[0.9, 0.1, 0.5, 0.5]));
    }
}
