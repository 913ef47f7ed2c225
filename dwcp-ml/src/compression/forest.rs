//! Several [`Ensemble`]s compiled for prediction together over *binned* features,
//! as CatBoost evaluates oblivious trees.
//!
//! Every split of every tree compares one feature with one threshold. Across the
//! ensembles of one model a feature has few distinct thresholds (they are quantiles
//! of the same training rows), so each input value is replaced once by its *bin*:
//! how many of that feature's thresholds lie below it. A split `x[f] > t` is then
//! exactly `bin[f] > index of t`, a comparison of two bytes. A tree becomes `depth`
//! feature bytes and `depth` bin bytes, and the input's bins fit a
//! 256-byte array indexed by a `u8`, so the per-tree loop has no bounds checks and
//! loads a third of the bytes [`Ensemble::predict`] does. The sums are added in the
//! same order, so predictions are bit-for-bit those of [`Ensemble::predict`].

use super::gbt::Ensemble;

/// Most distinct thresholds one feature may have across a forest's ensembles (bins
/// must fit a byte, and bin 255 is kept for splits that never pass).
pub const MAX_THRESHOLDS_PER_FEATURE: usize = 255;

/// A set of ensembles that predict together, see the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct Forest {
    /// Per feature, its distinct thresholds in ascending order.
    cuts: Vec<Vec<f32>>,
    /// Depth every tree is stored at (the deepest ensemble's; shallower trees are
    /// padded with splits that never pass).
    depth: usize,
    /// Per ensemble: its base value and number of trees, in input order.
    ensembles: Vec<(f32, usize)>,
    /// Per tree, `depth` feature indices.
    features: Vec<u8>,
    /// Per tree, `depth` bin indices: level `l` passes when the bin of feature
    /// `features[l]` is above `bins[l]`.
    bins: Vec<u8>,
    /// Per tree, `2^depth` leaf values.
    leaf: Vec<f32>,
}

/// Why ensembles cannot be compiled into a [`Forest`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ForestError {
    /// A feature has more distinct thresholds than a byte can index.
    #[error("feature {feature} has {count} distinct thresholds, at most {MAX_THRESHOLDS_PER_FEATURE} are supported")]
    TooManyThresholds {
        /// The feature.
        feature: usize,
        /// Its distinct thresholds.
        count: usize,
    },
    /// An ensemble uses a feature at or beyond the declared count, or the count
    /// exceeds what a `u8` feature index can name.
    #[error("an ensemble uses feature {feature}, the forest has {count}")]
    Feature {
        /// The feature index.
        feature: usize,
        /// The declared feature count.
        count: usize,
    },
    /// An ensemble's arrays do not match its depth and tree count, or its depth
    /// is outside 1..=8 (run [`Ensemble::validate`] first).
    #[error("an ensemble's arrays do not match its depth and tree count")]
    Shape,
}

/// A split that never passes: no bin exceeds 255.
const NEVER: u8 = u8::MAX;

