//! Training MADDPG node agents on the trace-driven environment.
//!
//! Every pending workload is one decision step of the N node agents: each agent
//! observes its node and the workload ([`Round::observe`]) and bids with the shared
//! actor (plus exploration noise); the workload goes to the highest bidder it fits on,
//! or waits when no bid is positive. The team reward of the step ([`RewardShaping`])
//! mirrors the evaluation objective:
//!
//! - +0.6 for a placement predicted to meet its deadline (−0.3 if predicted late);
//! - +0.4 × the chosen node's mean allocated share after placement, and +2 × the change
//!   of the active nodes' utilisation (the objective's own definition, which drops when
//!   an idle node is woken);
//! - −0.4 for waking an idle node;
//! - −0.1 × (workloads already on the node) × (the slowdown the placement imposes on
//!   them past the 75 % CPU interference knee): they may miss their deadlines;
//! - deferring: +0.5 for a batch workload that could still finish on a reference node
//!   after two more ticks of waiting (it will be placed later; deferring it rather than
//!   waking a node is what consolidation needs), −0.02 for any other workload that can
//!   still wait, and −0.8 for waiting when that makes the deadline unreachable (a certain
//!   rejection).
//!
//! The weights were chosen on *training* days only, by scoring the myopic optimum of each
//! candidate reward (the `reward_greedy` diagnostic in `eval.rs`); the discount is low
//! (γ = 0.6 per decision), so the learned policy is close to myopic in this reward.
//! Decisions where the workload fits on no node involve no choice and are not recorded.
//!
//! Model selection: every `validate_every` episodes the deterministic actor is scored
//! on a few whole *training* days (never the held-out ones) and the best-scoring actor is
//! returned (early stopping); with `restarts` > 1 the same criterion picks the best of
//! several independently seeded runs.

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::env::{run_episode, Env, EnvConfig};
use super::error::AllocError;
use super::eval::objective;
use super::features::{ticks_needed, Round, WorkloadContext, OBS_DIM};
use super::maddpg::{Maddpg, MaddpgConfig};
use super::mlp::Mlp;
use super::policy::{winner, MaddpgAllocator};
use super::trace::DemandTraces;
use super::workload::{queue_order, Placement, Workload, WorkloadConfig};

/// Weights of the per-decision team reward (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RewardShaping {
    /// Placement predicted to finish by its deadline.
    pub on_time: f32,
    /// Placement predicted to finish late (negative).
    pub late: f32,
    /// Weight of the chosen node's mean allocated share after the placement.
    pub node_share: f32,
    /// Weight of the change of the active nodes' utilisation (the objective's
    /// definition) caused by the placement; waking an idle node lowers it.
    pub active_utilisation: f32,
    /// Flat cost of waking an idle node.
    pub wake: f32,
    /// Cost per co-located workload of the slowdown a placement past the interference
    /// knee imposes on it (it may then miss its deadline).
    pub contention: f32,
    /// Cost of deferring a workload that can still wait.
    pub wait: f32,
    /// Cost of deferring a workload into a certain rejection.
    pub reject: f32,
    /// Reward of deferring a batch workload that could still finish on a reference
    /// (speed 1.0) node after waiting `defer_margin` more ticks: it will be placed later,
    /// so deferring is worth its later placement, minus the risk.
    pub defer_batch: f32,
    /// Spare ticks a deferred batch workload must keep to earn `defer_batch`.
    pub defer_margin: u64,
}

impl Default for RewardShaping {
    fn default() -> Self {
        Self {
            on_time: 0.6,
            late: -0.3,
            node_share: 0.4,
            active_utilisation: 2.0,
            wake: 0.4,
            contention: 0.1,
            wait: 0.02,
            reject: 0.8,
            defer_batch: 0.5,
            defer_margin: 2,
        }
    }
}

impl RewardShaping {
    /// Reward of placing `w` on node `n` (called before the placement is recorded).
    pub fn placement(&self, round: &Round, ctx: &WorkloadContext, n: usize, w: &Workload) -> f32 {
        let on_time = round.meets_deadline(n, w);
        let idle = round.running[n] == 0;
        let share = round.ledger.share_after(n, w.demand).iter().sum::<f32>() / 4.0;
        (if on_time { self.on_time } else { self.late })
            + self.node_share * share
            + self.active_utilisation * round.active_utilisation_gain(n, w, ctx)
            - if idle { self.wake } else { 0.0 }
            - self.contention * round.slowdown(n, w) * round.running[n] as f32
    }

