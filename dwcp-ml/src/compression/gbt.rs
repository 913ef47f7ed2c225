//! A small gradient-boosted ensemble of *oblivious* regression trees (squared
//! loss, L2-regularised leaves).
//!
//! Why not a crate: the selector needs a regressor whose prediction fits a 20 µs
//! decision budget for 8 codecs × 3 targets, whose serialised form is ours to
//! version (a model file must stay readable when a dependency changes its serde
//! layout), and which trains in about a second on a few thousand rows of 9 features.
//! `smartcore` offers random forests and CART trees, but its trees are pointer-linked
//! nodes walked with data-dependent branches, a forest needs deep trees for this fit,
//! and its model format is its own serde layout. Oblivious trees (one split per
//! level, as in CatBoost) give all three properties in about 250 lines: a tree is
//! `depth` independent comparisons whose bits form the leaf index, so prediction is
//! branch-free and the comparisons of one tree run in parallel; the file is three flat
//! arrays; training is a quantile-binned scan per level. Boosted trees also suit the
//! targets: ratio and speed are thresholded, monotone-ish functions of entropy and the
//! LZ4 probe (incompressible input switches zstd to raw blocks, for instance), which
//! trees capture and linear models do not.

use serde::{Deserialize, Serialize};

/// A boosted ensemble of oblivious trees of one fixed depth: `base + sum(tree(x))`.
///
/// Tree `t` owns entries `t * depth ..` of `feature`/`threshold` (one split per
/// level) and leaves `t * 2^depth ..` of `leaf`. Its leaf index has bit `l` set
/// when `x[feature[l]] > threshold[l]`. A level that did not split has threshold
/// `f32::MAX`, so every finite value sends its bit to 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ensemble {
    /// Depth of every tree.
    pub depth: u8,
    /// The initial prediction (mean of the training target).
    pub base: f32,
    /// Number of trees.
    pub trees: usize,
    /// Feature index per level, `trees × depth` entries.
    pub feature: Vec<u8>,
    /// Threshold per level, same layout as `feature`.
    pub threshold: Vec<f32>,
    /// Leaf values (learning rate already applied), `trees × 2^depth` entries.
    pub leaf: Vec<f32>,
}

/// Why an ensemble read from a file cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnsembleError {
    /// Depth outside 1..=8.
    #[error("tree depth {0} outside 1..=8")]
    Depth(u8),
    /// Array sizes do not match depth and tree count.
    #[error("ensemble arrays do not match {trees} trees of depth {depth}")]
    Shape {
        /// Declared trees.
        trees: usize,
        /// Declared depth.
        depth: u8,
    },
    /// A feature index is out of range.
    #[error("split {split} uses feature {feature}, the model has {count}")]
    Feature {
        /// Split index.
        split: usize,
        /// The bad feature index.
        feature: u8,
        /// Number of features.
        count: usize,
    },
    /// A leaf, threshold or the base is not a number.
    #[error("non-finite value in the ensemble")]
    NonFinite,
}

impl Ensemble {
    /// Checks the arrays are consistent, so [`Ensemble::predict`] cannot index out
    /// of bounds for inputs of `feature_count` values.
    pub fn validate(&self, feature_count: usize) -> Result<(), EnsembleError> {
        if !(1..=8).contains(&self.depth) {
            return Err(EnsembleError::Depth(self.depth));
        }
        if !self.base.is_finite() {
            return Err(EnsembleError::NonFinite);
        }
        let d = usize::from(self.depth);
        let shape_ok = self
            .trees
            .checked_mul(1 << d)
            .is_some_and(|n| self.leaf.len() == n)
            && self
                .trees
                .checked_mul(d)
                .is_some_and(|n| self.feature.len() == n && self.threshold.len() == n);
        if !shape_ok {
            return Err(EnsembleError::Shape {
                trees: self.trees,
                depth: self.depth,
            });
        }
        if let Some((split, &f)) = self
            .feature
            .iter()
            .enumerate()
            .find(|(_, &f)| usize::from(f) >= feature_count)
        {
            return Err(EnsembleError::Feature {
                split,
                feature: f,
                count: feature_count,
            });
        }
        if self.leaf.iter().any(|v| !v.is_finite()) || self.threshold.iter().any(|v| v.is_nan()) {
            return Err(EnsembleError::NonFinite);
        }
        Ok(())
    }

