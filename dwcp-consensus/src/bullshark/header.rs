//! Narwhal headers (Danezis et al., EuroSys '22): a node's proposal for a round.

use dwcp_core::{Digest, NodeId, Round};
use serde::{Deserialize, Serialize};

/// A node's vertex proposal for `round`: the batches it vouches for and the
/// certificates of round `round - 1` it builds on.
///
/// A header travels as a [`dwcp_core::Signed<Header>`] signed by `author`; its
/// digest is the envelope digest ([`dwcp_core::Signed::digest`]), which is also the
/// digest of the certificate that later certifies it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Header {
    /// The proposer; must be the signer of the envelope.
    pub author: NodeId,
    /// The DAG round, starting at 1 (round 0 is genesis).
    pub round: Round,
    /// Digests of the batches this header orders, each held by a quorum of nodes.
    pub batches: Vec<Digest>,
    /// Digests of at least a quorum of distinct certificates of round `round - 1`.
    pub parents: Vec<Digest>,
}

impl dwcp_core::Signable for Header {
    const DOMAIN: &'static str = "dwcp narwhal header v1";
}
