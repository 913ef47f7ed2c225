//! DWCP: embeddable Byzantine consensus engines, an adaptive compression selector
//! and a multi-agent resource allocator.
//!
//! This facade re-exports the member crates:
//! - [`core`]: ids, crypto, committee, wire codec, the sans-IO engine contract, storage;
//! - [`consensus`]: the engines and the deterministic simulator;
//! - [`ml`]: the compression selector and the resource allocator;
//! - [`daemon`]: the pieces of `dwcpd`.

pub use dwcp_consensus as consensus;
pub use dwcp_core as core;
pub use dwcp_daemon as daemon;
pub use dwcp_ml as ml;
