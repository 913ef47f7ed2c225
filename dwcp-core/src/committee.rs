//! The committee: who votes, with which keys, and how many votes make a quorum.

use crate::crypto::signature::Verifier;
use crate::crypto::{
    batch_verify, CryptoError, InsecureFastVrf, PublicKey, R255Vrf, Signature, SignatureScheme,
    SigningKey, VerifyItem, Vrf, VrfOutput, VrfProof, VrfPublicKey, VrfSecretKey,
};
use crate::{Digest, NodeId};
use serde::{Deserialize, Serialize};

/// One committee member as written in a committee file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its index in the committee.
    pub id: NodeId,
    /// Its ed25519 public key.
    pub key: PublicKey,
    /// Its VRF public key.
    pub vrf_key: VrfPublicKey,
    /// Its stake (voting weight for stake-aware engines; 1 for equal weight).
    pub stake: u64,
}

/// Why a committee description was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitteeError {
    /// No members.
    #[error("a committee needs at least one member")]
    Empty,
    /// Members must be listed as ids `0..n` in order.
    #[error("member at position {position} has id {id}; ids must be 0..n in order")]
    BadIds {
        /// Position in the list.
        position: usize,
        /// The id found there.
        id: NodeId,
    },
    /// The same public key appears twice.
    #[error("public key of {0} is listed twice")]
    DuplicateKey(NodeId),
    /// More members than a `NodeId` can name.
    #[error("too many members: {0}")]
    TooLarge(usize),
}

/// The serialised form of a [`Committee`].
#[derive(Clone, Debug, Serialize, Deserialize)]
struct CommitteeSpec {
    scheme: SignatureScheme,
    members: Vec<Member>,
}

/// Votes that make a quorum of `n` voters: `⌈(n+f+1)/2⌉` with `f = ⌊(n-1)/3⌋`,
/// which is `2f+1` when `n = 3f+1` ([`Committee::quorum_threshold`] for a whole
/// committee; engines that vote among a subset use it directly).
pub fn quorum_of(n: usize) -> usize {
    (n + n.saturating_sub(1) / 3) / 2 + 1
}

/// The set of members running one engine instance, with their keys prepared for
/// fast verification, and the fault thresholds derived from its size.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "CommitteeSpec", into = "CommitteeSpec")]
pub struct Committee {
    scheme: SignatureScheme,
    members: Vec<Member>,
    verifiers: Vec<Verifier>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.bytes)
    }
}

impl TryFrom<CommitteeSpec> for Committee {
    type Error = CommitteeError;
    fn try_from(spec: CommitteeSpec) -> Result<Committee, CommitteeError> {
        Committee::new(spec.scheme, spec.members)
    }
}

impl From<Committee> for CommitteeSpec {
    fn from(c: Committee) -> CommitteeSpec {
        CommitteeSpec {
            scheme: c.scheme,
            members: c.members,
        }
    }
}

/// A member's secret keys.
#[derive(Clone, Debug)]
pub struct NodeKeys {
    /// The member's id.
    pub id: NodeId,
    /// Its signing key.
    pub signing: SigningKey,
    /// Its VRF secret key.
    pub vrf: VrfSecretKey,
}

impl Committee {
    /// Builds a committee; members must carry ids `0..n` in order, with distinct keys.
    pub fn new(scheme: SignatureScheme, members: Vec<Member>) -> Result<Committee, CommitteeError> {
        if members.is_empty() {
            return Err(CommitteeError::Empty);
        }
        if members.len() > usize::from(u16::MAX) {
            return Err(CommitteeError::TooLarge(members.len()));
        }
        let mut seen = std::collections::HashSet::new();
        for (position, m) in members.iter().enumerate() {
            if m.id.index() != position {
                return Err(CommitteeError::BadIds { position, id: m.id });
            }
            if !seen.insert(m.key) {
                return Err(CommitteeError::DuplicateKey(m.id));
            }
        }
        let verifiers = members.iter().map(|m| Verifier::new(m.key)).collect();
        Ok(Committee {
            scheme,
            members,
            verifiers,
        })
    }

