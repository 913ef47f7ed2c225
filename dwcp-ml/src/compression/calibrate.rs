//! Machine calibration: how fast each codec runs *here*.
//!
//! [`calibrate`] times every codec on a fixed, generated reference mix (text-like,
//! structured binary, sparse and random payloads) at two sizes and fits, per codec,
//! `time = fixed + per_byte × len` for compression and decompression. The model
//! predicts how much faster or slower a given chunk is than this reference, so a
//! profile measured on another CPU moves every codec's time to that CPU without
//! retraining. The reference mix is generated, not real data, on purpose: it only
//! has to be identical everywhere, so that profiles from two machines compare.

use serde::{Deserialize, Serialize};

use super::codec::CodecId;
use super::measure::{measure_chunk, MeasureError};

/// Profile format tag.
pub const PROFILE_FORMAT: &str = "dwcp-compression-profile";
/// Profile format version.
pub const PROFILE_VERSION: u32 = 1;
/// The small and large reference sizes the linear time model is fitted through.
pub const REFERENCE_SIZES: [usize; 2] = [4 << 10, 64 << 10];

/// The profile the crate ships (measured with `dwcpd compress calibrate` on the
/// development machine); replace it with one measured where the selector runs.
pub const EMBEDDED_PROFILE: &[u8] = include_bytes!("../../models/profile-default.json");

/// Measured speed of one codec.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CodecSpeed {
    /// The codec.
    pub codec: CodecId,
    /// Per-call compression cost, nanoseconds.
    pub compress_fixed_ns: f64,
    /// Compression cost per input byte, nanoseconds.
    pub compress_ns_per_byte: f64,
    /// Per-call decompression cost, nanoseconds.
    pub decompress_fixed_ns: f64,
    /// Decompression cost per output byte, nanoseconds.
    pub decompress_ns_per_byte: f64,
}

/// Codec speeds on one machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationProfile {
    /// Always [`PROFILE_FORMAT`].
    pub format: String,
    /// Always [`PROFILE_VERSION`].
    pub version: u32,
    /// Free text: where and how it was measured.
    pub description: String,
    /// Repetitions per measurement (the minimum was kept).
    pub reps: usize,
    /// One entry per codec, in [`CodecId::ALL`] order.
    pub codecs: Vec<CodecSpeed>,
}

/// Why a profile cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// Reading the file failed.
    #[error("cannot read calibration profile {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Not valid JSON of the right shape.
    #[error("calibration profile is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// Wrong format tag or version.
    #[error("not a calibration profile of format {PROFILE_FORMAT} v{PROFILE_VERSION} (found {format} v{version})")]
    Format {
        /// Found format tag.
        format: String,
        /// Found version.
        version: u32,
    },
    /// Codecs missing, out of order, or speeds not finite and non-negative.
    #[error("calibration profile has an invalid codec table: {0}")]
    Codecs(String),
    /// Measuring failed.
    #[error(transparent)]
    Measure(#[from] MeasureError),
}

