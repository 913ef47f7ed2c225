//! The local observation of a node agent about the workload being placed, and the
//! running bookkeeping of one scheduling round.

use ndarray::ArrayViewMut1;

use super::baselines::Ledger;
use super::cluster::{ClusterState, NodeState, NODE_CLASSES};
use super::resources::Resources;
use super::workload::Workload;

/// Length of one agent's observation.
pub const OBS_DIM: usize = 23;

/// Fastest node class speed, used to normalise speeds.
fn speed_scale() -> f32 {
    NODE_CLASSES.iter().map(|c| c.speed).fold(1.0, f32::max)
}

/// Ticks a workload needs on a node processing at `rate`.
pub fn ticks_needed(work: f32, rate: f32) -> u64 {
    (work / rate.max(1e-3)).ceil() as u64
}

/// The part of an observation shared by all node agents for one workload.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WorkloadContext {
    /// Active nodes (running at least one workload) that fit the workload and would
    /// finish it by its deadline.
    pub active_on_time: usize,
    /// Allocation summed over the active nodes.
    pub active_allocated: Resources,
    /// Capacity summed over the active nodes.
    pub active_capacity: Resources,
}

/// The cluster as it evolves during one `allocate` call.
#[derive(Debug, Clone)]
pub struct Round {
    /// Capacity and allocation per node, including this round's placements.
    pub ledger: Ledger,
    /// Workloads per node, including this round's placements.
    pub running: Vec<u32>,
    /// Node speeds.
    pub speeds: Vec<f32>,
    /// Fastest node's speed.
    pub max_speed: f32,
    /// Current tick.
    pub now: u64,
    /// Pending workloads at the start of the round.
    pub queue_len: usize,
}

impl Round {
    /// Starts a round on `state` with `queue_len` pending workloads.
    pub fn new(state: &ClusterState, queue_len: usize) -> Self {
        Self {
            ledger: Ledger::new(state),
            running: state.nodes.iter().map(|n| n.running).collect(),
            speeds: state.nodes.iter().map(|n| n.speed).collect(),
            max_speed: state.max_speed(),
            now: state.time,
            queue_len,
        }
    }

    /// Number of nodes.
    pub fn nodes(&self) -> usize {
        self.speeds.len()
    }

    /// True when `w` fits on node `n`.
    pub fn fits(&self, n: usize, w: &Workload) -> bool {
        self.ledger.fits(n, w.demand)
    }

    /// Records the placement of `w` on `n`.
    pub fn place(&mut self, n: usize, w: &Workload) {
        self.ledger.take(n, w.demand);
        self.running[n] += 1;
    }

    fn node_state(&self, n: usize) -> NodeState {
        NodeState {
            capacity: self.ledger.capacity[n],
            allocated: self.ledger.allocated[n],
            speed: self.speeds[n],
            running: self.running[n],
        }
    }

    /// True when `w`, started on `n` now, is predicted to finish by its deadline (at the
    /// node's contention level after the placement).
    pub fn meets_deadline(&self, n: usize, w: &Workload) -> bool {
        let node = self.node_state(n);
        let after = node.allocated.plus(w.demand).ratio(node.capacity)[0];
        self.now + ticks_needed(w.work, node.rate_at(after)) <= w.deadline
    }

    /// True when `w` could still meet its deadline if deferred one tick.
    pub fn can_wait(&self, w: &Workload) -> bool {
        self.now + 1 + ticks_needed(w.work, self.max_speed) <= w.deadline
    }

    /// Slowdown that placing `w` on `n` imposes on the workloads already running
    /// there (0 below the interference knee, up to 1/3 at 100 % CPU).
    pub fn slowdown(&self, n: usize, w: &Workload) -> f32 {
        if self.running[n] == 0 {
            return 0.0;
        }
        let node = self.node_state(n);
        let before = node.rate();
        let after = node.rate_at(node.allocated.plus(w.demand).ratio(node.capacity)[0]);
        (1.0 - after / before.max(1e-6)).max(0.0)
    }

