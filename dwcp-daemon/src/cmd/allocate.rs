//! `dwcpd allocate`: train the MADDPG allocator and evaluate it against the baselines.

use std::path::PathBuf;

use anyhow::Context;
use dwcp_ml::allocator::baselines;
use dwcp_ml::allocator::eval::{evaluate, EvalConfig};
use dwcp_ml::allocator::model_file::{ModelFile, Provenance};
use dwcp_ml::allocator::policy::MaddpgAllocator;
use dwcp_ml::allocator::trace::DemandTraces;
use dwcp_ml::allocator::train::{train, TrainConfig};
use dwcp_ml::allocator::Allocator;
use indicatif::{ProgressBar, ProgressStyle};

/// `dwcpd allocate ...`
#[derive(Debug, clap::Subcommand)]
pub enum AllocateCmd {
    /// Train the MADDPG node agents on the training trace days and write the actor.
    Train {
        /// Training episodes.
        #[arg(long, default_value_t = TrainConfig::default().episodes)]
        episodes: usize,
        /// Where to write the model (JSON weights file).
        #[arg(long)]
        out: PathBuf,
        /// Seed (training is deterministic for a seed).
        #[arg(long, default_value_t = TrainConfig::default().seed)]
        seed: u64,
        /// Independent runs (seeds seed, seed+1, ...); the best on the validation
        /// objective (training days only) is kept.
        #[arg(long, default_value_t = TrainConfig::default().restarts)]
        restarts: usize,
        /// Also write the training report (JSON) here.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Evaluate MADDPG and every baseline on held-out trace days.
    Eval {
        /// Number of seeds (episodes per allocator).
        #[arg(long, default_value_t = 5)]
        seeds: usize,
        /// Print the report as one JSON object on the last line.
        #[arg(long)]
        json: bool,
        /// Model to evaluate instead of the embedded default.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Cluster size of the latency measurement.
        #[arg(long, default_value_t = 100)]
        latency_nodes: usize,
    },
}

fn bar(len: u64) -> ProgressBar {
    let pb = ProgressBar::new(len);
    let style = ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    pb.set_style(style);
    pb
}

/// Runs the subcommand.
pub fn run(cmd: AllocateCmd) -> anyhow::Result<()> {
    let traces = DemandTraces::embedded().context("loading the embedded demand traces")?;
    match cmd {
        AllocateCmd::Train {
            episodes,
            out,
            seed,
            restarts,
            report,
        } => {
            let cfg = TrainConfig {
                episodes,
                seed,
                restarts,
                ..TrainConfig::default()
            };
            let pb = bar((episodes * cfg.restarts.max(1)) as u64);
            let mut recent: Vec<f64> = Vec::new();
            let (actor, rep) = train(&traces, &cfg, &mut |_, r| {
                recent.push(r);
                let k = recent.len().saturating_sub(10);
                let avg = recent[k..].iter().sum::<f64>() / (recent.len() - k) as f64;
                pb.set_message(format!("episode reward {r:.1} (last-10 mean {avg:.1})"));
                pb.inc(1);
            })
            .context("training")?;
            pb.finish();
            let command = format!(
                "dwcpd allocate train --episodes {episodes} --seed {seed} --restarts {restarts} --out {}",
                out.display()
            );
            let run = &rep.runs[rep.chosen];
            let prov = Provenance {
                episodes,
                seed: run.seed,
                nodes: cfg.nodes,
                ticks: cfg.ticks,
                seconds: rep.seconds,
                command,
            };
            ModelFile::from_actor(&actor, cfg.threshold, prov)
                .save(&out)
                .context("saving the model")?;
            if let Some(path) = report {
                std::fs::write(&path, serde_json::to_vec_pretty(&rep)?)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            for r in &rep.runs {
                println!(
                    "seed {}: {} decisions, {} updates; reward per decision {:.3} -> {:.3}; best validation objective {:.4} at episode {}",
                    r.seed,
                    r.decisions,
                    r.updates,
                    r.first_tenth_reward_per_decision,
                    r.last_tenth_reward_per_decision,
                    r.best_validation_objective,
                    r.best_episode
                );
            }
            println!(
                "trained {} x {episodes} episodes in {:.1} s; kept seed {}; wrote {}",
                rep.runs.len(),
                rep.seconds,
                run.seed,
                out.display()
            );
        }
        AllocateCmd::Eval {
            seeds,
            json,
            model,
            latency_nodes,
        } => {
            let file = match &model {
                Some(p) => {
                    ModelFile::load(p).with_context(|| format!("loading model {}", p.display()))?
                }
                None => ModelFile::embedded().context("loading the embedded model")?,
            };
            let policy = MaddpgAllocator::from_model(&file).context("building the policy")?;
            let cfg = EvalConfig {
                seeds,
                latency_nodes,
                ..EvalConfig::default()
            };
            let per_seed = 1 + baselines::all(0).len();
            let pb = bar((seeds * per_seed) as u64);
            let report = evaluate(
                &traces,
                &cfg,
                &|| Box::new(policy.clone()) as Box<dyn Allocator>,
                &baselines::all,
                &mut || pb.inc(1),
            )
            .context("evaluating")?;
            pb.finish_and_clear();
            println!(
                "{} seeds, {} nodes, held-out days: {}",
                report.seeds,
                report.nodes,
                report
                    .episodes
                    .iter()
                    .map(|e| format!("{} d{}", e.source, e.day))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            println!(
                "{:<26} {:>16} {:>16} {:>14} {:>16}",
                "allocator", "sla", "utilisation", "rejected", "objective"
            );
            let mut rows: Vec<_> = report.allocators.iter().collect();
            rows.sort_by(|a, b| b.1.objective.mean.total_cmp(&a.1.objective.mean));
            for (name, r) in rows {
                println!(
                    "{:<26} {:>7.4} ±{:<7.4} {:>7.4} ±{:<7.4} {:>6.1} ±{:<6.1} {:>7.4} ±{:<7.4}",
                    name,
                    r.sla_compliance.mean,
                    r.sla_compliance.ci95,
                    r.mean_utilisation.mean,
                    r.mean_utilisation.ci95,
                    r.rejected.mean,
                    r.rejected.ci95,
                    r.objective.mean,
                    r.objective.ci95
                );
            }
            println!(
                "maddpg vs best baseline ({}): {:+.2} % (paired per-episode {:+.2} ± {:.2} %); allocate p50 {:.3} ms, p99 {:.3} ms on {} nodes",
                report.best_baseline,
                report.improvement_vs_best_baseline_pct,
                report.improvement_paired_pct.mean,
                report.improvement_paired_pct.ci95,
                report.allocate_p50_ms,
                report.allocate_p99_ms,
                report.latency_nodes
            );
            if json {
                println!("{}", serde_json::to_string(&report)?);
            }
        }
    }
    Ok(())
}
