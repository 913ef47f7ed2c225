//! Bodies of the `cargo fuzz` targets for the engines, as plain functions the normal
//! test suite also drives with proptest. None may panic on any input.

use crate::bullshark::{BullsharkConfig, BullsharkEngine, BullsharkMessage};
use crate::pbft::{Pbft, PbftConfig, PbftMessage};
use dwcp_core::codec::{decode, encode};
use dwcp_core::crypto::SignatureScheme;
use dwcp_core::{Committee, Effects, Engine, Input, NodeId, NodeKeys, Recovered, Time};
use std::sync::OnceLock;

/// Largest input the PBFT target decodes.
pub const PBFT_MAX_FRAME: usize = 1 << 20;

/// The fixed 4-member committee (fast stand-in signatures) the targets run against.
pub fn fuzz_committee() -> &'static (Committee, Vec<NodeKeys>) {
    static C: OnceLock<(Committee, Vec<NodeKeys>)> = OnceLock::new();
    C.get_or_init(|| Committee::deterministic(4, SignatureScheme::InsecureFast, 0xF022))
}

/// `data` decoded as an `M` (at most `max` bytes), if it decodes; panics unless
/// what decodes re-encodes to a value that decodes the same.
fn round_trip<M>(data: &[u8], max: usize) -> Option<M>
where
    M: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let msg = decode::<M>(data, max).ok()?;
    let again: M = match decode(&encode(&msg), max) {
        Ok(m) => m,
        Err(e) => panic!("a decoded message must re-decode: {e}"),
    };
    assert_eq!(again, msg);
    Some(msg)
}

/// Hands `msg` from `from` to `node` after its start, then fires its `timers`.
fn drive<E: Engine>(mut node: E, from: NodeId, msg: E::Message, timers: &[u64]) {
    let mut fx = Effects::new();
    node.handle(Time(0), Input::Start, &mut fx);
    node.handle(Time(1), Input::Message { from, msg }, &mut fx);
    for &t in timers {
        node.handle(
            Time(10_000_000),
            Input::Timeout(dwcp_core::TimerId(t)),
            &mut fx,
        );
    }
}

/// Decodes `data` as a PBFT message; if it decodes, checks that it re-encodes to a
/// value that decodes the same, then hands it to a fresh replica (as if from the
/// member named by the first byte) and lets the replica tick, which must not panic.
pub fn pbft_message(data: &[u8]) {
    let Some(msg) = round_trip::<PbftMessage>(data, PBFT_MAX_FRAME) else {
        return;
    };
    let from = NodeId(u16::from(data.first().copied().unwrap_or(0) % 4));
    deliver(from, vec![msg]);
}

/// Delivers `msgs` from `from` to a fresh replica 1, then fires its tick timer.
pub fn deliver(from: NodeId, msgs: Vec<PbftMessage>) {
    let (committee, keys) = fuzz_committee();
    let Ok(mut replica) = Pbft::new(
        keys[1].clone(),
        committee.clone(),
        PbftConfig::default(),
        Recovered::default(),
    ) else {
        return;
    };
    let mut fx = Effects::new();
    replica.handle(Time(0), Input::Start, &mut fx);
    for (k, msg) in msgs.into_iter().enumerate() {
        replica.handle(Time(k as u64 + 1), Input::Message { from, msg }, &mut fx);
    }
    replica.handle(
        Time(10_000_000),
        Input::Timeout(dwcp_core::TimerId(1)),
        &mut fx,
    );
}

/// Largest input the Bullshark target decodes.
pub const BULLSHARK_MAX_FRAME: usize = 1 << 20;

/// Decodes `data` as a Bullshark message; if it decodes, checks that it re-encodes
/// to the same value, then hands it to a fresh node 1 (as if from the member named
/// by the first byte) and fires every timer, none of which may panic.
pub fn bullshark_message(data: &[u8]) {
    let Ok(msg) = decode::<BullsharkMessage>(data, BULLSHARK_MAX_FRAME) else {
        return;
    };
    let again: BullsharkMessage = match decode(&encode(&msg), BULLSHARK_MAX_FRAME) {
        Ok(m) => m,
        Err(e) => panic!("a decoded message must re-decode: {e}"),
    };
    assert_eq!(again, msg);
    let from = NodeId(u16::from(data.first().copied().unwrap_or(0) % 4));
    deliver_bullshark(from, vec![msg]);
}

