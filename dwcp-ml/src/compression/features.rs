//! Per-chunk features computed from a bounded sample, and the link a chunk travels on.
//!
//! The sample is at most [`SAMPLE_LEN`] bytes taken as [`SAMPLE_WINDOWS`] evenly
//! spaced windows, so the cost of [`ChunkFeatures::of`] does not grow with the
//! chunk: one histogram pass, one pass comparing every byte with the bytes each
//! distance of [`PERIOD_DISTANCES`] before it, and one LZ match-finding probe over
//! 4 KiB, which also measures how much of the sample repeats with a short period.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};

/// Total bytes sampled from a chunk.
pub const SAMPLE_LEN: usize = 4096;
/// Number of evenly spaced windows the sample is taken from (contiguous 512-byte
/// windows, so matches inside a window stay intact).
///
/// On held-out files, eight windows of 512 bytes led to better decisions than four
/// windows of 1 KiB or eight of 256 bytes (about 1.5 points more decisions within
/// 5% of the best): the probe then sees redundancy between distant parts of a
/// 64 KiB chunk as well as inside each window.
pub const SAMPLE_WINDOWS: usize = 8;
/// Bytes at the start of every 512-byte piece of the sample that the byte
/// histogram (entropy, shares, runs) counts: half the sample, still from every
/// window. Counting all of it costs more and predicts no better.
pub const HISTOGRAM_SPAN: usize = 256;
/// Entries of [`lz_probe`]'s hash table (positions in the sample fit in `u16`).
pub const PROBE_TABLE_LEN: usize = 4096;
/// Distances `d` at which [`ChunkFeatures::period_shares`] counts bytes equal to the
/// byte `d` before them: fixed-width records and short repeats (pairs, RGB triples,
/// 32- and 64-bit words), which change how LZ codecs match and how fast they decode.
pub const PERIOD_DISTANCES: [usize; 4] = [2, 3, 4, 8];
/// Number of values in [`ChunkFeatures::to_vector`].
pub const FEATURE_COUNT: usize = 12;
/// Names of the entries of [`ChunkFeatures::to_vector`], in order (stored in model files
/// so a model trained on other features is refused).
pub const FEATURE_NAMES: [&str; FEATURE_COUNT] = [
    "log2_len",
    "entropy_bits",
    "distinct_share",
    "top_byte_share",
    "repeat_share",
    "lz_probe_ratio",
    "period2_share",
    "period3_share",
    "period4_share",
    "period8_share",
    "overlap_short_share",
    "overlap_mid_share",
];

/// What the selector knows about a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ChunkFeatures {
    /// Length of the whole chunk in bytes.
    pub len: usize,
    /// Order-0 entropy of the sample, bits per byte (0..=8).
    pub entropy_bits: f32,
    /// Distinct byte values in the sample / 256.
    pub distinct_share: f32,
    /// Share of the most frequent byte value.
    pub top_byte_share: f32,
    /// Share of bytes equal to their predecessor (runs).
    pub repeat_share: f32,
    /// Estimated LZ4 block size of the sample / sample size, from
    /// [`lz_probe`] (above 1 for incompressible data).
    pub lz_probe_ratio: f32,
    /// For each of [`PERIOD_DISTANCES`], the share of sampled bytes equal to the byte
    /// that distance before them (pairs within one window of the sample).
    pub period_shares: [f32; PERIOD_DISTANCES.len()],
    /// Share of the sample in LZ matches that repeat with a period in `2..16` (see
    /// [`lz_probe`]): decoders copy such matches in narrow steps, so they are slow
    /// to decode.
    pub overlap_short_share: f32,
    /// The same for periods in `16..32`.
    pub overlap_mid_share: f32,
}

/// `c * log2(c)` for every count a sample can hold.
fn clog2c_table() -> &'static [f32; SAMPLE_LEN + 1] {
    static TABLE: std::sync::OnceLock<Box<[f32; SAMPLE_LEN + 1]>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = Box::new([0f32; SAMPLE_LEN + 1]);
        for (c, v) in t.iter_mut().enumerate().skip(1) {
            *v = (c as f64 * (c as f64).log2()) as f32;
        }
        t
    })
}

thread_local! {
    static SAMPLE: RefCell<(Vec<u8>, [u16; PROBE_TABLE_LEN])> =
        const { RefCell::new((Vec::new(), [0; PROBE_TABLE_LEN])) };
}

