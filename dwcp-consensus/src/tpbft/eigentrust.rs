//! EigenTrust global trust (S. Kamvar, M. Schlosser, H. Garcia-Molina, "The
//! EigenTrust Algorithm for Reputation Management in P2P Networks", WWW 2003), in
//! deterministic fixed point, so that every honest node derives bit-identical scores
//! from the same evidence.
//!
//! # The algorithm
//!
//! - Local trust: `s_ij = sat(i, j) − unsat(i, j)`, from the interactions `i`
//!   recorded with `j` ([`LocalTrust`]). A node does not rate itself: `s_ii` is
//!   ignored. A node proven faulty is *excluded*: its column `s_·j` is zero before
//!   normalising and it is left out of the pre-trust, so its global trust is 0.
//! - Normalisation: `c_ij = max(s_ij, 0) / Σ_j max(s_ij, 0)`. `C` is row-stochastic,
//!   so a node cannot inflate others by reporting large raw counts. A row with no
//!   positive entry (the node rated nobody, or nobody well) falls back to the
//!   pre-trust vector: `c_ij = p_j` (the paper's rule).
//! - Pre-trust: `p_j = 1/|P|` for `j` in the pre-trusted set `P` (here the genesis
//!   committee, less excluded nodes), else 0.
//! - Iteration: `t⁽⁰⁾ = p`, `t⁽ᵏ⁺¹⁾ = (1 − a)·Cᵀt⁽ᵏ⁾ + a·p`, for a *fixed* number of
//!   steps `K` ([`TrustParams`]). The paper stops when `‖t⁽ᵏ⁺¹⁾ − t⁽ᵏ⁾‖ < ε`; an `ε`
//!   test lets nodes stop at different steps, so there is none here.
//!
//! # Arithmetic
//!
//! Trust values are [`Trust`]: `u64` scaled by 2⁴⁰ (one unit in the last place,
//! `u = 2⁻⁴⁰ ≈ 9.1e-13`). Products are taken in `u128` and rounded by floor.
//! There are no floats on this path.
//!
//! - `p̂`: `p̂_j = ⌊ONE/|P|⌋` for `j ∈ P`; the remainder `ONE − |P|·⌊ONE/|P|⌋`
//!   (fewer than `|P|` units) goes to the lowest id in `P`, so `Σ p̂ = ONE` exactly.
//! - `Ĉ`: `ĉ_ij = ⌊max(s_ij, 0)·ONE / Σ_j max(s_ij, 0)⌋`: each entry at most one
//!   unit low, so a rated row sums to `ONE − r_i` with `0 ≤ r_i ≤ N − 2`. A fallback
//!   row is `p̂` and sums to `ONE`.
//! - One step: `t'_j = ⌊((ONE − â)·Σ_i ĉ_ij t_i + â·p̂_j·ONE) / ONE²⌋`, a single
//!   floor per component. `Σ_i ĉ_ij t_i` is exact in `u128` (at most `ONE·Σt ≤ 2⁸⁰`),
//!   and the numerator stays below `2¹²¹`.
//!
//! # Bounds
//!
//! - *Convergence.* `Cᵀ` is column-stochastic, so a step contracts the L1 distance to
//!   the fixed point `t*` by `(1 − a)`: `‖t⁽ᴷ⁾ − t*‖₁ ≤ 2(1 − a)ᴷ`
//!   ([`TrustParams::convergence_bound`]); with the defaults `a = 0.15`, `K = 150`,
//!   about `5.2e-11`.
//! - *Mass.* `Σ t̂ ≤ ONE` always, and the deficit `D_k = ONE − Σ t̂⁽ᵏ⁾` (in units)
//!   obeys `D_{k+1} < (1 − â)·D_k + (N − 2) + N` (row floors, then the step's `N`
//!   floors), so `D_K < min(K, 1/â)·2N` units: at most about 2,700 units (2.4e-9)
//!   for `N = 200`.
//! - *Fixed point against exact arithmetic* (same `a`, `P`, `K`). Start:
//!   `‖p̂ − p‖₁ < 2|P|·u`. A step's own error, for `‖x‖₁ ≤ 1`: the rows of `Ĉ − C`
//!   have L1 norm below `N·u` (rated) or `2|P|·u` (fallback), so below `2N·u`;
//!   `|â − a| < u` costs `2u`; `â(p̂ − p)` costs `2aN·u`; the floors `N·u`. So
//!   `d < (3N + 2 + 2aN)·u`, and by the contraction
//!   `‖t̂⁽ᴷ⁾ − t⁽ᴷ⁾‖₁ < 2N·u + d/a`: about `5,000·u ≈ 4.4e-9` for `N = 200`,
//!   `a = 0.15`. The tests assert this against [`reference_global_trust`] (plus one
//!   unit for that reference's own `f64` error, below `(N + 4)·2⁻⁵³/a`).
//!
//! # Cost
//!
//! Normalising is one pass over the recorded pairs; each step is one multiply-add
//! per positive entry of `C` plus `O(N)` for the fallback rows (whose contribution
//! is `p̂_j·Σ_{i fallback} t_i`). Dense `N = 200`, `K = 150` is 6 M multiply-adds:
//! `benches/eigentrust.rs` measures it.

