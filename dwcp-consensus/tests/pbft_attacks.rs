//! PBFT against scripted Byzantine actors: validly signed messages delivered to
//! chosen replicas at chosen moments. Each test is an attack that forked an earlier
//! version of the replica; it fails if the attack works again, and asserts that the
//! attack reached the moment it aims at, so that a changed schedule cannot make it
//! pass vacuously.

use dwcp_consensus::pbft::{PbftMessage, Phase};
use dwcp_consensus::registry::pbft_actors::{
    back_new_view, bare_view_change, only, send_to_all, CommitCertificates,
};
use dwcp_consensus::registry::{simulation, PbftProtocol, Protocol};
use dwcp_consensus::sim::{
    scenario, Behaviour, Endpoint, Fate, Script, ScriptCtx, SimConfig, SimReport,
};
use dwcp_core::{Effect, NodeId, Time};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

/// Four replicas, node 0 scripted (the primary of view 0), the usual client load.
fn four_with_byzantine_primary(seed: u64) -> SimConfig {
    let mut cfg = scenario(4, 0, "honest", seed).expect("scenario");
    cfg.behaviours[0] = Behaviour::Scripted;
    cfg
}

fn assert_safe_and_live(seed: u64, r: &SimReport) {
    assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
    assert!(
        r.live,
        "seed {seed}: every transaction committed after healing"
    );
}

/// Catch-up must not discard the evidence of slots above the stable checkpoint.
///
/// 1. The Byzantine primary 0 gets batch D committed at seq 1 on node 2 only (node 3
///    is prepared, node 1 knows nothing).
/// 2. Seq 2 commits among 0, 1 and 3; node 0 hands node 2 that commit certificate,
///    unasked, as `Entries`.
/// 3. At the view change node 0 sends a view change without certificates, node 3's
///    never reaches the new primary 1, which decides on {0, 1, 2}; node 0 backs
///    whatever the new view re-issues. Nobody catches up until after it.
///
/// A replica that dropped its prepared certificate for seq 1 when it caught up to
/// seq 2 lets the new primary fill seq 1 with an empty batch: a fork with node 2.
#[test]
fn catch_up_keeps_prepared_certificates_for_the_view_change() {
    for seed in 0..4 {
        let handed = Rc::new(Cell::new(false));
        let new_view = Rc::new(Cell::new(None::<Time>));
        let (h, nv_at) = (handed.clone(), new_view.clone());
        let mut certs = CommitCertificates::default();
        let mut disowned = false;
        let script = move |ctx: &mut ScriptCtx<'_, PbftMessage>,
                           from: Endpoint,
                           to: Endpoint,
                           msg: &PbftMessage| {
            certs.observe(msg);
            if !h.get() {
                if let Some(entry) = certs.certificate(0, 2, 3) {
                    h.set(true);
                    ctx.send(NodeId(0), NodeId(2), PbftMessage::Entries(vec![entry]));
                }
            }
            let healed = nv_at.get();
            match msg {
                PbftMessage::Entries(_) | PbftMessage::Fetch { .. } => match healed {
                    Some(t) if ctx.now().since(t) > Duration::from_secs(1) => Fate::Deliver,
                    _ => Fate::Drop,
                },
                _ if healed.is_some() => Fate::Deliver,
                PbftMessage::PrePrepare(pp) => match pp.value().seq {
                    1 => only(&[2, 3], to),
                    2 => only(&[1, 3], to),
                    _ => Fate::Drop,
                },
                PbftMessage::Vote(v) => match (v.value().seq, v.value().phase) {
                    (1, Phase::Prepare) => only(&[0, 2, 3], to),
                    (1, Phase::Commit) => only(&[0, 2], to),
                    (2, _) => only(&[0, 1, 3], to),
                    _ => Fate::Drop,
                },
                PbftMessage::ViewChange(vc) if from.node == NodeId(0) => {
                    if !std::mem::replace(&mut disowned, true) {
                        let bare = bare_view_change(ctx, NodeId(0), vc.value().new_view);
                        send_to_all(ctx, NodeId(0), 4, bare);
                    }
                    Fate::Drop
                }
                PbftMessage::ViewChange(_) if from.node.0 == 3 && to.node.0 == 1 => Fate::Drop,
                PbftMessage::NewView(nv) => {
                    for vote in back_new_view(ctx, NodeId(0), nv) {
                        send_to_all(ctx, NodeId(0), 4, vote);
                    }
                    nv_at.set(Some(ctx.now()));
                    Fate::Deliver
                }
                _ => Fate::Deliver,
            }
        };
        let r = simulation::<PbftProtocol>(four_with_byzantine_primary(seed))
            .with_script(script)
            .run();
        assert!(handed.get(), "seed {seed}: node 2 was handed seq 2 unasked");
        assert!(new_view.get().is_some(), "seed {seed}: the view changed");
        assert_safe_and_live(seed, &r);
    }
}

