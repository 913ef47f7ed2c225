//! PBFT parameters.

use std::time::Duration;

/// Parameters of a PBFT replica. The defaults suit a LAN or the simulator.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
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
    #[serde(rename = "tick_ms", with = "dwcp_core::millis")]
    pub tick: Duration,
    /// Time without progress, with requests pending, before a view change.
    #[serde(rename = "view_change_timeout_ms", with = "dwcp_core::millis")]
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
    #[serde(skip)]
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

impl PbftConfig {
    /// Why these parameters cannot run, if they cannot.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("batch_size", self.batch_size as u64),
            ("max_batch_bytes", self.max_batch_bytes as u64),
            ("checkpoint_interval", self.checkpoint_interval),
            ("fetch_batch", self.fetch_batch as u64),
            ("max_pending", self.max_pending as u64),
            ("tick_ms", self.tick.as_millis() as u64),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("pbft: {name} must be positive"));
        }
        if self.window < 2 * self.checkpoint_interval {
            return Err(format!(
                "pbft: window ({}) must be at least twice checkpoint_interval ({}), or no \
                 checkpoint can become stable before the window closes",
                self.window, self.checkpoint_interval
            ));
        }
        if self.view_change_timeout < self.tick {
            return Err("pbft: view_change_timeout_ms must be at least tick_ms".into());
        }
        Ok(())
    }
}
