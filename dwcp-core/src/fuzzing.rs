//! Bodies of the `cargo fuzz` targets in `fuzz/`, as plain functions.
//!
//! The fuzz crate calls these on a nightly toolchain; the normal test suite drives
//! the same functions with proptest (random bytes and mutated valid encodings), so
//! CI on stable covers them too. Each body must not panic on any input: a panic is
//! either a decoder that trusts outside bytes or a broken property asserted here.

use crate::codec::{decode, encode};
use crate::committee::{Committee, NodeKeys};
use crate::crypto::SignatureScheme;
use crate::{Digest, NodeId, Seq, Signed, View};
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// The frame bound the envelope target decodes under: 64 KiB.
pub const ENVELOPE_MAX_FRAME: usize = 64 * 1024;

/// Members in the fixed committee the envelope target verifies against.
pub const FUZZ_COMMITTEE_SIZE: usize = 4;

/// Seed of the fixed committee (see [`Committee::deterministic`]).
pub const FUZZ_COMMITTEE_SEED: u64 = 0xF022;

/// A consensus-vote-like payload for the envelope target: fixed-size fields plus a
/// length-prefixed vector, so the fuzzer exercises varints, nested lengths and the
/// inner exact-consumption check of [`Signed`] decoding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FuzzVote {
    /// The view the vote belongs to.
    pub view: View,
    /// The sequence number voted on.
    pub seq: Seq,
    /// The digest voted for.
    pub digest: Digest,
    /// Digests the vote refers to (as a DAG vertex refers to its parents).
    pub parents: Vec<Digest>,
}

impl crate::Signable for FuzzVote {
    const DOMAIN: &'static str = "dwcp fuzz vote v1";
}

/// What [`check_envelope`] found; tests use it to show they reach the deep paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvelopeOutcome {
    /// The bytes were refused by the bounded decoder.
    Rejected,
    /// The bytes decoded, but the signature did not verify.
    BadSignature,
    /// The bytes decoded and the signature verified under the fixed committee.
    Verified,
}

/// The fixed committee (ed25519, the production scheme) and its secret keys.
pub fn fuzz_committee() -> &'static (Committee, Vec<NodeKeys>) {
    static COMMITTEE: OnceLock<(Committee, Vec<NodeKeys>)> = OnceLock::new();
    COMMITTEE.get_or_init(|| {
        Committee::deterministic(
            FUZZ_COMMITTEE_SIZE,
            SignatureScheme::Ed25519,
            FUZZ_COMMITTEE_SEED,
        )
    })
}

/// A valid encoded envelope signed by `author` of the fixed committee, as a seed
/// for mutation (tests, and a corpus for the fuzzer).
///
/// # Panics
///
/// If `author` is not a member of the fixed committee.
pub fn signed_vote_bytes(vote: FuzzVote, author: NodeId) -> Vec<u8> {
    let (_, keys) = fuzz_committee();
    encode(&Signed::new(vote, author, &keys[author.index()].signing))
}

/// Target `envelope`: decodes `data` as a bounded `Signed<FuzzVote>`; when it
/// decodes, verifies it against the fixed committee and checks the re-encoding.
///
/// # Panics
///
/// Only when a property is broken (which is what the fuzzer looks for): single
/// and batch verification disagree, or re-encoding does not round-trip.
pub fn envelope(data: &[u8]) {
    let _ = check_envelope(data);
}

/// The body of [`envelope`], returning what it found.
///
/// # Panics
///
/// As [`envelope`].
pub fn check_envelope(data: &[u8]) -> EnvelopeOutcome {
    let Ok(signed) = decode::<Signed<FuzzVote>>(data, ENVELOPE_MAX_FRAME) else {
        return EnvelopeOutcome::Rejected;
    };
    let (committee, _) = fuzz_committee();
    let single = committee.verify(signed.author(), signed.digest(), signed.signature());
    // ZIP-215: a batch must give the same answer as the single check, on any bytes.
    let batch = committee.verify_batch(&[signed.verify_item(), signed.verify_item()]);
    assert_eq!(
        single.is_ok(),
        batch.is_ok(),
        "single {single:?} and batch {batch:?} verification disagree"
    );

    let reencoded = encode(&signed);
    if reencoded != data {
        // postcard accepts overlong varints (e.g. a length written as `80 00`), so
        // an accepted input need not be canonical; the re-encoding must then be
        // the canonical form of the same envelope.
        let again = decode::<Signed<FuzzVote>>(&reencoded, ENVELOPE_MAX_FRAME);
        let again = again.unwrap_or_else(|e| panic!("re-encoding does not decode: {e}"));
        assert_eq!(again, signed, "decode(encode(x)) != x");
        assert_eq!(again.value(), signed.value());
        assert_eq!(again.digest(), signed.digest());
        assert_eq!(encode(&again), reencoded, "encoding is not stable");
    }
    if single.is_ok() {
        EnvelopeOutcome::Verified
    } else {
        EnvelopeOutcome::BadSignature
    }
}

