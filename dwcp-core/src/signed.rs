//! Signed envelopes: a value, the exact bytes that encode it, and a signature over
//! the hash of those bytes. The bytes that travel are the bytes that were signed;
//! nothing is re-encoded before verification. Every signed type has its own signing
//! domain ([`Signable::DOMAIN`]), hashed in with the bytes: a signature on one kind
//! of statement is never valid for another kind whose bytes happen to decode.

use crate::codec::{decode, encode};
use crate::committee::Committee;
use crate::crypto::{CryptoError, Signature, SigningKey};
use crate::{Digest, NodeId};
use bytes::Bytes;
use serde::{de::DeserializeOwned, Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A type that is signed and sent in a [`Signed`] envelope.
pub trait Signable: Serialize + DeserializeOwned {
    /// The signing domain of this type: unique per type and protocol, versioned
    /// (for example `"dwcp pbft vote v1"`).
    const DOMAIN: &'static str;
}

/// A value signed by a committee member.
///
/// Decoding recomputes the digest from the received bytes; [`Signed::verify`]
/// checks the signature against the committee. Equality compares the signed bytes.
#[derive(Clone)]
pub struct Signed<T> {
    author: NodeId,
    bytes: Bytes,
    digest: Digest,
    signature: Signature,
    value: T,
}

fn envelope_digest<T: Signable>(author: NodeId, bytes: &[u8]) -> Digest {
    Digest::of_parts(T::DOMAIN, &[&author.0.to_le_bytes(), bytes])
}

impl<T: Signable> Signed<T> {
    /// Encodes and signs `value` as `author`.
    pub fn new(value: T, author: NodeId, key: &SigningKey) -> Signed<T> {
        let bytes = Bytes::from(encode(&value));
        let digest = envelope_digest::<T>(author, &bytes);
        let signature = key.sign(&digest);
        Signed {
            author,
            bytes,
            digest,
            signature,
            value,
        }
    }
}

impl<T> Signed<T> {
    /// Who signed it (not yet verified until [`Signed::verify`] returns `Ok`).
    pub fn author(&self) -> NodeId {
        self.author
    }

    /// The signed value.
    pub fn value(&self) -> &T {
        &self.value
    }

    /// The digest that was signed: BLAKE3 over the author and the exact encoded bytes.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The encoded bytes of the value.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Checks the signature under the author's key in `committee`.
    pub fn verify(&self, committee: &Committee) -> Result<(), CryptoError> {
        committee.verify(self.author, &self.digest, &self.signature)
    }

    /// The triple for a batch check with [`Committee::verify_batch`].
    pub fn verify_item(&self) -> (NodeId, Digest, Signature) {
        (self.author, self.digest, self.signature)
    }

    /// Flips a bit of the signature: for Byzantine test actors only.
    pub fn corrupt_signature(&mut self) {
        self.signature.0[0] ^= 0x01;
    }
}

impl<T: fmt::Debug> fmt::Debug for Signed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signed[{}]({:?})", self.author, self.value)
    }
}

impl<T> PartialEq for Signed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.author == other.author
            && self.bytes == other.bytes
            && self.signature == other.signature
    }
}
impl<T> Eq for Signed<T> {}

#[derive(Serialize)]
struct WireRef<'a> {
    author: NodeId,
    #[serde(with = "serde_bytes_ref")]
    bytes: &'a [u8],
    signature: Signature,
}

#[derive(Deserialize)]
struct WireOwned {
    author: NodeId,
    bytes: Bytes,
    signature: Signature,
}

mod serde_bytes_ref {
    pub fn serialize<S: serde::Serializer>(b: &&[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(b)
    }
}

impl<T> Serialize for Signed<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        WireRef {
            author: self.author,
            bytes: &self.bytes,
            signature: self.signature,
        }
        .serialize(s)
    }
}

impl<'de, T: Signable> Deserialize<'de> for Signed<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = WireOwned::deserialize(d)?;
        // The inner bytes are bounded by the outer frame, which the caller bounded.
        let value = decode::<T>(&w.bytes, usize::MAX).map_err(serde::de::Error::custom)?;
        let digest = envelope_digest::<T>(w.author, &w.bytes);
        Ok(Signed {
            author: w.author,
            bytes: w.bytes,
            digest,
            signature: w.signature,
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::CodecError;
    use crate::crypto::SignatureScheme;
    use proptest::prelude::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Vote {
        round: u64,
        block: Vec<u8>,
    }

    impl Signable for Vote {
        const DOMAIN: &'static str = "dwcp test vote v1";
    }

    /// The same fields under another type: its bytes decode as a `Vote`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Proposal {
        round: u64,
        block: Vec<u8>,
    }

    impl Signable for Proposal {
        const DOMAIN: &'static str = "dwcp test proposal v1";
    }

    #[test]
    fn a_signature_is_valid_only_for_the_type_it_was_made_for() {
        let (c, keys) = Committee::deterministic(4, SignatureScheme::Ed25519, 1);
        let p = Signed::new(
            Proposal {
                round: 3,
                block: vec![1, 2],
            },
            NodeId(1),
            &keys[1].signing,
        );
        assert!(p.verify(&c).is_ok());
        let as_vote: Signed<Vote> = decode(&encode(&p), 1 << 20).expect("same shape decodes");
        assert_eq!(as_vote.value().round, 3);
        assert!(
            as_vote.verify(&c).is_err(),
            "a proposal's signature must not pass for a vote"
        );
    }

    #[test]
    fn sign_encode_decode_verify() {
        let (c, keys) = Committee::deterministic(4, SignatureScheme::Ed25519, 1);
        let s = Signed::new(
            Vote {
                round: 3,
                block: vec![1, 2],
            },
            NodeId(1),
            &keys[1].signing,
        );
        let bytes = encode(&s);
        let back: Signed<Vote> = decode(&bytes, 1 << 20).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.value(), s.value());
        assert_eq!(back.digest(), s.digest());
        assert!(back.verify(&c).is_ok());

        // Claiming another author fails verification.
        let forged = Signed {
            author: NodeId(2),
            ..back.clone()
        };
        let forged: Signed<Vote> = decode(&encode(&forged), 1 << 20).unwrap();
        assert!(forged.verify(&c).is_err());

        let mut bad = back;
        bad.corrupt_signature();
        assert!(bad.verify(&c).is_err());
    }

    #[test]
    fn truncated_oversized_and_garbage_are_errors() {
        let (_, keys) = Committee::deterministic(4, SignatureScheme::Ed25519, 1);
        let s = Signed::new(
            Vote {
                round: 3,
                block: vec![7; 100],
            },
            NodeId(0),
            &keys[0].signing,
        );
        let bytes = encode(&s);
        for cut in 0..bytes.len() {
            assert!(
                decode::<Signed<Vote>>(&bytes[..cut], 1 << 20).is_err(),
                "cut {cut}"
            );
        }
        assert!(matches!(
            decode::<Signed<Vote>>(&bytes, 10),
            Err(CodecError::TooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode::<Signed<Vote>>(&bytes, 1 << 16);
        }

        #[test]
        fn roundtrip(round in any::<u64>(), block in proptest::collection::vec(any::<u8>(), 0..64), who in 0u16..4) {
            let (c, keys) = Committee::deterministic(4, SignatureScheme::InsecureFast, 2);
            let s = Signed::new(Vote { round, block }, NodeId(who), &keys[who as usize].signing);
            let back: Signed<Vote> = decode(&encode(&s), 1 << 20).unwrap();
            prop_assert!(back.verify(&c).is_ok());
            prop_assert_eq!(back, s);
        }
    }
}
