//! Tests of the driver: the lanes of its inbox, agreement and catch-up of drivers
//! over a [`LocalNetwork`], proposal samples and traffic metrics, and the grouping
//! of writes.

use super::inbox::{Delivery, FrameSink};
use super::local::{LocalNetwork, LocalTransport};
use super::*;
use dwcp_consensus::pbft::{Pbft, PbftConfig};
use dwcp_core::crypto::SignatureScheme;
use dwcp_core::storage::RedbStore;
use dwcp_core::NodeKeys;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, sync_channel};
use std::thread;

const MAX_FRAME: usize = 16 << 20;

/// What a test may attach to a driver.
#[derive(Default)]
struct Probes {
    metrics: Option<DriverMetrics>,
    samples: Option<Sender<ProposalSample>>,
}

fn spawn(
    keys: NodeKeys,
    committee: Committee,
    path: std::path::PathBuf,
    inbox: Receiver<DriverInput>,
    transport: LocalTransport,
    commits: Sender<Committed>,
    probes: Probes,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let store = RedbStore::open(&path).expect("open store");
        let recovered = store.recover(4096).expect("recover");
        let id = keys.id;
        let cfg = PbftConfig {
            tick: Duration::from_millis(20),
            view_change_timeout: Duration::from_millis(500),
            ..PbftConfig::default()
        };
        let engine = Pbft::new(keys, committee.clone(), cfg, recovered).expect("engine");
        let mut driver = Driver::new(id, committee, engine, store, MAX_FRAME);
        if let Some(m) = probes.metrics {
            driver = driver.with_metrics(m);
        }
        if let Some(s) = probes.samples {
            driver = driver.with_proposal_samples(s);
        }
        driver.run(&inbox, &transport, &commits).expect("driver");
    })
}

fn txs(from: u32, count: u32) -> Vec<Bytes> {
    (from..from + count)
        .map(|k| Bytes::from(format!("tx-{k:08}")))
        .collect()
}

/// Collects commits from one node until it has seen every transaction in `want`.
fn wait_for(rx: &Receiver<Committed>, log: &mut Vec<Committed>, want: u32) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while log.iter().map(|c| c.transactions.len() as u32).sum::<u32>() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(c) => log.push(c),
            Err(e) => panic!("waiting for {want} transactions: {e}; have {}", log.len()),
        }
    }
}

#[test]
fn peers_small_frames_go_first_then_batches_then_clients() {
    let (tx, rx) = std::sync::mpsc::sync_channel(16);
    let sink = FrameSink::new(tx.clone());
    let gate = crate::admission::SubmitGate::new(1 << 20);
    let big = Bytes::from(vec![7u8; crate::admission::BULK_FRAME]);
    let txs = vec![Bytes::from_static(b"tx")];
    tx.send(DriverInput::Submit(txs.clone())).unwrap();
    assert_eq!(sink.deliver(NodeId(1), big.clone()), Delivery::Queued);
    let permit = gate.try_admit(&txs).unwrap();
    tx.send(DriverInput::Admitted(txs.clone(), permit)).unwrap();
    assert_eq!(
        sink.deliver(NodeId(2), Bytes::from_static(b"vote")),
        Delivery::Queued
    );
    tx.send(DriverInput::Shutdown).unwrap();
    assert_eq!(
        sink.deliver(NodeId(3), Bytes::from_static(b"ack")),
        Delivery::Queued
    );
    let mut lanes = Lanes::default();
    let order: Vec<String> = std::iter::from_fn(|| lanes.next(&rx))
        .map(|i| match i {
            DriverInput::Frame { from, .. } => format!("frame {from}"),
            DriverInput::Bulk { from, .. } => format!("bulk {from}"),
            DriverInput::Submit(_) => "submit".into(),
            DriverInput::Admitted(..) => "admitted".into(),
            DriverInput::Shutdown => "shutdown".into(),
        })
        .collect();
    assert_eq!(
        order,
        ["frame n2", "frame n3", "bulk n1", "submit", "admitted", "shutdown"]
    );
    // The admitted bytes went back to the gate when the input was taken.
    assert_eq!(gate.queued(), 0);
}

#[test]
fn large_frames_past_the_bulk_cap_are_dropped_small_ones_still_pass() {
    let (tx, _rx) = std::sync::mpsc::sync_channel(1024);
    let sink = FrameSink::new(tx);
    let big = Bytes::from(vec![7u8; 1 << 20]);
    let fit = crate::admission::BULK_BYTES >> 20;
    for _ in 0..fit {
        assert_eq!(sink.deliver(NodeId(1), big.clone()), Delivery::Queued);
    }
    assert_eq!(sink.deliver(NodeId(1), big), Delivery::Dropped);
    assert_eq!(
        sink.deliver(NodeId(1), Bytes::from_static(b"vote")),
        Delivery::Queued
    );
}

