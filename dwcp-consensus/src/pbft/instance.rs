//! Which members one PBFT instance runs among, which part of the log it orders, and
//! who proposes in each of its views (the primary, or T-PBFT's primary group).

use dwcp_core::{Digest, NodeId, Seq, View};
use std::time::Duration;

/// Which members of a committee one PBFT instance runs among and which part of the
/// log it orders. The default is plain PBFT: the whole committee, from the start of
/// the log, without end. An engine that runs PBFT by epochs among changing
/// committees (T-PBFT) gives each epoch its own instance.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Instance {
    /// The members that propose, vote and serve catch-up (empty: the whole
    /// committee). Quorums are `2f+1` of them; who leads each view is
    /// [`Instance::leader`]. Statements by anyone else do not count.
    pub members: Vec<NodeId>,
    /// The sequence number and chain digest the instance starts after: its first
    /// stable checkpoint, which needs no proof. A multiple of the checkpoint
    /// interval.
    pub base: (Seq, Digest),
    /// The last sequence number it orders, if any: it proposes, prepares and
    /// commits nothing above it.
    pub last: Option<Seq>,
    /// The view it starts in. Instances that share signing keys take disjoint view
    /// ranges, so that no two of them sign view changes or NEW-VIEWs for the same
    /// view.
    pub first_view: View,
    /// A primary group that replaces the single primary for the instance's first
    /// views (T-PBFT); `None` is plain PBFT.
    pub group: Option<PrimaryGroup>,
}

/// T-PBFT's primary group: `m` members that propose in turn, each proposal
/// co-signed by `threshold` of them before backups accept it.
///
/// - In the instance's view `first_view + r` with `r < m`, the designated proposer
///   is `members[r]`; its pre-prepare reaches backups only with the co-signatures
///   of `threshold − 1` other group members ([`crate::pbft::PbftMessage::CoSigned`]). Each
///   member co-signs at most one digest per view and sequence number, and only a
///   batch it would prepare, durably, so two proposals for one slot need two faulty
///   members to both gather a threshold of 3 of 4.
/// - If the designated proposer leaves a request waiting `takeover_after` (less
///   than the view-change timeout), any other group member holding it proposes in
///   the same view, with the same co-signing: one silent member costs a sub-timeout,
///   not a view change.
/// - From view `first_view + m` on, the primary is the instance's members in turn,
///   without co-signing, so a wholly faulty group stalls the chain for at most `m`
///   view changes.
///
/// Safety does not rest on any of this: a backup prepares at most one proposal per
/// view and sequence number (a member that proposed counts its pre-prepare as its
/// vote), and only `2f + 1` matching prepares make it prepared, whoever proposed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrimaryGroup {
    /// The group, in turn order; each a member of the instance.
    pub members: Vec<NodeId>,
    /// Signatures a proposal needs, the proposer's own included (`1..=m`).
    pub threshold: usize,
    /// How long a request may wait for the designated proposer before another
    /// group member proposes it.
    pub takeover_after: Duration,
}

impl Instance {
    /// The primary of `view`: with no primary group the members in turn
    /// (`members[view mod n]`); with one, its members in turn for the instance's
    /// first `m` views, then the members in turn. `members` must be non-empty and
    /// in id order, as [`crate::pbft::Pbft`] keeps them.
    pub fn leader(&self, view: View) -> NodeId {
        leader_of(&self.members, self.group.as_ref(), self.first_view, view)
    }

    /// The primary group, if `view` is one of the views it proposes in.
    pub fn group_view(&self, view: View) -> Option<&PrimaryGroup> {
        group_of(self.group.as_ref(), self.first_view, view)
    }

    /// Whether `author` may sign pre-prepares of `view`: any member of the primary
    /// group in its views, else only the view's primary.
    pub fn may_propose(&self, view: View, author: NodeId) -> bool {
        may_propose_of(
            &self.members,
            self.group.as_ref(),
            self.first_view,
            view,
            author,
        )
    }
}

/// [`Instance::may_propose`] on the instance's parts.
pub(crate) fn may_propose_of(
    members: &[NodeId],
    group: Option<&PrimaryGroup>,
    first_view: View,
    view: View,
    author: NodeId,
) -> bool {
    match group_of(group, first_view, view) {
        Some(g) => g.members.contains(&author),
        None => author == leader_of(members, group, first_view, view),
    }
}

/// [`Instance::leader`] on the instance's parts.
pub(crate) fn leader_of(
    members: &[NodeId],
    group: Option<&PrimaryGroup>,
    first_view: View,
    view: View,
) -> NodeId {
    let n = members.len().max(1) as u64;
    match group {
        None => members[(view % n) as usize],
        Some(g) => {
            let r = view.saturating_sub(first_view);
            let m = g.members.len() as u64;
            if r < m {
                g.members[r as usize]
            } else {
                members[((r - m) % n) as usize]
            }
        }
    }
}

/// [`Instance::group_view`] on the instance's parts.
pub(crate) fn group_of(
    group: Option<&PrimaryGroup>,
    first_view: View,
    view: View,
) -> Option<&PrimaryGroup> {
    group.filter(|g| view.saturating_sub(first_view) < g.members.len() as u64)
}
