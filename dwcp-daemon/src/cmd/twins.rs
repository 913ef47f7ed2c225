//! `dwcpd twins`: Twins sweeps (Bano et al., OPODIS 2021) of an engine in the
//! simulator: every case of a slice of the one-twin space, or seeded random cases.

use anyhow::bail;
use clap::Args;
use dwcp_consensus::registry::{self, twins_random_sweep, twins_sweep, Protocol, ProtocolVisitor};
use dwcp_consensus::sim::{TwinsCase, TwinsCrash, TwinsShape, TwinsSummary};

/// Arguments of `dwcpd twins`.
#[derive(Debug, Args)]
pub struct TwinsArgs {
    /// Engine to test.
    #[arg(long, default_value = "pbft")]
    pub engine: String,
    /// Committee size.
    #[arg(long, default_value_t = 4)]
    pub nodes: usize,
    /// Scripted rounds (views for PBFT, DAG rounds for Bullshark) before the
    /// network becomes whole.
    #[arg(long, default_value_t = 4)]
    pub rounds: usize,
    /// Script each round as this many steps, one per proposal slot (PBFT's
    /// sequence numbers 0, 1, .., SLOTS - 2, and the rest): --rounds then counts
    /// steps. 0 scripts whole rounds.
    #[arg(long, default_value_t = 0)]
    pub slots: u64,
    /// Cases to run (default: the whole one-twin space from --first-rank on).
    #[arg(long)]
    pub cases: Option<u64>,
    /// First case: of the one-twin space, or of the random sequence (cases are
    /// numbered; any one reruns alone with --cases 1).
    #[arg(long, default_value_t = 0)]
    pub first_rank: u64,
    /// Draw cases at random instead of enumerating, with this many twins.
    #[arg(long)]
    pub random_twins: Option<usize>,
    /// Crash an honest node in every enumerated case, as NODE:ROUND:EFFECT: the node
    /// crashes right after the EFFECT-th effect (from 0) it carries out in ROUND,
    /// and restarts from its store.
    #[arg(long, value_parser = parse_crash)]
    pub crash: Option<TwinsCrash>,
    /// Seed of the random cases.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub json: bool,
}

