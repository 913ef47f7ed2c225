//! MADDPG (Lowe et al., "Multi-Agent Actor-Critic for Mixed Cooperative-Competitive
//! Environments", NeurIPS 2017): decentralised actors, centralised critics.
//!
//! - Each agent `i` acts with a deterministic actor `μ(o_i)` on its **local**
//!   observation, producing one continuous action in (−1, 1).
//! - Each agent has its **own centralised critic** `Q_i(o_1..o_N, a_1..a_N)` over all
//!   observations and all actions, trained towards
//!   `y = r_i + γ (1 − done) Q'_i(o'_1..o'_N, μ'(o'_1)..μ'(o'_N))` with target networks.
//! - The actor follows `∇_θ J = E[ Σ_i ∇_θ μ(o_i) ∇_{a_i} Q_i(o, a_1..μ(o_i)..a_N) ]`.
//! - Target networks track the learned ones by Polyak averaging (soft updates);
//!   transitions come from a replay buffer; exploration adds Gaussian noise; every
//!   network is trained with Adam.
//!
//! Parameter sharing: the actors of all agents share one set of weights. Node agents
//! are interchangeable up to what their observation says (capacity, speed, load), so a
//! shared actor is the same policy class with N times the data per update, and it lets
//! a model trained on a small cluster act on a cluster of any size. The critics are not
//! shared: each agent keeps its own centralised critic, as in the paper.

use ndarray::{Array1, Array2, ArrayView2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::adam::Adam;
use super::mlp::{Activation, Mlp};
use super::replay::ReplayBuffer;

/// Hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaddpgConfig {
    /// Number of agents.
    pub agents: usize,
    /// Length of one agent's observation.
    pub obs_dim: usize,
    /// Hidden layer sizes of the actor.
    pub actor_hidden: Vec<usize>,
    /// Hidden layer sizes of each critic.
    pub critic_hidden: Vec<usize>,
    /// Actor learning rate.
    pub lr_actor: f32,
    /// Critic learning rate.
    pub lr_critic: f32,
    /// Discount factor.
    pub gamma: f32,
    /// Soft-update rate of the target networks.
    pub tau: f32,
    /// Mini-batch size.
    pub batch: usize,
    /// Replay buffer capacity.
    pub buffer: usize,
    /// Global gradient-norm clip.
    pub grad_clip: f32,
    /// Seed of initialisation and sampling.
    pub seed: u64,
}

impl MaddpgConfig {
    /// Defaults for `agents` agents with `obs_dim`-long observations.
    pub fn new(agents: usize, obs_dim: usize) -> Self {
        Self {
            agents,
            obs_dim,
            actor_hidden: vec![32, 32],
            critic_hidden: vec![64, 64],
            lr_actor: 1e-3,
            lr_critic: 2e-3,
            gamma: 0.6,
            tau: 0.01,
            batch: 64,
            buffer: 100_000,
            grad_clip: 5.0,
            seed: 0,
        }
    }
}

/// Losses of one update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UpdateStats {
    /// Mean squared TD error over critics.
    pub critic_loss: f32,
    /// Mean Q of the current policy's actions.
    pub policy_q: f32,
}

/// The learner: shared actor, one centralised critic per agent, their targets and
/// optimisers, the replay buffer and a seeded generator.
#[derive(Debug, Clone)]
pub struct Maddpg {
    cfg: MaddpgConfig,
    actor: Mlp,
    actor_target: Mlp,
    actor_opt: Adam,
    critics: Vec<Mlp>,
    critic_targets: Vec<Mlp>,
    critic_opts: Vec<Adam>,
    replay: ReplayBuffer,
    rng: ChaCha8Rng,
}

/// Builds the actor network for observations of `obs_dim`.
pub fn new_actor<R: Rng>(obs_dim: usize, hidden: &[usize], rng: &mut R) -> Mlp {
    let mut sizes = vec![obs_dim];
    sizes.extend_from_slice(hidden);
    sizes.push(1);
    Mlp::new(&sizes, Activation::Relu, Activation::Tanh, 3e-3, rng)
}

