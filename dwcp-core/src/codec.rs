//! The wire and disk format: `postcard` with explicit size bounds.
//!
//! Every decoder of bytes from outside goes through [`decode`], which refuses
//! input longer than its bound before looking at it and never panics.

use serde::{de::DeserializeOwned, Serialize};

/// Default largest frame a decoder accepts: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Why bytes could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The input is longer than the decoder's bound.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Length of the input.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// The bytes are not a valid encoding.
    #[error("malformed encoding: {0}")]
    Malformed(String),
    /// Valid encoding followed by extra bytes.
    #[error("{0} trailing bytes after the value")]
    Trailing(usize),
}

/// Encodes a value.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Sizing first walks the value without copying anything, and saves the
    // reallocations of a growing vector: for a multi-megabyte batch or committed
    // record each of those copies into fresh, page-faulting memory.
    // postcard only fails on types serde cannot describe (maps with unknown
    // length from iterators), which this crate never encodes.
    let len = postcard::experimental::serialized_size(value).unwrap_or(0);
    postcard::to_extend(value, Vec::with_capacity(len)).unwrap_or_default()
}

/// Encodes a value at the end of `buf` and returns it, reusing its allocation.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, mut buf: Vec<u8>) -> Vec<u8> {
    let len = postcard::experimental::serialized_size(value).unwrap_or(0);
    buf.reserve(len);
    // As in `encode`: postcard cannot fail on the types this crate encodes.
    postcard::to_extend(value, buf).unwrap_or_default()
}

/// Decodes exactly one value from `bytes`, refusing inputs over `max_len` bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], max_len: usize) -> Result<T, CodecError> {
    if bytes.len() > max_len {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    let (value, rest) =
        postcard::take_from_bytes(bytes).map_err(|e| CodecError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CodecError::Trailing(rest.len()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn roundtrip(v in proptest::collection::vec(any::<(u64, String, Vec<u8>)>(), 0..8)) {
            let bytes = encode(&v);
            prop_assert_eq!(decode::<Vec<(u64, String, Vec<u8>)>>(&bytes, usize::MAX).unwrap(), v);
        }

        #[test]
        fn encode_is_sized_exactly_and_encode_into_appends(
            v in proptest::collection::vec(any::<(u64, String, Vec<u8>)>(), 0..8),
            prefix in proptest::collection::vec(any::<u8>(), 0..16),
        ) {
            let bytes = encode(&v);
            prop_assert_eq!(bytes.capacity(), bytes.len());
            let appended = encode_into(&v, prefix.clone());
            prop_assert_eq!(&appended[..prefix.len()], &prefix[..]);
            prop_assert_eq!(&appended[prefix.len()..], &bytes[..]);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode::<Vec<(u64, String, Vec<u8>)>>(&bytes, 1024);
        }
    }

    #[test]
    fn bounds_and_trailing() {
        let bytes = encode(&(1u32, 2u32));
        assert!(matches!(
            decode::<(u32, u32)>(&bytes, 1),
            Err(CodecError::TooLarge { .. })
        ));
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(
            decode::<(u32, u32)>(&long, 100),
            Err(CodecError::Trailing(1))
        );
        assert!(matches!(
            decode::<(u32, u32)>(&bytes[..1], 100),
            Err(CodecError::Malformed(_))
        ));
        // A huge declared vector length fails on end of input, without allocating it.
        let lie = [0xff, 0xff, 0xff, 0xff, 0x0f];
        assert!(decode::<Vec<u64>>(&lie, 100).is_err());
    }
}
