//! [`CompressionSelector`]: the decision and the adaptive compress/decompress API.
//!
//! For each codec the selector predicts frame bytes, compress time and decompress
//! time from the chunk's features (model × calibration profile), adds the transfer
//! time on the link, and picks the codec with the smallest end-to-end estimate.
//! Compress-time estimates are scaled by the [`SpeedTracker`]'s factor, which
//! [`CompressionSelector::compress_adaptive`] keeps up to date from the compress
//! times it measures.
//! The request/response types are serde types so an HTTP layer can expose
//! `select`, batch selection and model information without glue.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::calibrate::{CalibrationProfile, ProfileError};
use super::codec::CodecId;
use super::features::{ChunkFeatures, Link, LinkError};
use super::frame::{self, DecodeLimits, FrameError, FrameHeader};
use super::model::{CompiledModel, CompressionModel, ModelError, Predictions, MODEL_VERSION};
use super::speed::SpeedTracker;

/// The predicted cost of sending one chunk with one codec.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// The codec.
    pub codec: CodecId,
    /// Predicted frame bytes.
    pub bytes: f64,
    /// Predicted compression seconds (CPU share and speed factor applied).
    pub compress_s: f64,
    /// Predicted transfer seconds (bytes / bandwidth + RTT).
    pub transfer_s: f64,
    /// Predicted decompression seconds (CPU share applied).
    pub decompress_s: f64,
    /// Sum of the three.
    pub total_s: f64,
}

/// The selector's decision for one chunk on one link.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// The codec to use.
    pub codec: CodecId,
    /// The estimate for that codec.
    pub estimate: Estimate,
    /// The machine-speed factor `estimate.compress_s` was scaled by (see
    /// [`SpeedTracker`]).
    #[serde(default = "one")]
    pub speed_factor: f64,
}

fn one() -> f64 {
    1.0
}

/// Why the selector could not be built or used.
#[derive(Debug, thiserror::Error)]
pub enum SelectorError {
    /// The model could not be loaded.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The calibration profile could not be loaded.
    #[error(transparent)]
    Profile(#[from] ProfileError),
    /// The link description is unusable.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// Framing failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The candidate set is empty.
    #[error("no candidate codecs")]
    NoCandidates,
}

/// A compressed chunk and the decision that produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct Compressed {
    /// The decision.
    pub choice: Choice,
    /// The self-describing frame to send.
    pub frame: Vec<u8>,
}

/// Request body for a single selection (`POST /v1/compression/select`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectRequest {
    /// The chunk (or a representative prefix and `len`).
    pub data: Vec<u8>,
    /// Full chunk length if `data` is only a sample; defaults to `data.len()`.
    #[serde(default)]
    pub len: Option<usize>,
    /// The link.
    pub link: Link,
}

/// Response to a [`SelectRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectResponse {
    /// The decision.
    pub choice: Choice,
    /// The features it was based on.
    pub features: ChunkFeatures,
    /// Every candidate's estimate, for inspection.
    pub estimates: Vec<Estimate>,
}

/// Request body for a batch (`POST /v1/compression/batch`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRequest {
    /// The chunks.
    pub chunks: Vec<Vec<u8>>,
    /// The link all of them travel on.
    pub link: Link,
}

/// Response to a [`BatchRequest`]: one choice per chunk, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResponse {
    /// The decisions.
    pub choices: Vec<Choice>,
}

/// What is loaded (`GET /v1/compression/model`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Model format version.
    pub model_version: u32,
    /// Training files.
    pub trained_files: usize,
    /// Training chunks.
    pub trained_chunks: usize,
    /// Profile the model's time targets were normalised by.
    pub training_profile: String,
    /// Profile in use for decisions.
    pub profile: String,
    /// Codecs the selector may choose.
    pub candidates: Vec<CodecId>,
    /// The current machine-speed factor (measured / predicted compress time).
    #[serde(default = "one")]
    pub speed_factor: f64,
}

/// Picks the codec that minimises predicted end-to-end time, and applies it.
#[derive(Debug, Clone)]
pub struct CompressionSelector {
    model: CompressionModel,
    compiled: CompiledModel,
    profile: CalibrationProfile,
    candidates: Vec<CodecId>,
    limits: DecodeLimits,
    speed: SpeedTracker,
}

