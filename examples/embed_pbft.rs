//! Embeds four PBFT replicas in one process with a hand-written driver: the whole
//! sans-IO contract in one page. Messages travel as encoded bytes, as they would over
//! a socket; every `Persist` is applied to the replica's store before the messages
//! that follow it leave.
//!
//! Run with `cargo run --example embed_pbft`.

use bytes::Bytes;
use dwcp::consensus::pbft::{Pbft, PbftConfig, PbftMessage};
use dwcp::core::codec::{decode, encode, DEFAULT_MAX_FRAME};
use dwcp::core::crypto::SignatureScheme;
use dwcp::core::storage::{MemoryStore, Storage};
use dwcp::core::{Committee, Effect, Effects, Engine, Input, NodeId, Time};
use std::collections::VecDeque;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (committee, keys) = Committee::deterministic(4, SignatureScheme::Ed25519, 42);
    let mut replicas = Vec::new();
    for k in keys {
        let store = MemoryStore::new();
        let recovered = store.recover(1024)?;
        let replica = Pbft::new(k, committee.clone(), PbftConfig::default(), recovered)?;
        replicas.push((replica, store));
    }

    // (to, from, bytes) in flight; a real driver would use sockets.
    let mut wire: VecDeque<(NodeId, NodeId, Bytes)> = VecDeque::new();
    let mut clock = Time::ZERO;
    let mut fx = Effects::new();

    let mut step = |i: usize,
                    input: Input<PbftMessage>,
                    clock: Time,
                    wire: &mut VecDeque<_>,
                    replicas: &mut Vec<(Pbft, MemoryStore)>|
     -> Result<(), Box<dyn std::error::Error>> {
        let me = NodeId(i as u16);
        let (replica, store) = &mut replicas[i];
        replica.handle(clock, input, &mut fx);
        for effect in fx.drain() {
            match effect {
                Effect::Persist(record) => store.apply(&[record])?,
                Effect::Send { to, msg } => wire.push_back((to, me, Bytes::from(encode(&msg)))),
                Effect::Broadcast { msg } => {
                    let bytes = Bytes::from(encode(&msg));
                    for to in committee.ids().filter(|id| *id != me) {
                        wire.push_back((to, me, bytes.clone()));
                    }
                }
                Effect::Commit(c) => {
                    store.append_committed(std::slice::from_ref(&c))?;
                    if i == 0 {
                        println!(
                            "replica 0 committed seq {} with {} transactions, log digest {}",
                            c.seq,
                            c.transactions.len(),
                            c.digest
                        );
                    }
                }
                // Nothing fails in this run, so timers (view changes, resends) never
                // matter, and no replica falls behind far enough to be served its
                // peers' stored log (a driver answers that with Input::StoredCommitted).
                Effect::SetTimer { .. } | Effect::CancelTimer(_) | Effect::ReadCommitted { .. } => {
                }
            }
        }
        Ok(())
    };

    for i in 0..4 {
        step(i, Input::Start, clock, &mut wire, &mut replicas)?;
    }
    for batch in 0..3u32 {
        let txs: Vec<Bytes> = (0..100u32)
            .map(|k| Bytes::from(format!("batch {batch} transfer {k}")))
            .collect();
        for i in 0..4 {
            step(
                i,
                Input::Submit(txs.clone()),
                clock,
                &mut wire,
                &mut replicas,
            )?;
        }
        while let Some((to, from, bytes)) = wire.pop_front() {
            clock = clock.after(std::time::Duration::from_micros(100));
            let msg: PbftMessage = decode(&bytes, DEFAULT_MAX_FRAME)?;
            step(
                to.index(),
                Input::Message { from, msg },
                clock,
                &mut wire,
                &mut replicas,
            )?;
        }
    }
    let heights: Vec<u64> = replicas
        .iter()
        .map(|(r, _)| r.status().last_committed)
        .collect();
    println!("final heights: {heights:?}");
    assert!(heights.iter().all(|h| *h == heights[0] && *h > 0));
    Ok(())
}
