//! PBFT messages (Castro & Liskov, OSDI '99, §4), each signed by its author.

use crate::dedup::DedupWindow;
use bytes::Bytes;
use dwcp_core::{Committed, Digest, Seq, Signed, View};
use serde::{Deserialize, Serialize};

/// The primary's proposal: batch `batch` takes sequence number `seq` in `view`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrePrepare {
    /// The view.
    pub view: View,
    /// The proposed sequence number.
    pub seq: Seq,
    /// [`batch_digest`] of `batch`.
    pub digest: Digest,
    /// The client transactions, in order.
    pub batch: Vec<Bytes>,
}

impl dwcp_core::Signable for PrePrepare {
    const DOMAIN: &'static str = "dwcp pbft pre-prepare v1";
}

/// The phase a [`Vote`] belongs to; signed, so a prepare cannot pass for a commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// Second phase: the backup accepted the pre-prepare.
    Prepare,
    /// Third phase: the sender is prepared.
    Commit,
}

/// A prepare or commit vote for `(view, seq, digest)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Vote {
    /// Prepare or commit.
    pub phase: Phase,
    /// The view.
    pub view: View,
    /// The sequence number.
    pub seq: Seq,
    /// The batch digest.
    pub digest: Digest,
}

impl dwcp_core::Signable for Vote {
    const DOMAIN: &'static str = "dwcp pbft vote v1";
}

/// A checkpoint vote: the sender's log digest after executing `seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CheckpointVote {
    /// The checkpointed sequence number.
    pub seq: Seq,
    /// The hash chain of the committed log up to `seq`.
    pub state: Digest,
}

impl dwcp_core::Signable for CheckpointVote {
    const DOMAIN: &'static str = "dwcp pbft checkpoint v1";
}

/// Proof that a batch was prepared: its pre-prepare and a quorum minus one of
/// matching prepares from backups (§4.4, the set P of a view-change message).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreparedCert {
    /// The primary's pre-prepare.
    pub pre_prepare: Signed<PrePrepare>,
    /// Matching prepares from distinct backups.
    pub prepares: Vec<Signed<Vote>>,
}

/// A request to move to `new_view` (§4.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewChange {
    /// The view the sender wants to move to.
    pub new_view: View,
    /// The sender's last stable checkpoint.
    pub stable_seq: Seq,
    /// Quorum of checkpoint votes proving `stable_seq` (empty for 0).
    pub stable_proof: Vec<Signed<CheckpointVote>>,
    /// Prepared certificates for sequence numbers above `stable_seq`.
    pub prepared: Vec<PreparedCert>,
}

impl dwcp_core::Signable for ViewChange {
    const DOMAIN: &'static str = "dwcp pbft view-change v1";
}

/// The new primary's announcement of `view` (§4.4): the view changes it used and
/// the pre-prepares it re-issues, recomputable by every backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewView {
    /// The new view.
    pub view: View,
    /// A quorum of view-change messages for `view`.
    pub view_changes: Vec<Signed<ViewChange>>,
    /// Pre-prepares for the sequence numbers between the checkpoint and the
    /// highest prepared one (an empty batch where nothing was prepared).
    pub pre_prepares: Vec<Signed<PrePrepare>>,
}

impl dwcp_core::Signable for NewView {
    const DOMAIN: &'static str = "dwcp pbft new-view v1";
}

/// A primary-group member's co-signature on a proposal (T-PBFT's mutual
/// supervision): it checked the batch and will co-sign no other for this view and
/// sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CoSignature {
    /// The proposal's view.
    pub view: View,
    /// Its sequence number.
    pub seq: Seq,
    /// Its batch digest.
    pub digest: Digest,
}

impl dwcp_core::Signable for CoSignature {
    const DOMAIN: &'static str = "dwcp pbft co-signature v1";
}

/// A committed batch with its proof, sent to a replica that fell behind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedEntry {
    /// The pre-prepare that carried the batch.
    pub pre_prepare: Signed<PrePrepare>,
    /// A quorum of commit votes for the same `(view, seq, digest)`.
    pub commits: Vec<Signed<Vote>>,
}

