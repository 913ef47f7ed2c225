//! View changes (Castro & Liskov §4.4): asking for the next view with prepared
//! certificates, checking view-change messages, and the new primary's NEW-VIEW that
//! re-issues what may have committed; messages of a view not yet entered wait in a
//! buffer.

use super::{Pbft, ViewChanging};
use crate::pbft::messages::{
    batch_digest, NewView, PbftMessage, Phase, PrePrepare, PreparedCert, ViewChange,
};
use crate::pbft::wal::{WalEntry, TAG_NEW_VIEW};
use bytes::Bytes;
use dwcp_core::{Effects, NodeId, Seq, Signed, Time, View, WalKey};
use std::collections::{BTreeMap, HashSet};

impl Pbft {
    pub(super) fn start_view_change(
        &mut self,
        now: Time,
        target: View,
        attempt: u32,
        fx: &mut Effects<PbftMessage>,
    ) {
        if target <= self.view && self.changing.is_none() {
            return;
        }
        if let Some(c) = &self.changing {
            if target <= c.target {
                return;
            }
        }
        let prepared: Vec<PreparedCert> = self
            .slots
            .range(self.stable_seq + 1..)
            .filter_map(|(_, s)| s.prepared.clone())
            .collect();
        let vc = Signed::new(
            ViewChange {
                new_view: target,
                stable_seq: self.stable_seq,
                stable_proof: self.stable_proof.clone(),
                prepared,
            },
            self.id,
            &self.keys.signing,
        );
        self.view = target;
        self.changing = Some(ViewChanging {
            target,
            started: now,
            attempt,
        });
        self.own_view_change = Some(vc.clone());
        self.new_view = None;
        self.proposed.clear();
        self.view_changes_seen += 1;
        self.persist_view(fx);
        self.record_view_change(vc.clone());
        fx.broadcast(PbftMessage::ViewChange(vc));
        self.try_new_view(now, fx);
    }

    pub(super) fn record_view_change(&mut self, vc: Signed<ViewChange>) {
        let author = vc.author();
        let view = vc.value().new_view;
        if let Some(old) = self.latest_vc_of.get(&author).copied() {
            if old >= view {
                return;
            }
            if let Some(m) = self.view_changes.get_mut(&old) {
                m.remove(&author);
            }
        }
        self.latest_vc_of.insert(author, view);
        self.view_changes
            .entry(view)
            .or_default()
            .insert(author, vc);
    }

    /// Checks a view-change message's signatures and certificates (§4.4).
    fn valid_view_change(&self, vc: &Signed<ViewChange>) -> bool {
        let v = vc.value();
        let mut items = vec![vc.verify_item()];
        if v.stable_seq < self.base {
            return false;
        }
        if v.stable_seq > self.base {
            let Some(first) = v.stable_proof.first() else {
                return false;
            };
            let state = first.value().state;
            let mut authors = HashSet::new();
            for s in &v.stable_proof {
                if s.value().seq != v.stable_seq
                    || s.value().state != state
                    || !authors.insert(s.author())
                {
                    return false;
                }
                items.push(s.verify_item());
            }
            if authors.len() < self.quorum {
                return false;
            }
        }
        for cert in &v.prepared {
            let pp = cert.pre_prepare.value();
            if pp.view >= v.new_view
                || pp.seq <= v.stable_seq
                || pp.seq > v.stable_seq + self.cfg.window
                || self.last.is_some_and(|l| pp.seq > l)
                || !self.may_propose(pp.view, cert.pre_prepare.author())
                || batch_digest(&pp.batch) != pp.digest
            {
                return false;
            }
            items.push(cert.pre_prepare.verify_item());
            let mut authors = HashSet::new();
            for p in &cert.prepares {
                let pv = p.value();
                if pv.phase != Phase::Prepare
                    || pv.view != pp.view
                    || pv.seq != pp.seq
                    || pv.digest != pp.digest
                    || p.author() == cert.pre_prepare.author()
                    || !authors.insert(p.author())
                {
                    return false;
                }
                items.push(p.verify_item());
            }
            if authors.len() + 1 < self.quorum {
                return false;
            }
        }
        items.iter().all(|(a, _, _)| self.is_member(*a))
            && self.committee.verify_batch(&items).is_ok()
    }

