//! State transfer: how a node too far behind to fetch the DAG rejoins.
//!
//! Peers garbage collect the DAG `gc_depth` rounds below their last committed
//! leader. A node that missed more than that (a long partition, a long crash) can
//! no longer fetch the parents it lacks, so instead it takes the *committed order*
//! from its peers: for every committed leader an [`OrderEntry`] with its position
//! among committed leaders, its leader and the batch digests its sub-DAG commits
//! (none for a sub-DAG without batches, which takes no sequence number), and, for
//! the last entry of an answer, the commit rule's state after it.
//!
//! The order's hash chain covers each entry's position, sequence number, leader,
//! leader round and batches, so a node checks that an answer continues its own
//! chain; and it
//! installs a position only once `f+1` members vouch for the same chain and rule
//! state there, so at least one of them is honest. The batches themselves are then
//! fetched like any other missing batch, from the peers' retention of committed
//! batches; the DAG above the installed position is fetched as usual.

use dwcp_core::codec::encode;
use dwcp_core::{Digest, NodeId, Round, Seq, Time};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A commit rule's committed certificates above garbage collection, as
/// `(round, digest)` sorted (see [`super::RuleState`]).
pub type CommittedSet = Vec<(Round, Digest)>;

/// Most entries in one [`OrderReply`].
pub const MAX_ENTRIES: usize = 64;

/// One committed leader: its place in the order and what its sub-DAG commits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderEntry {
    /// Committed leaders up to and including this one.
    pub position: u64,
    /// Sequence number of the output this sub-DAG makes; with no batches it makes
    /// none, and this is the sequence number of the last output before it.
    pub seq: Seq,
    /// The order's hash chain up to and including this entry ([`chain_next`]).
    pub chain: Digest,
    /// Digest of the leader certificate.
    pub leader: Digest,
    /// Round of the leader certificate: the rule's last committed round after it.
    pub leader_round: Round,
    /// Batch digests in output order, each with the member that certified it.
    pub batches: Vec<(Digest, NodeId)>,
    /// [`state_digest`] of the commit rule's committed set after this entry.
    pub state: Digest,
}

/// An answer to a request for the committed order: entries from the asked
/// position on, oldest first, and the committed set after the last of them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderReply {
    /// Consecutive entries, at most [`MAX_ENTRIES`].
    pub entries: Vec<OrderEntry>,
    /// The commit rule's committed certificates above garbage collection after the
    /// last entry, sorted; [`state_digest`] of it is that entry's `state`.
    pub committed: Vec<(Round, Digest)>,
}

/// The hash chain of the committed order: `prev` extended by one committed leader.
pub fn chain_next(
    prev: &Digest,
    position: u64,
    seq: Seq,
    leader: &Digest,
    leader_round: Round,
    batches: &[(Digest, NodeId)],
) -> Digest {
    let batches = encode(&batches);
    Digest::of_parts(
        "dwcp bullshark chain v2",
        &[
            &prev.0,
            &position.to_le_bytes(),
            &seq.to_le_bytes(),
            &leader.0,
            &leader_round.to_le_bytes(),
            &batches,
        ],
    )
}

/// Digest of a commit rule's committed set (sorted by round, then digest).
pub fn state_digest(committed: &[(Round, Digest)]) -> Digest {
    Digest::of_parts("dwcp bullshark rule state v1", &[&encode(&committed)])
}

/// A position in the order `f+1` members vouched for: the entries that lead to it
/// and the committed set there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decided {
    /// Entries from the transfer's base (exclusive) to the position, in order.
    pub entries: Vec<OrderEntry>,
    /// The commit rule's committed set after the last entry.
    pub committed: Vec<(Round, Digest)>,
}

/// What a node gathers while it asks its peers for the committed order.
#[derive(Clone, Debug)]
pub struct Transfer {
    base: Base,
    /// Per peer, the longest prefix of its answer that continues our chain, and the
    /// committed set after its last entry if that matched the entry's state digest.
    replies: BTreeMap<NodeId, (Vec<OrderEntry>, Option<CommittedSet>)>,
    /// When the request was last sent.
    pub asked: Time,
    /// Requests sent without any position being decided.
    pub attempts: u32,
}

/// Where a node's committed order stands: the position a transfer continues from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Base {
    /// Committed leaders so far.
    pub position: u64,
    /// Outputs so far.
    pub seq: Seq,
    /// The order's hash chain so far.
    pub chain: Digest,
}

impl Transfer {
    /// A transfer continuing our order after `base`.
    pub fn new(base: Base, now: Time) -> Transfer {
        Transfer {
            base,
            replies: BTreeMap::new(),
            asked: now,
            attempts: 0,
        }
    }

    /// The position this transfer continues from.
    pub fn base(&self) -> Base {
        self.base
    }

    /// Takes `from`'s answer, keeping the part that continues our chain (a later
    /// answer from the same member replaces an earlier one).
    pub fn add(&mut self, from: NodeId, reply: OrderReply) {
        let mut prev = self.base.chain;
        let mut seq = self.base.seq;
        let mut kept = Vec::new();
        for (i, e) in reply.entries.into_iter().take(MAX_ENTRIES).enumerate() {
            let next_seq = seq + Seq::from(!e.batches.is_empty());
            let linked = e.position == self.base.position + 1 + i as u64
                && e.seq == next_seq
                && e.leader_round > 0
                && chain_next(
                    &prev,
                    e.position,
                    e.seq,
                    &e.leader,
                    e.leader_round,
                    &e.batches,
                ) == e.chain;
            if !linked {
                break;
            }
            prev = e.chain;
            seq = next_seq;
            kept.push(e);
        }
        if kept.is_empty() {
            return;
        }
        let committed = kept
            .last()
            .filter(|last| state_digest(&reply.committed) == last.state)
            .map(|_| reply.committed);
        self.replies.insert(from, (kept, committed));
    }

