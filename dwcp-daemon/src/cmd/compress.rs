//! `dwcpd compress`: train, calibrate and evaluate the compression selector.
//!
//! The work is done by library functions in `dwcp_ml::compression`; this module
//! parses arguments, prints progress on stderr and results on stdout.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use dwcp_ml::compression::calibrate::{calibrate, CalibrationProfile};
use dwcp_ml::compression::corpus::{ChunkPlan, Split};
use dwcp_ml::compression::eval::{evaluate_corpus, EvalOptions, EvalReport, DEFAULT_GRID_MBPS};
use dwcp_ml::compression::gbt::BoostParams;
use dwcp_ml::compression::model::CompressionModel;
use dwcp_ml::compression::speed::DEFAULT_WEIGHT;
use dwcp_ml::compression::train::{train_corpus, TrainOptions};
use dwcp_ml::compression::CompressionSelector;

/// Train, calibrate or evaluate the adaptive compression selector.
#[derive(Debug, Subcommand)]
pub enum CompressCmd {
    /// Measure every codec on the train side of a corpus and fit a model.
    Train(TrainArgs),
    /// Measure codec speeds on this machine and write a calibration profile.
    Calibrate(CalibrateArgs),
    /// Measure every codec on the held-out side of a corpus and score the selector.
    Eval(EvalArgs),
}

/// How corpus files are cut into chunks.
#[derive(Debug, Args)]
pub struct ChunkArgs {
    /// Chunk sizes in bytes (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = vec![16384usize, 65536])]
    pub chunk_sizes: Vec<usize>,
    /// At most this many chunks per file and chunk size.
    #[arg(long, default_value_t = ChunkPlan::default().max_per_size)]
    pub max_chunks_per_size: usize,
    /// Timing repetitions per chunk and codec (the minimum is kept).
    #[arg(long, default_value_t = 5)]
    pub reps: usize,
}

impl ChunkArgs {
    fn plan(&self) -> ChunkPlan {
        ChunkPlan {
            sizes: self.chunk_sizes.clone(),
            max_per_size: self.max_chunks_per_size,
        }
    }
}

/// Arguments of `compress train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Corpus directory (see scripts/fetch-compression-corpus.sh); its train side is used.
    #[arg(long)]
    pub corpus: PathBuf,
    /// Where to write the model (JSON).
    #[arg(long)]
    pub out: PathBuf,
    /// Calibration profile measured on this machine; measured now if absent.
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Also write the profile the model was trained against here.
    #[arg(long)]
    pub profile_out: Option<PathBuf>,
    /// Number of boosted trees per regressor.
    #[arg(long, default_value_t = BoostParams::default().trees)]
    pub trees: usize,
    /// Depth of every tree.
    #[arg(long, default_value_t = BoostParams::default().depth)]
    pub depth: u8,
    /// Print the training report as one JSON line at the end.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub chunks: ChunkArgs,
}

/// Arguments of `compress calibrate`.
#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// Where to write the profile; printed to stdout if absent.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Repetitions per measurement (the minimum is kept).
    #[arg(long, default_value_t = 7)]
    pub reps: usize,
    /// Free-text description stored in the profile (defaults to host and CPU).
    #[arg(long)]
    pub description: Option<String>,
}

/// Arguments of `compress eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Corpus directory; its held-out (test) side is used unless --all-files.
    #[arg(long)]
    pub corpus: PathBuf,
    /// Model to evaluate (defaults to the embedded one).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Calibration profile (defaults to the embedded one).
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Calibrate this machine first and use that profile.
    #[arg(long, conflicts_with = "profile")]
    pub calibrate: bool,
    /// Evaluate every file in the directory, not only the held-out side.
    #[arg(long)]
    pub all_files: bool,
    /// Link bandwidths in Mbit/s (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_GRID_MBPS.to_vec())]
    pub grid_mbps: Vec<f64>,
    /// Print the report as one JSON object on the last line.
    #[arg(long)]
    pub json: bool,
    /// Measure every chunk twice and report the noise floor of the ground truth.
    #[arg(long)]
    pub noise_floor: bool,
    /// Weight of each framed chunk in the selector's machine-speed factor; 0 keeps
    /// the factor at 1, so decisions depend on the chunk and the link alone.
    #[arg(long, default_value_t = DEFAULT_WEIGHT)]
    pub speed_weight: f64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub chunks: ChunkArgs,
}