    pub(super) fn on_view_change(
        &mut self,
        now: Time,
        from: NodeId,
        vc: Signed<ViewChange>,
        fx: &mut Effects<PbftMessage>,
    ) {
        let w = vc.value().new_view;
        let current = self.view;
        if w < current || (w == current && self.changing.is_none()) {
            // The sender is behind: show it the view we are in, if we can prove it.
            if let Some(nv) = &self.new_view {
                if self.changing.is_none() {
                    fx.send(from, PbftMessage::NewView(nv.clone()));
                }
            }
            return;
        }
        if self.latest_vc_of.get(&vc.author()).is_some_and(|v| *v >= w)
            || !self.valid_view_change(&vc)
        {
            return;
        }
        self.record_view_change(vc);
        // §4.5.2: f+1 replicas want a higher view: join the smallest of them.
        let mut higher: Vec<View> = self
            .latest_vc_of
            .iter()
            .filter(|(a, v)| **a != self.id && **v > self.view)
            .map(|(_, v)| *v)
            .collect();
        if higher.len() > self.f() {
            higher.sort_unstable();
            // At least f+1 replicas, so one honest, want this view or a higher one.
            let target = higher[higher.len() - (self.f() + 1)];
            self.start_view_change(now, target, 0, fx);
        }
        self.try_new_view(now, fx);
    }

    /// The pre-prepares a new primary must issue, from a quorum of view changes:
    /// the batch prepared in the highest view for every sequence number between the
    /// highest stable checkpoint and the highest prepared one, else an empty batch.
    fn plan_new_view(vcs: &[Signed<ViewChange>]) -> (Seq, Vec<(Seq, Vec<Bytes>)>) {
        let min_s = vcs.iter().map(|v| v.value().stable_seq).max().unwrap_or(0);
        let mut best: BTreeMap<Seq, &PrePrepare> = BTreeMap::new();
        for vc in vcs {
            for cert in &vc.value().prepared {
                let pp = cert.pre_prepare.value();
                if pp.seq <= min_s {
                    continue;
                }
                let entry = best.entry(pp.seq).or_insert(pp);
                if pp.view > entry.view {
                    *entry = pp;
                }
            }
        }
        let max_s = best.keys().next_back().copied().unwrap_or(min_s);
        let plan = (min_s + 1..=max_s)
            .map(|s| {
                (
                    s,
                    best.get(&s).map(|pp| pp.batch.clone()).unwrap_or_default(),
                )
            })
            .collect();
        (min_s, plan)
    }

    pub(super) fn try_new_view(&mut self, now: Time, fx: &mut Effects<PbftMessage>) {
        let Some(c) = self.changing.clone() else {
            return;
        };
        if self.leader(c.target) != self.id
            || self
                .new_view
                .as_ref()
                .is_some_and(|nv| nv.value().view >= c.target)
        {
            return; // not ours to announce, or announced already
        }
        let Some(vcs) = self.view_changes.get(&c.target) else {
            return;
        };
        if vcs.len() < self.quorum || !vcs.contains_key(&self.id) {
            return;
        }
        let mut chosen: Vec<Signed<ViewChange>> = Vec::with_capacity(self.quorum);
        if let Some(own) = vcs.get(&self.id) {
            chosen.push(own.clone());
        }
        chosen.extend(
            vcs.iter()
                .filter(|(a, _)| **a != self.id)
                .take(self.quorum - 1)
                .map(|(_, v)| v.clone()),
        );
        let (_, plan) = Self::plan_new_view(&chosen);
        let pre_prepares: Vec<Signed<PrePrepare>> = plan
            .into_iter()
            .map(|(seq, batch)| {
                Signed::new(
                    PrePrepare {
                        view: c.target,
                        seq,
                        digest: batch_digest(&batch),
                        batch,
                    },
                    self.id,
                    &self.keys.signing,
                )
            })
            .collect();
        let nv = Signed::new(
            NewView {
                view: c.target,
                view_changes: chosen,
                pre_prepares,
            },
            self.id,
            &self.keys.signing,
        );
        self.persist(
            WalKey {
                slot: self.view_slot(),
                tag: TAG_NEW_VIEW,
            },
            &WalEntry::NewView(nv.clone()),
            fx,
        );
        fx.broadcast(PbftMessage::NewView(nv.clone()));
        self.enter_view(now, nv, fx);
    }

