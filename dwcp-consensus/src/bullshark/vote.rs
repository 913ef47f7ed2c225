//! Votes on headers: a node's signed statement that it stores a header's batches
//! and parents and has voted for no other header of that author and round.

use dwcp_core::{Digest, NodeId, Round, Signed};
use serde::{Deserialize, Serialize};

use super::header::Header;

/// A vote for the header with digest `header` by `author` in `round`; travels as a
/// [`Signed<HeaderVote>`] whose signer is the voter.
///
/// Author and round are part of the signed value so a vote cannot be replayed into
/// a certificate for another slot, and so the voter's "one vote per author and
/// round" rule can be checked from the vote alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HeaderVote {
    /// Digest of the header voted for ([`Signed::digest`] of the signed header).
    pub header: Digest,
    /// The header's author.
    pub author: NodeId,
    /// The header's round.
    pub round: Round,
}

impl dwcp_core::Signable for HeaderVote {
    const DOMAIN: &'static str = "dwcp narwhal vote v1";
}

impl HeaderVote {
    /// The vote that endorses `header`.
    pub fn for_header(header: &Signed<Header>) -> HeaderVote {
        HeaderVote {
            header: *header.digest(),
            author: header.value().author,
            round: header.value().round,
        }
    }
}