#[test]
fn four_drivers_agree_then_a_restarted_node_catches_up_from_redb() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (committee, keys) = Committee::deterministic(4, SignatureScheme::Ed25519, 11);
    let mut inboxes = Vec::new();
    let mut senders = Vec::new();
    for _ in 0..4 {
        let (tx, rx) = sync_channel(10_000);
        senders.push(tx);
        inboxes.push(Some(rx));
    }
    let net = LocalNetwork::new(senders);
    let mut commit_rx = Vec::new();
    let mut handles = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let (ctx, crx) = channel();
        commit_rx.push(crx);
        let inbox = inboxes[i].take().expect("inbox");
        let path = dir.path().join(format!("n{i}.redb"));
        handles.push(Some(spawn(
            k.clone(),
            committee.clone(),
            path,
            inbox,
            net.transport(k.id),
            ctx,
            Probes::default(),
        )));
    }
    let submit = |ids: &[usize], batch: Vec<Bytes>| {
        for i in ids {
            let inbox = net.inbox(NodeId(*i as u16)).expect("inbox");
            inbox
                .send(DriverInput::Submit(batch.clone()))
                .expect("submit");
        }
    };
    // Clients send to every replica.
    submit(&[0, 1, 2, 3], txs(0, 200));
    let mut logs: Vec<Vec<Committed>> = vec![Vec::new(); 4];
    for i in 0..4 {
        wait_for(&commit_rx[i], &mut logs[i], 200);
    }
    for i in 1..4 {
        assert_eq!(logs[i], logs[0], "node {i} diverged");
    }

    // Stop node 3 (its thread ends, its store stays); the rest keep committing.
    net.inbox(NodeId(3))
        .expect("inbox")
        .send(DriverInput::Shutdown)
        .expect("shutdown");
    handles[3].take().expect("handle").join().expect("join");
    let before = logs[3].last().map(|c| c.seq).unwrap_or(0);
    submit(&[0, 1, 2], txs(200, 100));
    for i in 0..3 {
        wait_for(&commit_rx[i], &mut logs[i], 300);
    }

    // Restart node 3 from its redb file: it fetches exactly what it missed.
    let (tx3, rx3) = sync_channel(10_000);
    net.replace(NodeId(3), tx3);
    let (ctx, crx) = channel();
    let path = dir.path().join("n3.redb");
    handles[3] = Some(spawn(
        keys[3].clone(),
        committee.clone(),
        path,
        rx3,
        net.transport(NodeId(3)),
        ctx,
        Probes::default(),
    ));
    let mut caught_up = Vec::new();
    wait_for(&crx, &mut caught_up, 100);
    assert_eq!(
        caught_up.first().map(|c| c.seq),
        Some(before + 1),
        "must resume right after its last commit"
    );
    for c in &caught_up {
        let same = logs[0]
            .iter()
            .find(|x| x.seq == c.seq)
            .expect("seq known to node 0");
        assert_eq!(c, same, "restarted node diverged at seq {}", c.seq);
    }

    for i in 0..4 {
        let _ = net
            .inbox(NodeId(i))
            .expect("inbox")
            .send(DriverInput::Shutdown);
    }
    for h in handles.into_iter().flatten() {
        h.join().expect("join");
    }
}

