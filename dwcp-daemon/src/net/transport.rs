//! TCP between committee members, every link encrypted and authenticated.
//!
//! Each link runs the Noise `XX` handshake (`snow`, X25519, ChaCha20-Poly1305,
//! BLAKE2s) and then binds the channel to a committee identity: each side signs the
//! handshake hash with its ed25519 committee key, so a process without a committee
//! key cannot inject a frame, and a man in the middle cannot relay a handshake.
//!
//! A node dials every peer for the frames it sends and accepts connections for the
//! frames it receives, so each connection carries data one way. Frames are
//! length-prefixed (`u32`) and split into Noise messages of at most 64 KiB; a frame
//! longer than `max_frame`, or any malformed message, closes that connection only.
//! Outgoing frames wait in a bounded queue per peer; when it is full the frame is
//! dropped and counted (the engines retransmit), so a slow peer cannot exhaust memory.
//! Dialling retries with capped exponential backoff.
//!
//! Peers are named by [`PeerAddr`]: an IP address or a host name with a port. A name
//! is resolved on every connection attempt, so a peer whose address changes (a
//! Kubernetes pod recreated behind its DNS name) is found again at the next
//! reconnect; the handshake, not DNS, proves who answered.
//!
//! The listener and the dial tasks can be stopped and started again
//! ([`Network::halt`], [`Network::run`]) without touching the per-peer queues, the
//! breakers or the counters, so a [`crate::supervision::transport::TransportComponent`]
//! can restart a transport whose tasks died while the engine keeps sending into it.

use super::breaker::{BreakerState, CircuitBreaker};
use super::frames::{FrameReader, FrameWriter, LinkError, NOISE_MAX};
use super::handshake::{handshake, Role};
use super::peer_addr::PeerAddr;
use crate::driver::inbox::{Delivery, DriverInput, FrameSink, Transport};
use bytes::Bytes;
use dwcp_core::{Committee, NodeId, NodeKeys};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::BufReader;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

/// Settings of one node's transport.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// Largest frame accepted or sent.
    pub max_frame: usize,
    /// Frames queued per peer before new ones are dropped.
    pub queue_capacity: usize,
    /// First reconnect delay.
    pub backoff_min: Duration,
    /// Longest reconnect delay.
    pub backoff_max: Duration,
    /// Time allowed for a handshake.
    pub handshake_timeout: Duration,
    /// Consecutive failures of a link that open its circuit breaker.
    pub breaker_threshold: u32,
    /// How long an open breaker refuses to dial before one trial.
    pub breaker_open_for: Duration,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            max_frame: dwcp_core::codec::DEFAULT_MAX_FRAME,
            queue_capacity: 4096,
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
            breaker_threshold: 5,
            breaker_open_for: Duration::from_secs(10),
        }
    }
}

/// Counters of a node's links, for metrics and health.
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Frames written to sockets.
    pub frames_sent: AtomicU64,
    /// Frames dropped because a peer's queue was full.
    pub frames_dropped: AtomicU64,
    /// Frames read and handed to the driver.
    pub frames_received: AtomicU64,
    /// Frames dropped because the driver's inbox was full.
    pub frames_dropped_inbound: AtomicU64,
    /// Connections closed for a malformed or oversized frame.
    pub bad_frames: AtomicU64,
    /// Incoming connections refused at authentication.
    pub refused: AtomicU64,
    /// Outgoing connection attempts that failed.
    pub dial_failures: AtomicU64,
}

/// A node's transport: queue frames to peers with [`Transport::send`]. Its tasks
/// (the listener and one dialler per peer) run on a tokio runtime between
/// [`Network::run`] and [`Network::halt`]; frames queued while they are stopped wait
/// in the bounded queues.
pub struct Network {
    id: NodeId,
    queues: Vec<Option<mpsc::Sender<Bytes>>>,
    receivers: Vec<Option<SharedReceiver>>,
    connected: Arc<Vec<AtomicBool>>,
    breakers: Breakers,
    stats: Arc<TransportStats>,
    listen: Mutex<SocketAddr>,
    peers: Vec<PeerAddr>,
    keys: Arc<NodeKeys>,
    committee: Committee,
    cfg: TransportConfig,
    inbox: FrameSink,
    runtime: tokio::runtime::Handle,
    tasks: Mutex<Option<Tasks>>,
}