/// Runs a `compress` subcommand.
pub fn run(cmd: CompressCmd) -> anyhow::Result<()> {
    match cmd {
        CompressCmd::Train(a) => train(a),
        CompressCmd::Calibrate(a) => calibrate_cmd(a),
        CompressCmd::Eval(a) => eval(a),
    }
}

fn machine_description() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores available")
}

fn progress(label: &'static str) -> impl FnMut(usize, usize) {
    move |done, total| {
        if done == total || done % 10 == 0 {
            eprint!("\r{label}: {done}/{total} files");
            if done == total {
                eprintln!();
            }
            let _ = std::io::stderr().flush();
        }
    }
}

fn load_or_calibrate(path: Option<&Path>) -> anyhow::Result<CalibrationProfile> {
    match path {
        Some(p) => {
            CalibrationProfile::load(p).with_context(|| format!("loading profile {}", p.display()))
        }
        None => {
            eprintln!("calibrating this machine...");
            Ok(calibrate(7, &machine_description())?)
        }
    }
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let mut text = serde_json::to_string(value)?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn train(a: TrainArgs) -> anyhow::Result<()> {
    let profile = load_or_calibrate(a.profile.as_deref())?;
    let options = TrainOptions {
        plan: a.chunks.plan(),
        reps: a.chunks.reps,
        params: BoostParams {
            trees: a.trees,
            depth: a.depth,
            ..BoostParams::default()
        },
    };
    let (model, report) = train_corpus(&a.corpus, &options, &profile, &mut progress("measuring"))
        .with_context(|| format!("training on {}", a.corpus.display()))?;
    let bytes = model.to_json()?;
    std::fs::write(&a.out, &bytes).with_context(|| format!("writing {}", a.out.display()))?;
    if let Some(p) = &a.profile_out {
        write_json(p, &profile)?;
    }
    println!(
        "trained on {} files, {} chunks (measured in {:.1} s, fitted in {:.1} s); model {} bytes -> {}",
        report.files,
        report.chunks,
        report.measure_seconds,
        report.fit_seconds,
        bytes.len(),
        a.out.display()
    );
    println!("in-sample mean abs. relative error (training data, not generalisation):");
    for f in &report.in_sample {
        println!(
            "  {:8} bytes {:6.1}%  compress {:6.1}%  decompress {:6.1}%",
            f.codec.name(),
            f.bytes_mape * 100.0,
            f.compress_mape * 100.0,
            f.decompress_mape * 100.0
        );
    }
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}

fn calibrate_cmd(a: CalibrateArgs) -> anyhow::Result<()> {
    let description = a.description.unwrap_or_else(machine_description);
    let profile = calibrate(a.reps, &description)?;
    match &a.out {
        Some(p) => {
            write_json(p, &profile)?;
            for s in &profile.codecs {
                println!(
                    "{:8} compress {:8.1} MB/s (+{:6.1} us/call)  decompress {:8.1} MB/s (+{:6.1} us/call)",
                    s.codec.name(),
                    1e3 / s.compress_ns_per_byte,
                    s.compress_fixed_ns / 1e3,
                    1e3 / s.decompress_ns_per_byte,
                    s.decompress_fixed_ns / 1e3
                );
            }
            println!("profile written to {}", p.display());
        }
        None => println!("{}", serde_json::to_string_pretty(&profile)?),
    }
    Ok(())
}

fn eval(a: EvalArgs) -> anyhow::Result<()> {
    let model = match &a.model {
        Some(p) => {
            CompressionModel::load(p).with_context(|| format!("loading model {}", p.display()))?
        }
        None => CompressionModel::embedded().context("loading the embedded model")?,
    };
    let profile = if a.calibrate {
        load_or_calibrate(None)?
    } else {
        match &a.profile {
            Some(p) => load_or_calibrate(Some(p))?,
            None => CalibrationProfile::embedded().context("loading the embedded profile")?,
        }
    };
    let selector = CompressionSelector::new(model, profile)?.with_speed_adaptation(a.speed_weight);
    let options = EvalOptions {
        plan: a.chunks.plan(),
        reps: a.chunks.reps,
        grid_mbps: a.grid_mbps.clone(),
        split: if a.all_files { None } else { Some(Split::Test) },
        noise_floor: a.noise_floor,
    };
    let report = evaluate_corpus(&selector, &a.corpus, &options, &mut progress("measuring"))
        .with_context(|| format!("evaluating on {}", a.corpus.display()))?;
    print_report(&report);
    if a.json {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}

fn print_report(r: &EvalReport) {
    println!(
        "{} held-out files, {} chunks, {} decisions over {} links",
        r.files,
        r.chunks,
        r.decisions,
        r.grid_mbps.len()
    );
    println!(
        "selector: top1 {:.1}%  within5 {:.1}%  mean regret {:.2}%  p95 regret {:.2}%  max {:.1}%",
        r.top1_accuracy * 100.0,
        r.within5_rate * 100.0,
        r.mean_regret * 100.0,
        r.p95_regret * 100.0,
        r.max_regret * 100.0
    );
    println!(
        "best fixed codec {}: mean regret {:.2}%; best fixed codec per link: {:.2}%",
        r.best_fixed_codec,
        r.best_fixed_mean_regret * 100.0,
        r.per_link_fixed_mean_regret * 100.0
    );
    println!(
        "decision latency (features + model): p50 {:.1} us, p99 {:.1} us",
        r.predict_p50_us, r.predict_p99_us
    );
    println!(
        "machine-speed factor: weight {:.2}, {:.2} after the last chunk",
        r.speed_weight, r.final_speed_factor
    );
    if let Some(u) = &r.without_speed_factor {
        println!(
            "  same measurements, {}: top1 {:.1}%  within5 {:.1}%  mean regret {:.2}%",
            u.name,
            u.top1_accuracy * 100.0,
            u.within5_rate * 100.0,
            u.mean_regret * 100.0
        );
    }
    if let Some(f) = &r.noise_floor {
        println!(
            "noise floor (best by a second measurement, scored on the first): top1 {:.1}%  within5 {:.1}%  mean regret {:.2}%",
            f.top1_accuracy * 100.0,
            f.within5_rate * 100.0,
            f.mean_regret * 100.0
        );
    }
    for s in &r.by_source {
        println!(
            "  {:<12} {:4} files {:5} chunks: top1 {:.1}%  within5 {:.1}%  mean regret {:.2}%",
            s.name,
            s.files,
            s.chunks,
            s.top1_accuracy * 100.0,
            s.within5_rate * 100.0,
            s.mean_regret * 100.0
        );
    }
    println!("files with the fewest decisions within 5%:");
    for s in &r.worst_files {
        println!(
            "  within5 {:5.1}%  mean regret {:6.2}%  {:3} chunks  {}",
            s.within5_rate * 100.0,
            s.mean_regret * 100.0,
            s.chunks,
            s.name
        );
    }
    println!("   Mbit/s   top1  within5  regret   p95   fixed(best)");
    for l in &r.per_link {
        println!(
            "{:9.0} {:6.1}% {:6.1}% {:6.2}% {:6.2}%  {} {:.2}%",
            l.mbps,
            l.top1_accuracy * 100.0,
            l.within5_rate * 100.0,
            l.mean_regret * 100.0,
            l.p95_regret * 100.0,
            l.best_fixed_codec,
            l.best_fixed_mean_regret * 100.0
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: CompressCmd,
    }

    #[test]
    fn arguments_parse() {
        let cli =
            Cli::try_parse_from(["compress", "eval", "--corpus", "c", "--json"]).expect("eval");
        match cli.cmd {
            CompressCmd::Eval(a) => {
                assert!(a.json);
                assert_eq!(a.grid_mbps.len(), DEFAULT_GRID_MBPS.len());
                assert_eq!(a.chunks.chunk_sizes, vec![16384, 65536]);
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli = Cli::try_parse_from(["compress", "train", "--corpus", "c", "--out", "m.json"])
            .expect("train");
        assert!(matches!(cli.cmd, CompressCmd::Train(_)));
        let cli = Cli::try_parse_from(["compress", "calibrate"]).expect("calibrate");
        assert!(matches!(
            cli.cmd,
            CompressCmd::Calibrate(CalibrateArgs { out: None, .. })
        ));
        assert!(Cli::try_parse_from(["compress", "train", "--corpus", "c"]).is_err());
    }

    #[test]
    fn eval_on_a_missing_corpus_is_a_clear_error() {
        let cli = Cli::try_parse_from(["compress", "eval", "--corpus", "/nonexistent/corpus"])
            .expect("parse");
        let err = run(cli.cmd).expect_err("must fail");
        assert!(
            format!("{err:#}").contains("/nonexistent/corpus"),
            "{err:#}"
        );
    }
}
