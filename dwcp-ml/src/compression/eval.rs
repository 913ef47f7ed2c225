//! Evaluation against measured reality on held-out files.
//!
//! For every chunk of every test-side file, every codec is actually run: frame size
//! is exact, and compress/decompress times are **measured** (minimum of `reps`
//! interleaved repetitions, see [`measure_chunk`]); nothing comes from the model or
//! the calibration profile. For each link of the grid, the measured end-to-end time
//! of each codec is `compress + frame bytes × 8 / bandwidth + decompress`; the
//! selector's choice (made from the chunk and the link, timed) is compared with the
//! measured best. RTT is left at zero in the grid: it adds the same constant to
//! every codec and would only shrink the regrets.
//!
//! Chunks are decided in order, each right after it is measured, and each is then
//! framed once with one of its choices, as
//! [`CompressionSelector::compress_adaptive`] would: the selector's speed factor
//! follows the compress times of the chunks before, as it does in a deployment.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::codec::CodecId;
use super::corpus::{self, ChunkPlan, Split};
use super::features::Link;
use super::frame;
use super::measure::{measure_chunk, ChunkOutcome, MeasureError};
use super::selector::CompressionSelector;
use super::train::TrainError;

/// How many files [`EvalReport::worst_files`] lists.
pub const WORST_FILES: usize = 10;

/// The default link grid, Mbit/s: 1 Mbit/s to 10 Gbit/s, log-spaced.
pub const DEFAULT_GRID_MBPS: [f64; 9] =
    [1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0];

/// Evaluation options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalOptions {
    /// How files are cut.
    pub plan: ChunkPlan,
    /// Timing repetitions per chunk and codec (minimum kept).
    pub reps: usize,
    /// Link bandwidths, Mbit/s.
    pub grid_mbps: Vec<f64>,
    /// Which files: the test side (default) or, with `None`, every file in the directory.
    pub split: Option<Split>,
    /// Measure every chunk a second time right after the first, and a third time in
    /// a separate pass after all chunks, and report how well choosing by one
    /// measurement does when scored against the first (see [`NoiseFloor`]).
    pub noise_floor: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            plan: ChunkPlan::default(),
            reps: 5,
            grid_mbps: DEFAULT_GRID_MBPS.to_vec(),
            split: Some(Split::Test),
            noise_floor: false,
        }
    }
}

/// How reproducible the measured ground truth is on this machine: an oracle picks
/// the best codec from a second, independent measurement of the same chunk and is
/// scored against the first. No predictor can be expected to beat this by much.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoiseFloor {
    /// Share of the oracle's decisions within 5% of the best.
    pub within5_rate: f64,
    /// The oracle's mean regret.
    pub mean_regret: f64,
    /// The oracle's top-1 agreement.
    pub top1_accuracy: f64,
}

/// A fixed codec's result when used for every chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FixedResult {
    /// The codec.
    pub codec: CodecId,
    /// Mean regret over all decisions.
    pub mean_regret: f64,
    /// Share of decisions within 5% of the best.
    pub within5_rate: f64,
}

/// Results on one link of the grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkResult {
    /// Bandwidth, Mbit/s.
    pub mbps: f64,
    /// Share of chunks where the choice is the measured best.
    pub top1_accuracy: f64,
    /// Share of chunks whose choice is within 5% of the measured best.
    pub within5_rate: f64,
    /// Mean of chosen / best - 1.
    pub mean_regret: f64,
    /// 95th percentile of the regret.
    pub p95_regret: f64,
    /// The best single codec on this link (knows the link, not the data).
    pub best_fixed_codec: CodecId,
    /// Its mean regret on this link.
    pub best_fixed_mean_regret: f64,
    /// How often each codec was chosen, in [`CodecId::ALL`] order.
    pub chosen: Vec<usize>,
    /// How often each codec was the measured best, in [`CodecId::ALL`] order.
    pub best: Vec<usize>,
}

/// The selector's results on part of the held-out files: one source of the corpus
/// (its top-level directory: real files such as `canterbury`, `debian`, `traces`,
/// or the `generated` extremes), so that real and generated data can be told
/// apart, or one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubsetResult {
    /// The source directory or the file's path, relative to the corpus root.
    pub name: String,
    /// Files in the subset.
    pub files: usize,
    /// Chunks in the subset.
    pub chunks: usize,
    /// Share of its decisions choosing the measured best codec.
    pub top1_accuracy: f64,
    /// Share of its decisions within 5% of the measured best.
    pub within5_rate: f64,
    /// Its mean regret.
    pub mean_regret: f64,
}

