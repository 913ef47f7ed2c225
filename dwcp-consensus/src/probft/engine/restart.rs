//! A restart: the log position comes from the committed tail, and this replica's
//! own votes, proposals, prepared certificate, view and view change from its
//! write-ahead records, each written before the message it backs left. So a
//! restarted replica never signs two different statements for one slot, phase
//! and view, and a view change after a restart still reports what it prepared.

use super::{
    Change, Probft, ProbftError, MAX_RECORD, TAG_COMMIT, TAG_PREPARE, TAG_PREPARED, TAG_PROPOSAL,
    TAG_VIEW, VIEW_SLOT,
};
use crate::probft::messages::{Certificate, ViewChange};
use crate::probft::sample::Phase;
use dwcp_core::codec::decode;
use dwcp_core::{Digest, Recovered, Signed, Time, View};

impl Probft {
    /// Rebuilds the log position from the committed tail and this replica's
    /// votes, proposals, view and view change from its write-ahead records, so
    /// that it never signs two different statements for one slot and phase.
    pub(super) fn restore(&mut self, rec: Recovered) -> Result<(), ProbftError> {
        if let Some(c) = rec.committed_tail.last() {
            self.last = c.seq;
            self.chain = c.digest;
        }
        self.executed.restore(&rec.committed_tail);
        for (key, value) in rec.wal {
            let bad = || ProbftError::CorruptRecord(key);
            match (key.slot, key.tag) {
                (VIEW_SLOT, TAG_VIEW) => {
                    let (view, vc): (View, Option<Signed<ViewChange>>) =
                        decode(&value, MAX_RECORD).map_err(|_| bad())?;
                    self.view = view;
                    if let Some(vc) = vc {
                        self.changing = Some(Change {
                            target: view,
                            attempt: 0,
                            started: Time::ZERO,
                        });
                        self.my_view_change = Some(vc);
                    }
                }
                (slot, TAG_PREPARED) if slot > self.last => {
                    let cert: Certificate = decode(&value, MAX_RECORD).map_err(|_| bad())?;
                    self.prepared = Some(cert);
                }
                (slot, tag) if slot > self.last => {
                    let entry: (View, Digest) = decode(&value, MAX_RECORD).map_err(|_| bad())?;
                    match tag {
                        TAG_PREPARE => self.my_votes.insert((slot, Phase::Prepare), entry),
                        TAG_COMMIT => self.my_votes.insert((slot, Phase::Commit), entry),
                        TAG_PROPOSAL => self.my_proposals.insert(slot, entry),
                        _ => return Err(bad()),
                    };
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::probft::{Probft, ProbftConfig, ProbftError};
    use bytes::Bytes;
    use dwcp_core::crypto::SignatureScheme;
    use dwcp_core::{Committee, Recovered, WalKey};

    /// A write-ahead record that does not decode refuses the restart, naming it.
    #[test]
    fn a_corrupt_record_refuses_the_restart() {
        let (committee, keys) = Committee::deterministic(4, SignatureScheme::InsecureFast, 1);
        for key in [
            WalKey { slot: 3, tag: 1 },
            WalKey {
                slot: u64::MAX,
                tag: 1,
            },
        ] {
            let rec = Recovered {
                wal: vec![(key, Bytes::from_static(b"\xff\xff\xff not a record"))],
                ..Recovered::default()
            };
            let r = Probft::new(
                keys[0].clone(),
                committee.clone(),
                ProbftConfig::default(),
                rec,
            );
            assert!(
                matches!(r, Err(ProbftError::CorruptRecord(k)) if k == key),
                "{key:?}"
            );
        }
    }
}
