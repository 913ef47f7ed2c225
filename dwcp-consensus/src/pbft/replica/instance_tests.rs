//! Tests of PBFT instances: a subset of the committee, a base position and a last
//! sequence number ([`Instance`]), as T-PBFT runs one per epoch.

use super::*;
use crate::pbft::Phase;
use dwcp_core::crypto::SignatureScheme;
use dwcp_core::{Committed, Effect};
use std::collections::BTreeSet;

/// The members of one instance, with in-order delivery among them; messages from
/// `silent` members are dropped. Also the harness of T-PBFT's observer tests.
pub(crate) struct Members {
    pub(crate) replicas: BTreeMap<NodeId, Pbft>,
    pub(crate) committee: Committee,
    pub(crate) keys: Vec<NodeKeys>,
    wire: VecDeque<(NodeId, NodeId, PbftMessage)>,
    pub(crate) clock: Time,
    pub(crate) committed: BTreeMap<NodeId, Vec<Committed>>,
    pub(crate) silent: BTreeSet<NodeId>,
}

impl Members {
    pub(crate) fn new(n: usize, instance: Instance) -> Members {
        let (committee, keys) = Committee::deterministic(n, SignatureScheme::Ed25519, 11);
        let cfg = PbftConfig {
            batch_size: 10,
            ..PbftConfig::default()
        };
        let replicas = instance
            .members
            .iter()
            .map(|m| {
                let r = Pbft::with_instance(
                    keys[m.index()].clone(),
                    committee.clone(),
                    cfg.clone(),
                    instance.clone(),
                    Recovered::default(),
                )
                .expect("a member");
                (*m, r)
            })
            .collect();
        Members {
            replicas,
            committee,
            keys,
            wire: VecDeque::new(),
            clock: Time::ZERO,
            committed: BTreeMap::new(),
            silent: BTreeSet::new(),
        }
    }

    pub(crate) fn step(&mut self, at: NodeId, input: Input<PbftMessage>) {
        let mut fx = Effects::new();
        let Some(r) = self.replicas.get_mut(&at) else {
            return;
        };
        r.handle(self.clock, input, &mut fx);
        let members: Vec<NodeId> = self.replicas.keys().copied().collect();
        for e in fx.drain() {
            match e {
                Effect::Send { to, msg } => self.wire.push_back((at, to, msg)),
                // As T-PBFT will: a broadcast goes to the instance's members only.
                Effect::Broadcast { msg } => {
                    for to in members.iter().filter(|m| **m != at) {
                        self.wire.push_back((at, *to, msg.clone()));
                    }
                }
                Effect::Commit(c) => self.committed.entry(at).or_default().push(c),
                _ => {}
            }
        }
    }

    pub(crate) fn deliver_all(&mut self) {
        while let Some((from, to, msg)) = self.wire.pop_front() {
            if self.silent.contains(&from) {
                continue;
            }
            self.clock = self.clock.after(std::time::Duration::from_millis(1));
            self.step(to, Input::Message { from, msg });
        }
    }

    pub(crate) fn seqs(&self, m: NodeId) -> Vec<Seq> {
        self.committed
            .get(&m)
            .map(|cs| cs.iter().map(|c| c.seq).collect())
            .unwrap_or_default()
    }
}

pub(crate) fn ids(v: &[u16]) -> Vec<NodeId> {
    v.iter().map(|i| NodeId(*i)).collect()
}

pub(crate) fn txs(count: u32) -> Vec<Bytes> {
    (0..count).map(|k| Bytes::from(format!("tx {k}"))).collect()
}

