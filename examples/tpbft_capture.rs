//! How large a Byzantine share of the N nodes T-PBFT's ranking tolerates before a
//! committee holds more than `f_c` Byzantine members, for always-bad nodes against
//! turncoats, on the real trust ledger ([`TrustLedger`]) and committee selection.
//!
//! A model of the evidence, not a network run: each epoch of 64 batches, members
//! propose in turn; an honest member signs every commit; a Byzantine one signs
//! none (an always-bad node from its first seat, a turncoat once it has held a seat
//! for `TURN_AFTER` epochs; a colluding group signs everything but, proposing,
//! names in its evidence every colluder and only as many honest signers as a
//! quorum needs), and a batch a non-signer should propose is a failed view
//! replaced by the honest members. Honest members go offline now and then (with
//! probability `CHURN` per member and epoch, for `DOWN` epochs: a crash, a long
//! upgrade), sign nothing meanwhile and lose their seats, so seats open and the
//! ranking fills them from outside. The
//! genesis committee (the pre-trusted set) is honest; the Byzantine nodes are drawn
//! at random among the others. The example
//! prints, per share, the worst and mean Byzantine seats over `EPOCHS` epochs and
//! how many epochs' committees held more than `f_c`.
//!
//! ```text
//! cargo run --release --example tpbft_capture -- [runs]
//! ```

use dwcp::consensus::tpbft::{committee_size_for, Evidence, TrustLedger, TrustParams};
use dwcp::core::NodeId;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};

const N: usize = 100;
const C: usize = 10;
const EPOCHS: u64 = 30;
const BATCHES: usize = 64;
const TURN_AFTER: u64 = 2;
const CHURN: f64 = 0.05;
const DOWN: u64 = 3;

/// How the Byzantine nodes behave once seated.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Sign nothing.
    AlwaysBad,
    /// Sign everything for `TURN_AFTER` epochs seated, then nothing.
    Turncoat,
    /// A colluding group: sign everything, and as proposers name in their commit
    /// proofs every colluder but only as many honest signers as a quorum needs
    /// (the same ones each time), to drive the others out.
    Colluding,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::AlwaysBad => "always bad",
            Kind::Turncoat => "turncoat",
            Kind::Colluding => "colluding group",
        }
    }
}

/// Byzantine seats in each epoch's committee, over one run.
fn run(share: f64, kind: Kind, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let size = committee_size_for(N, C);
    let genesis: Vec<NodeId> = (0..size as u16).map(NodeId).collect();
    let mut others: Vec<NodeId> = (size as u16..N as u16).map(NodeId).collect();
    others.shuffle(&mut rng);
    let byzantine: BTreeSet<NodeId> = others
        .into_iter()
        .take((share * N as f64).round() as usize)
        .collect();
    let mut ledger = TrustLedger::new(N, &genesis, TrustParams::default()).expect("ledger");
    let mut committee = genesis;
    let mut seated: BTreeMap<NodeId, u64> = BTreeMap::new();
    let mut down: BTreeMap<NodeId, u64> = BTreeMap::new();
    let mut seats = Vec::new();
    for epoch in 1..=EPOCHS {
        for m in &committee {
            *seated.entry(*m).or_default() += 1;
        }
        for m in &committee {
            if !byzantine.contains(m) && !down.contains_key(m) && rng.gen_bool(CHURN) {
                down.insert(*m, epoch + DOWN);
            }
        }
        down.retain(|_, until| *until > epoch);
        let offline: BTreeSet<NodeId> = down.keys().copied().collect();
        let defects = |m: &NodeId| {
            offline.contains(m)
                || (byzantine.contains(m)
                    && match kind {
                        Kind::AlwaysBad => true,
                        Kind::Turncoat => seated.get(m).copied().unwrap_or(0) > TURN_AFTER,
                        Kind::Colluding => false,
                    })
        };
        let signers: Vec<NodeId> = committee.iter().copied().filter(|m| !defects(m)).collect();
        // What a colluding proposer names: every colluder, then honest signers in id
        // order up to a quorum.
        let quorum = 2 * ((committee.len() - 1) / 3) + 1;
        let colluders_name: Vec<NodeId> = {
            let (mut named, honest): (Vec<NodeId>, Vec<NodeId>) =
                signers.iter().partition(|m| byzantine.contains(m));
            let need = quorum.saturating_sub(named.len());
            named.extend(honest.into_iter().take(need));
            named
        };
        for b in 0..BATCHES {
            let proposer = committee[b % committee.len()];
            let e = if defects(&proposer) {
                Evidence::Replaced {
                    proposer,
                    signers: signers.clone(),
                }
            } else if kind == Kind::Colluding && byzantine.contains(&proposer) {
                Evidence::Committed {
                    proposer,
                    signers: colluders_name.clone(),
                }
            } else {
                Evidence::Committed {
                    proposer,
                    signers: signers.clone(),
                }
            };
            ledger.record(&committee, &e).expect("recorded");
        }
        let (next, _) = ledger
            .next_committee(&committee, size, epoch)
            .expect("a committee");
        committee = next;
        seated.retain(|id, _| committee.contains(id));
        seats.push(committee.iter().filter(|m| byzantine.contains(m)).count());
    }
    seats
}

fn main() {
    let runs: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let f_c = (committee_size_for(N, C) - 1) / 3;
    println!(
        "N = {N}, committee {C} (f_c = {f_c}), {EPOCHS} epochs of {BATCHES} batches, {runs} runs \
         per row; turncoats defect after {TURN_AFTER} epochs seated; each honest member \
         goes offline for {DOWN} epochs with probability {CHURN} per epoch"
    );
    println!("Byzantine share | kind | worst seats | mean seats | epochs over f_c (of all)");
    for share in [0.1, 0.2, 0.3, 0.4, 0.5, 0.6] {
        for kind in [Kind::AlwaysBad, Kind::Turncoat, Kind::Colluding] {
            let mut worst = 0;
            let (mut total, mut over, mut epochs) = (0usize, 0usize, 0usize);
            for seed in 0..runs {
                for s in run(share, kind, seed) {
                    worst = worst.max(s);
                    total += s;
                    over += usize::from(s > f_c);
                    epochs += 1;
                }
            }
            println!(
                "{:.0}% | {} | {worst} | {:.2} | {over} of {epochs}",
                share * 100.0,
                kind.name(),
                total as f64 / epochs as f64,
            );
        }
    }
}