#[test]
fn the_primarys_driver_reports_proposal_samples_and_counts_traffic_by_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (committee, keys) = Committee::deterministic(4, SignatureScheme::Ed25519, 12);
    let metrics = crate::metrics::Metrics::new("pbft", NodeId(0));
    let (sample_tx, sample_rx) = channel();
    let mut senders = Vec::new();
    let mut receivers = Vec::new();
    for _ in 0..4 {
        let (tx, rx) = sync_channel(10_000);
        senders.push(tx);
        receivers.push(rx);
    }
    let net = LocalNetwork::new(senders);
    let mut commit_rx = Vec::new();
    let mut handles = Vec::new();
    for (k, inbox) in keys.iter().zip(receivers) {
        let (ctx, crx) = channel();
        commit_rx.push(crx);
        let probes = if k.id == NodeId(0) {
            Probes {
                metrics: Some(metrics.driver()),
                samples: Some(sample_tx.clone()),
            }
        } else {
            Probes::default()
        };
        let path = dir.path().join(format!("n{}.redb", k.id.0));
        handles.push(spawn(
            k.clone(),
            committee.clone(),
            path,
            inbox,
            net.transport(k.id),
            ctx,
            probes,
        ));
    }
    drop(sample_tx);
    let before = Instant::now();
    net.inbox(NodeId(0))
        .expect("inbox")
        .send(DriverInput::Submit(txs(0, 50)))
        .expect("submit");
    let mut log = Vec::new();
    wait_for(&commit_rx[0], &mut log, 50);
    for i in 0..4 {
        let _ = net
            .inbox(NodeId(i))
            .expect("inbox")
            .send(DriverInput::Shutdown);
    }
    for h in handles {
        h.join().expect("join");
    }

    let samples: Vec<ProposalSample> = sample_rx.iter().collect();
    assert!(!samples.is_empty(), "node 0 is the primary of view 0");
    assert_eq!(samples.iter().map(|s| s.transactions).sum::<u64>(), 50);
    for s in &samples {
        assert_eq!(s.node, NodeId(0));
        assert!(s.proposed >= before && s.committed >= s.proposed, "{s:?}");
    }
    let text = metrics.render(
        &EngineStatus::default(),
        &crate::net::transport::TransportStats::default(),
        &[],
        &[],
        &[],
    );
    let count = format!(
        "dwcp_consensus_commit_latency_seconds_count{{engine=\"pbft\",node=\"0\"}} {}",
        samples.len()
    );
    assert!(text.contains(&count), "{text}");
    // The primary sends pre-prepares and commits; it receives prepares and commits.
    let series = |dir: &str, kind: &str| {
        format!("dwcp_{dir}_total{{engine=\"pbft\",node=\"0\",type=\"{kind}\"}} ")
    };
    for (dir, kind) in [
        ("messages_sent", "pre_prepare"),
        ("message_bytes_sent", "pre_prepare"),
        ("messages_sent", "commit"),
        ("messages_received", "prepare"),
        ("message_bytes_received", "commit"),
    ] {
        assert!(text.contains(&series(dir, kind)), "{dir} {kind}: {text}");
    }
    assert!(
        !text.contains(&series("messages_sent", "prepare")),
        "a primary sends no prepares: {text}"
    );
}

/// An engine that stores a record for each message, then answers it.
struct Echo;

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Ping(u64);

impl MessageKind for Ping {
    fn kind(&self) -> &'static str {
        "ping"
    }
}

impl Engine for Echo {
    type Message = Ping;
    fn handle(&mut self, _now: Time, input: Input<Ping>, fx: &mut Effects<Ping>) {
        if let Input::Message { from, msg } = input {
            fx.persist(Record::Put {
                key: dwcp_core::WalKey {
                    slot: msg.0,
                    tag: 0,
                },
                value: Bytes::new(),
            });
            fx.send(from, msg);
        }
    }
    fn status(&self) -> EngineStatus {
        EngineStatus::default()
    }
}

/// A store that counts its write transactions and notes the slots written
/// (and the sequence numbers of the committed log).
struct Counting {
    writes: Arc<AtomicU64>,
    appends: Arc<AtomicU64>,
    written: Arc<std::sync::Mutex<Vec<u64>>>,
    inner: dwcp_core::storage::MemoryStore,
}

impl Storage for Counting {
    fn apply(&mut self, records: &[Record]) -> Result<(), StorageError> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        let mut written = self.written.lock().expect("lock");
        for r in records {
            if let Record::Put { key, .. } = r {
                written.push(key.slot);
            }
        }
        self.inner.apply(records)
    }
    fn append_committed(&mut self, batches: &[Committed]) -> Result<(), StorageError> {
        self.appends.fetch_add(1, Ordering::SeqCst);
        let mut written = self.written.lock().expect("lock");
        written.extend(batches.iter().map(|b| b.seq));
        self.inner.append_committed(batches)
    }
    fn committed(&self, from: u64, limit: usize) -> Result<Vec<Committed>, StorageError> {
        self.inner.committed(from, limit)
    }
    fn last_committed(&self) -> Result<u64, StorageError> {
        self.inner.last_committed()
    }
    fn recover(&self, tail: usize) -> Result<dwcp_core::Recovered, StorageError> {
        self.inner.recover(tail)
    }
}

/// A transport that notes, for each answer, whether its record was written.
struct Watch {
    written: Arc<std::sync::Mutex<Vec<u64>>>,
    seen: std::sync::Mutex<Vec<(u64, bool)>>,
}