impl CalibrationProfile {
    /// Parses and validates a profile.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ProfileError> {
        let p: CalibrationProfile = serde_json::from_slice(bytes)?;
        p.validate()?;
        Ok(p)
    }

    /// Reads a profile file.
    pub fn load(path: &std::path::Path) -> Result<Self, ProfileError> {
        let bytes = std::fs::read(path).map_err(|source| ProfileError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_json(&bytes)
    }

    /// The profile shipped with the crate.
    pub fn embedded() -> Result<Self, ProfileError> {
        Self::from_json(EMBEDDED_PROFILE)
    }

    /// Checks format, version and the codec table.
    pub fn validate(&self) -> Result<(), ProfileError> {
        if self.format != PROFILE_FORMAT || self.version != PROFILE_VERSION {
            return Err(ProfileError::Format {
                format: self.format.clone(),
                version: self.version,
            });
        }
        if self.codecs.len() != CodecId::COUNT {
            return Err(ProfileError::Codecs(format!(
                "{} entries, expected {}",
                self.codecs.len(),
                CodecId::COUNT
            )));
        }
        for (s, want) in self.codecs.iter().zip(CodecId::ALL) {
            if s.codec != want {
                return Err(ProfileError::Codecs(format!(
                    "found {} where {want} belongs",
                    s.codec
                )));
            }
            let vals = [
                s.compress_fixed_ns,
                s.compress_ns_per_byte,
                s.decompress_fixed_ns,
                s.decompress_ns_per_byte,
            ];
            if vals.iter().any(|v| !(v.is_finite() && *v >= 0.0)) {
                return Err(ProfileError::Codecs(format!(
                    "{want}: speeds must be finite and >= 0"
                )));
            }
            if s.compress_ns_per_byte <= 0.0 || s.decompress_ns_per_byte <= 0.0 {
                return Err(ProfileError::Codecs(format!(
                    "{want}: per-byte cost must be > 0"
                )));
            }
        }
        Ok(())
    }

    /// Reference compression time of `codec` for `len` bytes, seconds.
    pub fn compress_s(&self, codec: CodecId, len: usize) -> f64 {
        let s = &self.codecs[codec.index()];
        (s.compress_fixed_ns + s.compress_ns_per_byte * len as f64) * 1e-9
    }

    /// Reference decompression time of `codec` for `len` bytes, seconds.
    pub fn decompress_s(&self, codec: CodecId, len: usize) -> f64 {
        let s = &self.codecs[codec.index()];
        (s.decompress_fixed_ns + s.decompress_ns_per_byte * len as f64) * 1e-9
    }
}

struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The generated reference payloads of `len` bytes each (deterministic).
pub fn reference_payloads(len: usize) -> Vec<Vec<u8>> {
    const WORDS: &[&str] = &[
        "the",
        "of",
        "and",
        "to",
        "in",
        "a",
        "is",
        "that",
        "for",
        "it",
        "as",
        "was",
        "with",
        "be",
        "by",
        "on",
        "not",
        "he",
        "this",
        "are",
        "or",
        "his",
        "from",
        "at",
        "which",
        "but",
        "have",
        "an",
        "had",
        "they",
        "you",
        "were",
        "their",
        "one",
        "all",
        "we",
        "can",
        "her",
        "has",
        "there",
        "been",
        "if",
        "more",
        "when",
        "will",
        "would",
        "who",
        "so",
        "no",
        "consensus",
        "replica",
        "commit",
        "view",
        "leader",
        "quorum",
        "batch",
        "digest",
        "signature",
        "timeout",
        "certificate",
        "round",
        "vertex",
        "proposal",
    ];
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    // Text-like: Zipf-ish word choice, punctuation and line breaks.
    let mut text = Vec::with_capacity(len + 16);
    while text.len() < len {
        let r = rng.next();
        let k = ((r % 64) * ((r >> 8) % 64) / 64) as usize % WORDS.len();
        text.extend_from_slice(WORDS[k].as_bytes());
        text.push(match (r >> 20) % 16 {
            0 => b'\n',
            1 => b',',
            2 => b'.',
            _ => b' ',
        });
    }
    text.truncate(len);
    // Structured binary: fixed-size records with a counter, small deltas and flags.
    let mut records = Vec::with_capacity(len + 16);
    let mut counter = 1_000_000u32;
    while records.len() < len {
        let r = rng.next();
        counter = counter.wrapping_add((r % 5) as u32);
        records.extend_from_slice(&counter.to_le_bytes());
        records.extend_from_slice(&((r >> 8) as u16 % 1000).to_le_bytes());
        records.extend_from_slice(&[(r >> 30) as u8 & 3, 0]);
        records.extend_from_slice(&(((r >> 32) % 100_000) as f32 / 7.0).to_le_bytes());
    }
    records.truncate(len);
    // Sparse: mostly zeros.
    let sparse: Vec<u8> = (0..len)
        .map(|_| {
            let r = rng.next();
            if r.is_multiple_of(16) {
                (r >> 40) as u8
            } else {
                0
            }
        })
        .collect();
    // Incompressible.
    let random: Vec<u8> = (0..len).map(|_| (rng.next() >> 24) as u8).collect();
    vec![text, records, sparse, random]
}

