//! `dwcpd`: the DWCP daemon and its tools.

use clap::{Parser, Subcommand};

/// The DWCP daemon and its tools.
#[derive(Debug, Parser)]
#[command(name = "dwcpd", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Resource allocator: train MADDPG, evaluate it against the baselines.
    #[command(subcommand)]
    Allocate(dwcp_daemon::cmd::allocate::AllocateCmd),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Allocate(cmd) => dwcp_daemon::cmd::allocate::run(cmd),
    }
}
