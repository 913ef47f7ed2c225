//! Scripted Byzantine ProBFT actors ([`crate::sim::Script`]s), every message
//! validly signed with the scripted nodes' own keys.
//!
//! [`SplitVote`] is the design note's split-vote attack: the leader shows one half
//! of the replicas proposal `x` and the other half `x'`, and its Byzantine
//! accomplices vote, towards each replica of their samples, for the value that
//! replica holds. Counting votes alone lets both halves decide; the evidence rule
//! (two headers for one view and slot stop a replica) is what stops it.

use crate::probft::messages::{Header, ProbftMessage, Proposal, SampledVote, Vote};
use crate::probft::sample::Phase;
use crate::probft::verify::vote_sample;
use crate::sim::{Endpoint, Fate, Script, ScriptCtx};
use bytes::Bytes;
use dwcp_core::{NodeId, Seq, Signed, View};
use std::collections::{BTreeMap, BTreeSet};

/// The split vote: `leader` equivocates towards the replicas `side_b` picks out,
/// and `accomplices` vote for whatever each recipient holds. The leader and the
/// accomplices must be [`crate::sim::Behaviour::Scripted`].
pub struct SplitVote {
    leader: NodeId,
    accomplices: Vec<NodeId>,
    side_b: fn(NodeId) -> bool,
    /// Recipients of each vote (the engine's `s`).
    s: usize,
    /// Per view and slot: the leader's own header and the one made for side B.
    headers: BTreeMap<(View, Seq), (Signed<Header>, Proposal)>,
    /// The `(accomplice, view, slot)`s whose COMMITs were sent.
    committed: BTreeSet<(NodeId, View, Seq)>,
}

impl SplitVote {
    /// The attack by `leader` and `accomplices`, side B being the replicas
    /// `side_b` selects.
    /// `s` is the engine's sample size.
    pub fn new(
        leader: u16,
        accomplices: &[u16],
        side_b: fn(NodeId) -> bool,
        s: usize,
    ) -> SplitVote {
        SplitVote {
            leader: NodeId(leader),
            accomplices: accomplices.iter().copied().map(NodeId).collect(),
            side_b,
            s,
            headers: BTreeMap::new(),
            committed: BTreeSet::new(),
        }
    }

    /// Sends `from`'s COMMIT for `(view, seq)` to its whole commit sample at once,
    /// each recipient getting the value its side holds, prepared or not.
    fn commit_both_ways(
        &mut self,
        ctx: &mut ScriptCtx<'_, ProbftMessage>,
        from: NodeId,
        view: View,
        seq: Seq,
    ) {
        if !self.committed.insert((from, view, seq)) {
            return;
        }
        let Some((original, alt)) = self.headers.get(&(view, seq)).cloned() else {
            return;
        };
        let Some(keys) = ctx.keys(from).cloned() else {
            return;
        };
        let Some((proof, sample)) =
            vote_sample(ctx.committee(), &keys, self.s, view, Phase::Commit)
        else {
            return;
        };
        for &to in sample.members() {
            let to = NodeId(to as u16);
            let header = if (self.side_b)(to) {
                alt.header.clone()
            } else {
                original.clone()
            };
            let vote = Signed::new(
                Vote {
                    phase: Phase::Commit,
                    view,
                    seq,
                    digest: header.value().digest,
                },
                from,
                &keys.signing,
            );
            let v = SampledVote {
                header,
                vote,
                proof,
            };
            ctx.send(from, to, ProbftMessage::Vote(Box::new(v)));
        }
    }

    /// The proposal side B sees instead of `p`: the same transactions in another
    /// order (or one more), signed by the leader.
    fn other(&mut self, ctx: &ScriptCtx<'_, ProbftMessage>, p: &Proposal) -> Option<Proposal> {
        let h = *p.header.value();
        if let Some((_, alt)) = self.headers.get(&(h.view, h.seq)) {
            return Some(alt.clone());
        }
        let keys = ctx.keys(self.leader)?;
        let mut batch = p.batch.clone();
        if batch.len() >= 2 {
            batch.reverse();
        } else {
            batch.push(Bytes::from_static(b"split vote"));
        }
        let header = Header {
            digest: crate::pbft::batch_digest(&batch),
            ..h
        };
        let alt = Proposal {
            header: Signed::new(header, self.leader, &keys.signing),
            batch,
        };
        self.headers
            .insert((h.view, h.seq), (p.header.clone(), alt.clone()));
        Some(alt)
    }
}

impl Script<ProbftMessage> for SplitVote {
    fn route(
        &mut self,
        ctx: &mut ScriptCtx<'_, ProbftMessage>,
        from: Endpoint,
        to: Endpoint,
        msg: &ProbftMessage,
    ) -> Fate {
        let b = (self.side_b)(to.node);
        match msg {
            ProbftMessage::Propose(p) if from.node == self.leader && b => {
                if let Some(alt) = self.other(ctx, p) {
                    ctx.send(self.leader, to.node, ProbftMessage::Propose(alt));
                }
                Fate::Drop
            }
            ProbftMessage::Vote(v)
                if from.node == self.leader || self.accomplices.contains(&from.node) =>
            {
                let x = *v.vote.value();
                if x.phase == Phase::Commit && self.committed.contains(&(from.node, x.view, x.seq))
                {
                    return Fate::Drop; // sent already, both ways
                }
                if x.phase == Phase::Prepare {
                    self.commit_both_ways(ctx, from.node, x.view, x.seq);
                }
                let Some((original, alt)) = self.headers.get(&(x.view, x.seq)).cloned() else {
                    return Fate::Deliver;
                };
                let want = if b { alt.header } else { original };
                if want.value().digest == x.digest {
                    return Fate::Deliver;
                }
                let Some(keys) = ctx.keys(from.node) else {
                    return Fate::Deliver;
                };
                let vote = Signed::new(
                    Vote {
                        digest: want.value().digest,
                        ..x
                    },
                    from.node,
                    &keys.signing,
                );
                let forged = SampledVote {
                    header: want,
                    vote,
                    proof: v.proof,
                };
                ctx.send(from.node, to.node, ProbftMessage::Vote(Box::new(forged)));
                Fate::Drop
            }
            _ => Fate::Deliver,
        }
    }
}
