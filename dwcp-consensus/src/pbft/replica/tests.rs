//! Unit tests of the replica: a small cluster delivering messages in order, driving
//! replicas through the [`Engine`] interface.

use super::*;
use dwcp_core::crypto::SignatureScheme;
use dwcp_core::Effect;
use std::time::Duration;

/// Four replicas, messages delivered in order, each delivery 1 ms after the last.
struct Cluster {
    replicas: Vec<Pbft>,
    wire: VecDeque<(NodeId, NodeId, PbftMessage)>,
    clock: Time,
    committed: Vec<u64>,
}

impl Cluster {
    fn new(n: usize) -> Cluster {
        let (committee, keys) = Committee::deterministic(n, SignatureScheme::Ed25519, 5);
        let cfg = PbftConfig {
            batch_size: 10,
            ..PbftConfig::default()
        };
        let replicas = keys
            .into_iter()
            .map(|k| Pbft::new(k, committee.clone(), cfg.clone(), Recovered::default()))
            .collect::<Result<Vec<_>, _>>()
            .expect("replicas");
        Cluster {
            replicas,
            wire: VecDeque::new(),
            clock: Time::ZERO,
            committed: vec![0; n],
        }
    }

    fn step(&mut self, i: usize, input: Input<PbftMessage>) {
        let mut fx = Effects::new();
        self.replicas[i].handle(self.clock, input, &mut fx);
        let me = NodeId(i as u16);
        for e in fx.drain() {
            match e {
                Effect::Send { to, msg } => self.wire.push_back((me, to, msg)),
                Effect::Broadcast { msg } => {
                    for to in (0..self.replicas.len()).map(|j| NodeId(j as u16)) {
                        if to != me {
                            self.wire.push_back((me, to, msg.clone()));
                        }
                    }
                }
                Effect::Commit(c) => self.committed[i] += c.transactions.len() as u64,
                _ => {}
            }
        }
    }

    fn deliver_all(&mut self) {
        while let Some((from, to, msg)) = self.wire.pop_front() {
            self.clock = self.clock.after(Duration::from_millis(1));
            self.step(to.index(), Input::Message { from, msg });
        }
    }

    fn drain(&mut self, i: usize) -> Vec<ProposalCommitted> {
        let mut out = Vec::new();
        self.replicas[i].drain_proposal_commits(&mut out);
        out
    }
}

fn txs(from: u32, count: u32) -> Vec<Bytes> {
    (from..from + count)
        .map(|k| Bytes::from(format!("tx {k}")))
        .collect()
}

#[test]
fn the_primary_reports_each_executed_proposal_once_with_commit_after_proposal() {
    let mut c = Cluster::new(4);
    for i in 0..4 {
        c.step(i, Input::Start);
    }
    // Clients send to the primary only; backups would relay anyway.
    c.step(0, Input::Submit(txs(0, 35)));
    c.deliver_all();
    c.clock = c.clock.after(Duration::from_millis(10));
    c.step(0, Input::Submit(txs(35, 5)));
    c.deliver_all();
    assert_eq!(c.committed, vec![40; 4], "everything committed everywhere");

    let samples = c.drain(0);
    assert!(
        samples.len() >= 4,
        "40 transactions in batches of 10: {samples:?}"
    );
    assert_eq!(samples.iter().map(|s| s.transactions).sum::<u64>(), 40);
    for s in &samples {
        assert!(
            s.committed.0 > s.proposed.0,
            "a commit needs messages after the proposal: {s:?}"
        );
    }
    assert!(c.drain(0).is_empty(), "drained samples are gone");
    for i in 1..4 {
        assert!(c.drain(i).is_empty(), "backup {i} proposed nothing");
    }
    assert!(
        c.replicas[0].own_proposals.is_empty(),
        "executed proposals are forgotten"
    );
}

/// Refuses transactions that start with "bad".
struct NoBad;
impl dwcp_core::Validator for NoBad {
    fn check_tx(&self, tx: &[u8]) -> Result<(), dwcp_core::Refused> {
        if tx.starts_with(b"bad") {
            Err(dwcp_core::Refused("bad".into()))
        } else {
            Ok(())
        }
    }
}

#[test]
fn backups_do_not_prepare_what_their_application_refuses() {
    let mut c = Cluster::new(4);
    // The primary runs without the application's rules (or is Byzantine).
    let (committee, keys) = Committee::deterministic(4, SignatureScheme::Ed25519, 5);
    c.replicas = keys
        .into_iter()
        .map(|k| {
            let backup = k.id != NodeId(0);
            let r = Pbft::new(
                k,
                committee.clone(),
                PbftConfig::default(),
                Recovered::default(),
            )
            .expect("replica");
            if backup {
                r.with_validator(std::sync::Arc::new(NoBad))
            } else {
                r
            }
        })
        .collect();
    for i in 0..4 {
        c.step(i, Input::Start);
    }
    c.step(0, Input::Submit(vec![Bytes::from_static(b"bad tx")]));
    c.deliver_all();
    assert_eq!(
        c.committed,
        vec![0; 4],
        "refused by every backup: not prepared"
    );
    assert!(c.replicas[1..]
        .iter()
        .all(|r| r.status().counters[0] == ("invalid_proposals".into(), 1)));

    // A backup drops a refused transaction on arrival and counts it.
    c.step(1, Input::Submit(vec![Bytes::from_static(b"bad again")]));
    assert_eq!(c.replicas[1].pending.len(), 0);
    assert_eq!(
        c.replicas[1].status().counters[1],
        ("refused_transactions".into(), 1)
    );
}

#[test]
fn backups_refuse_a_batch_above_the_bounds() {
    let mut c = Cluster::new(4);
    for i in 1..4 {
        c.replicas[i].cfg.max_batch_bytes = 8;
    }
    for i in 0..4 {
        c.step(i, Input::Start);
    }
    c.step(0, Input::Submit(vec![Bytes::from_static(b"twelve bytes")]));
    c.deliver_all();
    assert_eq!(
        c.committed,
        vec![0; 4],
        "too large for the backups: not prepared"
    );
    assert!(c.replicas[1..]
        .iter()
        .all(|r| r.status().counters[0] == ("invalid_proposals".into(), 1)));
}

#[test]
fn undrained_samples_are_bounded() {
    let mut c = Cluster::new(1);
    c.step(0, Input::Start);
    let batches = MAX_UNDRAINED_SAMPLES as u32 + 10;
    for b in 0..batches {
        c.clock = c.clock.after(Duration::from_millis(1));
        c.step(0, Input::Submit(txs(b * 10, 10)));
    }
    assert_eq!(c.committed[0], u64::from(batches) * 10);
    let samples = c.drain(0);
    assert_eq!(
        samples.len(),
        MAX_UNDRAINED_SAMPLES,
        "the oldest were dropped"
    );
    assert!(samples.iter().all(|s| s.committed >= s.proposed));
}