/// Delivers `msgs` from `from` to a fresh Bullshark node 1, then fires its timers.
pub fn deliver_bullshark(from: NodeId, msgs: Vec<BullsharkMessage>) {
    let (committee, keys) = fuzz_committee();
    let Ok(mut node) = BullsharkEngine::new(
        keys[1].clone(),
        committee.clone(),
        BullsharkConfig::default(),
        Recovered::default(),
    ) else {
        return;
    };
    let mut fx = Effects::new();
    node.handle(Time(0), Input::Start, &mut fx);
    for (k, msg) in msgs.into_iter().enumerate() {
        node.handle(Time(k as u64 + 1), Input::Message { from, msg }, &mut fx);
    }
    for t in 1..=3 {
        node.handle(
            Time(10_000_000 * t),
            Input::Timeout(dwcp_core::TimerId(t)),
            &mut fx,
        );
    }
}

/// Largest input the T-PBFT target decodes.
pub const TPBFT_MAX_FRAME: usize = 1 << 20;

/// Decodes `data` as a T-PBFT message; if it decodes, checks that it re-encodes to
/// the same value, then hands it to a fresh node 1 of the fuzz committee (all four
/// on epoch 0's committee; as if from the member named by the first byte) and fires
/// its timers, none of which may panic.
pub fn tpbft_message(data: &[u8]) {
    use crate::tpbft::{Tpbft, TpbftConfig, TpbftMessage};
    let Some(msg) = round_trip::<TpbftMessage>(data, TPBFT_MAX_FRAME) else {
        return;
    };
    let from = NodeId(u16::from(data.first().copied().unwrap_or(0) % 4));
    let (committee, keys) = fuzz_committee();
    if let Ok(node) = Tpbft::new(
        keys[1].clone(),
        committee.clone(),
        TpbftConfig::default(),
        Recovered::default(),
    ) {
        drive(node, from, msg, &[1, 2]);
    }
}

/// Largest input the ProBFT target decodes.
pub const PROBFT_MAX_FRAME: usize = 1 << 20;

/// Decodes `data` as a ProBFT message; if it decodes, checks that it re-encodes to
/// the same value, then hands it to a fresh replica 1 of the fuzz committee (as if
/// from the member named by the first byte) and fires its tick, none of which may
/// panic.
pub fn probft_message(data: &[u8]) {
    use crate::probft::{Probft, ProbftConfig, ProbftMessage};
    let Some(msg) = round_trip::<ProbftMessage>(data, PROBFT_MAX_FRAME) else {
        return;
    };
    let from = NodeId(u16::from(data.first().copied().unwrap_or(0) % 4));
    let (committee, keys) = fuzz_committee();
    if let Ok(node) = Probft::new(
        keys[1].clone(),
        committee.clone(),
        ProbftConfig::default(),
        Recovered::default(),
    ) {
        drive(node, from, msg, &[1]);
    }
}

