//! Restarting a T-PBFT node, member or observer, from its store.
//!
//! # What a node's state is made of
//!
//! - **What it signed in the current epoch**: its PBFT instance's write-ahead
//!   records and checkpoints. PBFT restores them itself ([`crate::pbft::Instance`]):
//!   an instance reads back only the records of its own range, so an earlier
//!   epoch's records never reach it.
//! - **The committed log's newest batches**: position, chain digest, the repeat
//!   window, and the evidence each batch carries. The store hands them back.
//! - **What the whole log implies**: the epoch, its committee, the previous
//!   committee (the first `W` batches of an epoch carry commit proofs of the
//!   previous epoch's batches), and the trust ledger, which sums the evidence of
//!   every batch since genesis. The store hands back only the newest
//!   `restore_tail` batches, so a node writes this part down at each epoch's start
//!   as an [`EpochSnapshot`].
//!
//! # Why a snapshot at each epoch's start, and nothing else
//!
//! The snapshot is a pure function of the log up to the epoch's base, and
//! everything after the base is in the tail; so a restart recomputes exactly what
//! a node that never stopped holds, by the same code (evidence, the cut point at
//! `last − W` where the next committee is computed, the epoch change at `last`).
//! Writing it once per epoch costs one record of the ledger's size every `E`
//! batches, and bounds the replay to one epoch.
//!
//! # Ordering, and the tail a restart needs
//!
//! Epoch `e + 1`'s snapshot is persisted right after the commit of `last(e)` and
//! before anything of epoch `e + 1`. The daemon's driver makes a commit durable
//! before any record that follows it, and the simulator carries effects out in
//! order; so a store that holds snapshot `e + 1` holds `last(e)`, and a store
//! whose snapshot is `e` ends somewhere in `[base(e), last(e)]` (a crash between
//! that commit and the next snapshot leaves `last(e)` and snapshot `e`: the
//! restart replays across the epoch's end, as the live node did, and writes
//! snapshot `e + 1` on [`dwcp_core::Input::Start`]). The tail must therefore hold
//! the batches from `base(e) + 1` on (at most `E`), and the repeat window
//! (`dedup_window` batches) before the newest: the registry asks the store for
//! `E + W + dedup_window` (`TpbftProtocol::restore_tail`).
//!
//! # Safety
//!
//! A restarted node signs only through its epoch's PBFT instance, and rebuilds the
//! very instance it ran: the same members (from the snapshot and the replay), the
//! same base and the same views (epoch `e` starts at view `e · 2³²`), so PBFT finds
//! its records under the same keys and never signs against them. A store from
//! which the epoch cannot be told is refused rather than guessed: no snapshot and
//! a tail that does not reach back to genesis, a log that ends before its
//! snapshot's base or has a gap after it, a chain that disagrees with the
//! snapshot, or a snapshot written with another epoch length or genesis committee.
//! Starting in a wrong epoch would run a wrong instance, whose records are under
//! other keys.
//!
//! # What is not restored
//!
//! The commit certificates of batches the node committed before it stopped: its
//! proposals in the next `W` batches carry no commit proof (valid: a record may
//! carry none, and as the record is committed every node counts the same evidence),
//! and it serves other nodes' fetches only from what it commits afterwards. Other
//! members serve what it cannot.

use super::super::observer::Observer;
use super::super::snapshot::EpochSnapshot;
use super::{Tpbft, TpbftError};
use crate::tpbft::evidence::EvidenceRecord;
use dwcp_core::{Committed, Digest, NodeId, Recovered, Seq};
use std::collections::{BTreeMap, VecDeque};