    /// A committee of `n` members with keys derived from `seed`, and their secrets.
    /// For tests, simulations and local clusters: anyone who knows the seed knows the keys.
    pub fn deterministic(
        n: usize,
        scheme: SignatureScheme,
        seed: u64,
    ) -> (Committee, Vec<NodeKeys>) {
        let keys: Vec<NodeKeys> = (0..n)
            .map(|i| {
                let mut material = [0u8; 16];
                material[..8].copy_from_slice(&seed.to_le_bytes());
                material[8..].copy_from_slice(&(i as u64).to_le_bytes());
                let sign_seed = blake3::derive_key("dwcp deterministic signing key v1", &material);
                let vrf_seed = blake3::derive_key("dwcp deterministic vrf key v1", &material);
                NodeKeys {
                    id: NodeId(i as u16),
                    signing: SigningKey::from_seed(sign_seed, scheme),
                    vrf: VrfSecretKey::from_seed(vrf_seed),
                }
            })
            .collect();
        // Ids are 0..n in order and keys are distinct with overwhelming probability.
        let committee = Committee::from_keys(scheme, &keys).unwrap_or_else(|e| panic!("{e}"));
        (committee, keys)
    }

    /// The committee of the members holding `keys` (ids `0..n` in order), each with stake 1.
    pub fn from_keys(
        scheme: SignatureScheme,
        keys: &[NodeKeys],
    ) -> Result<Committee, CommitteeError> {
        let members = keys
            .iter()
            .map(|k| Member {
                id: k.id,
                key: k.signing.public(),
                vrf_key: k.vrf.public(),
                stake: 1,
            })
            .collect();
        Committee::new(scheme, members)
    }

    /// The signature scheme.
    pub fn scheme(&self) -> SignatureScheme {
        self.scheme
    }

    /// Number of members.
    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// The largest number of Byzantine members tolerated: `f = ⌊(n-1)/3⌋`.
    pub fn max_faulty(&self) -> usize {
        (self.size() - 1) / 3
    }

    /// Votes that make a quorum: `⌈(n+f+1)/2⌉`, which is `2f+1` when `n = 3f+1`.
    /// Any two quorums share at least `f+1` members, so at least one honest one.
    pub fn quorum_threshold(&self) -> usize {
        quorum_of(self.size())
    }

    /// Votes that guarantee at least one honest voter: `f+1`.
    pub fn validity_threshold(&self) -> usize {
        self.max_faulty() + 1
    }

    /// All members in id order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The member with this id, if any.
    pub fn member(&self, id: NodeId) -> Option<&Member> {
        self.members.get(id.index())
    }

    /// Whether `id` names a member.
    pub fn contains(&self, id: NodeId) -> bool {
        id.index() < self.members.len()
    }