    /// The furthest position at least `validity` members vouch for (same sequence
    /// number, chain and state) and whose committed set is known, if any.
    pub fn decided(&self, validity: usize) -> Option<Decided> {
        let mut voters: BTreeMap<(u64, Digest, Digest), BTreeSet<NodeId>> = BTreeMap::new();
        for (peer, (entries, _)) in &self.replies {
            for e in entries {
                voters
                    .entry((e.position, e.chain, e.state))
                    .or_default()
                    .insert(*peer);
            }
        }
        let mut best: Option<Decided> = None;
        for (entries, committed) in self.replies.values() {
            let (Some(last), Some(committed)) = (entries.last(), committed) else {
                continue;
            };
            let key = (last.position, last.chain, last.state);
            let vouched = voters.get(&key).map_or(0, BTreeSet::len) >= validity;
            let further = best
                .as_ref()
                .and_then(|b| b.entries.last())
                .is_none_or(|b| last.position > b.position);
            if vouched && further {
                best = Some(Decided {
                    entries: entries.clone(),
                    committed: committed.clone(),
                });
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(x: u8) -> Digest {
        Digest([x; 32])
    }

    fn base(position: u64, chain: Digest) -> Base {
        Base {
            position,
            seq: position / 2,
            chain,
        }
    }

    /// `count` entries continuing `base(position, chain)`, every other one without
    /// batches; `salt` changes their content.
    fn entries(position: u64, chain: Digest, count: usize, salt: u8) -> Vec<OrderEntry> {
        let mut prev = chain;
        let mut seq = base(position, chain).seq;
        (0..count)
            .map(|i| {
                let position = position + 1 + i as u64;
                let leader = d(salt.wrapping_add(i as u8));
                let leader_round = 2 * position;
                let batches = if position.is_multiple_of(2) {
                    vec![(d(100 + i as u8), NodeId(1))]
                } else {
                    Vec::new()
                };
                seq += Seq::from(!batches.is_empty());
                let chain = chain_next(&prev, position, seq, &leader, leader_round, &batches);
                prev = chain;
                OrderEntry {
                    position,
                    seq,
                    chain,
                    leader,
                    leader_round,
                    batches,
                    state: state_digest(&committed_at(position)),
                }
            })
            .collect()
    }

    fn committed_at(position: u64) -> Vec<(Round, Digest)> {
        vec![(2 * position, d(position as u8))]
    }

    fn reply(entries: Vec<OrderEntry>) -> OrderReply {
        let committed = entries
            .last()
            .map(|e| committed_at(e.position))
            .unwrap_or_default();
        OrderReply { entries, committed }
    }

    #[test]
    fn a_position_needs_f_plus_one_vouchers_and_its_state() {
        let all = entries(10, d(9), 5, 0);
        let mut t = Transfer::new(base(10, d(9)), Time::ZERO);
        t.add(NodeId(1), reply(all.clone()));
        assert_eq!(t.decided(2), None, "one voucher is not enough");
        // A second member further behind vouches for a prefix: the position both
        // vouch for is the shorter one, whose state the second sent.
        t.add(NodeId(2), reply(all[..3].to_vec()));
        let got = t.decided(2).expect("decided");
        assert_eq!(got.entries, all[..3].to_vec());
        assert_eq!(got.committed, committed_at(13));
        // A third agrees with the first: now the furthest position is decided.
        t.add(NodeId(3), reply(all.clone()));
        assert_eq!(t.decided(2).expect("decided").entries, all);
    }

    #[test]
    fn answers_that_do_not_continue_our_chain_or_lie_about_state_count_for_nothing() {
        let all = entries(10, d(9), 4, 0);
        let mut t = Transfer::new(base(10, d(9)), Time::ZERO);
        // A forged order linked to another chain.
        t.add(NodeId(1), reply(entries(10, d(8), 4, 50)));
        // A consistent forgery: it links to our chain but differs from the truth.
        t.add(NodeId(2), reply(entries(10, d(9), 4, 50)));
        t.add(NodeId(3), reply(all.clone()));
        assert_eq!(t.decided(2), None);
        // Tampering with a batch list breaks the chain from that entry on.
        let mut bad = all.clone();
        bad[2].batches.push((d(1), NodeId(0)));
        bad[2].seq += 1;
        let mut t = Transfer::new(base(10, d(9)), Time::ZERO);
        t.add(NodeId(1), reply(bad));
        t.add(NodeId(2), reply(all.clone()));
        // The tampered answer still vouches for its linked prefix, but no committed
        // set is known there; the honest answer alone is one voucher.
        assert_eq!(t.decided(2), None);
        t.add(NodeId(3), reply(all.clone()));
        assert_eq!(t.decided(2).expect("decided").entries, all);
        // A wrong committed set for the last entry is not installed.
        let mut lying = reply(all.clone());
        lying.committed.push((1, d(1)));
        let mut t = Transfer::new(base(10, d(9)), Time::ZERO);
        t.add(NodeId(1), lying.clone());
        t.add(NodeId(2), lying);
        assert_eq!(t.decided(2), None);
    }

    #[test]
    fn entries_starting_elsewhere_are_ignored() {
        let mut t = Transfer::new(base(10, d(9)), Time::ZERO);
        let later = entries(11, d(9), 3, 0);
        t.add(NodeId(1), reply(later.clone()));
        t.add(NodeId(2), reply(later));
        assert_eq!(t.decided(2), None);
    }
}
