//! One running node, wired from a [`NodeConfig`]: the managed components (storage,
//! transport, engine driver, compression selector, allocator) and the HTTP API.

use crate::config::{load_committee, load_keys, NodeConfig};
use crate::driver::inbox::DriverInput;
use crate::engines::EngineConfig;
use crate::http::router;
use crate::http::state::{MlServices, NodeState, RateLimit};
use crate::metrics::Metrics;
use crate::net::transport::{Network, TransportConfig};
use crate::supervision::engine::EngineComponent;
use crate::supervision::storage::StorageComponent;
use crate::supervision::supervisor::{Component, Supervisor, SupervisorConfig};
use crate::supervision::transport::TransportComponent;
use anyhow::{bail, Context};
use dwcp_core::storage::{RedbStore, Storage};
use dwcp_core::{Committed, Committee, EngineStatus, NodeKeys};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Inputs queued for the engine before the HTTP API answers "busy".
const INBOX: usize = 65_536;
/// Client bytes that may wait in the engine's inbox before submissions are refused.
const SUBMIT_QUEUE_BYTES: usize = 64 << 20;
/// Committed batches restored into memory at start for `GET /v1/committed`.
const RESTORE: usize = 10_000;

/// Runs the node until SIGINT or SIGTERM.
pub fn run(cfg: NodeConfig) -> anyhow::Result<()> {
    let committee = load_committee(&cfg.committee)?;
    let keys = load_keys(&cfg.key, &committee)?;
    if keys.id.0 != cfg.id {
        bail!(
            "the key file is for {} but the config says id {}",
            keys.id,
            cfg.id
        );
    }
    if cfg.peers.len() != committee.size() {
        bail!(
            "{} peer addresses for a committee of {}",
            cfg.peers.len(),
            committee.size()
        );
    }
    // Read what the HTTP API serves from the log, then close it: the storage
    // component opens it for good.
    let engine = cfg.engine_config()?;
    let (initial_status, restored) = {
        let store = RedbStore::open(&cfg.store)
            .with_context(|| format!("opening {}", cfg.store.display()))?;
        let recovered = store.recover(engine.restore_tail())?;
        let status = engine
            .build(&keys, &committee, recovered)
            .map_err(anyhow::Error::msg)?
            .status();
        let last = store.last_committed()?;
        let restored = store.committed(last.saturating_sub(RESTORE as u64) + 1, RESTORE)?;
        (status, restored)
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    for (i, p) in cfg.peers.iter().enumerate() {
        if i != usize::from(cfg.id) {
            if let Err(e) = p.resolve() {
                eprintln!("dwcpd: peer {i} at {p} does not resolve yet ({e}); will keep trying");
            }
        }
    }
    let w = wire(
        &cfg,
        engine,
        &keys,
        &committee,
        initial_status,
        rt.handle().clone(),
    );
    let supervisor = Arc::new(Supervisor::new(
        w.components(),
        SupervisorConfig {
            interval: Duration::from_millis(cfg.health_interval_ms),
            ..SupervisorConfig::default()
        },
    )?);
    supervisor.start_all()?;
    let Wiring {
        network,
        ml,
        inbox: inbox_tx,
        status,
        driver_alive: alive,
        commits: commit_rx,
        metrics,
        ..
    } = w;
    let state = Arc::new(NodeState {
        id: keys.id,
        status,
        recent: Mutex::new(
            restored
                .into_iter()
                .map(|c| {
                    let seq = c.seq;
                    let batch = crate::http::state::RecentCommit {
                        batch: c,
                        committed_unix_us: None,
                    };
                    (seq, batch)
                })
                .collect(),
        ),
        inbox: inbox_tx.clone(),
        submit_gate: crate::admission::SubmitGate::new(SUBMIT_QUEUE_BYTES),
        network: network.clone(),
        committee_size: committee.size(),
        driver_alive: alive,
        token: cfg.http_token.clone(),
        ml,
        metrics,
        supervisor: supervisor.clone(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let checks = {
        let (m, stop) = (supervisor.clone(), stop.clone());
        std::thread::Builder::new()
            .name("manager".into())
            .spawn(move || m.run(stop))?
    };
    let id = keys.id;
    let commit_state = state.clone();
    std::thread::Builder::new()
        .name("commits".into())
        .spawn(move || {
            for c in commit_rx {
                commit_state.on_commit(c);
            }
        })?;

    let limit = Arc::new(RateLimit::new(
        cfg.http_rate_per_second,
        cfg.http_rate_burst,
    ));
    let app = router(state, cfg.http_body_limit, limit.clone());
    rt.block_on(async {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                limit.forget_idle();
            }
        });
        let l = tokio::net::TcpListener::bind(cfg.http)
            .await
            .with_context(|| format!("binding {}", cfg.http))?;
        eprintln!(
            "dwcpd: node {} serving consensus on {} and HTTP on {}",
            id, cfg.listen, cfg.http
        );
        axum::serve(
            l,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("HTTP server")
    })?;
    stop.store(true, Ordering::Relaxed);
    let _ = checks.join();
    supervisor.stop_all();
    Ok(())
}

/// A node's parts before they run: its managed components and what the HTTP API
/// shares with them.
pub struct Wiring {
    /// The `redb` store.
    pub storage: Arc<StorageComponent>,
    /// The Noise transport.
    pub transport: Arc<TransportComponent>,
    /// The engine driver.
    pub engine: Arc<EngineComponent>,
    /// The compression selector and the allocator.
    pub ml: MlServices,
    /// The transport's network (the HTTP API reads its links).
    pub network: Arc<Network>,
    /// Sender into the engine's inbox.
    pub inbox: SyncSender<DriverInput>,
    /// The engine's latest status.
    pub status: Arc<Mutex<EngineStatus>>,
    /// True while the engine driver thread runs.
    pub driver_alive: Arc<AtomicBool>,
    /// Committed batches, in order.
    pub commits: Receiver<Committed>,
    /// The node's metrics.
    pub metrics: Metrics,
}

impl Wiring {
    /// Every managed component: storage, transport, engine (after the first two),
    /// compression and allocator.
    pub fn components(&self) -> Vec<Arc<dyn Component>> {
        vec![
            self.storage.clone(),
            self.transport.clone(),
            self.engine.clone(),
            self.ml.selector.clone(),
            self.ml.maddpg.clone(),
        ]
    }
}

/// Builds the components of the node `cfg` describes, running `engine`, none
/// started, the transport's tasks to run on `runtime`.
pub fn wire(
    cfg: &NodeConfig,
    engine: EngineConfig,
    keys: &NodeKeys,
    committee: &Committee,
    initial_status: EngineStatus,
    runtime: tokio::runtime::Handle,
) -> Wiring {
    let (inbox_tx, inbox_rx) = sync_channel(INBOX);
    let network = Arc::new(Network::new(
        cfg.listen,
        cfg.peers.clone(),
        keys.clone(),
        committee.clone(),
        TransportConfig::default(),
        inbox_tx.clone(),
        runtime,
    ));
    let storage = Arc::new(StorageComponent::new(&cfg.store));
    let status = Arc::new(Mutex::new(initial_status));
    let alive = Arc::new(AtomicBool::new(false));
    let (commit_tx, commit_rx) = channel();
    let metrics = Metrics::new(&cfg.engine, keys.id);
    let engine = Arc::new(EngineComponent {
        store: storage.handle(),
        keys: keys.clone(),
        committee: committee.clone(),
        engine,
        inbox: Arc::new(Mutex::new(inbox_rx)),
        inbox_tx: inbox_tx.clone(),
        transport: network.clone(),
        status: status.clone(),
        commits: commit_tx,
        alive: alive.clone(),
        metrics: metrics.driver(),
        last_error: Arc::new(Mutex::new(None)),
        handle: Mutex::new(None),
    });
    Wiring {
        storage,
        transport: Arc::new(TransportComponent::new(network.clone())),
        engine,
        ml: MlServices::embedded(),
        network,
        inbox: inbox_tx,
        status,
        driver_alive: alive,
        commits: commit_rx,
        metrics,
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{save_committee, save_keys};
    use crate::supervision::supervisor::Health;
    use dwcp_core::crypto::SignatureScheme;

    /// The node's real wiring: every component, the engine after what it uses, and
    /// all of them healthy once started (a committee of one needs no links).
    #[test]
    fn node_wiring_declares_the_dependencies_and_starts_healthy() {
        let dir = tempfile::tempdir().unwrap();
        let (committee, keys) = Committee::deterministic(1, SignatureScheme::Ed25519, 21);
        save_committee(&committee, &dir.path().join("committee.json")).unwrap();
        save_keys(&keys[0], &dir.path().join("node-0.key")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let path = dir.path().join("node-0.toml");
        std::fs::write(
            &path,
            format!(
                "id = 0\nlisten = \"127.0.0.1:{port}\"\nhttp = \"127.0.0.1:0\"\n\
                 peers = [\"localhost:{port}\"]\ncommittee = \"committee.json\"\n\
                 key = \"node-0.key\"\nstore = \"node-0.redb\"\n\
                 http_token = \"0123456789abcdef\"\n"
            ),
        )
        .unwrap();
        let cfg = NodeConfig::load(&path).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let w = wire(
            &cfg,
            cfg.engine_config().unwrap(),
            &keys[0],
            &committee,
            EngineStatus::default(),
            rt.handle().clone(),
        );
        let deps: Vec<(String, Vec<String>)> = w
            .components()
            .iter()
            .map(|c| (c.name().to_string(), c.depends_on()))
            .collect();
        let deps_of = |n: &str| deps.iter().find(|(m, _)| m == n).map(|(_, d)| d.clone());
        assert_eq!(
            deps_of("engine"),
            Some(vec!["storage".to_string(), "transport".to_string()])
        );
        for independent in ["storage", "transport", "compression", "allocator"] {
            assert_eq!(deps_of(independent), Some(vec![]), "{independent}");
        }
        let m = Arc::new(Supervisor::new(w.components(), SupervisorConfig::default()).unwrap());
        let order = m.order();
        let at = |n: &str| order.iter().position(|m| m == n).unwrap();
        assert!(at("storage") < at("engine") && at("transport") < at("engine"));
        m.start_all().unwrap();
        m.check_once();
        for r in m.reports() {
            assert_eq!(r.health, Health::Healthy, "{}", r.name);
        }
        assert!(w.driver_alive.load(Ordering::SeqCst));
        m.stop_all();
        assert!(!w.driver_alive.load(Ordering::SeqCst));
        assert!(!w.network.running());
    }
}
