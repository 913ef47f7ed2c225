//! The versioned weights file of the trained actor (JSON), the default one embedded in
//! the binary, and strict validation on load.

use std::path::Path;

use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use super::error::AllocError;
use super::features::OBS_DIM;
use super::mlp::{Activation, Dense, Mlp};

/// Value of the `format` field.
pub const FORMAT: &str = "dwcp-maddpg-actor";
/// Current file version.
pub const VERSION: u32 = 2;
/// The model shipped in the repository, produced by `dwcpd allocate train`.
pub const EMBEDDED: &[u8] = include_bytes!("../../models/maddpg-v1.json");

/// How the model was trained (informational, kept with the weights).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// Training episodes.
    pub episodes: usize,
    /// Training seed.
    pub seed: u64,
    /// Nodes (agents) during training.
    pub nodes: usize,
    /// Ticks per training episode.
    pub ticks: usize,
    /// Wall-clock training time in seconds.
    pub seconds: f64,
    /// Command that produced the file.
    pub command: String,
}

/// One layer's weights, row-major `(inputs, outputs)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerWeights {
    /// Weights, `inputs * outputs` values, row-major.
    pub w: Vec<f32>,
    /// Biases, `outputs` values.
    pub b: Vec<f32>,
}

/// The weights file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    /// Must be [`FORMAT`].
    pub format: String,
    /// Must be [`VERSION`].
    pub version: u32,
    /// Observation length the actor was trained on; must be [`OBS_DIM`].
    pub obs_dim: usize,
    /// Layer sizes, input first, output (1) last.
    pub layer_sizes: Vec<usize>,
    /// Hidden activation.
    pub hidden_activation: Activation,
    /// Output activation.
    pub output_activation: Activation,
    /// Bid threshold below which a workload waits.
    pub threshold: f32,
    /// Training provenance.
    pub provenance: Provenance,
    /// Weights per layer.
    pub layers: Vec<LayerWeights>,
}

impl ModelFile {
    /// Packs a trained actor.
    pub fn from_actor(actor: &Mlp, threshold: f32, provenance: Provenance) -> Self {
        Self {
            format: FORMAT.into(),
            version: VERSION,
            obs_dim: actor.input_dim(),
            layer_sizes: actor.sizes(),
            hidden_activation: actor.hidden,
            output_activation: actor.output,
            threshold,
            provenance,
            layers: actor
                .layers
                .iter()
                .map(|l| LayerWeights {
                    w: l.w.iter().copied().collect(),
                    b: l.b.to_vec(),
                })
                .collect(),
        }
    }

