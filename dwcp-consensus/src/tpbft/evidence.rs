//! Evidence as proposals carry it: self-verifying proofs (commit certificates and
//! pairs of conflicting statements), checked
//! by every backup before it prepares the proposal and turned into
//! [`Evidence`] for the [`super::ledger::TrustLedger`] once the proposal commits.
//!
//! A proof stands on its signatures alone: `2f_c + 1` commit votes for one view,
//! sequence number and digest prove that the digest committed there (PBFT's quorum
//! intersection), whatever the verifier has executed. So a backup that is behind
//! can check a proposal's evidence, and every node that commits the proposal
//! records the same evidence.
//!
//! The record travels as the first transaction of a proposal's batch, marked by
//! [`EVIDENCE_TAG`], so PBFT's digests, chain and stored log cover it and a node
//! that restarts or catches up rebuilds its trust from its own log.

use super::ledger::Evidence;
use crate::pbft::{Instance, PbftMessage, Phase, PrePrepare, Vote};
use bytes::Bytes;
use dwcp_core::codec::{decode, encode, CodecError};
use dwcp_core::{Committee, Digest, NodeId, Signed};
use std::collections::BTreeSet;

/// The first bytes of a batch's evidence transaction.
pub const EVIDENCE_TAG: &[u8] = b"\0dwcp tpbft evidence\0";

/// Largest evidence record decoded (bytes after the tag).
pub const MAX_EVIDENCE_BYTES: usize = 1 << 20;

/// The proofs one proposal carries.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EvidenceRecord {
    /// Commit certificates of earlier batches.
    pub commits: Vec<CommitProof>,
    /// Pairs of conflicting statements.
    pub misbehaviour: Vec<MisbehaviourProof>,
    /// On an epoch's last batch: the digest of the next epoch's committee
    /// ([`super::selection::committee_digest`]).
    pub next_committee: Option<Digest>,
}

/// Commit votes of a quorum for one batch.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommitProof {
    /// The commit votes: one view, sequence number and digest, distinct members.
    pub votes: Vec<Signed<Vote>>,
}

/// Two statements of one author that cannot both be honest.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MisbehaviourProof {
    /// Two votes of one phase, view and sequence number for different digests.
    Votes(Signed<Vote>, Signed<Vote>),
    /// Two pre-prepares of one view and sequence number for different digests.
    PrePrepares(Signed<PrePrepare>, Signed<PrePrepare>),
}

/// Why evidence was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EvidenceError {
    /// The record does not decode.
    #[error("evidence does not decode: {0}")]
    Decode(String),
    /// A signature does not verify, or its author is not a member.
    #[error("a signature does not verify or is not a member's")]
    Signature,
    /// Fewer distinct members than a quorum.
    #[error("{got} distinct members, a quorum is {need}")]
    TooFew {
        /// Distinct members found.
        got: usize,
        /// The quorum.
        need: usize,
    },
    /// The statements of a proof do not agree with each other, or do not conflict.
    #[error("the statements do not fit the proof: {0}")]
    Inconsistent(&'static str),
}

/// What a verifier needs: the keys, and the epoch's PBFT instance (its members,
/// and who proposes in each view: [`Instance::leader`], [`Instance::may_propose`]).
pub struct Verifier<'a> {
    /// Every node's keys.
    pub committee: &'a Committee,
    /// The epoch's instance: its members (in id order), first view and primary group.
    pub epoch: &'a Instance,
    /// Votes that make a quorum among the members.
    pub quorum: usize,
}

impl<'a> Verifier<'a> {
    /// The verifier of an epoch whose members vote with quorums of `2f+1`, as a PBFT
    /// instance among them does.
    pub fn new(committee: &'a Committee, epoch: &'a Instance) -> Verifier<'a> {
        Verifier {
            committee,
            epoch,
            quorum: dwcp_core::committee::quorum_of(epoch.members.len()),
        }
    }
}

impl EvidenceRecord {
    /// The record as a batch's first transaction.
    pub fn to_transaction(&self) -> Bytes {
        let mut tx = EVIDENCE_TAG.to_vec();
        tx.extend_from_slice(&encode(self));
        Bytes::from(tx)
    }

    /// The record in `tx`, if `tx` is one (`None` for a client transaction).
    pub fn from_transaction(tx: &[u8]) -> Option<Result<EvidenceRecord, EvidenceError>> {
        let body = tx.strip_prefix(EVIDENCE_TAG)?;
        Some(
            decode(body, MAX_EVIDENCE_BYTES)
                .map_err(|e: CodecError| EvidenceError::Decode(e.to_string())),
        )
    }

    /// Checks every proof and returns the evidence it establishes, in the record's
    /// order: commits, then misbehaviour.
    pub fn verify(&self, v: &Verifier<'_>) -> Result<Vec<Evidence>, EvidenceError> {
        let mut out = Vec::new();
        for p in &self.commits {
            out.push(p.verify(v)?);
        }
        for p in &self.misbehaviour {
            out.push(p.verify(v)?);
        }
        Ok(out)
    }
}

/// Checks that `items` are members' and verify, in one batch.
fn check_signatures(
    v: &Verifier<'_>,
    items: &[(NodeId, Digest, dwcp_core::crypto::Signature)],
) -> Result<(), EvidenceError> {
    if items.iter().any(|(a, _, _)| !v.epoch.members.contains(a)) {
        return Err(EvidenceError::Signature);
    }
    v.committee
        .verify_batch(items)
        .map_err(|_| EvidenceError::Signature)
}