impl CompressionSelector {
    /// A selector over a validated model and profile, all codecs as candidates.
    pub fn new(
        model: CompressionModel,
        profile: CalibrationProfile,
    ) -> Result<Self, SelectorError> {
        let compiled = model.compile()?;
        profile.validate()?;
        Ok(CompressionSelector {
            model,
            compiled,
            profile,
            candidates: CodecId::ALL.to_vec(),
            limits: DecodeLimits::default(),
            speed: SpeedTracker::default(),
        })
    }

    /// The embedded default model and calibration profile.
    pub fn embedded() -> Result<Self, SelectorError> {
        Self::new(
            CompressionModel::embedded()?,
            CalibrationProfile::embedded()?,
        )
    }

    /// Restricts the codecs the selector may choose (e.g. a peer that lacks zstd).
    pub fn with_candidates(mut self, candidates: &[CodecId]) -> Result<Self, SelectorError> {
        if candidates.is_empty() {
            return Err(SelectorError::NoCandidates);
        }
        self.candidates = candidates.to_vec();
        Ok(self)
    }

    /// Sets the bounds [`CompressionSelector::decompress`] enforces.
    pub fn with_limits(mut self, limits: DecodeLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets how strongly each measured compression moves the speed factor (0 keeps
    /// it at 1: decisions then depend on the chunk and the link alone).
    pub fn with_speed_adaptation(mut self, weight: f64) -> Self {
        self.speed = SpeedTracker::new(weight);
        self
    }

    /// How strongly each measured compression moves the speed factor.
    pub fn speed_weight(&self) -> f64 {
        self.speed.weight()
    }

    /// The current machine-speed factor: how many times longer than the profile
    /// predicts compression takes now.
    pub fn speed_factor(&self) -> f64 {
        self.speed.factor()
    }

    /// Tells the selector that compressing with `choice` took `measured_s` seconds,
    /// for callers that frame chunks themselves instead of through
    /// [`CompressionSelector::compress_adaptive`]. A choice of
    /// [`CodecId::None`] is not an observation: framing without compression is a
    /// copy and a checksum, a few microseconds of mostly fixed overhead that says
    /// little about how fast the codecs run.
    pub fn observe_compress(&self, choice: &Choice, measured_s: f64) {
        if choice.codec == CodecId::None {
            return;
        }
        let factor = if choice.speed_factor > 0.0 {
            choice.speed_factor
        } else {
            1.0
        };
        self.speed
            .observe(choice.estimate.compress_s / factor, measured_s);
    }

    /// The loaded model.
    pub fn model(&self) -> &CompressionModel {
        &self.model
    }

    /// The loaded calibration profile.
    pub fn profile(&self) -> &CalibrationProfile {
        &self.profile
    }

    /// Summary of what is loaded.
    pub fn info(&self) -> ModelInfo {
        ModelInfo {
            model_version: MODEL_VERSION,
            trained_files: self.model.training.files,
            trained_chunks: self.model.training.chunks,
            training_profile: self.model.training.profile.clone(),
            profile: self.profile.description.clone(),
            candidates: self.candidates.clone(),
            speed_factor: self.speed.factor(),
        }
    }

    /// Every candidate's predicted cost for a chunk with `features` on `link`.
    pub fn estimates(&self, features: &ChunkFeatures, link: &Link) -> Vec<Estimate> {
        let p = self.predict(features);
        let speed = self.speed.factor();
        self.candidates
            .iter()
            .map(|&c| self.estimate(features, &p, c, link, speed))
            .collect()
    }

    fn predict(&self, features: &ChunkFeatures) -> Predictions {
        self.compiled.predict(&features.to_vector())
    }

    fn estimate(
        &self,
        features: &ChunkFeatures,
        p: &Predictions,
        codec: CodecId,
        link: &Link,
        speed: f64,
    ) -> Estimate {
        let i = codec.index();
        let len = features.len;
        // Clamp the exponents: a wild extrapolation must not become inf or 0.
        let ratio = f64::from(p.log_ratio[i].clamp(-12.0, 2.0)).exp();
        let cf = f64::from(p.log_compress_factor[i].clamp(-8.0, 8.0)).exp();
        let df = f64::from(p.log_decompress_factor[i].clamp(-8.0, 8.0)).exp();
        let bytes = (len as f64 * ratio).max(frame::HEADER_LEN as f64);
        let cpu = link.cpu_share.clamp(1e-3, 1.0);
        let compress_s = self.profile.compress_s(codec, len) * cf / cpu * speed;
        let decompress_s = self.profile.decompress_s(codec, len) * df / cpu;
        let transfer_s = bytes * 8.0 / link.bandwidth_bps + link.rtt_s;
        Estimate {
            codec,
            bytes,
            compress_s,
            transfer_s,
            decompress_s,
            total_s: compress_s + transfer_s + decompress_s,
        }
    }

    /// The decision for a chunk whose features are already known.
    pub fn select_features(&self, features: &ChunkFeatures, link: &Link) -> Choice {
        let p = self.predict(features);
        let speed = self.speed.factor();
        let mut best: Option<Estimate> = None;
        for &codec in &self.candidates {
            let e = self.estimate(features, &p, codec, link, speed);
            if best.is_none_or(|b| e.total_s < b.total_s) {
                best = Some(e);
            }
        }
        // `candidates` is never empty (checked in with_candidates), but stay total.
        let estimate =
            best.unwrap_or_else(|| self.estimate(features, &p, CodecId::None, link, speed));
        Choice {
            codec: estimate.codec,
            estimate,
            speed_factor: speed,
        }
    }

    /// The decision for `chunk` on `link`: features from a bounded sample, then the
    /// minimum predicted end-to-end time.
    pub fn select(&self, chunk: &[u8], link: &Link) -> Choice {
        self.select_features(&ChunkFeatures::of(chunk), link)
    }

    /// Serves a [`SelectRequest`].
    pub fn handle_select(&self, req: &SelectRequest) -> Result<SelectResponse, SelectorError> {
        req.link.validate()?;
        let mut features = ChunkFeatures::of(&req.data);
        if let Some(len) = req.len {
            features.len = len.max(req.data.len());
        }
        let estimates = self.estimates(&features, &req.link);
        Ok(SelectResponse {
            choice: self.select_features(&features, &req.link),
            features,
            estimates,
        })
    }

    /// Serves a [`BatchRequest`].
    pub fn handle_batch(&self, req: &BatchRequest) -> Result<BatchResponse, SelectorError> {
        req.link.validate()?;
        Ok(BatchResponse {
            choices: req
                .chunks
                .iter()
                .map(|c| self.select(c, &req.link))
                .collect(),
        })
    }

    /// Chooses a codec for `chunk` on `link` and frames the chunk with it; the time
    /// the framing took updates the speed factor.
    pub fn compress_adaptive(
        &self,
        chunk: &[u8],
        link: &Link,
    ) -> Result<Compressed, SelectorError> {
        link.validate()?;
        let choice = self.select(chunk, link);
        let t0 = Instant::now();
        let frame = frame::encode(choice.codec, chunk)?;
        self.observe_compress(&choice, t0.elapsed().as_secs_f64());
        Ok(Compressed { choice, frame })
    }

    /// Decodes a frame from any codec, within this selector's bounds.
    pub fn decompress(&self, frame: &[u8]) -> Result<Vec<u8>, FrameError> {
        frame::decode(frame, &self.limits)
    }

    /// Decodes a frame, appending to `out`; returns its header.
    pub fn decompress_into(
        &self,
        frame: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<FrameHeader, FrameError> {
        frame::decode_into(frame, &self.limits, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector() -> CompressionSelector {
        CompressionSelector::embedded().expect("embedded selector")
    }

    fn text() -> Vec<u8> {
        b"Alice was beginning to get very tired of sitting by her sister on the bank. ".repeat(900)
    }

    #[test]
    fn adaptive_round_trip_on_every_link() {
        let s = selector();
        for mbps in [1.0, 100.0, 10_000.0] {
            let data = text();
            let c = s
                .compress_adaptive(&data, &Link::mbps(mbps))
                .expect("compress");
            assert_eq!(s.decompress(&c.frame).expect("decompress"), data);
            assert!(c.choice.estimate.total_s.is_finite());
        }
    }

    #[test]
    fn slow_links_favour_strong_compression_of_text() {
        let s = selector();
        let data = text();
        let slow = s.select(&data, &Link::mbps(1.0));
        assert_ne!(slow.codec, CodecId::None, "{slow:?}");
        assert!(slow.estimate.bytes < data.len() as f64 / 4.0, "{slow:?}");
    }

    #[test]
    fn candidates_restrict_the_choice() {
        let s = selector()
            .with_candidates(&[CodecId::Lz4, CodecId::Snappy])
            .expect("candidates");
        let c = s.select(&text(), &Link::mbps(1.0));
        assert!(matches!(c.codec, CodecId::Lz4 | CodecId::Snappy));
        assert!(selector().with_candidates(&[]).is_err());
    }

    #[test]
    fn requests_are_validated_and_serialisable() {
        let s = selector();
        let req = SelectRequest {
            data: text()[..4096].to_vec(),
            len: Some(65536),
            link: Link::mbps(50.0),
        };
        let json = serde_json::to_string(&req).expect("json");
        let back: SelectRequest = serde_json::from_str(&json).expect("parse");
        let resp = s.handle_select(&back).expect("select");
        assert_eq!(resp.features.len, 65536);
        assert_eq!(resp.estimates.len(), CodecId::COUNT);
        serde_json::to_string(&resp).expect("response json");
        let mut bad = back.clone();
        bad.link.bandwidth_bps = -1.0;
        assert!(matches!(s.handle_select(&bad), Err(SelectorError::Link(_))));
        let batch = s
            .handle_batch(&BatchRequest {
                chunks: vec![text(), vec![0; 1000]],
                link: Link::mbps(10.0),
            })
            .expect("batch");
        assert_eq!(batch.choices.len(), 2);
        serde_json::to_string(&s.info()).expect("info json");
    }

    #[test]
    fn compressing_moves_the_speed_factor_and_weight_zero_does_not() {
        let s = selector();
        assert_eq!(s.speed_factor(), 1.0);
        let data = text();
        let c = s
            .compress_adaptive(&data, &Link::mbps(10.0))
            .expect("compress");
        assert_eq!(c.choice.speed_factor, 1.0);
        assert_ne!(
            s.speed_factor(),
            1.0,
            "a measured compression is an observation"
        );
        let none = s.select(&data, &Link::mbps(10.0));
        let none = Choice {
            codec: CodecId::None,
            ..none
        };
        let before = s.speed_factor();
        s.observe_compress(&none, 1.0);
        assert_eq!(
            s.speed_factor(),
            before,
            "framing without compression is not timed"
        );
        let fixed = selector().with_speed_adaptation(0.0);
        fixed
            .compress_adaptive(&data, &Link::mbps(10.0))
            .expect("compress");
        assert_eq!(fixed.speed_factor(), 1.0);
    }

    #[test]
    fn a_slow_machine_compresses_less_on_a_fast_link() {
        let s = selector().with_speed_adaptation(1.0);
        let data = text();
        let link = Link::mbps(3000.0);
        let before = s.select(&data, &link);
        // Report compression three times slower than predicted, twice over.
        for _ in 0..2 {
            let c = s.select(&data, &link);
            s.observe_compress(&c, 3.0 * c.estimate.compress_s / c.speed_factor);
        }
        assert!(
            (s.speed_factor() - 3.0).abs() < 1e-9,
            "{}",
            s.speed_factor()
        );
        let after = s.select(&data, &link);
        assert_eq!(after.speed_factor, s.speed_factor());
        let again = s
            .estimates(&ChunkFeatures::of(&data), &link)
            .into_iter()
            .find(|e| e.codec == before.codec)
            .expect("still a candidate");
        assert!((again.compress_s / before.estimate.compress_s - 3.0).abs() < 1e-9);
        assert_eq!(again.decompress_s, before.estimate.decompress_s);
        // Scaling every compress time up can only move the minimum to a codec
        // that compresses faster (or keep the same one).
        assert!(
            after.estimate.compress_s / 3.0 <= before.estimate.compress_s * (1.0 + 1e-12),
            "{before:?} {after:?}"
        );
        assert!(s.info().speed_factor > 2.9);
    }

    #[test]
    fn decompress_respects_limits() {
        let s = selector().with_limits(DecodeLimits {
            max_original_len: 100,
        });
        let f = frame::encode(CodecId::Lz4, &[1u8; 101]).expect("encode");
        assert!(matches!(s.decompress(&f), Err(FrameError::TooLarge { .. })));
    }
}