impl Tpbft {
    /// Rebuilds the node from its store's `rec` (nothing for a fresh node) and
    /// returns its epoch's base: the position and chain digest the epoch's PBFT
    /// instance starts from, which the caller builds from what this leaves in
    /// `restore_from`.
    pub(super) fn restore(&mut self, rec: Recovered) -> Result<(Seq, Digest), TpbftError> {
        let Recovered {
            wal,
            checkpoints,
            committed_tail,
        } = rec;
        if let Some(s) = EpochSnapshot::find(&wal).map_err(TpbftError::Store)? {
            self.apply_snapshot(s)?;
        }
        // The status shows trust as of the epoch's start, as on every other node;
        // an epoch the replay crosses refreshes it again.
        self.refresh_trust();
        let base = self.last;
        let store = |m: String| Err(TpbftError::Store(m));
        if let Some(c) = committed_tail.iter().find(|c| c.seq == base) {
            if c.digest != self.chain {
                return store(format!(
                    "the log's digest at {base} is not the epoch snapshot's"
                ));
            }
        }
        match committed_tail.last() {
            None if base > 0 => {
                return store(format!(
                    "the log is empty but its epoch snapshot starts at {base}"
                ))
            }
            Some(newest) if newest.seq < base => {
                return store(format!(
                    "the log ends at {} but its epoch snapshot starts at {base}",
                    newest.seq
                ))
            }
            Some(_) if committed_tail[0].seq > base + 1 => {
                return store(format!(
                    "{} epoch {}'s batches from {} on are needed, the store handed back \
                     from {} on (restore_tail too small?)",
                    if base == 0 {
                        "without an epoch snapshot,"
                    } else {
                        "for"
                    },
                    self.epoch,
                    base + 1,
                    committed_tail[0].seq
                ))
            }
            _ => {}
        }
        let mut crossed = false;
        let mut epoch_base = (self.last, self.chain);
        for c in committed_tail.iter().filter(|c| c.seq > base) {
            if c.seq != self.last + 1 {
                return store(format!("the log jumps from {} to {}", self.last, c.seq));
            }
            self.replay(c, &mut crossed)?;
            if c.seq == self.epoch * self.cfg.epoch_length {
                epoch_base = (c.seq, c.digest);
            }
        }
        if crossed {
            self.pending_snapshot = Some(self.snapshot().record());
        }
        let keep = self.cfg.pbft.dedup_window.max(1) as usize;
        let skip = committed_tail.len().saturating_sub(keep);
        self.tail = committed_tail
            .into_iter()
            .skip(skip)
            .collect::<VecDeque<_>>();
        let tail: Vec<Committed> = self.tail.iter().cloned().collect();
        self.observer = Observer::new(self.last, self.chain, self.cfg.pbft.dedup_window);
        self.observer.restore_window(&tail);
        self.observer_progress = (self.last, 0);
        self.restore_from = Recovered {
            wal,
            checkpoints,
            committed_tail: Vec::new(),
        };
        Ok(epoch_base)
    }

    /// Takes the epoch, committees and ledger from `s`, after checking that this
    /// node's parameters could have written it.
    fn apply_snapshot(&mut self, s: EpochSnapshot) -> Result<(), TpbftError> {
        let n = self.committee.size();
        let refuse = |m: String| Err(TpbftError::Store(m));
        if s.epoch_length != self.cfg.epoch_length {
            return refuse(format!(
                "the store was written with epoch_length {}, the config says {}",
                s.epoch_length, self.cfg.epoch_length
            ));
        }
        if s.ledger.local().len() != n || s.ledger.genesis() != self.genesis.as_slice() {
            return refuse(
                "the store's trust ledger is of another set of nodes or genesis committee".into(),
            );
        }
        let valid = |ids: &[NodeId]| {
            ids.windows(2).all(|p| p[0] < p[1]) && ids.iter().all(|id| id.index() < n)
        };
        if s.members.is_empty()
            || !valid(&s.members)
            || !valid(&s.previous)
            || (s.epoch > 0) == s.previous.is_empty()
        {
            return refuse(format!(
                "the snapshot of epoch {} names bad committees",
                s.epoch
            ));
        }
        self.last = s.base();
        let mut epochs = BTreeMap::from([(s.epoch, self.cfg.schedule(&s.members, s.epoch))]);
        if s.epoch > 0 {
            epochs.insert(s.epoch - 1, self.cfg.schedule(&s.previous, s.epoch - 1));
        }
        self.chain = s.base_chain;
        self.epoch = s.epoch;
        self.members = s.members;
        self.ledger = s.ledger;
        self.next = None;
        if let Ok(mut shared) = self.shared.lock() {
            shared.epochs = epochs;
            shared.next_digest = None;
        }
        Ok(())
    }

