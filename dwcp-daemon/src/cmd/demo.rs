//! `dwcpd demo`: a local cluster of real `dwcpd` processes on loopback, driven with
//! load, showing live progress and what was committed.

use crate::client::{get_json, request};
use crate::engine_params::EngineParam;
use crate::engines::EngineConfig;
use crate::local_cluster::LocalCluster;
use anyhow::{bail, Context};
use clap::Args;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arguments of `dwcpd demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Engine to run.
    #[arg(long, default_value = "pbft")]
    pub engine: String,
    /// Number of nodes.
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Seconds of load before shutting down (Ctrl-C stops earlier).
    #[arg(long, default_value_t = 15)]
    pub duration: u64,
    /// Transactions per second offered, in bursts every 50 ms.
    #[arg(long, default_value_t = 2000)]
    pub rate: u64,
    /// Transaction size in bytes.
    #[arg(long, default_value_t = 128)]
    pub tx_size: usize,
    /// Sets a field of the engine's config table (repeatable; dotted names reach
    /// nested tables), such as `--param committee_size=4` for T-PBFT.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<EngineParam>,
}

/// One line on node `i`'s committee, for an engine that elects one.
fn committee_line(i: usize, status: &serde_json::Value) -> Option<String> {
    let c = status.get("committee").filter(|c| !c.is_null())?;
    let ids = |v: &serde_json::Value| -> String {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x.as_u64().map_or("?".into(), |x| x.to_string()))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_default()
    };
    Some(format!(
        "  node {i}: {} in epoch {}, committee [{}], primary group [{}]",
        c["role"].as_str().unwrap_or("?"),
        c["epoch"],
        ids(&c["members"]),
        ids(&c["primary_group"])
    ))
}

/// Starts the cluster, drives load, prints progress and the committed log, stops.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    dwcp_consensus::registry::check_name(&args.engine)?;
    if !(1..=16).contains(&args.nodes) {
        bail!("--nodes must be between 1 and 16 for a local demo");
    }
    let engine = EngineConfig::new(&args.engine, None)
        .and_then(|e| e.with_params(&args.params))
        .map_err(anyhow::Error::msg)?;
    let mut cluster = LocalCluster::start(args.nodes, |c| c.set_engine(&engine))?;
    let (base, token) = (cluster.base_port, cluster.token.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let stop_on_signal = stop.clone();
    std::thread::spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            rt.block_on(async {
                let _ = tokio::signal::ctrl_c().await;
            });
            stop_on_signal.store(true, Ordering::Relaxed);
        }
    });

    cluster.wait_healthy(Duration::from_secs(20))?;
    let procs = &cluster.nodes;
    println!("{} {} nodes up on 127.0.0.1 ports {}..{}; offering {} tx/s of {} bytes for {} s (Ctrl-C stops)",
        args.nodes, args.engine, base, base + 2 * args.nodes as u16 - 1, args.rate, args.tx_size, args.duration);

    for (i, p) in procs.iter().enumerate() {
        if let Some(line) = get_json(p.http, "/v1/status").and_then(|s| committee_line(i, &s)) {
            println!("{line}");
        }
    }

    let burst = (args.rate / 20).max(1);
    let started = Instant::now();
    let mut sent: u64 = 0;
    let mut next_report = started + Duration::from_secs(1);
    let mut k = 0usize;
    while started.elapsed() < Duration::from_secs(args.duration) && !stop.load(Ordering::Relaxed) {
        let tick = Instant::now();
        let txs: Vec<String> = (0..burst)
            .map(|i| {
                let mut tx = format!("demo tx {:012} ", sent + i).into_bytes();
                tx.resize(args.tx_size.max(tx.len()), b'.');
                hex::encode(&tx)
            })
            .collect();
        let body = serde_json::json!({ "transactions": txs }).to_string();
        let target = procs[k % procs.len()].http;
        k += 1;
        if request(
            target,
            "POST",
            "/v1/transactions",
            Some(&token),
            body.as_bytes(),
        )
        .is_some_and(|r| r.status == 202)
        {
            sent += burst;
        }
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(1);
            let heights: Vec<String> = procs
                .iter()
                .map(|p| {
                    get_json(p.http, "/v1/status")
                        .and_then(|v| v["last_committed"].as_u64())
                        .map(|h| h.to_string())
                        .unwrap_or_else(|| "-".into())
                })
                .collect();
            println!(
                "  {:>3} s  sent {:>8} tx   committed height per node: {}",
                started.elapsed().as_secs(),
                sent,
                heights.join(" ")
            );
        }
        if let Some(rest) = Duration::from_millis(50).checked_sub(tick.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    std::thread::sleep(Duration::from_secs(1));

    let first = procs[0].http;
    let status = get_json(first, "/v1/status").context("node 0 status")?;
    let height = status["last_committed"].as_u64().unwrap_or(0);
    println!("committed by node 0 (the last batches of {height}):");
    for seq in height.saturating_sub(4).max(1)..=height {
        if let Some(c) = get_json(first, &format!("/v1/committed/{seq}")) {
            let n = c["transactions"].as_array().map(|a| a.len()).unwrap_or(0);
            println!(
                "  seq {:>5}  log digest {}  {:>5} transactions",
                seq,
                c["digest"].as_str().unwrap_or("?"),
                n
            );
        }
    }
    let mut agree = 0;
    let digest = get_json(first, &format!("/v1/committed/{height}"))
        .and_then(|c| c["digest"].as_str().map(str::to_string));
    for p in procs {
        let d = get_json(p.http, &format!("/v1/committed/{height}"))
            .and_then(|c| c["digest"].as_str().map(str::to_string));
        if d.is_some() && d == digest {
            agree += 1;
        }
    }
    println!(
        "{agree} of {} nodes hold the same log digest at seq {height}; {sent} transactions sent",
        procs.len()
    );
    for (i, p) in procs.iter().enumerate() {
        if let Some(line) = get_json(p.http, "/v1/status").and_then(|s| committee_line(i, &s)) {
            println!("{line}");
        }
    }
    cluster.stop(Duration::from_secs(10));
    println!("stopped all nodes");
    Ok(())
}
