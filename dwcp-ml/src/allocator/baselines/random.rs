//! Random placement: a uniformly random node among those the workload fits on.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Ledger;
use crate::allocator::workload::queue_order;
use crate::allocator::{Allocator, ClusterState, Placement, Workload};

/// Uniform random choice among feasible nodes, seeded.
#[derive(Debug, Clone)]
pub struct RandomFit {
    rng: ChaCha8Rng,
}

impl RandomFit {
    /// A seeded random allocator.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

impl Allocator for RandomFit {
    fn name(&self) -> &str {
        "random"
    }

    fn allocate(&mut self, state: &ClusterState, pending: &[Workload]) -> Vec<Placement> {
        let mut ledger = Ledger::new(state);
        let mut out = Vec::new();
        let mut feasible = Vec::with_capacity(ledger.len());
        for i in queue_order(pending) {
            let w = &pending[i];
            feasible.clear();
            feasible.extend((0..ledger.len()).filter(|&n| ledger.fits(n, w.demand)));
            if feasible.is_empty() {
                continue;
            }
            let node = feasible[self.rng.gen_range(0..feasible.len())];
            ledger.take(node, w.demand);
            out.push(Placement {
                workload: w.id,
                node,
            });
        }
        out
    }
}