/// Measures this machine: every codec on the reference mix at both reference sizes,
/// `reps` repetitions each (minimum kept).
pub fn calibrate(reps: usize, description: &str) -> Result<CalibrationProfile, ProfileError> {
    let [small, large] = REFERENCE_SIZES;
    let mut sums = [[0f64; 4]; CodecId::COUNT]; // c_small, c_large, d_small, d_large
    let kinds = reference_payloads(small).len() as f64;
    for (col, len) in [(0usize, small), (1, large)] {
        for payload in reference_payloads(len) {
            let m = measure_chunk(&payload, reps)?;
            for o in &m.codecs {
                sums[o.codec.index()][col] += o.compress_s / kinds;
                sums[o.codec.index()][col + 2] += o.decompress_s / kinds;
            }
        }
    }
    let span = (large - small) as f64;
    let fit = |t_small: f64, t_large: f64| {
        // A slope from two noisy points can come out too low; keep it positive and
        // never below what the large size alone implies with zero fixed cost / 2.
        let per_byte = ((t_large - t_small) / span).max(t_large / large as f64 / 2.0);
        let fixed = (t_small - per_byte * small as f64).max(0.0);
        (fixed * 1e9, per_byte * 1e9)
    };
    let codecs = CodecId::ALL
        .iter()
        .map(|&codec| {
            let s = sums[codec.index()];
            let (cf, cb) = fit(s[0], s[1]);
            let (df, db) = fit(s[2], s[3]);
            CodecSpeed {
                codec,
                compress_fixed_ns: cf,
                compress_ns_per_byte: cb,
                decompress_fixed_ns: df,
                decompress_ns_per_byte: db,
            }
        })
        .collect();
    let p = CalibrationProfile {
        format: PROFILE_FORMAT.to_owned(),
        version: PROFILE_VERSION,
        description: description.to_owned(),
        reps,
        codecs,
    };
    p.validate()?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_payloads_are_deterministic_and_sized() {
        let a = reference_payloads(1000);
        assert_eq!(a, reference_payloads(1000));
        assert!(a.iter().all(|p| p.len() == 1000));
    }

    #[test]
    fn calibrate_gives_a_valid_profile_that_round_trips() {
        let p = calibrate(1, "unit test").expect("calibrate");
        let json = serde_json::to_vec(&p).expect("json");
        let back = CalibrationProfile::from_json(&json).expect("parse");
        for (a, b) in back.codecs.iter().zip(&p.codecs) {
            assert_eq!(a.codec, b.codec);
            let close = |x: f64, y: f64| (x - y).abs() <= 1e-9 * y.abs().max(1.0);
            assert!(close(a.compress_ns_per_byte, b.compress_ns_per_byte));
            assert!(close(a.decompress_fixed_ns, b.decompress_fixed_ns));
        }
        // zstd 19 is slower to compress than lz4 on any machine.
        assert!(p.compress_s(CodecId::Zstd19, 65536) > p.compress_s(CodecId::Lz4, 65536));
    }

    #[test]
    fn embedded_profile_loads_and_bad_ones_are_refused() {
        assert!(CalibrationProfile::embedded().is_ok());
        assert!(matches!(
            CalibrationProfile::from_json(b"{"),
            Err(ProfileError::Json(_))
        ));
        let mut p = CalibrationProfile::embedded().expect("embedded");
        p.codecs.swap(0, 1);
        assert!(matches!(p.validate(), Err(ProfileError::Codecs(_))));
        let mut p = CalibrationProfile::embedded().expect("embedded");
        p.version = 99;
        assert!(matches!(p.validate(), Err(ProfileError::Format { .. })));
        let missing = CalibrationProfile::load(std::path::Path::new("/nonexistent/profile.json"));
        assert!(matches!(missing, Err(ProfileError::Io { .. })));
    }
}
