//! The engines `dwcpd bench` can measure: one [`EngineSpec`] per engine name, built
//! in [`engine`]. Adding an engine is one match arm there: how to build it for the
//! in-process cluster, how to configure a `dwcpd run` node for it, and which of
//! Narwhal's node parameters it uses.

use super::in_process::{self, InProcessCluster};
use super::summary::thousands;
use super::BenchArgs;
use crate::config::NodeConfig;
use anyhow::bail;
use dwcp_consensus::bullshark::{BullsharkConfig, BullsharkEngine};
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

/// The engine called `name`, checked against the parameters it will run with.
pub fn engine_for(args: &BenchArgs) -> anyhow::Result<EngineSpec> {
    let spec = engine(&args.engine)?;
    if spec.name == "bullshark" && args.workers.unwrap_or(1) != 1 {
        bail!("bullshark runs one worker per node (--workers 1)");
    }
    Ok(spec)
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
        "bullshark" => EngineSpec {
            name: "bullshark",
            uses: &[
                "workers",
                "batch_size",
                "max_batch_delay",
                "header_size",
                "max_header_delay",
                "gc_depth",
                "sync_retry_delay",
            ],
            describe: describe_bullshark,
            start_in_process: |args| {
                let cfg = bullshark_config(args);
                in_process::start(args, move |keys, committee, recovered| {
                    Ok(BullsharkEngine::new(
                        keys,
                        committee,
                        cfg.clone(),
                        recovered,
                    )?)
                })
            },
            configure_node: |args, node| {
                let cfg = bullshark_config(args);
                let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
                node.engine = "bullshark".into();
                node.bullshark.batch_size = Some(cfg.batch_size);
                node.bullshark.max_batch_delay_ms = Some(ms(cfg.max_batch_delay));
                node.bullshark.header_size = Some(cfg.header_size);
                node.bullshark.max_header_delay_ms = Some(ms(cfg.max_header_delay));
                node.bullshark.gc_depth = Some(cfg.gc_depth);
                node.bullshark.dedup_window = Some(cfg.dedup_window);
            },
        },
        other => bail!("unknown engine {other:?} (available: pbft, bullshark)"),
    })
}

/// Bullshark under the benchmark's parameters (Narwhal's names map one to one).
/// Each client transaction goes to one node, so repeats need not be dropped.
fn bullshark_config(args: &BenchArgs) -> BullsharkConfig {
    let mut c = BullsharkConfig {
        dedup_window: 0,
        ..BullsharkConfig::default()
    };
    if let Some(b) = args.batch_size {
        c.batch_size = b;
    }
    if let Some(d) = args.max_batch_delay {
        c.max_batch_delay = d;
    }
    if let Some(h) = args.header_size {
        c.header_size = h;
    }
    if let Some(d) = args.max_header_delay {
        c.max_header_delay = d;
    }
    if let Some(g) = args.gc_depth {
        c.gc_depth = g;
    }
    if let Some(d) = args.sync_retry_delay {
        c.sync_retry = d;
    }
    c
}

fn describe_bullshark(args: &BenchArgs) -> Vec<String> {
    let c = bullshark_config(args);
    vec![
        "Workers per node: 1".to_string(),
        format!("Batch size: {} B", thousands(c.batch_size as u64)),
        format!(
            "Max batch delay: {} ms",
            thousands(c.max_batch_delay.as_millis() as u64)
        ),
        format!("Header size: {} B", thousands(c.header_size as u64)),
        format!(
            "Max header delay: {} ms",
            thousands(c.max_header_delay.as_millis() as u64)
        ),
        format!("GC depth: {} rounds", c.gc_depth),
        format!(
            "Sync retry delay: {} ms",
            thousands(c.sync_retry.as_millis() as u64)
        ),
    ]
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
