//! The self-describing frame: one compressed chunk plus everything needed to
//! decompress and verify it without a side channel.
//!
//! Layout (all integers little-endian), [`HEADER_LEN`] = 18 bytes:
//!
//! | bytes | field                                           |
//! |-------|-------------------------------------------------|
//! | 0..4  | magic `DWCZ`                                    |
//! | 4     | format version ([`FRAME_VERSION`])              |
//! | 5     | codec id ([`CodecId`] discriminant)             |
//! | 6..10 | original length `u32`                           |
//! | 10..14| payload length `u32` (must equal the rest)      |
//! | 14..18| CRC-32 (IEEE) of the original bytes             |
//!
//! The decoder checks magic, version, codec and both lengths, and compares the
//! declared original length with [`DecodeLimits::max_original_len`] *before* it
//! allocates anything, so a hostile frame can make it allocate at most that bound.
//! The checksum covers the original bytes, so it also catches a codec that
//! "successfully" decodes corrupted payload into wrong data.

use super::codec::{CodecError, CodecId};

/// Frame magic.
pub const MAGIC: [u8; 4] = *b"DWCZ";
/// Current frame format version.
pub const FRAME_VERSION: u8 = 1;
/// Length of the fixed frame header.
pub const HEADER_LEN: usize = 18;
/// Default bound on the original length a decoder accepts: 64 MiB.
pub const DEFAULT_MAX_ORIGINAL_LEN: usize = 64 << 20;

/// Bounds the decoder enforces on untrusted frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DecodeLimits {
    /// The largest original (decompressed) length accepted; the decoder never
    /// allocates more than this for the output.
    pub max_original_len: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_original_len: DEFAULT_MAX_ORIGINAL_LEN,
        }
    }
}

/// Why a frame could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// Fewer bytes than a header.
    #[error("frame truncated: {0} bytes, header needs {HEADER_LEN}")]
    Truncated(usize),
    /// The magic bytes are wrong: not a DWCP compression frame.
    #[error("not a compression frame (bad magic)")]
    BadMagic,
    /// A frame version this build does not read.
    #[error("unsupported frame version {0} (this build reads {FRAME_VERSION})")]
    UnsupportedVersion(u8),
    /// A codec id this build does not know.
    #[error("unknown codec id {0}")]
    UnknownCodec(u8),
    /// The declared original length exceeds the configured bound.
    #[error("declared original length {declared} exceeds the bound {max}")]
    TooLarge {
        /// Declared original length.
        declared: u64,
        /// The configured bound.
        max: usize,
    },
    /// The payload length field disagrees with the bytes present.
    #[error("payload length field says {declared} bytes, frame carries {actual}")]
    PayloadLength {
        /// The header's payload length.
        declared: u64,
        /// Bytes after the header.
        actual: usize,
    },
    /// The decompressed bytes do not match the checksum.
    #[error("checksum mismatch: frame says {expected:#010x}, data gives {actual:#010x}")]
    Checksum {
        /// Checksum in the header.
        expected: u32,
        /// Checksum of the decoded bytes.
        actual: u32,
    },
    /// The input is too large to describe in a frame (over 4 GiB).
    #[error("input of {0} bytes is too large for one frame")]
    InputTooLarge(usize),
    /// The codec failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// The parsed fixed header of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Codec of the payload.
    pub codec: CodecId,
    /// Length of the original bytes.
    pub original_len: usize,
    /// Length of the compressed payload following the header.
    pub payload_len: usize,
    /// CRC-32 of the original bytes.
    pub crc32: u32,
}

