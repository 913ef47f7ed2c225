//! Synchronisation (Narwhal's `synchronizer.rs`, `header_waiter.rs` and
//! `certificate_waiter.rs`): fetching missing parent certificates and batches with
//! retries, catching up by rounds, serving peers' requests, and resending this
//! node's header, certificate and unacknowledged batches.

use dwcp_core::{Digest, Effects, NodeId, Round, Time};

use super::{BullsharkEngine, Wanted, MAX_RESEND_BACKOFF, TIMER_SYNC};
use crate::bullshark::messages::{BullsharkMessage, MAX_RANGE, MAX_REQUEST};

impl BullsharkEngine {
    pub(super) fn want_certificate(&mut self, digest: Digest, hint: NodeId, now: Time) {
        if self.dag.is_present(&digest) || self.want_certs.contains_key(&digest) {
            return;
        }
        self.want_certs.insert(
            digest,
            Wanted {
                hint,
                attempts: 0,
                last: now,
                urgent: false,
            },
        );
        self.outbox.entry(hint).or_default().0.push(digest);
    }

    pub(super) fn want_batch(&mut self, digest: Digest, hint: NodeId, now: Time, urgent: bool) {
        if let Some(w) = self.want_batches.get_mut(&digest) {
            w.urgent |= urgent;
            return;
        }
        if self.batches.contains_key(&digest) {
            return;
        }
        self.want_batches.insert(
            digest,
            Wanted {
                hint,
                attempts: 0,
                last: now,
                urgent,
            },
        );
        self.outbox.entry(hint).or_default().1.push(digest);
    }

    /// The member to ask on the `attempt`-th try: the hint first, then the others in turn.
    fn peer_for(&self, hint: NodeId, attempt: u32) -> NodeId {
        let n = self.committee.size();
        let mut k = (hint.index() + attempt as usize) % n;
        if k == self.id.index() {
            k = (k + 1) % n;
        }
        NodeId(k as u16)
    }

    /// Retransmissions and retries, every `sync_retry`.
    pub(super) fn on_sync_tick(&mut self, now: Time, fx: &mut Effects<BullsharkMessage>) {
        fx.set_timer(TIMER_SYNC, self.cfg.sync_retry);
        if let Some(h) = &self.own_header {
            if !self.own_certified {
                for to in self.committee.ids() {
                    if to != self.id && !self.own_votes.contains_key(&to) {
                        fx.send(to, BullsharkMessage::Header(h.clone()));
                    }
                }
            }
        }
        if let Some(c) = &self.last_own_certificate {
            fx.broadcast(BullsharkMessage::Certificate((**c).clone()));
        }
        let max_backoff = self.cfg.sync_retry * MAX_RESEND_BACKOFF;
        for (digest, own) in &mut self.own_batches {
            if now < own.resend_at {
                continue;
            }
            let Some(b) = self.batches.get(digest) else {
                continue;
            };
            for to in self.committee.ids() {
                if !own.acks.contains(&to) {
                    fx.send(to, BullsharkMessage::Batch(b.batch.clone()));
                }
            }
            own.backoff = (own.backoff * 2).min(max_backoff);
            own.resend_at = now.after(own.backoff);
        }
        let retry = self.cfg.sync_retry;
        let max = self.cfg.max_sync_attempts;
        let mut asks: Vec<(NodeId, Digest, bool)> = Vec::new();
        let mut certificate_lost = false;
        for (kind, wanted) in [
            (true, &mut self.want_certs),
            (false, &mut self.want_batches),
        ] {
            wanted.retain(|d, w| {
                if now.since(w.last) < retry {
                    return true;
                }
                if w.attempts >= max && !w.urgent {
                    certificate_lost |= kind;
                    return false;
                }
                w.attempts = w.attempts.saturating_add(1);
                w.last = now;
                asks.push((w.hint, *d, kind));
                true
            });
        }
        for (hint, d, is_cert) in asks {
            let attempts = if is_cert {
                self.want_certs.get(&d).map(|w| w.attempts)
            } else {
                self.want_batches.get(&d).map(|w| w.attempts)
            }
            .unwrap_or(0);
            let to = self.peer_for(hint, attempts);
            let slot = self.outbox.entry(to).or_default();
            if is_cert {
                slot.0.push(d);
            } else {
                slot.1.push(d);
            }
        }
        // A parent no peer could send in all those attempts was collected by them.
        if certificate_lost {
            self.request_transfer(now, fx);
        }
        if let Some(t) = &self.transfer {
            if t.attempts >= max {
                self.transfer = None;
            } else if now.since(t.asked) >= retry {
                self.request_transfer(now, fx);
            }
        }
        self.try_propose(now, fx);
        self.drain_output(now, fx);
    }

    /// Far behind a peer: ask it for everything above our DAG at once, rather than
    /// walking back one round per round trip (at most once per `sync_retry`).
    pub(super) fn catch_up(&mut self, now: Time, from: NodeId, fx: &mut Effects<BullsharkMessage>) {
        if from == self.id {
            return;
        }
        if let Some(last) = self.last_range_request {
            if now.since(last) < self.cfg.sync_retry {
                return;
            }
        }
        self.last_range_request = Some(now);
        let start = self.dag.highest_round().max(self.dag.gc_round()).max(1);
        fx.send(from, BullsharkMessage::CertificateRange(start));
    }

    pub(super) fn on_certificate_range(
        &mut self,
        from: NodeId,
        start: Round,
        fx: &mut Effects<BullsharkMessage>,
    ) {
        let start = start.max(self.dag.gc_round()).max(1);
        let mut certs = Vec::new();
        let mut r = start;
        while r <= self.dag.highest_round() && certs.len() < MAX_RANGE {
            certs.extend(self.dag.round(r).map(|c| (**c).clone()));
            r += 1;
        }
        certs.truncate(MAX_RANGE);
        if !certs.is_empty() {
            fx.send(from, BullsharkMessage::Certificates(certs));
        }
    }

    pub(super) fn on_certificate_request(
        &mut self,
        from: NodeId,
        digests: Vec<Digest>,
        fx: &mut Effects<BullsharkMessage>,
    ) {
        for d in digests.iter().take(MAX_REQUEST) {
            if let Some(c) = self.dag.get(d) {
                fx.send(from, BullsharkMessage::Certificate((**c).clone()));
            }
        }
    }

    pub(super) fn on_batch_request(
        &mut self,
        from: NodeId,
        digests: Vec<Digest>,
        fx: &mut Effects<BullsharkMessage>,
    ) {
        for d in digests.iter().take(MAX_REQUEST) {
            if let Some(b) = self.batches.get(d) {
                fx.send(from, BullsharkMessage::Batch(b.batch.clone()));
            }
        }
    }

    pub(super) fn flush_requests(&mut self, fx: &mut Effects<BullsharkMessage>) {
        for (to, (certs, batches)) in std::mem::take(&mut self.outbox) {
            if to == self.id {
                continue;
            }
            for chunk in certs.chunks(MAX_REQUEST) {
                fx.send(to, BullsharkMessage::CertificateRequest(chunk.to_vec()));
            }
            for chunk in batches.chunks(MAX_REQUEST) {
                fx.send(to, BullsharkMessage::BatchRequest(chunk.to_vec()));
            }
        }
    }
}