/// Reads `data` as a T-PBFT evidence transaction (the tag is prepended); if it
/// decodes, checks that it re-encodes to the same record and verifies it against
/// the fuzz committee with members 0..4, which may refuse it but must not panic.
pub fn tpbft_evidence(data: &[u8]) {
    use crate::tpbft::{EvidenceRecord, Verifier, EVIDENCE_TAG};
    let mut tx = EVIDENCE_TAG.to_vec();
    tx.extend_from_slice(data);
    let Some(Ok(record)) = EvidenceRecord::from_transaction(&tx) else {
        return;
    };
    match EvidenceRecord::from_transaction(&record.to_transaction()) {
        Some(Ok(again)) => assert_eq!(again, record),
        other => panic!("a decoded record must re-decode: {other:?}"),
    }
    let (committee, _) = fuzz_committee();
    let members: Vec<NodeId> = committee.ids().collect();
    let _ = record.verify(&Verifier::new(
        committee,
        &crate::pbft::Instance {
            members,
            ..Default::default()
        },
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bullshark::transfer::{chain_next, state_digest, OrderEntry, OrderReply};
    use crate::bullshark::{BatchMaker, Certificate, Header, HeaderVote};
    use crate::pbft::{batch_digest, CheckpointVote, Phase, PrePrepare, Vote};
    use bytes::Bytes;
    use dwcp_core::{Digest, Signed};
    use proptest::prelude::*;

    fn signed_messages() -> impl Strategy<Value = Vec<(u16, PbftMessage)>> {
        let one = (
            0u16..4,
            0u64..4,
            0u64..80,
            0u8..4,
            proptest::collection::vec(any::<u8>(), 0..3),
        )
            .prop_map(|(who, view, seq, kind, batch)| {
                let (_, keys) = fuzz_committee();
                let key = &keys[who as usize].signing;
                let batch: Vec<Bytes> =
                    batch.into_iter().map(|b| Bytes::from(vec![b; 4])).collect();
                let digest = batch_digest(&batch);
                let msg = match kind {
                    0 => PbftMessage::PrePrepare(Signed::new(
                        PrePrepare {
                            view,
                            seq,
                            digest,
                            batch,
                        },
                        NodeId(who),
                        key,
                    )),
                    1 => PbftMessage::Vote(Signed::new(
                        Vote {
                            phase: Phase::Prepare,
                            view,
                            seq,
                            digest,
                        },
                        NodeId(who),
                        key,
                    )),
                    2 => PbftMessage::Vote(Signed::new(
                        Vote {
                            phase: Phase::Commit,
                            view,
                            seq,
                            digest,
                        },
                        NodeId(who),
                        key,
                    )),
                    _ => PbftMessage::Checkpoint(Signed::new(
                        CheckpointVote {
                            seq: seq * 16,
                            state: Digest::of(&[who as u8]),
                        },
                        NodeId(who),
                        key,
                    )),
                };
                (who, msg)
            });
        proptest::collection::vec(one, 0..40)
    }

    fn bullshark_messages() -> impl Strategy<Value = Vec<(u16, BullsharkMessage)>> {
        let one = (0u16..4, 1u64..6, 0u8..7, any::<u8>()).prop_map(|(who, round, kind, b)| {
            let (committee, keys) = fuzz_committee();
            let key = &keys[who as usize].signing;
            let mut maker = BatchMaker::default();
            maker.push(&[b; 8]);
            let batch = maker.seal(NodeId(who), round).expect("one transaction");
            let parents = Certificate::genesis(committee)
                .iter()
                .map(Certificate::digest)
                .collect();
            let header = Signed::new(
                Header {
                    author: NodeId(who),
                    round,
                    batches: vec![batch.digest()],
                    parents,
                },
                NodeId(who),
                key,
            );
            let msg = match kind {
                0 => BullsharkMessage::Batch(batch),
                1 => BullsharkMessage::Header(header),
                2 => BullsharkMessage::Vote(Signed::new(
                    HeaderVote::for_header(&header),
                    NodeId(who),
                    key,
                )),
                3 => {
                    let vote = HeaderVote::for_header(&header);
                    let votes = keys
                        .iter()
                        .take(3)
                        .map(|k| Signed::new(vote, k.id, &k.signing))
                        .collect();
                    BullsharkMessage::Certificate(Certificate { header, votes })
                }
                4 => BullsharkMessage::CertificateRange(round),
                5 => BullsharkMessage::OrderRequest(round),
                _ => {
                    // An answer that continues a fresh node's (empty) order.
                    let batches = vec![(batch.digest(), NodeId(who))];
                    let leader = *header.digest();
                    let committed = vec![(round, leader)];
                    let entry = OrderEntry {
                        position: 1,
                        seq: 1,
                        chain: chain_next(&Digest::ZERO, 1, 1, &leader, 2 * round, &batches),
                        leader,
                        leader_round: 2 * round,
                        batches,
                        state: state_digest(&committed),
                    };
                    BullsharkMessage::Order(OrderReply {
                        entries: vec![entry],
                        committed,
                    })
                }
            };
            (who, msg)
        });
        proptest::collection::vec(one, 0..30)
    }

    /// Validly signed ProBFT messages of the fuzz committee: the leader's proposal
    /// for `(view, seq)`, a PREPARE and a COMMIT for it with real sample proofs,
    /// a fetch and an empty decided reply.
    fn probft_messages(view: u64, seq: u64) -> Vec<crate::probft::ProbftMessage> {
        use crate::probft::messages::{Header, Proposal, SampledVote, Vote};
        use crate::probft::sample::Phase;
        use crate::probft::{verify::vote_sample, ProbftConfig, ProbftMessage};
        let (committee, keys) = fuzz_committee();
        let s = ProbftConfig::default()
            .quorum(4)
            .expect("n = 4")
            .figures()
            .s;
        let leader = committee.leader(view);
        let batch = vec![bytes::Bytes::from_static(b"tx")];
        let header = Signed::new(
            Header {
                view,
                seq,
                digest: crate::pbft::batch_digest(&batch),
            },
            leader,
            &keys[leader.index()].signing,
        );
        let mut out = vec![ProbftMessage::Propose(Proposal {
            header: header.clone(),
            batch,
        })];
        for phase in [Phase::Prepare, Phase::Commit] {
            let k = &keys[(leader.index() + 1) % 4];
            let (proof, _) = vote_sample(committee, k, s, view, phase).expect("a sample");
            let vote = Signed::new(
                Vote {
                    phase,
                    view,
                    seq,
                    digest: header.value().digest,
                },
                k.id,
                &k.signing,
            );
            out.push(ProbftMessage::Vote(Box::new(SampledVote {
                header: header.clone(),
                vote,
                proof,
            })));
        }
        out.push(ProbftMessage::Fetch { from: seq });
        out.push(ProbftMessage::Decided(Vec::new()));
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            pbft_message(&bytes);
        }

        #[test]
        fn mutated_valid_messages_never_panic(msgs in signed_messages(), flip in any::<(usize, u8)>(), cut in any::<usize>()) {
            for (_, m) in &msgs {
                let mut bytes = encode(m);
                if !bytes.is_empty() {
                    let i = flip.0 % bytes.len();
                    bytes[i] ^= flip.1 | 1;
                    pbft_message(&bytes);
                    pbft_message(&bytes[..cut % bytes.len()]);
                }
            }
        }

        #[test]
        fn probft_random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            probft_message(&bytes);
        }

        #[test]
        fn probft_mutated_valid_messages_never_panic(view in 0u64..3, seq in 1u64..3, flip in any::<(usize, u8)>(), cut in any::<usize>()) {
            for m in probft_messages(view, seq) {
                let mut bytes = encode(&m);
                probft_message(&bytes);
                let i = flip.0 % bytes.len();
                bytes[i] ^= flip.1 | 1;
                probft_message(&bytes);
                probft_message(&bytes[..cut % bytes.len()]);
            }
        }

        #[test]
        fn tpbft_random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            tpbft_message(&bytes);
        }

        #[test]
        fn tpbft_mutated_valid_messages_never_panic(msgs in signed_messages(), flip in any::<(usize, u8)>(), cut in any::<usize>()) {
            use crate::tpbft::TpbftMessage;
            for (_, m) in &msgs {
                let mut bytes = encode(&TpbftMessage::Pbft { epoch: 0, msg: m.clone() });
                tpbft_message(&bytes);
                let i = flip.0 % bytes.len();
                bytes[i] ^= flip.1 | 1;
                tpbft_message(&bytes);
                tpbft_message(&bytes[..cut % bytes.len()]);
            }
        }

        #[test]
        fn tpbft_evidence_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            tpbft_evidence(&bytes);
        }

        #[test]
        fn tpbft_mutated_evidence_never_panics(seq in 1u64..100, flip in any::<(usize, u8)>(), cut in any::<usize>()) {
            use crate::pbft::{Phase, Vote};
            use crate::tpbft::{CommitProof, EvidenceRecord, EVIDENCE_TAG};
            let (_, keys) = fuzz_committee();
            let votes = keys[..3]
                .iter()
                .map(|k| dwcp_core::Signed::new(
                    Vote { phase: Phase::Commit, view: 0, seq, digest: dwcp_core::Digest::of(b"b") },
                    k.id,
                    &k.signing,
                ))
                .collect();
            let record = EvidenceRecord {
                commits: vec![CommitProof { votes }],
                ..EvidenceRecord::default()
            };
            let tx = record.to_transaction();
            let mut body = tx[EVIDENCE_TAG.len()..].to_vec();
            tpbft_evidence(&body);
            let i = flip.0 % body.len();
            body[i] ^= flip.1 | 1;
            tpbft_evidence(&body);
            tpbft_evidence(&body[..cut % body.len()]);
        }

        #[test]
        fn bullshark_random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            bullshark_message(&bytes);
        }

        #[test]
        fn bullshark_mutated_valid_messages_never_panic(msgs in bullshark_messages(), flip in any::<(usize, u8)>(), cut in any::<usize>()) {
            for (_, m) in &msgs {
                let mut bytes = encode(m);
                if !bytes.is_empty() {
                    let i = flip.0 % bytes.len();
                    bytes[i] ^= flip.1 | 1;
                    bullshark_message(&bytes);
                    bullshark_message(&bytes[..cut % bytes.len()]);
                }
            }
        }

        #[test]
        fn bullshark_validly_signed_message_storms_never_panic(msgs in bullshark_messages()) {
            for from in 0..4u16 {
                let mine: Vec<BullsharkMessage> = msgs.iter().filter(|(w, _)| *w == from).map(|(_, m)| m.clone()).collect();
                deliver_bullshark(NodeId(from), mine);
            }
        }

        #[test]
        fn validly_signed_message_storms_never_panic(msgs in signed_messages()) {
            for from in 0..4u16 {
                let mine: Vec<PbftMessage> = msgs.iter().filter(|(w, _)| *w == from).map(|(_, m)| m.clone()).collect();
                deliver(NodeId(from), mine);
            }
        }
    }
}
