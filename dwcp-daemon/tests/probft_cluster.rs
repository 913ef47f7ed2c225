//! ProBFT over real `dwcpd` processes on loopback, with the real VRF (RFC 9381
//! ECVRF): four nodes commit over the real transport, and a node SIGKILLed under
//! load and restarted from its store loses nothing: its log before the kill is a
//! prefix of its log after, digest for digest, and every node ends at the same
//! height with the same digest.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// Writes keys and ProBFT configs for `n` nodes; returns the HTTP base port.
fn setup(dir: &std::path::Path, n: usize, salt: u16) -> u16 {
    let base = free_ports(salt, 2 * n as u16 + 2);
    let http = base + n as u16;
    keygen(dir, n, base, http);
    for i in 0..n {
        edit_config(dir, i, |c| {
            c.insert("engine".into(), "probft".into());
            c.insert("http_rate_per_second".into(), 100_000.into());
            c.insert("http_rate_burst".into(), 100_000.into());
            section(c, "probft").insert("batch_size".into(), 8.into());
        });
    }
    http
}

#[test]
fn four_probft_processes_commit_and_a_killed_node_rejoins() {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let n = 4;
    let http_base = setup(dir.path(), n, 13);
    let token = token(dir.path());
    let mut nodes: Vec<Node> = (0..n).map(|i| Node::of(dir.path(), i, http_base)).collect();
    for node in &mut nodes {
        node.start();
    }
    wait_healthy(&nodes, Duration::from_secs(20));
    let ports: Vec<u16> = nodes.iter().map(|n| n.http).collect();
    let load = Load::start(ports, token, "probft-cluster");
    converge(&nodes, 40, Duration::from_secs(60));

    // Node 2 (not the leader of view 0) is killed under load and restarted.
    let victim = 2;
    let port = nodes[victim].http;
    let h = height(port);
    let prefix = log_range(port, 1, h);
    load.mark_down(victim, true);
    nodes[victim].kill9();
    let others = nodes[0].http;
    let down_at = height(others);
    wait_until("the others go on", Duration::from_secs(30), || {
        height(others) >= down_at + 20
    });
    nodes[victim].start();
    wait_healthy(&nodes[victim..=victim], Duration::from_secs(20));
    load.mark_down(victim, false);
    assert!(height(port) >= h, "the restarted node lost part of its log");
    let top = converge(&nodes, down_at + 40, Duration::from_secs(60));
    assert_eq!(
        log_range(port, 1, h),
        prefix,
        "the restarted node's log before the kill changed"
    );
    let sent = load.stop();
    let status = json(nodes[0].http, "/v1/status").expect("status");
    assert_eq!(status["engine"], "probft", "{status}");
    println!(
        "{n} nodes: height {top}, {sent} transactions sent, {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
