//! The primary group (T-PBFT, see [`super::PrimaryGroup`]): co-signing proposals
//! among the group, checking a co-signed pre-prepare, and a group member taking
//! over from a silent designated proposer.

use super::{CoSigning, Pbft};
use crate::pbft::instance::{group_of, may_propose_of, PrimaryGroup};
use crate::pbft::messages::{batch_digest, CoSignature, PbftMessage, PrePrepare};
use crate::pbft::wal::{WalEntry, TAG_COSIGN};
use dwcp_core::{Digest, Effects, NodeId, Seq, Signed, Time, View, WalKey};
use std::collections::{BTreeMap, HashSet};

impl Pbft {
    /// The primary group, if `view` is one of the views it proposes in.
    pub(super) fn group_view(&self, view: View) -> Option<&PrimaryGroup> {
        group_of(self.group.as_ref(), self.first_view, view)
    }

    /// Whether `author` may sign the pre-prepares of `view`: any member of the
    /// primary group in its views, else only the view's primary.
    pub(super) fn may_propose(&self, view: View, author: NodeId) -> bool {
        may_propose_of(
            &self.members,
            self.group.as_ref(),
            self.first_view,
            view,
            author,
        )
    }

    /// Whether `cosigns` with the proposer's own signature make up the group's
    /// threshold for `pp`, and every signature verifies.
    pub(super) fn valid_cosigned(
        &self,
        pp: &Signed<PrePrepare>,
        cosigns: &[Signed<CoSignature>],
    ) -> bool {
        let v = pp.value();
        let mut items = vec![pp.verify_item()];
        if let Some(g) = self.group_view(v.view) {
            let mut authors = HashSet::from([pp.author()]);
            for c in cosigns {
                let cv = c.value();
                if (cv.view, cv.seq, cv.digest) != (v.view, v.seq, v.digest)
                    || !g.members.contains(&c.author())
                    || !authors.insert(c.author())
                {
                    return false;
                }
                items.push(c.verify_item());
            }
            if authors.len() < g.threshold {
                return false;
            }
        }
        self.committee.verify_batch(&items).is_ok()
    }

    /// Sends a fresh proposal to the other group members for co-signing, or, when
    /// the view has no group or its threshold is one, straight to the backups.
    /// Returns whether it still waits for co-signatures.
    pub(super) fn request_cosigns(
        &mut self,
        pp: &Signed<PrePrepare>,
        fx: &mut Effects<PbftMessage>,
    ) -> bool {
        let Some(g) = self.group_view(pp.value().view).filter(|g| g.threshold > 1) else {
            return false;
        };
        for m in g.members.iter().filter(|m| **m != self.id) {
            fx.send(*m, PbftMessage::CoSignRequest(pp.clone()));
        }
        self.cosigning.insert(
            pp.value().seq,
            CoSigning {
                pre_prepare: pp.clone(),
                cosigns: BTreeMap::new(),
            },
        );
        true
    }

    /// A group member's request to co-sign its proposal: co-signed, durably, if
    /// this replica would prepare it and has co-signed nothing else for its slot.
    pub(super) fn on_cosign_request(
        &mut self,
        _now: Time,
        from: NodeId,
        pp: Signed<PrePrepare>,
        fx: &mut Effects<PbftMessage>,
    ) {
        let v = pp.value();
        let (view, seq, digest) = (v.view, v.seq, v.digest);
        if view > self.view || (self.changing.is_some() && view == self.view) {
            self.buffer(from, PbftMessage::CoSignRequest(pp));
            return;
        }
        let in_group = |g: &PrimaryGroup| g.members.contains(&self.id) && g.members.contains(&from);
        if view < self.view
            || pp.author() != from
            || !self.group_view(view).is_some_and(in_group)
            || !self.in_window(seq)
            || seq <= self.last_executed
        {
            return;
        }
        if let Some(given) = self.my_cosigns.get(&seq) {
            if given.value().view == view {
                if given.value().digest == digest {
                    fx.send(from, PbftMessage::CoSign(given.clone()));
                }
                return;
            }
        }
        if self.signed_other(view, seq, digest) {
            return;
        }
        if batch_digest(&v.batch) != digest || pp.verify(&self.committee).is_err() {
            return;
        }
        if !self.acceptable_batch(seq, &v.batch) {
            self.invalid_proposals += 1;
            return;
        }
        let c = Signed::new(
            CoSignature { view, seq, digest },
            self.id,
            &self.keys.signing,
        );
        self.persist(
            WalKey {
                slot: seq,
                tag: TAG_COSIGN,
            },
            &WalEntry::CoSign(c.clone()),
            fx,
        );
        self.my_cosigns.insert(seq, c.clone());
        fx.send(from, PbftMessage::CoSign(c));
    }

