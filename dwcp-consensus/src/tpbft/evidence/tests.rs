//! Evidence proofs: each verifies exactly when its signatures are members' and
//! agree, and the record survives the trip through a batch.

use super::*;
use dwcp_core::crypto::SignatureScheme;
use dwcp_core::{NodeKeys, View};
use proptest::prelude::*;

struct Setup {
    committee: Committee,
    keys: Vec<NodeKeys>,
    epoch: Instance,
}

fn setup() -> Setup {
    let (committee, keys) = Committee::deterministic(7, SignatureScheme::Ed25519, 3);
    Setup {
        committee,
        keys,
        epoch: Instance {
            members: [1, 2, 4, 6].map(NodeId).to_vec(),
            ..Instance::default()
        },
    }
}

impl Setup {
    fn verifier(&self) -> Verifier<'_> {
        Verifier::new(&self.committee, &self.epoch)
    }

    fn vote(&self, by: u16, phase: Phase, view: View, seq: u64, digest: Digest) -> Signed<Vote> {
        Signed::new(
            Vote {
                phase,
                view,
                seq,
                digest,
            },
            NodeId(by),
            &self.keys[usize::from(by)].signing,
        )
    }

    fn commits(&self, by: &[u16], digest: Digest) -> CommitProof {
        CommitProof {
            votes: by
                .iter()
                .map(|b| self.vote(*b, Phase::Commit, 5, 40, digest))
                .collect(),
        }
    }
}

fn d(b: &[u8]) -> Digest {
    Digest::of(b)
}

#[test]
fn a_quorum_of_member_commit_votes_proves_a_commit() {
    let s = setup();
    let e = s
        .commits(&[2, 4, 6], d(b"x"))
        .verify(&s.verifier())
        .unwrap();
    // View 5's leader is the second member in id order.
    assert_eq!(
        e,
        Evidence::Committed {
            proposer: NodeId(2),
            signers: [2, 4, 6].map(NodeId).to_vec()
        }
    );
}

#[test]
fn commit_proofs_short_of_a_quorum_or_not_members_or_mixed_or_forged_are_refused() {
    let s = setup();
    let v = s.verifier();
    assert!(matches!(
        s.commits(&[2, 4], d(b"x")).verify(&v),
        Err(EvidenceError::TooFew { got: 2, need: 3 })
    ));
    assert!(matches!(
        s.commits(&[2, 2, 4], d(b"x")).verify(&v),
        Err(EvidenceError::Inconsistent(_))
    ));
    // Node 3 is in the committee (its key verifies) but not an epoch member.
    assert_eq!(
        s.commits(&[2, 3, 4], d(b"x")).verify(&v),
        Err(EvidenceError::Signature)
    );
    let mut mixed = s.commits(&[2, 4], d(b"x"));
    mixed.votes.push(s.vote(6, Phase::Commit, 5, 40, d(b"y")));
    assert!(matches!(
        mixed.verify(&v),
        Err(EvidenceError::Inconsistent(_))
    ));
    let mut prepares = s.commits(&[2, 4], d(b"x"));
    prepares
        .votes
        .push(s.vote(6, Phase::Prepare, 5, 40, d(b"x")));
    assert!(matches!(
        prepares.verify(&v),
        Err(EvidenceError::Inconsistent(_))
    ));
    let mut forged = s.commits(&[2, 4, 6], d(b"x"));
    forged.votes[1].corrupt_signature();
    assert_eq!(forged.verify(&v), Err(EvidenceError::Signature));
}

