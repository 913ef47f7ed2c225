//! `dwcpd demo`: a local cluster of real `dwcpd` processes on loopback, driven with
//! load, showing live progress and what was committed.

use crate::client::{get_json, request};
use crate::cmd::keygen::{self, KeygenArgs};
use crate::config::NodeConfig;
use anyhow::{bail, Context};
use clap::Args;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
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
}

struct Proc {
    child: Child,
    http: SocketAddr,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_ports(n: usize) -> anyhow::Result<u16> {
    // A run of 2n free ports (n for consensus, n for HTTP) below Linux's ephemeral
    // range (32768+): the nodes' own outgoing connections take ephemeral ports, and
    // could otherwise grab one before the node meant to listen on it starts.
    let span = 2 * n as u16;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id();
    let mut base = 10_000 + (seed % 20_000) as u16;
    for _ in 0..200 {
        if base + span >= 32_000 {
            base = 10_000;
        }
        let all_free =
            (0..span).all(|k| std::net::TcpListener::bind(("127.0.0.1", base + k)).is_ok());
        if all_free {
            return Ok(base);
        }
        base += span + 1;
    }
    bail!("no run of {span} free loopback ports found between 10000 and 32000")
}

#[cfg(unix)]
fn terminate(child: &Child) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
}

#[cfg(not(unix))]
fn terminate(_child: &Child) {}

/// Starts the cluster, drives load, prints progress and the committed log, stops.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    if args.engine != "pbft" {
        bail!("unknown engine {:?} (available: pbft)", args.engine);
    }
    if !(1..=16).contains(&args.nodes) {
        bail!("--nodes must be between 1 and 16 for a local demo");
    }
    let dir = tempfile::tempdir().context("temporary directory")?;
    let base = free_ports(args.nodes)?;
    keygen::run(KeygenArgs {
        nodes: args.nodes,
        out: dir.path().to_path_buf(),
        host: "127.0.0.1".into(),
        base_port: base,
        http_base_port: base + args.nodes as u16,
    })?;
    let exe = std::env::current_exe().context("locating dwcpd")?;
    let mut procs = Vec::new();
    let mut token = String::new();
    for i in 0..args.nodes {
        let config = dir.path().join(format!("node-{i}.toml"));
        let cfg = NodeConfig::load(&config)?;
        token = cfg.http_token.clone();
        let log = std::fs::File::create(dir.path().join(format!("node-{i}.log")))?;
        let child = Command::new(&exe)
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting a node")?;
        procs.push(Proc {
            child,
            http: cfg.http,
        });
    }
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

    let deadline = Instant::now() + Duration::from_secs(20);
    for (i, p) in procs.iter().enumerate() {
        while get_json(p.http, "/health").is_none() {
            if Instant::now() > deadline {
                // The folder goes away with us: show the node's own account.
                let log = std::fs::read_to_string(dir.path().join(format!("node-{i}.log")))
                    .unwrap_or_default();
                bail!("node {i} did not come up within 20 s; its log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    println!("{} {} nodes up on 127.0.0.1 ports {}..{}; offering {} tx/s of {} bytes for {} s (Ctrl-C stops)",
        args.nodes, args.engine, base, base + 2 * args.nodes as u16 - 1, args.rate, args.tx_size, args.duration);

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
    for p in &procs {
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
    for p in &procs {
        terminate(&p.child);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for p in &mut procs {
        while p.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    println!("stopped all nodes");
    Ok(())
}
