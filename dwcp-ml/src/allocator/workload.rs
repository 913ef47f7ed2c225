//! Workloads, placements and the trace-driven workload generator.

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::resources::Resources;
use super::trace::DayTrace;

/// A unit of work waiting to be placed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// Unique id within an episode.
    pub id: u64,
    /// Resources held while it runs.
    pub demand: Resources,
    /// Amount of work in reference-machine ticks: it runs `work / rate` ticks.
    pub work: f32,
    /// 0 = batch, 1 = standard, 2 = latency-critical.
    pub priority: u8,
    /// Tenant (team, namespace) that submitted it; DRF shares by tenant.
    pub tenant: u32,
    /// Tick at which it arrived.
    pub arrival: u64,
    /// SLA deadline: the tick by which it must have finished.
    pub deadline: u64,
}

impl Workload {
    /// Weight of the priority class in the SLA accounting and the training reward.
    pub fn weight(&self) -> f32 {
        1.0 + self.priority as f32 * 0.5
    }
}

/// "Start workload `workload` on node `node` now."
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// Id of the placed workload.
    pub workload: u64,
    /// Index of the node in [`crate::allocator::ClusterState::nodes`].
    pub node: usize,
}

/// Parameters of the workload generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadConfig {
    /// Mean arrivals per tick at trace intensity 1.0, per node of the cluster.
    pub arrivals_per_node: f32,
    /// Number of tenants.
    pub tenants: u32,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        Self {
            arrivals_per_node: 1.0,
            tenants: 4,
        }
    }
}

fn lognormal(rng: &mut ChaCha8Rng, median: f32, sigma: f32) -> f32 {
    // Box-Muller; good enough for shaping demands and costs no extra dependency.
    let u1: f32 = rng.gen_range(f32::EPSILON..1.0);
    let u2: f32 = rng.gen_range(0.0..1.0);
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos();
    median * (sigma * z).exp()
}

fn poisson(rng: &mut ChaCha8Rng, lambda: f32) -> u32 {
    // Knuth's method on chunks of at most 16: e^-lambda must stay well inside f32 range,
    // and a sum of independent Poisson variables is Poisson with the summed mean.
    let mut left = lambda.max(0.0);
    let mut total = 0;
    while left > 0.0 {
        let chunk = left.min(16.0);
        left -= chunk;
        let l = (-chunk).exp();
        let mut p = 1.0f32;
        loop {
            p *= rng.gen_range(0.0f32..1.0);
            if p <= l {
                break;
            }
            total += 1;
        }
    }
    total
}

/// Generates the arrivals of a whole episode up front, so every allocator sees exactly
/// the same stream: tick `t` gets a Poisson number of workloads whose mean follows the
/// trace's CPU intensity, and whose memory demand is skewed by the trace's mem/cpu ratio.
pub fn generate_arrivals(
    trace: &DayTrace,
    nodes: usize,
    cfg: &WorkloadConfig,
    rng: &mut ChaCha8Rng,
) -> Vec<Vec<Workload>> {
    let mut id = 0u64;
    let mut out = Vec::with_capacity(trace.cpu.len());
    for (t, (&cpu, &mem)) in trace.cpu.iter().zip(&trace.mem).enumerate() {
        let lambda = cfg.arrivals_per_node * nodes as f32 * cpu.max(0.0);
        let count = poisson(rng, lambda);
        let mem_skew = if cpu > 0.0 {
            (mem / cpu).clamp(0.5, 2.0)
        } else {
            1.0
        };
        let mut tick = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let priority = match rng.gen_range(0..10) {
                0 => 2,
                1..=3 => 1,
                _ => 0,
            };
            let cpu_d = lognormal(rng, 3.0, 0.7).clamp(0.25, 24.0);
            let mem_d = (cpu_d * lognormal(rng, 4.0, 0.8) * mem_skew).clamp(0.25, 200.0);
            let net_d = lognormal(rng, 1.0, 0.9).clamp(0.05, 10.0);
            let disk_d = lognormal(rng, 0.4, 0.9).clamp(0.01, 4.0);
            let work = lognormal(rng, 3.0, 0.6).clamp(1.0, 16.0);
            let slack = match priority {
                2 => rng.gen_range(1.15..1.6),
                1 => rng.gen_range(1.4..2.5),
                _ => rng.gen_range(2.0..5.0),
            };
            let arrival = t as u64;
            tick.push(Workload {
                id,
                demand: Resources::new(cpu_d, mem_d, net_d, disk_d),
                work,
                priority,
                tenant: rng.gen_range(0..cfg.tenants.max(1)),
                arrival,
                deadline: arrival + (work * slack).ceil() as u64,
            });
            id += 1;
        }
        out.push(tick);
    }
    out
}

/// Orders pending workloads the way a priority queue scheduler pops them: higher
/// priority first, then earlier deadline, then id.
pub fn queue_order(pending: &[Workload]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..pending.len()).collect();
    idx.sort_by(|&a, &b| {
        let (x, y) = (&pending[a], &pending[b]);
        y.priority
            .cmp(&x.priority)
            .then(x.deadline.cmp(&y.deadline))
            .then(x.id.cmp(&y.id))
    });
    idx
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn arrivals_follow_the_trace_and_are_deterministic() {
        let mut cpu = vec![0.5; 48];
        cpu.extend(vec![1.5; 48]);
        let trace = DayTrace {
            source: "t".into(),
            day: 0,
            cpu,
            mem: vec![1.0; 96],
        };
        let cfg = WorkloadConfig::default();
        let a = generate_arrivals(&trace, 10, &cfg, &mut ChaCha8Rng::seed_from_u64(1));
        let b = generate_arrivals(&trace, 10, &cfg, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(a, b);
        let low: usize = a[..48].iter().map(Vec::len).sum();
        let high: usize = a[48..].iter().map(Vec::len).sum();
        assert!(high > 2 * low, "low {low} high {high}");
        for w in a.iter().flatten() {
            assert!(w.demand.is_valid());
            assert!(w.deadline as f32 >= w.arrival as f32 + w.work);
        }
    }

    #[test]
    fn poisson_mean_is_right_for_small_and_large_rates() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        for lambda in [0.5f32, 8.0, 150.0] {
            let n = 400;
            let mean = (0..n)
                .map(|_| poisson(&mut rng, lambda) as f64)
                .sum::<f64>()
                / n as f64;
            let se = (lambda as f64 / n as f64).sqrt();
            assert!(
                (mean - lambda as f64).abs() < 5.0 * se,
                "lambda {lambda}: mean {mean}"
            );
        }
    }

    #[test]
    fn queue_order_puts_priority_then_deadline_first() {
        let mk = |id, priority, deadline| Workload {
            id,
            demand: Resources::default(),
            work: 1.0,
            priority,
            tenant: 0,
            arrival: 0,
            deadline,
        };
        let p = vec![mk(0, 0, 5), mk(1, 2, 9), mk(2, 0, 3)];
        assert_eq!(queue_order(&p), vec![1, 2, 0]);
    }
}