fn read_u32(s: &[u8], at: usize) -> u32 {
    let b = &s[at..at + 4];
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn read_u64(s: &[u8], at: usize) -> u64 {
    let b = &s[at..at + 8];
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// What [`lz_probe`] found in a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LzProbe {
    /// Estimated size of the sample as an LZ4 block, in bytes.
    pub packed_len: usize,
    /// Bytes of matches that repeat with a period in `2..16`: matches that overlap
    /// their own output (length above the offset) at such an offset, and long
    /// matches whose own shortest period is one.
    pub overlap_short: usize,
    /// The same for periods in `16..32`.
    pub overlap_mid: usize,
}

/// Matches at least this long that do not overlap their own output are checked for a
/// short period of their own (see [`lz_probe`]).
pub const PERIOD_CHECK_LEN: usize = 64;

/// The smallest period below 32 that all of `region` repeats with, if any (none
/// for regions under 16 bytes). At most 31 eight-byte comparisons find a candidate
/// and `len / 8` confirm it.
fn short_period(region: &[u8]) -> Option<usize> {
    let n = region.len();
    if n < 16 {
        return None;
    }
    let head = read_u64(region, 0);
    let d = (1..32).find(|&d| d + 8 <= n && read_u64(region, d) == head)?;
    let mut at = 0;
    while at + d + 8 <= n {
        if read_u64(region, at) != read_u64(region, at + d) {
            return None;
        }
        at += 8;
    }
    Some(d)
}

/// The greedy single-probe match search LZ4 itself does (4-byte hash, skip
/// acceleration on misses, matches extended 8 bytes at a time), counting tokens,
/// literals and offsets instead of writing them. Its size estimate tracks
/// `lz4_flex`'s real output within a few percent and costs about half as much,
/// which pays for probing twice the bytes. Deterministic: `table` is cleared first
/// and is only scratch space.
///
/// It also counts the bytes of *overlapping* matches by offset. A decoder copies
/// such a match from output it has just written, so it cannot use wide copies:
/// `lz4_flex`'s safe decoder copies it byte by byte (vectorised only when the
/// offset leaves room) and zstd in 8- or 16-byte steps. Repeats of a short period
/// (fixed-width records, padding patterns) therefore often decode several times
/// slower than their size suggests; measured here, zstd stays fast for periods
/// 2, 4, 8, 16 and 32 but not for 3, 5, 6, 10 or 12, which the model learns from
/// these counts together with [`PERIOD_DISTANCES`]. A run of one byte (offset 1)
/// is a fill and is not counted. The sample is made of separate windows, so a
/// periodic region often matches its copy in an earlier window at a long offset,
/// where the codec on the whole chunk would find the period itself; a long match
/// is therefore counted by its own shortest period when it has one below 32,
/// window by window: `data` is taken to be windows of `window` bytes that were
/// not adjacent in the chunk (pass the whole length for contiguous data).
///
/// Inputs longer than 65,536 bytes are probed on their first 65,536 bytes only
/// (positions are kept as `u16`); the selector never probes more than [`SAMPLE_LEN`].
pub fn lz_probe(data: &[u8], window: usize, table: &mut [u16; PROBE_TABLE_LEN]) -> LzProbe {
    let window = window.max(1);
    let s = &data[..data.len().min(1 << 16)];
    let n = s.len();
    let mut probe = LzProbe {
        packed_len: n + 1,
        overlap_short: 0,
        overlap_mid: 0,
    };
    if n < 16 {
        return probe;
    }
    table.fill(0);
    // LZ4 leaves the last bytes as literals; stop searching 12 bytes before the end.
    let end = n - 12;
    let mut i = 1usize;
    let mut lit_start = 0usize;
    let mut out = 0usize;
    let mut skip = 64usize;
    while i < end {
        let v = read_u32(s, i);
        let h = (v.wrapping_mul(2_654_435_761) >> 20) as usize & (PROBE_TABLE_LEN - 1);
        let cand = usize::from(table[h]);
        table[h] = i as u16;
        if cand < i && read_u32(s, cand) == v {
            let mut len = 4usize;
            while i + len + 8 <= n {
                let x = read_u64(s, cand + len) ^ read_u64(s, i + len);
                if x != 0 {
                    len += (x.trailing_zeros() / 8) as usize;
                    break;
                }
                len += 8;
            }
            let lits = i - lit_start;
            // token + offset, plus length extension bytes for long literal runs and matches.
            out += lits + 3 + lits / 255 + len.saturating_sub(19) / 255;
            // Overlapping below an offset of 32, or at least PERIOD_CHECK_LEN long:
            // one test, rarely passed outside periodic data, and the counting is
            // out of line so the loop stays tight.
            let offset = i - cand;
            if len > offset.min(PERIOD_CHECK_LEN - 1) {
                probe.count_periodic(s, i, offset, len, window);
            }
            i += len;
            lit_start = i;
            skip = 64;
        } else {
            i += skip >> 6;
            skip += 1;
        }
    }
    let lits = n - lit_start;
    probe.packed_len = out + lits + 1 + lits / 255;
    probe
}

impl LzProbe {
    /// Counts the match of `len` bytes at `i` with `offset` if it repeats with a
    /// period in `2..32`.
    #[inline(never)]
    fn count_periodic(&mut self, s: &[u8], i: usize, offset: usize, len: usize, window: usize) {
        if offset < 32 {
            if len > offset {
                self.count_period(offset, len);
            }
        } else if len >= PERIOD_CHECK_LEN {
            // Piece by piece: the sample's windows join at arbitrary phases.
            let mut at = i;
            while at < i + len {
                let piece_end = ((at / window + 1) * window).min(i + len);
                if let Some(d) = short_period(&s[at..piece_end]) {
                    self.count_period(d, piece_end - at);
                }
                at = piece_end;
            }
        }
    }

    /// Counts `len` bytes that repeat with period `d` as short (`2..16`) or mid
    /// (`16..32`); a fill (`d == 1`) and longer periods count as neither.
    fn count_period(&mut self, d: usize, len: usize) {
        match d {
            2..16 => self.overlap_short += len,
            16..32 => self.overlap_mid += len,
            _ => {}
        }
    }
}

/// For each of [`PERIOD_DISTANCES`], how many bytes of `sample` equal the byte that
/// distance before them in the same window of the sample, and how many such pairs
/// there are. One pass over each window counts all four distances.
fn period_counts(sample: &[u8]) -> ([u32; 4], [usize; 4]) {
    const D: [usize; 4] = PERIOD_DISTANCES;
    // The main loop starts at the largest distance, which must come last.
    const _: () = assert!(D[0] < D[1] && D[1] < D[2] && D[2] < D[3]);
    const MAX: usize = D[3];
    let mut equal = [0u32; 4];
    let mut pairs = [0usize; 4];
    for w in sample.chunks(SAMPLE_LEN / SAMPLE_WINDOWS) {
        for (k, &d) in D.iter().enumerate() {
            // Pairs whose later byte lies before MAX (none for the largest distance).
            let head = w.len().min(MAX);
            if head > d {
                let (ahead, behind) = (&w[d..head], &w[..head - d]);
                equal[k] += ahead
                    .iter()
                    .zip(behind)
                    .map(|(x, y)| u32::from(x == y))
                    .sum::<u32>();
                pairs[k] += head - d;
            }
        }
        if w.len() <= MAX {
            continue;
        }
        let n = w.len() - MAX;
        pairs.iter_mut().for_each(|p| *p += n);
        // All four comparisons of each byte from MAX on, in blocks of at most 255
        // so that each count fits in (and vectorises as) bytes.
        let at = |d: usize| &w[MAX - d..];
        let (b0, b1, b2, b3) = (at(D[0]), at(D[1]), at(D[2]), at(D[3]));
        for start in (0..n).step_by(255) {
            let end = (start + 255).min(n);
            let x = &w[MAX + start..MAX + end];
            let (mut c0, mut c1, mut c2, mut c3) = (0u8, 0u8, 0u8, 0u8);
            for ((((&v, &p0), &p1), &p2), &p3) in x
                .iter()
                .zip(&b0[start..end])
                .zip(&b1[start..end])
                .zip(&b2[start..end])
                .zip(&b3[start..end])
            {
                c0 += u8::from(v == p0);
                c1 += u8::from(v == p1);
                c2 += u8::from(v == p2);
                c3 += u8::from(v == p3);
            }
            for (e, c) in equal.iter_mut().zip([c0, c1, c2, c3]) {
                *e += u32::from(c);
            }
        }
    }
    (equal, pairs)
}

impl ChunkFeatures {
    /// Computes the features of `chunk` from a bounded sample of it.
    pub fn of(chunk: &[u8]) -> ChunkFeatures {
        SAMPLE.with(|cell| {
            let mut bufs = cell.borrow_mut();
            let (sample, table) = &mut *bufs;
            sample.clear();
            if chunk.len() <= SAMPLE_LEN {
                sample.extend_from_slice(chunk);
            } else {
                let w = SAMPLE_LEN / SAMPLE_WINDOWS;
                let stride = (chunk.len() - w) / (SAMPLE_WINDOWS - 1);
                for i in 0..SAMPLE_WINDOWS {
                    let at = i * stride;
                    sample.extend_from_slice(&chunk[at..at + w]);
                }
            }
            Self::of_sample(chunk.len(), sample, table)
        })
    }

    fn of_sample(len: usize, sample: &[u8], table: &mut [u16; PROBE_TABLE_LEN]) -> ChunkFeatures {
        let n = sample.len();
        if n == 0 {
            return ChunkFeatures {
                len,
                entropy_bits: 0.0,
                distinct_share: 0.0,
                top_byte_share: 0.0,
                repeat_share: 0.0,
                lz_probe_ratio: 1.0,
                period_shares: [0.0; PERIOD_DISTANCES.len()],
                overlap_short_share: 0.0,
                overlap_mid_share: 0.0,
            };
        }
        // Four interleaved histograms: consecutive equal bytes (runs, sparse data)
        // would otherwise serialise on one counter's load-increment-store. 32-bit
        // counters: with 16-bit ones a decision measured 0.7-1 us slower here.
        let mut hists = [[0u32; 256]; 4];
        let mut repeats = 0u32;
        let mut counted = 0usize;
        for piece in sample.chunks(2 * HISTOGRAM_SPAN) {
            let h = &piece[..piece.len().min(HISTOGRAM_SPAN)];
            counted += h.len();
            let mut quads = h.chunks_exact(4);
            for q in &mut quads {
                hists[0][usize::from(q[0])] += 1;
                hists[1][usize::from(q[1])] += 1;
                hists[2][usize::from(q[2])] += 1;
                hists[3][usize::from(q[3])] += 1;
            }
            for &b in quads.remainder() {
                hists[0][usize::from(b)] += 1;
            }
            // map + sum (not filter + count) so the compiler vectorises it.
            repeats += h
                .iter()
                .zip(&h[1..])
                .map(|(a, b)| u32::from(a == b))
                .sum::<u32>();
        }
        let inv = 1.0 / counted as f32;
        // H = log2(n) - sum(c log2 c) / n, with c log2 c from a table (n <= SAMPLE_LEN).
        let clogc = clog2c_table();
        let mut sum_clogc = 0.0f32;
        let mut distinct = 0u32;
        let mut top = 0u32;
        let [h0, h1, h2, h3] = &hists;
        for (((w, x), y), z) in h0.iter().zip(h1).zip(h2).zip(h3) {
            let c = *w + *x + *y + *z;
            sum_clogc += clogc[c as usize];
            distinct += u32::from(c > 0);
            top = top.max(c);
        }
        let entropy = (counted as f32).log2() - sum_clogc * inv;
        let (equal, pairs) = period_counts(sample);
        let mut period_shares = [0f32; PERIOD_DISTANCES.len()];
        for ((share, e), p) in period_shares.iter_mut().zip(equal).zip(pairs) {
            *share = if p == 0 { 0.0 } else { e as f32 / p as f32 };
        }

        let probe = lz_probe(sample, SAMPLE_LEN / SAMPLE_WINDOWS, table);
        let inv_n = 1.0 / n as f32;

        ChunkFeatures {
            len,
            entropy_bits: entropy.clamp(0.0, 8.0),
            distinct_share: distinct as f32 / 256.0,
            top_byte_share: top as f32 * inv,
            repeat_share: repeats as f32 * inv,
            lz_probe_ratio: probe.packed_len as f32 * inv_n,
            period_shares,
            overlap_short_share: probe.overlap_short as f32 * inv_n,
            overlap_mid_share: probe.overlap_mid as f32 * inv_n,
        }
    }

    /// The model's input vector, in the order of [`FEATURE_NAMES`].
    pub fn to_vector(&self) -> [f32; FEATURE_COUNT] {
        [
            ((self.len as f64) + 1.0).log2() as f32,
            self.entropy_bits,
            self.distinct_share,
            self.top_byte_share,
            self.repeat_share,
            self.lz_probe_ratio,
            self.period_shares[0],
            self.period_shares[1],
            self.period_shares[2],
            self.period_shares[3],
            self.overlap_short_share,
            self.overlap_mid_share,
        ]
    }
}

/// The network link and the local CPU a transfer uses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// Bandwidth available to this transfer, bits per second.
    pub bandwidth_bps: f64,
    /// Round-trip time, seconds. It adds the same constant to every codec's time, so
    /// it never changes the choice; it is part of the reported end-to-end estimate.
    #[serde(default)]
    pub rtt_s: f64,
    /// Share of one core available for (de)compression, in (0, 1]; compute times are
    /// divided by it.
    #[serde(default = "full_cpu")]
    pub cpu_share: f64,
}