impl Transport for Watch {
    fn send(&self, _to: NodeId, frame: Bytes) {
        let Ping(i) = decode(&frame, MAX_FRAME).expect("a ping");
        let stored = self.written.lock().expect("lock").contains(&i);
        self.seen.lock().expect("lock").push((i, stored));
    }
}

#[test]
fn records_of_waiting_inputs_share_one_write_and_answers_wait_for_it() {
    let (committee, _) = Committee::deterministic(2, SignatureScheme::Ed25519, 3);
    let writes = Arc::new(AtomicU64::new(0));
    let written = Arc::new(std::sync::Mutex::new(Vec::new()));
    let store = Counting {
        writes: writes.clone(),
        appends: Arc::new(AtomicU64::new(0)),
        written: written.clone(),
        inner: dwcp_core::storage::MemoryStore::new(),
    };
    let driver = Driver::new(NodeId(0), committee, Echo, store, MAX_FRAME);
    let (tx, rx) = sync_channel(100);
    for i in 1..=10 {
        tx.send(DriverInput::Frame {
            from: NodeId(1),
            frame: Bytes::from(encode(&Ping(i))),
        })
        .expect("queue");
    }
    tx.send(DriverInput::Shutdown).expect("queue");
    let transport = Watch {
        written,
        seen: std::sync::Mutex::new(Vec::new()),
    };
    let (ctx, _crx) = channel();
    let driver = driver.run(&rx, &transport, &ctx).expect("run");
    assert_eq!(
        *transport.seen.lock().expect("lock"),
        (1..=10).map(|i| (i, true)).collect::<Vec<_>>(),
        "every answer left, in order, after its record was written"
    );
    // Grouping stops after MAX_GROUP_TIME; a thread that lost the CPU for that
    // long may write twice, never ten times.
    assert!(driver.stats().persists < 10, "{:?}", driver.stats());
    assert_eq!(writes.load(Ordering::SeqCst), driver.stats().persists);
    assert_eq!(
        driver.store.recover(0).expect("recover").wal.len(),
        10,
        "every record written"
    );
}

/// Commits one batch per submitted transaction, then tells node 1 its height.
struct Committer(u64);

impl Engine for Committer {
    type Message = Ping;
    fn handle(&mut self, _now: Time, input: Input<Ping>, fx: &mut Effects<Ping>) {
        if let Input::Submit(txs) = input {
            for tx in txs {
                self.0 += 1;
                fx.commit(Committed {
                    seq: self.0,
                    digest: dwcp_core::Digest::of(&tx),
                    transactions: vec![tx],
                });
            }
            fx.send(NodeId(1), Ping(self.0));
        }
    }
    fn status(&self) -> EngineStatus {
        EngineStatus::default()
    }
}

#[test]
fn consecutive_commits_share_one_write_of_the_log_and_messages_wait_for_it() {
    let (committee, _) = Committee::deterministic(2, SignatureScheme::Ed25519, 3);
    let appends = Arc::new(AtomicU64::new(0));
    let written = Arc::new(std::sync::Mutex::new(Vec::new()));
    let store = Counting {
        writes: Arc::new(AtomicU64::new(0)),
        appends: appends.clone(),
        written: written.clone(),
        inner: dwcp_core::storage::MemoryStore::new(),
    };
    let driver = Driver::new(NodeId(0), committee, Committer(0), store, MAX_FRAME);
    let (tx, rx) = sync_channel(10);
    let txs: Vec<Bytes> = (0..64u32)
        .map(|i| Bytes::from(i.to_le_bytes().to_vec()))
        .collect();
    tx.send(DriverInput::Submit(txs)).expect("queue");
    tx.send(DriverInput::Shutdown).expect("queue");
    let transport = Watch {
        written,
        seen: std::sync::Mutex::new(Vec::new()),
    };
    let (ctx, crx) = channel();
    let driver = driver.run(&rx, &transport, &ctx).expect("run");
    assert_eq!(appends.load(Ordering::SeqCst), 1, "64 commits, one write");
    assert_eq!(
        *transport.seen.lock().expect("lock"),
        vec![(64, true)],
        "the message after the commits left once they were written"
    );
    let delivered: Vec<u64> = crx.try_iter().map(|c| c.seq).collect();
    assert_eq!(
        delivered,
        (1..=64).collect::<Vec<_>>(),
        "in order, once each"
    );
    assert_eq!(driver.stats().commits, 64);
    assert_eq!(driver.store.last_committed().expect("last"), 64);
}