    /// Applies one stored batch as [`Tpbft::on_commit`] does, without effects:
    /// its evidence, the next committee at the cut point, the epoch's end.
    fn replay(&mut self, c: &Committed, crossed: &mut bool) -> Result<(), TpbftError> {
        #[cfg(feature = "unsafe-test-hooks")]
        let skip = self.cfg.unsafe_skip_replay;
        #[cfg(not(feature = "unsafe-test-hooks"))]
        let skip = false;
        if !skip {
            self.record_evidence(c);
        }
        self.last = c.seq;
        self.chain = c.digest;
        let last = self.epoch_last();
        if c.seq == last.saturating_sub(self.cfg.pbft.window) && !skip {
            self.compute_next();
        }
        if c.seq == last {
            if !self.advance_epoch() {
                return Err(TpbftError::Store(format!(
                    "the committee after epoch {} cannot be computed",
                    self.epoch
                )));
            }
            *crossed = true;
        }
        Ok(())
    }

    /// Feeds the evidence that committed batch `c` carries (its first transaction)
    /// to the ledger: each commit proof that checks against its epoch's committee.
    pub(super) fn record_evidence(&mut self, c: &Committed) {
        let Some(Some(Ok(record))) = c
            .transactions
            .first()
            .map(|tx| EvidenceRecord::from_transaction(tx))
        else {
            return;
        };
        if let Ok(mut s) = self.shared.lock() {
            for p in &record.commits {
                let Some((e, epoch, schedule)) = s.verify(p) else {
                    continue;
                };
                let _ = self.ledger.record(&schedule.members, &e);
                if let (Some(vote), super::super::Evidence::Committed { signers, .. }) =
                    (p.votes.first(), &e)
                {
                    let view = vote.value().view;
                    let _ = self.ledger.record_views(epoch, schedule, view, signers);
                }
            }
            // Equivocation committed: its author sits on no later committee.
            for p in &record.misbehaviour {
                if let Some(node) = s.verify_misbehaviour(p) {
                    let _ = self
                        .ledger
                        .record(&[], &super::super::Evidence::Misbehaved { node });
                    s.misbehaviour.remove(&node);
                }
            }
        }
    }

    /// Moves to the next epoch's committee, computing it now if the cut point
    /// passed without it; `false` if it cannot be computed.
    pub(super) fn advance_epoch(&mut self) -> bool {
        if self.next.is_none() {
            self.compute_next();
        }
        let Some(members) = self.next.take() else {
            return false;
        };
        self.epoch += 1;
        self.members = members;
        if let Ok(mut s) = self.shared.lock() {
            s.epochs
                .insert(self.epoch, self.cfg.schedule(&self.members, self.epoch));
            let keep = self.epoch.saturating_sub(2);
            s.epochs = s.epochs.split_off(&keep);
            s.next_digest = None;
        }
        self.refresh_trust();
        true
    }

