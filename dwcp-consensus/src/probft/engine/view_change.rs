//! The view change (design note, item 6): a replica that waited a timeout, or
//! holds proof that the leader equivocated, sends VIEW-CHANGE (its last decision
//! certificate, its strongest certificate for the slot after it, any evidence) to
//! the new view's leader only. The leader takes `n − f_max` of them, proposes
//! for the slot after the highest decision they show the value of the highest
//! certificate for it (a later view first, a decision before a prepared
//! certificate of one view, then the most reports, then the lowest digest), or
//! anything if none, and sends NEW-VIEW with the view changes, from which every
//! replica recomputes that choice before it votes.

use super::{Change, Probft, TAG_VIEW, VIEW_SLOT};
use crate::probft::messages::{Certificate, Equivocation, NewView, ProbftMessage, ViewChange};
use crate::probft::sample::Phase;
use bytes::Bytes;
use dwcp_core::codec::encode;
use dwcp_core::{Digest, Effects, NodeId, Record, Seq, Signed, Time, View, WalKey};
use std::collections::BTreeMap;

impl Probft {
    pub(super) fn view_change_tick(&mut self, now: Time, fx: &mut Effects<ProbftMessage>) {
        let timeout = self.cfg.view_change_timeout;
        match self.changing {
            None => {
                if self.waiting() && now.since(self.last_progress) >= timeout {
                    self.start_view_change(now, self.view + 1, 0, fx);
                }
            }
            Some(c) => {
                let patience = timeout * 2u32.saturating_pow(c.attempt.min(6));
                if now.since(c.started) >= patience {
                    self.start_view_change(now, c.target + 1, c.attempt + 1, fx);
                } else if now.since(self.last_resend) >= timeout / 4 {
                    self.last_resend = now;
                    if let Some(vc) = self.my_view_change.clone() {
                        let leader = self.leader(c.target);
                        if leader != self.id {
                            fx.send(leader, ProbftMessage::ViewChange(Box::new(vc)));
                        }
                    }
                }
            }
        }
    }

    /// Leaves the current view for `target`: no more votes below it, and one
    /// view change, durably recorded, to its leader.
    pub(super) fn start_view_change(
        &mut self,
        now: Time,
        target: View,
        attempt: u32,
        fx: &mut Effects<ProbftMessage>,
    ) {
        if target < self.view || self.changing.is_some_and(|c| c.target >= target) {
            return;
        }
        self.counters.view_changes += 1;
        self.view = target;
        self.changing = Some(Change {
            target,
            attempt,
            started: now,
        });
        let vc = Signed::new(
            ViewChange {
                new_view: target,
                decided: self.decided.get(&self.last).cloned(),
                highest: self.prepared.clone(),
                evidence: self.evidence.values().next_back().cloned(),
            },
            self.id,
            &self.keys.signing,
        );
        self.persist_view(Some(vc.clone()), fx);
        self.my_view_change = Some(vc.clone());
        self.last_resend = now;
        let leader = self.leader(target);
        if leader == self.id {
            self.view_changes
                .entry(target)
                .or_default()
                .insert(self.id, vc);
            self.try_new_view(now, fx);
        } else {
            fx.send(leader, ProbftMessage::ViewChange(Box::new(vc)));
        }
    }

    fn persist_view(&self, vc: Option<Signed<ViewChange>>, fx: &mut Effects<ProbftMessage>) {
        fx.persist(Record::Put {
            key: WalKey {
                slot: VIEW_SLOT,
                tag: TAG_VIEW,
            },
            value: Bytes::from(encode(&(self.view, vc))),
        });
    }

    /// Whether `vc`'s certificates and evidence prove what they claim.
    fn valid_view_change(&mut self, vc: &ViewChange) -> bool {
        let decided_ok = vc
            .decided
            .as_ref()
            .is_none_or(|c| c.phase() == Some(Phase::Commit) && self.checker.certificate(c));
        let highest_ok = vc
            .highest
            .as_ref()
            .is_none_or(|c| c.header().view < vc.new_view && self.checker.certificate(c));
        let evidence_ok = vc
            .evidence
            .as_ref()
            .is_none_or(|e| self.checker.equivocation(e));
        decided_ok && highest_ok && evidence_ok
    }