    /// What every node agent knows about the workload being placed besides its own
    /// node: computed once per workload.
    pub fn context(&self, w: &Workload) -> WorkloadContext {
        let mut ctx = WorkloadContext::default();
        for n in 0..self.nodes() {
            if self.running[n] > 0 {
                ctx.active_allocated = ctx.active_allocated.plus(self.ledger.allocated[n]);
                ctx.active_capacity = ctx.active_capacity.plus(self.ledger.capacity[n]);
                if self.fits(n, w) && self.meets_deadline(n, w) {
                    ctx.active_on_time += 1;
                }
            }
        }
        ctx
    }

    /// Utilisation of the active nodes (the objective's definition) after placing `w`
    /// on `n`, minus the one before.
    pub fn active_utilisation_gain(&self, n: usize, w: &Workload, ctx: &WorkloadContext) -> f32 {
        let mean = |a: Resources, c: Resources| a.ratio(c).iter().sum::<f32>() / 4.0;
        let before = mean(ctx.active_allocated, ctx.active_capacity);
        let mut cap = ctx.active_capacity;
        if self.running[n] == 0 {
            cap = cap.plus(self.ledger.capacity[n]);
        }
        mean(ctx.active_allocated.plus(w.demand), cap) - before
    }

    /// Writes node `n`'s observation of workload `w` into `out` (length [`OBS_DIM`]).
    /// Computes the workload's context; use [`Round::observe_with`] to share it across
    /// nodes.
    pub fn observe(&self, n: usize, w: &Workload, out: ArrayViewMut1<f32>) {
        self.observe_with(n, w, &self.context(w), out);
    }

