//! What a replica writes ahead to storage before the messages it signs leave,
//! so that after a crash it never signs anything contradicting them.

use super::messages::{CoSignature, NewView, PrePrepare, PreparedCert, ViewChange, Vote};
use dwcp_core::{Signed, View};
use serde::{Deserialize, Serialize};

/// Tag of the record holding the view (slot `u64::MAX` less the instance's base).
pub(crate) const TAG_VIEW: u32 = 0;
/// Tag of the new-view message this replica issued (the view's slot).
pub(crate) const TAG_NEW_VIEW: u32 = 1;
/// Tag of a pre-prepare this replica issued as primary (slot = seq).
pub(crate) const TAG_PRE_PREPARE: u32 = 2;
/// Tag of this replica's prepare (slot = seq).
pub(crate) const TAG_PREPARE: u32 = 3;
/// Tag of this replica's commit and the certificate that justified it (slot = seq).
pub(crate) const TAG_COMMIT: u32 = 4;
/// Tag of this replica's co-signature as a primary-group member (slot = seq).
pub(crate) const TAG_COSIGN: u32 = 5;

/// One write-ahead record of a PBFT replica.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)] // written once per signed message; boxing buys nothing
pub(crate) enum WalEntry {
    /// The current view, and our view-change message if we are changing views.
    View {
        view: View,
        view_change: Option<Signed<ViewChange>>,
    },
    /// A new-view message we issued.
    NewView(Signed<NewView>),
    /// A pre-prepare we issued.
    PrePrepare(Signed<PrePrepare>),
    /// A prepare we sent.
    Prepare(Signed<Vote>),
    /// A commit we sent, with the prepared certificate behind it.
    Commit {
        vote: Signed<Vote>,
        cert: PreparedCert,
    },
    /// A co-signature we gave as a primary-group member.
    CoSign(Signed<CoSignature>),
}