/// Appends a frame holding `input` compressed with `codec` to `out`.
pub fn encode_into(codec: CodecId, input: &[u8], out: &mut Vec<u8>) -> Result<(), FrameError> {
    let original_len =
        u32::try_from(input.len()).map_err(|_| FrameError::InputTooLarge(input.len()))?;
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.push(FRAME_VERSION);
    out.push(codec as u8);
    out.extend_from_slice(&original_len.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // payload length, patched below
    out.extend_from_slice(&crc32fast::hash(input).to_le_bytes());
    if let Err(e) = codec.codec().compress(input, out) {
        out.truncate(start);
        return Err(e.into());
    }
    let payload = out.len() - start - HEADER_LEN;
    let payload = u32::try_from(payload).map_err(|_| FrameError::InputTooLarge(input.len()));
    match payload {
        Ok(p) => {
            out[start + 10..start + 14].copy_from_slice(&p.to_le_bytes());
            Ok(())
        }
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

/// Returns a new frame holding `input` compressed with `codec`.
pub fn encode(codec: CodecId, input: &[u8]) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(HEADER_LEN + input.len() / 2);
    encode_into(codec, input, &mut out)?;
    Ok(out)
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

/// Parses and validates the header of `frame` against `limits`, without decompressing.
pub fn parse_header(frame: &[u8], limits: &DecodeLimits) -> Result<FrameHeader, FrameError> {
    if frame.len() < HEADER_LEN {
        return Err(FrameError::Truncated(frame.len()));
    }
    if frame[0..4] != MAGIC {
        return Err(FrameError::BadMagic);
    }
    if frame[4] != FRAME_VERSION {
        return Err(FrameError::UnsupportedVersion(frame[4]));
    }
    let codec = CodecId::from_u8(frame[5]).ok_or(FrameError::UnknownCodec(frame[5]))?;
    let original = le_u32(frame, 6);
    let payload = le_u32(frame, 10);
    let crc32 = le_u32(frame, 14);
    let original_len = usize::try_from(original)
        .ok()
        .filter(|&n| n <= limits.max_original_len)
        .ok_or(FrameError::TooLarge {
            declared: u64::from(original),
            max: limits.max_original_len,
        })?;
    let actual = frame.len() - HEADER_LEN;
    if u64::from(payload) != actual as u64 {
        return Err(FrameError::PayloadLength {
            declared: u64::from(payload),
            actual,
        });
    }
    Ok(FrameHeader {
        codec,
        original_len,
        payload_len: actual,
        crc32,
    })
}

/// Decodes one frame, appending the original bytes to `out`. On error `out` is unchanged.
pub fn decode_into(
    frame: &[u8],
    limits: &DecodeLimits,
    out: &mut Vec<u8>,
) -> Result<FrameHeader, FrameError> {
    let header = parse_header(frame, limits)?;
    let start = out.len();
    header
        .codec
        .codec()
        .decompress(&frame[HEADER_LEN..], header.original_len, out)?;
    let actual = crc32fast::hash(&out[start..]);
    if actual != header.crc32 {
        out.truncate(start);
        return Err(FrameError::Checksum {
            expected: header.crc32,
            actual,
        });
    }
    Ok(header)
}

/// Decodes one frame into a new buffer.
pub fn decode(frame: &[u8], limits: &DecodeLimits) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::new();
    decode_into(frame, limits, &mut out)?;
    Ok(out)
}

/// The body of the `compression_frame` fuzz target: decoding arbitrary bytes must
/// return (an error or data) without panicking and without exceeding a small bound.
///
/// When `data` happens to decode, the result is re-encoded with the same codec and
/// decoded again, which must give the same bytes.
pub fn fuzz_decode(data: &[u8]) {
    let limits = DecodeLimits {
        max_original_len: 1 << 20,
    };
    if let Ok(decoded) = decode(data, &limits) {
        assert!(decoded.len() <= limits.max_original_len);
        if let Ok(header) = parse_header(data, &limits) {
            if let Ok(again) = encode(header.codec, &decoded) {
                let back = decode(&again, &limits);
                assert_eq!(back.ok().as_deref(), Some(&decoded[..]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_data() -> Vec<u8> {
        let mut v: Vec<u8> = b"frame test payload, mostly repetitive text. "
            .iter()
            .cycle()
            .take(4000)
            .copied()
            .collect();
        v.extend((0..1000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        #[test]
        fn round_trip_all_codecs(
            data in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..4096),
                proptest::collection::vec(0u8..4, 0..8192),
                (any::<u8>(), 0usize..20000).prop_map(|(b, n)| vec![b; n]),
            ]
        ) {
            for codec in CodecId::ALL {
                let frame = encode(codec, &data).expect("encode");
                let header = parse_header(&frame, &DecodeLimits::default()).expect("header");
                prop_assert_eq!(header.codec, codec);
                prop_assert_eq!(header.original_len, data.len());
                let back = decode(&frame, &DecodeLimits::default()).expect("decode");
                prop_assert_eq!(&back, &data);
            }
        }

        #[test]
        fn fuzz_body_survives_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            fuzz_decode(&data);
        }

        #[test]
        fn fuzz_body_survives_mutated_frames(
            codec_ix in 0usize..CodecId::COUNT,
            flips in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<proptest::sample::Index>(),
            truncate in any::<bool>(),
        ) {
            let data = sample_data();
            let mut frame = encode(CodecId::ALL[codec_ix], &data).expect("encode");
            for (at, x) in flips {
                let i = at.index(frame.len());
                frame[i] ^= x;
            }
            if truncate {
                frame.truncate(cut.index(frame.len()));
            }
            fuzz_decode(&frame);
            // Whatever the mutation, a successful decode must give the original bytes
            // back, or the checksum would have caught it.
            if let Ok(out) = decode(&frame, &DecodeLimits::default()) {
                let h = parse_header(&frame, &DecodeLimits::default()).expect("header");
                prop_assert_eq!(crc32fast::hash(&out), h.crc32);
            }
        }
    }

    #[test]
    fn truncated_frames_are_errors() {
        let data = sample_data();
        for codec in CodecId::ALL {
            let frame = encode(codec, &data).expect("encode");
            for len in 0..frame.len() {
                assert!(
                    decode(&frame[..len], &DecodeLimits::default()).is_err(),
                    "{codec} {len}"
                );
            }
        }
    }

    #[test]
    fn oversized_declared_length_is_rejected_before_allocation() {
        let data = vec![0u8; 1000];
        let mut frame = encode(CodecId::Zstd3, &data).expect("encode");
        frame[6..10].copy_from_slice(&u32::MAX.to_le_bytes());
        let err = decode(&frame, &DecodeLimits::default());
        assert!(matches!(err, Err(FrameError::TooLarge { .. })), "{err:?}");
        let small = DecodeLimits {
            max_original_len: 999,
        };
        let frame = encode(CodecId::None, &data).expect("encode");
        assert!(matches!(
            decode(&frame, &small),
            Err(FrameError::TooLarge { .. })
        ));
        let ok = DecodeLimits {
            max_original_len: 1000,
        };
        assert_eq!(decode(&frame, &ok).expect("decode"), data);
    }

    #[test]
    fn header_errors_are_specific() {
        let frame = encode(CodecId::Lz4, b"hello hello hello").expect("encode");
        let lim = DecodeLimits::default();
        let mut f = frame.clone();
        f[0] = b'X';
        assert!(matches!(decode(&f, &lim), Err(FrameError::BadMagic)));
        let mut f = frame.clone();
        f[4] = 9;
        assert!(matches!(
            decode(&f, &lim),
            Err(FrameError::UnsupportedVersion(9))
        ));
        let mut f = frame.clone();
        f[5] = 200;
        assert!(matches!(
            decode(&f, &lim),
            Err(FrameError::UnknownCodec(200))
        ));
        let mut f = frame.clone();
        f.push(0);
        assert!(matches!(
            decode(&f, &lim),
            Err(FrameError::PayloadLength { .. })
        ));
        let mut f = frame.clone();
        f[14] ^= 1;
        assert!(matches!(decode(&f, &lim), Err(FrameError::Checksum { .. })));
    }

    #[test]
    fn decode_into_leaves_output_unchanged_on_error() {
        let frame = encode(CodecId::Snappy, &sample_data()).expect("encode");
        let mut bad = frame.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        bad[HEADER_LEN + 3] ^= 0x55;
        let mut out = b"keep".to_vec();
        let _ = decode_into(&bad, &DecodeLimits::default(), &mut out);
        assert!(out == b"keep" || out.len() == 4 + sample_data().len());
    }
}
