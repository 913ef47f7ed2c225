//! Diagnostics only (ignored tests, run by hand): what the objective allows in this
//! environment, as reference points for the learned policy. Nothing here is shipped or
//! takes part in `dwcpd allocate eval`.
//!
//! - `consolidation_oracle_diagnostic`: a hand-written consolidating policy (pack onto
//!   active nodes, demand aligned with free capacity, keep tight work under the CPU
//!   interference knee, defer batch work with slack rather than wake an idle node), over
//!   a small grid of its knobs, on the evaluation episodes. Its knobs are tuned on the
//!   held-out days themselves, so the best row is optimistic: an upper reference, not a
//!   competitor.
//! - `demand_shape_bound`: the utilisation perfect packing could reach given only the
//!   mix of the four resources in the demand.
//!
//! `cargo test --release -p dwcp-ml oracle -- --ignored --nocapture`

use super::eval::{evaluate, EvalConfig};
use super::features::{ticks_needed, Round};
use super::trace::DemandTraces;
use super::workload::queue_order;
use super::{Allocator, ClusterState, Placement, Workload};

#[derive(Debug, Clone, Copy)]
struct Knobs {
    /// Highest CPU share a placement may leave on an already active node.
    cpu_cap: f32,
    /// Ticks of spare slack a workload must keep to be deferred instead of waking a node.
    defer_margin: u64,
    /// Speed assumed when checking a deferred workload can still finish.
    defer_speed: f32,
    /// Node choice: 0 best fit (highest summed share after placement); 1 the same minus
    /// the dot product of the demand and free shares (prefers nodes whose free capacity
    /// is scarce where the workload asks most).
    score: u8,
}

struct Consolidate(Knobs);

impl Allocator for Consolidate {
    fn name(&self) -> &str {
        "consolidate-oracle"
    }
    fn allocate(&mut self, state: &ClusterState, pending: &[Workload]) -> Vec<Placement> {
        let k = self.0;
        let mut round = Round::new(state, pending.len());
        let mut out = Vec::new();
        for i in queue_order(pending) {
            let w = &pending[i];
            let n = round.nodes();
            let ok = |r: &Round, m: usize| r.fits(m, w) && r.meets_deadline(m, w);
            let score = |r: &Round, m: usize| -> f32 {
                let s = r.ledger.share_after(m, w.demand);
                match k.score {
                    0 => s.iter().sum::<f32>(),
                    _ => {
                        let d = w.demand.ratio(r.capacity(m));
                        let before = r.ledger.allocated[m].ratio(r.capacity(m));
                        let free_where_asked: f32 = (0..4).map(|j| d[j] * (1.0 - before[j])).sum();
                        s.iter().sum::<f32>() - free_where_asked
                    }
                }
            };
            let mut best: Option<(usize, f32)> = None;
            for m in 0..n {
                if round.running[m] == 0 || !ok(&round, m) {
                    continue;
                }
                let cpu = round.ledger.share_after(m, w.demand)[0];
                // Tight work never goes past the cap; batch work (slack 2-5x) may go up to
                // a full CPU.
                if cpu > k.cpu_cap && w.priority > 0 || cpu > 0.99 {
                    continue;
                }
                let sc = score(&round, m);
                if best.is_none_or(|(_, b)| sc > b) {
                    best = Some((m, sc));
                }
            }
            if best.is_none() {
                let can_defer = w.priority == 0
                    && round.now + 1 + ticks_needed(w.work, k.defer_speed) + k.defer_margin
                        <= w.deadline;
                if can_defer {
                    continue;
                }
                for m in 0..n {
                    if round.running[m] != 0 || !ok(&round, m) {
                        continue;
                    }
                    let sc = score(&round, m);
                    if best.is_none_or(|(_, b)| sc > b) {
                        best = Some((m, sc));
                    }
                }
            }
            if best.is_none() {
                // Last resort: any node that fits, to avoid a rejection.
                if !round.can_wait(w) {
                    best = (0..n)
                        .filter(|&m| ok(&round, m))
                        .map(|m| (m, round.mean_share(m)))
                        .max_by(|a, b| a.1.total_cmp(&b.1))
                        .or_else(|| {
                            (0..n)
                                .filter(|&m| round.fits(m, w))
                                .map(|m| (m, round.speeds[m]))
                                .max_by(|a, b| a.1.total_cmp(&b.1))
                        });
                }
            }
            if let Some((m, _)) = best {
                round.place(m, w);
                out.push(Placement {
                    workload: w.id,
                    node: m,
                });
            }
        }
        out
    }
}

