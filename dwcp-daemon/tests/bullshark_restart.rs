//! Four `dwcpd` processes running Bullshark, with a client submitting all along,
//! SIGKILLed all at once while batches are in flight and restarted from their redb
//! stores: the cluster commits again, the log before the kill is a prefix of the
//! log after it on every node, and no transaction that was durable anywhere is lost.
//!
//! What `202 Accepted` promises: the transactions are queued for the node's
//! engine, not yet stored. A worker stores a batch (and its peers store their
//! copies) before acknowledging it, and seals a batch at the latest
//! `max_batch_delay` after its first transaction arrived; so a transaction is on
//! disk within about that delay of its acceptance, and one accepted in the last
//! moments before a whole-cluster crash may be lost. The test therefore asserts
//! that every transaction accepted after the restart, and every one accepted at
//! least [`GRACE`] before the kill, is committed on every node, exactly once; and
//! reports how many of those accepted in the last [`GRACE`] were lost.

mod common;

use common::*;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long before the kill a transaction must have been accepted for the test to
/// require it committed: many times the engine's `max_batch_delay` (100 ms) plus a
/// storage write, so a busy machine does not make the test flaky.
const GRACE: Duration = Duration::from_secs(3);

/// Transactions per request, and the pause between requests (about 2,000
/// transactions a second, spread over the four nodes).
const PER_REQUEST: u32 = 40;
const PAUSE: Duration = Duration::from_millis(20);

/// One request the client made.
struct Sent {
    /// The first transaction number; the request carried `PER_REQUEST` of them.
    first: u32,
    /// When its answer arrived.
    at: Instant,
    /// Whether the node answered 202.
    accepted: bool,
}

fn tx(k: u32) -> String {
    format!("bullshark-restart-{k:08}")
}

/// A client thread that submits to the nodes in turn until stopped (also when
/// dropped, so a failing test does not leave it running).
struct Load {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Vec<Sent>>>,
}

