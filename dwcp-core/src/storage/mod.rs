//! Durable state of an engine: write-ahead records, checkpoints (the newest and the
//! three before it) and the committed log.
//!
//! [`MemoryStore`] serves tests and the simulator; [`RedbStore`] is the embedded
//! default on disk. [`conformance::check`] is a suite any implementation can run.

pub mod conformance;
mod memory;
mod redb_store;

pub use memory::MemoryStore;
pub use redb_store::RedbStore;

use crate::{Committed, Record, Recovered, Seq};

/// How many checkpoints a store keeps: the newest and the three before it.
pub const CHECKPOINTS_KEPT: usize = 4;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The underlying database failed.
    #[error("database: {0}")]
    Backend(String),
    /// Stored bytes do not decode: the store is corrupt or from another version.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// A committed batch does not extend the log by exactly one.
    #[error("committed seq {got} does not follow {last}")]
    Gap {
        /// The log's last sequence number.
        last: Seq,
        /// The one offered.
        got: Seq,
    },
    /// A committed batch contradicts one already stored at the same position.
    #[error("committed seq {0} conflicts with the stored batch")]
    Conflict(Seq),
}

/// Durable storage for one engine instance.
pub trait Storage {
    /// Applies `records` atomically; when it returns `Ok` they survive a crash.
    fn apply(&mut self, records: &[Record]) -> Result<(), StorageError>;

    /// Appends committed batches; each must follow the last by one. Re-appending
    /// an identical batch already stored is accepted and changes nothing.
    fn append_committed(&mut self, batches: &[Committed]) -> Result<(), StorageError>;

    /// Up to `limit` committed batches from `from` on.
    fn committed(&self, from: Seq, limit: usize) -> Result<Vec<Committed>, StorageError>;

    /// The last committed sequence number, 0 if none.
    fn last_committed(&self) -> Result<Seq, StorageError>;

    /// Everything an engine needs to restart: the write-ahead records, the
    /// checkpoints, and the newest `tail` committed batches.
    fn recover(&self, tail: usize) -> Result<Recovered, StorageError>;
}

/// Checks that `batch` may follow `last` in the log; `Ok(false)` if it is a harmless repeat.
fn check_append(
    last: Seq,
    batch: &Committed,
    stored: impl FnOnce(Seq) -> Result<Option<Committed>, StorageError>,
) -> Result<bool, StorageError> {
    if batch.seq == last + 1 {
        return Ok(true);
    }
    if batch.seq >= 1 && batch.seq <= last {
        return match stored(batch.seq)? {
            Some(existing) if existing == *batch => Ok(false),
            _ => Err(StorageError::Conflict(batch.seq)),
        };
    }
    Err(StorageError::Gap {
        last,
        got: batch.seq,
    })
}
