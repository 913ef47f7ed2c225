//! Unit tests of the engine: votes, restarts, certificates far ahead, and batches
//! stored before they are acknowledged.

use super::*;
use crate::bullshark::notation::{certificate, committee};
use dwcp_core::storage::{MemoryStore, Storage};
use dwcp_core::{Effect, Record};

fn engine(id: u16, keys: &[NodeKeys], c: &Committee, rec: Recovered) -> BullsharkEngine {
    BullsharkEngine::new(
        keys[id as usize].clone(),
        c.clone(),
        BullsharkConfig::default(),
        rec,
    )
    .expect("engine")
}

fn feed(
    e: &mut BullsharkEngine,
    now: Time,
    input: Input<BullsharkMessage>,
    store: &mut MemoryStore,
) -> Vec<Effect<BullsharkMessage>> {
    let mut fx = Effects::new();
    e.handle(now, input, &mut fx);
    let out: Vec<_> = fx.drain().collect();
    for effect in &out {
        if let Effect::Persist(r) = effect {
            store.apply(std::slice::from_ref(r)).expect("persist");
        }
    }
    out
}

fn header(keys: &[NodeKeys], c: &Committee, author: u16, batches: Vec<Digest>) -> Signed<Header> {
    let parents = Certificate::genesis(c)
        .iter()
        .map(Certificate::digest)
        .collect();
    Signed::new(
        Header {
            author: NodeId(author),
            round: 1,
            batches,
            parents,
        },
        NodeId(author),
        &keys[author as usize].signing,
    )
}

fn votes(out: &[Effect<BullsharkMessage>]) -> Vec<(NodeId, Digest)> {
    out.iter()
        .filter_map(|e| match e {
            Effect::Send {
                to,
                msg: BullsharkMessage::Vote(v),
            } => Some((*to, v.value().header)),
            _ => None,
        })
        .collect()
}

fn batch(tx: &[u8]) -> Batch {
    let mut m = BatchMaker::default();
    m.push(tx);
    m.seal(NodeId(0), 0).expect("batch")
}

#[test]
fn a_header_is_voted_for_only_once_its_batches_are_here() {
    let (c, keys) = committee(4);
    let mut store = MemoryStore::new();
    let mut e = engine(1, &keys, &c, Recovered::default());
    feed(&mut e, Time::ZERO, Input::Start, &mut store);
    let b = batch(b"tx");
    let h = header(&keys, &c, 0, vec![b.digest()]);
    let msg = BullsharkMessage::Header(h.clone());
    let out = feed(
        &mut e,
        Time(1),
        Input::Message {
            from: NodeId(0),
            msg,
        },
        &mut store,
    );
    assert!(votes(&out).is_empty());
    assert!(out.iter().any(|e| matches!(
        e,
        Effect::Send { to: NodeId(0), msg: BullsharkMessage::BatchRequest(d) } if d == &vec![b.digest()]
    )));
    let out = feed(
        &mut e,
        Time(2),
        Input::Message {
            from: NodeId(0),
            msg: BullsharkMessage::Batch(b),
        },
        &mut store,
    );
    assert_eq!(votes(&out), vec![(NodeId(0), *h.digest())]);
    // The vote is on disk before it leaves.
    let persist = out.iter().position(|e| matches!(e, Effect::Persist(_)));
    let send = out.iter().position(|e| {
        matches!(
            e,
            Effect::Send {
                msg: BullsharkMessage::Vote(_),
                ..
            }
        )
    });
    assert!(persist < send);
}

#[test]
fn one_vote_per_author_and_round_even_across_a_restart() {
    let (c, keys) = committee(4);
    let mut store = MemoryStore::new();
    let mut e = engine(1, &keys, &c, Recovered::default());
    feed(&mut e, Time::ZERO, Input::Start, &mut store);
    let first = header(&keys, &c, 0, vec![]);
    let second = header(&keys, &c, 0, vec![]);
    let other = Signed::new(
        Header {
            parents: first.value().parents.iter().rev().copied().collect(),
            ..first.value().clone()
        },
        NodeId(0),
        &keys[0].signing,
    );
    assert_eq!(first.digest(), second.digest());
    assert_ne!(first.digest(), other.digest());
    let msg = |h: &Signed<Header>| Input::Message {
        from: NodeId(0),
        msg: BullsharkMessage::Header(h.clone()),
    };
    let out = feed(&mut e, Time(1), msg(&first), &mut store);
    assert_eq!(votes(&out), vec![(NodeId(0), *first.digest())]);
    assert!(votes(&feed(&mut e, Time(2), msg(&other), &mut store)).is_empty());
    assert_eq!(e.stats().equivocations, 1);
    // A lost vote is sent again, identically.
    assert_eq!(
        votes(&feed(&mut e, Time(3), msg(&first), &mut store)),
        vec![(NodeId(0), *first.digest())]
    );

    let mut restarted = engine(1, &keys, &c, store.recover(4096).expect("recover"));
    feed(&mut restarted, Time(4), Input::Start, &mut store);
    assert!(votes(&feed(&mut restarted, Time(5), msg(&other), &mut store)).is_empty());
    assert_eq!(
        votes(&feed(&mut restarted, Time(6), msg(&first), &mut store)),
        vec![(NodeId(0), *first.digest())]
    );
}

