//! Training: measure every codec on every training chunk, then fit the per-codec
//! regressors of [`CompressionModel`].

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::calibrate::CalibrationProfile;
use super::codec::CodecId;
use super::corpus::{self, ChunkPlan, CorpusError, Split};
use super::features::{ChunkFeatures, FEATURE_NAMES};
use super::gbt::{self, BoostParams};
use super::measure::{measure_chunk, ChunkOutcome, MeasureError};
use super::model::{
    CodecModel, CompiledModel, CompressionModel, ModelError, TrainingInfo, MODEL_FORMAT,
    MODEL_VERSION,
};

/// One measured chunk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Index of the file it came from in the scanned list.
    pub file: usize,
    /// Its features.
    pub features: ChunkFeatures,
    /// What every codec did to it.
    pub outcome: ChunkOutcome,
}

/// Why training or evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The corpus could not be read.
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    /// Measuring a chunk failed.
    #[error(transparent)]
    Measure(#[from] MeasureError),
    /// No chunks at all.
    #[error("the corpus gave no chunks")]
    NoChunks,
    /// The fitted model is not usable (for instance, more distinct thresholds per
    /// feature than a forest supports).
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Reads `files`, cuts them per `plan` and measures every chunk with `reps`
/// repetitions. `progress(done, total)` is called after each file.
pub fn collect_samples(
    files: &[corpus::CorpusFile],
    plan: &ChunkPlan,
    reps: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Sample>, TrainError> {
    let mut samples = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let data = corpus::read_prefix(f)?;
        for chunk in plan.chunks(&data) {
            samples.push(Sample {
                file: i,
                features: ChunkFeatures::of(chunk),
                outcome: measure_chunk(chunk, reps)?,
            });
        }
        progress(i + 1, files.len());
    }
    if samples.is_empty() {
        return Err(TrainError::NoChunks);
    }
    Ok(samples)
}

/// The reference codec the other compressing codecs' size models are relative to.
pub const RATIO_REFERENCE: CodecId = CodecId::Zstd3;

fn ratio_reference(codec: CodecId) -> Option<CodecId> {
    match codec {
        // LZ4 and Snappy are what the LZ4 probe measures directly; modelled absolutely.
        CodecId::None | CodecId::Lz4 | CodecId::Snappy | RATIO_REFERENCE => None,
        _ => Some(RATIO_REFERENCE),
    }
}

/// The reference codec the other codecs' time models are relative to.
pub const TIME_REFERENCE: CodecId = CodecId::Zstd3;

fn time_reference(codec: CodecId) -> Option<CodecId> {
    (codec != TIME_REFERENCE).then_some(TIME_REFERENCE)
}

/// Fits the model to measured samples; time targets are relative to `profile`,
/// which must have been measured on the same machine as the samples.
pub fn fit_model(
    samples: &[Sample],
    profile: &CalibrationProfile,
    params: &BoostParams,
    files: usize,
    plan: &ChunkPlan,
) -> CompressionModel {
    // Decompression is the smallest of the three times almost everywhere, so its
    // regressor gets fewer trees: that buys decision latency at no visible cost.
    let decompress_params = BoostParams {
        trees: params.trees.div_ceil(3),
        ..*params
    };
    let rows: Vec<Vec<f32>> = samples
        .iter()
        .map(|s| s.features.to_vector().to_vec())
        .collect();
    let codecs = CodecId::ALL
        .iter()
        .map(|&codec| {
            let mut ratio = Vec::with_capacity(samples.len());
            let mut cf = Vec::with_capacity(samples.len());
            let mut df = Vec::with_capacity(samples.len());
            let reference = ratio_reference(codec);
            let time_ref = time_reference(codec);
            for s in samples {
                let o = &s.outcome.codecs[codec.index()];
                let len = s.outcome.len.max(1);
                let mut r = (o.frame_len as f64 / len as f64).ln();
                if let Some(rc) = reference {
                    r -= (s.outcome.codecs[rc.index()].frame_len as f64 / len as f64).ln();
                }
                ratio.push(r as f32);
                let factors = |c: CodecId| {
                    let o = &s.outcome.codecs[c.index()];
                    (
                        (o.compress_s / profile.compress_s(c, len).max(1e-12)).ln(),
                        (o.decompress_s / profile.decompress_s(c, len).max(1e-12)).ln(),
                    )
                };
                let (mut c, mut d) = factors(codec);
                if let Some(tc) = time_ref {
                    let (rc, rd) = factors(tc);
                    c -= rc;
                    d -= rd;
                }
                cf.push(c as f32);
                df.push(d as f32);
            }
            CodecModel {
                codec,
                log_ratio: gbt::fit(&rows, &ratio, params),
                log_ratio_relative_to: reference,
                log_compress_factor: gbt::fit(&rows, &cf, params),
                log_decompress_factor: gbt::fit(&rows, &df, &decompress_params),
                times_relative_to: time_ref,
            }
        })
        .collect();
    CompressionModel {
        format: MODEL_FORMAT.to_owned(),
        version: MODEL_VERSION,
        features: FEATURE_NAMES.iter().map(|s| (*s).to_owned()).collect(),
        codecs,
        training: TrainingInfo {
            files,
            chunks: samples.len(),
            chunk_sizes: plan.sizes.clone(),
            params: *params,
            profile: profile.description.clone(),
        },
    }
}

/// Training options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    /// How files are cut.
    pub plan: ChunkPlan,
    /// Timing repetitions per chunk and codec (minimum kept).
    pub reps: usize,
    /// Boosting parameters.
    pub params: BoostParams,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            plan: ChunkPlan::default(),
            reps: 5,
            params: BoostParams::default(),
        }
    }
}