    /// Predicts the target for `x`: the reference evaluation (the selector evaluates
    /// all its ensembles at once, bit for bit equal, through
    /// [`super::forest::Forest`]). The ensemble must have passed
    /// [`Ensemble::validate`] for `x.len()` features (an out-of-range feature index
    /// would panic; validation rules it out).
    pub fn predict(&self, x: &[f32]) -> f32 {
        let d = usize::from(self.depth);
        let mut sum = self.base;
        let splits = self
            .feature
            .chunks_exact(d)
            .zip(self.threshold.chunks_exact(d));
        for ((feature, threshold), leaf) in splits.zip(self.leaf.chunks_exact(1 << d)) {
            let mut idx = 0usize;
            for l in 0..d {
                idx |= usize::from(x[usize::from(feature[l])] > threshold[l]) << l;
            }
            sum += leaf[idx];
        }
        sum
    }
}

/// Training parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BoostParams {
    /// Number of trees.
    pub trees: usize,
    /// Depth of every tree.
    pub depth: u8,
    /// Shrinkage applied to every tree.
    pub learning_rate: f32,
    /// L2 regularisation of leaf values: a leaf's value is `sum / (count + l2)`.
    pub l2: f32,
    /// Number of quantile bins per feature for split search (2..=256; values
    /// outside are clamped, so a feature has at most 255 thresholds).
    pub bins: usize,
}

impl Default for BoostParams {
    fn default() -> Self {
        BoostParams {
            trees: 48,
            depth: 4,
            learning_rate: 0.15,
            l2: 4.0,
            bins: 48,
        }
    }
}

/// Candidate thresholds per feature: distinct quantiles of the training values.
fn quantile_thresholds(rows: &[Vec<f32>], feature: usize, bins: usize) -> Vec<f32> {
    let mut v: Vec<f32> = rows
        .iter()
        .map(|r| r[feature])
        .filter(|x| x.is_finite())
        .collect();
    v.sort_by(f32::total_cmp);
    let mut out = Vec::with_capacity(bins);
    if v.is_empty() {
        return out;
    }
    for b in 1..bins {
        let x = v[(b * (v.len() - 1)) / bins];
        if out.last() != Some(&x) {
            out.push(x);
        }
    }
    out
}

