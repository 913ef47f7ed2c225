//! The engine driver as a component the [`Supervisor`](super::supervisor::Supervisor)
//! supervises: a thread running the driver over the node's inbox. If it stops (a
//! storage error, a bug), recovery starts a new one rebuilt from the `redb` store,
//! which resumes where the old one left off and fetches what it missed from peers.
//!
//! It depends on the `storage` component (it writes through that component's open
//! handle) and on the `transport` component (it sends through it).

use crate::driver::inbox::{DriverInput, Transport};
use crate::engines::{run_driver, DriverParts, EngineConfig};
use crate::metrics::DriverMetrics;
use crate::supervision::storage::{SharedStore, StorageComponent};
use crate::supervision::supervisor::{Component, Health};
use crate::supervision::transport::TransportComponent;
use dwcp_core::storage::Storage;
use dwcp_core::{Committed, Committee, EngineStatus, NodeKeys};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The engine driver of one node.
pub struct EngineComponent {
    /// The node's store, opened by its [`StorageComponent`].
    pub store: SharedStore,
    /// The node's keys.
    pub keys: NodeKeys,
    /// The committee.
    pub committee: Committee,
    /// The engine and its parameters.
    pub engine: EngineConfig,
    /// The node's inbox (shared so a new driver can take over after a failure).
    pub inbox: Arc<Mutex<Receiver<DriverInput>>>,
    /// A sender into the same inbox, to ask the driver to stop.
    pub inbox_tx: SyncSender<DriverInput>,
    /// Where outgoing frames go.
    pub transport: Arc<dyn Transport + Sync>,
    /// The engine's latest status.
    pub status: Arc<Mutex<EngineStatus>>,
    /// Where committed batches go.
    pub commits: Sender<Committed>,
    /// True while the driver thread runs.
    pub alive: Arc<AtomicBool>,
    /// Commit latency and traffic by message type, shared by every driver built.
    pub metrics: DriverMetrics,
    /// Why the last driver stopped, if it failed.
    pub last_error: Arc<Mutex<Option<String>>>,
    /// The running thread.
    pub handle: Mutex<Option<JoinHandle<()>>>,
}

impl EngineComponent {
    /// The component's name.
    pub const NAME: &'static str = "engine";
}

impl Component for EngineComponent {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn depends_on(&self) -> Vec<String> {
        vec![
            StorageComponent::NAME.to_string(),
            TransportComponent::NAME.to_string(),
        ]
    }

    fn start(&self) -> Result<(), String> {
        let store = self.store.clone();
        let recovered = store
            .recover(self.engine.restore_tail())
            .map_err(|e| e.to_string())?;
        // Built here, so that a store the engine cannot restart from fails the start
        // itself rather than the thread.
        let engine = self
            .engine
            .build(&self.keys, &self.committee, recovered)
            .map_err(|e| format!("{} cannot restart from its store: {e}", self.engine.name()))?;
        let parts = DriverParts {
            inbox: self.inbox.clone(),
            transport: self.transport.clone(),
            commits: self.commits.clone(),
            status: self.status.clone(),
            metrics: self.metrics.clone(),
        };
        let (keys, committee) = (self.keys.clone(), self.committee.clone());
        let (alive, last_error) = (self.alive.clone(), self.last_error.clone());
        alive.store(true, Ordering::SeqCst);
        let handle = std::thread::Builder::new()
            .name("engine".into())
            .spawn(move || {
                let result = run_driver(engine, &keys, &committee, store, parts);
                if let (Err(e), Ok(mut slot)) = (result, last_error.lock()) {
                    *slot = Some(e);
                }
                alive.store(false, Ordering::SeqCst);
            })
            .map_err(|e| e.to_string())?;
        if let Ok(mut h) = self.handle.lock() {
            *h = Some(handle);
        }
        Ok(())
    }

