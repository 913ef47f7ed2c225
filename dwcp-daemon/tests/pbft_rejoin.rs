//! Four `dwcpd` processes running PBFT with one transaction per batch: one is
//! SIGKILLed and kept down while the other three commit more than 10,000 batches,
//! far beyond the certified tail the replicas keep in memory
//! (`retain_committed`, 1,024 batches), then restarted from its store. It must
//! catch up from its peers' stored logs to the same height with the same digests,
//! and then follow the live log again.
//!
//! PBFT's digest at a sequence number chains every batch up to it, so one equal
//! digest at the top means equal logs; the test still compares a sample of
//! sequence numbers on the way.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// Batches committed while the replica is down.
const DOWN_FOR: u64 = 10_000;

fn height(n: &Node) -> u64 {
    last(n.http).map_or(0, |(s, _)| s)
}

/// Submits transactions `from..from + count` to `node` in requests of 1,000,
/// retrying a request the node answers "busy".
fn submit_range(node: &Node, token: &str, from: u32, count: u32) {
    let mut k = from;
    while k < from + count {
        let n = 1_000.min(from + count - k);
        let txs: Vec<String> = (k..k + n).map(|k| format!("pbft-rejoin-{k:08}")).collect();
        wait_until(
            "the node to accept transactions",
            Duration::from_secs(20),
            || submit_all(node.http, Some(token), &txs) == 202,
        );
        k += n;
    }
}

#[test]
fn a_replica_down_for_ten_thousand_batches_rejoins_from_the_peers_stores() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let base = free_ports(2, 8);
    keygen(dir.path(), 4, base, base + 4);
    for i in 0..4 {
        edit_config(dir.path(), i, |c| {
            c.insert("http_rate_per_second".into(), 100_000.into());
            c.insert("http_rate_burst".into(), 100_000.into());
            // One transaction per batch: 10,000 batches in seconds.
            section(c, "pbft").insert("batch_size".into(), 1.into());
        });
    }
    let token = token(dir.path());
    let mut nodes: Vec<Node> = (0..4).map(|i| Node::of(dir.path(), i, base + 4)).collect();
    for n in &mut nodes {
        n.start();
    }
    wait_healthy(&nodes, Duration::from_secs(20));

    // All four commit a first stretch together.
    submit_range(&nodes[0], &token, 0, 100);
    wait_until("all four at 100", Duration::from_secs(30), || {
        nodes.iter().all(|n| height(n) >= 100)
    });
    let (early, early_digest) = last(nodes[3].http).expect("status");
    assert_eq!(digest_at(nodes[0].http, early), Some(early_digest.clone()));

    // Node 3 down; the others go on for more than 10,000 batches.
    nodes[3].kill9();
    let down_at = height(&nodes[0]);
    let load_started = Instant::now();
    submit_range(&nodes[0], &token, 100, DOWN_FOR as u32 + 50);
    let target = down_at + DOWN_FOR;
    wait_until(
        "10,000 batches without node 3",
        Duration::from_secs(60),
        || nodes[..3].iter().all(|n| height(n) >= target),
    );
    let load_secs = load_started.elapsed().as_secs_f64();
    let (top, top_digest) = last(nodes[0].http).expect("status");
    let samples: Vec<(u64, String)> = [early, down_at + 1]
        .into_iter()
        .chain((1..=DOWN_FOR / 1_000).map(|k| down_at + k * 1_000))
        .chain([top])
        .map(|s| (s, digest_at(nodes[0].http, s).expect("digest")))
        .collect();
    for n in &nodes[1..3] {
        wait_until("the others at the top", Duration::from_secs(20), || {
            height(n) >= top
        });
        for (s, d) in &samples {
            assert_eq!(digest_at(n.http, *s).as_ref(), Some(d), "diverged at {s}");
        }
    }
    assert!(
        height(&nodes[0]) >= down_at + DOWN_FOR,
        "fewer than 10,000 batches while node 3 was down"
    );

    // Restarted, node 3 catches up to the same height with the same digests.
    nodes[3].start();
    wait_healthy(&nodes[3..], Duration::from_secs(20));
    assert!(height(&nodes[3]) >= early, "node 3 lost its own log");
    let rejoin_started = Instant::now();
    wait_until("node 3 catches up", Duration::from_secs(60), || {
        height(&nodes[3]) >= top
    });
    let rejoin_secs = rejoin_started.elapsed().as_secs_f64();
    assert_eq!(digest_at(nodes[3].http, top), Some(top_digest), "diverged");
    for (s, d) in &samples {
        assert_eq!(
            digest_at(nodes[3].http, *s).as_ref(),
            Some(d),
            "node 3 diverged at {s}"
        );
    }

    // And it follows the live log again.
    submit_range(&nodes[1], &token, 20_000, 20);
    wait_until(
        "all four commit new batches",
        Duration::from_secs(30),
        || nodes.iter().all(|n| height(n) >= top + 20),
    );
    let digest = digest_at(nodes[0].http, top + 20).expect("digest");
    for n in &nodes[1..] {
        assert_eq!(digest_at(n.http, top + 20).as_ref(), Some(&digest));
    }
    println!(
        "node 3 down from {down_at} to {top} ({load_secs:.1} s of load), caught up in \
         {rejoin_secs:.1} s; {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
}
