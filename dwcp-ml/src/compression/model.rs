//! The trained model: per codec, three boosted-tree regressors over the chunk
//! features ([`super::features::FEATURE_NAMES`]):
//!
//! - `log_ratio`: ln(frame bytes / chunk bytes), header included, either absolute
//!   or, when `log_ratio_relative_to` names a reference codec, as the difference to
//!   that codec's log ratio. Codecs are compared with each other, so what matters
//!   most is the *difference* of their sizes; modelling it directly lets the error
//!   of the shared part (how compressible the chunk is at all) cancel out;
//! - `log_compress_factor`: ln(measured compress time / the calibration profile's
//!   reference time for a chunk of that length), either absolute or, when
//!   `times_relative_to` names a reference codec, as the difference to that codec's
//!   factor;
//! - `log_decompress_factor`: the same for decompression.
//!
//! Relative time factors matter for the same reason as relative sizes, and one more:
//! a chunk's measured times share a common part (how busy the machine was while all
//! codecs ran on it, interleaved), which the difference cancels, so the relative
//! regressors learn from much less noisy targets.
//!
//! Times are predicted *relative to the calibration profile* so that the model
//! carries how the data changes a codec's speed, and the profile carries how fast
//! this machine is. The model file is JSON with a format tag and version; the
//! default one is embedded in the crate.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::codec::CodecId;
use super::features::{FEATURE_COUNT, FEATURE_NAMES};
use super::forest::{Forest, ForestError};
use super::gbt::{BoostParams, Ensemble, EnsembleError};

/// Model format tag.
pub const MODEL_FORMAT: &str = "dwcp-compression-model";
/// Model format version.
pub const MODEL_VERSION: u32 = 1;
/// The default model, trained with `dwcpd compress train` on the corpus that
/// `scripts/fetch-compression-corpus.sh` builds.
pub const EMBEDDED_MODEL: &[u8] = include_bytes!("../../models/compression-v1.json");

/// The three regressors of one codec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodecModel {
    /// The codec.
    pub codec: CodecId,
    /// Predicts ln(frame bytes / chunk bytes), minus the reference codec's if
    /// `log_ratio_relative_to` is set.
    pub log_ratio: Ensemble,
    /// The reference codec of `log_ratio` (itself modelled absolutely), if any.
    #[serde(default)]
    pub log_ratio_relative_to: Option<CodecId>,
    /// Predicts ln(compress time / profile reference compress time), minus the
    /// reference codec's if `times_relative_to` is set.
    pub log_compress_factor: Ensemble,
    /// Predicts ln(decompress time / profile reference decompress time), minus the
    /// reference codec's if `times_relative_to` is set.
    pub log_decompress_factor: Ensemble,
    /// The reference codec of both time factors (itself modelled absolutely), if any.
    #[serde(default)]
    pub times_relative_to: Option<CodecId>,
}

/// Where a model came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// Training files.
    pub files: usize,
    /// Training chunks.
    pub chunks: usize,
    /// Chunk sizes used.
    pub chunk_sizes: Vec<usize>,
    /// Boosting parameters.
    pub params: BoostParams,
    /// Description of the calibration profile the time targets were normalised by.
    pub profile: String,
}

/// A trained compression model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompressionModel {
    /// Always [`MODEL_FORMAT`].
    pub format: String,
    /// Always [`MODEL_VERSION`].
    pub version: u32,
    /// The feature names the model was trained on, in input order.
    pub features: Vec<String>,
    /// One entry per codec, in [`CodecId::ALL`] order.
    pub codecs: Vec<CodecModel>,
    /// Provenance.
    pub training: TrainingInfo,
}

