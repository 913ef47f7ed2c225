//! T-PBFT over real `dwcpd` processes on loopback: four nodes (all on the
//! committee) and seven (a committee of four, three observers) commit over the
//! real transport across several epochs, report their committee on
//! `/v1/status` and `/metrics`, and a committee member (and, with seven, an
//! observer) SIGKILLed under load and restarted from its store loses nothing: its
//! log before the kill is a prefix of its log after, digest for digest, and every
//! node ends at the same height with the same digest, in the same epoch.
//!
//! Epochs are 128 batches and a batch holds the evidence record and one client
//! transaction, so a few hundred transactions cross several epochs. The store
//! hands a restarted node back `epoch_length + window + dedup_window` = 256
//! batches, fewer than the log holds by the time of the kill: the restart goes
//! through the epoch snapshot.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// Sequence numbers per epoch.
const EPOCH: u64 = 128;

/// Writes keys and T-PBFT configs for `n` nodes; returns the HTTP base port.
fn setup(dir: &std::path::Path, n: usize, salt: u16) -> u16 {
    let base = free_ports(salt, 2 * n as u16 + 2);
    let http = base + n as u16;
    keygen(dir, n, base, http);
    for i in 0..n {
        edit_config(dir, i, |c| {
            c.insert("engine".into(), "tpbft".into());
            c.insert("http_rate_per_second".into(), 100_000.into());
            c.insert("http_rate_burst".into(), 100_000.into());
            let t = section(c, "tpbft");
            t.insert("committee_size".into(), 4.into());
            t.insert("epoch_length".into(), (EPOCH as i64).into());
            let p = section(t, "pbft");
            // The evidence record and one client transaction per batch.
            p.insert("batch_size".into(), 2.into());
            p.insert("dedup_window".into(), 64.into());
        });
    }
    http
}

/// The `committee` part of a node's `/v1/status`.
fn committee(port: u16) -> serde_json::Value {
    json(port, "/v1/status").map_or(serde_json::Value::Null, |s| s["committee"].clone())
}

/// Waits, with no load, until every node is at one height with one digest and in
/// one epoch; returns the height.
fn settle(nodes: &[Node], timeout: Duration) -> u64 {
    let mut top = 0;
    wait_until("every node at one height", timeout, || {
        let tops: Vec<Option<(u64, String)>> = nodes.iter().map(|n| last(n.http)).collect();
        let Some(Some(first)) = tops.first().cloned() else {
            return false;
        };
        top = first.0;
        tops.iter().all(|t| t.as_ref() == Some(&first))
    });
    let epochs: Vec<serde_json::Value> = nodes
        .iter()
        .map(|n| committee(n.http)["epoch"].clone())
        .collect();
    assert!(epochs.iter().all(|e| *e == epochs[0]), "epochs {epochs:?}");
    top
}

/// Kills node `victim` under load once the cluster is past `before` batches,
/// keeps it down for a while, restarts it, and checks that it lost nothing and
/// that everyone converges; returns the final height.
fn kill_and_restart(nodes: &mut [Node], load: &Load, victim: usize, before: u64) -> u64 {
    let port = nodes[victim].http;
    wait_until(
        "the cluster past the kill point",
        Duration::from_secs(60),
        || height(port) >= before,
    );
    let h = height(port);
    let prefix = log_range(port, 1, h);
    let epoch = committee(port)["epoch"].as_u64().unwrap_or(0);
    load.mark_down(victim, true);
    nodes[victim].kill9();
    let others = nodes[(victim + 1) % nodes.len()].http;
    let down_at = height(others);
    wait_until("the others go on", Duration::from_secs(30), || {
        height(others) >= down_at + 20
    });
    nodes[victim].start();
    wait_healthy(&nodes[victim..=victim], Duration::from_secs(20));
    load.mark_down(victim, false);
    assert!(height(port) >= h, "the restarted node lost part of its log");
    let again = committee(port);
    assert!(again["epoch"].as_u64() >= Some(epoch), "{again}");
    let top = converge(nodes, h + 40, Duration::from_secs(60));
    assert_eq!(
        log_range(port, 1, h),
        prefix,
        "the restarted node's log before the kill changed"
    );
    assert!(top > h, "the restarted node committed nothing new");
    top
}

/// Every node's committee view agrees, and each node's role is as expected.
fn check_committee(nodes: &[Node], members: usize) {
    let views: Vec<serde_json::Value> = nodes.iter().map(|n| committee(n.http)).collect();
    for (i, v) in views.iter().enumerate() {
        assert_eq!(v["members"], views[0]["members"], "node {i}: {v}");
        assert_eq!(v["trust_ppb"], views[0]["trust_ppb"], "node {i}: {v}");
        assert_eq!(
            v["primary_group"].as_array().map(|a| a.len()),
            Some(4),
            "{v}"
        );
    }
    let in_committee = views.iter().filter(|v| v["role"] == "member").count();
    assert_eq!(in_committee, members, "{views:?}");
    assert_eq!(
        views[0]["members"].as_array().map(|a| a.len()),
        Some(members)
    );
}

fn cluster(n: usize, salt: u16, victims: &[(usize, u64)]) {
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let http_base = setup(dir.path(), n, salt);
    let token = token(dir.path());
    let mut nodes: Vec<Node> = (0..n).map(|i| Node::of(dir.path(), i, http_base)).collect();
    for node in &mut nodes {
        node.start();
    }
    wait_healthy(&nodes, Duration::from_secs(20));
    let ports: Vec<u16> = nodes.iter().map(|n| n.http).collect();
    let load = Load::start(ports, token, "tpbft-cluster");
    let mut top = converge(&nodes, EPOCH + 10, Duration::from_secs(60));
    let metrics = http(nodes[n - 1].http, "GET", "/metrics", &[], b"")
        .map(|(_, b)| b)
        .unwrap_or_default();
    for series in [
        "dwcp_committee_epoch{",
        "dwcp_committee_member{",
        "dwcp_trust_score{",
    ] {
        assert!(metrics.contains(series), "{series} in {metrics}");
    }
    for &(victim, at) in victims {
        top = kill_and_restart(&mut nodes, &load, victim, at);
    }
    let sent = load.stop();
    let top = settle(&nodes, Duration::from_secs(30)).max(top);
    check_committee(&nodes, 4);
    println!(
        "{n} nodes: height {top} (epoch {}), {sent} transactions sent, {:.1} s",
        committee(nodes[0].http)["epoch"],
        started.elapsed().as_secs_f64()
    );
}

/// Four nodes, all on the committee; member 2 is killed in epoch 2.
#[test]
fn four_tpbft_processes_commit_and_a_killed_member_rejoins() {
    cluster(4, 11, &[(2, 2 * EPOCH + 30)]);
}

/// Seven nodes: members 0..3, observers 4..6. Member 1 is killed, then observer 5.
#[test]
fn seven_tpbft_processes_commit_and_a_killed_member_and_observer_rejoin() {
    cluster(7, 12, &[(1, 2 * EPOCH + 30), (5, 3 * EPOCH + 60)]);
}
