//! A conformance suite for [`Storage`] implementations: run [`check`] on an empty
//! store of yours (in a test) to see that it behaves as the engines expect.

use super::{Storage, StorageError, CHECKPOINTS_KEPT};
use crate::{Checkpoint, Committed, Digest, Record, WalKey};
use bytes::Bytes;

fn batch(seq: u64) -> Committed {
    Committed {
        seq,
        digest: Digest::of(&seq.to_le_bytes()),
        transactions: vec![Bytes::from(format!("tx{seq}"))],
    }
}

fn put(slot: u64, tag: u32, v: &'static [u8]) -> Record {
    Record::Put {
        key: WalKey { slot, tag },
        value: Bytes::from_static(v),
    }
}

/// Runs the suite against an empty store; panics with a message on the first deviation.
pub fn check(store: &mut dyn Storage) {
    // Empty store.
    let r = store.recover(10).expect("recover empty");
    assert!(r.wal.is_empty() && r.checkpoints.is_empty() && r.committed_tail.is_empty());
    assert_eq!(store.last_committed().expect("last"), 0);

    // Write-ahead records: upsert, key order, pruning by slot.
    store
        .apply(&[
            put(3, 0, b"a"),
            put(1, 2, b"b"),
            put(1, 1, b"c"),
            put(3, 0, b"d"),
        ])
        .expect("apply");
    let wal = store.recover(0).expect("recover").wal;
    let keys: Vec<(u64, u32)> = wal.iter().map(|(k, _)| (k.slot, k.tag)).collect();
    assert_eq!(
        keys,
        vec![(1, 1), (1, 2), (3, 0)],
        "wal must be in key order"
    );
    assert_eq!(wal[2].1, Bytes::from_static(b"d"), "put must replace");
    store
        .apply(&[Record::PruneBelow(3), put(7, 0, b"e"), put(7, 1, b"f")])
        .expect("prune");
    store
        .apply(&[
            Record::Delete(WalKey { slot: 7, tag: 1 }),
            Record::Delete(WalKey { slot: 9, tag: 9 }),
        ])
        .expect("delete, also of a record that is not there");
    let keys: Vec<u64> = store
        .recover(0)
        .expect("recover")
        .wal
        .iter()
        .map(|(k, _)| k.slot)
        .collect();
    assert_eq!(
        keys,
        vec![3, 7],
        "prune must drop slots below, keep the rest"
    );

    // Checkpoints: the newest and the three before it.
    for seq in [10u64, 20, 30, 40, 50, 60] {
        store
            .apply(&[Record::Checkpoint(Checkpoint {
                seq,
                digest: Digest::of(&seq.to_le_bytes()),
                data: Bytes::from(vec![seq as u8; 3]),
            })])
            .expect("checkpoint");
    }
    let cps = store.recover(0).expect("recover").checkpoints;
    assert_eq!(cps.len(), CHECKPOINTS_KEPT);
    assert_eq!(
        cps.iter().map(|c| c.seq).collect::<Vec<_>>(),
        vec![30, 40, 50, 60]
    );

    // Committed log: contiguous, idempotent repeats, conflicts and gaps refused.
    store
        .append_committed(&[batch(1), batch(2)])
        .expect("append");
    store
        .append_committed(&[batch(2), batch(3)])
        .expect("repeat then extend");
    assert_eq!(store.last_committed().expect("last"), 3);
    assert!(matches!(
        store.append_committed(&[batch(5)]),
        Err(StorageError::Gap { last: 3, got: 5 })
    ));
    let mut other = batch(2);
    other.transactions.push(Bytes::from_static(b"extra"));
    assert!(matches!(
        store.append_committed(&[other]),
        Err(StorageError::Conflict(2))
    ));
    assert_eq!(
        store.committed(2, 10).expect("range"),
        vec![batch(2), batch(3)]
    );
    assert_eq!(store.committed(0, 1).expect("range"), vec![batch(1)]);
    let tail = store.recover(2).expect("recover").committed_tail;
    assert_eq!(tail, vec![batch(2), batch(3)]);
}