/// Why a model cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file could not be read (missing, permissions).
    #[error("cannot read compression model {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Not valid JSON of the right shape (corrupt or truncated file).
    #[error("compression model is corrupt (invalid JSON): {0}")]
    Json(#[from] serde_json::Error),
    /// Wrong format tag or version.
    #[error("not a compression model of format {MODEL_FORMAT} v{MODEL_VERSION} (found {format} v{version})")]
    Format {
        /// Found format tag.
        format: String,
        /// Found version.
        version: u32,
    },
    /// Trained on different features than this build computes.
    #[error("model features {found:?} differ from this build's {expected:?}")]
    Features {
        /// Found names.
        found: Vec<String>,
        /// Expected names.
        expected: Vec<&'static str>,
    },
    /// Codec table missing entries or out of order.
    #[error("model codec table is invalid: {0}")]
    Codecs(String),
    /// A regressor is malformed.
    #[error("model for {codec} is malformed: {source}")]
    Ensemble {
        /// The codec whose regressor is bad.
        codec: CodecId,
        /// The cause.
        source: EnsembleError,
    },
    /// The regressors together cannot be compiled for prediction.
    #[error("model cannot be compiled for prediction: {0}")]
    Forest(#[from] ForestError),
}

impl CompressionModel {
    /// Parses and fully validates a model, so prediction cannot fail later.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ModelError> {
        let m: CompressionModel = serde_json::from_slice(bytes)?;
        m.validate()?;
        Ok(m)
    }

    /// Reads a model file.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&bytes)
    }

    /// The model embedded in the crate.
    pub fn embedded() -> Result<Self, ModelError> {
        Self::from_json(EMBEDDED_MODEL)
    }

    /// Serialises the model (compact JSON).
    pub fn to_json(&self) -> Result<Vec<u8>, ModelError> {
        Ok(serde_json::to_vec(self)?)
    }

    /// Checks format, version, features and every regressor, and that they compile
    /// into a [`Forest`].
    pub fn validate(&self) -> Result<(), ModelError> {
        self.compile().map(|_| ())
    }

    /// What [`CompressionModel::validate`] checks, except that the regressors compile.
    fn check(&self) -> Result<(), ModelError> {
        if self.format != MODEL_FORMAT || self.version != MODEL_VERSION {
            return Err(ModelError::Format {
                format: self.format.clone(),
                version: self.version,
            });
        }
        if self.features.len() != FEATURE_COUNT
            || self.features.iter().zip(FEATURE_NAMES).any(|(a, b)| a != b)
        {
            return Err(ModelError::Features {
                found: self.features.clone(),
                expected: FEATURE_NAMES.to_vec(),
            });
        }
        if self.codecs.len() != CodecId::COUNT {
            return Err(ModelError::Codecs(format!(
                "{} entries, expected {}",
                self.codecs.len(),
                CodecId::COUNT
            )));
        }
        for (m, want) in self.codecs.iter().zip(CodecId::ALL) {
            if m.codec != want {
                return Err(ModelError::Codecs(format!(
                    "found {} where {want} belongs",
                    m.codec
                )));
            }
            if let Some(r) = m.log_ratio_relative_to {
                if self.codecs[r.index()].log_ratio_relative_to.is_some() {
                    return Err(ModelError::Codecs(format!(
                        "{want} is relative to {r}, which is itself relative"
                    )));
                }
            }
            if let Some(r) = m.times_relative_to {
                if self.codecs[r.index()].times_relative_to.is_some() {
                    return Err(ModelError::Codecs(format!(
                        "{want} times are relative to {r}, whose times are themselves relative"
                    )));
                }
            }
            for e in [
                &m.log_ratio,
                &m.log_compress_factor,
                &m.log_decompress_factor,
            ] {
                e.validate(FEATURE_COUNT)
                    .map_err(|source| ModelError::Ensemble {
                        codec: want,
                        source,
                    })?;
            }
        }
        Ok(())
    }

    /// All regressors as one forest: ratios, then compress factors, then
    /// decompress factors, each in codec order.
    fn forest(&self) -> Result<Forest, ForestError> {
        let ensembles: Vec<&Ensemble> = (self.codecs.iter().map(|m| &m.log_ratio))
            .chain(self.codecs.iter().map(|m| &m.log_compress_factor))
            .chain(self.codecs.iter().map(|m| &m.log_decompress_factor))
            .collect();
        Forest::new(&ensembles, FEATURE_COUNT)
    }

    /// The model compiled for prediction (see [`Forest`]); fails as
    /// [`CompressionModel::validate`] does.
    pub fn compile(&self) -> Result<CompiledModel, ModelError> {
        self.check()?;
        let index = |r: Option<CodecId>| r.map(CodecId::index);
        Ok(CompiledModel {
            forest: self.forest()?,
            ratio_relative_to: self
                .codecs
                .iter()
                .map(|m| index(m.log_ratio_relative_to))
                .collect(),
            times_relative_to: self
                .codecs
                .iter()
                .map(|m| index(m.times_relative_to))
                .collect(),
        })
    }

    /// The model of `codec`.
    pub fn codec(&self, codec: CodecId) -> &CodecModel {
        &self.codecs[codec.index()]
    }
}

/// What a model predicts for one chunk, per codec in [`CodecId::ALL`] order
/// (natural logs, see [`CompressionModel`]; relative regressors already added to
/// their reference).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Predictions {
    /// ln(frame bytes / chunk bytes).
    pub log_ratio: [f32; CodecId::COUNT],
    /// ln(compress time / the profile's reference compress time).
    pub log_compress_factor: [f32; CodecId::COUNT],
    /// ln(decompress time / the profile's reference decompress time).
    pub log_decompress_factor: [f32; CodecId::COUNT],
}

/// A validated [`CompressionModel`] compiled for fast prediction: its 3 ×
/// [`CodecId::COUNT`] regressors as one [`Forest`].
#[derive(Debug, Clone, PartialEq)]
pub struct CompiledModel {
    forest: Forest,
    ratio_relative_to: Vec<Option<usize>>,
    times_relative_to: Vec<Option<usize>>,
}