impl CommitProof {
    /// The proof a colluding proposer would put forward for `group` among the
    /// epoch's `members` ([`crate::sim::Behaviour::Collude`]): none (it withholds
    /// the proof, which the record allows) unless every member of the group signed,
    /// and then every vote of the group and only as many others, lowest id first,
    /// as a quorum needs. It verifies as well as the whole proof, but leaves the
    /// others it drops rated as non-signers.
    pub fn favouring(&self, group: &BTreeSet<NodeId>, members: &[NodeId]) -> Option<CommitProof> {
        let (mut votes, mut others): (Vec<_>, Vec<_>) = self
            .votes
            .iter()
            .cloned()
            .partition(|v| group.contains(&v.author()));
        let seated = members.iter().filter(|m| group.contains(m)).count();
        if votes.len() < seated {
            return None;
        }
        others.sort_by_key(|v| v.author());
        let quorum = dwcp_core::committee::quorum_of(members.len());
        let room = quorum.saturating_sub(votes.len());
        votes.extend(others.into_iter().take(room));
        Some(CommitProof { votes })
    }

    /// The batch's proposer and signers, if a quorum of members signed one commit.
    pub fn verify(&self, v: &Verifier<'_>) -> Result<Evidence, EvidenceError> {
        let Some(first) = self.votes.first() else {
            return Err(EvidenceError::TooFew {
                got: 0,
                need: v.quorum,
            });
        };
        let f = *first.value();
        let mut signers = BTreeSet::new();
        for vote in &self.votes {
            let x = vote.value();
            if x.phase != Phase::Commit
                || x.view != f.view
                || x.seq != f.seq
                || x.digest != f.digest
            {
                return Err(EvidenceError::Inconsistent(
                    "commit votes for different batches",
                ));
            }
            if !signers.insert(vote.author()) {
                return Err(EvidenceError::Inconsistent("two votes by one member"));
            }
        }
        if signers.len() < v.quorum {
            return Err(EvidenceError::TooFew {
                got: signers.len(),
                need: v.quorum,
            });
        }
        let items: Vec<_> = self.votes.iter().map(|s| s.verify_item()).collect();
        check_signatures(v, &items)?;
        Ok(Evidence::Committed {
            proposer: v.epoch.leader(f.view),
            signers: signers.into_iter().collect(),
        })
    }
}

impl MisbehaviourProof {
    /// Who the proof is against (the author of the first statement).
    pub fn offender(&self) -> NodeId {
        match self {
            MisbehaviourProof::Votes(a, _) => a.author(),
            MisbehaviourProof::PrePrepares(a, _) => a.author(),
        }
    }

    /// The view of the first statement: its epoch is `view >> 32`.
    pub fn view(&self) -> dwcp_core::View {
        match self {
            MisbehaviourProof::Votes(a, _) => a.value().view,
            MisbehaviourProof::PrePrepares(a, _) => a.value().view,
        }
    }

    /// The offender, if the two statements are its own and conflict.
    pub fn verify(&self, v: &Verifier<'_>) -> Result<Evidence, EvidenceError> {
        let (author, items) = match self {
            MisbehaviourProof::Votes(a, b) => {
                let (x, y) = (a.value(), b.value());
                if (x.phase, x.view, x.seq) != (y.phase, y.view, y.seq) || x.digest == y.digest {
                    return Err(EvidenceError::Inconsistent("the votes do not conflict"));
                }
                if a.author() != b.author() {
                    return Err(EvidenceError::Inconsistent("two authors"));
                }
                (a.author(), vec![a.verify_item(), b.verify_item()])
            }
            MisbehaviourProof::PrePrepares(a, b) => {
                let (x, y) = (a.value(), b.value());
                if (x.view, x.seq) != (y.view, y.seq) || x.digest == y.digest {
                    return Err(EvidenceError::Inconsistent("the proposals do not conflict"));
                }
                if a.author() != b.author() {
                    return Err(EvidenceError::Inconsistent("two authors"));
                }
                (a.author(), vec![a.verify_item(), b.verify_item()])
            }
        };
        check_signatures(v, &items)?;
        Ok(Evidence::Misbehaved { node: author })
    }

    /// The proof in two messages from one author, if they conflict (what a node
    /// keeps when it sees an equivocation).
    pub fn from_messages(a: &PbftMessage, b: &PbftMessage) -> Option<MisbehaviourProof> {
        match (a, b) {
            (PbftMessage::Vote(x), PbftMessage::Vote(y))
                if x.author() == y.author()
                    && (x.value().phase, x.value().view, x.value().seq)
                        == (y.value().phase, y.value().view, y.value().seq)
                    && x.value().digest != y.value().digest =>
            {
                Some(MisbehaviourProof::Votes(x.clone(), y.clone()))
            }
            (PbftMessage::PrePrepare(x), PbftMessage::PrePrepare(y))
                if x.author() == y.author()
                    && (x.value().view, x.value().seq) == (y.value().view, y.value().seq)
                    && x.value().digest != y.value().digest =>
            {
                Some(MisbehaviourProof::PrePrepares(x.clone(), y.clone()))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
