//! Dominant Resource Fairness (Ghodsi et al., NSDI 2011) across tenants: repeatedly
//! serve the tenant with the smallest dominant share (its largest share of any cluster
//! resource), placing its next queued workload first-fit, as Mesos' DRF allocator does.

use super::Ledger;
use crate::allocator::resources::Resources;
use crate::allocator::workload::queue_order;
use crate::allocator::{Allocator, ClusterState, Placement, Workload};

/// DRF progressive filling across tenants, first-fit placement.
#[derive(Debug, Clone, Copy, Default)]
pub struct Drf;

/// Dominant share of `usage` in a cluster of capacity `total`.
pub fn dominant_share(usage: Resources, total: Resources) -> f32 {
    usage.ratio(total).into_iter().fold(0.0, f32::max)
}

impl Allocator for Drf {
    fn name(&self) -> &str {
        "drf"
    }

    fn allocate(&mut self, state: &ClusterState, pending: &[Workload]) -> Vec<Placement> {
        let total = state.total_capacity();
        let mut ledger = Ledger::new(state);
        let tenants = pending
            .iter()
            .map(|w| w.tenant as usize + 1)
            .max()
            .unwrap_or(0)
            .max(state.tenant_allocated.len());
        let mut usage: Vec<Resources> = (0..tenants)
            .map(|t| state.tenant_allocated.get(t).copied().unwrap_or_default())
            .collect();
        // Per-tenant queues in priority order.
        let mut queues: Vec<std::collections::VecDeque<usize>> = vec![Default::default(); tenants];
        for i in queue_order(pending) {
            queues[pending[i].tenant as usize].push_back(i);
        }
        let mut out = Vec::new();
        loop {
            let next = (0..tenants)
                .filter(|&t| !queues[t].is_empty())
                .min_by(|&a, &b| {
                    dominant_share(usage[a], total)
                        .total_cmp(&dominant_share(usage[b], total))
                        .then(a.cmp(&b))
                });
            let Some(t) = next else { break };
            let Some(i) = queues[t].pop_front() else {
                break;
            };
            let w = &pending[i];
            // A workload that fits nowhere is skipped this round; the tenant keeps its turn.
            if let Some(node) = (0..ledger.len()).find(|&n| ledger.fits(n, w.demand)) {
                ledger.take(node, w.demand);
                usage[t] = usage[t].plus(w.demand);
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
    use crate::allocator::cluster::NodeState;

    #[test]
    fn the_tenant_with_the_smaller_dominant_share_goes_first() {
        let state = ClusterState {
            time: 0,
            nodes: vec![NodeState::idle(Resources::new(10.0, 10.0, 10.0, 10.0), 1.0)],
            tenant_allocated: vec![
                Resources::new(4.0, 0.0, 0.0, 0.0),
                Resources::new(0.0, 1.0, 0.0, 0.0),
            ],
        };
        let mk = |id, tenant| Workload {
            id,
            demand: Resources::new(6.0, 1.0, 1.0, 1.0),
            work: 1.0,
            priority: 0,
            tenant,
            arrival: 0,
            deadline: 9,
        };
        // Only one of the two fits; tenant 1 (dominant share 0.1 < 0.4) must get it.
        let p = Drf.allocate(&state, &[mk(0, 0), mk(1, 1)]);
        assert_eq!(
            p,
            vec![Placement {
                workload: 1,
                node: 0
            }]
        );
    }
}