use std::collections::{BTreeMap, BTreeSet};

use dwcp_core::NodeId;
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A trust value in fixed point: the real number `self.0 / 2⁴⁰`.
///
/// Global trust values lie in `[0, 1]` and sum to at most [`Trust::ONE`].
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Trust(pub u64);

impl Trust {
    /// Fractional bits of the fixed-point representation.
    pub const FRAC_BITS: u32 = 40;
    /// Zero trust.
    pub const ZERO: Trust = Trust(0);
    /// The real number 1: `2⁴⁰`.
    pub const ONE: Trust = Trust(1 << Self::FRAC_BITS);
    /// One unit in the last place, `2⁻⁴⁰`, as an `f64` (for reports and tests).
    pub const ULP: f64 = 1.0 / (1u64 << Self::FRAC_BITS) as f64;

    /// `⌊num/den · 2⁴⁰⌋`, or `None` if `den` is 0 or the result does not fit a `u64`.
    pub fn from_ratio(num: u64, den: u64) -> Option<Trust> {
        if den == 0 {
            return None;
        }
        let v = (u128::from(num) << Self::FRAC_BITS) / u128::from(den);
        u64::try_from(v).ok().map(Trust)
    }

    /// The value as an `f64`, for reports and tests; never for consensus.
    pub fn to_f64(self) -> f64 {
        self.0 as f64 * Self::ULP
    }
}

/// The largest number of nodes: node ids are `u16`.
pub const MAX_NODES: usize = 1 << 16;

/// The default teleport weight `a = 0.15`, rounded down to `⌊0.15·2⁴⁰⌋`.
pub const DEFAULT_ALPHA: Trust = Trust(((15u128 << Trust::FRAC_BITS) / 100) as u64);

/// The default number of power-iteration steps.
pub const DEFAULT_ITERATIONS: u32 = 150;

/// Why trust could not be recorded or computed.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum TrustError {
    /// A node id at or past the number of nodes.
    #[error("node {id} is not one of the {n} nodes")]
    UnknownNode {
        /// The offending id.
        id: NodeId,
        /// The number of nodes.
        n: usize,
    },
    /// More nodes than `u16` ids can name.
    #[error("{0} nodes; at most {MAX_NODES} are supported")]
    TooManyNodes(usize),
    /// The pre-trusted set is empty once excluded nodes are removed.
    #[error("no pre-trusted node is left once excluded nodes are removed")]
    NoPreTrust,
    /// The teleport weight is not strictly between 0 and 1.
    #[error("alpha must lie strictly between 0 and 1")]
    InvalidAlpha,
    /// Zero iterations were asked for.
    #[error("at least one iteration is needed")]
    ZeroIterations,
}

/// Parameters of the power iteration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustParams {
    /// The teleport weight `a`, in fixed point: the share of each step that returns
    /// to the pre-trust vector. Must lie strictly between 0 and [`Trust::ONE`].
    pub alpha: Trust,
    /// The fixed number of steps `K` (at least 1).
    pub iterations: u32,
}

impl Default for TrustParams {
    /// `a = 0.15` ([`DEFAULT_ALPHA`]) and `K = 150` ([`DEFAULT_ITERATIONS`]):
    /// `‖t⁽ᴷ⁾ − t*‖₁ ≤ 2(1 − a)ᴷ ≈ 5.2e-11`.
    fn default() -> Self {
        TrustParams {
            alpha: DEFAULT_ALPHA,
            iterations: DEFAULT_ITERATIONS,
        }
    }
}

impl TrustParams {
    /// Checks `0 < a < 1` and `K ≥ 1`.
    pub fn validate(&self) -> Result<(), TrustError> {
        if self.alpha == Trust::ZERO || self.alpha >= Trust::ONE {
            return Err(TrustError::InvalidAlpha);
        }
        if self.iterations == 0 {
            return Err(TrustError::ZeroIterations);
        }
        Ok(())
    }