#[test]
fn an_instance_orders_among_its_members_from_its_base_to_its_last() {
    let base_chain = Digest::of(b"the log up to 16");
    let instance = Instance {
        members: ids(&[1, 2, 4, 6]),
        base: (16, base_chain),
        last: Some(20),
        first_view: 0,
        group: None,
    };
    let mut c = Members::new(7, instance);
    for m in ids(&[1, 2, 4, 6]) {
        c.step(m, Input::Start);
    }
    // Node 1 leads view 0 (the first member); 100 transactions make 10 batches,
    // of which the instance orders 4.
    c.step(NodeId(1), Input::Submit(txs(100)));
    c.deliver_all();
    for m in ids(&[1, 2, 4, 6]) {
        assert_eq!(c.seqs(m), vec![17, 18, 19, 20], "{m}");
    }
    let first = &c.committed[&NodeId(2)][0];
    assert_eq!(
        first.digest,
        crate::pbft::chain_next(
            &base_chain,
            17,
            &crate::pbft::batch_digest(&first.transactions)
        ),
        "the chain continues from the base"
    );
    // Nothing past the last sequence number is proposed or prepared.
    let r = &c.replicas[&NodeId(1)];
    assert!(r.slots.keys().all(|s| *s <= 20));
    assert!(r.my_pre_prepares.keys().all(|s| *s <= 20));
}

#[test]
fn an_instance_refuses_a_base_off_the_checkpoint_grid_and_strangers() {
    let (committee, keys) = Committee::deterministic(7, SignatureScheme::Ed25519, 11);
    let make = |id: usize, members: &[u16], base: Seq| {
        Pbft::with_instance(
            keys[id].clone(),
            committee.clone(),
            PbftConfig::default(),
            Instance {
                members: ids(members),
                base: (base, Digest::ZERO),
                last: None,
                first_view: 0,
                group: None,
            },
            Recovered::default(),
        )
    };
    assert!(make(1, &[1, 2, 4, 6], 16).is_ok());
    assert!(matches!(
        make(1, &[1, 2, 4, 6], 17),
        Err(PbftError::BadInstance(_))
    ));
    assert!(matches!(
        make(3, &[1, 2, 4, 6], 16),
        Err(PbftError::NotAMember(_))
    ));
    assert!(matches!(
        make(1, &[1, 2, 9], 16),
        Err(PbftError::BadInstance(_))
    ));
}

/// Two members vote for the primary's proposal, short of a quorum of three. Validly
/// signed votes from nodes 4 and 5, in the committee but not in the instance and
/// relayed by a member, must not make up the difference. The control: with 4 and 5
/// as (silent) members, the same relayed votes commit.
#[test]
fn votes_from_outside_the_instance_do_not_count() {
    for (members, silent, commits) in [
        (vec![0, 1, 2, 3], vec![2, 3], false),
        (vec![0, 1, 4, 5], vec![4, 5], true),
    ] {
        let instance = Instance {
            members: ids(&members),
            ..Instance::default()
        };
        let mut c = Members::new(7, instance);
        c.silent = ids(&silent).into_iter().collect();
        c.step(NodeId(0), Input::Start);
        c.step(NodeId(1), Input::Start);
        c.step(NodeId(0), Input::Submit(txs(10)));
        c.deliver_all();
        assert!(
            c.seqs(NodeId(1)).is_empty(),
            "two member votes commit nothing"
        );
        let pp = c.replicas[&NodeId(0)].slots[&1]
            .pre_prepare
            .clone()
            .expect("proposed");
        let digest = pp.value().digest;
        for phase in [Phase::Prepare, Phase::Commit] {
            for author in [4u16, 5] {
                let vote = Signed::new(
                    Vote {
                        phase,
                        view: 0,
                        seq: 1,
                        digest,
                    },
                    NodeId(author),
                    &c.keys[usize::from(author)].signing,
                );
                // Relayed by the other member, so the vote's author is what is checked.
                c.wire
                    .push_back((NodeId(1), NodeId(0), PbftMessage::Vote(vote.clone())));
                c.wire
                    .push_back((NodeId(0), NodeId(1), PbftMessage::Vote(vote)));
            }
            c.deliver_all();
        }
        assert_eq!(
            !c.seqs(NodeId(1)).is_empty(),
            commits,
            "members {members:?}"
        );
    }
}

