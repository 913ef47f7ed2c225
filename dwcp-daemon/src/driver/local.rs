//! The in-process network: every member's inbox in one process, each member
//! sending through its own [`LocalTransport`] (tests and the in-process benchmark).

use super::inbox::{Delivery, DriverInput, FrameSink, Transport};
use bytes::Bytes;
use dwcp_core::NodeId;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, RwLock};

/// The in-process network: one bounded inbox per member. Replacing an inbox (a
/// restarted node) is seen by every transport at once, as a reconnect would be.
#[derive(Clone, Default)]
pub struct LocalNetwork {
    inboxes: Arc<RwLock<Vec<FrameSink>>>,
    dropped: Arc<AtomicU64>,
}

impl LocalNetwork {
    /// A network over these inboxes, indexed by member id.
    pub fn new(inboxes: Vec<SyncSender<DriverInput>>) -> Self {
        LocalNetwork {
            inboxes: Arc::new(RwLock::new(
                inboxes.into_iter().map(FrameSink::new).collect(),
            )),
            dropped: Default::default(),
        }
    }

    /// Points member `id`'s traffic at a new inbox.
    pub fn replace(&self, id: NodeId, inbox: SyncSender<DriverInput>) {
        if let Ok(mut v) = self.inboxes.write() {
            if let Some(slot) = v.get_mut(id.index()) {
                *slot = FrameSink::new(inbox);
            }
        }
    }

    /// Member `id`'s inbox, to submit transactions or stop it.
    pub fn inbox(&self, id: NodeId) -> Option<SyncSender<DriverInput>> {
        self.sink(id).map(|s| s.inbox)
    }

    fn sink(&self, id: NodeId) -> Option<FrameSink> {
        self.inboxes.read().ok()?.get(id.index()).cloned()
    }

    /// The transport member `from` sends through.
    pub fn transport(&self, from: NodeId) -> LocalTransport {
        LocalTransport {
            from,
            network: self.clone(),
        }
    }

    /// Frames dropped because an inbox was full or closed.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Member `from`'s side of a [`LocalNetwork`]. A full inbox drops the frame (and
/// counts it), as a congested link would; the engines retransmit.
#[derive(Clone)]
pub struct LocalTransport {
    from: NodeId,
    network: LocalNetwork,
}

impl Transport for LocalTransport {
    fn send(&self, to: NodeId, frame: Bytes) {
        let Some(peer) = self.network.sink(to) else {
            return;
        };
        if peer.deliver(self.from, frame) != Delivery::Queued {
            self.network.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}