impl Maddpg {
    /// Fresh networks from `cfg.seed`.
    pub fn new(cfg: MaddpgConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let actor = new_actor(cfg.obs_dim, &cfg.actor_hidden, &mut rng);
        let joint = cfg.agents * cfg.obs_dim + cfg.agents;
        let mut csizes = vec![joint];
        csizes.extend_from_slice(&cfg.critic_hidden);
        csizes.push(1);
        let critics: Vec<Mlp> = (0..cfg.agents)
            .map(|_| {
                Mlp::new(
                    &csizes,
                    Activation::Relu,
                    Activation::Identity,
                    3e-3,
                    &mut rng,
                )
            })
            .collect();
        Self {
            actor_target: actor.clone(),
            actor_opt: Adam::new(&actor, cfg.lr_actor),
            critic_targets: critics.clone(),
            critic_opts: critics
                .iter()
                .map(|c| Adam::new(c, cfg.lr_critic))
                .collect(),
            critics,
            actor,
            replay: ReplayBuffer::new(cfg.buffer, cfg.agents, cfg.agents * cfg.obs_dim),
            rng,
            cfg,
        }
    }

    /// Hyper-parameters.
    pub fn config(&self) -> &MaddpgConfig {
        &self.cfg
    }

    /// The shared actor.
    pub fn actor(&self) -> &Mlp {
        &self.actor
    }

    /// Transitions stored.
    pub fn buffered(&self) -> usize {
        self.replay.len()
    }

    /// Deterministic actions, one per row of `obs` (`(agents, obs_dim)`).
    pub fn act(&self, obs: ArrayView2<f32>) -> Array1<f32> {
        self.actor.forward(obs).column(0).to_owned()
    }

    /// Actions with Gaussian exploration noise of standard deviation `sigma`, clipped
    /// to the actor's range.
    pub fn explore(&mut self, obs: ArrayView2<f32>, sigma: f32) -> Array1<f32> {
        let mut a = self.act(obs);
        for v in a.iter_mut() {
            *v = (*v + sigma * gaussian(&mut self.rng)).clamp(-1.0, 1.0);
        }
        a
    }

    /// Stores a transition: joint observation (agent-major), joint action, per-agent
    /// rewards, joint next observation, end-of-episode flag.
    pub fn remember(
        &mut self,
        obs: &[f32],
        actions: &[f32],
        rewards: &[f32],
        next_obs: &[f32],
        done: bool,
    ) {
        self.replay.push(obs, actions, rewards, next_obs, done);
    }

    /// Applies the shared actor to every agent block of joint observations
    /// `(batch, agents * obs_dim)`; returns `(batch, agents)` actions.
    fn joint_actions(&self, net: &Mlp, joint: &Array2<f32>) -> Array2<f32> {
        let (b, n, d) = (joint.nrows(), self.cfg.agents, self.cfg.obs_dim);
        let flat = joint
            .to_shape((b * n, d))
            .map(|v| v.to_owned())
            .unwrap_or_else(|_| Array2::zeros((b * n, d)));
        let a = net.forward(flat.view());
        a.into_shape_with_order((b, n))
            .unwrap_or_else(|_| Array2::zeros((b, n)))
    }

    /// One gradient step of every critic and of the shared actor on a sampled batch,
    /// then soft updates of the targets. Returns `None` until a batch is available.
    pub fn update(&mut self) -> Option<UpdateStats> {
        if self.replay.len() < self.cfg.batch {
            return None;
        }
        let batch = self.replay.sample(self.cfg.batch, &mut self.rng)?;
        let (b, n, d) = (self.cfg.batch, self.cfg.agents, self.cfg.obs_dim);
        let nd = n * d;
        let next_actions = self.joint_actions(&self.actor_target, &batch.next_obs);
        let next_input = ndarray::concatenate![Axis(1), batch.next_obs, next_actions];
        let input = ndarray::concatenate![Axis(1), batch.obs, batch.actions];

        let mut critic_loss = 0.0;
        for i in 0..n {
            let q_next = self.critic_targets[i].forward(next_input.view());
            let mut y = Array2::zeros((b, 1));
            for r in 0..b {
                y[[r, 0]] = batch.rewards[[r, i]]
                    + self.cfg.gamma * (1.0 - batch.done[[r, 0]]) * q_next[[r, 0]];
            }
            let (q, tape) = self.critics[i].forward_tape(input.view());
            let diff = &q - &y;
            critic_loss += diff.mapv(|v| v * v).mean().unwrap_or(0.0);
            let dq = diff * (2.0 / b as f32);
            let (mut g, _) = self.critics[i].backward(&tape, dq.view());
            g.clip(self.cfg.grad_clip);
            self.critic_opts[i].step(&mut self.critics[i], &g);
        }

        // Policy gradient through every agent's centralised critic.
        let flat = batch
            .obs
            .to_shape((b * n, d))
            .map(|v| v.to_owned())
            .unwrap_or_else(|_| Array2::zeros((b * n, d)));
        let (pol, actor_tape) = self.actor.forward_tape(flat.view());
        let mut d_pol = Array2::<f32>::zeros((b * n, 1));
        let mut policy_q = 0.0;
        for i in 0..n {
            let mut inp = input.clone();
            for r in 0..b {
                inp[[r, nd + i]] = pol[[r * n + i, 0]];
            }
            let (q, tape) = self.critics[i].forward_tape(inp.view());
            policy_q += q.mean().unwrap_or(0.0);
            // Maximise Q: gradient of −mean(Q), averaged over agents.
            let dq = Array2::from_elem((b, 1), -1.0 / (b * n) as f32);
            let (_, dx) = self.critics[i].backward(&tape, dq.view());
            for r in 0..b {
                d_pol[[r * n + i, 0]] += dx[[r, nd + i]];
            }
        }
        let (mut g, _) = self.actor.backward(&actor_tape, d_pol.view());
        g.clip(self.cfg.grad_clip);
        self.actor_opt.step(&mut self.actor, &g);

        let tau = self.cfg.tau;
        self.actor_target.soft_update_from(&self.actor, tau);
        for (t, c) in self.critic_targets.iter_mut().zip(&self.critics) {
            t.soft_update_from(c, tau);
        }
        Some(UpdateStats {
            critic_loss: critic_loss / n as f32,
            policy_q: policy_q / n as f32,
        })
    }
}

