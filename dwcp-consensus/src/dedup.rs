//! The repeat window every engine applies to its output: a transaction whose digest
//! was output in one of the last `window` sequence numbers is dropped, so a client
//! that submits to several nodes, or retries, sees its transaction once.
//!
//! The window is counted in sequence numbers, not transactions, so every honest node
//! drops exactly the same repeats: what is output at `seq` depends only on the log
//! up to `seq`. A node restarts it from the last `window` entries of its committed
//! log ([`DedupWindow::restore`]).

use dwcp_core::{Committed, Digest, Seq};
use std::collections::{HashMap, HashSet, VecDeque};

/// Digests output in the last `window` sequence numbers.
#[derive(Clone, Debug, Default)]
pub struct DedupWindow {
    window: u64,
    /// Each remembered digest and the sequence number it was output at.
    seen: HashMap<Digest, Seq>,
    /// What each sequence number output, oldest first, to forget it in order.
    log: VecDeque<(Seq, Vec<Digest>)>,
}

impl DedupWindow {
    /// An empty window over the last `window` sequence numbers; 0 remembers nothing
    /// and drops no repeat.
    pub fn new(window: u64) -> DedupWindow {
        DedupWindow {
            window,
            ..DedupWindow::default()
        }
    }

    /// Its length in sequence numbers.
    pub fn window(&self) -> u64 {
        self.window
    }

    /// Whether it drops repeats at all (a window above 0).
    pub fn is_enabled(&self) -> bool {
        self.window > 0
    }

    /// Whether `d` was output within the window.
    pub fn contains(&self, d: &Digest) -> bool {
        self.seen.contains_key(d)
    }

    /// Digests remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// The transactions of `txs` to output: those not output within the window and
    /// not repeating an earlier one of `txs`, in order, with their digests. Nothing
    /// is remembered until [`DedupWindow::record`]. With the window off, all of them
    /// (and digests only if `digests_when_off`).
    pub fn fresh<T: AsRef<[u8]>>(
        &self,
        txs: impl IntoIterator<Item = T>,
        digests_when_off: bool,
    ) -> Fresh<T> {
        let mut out = Fresh {
            transactions: Vec::new(),
            digests: Vec::new(),
            repeats: 0,
        };
        if !self.is_enabled() {
            for tx in txs {
                if digests_when_off {
                    out.digests.push(Digest::of(tx.as_ref()));
                }
                out.transactions.push(tx);
            }
            return out;
        }
        let mut batch = HashSet::new();
        for tx in txs {
            let d = Digest::of(tx.as_ref());
            if self.seen.contains_key(&d) || !batch.insert(d) {
                out.repeats += 1;
                continue;
            }
            out.digests.push(d);
            out.transactions.push(tx);
        }
        out
    }

    /// Remembers `digests` as output at `seq` (sequence numbers only grow), and
    /// forgets what `seq` pushes out of the window.
    pub fn record(&mut self, seq: Seq, digests: Vec<Digest>) {
        if !self.is_enabled() {
            return;
        }
        debug_assert!(self.log.back().is_none_or(|(s, _)| *s <= seq));
        for d in &digests {
            self.seen.insert(*d, seq);
        }
        self.log.push_back((seq, digests));
        while let Some((s, _)) = self.log.front() {
            if s.saturating_add(self.window) > seq {
                break;
            }
            if let Some((s, ds)) = self.log.pop_front() {
                for d in ds {
                    // A digest output again later (after it left the window) stays.
                    if self.seen.get(&d) == Some(&s) {
                        self.seen.remove(&d);
                    }
                }
            }
        }
    }

    /// Rebuilds the window from the tail of a committed log, oldest first; it must
    /// hold the last `min(window, last seq)` entries for the window to be whole.
    pub fn restore(&mut self, tail: &[Committed]) {
        let Some(last) = tail.last().map(|c| c.seq) else {
            return;
        };
        for c in tail {
            if c.seq.saturating_add(self.window) > last {
                let ds = c.transactions.iter().map(|t| Digest::of(t)).collect();
                self.record(c.seq, ds);
            }
        }
    }
}

