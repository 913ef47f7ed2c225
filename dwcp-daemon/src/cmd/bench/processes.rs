//! `dwcpd bench` over real processes: `n` `dwcpd run` nodes on loopback (a
//! [`LocalCluster`]), each client posting its bursts to its node's
//! `POST /v1/transactions`, node 0's log read back through `GET /v1/committed/{seq}`
//! (only the sample transactions, with the node's own commit timestamp), and the
//! consensus latency from the nodes' commit-latency histograms.

use super::args::BenchArgs;
use super::load::{read_every, sample_of, Clients};
use super::summary::{memory_kib, memory_phrase, ConsensusLatency, Report};
use crate::client::{get_json, request, request_typed};
use crate::engines::EngineConfig;
use crate::http::state::unix_us;
use crate::local_cluster::LocalCluster;
use anyhow::bail;
use dwcp_core::transactions::{encode_transactions, CONTENT_TYPE};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pause between two polls of node 0 when it has nothing new.
const POLL_IDLE: Duration = Duration::from_millis(10);
/// Period of the memory readings.
const MEMORY_PERIOD: Duration = Duration::from_secs(60);

/// Node 0's log as the poller reads it; times are Unix microseconds at node 0.
#[derive(Default)]
struct Tally {
    transactions: u64,
    bytes: u64,
    first_commit: Option<u64>,
    last_commit: Option<u64>,
    sample_commits: HashMap<u64, u64>,
    /// Transactions committed after the load ended (not counted).
    late_transactions: u64,
}

/// Reads node 0's committed batches from seq 1 on until `stop` is set and the node
/// has nothing newer; keeps batches committed at or before `until_us`.
fn follow(node: SocketAddr, stop: &AtomicBool, until_us: u64) -> Tally {
    let mut t = Tally::default();
    let mut next = 1u64;
    loop {
        let path = format!("/v1/committed/{next}?prefix=00");
        let Some(batch) = get_json(node, &path) else {
            if stop.load(Ordering::Relaxed) {
                return t;
            }
            std::thread::sleep(POLL_IDLE);
            continue;
        };
        next += 1;
        let at = batch["committed_unix_us"].as_u64().unwrap_or(0);
        if at > until_us {
            t.late_transactions += batch["transaction_count"].as_u64().unwrap_or(0);
            continue;
        }
        t.transactions += batch["transaction_count"].as_u64().unwrap_or(0);
        t.bytes += batch["transaction_bytes"].as_u64().unwrap_or(0);
        t.first_commit.get_or_insert(at);
        t.last_commit = Some(at);
        let samples = batch["transactions"].as_array().into_iter().flatten();
        for tx in samples.filter_map(|v| v.as_str()) {
            if let Some(id) = hex::decode(tx).ok().as_deref().and_then(sample_of) {
                t.sample_commits.entry(id).or_insert(at);
            }
        }
    }
}