#[test]
#[ignore = "diagnostic printout, run by hand"]
fn consolidation_oracle_diagnostic() {
    let traces = DemandTraces::embedded().expect("trace");
    for seeds in [5usize, 11] {
        let cfg = EvalConfig {
            seeds,
            latency_ticks: 1,
            ..EvalConfig::default()
        };
        for cpu_cap in [0.75f32, 0.85, 1.0] {
            for defer_margin in [0u64, 1, 3] {
                for defer_speed in [0.9f32, 1.35] {
                    for score in [0u8, 1] {
                        let kn = Knobs {
                            cpu_cap,
                            defer_margin,
                            defer_speed,
                            score,
                        };
                        let r = evaluate(
                            &traces,
                            &cfg,
                            &|| Box::new(Consolidate(kn)) as Box<dyn Allocator>,
                            &|_| {
                                vec![Box::new(
                                    crate::allocator::baselines::first_fit::FirstFitDecreasing,
                                ) as Box<dyn Allocator>]
                            },
                            &mut || {},
                        )
                        .expect("eval");
                        let a = &r.allocators["consolidate-oracle"];
                        println!(
                            "seeds {seeds} {kn:?}: sla {:.4} util {:.4} rej {:.1} obj {:.4} ± {:.4} vs ffd {:+.2}%",
                            a.sla_compliance.mean,
                            a.mean_utilisation.mean,
                            a.rejected.mean,
                            a.objective.mean,
                            a.objective.ci95,
                            r.improvement_vs_best_baseline_pct
                        );
                    }
                }
            }
        }
    }
}

/// Upper bound on active-node utilisation from the demand mix alone: even with perfect
/// packing, once the binding resource of the active nodes is full the others are at
/// their share of the demand mix.
#[test]
#[ignore = "diagnostic printout, run by hand"]
fn demand_shape_bound() {
    use super::env::{Env, EnvConfig};
    let traces = DemandTraces::embedded().expect("trace");
    let held = traces.held_out();
    for k in 0..11usize {
        let day = held[(7 * k) % held.len()];
        let env = Env::new(day, &EnvConfig::default(), 10_000 + k as u64).expect("env");
        let cap = env.state().total_capacity().to_array();
        let mut d = [0f64; 4];
        let mut e = env.clone();
        let mut all = Vec::new();
        while (e.state().time as usize) < e.ticks() {
            all.extend(e.pending().iter().cloned());
            // Place nothing: only the arrivals are of interest here.
            e.step(&[]).expect("step");
            all.extend(e.pending().iter().cloned());
        }
        all.sort_by_key(|w| w.id);
        all.dedup_by_key(|w| w.id);
        for w in &all {
            let a = w.demand.to_array();
            for j in 0..4 {
                d[j] += (a[j] * w.work) as f64 / cap[j] as f64;
            }
        }
        let max = d.iter().cloned().fold(0.0, f64::max);
        let shape: Vec<f64> = d.iter().map(|x| x / max).collect();
        let load = max / env.ticks() as f64;
        println!(
            "ep {k}: {} d{} mean load of binding resource {:.3}, shape {:.3?}, bound {:.3}",
            day.source,
            day.day,
            load,
            shape,
            shape.iter().sum::<f64>() / 4.0
        );
    }
}
