//! Timers and housekeeping: the periodic tick that watches the primary (the request
//! timer of §4.4) and retries view changes, re-sends this replica's own messages and
//! asks for missed batches, and start-up after a restart.

use super::{Pbft, TICK};
use crate::pbft::messages::PbftMessage;
use dwcp_core::{Effects, Time};

impl Pbft {
    pub(super) fn on_tick(&mut self, now: Time, fx: &mut Effects<PbftMessage>) {
        fx.set_timer(TICK, self.cfg.tick);
        let stalled = self.last_executed == self.last_tick_executed;
        self.last_tick_executed = self.last_executed;
        match self.changing.clone() {
            None => {
                if self
                    .watched
                    .is_some_and(|(d, _)| !self.pending_index.contains_key(&d))
                {
                    self.watched = None;
                }
                if self.watched.is_none() {
                    self.watched = self.pending.first_key_value().map(|(_, (d, _))| (*d, now));
                }
                self.maybe_take_over(now, fx);
                let overdue = self
                    .watched
                    .is_some_and(|(_, since)| now.since(since) >= self.cfg.view_change_timeout);
                let waiting = !self.pending.is_empty()
                    || self
                        .slots
                        .range(self.last_executed + 1..)
                        .any(|(_, s)| s.pre_prepare.is_some());
                if overdue
                    || (waiting && now.since(self.last_progress) >= self.cfg.view_change_timeout)
                {
                    self.start_view_change(now, self.view + 1, 0, fx);
                    return;
                }
                if stalled && waiting && now.since(self.last_progress) >= self.cfg.tick * 2 {
                    self.resend_votes(fx);
                }
            }
            Some(c) => {
                let have_quorum = self
                    .view_changes
                    .get(&c.target)
                    .is_some_and(|m| m.len() >= self.quorum);
                let patience = self.cfg.view_change_timeout * 2u32.saturating_pow(c.attempt.min(6));
                if have_quorum && now.since(c.started) >= patience {
                    self.start_view_change(now, c.target + 1, c.attempt + 1, fx);
                    return;
                }
                if let Some(vc) = &self.own_view_change {
                    fx.broadcast(PbftMessage::ViewChange(vc.clone()));
                }
                self.try_new_view(now, fx);
            }
        }
        // Behind, or stuck: ask peers for what they committed (they answer only if
        // they have something newer).
        let stuck = self.changing.is_some() || !self.pending.is_empty();
        if stalled && (self.highest_seen > self.last_executed || stuck) {
            self.request_fetch(fx);
        }
    }

    /// Re-sends this replica's own messages for undecided slots of the current view,
    /// for peers that lost them.
    fn resend_votes(&self, fx: &mut Effects<PbftMessage>) {
        for slot in self.slots.range(self.last_executed + 1..).map(|(_, s)| s) {
            if let Some(pp) = &slot.pre_prepare {
                if pp.author() == self.id && pp.value().view == self.view {
                    fx.broadcast(if slot.cosigns.is_empty() {
                        PbftMessage::PrePrepare(pp.clone())
                    } else {
                        PbftMessage::CoSigned {
                            pre_prepare: pp.clone(),
                            cosigns: slot.cosigns.clone(),
                        }
                    });
                }
            }
            for phase_votes in [&slot.prepares, &slot.commits] {
                if let Some(v) = phase_votes.get(&(self.view, self.id)) {
                    fx.broadcast(PbftMessage::Vote(v.clone()));
                }
            }
        }
        self.resend_cosign_requests(fx);
        if let Some(nv) = &self.new_view {
            if nv.author() == self.id {
                fx.broadcast(PbftMessage::NewView(nv.clone()));
            }
        }
    }

    pub(super) fn on_start(&mut self, now: Time, fx: &mut Effects<PbftMessage>) {
        self.last_progress = now;
        fx.set_timer(TICK, self.cfg.tick);
        if self.restored {
            if let Some(c) = &mut self.changing {
                c.started = now;
            }
            if let Some(vc) = &self.own_view_change {
                let vc = vc.clone();
                self.record_view_change(vc.clone());
                fx.broadcast(PbftMessage::ViewChange(vc));
            }
            self.resend_votes(fx);
            fx.broadcast(PbftMessage::Fetch {
                from: self.last_executed + 1,
            });
        }
    }
}
