//! The worker (Narwhal's worker crate): sealing transactions into batches,
//! storing every batch, its own or a peer's, before acknowledging it, and counting
//! acknowledgements until a quorum holds a batch and its digest is ready for a header.

use bytes::Bytes;
use dwcp_core::codec::encode;
use dwcp_core::{Digest, Effects, NodeId, Record, Round, Time, WalKey};
use std::collections::BTreeSet;

use super::{
    BatchRecord, BullsharkEngine, OwnBatch, StoredBatch, TAG_BATCH, TAG_HEADER, TIMER_BATCH,
};
use crate::bullshark::batch::Batch;
use crate::bullshark::certificate::Certificate;
use crate::bullshark::messages::BullsharkMessage;

impl BullsharkEngine {
    pub(super) fn on_submit(
        &mut self,
        now: Time,
        txs: Vec<Bytes>,
        fx: &mut Effects<BullsharkMessage>,
    ) {
        let mut waiting: usize = self.own_batches.values().map(|b| b.bytes).sum::<usize>()
            + self.ready.iter().map(|(_, _, b)| b).sum::<usize>()
            + self.maker.size();
        for tx in txs {
            if self
                .validator
                .as_ref()
                .is_some_and(|v| v.check_tx(&tx).is_err())
            {
                self.stats.refused_transactions += 1;
                continue;
            }
            waiting += 4 + tx.len();
            if waiting > self.cfg.max_pending_bytes {
                self.stats.dropped_transactions += 1;
                continue;
            }
            if self.maker.count() == 0 {
                fx.set_timer(TIMER_BATCH, self.cfg.max_batch_delay);
            }
            if !self.maker.push(&tx) {
                self.stats.dropped_transactions += 1;
                continue;
            }
            if self.maker.size() >= self.cfg.batch_size {
                self.seal(now, fx);
            }
        }
    }

    /// Whether the application accepts every transaction of a peer's batch.
    fn batch_acceptable(&self, batch: &Batch) -> bool {
        let Some(v) = &self.validator else {
            return true;
        };
        let txs: Vec<Bytes> = batch.transactions().collect();
        v.process_proposal(&txs).is_ok()
    }

    pub(super) fn seal(&mut self, now: Time, fx: &mut Effects<BullsharkMessage>) {
        let count = self.maker.count() as u64;
        let bytes = self.maker.size();
        // The round and this run's counter make the nonce: a restarted worker
        // (counter back at zero) seals in a later round.
        let nonce = (self.horizon() << 32) | (self.stats.batches_sealed & 0xffff_ffff);
        let Some(batch) = self.maker.seal(self.id, nonce) else {
            return;
        };
        fx.cancel_timer(TIMER_BATCH);
        self.stats.batches_sealed += 1;
        let digest = batch.digest();
        self.own_batches.insert(
            digest,
            OwnBatch {
                acks: BTreeSet::from([self.id]),
                transactions: count,
                bytes,
                resend_at: now.after(self.cfg.sync_retry),
                backoff: self.cfg.sync_retry,
            },
        );
        // Durable before any copy leaves: this node counts as one of its holders.
        let key = self.batch_key(self.round);
        Self::persist_batch(key, &batch, self.id, false, fx);
        self.batches.insert(
            digest,
            StoredBatch {
                batch: batch.clone(),
                origin: self.id,
                key,
                unreferenced: false,
            },
        );
        fx.broadcast(BullsharkMessage::Batch(batch));
        self.check_ready(digest, now, fx);
    }

    /// A fresh write-ahead key for a batch stored in `round` (or at the
    /// garbage-collection round, if that is higher).
    pub(super) fn batch_key(&mut self, round: Round) -> WalKey {
        let mut slot = round.max(self.dag.gc_round());
        loop {
            let next = self.batch_tags.entry(slot).or_insert(TAG_BATCH);
            // Two tags per batch, below `TAG_HEADER`; a full slot spills into the next.
            if *next < TAG_HEADER - 1 {
                let tag = *next;
                *next += 2;
                return WalKey { slot, tag };
            }
            slot += 1;
        }
    }