impl Forest {
    /// Compiles `ensembles` over inputs of `feature_count` values.
    pub fn new(ensembles: &[&Ensemble], feature_count: usize) -> Result<Self, ForestError> {
        if feature_count > 256 {
            return Err(ForestError::Feature {
                feature: feature_count - 1,
                count: 256,
            });
        }
        let mut cuts = vec![Vec::new(); feature_count];
        let mut depth = 1;
        for e in ensembles {
            let d = usize::from(e.depth);
            let shape_ok = (1..=8).contains(&d)
                && e.feature.len() == e.trees * d
                && e.threshold.len() == e.trees * d
                && e.leaf.len() == e.trees << d;
            if !shape_ok {
                return Err(ForestError::Shape);
            }
            depth = depth.max(d);
            for (&f, &t) in e.feature.iter().zip(&e.threshold) {
                let c = cuts.get_mut(usize::from(f)).ok_or(ForestError::Feature {
                    feature: usize::from(f),
                    count: feature_count,
                })?;
                c.push(t);
            }
        }
        for (feature, c) in cuts.iter_mut().enumerate() {
            c.sort_by(f32::total_cmp);
            c.dedup_by(|a, b| a.total_cmp(b).is_eq());
            if c.len() > MAX_THRESHOLDS_PER_FEATURE {
                return Err(ForestError::TooManyThresholds {
                    feature,
                    count: c.len(),
                });
            }
        }
        let trees: usize = ensembles.iter().map(|e| e.trees).sum();
        let mut features = Vec::with_capacity(trees * depth);
        let mut bins = Vec::with_capacity(trees * depth);
        let mut leaf = Vec::with_capacity(trees << depth);
        for e in ensembles {
            let d = usize::from(e.depth);
            let tree_splits = e.feature.chunks_exact(d).zip(e.threshold.chunks_exact(d));
            for ((fs, thresholds), leaves) in tree_splits.zip(e.leaf.chunks_exact(1 << d)) {
                features.extend_from_slice(fs);
                features.resize(features.len() + depth - d, 0);
                for (&f, &t) in fs.iter().zip(thresholds) {
                    let c = &cuts[usize::from(f)];
                    // Present by construction; the index is below 255.
                    let at = c.partition_point(|&x| x.total_cmp(&t).is_lt());
                    bins.push(at as u8);
                }
                bins.resize(bins.len() + depth - d, NEVER);
                // Padded levels never set their bit, so only the first 2^d leaves
                // are reached; fill the rest with copies to keep the layout regular.
                for _ in 0..1 << (depth - d) {
                    leaf.extend_from_slice(leaves);
                }
            }
        }
        Ok(Forest {
            cuts,
            depth,
            ensembles: ensembles.iter().map(|e| (e.base, e.trees)).collect(),
            features,
            bins,
            leaf,
        })
    }

    /// Number of ensembles, the length of [`Forest::predict`]'s output.
    pub fn len(&self) -> usize {
        self.ensembles.len()
    }

    /// Whether the forest has no ensembles.
    pub fn is_empty(&self) -> bool {
        self.ensembles.is_empty()
    }

    /// Writes every ensemble's prediction for `x` into `out` (in the order the
    /// ensembles were given; extra entries of `out` are left alone, missing ones
    /// are not computed). Equal to [`Ensemble::predict`] bit for bit; `x` must hold
    /// the forest's feature count of values (missing ones count as NaN).
    pub fn predict(&self, x: &[f32], out: &mut [f32]) {
        // bins[f] = thresholds of f strictly below x[f]; NaN is below nothing, so
        // it falls in bin 0 and passes no split, as `NaN > t` is false.
        let mut bins = [0u8; 256];
        for ((b, c), &v) in bins.iter_mut().zip(&self.cuts).zip(x) {
            *b = c.partition_point(|&t| t < v) as u8;
        }
        match self.depth {
            1 => self.sum_trees::<1, 2>(&bins, out),
            2 => self.sum_trees::<2, 4>(&bins, out),
            3 => self.sum_trees::<3, 8>(&bins, out),
            4 => self.sum_trees::<4, 16>(&bins, out),
            5 => self.sum_trees::<5, 32>(&bins, out),
            6 => self.sum_trees::<6, 64>(&bins, out),
            7 => self.sum_trees::<7, 128>(&bins, out),
            _ => self.sum_trees::<8, 256>(&bins, out),
        }
    }

