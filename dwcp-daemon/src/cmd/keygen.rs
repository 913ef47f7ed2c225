//! `dwcpd keygen`: keys, a committee file and node configs for a local cluster.

use crate::keygen::{generate, ClusterLayout};
use clap::Args;
use std::path::PathBuf;

/// Arguments of `dwcpd keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Committee size.
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Output folder (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Host the nodes listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Consensus port of node 0; node i uses this + i.
    #[arg(long, default_value_t = 7000)]
    pub base_port: u16,
    /// HTTP port of node 0; node i uses this + i.
    #[arg(long, default_value_t = 8000)]
    pub http_base_port: u16,
}

/// Writes `committee.json`, `node-<i>.key` (mode 0600) and `node-<i>.toml`.
pub fn run(args: KeygenArgs) -> anyhow::Result<()> {
    let layout = ClusterLayout {
        nodes: args.nodes,
        out: args.out,
        host: args.host,
        base_port: args.base_port,
        http_base_port: args.http_base_port,
    };
    generate(&layout)?;
    println!(
        "wrote a committee of {} to {}",
        layout.nodes,
        layout.out.display()
    );
    Ok(())
}