    /// Whether this replica proposed, prepared or accepted another digest for
    /// `(view, seq)`, so it must not back `digest`.
    fn signed_other(&self, view: View, seq: Seq, digest: Digest) -> bool {
        let other = |e: Option<&(View, Digest)>| e.is_some_and(|(w, d)| *w == view && *d != digest);
        other(self.my_pre_prepares.get(&seq))
            || other(self.my_prepares.get(&seq))
            || self.slots.get(&seq).is_some_and(|s| {
                s.pre_prepare
                    .as_ref()
                    .is_some_and(|p| p.value().view == view && p.value().digest != digest)
            })
    }

    /// A co-signature on one of this replica's proposals; with the threshold
    /// reached, the proposal goes to the backups.
    pub(super) fn on_cosign(
        &mut self,
        now: Time,
        from: NodeId,
        c: Signed<CoSignature>,
        fx: &mut Effects<PbftMessage>,
    ) {
        let cv = *c.value();
        let Some(threshold) = self
            .group_view(cv.view)
            .filter(|g| g.members.contains(&from))
            .map(|g| g.threshold)
        else {
            return;
        };
        let Some(p) = self.cosigning.get_mut(&cv.seq) else {
            return;
        };
        let pv = p.pre_prepare.value();
        if (pv.view, pv.digest) != (cv.view, cv.digest)
            || c.author() != from
            || p.cosigns.contains_key(&from)
            || c.verify(&self.committee).is_err()
        {
            return;
        }
        p.cosigns.insert(from, c);
        if p.cosigns.len() + 1 < threshold {
            return;
        }
        let Some(p) = self.cosigning.remove(&cv.seq) else {
            return;
        };
        if self.changing.is_some() || cv.view != self.view {
            return;
        }
        if self
            .slots
            .get(&cv.seq)
            .is_some_and(|s| s.view() == Some(cv.view))
        {
            return; // another group member's proposal took the slot
        }
        let cosigns: Vec<Signed<CoSignature>> = p.cosigns.into_values().collect();
        let slot = self.slots.entry(cv.seq).or_default();
        slot.pre_prepare = Some(p.pre_prepare.clone());
        slot.cosigns = cosigns.clone();
        fx.broadcast(PbftMessage::CoSigned {
            pre_prepare: p.pre_prepare,
            cosigns,
        });
        self.check_prepared(now, cv.seq, fx);
    }

    /// Another proposal took `seq` in this view: an own proposal still waiting for
    /// co-signatures there is given up, and its transactions go into a later batch.
    pub(super) fn abandon_cosigning(&mut self, seq: Seq) {
        let Some(p) = self.cosigning.remove(&seq) else {
            return;
        };
        for tx in &p.pre_prepare.value().batch {
            self.proposed.remove(&Digest::of(tx));
        }
        self.own_proposals.remove(&seq);
        self.next_seq = self.next_seq.max(seq + 1);
    }

    /// With a request waiting for the designated proposer in a view of the primary
    /// group, another group member proposes too.
    pub(super) fn maybe_take_over(&mut self, now: Time, fx: &mut Effects<PbftMessage>) {
        let Some(g) = self.group_view(self.view) else {
            return;
        };
        // The member k places after the designated proposer waits k/(m − 1) of
        // `takeover_after`, so that members do not all take over at once and
        // refuse each other's proposals for one slot.
        let m = g.members.len() as u32;
        let (Some(pos), Some(designated)) = (
            g.members.iter().position(|x| *x == self.id),
            g.members.iter().position(|x| *x == self.leader(self.view)),
        ) else {
            return;
        };
        let rank = (pos as u32 + m - designated as u32) % m;
        if rank == 0 || self.is_primary() {
            return;
        }
        let wait = g.takeover_after * rank / (m - 1);
        if self
            .watched
            .is_none_or(|(_, since)| now.since(since) < wait)
        {
            return;
        }
        self.took_over = Some(self.view);
        self.takeovers += 1;
        let view = self.view;
        let taken = self
            .slots
            .iter()
            .rev()
            .find(|(_, s)| s.view() == Some(view))
            .map_or(0, |(seq, _)| *seq);
        self.next_seq = self
            .next_seq
            .max(taken + 1)
            .max(self.last_executed + 1)
            .max(self.stable_seq + 1);
        self.try_propose(now, fx);
    }

    /// Re-sends own proposals still waiting for co-signatures, for group members
    /// that lost the request.
    pub(super) fn resend_cosign_requests(&self, fx: &mut Effects<PbftMessage>) {
        let Some(g) = self.group_view(self.view) else {
            return;
        };
        for p in self.cosigning.values() {
            if p.pre_prepare.value().view != self.view {
                continue;
            }
            for m in g.members.iter().filter(|m| **m != self.id) {
                if !p.cosigns.contains_key(m) {
                    fx.send(*m, PbftMessage::CoSignRequest(p.pre_prepare.clone()));
                }
            }
        }
    }
}
