//! Training MADDPG node agents on the trace-driven environment.
//!
//! Every pending workload is one decision step of the N node agents: each agent
//! observes its node and the workload ([`Round::observe`]) and bids with the shared
//! actor (plus exploration noise); the workload goes to the highest bidder it fits on,
//! or waits when no bid is positive. The team reward of the step mirrors the evaluation
//! objective: +0.6 for a placement predicted to meet its deadline (−0.3 if predicted
//! late), +0.4 × the chosen node's mean allocated share after placement (consolidation),
//! −0.1 for waking an idle node, −0.02 for waiting, and −0.8 for waiting when that makes
//! the deadline unreachable (a certain rejection). Decisions where the workload fits on no
//! node involve no choice and are not recorded.
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
use super::features::{Round, OBS_DIM};
use super::maddpg::{Maddpg, MaddpgConfig};
use super::mlp::Mlp;
use super::policy::{winner, MaddpgAllocator};
use super::trace::DemandTraces;
use super::workload::{queue_order, Placement, WorkloadConfig};

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
                let mut obs = Array2::zeros((n, OBS_DIM));
                for k in 0..n {
                    round.observe(k, w, obs.row_mut(k));
                }
                let acts = m.explore(obs.view(), sigma);
                let bids: Vec<f32> = candidates.iter().map(|&k| acts[k]).collect();
                let reward = match winner(&candidates, &bids, cfg.threshold) {
                    Some(k) => {
                        let on_time = round.meets_deadline(k, w);
                        let was_idle = round.running[k] == 0;
                        round.place(k, w);
                        placements.push(Placement {
                            workload: w.id,
                            node: k,
                        });
                        (if on_time { 0.6 } else { -0.3 }) + 0.4 * round.mean_share(k)
                            - if was_idle { 0.1 } else { 0.0 }
                    }
                    None if round.can_wait(w) => -0.02,
                    None => -0.8,
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
