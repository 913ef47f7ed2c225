//! What ProBFT replicas send each other, each statement signed by its author.
//!
//! Every vote carries the leader-signed header it votes for and the sender's VRF
//! proof for its `(view, phase)`, so a receiver can check on its own that it is in
//! the sender's sample, and two votes that carry different headers for one view
//! and sequence number are proof that the leader equivocated.

use super::sample::Phase;
use crate::statement::{Adversarial, Statement, StatementKey};
use bytes::Bytes;
use dwcp_core::crypto::VrfProof;
use dwcp_core::{Committed, Digest, MessageKind, NodeId, Seq, Signed, View};
use serde::{Deserialize, Serialize};

/// The leader's proposal header: batch `digest` at sequence number `seq` in `view`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Header {
    /// The view.
    pub view: View,
    /// The sequence number.
    pub seq: Seq,
    /// [`crate::pbft::batch_digest`] of the batch.
    pub digest: Digest,
}

impl dwcp_core::Signable for Header {
    const DOMAIN: &'static str = "dwcp probft header v1";
}

/// A leader's proposal: its signed header and the batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The signed header.
    pub header: Signed<Header>,
    /// The client transactions, in order.
    pub batch: Vec<Bytes>,
}

/// A PREPARE or COMMIT for `(view, seq, digest)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Vote {
    /// PREPARE or COMMIT.
    pub phase: Phase,
    /// The view.
    pub view: View,
    /// The sequence number.
    pub seq: Seq,
    /// The batch digest.
    pub digest: Digest,
}

impl dwcp_core::Signable for Vote {
    const DOMAIN: &'static str = "dwcp probft vote v1";
}

/// A vote as it travels to the sender's sample: with the header it votes for and
/// the VRF proof of the sender's sample for `(view, phase)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SampledVote {
    /// The leader-signed header voted for.
    pub header: Signed<Header>,
    /// The vote.
    pub vote: Signed<Vote>,
    /// The sender's VRF proof for the vote's view and phase.
    pub proof: VrfProof,
}

/// Proof that `holder` was prepared (PREPAREs) or decided (COMMITs) on a
/// proposal: `q` matching votes from distinct replicas other than the holder, each
/// with the VRF proof that the holder was in its sender's sample.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// The replica the votes were sent to.
    pub holder: NodeId,
    /// The proposal (its header and batch).
    pub proposal: Proposal,
    /// The votes, one phase, each with its sender's VRF proof.
    pub votes: Vec<(Signed<Vote>, VrfProof)>,
}

impl Certificate {
    /// The phase of its votes (`None` if it has none).
    pub fn phase(&self) -> Option<Phase> {
        self.votes.first().map(|(v, _)| v.value().phase)
    }

    /// Its header.
    pub fn header(&self) -> &Header {
        self.proposal.header.value()
    }
}

/// Two headers one leader signed for one view and sequence number, with
/// different digests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Equivocation {
    /// One header.
    pub a: Signed<Header>,
    /// Another.
    pub b: Signed<Header>,
}

/// A replica's request to move to `new_view`, sent to that view's leader only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewChange {
    /// The view the sender moves to.
    pub new_view: View,
    /// The decision certificate of the sender's last decided slot (`None` at
    /// genesis).
    pub decided: Option<Certificate>,
    /// The strongest certificate the sender holds for the slot after it (a
    /// decision outranks a prepared certificate of its view; a later view
    /// outranks an earlier one).
    pub highest: Option<Certificate>,
    /// Proof that a leader equivocated, if the sender holds one.
    pub evidence: Option<Equivocation>,
}

impl dwcp_core::Signable for ViewChange {
    const DOMAIN: &'static str = "dwcp probft view-change v1";
}

/// The new leader's announcement of `view`: the `n − f_max` view changes it
/// took, from which every replica recomputes what it must propose, and that
/// proposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewView {
    /// The new view.
    pub view: View,
    /// Distinct replicas' view changes to `view`.
    pub view_changes: Vec<Signed<ViewChange>>,
    /// The proposal for the slot after the highest decided one they show.
    pub proposal: Proposal,
}

impl dwcp_core::Signable for NewView {
    const DOMAIN: &'static str = "dwcp probft new-view v1";
}

/// A ProBFT message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProbftMessage {
    /// The leader's proposal, to every replica.
    Propose(Proposal),
    /// A PREPARE or COMMIT, to the sender's sample.
    Vote(Box<SampledVote>),
    /// Proof of a leader's equivocation, to every replica.
    Evidence(Box<Equivocation>),
    /// A view change, to the new view's leader.
    ViewChange(Box<Signed<ViewChange>>),
    /// A new view, to every replica.
    NewView(Box<Signed<NewView>>),
    /// A request for decided slots from `from` on.
    Fetch {
        /// The first sequence number the sender lacks.
        from: Seq,
    },
    /// Decided slots with their decision certificates, in order.
    Decided(Vec<Certificate>),
    /// Client transactions a replica relays to the leader.
    Forward(Vec<Bytes>),
    /// Decided batches read from the sender's store (older than the certificates
    /// it keeps), taken once `f_max + 1` replicas sent the same hash chain.
    Log(Vec<Committed>),
}