#[test]
fn a_restarted_node_offers_the_header_it_signed_not_a_new_one() {
    let (c, keys) = committee(4);
    let mut store = MemoryStore::new();
    let mut e = engine(0, &keys, &c, Recovered::default());
    feed(&mut e, Time::ZERO, Input::Start, &mut store);
    feed(
        &mut e,
        Time(1),
        Input::Submit(vec![Bytes::from_static(b"a")]),
        &mut store,
    );
    let later = Time::ZERO.after(Duration::from_secs(1));
    let out = feed(&mut e, later, Input::Timeout(TIMER_HEADER), &mut store);
    let headers = |out: &[Effect<BullsharkMessage>]| -> Vec<Digest> {
        out.iter()
            .filter_map(|e| match e {
                Effect::Broadcast {
                    msg: BullsharkMessage::Header(h),
                } => Some(*h.digest()),
                _ => None,
            })
            .collect()
    };
    let signed = headers(&out);
    assert_eq!(signed.len(), 1);
    assert_eq!(e.status().view, 1);

    let mut restarted = engine(0, &keys, &c, store.recover(4096).expect("recover"));
    let out = feed(&mut restarted, later, Input::Start, &mut store);
    assert_eq!(headers(&out), signed);
    let much_later = later.after(Duration::from_secs(5));
    let out = feed(
        &mut restarted,
        much_later,
        Input::Timeout(TIMER_HEADER),
        &mut store,
    );
    assert!(headers(&out).is_empty(), "round 1 was signed already");
}

#[test]
fn certificates_far_ahead_are_refused_without_buffering() {
    let (c, keys) = committee(4);
    let mut store = MemoryStore::new();
    let mut e = engine(1, &keys, &c, Recovered::default());
    feed(&mut e, Time::ZERO, Input::Start, &mut store);
    let far = certificate(
        &c,
        &keys,
        NodeId(0),
        500,
        vec![Digest::of(b"p1"), Digest::of(b"p2"), Digest::of(b"p3")],
        vec![],
    );
    let out = feed(
        &mut e,
        Time(1),
        Input::Message {
            from: NodeId(0),
            msg: BullsharkMessage::Certificate(far),
        },
        &mut store,
    );
    // Nothing is buffered or fetched; the node asks for the committed order
    // instead, since its peers may have collected what it misses.
    assert!(
        matches!(
            out.as_slice(),
            [Effect::Broadcast {
                msg: BullsharkMessage::OrderRequest(1)
            }]
        ),
        "{out:?}"
    );
    assert!(e.pending.is_empty() && e.want_certs.is_empty());
    // A certificate that does not verify proves nothing and asks for nothing.
    let mut forged = certificate(
        &c,
        &keys,
        NodeId(2),
        600,
        vec![Digest::of(b"p1"), Digest::of(b"p2"), Digest::of(b"p3")],
        vec![],
    );
    forged.votes[0].corrupt_signature();
    let out = feed(
        &mut e,
        Time(1_000_000),
        Input::Message {
            from: NodeId(2),
            msg: BullsharkMessage::Certificate(forged),
        },
        &mut store,
    );
    assert!(out.is_empty(), "{out:?}");
}

/// Position of the first effect matching `f`.
fn first(
    out: &[Effect<BullsharkMessage>],
    f: impl Fn(&Effect<BullsharkMessage>) -> bool,
) -> Option<usize> {
    out.iter().position(f)
}