/// One store holds every instance a node ran: a restarted instance takes its own
/// view and slots, never an earlier instance's.
#[test]
fn an_instance_restores_its_own_records_only() {
    use crate::pbft::wal::{WalEntry, TAG_VIEW};
    let (committee, keys) = Committee::deterministic(7, SignatureScheme::Ed25519, 11);
    let view_record = |slot: u64, view: View| {
        (
            WalKey {
                slot,
                tag: TAG_VIEW,
            },
            Bytes::from(encode(&WalEntry::View {
                view,
                view_change: None,
            })),
        )
    };
    let instance = |base: Seq| Instance {
        members: ids(&[1, 2, 4, 6]),
        base: (base, Digest::ZERO),
        last: Some(base + 16),
        first_view: 0,
        group: None,
    };
    let earlier = view_record(u64::MAX, 3); // the instance based at 0
    let own = view_record(u64::MAX - 16, 2);
    let restart = |wal: Vec<(WalKey, Bytes)>| {
        Pbft::with_instance(
            keys[2].clone(),
            committee.clone(),
            PbftConfig::default(),
            instance(16),
            Recovered {
                wal,
                ..Recovered::default()
            },
        )
        .expect("restores")
    };
    assert_eq!(restart(vec![earlier.clone()]).view, 0);
    assert_eq!(restart(vec![earlier, own]).view, 2);
}

/// A record naming its sequence number, which backups insist on.
struct SeqRecord;

impl ProposalRecord for SeqRecord {
    fn make(&self, seq: Seq) -> Option<Bytes> {
        Some(Bytes::from(format!("record for {seq}")))
    }
    fn check(&self, seq: Seq, batch: &[Bytes]) -> bool {
        batch.first() == self.make(seq).as_ref()
    }
}

fn with_record(c: &mut Members, who: &[u16]) {
    for id in ids(who) {
        let r = c.replicas.remove(&id).expect("member");
        c.replicas
            .insert(id, r.with_proposal_record(std::sync::Arc::new(SeqRecord)));
    }
}

/// A primary's record goes first in every batch it proposes, within the batch
/// bounds, and commits with it.
#[test]
fn a_proposal_record_goes_first_in_every_batch() {
    let mut c = Members::new(
        7,
        Instance {
            members: ids(&[1, 2, 4, 6]),
            ..Instance::default()
        },
    );
    with_record(&mut c, &[1, 2, 4, 6]);
    for m in ids(&[1, 2, 4, 6]) {
        c.step(m, Input::Start);
    }
    c.step(NodeId(1), Input::Submit(txs(45)));
    c.deliver_all();
    let log = &c.committed[&NodeId(4)];
    assert_eq!(log.len(), 5, "9 transactions and the record per batch");
    for b in log {
        assert_eq!(
            b.transactions[0],
            Bytes::from(format!("record for {}", b.seq))
        );
        assert!(b.transactions.len() <= 10);
    }
    let clients: usize = log.iter().map(|b| b.transactions.len() - 1).sum();
    assert_eq!(clients, 45);
}

/// Backups that check the record do not prepare a batch without it: a primary
/// that leaves it out commits nothing (control: with the record, it commits).
#[test]
fn backups_refuse_a_batch_without_the_record() {
    for primary_makes_it in [false, true] {
        let mut c = Members::new(
            7,
            Instance {
                members: ids(&[1, 2, 4, 6]),
                ..Instance::default()
            },
        );
        with_record(&mut c, &[2, 4, 6]);
        if primary_makes_it {
            with_record(&mut c, &[1]);
        }
        for m in ids(&[1, 2, 4, 6]) {
            c.step(m, Input::Start);
        }
        c.step(NodeId(1), Input::Submit(txs(9)));
        c.deliver_all();
        assert_eq!(
            c.seqs(NodeId(2)).is_empty(),
            !primary_makes_it,
            "primary makes the record: {primary_makes_it}"
        );
    }
}