    /// `2(1 − a)ᴷ`, the L1 distance after `K` steps to the exact fixed point, at
    /// most (for reports; not used by the computation).
    pub fn convergence_bound(&self) -> f64 {
        let k = i32::try_from(self.iterations).unwrap_or(i32::MAX);
        2.0 * (1.0 - self.alpha.to_f64()).powi(k)
    }
}

/// The interactions one node recorded with another.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interactions {
    /// Satisfactory interactions, `sat(i, j)`.
    pub sat: u64,
    /// Unsatisfactory interactions, `unsat(i, j)`.
    pub unsat: u64,
}

impl Interactions {
    /// The local trust `s_ij = sat − unsat` (exact: it may be negative).
    pub fn local(&self) -> i128 {
        i128::from(self.sat) - i128::from(self.unsat)
    }

    /// `max(s_ij, 0)`, the part that normalisation uses.
    pub fn positive(&self) -> u64 {
        self.sat.saturating_sub(self.unsat)
    }
}

/// The local-trust evidence among `N` nodes: `sat(i, j)` and `unsat(i, j)` counts
/// (saturating) and the set of excluded (proven faulty) nodes.
///
/// Stored sparsely, in id order, so two nodes that record the same evidence in any
/// order hold equal values (`==`) and compute the same trust. It serialises as its
/// counts in key order (what T-PBFT's epoch snapshot stores); decoding refuses
/// anything the methods below could not have built, so a value read back is equal
/// (`==`) to the one written and computes bit-identical trust.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "wire::LocalTrustWire", try_from = "wire::LocalTrustWire")]
pub struct LocalTrust {
    n: usize,
    counts: BTreeMap<(NodeId, NodeId), Interactions>,
    excluded: BTreeSet<NodeId>,
}

impl LocalTrust {
    /// No evidence among `n` nodes (ids `0..n`).
    pub fn new(n: usize) -> Result<Self, TrustError> {
        if n > MAX_NODES {
            return Err(TrustError::TooManyNodes(n));
        }
        Ok(LocalTrust {
            n,
            counts: BTreeMap::new(),
            excluded: BTreeSet::new(),
        })
    }

