//! Tests of the primary group ([`PrimaryGroup`]): co-signing, takeover from a
//! silent designated proposer, and the fall-back to the members in turn.

use super::instance_tests::{ids, txs, Members};
use super::*;
use std::time::Duration;

const GROUP: [u16; 4] = [2, 5, 1, 4];

fn instance() -> Instance {
    Instance {
        members: ids(&[0, 1, 2, 3, 4, 5, 6]),
        group: Some(PrimaryGroup {
            members: ids(&GROUP),
            threshold: 3,
            takeover_after: Duration::from_millis(200),
        }),
        ..Instance::default()
    }
}

fn start(c: &mut Members) {
    for m in ids(&[0, 1, 2, 3, 4, 5, 6]) {
        c.step(m, Input::Start);
    }
}

/// Every member gets the transactions, as from clients that send to all.
fn submit(c: &mut Members, count: u32) {
    for m in ids(&[0, 1, 2, 3, 4, 5, 6]) {
        c.step(m, Input::Submit(txs(count)));
    }
    c.deliver_all();
}

/// Runs every member's tick for `ms` milliseconds of simulated time.
fn run_ticks(c: &mut Members, ms: u64) {
    for _ in 0..ms / 50 {
        c.clock = c.clock.after(Duration::from_millis(50));
        for m in ids(&[0, 1, 2, 3, 4, 5, 6]) {
            c.step(m, Input::Timeout(TICK));
        }
        c.deliver_all();
    }
}

fn signed_pre_prepare(c: &Members, by: u16, seq: Seq, batch: Vec<Bytes>) -> Signed<PrePrepare> {
    Signed::new(
        PrePrepare {
            view: 0,
            seq,
            digest: crate::pbft::batch_digest(&batch),
            batch,
        },
        NodeId(by),
        &c.keys[usize::from(by)].signing,
    )
}

fn cosign(c: &Members, by: u16, pp: &Signed<PrePrepare>) -> Signed<CoSignature> {
    let v = pp.value();
    Signed::new(
        CoSignature {
            view: v.view,
            seq: v.seq,
            digest: v.digest,
        },
        NodeId(by),
        &c.keys[usize::from(by)].signing,
    )
}

#[test]
fn the_group_leads_its_views_then_the_members_in_turn() {
    let i = instance();
    let leaders: Vec<u16> = (0..7).map(|v| i.leader(v).0).collect();
    assert_eq!(leaders, vec![2, 5, 1, 4, 0, 1, 2]);
    assert!(
        i.may_propose(0, NodeId(4)),
        "any group member in a group view"
    );
    assert!(!i.may_propose(0, NodeId(3)));
    assert!(i.may_propose(4, NodeId(0)) && !i.may_propose(4, NodeId(2)));
    let plain = Instance {
        members: ids(&[0, 1, 2, 3]),
        ..Instance::default()
    };
    assert_eq!(plain.leader(5), NodeId(1));
    assert!(plain.group_view(0).is_none());
}

#[test]
fn a_co_signed_proposal_commits_everywhere() {
    let mut c = Members::new(7, instance());
    start(&mut c);
    submit(&mut c, 25);
    for m in ids(&[0, 1, 2, 3, 4, 5, 6]) {
        assert_eq!(c.seqs(m), vec![1, 2, 3], "{m}");
    }
    // Each batch reached backups with two co-signatures besides the proposer's.
    let backup = &c.replicas[&NodeId(3)];
    for seq in 1..=3 {
        let slot = &backup.slots[&seq];
        assert_eq!(
            slot.pre_prepare.as_ref().map(|p| p.author()),
            Some(NodeId(2))
        );
        assert_eq!(slot.cosigns.len(), 2, "seq {seq}");
    }
}

