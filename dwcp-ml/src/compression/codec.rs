//! The codecs the selector chooses between, behind one [`Codec`] trait.
//!
//! Every codec here is a *block* codec: it compresses one chunk at once and is told
//! the original length when decompressing (the frame carries it), so no codec needs
//! a stream format of its own and the decoder can bound its output buffer exactly.

use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a codec failed. Decoding untrusted input reports these, never panics.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The compressed bytes are not valid for this codec.
    #[error("{codec}: corrupt compressed data: {detail}")]
    Corrupt {
        /// The codec that rejected the input.
        codec: CodecId,
        /// The codec library's own description.
        detail: String,
    },
    /// The data decompressed to a different length than the frame declared.
    #[error("{codec}: decompressed {actual} bytes, frame declared {declared}")]
    LengthMismatch {
        /// The codec that produced the output.
        codec: CodecId,
        /// The length the frame declared.
        declared: usize,
        /// The length actually produced (or announced by the codec's own header).
        actual: usize,
    },
    /// Compression itself failed (only zstd can, on allocation failure).
    #[error("{codec}: compression failed: {detail}")]
    Compress {
        /// The codec that failed.
        codec: CodecId,
        /// The codec library's own description.
        detail: String,
    },
}

/// Identifies a codec and its level. The discriminant is the id written in frames,
/// so existing values must never change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum CodecId {
    /// Stored as is.
    #[serde(rename = "none")]
    None = 0,
    /// LZ4 block format (`lz4_flex`).
    #[serde(rename = "lz4")]
    Lz4 = 1,
    /// Snappy raw format (`snap`).
    #[serde(rename = "snappy")]
    Snappy = 2,
    /// zstd at its fast negative level -1.
    #[serde(rename = "zstd:-1")]
    ZstdNeg1 = 3,
    /// zstd level 1.
    #[serde(rename = "zstd:1")]
    Zstd1 = 4,
    /// zstd level 3 (zstd's default).
    #[serde(rename = "zstd:3")]
    Zstd3 = 5,
    /// zstd level 9.
    #[serde(rename = "zstd:9")]
    Zstd9 = 6,
    /// zstd level 19.
    #[serde(rename = "zstd:19")]
    Zstd19 = 7,
}

impl CodecId {
    /// Every codec, in id order. Models and profiles index their tables by this order.
    pub const ALL: [CodecId; 8] = [
        CodecId::None,
        CodecId::Lz4,
        CodecId::Snappy,
        CodecId::ZstdNeg1,
        CodecId::Zstd1,
        CodecId::Zstd3,
        CodecId::Zstd9,
        CodecId::Zstd19,
    ];

    /// The number of codecs.
    pub const COUNT: usize = Self::ALL.len();

    /// The codec with frame id `id`, if there is one.
    pub fn from_u8(id: u8) -> Option<CodecId> {
        Self::ALL.get(usize::from(id)).copied()
    }

    /// Position of this codec in [`CodecId::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The stable name used in JSON, the CLI and reports.
    pub fn name(self) -> &'static str {
        match self {
            CodecId::None => "none",
            CodecId::Lz4 => "lz4",
            CodecId::Snappy => "snappy",
            CodecId::ZstdNeg1 => "zstd:-1",
            CodecId::Zstd1 => "zstd:1",
            CodecId::Zstd3 => "zstd:3",
            CodecId::Zstd9 => "zstd:9",
            CodecId::Zstd19 => "zstd:19",
        }
    }

    /// The implementation of this codec.
    pub fn codec(self) -> &'static dyn Codec {
        match self {
            CodecId::None => &Stored,
            CodecId::Lz4 => &Lz4,
            CodecId::Snappy => &Snappy,
            CodecId::ZstdNeg1 => &Zstd { level: -1 },
            CodecId::Zstd1 => &Zstd { level: 1 },
            CodecId::Zstd3 => &Zstd { level: 3 },
            CodecId::Zstd9 => &Zstd { level: 9 },
            CodecId::Zstd19 => &Zstd { level: 19 },
        }
    }
}

impl fmt::Display for CodecId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name was not one of [`CodecId::name`].
#[derive(Debug, thiserror::Error)]
#[error("unknown codec {0:?} (expected one of none, lz4, snappy, zstd:-1, zstd:1, zstd:3, zstd:9, zstd:19)")]
pub struct UnknownCodec(pub String);