/// Sum and count of `dwcp_consensus_commit_latency_seconds` in a `/metrics` text.
fn commit_latency(metrics: &str) -> (f64, u64) {
    let value = |suffix: &str| {
        metrics
            .lines()
            .filter(|l| l.starts_with(&format!("dwcp_consensus_commit_latency_seconds_{suffix}")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    (value("sum"), value("count") as u64)
}

fn wait_for_links(cluster: &LocalCluster, timeout: Duration) -> anyhow::Result<()> {
    let n = cluster.nodes.len() as u64;
    let deadline = Instant::now() + timeout;
    for (i, node) in cluster.nodes.iter().enumerate() {
        loop {
            let peers = get_json(node.http, "/health")
                .and_then(|h| h["components"]["transport"]["connected_peers"].as_u64());
            if peers == Some(n - 1) {
                break;
            }
            if Instant::now() > deadline {
                bail!("node {i} connected to {peers:?} of {} peers", n - 1);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

fn node_memory(pids: &[u32]) -> Vec<Option<(u64, u64)>> {
    pids.iter().map(|p| memory_kib(Some(*p))).collect()
}

fn memory_line(when: &str, readings: &[Option<(u64, u64)>]) -> String {
    let parts: Vec<String> = readings
        .iter()
        .enumerate()
        .map(|(i, m)| match m {
            Some(m) => format!("node {i} {}", memory_phrase(*m)),
            None => format!("node {i} unknown"),
        })
        .collect();
    format!("Memory {when}: {}", parts.join("; "))
}

/// Runs the load against a fresh cluster of `dwcpd run` processes and measures it.
pub fn run(args: &BenchArgs, engine: &EngineConfig) -> anyhow::Result<Report> {
    let mut cluster = LocalCluster::start(args.nodes, |cfg| {
        // The bench's clients and poller all come from 127.0.0.1: lift the
        // per-client limit and make room for large bursts.
        cfg.http_rate_per_second = 1_000_000;
        cfg.http_rate_burst = 1_000_000;
        cfg.http_body_limit = cfg.http_body_limit.max(256 << 20);
        cfg.set_engine(engine);
    })?;
    cluster.wait_healthy(Duration::from_secs(30))?;
    wait_for_links(&cluster, Duration::from_secs(30))?;
    let pids: Vec<u32> = cluster.nodes.iter().map(|n| n.child.id()).collect();

    let origin = Instant::now();
    let origin_us = unix_us();
    let stop_at = origin + args.duration;
    let until_us = origin_us + u64::try_from(args.duration.as_micros()).unwrap_or(u64::MAX);
    let on_wall = |t: Instant| origin_us + t.saturating_duration_since(origin).as_micros() as u64;

    let stop = Arc::new(AtomicBool::new(false));
    let follower = {
        let (node, stop) = (cluster.nodes[0].http, stop.clone());
        std::thread::Builder::new()
            .name("follow-0".into())
            .spawn(move || follow(node, &stop, until_us))?
    };
    let readings = {
        let pids = pids.clone();
        read_every(origin, MEMORY_PERIOD, stop.clone(), move || {
            node_memory(&pids)
        })
    };
    let token = cluster.token.clone();
    let clients = Clients::start(args.nodes, args.rate, args.tx_size, stop_at, |i| {
        let (addr, token) = (cluster.nodes[i].http, token.clone());
        move |txs: Vec<bytes::Bytes>| {
            let body = encode_transactions(&txs);
            request_typed(
                addr,
                "POST",
                "/v1/transactions",
                Some(&token),
                CONTENT_TYPE,
                &body,
            )
            .is_some_and(|r| r.status == 202)
        }
    })?;
    let load = clients.join()?;
    // The load is over: read the histograms and memory before anything else moves.
    let (mut sum, mut count) = (0.0, 0);
    for n in &cluster.nodes {
        if let Some(r) = request(n.http, "GET", "/metrics", None, b"") {
            let (s, c) = commit_latency(&r.body);
            sum += s;
            count += c;
        }
    }
    let end_memory = node_memory(&pids);
    let heights: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| {
            get_json(n.http, "/v1/status")
                .and_then(|s| s["last_committed"].as_u64())
                .map_or_else(|| "-".into(), |h| h.to_string())
        })
        .collect();
    stop.store(true, Ordering::Relaxed);
    let tally = follower
        .join()
        .map_err(|_| anyhow::anyhow!("the commit follower panicked"))?;
    let readings = readings.join().unwrap_or_default();
    cluster.stop(Duration::from_secs(10));

    let secs = |unix: u64| unix.saturating_sub(origin_us) as f64 / 1e6;
    let mut end_to_end = Vec::new();
    for (id, sent) in &load.samples {
        if let Some(at) = tally.sample_commits.get(id) {
            end_to_end.push(at.saturating_sub(on_wall(*sent)) as f64 / 1e6);
        }
    }
    let mean_latency = if count > 0 { sum / count as f64 } else { 0.0 };
    let mut notes = vec![
        format!(
            "Committed heights of nodes 0..{} at the end: {}",
            args.nodes - 1,
            heights.join(" ")
        ),
        format!(
            "Committed by node 0 after the load ended (not counted): {} transactions",
            super::summary::thousands(tally.late_transactions)
        ),
    ];
    for (minute, m) in readings.iter().enumerate() {
        notes.push(memory_line(&format!("at {} min", minute + 1), m));
    }
    notes.push(memory_line("at the end", &end_memory));
    let peak = end_memory.iter().flatten().map(|m| m.1).max();
    if let Some(p) = peak {
        notes.push(format!(
            "Peak RSS: {:.1} MiB (largest node; sum {:.1} MiB)",
            p as f64 / 1024.0,
            end_memory.iter().flatten().map(|m| m.1).sum::<u64>() as f64 / 1024.0
        ));
    }
    Ok(Report {
        mode: format!(
            "{} dwcpd processes on loopback, load over HTTP, commits read from node 0's API",
            args.nodes
        ),
        committed_tx: tally.transactions,
        committed_bytes: tally.bytes,
        first_proposal: tally
            .first_commit
            .map(|t| (secs(t) - mean_latency).max(0.0)),
        first_proposal_note: Some(
            "estimated as node 0's first commit minus the mean consensus latency".into(),
        ),
        first_send: load.first_send.map(|t| secs(on_wall(t))),
        last_commit: tally.last_commit.map(secs),
        consensus: ConsensusLatency::Histogram { sum, count },
        end_to_end,
        load,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_latency_sums_every_node_series() {
        let text = "# HELP x\n\
            dwcp_consensus_commit_latency_seconds_sum{engine=\"pbft\",node=\"0\"} 1.5\n\
            dwcp_consensus_commit_latency_seconds_count{engine=\"pbft\",node=\"0\"} 3\n\
            dwcp_consensus_commit_latency_seconds_bucket{engine=\"pbft\",node=\"0\",le=\"0.5\"} 3\n\
            dwcp_consensus_commit_latency_seconds_sum{engine=\"pbft\",node=\"1\"} 0.5\n\
            dwcp_consensus_commit_latency_seconds_count{engine=\"pbft\",node=\"1\"} 1\n";
        assert_eq!(commit_latency(text), (2.0, 4));
    }
}