    /// Ids of all members.
    pub fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.iter().map(|m| m.id)
    }

    /// The round-robin leader of `view`.
    pub fn leader(&self, view: u64) -> NodeId {
        NodeId((view % self.size() as u64) as u16)
    }

    /// Evaluates `keys`' VRF on `alpha` with this committee's VRF: RFC 9381 ECVRF,
    /// or the simulator's stand-in ([`crate::crypto::InsecureFastVrf`]) when the
    /// committee uses the insecure signature stand-in.
    pub fn vrf_prove(&self, keys: &NodeKeys, alpha: &[u8]) -> (VrfOutput, VrfProof) {
        match self.scheme {
            SignatureScheme::Ed25519 => R255Vrf::prove(&keys.vrf, alpha),
            SignatureScheme::InsecureFast => InsecureFastVrf::prove(&keys.vrf, alpha),
        }
    }

    /// Checks `author`'s VRF `proof` for `alpha` and returns the output it proves.
    pub fn vrf_verify(
        &self,
        author: NodeId,
        alpha: &[u8],
        proof: &VrfProof,
    ) -> Result<VrfOutput, CryptoError> {
        let pk = self
            .member(author)
            .ok_or(CryptoError::MalformedKey)?
            .vrf_key;
        match self.scheme {
            SignatureScheme::Ed25519 => R255Vrf::verify(&pk, alpha, proof),
            SignatureScheme::InsecureFast => InsecureFastVrf::verify(&pk, alpha, proof),
        }
    }

    /// Checks that `author` signed `digest`.
    pub fn verify(
        &self,
        author: NodeId,
        digest: &Digest,
        sig: &Signature,
    ) -> Result<(), CryptoError> {
        let v = self
            .verifiers
            .get(author.index())
            .ok_or(CryptoError::MalformedKey)?;
        v.verify(self.scheme, digest, sig)
    }

    /// Checks many `(author, digest, signature)` triples in one batch.
    pub fn verify_batch(&self, items: &[(NodeId, Digest, Signature)]) -> Result<(), CryptoError> {
        if items.len() == 1 {
            let (a, d, s) = &items[0];
            return self.verify(*a, d, s);
        }
        let mut refs = Vec::with_capacity(items.len());
        for (author, digest, signature) in items {
            let m = self.member(*author).ok_or(CryptoError::MalformedKey)?;
            refs.push(VerifyItem {
                key: &m.key,
                digest,
                signature,
            });
        }
        batch_verify(self.scheme, &refs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        for (n, f, q) in [
            (1, 0, 1),
            (4, 1, 3),
            (5, 1, 4),
            (6, 1, 4),
            (7, 2, 5),
            (10, 3, 7),
            (100, 33, 67),
        ] {
            let (c, _) = Committee::deterministic(n, SignatureScheme::InsecureFast, 1);
            assert_eq!(c.max_faulty(), f, "n={n}");
            assert_eq!(c.quorum_threshold(), q, "n={n}");
            assert_eq!(c.validity_threshold(), f + 1);
            // Quorum intersection holds an honest member.
            assert!(2 * q > n + f);
        }
    }

    #[test]
    fn serde_roundtrip_and_validation() {
        let (c, keys) = Committee::deterministic(4, SignatureScheme::Ed25519, 9);
        let bytes = postcard::to_allocvec(&c).unwrap();
        let back: Committee = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.members(), c.members());
        let d = Digest::of(b"x");
        assert!(back
            .verify(NodeId(2), &d, &keys[2].signing.sign(&d))
            .is_ok());
        assert!(back
            .verify(NodeId(1), &d, &keys[2].signing.sign(&d))
            .is_err());
        assert!(back
            .verify(NodeId(9), &d, &keys[2].signing.sign(&d))
            .is_err());

        let mut members = c.members().to_vec();
        members.swap(0, 1);
        assert!(matches!(
            Committee::new(c.scheme(), members),
            Err(CommitteeError::BadIds { .. })
        ));
        let mut members = c.members().to_vec();
        members[1].key = members[0].key;
        assert_eq!(
            Committee::new(c.scheme(), members).unwrap_err(),
            CommitteeError::DuplicateKey(NodeId(1))
        );
        assert_eq!(
            Committee::new(c.scheme(), vec![]).unwrap_err(),
            CommitteeError::Empty
        );
    }

    #[test]
    fn batch_verification() {
        let (c, keys) = Committee::deterministic(7, SignatureScheme::Ed25519, 3);
        let d = Digest::of(b"vote");
        let mut items: Vec<_> = keys.iter().map(|k| (k.id, d, k.signing.sign(&d))).collect();
        assert!(c.verify_batch(&items).is_ok());
        items[4].0 = NodeId(5);
        assert!(c.verify_batch(&items).is_err());
    }
}
