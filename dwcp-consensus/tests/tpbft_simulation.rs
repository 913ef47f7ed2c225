//! T-PBFT in the simulator: committees by epoch, observers, and faulty nodes.

use dwcp_consensus::pbft::{PbftMessage, Phase, Vote};
use dwcp_consensus::registry::{check_seeds, simulate, simulation, TpbftProtocol};
use dwcp_consensus::sim::{scenario, Behaviour, Endpoint, Fate, ScriptCtx};
use dwcp_consensus::tpbft::TpbftMessage;
use dwcp_core::{Digest, EngineStatus, NodeId, Signed};
use std::cell::Cell;
use std::rc::Rc;

fn counter(s: &EngineStatus, name: &str) -> Option<u64> {
    s.counters.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
}

#[test]
fn honest_cluster_commits_everywhere_across_epochs() {
    for n in [4, 7, 16] {
        let r = simulate::<TpbftProtocol>(scenario(n, 0, "honest", 1).unwrap());
        assert!(r.violations.is_empty(), "n={n}: {:?}", r.violations);
        assert!(
            r.live,
            "n={n}: {} of {} committed: {:?}",
            r.transactions_committed, r.transactions_submitted, r.node_status
        );
        assert!(
            r.decisions > 48,
            "n={n}: crossed an epoch ({} decisions)",
            r.decisions
        );
        let epochs: Vec<u64> = r
            .node_status
            .iter()
            .flatten()
            .map(|s| {
                s.counters
                    .iter()
                    .find(|(k, _)| k == "epoch")
                    .map_or(0, |(_, v)| *v)
            })
            .collect();
        assert!(
            epochs.iter().all(|e| *e >= 1),
            "n={n}: every node changed epoch: {epochs:?}"
        );
        // Every node, member or observer, derived the same committee and the same
        // trust vector, bit for bit.
        let views: Vec<_> = r
            .node_status
            .iter()
            .flatten()
            .map(|s| {
                let c = s.committee.as_ref().expect("a committee");
                (c.epoch, c.members.clone(), c.trust_digest)
            })
            .collect();
        assert!(views.windows(2).all(|w| w[0] == w[1]), "n={n}: {views:?}");
    }
}

/// Three of sixteen nodes faulty in each way, wherever the seed puts them (in the
/// committee of ten, or outside it): no safety violation, and every transaction
/// committed by every honest node, members and observers.
#[test]
fn silent_and_equivocating_nodes() {
    for b in [
        "silent",
        "equivocate",
        "garbage",
        "badsig",
        "replay",
        "slacker",
        "turncoat",
        "collude",
    ] {
        check_seeds::<TpbftProtocol>(16, 3, b, 3).unwrap_or_else(|e| panic!("{b}: {e}"));
    }
}

/// Every node on the committee, one of them equivocating: view changes happen in
/// every epoch. Each epoch's instance takes its own views, so no honest node signs
/// two view changes for one view across epochs (it did when every epoch started
/// at view 0).
#[test]
fn view_changes_of_different_epochs_never_collide() {
    check_seeds::<TpbftProtocol>(4, 1, "equivocate", 6).unwrap_or_else(|e| panic!("{e}"));
    check_seeds::<TpbftProtocol>(7, 2, "equivocate", 3).unwrap_or_else(|e| panic!("{e}"));
}

/// Partitions leave some members behind in an epoch the others have left; they
/// fetch what they missed as certified batches, which PBFT's catch-up checks, and
/// cross into the next epoch. Seeds 1 and 12 stalled for good before.
#[test]
fn members_left_behind_in_an_epoch_catch_up() {
    for seed in [1u64, 12] {
        let r = simulate::<TpbftProtocol>(scenario(16, 3, "partition", seed).unwrap());
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        assert!(r.live, "seed {seed}: {:?}", r.node_status);
    }
}

/// Equivocating members in the primary group force view changes while batches wait
/// to execute; a member's certificate must be the one that committed the batch,
/// not the batch's re-issue in the next view (seed 48 left two observers with
/// certificates short of a quorum, stuck at sequence number 1).
#[test]
fn certificates_sent_to_observers_are_the_ones_that_committed() {
    let r = simulate::<TpbftProtocol>(scenario(16, 3, "equivocate", 48).unwrap());
    assert!(r.violations.is_empty(), "{:?}", r.violations);
    assert!(r.live, "{:?}", r.node_status);
}

/// Member 3 of the genesis committee signs a second prepare for a slot it already
/// prepared and sends it to the other members. They hold both: a proof of
/// equivocation goes into a proposal's evidence, commits, and node 3 sits on no
/// later committee, by every node's reckoning (its own included). A positive
/// control for the attack: without the second prepare node 3 keeps its seat.
#[test]
fn a_member_that_equivocates_leaves_the_committee_at_the_next_epoch() {
    for equivocate in [true, false] {
        let mut cfg = scenario(16, 0, "honest", 7).unwrap();
        cfg.behaviours[3] = Behaviour::Scripted;
        let sent = Rc::new(Cell::new(false));
        let s = sent.clone();
        let script = move |ctx: &mut ScriptCtx<'_, TpbftMessage>,
                           from: Endpoint,
                           _to: Endpoint,
                           msg: &TpbftMessage| {
            if let (
                true,
                false,
                TpbftMessage::Pbft {
                    epoch,
                    msg: PbftMessage::Vote(v),
                },
            ) = (equivocate && from.node == NodeId(3), s.get(), msg)
            {
                if v.value().phase == Phase::Prepare {
                    s.set(true);
                    let keys = ctx.keys(NodeId(3)).expect("scripted").clone();
                    let other = Signed::new(
                        Vote {
                            digest: Digest::of(b"another batch"),
                            ..*v.value()
                        },
                        NodeId(3),
                        &keys.signing,
                    );
                    for m in (0..10).filter(|m| *m != 3).map(NodeId) {
                        let msg = PbftMessage::Vote(other.clone());
                        ctx.send(NodeId(3), m, TpbftMessage::Pbft { epoch: *epoch, msg });
                    }
                }
            }
            Fate::Deliver
        };
        let r = simulation::<TpbftProtocol>(cfg).with_script(script).run();
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        assert!(r.live, "{:?}", r.node_status);
        assert_eq!(sent.get(), equivocate);
        for (i, st) in r.node_status.iter().enumerate() {
            let st = st.as_ref().expect("status");
            assert!(counter(st, "epoch") >= Some(1), "node {i} reached epoch 1");
        }
        let seated = counter(r.node_status[3].as_ref().unwrap(), "member");
        assert_eq!(
            seated,
            Some(u64::from(!equivocate)),
            "equivocate: {equivocate}"
        );
    }
}