    pub(super) fn on_view_change(
        &mut self,
        now: Time,
        from: NodeId,
        vc: Signed<ViewChange>,
        fx: &mut Effects<ProbftMessage>,
    ) {
        let w = vc.value().new_view;
        if vc.author() != from || self.leader(w) != self.id || w < self.view {
            return;
        }
        if let Some(nv) = self
            .sent_new_view
            .as_ref()
            .filter(|nv| nv.value().view == w)
        {
            // It missed the new view.
            fx.send(from, ProbftMessage::NewView(Box::new(nv.clone())));
            return;
        }
        if vc.verify(self.checker.committee()).is_err() || !self.valid_view_change(vc.value()) {
            self.counters.refused += 1;
            return;
        }
        self.view_changes.entry(w).or_default().insert(from, vc);
        self.try_new_view(now, fx);
    }

    /// As the leader of a view that `n − f_max` replicas (itself among them) asked
    /// for, once caught up to the highest decision they show: NEW-VIEW.
    pub(super) fn try_new_view(&mut self, now: Time, fx: &mut Effects<ProbftMessage>) {
        let needed = self.n() - self.f_max;
        let Some(w) = self
            .view_changes
            .iter()
            .rev()
            .find(|(w, vcs)| {
                **w >= self.view
                    && vcs.len() + usize::from(!vcs.contains_key(&self.id)) >= needed
                    && self
                        .sent_new_view
                        .as_ref()
                        .is_none_or(|nv| nv.value().view < **w)
            })
            .map(|(w, _)| *w)
        else {
            return;
        };
        if self.changing.is_none_or(|c| c.target != w) {
            // Asked for a view it has not timed out for: its own view change first.
            self.start_view_change(now, w, 0, fx);
            return;
        }
        let mut vcs: Vec<Signed<ViewChange>> = self.view_changes[&w].values().cloned().collect();
        vcs.sort_by_key(|vc| vc.author() != self.id);
        vcs.truncate(needed);
        if vcs.len() < needed {
            return;
        }
        let (top, choice) = choose(vcs.iter().map(|vc| vc.value()));
        if !self.catch_up_to(now, top, &vcs, fx) {
            return;
        }
        let slot = top + 1;
        if self.last > top {
            // Ahead of every replica it heard from: what it decided is the choice.
            return;
        }
        let batch = match &choice {
            Some(c) => c.proposal.batch.clone(),
            None => self.next_batch(None),
        };
        if self
            .my_proposals
            .get(&slot)
            .is_some_and(|(v, d)| *v == w && Some(*d) != choice.as_ref().map(|c| c.header().digest))
        {
            return; // never two proposals for one view and slot (after a restart)
        }
        self.view = w;
        self.changing = None;
        self.my_view_change = None;
        self.persist_view(None, fx);
        let proposal = self.sign_proposal(slot, batch, fx);
        self.note_proposed(now, &proposal);
        let nv = Signed::new(
            NewView {
                view: w,
                view_changes: vcs,
                proposal: proposal.clone(),
            },
            self.id,
            &self.keys.signing,
        );
        self.sent_new_view = Some(nv.clone());
        self.view_changes = self.view_changes.split_off(&(w + 1));
        fx.broadcast(ProbftMessage::NewView(Box::new(nv)));
        self.last_progress = now;
        self.on_proposal(now, proposal, fx);
        self.replay_future(now, fx);
    }

