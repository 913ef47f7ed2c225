//! The discrete-time cluster environment: workloads arrive following a real demand
//! trace, wait in a queue, run on a node while holding their demand, finish and release
//! it. One tick is one 15-minute trace slot.

use std::collections::HashMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::cluster::{generate_cluster, ClusterState};
use super::error::AllocError;
use super::resources::Resources;
use super::trace::DayTrace;
use super::workload::{generate_arrivals, Placement, Workload, WorkloadConfig};

/// Parameters of an episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvConfig {
    /// Number of nodes.
    pub nodes: usize,
    /// First trace slot of the episode.
    pub start_slot: usize,
    /// Number of trace slots (ticks) during which workloads arrive; after that the
    /// episode drains: no arrivals, until every workload has finished or been rejected.
    pub ticks: usize,
    /// Workload generator parameters.
    pub workload: WorkloadConfig,
}

impl Default for EnvConfig {
    fn default() -> Self {
        Self {
            nodes: 8,
            start_slot: 0,
            ticks: 96,
            workload: WorkloadConfig::default(),
        }
    }
}

/// A workload that has started.
#[derive(Debug, Clone, PartialEq)]
pub struct Running {
    /// The workload.
    pub workload: Workload,
    /// Node it runs on.
    pub node: usize,
    /// Work left, in reference-machine ticks.
    pub remaining: f32,
}

/// Counters of an episode.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EpisodeMetrics {
    /// Workloads that arrived.
    pub arrived: u64,
    /// Workloads that were placed on a node.
    pub placed: u64,
    /// Workloads that finished.
    pub finished: u64,
    /// Workloads that finished by their deadline.
    pub on_time: u64,
    /// Workloads dropped from the queue because no node could finish them by their
    /// deadline any more.
    pub rejected: u64,
    /// Sum over arrival-phase ticks of the utilisation of the active nodes.
    pub utilisation_sum: f64,
    /// Number of ticks in `utilisation_sum`.
    pub utilisation_ticks: u64,
}

impl EpisodeMetrics {
    /// Share of arrived workloads placed and finished within their deadline.
    pub fn sla_compliance(&self) -> f64 {
        if self.arrived == 0 {
            1.0
        } else {
            self.on_time as f64 / self.arrived as f64
        }
    }

    /// Time-averaged utilisation of the active nodes (nodes running at least one
    /// workload): allocated / capacity summed over active nodes, averaged over the four
    /// resources. Measures consolidation: idle nodes can be powered down or lent out.
    pub fn mean_utilisation(&self) -> f64 {
        if self.utilisation_ticks == 0 {
            0.0
        } else {
            self.utilisation_sum / self.utilisation_ticks as f64
        }
    }

    /// Share of arrived workloads rejected.
    pub fn rejection_rate(&self) -> f64 {
        if self.arrived == 0 {
            0.0
        } else {
            self.rejected as f64 / self.arrived as f64
        }
    }
}

/// What happened during one [`Env::step`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepInfo {
    /// Workloads that finished on time during the step.
    pub on_time: u64,
    /// Workloads that finished late during the step.
    pub late: u64,
    /// Workloads rejected at the end of the step.
    pub rejected: u64,
}

/// The environment. Deterministic for a (trace day, config, seed).
#[derive(Debug, Clone)]
pub struct Env {
    state: ClusterState,
    pending: Vec<Workload>,
    running: Vec<Running>,
    arrivals: Vec<Vec<Workload>>,
    ticks: usize,
    metrics: EpisodeMetrics,
}

/// Upper bound on the drain phase; reached only by an allocator that never places.
const MAX_DRAIN_TICKS: u64 = 400;