/// A new primary that crashes after announcing its NEW-VIEW must, once restarted,
/// propose nothing else at the sequence numbers that NEW-VIEW fixed.
///
/// The Byzantine primary 0 gets seq 1 prepared everywhere and committed nowhere,
/// then falls silent; the view change makes node 1 primary, and its NEW-VIEW
/// re-issues seq 1. Node 1 crashes right after the effect that follows its
/// NEW-VIEW broadcast (the view record; its re-issued pre-prepares are not yet
/// stored) and restarts. A replica that forgot the NEW-VIEW's pre-prepares signs a
/// fresh batch for (view 1, seq 1): the checker sees the NEW-VIEW's embedded
/// pre-prepare and the fresh one contradict each other.
#[test]
fn a_restarted_new_primary_keeps_the_pre_prepares_of_its_new_view() {
    for seed in 0..4 {
        let crashed = Rc::new(Cell::new(false));
        let c = crashed.clone();
        let mut announced = false;
        let route = |_: &mut ScriptCtx<'_, PbftMessage>,
                     from: Endpoint,
                     _: Endpoint,
                     msg: &PbftMessage| match msg {
            _ if from.node != NodeId(0) => match msg {
                PbftMessage::Vote(v) if v.value().view == 0 && v.value().phase == Phase::Commit => {
                    Fate::Drop
                }
                _ => Fate::Deliver,
            },
            PbftMessage::PrePrepare(pp) if pp.value().seq == 1 => Fate::Deliver,
            _ => Fate::Drop,
        };
        let crash = move |node: Endpoint, effect: &Effect<PbftMessage>| {
            if node.node != NodeId(1) || c.get() {
                return false;
            }
            if announced {
                c.set(true);
                return true;
            }
            announced = matches!(effect, Effect::Broadcast { msg: PbftMessage::NewView(nv) } if !nv.value().pre_prepares.is_empty());
            false
        };
        let r = simulation::<PbftProtocol>(four_with_byzantine_primary(seed))
            .with_script(RouteAndCrash { route, crash })
            .run();
        assert!(crashed.get(), "seed {seed}: the new primary crashed");
        assert!(r.crashes >= 1);
        assert_safe_and_live(seed, &r);
    }
}

/// A script from a routing closure and a crash closure.
struct RouteAndCrash<R, C> {
    route: R,
    crash: C,
}

