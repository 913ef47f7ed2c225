//! Several [`Ensemble`]s compiled for prediction together over *binned* features,
//! as CatBoost evaluates oblivious trees.
//!
//! Every split of every tree compares one feature with one threshold. Across the
//! ensembles of one model a feature has few distinct thresholds (they are quantiles
//! of the same training rows), so each input value is replaced once by its *bin*:
//! how many of that feature's thresholds lie below it. A split `x[f] > t` is then
//! exactly `bin[f] > index of t`, a comparison of two bytes.
//!
//! Two ways to evaluate, with the same results:
//!
//! - sixteen trees at a time (see `Lanes`), on x86-64 CPUs with SSE4.2 (x86-64-v2,
//!   detected at run time) and inputs of at most 16 features. `pulp` provides the
//!   byte shuffle and comparison as safe functions behind that detection, so the
//!   workspace keeps `unsafe_code = "forbid"`;
//! - otherwise one tree at a time: `depth` feature bytes and `depth` bin bytes per
//!   tree, the input's bins in a 256-byte array indexed by a `u8`, so the loop has
//!   no bounds checks and loads a third of the bytes [`Ensemble::predict`] does.
//!
//! Both add each ensemble's trees in their order, so predictions are bit for bit
//! those of [`Ensemble::predict`]. For the selector's 896 trees (24 ensembles) a
//! prediction takes about 1.3 µs the first way and 2.3 µs the second, here.

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
    /// The same splits laid out for sixteen trees at a time (see [`Lanes`]), if
    /// there are at most 16 features and the CPU can.
    lanes: Option<Lanes>,
}

/// The splits in groups of sixteen trees, level by level: entry `g * depth + l`
/// holds the feature indices and the bins, top bit flipped (so that a signed byte
/// comparison orders them as unsigned), of level `l` of trees `16 g .. 16 g + 16`.
/// On x86-64-v2 CPUs one byte shuffle (SSSE3) looks up sixteen trees' input bins
/// at once (an input of at most 16 features fits one 16-byte register), one
/// comparison tests them, and only the leaf lookups stay scalar.
///
/// The trees are taken round-robin (every ensemble's first tree, then every
/// second tree, ...), so consecutive trees add to different sums: each sum then
/// waits for its previous addition only every few trees, and still adds its own
/// trees in their order.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
struct Lanes {
    features: Vec<[u8; 16]>,
    bins: Vec<[u8; 16]>,
    /// Per tree, the index of its ensemble.
    owner: Vec<u8>,
    /// Per tree, its `2^depth` leaves.
    leaf: Vec<f32>,
}

/// Whether this CPU evaluates sixteen trees at a time (x86-64-v2).
fn lanes_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    return pulp::x86::V2::is_available();
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
impl Lanes {
    /// Regroups the trees of a forest (`features`, `bins` and `leaf` as in
    /// [`Forest`], trees of `ensembles` one after another).
    fn new(
        ensembles: &[&Ensemble],
        depth: usize,
        features: &[u8],
        bins: &[u8],
        leaf: &[f32],
    ) -> Lanes {
        let mut first = 0;
        let mut starts = Vec::with_capacity(ensembles.len());
        for e in ensembles {
            starts.push(first);
            first += e.trees;
        }
        let rounds = ensembles.iter().map(|e| e.trees).max().unwrap_or(0);
        let order: Vec<(u8, usize)> = (0..rounds)
            .flat_map(|t| {
                ensembles
                    .iter()
                    .zip(&starts)
                    .enumerate()
                    .filter(move |(_, (e, _))| t < e.trees)
                    .map(move |(owner, (_, &start))| (owner as u8, start + t))
            })
            .collect();
        let groups = order.len().div_ceil(16);
        let mut lanes = Lanes {
            features: vec![[0; 16]; groups * depth],
            bins: vec![[NEVER ^ 0x80; 16]; groups * depth],
            owner: Vec::with_capacity(order.len()),
            leaf: Vec::with_capacity(order.len() << depth),
        };
        for (k, &(owner, tree)) in order.iter().enumerate() {
            for l in 0..depth {
                lanes.features[k / 16 * depth + l][k % 16] = features[tree * depth + l];
                lanes.bins[k / 16 * depth + l][k % 16] = bins[tree * depth + l] ^ 0x80;
            }
            lanes.owner.push(owner);
            lanes
                .leaf
                .extend_from_slice(&leaf[tree << depth..(tree + 1) << depth]);
        }
        lanes
    }
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
    /// More ensembles than a forest holds.
    #[error("{0} ensembles, a forest holds at most {MAX_ENSEMBLES}")]
    TooManyEnsembles(usize),
}

/// Most ensembles one forest holds.
pub const MAX_ENSEMBLES: usize = 64;

/// A split that never passes: no bin exceeds 255.
const NEVER: u8 = u8::MAX;