impl Env {
    /// Builds an episode on `day`, with the cluster and the arrivals drawn from `seed`.
    pub fn new(day: &DayTrace, cfg: &EnvConfig, seed: u64) -> Result<Self, AllocError> {
        if cfg.nodes == 0 || cfg.ticks == 0 || cfg.start_slot + cfg.ticks > day.cpu.len() {
            return Err(AllocError::Config(format!(
                "need nodes > 0 and 0 < start_slot + ticks <= {} (got nodes {}, start {}, ticks {})",
                day.cpu.len(),
                cfg.nodes,
                cfg.start_slot,
                cfg.ticks
            )));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let nodes = generate_cluster(cfg.nodes, &mut rng);
        let window = DayTrace {
            source: day.source.clone(),
            day: day.day,
            cpu: day.cpu[cfg.start_slot..cfg.start_slot + cfg.ticks].to_vec(),
            mem: day.mem[cfg.start_slot..cfg.start_slot + cfg.ticks].to_vec(),
        };
        let arrivals = generate_arrivals(&window, cfg.nodes, &cfg.workload, &mut rng);
        Ok(Self::from_parts(
            ClusterState {
                time: 0,
                nodes,
                tenant_allocated: Vec::new(),
            },
            arrivals,
        ))
    }

    /// Builds an episode from an explicit cluster and arrival schedule (`arrivals[t]`
    /// arrive at tick `t`); used by tests and benchmarks.
    pub fn from_parts(state: ClusterState, arrivals: Vec<Vec<Workload>>) -> Self {
        let ticks = arrivals.len();
        let mut env = Self {
            state,
            pending: Vec::new(),
            running: Vec::new(),
            arrivals,
            ticks,
            metrics: EpisodeMetrics::default(),
        };
        env.admit_arrivals();
        env
    }

    fn admit_arrivals(&mut self) {
        let t = self.state.time as usize;
        if t < self.arrivals.len() {
            let new = std::mem::take(&mut self.arrivals[t]);
            self.metrics.arrived += new.len() as u64;
            self.pending.extend(new);
        }
    }

    /// The cluster as allocators see it.
    pub fn state(&self) -> &ClusterState {
        &self.state
    }

    /// The queue of workloads waiting for a node.
    pub fn pending(&self) -> &[Workload] {
        &self.pending
    }

    /// The workloads currently running.
    pub fn running(&self) -> &[Running] {
        &self.running
    }

    /// Counters so far.
    pub fn metrics(&self) -> &EpisodeMetrics {
        &self.metrics
    }

    /// Number of arrival ticks of the episode.
    pub fn ticks(&self) -> usize {
        self.ticks
    }

    /// True when all arrivals have happened and every workload has finished or been
    /// rejected (or the drain phase hit its safety bound).
    pub fn done(&self) -> bool {
        let t = self.state.time;
        t >= self.ticks as u64
            && ((self.pending.is_empty() && self.running.is_empty())
                || t >= self.ticks as u64 + MAX_DRAIN_TICKS)
    }

    /// Applies the placements, then advances one tick: running workloads progress at
    /// their node's rate, finished ones release their resources, new workloads arrive,
    /// and queued workloads that can no longer meet their deadline are rejected.
    ///
    /// A placement of an unknown or already placed workload, on a node that does not
    /// exist or without enough free capacity is an error and nothing is applied.
    pub fn step(&mut self, placements: &[Placement]) -> Result<StepInfo, AllocError> {
        self.validate(placements)?;
        let index: HashMap<u64, usize> = self
            .pending
            .iter()
            .enumerate()
            .map(|(i, w)| (w.id, i))
            .collect();
        let mut taken = vec![false; self.pending.len()];
        for p in placements {
            let i = index[&p.workload];
            taken[i] = true;
            let w = self.pending[i].clone();
            let node = &mut self.state.nodes[p.node];
            node.allocated = node.allocated.plus(w.demand);
            node.running += 1;
            let t = w.tenant as usize;
            if self.state.tenant_allocated.len() <= t {
                self.state
                    .tenant_allocated
                    .resize(t + 1, Resources::default());
            }
            self.state.tenant_allocated[t] = self.state.tenant_allocated[t].plus(w.demand);
            self.metrics.placed += 1;
            self.running.push(Running {
                remaining: w.work,
                workload: w,
                node: p.node,
            });
        }
        let mut k = 0;
        self.pending.retain(|_| {
            k += 1;
            !taken[k - 1]
        });

        if (self.state.time as usize) < self.ticks {
            self.record_utilisation();
        }

        // Progress at the rate fixed by the allocation during this tick.
        let rates: Vec<f32> = self.state.nodes.iter().map(|n| n.rate()).collect();
        let finish_time = self.state.time + 1;
        let mut info = StepInfo::default();
        let mut still = Vec::with_capacity(self.running.len());
        for mut r in std::mem::take(&mut self.running) {
            r.remaining -= rates[r.node];
            if r.remaining <= 1e-4 {
                let node = &mut self.state.nodes[r.node];
                node.allocated = node.allocated.minus(r.workload.demand);
                node.running -= 1;
                if node.running == 0 {
                    // Wipe float residue so an empty node is exactly empty.
                    node.allocated = Resources::default();
                }
                let t = r.workload.tenant as usize;
                self.state.tenant_allocated[t] =
                    self.state.tenant_allocated[t].minus(r.workload.demand);
                self.metrics.finished += 1;
                if finish_time <= r.workload.deadline {
                    self.metrics.on_time += 1;
                    info.on_time += 1;
                } else {
                    info.late += 1;
                }
            } else {
                still.push(r);
            }
        }
        self.running = still;
        self.state.time = finish_time;
        self.admit_arrivals();

        let best = self.state.max_speed().max(f32::MIN_POSITIVE);
        let now = self.state.time;
        let before = self.pending.len();
        self.pending
            .retain(|w| now + (w.work / best).ceil() as u64 <= w.deadline);
        info.rejected = (before - self.pending.len()) as u64;
        self.metrics.rejected += info.rejected;
        if self.done() && !self.pending.is_empty() {
            self.metrics.rejected += self.pending.len() as u64;
            self.pending.clear();
        }
        Ok(info)
    }

    fn validate(&self, placements: &[Placement]) -> Result<(), AllocError> {
        let index: HashMap<u64, usize> = self
            .pending
            .iter()
            .enumerate()
            .map(|(i, w)| (w.id, i))
            .collect();
        let mut seen = std::collections::HashSet::new();
        let mut alloc: Vec<Resources> = self.state.nodes.iter().map(|n| n.allocated).collect();
        for p in placements {
            let bad = |reason| AllocError::InvalidPlacement {
                workload: p.workload,
                node: p.node,
                reason,
            };
            let i = *index
                .get(&p.workload)
                .ok_or_else(|| bad("workload is not pending"))?;
            if !seen.insert(p.workload) {
                return Err(bad("workload placed twice"));
            }
            let node = self
                .state
                .nodes
                .get(p.node)
                .ok_or_else(|| bad("no such node"))?;
            let after = alloc[p.node].plus(self.pending[i].demand);
            if !after.fits_in(node.capacity) {
                return Err(bad("node capacity exceeded"));
            }
            alloc[p.node] = after;
        }
        Ok(())
    }

    fn record_utilisation(&mut self) {
        let (mut a, mut c) = (Resources::default(), Resources::default());
        for n in self.state.nodes.iter().filter(|n| n.running > 0) {
            a = a.plus(n.allocated);
            c = c.plus(n.capacity);
        }
        if c.sum() > 0.0 {
            let r = a.ratio(c);
            self.metrics.utilisation_sum +=
                r.iter().map(|&x| x as f64).sum::<f64>() / r.len() as f64;
            self.metrics.utilisation_ticks += 1;
        }
    }

    /// Checks the invariants: no node over capacity, every node's allocation equals the
    /// sum of the demands running on it, and no workload lost (arrived = pending +
    /// running + finished + rejected). Returns a description of the first violation.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut sums = vec![Resources::default(); self.state.nodes.len()];
        let mut counts = vec![0u32; self.state.nodes.len()];
        for r in &self.running {
            sums[r.node] = sums[r.node].plus(r.workload.demand);
            counts[r.node] += 1;
        }
        for (i, n) in self.state.nodes.iter().enumerate() {
            if !n.allocated.fits_in(n.capacity) {
                return Err(format!(
                    "node {i} over capacity: {:?} > {:?}",
                    n.allocated, n.capacity
                ));
            }
            let d = n.allocated.minus(sums[i]).to_array();
            if d.iter().any(|x| x.abs() > 1e-2) || counts[i] != n.running {
                return Err(format!(
                    "node {i} allocation {:?} != running sum {:?}",
                    n.allocated, sums[i]
                ));
            }
        }
        let m = &self.metrics;
        let accounted =
            self.pending.len() as u64 + self.running.len() as u64 + m.finished + m.rejected;
        if accounted != m.arrived {
            return Err(format!(
                "workloads lost: arrived {} accounted {}",
                m.arrived, accounted
            ));
        }
        Ok(())
    }
}

