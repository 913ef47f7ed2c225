//! `dwcpd`: the DWCP daemon and its tools.

use clap::{Parser, Subcommand};
use dwcp_daemon::cmd;

/// The DWCP daemon and its tools.
#[derive(Debug, Parser)]
#[command(name = "dwcpd", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a consensus engine in the deterministic simulator with faulty nodes.
    Sim(cmd::sim::SimArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Sim(args) => cmd::sim::run(args),
    }
}
