//! An in-memory [`Storage`], for tests and the simulator.

use super::{check_append, Storage, StorageError, CHECKPOINTS_KEPT};
use crate::{Checkpoint, Committed, Record, Recovered, Seq, WalKey};
use bytes::Bytes;
use std::collections::BTreeMap;

/// Keeps everything in memory; "durable" means it survives the engine, not the process.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    wal: BTreeMap<WalKey, Bytes>,
    checkpoints: BTreeMap<Seq, Checkpoint>,
    committed: Vec<Committed>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }
}

impl Storage for MemoryStore {
    fn apply(&mut self, records: &[Record]) -> Result<(), StorageError> {
        for r in records {
            match r {
                Record::Put { key, value } => {
                    self.wal.insert(*key, value.clone());
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
            let last = self.committed.len() as Seq;
            let log = &self.committed;
            if check_append(last, b, |s| Ok(log.get((s - 1) as usize).cloned()))? {
                self.committed.push(b.clone());
            }
        }
        Ok(())
    }

    fn committed(&self, from: Seq, limit: usize) -> Result<Vec<Committed>, StorageError> {
        let start = from.max(1) as usize - 1;
        Ok(self
            .committed
            .iter()
            .skip(start)
            .take(limit)
            .cloned()
            .collect())
    }

    fn last_committed(&self) -> Result<Seq, StorageError> {
        Ok(self.committed.len() as Seq)
    }

    fn recover(&self, tail: usize) -> Result<Recovered, StorageError> {
        let start = self.committed.len().saturating_sub(tail);
        Ok(Recovered {
            wal: self.wal.iter().map(|(k, v)| (*k, v.clone())).collect(),
            checkpoints: self.checkpoints.values().cloned().collect(),
            committed_tail: self.committed[start..].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn conformance() {
        super::super::conformance::check(&mut super::MemoryStore::new());
    }
}
