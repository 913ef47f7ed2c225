//! `dwcpd sim`: run an engine in the deterministic simulator over many seeds.

use crate::engine_params::{with_params, EngineParam};
use anyhow::{bail, Context};
use clap::Args;
use dwcp_consensus::registry::{
    check_name, simulation_with, with_protocol, Protocol, ProtocolVisitor,
};
use dwcp_consensus::sim::{scenario, SimReport, SweepSummary};
use dwcp_core::crypto::SignatureScheme;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Arguments of `dwcpd sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Engine to simulate.
    #[arg(long, default_value = "pbft")]
    pub engine: String,
    /// Committee size.
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Faulty nodes (default: the most tolerated, f = ⌊(n-1)/3⌋).
    #[arg(long)]
    pub faulty: Option<usize>,
    /// What the faulty nodes do: silent, equivocate, garbage, badsig, replay, crash,
    /// slacker (signs late or not at all), turncoat (honest for 1.2 s, then silent),
    /// collude (honest, but the faulty nodes' proposed evidence favours each other), partition (no faulty node: the network splits and heals), or honest.
    #[arg(long, default_value = "equivocate")]
    pub behaviour: String,
    /// Number of seeds to run.
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// First seed.
    #[arg(long, default_value_t = 0)]
    pub first_seed: u64,
    /// Use the insecure fast signature stand-in instead of ed25519 (large sweeps).
    #[arg(long)]
    pub fast_crypto: bool,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub json: bool,
    /// Sets a field of the engine's simulator parameters (repeatable; dotted names
    /// reach nested tables), such as `--param f_max=10` for ProBFT.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    pub params: Vec<EngineParam>,
}

/// Whether the engine visited starts on its simulator parameters with `params`
/// set, at `nodes` nodes (its start-up checks included).
struct Check<'a> {
    nodes: usize,
    params: &'a [EngineParam],
}

impl ProtocolVisitor for Check<'_> {
    type Output = Result<(), String>;
    fn visit<P: Protocol>(self) -> Result<(), String> {
        let pcfg = with_params(&P::sim_config(), self.params)?;
        P::validate(&pcfg)?;
        let (committee, keys) =
            dwcp_core::Committee::deterministic(self.nodes, SignatureScheme::InsecureFast, 0);
        P::build(
            keys[0].clone(),
            committee,
            &pcfg,
            dwcp_core::Recovered::default(),
        )
        .map(|_| ())
    }
}

/// One run of the engine visited, on its simulator parameters with `params` set.
struct Run<'a> {
    cfg: dwcp_consensus::sim::SimConfig,
    params: &'a [EngineParam],
}

impl ProtocolVisitor for Run<'_> {
    type Output = Result<SimReport, String>;
    fn visit<P: Protocol>(self) -> Result<SimReport, String> {
        let pcfg = with_params(&P::sim_config(), self.params)?;
        P::validate(&pcfg)?;
        Ok(simulation_with::<P>(self.cfg, pcfg).run())
    }
}

/// Runs the sweep and prints its summary.
pub fn run(args: SimArgs) -> anyhow::Result<()> {
    let engine = check_name(&args.engine)?;
    if args.nodes == 0 || args.nodes > 1000 {
        bail!("--nodes must be between 1 and 1000");
    }
    if args.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let f_max = (args.nodes - 1) / 3;
    let faulty = args.faulty.unwrap_or(f_max);
    if faulty > f_max {
        eprintln!("warning: {faulty} faulty nodes exceed f = {f_max}; safety is not guaranteed");
    }
    // Validate once before spawning workers (a configuration the engine refuses
    // at start-up fails here, with its reason).
    scenario(args.nodes, faulty, &args.behaviour, 0).map_err(anyhow::Error::msg)?;
    with_protocol(
        engine,
        Check {
            nodes: args.nodes,
            params: &args.params,
        },
    )?
    .map_err(anyhow::Error::msg)?;

    let progress = if std::io::stderr().is_terminal() && args.seeds > 1 {
        let bar = indicatif::ProgressBar::new(args.seeds);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:40}] {pos}/{len} seeds, {msg}",
            )
            .context("progress template")?
            .progress_chars("=> "),
        );
        Some(bar)
    } else {
        None
    };
    let threads = args
        .threads
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
        .clamp(1, 64);
    let next = AtomicU64::new(0);
    let results: Mutex<Vec<SimReport>> = Mutex::new(Vec::new());
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= args.seeds {
                    break;
                }
                let seed = args.first_seed + k;
                let Ok(mut cfg) = scenario(args.nodes, faulty, &args.behaviour, seed) else {
                    break;
                };
                if args.fast_crypto {
                    cfg.scheme = SignatureScheme::InsecureFast;
                }
                cfg.keep_log = args.seeds == 1 && !args.json;
                let Ok(Ok(r)) = with_protocol(
                    engine,
                    Run {
                        cfg,
                        params: &args.params,
                    },
                ) else {
                    break;
                };
                if let Some(bar) = &progress {
                    bar.inc(1);
                    if !r.violations.is_empty() {
                        bar.set_message(format!("violation at seed {seed}"));
                    }
                }
                if let Ok(mut v) = results.lock() {
                    v.push(r);
                }
            });
        }
    });
    let wall = started.elapsed();
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let mut reports = results.into_inner().unwrap_or_default();
    reports.sort_by_key(|r| r.seed);
    let mut summary = SweepSummary::new(engine, args.nodes, faulty, &args.behaviour);
    for r in &reports {
        summary.add(r);
    }

    if !args.json {
        if let [only] = reports.as_slice() {
            print_log(only);
        }
        println!(
            "{} seeds of {} with n={} and {} {} node(s): {} safety violations, {} liveness failures",
            summary.seeds, summary.engine, summary.nodes, summary.faulty, summary.behaviour,
            summary.safety_violations, summary.liveness_failures
        );
        println!(
            "{} decisions, {:.1} messages and {:.0} bytes per decision, commit latency p50 {:.1} ms p99 {:.1} ms (virtual), {} view changes",
            summary.decisions, summary.msgs_per_decision, summary.bytes_per_decision,
            summary.p50_latency_ms, summary.p99_latency_ms, summary.view_changes
        );
        println!(
            "simulated {} messages ({} events) in {:.2} s of wall time on {} thread(s): {:.0} messages/s",
            summary.messages,
            summary.events,
            wall.as_secs_f64(),
            threads,
            summary.messages as f64 / wall.as_secs_f64().max(1e-9)
        );
        for e in &summary.examples {
            println!("  {e}");
        }
    }
    if args.json {
        let mut v = serde_json::to_value(&summary)?;
        v["wall_seconds"] = serde_json::json!(wall.as_secs_f64());
        v["messages_per_second"] =
            serde_json::json!(summary.messages as f64 / wall.as_secs_f64().max(1e-9));
        println!("{v}");
    }
    if summary.safety_violations > 0 {
        bail!("{} safety violations", summary.safety_violations);
    }
    Ok(())
}

fn print_log(r: &SimReport) {
    println!("committed log of the first honest node (seed {}):", r.seed);
    for c in r.log.iter().take(12) {
        let ids: Vec<u64> = c
            .transactions
            .iter()
            .filter_map(|t| t.get(8..16))
            .filter_map(|b| b.try_into().ok().map(u64::from_le_bytes))
            .collect();
        let shown = match (ids.first(), ids.last()) {
            (Some(a), Some(b)) if ids.len() > 1 => format!("tx {a}..={b}"),
            (Some(a), _) => format!("tx {a}"),
            _ => "empty batch".to_string(),
        };
        println!(
            "  seq {:>3}  {}  {:>3} transactions  {}",
            c.seq,
            c.digest,
            c.transactions.len(),
            shown
        );
    }
    if r.log.len() > 12 {
        println!("  ... {} more batches", r.log.len() - 12);
    }
}
