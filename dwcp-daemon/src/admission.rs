//! Admission control for client transactions: a node's inbox carries both consensus
//! frames and client submissions, and a flood of submissions must not crowd out the
//! frames that let the node commit. Client bytes waiting in the inbox are capped; a
//! submission over the cap is refused at once (HTTP 503), so an overloaded node
//! keeps committing at its capacity instead of dropping its peers' messages.
//!
//! The same gate caps the bytes of large frames from peers waiting in an inbox
//! ([`BULK_FRAME`] and up: batches of transactions), so that a consensus message
//! never queues behind more than [`BULK_BYTES`] of them; a frame over the cap is
//! dropped as a congested link would drop it, and the engine sends it again.

use bytes::Bytes;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Frames of this many bytes or more count against an inbox's [`BULK_BYTES`].
pub const BULK_FRAME: usize = 64 << 10;

/// Most bytes of large frames waiting in one inbox.
pub const BULK_BYTES: usize = 32 << 20;

/// Bytes of client transactions waiting for one driver, with a cap.
#[derive(Debug)]
pub struct SubmitGate {
    queued: AtomicUsize,
    limit: usize,
}

/// Client bytes admitted into an inbox; they leave the gate's count when the permit
/// is dropped, which the driver does as it takes the submission.
#[derive(Debug)]
pub struct Permit {
    gate: Arc<SubmitGate>,
    bytes: usize,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.gate.queued.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

impl SubmitGate {
    /// A gate admitting at most `limit` bytes of waiting transactions.
    pub fn new(limit: usize) -> Arc<SubmitGate> {
        Arc::new(SubmitGate {
            queued: AtomicUsize::new(0),
            limit,
        })
    }

    /// Admits `txs` if they fit under the cap (a submission larger than the whole
    /// cap is admitted when nothing waits, so it is never refused forever).
    pub fn try_admit(self: &Arc<Self>, txs: &[Bytes]) -> Option<Permit> {
        self.try_admit_bytes(txs.iter().map(Bytes::len).sum())
    }

    /// Admits `bytes` of anything (a large frame, say) under the same rule.
    pub fn try_admit_bytes(self: &Arc<Self>, bytes: usize) -> Option<Permit> {
        let mut queued = self.queued.load(Ordering::Acquire);
        loop {
            if queued > 0 && queued + bytes > self.limit {
                return None;
            }
            match self.queued.compare_exchange_weak(
                queued,
                queued + bytes,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Some(Permit {
                        gate: Arc::clone(self),
                        bytes,
                    })
                }
                Err(now) => queued = now,
            }
        }
    }

    /// Bytes waiting now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_holds_and_permits_give_their_bytes_back() {
        let gate = SubmitGate::new(100);
        let tx = |n| vec![Bytes::from(vec![0u8; n])];
        let a = gate.try_admit(&tx(60)).expect("fits");
        assert!(gate.try_admit(&tx(50)).is_none());
        let b = gate.try_admit(&tx(40)).expect("fits exactly");
        assert_eq!(gate.queued(), 100);
        drop(a);
        assert_eq!(gate.queued(), 40);
        drop(b);
        assert_eq!(gate.queued(), 0);
        // Larger than the cap, but alone: admitted, so it is not refused forever.
        let big = gate.try_admit(&tx(500)).expect("alone");
        assert!(gate.try_admit(&tx(1)).is_none());
        drop(big);
        assert!(gate.try_admit(&tx(1)).is_some());
    }
}