impl SubsetResult {
    /// The headline measures of `report`, under `name`.
    fn of(name: String, report: &EvalReport) -> Self {
        SubsetResult {
            name,
            files: report.files,
            chunks: report.chunks,
            top1_accuracy: report.top1_accuracy,
            within5_rate: report.within5_rate,
            mean_regret: report.mean_regret,
        }
    }
}

/// The evaluation report; `dwcpd compress eval --json` prints it as its last line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Files evaluated.
    pub files: usize,
    /// Chunks evaluated.
    pub chunks: usize,
    /// Decisions evaluated (chunks × links).
    pub decisions: usize,
    /// Share of decisions choosing the measured best codec.
    pub top1_accuracy: f64,
    /// Share of decisions whose codec's measured time is within 5% of the best.
    pub within5_rate: f64,
    /// Mean of chosen time / best time - 1.
    pub mean_regret: f64,
    /// 95th percentile of that regret.
    pub p95_regret: f64,
    /// Largest regret seen.
    pub max_regret: f64,
    /// The single codec with the lowest mean regret over the whole grid.
    pub best_fixed_codec: CodecId,
    /// Its mean regret.
    pub best_fixed_mean_regret: f64,
    /// Mean regret of the best fixed codec chosen per link (an oracle that knows
    /// the link but not the data): a stronger baseline than one codec everywhere.
    pub per_link_fixed_mean_regret: f64,
    /// Median time of one `select` (features + decision), microseconds.
    pub predict_p50_us: f64,
    /// 99th percentile of that time, microseconds.
    pub predict_p99_us: f64,
    /// Link grid, Mbit/s.
    pub grid_mbps: Vec<f64>,
    /// Timing repetitions per chunk and codec.
    pub reps: usize,
    /// How the ground-truth times were obtained.
    pub timing: String,
    /// Every fixed codec's result.
    pub fixed: Vec<FixedResult>,
    /// Per-link breakdown.
    pub per_link: Vec<LinkResult>,
    /// The calibration profile the selector used.
    pub profile: String,
    /// The weight of each framed chunk in the selector's speed factor (0: the
    /// factor stayed at 1), see [`super::speed`].
    #[serde(default)]
    pub speed_weight: f64,
    /// The selector's speed factor after the last chunk.
    #[serde(default)]
    pub final_speed_factor: f64,
    /// When the speed factor is on: the same model and profile with the factor held
    /// at 1, scored on the same measurements (filled by [`evaluate_corpus`]), so
    /// what the factor is worth is seen side by side, free of run-to-run noise.
    #[serde(default)]
    pub without_speed_factor: Option<SubsetResult>,
    /// Reproducibility of the ground truth, if asked for: the second measurement
    /// taken right after the first, chunk by chunk.
    pub noise_floor: Option<NoiseFloor>,
    /// The same oracle when the second measurement comes from a separate pass over
    /// all chunks after the first (tens of seconds later), so it also sees how the
    /// machine's speed drifts with load, as a model trained earlier does. A
    /// predictor cannot be expected to do much better than this.
    #[serde(default)]
    pub noise_floor_separate_pass: Option<NoiseFloor>,
    /// The same measures per source of the corpus (filled by [`evaluate_corpus`]).
    #[serde(default)]
    pub by_source: Vec<SubsetResult>,
    /// The files with the fewest decisions within 5% of the best (at most
    /// [`WORST_FILES`]; filled by [`evaluate_corpus`]).
    #[serde(default)]
    pub worst_files: Vec<SubsetResult>,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Measured end-to-end times per codec and the index of the best.
fn measured_times(o: &ChunkOutcome, link: &Link) -> (Vec<f64>, usize) {
    let t: Vec<f64> = o
        .codecs
        .iter()
        .map(|c| c.total_s(link.bandwidth_bps, link.rtt_s))
        .collect();
    let best = (0..t.len())
        .min_by(|&a, &b| t[a].total_cmp(&t[b]))
        .unwrap_or(0);
    (t, best)
}

