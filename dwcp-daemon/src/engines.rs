//! The engines a node can run, chosen by name in its config, and what the daemon
//! needs of each: build it from a store's recovered state, and drive it.

use crate::driver::{Driver, DriverInput, Transport};
use crate::metrics::DriverMetrics;
use dwcp_consensus::bullshark::{BullsharkConfig, BullsharkEngine};
use dwcp_consensus::pbft::{Pbft, PbftConfig};
use dwcp_core::codec::DEFAULT_MAX_FRAME;
use dwcp_core::storage::Storage;
use dwcp_core::{Committed, Committee, Engine, EngineStatus, MessageKind, NodeKeys, Recovered};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

/// Names accepted in a config's `engine` field.
pub const ENGINES: &[&str] = &["pbft", "bullshark"];

/// An engine and its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineConfig {
    /// PBFT.
    Pbft(PbftConfig),
    /// Bullshark on a Narwhal DAG.
    Bullshark(BullsharkConfig),
}

impl EngineConfig {
    /// The engine's name.
    pub fn name(&self) -> &'static str {
        match self {
            EngineConfig::Pbft(_) => "pbft",
            EngineConfig::Bullshark(_) => "bullshark",
        }
    }

    /// The status of the engine rebuilt from `recovered`, or why it cannot be.
    pub fn status(
        &self,
        keys: &NodeKeys,
        committee: &Committee,
        recovered: Recovered,
    ) -> Result<EngineStatus, String> {
        Ok(match self {
            EngineConfig::Pbft(c) => {
                Pbft::new(keys.clone(), committee.clone(), c.clone(), recovered)
                    .map_err(|e| e.to_string())?
                    .status()
            }
            EngineConfig::Bullshark(c) => {
                BullsharkEngine::new(keys.clone(), committee.clone(), c.clone(), recovered)
                    .map_err(|e| e.to_string())?
                    .status()
            }
        })
    }
}

/// Everything a driver thread needs besides its engine and store.
pub struct DriverParts {
    /// The node's inbox.
    pub inbox: Arc<Mutex<Receiver<DriverInput>>>,
    /// Where outgoing frames go.
    pub transport: Arc<dyn Transport + Sync>,
    /// Where committed batches go.
    pub commits: Sender<Committed>,
    /// Where the engine's status is published.
    pub status: Arc<Mutex<EngineStatus>>,
    /// Traffic and latency metrics.
    pub metrics: DriverMetrics,
}

/// Builds the configured engine from `recovered` and runs its driver until it
/// stops; returns the driver's error, if any.
pub fn run_driver<S: Storage>(
    cfg: &EngineConfig,
    keys: &NodeKeys,
    committee: &Committee,
    store: S,
    recovered: Recovered,
    parts: DriverParts,
) -> Result<(), String> {
    match cfg {
        EngineConfig::Pbft(c) => {
            let e = Pbft::new(keys.clone(), committee.clone(), c.clone(), recovered)
                .map_err(|e| e.to_string())?;
            drive(e, keys, committee, store, parts)
        }
        EngineConfig::Bullshark(c) => {
            let e = BullsharkEngine::new(keys.clone(), committee.clone(), c.clone(), recovered)
                .map_err(|e| e.to_string())?;
            drive(e, keys, committee, store, parts)
        }
    }
}

fn drive<E: Engine, S: Storage>(
    engine: E,
    keys: &NodeKeys,
    committee: &Committee,
    store: S,
    parts: DriverParts,
) -> Result<(), String>
where
    E::Message: MessageKind,
{
    let driver = Driver::new(keys.id, committee.clone(), engine, store, DEFAULT_MAX_FRAME)
        .with_status(parts.status)
        .with_metrics(parts.metrics);
    // A driver that died holding the lock poisons it; the receiver is fine.
    let rx = parts.inbox.lock().unwrap_or_else(|p| p.into_inner());
    driver
        .run(&rx, &*parts.transport, &parts.commits)
        .map(|_| ())
        .map_err(|e| e.to_string())
}
