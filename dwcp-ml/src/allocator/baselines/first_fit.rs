//! First-fit decreasing: largest workloads first, each on the lowest-indexed node it
//! fits on (multi-dimensional vector bin packing).

use super::{normalised_size, Ledger};
use crate::allocator::{Allocator, ClusterState, Placement, Workload};

/// Sort by decreasing normalised size, then first fit.
#[derive(Debug, Clone, Copy, Default)]
pub struct FirstFitDecreasing;

/// Indices of `pending` by decreasing normalised size (ties: earlier id first).
pub fn decreasing_order(state: &ClusterState, pending: &[Workload]) -> Vec<usize> {
    let sizes: Vec<f32> = pending
        .iter()
        .map(|w| normalised_size(w.demand, state))
        .collect();
    let mut idx: Vec<usize> = (0..pending.len()).collect();
    idx.sort_by(|&a, &b| {
        sizes[b]
            .total_cmp(&sizes[a])
            .then(pending[a].id.cmp(&pending[b].id))
    });
    idx
}

impl Allocator for FirstFitDecreasing {
    fn name(&self) -> &str {
        "first-fit-decreasing"
    }

    fn allocate(&mut self, state: &ClusterState, pending: &[Workload]) -> Vec<Placement> {
        let mut ledger = Ledger::new(state);
        let mut out = Vec::new();
        for i in decreasing_order(state, pending) {
            let w = &pending[i];
            if let Some(node) = (0..ledger.len()).find(|&n| ledger.fits(n, w.demand)) {
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
