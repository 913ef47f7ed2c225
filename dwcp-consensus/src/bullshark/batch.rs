//! Narwhal batches: transactions a worker seals together and disseminates before
//! any header names them.
//!
//! A batch travels as one byte string: each transaction as a little-endian `u32`
//! length followed by its bytes. One contiguous buffer is hashed once, copied once
//! per hop, and split into transactions at commit without copying.

use bytes::{BufMut, Bytes, BytesMut};
use dwcp_core::{Digest, NodeId};
use serde::{Deserialize, Serialize};

/// Why batch bytes are not a well-formed batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// A length prefix runs past the end of the batch.
    #[error("transaction at offset {0} is truncated")]
    Truncated(usize),
    /// The batch holds no transaction.
    #[error("empty batch")]
    Empty,
}

/// A sealed batch of transactions.
///
/// The sealing worker and its sealing counter are part of the batch (and of its
/// digest), so two batches of identical transactions never share a digest: a
/// digest names one batch, included once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    author: NodeId,
    nonce: u64,
    payload: Bytes,
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Batch({} bytes)", self.payload.len())
    }
}

impl Batch {
    /// The batch's digest, which headers name it by.
    pub fn digest(&self) -> Digest {
        Digest::of_parts(
            "dwcp narwhal batch v1",
            &[
                &self.author.0.to_le_bytes(),
                &self.nonce.to_le_bytes(),
                &self.payload,
            ],
        )
    }

    /// The worker that sealed it.
    pub fn author(&self) -> NodeId {
        self.author
    }

    /// The sealing worker's counter, part of the digest.
    pub(crate) fn nonce(&self) -> u64 {
        self.nonce
    }

    /// The encoded transactions (shared, not copied).
    pub(crate) fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// A batch from its parts, as [`Batch::author`], [`Batch::nonce`] and
    /// [`Batch::payload`] gave them (a batch read back from storage).
    pub(crate) fn from_parts(author: NodeId, nonce: u64, payload: Bytes) -> Batch {
        Batch {
            author,
            nonce,
            payload,
        }
    }

    /// Encoded size in bytes.
    pub fn len(&self) -> usize {
        self.payload.len()
    }

    /// Whether the batch is empty (never true of a checked batch).
    pub fn is_empty(&self) -> bool {
        self.payload.is_empty()
    }

    /// Checks the framing and counts the transactions.
    pub fn check(&self) -> Result<usize, BatchError> {
        let mut count = 0;
        let mut at = 0;
        let p = &self.payload[..];
        while at < p.len() {
            let len = read_len(p, at).ok_or(BatchError::Truncated(at))?;
            let end = at + 4 + len;
            if end > p.len() {
                return Err(BatchError::Truncated(at));
            }
            at = end;
            count += 1;
        }
        if count == 0 {
            return Err(BatchError::Empty);
        }
        Ok(count)
    }

    /// The transactions, as slices of the batch (no copy). A malformed tail is
    /// ignored; [`Batch::check`] a batch from outside before storing it.
    pub fn transactions(&self) -> impl Iterator<Item = Bytes> + '_ {
        let p = &self.payload;
        let mut at = 0;
        std::iter::from_fn(move || {
            let len = read_len(p, at)?;
            let start = at + 4;
            let end = start.checked_add(len).filter(|e| *e <= p.len())?;
            at = end;
            Some(p.slice(start..end))
        })
    }
}

fn read_len(p: &[u8], at: usize) -> Option<usize> {
    let b = p.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
}

/// Accumulates transactions into the next batch.
#[derive(Debug, Default)]
pub struct BatchMaker {
    buf: BytesMut,
    count: usize,
}

impl BatchMaker {
    /// Appends a transaction (longer than `u32::MAX` bytes is refused with `false`).
    pub fn push(&mut self, tx: &[u8]) -> bool {
        let Ok(len) = u32::try_from(tx.len()) else {
            return false;
        };
        self.buf.reserve(4 + tx.len());
        self.buf.put_u32_le(len);
        self.buf.put_slice(tx);
        self.count += 1;
        true
    }

    /// Bytes accumulated.
    pub fn size(&self) -> usize {
        self.buf.len()
    }

    /// Transactions accumulated.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Seals what was accumulated into a batch by `author`, or `None` if nothing
    /// was. `nonce` must differ between the author's batches.
    pub fn seal(&mut self, author: NodeId, nonce: u64) -> Option<Batch> {
        if self.count == 0 {
            return None;
        }
        self.count = 0;
        Some(Batch {
            author,
            nonce,
            payload: self.buf.split().freeze(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dwcp_core::codec::{decode, encode};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn sealed_batches_roundtrip(txs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 1..32)) {
            let mut m = BatchMaker::default();
            for tx in &txs {
                prop_assert!(m.push(tx));
            }
            let batch = m.seal(NodeId(1), 7).unwrap();
            prop_assert_eq!(batch.check(), Ok(txs.len()));
            let back: Batch = decode(&encode(&batch), 1 << 20).unwrap();
            prop_assert_eq!(back.digest(), batch.digest());
            let out: Vec<Vec<u8>> = back.transactions().map(|b| b.to_vec()).collect();
            prop_assert_eq!(out, txs);
            prop_assert!(m.seal(NodeId(1), 8).is_none());
        }

        #[test]
        fn arbitrary_bytes_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..256)) {
            let batch = Batch { author: NodeId(0), nonce: 0, payload: Bytes::from(payload) };
            let n = batch.transactions().count();
            if let Ok(count) = batch.check() {
                prop_assert_eq!(count, n);
            }
        }
    }

    #[test]
    fn identical_transactions_sealed_twice_make_distinct_batches() {
        let seal = |author, nonce| {
            let mut m = BatchMaker::default();
            m.push(b"same");
            m.seal(NodeId(author), nonce).unwrap().digest()
        };
        assert_ne!(seal(0, 0), seal(0, 1));
        assert_ne!(seal(0, 0), seal(1, 0));
        assert_eq!(seal(2, 5), seal(2, 5));
    }

    #[test]
    fn truncated_and_empty_batches_are_refused() {
        let mut m = BatchMaker::default();
        m.push(b"hello");
        let good = m.seal(NodeId(0), 0).unwrap();
        let cut = Batch {
            payload: good.payload.slice(..good.len() - 1),
            ..good.clone()
        };
        assert_eq!(cut.check(), Err(BatchError::Truncated(0)));
        let empty = Batch {
            payload: Bytes::new(),
            ..good
        };
        assert_eq!(empty.check(), Err(BatchError::Empty));
    }
}
