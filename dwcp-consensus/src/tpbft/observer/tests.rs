//! An observer fed the members' certified batches holds their log exactly; forged
//! or foreign batches change nothing.

use super::*;
use crate::pbft::{Instance, Members};
use crate::tpbft::Verifier;

fn epoch(members: &[NodeId]) -> Instance {
    Instance {
        members: members.to_vec(),
        ..Instance::default()
    }
}
use bytes::Bytes;
use dwcp_core::{Input, NodeId};

fn members_log(repeat: bool) -> (Members, Vec<NodeId>) {
    let ids: Vec<NodeId> = [1, 2, 4, 6].map(NodeId).to_vec();
    let mut c = Members::new(
        7,
        Instance {
            members: ids.clone(),
            ..Instance::default()
        },
    );
    for m in &ids {
        c.step(*m, Input::Start);
    }
    let txs: Vec<Bytes> = (0..60).map(|k| Bytes::from(format!("tx {k}"))).collect();
    c.step(NodeId(1), Input::Submit(txs.clone()));
    c.deliver_all();
    if repeat {
        // The same transactions again: the members drop them as repeats.
        c.step(NodeId(1), Input::Submit(txs[..25].to_vec()));
        c.deliver_all();
    }
    (c, ids)
}

#[test]
fn an_observer_holds_the_members_log_digest_for_digest_in_any_arrival_order() {
    for repeat in [false, true] {
        let (c, ids) = members_log(repeat);
        let member_log = &c.committed[&NodeId(2)];
        assert!(!member_log.is_empty());
        let epoch = epoch(&ids);
        let verifier = Verifier::new(&c.committee, &epoch);
        let mut observer = Observer::new(
            0,
            Digest::ZERO,
            crate::pbft::PbftConfig::default().dedup_window,
        );
        let leader = &c.replicas[&NodeId(4)];
        let mut seqs: Vec<Seq> = member_log.iter().map(|b| b.seq).collect();
        seqs.reverse(); // the worst order: every batch waits for the first
        let mut applied = Vec::new();
        for s in seqs {
            let entry = leader.certified(s).expect("kept").clone();
            applied.extend(observer.accept(entry, &verifier).expect("valid"));
        }
        assert_eq!(&applied, member_log, "repeat {repeat}");
        assert_eq!(observer.last(), member_log.last().unwrap().seq);
    }
}

#[test]
fn forged_or_foreign_batches_are_refused_and_change_nothing() {
    let (c, ids) = members_log(false);
    let entry = c.replicas[&NodeId(2)].certified(1).expect("kept").clone();
    let e = epoch(&ids);
    let v = Verifier::new(&c.committee, &e);
    let mut o = Observer::new(0, Digest::ZERO, 64);
    // Too few commit votes.
    let mut short = entry.clone();
    short.commits.truncate(2);
    assert!(o.accept(short, &v).is_err());
    // A tampered batch.
    let mut tampered = entry.clone();
    let mut pp = tampered.pre_prepare.value().clone();
    pp.batch.push(Bytes::from_static(b"smuggled"));
    tampered.pre_prepare = dwcp_core::Signed::new(pp, NodeId(1), &c.keys[1].signing);
    assert!(o.accept(tampered, &v).is_err(), "digest mismatch");
    // Another epoch's committee: the same votes are not its members'.
    let other: Vec<NodeId> = [0, 3, 5, 6].map(NodeId).to_vec();
    let e2 = epoch(&other);
    let v2 = Verifier::new(&c.committee, &e2);
    assert!(o.accept(entry.clone(), &v2).is_err());
    assert_eq!((o.last(), o.chain()), (0, Digest::ZERO));
    // The genuine one applies.
    assert_eq!(o.accept(entry, &v).expect("valid").len(), 1);
}
