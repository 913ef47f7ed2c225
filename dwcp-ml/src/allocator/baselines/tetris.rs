//! Tetris (Grandl et al., SIGCOMM 2014): repeatedly pick the (workload, node) pair with
//! the largest alignment score, the dot product of the workload's demand and the node's
//! free resources, both normalised by the node's capacity. Packs workloads where their
//! resource profile complements what is left, reducing fragmentation.

use super::Ledger;
use crate::allocator::{Allocator, ClusterState, Placement, Workload};

/// Alignment-score packing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tetris;

/// Tetris alignment of a demand with the free capacity of a node (both as shares of
/// the node's capacity).
pub fn alignment(demand_share: &[f32; 4], free_share: &[f32; 4]) -> f32 {
    demand_share
        .iter()
        .zip(free_share)
        .map(|(d, f)| d * f)
        .sum()
}

impl Allocator for Tetris {
    fn name(&self) -> &str {
        "tetris"
    }

    fn allocate(&mut self, state: &ClusterState, pending: &[Workload]) -> Vec<Placement> {
        let mut ledger = Ledger::new(state);
        let mut open: Vec<usize> = (0..pending.len()).collect();
        let mut out = Vec::new();
        loop {
            let mut best: Option<(usize, usize, f32)> = None; // (position in open, node, score)
            for (k, &i) in open.iter().enumerate() {
                let w = &pending[i];
                for n in 0..ledger.len() {
                    if !ledger.fits(n, w.demand) {
                        continue;
                    }
                    let d = w.demand.ratio(ledger.capacity[n]);
                    let f = ledger.capacity[n]
                        .minus(ledger.allocated[n])
                        .ratio(ledger.capacity[n]);
                    let score = alignment(&d, &f);
                    if best.is_none_or(|(_, _, b)| score > b) {
                        best = Some((k, n, score));
                    }
                }
            }
            let Some((k, node, _)) = best else { break };
            let w = &pending[open.swap_remove(k)];
            ledger.take(node, w.demand);
            out.push(Placement {
                workload: w.id,
                node,
            });
        }
        out
    }
}