impl CompiledModel {
    /// Every codec's predictions for the feature vector `x`
    /// ([`super::features::ChunkFeatures::to_vector`]).
    pub fn predict(&self, x: &[f32; FEATURE_COUNT]) -> Predictions {
        const N: usize = CodecId::COUNT;
        let mut raw = [0f32; 3 * N];
        self.forest.predict(x, &mut raw);
        let mut p = Predictions {
            log_ratio: [0.0; N],
            log_compress_factor: [0.0; N],
            log_decompress_factor: [0.0; N],
        };
        for i in 0..N {
            let (r, t) = (self.ratio_relative_to[i], self.times_relative_to[i]);
            let plus = |at: usize, base: usize, r: Option<usize>| {
                r.map_or(raw[base + at], |r| raw[base + at] + raw[base + r])
            };
            p.log_ratio[i] = plus(i, 0, r);
            p.log_compress_factor[i] = plus(i, N, t);
            p.log_decompress_factor[i] = plus(i, 2 * N, t);
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_model_loads() {
        let m = CompressionModel::embedded().expect("embedded model");
        assert_eq!(m.codecs.len(), CodecId::COUNT);
        let json = m.to_json().expect("json");
        assert_eq!(CompressionModel::from_json(&json).expect("again"), m);
    }

    #[test]
    fn missing_corrupt_and_foreign_models_are_clear_errors() {
        let missing = CompressionModel::load(Path::new("/nonexistent/model.json"));
        assert!(matches!(missing, Err(ModelError::Io { .. })));
        let truncated = &EMBEDDED_MODEL[..EMBEDDED_MODEL.len() / 2];
        assert!(matches!(
            CompressionModel::from_json(truncated),
            Err(ModelError::Json(_))
        ));
        let mut m = CompressionModel::embedded().expect("embedded");
        m.features[0] = "something_else".into();
        assert!(matches!(m.validate(), Err(ModelError::Features { .. })));
        let mut m = CompressionModel::embedded().expect("embedded");
        m.format = "other".into();
        assert!(matches!(m.validate(), Err(ModelError::Format { .. })));
        let mut m = CompressionModel::embedded().expect("embedded");
        m.codecs.pop();
        assert!(matches!(m.validate(), Err(ModelError::Codecs(_))));
        let mut m = CompressionModel::embedded().expect("embedded");
        m.codecs[2].log_ratio.depth = 12;
        assert!(matches!(m.validate(), Err(ModelError::Ensemble { .. })));
        let mut m = CompressionModel::embedded().expect("embedded");
        m.codecs[1].log_ratio_relative_to = Some(CodecId::Snappy);
        m.codecs[2].log_ratio_relative_to = Some(CodecId::Lz4);
        assert!(matches!(m.validate(), Err(ModelError::Codecs(_))));
        let mut m = CompressionModel::embedded().expect("embedded");
        m.codecs[1].times_relative_to = Some(CodecId::Snappy);
        m.codecs[2].times_relative_to = Some(CodecId::Lz4);
        assert!(matches!(m.validate(), Err(ModelError::Codecs(_))));
        let mut m = CompressionModel::embedded().expect("embedded");
        // Over 255 distinct thresholds on one feature cannot be binned in a byte.
        let c = &mut m.codecs[0];
        let mut next = 0.0f32;
        for e in [&mut c.log_ratio, &mut c.log_compress_factor] {
            e.feature.iter_mut().for_each(|f| *f = 1);
            for t in &mut e.threshold {
                *t = next;
                next += 1.0;
            }
        }
        assert!(matches!(m.validate(), Err(ModelError::Forest(_))));
    }

    #[test]
    fn compiled_predictions_equal_the_regressors() {
        let m = CompressionModel::embedded().expect("embedded");
        let c = m.compile().expect("compiles");
        let inputs = [
            [
                16.0, 4.5, 0.3, 0.1, 0.05, 0.6, 0.1, 0.05, 0.1, 0.2, 0.0, 0.0,
            ],
            [
                12.0, 8.0, 1.0, 0.01, 0.0, 1.01, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
            ],
            [
                17.0, 0.5, 0.02, 0.95, 0.9, 0.02, 0.9, 0.9, 0.9, 0.9, 0.5, 0.2,
            ],
        ];
        for x in inputs {
            let p = c.predict(&x);
            for (i, cm) in m.codecs.iter().enumerate() {
                let plus =
                    |e: &Ensemble, r: Option<CodecId>, pick: fn(&CodecModel) -> &Ensemble| {
                        let own = e.predict(&x);
                        r.map_or(own, |r| own + pick(&m.codecs[r.index()]).predict(&x))
                    };
                let ratio = plus(&cm.log_ratio, cm.log_ratio_relative_to, |m| &m.log_ratio);
                let comp = plus(&cm.log_compress_factor, cm.times_relative_to, |m| {
                    &m.log_compress_factor
                });
                let decomp = plus(&cm.log_decompress_factor, cm.times_relative_to, |m| {
                    &m.log_decompress_factor
                });
                assert_eq!(p.log_ratio[i].to_bits(), ratio.to_bits());
                assert_eq!(p.log_compress_factor[i].to_bits(), comp.to_bits());
                assert_eq!(p.log_decompress_factor[i].to_bits(), decomp.to_bits());
            }
        }
    }
}
