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
    /// Twins: run an engine with a twinned node under enumerated partitions.
    Twins(cmd::twins::TwinsArgs),
    /// Write keys, a committee file and node configs for a local cluster.
    Keygen(cmd::keygen::KeygenArgs),
    /// Run one node from its config file.
    Run(cmd::run::RunArgs),
    /// Start a local cluster of real nodes on loopback, drive load, show what commits.
    Demo(cmd::demo::DemoArgs),
    /// Measure an engine's throughput and latency under Narwhal's benchmark load.
    Bench(cmd::bench::BenchArgs),
    /// Resource allocator: train MADDPG, evaluate it against the baselines.
    #[command(subcommand)]
    Allocate(cmd::allocate::AllocateCmd),
    /// Train, calibrate and evaluate the adaptive compression selector.
    #[command(subcommand)]
    Compress(cmd::compress::CompressCmd),
    /// ProBFT: the cheapest l, o the start-up check accepts at n and f_max, with a table.
    ProbftParams(cmd::probft_params::ProbftParamsArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Sim(args) => cmd::sim::run(args),
        Command::Twins(args) => cmd::twins::run(args),
        Command::Keygen(args) => cmd::keygen::run(args),
        Command::Run(args) => cmd::run::run(args),
        Command::Demo(args) => cmd::demo::run(args),
        Command::Bench(args) => cmd::bench::run(args),
        Command::Allocate(c) => cmd::allocate::run(c),
        Command::Compress(c) => cmd::compress::run(c),
        Command::ProbftParams(args) => cmd::probft_params::run(args),
    }
}
