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

use crate::driver::inbox::{Delivery, DriverInput, FrameSink, Transport};
use crate::net::breaker::{BreakerState, CircuitBreaker};
use bytes::Bytes;
use dwcp_core::{Committee, Digest, NodeId, NodeKeys};
use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
const NOISE_MAX: usize = 65535;
const TAG: usize = 16;
const CHUNK: usize = NOISE_MAX - TAG;
const AUTH_DOMAIN: &str = "dwcp noise channel binding v1";

/// Why a link failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The socket failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The Noise handshake or a decryption failed.
    #[error("noise: {0}")]
    Noise(#[from] snow::Error),
    /// The peer is not who it claims, or not a member.
    #[error("authentication failed: {0}")]
    Auth(&'static str),
    /// A frame longer than the limit.
    #[error("frame of {0} bytes over the limit")]
    Oversized(usize),
    /// The handshake took too long.
    #[error("handshake timed out")]
    Timeout,
}

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

/// The consensus address of a peer: `IP:port`, `[IPv6]:port` or `host:port`.
///
/// Written in configs as a string; an IP address is used as given, a host name is
/// resolved each time the peer is dialled.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PeerAddr {
    host: String,
    port: u16,
}

/// Why a peer address does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not host:port, [IPv6]:port or IP:port")]
pub struct BadPeerAddr(pub String);

impl PeerAddr {
    /// The host: an IP address or a DNS name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Resolves the address now (blocking; a literal IP needs no lookup).
    pub fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        Ok((self.host.as_str(), self.port).to_socket_addrs()?.collect())
    }

    /// Connects to the first of its resolved addresses that answers, resolving the
    /// name afresh.
    async fn connect(&self) -> std::io::Result<TcpStream> {
        TcpStream::connect((self.host.as_str(), self.port)).await
    }
}

impl From<SocketAddr> for PeerAddr {
    fn from(a: SocketAddr) -> PeerAddr {
        PeerAddr {
            host: a.ip().to_string(),
            port: a.port(),
        }
    }
}

impl FromStr for PeerAddr {
    type Err = BadPeerAddr;

    fn from_str(s: &str) -> Result<PeerAddr, BadPeerAddr> {
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(a.into());
        }
        let bad = || BadPeerAddr(s.to_string());
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        // A DNS name: labels of letters, digits, '-' and '_', separated by dots.
        let name_ok = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            });
        if !name_ok {
            return Err(bad());
        }
        Ok(PeerAddr {
            host: host.to_string(),
            port,
        })
    }
}

impl TryFrom<String> for PeerAddr {
    type Error = BadPeerAddr;

    fn try_from(s: String) -> Result<PeerAddr, BadPeerAddr> {
        s.parse()
    }
}

