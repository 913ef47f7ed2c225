//! Round-robin placement: the next node after the previous choice that fits.

use super::Ledger;
use crate::allocator::workload::queue_order;
use crate::allocator::{Allocator, ClusterState, Placement, Workload};

/// Cycles through the nodes, skipping those the workload does not fit on.
#[derive(Debug, Clone, Default)]
pub struct RoundRobin {
    cursor: usize,
}

impl Allocator for RoundRobin {
    fn name(&self) -> &str {
        "round-robin"
    }

    fn allocate(&mut self, state: &ClusterState, pending: &[Workload]) -> Vec<Placement> {
        let mut ledger = Ledger::new(state);
        let n = ledger.len();
        let mut out = Vec::new();
        if n == 0 {
            return out;
        }
        for i in queue_order(pending) {
            let w = &pending[i];
            if let Some(node) = (0..n)
                .map(|k| (self.cursor + k) % n)
                .find(|&j| ledger.fits(j, w.demand))
            {
                ledger.take(node, w.demand);
                out.push(Placement {
                    workload: w.id,
                    node,
                });
                self.cursor = (node + 1) % n;
            }
        }
        out
    }
}
