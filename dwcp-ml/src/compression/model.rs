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

    /// Checks format, version, features and every regressor.
    pub fn validate(&self) -> Result<(), ModelError> {
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

    /// Predicted ln(frame bytes / chunk bytes) of every codec, in [`CodecId::ALL`] order.
    pub fn log_ratios(&self, x: &[f32]) -> [f32; CodecId::COUNT] {
        let mut out = [0f32; CodecId::COUNT];
        for (o, m) in out.iter_mut().zip(&self.codecs) {
            *o = m.log_ratio.predict(x);
        }
        let own = out;
        for (o, m) in out.iter_mut().zip(&self.codecs) {
            if let Some(r) = m.log_ratio_relative_to {
                *o += own[r.index()];
            }
        }
        out
    }

    /// Predicted ln(compress time / profile reference) and ln(decompress time /
    /// profile reference) of every codec, in [`CodecId::ALL`] order.
    pub fn log_time_factors(&self, x: &[f32]) -> ([f32; CodecId::COUNT], [f32; CodecId::COUNT]) {
        let mut c = [0f32; CodecId::COUNT];
        let mut d = [0f32; CodecId::COUNT];
        for ((c, d), m) in c.iter_mut().zip(d.iter_mut()).zip(&self.codecs) {
            *c = m.log_compress_factor.predict(x);
            *d = m.log_decompress_factor.predict(x);
        }
        let (own_c, own_d) = (c, d);
        for ((c, d), m) in c.iter_mut().zip(d.iter_mut()).zip(&self.codecs) {
            if let Some(r) = m.times_relative_to {
                *c += own_c[r.index()];
                *d += own_d[r.index()];
            }
        }
        (c, d)
    }

    /// The model of `codec`.
    pub fn codec(&self, codec: CodecId) -> &CodecModel {
        &self.codecs[codec.index()]
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
    }
}
