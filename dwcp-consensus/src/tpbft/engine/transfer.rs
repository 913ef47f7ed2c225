//! Serving nodes that fell behind, and catching up from members' stores.
//!
//! Members keep the certified batches of the last two epochs in memory and send
//! those. A node further behind (down for longer, or outpaced) gets the committed
//! batches from the store instead, which carry no certificate: it takes them once
//! `f_c + 1` members of the epoch it is in (so at least one honest one) sent the
//! same hash chain ([`Transfers`]), and only up to that epoch's end. From there the
//! batches' evidence gives it the next committee, whose members vouch for the
//! next epoch. A member of an old epoch goes through its PBFT instance's own state
//! transfer, which applies the same rule among that epoch's members; an observer
//! through [`TpbftMessage::Log`].

use super::{Tpbft, FETCH_BATCH};
use crate::pbft::PbftMessage;
use crate::tpbft::messages::TpbftMessage;
use dwcp_core::{Committed, Effects, NodeId, Seq, Time};

impl Tpbft {
    /// Sends `to` the batches this node committed from `first` on: certified ones
    /// from memory, or else the store's, read first. `epoch` is the old epoch
    /// whose instance `to` asks from (its answer goes to that instance), `None`
    /// for an observer.
    pub(super) fn serve(
        &mut self,
        to: NodeId,
        first: Seq,
        epoch: Option<u64>,
        fx: &mut Effects<TpbftMessage>,
    ) {
        if first == 0 || first > self.last {
            return;
        }
        if self
            .recent
            .first_key_value()
            .is_some_and(|(s, _)| *s <= first)
        {
            for (epoch, entry) in self
                .recent
                .range(first..first.saturating_add(FETCH_BATCH))
                .map(|(_, v)| v)
            {
                fx.send(
                    to,
                    TpbftMessage::Certified {
                        epoch: *epoch,
                        entry: entry.clone(),
                    },
                );
            }
            return;
        }
        if self.log_readers.want(to, epoch, first) {
            fx.read_committed(first, FETCH_BATCH as usize);
        }
    }

    /// Sends the stored batches read from `from` on to the peers waiting for them.
    pub(super) fn on_stored(
        &mut self,
        from: Seq,
        batches: &[Committed],
        fx: &mut Effects<TpbftMessage>,
    ) {
        for (p, epoch) in self.log_readers.answered(from, batches) {
            let msg = match epoch {
                Some(epoch) => TpbftMessage::Pbft {
                    epoch,
                    msg: PbftMessage::Log(batches.to_vec()),
                },
                None => TpbftMessage::Log(batches.to_vec()),
            };
            fx.send(p, msg);
        }
    }

    /// An observer takes a member's stored batches: once `f_c + 1` members of its
    /// epoch sent the same chain, it applies them, up to the epoch's end.
    pub(super) fn on_log(
        &mut self,
        now: Time,
        from: NodeId,
        batches: Vec<Committed>,
        fx: &mut Effects<TpbftMessage>,
    ) {
        if self.inner.is_some()
            || !self.members.contains(&from)
            || batches.len() as u64 > FETCH_BATCH
            || !self.transfers.offer(from, batches, self.last, self.chain)
        {
            return;
        }
        let vouched = self.transfers.vouched((self.members.len() - 1) / 3);
        if vouched.is_empty() {
            if self.transfers.len() > 1 {
                return;
            }
            // The first member to answer from its store: ask the others too.
            for m in self.members.clone() {
                if m != self.id && !self.transfers.has(m) {
                    fx.send(
                        m,
                        TpbftMessage::FetchCertified {
                            from: self.last + 1,
                        },
                    );
                }
            }
            return;
        }
        let epoch = self.epoch;
        for c in vouched {
            self.observer.skip_to(&c);
            self.on_commit(now, c, fx);
            if self.epoch != epoch {
                break;
            }
        }
        if self.epoch != epoch {
            // Another committee vouches for the next epoch.
            self.transfers.clear();
        } else {
            self.transfers.trim(self.last, self.chain);
        }
        if self.inner.is_none() && self.transfers.exhausted(0) {
            self.fetch_next_part(fx);
        }
    }

    /// Asks `f_c + 1` members for what follows this node's log.
    fn fetch_next_part(&mut self, fx: &mut Effects<TpbftMessage>) {
        let f = (self.members.len() - 1) / 3;
        for j in 0..=f {
            let m = self.member_for(self.fetches + j);
            fx.send(
                m,
                TpbftMessage::FetchCertified {
                    from: self.last + 1,
                },
            );
        }
        self.fetches += f + 1;
    }
}