    /// Makes a batch durable under `key`: its record, then its bytes (shared with
    /// the batch, not copied).
    pub(super) fn persist_batch(
        key: WalKey,
        batch: &Batch,
        origin: NodeId,
        proposed: bool,
        fx: &mut Effects<BullsharkMessage>,
    ) {
        let record = BatchRecord {
            author: batch.author(),
            nonce: batch.nonce(),
            origin,
            proposed,
        };
        fx.persist(Record::Put {
            key,
            value: Bytes::from(encode(&record)),
        });
        fx.persist(Record::Put {
            key: WalKey {
                slot: key.slot,
                tag: key.tag + 1,
            },
            value: batch.payload().clone(),
        });
    }

    fn check_ready(&mut self, digest: Digest, now: Time, fx: &mut Effects<BullsharkMessage>) {
        let Some(own) = self.own_batches.get(&digest) else {
            return;
        };
        if own.acks.len() >= self.quorum {
            let (transactions, bytes) = (own.transactions, own.bytes);
            self.own_batches.remove(&digest);
            self.ready.push((digest, transactions, bytes));
            self.try_propose(now, fx);
        }
    }

    pub(super) fn on_batch(
        &mut self,
        now: Time,
        from: NodeId,
        batch: Batch,
        fx: &mut Effects<BullsharkMessage>,
    ) {
        let digest = batch.digest();
        let solicited = self.want_batches.remove(&digest).is_some();
        let horizon = self.horizon();
        if let Some(stored) = self.batches.get(&digest) {
            if stored.key.slot < horizon {
                // Acknowledged again (its author, maybe restarted, wants to propose
                // it now): kept from now on as if it had just arrived, on disk too.
                let (batch, origin) = (stored.batch.clone(), stored.origin);
                let key = self.batch_key(horizon);
                Self::persist_batch(key, &batch, origin, false, fx);
                if let Some(stored) = self.batches.get_mut(&digest) {
                    stored.key = key;
                }
            }
            fx.send(from, BullsharkMessage::BatchAck(digest));
            return;
        }
        if batch.len() > self.cfg.batch_size.saturating_mul(2).max(1 << 16)
            || batch.check().is_err()
        {
            self.stats.rejected += 1;
            return;
        }
        if !solicited && !self.batch_acceptable(&batch) {
            // Never acknowledged, so no header naming it gathers this node's vote.
            // A batch a certificate already names (solicited) is stored whatever
            // it holds: the order is decided, and every node must output it.
            self.stats.refused_batches += 1;
            return;
        }
        let unreferenced = !solicited;
        if unreferenced {
            let used = &mut self.unreferenced_bytes[from.index()];
            if *used + batch.len() > self.cfg.max_unreferenced_batch_bytes {
                return;
            }
            *used += batch.len();
        }
        // Narwhal's worker: store the batch, then acknowledge it. The
        // acknowledgement (and any vote for a header naming it) promises that the
        // batch survives a crash of this node.
        let key = self.batch_key(horizon);
        Self::persist_batch(key, &batch, from, false, fx);
        self.batches.insert(
            digest,
            StoredBatch {
                batch,
                origin: from,
                key,
                unreferenced,
            },
        );
        if !solicited {
            fx.send(from, BullsharkMessage::BatchAck(digest));
        }
        self.retry_pending_headers(now, fx);
        self.drain_output(now, fx);
    }

    pub(super) fn on_batch_ack(
        &mut self,
        now: Time,
        from: NodeId,
        digest: Digest,
        fx: &mut Effects<BullsharkMessage>,
    ) {
        if let Some(own) = self.own_batches.get_mut(&digest) {
            own.acks.insert(from);
            self.check_ready(digest, now, fx);
        }
    }

    pub(super) fn mark_referenced(&mut self, cert: &Certificate) {
        for d in cert.batches() {
            if let Some(b) = self.batches.get_mut(d) {
                if b.unreferenced {
                    b.unreferenced = false;
                    let used = &mut self.unreferenced_bytes[b.origin.index()];
                    *used = used.saturating_sub(b.batch.len());
                }
            }
        }
    }
}