/// What [`DedupWindow::fresh`] lets through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fresh<T> {
    /// The transactions to output, in order.
    pub transactions: Vec<T>,
    /// Their digests (empty with the window off unless asked for).
    pub digests: Vec<Digest>,
    /// How many were dropped as repeats.
    pub repeats: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn tx(b: u8) -> Bytes {
        Bytes::from(vec![b])
    }

    #[test]
    fn a_repeat_inside_the_window_is_dropped_and_outside_it_is_not() {
        let mut w = DedupWindow::new(2);
        let f = w.fresh([tx(1), tx(2), tx(1)], false);
        assert_eq!(f.transactions, vec![tx(1), tx(2)]);
        assert_eq!(f.repeats, 1);
        w.record(1, f.digests);
        assert_eq!(w.fresh([tx(1)], false).repeats, 1);
        w.record(2, vec![]);
        assert_eq!(w.fresh([tx(1)], false).repeats, 1, "seq 1 is within 2 of 2");
        w.record(3, vec![]);
        assert_eq!(w.fresh([tx(1)], false).transactions, vec![tx(1)]);
        assert!(w.is_empty());
    }

    #[test]
    fn a_window_of_zero_drops_nothing() {
        let mut w = DedupWindow::new(0);
        let f = w.fresh([tx(1), tx(1)], true);
        assert_eq!(f.transactions.len(), 2);
        assert_eq!(f.digests.len(), 2);
        w.record(1, f.digests);
        assert!(w.is_empty());
        assert!(w.fresh([tx(1), tx(1)], false).digests.is_empty());
    }

    #[test]
    fn restore_rebuilds_what_recording_built() {
        // The committed log holds what was output: repeats already dropped.
        let mut live = DedupWindow::new(4);
        let mut log = Vec::new();
        for s in 1..=10u64 {
            let f = live.fresh([tx(s as u8), tx(100), tx(s as u8 / 3)], false);
            live.record(s, f.digests);
            log.push(Committed {
                seq: s,
                digest: Digest::ZERO,
                transactions: f.transactions,
            });
        }
        let mut restored = DedupWindow::new(4);
        restored.restore(&log[4..]);
        for b in 0..=100u8 {
            let d = Digest::of(&[b]);
            assert_eq!(live.contains(&d), restored.contains(&d), "tx {b}");
        }
        assert!(!live.is_empty());
    }

    proptest! {
        /// Against the definition: after recording batches at growing sequence
        /// numbers, a digest is in the window exactly if some batch within the last
        /// `window` sequence numbers output it, and `fresh` drops exactly those and
        /// repeats inside the batch.
        #[test]
        fn matches_its_definition(
            window in 0u64..6,
            batches in prop::collection::vec(
                (1u64..3, prop::collection::vec(0u8..12, 0..6)),
                0..30,
            ),
            probe in prop::collection::vec(0u8..12, 0..8),
        ) {
            let mut w = DedupWindow::new(window);
            let mut history: Vec<(Seq, Vec<u8>)> = Vec::new();
            let mut seq = 0;
            for (step, txs) in batches {
                // The window is that of the last recorded sequence number.
                let last = seq;
                seq += step;
                let in_window = |h: &[(Seq, Vec<u8>)], b: u8| {
                    h.iter().any(|(s, bs)| s + window > last && bs.contains(&b))
                };
                let f = w.fresh(txs.iter().map(|b| vec![*b]), false);
                let mut expected = Vec::new();
                if window == 0 {
                    expected = txs.clone();
                } else {
                    for b in &txs {
                        if !in_window(&history, *b) && !expected.contains(b) {
                            expected.push(*b);
                        }
                    }
                }
                let got: Vec<u8> = f.transactions.iter().map(|t| t[0]).collect();
                prop_assert_eq!(&got, &expected);
                prop_assert_eq!(f.repeats, txs.len() - expected.len());
                w.record(seq, f.digests);
                history.push((seq, expected));
            }
            for b in probe {
                let expected = window > 0
                    && history.iter().any(|(s, bs)| s + window > seq && bs.contains(&b));
                prop_assert_eq!(w.contains(&Digest::of(&[b])), expected);
            }
        }
    }
}
