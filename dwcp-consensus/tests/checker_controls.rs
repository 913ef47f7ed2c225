//! Positive controls: the simulator's checker must report each kind of violation
//! when an engine commits one. Each test runs honest PBFT replicas, but node 1's
//! engine is wrapped in a [`Mutant`] that breaks one rule in its output or signs
//! a contradiction with its own key; the test passes only if the checker names
//! exactly that rule. An invariant no test has ever seen fail proves nothing.

use bytes::Bytes;
use dwcp_consensus::pbft::{Pbft, PbftMessage, Phase, Vote};
use dwcp_consensus::registry::{PbftProtocol, Protocol};
use dwcp_consensus::sim::{scenario, SimReport, Simulation};
use dwcp_core::{
    Digest, Effect, Effects, Engine, EngineStatus, Input, NodeId, NodeKeys, Signed, Time,
};

/// How node 1 breaks the rules.
#[derive(Clone, Copy, Debug)]
enum Mutation {
    /// Commits a transaction nobody submitted (validity).
    Invent,
    /// Commits again, at the next batch, a transaction it committed before (no duplicates).
    Repeat,
    /// Skips a sequence number (total order).
    Skip,
    /// Reports another digest at one sequence number (agreement).
    Diverge,
    /// Signs a second prepare for a slot it already voted on (no double-sign).
    DoubleSign,
    /// Never outputs one submitted transaction (liveness).
    Withhold,
}

/// An engine that behaves like `inner` except for one mutation of its effects.
struct Mutant {
    inner: Pbft,
    keys: NodeKeys,
    mutation: Option<Mutation>,
    /// A transaction seen in an earlier commit (for `Repeat`).
    earlier: Option<Bytes>,
    done: bool,
}

impl Engine for Mutant {
    type Message = PbftMessage;

    fn handle(&mut self, now: Time, input: Input<PbftMessage>, fx: &mut Effects<PbftMessage>) {
        let mut inner = Effects::new();
        self.inner.handle(now, input, &mut inner);
        for effect in inner.drain() {
            let effect = match (self.mutation, effect) {
                (Some(m), Effect::Commit(mut c)) => {
                    match m {
                        Mutation::Invent if c.seq == 3 => {
                            c.transactions.push(Bytes::from_static(b"never submitted"))
                        }
                        Mutation::Repeat if c.seq >= 3 && !self.done => {
                            if let Some(tx) = self.earlier.clone() {
                                c.transactions.push(tx);
                                self.done = true;
                            }
                        }
                        Mutation::Skip if c.seq >= 5 => c.seq += 1,
                        Mutation::Diverge if c.seq == 4 => c.digest = Digest::of(b"elsewhere"),
                        Mutation::Withhold if !self.done && !c.transactions.is_empty() => {
                            c.transactions.remove(0);
                            self.done = true;
                        }
                        _ => {}
                    }
                    if self.earlier.is_none() {
                        self.earlier = c.transactions.first().cloned();
                    }
                    Effect::Commit(c)
                }
                (
                    Some(Mutation::DoubleSign),
                    Effect::Broadcast {
                        msg: PbftMessage::Vote(v),
                    },
                ) if v.value().phase == Phase::Prepare && !self.done => {
                    self.done = true;
                    let other = Vote {
                        digest: Digest::of(b"another batch"),
                        ..*v.value()
                    };
                    let twin = Signed::new(other, self.keys.id, &self.keys.signing);
                    fx.broadcast(PbftMessage::Vote(twin));
                    Effect::Broadcast {
                        msg: PbftMessage::Vote(v),
                    }
                }
                (_, e) => e,
            };
            fx.push(effect);
        }
    }

    fn status(&self) -> EngineStatus {
        self.inner.status()
    }
}

fn run(mutation: Option<Mutation>) -> SimReport {
    let cfg = scenario(4, 0, "honest", 3).expect("scenario");
    let pcfg = PbftProtocol::sim_config();
    Simulation::new(cfg, move |keys, committee, recovered| {
        let mutation = mutation.filter(|_| keys.id == NodeId(1));
        Mutant {
            inner: Pbft::new(keys.clone(), committee, pcfg.clone(), recovered).expect("replica"),
            keys,
            mutation,
            earlier: None,
            done: false,
        }
    })
    .run()
}

fn assert_reports(mutation: Mutation, rule: &str) {
    let r = run(Some(mutation));
    assert!(
        r.violations.iter().any(|v| v.starts_with(rule)),
        "{mutation:?} should be reported as {rule:?}: {:?}",
        r.violations
    );
}

#[test]
fn the_unmutated_run_is_clean() {
    let r = run(None);
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert!(r.live);
}

#[test]
fn validity_catches_an_invented_transaction() {
    assert_reports(Mutation::Invent, "validity");
}

#[test]
fn no_duplicates_catches_a_transaction_committed_twice() {
    assert_reports(Mutation::Repeat, "no duplicates");
}

#[test]
fn total_order_catches_a_gap() {
    assert_reports(Mutation::Skip, "total order");
}

#[test]
fn agreement_catches_a_different_batch_at_one_sequence_number() {
    assert_reports(Mutation::Diverge, "agreement");
}

#[test]
fn double_signing_is_caught() {
    let r = run(Some(Mutation::DoubleSign));
    assert!(
        r.violations
            .iter()
            .any(|v| v.starts_with("n1 contradicted itself") && v.contains("prepare")),
        "{:?}",
        r.violations
    );
}

#[test]
fn liveness_catches_a_withheld_transaction() {
    let r = run(Some(Mutation::Withhold));
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert!(!r.live, "one honest node never committed one transaction");
}