fn full_cpu() -> f64 {
    1.0
}

/// A link description that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LinkError {
    /// Bandwidth must be finite and positive.
    #[error("bandwidth must be a positive number of bits per second, got {0}")]
    Bandwidth(f64),
    /// RTT must be finite and non-negative.
    #[error("rtt must be a non-negative number of seconds, got {0}")]
    Rtt(f64),
    /// CPU share must lie in (0, 1].
    #[error("cpu share must lie in (0, 1], got {0}")]
    CpuShare(f64),
}

impl Link {
    /// A link with the given bandwidth in megabits per second, zero RTT, a full core.
    pub fn mbps(mbit_per_s: f64) -> Link {
        Link {
            bandwidth_bps: mbit_per_s * 1e6,
            rtt_s: 0.0,
            cpu_share: 1.0,
        }
    }

    /// Checks the values are usable (they may come from an HTTP request).
    pub fn validate(&self) -> Result<(), LinkError> {
        if !(self.bandwidth_bps.is_finite() && self.bandwidth_bps > 0.0) {
            return Err(LinkError::Bandwidth(self.bandwidth_bps));
        }
        if !(self.rtt_s.is_finite() && self.rtt_s >= 0.0) {
            return Err(LinkError::Rtt(self.rtt_s));
        }
        if !(self.cpu_share.is_finite() && self.cpu_share > 0.0 && self.cpu_share <= 1.0) {
            return Err(LinkError::CpuShare(self.cpu_share));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeros_and_random_are_at_the_extremes() {
        let zeros = ChunkFeatures::of(&[0u8; 65536]);
        assert_eq!(zeros.entropy_bits, 0.0);
        assert_eq!(zeros.top_byte_share, 1.0);
        assert_eq!(zeros.period_shares, [1.0; PERIOD_DISTANCES.len()]);
        assert!(zeros.lz_probe_ratio < 0.05);
        let mut x = 0x9e3779b97f4a7c15u64;
        let random: Vec<u8> = (0..65536)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect();
        let r = ChunkFeatures::of(&random);
        assert!(r.entropy_bits > 7.8, "{r:?}");
        assert!(r.lz_probe_ratio > 1.0);
        assert!(r.distinct_share > 0.99);
        assert_eq!(r.len, 65536);
    }

    #[test]
    fn text_and_periods_are_recognised_and_small_chunks_work() {
        let text = b"It was the best of times, it was the worst of times.\n".repeat(40);
        let f = ChunkFeatures::of(&text);
        assert!(f.entropy_bits > 3.0 && f.entropy_bits < 5.0);
        assert!(f.period_shares.iter().all(|&s| s < 0.2), "{f:?}");
        // A repeat of period 3 matches at distance 3 everywhere, at 2, 4 and 8 never.
        let f = ChunkFeatures::of(&b"abc".repeat(10_000));
        assert_eq!(f.period_shares, [0.0, 1.0, 0.0, 0.0]);
        let empty = ChunkFeatures::of(&[]);
        assert_eq!(empty.len, 0);
        let one = ChunkFeatures::of(&[42]);
        assert_eq!(one.to_vector().len(), FEATURE_COUNT);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 128, ..Default::default() })]

