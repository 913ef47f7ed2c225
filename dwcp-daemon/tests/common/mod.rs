//! Helpers shared by the tests that run real `dwcpd` processes on loopback: start
//! and SIGKILL nodes (killed on drop, so a failing test leaves none behind), write
//! and edit their configs, submit transactions and read the committed log over the
//! HTTP API.

// Each test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

use dwcp_daemon::client::request;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One `dwcpd run` process (or none, while it is down). Dropping it SIGKILLs the
/// process.
pub struct Node {
    /// The running process.
    pub child: Option<Child>,
    /// Its config file.
    pub config: PathBuf,
    /// Its HTTP port on 127.0.0.1.
    pub http: u16,
}

impl Node {
    /// A node of the configs `keygen` wrote to `dir`, not started.
    pub fn of(dir: &Path, i: usize, http_base: u16) -> Node {
        Node {
            child: None,
            config: dir.join(format!("node-{i}.toml")),
            http: http_base + i as u16,
        }
    }

    /// Starts `dwcpd run` on the node's config (its output discarded).
    pub fn start(&mut self) {
        let child = Command::new(env!("CARGO_BIN_EXE_dwcpd"))
            .args(["run", "--config"])
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn dwcpd");
        self.child = Some(child);
    }

    /// SIGKILLs the process and reaps it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
            c.wait().expect("reap");
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// SIGKILLs every node before reaping any, so that none outlives the others by
/// more than the few microseconds between the signals.
pub fn kill_all(nodes: &mut [Node]) {
    let mut children: Vec<Child> = nodes.iter_mut().filter_map(|n| n.child.take()).collect();
    for c in &mut children {
        c.kill().expect("SIGKILL");
    }
    for c in &mut children {
        c.wait().expect("reap");
    }
}

/// One request to a node's API on loopback: (status, body). Only the
/// `Authorization` header is passed on (as the client's bearer token).
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<(u16, String)> {
    let token = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, v)| v.strip_prefix("Bearer "));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    request(addr, method, path, token, body).map(|r| (r.status, r.body))
}

/// Writes keys and configs for `nodes` nodes with consensus ports from `base` and
/// HTTP ports from `http_base`.
pub fn keygen(dir: &Path, nodes: usize, base: u16, http_base: u16) {
    let out = Command::new(env!("CARGO_BIN_EXE_dwcpd"))
        .args([
            "keygen",
            "--nodes",
            &nodes.to_string(),
            "--base-port",
            &base.to_string(),
        ])
        .args(["--http-base-port", &http_base.to_string(), "--out"])
        .arg(dir)
        .output()
        .expect("keygen");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Rewrites node `i`'s config in `dir` through `edit`.
pub fn edit_config(dir: &Path, i: usize, edit: impl FnOnce(&mut toml::Table)) {
    let path = dir.join(format!("node-{i}.toml"));
    let text = std::fs::read_to_string(&path).expect("config");
    let mut table: toml::Table = toml::from_str(&text).expect("toml");
    edit(&mut table);
    std::fs::write(&path, toml::to_string(&table).expect("toml")).expect("write config");
}

/// The `[section]` table of a config, created if missing.
pub fn section<'a>(config: &'a mut toml::Table, name: &str) -> &'a mut toml::Table {
    config
        .entry(name)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .expect("a table")
}

/// A first port such that `span` consecutive ports from it are free on loopback,
/// below Linux's ephemeral range (32768+) so that the nodes' own outgoing
/// connections cannot take one before a node binds it. `salt` separates the tests
/// of one binary, the process id separates concurrent binaries.
pub fn free_ports(salt: u16, span: u16) -> u16 {
    let slots = (32_000 - 10_000) / span;
    let first = (std::process::id() as u16)
        .wrapping_mul(7)
        .wrapping_add(salt)
        % slots;
    for k in 0..slots {
        let base = 10_000 + ((first + k) % slots) * span;
        let free =
            (base..base + span).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
        if free {
            return base;
        }
    }
    panic!("no {span} free ports on loopback");
}

/// `GET path` as JSON, if it answers 200.
pub fn json(port: u16, path: &str) -> Option<serde_json::Value> {
    let (code, body) = http(port, "GET", path, &[], b"")?;
    if code != 200 {
        return None;
    }
    serde_json::from_str(&body).ok()
}

/// Polls `f` every 100 ms until it holds; panics after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

/// Waits until every node answers `/health` with 200.
pub fn wait_healthy(nodes: &[Node], timeout: Duration) {
    for n in nodes {
        wait_until("health", timeout, || {
            http(n.http, "GET", "/health", &[], b"").is_some_and(|(c, _)| c == 200)
        });
    }
}