    /// Reward of deferring `w` to the next round.
    pub fn deferral(&self, round: &Round, w: &Workload) -> f32 {
        let roomy = w.priority == 0
            && round.now + 1 + ticks_needed(w.work, 1.0) + self.defer_margin <= w.deadline;
        if roomy {
            self.defer_batch
        } else if round.can_wait(w) {
            -self.wait
        } else {
            -self.reject
        }
    }
}

/// Training parameters.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainConfig {
    /// Episodes.
    pub episodes: usize,
    /// Nodes (= agents) of the training clusters.
    pub nodes: usize,
    /// Arrival ticks per episode (a random window of a training day).
    pub ticks: usize,
    /// Seed of everything.
    pub seed: u64,
    /// Exploration noise at the first episode.
    pub noise_start: f32,
    /// Exploration noise at the last episode.
    pub noise_end: f32,
    /// Decisions collected before the first update.
    pub warmup: usize,
    /// One update every this many decisions.
    pub update_every: usize,
    /// Bid threshold below which a workload waits.
    pub threshold: f32,
    /// Score the current actor on the validation episodes every this many episodes
    /// (and after the last one); the best-scoring actor is the one returned.
    pub validate_every: usize,
    /// Independent runs with seeds `seed`, `seed + 1`, ...; the one with the best
    /// validation objective is kept (DDPG-style learners vary a lot between seeds).
    pub restarts: usize,
    /// Number of validation episodes: whole *training* days (never held-out ones),
    /// fixed seeds, scored with [`super::eval::objective`].
    pub validation_episodes: usize,
    /// Weights of the per-decision reward.
    pub reward: RewardShaping,
    /// Learner hyper-parameters.
    pub maddpg: MaddpgConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        let nodes = 8;
        Self {
            episodes: 300,
            nodes,
            ticks: 32,
            seed: 1,
            noise_start: 0.4,
            noise_end: 0.05,
            warmup: 1_000,
            update_every: 2,
            threshold: 0.0,
            validate_every: 25,
            validation_episodes: 6,
            restarts: 2,
            reward: RewardShaping::default(),
            maddpg: MaddpgConfig::new(nodes, OBS_DIM),
        }
    }
}

/// What one training run (one seed) did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Seed of the run.
    pub seed: u64,
    /// Decisions taken.
    pub decisions: u64,
    /// Gradient updates.
    pub updates: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Total reward of each episode.
    pub episode_rewards: Vec<f64>,
    /// Mean reward per decision over the first tenth of the episodes.
    pub first_tenth_reward_per_decision: f64,
    /// Mean reward per decision over the last tenth of the episodes.
    pub last_tenth_reward_per_decision: f64,
    /// Critic loss of the last update.
    pub final_critic_loss: f32,
    /// `(episode, validation objective)` at each validation.
    pub validation: Vec<(usize, f64)>,
    /// Episode after which the returned actor was taken.
    pub best_episode: usize,
    /// Its validation objective.
    pub best_validation_objective: f64,
}

/// What training did: one run per restart, and which one was kept.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// Parameters used.
    pub config: TrainConfig,
    /// Wall-clock seconds of the whole training.
    pub seconds: f64,
    /// The runs, seeds `seed`, `seed + 1`, ...
    pub runs: Vec<RunReport>,
    /// Index in `runs` of the run whose actor was returned (best validation objective).
    pub chosen: usize,
}

/// Mean objective of `actor` on the validation episodes (training days only).
pub fn validation_objective(
    actor: &Mlp,
    traces: &DemandTraces,
    cfg: &TrainConfig,
) -> Result<f64, AllocError> {
    let days = traces.training();
    let mut total = 0.0;
    let episodes = cfg.validation_episodes.max(1);
    for v in 0..episodes {
        let day = days[(17 * v + 5) % days.len()];
        let env_cfg = EnvConfig {
            nodes: cfg.nodes,
            ..EnvConfig::default()
        };
        let mut env = Env::new(day, &env_cfg, 7_000 + v as u64)?;
        let mut policy = MaddpgAllocator::new(actor.clone(), cfg.threshold)?;
        let (m, _) = run_episode(&mut env, &mut policy)?;
        total += objective(&m);
    }
    Ok(total / episodes as f64)
}