/// The `transactions` target: decodes `data` as a binary transaction list
/// ([`crate::transactions`]); a list it accepts re-encodes to exactly `data` and
/// holds no empty transaction.
///
/// # Panics
///
/// Only when that property is broken.
pub fn transactions(data: &[u8]) {
    use crate::transactions::{decode_transactions, encode_transactions};
    let body = bytes::Bytes::copy_from_slice(data);
    if let Ok(txs) = decode_transactions(&body) {
        assert!(
            txs.iter().all(|t| !t.is_empty()),
            "an empty transaction passed"
        );
        assert_eq!(
            encode_transactions(&txs),
            data,
            "not the canonical encoding"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vote() -> impl Strategy<Value = FuzzVote> {
        (
            any::<u64>(),
            any::<u64>(),
            any::<[u8; 32]>(),
            proptest::collection::vec(any::<[u8; 32]>(), 0..6),
        )
            .prop_map(|(view, seq, digest, parents)| FuzzVote {
                view,
                seq,
                digest: Digest(digest),
                parents: parents.into_iter().map(Digest).collect(),
            })
    }

    #[derive(Clone, Debug)]
    enum Mutation {
        Flip { at: usize, mask: u8 },
        Truncate { at: usize },
        Extend { tail: Vec<u8> },
        Overwrite { at: usize, with: Vec<u8> },
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<usize>(), 1u8..).prop_map(|(at, mask)| Mutation::Flip { at, mask }),
            any::<usize>().prop_map(|at| Mutation::Truncate { at }),
            proptest::collection::vec(any::<u8>(), 1..16)
                .prop_map(|tail| Mutation::Extend { tail }),
            (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
                .prop_map(|(at, with)| Mutation::Overwrite { at, with }),
        ]
    }

    fn apply(mut bytes: Vec<u8>, m: &Mutation) -> Vec<u8> {
        let len = bytes.len();
        match m {
            Mutation::Flip { at, mask } => bytes[at % len] ^= mask,
            Mutation::Truncate { at } => bytes.truncate(at % len),
            Mutation::Extend { tail } => bytes.extend_from_slice(tail),
            Mutation::Overwrite { at, with } => {
                for (i, b) in with.iter().enumerate() {
                    if let Some(slot) = bytes.get_mut(at % len + i) {
                        *slot = *b;
                    }
                }
            }
        }
        bytes
    }

    #[test]
    fn valid_envelopes_verify_and_others_do_not() {
        let v = FuzzVote {
            view: 1,
            seq: 300,
            digest: Digest::of(b"block"),
            parents: vec![Digest::of(b"a"), Digest::of(b"b")],
        };
        let bytes = signed_vote_bytes(v.clone(), NodeId(2));
        assert_eq!(check_envelope(&bytes), EnvelopeOutcome::Verified);

        // Another author's claim on the same bytes decodes but does not verify.
        let mut forged = bytes.clone();
        forged[0] = 1; // author is the first field, a one-byte varint here
        assert_eq!(check_envelope(&forged), EnvelopeOutcome::BadSignature);
        // An author outside the committee.
        forged[0] = 9;
        assert_eq!(check_envelope(&forged), EnvelopeOutcome::BadSignature);

        assert_eq!(check_envelope(&[]), EnvelopeOutcome::Rejected);
        let oversized = vec![0u8; ENVELOPE_MAX_FRAME + 1];
        assert_eq!(check_envelope(&oversized), EnvelopeOutcome::Rejected);
    }

    #[test]
    fn overlong_varint_is_accepted_and_reencoded_canonically() {
        // Documents a postcard property the target relies on: the author `2`
        // written as the overlong varint `82 00` still decodes, and the envelope
        // digest covers the value, not its outer framing, so it still verifies.
        let bytes = signed_vote_bytes(
            FuzzVote {
                view: 0,
                seq: 0,
                digest: Digest::ZERO,
                parents: vec![],
            },
            NodeId(2),
        );
        assert_eq!(bytes[0], 2);
        let mut overlong = vec![0x82, 0x00];
        overlong.extend_from_slice(&bytes[1..]);
        assert_eq!(check_envelope(&overlong), EnvelopeOutcome::Verified);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn random_bytes(data in proptest::collection::vec(any::<u8>(), 0..1024)) {
            envelope(&data);
        }
    }

    // Each case signs with ed25519, which is slow in debug builds: fewer cases.
    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn valid_encodings_verify(v in vote(), who in 0u16..FUZZ_COMMITTEE_SIZE as u16) {
            let bytes = signed_vote_bytes(v, NodeId(who));
            prop_assert_eq!(check_envelope(&bytes), EnvelopeOutcome::Verified);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn mutated_valid_encodings(
            v in vote(),
            who in 0u16..FUZZ_COMMITTEE_SIZE as u16,
            ms in proptest::collection::vec(mutation(), 1..4),
        ) {
            let mut bytes = signed_vote_bytes(v, NodeId(who));
            for m in &ms {
                if bytes.is_empty() {
                    break;
                }
                bytes = apply(bytes, m);
            }
            envelope(&bytes);
        }
    }
}