impl Forest {
    /// Compiles `ensembles` over inputs of `feature_count` values.
    pub fn new(ensembles: &[&Ensemble], feature_count: usize) -> Result<Self, ForestError> {
        if ensembles.len() > MAX_ENSEMBLES {
            return Err(ForestError::TooManyEnsembles(ensembles.len()));
        }
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
        let lanes = (feature_count <= 16 && lanes_supported())
            .then(|| Lanes::new(ensembles, depth, &features, &bins, &leaf));
        Ok(Forest {
            cuts,
            depth,
            ensembles: ensembles.iter().map(|e| (e.base, e.trees)).collect(),
            features,
            bins,
            leaf,
            lanes,
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
        self.predict_with(x, out, true);
    }

    /// [`Forest::predict`], with the sixteen-at-a-time path allowed or not (tests
    /// compare both).
    fn predict_with(&self, x: &[f32], out: &mut [f32], use_lanes: bool) {
        // bins[f] = thresholds of f strictly below x[f]; NaN is below nothing, so
        // it falls in bin 0 and passes no split, as `NaN > t` is false.
        let mut bins = [0u8; 256];
        for ((b, c), &v) in bins.iter_mut().zip(&self.cuts).zip(x) {
            *b = c.partition_point(|&t| t < v) as u8;
        }
        #[cfg(target_arch = "x86_64")]
        if let (Some(lanes), Some(simd), true) = (&self.lanes, pulp::x86::V2::try_new(), use_lanes)
        {
            let sums = simd.vectorize(
                #[inline(always)]
                || match self.depth {
                    1 => self.sum_lanes::<2>(simd, lanes, &bins),
                    2 => self.sum_lanes::<4>(simd, lanes, &bins),
                    3 => self.sum_lanes::<8>(simd, lanes, &bins),
                    4 => self.sum_lanes::<16>(simd, lanes, &bins),
                    5 => self.sum_lanes::<32>(simd, lanes, &bins),
                    6 => self.sum_lanes::<64>(simd, lanes, &bins),
                    7 => self.sum_lanes::<128>(simd, lanes, &bins),
                    _ => self.sum_lanes::<256>(simd, lanes, &bins),
                },
            );
            for (o, s) in out.iter_mut().zip(&sums[..self.ensembles.len()]) {
                *o = *s;
            }
            return;
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

    /// Sums the trees sixteen at a time (see [`Lanes`]), with `L = 2^depth`
    /// leaves per tree; returns every ensemble's prediction, each summed in its
    /// trees' order as [`Ensemble::predict`] does.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    fn sum_lanes<const L: usize>(
        &self,
        simd: pulp::x86::V2,
        lanes: &Lanes,
        x_bins: &[u8; 256],
    ) -> [f32; MAX_ENSEMBLES] {
        use std::arch::x86_64::__m128i;
        let mut table = [0u8; 16];
        for (t, b) in table.iter_mut().zip(x_bins) {
            *t = b ^ 0x80;
        }
        let x: __m128i = pulp::cast(table);
        let mut sums = [0f32; MAX_ENSEMBLES];
        for (s, &(base, _)) in sums.iter_mut().zip(&self.ensembles) {
            *s = base;
        }
        let (leaves, _) = lanes.leaf.as_chunks::<L>();
        let groups = lanes
            .features
            .chunks_exact(self.depth)
            .zip(lanes.bins.chunks_exact(self.depth))
            .zip(leaves.chunks(16).zip(lanes.owner.chunks(16)));
        for ((features, bins), (leaves, owners)) in groups {
            let mut idx = simd.sse2._mm_setzero_si128();
            for (l, (f, b)) in features.iter().zip(bins).enumerate() {
                let x_of_tree = simd.ssse3._mm_shuffle_epi8(x, pulp::cast(*f));
                let passes = simd.sse2._mm_cmpgt_epi8(x_of_tree, pulp::cast(*b));
                let bit = simd.sse2._mm_set1_epi8((1u8 << l) as i8);
                idx = simd
                    .sse2
                    ._mm_or_si128(idx, simd.sse2._mm_and_si128(passes, bit));
            }
            let idx: [u8; 16] = pulp::cast(idx);
            for ((leaf, &owner), &i) in leaves.iter().zip(owners).zip(&idx) {
                sums[usize::from(owner) & (MAX_ENSEMBLES - 1)] += leaf[usize::from(i) & (L - 1)];
            }
        }
        sums
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
            for use_lanes in [true, false] {
                let mut out = [0f32; 3];
                forest.predict_with(&x, &mut out, use_lanes);
                for (o, e) in out.iter().zip(&es) {
                    prop_assert_eq!(o.to_bits(), e.predict(&x).to_bits());
                }
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
                for use_lanes in [true, false] {
                    forest.predict_with(&x, &mut out, use_lanes);
                    for (o, e) in out.iter().zip(&es) {
                        assert_eq!(o.to_bits(), e.predict(&x).to_bits());
                    }
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
        let too_many = vec![&es[1]; MAX_ENSEMBLES + 1];
        assert_eq!(
            Forest::new(&too_many, 3),
            Err(ForestError::TooManyEnsembles(MAX_ENSEMBLES + 1))
        );
    }
}
