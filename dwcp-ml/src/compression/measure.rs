//! Measuring what every codec actually does to one chunk on this machine: frame
//! size, compress time and decompress time. Training and evaluation both use it.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::codec::CodecId;
use super::frame::{self, DecodeLimits, FrameError};

/// What one codec did to one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CodecOutcome {
    /// The codec.
    pub codec: CodecId,
    /// Bytes of the whole frame (header included), i.e. what goes on the wire.
    pub frame_len: usize,
    /// Seconds to build the frame (compress + checksum), minimum over the repetitions.
    pub compress_s: f64,
    /// Seconds to decode and verify the frame, minimum over the repetitions.
    pub decompress_s: f64,
}

impl CodecOutcome {
    /// End-to-end seconds for this outcome on a link of `bandwidth_bps` bits per
    /// second with `rtt_s` round-trip time.
    pub fn total_s(&self, bandwidth_bps: f64, rtt_s: f64) -> f64 {
        self.compress_s + self.frame_len as f64 * 8.0 / bandwidth_bps + self.decompress_s + rtt_s
    }
}

/// Every codec's outcome on one chunk, in [`CodecId::ALL`] order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkOutcome {
    /// Chunk length.
    pub len: usize,
    /// One entry per codec.
    pub codecs: Vec<CodecOutcome>,
}

/// A codec produced a frame that did not decode back to the input: a bug, reported.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// Encoding or decoding failed.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The round trip changed the data.
    #[error("{0}: round trip changed the data")]
    RoundTrip(CodecId),
}

/// Compresses and decompresses `chunk` with every codec `reps` times (at least
/// once), interleaving codecs between repetitions so that a burst of load from
/// another process hits all codecs alike, and keeps the minimum time of each: the
/// minimum is the least noisy estimate of the cost on an otherwise idle core.
pub fn measure_chunk(chunk: &[u8], reps: usize) -> Result<ChunkOutcome, MeasureError> {
    let limits = DecodeLimits {
        max_original_len: chunk.len(),
    };
    let mut framed = Vec::with_capacity(chunk.len() + chunk.len() / 8 + 64);
    let mut plain = Vec::with_capacity(chunk.len());
    let mut best = [(usize::MAX, f64::INFINITY, f64::INFINITY); CodecId::COUNT];
    for rep in 0..reps.max(1) {
        for codec in CodecId::ALL {
            framed.clear();
            let t0 = Instant::now();
            frame::encode_into(codec, chunk, &mut framed)?;
            let tc = t0.elapsed().as_secs_f64();
            plain.clear();
            let t1 = Instant::now();
            frame::decode_into(&framed, &limits, &mut plain)?;
            let td = t1.elapsed().as_secs_f64();
            if rep == 0 && plain != chunk {
                return Err(MeasureError::RoundTrip(codec));
            }
            let b = &mut best[codec.index()];
            b.0 = framed.len();
            b.1 = b.1.min(tc);
            b.2 = b.2.min(td);
        }
    }
    Ok(ChunkOutcome {
        len: chunk.len(),
        codecs: CodecId::ALL
            .iter()
            .map(|&codec| {
                let (frame_len, compress_s, decompress_s) = best[codec.index()];
                CodecOutcome {
                    codec,
                    frame_len,
                    compress_s,
                    decompress_s,
                }
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_every_codec() {
        let chunk = b"measure me, measure me again. ".repeat(300);
        let m = measure_chunk(&chunk, 2).expect("measure");
        assert_eq!(m.codecs.len(), CodecId::COUNT);
        assert_eq!(m.codecs[0].frame_len, chunk.len() + frame::HEADER_LEN);
        for c in &m.codecs {
            assert!(c.compress_s > 0.0 && c.compress_s.is_finite());
            assert!(c.decompress_s > 0.0 && c.decompress_s.is_finite());
        }
        assert!(m.codecs[CodecId::Zstd19.index()].frame_len < chunk.len() / 10);
        let slow = m.codecs[0].total_s(1e6, 0.0);
        assert!(slow > chunk.len() as f64 * 8.0 / 1e6);
    }
}