/// Runs the sweep and prints its summary; fails if any case was unsafe or not live.
pub fn run(args: TwinsArgs) -> anyhow::Result<()> {
    registry::check_name(&args.engine)?;
    if !(2..=16).contains(&args.nodes) {
        bail!("--nodes must be between 2 and 16 (the space grows as 2^(n·rounds))");
    }
    if args
        .crash
        .is_some_and(|c| usize::from(c.node) >= args.nodes)
    {
        bail!(
            "--crash names a node outside the committee of {}",
            args.nodes
        );
    }
    if args.rounds == 0 || args.rounds > 12 {
        bail!("--rounds must be between 1 and 12");
    }
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, 64);
    if args.slots > 64 {
        bail!("--slots must be at most 64");
    }
    let shape = TwinsShape {
        nodes: args.nodes,
        rounds: args.rounds,
        slots: args.slots,
    };
    let started = std::time::Instant::now();
    let (summary, what) = match args.random_twins {
        Some(t) => {
            if t == 0 || t > (args.nodes - 1) / 3 {
                bail!(
                    "--random-twins must be between 1 and f = {}",
                    (args.nodes - 1) / 3
                );
            }
            let cases = args.first_rank..args.first_rank.saturating_add(args.cases.unwrap_or(1000));
            let what = format!(
                "random cases {}..{} of seed {} with {t} twin(s)",
                cases.start, cases.end, args.seed
            );
            let s = registry::with_protocol(
                &args.engine,
                Sweep::Random {
                    shape,
                    twins: t,
                    cases,
                    seed: args.seed,
                    threads,
                },
            )?;
            (s, what)
        }
        None => {
            let space = TwinsCase::space(args.nodes, args.rounds);
            if args.first_rank >= space {
                bail!("--first-rank must be below the space of {space} cases");
            }
            let end = match args.cases {
                Some(c) => args.first_rank.saturating_add(c).min(space),
                None => space,
            };
            let s = registry::with_protocol(
                &args.engine,
                Sweep::Ranks {
                    shape,
                    ranks: args.first_rank..end,
                    crash: args.crash,
                    threads,
                },
            )?;
            (
                s,
                format!(
                    "cases {}..{end} of {space} ({:.1}% of the one-twin space)",
                    args.first_rank,
                    100.0 * (end - args.first_rank) as f64 / space as f64
                ),
            )
        }
    };
    let wall = started.elapsed().as_secs_f64();
    let rate = summary.cases as f64 / wall.max(1e-9);
    if args.json {
        let mut v = serde_json::to_value(&summary)?;
        v["engine"] = serde_json::json!(args.engine);
        v["nodes"] = serde_json::json!(args.nodes);
        v["rounds"] = serde_json::json!(args.rounds);
        v["slots"] = serde_json::json!(args.slots);
        v["wall_seconds"] = serde_json::json!(wall);
        v["cases_per_second"] = serde_json::json!(rate);
        println!("{v}");
    } else {
        println!(
            "twins {} n={} rounds={} slots={}: {what}",
            args.engine, args.nodes, args.rounds, args.slots
        );
        println!(
            "{} cases ({} split a twin, {} changed view or timed out a leader): {} unsafe, {} not live, {} decisions",
            summary.cases,
            summary.split_cases,
            summary.view_change_cases,
            summary.unsafe_cases,
            summary.liveness_failures,
            summary.decisions
        );
        println!("{wall:.1} s on {threads} thread(s): {rate:.0} cases/s");
        for e in &summary.examples {
            println!("  {e}");
        }
        if !summary.examples.is_empty() {
            let random = match args.random_twins {
                Some(t) => format!(" --random-twins {t} --seed {}", args.seed),
                None => String::new(),
            };
            println!(
                "rerun one case: dwcpd twins --engine {} --nodes {} --rounds {} --slots {}{random} --first-rank N --cases 1",
                args.engine, args.nodes, args.rounds, args.slots
            );
        }
    }
    if summary.unsafe_cases > 0 || summary.liveness_failures > 0 {
        bail!(
            "{} unsafe and {} not live cases",
            summary.unsafe_cases,
            summary.liveness_failures
        );
    }
    Ok(())
}

/// A Twins sweep of whichever engine is named.
enum Sweep {
    /// Cases of the one-twin space, by rank.
    Ranks {
        shape: TwinsShape,
        ranks: std::ops::Range<u64>,
        crash: Option<TwinsCrash>,
        threads: usize,
    },
    /// Random cases of a seeded sequence.
    Random {
        shape: TwinsShape,
        twins: usize,
        cases: std::ops::Range<u64>,
        seed: u64,
        threads: usize,
    },
}

impl ProtocolVisitor for Sweep {
    type Output = TwinsSummary;
    fn visit<P: Protocol>(self) -> TwinsSummary {
        match self {
            Sweep::Ranks {
                shape,
                ranks,
                crash,
                threads,
            } => twins_sweep::<P>(shape, ranks, crash, threads),
            Sweep::Random {
                shape,
                twins,
                cases,
                seed,
                threads,
            } => twins_random_sweep::<P>(shape, twins, cases, seed, threads),
        }
    }
}

fn parse_crash(s: &str) -> Result<TwinsCrash, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let [node, round, effect] = parts.as_slice() else {
        return Err("expected NODE:ROUND:EFFECT, for example 1:1:0".into());
    };
    let num = |what: &str, v: &str| -> Result<u64, String> {
        v.parse::<u64>().map_err(|e| format!("{what} {v:?}: {e}"))
    };
    Ok(TwinsCrash {
        node: u16::try_from(num("node", node)?).map_err(|_| "node out of range".to_string())?,
        round: num("round", round)?,
        effect: u32::try_from(num("effect", effect)?)
            .map_err(|_| "effect out of range".to_string())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_points_parse_and_bad_ones_are_refused() {
        assert_eq!(
            parse_crash("1:2:30"),
            Ok(TwinsCrash {
                node: 1,
                round: 2,
                effect: 30
            })
        );
        for bad in ["", "1:2", "1:2:3:4", "a:1:1", "70000:1:1", "1:1:-1"] {
            assert!(parse_crash(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