    pub(super) fn on_new_view(
        &mut self,
        now: Time,
        nv: Signed<NewView>,
        fx: &mut Effects<PbftMessage>,
    ) {
        let v = nv.value();
        let w = v.view;
        let acceptable = match &self.changing {
            Some(c) => w >= c.target,
            None => w > self.view,
        };
        if !acceptable || nv.author() != self.leader(w) || nv.verify(&self.committee).is_err() {
            return;
        }
        let mut authors = HashSet::new();
        for vc in &v.view_changes {
            if vc.value().new_view != w
                || !authors.insert(vc.author())
                || !self.valid_view_change(vc)
            {
                return;
            }
        }
        if authors.len() < self.quorum {
            return;
        }
        let (_, plan) = Self::plan_new_view(&v.view_changes);
        if plan.len() != v.pre_prepares.len() {
            return;
        }
        for ((seq, batch), pp) in plan.iter().zip(&v.pre_prepares) {
            let p = pp.value();
            if p.view != w
                || p.seq != *seq
                || p.digest != batch_digest(batch)
                || p.batch != *batch
                || pp.author() != nv.author()
            {
                return;
            }
        }
        if self
            .committee
            .verify_batch(
                &v.pre_prepares
                    .iter()
                    .map(|p| p.verify_item())
                    .collect::<Vec<_>>(),
            )
            .is_err()
        {
            return;
        }
        self.enter_view(now, nv, fx);
    }

    fn enter_view(&mut self, now: Time, nv: Signed<NewView>, fx: &mut Effects<PbftMessage>) {
        let w = nv.value().view;
        let (min_s, _) = Self::plan_new_view(&nv.value().view_changes);
        self.view = w;
        self.changing = None;
        self.own_view_change = None;
        self.proposed.clear();
        self.cosigning.clear();
        self.took_over = None;
        self.watched = None;
        self.last_progress = now;
        self.persist_view(fx);
        self.view_changes = self.view_changes.split_off(&(w + 1));
        self.latest_vc_of.retain(|_, v| *v > w);
        let max_s = nv
            .value()
            .pre_prepares
            .last()
            .map(|p| p.value().seq)
            .unwrap_or(min_s);
        // Proposals of older views above the re-issued range are void.
        for (_, slot) in self.slots.range_mut(max_s + 1..) {
            if !slot.committed {
                slot.pre_prepare = None;
            }
        }
        self.next_seq = max_s.max(min_s).max(self.last_executed) + 1;
        self.new_view = Some(nv.clone());
        if min_s > self.last_executed {
            self.note_seen(min_s);
            self.request_fetch(fx);
        }
        for pp in nv.value().pre_prepares.clone() {
            let seq = pp.value().seq;
            if seq <= self.last_executed || !self.in_window(seq) {
                continue;
            }
            if self.leader(w) == self.id {
                self.remember_own_pre_prepare(&pp, fx);
            }
            self.accept_pre_prepare(now, pp, Vec::new(), fx);
        }
        let buffered: Vec<(NodeId, PbftMessage)> = self.future.drain(..).collect();
        for (from, m) in buffered {
            self.on_message(now, from, m, fx);
        }
        self.try_propose(now, fx);
    }

    pub(super) fn buffer(&mut self, from: NodeId, msg: PbftMessage) {
        if self.future.len() >= self.cfg.max_buffered {
            self.future.pop_front();
        }
        self.future.push_back((from, msg));
    }
}