/// Fit quality of one codec's regressors on the training chunks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodecFit {
    /// The codec.
    pub codec: CodecId,
    /// Mean |predicted / measured - 1| of frame bytes.
    pub bytes_mape: f64,
    /// Mean |predicted / measured - 1| of compress time.
    pub compress_mape: f64,
    /// Mean |predicted / measured - 1| of decompress time.
    pub decompress_mape: f64,
}

/// What `train` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// Training files (train side of the split).
    pub files: usize,
    /// Training chunks.
    pub chunks: usize,
    /// Seconds spent measuring.
    pub measure_seconds: f64,
    /// Seconds spent fitting.
    pub fit_seconds: f64,
    /// In-sample fit per codec (training error, not a generalisation measure).
    pub in_sample: Vec<CodecFit>,
}

/// Trains on the train side of the corpus under `dir`.
pub fn train_corpus(
    dir: &Path,
    options: &TrainOptions,
    profile: &CalibrationProfile,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(CompressionModel, TrainReport), TrainError> {
    let files = corpus::scan(dir, Some(Split::Train))?;
    let t0 = Instant::now();
    let samples = collect_samples(&files, &options.plan, options.reps, progress)?;
    let measure_seconds = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let model = fit_model(
        &samples,
        profile,
        &options.params,
        files.len(),
        &options.plan,
    );
    let fit_seconds = t1.elapsed().as_secs_f64();
    let in_sample = in_sample_fit(&model.compile()?, profile, &samples);
    let report = TrainReport {
        files: files.len(),
        chunks: samples.len(),
        measure_seconds,
        fit_seconds,
        in_sample,
    };
    Ok((model, report))
}

fn in_sample_fit(
    model: &CompiledModel,
    profile: &CalibrationProfile,
    samples: &[Sample],
) -> Vec<CodecFit> {
    // Per codec, summed |predicted / measured - 1| of bytes, compress, decompress.
    let mut sums = [[0.0f64; 3]; CodecId::COUNT];
    for s in samples {
        let p = model.predict(&s.features.to_vector());
        let len = s.outcome.len;
        for (i, (&codec, sum)) in CodecId::ALL.iter().zip(&mut sums).enumerate() {
            let o = &s.outcome.codecs[i];
            let pb = len as f64 * f64::from(p.log_ratio[i]).exp();
            let pc = profile.compress_s(codec, len) * f64::from(p.log_compress_factor[i]).exp();
            let pd = profile.decompress_s(codec, len) * f64::from(p.log_decompress_factor[i]).exp();
            sum[0] += (pb / o.frame_len as f64 - 1.0).abs();
            sum[1] += (pc / o.compress_s - 1.0).abs();
            sum[2] += (pd / o.decompress_s - 1.0).abs();
        }
    }
    let n = samples.len().max(1) as f64;
    CodecId::ALL
        .iter()
        .zip(sums)
        .map(|(&codec, [b, c, d])| CodecFit {
            codec,
            bytes_mape: b / n,
            compress_mape: c / n,
            decompress_mape: d / n,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Generated stand-ins for real files, only to exercise the pipeline quickly.
    fn tiny_samples() -> Vec<Sample> {
        let mut x = 7u64;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let random: Vec<u8> = (0..8192).map(|_| rnd() as u8).collect();
        let text = b"some text that repeats with small changes 0123 ".repeat(180);
        let zeros = vec![0u8; 8192];
        let plan = ChunkPlan {
            sizes: vec![2048],
            max_per_size: 4,
        };
        let mut out = Vec::new();
        for (i, data) in [random, text, zeros].iter().enumerate() {
            for c in plan.chunks(data) {
                out.push(Sample {
                    file: i,
                    features: ChunkFeatures::of(c),
                    outcome: measure_chunk(c, 1).expect("measure"),
                });
            }
        }
        out
    }

    #[test]
    fn fitted_model_is_valid_and_learns_ratios() {
        let samples = tiny_samples();
        let profile = CalibrationProfile::embedded().expect("profile");
        let params = BoostParams {
            trees: 10,
            l2: 1.0,
            ..BoostParams::default()
        };
        let model = fit_model(&samples, &profile, &params, 3, &ChunkPlan::default());
        let fit = in_sample_fit(&model.compile().expect("valid"), &profile, &samples);
        // Ratios are deterministic; even 10 trees on 12 rows get them close.
        let zstd = &fit[CodecId::Zstd3.index()];
        assert!(zstd.bytes_mape < 0.5, "{zstd:?}");
        let json = model.to_json().expect("json");
        assert!(CompressionModel::from_json(&json).is_ok());
    }
}
