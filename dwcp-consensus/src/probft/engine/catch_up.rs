//! Catch-up: a replica that sees messages for a later slot than the one it is
//! deciding asks their sender for the slots it missed. Decided slots come with
//! their decision certificates while peers keep them in memory (each proves
//! itself); older ones come from peers' stores and are taken once `f_max + 1`
//! replicas sent the same hash chain ([`crate::pbft::Transfers`]).

use super::Probft;
use crate::probft::messages::{Certificate, ProbftMessage};
use crate::probft::sample::Phase;
use dwcp_core::{Committed, Digest, Effects, NodeId, Seq, Time};

impl Probft {
    /// Notes that `peer` is at `seq` or beyond, past this replica's next slot, and
    /// asks it at once the first time.
    pub(super) fn note_ahead(&mut self, peer: NodeId, seq: Seq, fx: &mut Effects<ProbftMessage>) {
        if peer != self.id && seq > self.last + 1 && self.ahead.is_none_or(|(_, s)| s < seq) {
            if self.ahead.is_none_or(|(_, s)| s <= self.last + 1) {
                fx.send(
                    peer,
                    ProbftMessage::Fetch {
                        from: self.last + 1,
                    },
                );
            }
            self.ahead = Some((peer, seq));
        }
    }

    /// Asks a replica known to be ahead for what it decided; with a slot stalled
    /// for half a view-change timeout, or one tick for the leader (this replica may be one of the few whose
    /// samples brought too few votes), asks `f_max + 1` replicas in turn whether
    /// they decided it, before any view change; idle, asks one replica every two
    /// view-change timeouts.
    pub(super) fn catch_up_tick(&mut self, now: Time, fx: &mut Effects<ProbftMessage>) {
        if let Some((peer, seq)) = self.ahead {
            if seq > self.last + 1 {
                fx.send(
                    peer,
                    ProbftMessage::Fetch {
                        from: self.last + 1,
                    },
                );
                return;
            }
            self.ahead = None;
        }
        let timeout = self.cfg.view_change_timeout;
        // The leader proposes the next slot only once it decided this one: it
        // asks after one tick.
        let patience = if self.leader(self.view) == self.id {
            self.tick()
        } else {
            timeout / 2
        };
        let stalled = self.waiting() && now.since(self.last_progress) >= patience;
        // Idle, it asks one replica every two timeouts: it may have missed the
        // last decision (down, or too few votes reached it) with nothing after it.
        let idle = !self.waiting()
            && now.since(self.last_progress) >= timeout * 2
            && now.since(self.last_probe) >= timeout * 2;
        if stalled || idle {
            self.last_probe = now;
            let n = self.n();
            for _ in 0..if stalled { self.f_max + 1 } else { 1 } {
                self.fetch_cursor = (self.fetch_cursor + 1) % n;
                let peer = NodeId(self.fetch_cursor as u16);
                if peer != self.id {
                    fx.send(
                        peer,
                        ProbftMessage::Fetch {
                            from: self.last + 1,
                        },
                    );
                }
            }
        }
    }

    pub(super) fn on_fetch(&mut self, from: NodeId, first: Seq, fx: &mut Effects<ProbftMessage>) {
        if first == 0 || first > self.last {
            return;
        }
        if self
            .decided
            .first_key_value()
            .is_some_and(|(s, _)| *s <= first)
        {
            let certs: Vec<Certificate> = self
                .decided
                .range(first..)
                .take(self.cfg.fetch_batch)
                .map(|(_, c)| c.clone())
                .collect();
            fx.send(from, ProbftMessage::Decided(certs));
            return;
        }
        // Older than the certificates kept in memory: read the store.
        if self.log_readers.want(from, (), first) {
            fx.read_committed(first, self.cfg.fetch_batch);
        }
    }

    pub(super) fn on_stored(
        &mut self,
        from: Seq,
        batches: Vec<Committed>,
        fx: &mut Effects<ProbftMessage>,
    ) {
        for (p, ()) in self.log_readers.answered(from, &batches) {
            fx.send(p, ProbftMessage::Log(batches.clone()));
        }
    }

    pub(super) fn on_decided(
        &mut self,
        now: Time,
        from: NodeId,
        certs: Vec<Certificate>,
        fx: &mut Effects<ProbftMessage>,
    ) {
        if certs.len() > self.cfg.fetch_batch {
            return;
        }
        let full = certs.len() == self.cfg.fetch_batch;
        let mut took = false;
        for c in certs {
            if c.header().seq <= self.last {
                continue;
            }
            if c.header().seq != self.last + 1
                || c.phase() != Some(Phase::Commit)
                || !self.checker.certificate(&c)
            {
                break;
            }
            self.counters.decided_caught_up += 1;
            took = true;
            self.decide(now, c, fx);
        }
        if took && full {
            fx.send(
                from,
                ProbftMessage::Fetch {
                    from: self.last + 1,
                },
            );
        }
    }

    pub(super) fn on_log(
        &mut self,
        now: Time,
        from: NodeId,
        batches: Vec<Committed>,
        fx: &mut Effects<ProbftMessage>,
    ) {
        if batches.len() > self.cfg.fetch_batch
            || !self.transfers.offer(from, batches, self.last, self.chain)
        {
            return;
        }
        self.transfers.trim(self.last, self.chain);
        let vouched = self.transfers.vouched(self.f_max);
        if vouched.is_empty() {
            if self.transfers.len() == 1 {
                // The first to answer from its store: ask `f_max` others too.
                let n = self.n() as u16;
                let others = (1..n)
                    .map(|k| dwcp_core::NodeId((from.0 + k) % n))
                    .filter(|p| *p != self.id)
                    .take(self.f_max);
                for p in others {
                    fx.send(
                        p,
                        ProbftMessage::Fetch {
                            from: self.last + 1,
                        },
                    );
                }
            }
            return;
        }
        let taken = vouched.len();
        for c in vouched {
            let digests: Vec<Digest> = c.transactions.iter().map(|t| Digest::of(t)).collect();
            self.counters.transferred += 1;
            self.output(now, c, digests, fx);
        }
        self.transfers.trim(self.last, self.chain);
        self.after_append(now, fx);
        if self.transfers.exhausted(taken) {
            self.ahead = self.ahead.filter(|(_, s)| *s > self.last + 1);
        }
    }
}
