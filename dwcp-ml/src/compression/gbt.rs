//! A small gradient-boosted regression-tree ensemble (squared loss, fixed-depth trees).
//!
//! Why not a crate: the selector needs a regressor whose prediction is a few hundred
//! comparisons (the decision budget is 20 µs for 8 codecs × 3 targets), whose
//! serialised form is ours to version (a model file must stay readable when a
//! dependency changes its serde layout), and which trains in seconds on a few
//! thousand rows with 9 features. Complete fixed-depth trees give all three in about
//! 200 lines: prediction is `depth` branch-free steps per tree, the file is flat
//! arrays, and training uses quantile-binned split search. Boosted trees also fit the
//! targets here well: compression ratio and speed are monotone-ish, thresholded
//! functions of entropy and the LZ4 probe (incompressible data switches zstd to its
//! raw-block path, for instance), which trees capture and linear models do not.
//! A random forest (e.g. `smartcore`) would be the other natural choice; it needs
//! deeper trees for the same fit, and so more nodes to store and walk.

use serde::{Deserialize, Serialize};

/// One complete binary tree of fixed depth, stored breadth-first.
///
/// Internal node `i` sends `x` right when `x[feature[i]] > threshold[i]`, i.e. to
/// child `2i + 2`, else left to `2i + 1`. A node that did not split has threshold
/// `f32::MAX`, so every finite value goes left (and both subtrees carry the same leaf values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    /// Feature index per internal node (`2^depth - 1` entries).
    pub feature: Vec<u8>,
    /// Threshold per internal node.
    pub threshold: Vec<f32>,
    /// Leaf values (`2^depth` entries), learning rate already applied.
    pub leaf: Vec<f32>,
}

/// A boosted ensemble: `base + sum(tree(x))`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ensemble {
    /// Depth of every tree.
    pub depth: u8,
    /// The initial prediction (mean of the training target).
    pub base: f32,
    /// The trees.
    pub trees: Vec<Tree>,
}

/// Why an ensemble read from a file cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnsembleError {
    /// Depth outside 1..=8.
    #[error("tree depth {0} outside 1..=8")]
    Depth(u8),
    /// Array sizes do not match the depth.
    #[error("tree {0} has arrays of the wrong size for its depth")]
    Shape(usize),
    /// A feature index is out of range.
    #[error("tree {tree} uses feature {feature}, the model has {count}")]
    Feature {
        /// Tree index.
        tree: usize,
        /// The bad feature index.
        feature: u8,
        /// Number of features.
        count: usize,
    },
    /// A leaf or the base is not finite.
    #[error("non-finite value in the ensemble")]
    NonFinite,
}

impl Ensemble {
    /// Checks the arrays are consistent, so [`Ensemble::predict`] cannot index out of bounds.
    pub fn validate(&self, feature_count: usize) -> Result<(), EnsembleError> {
        if !(1..=8).contains(&self.depth) {
            return Err(EnsembleError::Depth(self.depth));
        }
        if !self.base.is_finite() {
            return Err(EnsembleError::NonFinite);
        }
        let internal = (1usize << self.depth) - 1;
        for (i, t) in self.trees.iter().enumerate() {
            if t.feature.len() != internal
                || t.threshold.len() != internal
                || t.leaf.len() != internal + 1
            {
                return Err(EnsembleError::Shape(i));
            }
            if let Some(&f) = t.feature.iter().find(|&&f| usize::from(f) >= feature_count) {
                return Err(EnsembleError::Feature {
                    tree: i,
                    feature: f,
                    count: feature_count,
                });
            }
            if t.leaf.iter().any(|v| !v.is_finite()) || t.threshold.iter().any(|v| v.is_nan()) {
                return Err(EnsembleError::NonFinite);
            }
        }
        Ok(())
    }