    fn stop(&self) {
        if self.alive.load(Ordering::SeqCst) {
            let _ = self.inbox_tx.send(DriverInput::Shutdown);
        }
        let handle = self.handle.lock().ok().and_then(|mut h| h.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }

    fn health(&self) -> Health {
        if self.alive.load(Ordering::SeqCst) {
            Health::Healthy
        } else {
            let why = self.last_error.lock().ok().and_then(|e| e.clone());
            Health::Failed(why.unwrap_or_else(|| "engine stopped".into()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::local::LocalNetwork;
    use crate::supervision::supervisor::{Supervisor, SupervisorConfig};
    use bytes::Bytes;
    use dwcp_consensus::registry::{BullsharkProtocol, PbftProtocol};
    use dwcp_core::crypto::SignatureScheme;
    use std::sync::mpsc::{channel, sync_channel};
    use std::time::{Duration, Instant};

    /// The in-process network stands in for the transport: nothing to start.
    struct InProcess;

    impl Component for InProcess {
        fn name(&self) -> &str {
            TransportComponent::NAME
        }
        fn start(&self) -> Result<(), String> {
            Ok(())
        }
        fn stop(&self) {}
        fn health(&self) -> Health {
            Health::Healthy
        }
    }

    /// An engine component of `keys.id` over `storage`, its inbox and `net`.
    fn component(
        storage: &StorageComponent,
        keys: NodeKeys,
        committee: Committee,
        engine: EngineConfig,
        (inbox_tx, inbox): (SyncSender<DriverInput>, Receiver<DriverInput>),
        net: &LocalNetwork,
        commits: Sender<Committed>,
    ) -> EngineComponent {
        EngineComponent {
            store: storage.handle(),
            transport: Arc::new(net.transport(keys.id)),
            keys,
            committee,
            engine,
            inbox: Arc::new(Mutex::new(inbox)),
            inbox_tx,
            status: Arc::new(Mutex::new(EngineStatus::default())),
            commits,
            alive: Arc::new(AtomicBool::new(false)),
            metrics: DriverMetrics::unregistered(),
            last_error: Arc::new(Mutex::new(None)),
            handle: Mutex::new(None),
        }
    }

    #[test]
    fn a_stopped_engine_is_restarted_from_its_store_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let (committee, keys) = Committee::deterministic(1, SignatureScheme::Ed25519, 8);
        let (tx, rx) = sync_channel(1000);
        let net = LocalNetwork::new(vec![tx.clone()]);
        let (ctx, crx) = channel();
        let storage = Arc::new(StorageComponent::new(dir.path().join("n0.redb")));
        let engine = Arc::new(component(
            &storage,
            keys[0].clone(),
            committee,
            EngineConfig::of::<PbftProtocol>(Default::default()).unwrap(),
            (tx.clone(), rx),
            &net,
            ctx,
        ));
        let cfg = SupervisorConfig {
            interval: Duration::from_millis(50),
            ..SupervisorConfig::default()
        };
        let parts: Vec<Arc<dyn Component>> = vec![engine.clone(), storage, Arc::new(InProcess)];
        let m = Arc::new(Supervisor::new(parts, cfg).unwrap());
        assert_eq!(m.order(), ["storage", "transport", "engine"]);
        m.start_all().unwrap();
        tx.send(DriverInput::Submit(vec![Bytes::from_static(b"first")]))
            .unwrap();
        let c1 = crx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(c1.seq, 1);

        // Fault: the driver thread stops. The supervisor notices and rebuilds it.
        tx.send(DriverInput::Shutdown).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while engine.alive.load(Ordering::SeqCst) {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(matches!(engine.health(), Health::Failed(_)));
        let injected = Instant::now();
        while m.reports()[2].recoveries == 0 {
            m.check_once();
            assert!(
                injected.elapsed() < Duration::from_secs(10),
                "{:?}",
                m.reports()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        tx.send(DriverInput::Submit(vec![Bytes::from_static(b"second")]))
            .unwrap();
        let c2 = match crx.recv_timeout(Duration::from_secs(10)) {
            Ok(c) => c,
            Err(e) => panic!(
                "{e}: {:?} {:?} {:?}",
                engine.status.lock().unwrap(),
                engine.health(),
                m.reports()
            ),
        };
        assert_eq!(
            c2.seq, 2,
            "the rebuilt engine continues the log from the store"
        );
        assert_eq!(c2.transactions, vec![Bytes::from_static(b"second")]);
        m.stop_all();
        assert!(!engine.alive.load(Ordering::SeqCst));
    }

    #[test]
    fn a_bullshark_node_with_a_dedup_window_above_4096_restarts_from_a_long_log() {
        use dwcp_consensus::bullshark::{BullsharkConfig, BullsharkEngine};
        use dwcp_core::storage::{MemoryStore, RedbStore};
        use dwcp_core::{Effect, Effects, Engine, Input, Record, Time};

        // A committee of one commits a batch every two rounds; small batches and a
        // header as soon as one is ready make a log of 4,200 batches quick.
        let window = 5_000;
        let cfg = BullsharkConfig {
            batch_size: 1,
            header_size: 32,
            dedup_window: window,
            ..BullsharkConfig::default()
        };
        let (committee, keys) = Committee::deterministic(1, SignatureScheme::Ed25519, 8);
        let mut e = BullsharkEngine::new(
            keys[0].clone(),
            committee.clone(),
            cfg.clone(),
            Default::default(),
        )
        .unwrap();
        let mut mem = MemoryStore::new();
        let mut fx = Effects::new();
        let mut now = Time::ZERO;
        let mut tx = 0u64;
        e.handle(now, Input::Start, &mut fx);
        while mem.last_committed().unwrap() < 4_200 {
            now = now.after(Duration::from_secs(1));
            tx += 1;
            e.handle(
                now,
                Input::Submit(vec![Bytes::from(tx.to_le_bytes().to_vec())]),
                &mut fx,
            );
            for effect in fx.drain() {
                match effect {
                    Effect::Persist(r) => mem.apply(&[r]).unwrap(),
                    Effect::Commit(c) => mem.append_committed(&[c]).unwrap(),
                    _ => {}
                }
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n0.redb");
        {
            let everything = mem.recover(usize::MAX).unwrap();
            let mut disk = RedbStore::open(&path).unwrap();
            let mut records: Vec<Record> = everything
                .wal
                .into_iter()
                .map(|(key, value)| Record::Put { key, value })
                .collect();
            records.extend(everything.checkpoints.into_iter().map(Record::Checkpoint));
            disk.apply(&records).unwrap();
            disk.append_committed(&everything.committed_tail).unwrap();
        }

        let storage = StorageComponent::new(&path);
        storage.start().unwrap();
        let (tx, rx) = sync_channel(10);
        let net = LocalNetwork::new(vec![tx.clone()]);
        let (ctx, _crx) = channel();
        let engine = component(
            &storage,
            keys[0].clone(),
            committee,
            EngineConfig::of::<BullsharkProtocol>(cfg).unwrap(),
            (tx, rx),
            &net,
            ctx,
        );
        engine
            .start()
            .expect("restarts with every batch its dedup window covers");
        engine.stop();
        storage.stop();
    }
}