    /// The number of nodes `N`.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether there are no nodes at all.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    fn check(&self, id: NodeId) -> Result<(), TrustError> {
        if id.index() < self.n {
            Ok(())
        } else {
            Err(TrustError::UnknownNode { id, n: self.n })
        }
    }

    /// `i` had one satisfactory interaction with `j`.
    pub fn add_satisfied(&mut self, i: NodeId, j: NodeId) -> Result<(), TrustError> {
        self.add(i, j, 1, 0)
    }

    /// `i` had one unsatisfactory interaction with `j`.
    pub fn add_unsatisfied(&mut self, i: NodeId, j: NodeId) -> Result<(), TrustError> {
        self.add(i, j, 0, 1)
    }

    /// `i` had `sat` satisfactory and `unsat` unsatisfactory interactions with `j`
    /// (added to what is there, saturating). A node's rating of itself is ignored
    /// (nothing is recorded), as is a pair with both counts zero.
    pub fn add(&mut self, i: NodeId, j: NodeId, sat: u64, unsat: u64) -> Result<(), TrustError> {
        self.check(i)?;
        self.check(j)?;
        if i == j || (sat == 0 && unsat == 0) {
            return Ok(());
        }
        let e = self.counts.entry((i, j)).or_default();
        e.sat = e.sat.saturating_add(sat);
        e.unsat = e.unsat.saturating_add(unsat);
        Ok(())
    }

    /// Halves every count (rounding down) and forgets pairs that reach zero:
    /// older evidence weighs half as much as newer, so trust follows what nodes do
    /// now (a turncoat's earlier good record fades) and counts stay bounded.
    pub fn decay(&mut self) {
        self.counts.retain(|_, e| {
            e.sat /= 2;
            e.unsat /= 2;
            e.sat > 0 || e.unsat > 0
        });
    }

    /// What `i` recorded about `j` (zero if nothing).
    pub fn interactions(&self, i: NodeId, j: NodeId) -> Interactions {
        self.counts.get(&(i, j)).copied().unwrap_or_default()
    }

    /// Marks `j` as proven faulty: nobody's rating of `j` counts (`s_·j = 0`) and `j`
    /// is left out of the pre-trust, so its global trust is 0.
    pub fn exclude(&mut self, j: NodeId) -> Result<(), TrustError> {
        self.check(j)?;
        self.excluded.insert(j);
        Ok(())
    }

    /// Whether `j` is excluded.
    pub fn is_excluded(&self, j: NodeId) -> bool {
        self.excluded.contains(&j)
    }

    /// The excluded nodes, in id order.
    pub fn excluded(&self) -> Vec<NodeId> {
        self.excluded.iter().copied().collect()
    }

    /// The pre-trusted set less excluded nodes, deduplicated, in id order.
    fn pre_trusted_set(&self, pre_trusted: &[NodeId]) -> Result<BTreeSet<NodeId>, TrustError> {
        for &id in pre_trusted {
            self.check(id)?;
        }
        let set: BTreeSet<NodeId> = pre_trusted
            .iter()
            .copied()
            .filter(|id| !self.is_excluded(*id))
            .collect();
        if set.is_empty() {
            return Err(TrustError::NoPreTrust);
        }
        Ok(set)
    }

    /// The pre-trust vector `p̂`: uniform over `pre_trusted` less excluded nodes, in
    /// fixed point, summing to exactly [`Trust::ONE`]: each member gets
    /// `⌊ONE/|P|⌋` and the remainder (fewer than `|P|` units) goes to the lowest id.
    /// Duplicates in `pre_trusted` count once.
    pub fn pre_trust(&self, pre_trusted: &[NodeId]) -> Result<Vec<Trust>, TrustError> {
        let set = self.pre_trusted_set(pre_trusted)?;
        let mut p = vec![Trust::ZERO; self.n];
        let size = set.len() as u64;
        let share = Trust::ONE.0 / size;
        let remainder = Trust::ONE.0 - share * size;
        for &id in &set {
            p[id.index()] = Trust(share);
        }
        if let Some(lowest) = set.first() {
            p[lowest.index()].0 += remainder;
        }
        Ok(p)
    }

    /// The normalised matrix `Ĉ` (fixed point, floor), without the fallback rows'
    /// values (which are the pre-trust vector).
    pub fn normalise(&self) -> Normalised {
        let n = self.n;
        let mut row_sum = vec![0u128; n];
        for (&(i, j), e) in &self.counts {
            if !self.is_excluded(j) {
                row_sum[i.index()] += u128::from(e.positive());
            }
        }
        let mut columns: Vec<Vec<(u16, u64)>> = vec![Vec::new(); n];
        for (&(i, j), e) in &self.counts {
            let pos = e.positive();
            let sum = row_sum[i.index()];
            if pos == 0 || sum == 0 || self.is_excluded(j) {
                continue;
            }
            // pos ≤ sum, so the quotient is at most ONE and fits a u64.
            let c = (u128::from(pos) << Trust::FRAC_BITS) / sum;
            let c = u64::try_from(c).unwrap_or(Trust::ONE.0);
            if c > 0 {
                columns[j.index()].push((i.0, c));
            }
        }
        let mut col_start = Vec::with_capacity(n + 1);
        let mut rows = Vec::new();
        let mut values = Vec::new();
        col_start.push(0);
        for col in columns {
            for (i, c) in col {
                rows.push(i);
                values.push(c);
            }
            col_start.push(rows.len());
        }
        Normalised {
            fallback: row_sum.iter().map(|s| *s == 0).collect(),
            col_start,
            rows,
            values,
        }
    }

    /// Global trust `t̂⁽ᴷ⁾` (one value per node, indexed by id), with the pre-trust
    /// uniform over `pre_trusted` (less excluded nodes).
    pub fn global_trust(
        &self,
        pre_trusted: &[NodeId],
        params: &TrustParams,
    ) -> Result<Vec<Trust>, TrustError> {
        params.validate()?;
        let p = self.pre_trust(pre_trusted)?;
        Ok(self.normalise().iterate(&p, params))
    }
}

/// The normalised local-trust matrix `Ĉ`, stored by column (`Cᵀ` by row), with the
/// rows that fall back to the pre-trust vector marked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Normalised {
    /// Row `i` has no positive entry and falls back to `p`.
    fallback: Vec<bool>,
    /// Column `j`'s entries are `rows[col_start[j]..col_start[j + 1]]`.
    col_start: Vec<usize>,
    rows: Vec<u16>,
    values: Vec<u64>,
}