/// Every message a PBFT replica sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PbftMessage {
    /// Phase one.
    PrePrepare(Signed<PrePrepare>),
    /// Phases two and three.
    Vote(Signed<Vote>),
    /// Periodic checkpoint.
    Checkpoint(Signed<CheckpointVote>),
    /// View change request.
    ViewChange(Signed<ViewChange>),
    /// New view announcement.
    NewView(Signed<NewView>),
    /// "Send me committed batches from `from` on."
    Fetch {
        /// First missing sequence number.
        from: Seq,
    },
    /// Committed batches with their commit certificates, in order.
    Entries(Vec<CommittedEntry>),
    /// Committed batches read from the sender's store, in order, each with the
    /// hash chain after it ([`chain_next`]): a receiver checks they extend its own
    /// chain and executes them once `f+1` members sent the same chain.
    Log(Vec<Committed>),
    /// Client transactions a backup relays to the primary.
    Request(Vec<Bytes>),
    /// A primary-group member asks the others of its group to co-sign its
    /// proposal (only in instances with a primary group, see
    /// [`crate::pbft::PrimaryGroup`]).
    CoSignRequest(Signed<PrePrepare>),
    /// A group member's co-signature, sent back to the proposer.
    CoSign(Signed<CoSignature>),
    /// A proposal with the co-signatures that let backups accept it.
    CoSigned {
        /// The proposal.
        pre_prepare: Signed<PrePrepare>,
        /// Co-signatures of other group members on its view, sequence number and
        /// digest.
        cosigns: Vec<Signed<CoSignature>>,
    },
}

impl dwcp_core::MessageKind for PbftMessage {
    fn kind(&self) -> &'static str {
        match self {
            PbftMessage::PrePrepare(_) => "pre_prepare",
            PbftMessage::Vote(v) => match v.value().phase {
                Phase::Prepare => "prepare",
                Phase::Commit => "commit",
            },
            PbftMessage::Checkpoint(_) => "checkpoint",
            PbftMessage::ViewChange(_) => "view_change",
            PbftMessage::NewView(_) => "new_view",
            PbftMessage::Fetch { .. } => "fetch",
            PbftMessage::Entries(_) => "entries",
            PbftMessage::Log(_) => "log",
            PbftMessage::Request(_) => "request",
            PbftMessage::CoSignRequest(_) => "cosign_request",
            PbftMessage::CoSign(_) => "cosign",
            PbftMessage::CoSigned { .. } => "pre_prepare",
        }
    }
}

/// The hash chain of the committed log: `prev` extended by the batch output at
/// `seq`, whose [`batch_digest`] is `output`.
pub fn chain_next(prev: &Digest, seq: Seq, output: &Digest) -> Digest {
    Digest::of_parts(
        "dwcp pbft chain v2",
        &[&prev.0, &seq.to_le_bytes(), &output.0],
    )
}

/// What executing a committed pre-prepare outputs, given the repeat window of the
/// log before it: its transactions not output within the window, their digests,
/// and the digest the log's chain covers ([`chain_next`]): the pre-prepare's own
/// digest when nothing was dropped, else that of what was output. Every node that
/// applies a batch, replica or observer, computes this the same way.
pub fn execution_output(
    executed: &DedupWindow,
    pp: &PrePrepare,
) -> (Vec<Bytes>, Vec<Digest>, Digest) {
    let fresh = executed.fresh(pp.batch.iter().cloned(), true);
    let output = if fresh.transactions.len() == pp.batch.len() {
        pp.digest
    } else {
        batch_digest(&fresh.transactions)
    };
    (fresh.transactions, fresh.digests, output)
}

/// The digest a pre-prepare names for its batch.
pub fn batch_digest(batch: &[Bytes]) -> Digest {
    let mut h = blake3::Hasher::new_derive_key("dwcp pbft batch v1");
    for tx in batch {
        h.update(&(tx.len() as u64).to_le_bytes());
        h.update(tx);
    }
    Digest(*h.finalize().as_bytes())
}

impl crate::statement::Adversarial for PbftMessage {
    fn statements(&self, out: &mut Vec<crate::statement::Statement>) {
        use statements::*;
        match self {
            PbftMessage::PrePrepare(s) => pre_prepare(s, out),
            PbftMessage::Vote(s) => vote(s, out),
            PbftMessage::Checkpoint(s) => checkpoint(s, out),
            PbftMessage::ViewChange(s) => view_change(s, out),
            PbftMessage::NewView(s) => {
                out.push(envelope(s, "new-view", s.value().view));
                for vc in &s.value().view_changes {
                    view_change(vc, out);
                }
                for pp in &s.value().pre_prepares {
                    pre_prepare(pp, out);
                }
            }
            PbftMessage::Entries(es) => {
                for e in es {
                    pre_prepare(&e.pre_prepare, out);
                    e.commits.iter().for_each(|c| vote(c, out));
                }
            }
            PbftMessage::CoSignRequest(s) => pre_prepare(s, out),
            PbftMessage::CoSign(s) => cosign(s, out),
            PbftMessage::CoSigned {
                pre_prepare: pp,
                cosigns,
            } => {
                pre_prepare(pp, out);
                cosigns.iter().for_each(|c| cosign(c, out));
            }
            PbftMessage::Fetch { .. } | PbftMessage::Request(_) | PbftMessage::Log(_) => {}
        }
    }

