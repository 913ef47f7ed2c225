//! The engines `dwcpd bench` can measure: one [`EngineSpec`] per engine name, built
//! in [`engine`]. Adding an engine is one match arm there: how to build it for the
//! in-process cluster, how to configure a `dwcpd run` node for it, and which of
//! Narwhal's node parameters it uses.

use super::in_process::{self, InProcessCluster};
use super::summary::thousands;
use super::BenchArgs;
use crate::config::NodeConfig;
use anyhow::bail;
use dwcp_consensus::pbft::{Pbft, PbftConfig};

/// How the benchmark runs one engine.
pub struct EngineSpec {
    /// The engine's name, as in node configs.
    pub name: &'static str,
    /// The node parameters (Narwhal's names, see [`BenchArgs`]) the engine uses.
    pub uses: &'static [&'static str],
    /// Lines describing the engine parameters in effect, for the summary.
    pub describe: fn(&BenchArgs) -> Vec<String>,
    /// Starts `args.nodes` drivers of the engine on threads of this process.
    pub start_in_process: fn(&BenchArgs) -> anyhow::Result<InProcessCluster>,
    /// Sets up one `dwcpd run` node's config for the engine.
    pub configure_node: fn(&BenchArgs, &mut NodeConfig),
}

impl EngineSpec {
    /// Node parameters given on the command line that this engine does not use.
    pub fn unused(&self, args: &BenchArgs) -> Vec<(&'static str, String)> {
        args.given_node_parameters()
            .into_iter()
            .filter(|(name, _)| !self.uses.contains(name))
            .collect()
    }
}

/// The engine called `name`.
pub fn engine(name: &str) -> anyhow::Result<EngineSpec> {
    Ok(match name {
        "pbft" => EngineSpec {
            name: "pbft",
            uses: &["batch_size", "timeout_delay"],
            describe: describe_pbft,
            start_in_process: |args| {
                let cfg = pbft_config(args);
                in_process::start(args, move |keys, committee, recovered| {
                    Ok(Pbft::new(keys, committee, cfg.clone(), recovered)?)
                })
            },
            configure_node: |args, node| {
                let cfg = pbft_config(args);
                node.engine = "pbft".into();
                node.pbft.batch_size = Some(cfg.batch_size);
                node.pbft.view_change_timeout_ms =
                    Some(u64::try_from(cfg.view_change_timeout.as_millis()).unwrap_or(u64::MAX));
            },
        },
        // A Bullshark arm goes here: `"bullshark" => EngineSpec { name: "bullshark",
        // uses: &[...], start_in_process: |args| in_process::start(args, |k, c, r| ...), ... }`.
        other => bail!("unknown engine {other:?} (available: pbft)"),
    })
}

/// PBFT under the benchmark's parameters: Narwhal's `batch_size` (bytes) becomes
/// transactions per pre-prepare, `timeout_delay` the view-change timeout.
fn pbft_config(args: &BenchArgs) -> PbftConfig {
    let mut c = PbftConfig::default();
    if let Some(bytes) = args.batch_size {
        c.batch_size = (bytes / args.tx_size.max(1)).max(1);
    }
    if let Some(t) = args.timeout_delay {
        c.view_change_timeout = t;
    }
    c
}

fn describe_pbft(args: &BenchArgs) -> Vec<String> {
    let c = pbft_config(args);
    let batch = match args.batch_size {
        Some(b) => format!("{} B / tx size", thousands(b as u64)),
        None => "default".into(),
    };
    vec![
        format!(
            "Batch size: {} transactions per pre-prepare ({batch})",
            thousands(c.batch_size as u64)
        ),
        format!(
            "Timeout delay: {} ms (view-change timeout)",
            thousands(c.view_change_timeout.as_millis() as u64)
        ),
        format!(
            "Window: {} sequence numbers, checkpoint every {}",
            c.window, c.checkpoint_interval
        ),
    ]
}
