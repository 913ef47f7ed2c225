//! Bullshark and Narwhal parameters.

use std::time::Duration;

/// Parameters of a Bullshark node (its Narwhal worker and primary included). The
/// defaults suit a LAN; the names follow Narwhal's benchmark parameters.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BullsharkConfig {
    /// A worker seals its batch once it holds this many bytes.
    pub batch_size: usize,
    /// ... or once its oldest transaction waited this long.
    #[serde(rename = "max_batch_delay_ms", with = "dwcp_core::millis")]
    pub max_batch_delay: Duration,
    /// The primary proposes early once its ready batch digests take this many bytes
    /// (32 per digest) and the leader rule lets it advance.
    pub header_size: usize,
    /// The primary proposes at the latest this long after its previous header.
    #[serde(rename = "max_header_delay_ms", with = "dwcp_core::millis")]
    pub max_header_delay: Duration,
    /// Rounds kept below the last committed leader before garbage collection.
    pub gc_depth: u64,
    /// Period of retransmissions and of retries to fetch missing data.
    #[serde(rename = "sync_retry_ms", with = "dwcp_core::millis")]
    pub sync_retry: Duration,
    /// Attempts to fetch a missing parent or batch for a pending header or
    /// certificate before it is dropped. Batches a commit waits for are fetched
    /// until they arrive.
    pub max_sync_attempts: u32,
    /// Headers and certificates more than this many rounds above the highest round
    /// this node knows are refused.
    pub max_round_ahead: u64,
    /// Most certificates buffered while their parents are fetched.
    pub max_pending_certificates: usize,
    /// Most bytes of batches from one member that no certificate names yet.
    pub max_unreferenced_batch_bytes: usize,
    /// Bytes of already committed batches kept to serve peers that still fetch
    /// them (oldest dropped first). A node that falls further behind than this
    /// cannot fetch what it missed.
    pub retain_committed_batch_bytes: usize,
    /// Most bytes of this node's own transactions not yet proposed in a header
    /// (waiting for a batch, or sealed and waiting for acknowledgements or a
    /// header); more are dropped. This is the workers' back-pressure: a node cannot
    /// seal batches faster than consensus takes them.
    pub max_pending_bytes: usize,
    /// Bytes of committed order entries (batch digests and the commit rule's state
    /// after each) kept to bring peers that fell behind garbage collection up to
    /// date (oldest dropped first); see [`super::transfer`].
    pub retain_order_bytes: usize,

    /// Committed sequence numbers over which repeated transactions are dropped
    /// (0 turns it off). Needed when clients send a transaction to several nodes.
    pub dedup_window: u64,
    /// Most batch digests in one header; the proposer leaves the rest for its next
    /// header, and a node does not vote for a header with more.
    pub max_header_batches: usize,
    /// Replace the quorum `2f+1` (votes per certificate, parents per header) with
    /// this many. Only for tests that show the simulator catches the forks a
    /// too-small quorum causes; it exists only with the `unsafe-test-hooks` feature.
    #[cfg(feature = "unsafe-test-hooks")]
    #[serde(skip)]
    pub unsafe_quorum_override: Option<usize>,
}

impl Default for BullsharkConfig {
    fn default() -> Self {
        BullsharkConfig {
            batch_size: 500_000,
            max_batch_delay: Duration::from_millis(100),
            header_size: 1_000,
            max_header_delay: Duration::from_millis(200),
            gc_depth: 50,
            sync_retry: Duration::from_millis(200),
            max_sync_attempts: 30,
            max_round_ahead: 100,
            max_pending_certificates: 4_096,
            max_unreferenced_batch_bytes: 256 << 20,
            retain_committed_batch_bytes: 64 << 20,
            max_pending_bytes: 64 << 20,
            retain_order_bytes: 16 << 20,

            dedup_window: 1_024,
            max_header_batches: 4_096,
            #[cfg(feature = "unsafe-test-hooks")]
            unsafe_quorum_override: None,
        }
    }
}

impl BullsharkConfig {
    /// Why these parameters cannot run, if they cannot.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("batch_size", self.batch_size as u64),
            ("header_size", self.header_size as u64),
            ("gc_depth", self.gc_depth),
            ("max_sync_attempts", u64::from(self.max_sync_attempts)),
            ("max_round_ahead", self.max_round_ahead),
            ("max_header_batches", self.max_header_batches as u64),
            (
                "max_header_delay_ms",
                self.max_header_delay.as_millis() as u64,
            ),
            ("sync_retry_ms", self.sync_retry.as_millis() as u64),
        ];
        match positive.iter().find(|(_, v)| *v == 0) {
            Some((name, _)) => Err(format!("bullshark: {name} must be positive")),
            None => Ok(()),
        }
    }

    /// How many of the newest committed batches a restarted engine needs back from
    /// its store (the `tail` of [`dwcp_core::storage::Storage::recover`]): those
    /// the dedup window covers, and at least the last one, which says where the
    /// output stands. A driver that hands back fewer makes
    /// [`super::BullsharkEngine::new`] refuse to start.
    pub fn restore_tail(&self) -> usize {
        usize::try_from(self.dedup_window)
            .unwrap_or(usize::MAX)
            .max(1)
    }
}
