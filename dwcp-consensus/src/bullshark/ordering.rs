//! The Bullshark commit rule, partially synchronous version (Spiegelman,
//! Giridharan, Sonnino, Kokoris-Kogias, CCS '22).
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
use super::commit::{CommitRule, CommittedSubDag, RuleState};
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
    /// Rounds kept below a committed leader: a leader's history stops at this depth
    /// below the leader committed before it (`Round::MAX`: never).
    gc_depth: Round,
    /// The lowest round the next leader's history may include.
    floor: Round,
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
            gc_depth: Round::MAX,
            floor: 0,
        }
    }

    /// Stops each leader's history `depth` rounds below the leader committed before
    /// it, as garbage collection at that depth does. Set it to the engine's GC depth:
    /// then what a leader commits depends only on the commit sequence, not on when
    /// the DAG happened to be collected (a node that commits two leaders in one step
    /// and one that commits them one at a time output the same).
    pub fn with_gc_depth(mut self, depth: Round) -> Self {
        self.gc_depth = depth;
        self.floor = self.last_committed_round.saturating_sub(depth);
        self
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
                // Genesis carries nothing; parents below the floor are collected.
                if let Some(p) = dag
                    .get(parent)
                    .filter(|p| p.round() > 0 && p.round() >= self.floor)
                {
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
        if round < 3 || round.is_multiple_of(2) {
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
            self.floor = l.round().saturating_sub(self.gc_depth);
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

    fn state(&self) -> RuleState {
        let mut committed: Vec<(Round, Digest)> =
            self.committed.iter().map(|(d, r)| (*r, *d)).collect();
        committed.sort_unstable();
        RuleState {
            last_committed_round: self.last_committed_round,
            committed,
        }
    }

    fn restore(&mut self, state: RuleState) {
        self.last_committed_round = state.last_committed_round;
        self.floor = state.last_committed_round.saturating_sub(self.gc_depth);
        self.committed = state.committed.into_iter().map(|(r, d)| (d, r)).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bullshark::notation::{certificate, committee, id, TestDag};
    use crate::bullshark::{DagError, Inserted, LeaderSchedule};
    use dwcp_core::{NodeId, NodeKeys};
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// One committed leader as `(round, author)` with its sub-DAG as names like `"B2"`.
    type Commit = ((Round, char), Vec<String>);

    fn name(c: &Certificate) -> String {
        format!("{}{}", (b'A' + c.author().0 as u8) as char, c.round())
    }

    fn summary(sub: &CommittedSubDag) -> Commit {
        let leader = (
            sub.leader_round(),
            (b'A' + sub.leader.author().0 as u8) as char,
        );
        (leader, sub.certificates.iter().map(|c| name(c)).collect())
    }

    fn names(list: &str) -> Vec<String> {
        list.split_whitespace().map(str::to_owned).collect()
    }

    /// Feeds certificates in the given order (parents first) and collects commits.
    fn run(c: &Committee, certs: &[Certificate]) -> (Bullshark, Vec<Commit>) {
        let mut dag = Dag::new(c);
        let mut rule = Bullshark::new(c);
        let mut out = Vec::new();
        for cert in certs {
            assert_eq!(dag.insert(cert.clone()), Ok(Inserted::New));
            out.extend(rule.on_certificate(&dag, cert).iter().map(summary));
        }
        (rule, out)
    }

    #[test]
    fn round_robin_leaders() {
        let (c, _) = committee(4);
        let s = RoundRobin::new(&c);
        let leaders: Vec<_> = [2, 4, 6, 8, 10].iter().map(|&r| s.leader(r)).collect();
        assert_eq!(leaders, [id('B'), id('C'), id('D'), id('A'), id('B')]);
    }

    #[test]
    fn leader_commits_with_exactly_f_plus_one_support() {
        let (c, keys) = committee(4);
        // B is the leader of round 2; only A3 and B3 reference it.
        let t = TestDag::parse(
            "
            r1: A B C D
            r2: A B C D
            r3: A->ABC B->ABD C->ACD D->ACD
            ",
            &c,
            &keys,
        );
        let mut dag = Dag::new(&c);
        let mut rule = Bullshark::new(&c);
        for cert in &t.certificates[..8] {
            dag.insert(cert.clone()).unwrap();
            assert!(rule.on_certificate(&dag, cert).is_empty());
        }
        // Non-supporters first, then the first supporter: f = 1 support, no commit.
        for l in ['C', 'D', 'A'] {
            let cert = t.at(l, 3);
            dag.insert(cert.clone()).unwrap();
            assert!(rule.on_certificate(&dag, cert).is_empty(), "{l}3");
        }
        // The second supporter makes f + 1.
        let b3 = t.at('B', 3);
        dag.insert(b3.clone()).unwrap();
        let commits: Vec<_> = rule.on_certificate(&dag, b3).iter().map(summary).collect();
        assert_eq!(commits, vec![((2, 'B'), names("A1 B1 C1 D1 B2"))]);
        assert_eq!(rule.last_committed_round(), 2);
        assert!(rule.is_committed(&t.at('B', 2).digest()));
        assert!(!rule.is_committed(&t.at('A', 2).digest()));
    }

    #[test]
    fn leader_with_only_f_support_is_not_committed() {
        let (c, keys) = committee(4);
        let t = TestDag::parse(
            "
            r1: A B C D
            r2: A B C D
            r3: A->ABC B->ACD C->ACD D->ACD
            r4: A B C D
            ",
            &c,
            &keys,
        );
        let (rule, commits) = run(&c, &t.certificates);
        assert!(commits.is_empty());
        assert_eq!(rule.last_committed_round(), 0);
    }

    #[test]
    fn earlier_leader_commits_indirectly_through_a_path() {
        let (c, keys) = committee(4);
        // B2 has one supporter (A3); every round-4 vertex links to A3, and C4 gets
        // direct support in round 5.
        let t = TestDag::parse(
            "
            r1: A B C D
            r2: A B C D
            r3: A->ABC B->ACD C->ACD D->ACD
            r4: A B C D
            r5: A B C D
            ",
            &c,
            &keys,
        );
        let (rule, commits) = run(&c, &t.certificates);
        assert_eq!(
            commits,
            vec![
                ((2, 'B'), names("A1 B1 C1 D1 B2")),
                ((4, 'C'), names("A2 C2 D2 A3 B3 C3 D3 C4")),
            ]
        );
        assert_eq!(rule.last_committed_round(), 4);
    }

    #[test]
    fn earlier_leader_without_a_path_is_skipped() {
        let (c, keys) = committee(4);
        // Only A3 references B2, and no round-4 vertex references A3.
        let t = TestDag::parse(
            "
            r1: A B C D
            r2: A B C D
            r3: A->ABC B->ACD C->ACD D->ACD
            r4: A->BCD B->BCD C->BCD D->BCD
            r5: A B C D
            r6: A B C D
            r7: A B C D
            ",
            &c,
            &keys,
        );
        let (rule, commits) = run(&c, &t.certificates);
        assert_eq!(
            commits,
            vec![
                ((4, 'C'), names("A1 B1 C1 D1 A2 C2 D2 B3 C3 D3 C4")),
                ((6, 'D'), names("A4 B4 D4 A5 B5 C5 D5 D6")),
            ]
        );
        // B2 and A3 are outside every committed history, and stay out for good.
        assert!(!rule.is_committed(&t.at('B', 2).digest()));
        assert!(!rule.is_committed(&t.at('A', 3).digest()));
    }

    #[test]
    fn missing_leader_vertex_and_chains_of_leaders() {
        let (c, keys) = committee(4);
        // C (leader of 4) has no vertex in round 4; D6 then commits with B2 only
        // indirectly supported (A3), and the gap skipped.
        let t = TestDag::parse(
            "
            r1: A B C D
            r2: A B C D
            r3: A->ABC B->ACD C->ACD D->ACD
            r4: A B D
            r5: A B C D
            r6: A B C D
            r7: A B C D
            r8: A B C D
            r9: A B C D
            ",
            &c,
            &keys,
        );
        let (rule, commits) = run(&c, &t.certificates);
        let leaders: Vec<_> = commits.iter().map(|(l, _)| *l).collect();
        assert_eq!(leaders, vec![(2, 'B'), (6, 'D'), (8, 'A')]);
        // Every vertex of rounds 1-7 and A8 committed exactly once; the other
        // vertices of round 8 and round 9 are not in any leader's history yet.
        let all: Vec<String> = commits.iter().flat_map(|(_, v)| v.clone()).collect();
        let unique: HashSet<_> = all.iter().collect();
        assert_eq!(all.len(), unique.len());
        assert_eq!(all.len(), 4 * 7 - 1 + 1);
        assert!(all
            .iter()
            .all(|n| (!n.ends_with('9') && !n.ends_with('8')) || n == "A8"));
        assert_eq!(rule.last_committed_round(), 8);
    }

    #[test]
    fn pluggable_leader_schedule() {
        struct AlwaysA;
        impl LeaderSchedule for AlwaysA {
            fn leader(&self, _: Round) -> NodeId {
                NodeId(0)
            }
        }
        let (c, keys) = committee(4);
        let t = TestDag::parse("r1: A B C D\nr2: A B C D\nr3: A B C D", &c, &keys);
        let mut dag = Dag::new(&c);
        let mut rule = Bullshark::with_schedule(&c, AlwaysA);
        let mut leaders = Vec::new();
        for cert in &t.certificates {
            dag.insert(cert.clone()).unwrap();
            leaders.extend(
                rule.on_certificate(&dag, cert)
                    .iter()
                    .map(|s| s.leader.author()),
            );
        }
        assert_eq!(leaders, vec![NodeId(0)]);
    }

    #[test]
    fn garbage_collected_history_is_not_committed_again() {
        let (c, keys) = committee(4);
        let t = TestDag::parse(
            "r1: A B C D\nr2: A B C D\nr3: A B C D\nr4: A B C D\nr5: A B C D",
            &c,
            &keys,
        );
        let mut dag = Dag::new(&c);
        let mut rule = Bullshark::new(&c);
        let mut commits = Vec::new();
        for cert in &t.certificates {
            dag.insert(cert.clone()).unwrap();
            commits.extend(rule.on_certificate(&dag, cert).iter().map(summary));
            if rule.last_committed_round() == 2 && dag.gc_round() == 0 {
                dag.garbage_collect(2);
                rule.garbage_collect(2);
            }
        }
        assert_eq!(
            commits,
            vec![
                ((2, 'B'), names("A1 B1 C1 D1 B2")),
                ((4, 'C'), names("A2 C2 D2 A3 B3 C3 D3 C4")),
            ]
        );
    }

    #[test]
    fn a_restored_rule_continues_the_same_sequence() {
        let (c, keys) = committee(4);
        let t = TestDag::parse(
            "r1: A B C D\nr2: A B C D\nr3: A B C D\nr4: A B C D\nr5: A B C D\nr6: A B C D\nr7: A B C D",
            &c,
            &keys,
        );
        let (_, all) = run(&c, &t.certificates);
        // Stop after the first commit, keep the state, and refeed everything to a
        // fresh DAG and a restored rule, as a restarted node refetching the DAG would.
        let mut dag = Dag::new(&c);
        let mut rule = Bullshark::new(&c);
        let mut first = Vec::new();
        for cert in &t.certificates {
            dag.insert(cert.clone()).unwrap();
            first.extend(rule.on_certificate(&dag, cert).iter().map(summary));
            if !first.is_empty() {
                break;
            }
        }
        let state = rule.state();
        assert_eq!(state.last_committed_round, 2);
        let mut restored = Bullshark::new(&c);
        restored.restore(state.clone());
        assert_eq!(restored.state(), state);
        let mut dag = Dag::new(&c);
        let mut rest = Vec::new();
        for cert in &t.certificates {
            dag.insert(cert.clone()).unwrap();
            rest.extend(restored.on_certificate(&dag, cert).iter().map(summary));
        }
        first.extend(rest);
        assert_eq!(first, all);
        assert!(all.len() >= 3);
    }

    /// A random DAG: `n` members, the last `f` Byzantine. Byzantine members skip
    /// rounds at random and other vertices reference theirs less often than honest
    /// ones, so only part of the committee builds on them; every vertex references a
    /// random quorum (sometimes more) of the previous round. Byzantine members do not
    /// produce two certificates in one round: quorum intersection prevents that, and
    /// [`Dag::insert`] refuses the second one.
    fn random_dag(
        n: usize,
        rounds: Round,
        seed: u64,
    ) -> (Committee, Vec<NodeKeys>, Vec<Certificate>) {
        let (c, keys) = committee(n);
        let f = c.max_faulty();
        let byzantine = |a: NodeId| a.index() >= n - f;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut prev = Certificate::genesis(&c);
        let mut all = Vec::new();
        let schedule = RoundRobin::new(&c);
        // Byzantine vertices that no later vertex references: they can arrive at
        // any time, even after the leaders they support were decided without them.
        let mut hidden = HashSet::new();
        for round in 1..=rounds {
            // In some rounds the previous round's leader is shunned like a
            // Byzantine vertex, so it lacks direct support and commits only
            // through a path, or not at all.
            let weak_leader = round % 2 == 1 && rng.gen_bool(0.5);
            let shunned = |p: &Certificate| {
                byzantine(p.author()) || (weak_leader && p.author() == schedule.leader(p.round()))
            };
            let mut current = Vec::new();
            for author in c.ids() {
                if byzantine(author) && rng.gen_bool(0.2) {
                    continue;
                }
                // Shunned vertices go to the back of the line more often than not,
                // so fewer vertices build on them; a quorum is usually all that is
                // taken. Byzantine authors put the leader first, to support it.
                let mut candidates: Vec<(u8, &Certificate)> = prev
                    .iter()
                    .filter(|p| !hidden.contains(&p.digest()))
                    .map(|p| {
                        let rank = if byzantine(author) && p.author() == schedule.leader(p.round())
                        {
                            0
                        } else if shunned(p) && rng.gen_bool(0.8) {
                            2
                        } else {
                            1
                        };
                        (rank, p)
                    })
                    .collect();
                candidates.shuffle(&mut rng);
                candidates.sort_by_key(|(rank, _)| *rank);
                let take = if rng.gen_bool(0.7) {
                    c.quorum_threshold()
                } else {
                    rng.gen_range(c.quorum_threshold()..=candidates.len())
                };
                let parents: Vec<Digest> =
                    candidates[..take].iter().map(|(_, p)| p.digest()).collect();
                let batch = Digest::of(&[seed.to_le_bytes(), round.to_le_bytes()].concat());
                let cert = certificate(&c, &keys, author, round, parents, vec![batch]);
                if byzantine(author) && rng.gen_bool(0.3) {
                    hidden.insert(cert.digest());
                }
                current.push(cert);
            }
            all.extend(current.iter().cloned());
            prev = current;
        }
        (c, keys, all)
    }

    type Sequence = Vec<(Digest, Vec<Digest>)>;

    /// Delivers `certs` in a random order; a certificate whose parents are missing
    /// waits in a buffer until they arrive.
    fn deliver_shuffled(c: &Committee, certs: &[Certificate], seed: u64) -> Sequence {
        let mut order = certs.to_vec();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        let mut dag = Dag::new(c);
        let mut rule = Bullshark::new(c);
        let mut sequence = Vec::new();
        let mut buffer: Vec<Certificate> = Vec::new();
        for cert in order {
            buffer.push(cert);
            let mut progress = true;
            while progress {
                progress = false;
                let mut i = 0;
                while i < buffer.len() {
                    match dag.insert(buffer[i].clone()) {
                        Ok(Inserted::New) => {
                            let cert = buffer.swap_remove(i);
                            for sub in rule.on_certificate(&dag, &cert) {
                                let digests = sub.certificates.iter().map(|c| c.digest()).collect();
                                sequence.push((sub.leader.digest(), digests));
                            }
                            progress = true;
                        }
                        Err(DagError::MissingParents(_)) => i += 1,
                        other => panic!("unexpected {other:?}"),
                    }
                }
            }
        }
        assert!(buffer.is_empty());
        assert_eq!(dag.len(), c.size() + certs.len());
        sequence
    }

    /// Checks the property on one random DAG and returns its
    /// `(indirect, skipped)` leader counts.
    fn same_commits_in_every_order(n: usize, seed: u64) -> (usize, usize) {
        let (c, _, certs) = random_dag(n, 20, seed);
        let reference = deliver_shuffled(&c, &certs, u64::MAX);
        // Non-trivial: several leaders committed, no vertex twice.
        assert!(reference.len() >= 3, "only {} commits", reference.len());
        let vertices: Vec<_> = reference.iter().flat_map(|(_, v)| v.iter()).collect();
        assert_eq!(
            vertices.len(),
            vertices.iter().collect::<HashSet<_>>().len()
        );
        for order in 0..100 {
            assert_eq!(
                deliver_shuffled(&c, &certs, order),
                reference,
                "n={n} dag seed {seed}, delivery order {order}"
            );
        }
        stats(&c, &certs, &reference)
    }

    /// `(leaders committed without direct support, leaders skipped)` in the full DAG.
    fn stats(c: &Committee, certs: &[Certificate], sequence: &Sequence) -> (usize, usize) {
        let schedule = RoundRobin::new(c);
        let committed: HashSet<Digest> = sequence.iter().map(|(l, _)| *l).collect();
        let last = certs.iter().map(Certificate::round).max().unwrap_or(0);
        let (mut indirect, mut skipped) = (0, 0);
        for leader in certs
            .iter()
            .filter(|l| l.round() % 2 == 0 && l.author() == schedule.leader(l.round()))
        {
            let support = certs
                .iter()
                .filter(|v| {
                    v.round() == leader.round() + 1 && v.parents().contains(&leader.digest())
                })
                .count();
            let is_committed = committed.contains(&leader.digest());
            if is_committed && support < c.validity_threshold() {
                indirect += 1;
            }
            if !is_committed && leader.round() + 2 < last {
                skipped += 1;
            }
        }
        (indirect, skipped)
    }

    #[test]
    fn random_delivery_orders_commit_identically_n4() {
        let (mut indirect, mut skipped) = (0, 0);
        for seed in 0..8 {
            let (i, s) = same_commits_in_every_order(4, seed);
            indirect += i;
            skipped += s;
        }
        // The DAGs exercise both the path rule and skipping, not only direct commits.
        assert!(
            indirect > 0 && skipped > 0,
            "indirect {indirect}, skipped {skipped}"
        );
    }

    #[test]
    fn random_delivery_orders_commit_identically_n7() {
        same_commits_in_every_order(7, 42);
    }
}