    /// The snapshot of the epoch this node is at the start of.
    pub(super) fn snapshot(&self) -> EpochSnapshot {
        let previous = match self.epoch.checked_sub(1) {
            Some(e) => self
                .shared
                .lock()
                .ok()
                .and_then(|s| s.epochs.get(&e).map(|i| i.members.clone()))
                .unwrap_or_default(),
            None => Vec::new(),
        };
        EpochSnapshot {
            epoch: self.epoch,
            epoch_length: self.cfg.epoch_length,
            base_chain: self.chain,
            members: self.members.clone(),
            previous,
            ledger: self.ledger.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::{TpbftConfig, TrustLedger, TrustParams};
    use super::*;
    use dwcp_core::crypto::SignatureScheme;
    use dwcp_core::{Committee, CommitteeRole, Engine, Record};

    fn ids(v: &[u16]) -> Vec<NodeId> {
        v.iter().copied().map(NodeId).collect()
    }

    /// A node of seven (committee of four) restarted from a store holding only
    /// `snapshot` and the log `tail`.
    fn restart(snapshot: Option<EpochSnapshot>, tail: Vec<Committed>) -> Result<Tpbft, String> {
        let (committee, keys) = Committee::deterministic(7, SignatureScheme::Ed25519, 1);
        let cfg = TpbftConfig {
            committee_size: 4,
            ..TpbftConfig::default()
        };
        let wal = snapshot
            .into_iter()
            .map(|s| match s.record() {
                Record::Put { key, value } => (key, value),
                _ => unreachable!("a snapshot is a put"),
            })
            .collect();
        let rec = Recovered {
            wal,
            committed_tail: tail,
            ..Recovered::default()
        };
        Tpbft::new(keys[5].clone(), committee, cfg, rec).map_err(|e| e.to_string())
    }

    fn snapshot(epoch: u64) -> EpochSnapshot {
        let genesis = ids(&[0, 1, 2, 3]);
        EpochSnapshot {
            epoch,
            epoch_length: TpbftConfig::default().epoch_length,
            base_chain: Digest::of(b"base"),
            members: ids(&[0, 1, 2, 4]),
            previous: genesis.clone(),
            ledger: TrustLedger::new(7, &genesis, TrustParams::default()).expect("ledger"),
        }
    }

    fn batch(seq: Seq, digest: Digest) -> Committed {
        Committed {
            seq,
            digest,
            transactions: Vec::new(),
        }
    }

    #[test]
    fn the_snapshot_key_is_nobody_elses() {
        // PBFT instances read records above their range only at u64::MAX − base,
        // and bases are multiples of an epoch length of at least 3.
        assert_eq!(EpochSnapshot::KEY.slot, u64::MAX - 1);
        assert!(TpbftConfig::default().epoch_length >= 3);
    }

    #[test]
    fn a_restart_takes_epoch_and_committee_from_the_snapshot() {
        let s = snapshot(2);
        let base = s.base();
        let node = restart(Some(s.clone()), vec![batch(base, s.base_chain)]).expect("restarts");
        assert_eq!(node.epoch(), 2);
        assert_eq!(node.members(), ids(&[0, 1, 2, 4]).as_slice());
        assert_eq!(node.status().last_committed, base);
        assert_eq!(
            node.status().committee.map(|c| c.role),
            Some(CommitteeRole::Observer)
        );
    }

    #[test]
    fn stores_that_do_not_tell_the_epoch_are_refused() {
        let s = snapshot(2);
        let base = s.base();
        let refused = |snap: Option<EpochSnapshot>, tail: Vec<Committed>, why: &str| {
            let e = restart(snap, tail)
                .err()
                .unwrap_or_else(|| panic!("{why}: accepted"));
            assert!(e.contains("cannot restart"), "{why}: {e}");
        };
        refused(Some(s.clone()), Vec::new(), "a snapshot without a log");
        refused(
            Some(s.clone()),
            vec![batch(base - 1, s.base_chain)],
            "a log before it",
        );
        refused(
            Some(s.clone()),
            vec![batch(base, Digest::ZERO)],
            "another chain",
        );
        refused(
            Some(s.clone()),
            vec![batch(base + 2, Digest::ZERO)],
            "a gap",
        );
        refused(
            None,
            vec![batch(base, Digest::ZERO)],
            "no snapshot, no genesis",
        );
        let other = EpochSnapshot {
            epoch_length: 2 * s.epoch_length,
            ..s.clone()
        };
        refused(
            Some(other),
            vec![batch(base, s.base_chain)],
            "another epoch length",
        );
        let stranger = EpochSnapshot {
            members: ids(&[0, 9]),
            ..s.clone()
        };
        refused(
            Some(stranger),
            vec![batch(base, s.base_chain)],
            "an unknown member",
        );
        let (committee, keys) = Committee::deterministic(7, SignatureScheme::Ed25519, 1);
        let garbage = Recovered {
            wal: vec![(EpochSnapshot::KEY, bytes::Bytes::from_static(b"garbage"))],
            ..Recovered::default()
        };
        let e = Tpbft::new(keys[0].clone(), committee, TpbftConfig::default(), garbage)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("does not decode"), "{e}");
    }
}
