//! State transfer: committed batches that peers read from their stores for a node
//! that is further behind than any peer keeps certified batches in memory. Stored
//! batches carry no certificate, so a batch is taken only once `f + 1` peers (so at
//! least one honest) sent the same hash chain up to it. PBFT replicas and T-PBFT
//! nodes (members behind in an old epoch, observers) share this.

use super::messages::{batch_digest, chain_next};
use dwcp_core::{Committed, Digest, NodeId, Seq};
use std::collections::{BTreeMap, HashMap};

/// Peers waiting for committed batches this node reads from its store for them,
/// by first sequence number, each with what its answer needs (`X`): one
/// outstanding read per peer, one read for all peers asking from one position.
#[derive(Clone, Debug)]
pub struct StoreReads<X> {
    waiting: BTreeMap<Seq, Vec<(NodeId, X)>>,
}

impl<X> Default for StoreReads<X> {
    fn default() -> Self {
        StoreReads {
            waiting: BTreeMap::new(),
        }
    }
}

impl<X> StoreReads<X> {
    /// Notes that `peer` wants the batches from `first` on (forgetting what it
    /// asked before); whether the store must be read for it (no read from `first`
    /// is outstanding).
    pub fn want(&mut self, peer: NodeId, extra: X, first: Seq) -> bool {
        for w in self.waiting.values_mut() {
            w.retain(|(p, _)| *p != peer);
        }
        self.waiting.retain(|_, w| !w.is_empty());
        let w = self.waiting.entry(first).or_default();
        w.push((peer, extra));
        w.len() == 1
    }

    /// The peers to send `batches` to, if they answer the read from `from`.
    pub fn answered(&mut self, from: Seq, batches: &[Committed]) -> Vec<(NodeId, X)> {
        let peers = self.waiting.remove(&from).unwrap_or_default();
        if batches.first().is_some_and(|c| c.seq == from) {
            peers
        } else {
            Vec::new()
        }
    }
}

/// Stored batches offered by peers, each buffer a run that extends this node's log.
#[derive(Clone, Debug, Default)]
pub struct Transfers {
    buffers: BTreeMap<NodeId, Vec<Committed>>,
}

impl Transfers {
    /// Keeps the longest prefix of `batches` from `from` that extends the log whose
    /// last batch is `last` with chain `chain` (replacing what `from` sent before),
    /// and says whether any of it did.
    pub fn offer(
        &mut self,
        from: NodeId,
        batches: Vec<Committed>,
        last: Seq,
        chain: Digest,
    ) -> bool {
        let mut chain = chain;
        let mut verified = Vec::with_capacity(batches.len());
        for (k, c) in batches.into_iter().enumerate() {
            let next = chain_next(&chain, c.seq, &batch_digest(&c.transactions));
            if c.seq != last + 1 + k as u64 || next != c.digest {
                break;
            }
            chain = next;
            verified.push(c);
        }
        if verified.is_empty() {
            return false;
        }
        self.buffers.insert(from, verified);
        true
    }

    /// Trims every buffer to what follows the log at `last` with chain `chain`,
    /// dropping buffers that disagree with it or hold nothing more.
    pub fn trim(&mut self, last: Seq, chain: Digest) {
        self.buffers.retain(|_, bs| {
            let keep_from = bs.iter().position(|c| c.seq > last).unwrap_or(bs.len());
            if keep_from > 0 && bs[keep_from - 1].digest != chain {
                return false;
            }
            bs.drain(..keep_from);
            bs.first().is_some_and(|c| c.seq == last + 1)
        });
    }