/// Trains `cfg.restarts` independent runs (seeds `cfg.seed`, `cfg.seed + 1`, ...) and
/// returns the actor with the best validation objective (training days only).
/// `progress(episode, episode_reward)` is called after each episode, counting across runs.
/// Deterministic for a configuration.
pub fn train(
    traces: &DemandTraces,
    cfg: &TrainConfig,
    progress: &mut dyn FnMut(usize, f64),
) -> Result<(Mlp, TrainReport), AllocError> {
    let started = std::time::Instant::now();
    let mut runs = Vec::new();
    let mut best: Option<(usize, Mlp)> = None;
    for r in 0..cfg.restarts.max(1) {
        let offset = r * cfg.episodes;
        let (actor, run) = train_run(
            traces,
            cfg,
            cfg.seed.wrapping_add(r as u64),
            &mut |ep, rew| progress(offset + ep, rew),
        )?;
        let better = match &best {
            None => true,
            Some((k, _)) => {
                run.best_validation_objective
                    > runs.get(*k).map_or(f64::NEG_INFINITY, |b: &RunReport| {
                        b.best_validation_objective
                    })
            }
        };
        runs.push(run);
        if better {
            best = Some((runs.len() - 1, actor));
        }
    }
    let (chosen, actor) = best.ok_or_else(|| AllocError::Config("no training run".into()))?;
    let report = TrainReport {
        config: cfg.clone(),
        seconds: started.elapsed().as_secs_f64(),
        runs,
        chosen,
    };
    Ok((actor, report))
}