impl FromStr for CodecId {
    type Err = UnknownCodec;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CodecId::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| UnknownCodec(s.to_owned()))
    }
}

/// A block codec.
///
/// Implementations append to `out` and never shrink it; `decompress` must produce
/// exactly `original_len` bytes or fail, and must not allocate more than that.
pub trait Codec: Send + Sync {
    /// Which codec this is.
    fn id(&self) -> CodecId;
    /// Appends the compressed form of `input` to `out`.
    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError>;
    /// Appends exactly `original_len` decompressed bytes to `out`, or fails.
    fn decompress(
        &self,
        input: &[u8],
        original_len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError>;
}

/// Grows `out` by `extra` zeroed bytes and returns the new tail.
fn grow(out: &mut Vec<u8>, extra: usize) -> (usize, &mut [u8]) {
    let start = out.len();
    out.resize(start + extra, 0);
    (start, &mut out[start..])
}

fn check_len(codec: CodecId, declared: usize, actual: usize) -> Result<(), CodecError> {
    if declared == actual {
        Ok(())
    } else {
        Err(CodecError::LengthMismatch {
            codec,
            declared,
            actual,
        })
    }
}

/// The identity codec.
#[derive(Debug, Clone, Copy)]
pub struct Stored;

impl Codec for Stored {
    fn id(&self) -> CodecId {
        CodecId::None
    }
    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.extend_from_slice(input);
        Ok(())
    }
    fn decompress(
        &self,
        input: &[u8],
        original_len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        check_len(CodecId::None, original_len, input.len())?;
        out.extend_from_slice(input);
        Ok(())
    }
}

/// LZ4 block format via `lz4_flex` (safe encoder and decoder).
#[derive(Debug, Clone, Copy)]
pub struct Lz4;

impl Codec for Lz4 {
    fn id(&self) -> CodecId {
        CodecId::Lz4
    }
    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let bound = lz4_flex::block::get_maximum_output_size(input.len());
        let (start, tail) = grow(out, bound);
        let n = lz4_flex::block::compress_into(input, tail).map_err(|e| CodecError::Compress {
            codec: CodecId::Lz4,
            detail: e.to_string(),
        })?;
        out.truncate(start + n);
        Ok(())
    }
    fn decompress(
        &self,
        input: &[u8],
        original_len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        let (start, tail) = grow(out, original_len);
        let result = lz4_flex::block::decompress_into(input, tail);
        let n = match result {
            Ok(n) => n,
            Err(e) => {
                out.truncate(start);
                return Err(CodecError::Corrupt {
                    codec: CodecId::Lz4,
                    detail: e.to_string(),
                });
            }
        };
        if let Err(e) = check_len(CodecId::Lz4, original_len, n) {
            out.truncate(start);
            return Err(e);
        }
        Ok(())
    }
}

/// Snappy raw (unframed) format via `snap`.
#[derive(Debug, Clone, Copy)]
pub struct Snappy;

impl Codec for Snappy {
    fn id(&self) -> CodecId {
        CodecId::Snappy
    }
    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let bound = snap::raw::max_compress_len(input.len());
        let (start, tail) = grow(out, bound);
        let n = snap::raw::Encoder::new()
            .compress(input, tail)
            .map_err(|e| CodecError::Compress {
                codec: CodecId::Snappy,
                detail: e.to_string(),
            })?;
        out.truncate(start + n);
        Ok(())
    }
    fn decompress(
        &self,
        input: &[u8],
        original_len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        // Snappy carries its own length; check it against the frame before allocating.
        let announced = snap::raw::decompress_len(input).map_err(|e| CodecError::Corrupt {
            codec: CodecId::Snappy,
            detail: e.to_string(),
        })?;
        check_len(CodecId::Snappy, original_len, announced)?;
        let (start, tail) = grow(out, original_len);
        match snap::raw::Decoder::new().decompress(input, tail) {
            Ok(n) if n == original_len => Ok(()),
            Ok(n) => {
                out.truncate(start);
                Err(CodecError::LengthMismatch {
                    codec: CodecId::Snappy,
                    declared: original_len,
                    actual: n,
                })
            }
            Err(e) => {
                out.truncate(start);
                Err(CodecError::Corrupt {
                    codec: CodecId::Snappy,
                    detail: e.to_string(),
                })
            }
        }
    }
}

