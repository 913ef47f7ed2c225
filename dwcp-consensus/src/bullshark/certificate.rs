//! Certificates of availability (Narwhal §4.1): a header with a quorum of votes.

use dwcp_core::crypto::{CryptoError, SignatureScheme, SigningKey};
use dwcp_core::{Committee, Digest, NodeId, Round, Signed};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

use super::header::Header;
use super::vote::HeaderVote;

/// A header together with votes for it from a quorum (`2f+1`) of distinct members:
/// a vertex of the DAG.
///
/// **Digest.** A certificate's digest is its header's digest ([`Signed::digest`]:
/// BLAKE3 over the author and the exact signed header bytes). Headers name their
/// parents by it. Votes are not part of it, so two certificates of one header with
/// different vote sets are the same vertex.
///
/// **Genesis.** Round 0 holds one certificate per member, built by
/// [`Certificate::genesis`]: a header with that author, round 0, no batches and no
/// parents, signed with a fixed, publicly known key, and no votes. Nobody checks
/// that signature; a round-0 certificate is valid exactly when its digest is the
/// genesis digest of its author, which every node computes the same way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// The certified header, signed by its author.
    pub header: Signed<Header>,
    /// Votes for the header, one per voter.
    pub votes: Vec<Signed<HeaderVote>>,
}

/// Why a certificate (or the header inside it) is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    /// The header's author is not a committee member.
    #[error("header author {0} is not a member")]
    UnknownAuthor(NodeId),
    /// The envelope was signed by someone other than the header's author.
    #[error("header by {claimed} was signed by {signer}")]
    AuthorMismatch {
        /// Who the header names as author.
        claimed: NodeId,
        /// Who signed the envelope.
        signer: NodeId,
    },
    /// A round-0 certificate that is not the genesis certificate of its author.
    #[error("round-0 certificate of {0} is not its genesis certificate")]
    BadGenesis(NodeId),
    /// Fewer parents than a quorum.
    #[error("{got} parents, need at least {need}")]
    TooFewParents {
        /// Parents named.
        got: usize,
        /// The quorum threshold.
        need: usize,
    },
    /// More parents than members.
    #[error("{got} parents, at most {max} members exist")]
    TooManyParents {
        /// Parents named.
        got: usize,
        /// The committee size.
        max: usize,
    },
    /// A parent is named twice.
    #[error("parent {0:?} is named twice")]
    DuplicateParent(Digest),
    /// A batch is named twice.
    #[error("batch {0:?} is named twice")]
    DuplicateBatch(Digest),
    /// Fewer distinct votes than a quorum.
    #[error("{got} votes, need at least {need}")]
    TooFewVotes {
        /// Votes present.
        got: usize,
        /// The quorum threshold.
        need: usize,
    },
    /// Two votes from one voter.
    #[error("two votes from {0}")]
    DuplicateVoter(NodeId),
    /// A vote from a non-member.
    #[error("vote from non-member {0}")]
    UnknownVoter(NodeId),
    /// A vote for another header, author or round.
    #[error("vote from {0} is for another header")]
    WrongVote(NodeId),
    /// A signature (of the header or of a vote) does not verify.
    #[error("signature check failed: {0}")]
    Signature(#[from] CryptoError),
}

/// The fixed key that "signs" genesis headers; public by construction.
fn genesis_key() -> SigningKey {
    SigningKey::from_seed(
        blake3::derive_key("dwcp bullshark genesis key v1", b""),
        SignatureScheme::InsecureFast,
    )
}

/// Structural checks of a header of round 1 or later against the committee.
pub fn check_header(
    header: &Signed<Header>,
    committee: &Committee,
) -> Result<(), CertificateError> {
    let h = header.value();
    if !committee.contains(h.author) {
        return Err(CertificateError::UnknownAuthor(h.author));
    }
    if header.author() != h.author {
        return Err(CertificateError::AuthorMismatch {
            claimed: h.author,
            signer: header.author(),
        });
    }
    let need = committee.quorum_threshold();
    if h.parents.len() < need {
        return Err(CertificateError::TooFewParents {
            got: h.parents.len(),
            need,
        });
    }
    if h.parents.len() > committee.size() {
        return Err(CertificateError::TooManyParents {
            got: h.parents.len(),
            max: committee.size(),
        });
    }
    let mut seen = HashSet::with_capacity(h.parents.len());
    for p in &h.parents {
        if !seen.insert(p) {
            return Err(CertificateError::DuplicateParent(*p));
        }
    }
    let mut seen = HashSet::with_capacity(h.batches.len());
    for b in &h.batches {
        if !seen.insert(b) {
            return Err(CertificateError::DuplicateBatch(*b));
        }
    }
    Ok(())
}

impl Certificate {
    /// The genesis certificate of `author` (see the type's documentation).
    pub fn genesis_of(author: NodeId) -> Certificate {
        let header = Header {
            author,
            round: 0,
            batches: Vec::new(),
            parents: Vec::new(),
        };
        Certificate {
            header: Signed::new(header, author, &genesis_key()),
            votes: Vec::new(),
        }
    }

    /// The genesis certificates of every member, in id order.
    pub fn genesis(committee: &Committee) -> Vec<Certificate> {
        committee.ids().map(Certificate::genesis_of).collect()
    }

    /// The certificate's digest: its header's digest.
    pub fn digest(&self) -> Digest {
        *self.header.digest()
    }

    /// The header's author.
    pub fn author(&self) -> NodeId {
        self.header.value().author
    }

    /// The header's round.
    pub fn round(&self) -> Round {
        self.header.value().round
    }

    /// Digests of the parent certificates (round `round - 1`).
    pub fn parents(&self) -> &[Digest] {
        &self.header.value().parents
    }

    /// Digests of the batches the header orders.
    pub fn batches(&self) -> &[Digest] {
        &self.header.value().batches
    }

    /// Checks the certificate against `committee`: a well-formed header signed by its
    /// author, and votes for exactly this header from at least a quorum of distinct
    /// members. All signatures (header and votes) are verified as one batch.
    ///
    /// Whether the parents exist, and are of the previous round, is the DAG's check
    /// ([`super::Dag::insert`]).
    pub fn verify(&self, committee: &Committee) -> Result<(), CertificateError> {
        let author = self.author();
        if self.round() == 0 {
            if committee.contains(author)
                && self.votes.is_empty()
                && self.digest() == Certificate::genesis_of(author).digest()
            {
                return Ok(());
            }
            return Err(CertificateError::BadGenesis(author));
        }
        check_header(&self.header, committee)?;
        let need = committee.quorum_threshold();
        if self.votes.len() < need {
            return Err(CertificateError::TooFewVotes {
                got: self.votes.len(),
                need,
            });
        }
        let expected = HeaderVote::for_header(&self.header);
        let mut voters = HashSet::with_capacity(self.votes.len());
        let mut items = Vec::with_capacity(self.votes.len() + 1);
        items.push(self.header.verify_item());
        for vote in &self.votes {
            let voter = vote.author();
            if !committee.contains(voter) {
                return Err(CertificateError::UnknownVoter(voter));
            }
            if !voters.insert(voter) {
                return Err(CertificateError::DuplicateVoter(voter));
            }
            if *vote.value() != expected {
                return Err(CertificateError::WrongVote(voter));
            }
            items.push(vote.verify_item());
        }
        committee.verify_batch(&items)?;
        Ok(())
    }
}
