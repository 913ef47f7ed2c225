//! The Bullshark commit rule, partially synchronous version (Spiegelman,
//! Giridharan, Sonnino, Kokoris-Kogias, CCS '22, §5 and Algorithm 2 ordering).
//!
//! Even rounds have a leader (anchor). A leader vertex of round `r` is committed
//! directly once `f+1` vertices of round `r+1` reference it. Then earlier leaders
//! not yet committed are visited from the newest down to the last committed one,
//! and each reachable by a path from the most recently ordered one is ordered
//! before it; the others are skipped for good. Quorum intersection makes this
//! consistent: a leader committed directly anywhere has `f+1` supporters, and every
//! vertex two rounds later has `2f+1` parents, so one of them links to it.

use dwcp_core::{Committee, Digest, Round};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::certificate::Certificate;
use super::commit::{CommitRule, CommittedSubDag};
use super::dag::Dag;
use super::leader::{LeaderSchedule, RoundRobin};

/// The Bullshark commit rule over a [`Dag`], with a pluggable leader schedule.
#[derive(Debug, Clone)]
pub struct Bullshark<S = RoundRobin> {
    schedule: S,
    validity_threshold: usize,
    last_committed_round: Round,
    /// Every committed certificate still above garbage collection, with its round.
    /// The union of committed causal histories is closed under "parent of", so a
    /// traversal can stop at any committed vertex.
    committed: HashMap<Digest, Round>,
}

impl Bullshark<RoundRobin> {
    /// Bullshark for `committee` with the round-robin leader schedule.
    pub fn new(committee: &Committee) -> Bullshark<RoundRobin> {
        Bullshark::with_schedule(committee, RoundRobin::new(committee))
    }
}

impl<S: LeaderSchedule> Bullshark<S> {
    /// Bullshark for `committee` with the leader schedule `schedule`.
    pub fn with_schedule(committee: &Committee, schedule: S) -> Bullshark<S> {
        Bullshark {
            schedule,
            validity_threshold: committee.validity_threshold(),
            last_committed_round: 0,
            committed: HashMap::new(),
        }
    }

    /// Whether this certificate has been committed (and not yet forgotten by GC).
    pub fn is_committed(&self, digest: &Digest) -> bool {
        self.committed.contains_key(digest)
    }

    fn leader<'d>(&self, dag: &'d Dag, round: Round) -> Option<&'d Arc<Certificate>> {
        dag.get_at(round, self.schedule.leader(round))
    }

    /// Whether `to` is reachable from `from` by parent links.
    fn linked(dag: &Dag, from: &Certificate, to: &Certificate) -> bool {
        let target = to.digest();
        let mut frontier: HashSet<Digest> = HashSet::from([from.digest()]);
        let mut round = from.round();
        while round > to.round() {
            let mut parents = HashSet::new();
            for digest in &frontier {
                if let Some(c) = dag.get(digest) {
                    parents.extend(c.parents().iter().copied());
                }
            }
            frontier = parents;
            round -= 1;
        }
        frontier.contains(&target)
    }

    /// The not-yet-committed causal history of `leader`, ordered by round, then
    /// author; marks it committed.
    fn flatten(&mut self, dag: &Dag, leader: &Arc<Certificate>) -> Vec<Arc<Certificate>> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = vec![Arc::clone(leader)];
        seen.insert(leader.digest());
        while let Some(cert) = stack.pop() {
            for parent in cert.parents() {
                if self.committed.contains_key(parent) || !seen.insert(*parent) {
                    continue;
                }
                // Genesis carries nothing; garbage-collected parents are gone.
                if let Some(p) = dag.get(parent).filter(|p| p.round() > 0) {
                    stack.push(Arc::clone(p));
                }
            }
            out.push(cert);
        }
        out.sort_by_key(|c| (c.round(), c.author()));
        for c in &out {
            self.committed.insert(c.digest(), c.round());
        }
        out
    }
}

impl<S: LeaderSchedule> CommitRule for Bullshark<S> {
    fn on_certificate(&mut self, dag: &Dag, certificate: &Certificate) -> Vec<CommittedSubDag> {
        // Only a vertex of an odd round can add support to the leader below it.
        let round = certificate.round();
        if round < 3 || round % 2 == 0 {
            return Vec::new();
        }
        let leader_round = round - 1;
        if leader_round <= self.last_committed_round {
            return Vec::new();
        }
        let Some(leader) = self.leader(dag, leader_round).cloned() else {
            return Vec::new();
        };
        let target = leader.digest();
        let support = dag
            .round(round)
            .filter(|c| c.parents().contains(&target))
            .count();
        if support < self.validity_threshold {
            return Vec::new();
        }

        // Walk back over the uncommitted leader rounds, newest first.
        let mut chain = vec![Arc::clone(&leader)];
        let mut r = leader_round;
        while r >= self.last_committed_round + 4 {
            r -= 2;
            let Some(earlier) = self.leader(dag, r) else {
                continue;
            };
            let newest = chain
                .last()
                .map(Arc::clone)
                .unwrap_or_else(|| Arc::clone(&leader));
            if Self::linked(dag, &newest, earlier) {
                chain.push(Arc::clone(earlier));
            }
        }

        let mut out = Vec::with_capacity(chain.len());
        for l in chain.into_iter().rev() {
            let certificates = self.flatten(dag, &l);
            out.push(CommittedSubDag {
                leader: l,
                certificates,
            });
        }
        self.last_committed_round = leader_round;
        out
    }

    fn last_committed_round(&self) -> Round {
        self.last_committed_round
    }

    fn garbage_collect(&mut self, below_round: Round) {
        self.committed.retain(|_, round| *round >= below_round);
    }
}