impl Normalised {
    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.fallback.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.fallback.is_empty()
    }

    /// Whether row `i` has no positive entry and so falls back to the pre-trust.
    pub fn falls_back(&self, i: NodeId) -> bool {
        self.fallback.get(i.index()).copied().unwrap_or(false)
    }

    /// `ĉ_ij`, or `None` when row `i` falls back to the pre-trust (or an id is out
    /// of range).
    pub fn weight(&self, i: NodeId, j: NodeId) -> Option<Trust> {
        if self.fallback.get(i.index()).copied().unwrap_or(true) {
            return None;
        }
        let start = *self.col_start.get(j.index())?;
        let end = *self.col_start.get(j.index() + 1)?;
        let found = self.rows[start..end].binary_search(&i.0).ok();
        Some(found.map_or(Trust::ZERO, |k| Trust(self.values[start + k])))
    }

    /// `K` steps of `t ← ⌊(1 − â)·Ĉᵀt + â·p̂⌋` from `t = p̂`. `p` must have one
    /// entry per node and sum to at most [`Trust::ONE`] (as
    /// [`LocalTrust::pre_trust`] gives), and `params` must be valid.
    fn iterate(&self, p: &[Trust], params: &TrustParams) -> Vec<Trust> {
        let n = self.len();
        let alpha = u128::from(params.alpha.0);
        let keep = u128::from(Trust::ONE.0) - alpha;
        let teleport: Vec<u128> = p
            .iter()
            .map(|pj| (alpha * u128::from(pj.0)) << Trust::FRAC_BITS)
            .collect();
        let fallback_rows: Vec<usize> = (0..n).filter(|&i| self.fallback[i]).collect();
        let mut t: Vec<u64> = p.iter().map(|x| x.0).collect();
        let mut next = vec![0u64; n];
        for _ in 0..params.iterations {
            let z: u128 = fallback_rows.iter().map(|&i| u128::from(t[i])).sum();
            for (j, out) in next.iter_mut().enumerate() {
                let (start, end) = (self.col_start[j], self.col_start[j + 1]);
                let acc = u128::from(p[j].0) * z
                    + dot(&self.rows[start..end], &self.values[start..end], &t);
                // acc ≤ ONE·Σt ≤ 2⁸⁰, so keep·acc < 2¹²⁰ and the sum < 2¹²¹.
                let v = (keep * acc + teleport[j]) >> (2 * Trust::FRAC_BITS);
                *out = u64::try_from(v).unwrap_or(u64::MAX);
            }
            std::mem::swap(&mut t, &mut next);
        }
        t.into_iter().map(Trust).collect()
    }
}

/// `Σ_k values[k]·t[rows[k]]`, exact, in four independent sums (the additions of
/// one `u128` sum form a dependency chain; four overlap).
fn dot(rows: &[u16], values: &[u64], t: &[u64]) -> u128 {
    let term = |i: u16, c: u64| u128::from(c) * u128::from(t[usize::from(i)]);
    let mut acc = [0u128; 4];
    let (rows4, values4) = (rows.chunks_exact(4), values.chunks_exact(4));
    let (rows_rest, values_rest) = (rows4.remainder(), values4.remainder());
    for (r, v) in rows4.zip(values4) {
        for k in 0..4 {
            acc[k] += term(r[k], v[k]);
        }
    }
    let rest: u128 = rows_rest
        .iter()
        .zip(values_rest)
        .map(|(&i, &c)| term(i, c))
        .sum();
    acc.iter().sum::<u128>() + rest
}

/// The same algorithm in `f64`, with the exact `p_j = 1/|P|` and `c_ij` as `f64`
/// quotients: the reference the tests hold the fixed-point computation to. It is
/// *not* for consensus: `f64` results may differ across platforms and compilers.
///
/// Dense, `O(K·N²)` time and `O(N²)` memory.
pub fn reference_global_trust(
    local: &LocalTrust,
    pre_trusted: &[NodeId],
    alpha: f64,
    iterations: u32,
) -> Result<Vec<f64>, TrustError> {
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(TrustError::InvalidAlpha);
    }
    let n = local.len();
    let set = local.pre_trusted_set(pre_trusted)?;
    let mut p = vec![0.0f64; n];
    for id in &set {
        p[id.index()] = 1.0 / set.len() as f64;
    }
    let mut c = vec![vec![0.0f64; n]; n];
    let mut row_sum = vec![0u128; n];
    for (&(i, j), e) in &local.counts {
        if !local.is_excluded(j) {
            row_sum[i.index()] += u128::from(e.positive());
            c[i.index()][j.index()] = e.positive() as f64;
        }
    }
    for (row, &sum) in c.iter_mut().zip(&row_sum) {
        if sum == 0 {
            row.clone_from(&p);
        } else {
            let sum = sum as f64;
            row.iter_mut().for_each(|x| *x /= sum);
        }
    }
    let mut t = p.clone();
    for _ in 0..iterations {
        let mut next: Vec<f64> = p.iter().map(|pj| alpha * pj).collect();
        for (ti, row) in t.iter().zip(&c) {
            let w = (1.0 - alpha) * ti;
            for (nj, cij) in next.iter_mut().zip(row) {
                *nj += w * cij;
            }
        }
        t = next;
    }
    Ok(t)
}

mod wire;

#[cfg(test)]
mod tests;
