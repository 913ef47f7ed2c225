//! The local DAG store: certified vertices indexed by round, then author.

use dwcp_core::{Committee, Digest, NodeId, Round};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::certificate::Certificate;

/// Why a certificate was not inserted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DagError {
    /// Some parents are not in the store yet; fetch or wait for these digests and
    /// insert again.
    #[error("{} parents missing", .0.len())]
    MissingParents(Vec<Digest>),
    /// The author already has a different certificate in this round: the first one
    /// stays, this one is refused.
    #[error("equivocation by {author} in round {round}: kept {kept:?}, refused {refused:?}")]
    Equivocation {
        /// The equivocating author.
        author: NodeId,
        /// The round.
        round: Round,
        /// Digest of the certificate already stored.
        kept: Digest,
        /// Digest of the refused one.
        refused: Digest,
    },
    /// A named parent is stored, but in a round other than `round - 1`.
    #[error("parent {parent:?} is of round {parent_round}, not {expected}")]
    ParentFromWrongRound {
        /// The parent's digest.
        parent: Digest,
        /// Its round.
        parent_round: Round,
        /// The round it should be of.
        expected: Round,
    },
    /// The round was already garbage collected.
    #[error("round {round} is below the garbage-collection round {gc_round}")]
    BelowGc {
        /// The certificate's round.
        round: Round,
        /// The lowest round still stored.
        gc_round: Round,
    },
    /// The author is not a committee member.
    #[error("author {0} is not a member")]
    UnknownAuthor(NodeId),
}

/// What [`Dag::insert`] did with a certificate it accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// The certificate is new and now stored.
    New,
    /// The same certificate was already stored; nothing changed.
    Duplicate,
}

/// Certificates indexed by round, then author, holding only causally complete
/// vertices: a certificate enters once all its parents are present (or were
/// garbage collected).
///
/// The store trusts its input: callers verify certificates
/// ([`Certificate::verify`]) before inserting. It starts with the genesis
/// certificates in round 0.
#[derive(Debug, Clone)]
pub struct Dag {
    size: usize,
    rounds: BTreeMap<Round, BTreeMap<NodeId, Arc<Certificate>>>,
    index: HashMap<Digest, (Round, NodeId)>,
    /// Committed vertices this store does not hold (a restarted node's), by round.
    settled: HashMap<Digest, Round>,
    gc_round: Round,
}

impl Dag {
    /// An empty DAG for `committee`, holding its genesis certificates.
    pub fn new(committee: &Committee) -> Dag {
        let mut dag = Dag {
            size: committee.size(),
            rounds: BTreeMap::new(),
            index: HashMap::new(),
            settled: HashMap::new(),
            gc_round: 0,
        };
        for g in Certificate::genesis(committee) {
            dag.store(Arc::new(g));
        }
        dag
    }

    fn store(&mut self, cert: Arc<Certificate>) {
        let (round, author) = (cert.round(), cert.author());
        self.index.insert(cert.digest(), (round, author));
        self.rounds.entry(round).or_default().insert(author, cert);
    }

    /// Digests of `certificate`'s parents that are not stored. Parents below the
    /// garbage-collection round count as present.
    pub fn missing_parents(&self, certificate: &Certificate) -> Vec<Digest> {
        if certificate.round() <= self.gc_round {
            return Vec::new();
        }
        certificate
            .parents()
            .iter()
            .filter(|p| !self.is_present(p))
            .copied()
            .collect()
    }

    /// Stores a verified certificate whose parents are all present.
    ///
    /// Refuses a certificate below the garbage-collection round, one with missing
    /// parents (naming them), one with a parent of the wrong round, and a second,
    /// different certificate of an author in a round (equivocation: the first stays).
    pub fn insert(
        &mut self,
        certificate: impl Into<Arc<Certificate>>,
    ) -> Result<Inserted, DagError> {
        let certificate: Arc<Certificate> = certificate.into();
        let (round, author, digest) = (
            certificate.round(),
            certificate.author(),
            certificate.digest(),
        );
        if author.index() >= self.size {
            return Err(DagError::UnknownAuthor(author));
        }
        if round < self.gc_round {
            return Err(DagError::BelowGc {
                round,
                gc_round: self.gc_round,
            });
        }
        if let Some(existing) = self.get_at(round, author) {
            let kept = existing.digest();
            if kept == digest {
                return Ok(Inserted::Duplicate);
            }
            return Err(DagError::Equivocation {
                author,
                round,
                kept,
                refused: digest,
            });
        }
        let missing = self.missing_parents(&certificate);
        if !missing.is_empty() {
            return Err(DagError::MissingParents(missing));
        }
        // Parents of a vertex at the boundary were collected: nothing to check.
        if round > self.gc_round {
            for parent in certificate.parents() {
                if let Some(&(parent_round, _)) = self.index.get(parent) {
                    if parent_round + 1 != round {
                        return Err(DagError::ParentFromWrongRound {
                            parent: *parent,
                            parent_round,
                            expected: round - 1,
                        });
                    }
                }
            }
        }
        self.store(certificate);
        Ok(Inserted::New)
    }