impl From<PeerAddr> for String {
    fn from(a: PeerAddr) -> String {
        a.to_string()
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
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

enum Role {
    Initiator { expect: NodeId },
    Responder,
}

async fn write_noise(stream: &mut TcpStream, msg: &[u8]) -> Result<(), LinkError> {
    let len = u16::try_from(msg.len()).map_err(|_| LinkError::Oversized(msg.len()))?;
    stream.write_all(&len.to_be_bytes()).await?;
    stream.write_all(msg).await?;
    Ok(())
}

async fn read_noise<R: AsyncRead + Unpin>(
    stream: &mut R,
    buf: &mut [u8],
) -> Result<usize, LinkError> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let len = usize::from(u16::from_be_bytes(len));
    let buf = buf.get_mut(..len).ok_or(LinkError::Oversized(len))?;
    stream.read_exact(buf).await?;
    Ok(len)
}

fn binding(hash: &[u8], role: &[u8]) -> Digest {
    Digest::of_parts(AUTH_DOMAIN, &[hash, role])
}

/// Runs the XX handshake, then exchanges committee signatures over its hash.
/// Returns the transport state and the authenticated peer.
async fn handshake(
    stream: &mut TcpStream,
    keys: &NodeKeys,
    committee: &Committee,
    role: Role,
) -> Result<(snow::TransportState, NodeId), LinkError> {
    let params: snow::params::NoiseParams = NOISE_PARAMS.parse()?;
    let builder = snow::Builder::new(params);
    let static_key = builder.generate_keypair()?;
    let builder = builder.local_private_key(&static_key.private)?;
    let mut buf = vec![0u8; NOISE_MAX];
    let mut out = vec![0u8; NOISE_MAX];
    let mut payload = vec![0u8; NOISE_MAX];
    let initiator = matches!(role, Role::Initiator { .. });
    let mut hs = if initiator {
        builder.build_initiator()?
    } else {
        builder.build_responder()?
    };
    // XX: -> e; <- e, ee, s, es; -> s, se
    for step in 0..3 {
        let we_write = (step % 2 == 0) == initiator;
        if we_write {
            let n = hs.write_message(&[], &mut out)?;
            write_noise(stream, &out[..n]).await?;
        } else {
            let n = read_noise(stream, &mut buf).await?;
            hs.read_message(&buf[..n], &mut payload)?;
        }
    }
    let hash = hs.get_handshake_hash().to_vec();
    let mut noise = hs.into_transport_mode()?;
    let (mine, theirs): (&[u8], &[u8]) = if initiator {
        (b"initiator", b"responder")
    } else {
        (b"responder", b"initiator")
    };
    let sig = keys.signing.sign(&binding(&hash, mine));
    let mut auth = Vec::with_capacity(66);
    auth.extend_from_slice(&keys.id.0.to_le_bytes());
    auth.extend_from_slice(&sig.0);
    let send_auth =
        |noise: &mut snow::TransportState, out: &mut Vec<u8>| noise.write_message(&auth, out);
    if initiator {
        let n = send_auth(&mut noise, &mut out)?;
        write_noise(stream, &out[..n]).await?;
    }
    let n = read_noise(stream, &mut buf).await?;
    let m = noise.read_message(&buf[..n], &mut payload)?;
    if m != 66 {
        return Err(LinkError::Auth("malformed authentication message"));
    }
    let peer = NodeId(u16::from_le_bytes([payload[0], payload[1]]));
    let mut sig_bytes = [0u8; 64];
    sig_bytes.copy_from_slice(&payload[2..66]);
    if peer == keys.id || !committee.contains(peer) {
        return Err(LinkError::Auth("not another committee member"));
    }
    if let Role::Initiator { expect } = role {
        if peer != expect {
            return Err(LinkError::Auth("answered by the wrong member"));
        }
    }
    committee
        .verify(
            peer,
            &binding(&hash, theirs),
            &dwcp_core::crypto::Signature(sig_bytes),
        )
        .map_err(|_| LinkError::Auth("bad channel-binding signature"))?;
    if !initiator {
        let n = send_auth(&mut noise, &mut out)?;
        write_noise(stream, &out[..n]).await?;
    }
    Ok((noise, peer))
}

/// A wire buffer above this size is released after its frame, so one large frame
/// does not pin its memory for the life of the link.
const KEEP_WIRE: usize = 4 << 20;

/// What the writing side of a link reuses for every frame, so that sending a frame
/// allocates nothing in the steady state.
struct FrameWriter {
    /// One sealed Noise message.
    msg: Box<[u8]>,
    /// The first message's plaintext: the length prefix and the frame's start.
    first: Vec<u8>,
    /// The whole sealed frame, written with one call.
    wire: Vec<u8>,
}

impl FrameWriter {
    fn new() -> Self {
        FrameWriter {
            msg: vec![0u8; NOISE_MAX].into_boxed_slice(),
            first: Vec::with_capacity(CHUNK),
            wire: Vec::new(),
        }
    }

    /// Writes one frame: a `u32` length, then the bytes, in Noise messages of ≤ 64
    /// KiB (the first carries the length and the frame's first `CHUNK - 4` bytes).
    async fn write<W: AsyncWrite + Unpin>(
        &mut self,
        stream: &mut W,
        noise: &mut snow::TransportState,
        frame: &[u8],
    ) -> Result<(), LinkError> {
        let len = u32::try_from(frame.len()).map_err(|_| LinkError::Oversized(frame.len()))?;
        let head = frame.len().min(CHUNK - 4);
        self.first.clear();
        self.first.extend_from_slice(&len.to_be_bytes());
        self.first.extend_from_slice(&frame[..head]);
        self.wire.clear();
        self.wire
            .reserve(4 + frame.len() + (frame.len() / CHUNK + 1) * (TAG + 2));
        seal(noise, &self.first, &mut self.msg, &mut self.wire)?;
        for chunk in frame[head..].chunks(CHUNK) {
            seal(noise, chunk, &mut self.msg, &mut self.wire)?;
        }
        stream.write_all(&self.wire).await?;
        if self.wire.capacity() > KEEP_WIRE {
            self.wire = Vec::new();
        }
        Ok(())
    }
}

/// Encrypts `plain` as one Noise message and appends it, length first, to `wire`.
fn seal(
    noise: &mut snow::TransportState,
    plain: &[u8],
    msg: &mut [u8],
    wire: &mut Vec<u8>,
) -> Result<(), LinkError> {
    let n = noise.write_message(plain, msg)?;
    wire.extend_from_slice(&(n as u16).to_be_bytes());
    wire.extend_from_slice(&msg[..n]);
    Ok(())
}

/// What the reading side of a link reuses for every frame.
struct FrameReader {
    /// One Noise message as received.
    msg: Box<[u8]>,
    /// Its plaintext.
    plain: Box<[u8]>,
}

impl FrameReader {
    fn new() -> Self {
        FrameReader {
            msg: vec![0u8; NOISE_MAX].into_boxed_slice(),
            plain: vec![0u8; NOISE_MAX].into_boxed_slice(),
        }
    }

