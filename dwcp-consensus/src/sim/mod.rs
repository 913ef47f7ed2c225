//! A deterministic discrete-event simulator for any [`dwcp_core::Engine`].
//!
//! One seed fixes everything: link delays, losses, partitions, crashes and what
//! Byzantine nodes do. Virtual time means a minute of protocol runs in milliseconds.
//! After every commit and every signed statement the [`checker`] verifies agreement,
//! total order, validity, no duplicates, and that no honest node contradicts what it
//! signed before (also across crashes at any effect boundary); at the end, that every
//! submitted transaction was committed by every honest node (liveness after healing).

pub mod adversary;
pub mod checker;
mod config;
pub mod network;
mod runner;
pub mod scenario;
pub mod script;
pub mod twins;

pub use crate::statement::{Adversarial, Statement, StatementKey};
pub use adversary::Behaviour;
pub use config::{CrashPlan, SimConfig, SimReport, Workload};
pub use network::{LinkModel, Network, Partition};
pub use runner::Simulation;
pub use scenario::{run_sweep_cases, scenario, SweepSummary, PARTITION};
pub use script::{Endpoint, Fate, Script, ScriptCtx};
pub use twins::{TwinsCase, TwinsCrash, TwinsScript, TwinsShape, TwinsSummary};
