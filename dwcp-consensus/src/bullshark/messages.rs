//! What Bullshark nodes send each other.

use dwcp_core::{Digest, Round, Signed};
use serde::{Deserialize, Serialize};

use super::batch::Batch;
use super::certificate::Certificate;
use super::header::Header;
use super::transfer::OrderReply;
use super::vote::HeaderVote;

/// Most digests one request may name.
pub const MAX_REQUEST: usize = 256;

/// Most certificates in one answer to a range request.
pub const MAX_RANGE: usize = 1_024;

/// A Bullshark (Narwhal) message. Batches, acknowledgements and requests are not
/// signed: the channel authenticates their sender, and nothing is decided on them
/// alone. Headers, votes and certificates carry signatures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)] // certificates dominate; boxing buys nothing on the wire
pub enum BullsharkMessage {
    /// A worker's sealed batch, broadcast to the other workers or sent on request.
    Batch(Batch),
    /// "I store the batch with this digest", to the batch's author.
    BatchAck(Digest),
    /// Asks for batches by digest.
    BatchRequest(Vec<Digest>),
    /// A primary's header for a round.
    Header(Signed<Header>),
    /// A vote for a header, to its author.
    Vote(Signed<HeaderVote>),
    /// A certified header: a DAG vertex.
    Certificate(Certificate),
    /// Asks for certificates by digest.
    CertificateRequest(Vec<Digest>),
    /// A node that fell behind asks for every certificate from this round up.
    CertificateRange(Round),
    /// Certificates in round order: the answer to a [`BullsharkMessage::CertificateRange`].
    Certificates(Vec<Certificate>),
    /// A node too far behind to fetch the DAG asks for the committed order from
    /// this position (count of committed leaders) on; see [`super::transfer`].
    OrderRequest(u64),
    /// Committed order entries: the answer to a [`BullsharkMessage::OrderRequest`].
    Order(OrderReply),
}

impl dwcp_core::MessageKind for BullsharkMessage {
    fn kind(&self) -> &'static str {
        match self {
            BullsharkMessage::Batch(_) => "batch",
            BullsharkMessage::BatchAck(_) => "batch_ack",
            BullsharkMessage::BatchRequest(_) => "batch_request",
            BullsharkMessage::Header(_) => "header",
            BullsharkMessage::Vote(_) => "vote",
            BullsharkMessage::Certificate(_) => "certificate",
            BullsharkMessage::CertificateRequest(_) => "certificate_request",
            BullsharkMessage::CertificateRange(_) => "certificate_range",
            BullsharkMessage::Certificates(_) => "certificates",
            BullsharkMessage::OrderRequest(_) => "order_request",
            BullsharkMessage::Order(_) => "order",
        }
    }
}

impl crate::sim::Adversarial for BullsharkMessage {
    fn statement(&self) -> Option<(dwcp_core::NodeId, crate::sim::StatementKey, Digest)> {
        use crate::sim::StatementKey;
        match self {
            BullsharkMessage::Header(h) => Some((
                h.author(),
                StatementKey {
                    kind: "header",
                    view: h.value().round,
                    seq: 0,
                },
                *h.digest(),
            )),
            BullsharkMessage::Vote(v) => Some((
                v.author(),
                StatementKey {
                    kind: "vote",
                    view: v.value().round,
                    seq: u64::from(v.value().author.0),
                },
                v.value().header,
            )),
            _ => None,
        }
    }

    fn tamper_signature(&mut self) {
        match self {
            BullsharkMessage::Header(h) => h.corrupt_signature(),
            BullsharkMessage::Vote(v) => v.corrupt_signature(),
            BullsharkMessage::Certificate(c) => tamper(c),
            BullsharkMessage::Certificates(cs) => cs.iter_mut().for_each(tamper),
            _ => {}
        }
    }
}

fn tamper(c: &mut Certificate) {
    match c.votes.first_mut() {
        Some(v) => v.corrupt_signature(),
        None => c.header.corrupt_signature(),
    }
}