        /// The one-pass period counts equal counting each distance on its own.
        #[test]
        fn period_counts_match_a_direct_count(
            sample in proptest::collection::vec(0u8..3, 0..SAMPLE_LEN + 1),
        ) {
            let mut equal = [0u32; 4];
            let mut pairs = [0usize; 4];
            for w in sample.chunks(SAMPLE_LEN / SAMPLE_WINDOWS) {
                for (k, &d) in PERIOD_DISTANCES.iter().enumerate() {
                    for i in d..w.len() {
                        equal[k] += u32::from(w[i] == w[i - d]);
                        pairs[k] += 1;
                    }
                }
            }
            proptest::prop_assert_eq!(period_counts(&sample), (equal, pairs));
        }

        /// Any bytes: every feature finite, every share in [0, 1], the overlap
        /// shares together at most the sample, and the same answer twice.
        #[test]
        fn features_are_bounded_and_deterministic(
            unit in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..40),
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..70_000),
            repeats in 0usize..3000,
        ) {
            // Periodic data, random data, and the two spliced.
            let mut chunk = unit.repeat(repeats);
            chunk.extend_from_slice(&noise);
            let f = ChunkFeatures::of(&chunk);
            proptest::prop_assert_eq!(f, ChunkFeatures::of(&chunk));
            let v = f.to_vector();
            proptest::prop_assert!(v.iter().all(|x| x.is_finite()), "{:?}", f);
            let shares = [
                f.distinct_share,
                f.top_byte_share,
                f.repeat_share,
                f.overlap_short_share,
                f.overlap_mid_share,
                f.overlap_short_share + f.overlap_mid_share,
            ];
            proptest::prop_assert!(
                shares.iter().chain(&f.period_shares).all(|s| (0.0..=1.0).contains(s)),
                "{:?}",
                f
            );
        }

        /// The probe on contiguous data of any window length stays within the input.
        #[test]
        fn probe_counts_stay_within_the_input(
            data in proptest::collection::vec(0u8..4, 0..6000),
            window in 0usize..700,
        ) {
            let mut table = [0u16; PROBE_TABLE_LEN];
            let p = lz_probe(&data, window, &mut table);
            proptest::prop_assert!(p.overlap_short + p.overlap_mid <= data.len());
            proptest::prop_assert!(p.packed_len >= 1);
        }
    }

    #[test]
    fn overlapping_matches_are_counted_by_offset() {
        let periodic = |period: usize| -> Vec<u8> {
            let unit: Vec<u8> = (0..period).map(|i| (i * 37 + 11) as u8).collect();
            unit.repeat(65536 / period + 1)[..65536].to_vec()
        };
        // Short periods: almost every sampled byte is inside an overlapping match.
        for p in [2, 5, 12] {
            let f = ChunkFeatures::of(&periodic(p));
            assert!(f.overlap_short_share > 0.9, "period {p}: {f:?}");
            assert_eq!(f.overlap_mid_share, 0.0, "period {p}");
        }
        let f = ChunkFeatures::of(&periodic(20));
        assert!(f.overlap_mid_share > 0.9, "{f:?}");
        assert_eq!(f.overlap_short_share, 0.0);
        // A long period, a run of one byte (a fill) and prose overlap at no short
        // offset.
        let text = b"It was the best of times, it was the worst of times, it was the age \
            of wisdom, it was the age of foolishness.\n"
            .repeat(600);
        for data in [periodic(100), vec![7u8; 65536], text] {
            let f = ChunkFeatures::of(&data);
            assert!(f.overlap_short_share + f.overlap_mid_share < 0.05, "{f:?}");
        }
    }

    #[test]
    fn probe_tracks_real_lz4_sizes() {
        let mut table = [0u16; PROBE_TABLE_LEN];
        let text = b"It was the best of times, it was the worst of times, it was the age \
            of wisdom, it was the age of foolishness, it was the epoch of belief.\n"
            .repeat(30);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut noisy = text.clone();
        for b in noisy.iter_mut().step_by(7) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        for data in [&text[..4096], &noisy[..4096], &[7u8; 4096][..]] {
            let est = lz_probe(data, data.len(), &mut table).packed_len as f64;
            let real = lz4_flex::block::compress(data).len() as f64;
            assert!(
                (est / real - 1.0).abs() < 0.25,
                "estimate {est}, lz4 {real}"
            );
        }
        assert_eq!(lz_probe(&[1, 2, 3], 3, &mut table).packed_len, 4);
        // Deterministic whatever the table held before.
        let a = lz_probe(&noisy[..4096], 4096, &mut table).packed_len;
        table.iter_mut().for_each(|v| *v = 1234);
        assert_eq!(lz_probe(&noisy[..4096], 4096, &mut table).packed_len, a);
    }

    #[test]
    fn link_validation() {
        assert!(Link::mbps(100.0).validate().is_ok());
        assert!(Link::mbps(0.0).validate().is_err());
        let mut l = Link::mbps(1.0);
        l.cpu_share = 1.5;
        assert_eq!(l.validate(), Err(LinkError::CpuShare(1.5)));
        let parsed: Link = serde_json::from_str(r#"{"bandwidth_bps": 1e9}"#).expect("json");
        assert_eq!(parsed.cpu_share, 1.0);
    }
}