/// Standard normal sample (Box-Muller).
pub fn gaussian<R: Rng>(rng: &mut R) -> f32 {
    let u1: f32 = rng.gen_range(f32::EPSILON..1.0);
    let u2: f32 = rng.gen_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f32::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cooperative task with a known optimum: each of two agents sees a target
    /// x_i in [−0.8, 0.8]; the shared reward is −Σ_i (a_i − x_i)², maximal (0) at a_i = x_i.
    #[test]
    fn learns_a_tiny_cooperative_task_with_a_known_optimum() {
        let mut cfg = MaddpgConfig::new(2, 1);
        cfg.actor_hidden = vec![16];
        cfg.critic_hidden = vec![32];
        cfg.gamma = 0.0;
        cfg.tau = 0.05;
        cfg.batch = 32;
        cfg.lr_critic = 1e-2;
        cfg.lr_actor = 5e-3;
        cfg.seed = 7;
        let mut m = Maddpg::new(cfg);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let eval = |m: &Maddpg| {
            let mut r = ChaCha8Rng::seed_from_u64(99);
            let mut total = 0.0;
            for _ in 0..200 {
                let x = Array2::from_shape_fn((2, 1), |_| r.gen_range(-0.8f32..0.8));
                let a = m.act(x.view());
                total += -((a[0] - x[[0, 0]]).powi(2) + (a[1] - x[[1, 0]]).powi(2));
            }
            total / 200.0
        };
        let before = eval(&m);
        for _ in 0..600 {
            let x = Array2::from_shape_fn((2, 1), |_| rng.gen_range(-0.8f32..0.8));
            let a = m.explore(x.view(), 0.3);
            let r = -((a[0] - x[[0, 0]]).powi(2) + (a[1] - x[[1, 0]]).powi(2));
            let obs: Vec<f32> = x.iter().copied().collect();
            m.remember(&obs, &a.to_vec(), &[r, r], &obs, true);
            m.update();
        }
        let after = eval(&m);
        assert!(before < -0.3, "untrained reward {before}");
        assert!(after > -0.03, "trained reward {after} (before {before})");
        assert!(m.actor().is_finite());
    }

    #[test]
    fn training_is_deterministic_for_a_seed() {
        let run = || {
            let mut m = Maddpg::new(MaddpgConfig {
                batch: 8,
                ..MaddpgConfig::new(3, 2)
            });
            let mut rng = ChaCha8Rng::seed_from_u64(3);
            for _ in 0..40 {
                let x = Array2::from_shape_fn((3, 2), |_| rng.gen_range(-1.0f32..1.0));
                let a = m.explore(x.view(), 0.2);
                let obs: Vec<f32> = x.iter().copied().collect();
                m.remember(&obs, &a.to_vec(), &[1.0, 0.0, 0.5], &obs, false);
                m.update();
            }
            m.actor().clone()
        };
        assert_eq!(run(), run());
    }
}