    pub(super) fn on_new_view(
        &mut self,
        now: Time,
        from: NodeId,
        nv: Signed<NewView>,
        fx: &mut Effects<ProbftMessage>,
    ) {
        let v = nv.value();
        let w = v.view;
        if nv.author() != from
            || from != self.leader(w)
            || w < self.view
            || (w == self.view && self.changing.is_none())
        {
            return;
        }
        let needed = self.n() - self.f_max;
        let mut authors = std::collections::BTreeSet::new();
        let well_formed = nv.verify(self.checker.committee()).is_ok()
            && v.view_changes.len() >= needed
            && v.view_changes.iter().all(|vc| {
                vc.value().new_view == w
                    && authors.insert(vc.author())
                    && vc.verify(self.checker.committee()).is_ok()
            });
        if !well_formed
            || !v
                .view_changes
                .iter()
                .all(|vc| self.valid_view_change(vc.value()))
        {
            self.counters.refused += 1;
            return;
        }
        let (top, choice) = choose(v.view_changes.iter().map(|vc| vc.value()));
        let p = v.proposal.header.value();
        if p.view != w
            || p.seq != top + 1
            || choice
                .as_ref()
                .is_some_and(|c| c.header().digest != p.digest)
        {
            self.counters.refused += 1;
            return;
        }
        let view_changes = v.view_changes.clone();
        if !self.catch_up_to(now, top, &view_changes, fx) {
            self.held_new_view = Some((from, nv));
            return;
        }
        self.view = w;
        self.changing = None;
        self.my_view_change = None;
        self.persist_view(None, fx);
        self.last_progress = now;
        let proposal = nv.value().proposal.clone();
        self.on_proposal(now, proposal, fx);
        self.replay_future(now, fx);
    }

    /// A proof, received or found, that the leader of its view equivocated: kept,
    /// passed on, and (with the evidence rule) the view is left.
    pub(super) fn on_evidence_held(
        &mut self,
        now: Time,
        e: Equivocation,
        fx: &mut Effects<ProbftMessage>,
    ) {
        let view = e.a.value().view;
        if self.evidence.contains_key(&view) {
            return;
        }
        self.counters.evidence += 1;
        self.evidence.insert(view, e.clone());
        fx.broadcast(ProbftMessage::Evidence(Box::new(e)));
        if self.cfg.evidence_rule() && view == self.view && self.changing.is_none() {
            self.start_view_change(now, view + 1, 0, fx);
        }
    }

    /// Decides, from the view changes' decision certificates, up to `top`; asks
    /// their authors for what they do not carry. Whether it got there.
    fn catch_up_to(
        &mut self,
        now: Time,
        top: Seq,
        vcs: &[Signed<ViewChange>],
        fx: &mut Effects<ProbftMessage>,
    ) -> bool {
        while self.last < top {
            let next = vcs
                .iter()
                .filter_map(|vc| vc.value().decided.as_ref())
                .find(|c| c.header().seq == self.last + 1)
                .cloned();
            match next {
                Some(c) => {
                    self.counters.decided_caught_up += 1;
                    self.decide(now, c, fx);
                }
                None => {
                    if let Some(vc) = vcs.iter().find(|vc| {
                        vc.value()
                            .decided
                            .as_ref()
                            .is_some_and(|c| c.header().seq == top)
                    }) {
                        fx.send(
                            vc.author(),
                            ProbftMessage::Fetch {
                                from: self.last + 1,
                            },
                        );
                    }
                    return false;
                }
            }
        }
        true
    }
}

/// The highest decided slot that view changes show, and the certificate whose
/// value must be proposed for the slot after it, if any (a later view first; in
/// one view a decision before a prepared certificate, then the most reports, then
/// the lowest digest).
pub(super) fn choose<'a>(
    vcs: impl Iterator<Item = &'a ViewChange> + Clone,
) -> (Seq, Option<Certificate>) {
    let top = vcs
        .clone()
        .filter_map(|vc| vc.decided.as_ref().map(|c| c.header().seq))
        .max()
        .unwrap_or(0);
    let candidates: Vec<&Certificate> = vcs
        .flat_map(|vc| vc.decided.iter().chain(vc.highest.iter()))
        .filter(|c| c.header().seq == top + 1)
        .collect();
    let mut reports: BTreeMap<(View, Digest), usize> = BTreeMap::new();
    for c in &candidates {
        *reports
            .entry((c.header().view, c.header().digest))
            .or_default() += 1;
    }
    let best = candidates.iter().max_by(|a, b| {
        let rank = |c: &Certificate| {
            let h = c.header();
            (
                h.view,
                c.phase() == Some(Phase::Commit),
                reports[&(h.view, h.digest)],
                std::cmp::Reverse(h.digest),
            )
        };
        rank(a).cmp(&rank(b))
    });
    (top, best.map(|c| (*c).clone()))
}