impl MessageKind for ProbftMessage {
    fn kind(&self) -> &'static str {
        match self {
            ProbftMessage::Propose(_) => "propose",
            ProbftMessage::Vote(v) => match v.vote.value().phase {
                Phase::Prepare => "prepare",
                Phase::Commit => "commit",
            },
            ProbftMessage::Evidence(_) => "evidence",
            ProbftMessage::ViewChange(_) => "view_change",
            ProbftMessage::NewView(_) => "new_view",
            ProbftMessage::Fetch { .. } => "fetch",
            ProbftMessage::Decided(_) => "decided",
            ProbftMessage::Log(_) => "log",
            ProbftMessage::Forward(_) => "forward",
        }
    }
}

fn key(kind: &'static str, view: View, seq: Seq) -> StatementKey {
    StatementKey { kind, view, seq }
}

fn header(h: &Signed<Header>, out: &mut Vec<Statement>) {
    let v = h.value();
    out.push(Statement {
        author: h.author(),
        key: key("header", v.view, v.seq),
        digest: v.digest,
    });
}

fn vote(s: &Signed<Vote>, out: &mut Vec<Statement>) {
    let v = s.value();
    let kind = match v.phase {
        Phase::Prepare => "prepare",
        Phase::Commit => "commit",
    };
    out.push(Statement {
        author: s.author(),
        key: key(kind, v.view, v.seq),
        digest: v.digest,
    });
}

fn certificate(c: &Certificate, out: &mut Vec<Statement>) {
    header(&c.proposal.header, out);
    for (v, _) in &c.votes {
        vote(v, out);
    }
}

fn view_change(s: &Signed<ViewChange>, out: &mut Vec<Statement>) {
    let vc = s.value();
    out.push(Statement {
        author: s.author(),
        key: key("view-change", vc.new_view, 0),
        digest: *s.digest(),
    });
    for c in vc.decided.iter().chain(vc.highest.iter()) {
        certificate(c, out);
    }
}

impl Adversarial for ProbftMessage {
    fn statements(&self, out: &mut Vec<Statement>) {
        match self {
            ProbftMessage::Propose(p) => header(&p.header, out),
            ProbftMessage::Vote(v) => {
                header(&v.header, out);
                vote(&v.vote, out);
            }
            // Evidence is two statements of one leader that contradict each
            // other: the faulty leader's, which the checker need not be told twice.
            ProbftMessage::Evidence(_)
            | ProbftMessage::Fetch { .. }
            | ProbftMessage::Log(_)
            | ProbftMessage::Forward(_) => {}
            ProbftMessage::ViewChange(vc) => view_change(vc, out),
            ProbftMessage::NewView(nv) => {
                out.push(Statement {
                    author: nv.author(),
                    key: key("new-view", nv.value().view, 0),
                    digest: *nv.digest(),
                });
                for vc in &nv.value().view_changes {
                    view_change(vc, out);
                }
                header(&nv.value().proposal.header, out);
            }
            ProbftMessage::Decided(cs) => {
                for c in cs {
                    certificate(c, out);
                }
            }
        }
    }

    fn round(&self) -> Option<u64> {
        match self {
            ProbftMessage::Propose(p) => Some(p.header.value().view),
            ProbftMessage::Vote(v) => Some(v.vote.value().view),
            ProbftMessage::ViewChange(vc) => Some(vc.value().new_view),
            ProbftMessage::NewView(nv) => Some(nv.value().view),
            _ => None,
        }
    }

    fn slot(&self) -> Option<u64> {
        match self {
            ProbftMessage::Propose(p) => Some(p.header.value().seq),
            ProbftMessage::Vote(v) => Some(v.vote.value().seq),
            _ => None,
        }
    }

    fn tamper_signature(&mut self) {
        match self {
            ProbftMessage::Propose(p) => p.header.corrupt_signature(),
            ProbftMessage::Vote(v) => v.vote.corrupt_signature(),
            ProbftMessage::Evidence(e) => e.a.corrupt_signature(),
            ProbftMessage::ViewChange(vc) => vc.corrupt_signature(),
            ProbftMessage::NewView(nv) => nv.corrupt_signature(),
            ProbftMessage::Fetch { .. } | ProbftMessage::Log(_) | ProbftMessage::Forward(_) => {}
            ProbftMessage::Decided(cs) => {
                if let Some(c) = cs.first_mut() {
                    c.proposal.header.corrupt_signature();
                }
            }
        }
    }
}