    /// Sums trees of depth `D` with `L = 2^D` leaves (fixed sizes, so the loop
    /// has no bounds checks: bins are indexed by `u8`, leaves by a masked index).
    fn sum_trees<const D: usize, const L: usize>(&self, x_bins: &[u8; 256], out: &mut [f32]) {
        let (features, _) = self.features.as_chunks::<D>();
        let (bins, _) = self.bins.as_chunks::<D>();
        let (leaves, _) = self.leaf.as_chunks::<L>();
        let mut start = 0;
        for (o, &(base, n)) in out.iter_mut().zip(&self.ensembles) {
            let end = start + n;
            let trees = features[start..end]
                .iter()
                .zip(&bins[start..end])
                .zip(&leaves[start..end]);
            start = end;
            let mut sum = base;
            for ((f, b), leaf) in trees {
                let mut idx = 0usize;
                for l in 0..D {
                    idx |= usize::from(x_bins[usize::from(f[l])] > b[l]) << l;
                }
                sum += leaf[idx & (L - 1)];
            }
            *o = sum;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression::gbt::{fit, BoostParams};
    use proptest::prelude::*;

    fn rows(n: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut s = seed;
        let mut next = move || {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (s >> 40) as f32 / (1u64 << 24) as f32
        };
        (0..n).map(|_| (0..3).map(|_| next()).collect()).collect()
    }

    fn ensembles() -> Vec<Ensemble> {
        let r = rows(300, 7);
        let t1: Vec<f32> = r
            .iter()
            .map(|x| x[0] * 2.0 + (x[1] > 0.3) as u8 as f32)
            .collect();
        let t2: Vec<f32> = r.iter().map(|x| x[2] * x[1]).collect();
        vec![
            fit(&r, &t1, &BoostParams::default()),
            fit(
                &r,
                &t2,
                &BoostParams {
                    depth: 2,
                    trees: 9,
                    ..BoostParams::default()
                },
            ),
            fit(
                &r,
                &t1,
                &BoostParams {
                    depth: 6,
                    trees: 5,
                    ..BoostParams::default()
                },
            ),
        ]
    }

    proptest! {
        #[test]
        fn forest_equals_the_ensembles_bit_for_bit(
            x in prop::collection::vec(
                prop_oneof![
                    -1.0f32..2.0,
                    Just(f32::NAN),
                    Just(f32::INFINITY),
                    Just(f32::NEG_INFINITY),
                    Just(f32::MAX),
                ],
                3,
            ),
        ) {
            let es = ensembles();
            let refs: Vec<&Ensemble> = es.iter().collect();
            let forest = Forest::new(&refs, 3).expect("compiles");
            let mut out = [0f32; 3];
            forest.predict(&x, &mut out);
            for (o, e) in out.iter().zip(&es) {
                prop_assert_eq!(o.to_bits(), e.predict(&x).to_bits());
            }
        }
    }

    #[test]
    fn training_thresholds_are_exact_bin_edges() {
        // Inputs equal to a threshold must go left, as `x > t` is false.
        let es = ensembles();
        let refs: Vec<&Ensemble> = es.iter().collect();
        let forest = Forest::new(&refs, 3).expect("compiles");
        let mut out = [0f32; 3];
        for e in &es {
            for (&f, &t) in e.feature.iter().zip(&e.threshold) {
                let mut x = vec![0.5f32; 3];
                x[usize::from(f)] = t;
                forest.predict(&x, &mut out);
                for (o, e) in out.iter().zip(&es) {
                    assert_eq!(o.to_bits(), e.predict(&x).to_bits());
                }
            }
        }
        assert_eq!(forest.len(), 3);
    }

    #[test]
    fn bad_inputs_are_refused() {
        let es = ensembles();
        assert!(matches!(
            Forest::new(&[&es[0]], 1),
            Err(ForestError::Feature { count: 1, .. })
        ));
        let mut broken = es[0].clone();
        broken.leaf.pop();
        assert_eq!(Forest::new(&[&broken], 3), Err(ForestError::Shape));
        let mut many = es[1].clone();
        many.trees = 300;
        many.feature = vec![0; 600];
        many.threshold = (0..600).map(|i| i as f32).collect();
        many.leaf = vec![0.0; 1200];
        assert_eq!(
            Forest::new(&[&many], 3),
            Err(ForestError::TooManyThresholds {
                feature: 0,
                count: 600
            })
        );
        assert!(Forest::new(&[], 3).expect("empty forest").is_empty());
    }
}