    fn round(&self) -> Option<u64> {
        match self {
            PbftMessage::PrePrepare(s) => Some(s.value().view),
            PbftMessage::Vote(s) => Some(s.value().view),
            PbftMessage::ViewChange(s) => Some(s.value().new_view),
            PbftMessage::NewView(s) => Some(s.value().view),
            PbftMessage::CoSignRequest(s) => Some(s.value().view),
            PbftMessage::CoSign(s) => Some(s.value().view),
            PbftMessage::CoSigned { pre_prepare, .. } => Some(pre_prepare.value().view),
            PbftMessage::Checkpoint(_)
            | PbftMessage::Fetch { .. }
            | PbftMessage::Entries(_)
            | PbftMessage::Log(_)
            | PbftMessage::Request(_) => None,
        }
    }

    fn slot(&self) -> Option<u64> {
        match self {
            PbftMessage::PrePrepare(s) => Some(s.value().seq),
            PbftMessage::Vote(s) => Some(s.value().seq),
            PbftMessage::CoSignRequest(s) => Some(s.value().seq),
            PbftMessage::CoSign(s) => Some(s.value().seq),
            PbftMessage::CoSigned { pre_prepare, .. } => Some(pre_prepare.value().seq),
            _ => None,
        }
    }

    fn tamper_signature(&mut self) {
        match self {
            PbftMessage::PrePrepare(s) => s.corrupt_signature(),
            PbftMessage::Vote(s) => s.corrupt_signature(),
            PbftMessage::Checkpoint(s) => s.corrupt_signature(),
            PbftMessage::ViewChange(s) => s.corrupt_signature(),
            PbftMessage::NewView(s) => s.corrupt_signature(),
            PbftMessage::CoSignRequest(s) => s.corrupt_signature(),
            PbftMessage::CoSign(s) => s.corrupt_signature(),
            PbftMessage::CoSigned { cosigns, .. } => {
                if let Some(c) = cosigns.first_mut() {
                    c.corrupt_signature();
                }
            }
            PbftMessage::Fetch { .. } | PbftMessage::Request(_) | PbftMessage::Log(_) => {}
            PbftMessage::Entries(es) => {
                if let Some(e) = es.first_mut() {
                    e.pre_prepare.corrupt_signature();
                }
            }
        }
    }
}

/// The signed statements inside PBFT messages, for the simulator's checker.
mod statements {
    use super::*;
    use crate::statement::{Statement, StatementKey};

    fn key(kind: &'static str, view: View, seq: Seq) -> StatementKey {
        StatementKey { kind, view, seq }
    }

    /// A whole signed envelope as one statement, keyed by kind and view.
    pub(super) fn envelope<T>(s: &Signed<T>, kind: &'static str, view: View) -> Statement {
        Statement {
            author: s.author(),
            key: key(kind, view, 0),
            digest: *s.digest(),
        }
    }

    pub(super) fn pre_prepare(s: &Signed<PrePrepare>, out: &mut Vec<Statement>) {
        let v = s.value();
        out.push(Statement {
            author: s.author(),
            key: key("pre-prepare", v.view, v.seq),
            digest: v.digest,
        });
    }

    pub(super) fn vote(s: &Signed<Vote>, out: &mut Vec<Statement>) {
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

    pub(super) fn cosign(s: &Signed<CoSignature>, out: &mut Vec<Statement>) {
        let v = s.value();
        out.push(Statement {
            author: s.author(),
            key: key("co-sign", v.view, v.seq),
            digest: v.digest,
        });
    }

    pub(super) fn checkpoint(s: &Signed<CheckpointVote>, out: &mut Vec<Statement>) {
        let v = s.value();
        out.push(Statement {
            author: s.author(),
            key: key("checkpoint", 0, v.seq),
            digest: v.state,
        });
    }

    pub(super) fn view_change(s: &Signed<ViewChange>, out: &mut Vec<Statement>) {
        let v = s.value();
        out.push(envelope(s, "view-change", v.new_view));
        v.stable_proof.iter().for_each(|c| checkpoint(c, out));
        for cert in &v.prepared {
            pre_prepare(&cert.pre_prepare, out);
            cert.prepares.iter().for_each(|p| vote(p, out));
        }
    }
}
