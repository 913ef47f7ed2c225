//! What an embedding application decides about transactions before consensus
//! orders them, in the spirit of Tendermint's `CheckTx` and `ProcessProposal`: a
//! node drops transactions its application refuses before they enter a batch, and
//! a replica does not vote for a proposal its application refuses.

use bytes::Bytes;
use std::sync::Arc;

/// Why an application refused a transaction or a proposal.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("refused by the application: {0}")]
pub struct Refused(pub String);

/// An application's admission rules. Both checks must be deterministic functions of
/// their input alone: honest replicas must agree on what is valid, or a valid
/// proposal may not gather a quorum and its primary is replaced. They run on the
/// engine's thread for every transaction, so keep them cheap.
pub trait Validator: Send + Sync {
    /// A cheap check of one transaction before it enters a batch.
    fn check_tx(&self, tx: &[u8]) -> Result<(), Refused> {
        let _ = tx;
        Ok(())
    }

    /// A check of a whole proposed batch before this node votes for it. By default
    /// every transaction must pass [`Validator::check_tx`].
    fn process_proposal(&self, batch: &[Bytes]) -> Result<(), Refused> {
        batch.iter().try_for_each(|tx| self.check_tx(tx))
    }
}

/// Accepts every transaction and every proposal (what an engine without a
/// validator does).
#[derive(Clone, Copy, Debug, Default)]
pub struct AcceptAll;

impl Validator for AcceptAll {}

/// The validator engines hold.
pub type SharedValidator = Arc<dyn Validator>;

#[cfg(test)]
mod tests {
    use super::*;

    struct NoEmpty;
    impl Validator for NoEmpty {
        fn check_tx(&self, tx: &[u8]) -> Result<(), Refused> {
            if tx.is_empty() {
                Err(Refused("empty".into()))
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn a_proposal_passes_only_if_every_transaction_does() {
        let ok = [Bytes::from_static(b"a"), Bytes::from_static(b"b")];
        let bad = [Bytes::from_static(b"a"), Bytes::new()];
        assert!(NoEmpty.process_proposal(&ok).is_ok());
        assert_eq!(NoEmpty.process_proposal(&bad), Err(Refused("empty".into())));
        assert!(AcceptAll.process_proposal(&bad).is_ok());
    }
}
