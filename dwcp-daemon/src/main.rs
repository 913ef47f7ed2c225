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
    /// Train, calibrate and evaluate the adaptive compression selector.
    #[command(subcommand)]
    Compress(cmd::compress::CompressCmd),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Compress(c) => cmd::compress::run(c),
    }
}
