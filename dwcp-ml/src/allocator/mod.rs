//! Multi-agent resource allocator: a cluster environment driven by real data-centre
//! demand traces, MADDPG (Lowe et al., NeurIPS 2017) trained in pure Rust, and the
//! placement baselines people actually use, all behind one [`Allocator`] trait.
//!
//! Layout, one concept per file:
//! - [`resources`], [`cluster`], [`workload`]: the serde vocabulary
//!   ([`ClusterState`], [`Workload`], [`Placement`]);
//! - [`trace`]: the vendored Alibaba/Google/Azure demand series and the train/held-out split;
//! - [`env`](mod@env): the discrete-time cluster simulator and its episode metrics;
//! - [`baselines`]: random, round-robin, first-fit/best-fit decreasing, Kubernetes
//!   scoring, DRF and Tetris;
//! - [`mlp`], [`adam`], [`replay`], [`maddpg`]: the learner;
//! - [`features`], [`policy`]: observations and the trained policy as an [`Allocator`];
//! - [`train`], [`eval`], [`model_file`]: training, evaluation and the weights file.

pub mod adam;
pub mod baselines;
pub mod cluster;
pub mod env;
pub mod error;
pub mod eval;
pub mod features;
pub mod maddpg;
pub mod mlp;
pub mod model_file;
#[cfg(test)]
mod oracle;
pub mod policy;
pub mod replay;
pub mod resources;
pub mod trace;
pub mod train;
pub mod workload;

pub use cluster::{ClusterState, NodeState};
pub use error::AllocError;
pub use resources::Resources;
pub use workload::{Placement, Workload};

/// A placement policy: given the cluster and the queue of pending workloads, decide
/// which workloads start now and where.
///
/// Workloads not mentioned in the returned placements stay pending (they are deferred
/// to the next scheduling round). Implementations must never return a placement that
/// exceeds a node's free capacity, taking into account the earlier placements of the
/// same call, and must mention each workload at most once. `&mut self` because some
/// policies keep state between calls (a round-robin cursor, a random generator).
pub trait Allocator {
    /// Short stable name used in reports (`"best-fit-decreasing"`, `"maddpg"`...).
    fn name(&self) -> &str;
    /// Decides the placements for this scheduling round.
    fn allocate(&mut self, state: &ClusterState, pending: &[Workload]) -> Vec<Placement>;
}
