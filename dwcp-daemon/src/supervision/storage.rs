//! The node's `redb` store as a component the
//! [`Supervisor`](super::supervisor::Supervisor) supervises. It owns the one open
//! handle of the database; the engine driver writes through a [`SharedStore`] onto
//! that same handle.
//!
//! Health is a real read: the file must still be the one that was opened (same
//! device and inode, so a deleted or swapped file is caught, which redb itself would
//! not notice while it writes on into the unlinked one), and the database must
//! answer `last_committed`. Recovery closes the handle and opens the file again,
//! but never creates a new, empty store in place of one that has vanished: a node
//! whose votes were lost could contradict them, so that stays `Failed` until an
//! operator puts the file back.

use crate::supervision::supervisor::{Component, Health};
use dwcp_core::storage::{RedbStore, Storage, StorageError};
use dwcp_core::{Committed, Record, Recovered, Seq};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The node's store: opened by [`Component::start`], shared with the engine.
pub struct StorageComponent {
    path: PathBuf,
    store: Arc<Mutex<Option<RedbStore>>>,
    identity: Mutex<Option<FileId>>,
    opened_before: AtomicBool,
}

/// Device and inode of the open file, where the platform has them.
type FileId = (u64, u64);

#[cfg(unix)]
fn file_id(path: &Path) -> std::io::Result<Option<FileId>> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok(Some((m.dev(), m.ino())))
}

#[cfg(not(unix))]
fn file_id(path: &Path) -> std::io::Result<Option<FileId>> {
    std::fs::metadata(path).map(|_| None)
}

fn lock(store: &Mutex<Option<RedbStore>>) -> MutexGuard<'_, Option<RedbStore>> {
    // A panic while holding the lock leaves the handle itself intact.
    store.lock().unwrap_or_else(|p| p.into_inner())
}

impl StorageComponent {
    /// The component's name, which dependents list.
    pub const NAME: &'static str = "storage";

