//! The Noise transport as a component the
//! [`Supervisor`](super::supervisor::Supervisor) supervises.
//!
//! Start binds the listener and starts one dialler per peer; stop ends them and
//! every open connection. Health comes from the transport itself: `Failed` when it
//! is stopped or one of its tasks (listener or dialler) has ended, which only a panic
//! does; `Degraded` while fewer outgoing links are up than a quorum needs (this node
//! plus its connected peers), which the supervisor reports but does not try to
//! recover, since reconnecting is the diallers' job. Recovery stops the tasks and
//! starts them again on the same address, keeping the per-peer queues, breakers and
//! counters, so the engine never sees a new transport.

use crate::net::transport::Network;
use crate::supervision::supervisor::{Component, Health};
use std::sync::Arc;

/// The node's transport.
pub struct TransportComponent {
    network: Arc<Network>,
}

impl TransportComponent {
    /// The component's name, which dependents list.
    pub const NAME: &'static str = "transport";

    /// Supervises `network` (its tasks start with [`Component::start`]).
    pub fn new(network: Arc<Network>) -> TransportComponent {
        TransportComponent { network }
    }

    /// The transport.
    pub fn network(&self) -> &Arc<Network> {
        &self.network
    }
}

impl Component for TransportComponent {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn start(&self) -> Result<(), String> {
        let addr = self.network.listen_addr();
        self.network
            .run()
            .map_err(|e| format!("listening on {addr}: {e}"))
    }

    fn stop(&self) {
        self.network.halt();
    }

    fn health(&self) -> Health {
        if !self.network.running() {
            return Health::Failed("stopped".into());
        }
        if let Some(why) = self.network.dead_task() {
            return Health::Failed(why);
        }
        let committee = self.network.committee();
        let up = self.network.connected_peers();
        let quorum = committee.quorum_threshold();
        if up + 1 < quorum {
            Health::Degraded(format!(
                "{up} of {} peer links up; a quorum needs {quorum} members",
                committee.size() - 1
            ))
        } else {
            Health::Healthy
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::inbox::{DriverInput, Transport};
    use crate::net::peer_addr::PeerAddr;
    use crate::net::transport::TransportConfig;
    use bytes::Bytes;
    use dwcp_core::crypto::SignatureScheme;
    use dwcp_core::{Committee, NodeId};
    use std::net::SocketAddr;
    use std::sync::mpsc::{sync_channel, Receiver};
    use std::time::{Duration, Instant};

    fn free_addr() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }

    fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn frame_from(rx: &Receiver<DriverInput>) -> (NodeId, Bytes) {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(DriverInput::Frame { from, frame }) => (from, frame),
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// Four members on loopback, named `localhost:PORT`; node 0 is supervised.
    #[test]
    fn health_follows_links_and_a_dead_listener_is_restarted() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (committee, keys) = Committee::deterministic(4, SignatureScheme::Ed25519, 11);
        let addrs: Vec<SocketAddr> = (0..4).map(|_| free_addr()).collect();
        let peers: Vec<PeerAddr> = addrs
            .iter()
            .map(|a| format!("localhost:{}", a.port()).parse().unwrap())
            .collect();
        let mut inboxes = Vec::new();
        let nets: Vec<Arc<Network>> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let (tx, rx) = sync_channel(100);
                inboxes.push(rx);
                Arc::new(Network::new(
                    addrs[i],
                    peers.clone(),
                    k.clone(),
                    committee.clone(),
                    TransportConfig {
                        backoff_min: Duration::from_millis(10),
                        backoff_max: Duration::from_millis(100),
                        // Links to peers not yet started fail; an open breaker must
                        // not outlast the waits below (the default is 10 s).
                        breaker_open_for: Duration::from_millis(100),
                        ..TransportConfig::default()
                    },
                    tx,
                    rt.handle().clone(),
                ))
            })
            .collect();
        let c = TransportComponent::new(nets[0].clone());
        assert_eq!(c.health(), Health::Failed("stopped".into()));
        c.start().unwrap();
        // Alone: no peer link can come up, fewer than a quorum of 3.
        std::thread::sleep(Duration::from_millis(100));
        assert!(matches!(c.health(), Health::Degraded(why) if why.contains("0 of 3")));

        // One peer up: still one short of a quorum (self + 1 < 3).
        nets[1].run().unwrap();
        wait_for("link to 1", || nets[0].is_connected(NodeId(1)));
        assert!(matches!(c.health(), Health::Degraded(_)));
        nets[2].run().unwrap();
        wait_for("link to 2", || nets[0].is_connected(NodeId(2)));
        assert_eq!(c.health(), Health::Healthy);

        // The listener dies: Failed, and nothing reaches node 0.
        nets[0].kill_listener();
        wait_for("listener end", || matches!(c.health(), Health::Failed(_)));
        match c.health() {
            Health::Failed(why) => assert!(why.contains("listener"), "{why}"),
            other => panic!("{other:?}"),
        }

        // Recovery rebinds the same address; peers reconnect to it by name.
        c.recover().unwrap();
        wait_for("healthy again", || {
            nets[0].is_connected(NodeId(1)) && nets[0].is_connected(NodeId(2))
        });
        assert_eq!(c.health(), Health::Healthy);
        // Frames written into the old listener's connections may be lost until node
        // 1 notices and reconnects; then they arrive through the new listener.
        wait_for("a frame through the new listener", || {
            nets[1].send(NodeId(0), Bytes::from_static(b"after recovery"));
            std::thread::sleep(Duration::from_millis(20));
            inboxes[0]
                .try_iter()
                .any(|i| matches!(i, DriverInput::Frame { from, .. } if from == NodeId(1)))
        });
        nets[0].send(NodeId(2), Bytes::from_static(b"outgoing still works"));
        assert_eq!(
            frame_from(&inboxes[2]),
            (NodeId(0), Bytes::from_static(b"outgoing still works"))
        );

        c.stop();
        assert_eq!(c.health(), Health::Failed("stopped".into()));
        assert_eq!(nets[0].connected_peers(), 0);
        // Stopped means the port is free again.
        std::net::TcpListener::bind(addrs[0]).expect("listener released");
    }
}
