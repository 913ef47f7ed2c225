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

/// Committed batches handed back to a restarted PBFT replica, at least.
const PBFT_RESTORE_TAIL: usize = 4096;

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

    /// How many of the newest committed batches the engine needs back from its
    /// store on a restart: what every driver passes to
    /// [`dwcp_core::storage::Storage::recover`].
    pub fn restore_tail(&self) -> usize {
        match self {
            // PBFT takes its position and its repeats from the tail.
            EngineConfig::Pbft(c) => usize::try_from(c.dedup_window)
                .unwrap_or(usize::MAX)
                .max(PBFT_RESTORE_TAIL),
            EngineConfig::Bullshark(c) => c.restore_tail(),
        }
    }

    /// The engine rebuilt from `recovered`, or why it cannot be.
    pub fn build(
        &self,
        keys: &NodeKeys,
        committee: &Committee,
        recovered: Recovered,
    ) -> Result<BuiltEngine, String> {
        Ok(match self {
            EngineConfig::Pbft(c) => BuiltEngine::Pbft(
                Pbft::new(keys.clone(), committee.clone(), c.clone(), recovered)
                    .map_err(|e| e.to_string())?,
            ),
            EngineConfig::Bullshark(c) => BuiltEngine::Bullshark(
                BullsharkEngine::new(keys.clone(), committee.clone(), c.clone(), recovered)
                    .map_err(|e| e.to_string())?,
            ),
        })
    }
}

/// An engine built from its config and a store's recovered state.
// Built once per start and moved into the driver thread; boxing buys nothing.
#[allow(clippy::large_enum_variant)]
pub enum BuiltEngine {
    /// PBFT.
    Pbft(Pbft),
    /// Bullshark.
    Bullshark(BullsharkEngine),
}

impl BuiltEngine {
    /// The engine's progress.
    pub fn status(&self) -> EngineStatus {
        match self {
            BuiltEngine::Pbft(e) => e.status(),
            BuiltEngine::Bullshark(e) => e.status(),
        }
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

/// Runs `engine`'s driver until it stops; returns the driver's error, if any.
pub fn run_driver<S: Storage>(
    engine: BuiltEngine,
    keys: &NodeKeys,
    committee: &Committee,
    store: S,
    parts: DriverParts,
) -> Result<(), String> {
    match engine {
        BuiltEngine::Pbft(e) => drive(e, keys, committee, store, parts),
        BuiltEngine::Bullshark(e) => drive(e, keys, committee, store, parts),
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