#[test]
fn a_batch_is_stored_before_it_is_acknowledged_and_survives_a_restart() {
    let (c, keys) = committee(4);
    let mut store = MemoryStore::new();
    let mut e = engine(1, &keys, &c, Recovered::default());
    feed(&mut e, Time::ZERO, Input::Start, &mut store);
    let b = batch(b"tx");
    let out = feed(
        &mut e,
        Time(1),
        Input::Message {
            from: NodeId(0),
            msg: BullsharkMessage::Batch(b.clone()),
        },
        &mut store,
    );
    let stored = first(
        &out,
        |e| matches!(e, Effect::Persist(Record::Put { value, .. }) if value == b.payload()),
    );
    let ack = first(
        &out,
        |e| matches!(e, Effect::Send { to: NodeId(0), msg: BullsharkMessage::BatchAck(d) } if *d == b.digest()),
    );
    assert!(stored.is_some() && ack.is_some(), "{out:?}");
    assert!(stored < ack, "acknowledged before it was stored: {out:?}");
    // The stored bytes are the batch's own buffer, not a copy.
    let Some(Effect::Persist(Record::Put { value, .. })) = stored.map(|i| &out[i]) else {
        unreachable!()
    };
    assert_eq!(value.as_ptr(), b.payload().as_ptr());

    // Restarted from its store, the node still holds the batch it vouched for:
    // it serves it and votes for a header naming it without fetching it.
    let mut restarted = engine(1, &keys, &c, store.recover(4096).expect("recover"));
    feed(&mut restarted, Time(2), Input::Start, &mut store);
    let out = feed(
        &mut restarted,
        Time(3),
        Input::Message {
            from: NodeId(2),
            msg: BullsharkMessage::BatchRequest(vec![b.digest()]),
        },
        &mut store,
    );
    assert!(
        out.iter().any(|e| matches!(e, Effect::Send { to: NodeId(2), msg: BullsharkMessage::Batch(x) } if *x == b)),
        "{out:?}"
    );
    let h = header(&keys, &c, 0, vec![b.digest()]);
    let out = feed(
        &mut restarted,
        Time(4),
        Input::Message {
            from: NodeId(0),
            msg: BullsharkMessage::Header(h.clone()),
        },
        &mut store,
    );
    assert_eq!(votes(&out), vec![(NodeId(0), *h.digest())]);
}

#[test]
fn an_own_batch_not_yet_proposed_is_offered_again_after_a_restart() {
    let (c, keys) = committee(4);
    let mut store = MemoryStore::new();
    let mut e = engine(0, &keys, &c, Recovered::default());
    feed(&mut e, Time::ZERO, Input::Start, &mut store);
    feed(
        &mut e,
        Time(1),
        Input::Submit(vec![Bytes::from_static(b"a")]),
        &mut store,
    );
    let out = feed(&mut e, Time(2), Input::Timeout(TIMER_BATCH), &mut store);
    let sealed = out
        .iter()
        .find_map(|e| match e {
            Effect::Broadcast {
                msg: BullsharkMessage::Batch(b),
            } => Some(b.clone()),
            _ => None,
        })
        .expect("sealed");
    let stored = first(
        &out,
        |e| matches!(e, Effect::Persist(Record::Put { value, .. }) if value == sealed.payload()),
    );
    let sent = first(&out, |e| {
        matches!(
            e,
            Effect::Broadcast {
                msg: BullsharkMessage::Batch(_)
            }
        )
    });
    assert!(stored < sent, "{out:?}");

    // Down before a quorum acknowledged it: the restarted worker sends it again.
    let mut restarted = engine(0, &keys, &c, store.recover(4096).expect("recover"));
    feed(&mut restarted, Time(3), Input::Start, &mut store);
    let out = feed(
        &mut restarted,
        Time::ZERO.after(Duration::from_secs(1)),
        Input::Timeout(TIMER_SYNC),
        &mut store,
    );
    let resent: BTreeSet<NodeId> = out
        .iter()
        .filter_map(|e| match e {
            Effect::Send {
                to,
                msg: BullsharkMessage::Batch(b),
            } if *b == sealed => Some(*to),
            _ => None,
        })
        .collect();
    assert_eq!(resent, BTreeSet::from([NodeId(1), NodeId(2), NodeId(3)]));
}

#[test]
fn corrupt_stored_state_is_an_error() {
    let (c, keys) = committee(4);
    let rec = Recovered {
        wal: vec![(
            WalKey {
                slot: 1,
                tag: TAG_HEADER,
            },
            Bytes::from_static(b"\xff\xff"),
        )],
        ..Recovered::default()
    };
    let err = BullsharkEngine::new(keys[0].clone(), c, BullsharkConfig::default(), rec);
    assert!(matches!(err, Err(BullsharkError::Corrupt(_))));
}
