//! Certificates of availability (Narwhal, Danezis et al., EuroSys '22): a header with a quorum of votes.

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

/// Structural checks of a header against the committee: round 1 or later, a member
/// author who signed it, a quorum of distinct parents (at most one per member), and
/// distinct batches. A voter runs this (and checks the parents exist) before voting.
pub fn check_header(
    header: &Signed<Header>,
    committee: &Committee,
) -> Result<(), CertificateError> {
    check_header_with(header, committee, committee.quorum_threshold())
}

/// [`check_header`] with `need` parents required (the engine's quorum).
pub(crate) fn check_header_with(
    header: &Signed<Header>,
    committee: &Committee,
    need: usize,
) -> Result<(), CertificateError> {
    let h = header.value();
    if h.round == 0 {
        // Genesis is fixed, never proposed.
        return Err(CertificateError::BadGenesis(h.author));
    }
    if !committee.contains(h.author) {
        return Err(CertificateError::UnknownAuthor(h.author));
    }
    if header.author() != h.author {
        return Err(CertificateError::AuthorMismatch {
            claimed: h.author,
            signer: header.author(),
        });
    }
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
        self.verify_with(committee, committee.quorum_threshold())
    }

    /// [`Certificate::verify`] with `need` votes and parents required (the engine's
    /// quorum).
    pub(crate) fn verify_with(
        &self,
        committee: &Committee,
        need: usize,
    ) -> Result<(), CertificateError> {
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
        check_header_with(&self.header, committee, need)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bullshark::notation::certificate;
    use dwcp_core::codec::{decode, encode};
    use dwcp_core::NodeKeys;

    /// Real ed25519 signatures: signatures are the point here.
    fn setup() -> (Committee, Vec<NodeKeys>, Certificate) {
        let (c, keys) = Committee::deterministic(4, SignatureScheme::Ed25519, 11);
        let parents = Certificate::genesis(&c)
            .iter()
            .map(Certificate::digest)
            .collect();
        let cert = certificate(&c, &keys, NodeId(2), 1, parents, vec![Digest::of(b"b")]);
        (c, keys, cert)
    }

    #[test]
    fn valid_certificate_verifies_and_roundtrips() {
        let (c, _, cert) = setup();
        assert_eq!(cert.verify(&c), Ok(()));
        assert_eq!(cert.votes.len(), c.quorum_threshold());
        let back: Certificate = decode(&encode(&cert), 1 << 20).unwrap();
        assert_eq!(back, cert);
        assert_eq!(back.digest(), cert.digest());
        assert_eq!(back.verify(&c), Ok(()));
    }

    #[test]
    fn genesis_is_deterministic_and_only_exact_genesis_verifies() {
        let (c, keys, cert) = setup();
        let g = Certificate::genesis(&c);
        assert_eq!(g.len(), 4);
        assert_eq!(g, Certificate::genesis(&c));
        for (i, cert) in g.iter().enumerate() {
            assert_eq!(cert.author(), NodeId(i as u16));
            assert_eq!(cert.round(), 0);
            assert_eq!(cert.verify(&c), Ok(()));
        }
        // Distinct digests per member.
        let digests: HashSet<_> = g.iter().map(Certificate::digest).collect();
        assert_eq!(digests.len(), 4);
        // A round-0 header signed by the member itself is not genesis.
        let fake = certificate(&c, &keys, NodeId(1), 0, vec![], vec![]);
        assert_eq!(
            fake.verify(&c),
            Err(CertificateError::BadGenesis(NodeId(1)))
        );
        // Genesis with votes attached is not genesis either.
        let mut padded = g[0].clone();
        padded.votes = cert.votes.clone();
        assert_eq!(
            padded.verify(&c),
            Err(CertificateError::BadGenesis(NodeId(0)))
        );
        assert_eq!(
            Certificate::genesis_of(NodeId(9)).verify(&c),
            Err(CertificateError::BadGenesis(NodeId(9)))
        );
    }

    #[test]
    fn truncated_or_oversized_encodings_are_errors() {
        let (_, _, cert) = setup();
        let bytes = encode(&cert);
        for cut in 0..bytes.len() {
            assert!(
                decode::<Certificate>(&bytes[..cut], 1 << 20).is_err(),
                "cut {cut}"
            );
        }
        assert!(decode::<Certificate>(&bytes, bytes.len() - 1).is_err());
        let mut flipped = bytes.clone();
        for i in (0..flipped.len()).step_by(7) {
            flipped[i] ^= 0x5a;
            // Either refused while decoding or decoded into something else; never a panic.
            let _ = decode::<Certificate>(&flipped, 1 << 20);
            flipped[i] ^= 0x5a;
        }
    }

    #[test]
    fn too_few_votes() {
        let (c, _, mut cert) = setup();
        cert.votes.pop();
        assert_eq!(
            cert.verify(&c),
            Err(CertificateError::TooFewVotes { got: 2, need: 3 })
        );
    }

    #[test]
    fn duplicate_voter() {
        let (c, _, mut cert) = setup();
        cert.votes[2] = cert.votes[0].clone();
        assert_eq!(
            cert.verify(&c),
            Err(CertificateError::DuplicateVoter(NodeId(0)))
        );
    }

    #[test]
    fn vote_for_wrong_digest() {
        let (c, keys, mut cert) = setup();
        let mut other = HeaderVote::for_header(&cert.header);
        other.header = Digest::of(b"another header");
        cert.votes[1] = Signed::new(other, NodeId(1), &keys[1].signing);
        assert_eq!(cert.verify(&c), Err(CertificateError::WrongVote(NodeId(1))));
        // Right digest, wrong round.
        let mut other = HeaderVote::for_header(&cert.header);
        other.round += 1;
        cert.votes[1] = Signed::new(other, NodeId(1), &keys[1].signing);
        assert_eq!(cert.verify(&c), Err(CertificateError::WrongVote(NodeId(1))));
    }

    #[test]
    fn bad_signatures() {
        let (c, _, cert) = setup();
        let mut bad_vote = cert.clone();
        bad_vote.votes[1].corrupt_signature();
        assert!(matches!(
            bad_vote.verify(&c),
            Err(CertificateError::Signature(_))
        ));
        let mut bad_header = cert;
        bad_header.header.corrupt_signature();
        assert!(matches!(
            bad_header.verify(&c),
            Err(CertificateError::Signature(_))
        ));
    }

    #[test]
    fn vote_by_non_member_and_header_by_impostor() {
        let (c, keys, mut cert) = setup();
        let vote = HeaderVote::for_header(&cert.header);
        cert.votes[0] = Signed::new(vote, NodeId(7), &keys[0].signing);
        assert_eq!(
            cert.verify(&c),
            Err(CertificateError::UnknownVoter(NodeId(7)))
        );
        // Header claims author 2 but is signed (as envelope author) by 3.
        let (_, _, good) = setup();
        let header = Signed::new(good.header.value().clone(), NodeId(3), &keys[3].signing);
        let forged = Certificate {
            header,
            votes: good.votes,
        };
        assert_eq!(
            forged.verify(&c),
            Err(CertificateError::AuthorMismatch {
                claimed: NodeId(2),
                signer: NodeId(3)
            })
        );
    }

    #[test]
    fn malformed_headers() {
        let (c, keys, cert) = setup();
        let g: Vec<Digest> = Certificate::genesis(&c)
            .iter()
            .map(Certificate::digest)
            .collect();
        let few = certificate(&c, &keys, NodeId(0), 1, g[..2].to_vec(), vec![]);
        assert_eq!(
            few.verify(&c),
            Err(CertificateError::TooFewParents { got: 2, need: 3 })
        );
        let dup = certificate(&c, &keys, NodeId(0), 1, vec![g[0], g[1], g[1]], vec![]);
        assert_eq!(dup.verify(&c), Err(CertificateError::DuplicateParent(g[1])));
        let many = certificate(
            &c,
            &keys,
            NodeId(0),
            1,
            [&g[..], &[cert.digest()]].concat(),
            vec![],
        );
        assert_eq!(
            many.verify(&c),
            Err(CertificateError::TooManyParents { got: 5, max: 4 })
        );
        let b = Digest::of(b"b");
        let dup_batch = certificate(&c, &keys, NodeId(0), 1, g.clone(), vec![b, b]);
        assert_eq!(
            dup_batch.verify(&c),
            Err(CertificateError::DuplicateBatch(b))
        );
    }
}