#[test]
fn a_colluding_proof_names_its_group_and_only_a_quorum_of_the_others() {
    let s = setup();
    let v = s.verifier();
    let members = &v.epoch.members;
    let whole = s.commits(&[1, 2, 4, 6], d(b"x"));
    let group = BTreeSet::from([NodeId(4), NodeId(6)]);
    let favoured = whole.favouring(&group, members).expect("the group signed");
    let Evidence::Committed { signers, .. } = favoured.verify(&v).unwrap() else {
        panic!("a commit proof");
    };
    // Both colluders, and the lowest-id other signer to reach the quorum of 3.
    assert_eq!(signers, [1, 4, 6].map(NodeId).to_vec());
    // A group that signed more than a quorum keeps every one of its votes.
    let big = BTreeSet::from([2, 4, 6].map(NodeId));
    let Evidence::Committed { signers, .. } =
        whole.favouring(&big, members).unwrap().verify(&v).unwrap()
    else {
        panic!("a commit proof");
    };
    assert_eq!(signers, [2, 4, 6].map(NodeId).to_vec());
    // A proof that misses a seated colluder is withheld; non-members do not count.
    let without_6 = s.commits(&[1, 2, 4], d(b"x"));
    assert_eq!(without_6.favouring(&group, members), None);
    let outside = BTreeSet::from([NodeId(4), NodeId(9)]);
    assert!(without_6.favouring(&outside, members).is_some());
}

#[test]
fn conflicting_statements_prove_misbehaviour_and_nothing_else_does() {
    let s = setup();
    let v = s.verifier();
    let a = s.vote(4, Phase::Prepare, 1, 9, d(b"a"));
    let b = s.vote(4, Phase::Prepare, 1, 9, d(b"b"));
    let proof = MisbehaviourProof::from_messages(
        &PbftMessage::Vote(a.clone()),
        &PbftMessage::Vote(b.clone()),
    )
    .expect("a conflict");
    assert_eq!(
        proof.verify(&v).unwrap(),
        Evidence::Misbehaved { node: NodeId(4) }
    );
    // The same digest twice, another sequence number, another author: no proof.
    let same = MisbehaviourProof::Votes(a.clone(), a.clone());
    assert!(matches!(
        same.verify(&v),
        Err(EvidenceError::Inconsistent(_))
    ));
    let other_seq = MisbehaviourProof::Votes(a.clone(), s.vote(4, Phase::Prepare, 1, 10, d(b"b")));
    assert!(matches!(
        other_seq.verify(&v),
        Err(EvidenceError::Inconsistent(_))
    ));
    let two = MisbehaviourProof::Votes(a, s.vote(2, Phase::Prepare, 1, 9, d(b"b")));
    assert!(matches!(
        two.verify(&v),
        Err(EvidenceError::Inconsistent(_))
    ));
    let mut forged = b;
    forged.corrupt_signature();
    let proof = MisbehaviourProof::Votes(s.vote(4, Phase::Prepare, 1, 9, d(b"a")), forged);
    assert_eq!(proof.verify(&v), Err(EvidenceError::Signature));
}

#[test]
fn a_record_travels_as_a_batchs_first_transaction() {
    let s = setup();
    let record = EvidenceRecord {
        commits: vec![s.commits(&[1, 2, 4], d(b"x"))],
        misbehaviour: vec![MisbehaviourProof::Votes(
            s.vote(6, Phase::Commit, 0, 1, d(b"x")),
            s.vote(6, Phase::Commit, 0, 1, d(b"y")),
        )],
        next_committee: Some(d(b"next")),
    };
    let tx = record.to_transaction();
    assert!(tx.starts_with(EVIDENCE_TAG));
    assert_eq!(
        EvidenceRecord::from_transaction(&tx),
        Some(Ok(record.clone()))
    );
    let evidence = record.verify(&s.verifier()).unwrap();
    assert_eq!(evidence.len(), 2);
    assert_eq!(
        EvidenceRecord::from_transaction(b"a client's transaction"),
        None
    );
    let mut broken = tx.to_vec();
    broken.truncate(tx.len() - 3);
    assert!(matches!(
        EvidenceRecord::from_transaction(&broken),
        Some(Err(EvidenceError::Decode(_)))
    ));
}

proptest! {
    /// Whatever follows the tag, decoding returns (never panics), and what decodes
    /// re-encodes to a record that decodes the same.
    #[test]
    fn any_bytes_after_the_tag_decode_or_are_refused(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut tx = EVIDENCE_TAG.to_vec();
        tx.extend_from_slice(&body);
        if let Some(Ok(r)) = EvidenceRecord::from_transaction(&tx) {
            prop_assert_eq!(EvidenceRecord::from_transaction(&r.to_transaction()), Some(Ok(r)));
        }
    }
}