/// Fits an ensemble to `rows` (feature vectors) and `target` by gradient boosting
/// with squared loss. Deterministic: the same data gives the same model.
pub fn fit(rows: &[Vec<f32>], target: &[f32], params: &BoostParams) -> Ensemble {
    let n = rows.len().min(target.len());
    let features = rows.first().map_or(0, Vec::len);
    let base = if n == 0 {
        0.0
    } else {
        (target[..n].iter().map(|&y| f64::from(y)).sum::<f64>() / n as f64) as f32
    };
    let depth = params.depth.clamp(1, 8);
    let d = usize::from(depth);
    let mut model = Ensemble {
        depth,
        base,
        trees: 0,
        feature: Vec::with_capacity(params.trees * d),
        threshold: Vec::with_capacity(params.trees * d),
        leaf: Vec::with_capacity(params.trees << d),
    };
    if n == 0 || features == 0 {
        return model;
    }
    let l2 = f64::from(params.l2.max(0.0));
    let thresholds: Vec<Vec<f32>> = (0..features)
        .map(|f| quantile_thresholds(&rows[..n], f, params.bins.clamp(2, 256)))
        .collect();
    // bin[r][f] = number of thresholds strictly below row r's value, so
    // `bin <= b` is exactly `value <= thresholds[f][b]`.
    let bin: Vec<Vec<u16>> = rows[..n]
        .iter()
        .map(|r| {
            (0..features)
                .map(|f| thresholds[f].partition_point(|&t| t < r[f]) as u16)
                .collect()
        })
        .collect();
    let mut pred = vec![base; n];
    let mut node = vec![0usize; n];
    for _ in 0..params.trees {
        let resid: Vec<f64> = (0..n).map(|i| f64::from(target[i] - pred[i])).collect();
        node.iter_mut().for_each(|v| *v = 0);
        let mut feature = vec![0u8; d];
        let mut threshold = vec![f32::MAX; d];
        for level in 0..d {
            let nodes = 1usize << level;
            let mut node_sum = vec![0f64; nodes];
            let mut node_cnt = vec![0f64; nodes];
            for i in 0..n {
                node_sum[node[i]] += resid[i];
                node_cnt[node[i]] += 1.0;
            }
            let parent: f64 = (0..nodes)
                .map(|k| node_sum[k] * node_sum[k] / (node_cnt[k] + l2))
                .sum();
            let mut best: Option<(f64, usize, usize)> = None;
            for (f, th) in thresholds.iter().enumerate() {
                if th.is_empty() {
                    continue;
                }
                let bins = th.len() + 1;
                let mut sum = vec![0f64; nodes * bins];
                let mut cnt = vec![0f64; nodes * bins];
                for i in 0..n {
                    let k = node[i] * bins + usize::from(bin[i][f]);
                    sum[k] += resid[i];
                    cnt[k] += 1.0;
                }
                let mut ls = vec![0f64; nodes];
                let mut lc = vec![0f64; nodes];
                for b in 0..th.len() {
                    let mut gain = -parent;
                    for k in 0..nodes {
                        ls[k] += sum[k * bins + b];
                        lc[k] += cnt[k * bins + b];
                        let (rs, rc) = (node_sum[k] - ls[k], node_cnt[k] - lc[k]);
                        gain += ls[k] * ls[k] / (lc[k] + l2) + rs * rs / (rc + l2);
                    }
                    if gain > 1e-12 && best.is_none_or(|(g, _, _)| gain > g) {
                        best = Some((gain, f, b));
                    }
                }
            }
            if let Some((_, f, b)) = best {
                feature[level] = f as u8;
                threshold[level] = thresholds[f][b];
                for i in 0..n {
                    node[i] |= usize::from(usize::from(bin[i][f]) > b) << level;
                }
            }
        }
        let mut leaf_sum = vec![0f64; 1 << d];
        let mut leaf_cnt = vec![0f64; 1 << d];
        for i in 0..n {
            leaf_sum[node[i]] += resid[i];
            leaf_cnt[node[i]] += 1.0;
        }
        let lr = f64::from(params.learning_rate);
        let leaf: Vec<f32> = (0..1usize << d)
            .map(|k| (lr * leaf_sum[k] / (leaf_cnt[k] + l2.max(1e-9))) as f32)
            .collect();
        for i in 0..n {
            pred[i] += leaf[node[i]];
        }
        model.feature.extend_from_slice(&feature);
        model.threshold.extend_from_slice(&threshold);
        model.leaf.extend_from_slice(&leaf);
        model.trees += 1;
    }
    model
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_a_step_and_a_slope() {
        let rows: Vec<Vec<f32>> = (0..400)
            .map(|i| vec![i as f32 / 400.0, ((i * 7) % 13) as f32])
            .collect();
        let target: Vec<f32> = rows
            .iter()
            .map(|r| if r[0] > 0.5 { 3.0 } else { 1.0 } + r[0])
            .collect();
        let m = fit(&rows, &target, &BoostParams::default());
        m.validate(2).expect("valid");
        let m3 = fit(
            &rows,
            &target,
            &BoostParams {
                depth: 3,
                ..BoostParams::default()
            },
        );
        let mse3: f32 = rows
            .iter()
            .zip(&target)
            .map(|(r, y)| (m3.predict(r) - y).powi(2))
            .sum::<f32>()
            / rows.len() as f32;
        assert!(mse3 < 0.02, "depth-3 mse {mse3}");
        let mse: f32 = rows
            .iter()
            .zip(&target)
            .map(|(r, y)| (m.predict(r) - y).powi(2))
            .sum::<f32>()
            / rows.len() as f32;
        assert!(mse < 0.01, "mse {mse}");
        let json = serde_json::to_string(&m).expect("json");
        let back: Ensemble = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.predict(&rows[3]), m.predict(&rows[3]));
    }

    #[test]
    fn validate_rejects_bad_shapes() {
        let mut m = fit(
            &[vec![0.0], vec![1.0]],
            &[0.0, 1.0],
            &BoostParams::default(),
        );
        assert!(m.validate(1).is_ok());
        m.feature[0] = 5;
        assert!(matches!(m.validate(1), Err(EnsembleError::Feature { .. })));
        m.feature[0] = 0;
        m.leaf.pop();
        assert!(matches!(m.validate(1), Err(EnsembleError::Shape { .. })));
        m.leaf.push(f32::NAN);
        assert_eq!(m.validate(1), Err(EnsembleError::NonFinite));
        m.depth = 0;
        assert_eq!(m.validate(1), Err(EnsembleError::Depth(0)));
    }

    #[test]
    fn empty_training_set_gives_a_constant() {
        let m = fit(&[], &[], &BoostParams::default());
        assert_eq!(m.predict(&[]), 0.0);
    }
}