    /// The store at `path`; nothing is opened until [`Component::start`].
    pub fn new(path: impl Into<PathBuf>) -> StorageComponent {
        StorageComponent {
            path: path.into(),
            store: Arc::new(Mutex::new(None)),
            identity: Mutex::new(None),
            opened_before: AtomicBool::new(false),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A handle onto the open store for the engine driver. Its operations fail
    /// while the component is stopped.
    pub fn handle(&self) -> SharedStore {
        SharedStore {
            store: self.store.clone(),
        }
    }
}

impl Component for StorageComponent {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn start(&self) -> Result<(), String> {
        let mut slot = lock(&self.store);
        if slot.is_some() {
            return Ok(());
        }
        let shown = self.path.display();
        if self.opened_before.load(Ordering::SeqCst) && !self.path.exists() {
            return Err(format!(
                "{shown} has gone; not creating an empty store in its place"
            ));
        }
        let store = RedbStore::open(&self.path).map_err(|e| format!("opening {shown}: {e}"))?;
        store
            .last_committed()
            .map_err(|e| format!("reading {shown}: {e}"))?;
        let id = file_id(&self.path).map_err(|e| format!("{shown}: {e}"))?;
        *self.identity.lock().unwrap_or_else(|p| p.into_inner()) = id;
        *slot = Some(store);
        self.opened_before.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn stop(&self) {
        *lock(&self.store) = None;
    }

    fn health(&self) -> Health {
        let shown = self.path.display();
        let slot = lock(&self.store);
        let Some(store) = slot.as_ref() else {
            return Health::Failed("store closed".into());
        };
        let expected = *self.identity.lock().unwrap_or_else(|p| p.into_inner());
        match file_id(&self.path) {
            Err(e) => Health::Failed(format!("{shown}: {e}")),
            Ok(id) if id != expected => Health::Failed(format!(
                "{shown} is no longer the file that was opened (deleted or replaced)"
            )),
            Ok(_) => match store.last_committed() {
                Ok(_) => Health::Healthy,
                Err(e) => Health::Failed(format!("reading {shown}: {e}")),
            },
        }
    }
}

/// The engine's view of the node's store: every operation goes to the handle the
/// [`StorageComponent`] holds, and fails with [`StorageError::Backend`] while it is
/// closed (which stops the driver; the supervisor rebuilds it once the store is back).
#[derive(Clone)]
pub struct SharedStore {
    store: Arc<Mutex<Option<RedbStore>>>,
}

impl SharedStore {
    fn with<T>(
        &self,
        f: impl FnOnce(&mut RedbStore) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        match lock(&self.store).as_mut() {
            Some(s) => f(s),
            None => Err(StorageError::Backend("the store is closed".into())),
        }
    }
}

impl Storage for SharedStore {
    fn apply(&mut self, records: &[Record]) -> Result<(), StorageError> {
        self.with(|s| s.apply(records))
    }

    fn append_committed(&mut self, batches: &[Committed]) -> Result<(), StorageError> {
        self.with(|s| s.append_committed(batches))
    }

    fn committed(&self, from: Seq, limit: usize) -> Result<Vec<Committed>, StorageError> {
        self.with(|s| s.committed(from, limit))
    }

    fn last_committed(&self) -> Result<Seq, StorageError> {
        self.with(|s| s.last_committed())
    }

    fn recover(&self, tail: usize) -> Result<Recovered, StorageError> {
        self.with(|s| s.recover(tail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use dwcp_core::Digest;

    fn batch(seq: Seq) -> Committed {
        Committed {
            seq,
            digest: Digest::of(&seq.to_le_bytes()),
            transactions: vec![Bytes::from(seq.to_le_bytes().to_vec())],
        }
    }

    #[test]
    fn a_vanished_store_fails_and_is_reopened_only_once_it_is_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.redb");
        let c = StorageComponent::new(&path);
        assert_eq!(c.health(), Health::Failed("store closed".into()));
        c.start().unwrap();
        assert_eq!(c.health(), Health::Healthy);
        let mut h = c.handle();
        h.append_committed(&[batch(1)]).unwrap();

        // The file disappears under the open handle.
        let aside = dir.path().join("aside.redb");
        std::fs::rename(&path, &aside).unwrap();
        assert!(matches!(c.health(), Health::Failed(why) if why.contains("node.redb")));
        let refused = c.recover().unwrap_err();
        assert!(refused.contains("not creating"), "{refused}");
        assert!(!path.exists(), "recovery must not create an empty store");
        assert!(matches!(c.health(), Health::Failed(_)));
        assert!(h.last_committed().is_err(), "writes stop while closed");

        // Back in place: recovery reopens it with its contents.
        std::fs::rename(&aside, &path).unwrap();
        c.recover().unwrap();
        assert_eq!(c.health(), Health::Healthy);
        assert_eq!(h.last_committed().unwrap(), 1);
        c.stop();
    }

    #[test]
    fn a_replaced_file_is_detected_and_recovery_opens_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.redb");
        let c = StorageComponent::new(&path);
        c.start().unwrap();
        c.handle().append_committed(&[batch(1)]).unwrap();
        // A restored copy takes the path: a new inode with the same bytes.
        let copy = dir.path().join("copy.redb");
        std::fs::copy(&path, &copy).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::rename(&copy, &path).unwrap();
        match c.health() {
            Health::Failed(why) => assert!(why.contains("no longer the file"), "{why}"),
            other => panic!("{other:?}"),
        }
        c.recover().unwrap();
        assert_eq!(c.health(), Health::Healthy);
        assert_eq!(c.handle().last_committed().unwrap(), 1);
    }

    #[test]
    fn a_garbage_file_fails_to_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.redb");
        std::fs::write(&path, vec![7u8; 4096]).unwrap();
        let c = StorageComponent::new(&path);
        assert!(c.start().is_err());
        assert!(matches!(c.health(), Health::Failed(_)));
    }
}
