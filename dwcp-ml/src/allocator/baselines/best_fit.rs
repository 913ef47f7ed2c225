//! Best-fit decreasing: largest workloads first, each on the feasible node it leaves
//! with the least normalised free capacity.

use super::first_fit::decreasing_order;
use super::Ledger;
use crate::allocator::{Allocator, ClusterState, Placement, Workload};

/// Sort by decreasing normalised size, then best fit (tightest remaining capacity).
#[derive(Debug, Clone, Copy, Default)]
pub struct BestFitDecreasing;

impl Allocator for BestFitDecreasing {
    fn name(&self) -> &str {
        "best-fit-decreasing"
    }

    fn allocate(&mut self, state: &ClusterState, pending: &[Workload]) -> Vec<Placement> {
        let mut ledger = Ledger::new(state);
        let mut out = Vec::new();
        for i in decreasing_order(state, pending) {
            let w = &pending[i];
            let best = (0..ledger.len())
                .filter(|&n| ledger.fits(n, w.demand))
                .map(|n| {
                    let left: f32 = ledger
                        .share_after(n, w.demand)
                        .iter()
                        .map(|s| 1.0 - s)
                        .sum();
                    (n, left)
                })
                .min_by(|a, b| a.1.total_cmp(&b.1));
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
