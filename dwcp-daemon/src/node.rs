//! One running node: storage, engine driver, transport and HTTP API, wired from a
//! [`NodeConfig`].

use crate::config::{load_committee, load_keys, NodeConfig};
use crate::engine_component::EngineComponent;
use crate::http::{router, NodeState, RateLimit};
use crate::manager::{Component, Manager, ManagerConfig};
use crate::transport::{start, TransportConfig};
use anyhow::{bail, Context};
use dwcp_core::storage::{RedbStore, Storage};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Inputs queued for the engine before the HTTP API answers "busy".
const INBOX: usize = 65_536;
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
    // Read what the HTTP API serves from the log, then let the engine own the store.
    let (initial_status, restored) = {
        let store = RedbStore::open(&cfg.store)
            .with_context(|| format!("opening {}", cfg.store.display()))?;
        let recovered = store.recover(4096)?;
        let status = cfg
            .engine_config()
            .status(&keys, &committee, recovered)
            .map_err(anyhow::Error::msg)?;
        let last = store.last_committed()?;
        let restored = store.committed(last.saturating_sub(RESTORE as u64) + 1, RESTORE)?;
        (status, restored)
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (inbox_tx, inbox_rx) = sync_channel(INBOX);
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(cfg.listen))
        .with_context(|| format!("binding {}", cfg.listen))?;
    let network = Arc::new(rt.block_on(async {
        start(
            listener,
            cfg.peers.clone(),
            keys.clone(),
            committee.clone(),
            TransportConfig::default(),
            inbox_tx.clone(),
        )
    })?);
    let status = Arc::new(Mutex::new(initial_status));
    let alive = Arc::new(AtomicBool::new(false));
    let (commit_tx, commit_rx) = channel();
    let metrics = crate::metrics::Metrics::new(&cfg.engine, keys.id);
    let engine = Arc::new(EngineComponent {
        store_path: cfg.store.clone(),
        keys: keys.clone(),
        committee: committee.clone(),
        engine: cfg.engine_config(),
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
    let manager = Arc::new(Manager::new(
        vec![engine as Arc<dyn Component>],
        ManagerConfig {
            interval: Duration::from_millis(cfg.health_interval_ms),
            ..ManagerConfig::default()
        },
    )?);
    manager.start_all()?;
    let state = Arc::new(NodeState {
        id: keys.id,
        status,
        recent: Mutex::new(
            restored
                .into_iter()
                .map(|c| {
                    let seq = c.seq;
                    let batch = crate::http::RecentCommit {
                        batch: c,
                        committed_unix_us: None,
                    };
                    (seq, batch)
                })
                .collect(),
        ),
        inbox: inbox_tx.clone(),
        network: network.clone(),
        committee_size: committee.size(),
        driver_alive: alive,
        token: cfg.http_token.clone(),
        ml: crate::http_ml::MlServices::embedded(),
        metrics,
        manager: manager.clone(),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let supervisor = {
        let (m, stop) = (manager.clone(), stop.clone());
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
    let _ = supervisor.join();
    manager.stop_all();
    Ok(())
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
