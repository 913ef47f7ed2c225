//! The embedded on-disk [`Storage`], on `redb`: every `apply` and
//! `append_committed` is one fsynced transaction.

use super::{check_append, Storage, StorageError, CHECKPOINTS_KEPT};
use crate::codec::{decode, encode, encode_into};
use crate::{Checkpoint, Committed, Record, Recovered, Seq, WalKey};
use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::path::Path;

const WAL: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("wal");
const CHECKPOINTS: TableDefinition<u64, &[u8]> = TableDefinition::new("checkpoints");
const COMMITTED: TableDefinition<u64, &[u8]> = TableDefinition::new("committed");

/// Largest stored value we agree to decode (a committed batch or a checkpoint).
const MAX_VALUE: usize = 256 * 1024 * 1024;

fn backend(e: impl std::fmt::Display) -> StorageError {
    StorageError::Backend(e.to_string())
}

/// A `redb` database file holding one engine's state.
pub struct RedbStore {
    db: Database,
    /// Where committed records are encoded, kept between appends: a record holds
    /// whole batches (megabytes), and encoding each into a fresh allocation costs
    /// a page fault per 4 KiB.
    scratch: Vec<u8>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedbStore")
    }
}

impl RedbStore {
    /// Opens the database at `path`, creating it if needed.
    pub fn open(path: impl AsRef<Path>) -> Result<RedbStore, StorageError> {
        let db = Database::create(path).map_err(backend)?;
        let tx = db.begin_write().map_err(backend)?;
        tx.open_table(WAL).map_err(backend)?;
        tx.open_table(CHECKPOINTS).map_err(backend)?;
        tx.open_table(COMMITTED).map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(RedbStore {
            db,
            scratch: Vec::new(),
        })
    }

    fn stored_committed(&self, seq: Seq) -> Result<Option<Committed>, StorageError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let t = tx.open_table(COMMITTED).map_err(backend)?;
        match t.get(seq).map_err(backend)? {
            Some(v) => Ok(Some(
                decode(v.value(), MAX_VALUE).map_err(|e| StorageError::Corrupt(e.to_string()))?,
            )),
            None => Ok(None),
        }
    }
}

impl Storage for RedbStore {
    fn apply(&mut self, records: &[Record]) -> Result<(), StorageError> {
        if records.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write().map_err(backend)?;
        {
            let mut wal = tx.open_table(WAL).map_err(backend)?;
            let mut cps = tx.open_table(CHECKPOINTS).map_err(backend)?;
            for r in records {
                match r {
                    Record::Put { key, value } => {
                        wal.insert((key.slot, key.tag), value.as_ref())
                            .map_err(backend)?;
                    }
                    Record::Delete(key) => {
                        wal.remove((key.slot, key.tag)).map_err(backend)?;
                    }
                    Record::PruneBelow(slot) => {
                        wal.retain_in((0, 0)..(*slot, 0), |_, _| false)
                            .map_err(backend)?;
                    }
                    Record::Checkpoint(cp) => {
                        cps.insert(cp.seq, encode(cp).as_slice()).map_err(backend)?;
                        while cps.len().map_err(backend)? > CHECKPOINTS_KEPT as u64 {
                            cps.pop_first().map_err(backend)?;
                        }
                    }
                }
            }
        }
        tx.commit().map_err(backend)
    }

    fn append_committed(&mut self, batches: &[Committed]) -> Result<(), StorageError> {
        let mut last = self.last_committed()?;
        let mut fresh = Vec::with_capacity(batches.len());
        for b in batches {
            let pending_last = last;
            let is_new = check_append(pending_last, b, |s| self.stored_committed(s))?;
            if is_new {
                fresh.push(b);
                last = b.seq;
            }
        }
        if fresh.is_empty() {
            return Ok(());
        }
        let tx = self.db.begin_write().map_err(backend)?;
        {
            let mut t = tx.open_table(COMMITTED).map_err(backend)?;
            for b in fresh {
                let mut buf = std::mem::take(&mut self.scratch);
                buf.clear();
                buf = encode_into(b, buf);
                let inserted = t.insert(b.seq, buf.as_slice()).map(|_| ());
                self.scratch = buf;
                inserted.map_err(backend)?;
            }
        }
        tx.commit().map_err(backend)
    }

    fn committed(&self, from: Seq, limit: usize) -> Result<Vec<Committed>, StorageError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let t = tx.open_table(COMMITTED).map_err(backend)?;
        let mut out = Vec::new();
        for row in t.range(from.max(1)..).map_err(backend)?.take(limit) {
            let (_, v) = row.map_err(backend)?;
            out.push(
                decode(v.value(), MAX_VALUE).map_err(|e| StorageError::Corrupt(e.to_string()))?,
            );
        }
        Ok(out)
    }

    fn last_committed(&self) -> Result<Seq, StorageError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let t = tx.open_table(COMMITTED).map_err(backend)?;
        let last = t
            .last()
            .map_err(backend)?
            .map(|(k, _)| k.value())
            .unwrap_or(0);
        Ok(last)
    }

    fn recover(&self, tail: usize) -> Result<Recovered, StorageError> {
        let tx = self.db.begin_read().map_err(backend)?;
        let corrupt = |e: crate::codec::CodecError| StorageError::Corrupt(e.to_string());
        let mut rec = Recovered::default();
        let wal = tx.open_table(WAL).map_err(backend)?;
        for row in wal.iter().map_err(backend)? {
            let (k, v) = row.map_err(backend)?;
            let (slot, tag) = k.value();
            rec.wal
                .push((WalKey { slot, tag }, Bytes::copy_from_slice(v.value())));
        }
        let cps = tx.open_table(CHECKPOINTS).map_err(backend)?;
        for row in cps.iter().map_err(backend)? {
            let (_, v) = row.map_err(backend)?;
            rec.checkpoints
                .push(decode::<Checkpoint>(v.value(), MAX_VALUE).map_err(corrupt)?);
        }
        let committed = tx.open_table(COMMITTED).map_err(backend)?;
        let mut newest: Vec<Committed> = Vec::new();
        for row in committed.iter().map_err(backend)?.rev().take(tail) {
            let (_, v) = row.map_err(backend)?;
            newest.push(decode(v.value(), MAX_VALUE).map_err(corrupt)?);
        }
        newest.reverse();
        rec.committed_tail = newest;
        Ok(rec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Digest;

    #[test]
    fn conformance() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = RedbStore::open(dir.path().join("db.redb")).unwrap();
        super::super::conformance::check(&mut s);
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        {
            let mut s = RedbStore::open(&path).unwrap();
            s.apply(&[Record::Put {
                key: WalKey { slot: 5, tag: 1 },
                value: Bytes::from_static(b"vote"),
            }])
            .unwrap();
            s.append_committed(&[Committed {
                seq: 1,
                digest: Digest::of(b"b1"),
                transactions: vec![Bytes::from_static(b"tx")],
            }])
            .unwrap();
        }
        let s = RedbStore::open(&path).unwrap();
        let r = s.recover(10).unwrap();
        assert_eq!(
            r.wal,
            vec![(WalKey { slot: 5, tag: 1 }, Bytes::from_static(b"vote"))]
        );
        assert_eq!(r.committed_tail.len(), 1);
        assert_eq!(s.last_committed().unwrap(), 1);
    }

    #[test]
    fn garbage_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        std::fs::write(&path, vec![0xAB; 4096]).unwrap();
        assert!(RedbStore::open(&path).is_err());
    }
}
