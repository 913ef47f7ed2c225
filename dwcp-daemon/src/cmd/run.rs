//! `dwcpd run`: run one node from its config file.

use crate::config::NodeConfig;
use clap::Args;
use std::path::PathBuf;

/// Arguments of `dwcpd run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The node's TOML config (see `dwcpd keygen`).
    #[arg(long)]
    pub config: PathBuf,
}

/// Loads the config and runs the node until SIGINT or SIGTERM.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let cfg = NodeConfig::load(&args.config)?;
    crate::node::run(cfg)
}
