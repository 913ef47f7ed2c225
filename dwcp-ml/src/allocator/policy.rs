//! The trained MADDPG policy as an [`Allocator`]: every node agent bids on the pending
//! workload with its actor; the workload goes to the highest bidder among the nodes
//! it fits on, or waits for the next round if no bid exceeds the threshold.

use ndarray::Array2;

use super::error::AllocError;
use super::features::{Round, OBS_DIM};
use super::mlp::Mlp;
use super::model_file::ModelFile;
use super::workload::queue_order;
use super::{Allocator, ClusterState, Placement, Workload};

/// The decentralised execution of MADDPG: one shared actor evaluated per node.
#[derive(Debug, Clone)]
pub struct MaddpgAllocator {
    actor: Mlp,
    threshold: f32,
}

/// Index of the highest bid among `candidates` if it exceeds `threshold` (ties: lowest
/// index).
pub fn winner(candidates: &[usize], bids: &[f32], threshold: f32) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (k, &n) in candidates.iter().enumerate() {
        if best.is_none_or(|(_, b)| bids[k] > b) {
            best = Some((n, bids[k]));
        }
    }
    best.filter(|&(_, b)| b > threshold).map(|(n, _)| n)
}

impl MaddpgAllocator {
    /// A policy from an actor whose input is [`OBS_DIM`] long.
    pub fn new(actor: Mlp, threshold: f32) -> Result<Self, AllocError> {
        if actor.input_dim() != OBS_DIM || actor.output_dim() != 1 {
            return Err(AllocError::ModelMismatch(format!(
                "actor maps {} -> {}, this build needs {OBS_DIM} -> 1",
                actor.input_dim(),
                actor.output_dim()
            )));
        }
        Ok(Self { actor, threshold })
    }

    /// The policy shipped in the repository (`dwcp-ml/models/maddpg-v1.json`).
    pub fn embedded() -> Result<Self, AllocError> {
        Self::from_model(&ModelFile::embedded()?)
    }

    /// A policy from a loaded model file.
    pub fn from_model(m: &ModelFile) -> Result<Self, AllocError> {
        Self::new(m.actor()?, m.threshold)
    }

    /// The actor network.
    pub fn actor(&self) -> &Mlp {
        &self.actor
    }

    /// Bids of the nodes in `candidates` for `w`.
    pub fn bids(&self, round: &Round, w: &Workload, candidates: &[usize]) -> Vec<f32> {
        let ctx = round.context(w);
        let mut obs = Array2::zeros((candidates.len(), OBS_DIM));
        for (k, &n) in candidates.iter().enumerate() {
            round.observe_with(n, w, &ctx, obs.row_mut(k));
        }
        self.actor.forward(obs.view()).column(0).to_vec()
    }
}

impl Allocator for MaddpgAllocator {
    fn name(&self) -> &str {
        "maddpg"
    }

    fn allocate(&mut self, state: &ClusterState, pending: &[Workload]) -> Vec<Placement> {
        let mut round = Round::new(state, pending.len());
        let mut out = Vec::new();
        let mut candidates = Vec::with_capacity(round.nodes());
        for i in queue_order(pending) {
            let w = &pending[i];
            candidates.clear();
            candidates.extend((0..round.nodes()).filter(|&n| round.fits(n, w)));
            if candidates.is_empty() {
                continue;
            }
            let bids = self.bids(&round, w, &candidates);
            if let Some(n) = winner(&candidates, &bids, self.threshold) {
                round.place(n, w);
                out.push(Placement {
                    workload: w.id,
                    node: n,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn winner_takes_the_highest_bid_above_threshold() {
        assert_eq!(winner(&[2, 5, 7], &[0.1, 0.9, 0.3], 0.0), Some(5));
        assert_eq!(winner(&[2, 5], &[-0.1, -0.2], 0.0), None);
        assert_eq!(winner(&[], &[], 0.0), None);
    }

    #[test]
    fn the_embedded_model_loads_and_places_validly() {
        use crate::allocator::env::{Env, EnvConfig};
        use crate::allocator::trace::DemandTraces;
        let mut a = MaddpgAllocator::embedded().expect("shipped model loads");
        let traces = DemandTraces::embedded().expect("trace");
        let cfg = EnvConfig {
            ticks: 12,
            ..EnvConfig::default()
        };
        let mut env = Env::new(traces.held_out()[0], &cfg, 1).expect("env");
        while !env.done() {
            let p = a.allocate(env.state(), env.pending());
            env.step(&p).expect("valid placements");
            env.check_invariants().expect("invariants");
        }
    }
}