type Breakers = Arc<Vec<Mutex<CircuitBreaker>>>;
/// A peer's queue receiver, held by its current dial task; a new dial task takes it
/// over after the old one ends.
type SharedReceiver = Arc<tokio::sync::Mutex<mpsc::Receiver<Bytes>>>;

struct Tasks {
    accept: JoinHandle<()>,
    dials: Vec<(NodeId, JoinHandle<()>)>,
}

impl Tasks {
    fn abort(&self) {
        self.accept.abort();
        for (_, d) in &self.dials {
            d.abort();
        }
    }

    fn finished(&self) -> bool {
        self.accept.is_finished() && self.dials.iter().all(|(_, d)| d.is_finished())
    }
}

impl Network {
    /// Counters.
    pub fn stats(&self) -> &TransportStats {
        &self.stats
    }

    /// Whether the outgoing link to `peer` is up.
    pub fn is_connected(&self, peer: NodeId) -> bool {
        self.connected
            .get(peer.index())
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The circuit breaker state of the outgoing link to `peer`.
    pub fn breaker_state(&self, peer: NodeId) -> BreakerState {
        self.breakers
            .get(peer.index())
            .and_then(|b| b.lock().ok().map(|b| b.state(Instant::now())))
            .unwrap_or(BreakerState::Closed)
    }

    /// Outgoing links that are up.
    pub fn connected_peers(&self) -> usize {
        self.connected
            .iter()
            .filter(|c| c.load(Ordering::Relaxed))
            .count()
    }

    /// The committee this transport serves.
    pub fn committee(&self) -> &Committee {
        &self.committee
    }

    /// The address the listener binds (after [`Network::run`], the one it is bound
    /// to, so a port 0 becomes the port chosen).
    pub fn listen_addr(&self) -> SocketAddr {
        *self.listen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Peer addresses by member id.
    pub fn peers(&self) -> &[PeerAddr] {
        &self.peers
    }

    /// A transport of `keys.id` that will listen on `listen`, dial `peers` (address
    /// by member id; its own is ignored) and hand received frames to `inbox`, its
    /// tasks spawned on `runtime`. Nothing runs until [`Network::run`].
    pub fn new(
        listen: SocketAddr,
        peers: Vec<PeerAddr>,
        keys: NodeKeys,
        committee: Committee,
        cfg: TransportConfig,
        inbox: SyncSender<DriverInput>,
        runtime: tokio::runtime::Handle,
    ) -> Network {
        let n = committee.size();
        let breakers: Breakers = Arc::new(
            (0..n)
                .map(|_| {
                    Mutex::new(CircuitBreaker::new(
                        cfg.breaker_threshold,
                        cfg.breaker_open_for,
                    ))
                })
                .collect(),
        );
        let connected: Arc<Vec<AtomicBool>> =
            Arc::new((0..n).map(|_| AtomicBool::new(false)).collect());
        let mut queues = Vec::with_capacity(n);
        let mut receivers = Vec::with_capacity(n);
        for i in 0..n {
            if i == keys.id.index() || i >= peers.len() {
                queues.push(None);
                receivers.push(None);
                continue;
            }
            let (tx, rx) = mpsc::channel(cfg.queue_capacity.max(1));
            queues.push(Some(tx));
            receivers.push(Some(Arc::new(tokio::sync::Mutex::new(rx))));
        }
        Network {
            id: keys.id,
            queues,
            receivers,
            connected,
            breakers,
            stats: Arc::new(TransportStats::default()),
            listen: Mutex::new(listen),
            peers,
            keys: Arc::new(keys),
            committee,
            cfg,
            inbox: FrameSink::new(inbox),
            runtime,
            tasks: Mutex::new(None),
        }
    }

    /// Binds the listener and starts the tasks; does nothing if they are running.
    pub fn run(&self) -> std::io::Result<()> {
        if self.running() {
            return Ok(());
        }
        let addr = self.listen_addr();
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let listener = {
            let _in_runtime = self.runtime.enter();
            TcpListener::from_std(listener)?
        };
        self.run_on(listener)
    }

    fn run_on(&self, listener: TcpListener) -> std::io::Result<()> {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        if tasks.is_some() {
            return Ok(());
        }
        if let Ok(bound) = listener.local_addr() {
            *self.listen.lock().unwrap_or_else(|p| p.into_inner()) = bound;
        }
        let mut dials = Vec::new();
        for (i, rx) in self.receivers.iter().enumerate() {
            let (Some(rx), Some(addr)) = (rx, self.peers.get(i)) else {
                continue;
            };
            let peer = NodeId(i as u16);
            dials.push((
                peer,
                self.runtime.spawn(dial_loop(
                    peer,
                    addr.clone(),
                    rx.clone(),
                    self.keys.clone(),
                    self.committee.clone(),
                    self.cfg.clone(),
                    self.stats.clone(),
                    self.connected.clone(),
                    self.breakers.clone(),
                )),
            ));
        }
        let accept = self.runtime.spawn(accept_loop(
            listener,
            self.keys.clone(),
            self.committee.clone(),
            self.cfg.clone(),
            self.stats.clone(),
            self.inbox.clone(),
        ));
        *tasks = Some(Tasks { accept, dials });
        Ok(())
    }

    /// Whether the tasks were started and not halted (they may have died since:
    /// see [`Network::dead_task`]).
    pub fn running(&self) -> bool {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Which task ended although the transport is running, if any: the listener or
    /// a peer's dialler (they only end on a panic).
    pub fn dead_task(&self) -> Option<String> {
        let tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        let t = tasks.as_ref()?;
        if t.accept.is_finished() {
            return Some(format!("the listener on {} stopped", self.listen_addr()));
        }
        t.dials
            .iter()
            .find(|(_, d)| d.is_finished())
            .map(|(p, _)| format!("the dialler of peer {p} stopped"))
    }

    /// Stops the listener, the diallers and every open connection, and waits (up to
    /// 5 s) for them to end so the listening address is free again. Queued frames
    /// stay queued for the next [`Network::run`].
    pub fn halt(&self) {
        let tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = tasks {
            t.abort();
            let deadline = Instant::now() + Duration::from_secs(5);
            while !t.finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        for c in self.connected.iter() {
            c.store(false, Ordering::Relaxed);
        }
    }

    /// Fault injection for tests: ends the listener task as a panic would.
    #[cfg(test)]
    pub(crate) fn kill_listener(&self) {
        if let Some(t) = self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            t.accept.abort();
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if let Some(t) = self
            .tasks
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            t.abort();
        }
    }
}

impl Transport for Network {
    fn send(&self, to: NodeId, frame: Bytes) {
        let Some(Some(q)) = self.queues.get(to.index()) else {
            return;
        };
        if let Err(e) = q.try_send(frame) {
            match e {
                mpsc::error::TrySendError::Full(_) | mpsc::error::TrySendError::Closed(_) => {
                    self.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Starts the transport of `keys.id` on the tokio runtime it is called from:
/// accepts on `listener`, dials `peers` (address by member id; its own is ignored)
/// and hands received frames to `inbox`.
pub fn start<P: Into<PeerAddr>>(
    listener: TcpListener,
    peers: Vec<P>,
    keys: NodeKeys,
    committee: Committee,
    cfg: TransportConfig,
    inbox: SyncSender<DriverInput>,
) -> std::io::Result<Network> {
    let net = Network::new(
        listener.local_addr()?,
        peers.into_iter().map(Into::into).collect(),
        keys,
        committee,
        cfg,
        inbox,
        tokio::runtime::Handle::current(),
    );
    net.run_on(listener)?;
    Ok(net)
}

#[allow(clippy::too_many_arguments)]
async fn dial_loop(
    peer: NodeId,
    addr: PeerAddr,
    rx: SharedReceiver,
    keys: Arc<NodeKeys>,
    committee: Committee,
    cfg: TransportConfig,
    stats: Arc<TransportStats>,
    connected: Arc<Vec<AtomicBool>>,
    breakers: Breakers,
) {
    let breaker = |f: &mut dyn FnMut(&mut CircuitBreaker)| {
        if let Some(Ok(mut b)) = breakers.get(peer.index()).map(|b| b.lock()) {
            f(&mut b);
        }
    };
    let mut rx = rx.lock().await;
    let mut backoff = cfg.backoff_min;
    loop {
        let mut wait = Duration::ZERO;
        breaker(&mut |b| {
            let now = Instant::now();
            if !b.allow(now) {
                wait = b.wait(now).max(Duration::from_millis(10));
            }
        });
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
            continue;
        }
        let attempt = tokio::time::timeout(cfg.handshake_timeout, async {
            let mut stream = addr.connect().await?;
            stream.set_nodelay(true)?;
            let state = handshake(
                &mut stream,
                &keys,
                &committee,
                Role::Initiator { expect: peer },
            )
            .await?;
            Ok::<_, LinkError>((stream, state.0))
        })
        .await;
        let (mut stream, mut noise) = match attempt {
            Ok(Ok(link)) => link,
            Ok(Err(_)) | Err(_) => {
                stats.dial_failures.fetch_add(1, Ordering::Relaxed);
                breaker(&mut |b| b.on_failure(Instant::now()));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(cfg.backoff_max);
                if rx.is_closed() {
                    return;
                }
                continue;
            }
        };
        backoff = cfg.backoff_min;
        breaker(&mut |b| b.on_success());
        connected[peer.index()].store(true, Ordering::Relaxed);
        let mut writer = FrameWriter::new();
        while let Some(frame) = rx.recv().await {
            if frame.len() > cfg.max_frame {
                continue;
            }
            if writer.write(&mut stream, &mut noise, &frame).await.is_err() {
                // Reconnect; this frame is lost and the engine will resend.
                breaker(&mut |b| b.on_failure(Instant::now()));
                break;
            }
            stats.frames_sent.fetch_add(1, Ordering::Relaxed);
        }
        connected[peer.index()].store(false, Ordering::Relaxed);
        if rx.is_closed() {
            return;
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    keys: Arc<NodeKeys>,
    committee: Committee,
    cfg: TransportConfig,
    stats: Arc<TransportStats>,
    inbox: FrameSink,
) {
    // The connections live in this set, so stopping this task closes them too.
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let (keys, committee, cfg, stats, inbox) = (
            keys.clone(),
            committee.clone(),
            cfg.clone(),
            stats.clone(),
            inbox.clone(),
        );
        connections.spawn(async move {
            let _ = serve_inbound(stream, &keys, &committee, &cfg, &stats, &inbox).await;
        });
    }
}

async fn serve_inbound(
    mut stream: TcpStream,
    keys: &NodeKeys,
    committee: &Committee,
    cfg: &TransportConfig,
    stats: &TransportStats,
    inbox: &FrameSink,
) -> Result<(), LinkError> {
    stream.set_nodelay(true)?;
    let shake = tokio::time::timeout(
        cfg.handshake_timeout,
        handshake(&mut stream, keys, committee, Role::Responder),
    )
    .await;
    let (mut noise, from) = match shake {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
        Err(_) => {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            return Err(LinkError::Timeout);
        }
    };
    // The link carries frames one way, so after the handshake only reads remain:
    // buffer them, so that a burst of small frames costs a few system calls rather
    // than two per Noise message.
    let mut stream = BufReader::with_capacity(2 * NOISE_MAX, stream);
    let mut reader = FrameReader::new();
    loop {
        let frame = match reader.read(&mut stream, &mut noise, cfg.max_frame).await {
            Ok(f) => f,
            Err(LinkError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => {
                stats.bad_frames.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        match inbox.deliver(from, frame) {
            Delivery::Queued => {
                stats.frames_received.fetch_add(1, Ordering::Relaxed);
            }
            Delivery::Dropped => {
                stats.frames_dropped_inbound.fetch_add(1, Ordering::Relaxed);
            }
            Delivery::Closed => return Ok(()),
        }
    }
}
