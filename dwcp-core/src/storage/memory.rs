//! An in-memory [`Storage`], for tests, the simulator and in-process benchmarks.

use super::{check_append, Storage, StorageError, CHECKPOINTS_KEPT};
use crate::{Checkpoint, Committed, Record, Recovered, Seq, WalKey};
use bytes::Bytes;
use std::collections::{BTreeMap, VecDeque};

/// Keeps everything in memory; "durable" means it survives the engine, not the process.
///
/// By default it keeps the whole committed log. [`MemoryStore::with_tail_limit`]
/// keeps only the newest batches, so a long benchmark runs in flat memory.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    wal: BTreeMap<WalKey, Bytes>,
    checkpoints: BTreeMap<Seq, Checkpoint>,
    /// The retained end of the committed log; `committed[0]` has sequence number
    /// `forgotten + 1`.
    committed: VecDeque<Committed>,
    /// Batches dropped from the front of the log.
    forgotten: Seq,
    tail_limit: Option<usize>,
}

impl MemoryStore {
    /// An empty store that keeps the whole committed log.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    /// An empty store that keeps only the newest `limit` committed batches (at least
    /// one). Older batches are forgotten: [`Storage::committed`] starts at the oldest
    /// one kept, and re-appending a forgotten batch is refused as a
    /// [`StorageError::Conflict`], since it can no longer be compared.
    pub fn with_tail_limit(limit: usize) -> MemoryStore {
        MemoryStore {
            tail_limit: Some(limit.max(1)),
            ..MemoryStore::default()
        }
    }

    fn last(&self) -> Seq {
        self.forgotten + self.committed.len() as Seq
    }

    fn get(&self, seq: Seq) -> Option<&Committed> {
        let index = seq.checked_sub(self.forgotten + 1)?;
        self.committed.get(usize::try_from(index).ok()?)
    }
}

impl Storage for MemoryStore {
    fn apply(&mut self, records: &[Record]) -> Result<(), StorageError> {
        for r in records {
            match r {
                Record::Put { key, value } => {
                    self.wal.insert(*key, value.clone());
                }
                Record::Delete(key) => {
                    self.wal.remove(key);
                }
                Record::PruneBelow(slot) => {
                    self.wal = self.wal.split_off(&WalKey {
                        slot: *slot,
                        tag: 0,
                    });
                }
                Record::Checkpoint(cp) => {
                    self.checkpoints.insert(cp.seq, cp.clone());
                    while self.checkpoints.len() > CHECKPOINTS_KEPT {
                        self.checkpoints.pop_first();
                    }
                }
            }
        }
        Ok(())
    }

    fn append_committed(&mut self, batches: &[Committed]) -> Result<(), StorageError> {
        for b in batches {
            if check_append(self.last(), b, |s| Ok(self.get(s).cloned()))? {
                self.committed.push_back(b.clone());
                if let Some(limit) = self.tail_limit {
                    while self.committed.len() > limit {
                        self.committed.pop_front();
                        self.forgotten += 1;
                    }
                }
            }
        }
        Ok(())
    }

    fn committed(&self, from: Seq, limit: usize) -> Result<Vec<Committed>, StorageError> {
        let skip = from.max(1).saturating_sub(self.forgotten + 1);
        let skip = usize::try_from(skip).unwrap_or(usize::MAX);
        Ok(self
            .committed
            .iter()
            .skip(skip)
            .take(limit)
            .cloned()
            .collect())
    }

    fn last_committed(&self) -> Result<Seq, StorageError> {
        Ok(self.last())
    }

    fn recover(&self, tail: usize) -> Result<Recovered, StorageError> {
        let start = self.committed.len().saturating_sub(tail);
        Ok(Recovered {
            wal: self.wal.iter().map(|(k, v)| (*k, v.clone())).collect(),
            checkpoints: self.checkpoints.values().cloned().collect(),
            committed_tail: self.committed.range(start..).cloned().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Digest;

    #[test]
    fn conformance() {
        super::super::conformance::check(&mut MemoryStore::new());
    }

    #[test]
    fn conformance_with_a_tail_limit() {
        // The suite keeps three batches at most, so a limit of three forgets nothing
        // it looks at; the test below covers forgetting.
        super::super::conformance::check(&mut MemoryStore::with_tail_limit(3));
    }

    fn batch(seq: Seq) -> Committed {
        Committed {
            seq,
            digest: Digest::of(&seq.to_le_bytes()),
            transactions: vec![Bytes::from(vec![seq as u8; 100])],
        }
    }

    #[test]
    fn a_tail_limit_keeps_the_newest_batches_and_the_numbering() {
        let mut s = MemoryStore::with_tail_limit(4);
        for seq in 1..=1000 {
            s.append_committed(&[batch(seq)]).expect("append");
        }
        assert_eq!(s.committed.len(), 4, "memory stays flat");
        assert_eq!(s.last_committed().expect("last"), 1000);
        assert_eq!(
            s.committed(1, 10).expect("range"),
            (997..=1000).map(batch).collect::<Vec<_>>(),
            "reads start at the oldest batch kept"
        );
        assert_eq!(
            s.committed(999, 10).expect("range"),
            vec![batch(999), batch(1000)]
        );
        assert_eq!(
            s.recover(2).expect("recover").committed_tail,
            vec![batch(999), batch(1000)]
        );
        // Repeats still work where they can be checked, gaps are still refused.
        s.append_committed(&[batch(1000)]).expect("harmless repeat");
        assert!(matches!(
            s.append_committed(&[batch(5)]),
            Err(StorageError::Conflict(5))
        ));
        assert!(matches!(
            s.append_committed(&[batch(1002)]),
            Err(StorageError::Gap {
                last: 1000,
                got: 1002
            })
        ));
        s.append_committed(&[batch(1001)]).expect("extend");
        assert_eq!(s.committed(1, 10).expect("range").len(), 4);
    }
}