/// Submits `transfer-<k>` for `k` in `from..from + count` as JSON; the status code
/// (0 if the node did not answer).
pub fn submit(port: u16, token: &str, from: u32, count: u32) -> u16 {
    let txs: Vec<String> = (from..from + count)
        .map(|k| hex::encode(format!("transfer-{k:06}")))
        .collect();
    let body = serde_json::json!({ "transactions": txs }).to_string();
    let auth = format!("Bearer {token}");
    http(
        port,
        "POST",
        "/v1/transactions",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
    .map(|(c, _)| c)
    .unwrap_or(0)
}

/// Submits the same kind of transactions as [`submit`] in the binary form.
pub fn submit_binary(port: u16, token: Option<&str>, from: u32, count: u32) -> u16 {
    let txs: Vec<String> = (from..from + count)
        .map(|k| format!("transfer-{k:06}"))
        .collect();
    submit_all(port, token, &txs)
}

/// Submits `txs` in the binary form; the status code (0 if the node did not answer).
pub fn submit_all(port: u16, token: Option<&str>, txs: &[String]) -> u16 {
    let body = dwcp_core::transactions::encode_transactions(txs);
    binary_post(port, token, &body)
}

/// Posts a binary transaction body; the status code (0 if the node did not answer).
pub fn binary_post(port: u16, token: Option<&str>, body: &[u8]) -> u16 {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    dwcp_daemon::client::request_typed(
        addr,
        "POST",
        "/v1/transactions",
        token,
        dwcp_core::transactions::CONTENT_TYPE,
        body,
    )
    .map_or(0, |r| r.status)
}

/// A node's last committed sequence number and its digest.
pub fn last(port: u16) -> Option<(u64, String)> {
    let v = json(port, "/v1/status")?;
    Some((
        v["last_committed"].as_u64()?,
        v["last_digest"].as_str().unwrap_or("").to_string(),
    ))
}

/// Transactions a node committed at sequence numbers `1..=upto`.
pub fn committed_count(port: u16, upto: u64) -> usize {
    (1..=upto)
        .filter_map(|s| json(port, &format!("/v1/committed/{s}")))
        .map(|v| v["transactions"].as_array().map(|a| a.len()).unwrap_or(0))
        .sum()
}

/// A node's digest at `seq`, if it has committed it.
pub fn digest_at(port: u16, seq: u64) -> Option<String> {
    json(port, &format!("/v1/committed/{seq}"))
        .and_then(|v| v["digest"].as_str().map(str::to_string))
}

/// A batch a node committed: its digest and its transactions (decoded from hex).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// The digest the node reports at this sequence number.
    pub digest: String,
    /// The transactions, in order.
    pub transactions: Vec<Vec<u8>>,
}

/// The batch a node committed at `seq`, if it serves it.
pub fn batch_at(port: u16, seq: u64) -> Option<Batch> {
    let v = json(port, &format!("/v1/committed/{seq}"))?;
    Some(Batch {
        digest: v["digest"].as_str()?.to_string(),
        transactions: v["transactions"]
            .as_array()?
            .iter()
            .map(|t| t.as_str().and_then(|t| hex::decode(t).ok()))
            .collect::<Option<_>>()?,
    })
}

/// A node's committed log from 1 to `upto`, read over HTTP (see [`log_range`]).
pub fn log_upto(port: u16, upto: u64) -> Vec<Batch> {
    log_range(port, 1, upto)
}

/// A node's committed batches `from..=upto`, read over HTTP, retrying each a few
/// times (a node may be slow to answer); panics if one stays missing.
pub fn log_range(port: u16, from: u64, upto: u64) -> Vec<Batch> {
    (from..=upto)
        .map(|s| {
            (0..50)
                .find_map(|_| {
                    batch_at(port, s).or_else(|| {
                        std::thread::sleep(Duration::from_millis(20));
                        None
                    })
                })
                .unwrap_or_else(|| panic!("node on port {port} does not serve seq {s}"))
        })
        .collect()
}

/// The HTTP bearer token keygen wrote into the configs in `dir`.
pub fn token(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("node-0.toml")).expect("config");
    let v: toml::Value = toml::from_str(&text).expect("toml");
    v["http_token"].as_str().expect("token").to_string()
}

/// A node's committed height.
pub fn height(port: u16) -> u64 {
    last(port).map_or(0, |(s, _)| s)
}

/// A client submitting a few transactions every 20 ms to the nodes in turn
/// (skipping those marked down) until stopped or dropped.
pub struct Load {
    stop: Arc<AtomicBool>,
    down: Arc<Vec<AtomicBool>>,
    handle: Option<JoinHandle<u32>>,
}

impl Load {
    pub fn start(ports: Vec<u16>, token: String, tag: &'static str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let down: Arc<Vec<AtomicBool>> =
            Arc::new(ports.iter().map(|_| AtomicBool::new(false)).collect());
        let (flag, skip) = (stop.clone(), down.clone());
        let handle = std::thread::spawn(move || {
            let mut k = 0u32;
            let deadline = Instant::now() + Duration::from_secs(120);
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                let i = (k / 4) as usize % ports.len();
                if !skip[i].load(Ordering::Relaxed) {
                    let txs: Vec<String> = (k..k + 4).map(|k| format!("{tag}-{k:08}")).collect();
                    submit_all(ports[i], Some(&token), &txs);
                }
                k += 4;
                std::thread::sleep(Duration::from_millis(20));
            }
            k
        });
        Load {
            stop,
            down,
            handle: Some(handle),
        }
    }

    pub fn mark_down(&self, node: usize, down: bool) {
        self.down[node].store(down, Ordering::Relaxed);
    }

    pub fn stop(mut self) -> u32 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().map_or(0, |h| h.join().unwrap_or(0))
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Waits until every node is at `at_least` or beyond, and checks that they all
/// hold the same digest at the lowest of their heights (under load they move
/// on); returns that height.
pub fn converge(nodes: &[Node], at_least: u64, timeout: Duration) -> u64 {
    let mut low = 0;
    wait_until("every node at the height", timeout, || {
        low = nodes.iter().map(|n| height(n.http)).min().unwrap_or(0);
        low >= at_least
    });
    let digests: Vec<Option<String>> = nodes.iter().map(|n| digest_at(n.http, low)).collect();
    assert!(
        digests[0].is_some() && digests.iter().all(|d| *d == digests[0]),
        "digests at {low}: {digests:?}"
    );
    low
}