thread_local! {
    // zstd contexts are reused per thread: creating one per chunk costs more than
    // compressing a small chunk at the fast levels.
    static ZSTD_CCTX: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
    static ZSTD_DCTX: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// zstd at a fixed level, single-frame block API.
#[derive(Debug, Clone, Copy)]
pub struct Zstd {
    /// The compression level (negative levels are zstd's fast modes).
    pub level: i32,
}

impl Zstd {
    fn id_of(level: i32) -> CodecId {
        match level {
            -1 => CodecId::ZstdNeg1,
            1 => CodecId::Zstd1,
            3 => CodecId::Zstd3,
            9 => CodecId::Zstd9,
            _ => CodecId::Zstd19,
        }
    }
}

impl Codec for Zstd {
    fn id(&self) -> CodecId {
        Self::id_of(self.level)
    }
    fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let codec = self.id();
        let err = |e: std::io::Error| CodecError::Compress {
            codec,
            detail: e.to_string(),
        };
        let bound = zstd::zstd_safe::compress_bound(input.len());
        let (start, _) = grow(out, bound);
        let n = ZSTD_CCTX.with(|cell| -> Result<usize, CodecError> {
            let mut slot = cell.borrow_mut();
            let cctx = match slot.as_mut() {
                Some(c) => {
                    c.set_compression_level(self.level).map_err(err)?;
                    c
                }
                None => slot.insert(zstd::bulk::Compressor::new(self.level).map_err(err)?),
            };
            cctx.compress_to_buffer(input, &mut out[start..])
                .map_err(err)
        });
        match n {
            Ok(n) => {
                out.truncate(start + n);
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(e)
            }
        }
    }
    fn decompress(
        &self,
        input: &[u8],
        original_len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), CodecError> {
        let codec = self.id();
        let corrupt = |e: std::io::Error| CodecError::Corrupt {
            codec,
            detail: e.to_string(),
        };
        let (start, _) = grow(out, original_len);
        let n = ZSTD_DCTX.with(|cell| -> Result<usize, CodecError> {
            let mut slot = cell.borrow_mut();
            let dctx = match slot.as_mut() {
                Some(d) => d,
                None => slot.insert(zstd::bulk::Decompressor::new().map_err(corrupt)?),
            };
            dctx.decompress_to_buffer(input, &mut out[start..])
                .map_err(corrupt)
        });
        let res = n.and_then(|n| check_len(codec, original_len, n));
        if res.is_err() {
            out.truncate(start);
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_named() {
        for (i, c) in CodecId::ALL.iter().enumerate() {
            assert_eq!(c.index(), i);
            assert_eq!(CodecId::from_u8(i as u8), Some(*c));
            assert_eq!(c.codec().id(), *c);
            assert_eq!(c.name().parse::<CodecId>().ok(), Some(*c));
            let json = serde_json::to_string(c).ok();
            assert_eq!(json, Some(format!("\"{}\"", c.name())));
        }
        assert_eq!(CodecId::from_u8(8), None);
        assert!("gzip".parse::<CodecId>().is_err());
    }

    #[test]
    fn every_codec_round_trips_and_appends() {
        let data: Vec<u8> = b"the quick brown fox jumps over the lazy dog "
            .iter()
            .cycle()
            .take(10_000)
            .copied()
            .collect();
        for c in CodecId::ALL {
            let mut packed = vec![7u8];
            c.codec().compress(&data, &mut packed).expect("compress");
            assert_eq!(packed[0], 7);
            let mut out = vec![9u8];
            c.codec()
                .decompress(&packed[1..], data.len(), &mut out)
                .expect("decompress");
            assert_eq!(&out[1..], &data[..], "{c}");
        }
    }

    #[test]
    fn wrong_declared_length_is_an_error_and_leaves_out_untouched() {
        let data = vec![1u8; 5000];
        for c in CodecId::ALL {
            let mut packed = Vec::new();
            c.codec().compress(&data, &mut packed).expect("compress");
            for declared in [0, 4999, 5001] {
                let mut out = vec![3u8];
                assert!(
                    c.codec().decompress(&packed, declared, &mut out).is_err(),
                    "{c} accepted declared length {declared}"
                );
                assert_eq!(out, vec![3u8]);
            }
        }
    }
}
