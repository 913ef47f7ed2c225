//! Observers: which member feeds each observer which batch, an observer's tick
//! (fetching what it misses), forwarding client transactions to the committee, and
//! members answering fetches with the certified batches they keep.

use super::{Tpbft, FETCH_EAGER, FETCH_IDLE, OBSERVER_PERIOD, OBSERVER_TICK};
use crate::tpbft::messages::TpbftMessage;
use bytes::Bytes;
use dwcp_core::{Digest, Effects, NodeId, Seq, Time};
use std::collections::BTreeMap;

impl Tpbft {
    /// The observers this member sends batch `seq` to: observer `k` (in id order)
    /// gets it from the member at position `(k + seq) mod c`, so each member feeds
    /// each observer one batch in `c`, and one silent member leaves each observer
    /// gaps it fetches (see [`Tpbft::observer_tick`]) rather than a stall.
    pub(super) fn observers_fed(&self, seq: Seq) -> Vec<NodeId> {
        let c = self.members.len() as u64;
        let Some(p) = self.members.iter().position(|m| *m == self.id) else {
            return Vec::new();
        };
        self.committee
            .ids()
            .filter(|id| !self.members.contains(id))
            .enumerate()
            .filter(|(k, _)| (*k as u64 + seq) % c == p as u64)
            .map(|(_, id)| id)
            .collect()
    }

    /// The `j`-th member this observer turns to (for fetches and forwarded
    /// transactions): the members in turn from a position its own for each
    /// observer, so observers spread over members.
    pub(super) fn member_for(&self, j: usize) -> NodeId {
        let c = self.members.len();
        let k = self
            .committee
            .ids()
            .filter(|id| !self.members.contains(id))
            .position(|id| id == self.id)
            .unwrap_or(0);
        self.members[(k + j) % c]
    }

    /// An observer's tick. Behind a gap (a later batch came, an earlier one did
    /// not: its feeder may be silent) it asks one member for what it misses, the
    /// next member each time; idle without a gap it asks at each of the first
    /// [`FETCH_EAGER`] ticks (one member each: `f_c + 1` of them reach an honest
    /// one) and then every [`FETCH_IDLE`] ticks, in case a batch it was not sent is
    /// the last one for a while. Transactions it
    /// forwarded that did not commit within a view-change timeout go to the next
    /// member.
    pub(super) fn observer_tick(&mut self, now: Time, fx: &mut Effects<TpbftMessage>) {
        fx.set_timer(OBSERVER_TICK, OBSERVER_PERIOD);
        if self.inner.is_some() {
            self.member_tick(fx);
            return;
        }
        let (seen, idle) = self.observer_progress;
        if seen != self.last {
            self.observer_progress = (self.last, 0);
        } else {
            let idle = idle + 1;
            self.observer_progress = (seen, idle);
            if self.observer.has_gap() || idle <= FETCH_EAGER || idle % FETCH_IDLE == 0 {
                let m = self.member_for(self.fetches);
                self.fetches += 1;
                fx.send(
                    m,
                    TpbftMessage::FetchCertified {
                        from: self.last + 1,
                    },
                );
            }
        }
        self.forward_again(now, fx);
    }

    /// A member's tick. One that holds messages of the next epoch while its own
    /// log has not moved for a tick is behind in an epoch the others have left,
    /// where nobody speaks to it any more (it may have been down for the epoch's
    /// last batches): it asks `f_c + 1` of its epoch's members, in turn, for what
    /// it misses, through its instance's catch-up. Idle without that sign, it asks
    /// one member at the first ticks and then every few.
    fn member_tick(&mut self, fx: &mut Effects<TpbftMessage>) {
        let (seen, idle) = self.observer_progress;
        if seen != self.last {
            self.observer_progress = (self.last, 0);
            return;
        }
        let idle = idle + 1;
        self.observer_progress = (seen, idle);
        // Idle without such a sign, it asks one member as an observer does (it
        // may have missed its epoch's last batches with nothing after them).
        let asks = if !self.future.is_empty() {
            (self.members.len() - 1) / 3 + 1
        } else if idle <= FETCH_EAGER || idle % FETCH_IDLE == 0 {
            1
        } else {
            return;
        };
        let others: Vec<NodeId> = self
            .members
            .iter()
            .copied()
            .filter(|m| *m != self.id)
            .collect();
        if others.is_empty() {
            return;
        }
        for j in 0..asks {
            let to = others[(self.fetches + j) % others.len()];
            fx.send(
                to,
                TpbftMessage::Pbft {
                    epoch: self.epoch,
                    msg: crate::pbft::PbftMessage::Fetch {
                        from: self.last + 1,
                    },
                },
            );
        }
        self.fetches += asks;
    }

    /// Whether this node knows its log to be well behind the committee's: then it
    /// cannot tell which transactions committed, and one that committed more than
    /// the members' repeat window of batches ago would commit twice if forwarded.
    fn behind(&self) -> bool {
        self.heard.saturating_sub(self.last) >= self.cfg.pbft.dedup_window / 2
            || !self.transfers.is_empty()
    }

    /// Forwards client transactions to the committee: to one member, and again
    /// to the next one for those that have not committed within a view-change
    /// timeout (a faulty member may drop them). Behind ([`Tpbft::behind`]), it
    /// only keeps them, for [`Tpbft::forward_again`] once it caught up.
    pub(super) fn forward(&mut self, now: Time, txs: Vec<Bytes>, fx: &mut Effects<TpbftMessage>) {
        let room = self
            .cfg
            .pbft
            .max_pending
            .saturating_sub(self.forwarded.len());
        for tx in txs.iter().take(room) {
            self.forwarded.insert(Digest::of(tx), (tx.clone(), now, 0));
        }
        if !self.behind() {
            fx.send(self.member_for(0), TpbftMessage::Forward(txs));
        }
    }

    fn forward_again(&mut self, now: Time, fx: &mut Effects<TpbftMessage>) {
        if self.behind() {
            return;
        }
        let patience = self.cfg.pbft.view_change_timeout;
        let targets: Vec<NodeId> = (0..self.members.len())
            .map(|j| self.member_for(j))
            .collect();
        let mut again: BTreeMap<NodeId, Vec<Bytes>> = BTreeMap::new();
        for (tx, sent, tries) in self.forwarded.values_mut() {
            if now.since(*sent) >= patience {
                *tries += 1;
                *sent = now;
                again
                    .entry(targets[*tries % targets.len()])
                    .or_default()
                    .push(tx.clone());
            }
        }
        for (m, txs) in again {
            fx.send(m, TpbftMessage::Forward(txs));
        }
    }
}