    /// The longest run of batches, from the log's next one, that more than `f`
    /// buffers agree on. Every buffer starts at the log's next batch and is
    /// chain-verified from its chain (after [`Transfers::trim`]), so agreeing on
    /// the chain at position `k` is agreeing on every batch up to it.
    pub fn vouched(&self, f: usize) -> Vec<Committed> {
        let longest = self.buffers.values().map(Vec::len).max().unwrap_or(0);
        let mut agreed: Option<(usize, Digest)> = None;
        for k in 0..longest {
            let mut counts: HashMap<Digest, usize> = HashMap::new();
            let vouched = self
                .buffers
                .values()
                .filter_map(|bs| bs.get(k))
                .find_map(|c| {
                    let n = counts.entry(c.digest).or_default();
                    *n += 1;
                    (*n > f).then_some(c.digest)
                });
            match vouched {
                Some(d) => agreed = Some((k + 1, d)),
                None => break,
            }
        }
        let Some((len, target)) = agreed else {
            return Vec::new();
        };
        self.buffers
            .values()
            .find(|bs| bs.get(len - 1).is_some_and(|c| c.digest == target))
            .map(|bs| bs[..len].to_vec())
            .unwrap_or_default()
    }

    /// Whether the buffers hold nothing beyond their first `len` batches: time to
    /// ask for the next part.
    pub fn exhausted(&self, len: usize) -> bool {
        self.buffers.values().all(|bs| bs.len() <= len)
    }

    /// How many peers' buffers are held.
    pub fn len(&self) -> usize {
        self.buffers.len()
    }

    /// Whether no buffer is held.
    pub fn is_empty(&self) -> bool {
        self.buffers.is_empty()
    }

    /// Whether `peer` has a buffer.
    pub fn has(&self, peer: NodeId) -> bool {
        self.buffers.contains_key(&peer)
    }

    /// Forgets every buffer (the peers that vouch changed).
    pub fn clear(&mut self) {
        self.buffers.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// A log of `n` batches after `(0, genesis)`, batch `i` holding `tag ‖ i`.
    fn log(n: u64, tag: &str) -> Vec<Committed> {
        let mut chain = Digest::default();
        (1..=n)
            .map(|seq| {
                let transactions = vec![Bytes::from(format!("{tag}{seq}"))];
                chain = chain_next(&chain, seq, &batch_digest(&transactions));
                Committed {
                    seq,
                    digest: chain,
                    transactions,
                }
            })
            .collect()
    }

    #[test]
    fn a_run_is_taken_once_more_than_f_peers_agree_on_it() {
        let mut t = Transfers::default();
        let honest = log(6, "a");
        assert!(t.offer(NodeId(1), honest.clone(), 0, Digest::default()));
        assert!(t.vouched(1).is_empty(), "one peer is not f + 1 = 2");
        assert!(t.offer(NodeId(2), honest[..4].to_vec(), 0, Digest::default()));
        assert_eq!(t.vouched(1), honest[..4].to_vec());
        assert!(!t.exhausted(4));
        // A forged chain agrees with nobody and vouches for nothing more.
        assert!(t.offer(NodeId(3), log(6, "b"), 0, Digest::default()));
        assert_eq!(t.vouched(1), honest[..4].to_vec());
        t.trim(4, honest[3].digest);
        assert!(
            !t.has(NodeId(3)),
            "the forged buffer disagrees with the log"
        );
        assert!(!t.has(NodeId(2)), "used up");
        assert_eq!(t.vouched(0), honest[4..].to_vec());
        assert!(t.exhausted(2));
    }

    #[test]
    fn batches_that_do_not_extend_the_log_are_refused() {
        let mut t = Transfers::default();
        let l = log(4, "a");
        assert!(
            !t.offer(NodeId(1), l[1..].to_vec(), 0, Digest::default()),
            "a gap"
        );
        assert!(!t.offer(NodeId(1), l.clone(), 0, Digest::of(b"another chain")));
        let mut broken = l.clone();
        broken[2].transactions = vec![Bytes::from_static(b"changed")];
        assert!(t.offer(NodeId(1), broken, 0, Digest::default()));
        assert_eq!(t.vouched(0), l[..2].to_vec(), "kept up to the break");
    }
}
