//! Choosing an epoch's committee and primary group from global trust.
//!
//! T-PBFT (Gao, Yu, Zhu, Cai, *China Communications* 16(12), 2019) lets the nodes
//! of highest EigenTrust global trust form the consensus group and a *primary
//! group* replace PBFT's single primary. The paper's abstract fixes neither the
//! group sizes nor how the primary group is drawn; the choices here are ours:
//!
//! - the committee is the top `N_c` nodes by trust ([`committee`]), `N_c = 3f_c + 1`
//!   ([`committee_size_for`]), ties broken by a per-epoch hash so no id is
//!   systematically favoured;
//! - the primary group is `m` committee members drawn by a per-epoch lottery
//!   ([`primary_group`]), *not* the top `m` by trust. A clique that behaves well
//!   toward everyone else but rates only its own members collects a share
//!   `T = (1 − a)β / (a + (1 − a)β)` of all trust (`β`: the share of honest ratings
//!   pointing at it), about 59% for 25 nodes in 100 at `a = 0.15`, each member
//!   several times an honest node. By rank it would hold every primary-group seat;
//!   by lottery it holds the group in proportion to its committee seats only;
//! - [`committee_digest`] names a committee; the last batch of an epoch carries it.
//!
//! Everything is a pure function of its arguments, so all nodes agree.

use std::cmp::Reverse;
use std::collections::BTreeSet;

use dwcp_core::{Digest, NodeId};

use super::eigentrust::{Trust, MAX_NODES};

/// The committee size wanted when nothing else is configured (`N_c = 10`, `f_c = 3`).
pub const DEFAULT_COMMITTEE_SIZE: usize = 10;

/// The primary-group size when nothing else is configured.
pub const DEFAULT_PRIMARY_GROUP_SIZE: usize = 4;

const TIE_CONTEXT: &str = "dwcp tpbft committee tie";
const LOTTERY_CONTEXT: &str = "dwcp tpbft primary group";
const COMMITTEE_CONTEXT: &str = "dwcp tpbft committee";

/// The hash that orders nodes of equal trust in `epoch`'s committee selection
/// (smaller first).
pub fn tie_break(epoch: u64, id: NodeId) -> Digest {
    Digest::of_parts(TIE_CONTEXT, &[&epoch.to_le_bytes(), &id.0.to_le_bytes()])
}

/// A committee member's ticket in `epoch`'s primary-group lottery (smaller wins).
pub fn lottery_ticket(epoch: u64, id: NodeId) -> Digest {
    Digest::of_parts(
        LOTTERY_CONTEXT,
        &[&epoch.to_le_bytes(), &id.0.to_le_bytes()],
    )
}

/// The committee for `epoch`: the `size` nodes of highest trust (`trust[i]` is node
/// `i`'s), never an `excluded` one, ties broken by [`tie_break`]; sorted by id.
///
/// Nodes of zero trust are eligible and rank last. With fewer eligible nodes than
/// `size`, all of them are returned: the caller decides whether that is enough.
/// Entries past the last `u16` id are ignored.
pub fn committee(trust: &[Trust], size: usize, epoch: u64, excluded: &[NodeId]) -> Vec<NodeId> {
    let excluded: BTreeSet<NodeId> = excluded.iter().copied().collect();
    let mut ranked: Vec<(Reverse<Trust>, Digest, NodeId)> = trust
        .iter()
        .take(MAX_NODES)
        .enumerate()
        .filter_map(|(i, t)| u16::try_from(i).ok().map(|i| (NodeId(i), *t)))
        .filter(|(id, _)| !excluded.contains(id))
        .map(|(id, t)| (Reverse(t), tie_break(epoch, id), id))
        .collect();
    ranked.sort_unstable();
    let mut chosen: Vec<NodeId> = ranked.into_iter().take(size).map(|(_, _, id)| id).collect();
    chosen.sort_unstable();
    chosen
}

/// The primary group for `epoch`: the `m` members of `committee` with the smallest
/// [`lottery_ticket`], in lottery order (duplicates in `committee` count once; all
/// members if there are fewer than `m`).
///
/// A lottery, not a ranking, on purpose: a colluding clique that rates only itself
/// ranks at the top of the committee (see the module docs), so "the top `m`" would
/// hand it the group every epoch; a lottery gives it the group seats in proportion
/// to the committee seats it holds.
pub fn primary_group(committee: &[NodeId], m: usize, epoch: u64) -> Vec<NodeId> {
    let members: BTreeSet<NodeId> = committee.iter().copied().collect();
    let mut draw: Vec<(Digest, NodeId)> = members
        .into_iter()
        .map(|id| (lottery_ticket(epoch, id), id))
        .collect();
    draw.sort_unstable();
    draw.into_iter().take(m).map(|(_, id)| id).collect()
}

/// The committee size for `n` nodes when `wanted` are wanted: the largest
/// `3f_c + 1 ≤ min(n, wanted)`, and at least 1.
pub fn committee_size_for(n: usize, wanted: usize) -> usize {
    let cap = n.min(wanted);
    if cap == 0 {
        return 1;
    }
    3 * ((cap - 1) / 3) + 1
}