/// One training run from scratch with `seed`.
pub fn train_run(
    traces: &DemandTraces,
    cfg: &TrainConfig,
    seed: u64,
    progress: &mut dyn FnMut(usize, f64),
) -> Result<(Mlp, RunReport), AllocError> {
    if cfg.nodes == 0
        || cfg.ticks == 0
        || cfg.ticks > super::trace::SLOTS_PER_DAY
        || cfg.update_every == 0
    {
        return Err(AllocError::Config(
            "need nodes > 0, 0 < ticks <= 96 and update_every > 0".into(),
        ));
    }
    let days = traces.training();
    if days.is_empty() {
        return Err(AllocError::Config("no training days".into()));
    }
    let started = std::time::Instant::now();
    let n = cfg.nodes;
    let mut m = Maddpg::new(MaddpgConfig {
        agents: n,
        obs_dim: OBS_DIM,
        seed,
        ..cfg.maddpg.clone()
    });
    let mut decisions = 0u64;
    let mut updates = 0u64;
    let mut last_loss = 0.0;
    let mut rewards = Vec::with_capacity(cfg.episodes);
    let mut per_decision = Vec::with_capacity(cfg.episodes);
    let mut validation = Vec::new();
    let mut best: Option<(usize, f64, Mlp)> = None;
    for ep in 0..cfg.episodes {
        let mut erng =
            ChaCha8Rng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(ep as u64));
        let day = days[erng.gen_range(0..days.len())];
        let start = erng.gen_range(0..=day.cpu.len() - cfg.ticks);
        let env_cfg = EnvConfig {
            nodes: n,
            start_slot: start,
            ticks: cfg.ticks,
            workload: WorkloadConfig::default(),
        };
        let mut env = Env::new(day, &env_cfg, erng.gen())?;
        let frac = if cfg.episodes > 1 {
            ep as f32 / (cfg.episodes - 1) as f32
        } else {
            1.0
        };
        let sigma = cfg.noise_start + (cfg.noise_end - cfg.noise_start) * frac;
        let mut prev: Option<(Vec<f32>, Vec<f32>, f32)> = None;
        let mut ep_reward = 0.0f64;
        let mut ep_decisions = 0u64;
        while !env.done() {
            let pending = env.pending().to_vec();
            let mut round = Round::new(env.state(), pending.len());
            let mut placements = Vec::new();
            for i in queue_order(&pending) {
                let w = &pending[i];
                let candidates: Vec<usize> = (0..n).filter(|&k| round.fits(k, w)).collect();
                if candidates.is_empty() {
                    continue;
                }
                let ctx = round.context(w);
                let mut obs = Array2::zeros((n, OBS_DIM));
                for k in 0..n {
                    round.observe_with(k, w, &ctx, obs.row_mut(k));
                }
                let acts = m.explore(obs.view(), sigma);
                let bids: Vec<f32> = candidates.iter().map(|&k| acts[k]).collect();
                let reward = match winner(&candidates, &bids, cfg.threshold) {
                    Some(k) => {
                        let r = cfg.reward.placement(&round, &ctx, k, w);
                        round.place(k, w);
                        placements.push(Placement {
                            workload: w.id,
                            node: k,
                        });
                        r
                    }
                    None => cfg.reward.deferral(&round, w),
                };
                let flat: Vec<f32> = obs.iter().copied().collect();
                if let Some((po, pa, pr)) = prev.take() {
                    m.remember(&po, &pa, &vec![pr; n], &flat, false);
                }
                prev = Some((flat, acts.to_vec(), reward));
                ep_reward += reward as f64;
                ep_decisions += 1;
                decisions += 1;
                if decisions as usize >= cfg.warmup
                    && decisions.is_multiple_of(cfg.update_every as u64)
                {
                    if let Some(s) = m.update() {
                        updates += 1;
                        last_loss = s.critic_loss;
                    }
                }
            }
            env.step(&placements)?;
        }
        if let Some((po, pa, pr)) = prev.take() {
            m.remember(&po, &pa, &vec![pr; n], &po, true);
        }
        rewards.push(ep_reward);
        per_decision.push(ep_reward / ep_decisions.max(1) as f64);
        if (ep + 1) % cfg.validate_every.max(1) == 0 || ep + 1 == cfg.episodes {
            let score = validation_objective(m.actor(), traces, cfg)?;
            validation.push((ep, score));
            if best.as_ref().is_none_or(|(_, b, _)| score > *b) {
                best = Some((ep, score, m.actor().clone()));
            }
        }
        progress(ep, ep_reward);
    }
    let (best_episode, best_validation_objective, actor) =
        best.unwrap_or_else(|| (0, f64::NAN, m.actor().clone()));
    let tenth = (cfg.episodes / 10).max(1);
    let mean = |xs: &[f64]| xs.iter().sum::<f64>() / xs.len().max(1) as f64;
    let report = RunReport {
        seed,
        decisions,
        updates,
        seconds: started.elapsed().as_secs_f64(),
        first_tenth_reward_per_decision: mean(&per_decision[..tenth.min(per_decision.len())]),
        last_tenth_reward_per_decision: mean(
            &per_decision[per_decision.len().saturating_sub(tenth)..],
        ),
        episode_rewards: rewards,
        final_critic_loss: last_loss,
        validation,
        best_episode,
        best_validation_objective,
    };
    Ok((actor, report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::cluster::{ClusterState, NodeState};
    use crate::allocator::resources::Resources;

    #[test]
    fn reward_prefers_packing_and_defers_only_roomy_batch_work() {
        let mut busy = NodeState::idle(Resources::new(16.0, 64.0, 10.0, 4.0), 1.0);
        busy.allocated = Resources::new(4.0, 16.0, 1.0, 1.0);
        busy.running = 1;
        let state = ClusterState {
            time: 0,
            nodes: vec![
                busy,
                NodeState::idle(Resources::new(16.0, 64.0, 10.0, 4.0), 1.0),
            ],
            tenant_allocated: Vec::new(),
        };
        let mk = |priority, deadline| Workload {
            id: 0,
            demand: Resources::new(2.0, 8.0, 0.5, 0.2),
            work: 2.0,
            priority,
            tenant: 0,
            arrival: 0,
            deadline,
        };
        let s = RewardShaping::default();
        let r = Round::new(&state, 1);
        let roomy = mk(0, 10);
        let ctx = r.context(&roomy);
        let pack = s.placement(&r, &ctx, 0, &roomy);
        let wake = s.placement(&r, &ctx, 1, &roomy);
        let defer = s.deferral(&r, &roomy);
        assert!(pack > defer && defer > wake, "{pack} {defer} {wake}");
        // Tight or latency-critical work is not paid for waiting.
        assert_eq!(s.deferral(&r, &mk(2, 10)), -s.wait);
        assert_eq!(s.deferral(&r, &mk(0, 4)), -s.wait);
        assert_eq!(s.deferral(&r, &mk(0, 2)), -s.reject);
    }

    #[test]
    fn a_short_run_is_deterministic_and_finite() {
        let traces = DemandTraces::embedded().expect("trace");
        let mut cfg = TrainConfig {
            episodes: 2,
            nodes: 3,
            ticks: 4,
            warmup: 16,
            validation_episodes: 1,
            restarts: 1,
            ..TrainConfig::default()
        };
        cfg.maddpg.batch = 8;
        cfg.maddpg.critic_hidden = vec![16];
        cfg.maddpg.actor_hidden = vec![8];
        let (a, r) = train(&traces, &cfg, &mut |_, _| {}).expect("train");
        let (b, _) = train(&traces, &cfg, &mut |_, _| {}).expect("train");
        assert_eq!(a, b);
        assert!(a.is_finite());
        assert!(r.runs[0].updates > 0);
        assert_eq!(r.runs.len(), 1);
        assert_eq!(r.runs[0].episode_rewards.len(), 2);
        assert_eq!(
            r.runs[0].validation.len(),
            1,
            "validated after the last episode"
        );
    }
}
