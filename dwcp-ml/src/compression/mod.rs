//! Adaptive compression: pick, per chunk and per link, the codec that minimises
//! end-to-end transfer time `t_compress + compressed_bytes / bandwidth + t_decompress`.
//!
//! - [`codec`]: the codecs behind one trait;
//! - [`frame`]: the self-describing, bounded frame format;

pub mod codec;
pub mod frame;