/// Scores choosing by the `second` measurement against the `first`.
fn noise_floor(first: &[ChunkOutcome], second: &[ChunkOutcome], links: &[Link]) -> NoiseFloor {
    let mut regrets = Vec::new();
    let mut top1 = 0usize;
    for link in links {
        for (a, b) in first.iter().zip(second) {
            let (ta, best_a) = measured_times(a, link);
            let (_, best_b) = measured_times(b, link);
            regrets.push(ta[best_b] / ta[best_a] - 1.0);
            top1 += usize::from(best_a == best_b);
        }
    }
    let n = regrets.len().max(1) as f64;
    NoiseFloor {
        within5_rate: regrets.iter().filter(|&&r| r <= 0.05).count() as f64 / n,
        mean_regret: mean(&regrets),
        top1_accuracy: top1 as f64 / n,
    }
}

/// Decides `data` on every link of the grid, then frames it once with the choice
/// made for `links[observe % links.len()]` and tells the selector how long that
/// took, as [`CompressionSelector::compress_adaptive`] does. So the selector's speed
/// factor comes from the chunks decided before, never from the measurement a
/// decision is scored against; rotating `observe` over the grid lets every link's
/// choices feed it, as one link's traffic would in a deployment.
fn decide(
    selector: &CompressionSelector,
    data: &[u8],
    links: &[Link],
    observe: usize,
    scratch: &mut Vec<u8>,
) -> Result<Vec<CodecId>, TrainError> {
    let mut chosen = Vec::with_capacity(links.len());
    let mut observed = None;
    for (li, link) in links.iter().enumerate() {
        let choice = selector.select(data, link);
        chosen.push(choice.codec);
        if li == observe % links.len() {
            observed = Some(choice);
        }
    }
    // Only after every link's decision: none of them may know this chunk's time.
    if let Some(choice) = observed.filter(|_| selector.speed_weight() > 0.0) {
        scratch.clear();
        let t0 = Instant::now();
        frame::encode_into(choice.codec, data, scratch).map_err(MeasureError::from)?;
        selector.observe_compress(&choice, t0.elapsed().as_secs_f64());
    }
    Ok(chosen)
}

/// Times one `select` (features + decision) per chunk and link, in a pass of its
/// own: interleaved with the codec measurements, which evict the model from the
/// caches, the same decisions take two to three times longer (see the README).
fn time_decisions<'a>(
    selector: &CompressionSelector,
    chunks: impl Iterator<Item = &'a [u8]>,
    links: &[Link],
) -> Vec<f64> {
    let mut latencies_us = Vec::new();
    for data in chunks {
        for link in links {
            let t0 = Instant::now();
            std::hint::black_box(selector.select(data, link));
            latencies_us.push(t0.elapsed().as_secs_f64() * 1e6);
        }
    }
    latencies_us
}

/// Evaluates `selector` on measured outcomes. `chunks` pairs each chunk's bytes with
/// its measured outcome and is decided in order (the selector's speed factor
/// follows the chunks it framed, see [`CompressionSelector::compress_adaptive`]);
/// `repeat`, if given, holds a second measurement of every chunk for the noise
/// floor; `files` is reported as is.
pub fn evaluate_measured(
    selector: &CompressionSelector,
    chunks: &[(&[u8], ChunkOutcome)],
    repeat: Option<&[ChunkOutcome]>,
    files: usize,
    options: &EvalOptions,
) -> Result<EvalReport, TrainError> {
    let links: Vec<Link> = options.grid_mbps.iter().map(|&m| Link::mbps(m)).collect();
    let mut scratch = Vec::new();
    let decided = chunks
        .iter()
        .enumerate()
        .map(|(i, (data, _))| decide(selector, data, &links, i, &mut scratch))
        .collect::<Result<Vec<_>, _>>()?;
    let scored: Vec<(&ChunkOutcome, &[CodecId])> = chunks
        .iter()
        .map(|(_, o)| o)
        .zip(decided.iter().map(Vec::as_slice))
        .collect();
    let mut report = score(&scored, files, options);
    describe(
        &mut report,
        selector,
        chunks.iter().map(|(d, _)| *d),
        &links,
    );
    report.noise_floor = repeat.map(|second| {
        let first: Vec<ChunkOutcome> = chunks.iter().map(|(_, o)| o.clone()).collect();
        noise_floor(&first, second, &links)
    });
    Ok(report)
}