    /// Reads one frame, refusing lengths over `max_frame` before allocating them.
    async fn read<R: AsyncRead + Unpin>(
        &mut self,
        stream: &mut R,
        noise: &mut snow::TransportState,
        max_frame: usize,
    ) -> Result<Bytes, LinkError> {
        let n = read_noise(stream, &mut self.msg).await?;
        let m = noise.read_message(&self.msg[..n], &mut self.plain)?;
        if m < 4 {
            return Err(LinkError::Auth("frame without a length"));
        }
        let p = &self.plain;
        let len = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize;
        if len > max_frame {
            return Err(LinkError::Oversized(len));
        }
        let mut frame = Vec::with_capacity(len);
        frame.extend_from_slice(&self.plain[4..m]);
        while frame.len() < len {
            let n = read_noise(stream, &mut self.msg).await?;
            let m = noise.read_message(&self.msg[..n], &mut self.plain)?;
            frame.extend_from_slice(&self.plain[..m]);
        }
        if frame.len() != len {
            return Err(LinkError::Oversized(frame.len()));
        }
        Ok(Bytes::from(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dwcp_core::crypto::SignatureScheme;
    use std::sync::mpsc::{sync_channel, Receiver};

    async fn listeners(n: usize) -> (Vec<TcpListener>, Vec<SocketAddr>) {
        let mut ls = Vec::new();
        let mut addrs = Vec::new();
        for _ in 0..n {
            let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            addrs.push(l.local_addr().expect("addr"));
            ls.push(l);
        }
        (ls, addrs)
    }

    fn recv(rx: &Receiver<DriverInput>) -> (NodeId, Bytes) {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(DriverInput::Frame { from, frame } | DriverInput::Bulk { from, frame, .. }) => {
                (from, frame)
            }
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// A Noise transport pair, handshaken in memory.
    fn noise_pair() -> (snow::TransportState, snow::TransportState) {
        let params: snow::params::NoiseParams = NOISE_PARAMS.parse().expect("params");
        let state = |initiator: bool| {
            let b = snow::Builder::new(params.clone());
            let key = b.generate_keypair().expect("keypair").private;
            let b = b.local_private_key(&key).expect("key");
            if initiator {
                b.build_initiator()
            } else {
                b.build_responder()
            }
            .expect("handshake state")
        };
        let (mut i, mut r) = (state(true), state(false));
        let (mut msg, mut out) = (vec![0u8; NOISE_MAX], vec![0u8; NOISE_MAX]);
        for step in 0..3 {
            let (w, rd) = if step % 2 == 0 {
                (&mut i, &mut r)
            } else {
                (&mut r, &mut i)
            };
            let n = w.write_message(&[], &mut msg).expect("write");
            rd.read_message(&msg[..n], &mut out).expect("read");
        }
        (
            i.into_transport_mode().expect("transport"),
            r.into_transport_mode().expect("transport"),
        )
    }

    /// Frames of every size around the Noise message boundaries, written with one
    /// reused writer and read back with one reused reader.
    fn round_trip(sizes: &[usize]) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (mut tx, mut rx) = noise_pair();
            let frames: Vec<Vec<u8>> = sizes
                .iter()
                .enumerate()
                .map(|(k, &n)| (0..n).map(|i| (i * 31 + k * 7) as u8).collect())
                .collect();
            let mut wire: Vec<u8> = Vec::new();
            let mut writer = FrameWriter::new();
            for f in &frames {
                writer.write(&mut wire, &mut tx, f).await.expect("write");
            }
            let mut input = &wire[..];
            let mut reader = FrameReader::new();
            for f in &frames {
                let got = reader
                    .read(&mut input, &mut rx, 1 << 20)
                    .await
                    .expect("read");
                assert_eq!(&got[..], &f[..]);
            }
            assert!(input.is_empty(), "nothing left over");
        });
    }

    #[test]
    fn frames_round_trip_across_message_boundaries_with_reused_buffers() {
        round_trip(&[
            0,
            1,
            CHUNK - 5,
            CHUNK - 4,
            CHUNK - 3,
            CHUNK,
            CHUNK + 1,
            2 * CHUNK - 4,
            3 * CHUNK + 7,
            300_000,
            5,
        ]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
        #[test]
        fn any_sequence_of_frames_round_trips(
            sizes in proptest::collection::vec(0usize..200_000, 1..6),
        ) {
            round_trip(&sizes);
        }
    }

    #[test]
    fn a_frame_over_the_limit_is_refused_before_it_is_read() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (mut tx, mut rx) = noise_pair();
            let mut wire: Vec<u8> = Vec::new();
            FrameWriter::new()
                .write(&mut wire, &mut tx, &[1u8; 1000])
                .await
                .expect("write");
            let mut input = &wire[..];
            let err = FrameReader::new().read(&mut input, &mut rx, 999).await;
            assert!(matches!(err, Err(LinkError::Oversized(1000))), "{err:?}");
        });
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn members_exchange_frames_of_any_size() {
        let (committee, keys) = Committee::deterministic(3, SignatureScheme::Ed25519, 1);
        let (ls, addrs) = listeners(3).await;
        let mut nets = Vec::new();
        let mut inboxes = Vec::new();
        for (l, k) in ls.into_iter().zip(&keys) {
            let (tx, rx) = sync_channel(100);
            inboxes.push(rx);
            nets.push(
                start(
                    l,
                    addrs.clone(),
                    k.clone(),
                    committee.clone(),
                    TransportConfig::default(),
                    tx,
                )
                .expect("start"),
            );
        }
        let big = Bytes::from((0..300_000u32).map(|i| i as u8).collect::<Vec<_>>());
        nets[0].send(NodeId(2), Bytes::from_static(b"hello"));
        nets[0].send(NodeId(2), big.clone());
        nets[1].send(NodeId(2), Bytes::new());
        let mut got = [recv(&inboxes[2]), recv(&inboxes[2]), recv(&inboxes[2])];
        got.sort_by_key(|(from, f)| (*from, f.len()));
        assert_eq!(got[0], (NodeId(0), Bytes::from_static(b"hello")));
        assert_eq!(got[1], (NodeId(0), big));
        assert_eq!(got[2], (NodeId(1), Bytes::new()));
        assert!(nets[0].is_connected(NodeId(2)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_process_without_a_committee_key_is_refused() {
        let (committee, keys) = Committee::deterministic(2, SignatureScheme::Ed25519, 2);
        // An outsider with the same committee file but its own key claims to be node 1.
        let (_, outsider_keys) = Committee::deterministic(2, SignatureScheme::Ed25519, 99);
        let (ls, addrs) = listeners(2).await;
        let mut ls = ls.into_iter();
        let (tx0, rx0) = sync_channel(100);
        let net0 = start(
            ls.next().expect("l"),
            addrs.clone(),
            keys[0].clone(),
            committee.clone(),
            TransportConfig::default(),
            tx0,
        )
        .expect("start");
        let (tx1, _rx1) = sync_channel(100);
        let outsider = start(
            ls.next().expect("l"),
            addrs.clone(),
            outsider_keys[1].clone(),
            committee.clone(),
            TransportConfig::default(),
            tx1,
        )
        .expect("start");
        outsider.send(NodeId(0), Bytes::from_static(b"forged"));
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(
            rx0.try_recv().is_err(),
            "a frame from a non-member got through"
        );
        assert!(net0.stats().refused.load(Ordering::Relaxed) >= 1);
        assert!(!outsider.is_connected(NodeId(0)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_oversized_or_malformed_frame_closes_only_that_connection() {
        let (committee, keys) = Committee::deterministic(3, SignatureScheme::Ed25519, 3);
        let (ls, addrs) = listeners(3).await;
        let mut ls = ls.into_iter();
        let cfg = TransportConfig {
            max_frame: 1024,
            ..TransportConfig::default()
        };
        let (tx0, rx0) = sync_channel(100);
        let net0 = start(
            ls.next().expect("l"),
            addrs.clone(),
            keys[0].clone(),
            committee.clone(),
            cfg.clone(),
            tx0,
        )
        .expect("start");
        let (tx2, _rx2) = sync_channel(100);
        let net2 = start(
            ls.nth(1).expect("l"),
            addrs.clone(),
            keys[2].clone(),
            committee.clone(),
            cfg.clone(),
            tx2,
        )
        .expect("start");

        // Member 1, by hand: authenticate, then claim a 1 MiB frame.
        let mut s = TcpStream::connect(addrs[0]).await.expect("connect");
        let (mut noise, _) = handshake(
            &mut s,
            &keys[1],
            &committee,
            Role::Initiator { expect: NodeId(0) },
        )
        .await
        .expect("handshake");
        let mut out = vec![0u8; NOISE_MAX];
        let n = noise
            .write_message(&(1u32 << 20).to_be_bytes(), &mut out)
            .expect("encrypt");
        write_noise(&mut s, &out[..n]).await.expect("write");
        let mut rest = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(5), s.read(&mut rest))
            .await
            .expect("closed in time");
        assert!(
            matches!(closed, Ok(0) | Err(_)),
            "connection should be closed"
        );
        assert_eq!(net0.stats().bad_frames.load(Ordering::Relaxed), 1);

        // Garbage after a good handshake: same fate.
        let mut s = TcpStream::connect(addrs[0]).await.expect("connect");
        let _ = handshake(
            &mut s,
            &keys[1],
            &committee,
            Role::Initiator { expect: NodeId(0) },
        )
        .await
        .expect("handshake");
        write_noise(&mut s, &[7u8; 100]).await.expect("write");
        let closed = tokio::time::timeout(Duration::from_secs(5), s.read(&mut rest))
            .await
            .expect("closed in time");
        assert!(matches!(closed, Ok(0) | Err(_)));
        assert_eq!(net0.stats().bad_frames.load(Ordering::Relaxed), 2);

        // Member 2's link is unaffected.
        net2.send(NodeId(0), Bytes::from_static(b"still here"));
        assert_eq!(recv(&rx0), (NodeId(2), Bytes::from_static(b"still here")));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_drops_and_counts_instead_of_growing() {
        let (committee, keys) = Committee::deterministic(2, SignatureScheme::Ed25519, 4);
        let (ls, mut addrs) = listeners(1).await;
        // Peer 1's address refuses connections: nothing drains the queue.
        let dead = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        addrs.push(dead.local_addr().expect("addr"));
        drop(dead);
        let cfg = TransportConfig {
            queue_capacity: 8,
            ..TransportConfig::default()
        };
        let (tx, _rx) = sync_channel(10);
        let net = start(
            ls.into_iter().next().expect("l"),
            addrs,
            keys[0].clone(),
            committee,
            cfg,
            tx,
        )
        .expect("start");
        for _ in 0..100 {
            net.send(NodeId(1), Bytes::from_static(b"x"));
        }
        assert!(net.stats().frames_dropped.load(Ordering::Relaxed) >= 90);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_peer_opens_its_breaker() {
        let (committee, keys) = Committee::deterministic(2, SignatureScheme::Ed25519, 5);
        let (ls, mut addrs) = listeners(1).await;
        let dead = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        addrs.push(dead.local_addr().expect("addr"));
        drop(dead);
        let cfg = TransportConfig {
            backoff_min: Duration::from_millis(5),
            backoff_max: Duration::from_millis(10),
            breaker_threshold: 3,
            breaker_open_for: Duration::from_secs(60),
            ..TransportConfig::default()
        };
        let (tx, _rx) = sync_channel(10);
        let net = start(
            ls.into_iter().next().expect("l"),
            addrs,
            keys[0].clone(),
            committee,
            cfg,
            tx,
        )
        .expect("start");
        let deadline = Instant::now() + Duration::from_secs(10);
        while net.breaker_state(NodeId(1)) != BreakerState::Open {
            assert!(Instant::now() < deadline, "breaker never opened");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // While open it stops dialling.
        let failures = net.stats().dial_failures.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(net.stats().dial_failures.load(Ordering::Relaxed), failures);
        assert_eq!(net.breaker_state(NodeId(0)), BreakerState::Closed);
    }
}
