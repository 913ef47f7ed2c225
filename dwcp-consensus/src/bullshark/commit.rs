//! The interface between the DAG and a rule that totally orders it.

use dwcp_core::{Digest, Round};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use super::certificate::Certificate;
use super::dag::Dag;

/// A committed leader and the part of its causal history that no earlier leader
/// committed, in delivery order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedSubDag {
    /// The leader (anchor) certificate; also the last element of `certificates`.
    pub leader: Arc<Certificate>,
    /// Newly committed certificates, ordered by round, then author.
    pub certificates: Vec<Arc<Certificate>>,
}

impl CommittedSubDag {
    /// The leader's round.
    pub fn leader_round(&self) -> Round {
        self.leader.round()
    }

    /// Batch digests of the sub-DAG in commit order.
    pub fn batches(&self) -> impl Iterator<Item = &Digest> + '_ {
        self.certificates.iter().flat_map(|c| c.batches().iter())
    }
}

/// A deterministic rule that turns a growing DAG into a sequence of committed
/// sub-DAGs (Bullshark; Tusk would be another).
///
/// Every honest node that feeds the same certificates, in any order in which
/// parents precede children, must output the same sequence.
pub trait CommitRule {
    /// Called after `certificate` was inserted into `dag` (as [`super::Inserted::New`]);
    /// returns the sub-DAGs this makes committed, oldest first.
    fn on_certificate(&mut self, dag: &Dag, certificate: &Certificate) -> Vec<CommittedSubDag>;

    /// The round of the last committed leader (0 before any commit). The engine
    /// garbage collects the DAG some depth below it.
    fn last_committed_round(&self) -> Round;

    /// Forgets bookkeeping about rounds below `below_round`, after the DAG did.
    fn garbage_collect(&mut self, below_round: Round);

    /// What a restarted node needs to continue the same sequence: see [`RuleState`].
    fn state(&self) -> RuleState;

    /// Continues from a state taken with [`CommitRule::state`] (on a rule that has
    /// seen no certificate yet).
    fn restore(&mut self, state: RuleState);
}

/// The durable state of a DAG commit rule: the last committed leader round and the
/// certificates already committed above garbage collection, so that a restarted
/// node, refetching the DAG, neither commits them again nor skips others.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleState {
    /// Round of the last committed leader (0 before any commit).
    pub last_committed_round: Round,
    /// Committed certificates still above garbage collection, with their rounds.
    pub committed: Vec<(Round, Digest)>,
}
