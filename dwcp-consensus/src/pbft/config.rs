//! PBFT parameters.

use std::time::Duration;

/// Parameters of a PBFT replica. The defaults suit a LAN or the simulator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PbftConfig {
    /// Most transactions in one pre-prepare; a backup refuses a larger one.
    pub batch_size: usize,
    /// Most transaction bytes in one pre-prepare; a backup refuses a larger one.
    pub max_batch_bytes: usize,
    /// A checkpoint every this many sequence numbers (K in the paper).
    pub checkpoint_interval: u64,
    /// Sequence numbers accepted above the stable checkpoint (L, the watermark window).
    pub window: u64,
    /// Period of the housekeeping tick (resends, timeouts, catch-up).
    pub tick: Duration,
    /// Time without progress, with requests pending, before a view change.
    pub view_change_timeout: Duration,
    /// Committed batches kept in memory with their commit certificates to help
    /// peers catch up; one such batch proves itself. A peer further behind is
    /// served from the committed log in this replica's store (as far back as the
    /// store keeps it: all of it, with the stores in `dwcp_core::storage`), and
    /// takes each part once `f+1` members sent the same hash chain.
    pub retain_committed: usize,
    /// Committed batches per catch-up reply (certified entries or stored log).
    pub fetch_batch: usize,
    /// Sequence numbers over which executed transactions are remembered to drop repeats.
    pub dedup_window: u64,
    /// Most client transactions waiting to be ordered; further ones are dropped.
    pub max_pending: usize,
    /// Most messages for future views buffered until the view starts.
    pub max_buffered: usize,
    /// Relay transactions submitted to a backup to the primary. Turn off when clients
    /// send every transaction to every replica (as the simulator's client does).
    pub forward_requests: bool,
    /// Replace the quorum `⌈(n+f+1)/2⌉` with this many votes. Only for tests that show
    /// the simulator catches the forks a too-small quorum causes; it exists only with
    /// the `unsafe-test-hooks` feature.
    #[cfg(feature = "unsafe-test-hooks")]
    pub unsafe_quorum_override: Option<usize>,
}

impl Default for PbftConfig {
    fn default() -> Self {
        PbftConfig {
            batch_size: 512,
            max_batch_bytes: 32 << 20,
            checkpoint_interval: 16,
            window: 64,
            tick: Duration::from_millis(50),
            view_change_timeout: Duration::from_millis(800),
            retain_committed: 1024,
            fetch_batch: 64,
            dedup_window: 4096,
            max_pending: 1 << 20,
            max_buffered: 8192,
            forward_requests: true,
            #[cfg(feature = "unsafe-test-hooks")]
            unsafe_quorum_override: None,
        }
    }
}
