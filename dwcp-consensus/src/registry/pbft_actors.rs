//! Building blocks for scripted Byzantine PBFT actors ([`crate::sim::Script`]s): selective
//! delivery, commit certificates gathered from the wire for unsolicited catch-up,
//! view changes that withhold certificates, and votes that back a chosen new view.
//! Every message they make is validly signed with the scripted node's own key.

use crate::pbft::{CommittedEntry, NewView, PbftMessage, Phase, PrePrepare, ViewChange, Vote};
use crate::sim::{Endpoint, Fate, ScriptCtx};
use dwcp_core::{Digest, NodeId, Seq, Signed, View};
use std::collections::BTreeMap;

/// Delivers to the listed nodes only.
pub fn only(nodes: &[u16], to: Endpoint) -> Fate {
    if nodes.contains(&to.node.0) {
        Fate::Deliver
    } else {
        Fate::Drop
    }
}

/// Sends `msg` from `from` to every other member of a committee of `n`.
pub fn send_to_all(ctx: &mut ScriptCtx<'_, PbftMessage>, from: NodeId, n: usize, msg: PbftMessage) {
    for peer in (0..n as u16).map(NodeId).filter(|p| *p != from) {
        ctx.send(from, peer, msg.clone());
    }
}

/// Commit certificates assembled from the pre-prepares and commit votes a script
/// sees in flight, to hand a replica as unsolicited `Entries`.
#[derive(Debug, Default)]
pub struct CommitCertificates {
    pre_prepares: BTreeMap<(View, Seq), Signed<PrePrepare>>,
    commits: BTreeMap<(View, Seq, Digest), BTreeMap<NodeId, Signed<Vote>>>,
}

impl CommitCertificates {
    /// Notes the pre-prepare or commit vote in `msg`, if any.
    pub fn observe(&mut self, msg: &PbftMessage) {
        match msg {
            PbftMessage::PrePrepare(pp) => {
                let v = pp.value();
                self.pre_prepares
                    .entry((v.view, v.seq))
                    .or_insert_with(|| pp.clone());
            }
            PbftMessage::Vote(vote) if vote.value().phase == Phase::Commit => {
                let v = vote.value();
                self.commits
                    .entry((v.view, v.seq, v.digest))
                    .or_default()
                    .entry(vote.author())
                    .or_insert_with(|| vote.clone());
            }
            _ => {}
        }
    }

    /// A commit certificate for `(view, seq)` with `quorum` commits, once seen.
    pub fn certificate(&self, view: View, seq: Seq, quorum: usize) -> Option<CommittedEntry> {
        let pp = self.pre_prepares.get(&(view, seq))?;
        let votes = self.commits.get(&(view, seq, pp.value().digest))?;
        (votes.len() >= quorum).then(|| CommittedEntry {
            pre_prepare: pp.clone(),
            commits: votes.values().take(quorum).cloned().collect(),
        })
    }
}

/// A view change to `view`, signed by `node`, that withholds every prepared
/// certificate and claims no stable checkpoint.
///
/// # Panics
/// If the script does not control `node`.
pub fn bare_view_change(ctx: &ScriptCtx<'_, PbftMessage>, node: NodeId, view: View) -> PbftMessage {
    let keys = ctx
        .keys(node)
        .expect("the script controls the node it signs for");
    PbftMessage::ViewChange(Signed::new(
        ViewChange {
            new_view: view,
            stable_seq: 0,
            stable_proof: Vec::new(),
            prepared: Vec::new(),
        },
        node,
        &keys.signing,
    ))
}

/// A prepare and a commit, signed by `node`, for every batch `nv` re-issues: a
/// Byzantine replica backing whatever the new primary decided.
///
/// # Panics
/// If the script does not control `node`.
pub fn back_new_view(
    ctx: &ScriptCtx<'_, PbftMessage>,
    node: NodeId,
    nv: &Signed<NewView>,
) -> Vec<PbftMessage> {
    let keys = ctx
        .keys(node)
        .expect("the script controls the node it signs for");
    let mut out = Vec::new();
    for pp in &nv.value().pre_prepares {
        let p = pp.value();
        for phase in [Phase::Prepare, Phase::Commit] {
            let vote = Vote {
                phase,
                view: p.view,
                seq: p.seq,
                digest: p.digest,
            };
            out.push(PbftMessage::Vote(Signed::new(vote, node, &keys.signing)));
        }
    }
    out
}
