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
    gc_round: Round,
}

impl Dag {
    /// An empty DAG for `committee`, holding its genesis certificates.
    pub fn new(committee: &Committee) -> Dag {
        let mut dag = Dag {
            size: committee.size(),
            rounds: BTreeMap::new(),
            index: HashMap::new(),
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
        if certificate.round() == 0 || certificate.round() - 1 < self.gc_round {
            return Vec::new();
        }
        certificate
            .parents()
            .iter()
            .filter(|p| !self.index.contains_key(p))
            .copied()
            .collect()
    }

    /// Stores a verified certificate whose parents are all present.
    ///
    /// Refuses a certificate below the garbage-collection round, one with missing
    /// parents (naming them), one with a parent of the wrong round, and a second,
    /// different certificate of an author in a round (equivocation: the first stays).
    pub fn insert(&mut self, certificate: Certificate) -> Result<Inserted, DagError> {
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
        if round > 0 && round - 1 >= self.gc_round {
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
        self.store(Arc::new(certificate));
        Ok(Inserted::New)
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

    /// The highest round holding a certificate.
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
