//! Leader schedules: which member's vertex is the anchor of an even round.

use dwcp_core::{Committee, NodeId, Round};

/// Chooses the leader (anchor) of each even DAG round. Every node must use the
/// same schedule, and it must depend on nothing but the round.
pub trait LeaderSchedule {
    /// The leader of `round`; only asked for even rounds of 2 and above.
    fn leader(&self, round: Round) -> NodeId;
}

/// The default schedule: the leader of even round `r` is member `(r / 2) mod n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundRobin {
    size: u64,
}

impl RoundRobin {
    /// Round robin over the members of `committee`.
    pub fn new(committee: &Committee) -> RoundRobin {
        RoundRobin {
            size: committee.size() as u64,
        }
    }
}

impl LeaderSchedule for RoundRobin {
    fn leader(&self, round: Round) -> NodeId {
        // A committee has between 1 and u16::MAX members, so the cast is lossless.
        NodeId(((round / 2) % self.size.max(1)) as u16)
    }
}
