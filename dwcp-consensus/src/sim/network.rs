//! The simulated network: per-link latency, jitter and loss, and partitions that heal.

use dwcp_core::{NodeId, Time};
use rand::Rng;
use std::time::Duration;

/// Delay and loss of every link.
#[derive(Clone, Debug)]
pub struct LinkModel {
    /// One-way base latency.
    pub latency: Duration,
    /// Extra delay drawn uniformly from `0..=jitter`.
    pub jitter: Duration,
    /// Probability a message is lost.
    pub loss: f64,
}

impl Default for LinkModel {
    fn default() -> Self {
        LinkModel {
            latency: Duration::from_millis(5),
            jitter: Duration::from_millis(5),
            loss: 0.0,
        }
    }
}

/// During `[start, end)` nodes can only reach nodes of their own group.
#[derive(Clone, Debug)]
pub struct Partition {
    /// When the partition begins.
    pub start: Time,
    /// When it heals.
    pub end: Time,
    /// Group of each node, by id.
    pub group_of: Vec<u8>,
}

/// The link model plus the partition schedule.
#[derive(Clone, Debug, Default)]
pub struct Network {
    /// Delay and loss.
    pub link: LinkModel,
    /// Partitions, any order.
    pub partitions: Vec<Partition>,
}

impl Network {
    /// When a message sent now from `from` to `to` arrives, or `None` if it is lost.
    pub fn deliver_at(
        &self,
        now: Time,
        from: NodeId,
        to: NodeId,
        rng: &mut impl Rng,
    ) -> Option<Time> {
        for p in &self.partitions {
            if now >= p.start
                && now < p.end
                && p.group_of.get(from.index()) != p.group_of.get(to.index())
            {
                return None;
            }
        }
        if self.link.loss > 0.0 && rng.gen_bool(self.link.loss.min(1.0)) {
            return None;
        }
        let jitter = self.link.jitter.as_micros() as u64;
        let extra = if jitter > 0 {
            rng.gen_range(0..=jitter)
        } else {
            0
        };
        Some(
            now.after(self.link.latency)
                .after(Duration::from_micros(extra)),
        )
    }

    /// When the last partition heals.
    pub fn healed_at(&self) -> Time {
        self.partitions
            .iter()
            .map(|p| p.end)
            .max()
            .unwrap_or(Time::ZERO)
    }
}