impl Load {
    fn start(ports: Vec<u16>, token: String) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut sent = Vec::new();
            let mut k = 0u32;
            // Bounded even if nobody stops it: 10 minutes at most.
            let deadline = Instant::now() + Duration::from_secs(600);
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                let port = ports[(k / PER_REQUEST) as usize % ports.len()];
                let txs: Vec<String> = (k..k + PER_REQUEST).map(tx).collect();
                let code = submit_all(port, Some(&token), &txs);
                sent.push(Sent {
                    first: k,
                    at: Instant::now(),
                    accepted: code == 202,
                });
                k += PER_REQUEST;
                std::thread::sleep(PAUSE);
            }
            sent
        });
        Load {
            stop,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> Vec<Sent> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .expect("running")
            .join()
            .expect("client thread")
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// The committed log of one node as read so far over HTTP.
struct LogReader {
    port: u16,
    batches: Vec<Batch>,
    transactions: HashSet<Vec<u8>>,
}

impl LogReader {
    fn new(port: u16) -> LogReader {
        LogReader {
            port,
            batches: Vec::new(),
            transactions: HashSet::new(),
        }
    }

    /// Reads what the node committed since the last call.
    fn advance(&mut self) {
        let Some((height, _)) = last(self.port) else {
            return;
        };
        let from = self.batches.len() as u64 + 1;
        for b in log_range(self.port, from, height) {
            self.transactions.extend(b.transactions.iter().cloned());
            self.batches.push(b);
        }
    }
}

fn heights(nodes: &[Node]) -> Vec<u64> {
    nodes
        .iter()
        .map(|n| last(n.http).map_or(0, |(s, _)| s))
        .collect()
}

#[test]
fn whole_cluster_sigkill_under_load_restarts_with_the_same_log() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let base = free_ports(1, 8);
    keygen(dir.path(), 4, base, base + 4);
    for i in 0..4 {
        edit_config(dir.path(), i, |c| {
            c.insert("engine".into(), "bullshark".into());
            // The test reads every committed batch over HTTP.
            c.insert("http_rate_per_second".into(), 100_000.into());
            c.insert("http_rate_burst".into(), 100_000.into());
        });
    }
    let token = token(dir.path());
    let mut nodes: Vec<Node> = (0..4).map(|i| Node::of(dir.path(), i, base + 4)).collect();
    for n in &mut nodes {
        n.start();
    }
    wait_healthy(&nodes, Duration::from_secs(20));
    let ports: Vec<u16> = nodes.iter().map(|n| n.http).collect();
    let load = Load::start(ports.clone(), token.clone());

    // Under load for a while, every node committing.
    wait_until("every node commits", Duration::from_secs(30), || {
        heights(&nodes).iter().all(|h| *h >= 20)
    });
    std::thread::sleep(Duration::from_secs(2));

    // What each node committed before the kill, as far as it can be read; the kill
    // comes right after, the client still submitting.
    let before: Vec<Vec<Batch>> = nodes
        .iter()
        .map(|n| {
            let (h, _) = last(n.http).expect("status");
            log_upto(n.http, h)
        })
        .collect();
    let before_heights = heights(&nodes);
    kill_all(&mut nodes);
    let killed_at = Instant::now();
    let shortest = before.iter().map(Vec::len).min().unwrap_or(0);
    for b in &before[1..] {
        assert_eq!(
            b[..shortest],
            before[0][..shortest],
            "the nodes disagreed before the kill"
        );
    }

    // Restarted from their stores: each serves at least what it had committed.
    for n in &mut nodes {
        n.start();
    }
    wait_healthy(&nodes, Duration::from_secs(20));
    let restarted_at = Instant::now();
    let restored = heights(&nodes);
    for (i, h) in restored.iter().enumerate() {
        assert!(
            *h >= before_heights[i],
            "node {i} restarted at {h}, below the {} it had committed",
            before_heights[i]
        );
    }

    // New sequence numbers after the restart, on every node, while the load goes on.
    let top = before_heights.iter().copied().max().unwrap_or(0);
    wait_until(
        "every node commits past the pre-kill height",
        Duration::from_secs(30),
        || heights(&nodes).iter().all(|h| *h >= top + 15),
    );
    let remaining = Duration::from_secs(3).saturating_sub(restarted_at.elapsed());
    std::thread::sleep(remaining);
    let sent = load.finish();

    // Which transactions must commit: every one accepted after the restart, and
    // every one accepted well before the kill.
    let mut required: HashSet<Vec<u8>> = HashSet::new();
    let mut last_moments: Vec<Vec<u8>> = Vec::new();
    let (mut accepted_before, mut accepted_after) = (0usize, 0usize);
    for s in sent.iter().filter(|s| s.accepted) {
        let txs = (s.first..s.first + PER_REQUEST).map(|k| tx(k).into_bytes());
        if s.at >= restarted_at {
            accepted_after += PER_REQUEST as usize;
            required.extend(txs);
        } else if s.at + GRACE <= killed_at {
            accepted_before += PER_REQUEST as usize;
            required.extend(txs);
        } else if s.at <= killed_at {
            accepted_before += PER_REQUEST as usize;
            last_moments.extend(txs);
        }
    }
    assert!(accepted_after > 0, "nothing was accepted after the restart");

    let mut readers: Vec<LogReader> = nodes.iter().map(|n| LogReader::new(n.http)).collect();
    let mut missing = required.len();
    wait_until(
        "every required transaction committed on every node",
        Duration::from_secs(30),
        || {
            for r in &mut readers {
                r.advance();
            }
            missing = readers
                .iter()
                .map(|r| required.difference(&r.transactions).count())
                .max()
                .unwrap_or(0);
            missing == 0
        },
    );

    // One log: the same digests and transactions at each sequence number on every
    // node, and what each had committed before the kill is a prefix of it.
    let common = readers.iter().map(|r| r.batches.len()).min().unwrap_or(0);
    for (i, r) in readers.iter().enumerate() {
        assert_eq!(
            r.batches[..common],
            readers[0].batches[..common],
            "node {i} diverged from node 0"
        );
        assert!(
            r.batches.len() >= before[i].len() && r.batches[..before[i].len()] == before[i][..],
            "node {i} rewrote what it had committed before the kill"
        );
    }
    assert!(
        common as u64 > top,
        "no new sequence numbers after the restart"
    );
    // Exactly once.
    let mut seen: HashMap<&[u8], u64> = HashMap::new();
    for (s, b) in readers[0].batches.iter().enumerate() {
        for t in &b.transactions {
            if let Some(first) = seen.insert(t, s as u64 + 1) {
                panic!(
                    "{} committed twice, at {first} and {}",
                    String::from_utf8_lossy(t),
                    s + 1
                );
            }
        }
    }
    // Batches were in flight at the kill: transactions accepted before it that no
    // store had committed yet were committed after the restart.
    let on_disk = restored.iter().copied().max().unwrap_or(0) as usize;
    let in_flight: HashSet<&Vec<u8>> = readers[0].batches[on_disk.min(common)..]
        .iter()
        .flat_map(|b| b.transactions.iter())
        .collect();
    let survived = sent
        .iter()
        .filter(|s| s.accepted && s.at <= killed_at)
        .flat_map(|s| (s.first..s.first + PER_REQUEST).map(|k| tx(k).into_bytes()))
        .filter(|t| in_flight.contains(t))
        .count();
    assert!(
        survived > 0,
        "no transaction was in flight at the kill: the test did not test recovery"
    );
    let lost = last_moments
        .iter()
        .filter(|t| !readers[0].transactions.contains(*t))
        .count();
    println!(
        "heights before the kill {before_heights:?}, after {:?}; accepted {accepted_before} \
         before the kill ({survived} of them committed only after the restart; {} in its \
         last {GRACE:?}, {lost} of those lost) and {accepted_after} after the restart; {:.1} s",
        readers.iter().map(|r| r.batches.len()).collect::<Vec<_>>(),
        last_moments.len(),
        started.elapsed().as_secs_f64()
    );
}