    /// Predicts the target for `x`. The ensemble must have passed [`Ensemble::validate`]
    /// for `x.len()` features.
    pub fn predict(&self, x: &[f32]) -> f32 {
        let internal = (1usize << self.depth) - 1;
        let mut sum = self.base;
        for t in &self.trees {
            let mut i = 0usize;
            for _ in 0..self.depth {
                let go_right = x[usize::from(t.feature[i])] > t.threshold[i];
                i = 2 * i + 1 + usize::from(go_right);
            }
            sum += t.leaf[i - internal];
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
    /// Smallest number of rows in a leaf.
    pub min_leaf: usize,
    /// Number of quantile bins per feature for split search.
    pub bins: usize,
}

impl Default for BoostParams {
    fn default() -> Self {
        BoostParams {
            trees: 48,
            depth: 3,
            learning_rate: 0.15,
            min_leaf: 8,
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
    if n == 0 || features == 0 {
        return Ensemble {
            depth,
            base,
            trees: Vec::new(),
        };
    }
    let thresholds: Vec<Vec<f32>> = (0..features)
        .map(|f| quantile_thresholds(&rows[..n], f, params.bins.max(2)))
        .collect();
    // bin[r][f] = number of thresholds strictly below row r's value = the bin index.
    let bin: Vec<Vec<u16>> = rows[..n]
        .iter()
        .map(|r| {
            (0..features)
                .map(|f| thresholds[f].partition_point(|&t| t < r[f]) as u16)
                .collect()
        })
        .collect();
    let mut pred = vec![base; n];
    let mut trees = Vec::with_capacity(params.trees);
    let internal = (1usize << depth) - 1;
    for _ in 0..params.trees {
        let resid: Vec<f32> = (0..n).map(|i| target[i] - pred[i]).collect();
        let mut feature = vec![0u8; internal];
        let mut threshold = vec![f32::MAX; internal];
        // Rows at each node of the current level.
        let mut level: Vec<Vec<usize>> = vec![(0..n).collect()];
        let mut node = 0usize;
        for _ in 0..depth {
            let mut next = Vec::with_capacity(level.len() * 2);
            for rows_here in level {
                let split = best_split(&rows_here, &bin, &resid, &thresholds, params.min_leaf);
                let (left, right) = match split {
                    Some((f, b)) => {
                        feature[node] = f as u8;
                        threshold[node] = thresholds[f][b];
                        rows_here
                            .into_iter()
                            .partition(|&r| usize::from(bin[r][f]) <= b)
                    }
                    None => (rows_here, Vec::new()),
                };
                next.push(left);
                next.push(right);
                node += 1;
            }
            level = next;
        }
        let mut leaf = Vec::with_capacity(internal + 1);
        for rows_here in &level {
            let v = if rows_here.is_empty() {
                0.0
            } else {
                rows_here.iter().map(|&r| resid[r]).sum::<f32>() / rows_here.len() as f32
            };
            leaf.push(v * params.learning_rate);
        }
        // Empty right leaves of unsplit nodes would read 0; give them the sibling's value
        // so a NaN-free but out-of-distribution input still gets a sensible answer.
        for i in (0..leaf.len()).step_by(2) {
            if level[i + 1].is_empty() {
                leaf[i + 1] = leaf[i];
            }
        }
        let tree = Tree {
            feature,
            threshold,
            leaf,
        };
        for (i, p) in pred.iter_mut().enumerate() {
            *p += tree_predict(&tree, depth, &rows[i]);
        }
        trees.push(tree);
    }
    Ensemble { depth, base, trees }
}

fn tree_predict(t: &Tree, depth: u8, x: &[f32]) -> f32 {
    let internal = (1usize << depth) - 1;
    let mut i = 0usize;
    for _ in 0..depth {
        i = 2 * i + 1 + usize::from(x[usize::from(t.feature[i])] > t.threshold[i]);
    }
    t.leaf[i - internal]
}

/// The (feature, bin) split of `rows` that most reduces squared error, if any.
fn best_split(
    rows: &[usize],
    bin: &[Vec<u16>],
    resid: &[f32],
    thresholds: &[Vec<f32>],
    min_leaf: usize,
) -> Option<(usize, usize)> {
    if rows.len() < 2 * min_leaf.max(1) {
        return None;
    }
    let total: f64 = rows.iter().map(|&r| f64::from(resid[r])).sum();
    let count = rows.len() as f64;
    let parent = total * total / count;
    let mut best: Option<(f64, usize, usize)> = None;
    for (f, th) in thresholds.iter().enumerate() {
        if th.is_empty() {
            continue;
        }
        let mut sum = vec![0f64; th.len() + 1];
        let mut cnt = vec![0usize; th.len() + 1];
        for &r in rows {
            let b = usize::from(bin[r][f]);
            sum[b] += f64::from(resid[r]);
            cnt[b] += 1;
        }
        let (mut ls, mut lc) = (0f64, 0usize);
        for b in 0..th.len() {
            ls += sum[b];
            lc += cnt[b];
            let rc = rows.len() - lc;
            if lc < min_leaf || rc < min_leaf {
                continue;
            }
            let rs = total - ls;
            let gain = ls * ls / lc as f64 + rs * rs / rc as f64 - parent;
            if gain > 1e-12 && best.is_none_or(|(g, _, _)| gain > g) {
                best = Some((gain, f, b));
            }
        }
    }
    best.map(|(_, f, b)| (f, b))
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
        m.trees[0].feature[0] = 5;
        assert!(matches!(m.validate(1), Err(EnsembleError::Feature { .. })));
        m.trees[0].feature[0] = 0;
        m.trees[0].leaf.pop();
        assert_eq!(m.validate(1), Err(EnsembleError::Shape(0)));
        m.depth = 0;
        assert_eq!(m.validate(1), Err(EnsembleError::Depth(0)));
    }

    #[test]
    fn empty_training_set_gives_a_constant() {
        let m = fit(&[], &[], &BoostParams::default());
        assert_eq!(m.predict(&[]), 0.0);
    }
}
