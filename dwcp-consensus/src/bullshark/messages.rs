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

impl crate::statement::Adversarial for BullsharkMessage {
    fn statements(&self, out: &mut Vec<crate::statement::Statement>) {
        match self {
            BullsharkMessage::Header(h) => header_statement(h, out),
            BullsharkMessage::Vote(v) => vote_statement(v, out),
            BullsharkMessage::Certificate(c) => certificate_statements(c, out),
            BullsharkMessage::Certificates(cs) => {
                cs.iter().for_each(|c| certificate_statements(c, out))
            }
            _ => {}
        }
    }

    fn round(&self) -> Option<u64> {
        match self {
            BullsharkMessage::Header(h) => Some(h.value().round),
            BullsharkMessage::Vote(v) => Some(v.value().round),
            BullsharkMessage::Certificate(c) => Some(c.header.value().round),
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

fn header_statement(h: &Signed<Header>, out: &mut Vec<crate::statement::Statement>) {
    out.push(crate::statement::Statement {
        author: h.author(),
        key: crate::statement::StatementKey {
            kind: "header",
            view: h.value().round,
            seq: 0,
        },
        digest: *h.digest(),
    });
}

fn vote_statement(v: &Signed<HeaderVote>, out: &mut Vec<crate::statement::Statement>) {
    out.push(crate::statement::Statement {
        author: v.author(),
        key: crate::statement::StatementKey {
            kind: "vote",
            view: v.value().round,
            seq: u64::from(v.value().author.0),
        },
        digest: v.value().header,
    });
}

fn certificate_statements(c: &Certificate, out: &mut Vec<crate::statement::Statement>) {
    header_statement(&c.header, out);
    c.votes.iter().for_each(|v| vote_statement(v, out));
}
