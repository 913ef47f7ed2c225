//! Nodes and the cluster snapshot an [`crate::allocator::Allocator`] sees.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::resources::Resources;

/// One node as seen by an allocator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeState {
    /// Total capacity.
    pub capacity: Resources,
    /// Sum of the demands of the workloads running on it.
    pub allocated: Resources,
    /// Relative processing speed (1.0 = reference machine): a workload with `work`
    /// units runs `work / speed` ticks on an uncontended node.
    pub speed: f32,
    /// Number of workloads running on it.
    pub running: u32,
}

impl NodeState {
    /// An idle node.
    pub fn idle(capacity: Resources, speed: f32) -> Self {
        Self {
            capacity,
            allocated: Resources::default(),
            speed,
            running: 0,
        }
    }

    /// Capacity not yet allocated.
    pub fn free(&self) -> Resources {
        self.capacity.minus(self.allocated)
    }

    /// True when `demand` fits in the free capacity.
    pub fn fits(&self, demand: Resources) -> bool {
        demand.fits_in(self.free())
    }

    /// Allocated share of each dimension.
    pub fn utilisation(&self) -> [f32; 4] {
        self.allocated.ratio(self.capacity)
    }

    /// Processing rate given the allocated CPU share: co-located workloads interfere
    /// (shared caches, memory bandwidth, turbo headroom), so past 75 % CPU allocation
    /// every workload on the node slows down, by a third at 100 %.
    pub fn rate_at(&self, cpu_share: f32) -> f32 {
        self.speed / (1.0 + 2.0 * (cpu_share - 0.75).max(0.0))
    }

    /// Current processing rate.
    pub fn rate(&self) -> f32 {
        self.rate_at(self.utilisation()[0])
    }
}

/// The snapshot of the cluster handed to allocators.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Current tick (15 minutes of trace time each).
    pub time: u64,
    /// The nodes, indexed by position.
    pub nodes: Vec<NodeState>,
    /// Resources currently allocated to each tenant, indexed by tenant id (used by
    /// fair-sharing policies such as DRF).
    #[serde(default)]
    pub tenant_allocated: Vec<Resources>,
}

impl ClusterState {
    /// Total capacity of the cluster.
    pub fn total_capacity(&self) -> Resources {
        self.nodes
            .iter()
            .fold(Resources::default(), |a, n| a.plus(n.capacity))
    }

    /// Largest node speed (0 for an empty cluster).
    pub fn max_speed(&self) -> f32 {
        self.nodes.iter().map(|n| n.speed).fold(0.0, f32::max)
    }
}

/// A node type of the generated heterogeneous clusters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeClass {
    /// Name of the class.
    pub name: &'static str,
    /// Capacity.
    pub capacity: Resources,
    /// Relative speed.
    pub speed: f32,
}

/// The node classes clusters are drawn from: an older general-purpose generation, the
/// current general-purpose machine, a compute-optimised and a memory-optimised one.
pub const NODE_CLASSES: [NodeClass; 4] = [
    NodeClass {
        name: "general-old",
        capacity: Resources::new(16.0, 64.0, 10.0, 4.0),
        speed: 0.7,
    },
    NodeClass {
        name: "general",
        capacity: Resources::new(32.0, 128.0, 25.0, 8.0),
        speed: 1.0,
    },
    NodeClass {
        name: "compute",
        capacity: Resources::new(48.0, 96.0, 25.0, 6.0),
        speed: 1.35,
    },
    NodeClass {
        name: "memory",
        capacity: Resources::new(24.0, 256.0, 25.0, 8.0),
        speed: 0.9,
    },
];

/// Draws an idle heterogeneous cluster of `n` nodes. Every class appears at least once
/// when `n >= 4`, so clusters of the same size have comparable capacity.
pub fn generate_cluster<R: Rng>(n: usize, rng: &mut R) -> Vec<NodeState> {
    (0..n)
        .map(|i| {
            let class = if i < NODE_CLASSES.len() {
                NODE_CLASSES[i]
            } else {
                NODE_CLASSES[rng.gen_range(0..NODE_CLASSES.len())]
            };
            NodeState::idle(class.capacity, class.speed)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn generated_clusters_are_deterministic_and_heterogeneous() {
        let a = generate_cluster(10, &mut ChaCha8Rng::seed_from_u64(3));
        let b = generate_cluster(10, &mut ChaCha8Rng::seed_from_u64(3));
        assert_eq!(a, b);
        let speeds: std::collections::BTreeSet<u32> =
            a.iter().map(|n| (n.speed * 100.0) as u32).collect();
        assert_eq!(speeds.len(), 4);
    }

    #[test]
    fn contention_slows_nodes_only_past_three_quarters() {
        let n = NodeState::idle(NODE_CLASSES[1].capacity, 1.0);
        assert_eq!(n.rate_at(0.5), 1.0);
        assert!((n.rate_at(1.0) - 1.0 / 1.5).abs() < 1e-6);
    }
}
