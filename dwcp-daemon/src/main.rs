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
enum Command {}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {}
}