/// Scores decisions already made against the measured outcomes they are paired
/// with. The profile and noise floors are left for the caller to fill in.
fn score(
    chunks: &[(&ChunkOutcome, &[CodecId])],
    files: usize,
    options: &EvalOptions,
) -> EvalReport {
    let links: Vec<Link> = options.grid_mbps.iter().map(|&m| Link::mbps(m)).collect();
    let mut regrets = Vec::new();
    let mut top1 = 0usize;
    let mut fixed_regrets = vec![Vec::new(); CodecId::COUNT];
    let mut per_link = Vec::new();
    for (li, link) in links.iter().enumerate() {
        let mut r_link = Vec::with_capacity(chunks.len());
        let mut top1_link = 0usize;
        let mut chosen = vec![0usize; CodecId::COUNT];
        let mut best_counts = vec![0usize; CodecId::COUNT];
        let mut fixed_link: Vec<Vec<f64>> = (0..CodecId::COUNT)
            .map(|_| Vec::with_capacity(chunks.len()))
            .collect();
        for (outcome, decisions) in chunks {
            let (t, best) = measured_times(outcome, link);
            let c = decisions[li].index();
            let regret = t[c] / t[best] - 1.0;
            r_link.push(regret);
            chosen[c] += 1;
            best_counts[best] += 1;
            if c == best {
                top1_link += 1;
            }
            for (k, tk) in t.iter().enumerate() {
                fixed_link[k].push(tk / t[best] - 1.0);
            }
        }
        let (bf, bf_regret) = best_fixed(&fixed_link);
        let mut sorted = r_link.clone();
        sorted.sort_by(f64::total_cmp);
        let n = r_link.len().max(1) as f64;
        per_link.push(LinkResult {
            mbps: options.grid_mbps[li],
            top1_accuracy: top1_link as f64 / n,
            within5_rate: r_link.iter().filter(|&&r| r <= 0.05).count() as f64 / n,
            mean_regret: mean(&r_link),
            p95_regret: percentile(&sorted, 0.95),
            best_fixed_codec: bf,
            best_fixed_mean_regret: bf_regret,
            chosen,
            best: best_counts,
        });
        top1 += top1_link;
        regrets.extend(r_link);
        for (k, v) in fixed_link.into_iter().enumerate() {
            fixed_regrets[k].extend(v);
        }
    }
    let (best_fixed_codec, best_fixed_mean_regret) = best_fixed(&fixed_regrets);
    let fixed = CodecId::ALL
        .iter()
        .map(|&codec| {
            let v = &fixed_regrets[codec.index()];
            FixedResult {
                codec,
                mean_regret: mean(v),
                within5_rate: v.iter().filter(|&&r| r <= 0.05).count() as f64
                    / v.len().max(1) as f64,
            }
        })
        .collect();
    let decisions = regrets.len();
    let mut sorted = regrets.clone();
    sorted.sort_by(f64::total_cmp);
    let d = decisions.max(1) as f64;
    EvalReport {
        files,
        chunks: chunks.len(),
        decisions,
        top1_accuracy: top1 as f64 / d,
        within5_rate: regrets.iter().filter(|&&r| r <= 0.05).count() as f64 / d,
        mean_regret: mean(&regrets),
        p95_regret: percentile(&sorted, 0.95),
        max_regret: sorted.last().copied().unwrap_or(0.0),
        best_fixed_codec,
        best_fixed_mean_regret,
        per_link_fixed_mean_regret: mean(
            &per_link
                .iter()
                .map(|l| l.best_fixed_mean_regret)
                .collect::<Vec<_>>(),
        ),
        predict_p50_us: 0.0,
        predict_p99_us: 0.0,
        grid_mbps: options.grid_mbps.clone(),
        reps: options.reps,
        timing: format!(
            "measured: every codec run on every chunk, minimum of {} interleaved repetitions",
            options.reps.max(1)
        ),
        fixed,
        per_link,
        profile: String::new(),
        speed_weight: 0.0,
        final_speed_factor: 1.0,
        without_speed_factor: None,
        noise_floor: None,
        noise_floor_separate_pass: None,
        by_source: Vec::new(),
        worst_files: Vec::new(),
    }
}

/// Fills in what [`score`] leaves out: the decision latency over `chunks` (timed
/// now, see [`time_decisions`]) and the selector's profile and speed factor.
fn describe<'a>(
    report: &mut EvalReport,
    selector: &CompressionSelector,
    chunks: impl Iterator<Item = &'a [u8]>,
    links: &[Link],
) {
    let mut latencies_us = time_decisions(selector, chunks, links);
    latencies_us.sort_by(f64::total_cmp);
    report.predict_p50_us = percentile(&latencies_us, 0.50);
    report.predict_p99_us = percentile(&latencies_us, 0.99);
    report.profile = selector.profile().description.clone();
    report.speed_weight = selector.speed_weight();
    report.final_speed_factor = selector.speed_factor();
}