impl<R, C> Script<PbftMessage> for RouteAndCrash<R, C>
where
    R: FnMut(&mut ScriptCtx<'_, PbftMessage>, Endpoint, Endpoint, &PbftMessage) -> Fate,
    C: FnMut(Endpoint, &Effect<PbftMessage>) -> bool,
{
    fn route(
        &mut self,
        ctx: &mut ScriptCtx<'_, PbftMessage>,
        from: Endpoint,
        to: Endpoint,
        msg: &PbftMessage,
    ) -> Fate {
        (self.route)(ctx, from, to, msg)
    }

    fn crash_after(&mut self, node: Endpoint, effect: &Effect<PbftMessage>) -> bool {
        (self.crash)(node, effect)
    }
}

/// A replica catching up from its peers' stores takes a part of the log only once
/// `f+1` members sent the same chain. The Byzantine node 0 answers the rejoining
/// node 3 with a forged log that is consistent in itself (each batch's chain
/// recomputed over a changed first transaction); alone, it must never execute.
#[test]
fn a_forged_stored_log_from_one_member_is_never_executed() {
    use dwcp_consensus::pbft::{batch_digest, chain_next, Pbft, PbftConfig};
    use dwcp_consensus::sim::Simulation;
    use dwcp_core::{Committed, Digest};

    let mut cfg = four_with_byzantine_primary(5);
    cfg.scheme = dwcp_core::crypto::SignatureScheme::InsecureFast;
    cfg.workload.burst_interval = Duration::from_millis(2);
    cfg.workload.burst_size = 4;
    cfg.end = Time(20_000_000);
    let pcfg = PbftConfig {
        batch_size: 1,
        ..PbftProtocol::sim_config()
    };
    let forged = Rc::new(Cell::new(0u32));
    let f = forged.clone();
    let script = move |ctx: &mut ScriptCtx<'_, PbftMessage>,
                       from: Endpoint,
                       to: Endpoint,
                       msg: &PbftMessage| match msg {
        PbftMessage::Log(batches)
            if from.node == NodeId(0) && to.node == NodeId(3) && batches[0].seq == 1 =>
        {
            let mut chain = Digest::ZERO;
            let fake: Vec<Committed> = batches
                .iter()
                .map(|c| {
                    let mut txs = c.transactions.clone();
                    if c.seq == 1 {
                        txs[0] = bytes::Bytes::from_static(b"forged transaction");
                    }
                    chain = chain_next(&chain, c.seq, &batch_digest(&txs));
                    Committed {
                        seq: c.seq,
                        digest: chain,
                        transactions: txs,
                    }
                })
                .collect();
            f.set(f.get() + 1);
            ctx.send(NodeId(0), NodeId(3), PbftMessage::Log(fake));
            Fate::Drop
        }
        _ => Fate::Deliver,
    };
    let r = Simulation::new(cfg, move |keys, committee, recovered| {
        Pbft::new(keys, committee, pcfg.clone(), recovered).expect("replica")
    })
    .with_outage(NodeId(3), Time(0), Time(2_000_000))
    .with_script(script)
    .run();
    assert!(forged.get() > 0, "node 0 answered node 3 with a forged log");
    assert_safe_and_live(5, &r);
}

/// Four replicas, node 1 scripted: the primary of view 1.
fn four_with_byzantine_next_primary(seed: u64) -> SimConfig {
    let mut cfg = scenario(4, 0, "honest", seed).expect("scenario");
    cfg.behaviours[1] = Behaviour::Scripted;
    cfg
}

/// A new primary must re-issue the batch prepared in the highest view: its NEW-VIEW
/// is checked against the view changes it carries.
///
/// Seq 1 commits on node 2 only in view 0 (every replica is prepared; commits reach
/// only node 2), then the view changes to 1. The Byzantine primary 1 sends a
/// NEW-VIEW that carries the honest view changes but drops their highest
/// certificate: seq 1 re-issued as an empty batch, pre-prepares and NEW-VIEW validly
/// signed, and backs it with its own votes. A replica that took it would commit the
/// empty batch at seq 1 and fork from node 2; the honest ones refuse it and move on
/// to view 2.
#[test]
fn a_new_view_that_drops_the_highest_certificate_is_refused() {
    use dwcp_consensus::pbft::{batch_digest, NewView, PrePrepare};
    use dwcp_core::Signed;

    for seed in 0..3 {
        let forged = Rc::new(Cell::new(false));
        let f = forged.clone();
        let script = move |ctx: &mut ScriptCtx<'_, PbftMessage>,
                           from: Endpoint,
                           to: Endpoint,
                           msg: &PbftMessage| match msg {
            PbftMessage::PrePrepare(pp) if pp.value().view == 0 && pp.value().seq > 1 => Fate::Drop,
            PbftMessage::Vote(v) if v.value().view == 0 && v.value().phase == Phase::Commit => {
                only(&[2], to)
            }
            PbftMessage::Entries(_) | PbftMessage::Fetch { .. } => Fate::Drop,
            PbftMessage::NewView(nv) if from.node == NodeId(1) && nv.value().view == 1 => {
                if !f.replace(true) {
                    let keys = ctx.keys(NodeId(1)).expect("node 1 is scripted").clone();
                    let pre_prepares = nv
                        .value()
                        .pre_prepares
                        .iter()
                        .map(|pp| {
                            let p = pp.value();
                            let empty = PrePrepare {
                                view: p.view,
                                seq: p.seq,
                                digest: batch_digest(&[]),
                                batch: Vec::new(),
                            };
                            Signed::new(empty, NodeId(1), &keys.signing)
                        })
                        .collect();
                    let bad = Signed::new(
                        NewView {
                            view: 1,
                            view_changes: nv.value().view_changes.clone(),
                            pre_prepares,
                        },
                        NodeId(1),
                        &keys.signing,
                    );
                    for vote in back_new_view(ctx, NodeId(1), &bad) {
                        send_to_all(ctx, NodeId(1), 4, vote);
                    }
                    send_to_all(ctx, NodeId(1), 4, PbftMessage::NewView(bad));
                }
                Fate::Drop
            }
            _ => Fate::Deliver,
        };
        let r = simulation::<PbftProtocol>(four_with_byzantine_next_primary(seed))
            .with_script(script)
            .run();
        assert!(forged.get(), "seed {seed}: node 1 sent its NEW-VIEW");
        assert!(r.violations.is_empty(), "seed {seed}: {:?}", r.violations);
        assert!(
            r.node_status[2].as_ref().is_some_and(|s| s.view >= 2),
            "seed {seed}: the honest replicas moved past the Byzantine primary: {:?}",
            r.node_status
        );
    }
}
