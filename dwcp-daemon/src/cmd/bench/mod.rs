//! `dwcpd bench`: throughput and latency of an engine under Narwhal's benchmark
//! definitions, so figures compare with its `fab local` side by side.
//!
//! The load: one client per node, each sending every 50 ms a burst of its share of
//! `rate / 20` transactions of `tx_size` bytes, one of them a tagged sample whose
//! send time the client records ([`load`]). The figures ([`summary`]): consensus TPS
//! and latency from the engine's own proposal-to-commit samples, end-to-end TPS and
//! latency from the client's send times to node 0's commits.
//!
//! Two modes: `--in-process` runs `n` drivers on threads of this process over a
//! [`crate::driver::local::LocalNetwork`] ([`in_process`]); without it, `n` real
//! `dwcpd run` processes on loopback take the load over HTTP ([`processes`]).

pub mod args;
pub mod in_process;
pub mod load;
pub mod processes;
pub mod summary;

pub use args::BenchArgs;

use crate::engines::EngineConfig;
use anyhow::bail;
use dwcp_consensus::registry::{self, Protocol, ProtocolVisitor};
use summary::EngineSummary;

/// Runs the benchmark and prints the summary.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if !(1..=64).contains(&args.nodes) {
        bail!("--nodes must be between 1 and 64");
    }
    if args.tx_size < load::MIN_TX_SIZE {
        bail!("--tx-size must be at least {} bytes", load::MIN_TX_SIZE);
    }
    if args.rate == 0 || args.duration.is_zero() {
        bail!("--rate and --duration must be positive");
    }
    registry::with_protocol(&args.engine, Bench(&args))?
}

/// The benchmark of one registered engine.
struct Bench<'a>(&'a BenchArgs);

impl ProtocolVisitor for Bench<'_> {
    type Output = anyhow::Result<()>;

    fn visit<P: Protocol>(self) -> anyhow::Result<()> {
        let args = self.0;
        let cfg = P::bench_config(&args.node_params()).map_err(anyhow::Error::msg)?;
        let cfg = crate::engine_params::with_params(&cfg, &args.params)
            .and_then(|c| P::validate(&c).map(|()| c))
            .map_err(anyhow::Error::msg)?;
        let engine = EngineSummary {
            name: P::NAME,
            parameters: P::describe(&cfg),
            unused: args.unused(P::BENCH_USES),
        };
        let report = if args.in_process {
            let cluster = in_process::start(args, |keys, committee, recovered| {
                P::build(keys, committee, &cfg, recovered).map_err(anyhow::Error::msg)
            })?;
            in_process::run(args, cluster)?
        } else {
            processes::run(
                args,
                &EngineConfig::of::<P>(cfg).map_err(anyhow::Error::msg)?,
            )?
        };
        print!("{}", summary::render(args, &engine, &report));
        Ok(())
    }
}