#[test]
fn backups_refuse_a_proposal_short_of_the_threshold() {
    let mut c = Members::new(7, instance());
    start(&mut c);
    let pp = signed_pre_prepare(&c, 2, 1, txs(3));
    let offer = |c: &mut Members, cosigns: Vec<Signed<CoSignature>>| {
        c.step(
            NodeId(3),
            Input::Message {
                from: NodeId(2),
                msg: PbftMessage::CoSigned {
                    pre_prepare: pp.clone(),
                    cosigns,
                },
            },
        );
        c.replicas[&NodeId(3)]
            .slots
            .get(&1)
            .is_some_and(|s| s.pre_prepare.is_some())
    };
    let [by5, by3, by1] = [5, 3, 1].map(|by| cosign(&c, by, &pp));
    let mut forged = by1.clone();
    forged.corrupt_signature();
    assert!(!offer(&mut c, vec![]), "the designated proposer alone");
    assert!(!offer(&mut c, vec![by5.clone()]), "two of four");
    assert!(
        !offer(&mut c, vec![by5.clone(), by3]),
        "a co-signature from outside the group"
    );
    assert!(
        !offer(&mut c, vec![by5.clone(), by5.clone()]),
        "one member twice"
    );
    assert!(!offer(&mut c, vec![by5.clone(), forged]), "a bad signature");
    assert!(offer(&mut c, vec![by5, by1]));
}

#[test]
fn a_member_co_signs_one_digest_per_slot_and_never_for_a_non_member() {
    let mut c = Members::new(7, instance());
    start(&mut c);
    let first = signed_pre_prepare(&c, 2, 1, txs(3));
    let second = signed_pre_prepare(&c, 2, 1, txs(4));
    for pp in [first, second.clone()] {
        c.step(
            NodeId(5),
            Input::Message {
                from: NodeId(2),
                msg: PbftMessage::CoSignRequest(pp),
            },
        );
    }
    // A backup outside the group asks too.
    let stranger = signed_pre_prepare(&c, 3, 2, txs(3));
    c.step(
        NodeId(5),
        Input::Message {
            from: NodeId(3),
            msg: PbftMessage::CoSignRequest(stranger),
        },
    );
    let given: Vec<(Seq, Digest)> = c.replicas[&NodeId(5)]
        .my_cosigns
        .values()
        .map(|s| (s.value().seq, s.value().digest))
        .collect();
    assert_eq!(given.len(), 1);
    assert_ne!(given[0].1, second.value().digest);
}

#[test]
fn a_silent_designated_proposer_is_taken_over_without_a_view_change() {
    let mut c = Members::new(7, instance());
    c.silent = ids(&[2]).into_iter().collect();
    start(&mut c);
    submit(&mut c, 25);
    assert!(c.seqs(NodeId(0)).is_empty(), "node 2 proposes in view 0");
    run_ticks(&mut c, 600);
    for m in ids(&[0, 1, 3, 4, 5, 6]) {
        let txs: usize = c.committed[&m].iter().map(|b| b.transactions.len()).sum();
        assert_eq!(txs, 25, "{m}");
        assert_eq!(c.replicas[&m].view, 0, "{m} stays in view 0");
    }
    // Node 5 follows node 2 in the group, so it took over first.
    assert_eq!(c.replicas[&NodeId(5)].takeovers, 1);
    assert_eq!(c.replicas[&NodeId(1)].takeovers, 0);
}

#[test]
fn a_group_without_a_threshold_falls_back_to_the_members_in_turn() {
    let mut c = Members::new(7, instance());
    // Two of four silent: no proposal gathers three signatures.
    c.silent = ids(&[2, 5]).into_iter().collect();
    start(&mut c);
    submit(&mut c, 25);
    run_ticks(&mut c, 30_000);
    for m in ids(&[0, 1, 3, 4, 6]) {
        let txs: usize = c.committed[&m].iter().map(|b| b.transactions.len()).sum();
        assert_eq!(txs, 25, "{m}");
        assert!(c.replicas[&m].view >= 4, "{m} left the group's views");
    }
    let backup = &c.replicas[&NodeId(3)];
    let pp = backup.slots[&1].pre_prepare.as_ref().expect("kept");
    assert!(backup.group_view(pp.value().view).is_none());
    assert!(backup.slots[&1].cosigns.is_empty());
}
