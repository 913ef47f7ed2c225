//! The engine a node runs: chosen by name from [`dwcp_consensus::registry`], with its
//! parameters read from the node config's table of that name, and what the daemon
//! needs of it (build it from a store's recovered state, and drive it). Nothing
//! here names an engine.

use crate::driver::inbox::{DriverInput, Transport};
use crate::driver::Driver;
use crate::metrics::DriverMetrics;
use crate::supervision::storage::SharedStore;
use dwcp_consensus::registry::{self, Protocol, ProtocolVisitor, UnknownEngine};
use dwcp_core::codec::DEFAULT_MAX_FRAME;
use dwcp_core::{Committed, Committee, Engine, EngineStatus, NodeKeys, Recovered};
use std::fmt;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

/// An engine and its parameters, checked.
#[derive(Clone)]
pub struct EngineConfig(Arc<dyn Configured>);

impl EngineConfig {
    /// Engine `name` with the parameters in `table` (`None`: its defaults): a clear
    /// error for an unknown name, an unknown or mistyped field, or parameters the
    /// engine cannot run with.
    pub fn new(name: &str, table: Option<&toml::Table>) -> Result<EngineConfig, String> {
        struct Read<'a>(Option<&'a toml::Table>);
        impl ProtocolVisitor for Read<'_> {
            type Output = Result<EngineConfig, String>;
            fn visit<P: Protocol>(self) -> Self::Output {
                let cfg: P::Config = match self.0 {
                    None => P::Config::default(),
                    Some(t) => toml::Value::Table(t.clone())
                        .try_into()
                        .map_err(|e| format!("[{}]: {e}", P::NAME))?,
                };
                EngineConfig::of::<P>(cfg)
            }
        }
        registry::with_protocol(name, Read(table)).map_err(|e: UnknownEngine| e.to_string())?
    }

    /// Engine `P` with parameters `cfg`, if it can run with them.
    pub fn of<P: Protocol>(cfg: P::Config) -> Result<EngineConfig, String> {
        P::validate(&cfg)?;
        Ok(EngineConfig(Arc::new(Typed::<P>(cfg))))
    }

    /// The engine's name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// How many of the newest committed batches the engine needs back from its
    /// store on a restart: what every driver passes to
    /// [`dwcp_core::storage::Storage::recover`].
    pub fn restore_tail(&self) -> usize {
        self.0.restore_tail()
    }

    /// The parameters as a config table (every field, defaults included).
    pub fn table(&self) -> toml::Table {
        self.0.table()
    }

    /// The engine rebuilt from `recovered`, or why it cannot be.
    pub fn build(
        &self,
        keys: &NodeKeys,
        committee: &Committee,
        recovered: Recovered,
    ) -> Result<BuiltEngine, String> {
        self.0.build(keys, committee, recovered)
    }
}

impl fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineConfig")
            .field("engine", &self.name())
            .field("params", &self.table())
            .finish()
    }
}

/// One registered engine's parameters, behind a type the daemon can hold.
trait Configured: Send + Sync {
    fn name(&self) -> &'static str;
    fn restore_tail(&self) -> usize;
    fn table(&self) -> toml::Table;
    fn build(
        &self,
        keys: &NodeKeys,
        committee: &Committee,
        recovered: Recovered,
    ) -> Result<BuiltEngine, String>;
}

struct Typed<P: Protocol>(P::Config);

impl<P: Protocol> Configured for Typed<P> {
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn restore_tail(&self) -> usize {
        P::restore_tail(&self.0)
    }

    fn table(&self) -> toml::Table {
        match toml::Value::try_from(&self.0) {
            Ok(toml::Value::Table(t)) => t,
            _ => toml::Table::new(),
        }
    }

    fn build(
        &self,
        keys: &NodeKeys,
        committee: &Committee,
        recovered: Recovered,
    ) -> Result<BuiltEngine, String> {
        let engine = P::build(keys.clone(), committee.clone(), &self.0, recovered)?;
        Ok(BuiltEngine(Box::new(engine)))
    }
}

/// An engine built from its config and a store's recovered state.
pub struct BuiltEngine(Box<dyn Drivable>);

impl BuiltEngine {
    /// The engine's progress.
    pub fn status(&self) -> EngineStatus {
        self.0.status()
    }
}

/// An engine the driver can run, whatever its type.
trait Drivable: Send {
    fn status(&self) -> EngineStatus;
    fn drive(
        self: Box<Self>,
        keys: &NodeKeys,
        committee: &Committee,
        store: SharedStore,
        parts: DriverParts,
    ) -> Result<(), String>;
}

impl<E> Drivable for E
where
    E: Engine + Send + 'static,
    E::Message: dwcp_core::MessageKind,
{
    fn status(&self) -> EngineStatus {
        Engine::status(self)
    }

    fn drive(
        self: Box<Self>,
        keys: &NodeKeys,
        committee: &Committee,
        store: SharedStore,
        parts: DriverParts,
    ) -> Result<(), String> {
        let driver = Driver::new(keys.id, committee.clone(), *self, store, DEFAULT_MAX_FRAME)
            .with_status(parts.status)
            .with_metrics(parts.metrics);
        // A driver that died holding the lock poisons it; the receiver is fine.
        let rx = parts.inbox.lock().unwrap_or_else(|p| p.into_inner());
        driver
            .run(&rx, &*parts.transport, &parts.commits)
            .map(|_| ())
            .map_err(|e| e.to_string())
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
pub fn run_driver(
    engine: BuiltEngine,
    keys: &NodeKeys,
    committee: &Committee,
    store: SharedStore,
    parts: DriverParts,
) -> Result<(), String> {
    engine.0.drive(keys, committee, store, parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_registered_engine_reads_its_defaults_and_its_own_table_back() {
        for name in registry::ENGINES {
            let c = EngineConfig::new(name, None).expect("defaults");
            assert_eq!(c.name(), *name);
            let again = EngineConfig::new(name, Some(&c.table())).expect("its own table");
            assert_eq!(again.table(), c.table());
            assert!(c.restore_tail() > 0);
        }
    }

    #[test]
    fn bad_names_fields_and_values_are_refused_clearly() {
        let e = EngineConfig::new("raft", None).unwrap_err();
        assert!(
            e.contains("unknown engine \"raft\"") && e.contains("pbft"),
            "{e}"
        );
        let table = |s: &str| s.parse::<toml::Table>().expect("toml");
        let e = EngineConfig::new("pbft", Some(&table("batch_sise = 10"))).unwrap_err();
        assert!(e.contains("[pbft]") && e.contains("batch_sise"), "{e}");
        let e = EngineConfig::new("pbft", Some(&table("batch_size = \"ten\""))).unwrap_err();
        assert!(e.contains("[pbft]"), "{e}");
        let e = EngineConfig::new("pbft", Some(&table("batch_size = 0"))).unwrap_err();
        assert!(e.contains("batch_size must be positive"), "{e}");
        let c = EngineConfig::new("bullshark", Some(&table("max_batch_delay_ms = 5"))).unwrap();
        assert_eq!(c.table()["max_batch_delay_ms"].as_integer(), Some(5));
    }
}