    /// Writes node `n`'s observation of workload `w` into `out` (length [`OBS_DIM`]).
    ///
    /// 0-3 free share after placement per resource, 4-7 demand as share of capacity,
    /// 8 speed, 9 fits, 10 predicted on time, 11 deadline slack ratio, 12 priority,
    /// 13 node active, 14 CPU share before, 15 queue pressure, 16 can wait a tick,
    /// 17 slowdown imposed on the node's running workloads, 18 workloads running there,
    /// 19 share of nodes that are active and would finish it on time, 20 alignment of
    /// the demand with the node's free capacity, 21 spare ticks before the deadline,
    /// 22 change of the active nodes' utilisation if placed here.
    pub fn observe_with(
        &self,
        n: usize,
        w: &Workload,
        ctx: &WorkloadContext,
        mut out: ArrayViewMut1<f32>,
    ) {
        let node = self.node_state(n);
        let cap = node.capacity;
        let after = node.allocated.plus(w.demand);
        let free_after = cap.minus(after).ratio(cap);
        let demand = w.demand.ratio(cap);
        for k in 0..4 {
            out[k] = free_after[k].clamp(-1.0, 1.0);
            out[4 + k] = demand[k].clamp(0.0, 2.0);
        }
        let rate = node.rate_at(after.ratio(cap)[0]);
        let needed = w.work / rate.max(1e-3);
        let left = w.deadline.saturating_sub(self.now) as f32;
        out[8] = node.speed / speed_scale();
        out[9] = if after.fits_in(cap) { 1.0 } else { 0.0 };
        out[10] = if self.now + ticks_needed(w.work, rate) <= w.deadline {
            1.0
        } else {
            0.0
        };
        out[11] = ((left / needed - 1.0).clamp(-1.0, 2.0)) / 2.0;
        out[12] = w.priority as f32 / 2.0;
        out[13] = if node.running > 0 { 1.0 } else { 0.0 };
        out[14] = node.utilisation()[0].clamp(0.0, 1.0);
        out[15] = (self.queue_len as f32 / (4.0 * self.nodes().max(1) as f32)).min(2.0) / 2.0;
        out[16] = if self.can_wait(w) { 1.0 } else { 0.0 };
        out[17] = (3.0 * self.slowdown(n, w)).min(1.0);
        out[18] = (node.running as f32 / 16.0).min(1.0);
        out[19] = ctx.active_on_time as f32 / self.nodes().max(1) as f32;
        let free = node.free().ratio(cap);
        let (dot, dn, fnorm) = (0..4).fold((0.0f32, 0.0f32, 0.0f32), |(a, b, c), k| {
            (
                a + demand[k] * free[k],
                b + demand[k] * demand[k],
                c + free[k] * free[k],
            )
        });
        out[20] = if dn > 0.0 && fnorm > 0.0 {
            (dot / (dn.sqrt() * fnorm.sqrt())).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let spare = w.deadline as f32 - self.now as f32 - needed.ceil();
        out[21] = (spare / 8.0).clamp(-1.0, 2.0);
        out[22] = (4.0 * self.active_utilisation_gain(n, w, ctx)).clamp(-1.0, 1.0);
    }

    /// Mean allocated share of node `n` across resources.
    pub fn mean_share(&self, n: usize) -> f32 {
        let s = self.ledger.allocated[n].ratio(self.ledger.capacity[n]);
        s.iter().sum::<f32>() / 4.0
    }

    /// Capacity of node `n`.
    pub fn capacity(&self, n: usize) -> Resources {
        self.ledger.capacity[n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array1;

    #[test]
    fn observation_flags_fit_and_deadline() {
        let state = ClusterState {
            time: 0,
            nodes: vec![
                NodeState::idle(Resources::new(4.0, 8.0, 1.0, 1.0), 0.5),
                NodeState::idle(Resources::new(16.0, 64.0, 10.0, 4.0), 1.0),
            ],
            tenant_allocated: Vec::new(),
        };
        let w = Workload {
            id: 0,
            demand: Resources::new(2.0, 4.0, 0.5, 0.5),
            work: 2.0,
            priority: 2,
            tenant: 0,
            arrival: 0,
            deadline: 3,
        };
        let r = Round::new(&state, 1);
        let mut o = Array1::zeros(OBS_DIM);
        r.observe(0, &w, o.view_mut());
        assert_eq!(o[9], 1.0);
        assert_eq!(o[10], 0.0, "slow node needs 4 ticks > deadline 3");
        r.observe(1, &w, o.view_mut());
        assert_eq!(o[10], 1.0);
        assert_eq!(o[12], 1.0);
        assert!(o.iter().all(|v| v.is_finite() && v.abs() <= 2.0));
    }

    #[test]
    fn context_sees_contention_waking_and_active_capacity() {
        let mut busy = NodeState::idle(Resources::new(10.0, 100.0, 10.0, 10.0), 1.0);
        busy.allocated = Resources::new(7.0, 10.0, 1.0, 1.0);
        busy.running = 2;
        let state = ClusterState {
            time: 0,
            nodes: vec![
                busy,
                NodeState::idle(Resources::new(10.0, 100.0, 10.0, 10.0), 1.0),
            ],
            tenant_allocated: Vec::new(),
        };
        let w = Workload {
            id: 0,
            demand: Resources::new(3.0, 10.0, 1.0, 1.0),
            work: 2.0,
            priority: 0,
            tenant: 0,
            arrival: 0,
            deadline: 10,
        };
        let r = Round::new(&state, 1);
        let ctx = r.context(&w);
        assert_eq!(ctx.active_on_time, 1);
        assert_eq!(ctx.active_capacity, Resources::new(10.0, 100.0, 10.0, 10.0));
        // 100 % CPU on the busy node: rate 1 / 1.5, a third slower for the two running.
        assert!((r.slowdown(0, &w) - 1.0 / 3.0).abs() < 1e-5);
        assert_eq!(r.slowdown(1, &w), 0.0, "nothing runs on the idle node");
        // Packing raises the active nodes' utilisation; waking the idle node lowers it.
        assert!(r.active_utilisation_gain(0, &w, &ctx) > 0.0);
        assert!(r.active_utilisation_gain(1, &w, &ctx) < 0.0);
        let mut o = Array1::zeros(OBS_DIM);
        r.observe_with(0, &w, &ctx, o.view_mut());
        assert!((o[17] - 1.0).abs() < 1e-5);
        assert_eq!(o[19], 0.5);
        let mut p = Array1::zeros(OBS_DIM);
        r.observe(1, &w, p.view_mut());
        assert_eq!(p[13], 0.0);
        assert!(p[22] < 0.0 && o[22] > 0.0);
        assert!(o
            .iter()
            .chain(p.iter())
            .all(|v| v.is_finite() && v.abs() <= 2.0));
    }
}
