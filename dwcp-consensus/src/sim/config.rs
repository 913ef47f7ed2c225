//! What a simulation runs (its nodes, network, faults and load) and what it
//! measured.

use super::adversary::Behaviour;
use super::network::Network;
use dwcp_core::crypto::SignatureScheme;
use dwcp_core::{Committed, Time};
use std::time::Duration;

/// The client load: bursts of transactions sent to every node.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Time between bursts.
    pub burst_interval: Duration,
    /// Transactions per burst.
    pub burst_size: usize,
    /// Bytes per transaction (at least 16).
    pub tx_size: usize,
    /// No bursts after this.
    pub until: Time,
}

/// Crash-and-restart schedule for nodes with [`Behaviour::Crash`].
#[derive(Clone, Debug)]
pub struct CrashPlan {
    /// Mean time up between crashes.
    pub mean_uptime: Duration,
    /// Mean time down before the restart.
    pub mean_downtime: Duration,
    /// No crashes start after this.
    pub until: Time,
    /// A power loss of the whole committee: at this instant every node that is up
    /// crashes at once (after the last effect of its last input), whatever its
    /// behaviour, and restarts from its store after a downtime drawn as above.
    pub crash_all_at: Option<Time>,
}

/// Everything a simulation run depends on.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Committee size.
    pub nodes: usize,
    /// The seed: same seed, same run.
    pub seed: u64,
    /// Signature scheme (the insecure stand-in makes large runs cheap).
    pub scheme: SignatureScheme,
    /// Links and partitions.
    pub network: Network,
    /// Behaviour of each node, by id.
    pub behaviours: Vec<Behaviour>,
    /// Crash schedule for crashing nodes.
    pub crash: CrashPlan,
    /// Client load.
    pub workload: Workload,
    /// The run stops at this virtual time.
    pub end: Time,
    /// Committed batches handed back to a restarted engine.
    pub restore_tail: usize,
    /// Keep the first honest node's committed log in the report.
    pub keep_log: bool,
    /// Where to keep each node's `redb` store; `None` keeps stores in memory.
    pub store_dir: Option<std::path::PathBuf>,
}

/// What a run measured.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// Batches committed (highest sequence number reached by an honest node).
    pub decisions: u64,
    /// Transactions submitted by the client.
    pub transactions_submitted: usize,
    /// Distinct transactions committed.
    pub transactions_committed: usize,
    /// Messages sent by all nodes (a broadcast counts once per recipient).
    pub messages: u64,
    /// Bytes of those messages.
    pub bytes: u64,
    /// Received messages that failed to decode.
    pub undecodable: u64,
    /// Safety violations found.
    pub violations: Vec<String>,
    /// Every transaction was committed by every honest node by the end.
    pub live: bool,
    /// Median commit latency (submit to commit at each honest node), ms of virtual time.
    pub latency_p50_ms: f64,
    /// 99th percentile of the same.
    pub latency_p99_ms: f64,
    /// Most view changes any honest node went through.
    pub view_changes: u64,
    /// Events processed.
    pub events: u64,
    /// Crashes injected.
    pub crashes: u64,
    /// Each node's final status (`None` if it was down or silent at the end).
    pub node_status: Vec<Option<dwcp_core::EngineStatus>>,
    /// Messages and bytes sent, by message kind ([`dwcp_core::MessageKind`]).
    pub by_kind: std::collections::BTreeMap<&'static str, (u64, u64)>,
    /// The first honest node's committed log, if asked for.
    #[serde(skip)]
    pub log: Vec<Committed>,
}