    /// Parses and validates a model from bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AllocError> {
        let m: Self = serde_json::from_slice(bytes).map_err(AllocError::ModelFormat)?;
        m.validate()?;
        Ok(m)
    }

    /// Reads and validates a model file.
    pub fn load(path: &Path) -> Result<Self, AllocError> {
        let bytes = std::fs::read(path).map_err(|source| AllocError::ModelIo {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes)
    }

    /// The model embedded in the library.
    pub fn embedded() -> Result<Self, AllocError> {
        Self::from_bytes(EMBEDDED)
    }

    /// Writes the model as JSON.
    pub fn save(&self, path: &Path) -> Result<(), AllocError> {
        let json = serde_json::to_vec_pretty(self).map_err(AllocError::ModelFormat)?;
        std::fs::write(path, json).map_err(|source| AllocError::ModelWrite {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Checks header and shapes against this build.
    pub fn validate(&self) -> Result<(), AllocError> {
        let bad = |m: String| Err(AllocError::ModelMismatch(m));
        if self.format != FORMAT {
            return bad(format!("format is {:?}, expected {FORMAT:?}", self.format));
        }
        if self.version != VERSION {
            return bad(format!(
                "version {} is not supported (this build reads version {VERSION})",
                self.version
            ));
        }
        if self.obs_dim != OBS_DIM {
            return bad(format!(
                "observation length {} but this build computes {OBS_DIM}",
                self.obs_dim
            ));
        }
        if self.layer_sizes.len() < 2
            || self.layer_sizes[0] != self.obs_dim
            || self.layer_sizes.last() != Some(&1)
            || self.layer_sizes.iter().any(|&s| s == 0 || s > 4096)
        {
            return bad(format!(
                "layer sizes {:?} do not map {OBS_DIM} inputs to 1 output",
                self.layer_sizes
            ));
        }
        if self.layers.len() + 1 != self.layer_sizes.len() {
            return bad(format!(
                "{} weight layers for {} sizes",
                self.layers.len(),
                self.layer_sizes.len()
            ));
        }
        for (k, l) in self.layers.iter().enumerate() {
            let (i, o) = (self.layer_sizes[k], self.layer_sizes[k + 1]);
            if l.w.len() != i * o || l.b.len() != o {
                return bad(format!(
                    "layer {k}: {} weights and {} biases, expected {} and {o}",
                    l.w.len(),
                    l.b.len(),
                    i * o
                ));
            }
            if l.w.iter().chain(&l.b).any(|v| !v.is_finite()) {
                return bad(format!("layer {k} has a non-finite weight"));
            }
        }
        if !self.threshold.is_finite() {
            return bad("threshold is not finite".into());
        }
        Ok(())
    }

    /// Rebuilds the actor network.
    pub fn actor(&self) -> Result<Mlp, AllocError> {
        self.validate()?;
        let mut layers = Vec::with_capacity(self.layers.len());
        for (k, l) in self.layers.iter().enumerate() {
            let (i, o) = (self.layer_sizes[k], self.layer_sizes[k + 1]);
            let w = Array2::from_shape_vec((i, o), l.w.clone())
                .map_err(|e| AllocError::ModelMismatch(e.to_string()))?;
            layers.push(Dense {
                w,
                b: Array1::from_vec(l.b.clone()),
            });
        }
        Ok(Mlp {
            layers,
            hidden: self.hidden_activation,
            output: self.output_activation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::maddpg::new_actor;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn sample() -> ModelFile {
        let actor = new_actor(OBS_DIM, &[8, 4], &mut ChaCha8Rng::seed_from_u64(0));
        let p = Provenance {
            episodes: 1,
            seed: 0,
            nodes: 2,
            ticks: 1,
            seconds: 0.0,
            command: "test".into(),
        };
        ModelFile::from_actor(&actor, 0.0, p)
    }

    #[test]
    fn round_trips_through_a_file() {
        let m = sample();
        let dir = std::env::temp_dir().join(format!("dwcp-model-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let path = dir.join("m.json");
        m.save(&path).expect("save");
        let back = ModelFile::load(&path).expect("load");
        assert_eq!(back, m);
        assert_eq!(back.actor().expect("actor"), m.actor().expect("actor"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn missing_file_is_a_clear_error() {
        let e = ModelFile::load(Path::new("/nonexistent/dwcp/model.json")).expect_err("missing");
        assert!(matches!(e, AllocError::ModelIo { .. }));
        assert!(e.to_string().contains("/nonexistent/dwcp/model.json"));
    }

    #[test]
    fn truncated_file_is_a_clear_error() {
        let bytes = serde_json::to_vec(&sample()).expect("json");
        for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            let e = ModelFile::from_bytes(&bytes[..cut]).expect_err("truncated");
            assert!(matches!(e, AllocError::ModelFormat(_)), "cut {cut}: {e}");
        }
    }

    #[test]
    fn mismatched_files_are_refused() {
        // A version-1 file (17-value observations, before the contention, consolidation
        // and slack features) and a file from a newer build are both refused by name.
        for version in [VERSION - 1, VERSION + 1] {
            let mut m = sample();
            m.version = version;
            match ModelFile::from_bytes(&serde_json::to_vec(&m).expect("json")) {
                Err(AllocError::ModelMismatch(msg)) => {
                    assert!(msg.contains(&format!("version {version}")), "{msg}")
                }
                other => panic!("version {version} accepted: {other:?}"),
            }
        }
        let mut m = sample();
        m.obs_dim = OBS_DIM + 1;
        assert!(m.validate().is_err());
        let mut m = sample();
        m.layers[0].w.pop();
        assert!(m.validate().is_err());
        let mut m = sample();
        m.format = "other".into();
        assert!(m.validate().is_err());
        let mut m = sample();
        m.layers[1].b[0] = f32::NAN;
        assert!(m.validate().is_err());
    }

    #[test]
    fn embedded_model_is_valid() {
        let m = ModelFile::embedded().expect("embedded model");
        assert_eq!(m.obs_dim, OBS_DIM);
    }
}