/// The digest naming `epoch`'s committee: of the epoch and the member ids (as a
/// set: in id order, duplicates once), what the epoch's last batch carries.
pub fn committee_digest(epoch: u64, members: &[NodeId]) -> Digest {
    let set: BTreeSet<NodeId> = members.iter().copied().collect();
    let ids: Vec<u8> = set.iter().flat_map(|id| id.0.to_le_bytes()).collect();
    Digest::of_parts(COMMITTEE_CONTEXT, &[&epoch.to_le_bytes(), &ids])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[u16]) -> Vec<NodeId> {
        v.iter().copied().map(NodeId).collect()
    }

    #[test]
    fn committee_sizes() {
        assert_eq!(committee_size_for(100, 10), 10);
        assert_eq!(committee_size_for(7, 10), 7);
        assert_eq!(committee_size_for(6, 10), 4);
        assert_eq!(committee_size_for(4, 10), 4);
        assert_eq!(committee_size_for(3, 10), 1);
        assert_eq!(committee_size_for(1, 10), 1);
        assert_eq!(committee_size_for(0, 10), 1);
        assert_eq!(committee_size_for(100, 0), 1);
        assert_eq!(committee_size_for(100, 31), 31);
        assert_eq!(committee_size_for(100, 33), 31);
        for n in 1..60 {
            let c = committee_size_for(n, DEFAULT_COMMITTEE_SIZE);
            assert_eq!(c % 3, 1);
            assert!(c <= n.min(DEFAULT_COMMITTEE_SIZE));
            assert!(c + 3 > n.min(DEFAULT_COMMITTEE_SIZE));
        }
    }

    #[test]
    fn committee_is_the_top_by_trust_sorted_by_id() {
        let trust: Vec<Trust> = [5, 1, 9, 7, 3, 8].into_iter().map(Trust).collect();
        assert_eq!(committee(&trust, 3, 0, &[]), ids(&[2, 3, 5]));
        assert_eq!(committee(&trust, 4, 0, &ids(&[2])), ids(&[0, 3, 4, 5]));
        // Fewer eligible than asked: all of them.
        assert_eq!(committee(&trust, 10, 0, &ids(&[0, 1])), ids(&[2, 3, 4, 5]));
        assert!(committee(&trust, 0, 0, &[]).is_empty());
        assert!(committee(&[], 4, 0, &[]).is_empty());
    }

    #[test]
    fn excluded_nodes_are_never_chosen() {
        let trust: Vec<Trust> = (0..20).map(|i| Trust(1000 - i)).collect();
        let excluded = ids(&[0, 1, 7]);
        for epoch in 0..50 {
            let c = committee(&trust, 10, epoch, &excluded);
            assert_eq!(c.len(), 10);
            assert!(c.iter().all(|id| !excluded.contains(id)));
        }
    }

    #[test]
    fn ties_are_broken_deterministically_and_differently_per_epoch() {
        let trust = vec![Trust(42); 30];
        let mut seen = BTreeSet::new();
        for epoch in 0..20 {
            let a = committee(&trust, 4, epoch, &[]);
            assert_eq!(a, committee(&trust, 4, epoch, &[]));
            assert_eq!(a.len(), 4);
            // The winners are the smallest tie-break hashes.
            let mut by_hash: Vec<NodeId> = (0..30).map(NodeId).collect();
            by_hash.sort_by_key(|id| tie_break(epoch, *id));
            let mut expected = by_hash[..4].to_vec();
            expected.sort();
            assert_eq!(a, expected);
            seen.insert(a);
        }
        assert!(seen.len() > 15, "{} distinct committees", seen.len());
        // Trust still comes first: one higher node always wins a seat.
        let mut trust = trust;
        trust[17] = Trust(43);
        for epoch in 0..20 {
            assert!(committee(&trust, 1, epoch, &[]) == ids(&[17]));
        }
    }

    #[test]
    fn primary_group_is_a_lottery_over_the_committee() {
        let c = ids(&[3, 9, 11, 20, 21, 40, 41]);
        let g = primary_group(&c, 4, 7);
        assert_eq!(g, primary_group(&c, 4, 7));
        assert_eq!(g.len(), 4);
        assert!(g.iter().all(|id| c.contains(id)));
        // Lottery order: increasing tickets.
        assert!(g
            .windows(2)
            .all(|w| lottery_ticket(7, w[0]) < lottery_ticket(7, w[1])));
        // The committee's order and duplicates do not matter.
        let mut shuffled = c.clone();
        shuffled.reverse();
        shuffled.push(NodeId(9));
        assert_eq!(primary_group(&shuffled, 4, 7), g);
        // Fewer members than m: all of them.
        assert_eq!(primary_group(&c[..2], 4, 7).len(), 2);
        // Each member holds a seat in about m/|c| of the epochs.
        let mut seats = [0usize; 7];
        for epoch in 0..7000 {
            for id in primary_group(&c, 4, epoch) {
                seats[c.iter().position(|x| *x == id).expect("member")] += 1;
            }
        }
        for s in seats {
            assert!((3600..4400).contains(&s), "{seats:?}");
        }
    }

    #[test]
    fn committee_digest_names_the_set_and_epoch() {
        let a = committee_digest(5, &ids(&[1, 2, 3, 4]));
        assert_eq!(a, committee_digest(5, &ids(&[4, 3, 2, 1, 2])));
        assert_ne!(a, committee_digest(6, &ids(&[1, 2, 3, 4])));
        assert_ne!(a, committee_digest(5, &ids(&[1, 2, 3, 5])));
        assert_ne!(a, committee_digest(5, &ids(&[1, 2, 3])));
        // 0x0100 is not the pair (0x00, 0x01) or similar.
        assert_ne!(
            committee_digest(5, &ids(&[256])),
            committee_digest(5, &ids(&[1]))
        );
    }
}
