//! Adaptive compression: pick, per chunk and per link, the codec that minimises
//! end-to-end transfer time `t_compress + compressed_bytes / bandwidth + t_decompress`.
//!
//! - [`codec`]: the codecs behind one trait;
//! - [`frame`]: the self-describing, bounded frame format;
//! - [`features`]: chunk features from a bounded sample, and the [`features::Link`];
//! - [`gbt`]: the boosted regression trees the model is made of;
//! - [`forest`]: those trees compiled for prediction over binned features;
//! - [`model`]: the trained per-codec predictors of size and speed;
//! - [`calibrate`]: this machine's codec speeds (the profile the model is scaled by);
//! - [`selector`]: [`CompressionSelector`], the decision and the adaptive API;
//! - [`speed`]: how fast the machine compresses right now, from the chunks the
//!   selector compressed;
//! - [`measure`], [`corpus`], [`train`], [`eval`]: measuring, the by-file split,
//!   training and evaluation against measured outcomes.

pub mod calibrate;
pub mod codec;
pub mod corpus;
pub mod eval;
pub mod features;
pub mod forest;
pub mod frame;
pub mod gbt;
pub mod measure;
pub mod model;
pub mod selector;
pub mod speed;
pub mod train;

pub use codec::CodecId;
pub use features::{ChunkFeatures, Link};
pub use selector::{Choice, CompressionSelector};
