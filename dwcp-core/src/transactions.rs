//! A compact binary form for a list of client transactions: each one as its length
//! (4 bytes, big-endian) followed by its bytes, back to back.
//!
//! `dwcpd` accepts it on `POST /v1/transactions` with `Content-Type:
//! application/octet-stream`, next to JSON with hex strings; a client submitting
//! at high rates saves the hex doubling and the JSON parse. Decoding slices the
//! body without copying and never trusts a length beyond the bytes that remain.

use bytes::Bytes;

/// The media type of the binary form.
pub const CONTENT_TYPE: &str = "application/octet-stream";

/// Why a body is not a valid transaction list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionsError {
    /// The body holds no transaction.
    #[error("no transactions")]
    Empty,
    /// A transaction of length zero.
    #[error("transaction {index} is empty")]
    EmptyTransaction {
        /// Its position in the list.
        index: usize,
    },
    /// A length prefix cut short, or one claiming more bytes than remain.
    #[error("transaction {index} is cut short: {claimed} bytes claimed, {left} left")]
    Truncated {
        /// Its position in the list.
        index: usize,
        /// Bytes its prefix claims (prefix bytes, if the prefix itself is cut).
        claimed: usize,
        /// Bytes left in the body.
        left: usize,
    },
}

/// Encodes `txs` in the binary form. A transaction longer than `u32::MAX` bytes
/// cannot be expressed; none ever is (the daemon's body limit is far smaller).
pub fn encode_transactions<T: AsRef<[u8]>>(txs: &[T]) -> Vec<u8> {
    let total = txs.iter().map(|t| 4 + t.as_ref().len()).sum();
    let mut out = Vec::with_capacity(total);
    for t in txs {
        let t = t.as_ref();
        out.extend_from_slice(&(t.len() as u32).to_be_bytes());
        out.extend_from_slice(t);
    }
    out
}

/// Decodes a body in the binary form into its transactions (slices of `body`).
pub fn decode_transactions(body: &Bytes) -> Result<Vec<Bytes>, TransactionsError> {
    let mut txs = Vec::new();
    let mut at = 0;
    while at < body.len() {
        let index = txs.len();
        let left = body.len() - at;
        let Some(prefix) = body.get(at..at + 4) else {
            return Err(TransactionsError::Truncated {
                index,
                claimed: 4,
                left,
            });
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if len == 0 {
            return Err(TransactionsError::EmptyTransaction { index });
        }
        if len > left - 4 {
            return Err(TransactionsError::Truncated {
                index,
                claimed: len,
                left: left - 4,
            });
        }
        txs.push(body.slice(at + 4..at + 4 + len));
        at += 4 + len;
    }
    if txs.is_empty() {
        return Err(TransactionsError::Empty);
    }
    Ok(txs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bad_bodies_are_errors() {
        let body = |b: &[u8]| Bytes::copy_from_slice(b);
        assert_eq!(
            decode_transactions(&body(b"")),
            Err(TransactionsError::Empty)
        );
        assert_eq!(
            decode_transactions(&body(&[0, 0, 0, 0])),
            Err(TransactionsError::EmptyTransaction { index: 0 })
        );
        assert_eq!(
            decode_transactions(&body(&[0, 0, 0, 1, 7, 0, 0])),
            Err(TransactionsError::Truncated {
                index: 1,
                claimed: 4,
                left: 2
            })
        );
        assert_eq!(
            decode_transactions(&body(&[0xff, 0xff, 0xff, 0xff, 1])),
            Err(TransactionsError::Truncated {
                index: 0,
                claimed: u32::MAX as usize,
                left: 1
            })
        );
    }

    proptest! {
        #[test]
        fn round_trip(txs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 1..40)) {
            let encoded = Bytes::from(encode_transactions(&txs));
            let decoded = decode_transactions(&encoded).expect("decodes");
            prop_assert_eq!(decoded.iter().map(|t| t.to_vec()).collect::<Vec<_>>(), txs);
        }

        #[test]
        fn any_bytes_decode_to_a_valid_list_or_an_error(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            crate::fuzzing::transactions(&bytes);
        }
    }
}