/// Runs one whole episode with an allocator; returns the metrics and the time each
/// `allocate` call took, in seconds.
pub fn run_episode(
    env: &mut Env,
    allocator: &mut dyn super::Allocator,
) -> Result<(EpisodeMetrics, Vec<f64>), AllocError> {
    let mut latencies = Vec::new();
    while !env.done() {
        let started = std::time::Instant::now();
        let placements = allocator.allocate(env.state(), env.pending());
        latencies.push(started.elapsed().as_secs_f64());
        env.step(&placements)?;
    }
    Ok((env.metrics().clone(), latencies))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::cluster::NodeState;
    use crate::allocator::trace::DemandTraces;

    fn wl(id: u64, cpu: f32, work: f32, arrival: u64, deadline: u64) -> Workload {
        Workload {
            id,
            demand: Resources::new(cpu, 1.0, 0.1, 0.1),
            work,
            priority: 0,
            tenant: 0,
            arrival,
            deadline,
        }
    }

    fn one_node() -> ClusterState {
        ClusterState {
            time: 0,
            nodes: vec![NodeState::idle(Resources::new(4.0, 8.0, 1.0, 1.0), 1.0)],
            tenant_allocated: Vec::new(),
        }
    }

    #[test]
    fn resources_are_released_when_workloads_finish() {
        let mut env = Env::from_parts(one_node(), vec![vec![wl(0, 2.0, 2.0, 0, 10)], vec![]]);
        env.step(&[Placement {
            workload: 0,
            node: 0,
        }])
        .expect("valid");
        assert_eq!(env.state().nodes[0].allocated.cpu, 2.0);
        env.check_invariants().expect("invariants");
        env.step(&[]).expect("valid");
        assert_eq!(env.state().nodes[0].allocated, Resources::default());
        assert_eq!(env.metrics().on_time, 1);
        assert!(env.done());
        env.check_invariants().expect("invariants");
    }

    #[test]
    fn over_capacity_and_unknown_placements_are_refused() {
        let mut env = Env::from_parts(
            one_node(),
            vec![vec![wl(0, 3.0, 1.0, 0, 9), wl(1, 3.0, 1.0, 0, 9)]],
        );
        let both = [
            Placement {
                workload: 0,
                node: 0,
            },
            Placement {
                workload: 1,
                node: 0,
            },
        ];
        assert!(matches!(
            env.step(&both),
            Err(AllocError::InvalidPlacement { .. })
        ));
        assert!(env
            .step(&[Placement {
                workload: 7,
                node: 0
            }])
            .is_err());
        assert!(env
            .step(&[Placement {
                workload: 0,
                node: 3
            }])
            .is_err());
        let dup = [
            Placement {
                workload: 0,
                node: 0,
            },
            Placement {
                workload: 0,
                node: 0,
            },
        ];
        assert!(env.step(&dup).is_err());
        env.check_invariants().expect("nothing applied");
    }

    #[test]
    fn hopeless_workloads_are_rejected_not_lost() {
        let mut env = Env::from_parts(one_node(), vec![vec![wl(0, 2.0, 3.0, 0, 3)], vec![]]);
        env.step(&[]).expect("valid");
        assert_eq!(env.metrics().rejected, 1);
        assert!(env.pending().is_empty());
        env.check_invariants().expect("invariants");
    }

    #[test]
    fn invariants_hold_through_a_trace_episode_with_a_greedy_allocator() {
        let traces = DemandTraces::embedded().expect("trace");
        let cfg = EnvConfig {
            ticks: 24,
            ..EnvConfig::default()
        };
        let mut env = Env::new(traces.training()[0], &cfg, 11).expect("env");
        let mut a = crate::allocator::baselines::first_fit::FirstFitDecreasing;
        while !env.done() {
            let p = crate::allocator::Allocator::allocate(&mut a, env.state(), env.pending());
            env.step(&p).expect("first fit places validly");
            env.check_invariants().expect("invariants");
        }
        let m = env.metrics();
        assert!(m.arrived > 0);
        assert_eq!(m.arrived, m.finished + m.rejected);
    }
}
