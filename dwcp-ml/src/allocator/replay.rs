//! Fixed-capacity replay buffer of joint transitions, sampled uniformly.

use ndarray::{Array2, ArrayView1};
use rand::Rng;

/// A batch of transitions, one row per sample.
#[derive(Debug, Clone)]
pub struct Batch {
    /// Joint observations, `(batch, agents * obs_dim)`.
    pub obs: Array2<f32>,
    /// Joint actions, `(batch, agents)`.
    pub actions: Array2<f32>,
    /// Rewards per agent, `(batch, agents)`.
    pub rewards: Array2<f32>,
    /// Joint next observations.
    pub next_obs: Array2<f32>,
    /// 1.0 where the episode ended after the transition.
    pub done: Array2<f32>,
}

/// Ring buffer: once full, the oldest transition is overwritten.
#[derive(Debug, Clone)]
pub struct ReplayBuffer {
    capacity: usize,
    obs_len: usize,
    agents: usize,
    obs: Vec<f32>,
    actions: Vec<f32>,
    rewards: Vec<f32>,
    next_obs: Vec<f32>,
    done: Vec<f32>,
    len: usize,
    next: usize,
}

impl ReplayBuffer {
    /// An empty buffer for `agents` agents with joint observations of `obs_len` floats.
    pub fn new(capacity: usize, agents: usize, obs_len: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            capacity,
            obs_len,
            agents,
            obs: vec![0.0; capacity * obs_len],
            actions: vec![0.0; capacity * agents],
            rewards: vec![0.0; capacity * agents],
            next_obs: vec![0.0; capacity * obs_len],
            done: vec![0.0; capacity],
            len: 0,
            next: 0,
        }
    }

    /// Stored transitions.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stores one transition. Slices must have the lengths given at construction.
    ///
    /// # Panics
    /// On a length mismatch (a programming error, never outside input).
    pub fn push(
        &mut self,
        obs: &[f32],
        actions: &[f32],
        rewards: &[f32],
        next_obs: &[f32],
        done: bool,
    ) {
        assert_eq!(obs.len(), self.obs_len, "observation length");
        assert_eq!(next_obs.len(), self.obs_len, "next observation length");
        assert_eq!(actions.len(), self.agents, "action count");
        assert_eq!(rewards.len(), self.agents, "reward count");
        let i = self.next;
        self.obs[i * self.obs_len..(i + 1) * self.obs_len].copy_from_slice(obs);
        self.next_obs[i * self.obs_len..(i + 1) * self.obs_len].copy_from_slice(next_obs);
        self.actions[i * self.agents..(i + 1) * self.agents].copy_from_slice(actions);
        self.rewards[i * self.agents..(i + 1) * self.agents].copy_from_slice(rewards);
        self.done[i] = if done { 1.0 } else { 0.0 };
        self.next = (self.next + 1) % self.capacity;
        self.len = (self.len + 1).min(self.capacity);
    }

    /// Samples `batch` transitions uniformly with replacement.
    /// Returns `None` while the buffer is empty.
    pub fn sample<R: Rng>(&self, batch: usize, rng: &mut R) -> Option<Batch> {
        if self.len == 0 {
            return None;
        }
        let mut b = Batch {
            obs: Array2::zeros((batch, self.obs_len)),
            actions: Array2::zeros((batch, self.agents)),
            rewards: Array2::zeros((batch, self.agents)),
            next_obs: Array2::zeros((batch, self.obs_len)),
            done: Array2::zeros((batch, 1)),
        };
        for r in 0..batch {
            let i = rng.gen_range(0..self.len);
            let row = |v: &[f32], w: usize| ArrayView1::from(&v[i * w..(i + 1) * w]).to_owned();
            b.obs.row_mut(r).assign(&row(&self.obs, self.obs_len));
            b.next_obs
                .row_mut(r)
                .assign(&row(&self.next_obs, self.obs_len));
            b.actions
                .row_mut(r)
                .assign(&row(&self.actions, self.agents));
            b.rewards
                .row_mut(r)
                .assign(&row(&self.rewards, self.agents));
            b.done[[r, 0]] = self.done[i];
        }
        Some(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn ring_buffer_overwrites_the_oldest_and_keeps_rows_together() {
        let mut buf = ReplayBuffer::new(3, 1, 2);
        assert!(buf.sample(4, &mut ChaCha8Rng::seed_from_u64(0)).is_none());
        for k in 0..5 {
            let f = k as f32;
            buf.push(&[f, f], &[f], &[f], &[f + 1.0, f + 1.0], k == 4);
        }
        assert_eq!(buf.len(), 3);
        let b = buf
            .sample(64, &mut ChaCha8Rng::seed_from_u64(1))
            .expect("non-empty");
        for r in 0..64 {
            let f = b.obs[[r, 0]];
            assert!((2.0..=4.0).contains(&f), "old transition {f} survived");
            assert_eq!(b.actions[[r, 0]], f);
            assert_eq!(b.rewards[[r, 0]], f);
            assert_eq!(b.next_obs[[r, 1]], f + 1.0);
            assert_eq!(b.done[[r, 0]], if f == 4.0 { 1.0 } else { 0.0 });
        }
    }

    #[test]
    fn sampling_is_deterministic_for_a_seed() {
        let mut buf = ReplayBuffer::new(10, 2, 1);
        for k in 0..10 {
            let f = k as f32;
            buf.push(&[f], &[f, f], &[0.0, 0.0], &[f], false);
        }
        let a = buf
            .sample(8, &mut ChaCha8Rng::seed_from_u64(5))
            .expect("batch");
        let b = buf
            .sample(8, &mut ChaCha8Rng::seed_from_u64(5))
            .expect("batch");
        assert_eq!(a.obs, b.obs);
    }
}
