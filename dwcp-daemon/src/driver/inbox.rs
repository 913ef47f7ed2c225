//! What crosses the driver's edge: what reaches it ([`DriverInput`]), the
//! [`FrameSink`] through which a transport fills its inbox (and the [`Delivery`] it
//! reports), the lanes the driver sorts its inbox into, and the [`Transport`] its
//! messages leave by. Transports depend on this module, not on the driver.

use bytes::Bytes;
use dwcp_core::NodeId;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;

/// Where encoded messages go. Implementations must not block for long: queue the
/// frame and return (a slow peer is the transport's problem, not the engine's).
pub trait Transport: Send {
    /// Queues `frame` for member `to`.
    fn send(&self, to: NodeId, frame: Bytes);
}

/// What reaches a driver from outside.
#[derive(Debug)]
pub enum DriverInput {
    /// An authenticated frame from a committee member, not yet decoded.
    Frame {
        /// The member the channel belongs to.
        from: NodeId,
        /// The encoded engine message.
        frame: Bytes,
    },
    /// A large frame (a batch of transactions, say) admitted by the inbox's
    /// [`crate::admission::SubmitGate`] for bulk bytes; the permit returns its bytes
    /// once the driver takes it. Bounding the bulk bytes waiting bounds how long a
    /// small consensus message can wait behind them.
    Bulk {
        /// The member the channel belongs to.
        from: NodeId,
        /// The encoded engine message.
        frame: Bytes,
        /// Its place under the inbox's bulk cap.
        permit: crate::admission::Permit,
    },
    /// Client transactions.
    Submit(Vec<Bytes>),
    /// Client transactions admitted by a [`crate::admission::SubmitGate`]; the
    /// permit returns their bytes to the gate once the driver takes them.
    Admitted(Vec<Bytes>, crate::admission::Permit),
    /// Stop after the current input.
    Shutdown,
}

/// What became of a frame handed to a [`FrameSink`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// It waits in the inbox.
    Queued,
    /// The inbox, or its allowance of large frames, was full: dropped.
    Dropped,
    /// The driver is gone.
    Closed,
}

/// Where a transport hands a node's incoming frames: the driver's inbox, and the
/// cap on bytes of large frames waiting in it ([`crate::admission::BULK_BYTES`]),
/// so that a small consensus message never queues behind more than that.
#[derive(Clone, Debug)]
pub struct FrameSink {
    pub(super) inbox: SyncSender<DriverInput>,
    bulk: Arc<crate::admission::SubmitGate>,
}

impl FrameSink {
    /// A sink into `inbox`.
    pub fn new(inbox: SyncSender<DriverInput>) -> FrameSink {
        FrameSink {
            inbox,
            bulk: crate::admission::SubmitGate::new(crate::admission::BULK_BYTES),
        }
    }

    /// Queues `frame` from `from` without blocking, or drops it.
    pub fn deliver(&self, from: NodeId, frame: Bytes) -> Delivery {
        let input = if frame.len() >= crate::admission::BULK_FRAME {
            let Some(permit) = self.bulk.try_admit_bytes(frame.len()) else {
                return Delivery::Dropped;
            };
            DriverInput::Bulk {
                from,
                frame,
                permit,
            }
        } else {
            DriverInput::Frame { from, frame }
        };
        match self.inbox.try_send(input) {
            Ok(()) => Delivery::Queued,
            Err(TrySendError::Full(_)) => Delivery::Dropped,
            Err(TrySendError::Disconnected(_)) => Delivery::Closed,
        }
    }
}

/// Inputs taken from a driver's inbox, sorted into lanes by priority: small
/// frames, large frames, client submissions. Each lane holds at most [`LANE_CAP`]
/// inputs; past that they stay in the bounded inbox, whose senders then see it full.
#[derive(Default)]
pub(super) struct Lanes {
    control: std::collections::VecDeque<DriverInput>,
    bulk: std::collections::VecDeque<DriverInput>,
    clients: std::collections::VecDeque<DriverInput>,
}

/// Most inputs held in one lane of a driver.
const LANE_CAP: usize = 4_096;

impl Lanes {
    /// Moves what waits in `inbox` into the lanes, then takes the first input of
    /// the first lane that has one.
    pub(super) fn next(&mut self, inbox: &Receiver<DriverInput>) -> Option<DriverInput> {
        while self.control.len() < LANE_CAP
            && self.bulk.len() < LANE_CAP
            && self.clients.len() < LANE_CAP
        {
            let Ok(input) = inbox.try_recv() else {
                break;
            };
            match input {
                DriverInput::Frame { .. } => self.control.push_back(input),
                DriverInput::Bulk { .. } => self.bulk.push_back(input),
                DriverInput::Submit(_) | DriverInput::Admitted(..) | DriverInput::Shutdown => {
                    self.clients.push_back(input)
                }
            }
        }
        self.control
            .pop_front()
            .or_else(|| self.bulk.pop_front())
            .or_else(|| self.clients.pop_front())
    }
}