    /// Records vertices known to be committed without holding them: children may
    /// name them as parents. A restarted node does this with what its commit rule
    /// remembers, so that it fetches only the part of the DAG not yet ordered.
    /// Since committed histories are closed under "parent of", nothing below a
    /// settled vertex is needed either.
    pub fn settle(&mut self, vertices: impl IntoIterator<Item = (Round, Digest)>) {
        for (round, digest) in vertices {
            if round >= self.gc_round && !self.index.contains_key(&digest) {
                self.settled.insert(digest, round);
            }
        }
    }

    /// Whether a parent with this digest counts as present: stored or settled.
    pub fn is_present(&self, digest: &Digest) -> bool {
        self.index.contains_key(digest) || self.settled.contains_key(digest)
    }

    /// The certificate with this digest, if stored.
    pub fn get(&self, digest: &Digest) -> Option<&Arc<Certificate>> {
        let (round, author) = self.index.get(digest)?;
        self.get_at(*round, *author)
    }

    /// Whether a certificate with this digest is stored.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.index.contains_key(digest)
    }

    /// The certificate of `author` in `round`, if stored.
    pub fn get_at(&self, round: Round, author: NodeId) -> Option<&Arc<Certificate>> {
        self.rounds.get(&round)?.get(&author)
    }

    /// The certificates of `round`, in author order.
    pub fn round(&self, round: Round) -> impl Iterator<Item = &Arc<Certificate>> + '_ {
        self.rounds.get(&round).into_iter().flat_map(|m| m.values())
    }

    /// The highest round holding a certificate (the garbage-collection round when
    /// nothing is stored).
    pub fn highest_round(&self) -> Round {
        self.rounds
            .keys()
            .next_back()
            .copied()
            .unwrap_or(self.gc_round)
    }

    /// The lowest round still stored: everything below it was garbage collected.
    pub fn gc_round(&self) -> Round {
        self.gc_round
    }

    /// Number of stored certificates.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the store holds no certificate (only after collecting every round).
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Drops every round below `below_round` and returns how many certificates went.
    /// Certificates of those rounds are refused from now on, and their children
    /// treat them as present. Never moves the boundary backwards.
    pub fn garbage_collect(&mut self, below_round: Round) -> usize {
        if below_round <= self.gc_round {
            return 0;
        }
        self.gc_round = below_round;
        self.settled.retain(|_, r| *r >= below_round);
        let kept = self.rounds.split_off(&below_round);
        let dropped = std::mem::replace(&mut self.rounds, kept);
        let mut removed = 0;
        for certs in dropped.values() {
            for cert in certs.values() {
                self.index.remove(&cert.digest());
                removed += 1;
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bullshark::notation::{certificate, committee, id, TestDag};

    const FULL: &str = "
        r1: A B C D
        r2: A B C D
        r3: A B C D
        r4: A B C D
    ";

    #[test]
    fn starts_with_genesis() {
        let (c, _) = committee(4);
        let dag = Dag::new(&c);
        assert_eq!(dag.len(), 4);
        assert_eq!(dag.round(0).count(), 4);
        assert_eq!(dag.highest_round(), 0);
        for g in Certificate::genesis(&c) {
            assert!(dag.contains(&g.digest()));
        }
    }

    #[test]
    fn insert_requires_parents_and_names_the_missing_ones() {
        let (c, keys) = committee(4);
        let t = TestDag::parse(FULL, &c, &keys);
        let mut dag = Dag::new(&c);
        let a2 = t.at('A', 2).clone();
        let mut missing = dag.insert(a2.clone()).unwrap_err();
        let DagError::MissingParents(ref mut digests) = missing else {
            panic!("{missing:?}")
        };
        let mut expected: Vec<_> = "ABCD".chars().map(|l| t.at(l, 1).digest()).collect();
        digests.sort();
        expected.sort();
        assert_eq!(*digests, expected);
        assert_eq!(dag.len(), 4);

        for l in "ABC".chars() {
            assert_eq!(dag.insert(t.at(l, 1).clone()), Ok(Inserted::New));
        }
        assert_eq!(
            dag.insert(a2.clone()),
            Err(DagError::MissingParents(vec![t.at('D', 1).digest()]))
        );
        assert_eq!(dag.insert(t.at('D', 1).clone()), Ok(Inserted::New));
        assert_eq!(dag.insert(a2.clone()), Ok(Inserted::New));
        assert_eq!(dag.insert(a2.clone()), Ok(Inserted::Duplicate));
        assert_eq!(dag.get(&a2.digest()).map(|c| c.round()), Some(2));
        assert_eq!(
            dag.get_at(2, id('A')).map(|c| c.digest()),
            Some(a2.digest())
        );
        assert_eq!(dag.highest_round(), 2);
        assert_eq!(dag.len(), 9);
    }

    #[test]
    fn equivocation_keeps_the_first_and_reports_the_second() {
        let (c, keys) = committee(4);
        let mut dag = Dag::new(&c);
        let g: Vec<_> = dag.round(0).map(|c| c.digest()).collect();
        let first = certificate(&c, &keys, id('B'), 1, g.clone(), vec![Digest::of(b"x")]);
        let second = certificate(&c, &keys, id('B'), 1, g, vec![Digest::of(b"y")]);
        assert_eq!(dag.insert(first.clone()), Ok(Inserted::New));
        assert_eq!(
            dag.insert(second.clone()),
            Err(DagError::Equivocation {
                author: id('B'),
                round: 1,
                kept: first.digest(),
                refused: second.digest(),
            })
        );
        assert_eq!(
            dag.get_at(1, id('B')).map(|c| c.digest()),
            Some(first.digest())
        );
        assert!(!dag.contains(&second.digest()));
        assert_eq!(dag.len(), 5);
    }

    #[test]
    fn parent_of_the_wrong_round_and_unknown_author_are_refused() {
        let (c, keys) = committee(4);
        let t = TestDag::parse(FULL, &c, &keys);
        let mut dag = Dag::new(&c);
        for l in "ABCD".chars() {
            dag.insert(t.at(l, 1).clone()).unwrap();
        }
        // A round-2 vertex that names genesis vertices as parents.
        let g: Vec<_> = dag.round(0).map(|c| c.digest()).collect();
        let skip = certificate(&c, &keys, id('A'), 2, g.clone(), vec![]);
        assert!(matches!(
            dag.insert(skip),
            Err(DagError::ParentFromWrongRound {
                parent_round: 0,
                expected: 1,
                ..
            })
        ));
        let (big, big_keys) = committee(5);
        let stranger = certificate(&big, &big_keys, NodeId(4), 1, g, vec![]);
        assert_eq!(
            dag.insert(stranger),
            Err(DagError::UnknownAuthor(NodeId(4)))
        );
    }

    #[test]
    fn garbage_collection_drops_old_rounds() {
        let (c, keys) = committee(4);
        let t = TestDag::parse(FULL, &c, &keys);
        let mut dag = Dag::new(&c);
        for cert in &t.certificates {
            if cert.round() <= 3 && (cert.round(), cert.author()) != (3, id('D')) {
                dag.insert(cert.clone()).unwrap();
            }
        }
        assert_eq!(dag.len(), 4 + 3 * 4 - 1);
        assert_eq!(dag.garbage_collect(3), 12);
        assert_eq!(dag.gc_round(), 3);
        assert_eq!(dag.len(), 3);
        assert_eq!(dag.round(2).count(), 0);
        assert!(dag.get(&t.at('A', 2).digest()).is_none());
        // Old rounds are refused from now on.
        assert_eq!(
            dag.insert(t.at('A', 2).clone()),
            Err(DagError::BelowGc {
                round: 2,
                gc_round: 3
            })
        );
        // A vertex at the boundary whose parents were collected goes in.
        assert_eq!(dag.missing_parents(t.at('D', 3)), vec![]);
        assert_eq!(dag.insert(t.at('D', 3).clone()), Ok(Inserted::New));
        // Collecting is monotone.
        assert_eq!(dag.garbage_collect(1), 0);
        assert_eq!(dag.gc_round(), 3);
        assert_eq!(dag.garbage_collect(10), 4);
        assert!(dag.is_empty());
        assert_eq!(dag.highest_round(), 10);
    }
}