fn best_fixed(per_codec: &[Vec<f64>]) -> (CodecId, f64) {
    CodecId::ALL
        .iter()
        .map(|&c| (c, mean(&per_codec[c.index()])))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((CodecId::None, 0.0))
}

/// Evaluates `selector` on the files under `dir` (test side by default).
pub fn evaluate_corpus(
    selector: &CompressionSelector,
    dir: &Path,
    options: &EvalOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<EvalReport, TrainError> {
    let files = corpus::scan(dir, options.split)?;
    let links: Vec<Link> = options.grid_mbps.iter().map(|&m| Link::mbps(m)).collect();
    let mut outcomes: Vec<ChunkOutcome> = Vec::new();
    let mut decided: Vec<Vec<CodecId>> = Vec::new();
    let unadapted =
        (selector.speed_weight() > 0.0).then(|| selector.clone().with_speed_adaptation(0.0));
    let mut decided_unadapted: Vec<Vec<CodecId>> = Vec::new();
    let mut scratch = Vec::new();
    // Per chunk, the index of its file.
    let mut file_of = Vec::new();
    let mut repeat = Vec::new();
    let mut owned: Vec<Vec<u8>> = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let data = corpus::read_prefix(f)?;
        for chunk in options.plan.chunks(&data) {
            // Each chunk is decided right after it is measured, so the speed factor
            // the selector carries reflects the machine as the measurement saw it.
            outcomes.push(measure_chunk(chunk, options.reps)?);
            decided.push(decide(
                selector,
                chunk,
                &links,
                file_of.len(),
                &mut scratch,
            )?);
            if let Some(u) = &unadapted {
                decided_unadapted.push(decide(u, chunk, &links, 0, &mut scratch)?);
            }
            file_of.push(i);
            if options.noise_floor {
                repeat.push(measure_chunk(chunk, options.reps)?);
            }
            owned.push(chunk.to_vec());
        }
        progress(i + 1, files.len());
    }
    if outcomes.is_empty() {
        return Err(TrainError::NoChunks);
    }
    let scored: Vec<(&ChunkOutcome, &[CodecId])> = outcomes
        .iter()
        .zip(decided.iter().map(Vec::as_slice))
        .collect();
    let mut report = score(&scored, files.len(), options);
    describe(
        &mut report,
        selector,
        owned.iter().map(Vec::as_slice),
        &links,
    );
    if unadapted.is_some() {
        let scored: Vec<(&ChunkOutcome, &[CodecId])> = outcomes
            .iter()
            .zip(decided_unadapted.iter().map(Vec::as_slice))
            .collect();
        report.without_speed_factor = Some(SubsetResult::of(
            "speed factor held at 1".to_owned(),
            &score(&scored, files.len(), options),
        ));
    }
    if options.noise_floor {
        report.noise_floor = Some(noise_floor(&outcomes, &repeat, &links));
        let mut later = Vec::with_capacity(owned.len());
        for data in &owned {
            later.push(measure_chunk(data, options.reps)?);
        }
        report.noise_floor_separate_pass = Some(noise_floor(&outcomes, &later, &links));
    }
    let source_of = |f: &corpus::CorpusFile| -> String {
        f.relative
            .split_once('/')
            .map_or(".", |(top, _)| top)
            .to_owned()
    };
    // Scores the chunks of the files `keep` selects.
    let subset = |name: String, keep: &dyn Fn(&corpus::CorpusFile) -> bool| {
        let picked: Vec<(&ChunkOutcome, &[CodecId])> = scored
            .iter()
            .zip(&file_of)
            .filter(|(_, &fi)| keep(&files[fi]))
            .map(|(c, _)| *c)
            .collect();
        let n_files = files.iter().filter(|f| keep(f)).count();
        (!picked.is_empty()).then(|| SubsetResult::of(name, &score(&picked, n_files, options)))
    };
    let mut sources: Vec<String> = files.iter().map(source_of).collect();
    sources.sort();
    sources.dedup();
    for source in sources {
        let keep = |f: &corpus::CorpusFile| source_of(f) == source;
        report.by_source.extend(subset(source.clone(), &keep));
    }
    let mut per_file: Vec<SubsetResult> = files
        .iter()
        .filter_map(|file| subset(file.relative.clone(), &|f| f.relative == file.relative))
        .collect();
    per_file.sort_by(|a, b| {
        a.within5_rate
            .total_cmp(&b.within5_rate)
            .then(b.mean_regret.total_cmp(&a.mean_regret))
    });
    per_file.truncate(WORST_FILES);
    report.worst_files = per_file;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_is_consistent_on_generated_chunks() {
        let selector = CompressionSelector::embedded().expect("selector");
        let text = b"a line of log output: level=info msg=\"committed\" seq=42\n".repeat(100);
        let zeros = vec![0u8; 4096];
        let mut x = 1u64;
        let random: Vec<u8> = (0..4096)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 56) as u8
            })
            .collect();
        let data = [text, zeros, random];
        let chunks: Vec<(&[u8], ChunkOutcome)> = data
            .iter()
            .map(|d| (&d[..], measure_chunk(d, 1).expect("measure")))
            .collect();
        let opts = EvalOptions {
            grid_mbps: vec![1.0, 10_000.0],
            ..EvalOptions::default()
        };
        let again: Vec<ChunkOutcome> = data
            .iter()
            .map(|d| measure_chunk(d, 1).expect("measure"))
            .collect();
        let r = evaluate_measured(&selector, &chunks, Some(&again), 3, &opts).expect("eval");
        let floor = r.noise_floor.clone().expect("noise floor");
        assert!((0.0..=1.0).contains(&floor.within5_rate) && floor.mean_regret >= 0.0);
        assert_eq!(r.chunks, 3);
        assert_eq!(r.decisions, 6);
        assert!((0.0..=1.0).contains(&r.top1_accuracy));
        assert!(r.within5_rate >= r.top1_accuracy);
        assert!(r.mean_regret >= 0.0 && r.p95_regret <= r.max_regret);
        assert!(r.best_fixed_mean_regret >= r.per_link_fixed_mean_regret - 1e-12);
        assert_eq!(r.per_link.len(), 2);
        assert_eq!(r.fixed.len(), CodecId::COUNT);
        assert!(r.predict_p99_us >= r.predict_p50_us);
        let line = serde_json::to_string(&r).expect("json");
        for key in [
            "\"files\"",
            "\"chunks\"",
            "\"top1_accuracy\"",
            "\"within5_rate\"",
            "\"mean_regret\"",
            "\"p95_regret\"",
            "\"best_fixed_codec\"",
            "\"best_fixed_mean_regret\"",
            "\"predict_p50_us\"",
            "\"predict_p99_us\"",
        ] {
            assert!(line.contains(key), "{key}");
        }
    }

    #[test]
    fn corpus_evaluation_reports_both_noise_floors() {
        let dir = std::env::temp_dir().join(format!("dwcp-eval-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let text = b"a line of log output: level=info msg=\"committed\" seq=42\n".repeat(200);
        for i in 0..12 {
            std::fs::write(dir.join(format!("f{i}.log")), &text).expect("write");
        }
        let selector = CompressionSelector::embedded().expect("selector");
        let opts = EvalOptions {
            plan: ChunkPlan {
                sizes: vec![4096],
                max_per_size: 1,
            },
            reps: 1,
            grid_mbps: vec![10.0],
            split: None,
            noise_floor: true,
        };
        let r = evaluate_corpus(&selector, &dir, &opts, &mut |_, _| {}).expect("eval");
        std::fs::remove_dir_all(&dir).expect("cleanup");
        assert_eq!(r.files, 12);
        assert_eq!(r.speed_weight, crate::compression::speed::DEFAULT_WEIGHT);
        assert_ne!(
            r.final_speed_factor, 1.0,
            "every chunk framed is an observation"
        );
        let fixed = r.without_speed_factor.as_ref().expect("side by side");
        assert_eq!(fixed.chunks, r.chunks);
        assert!((0.0..=1.0).contains(&fixed.within5_rate));
        assert!(r.predict_p50_us > 0.0 && r.predict_p99_us >= r.predict_p50_us);
        assert_eq!(r.by_source.len(), 1, "{:?}", r.by_source);
        assert_eq!(r.by_source[0].name, ".");
        assert_eq!(r.worst_files.len(), WORST_FILES.min(12));
        assert!(r
            .worst_files
            .windows(2)
            .all(|w| w[0].within5_rate <= w[1].within5_rate));
        assert_eq!(r.by_source[0].chunks, r.chunks);
        assert!((r.by_source[0].within5_rate - r.within5_rate).abs() < 1e-12);
        for f in [r.noise_floor, r.noise_floor_separate_pass] {
            let f = f.expect("noise floor");
            assert!((0.0..=1.0).contains(&f.within5_rate), "{f:?}");
        }
    }
}
