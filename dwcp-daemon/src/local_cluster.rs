//! A local cluster of real `dwcpd run` processes on loopback: keys and configs in a
//! temporary folder, one process per node logging to a file there, a wait until
//! every node answers `/health`, and a clean SIGTERM stop. Shared by `dwcpd demo`
//! and `dwcpd bench`.

use crate::client::get_json;
use crate::config::NodeConfig;
use crate::keygen::{generate, ClusterLayout};
use anyhow::{bail, Context};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One `dwcpd run` process. Dropping it kills the process.
pub struct LocalNode {
    /// The process.
    pub child: Child,
    /// Its HTTP address.
    pub http: SocketAddr,
    /// Its log file (standard error).
    pub log: PathBuf,
}

impl Drop for LocalNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The running cluster; its folder (keys, configs, stores, logs) goes away with it.
pub struct LocalCluster {
    /// The nodes, by id.
    pub nodes: Vec<LocalNode>,
    /// The bearer token of every node's write endpoints.
    pub token: String,
    /// Consensus port of node 0 (node `i` uses `base_port + i`, its HTTP port
    /// `base_port + n + i`).
    pub base_port: u16,
    dir: tempfile::TempDir,
}

/// The first of a run of `2n` free loopback ports (`n` for consensus, `n` for HTTP).
pub fn free_ports(n: usize) -> anyhow::Result<u16> {
    // Below Linux's ephemeral range (32768+): the nodes' own outgoing connections
    // take ephemeral ports, and could otherwise grab one before the node meant to
    // listen on it starts.
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

impl LocalCluster {
    /// Writes keys and configs for `nodes` nodes, lets `configure` adjust each
    /// node's config, and starts one `dwcpd run` process per node (this executable).
    pub fn start(
        nodes: usize,
        configure: impl Fn(&mut NodeConfig),
    ) -> anyhow::Result<LocalCluster> {
        let dir = tempfile::tempdir().context("temporary directory")?;
        let base = free_ports(nodes)?;
        generate(&ClusterLayout {
            nodes,
            out: dir.path().to_path_buf(),
            host: "127.0.0.1".into(),
            base_port: base,
            http_base_port: base + nodes as u16,
        })?;
        let exe = std::env::current_exe().context("locating dwcpd")?;
        let mut procs = Vec::new();
        let mut token = String::new();
        for i in 0..nodes {
            let path = dir.path().join(format!("node-{i}.toml"));
            let mut cfg = NodeConfig::load(&path)?;
            configure(&mut cfg);
            cfg.save(&path)?;
            token = cfg.http_token.clone();
            let log = dir.path().join(format!("node-{i}.log"));
            let child = Command::new(&exe)
                .args(["run", "--config"])
                .arg(&path)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log)?)
                .spawn()
                .context("starting a node")?;
            procs.push(LocalNode {
                child,
                http: cfg.http,
                log,
            });
        }
        Ok(LocalCluster {
            nodes: procs,
            token,
            base_port: base,
            dir,
        })
    }

    /// The cluster's folder.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Waits until every node answers `/health`; otherwise fails with the log of the
    /// first node that did not (the folder, and the log, go away with the cluster).
    pub fn wait_healthy(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        for (i, node) in self.nodes.iter().enumerate() {
            while get_json(node.http, "/health").is_none() {
                if Instant::now() > deadline {
                    let log = std::fs::read_to_string(&node.log).unwrap_or_default();
                    bail!(
                        "node {i} did not come up within {} s; its log:\n{log}",
                        timeout.as_secs()
                    );
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    /// Stops every node with SIGTERM and waits up to `timeout` for them to exit
    /// (any still running are killed when the cluster is dropped).
    pub fn stop(&mut self, timeout: Duration) {
        for n in &self.nodes {
            terminate(&n.child);
        }
        let deadline = Instant::now() + timeout;
        for n in &mut self.nodes {
            while n.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
