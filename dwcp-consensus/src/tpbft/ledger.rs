//! The trust ledger: committed evidence in, local-trust counts and the next epoch's
//! committee out. Every node feeds it the same committed evidence in the same order,
//! so every node computes the same committee.
//!
//! # Evidence and what it counts
//!
//! - [`Evidence::Committed`]: member `L` proposed a batch that committed, with commit
//!   votes from the signer set `S` (the matching commit votes the proposer held,
//!   at least `2f_c + 1`; with honest nodes the first to arrive). Co-signers vouch
//!   for each other: for each `i` in `S ∪ {L}` and `j` in `S`, `sat(i, j)`. The
//!   proposer alone rates the members that did not sign: for each member `j` of
//!   that epoch's committee not in `S`, `unsat(L, j)`. An honest member is in most
//!   `S`; one that signs late or not at all (a *slacker*, or a silent member) earns
//!   no credit in anyone's row while the others do, and falls below the demotion
//!   line within an epoch.
//!
//!   Only the proposer's row records `unsat` for non-signers: a faulty proposer
//!   chooses which valid signatures its evidence names, and if every signer's row
//!   recorded the omission it could demote an honest member (and hand its seat to
//!   whoever ranks next) in one epoch; this way the omission costs the member one
//!   epoch's credit from that proposer's batches. Proposing itself earns nothing
//!   (failing to propose costs, below). The design note also rated the proposer
//!   by each signer (`sat(i, L)`); with that credit a member that proposes in its
//!   turn but signs one commit in four kept its seat for 8 epochs in the test
//!   below.
//! - [`Evidence::Replaced`]: the proposer `F` of a view failed and members `S` signed
//!   the view change that replaced it: `unsat(i, F)` for each `i` in `S`.
//! - [`Evidence::Misbehaved`]: a proof that `node` signed two conflicting statements
//!   or proposed an invalid batch. It is excluded: never again on a committee.
//!
//! Every count halves at each epoch's first commit proof ([`LocalTrust::decay`]),
//! so trust follows recent behaviour: a turncoat's good record fades within a few
//! epochs instead of shielding it for as long as it lasted.
//!
//! # The next committee
//!
//! Global trust is EigenTrust over these counts with the genesis committee as the
//! pre-trusted set ([`LocalTrust::global_trust`]). Pre-trust keeps every genesis
//! member's trust at least `a/|P|` however badly it behaves, and nodes outside the
//! committee earn no evidence, so ranking alone would never replace a slacker. So a
//! member of the current committee whose trust is below [`DEMOTION_SHARE`] of the
//! committee's mean trust is *demoted*: not eligible for the next committee. The
//! seats go to the highest trust among the eligible nodes, ties (all of zero trust
//! among nodes never on a committee) broken by the epoch's lottery
//! ([`super::selection::committee`]). A demoted node sits out [`BENCH_EPOCHS`]
//! epochs, twice as many each time it is demoted again, then is eligible again and
//! returns only if it outranks the others.
//! Without the bench a demoted genesis member came straight back: nodes with no
//! evidence of their own (observers) rate by the pre-trust vector, which keeps
//! every genesis member above a newcomer that served one epoch.

use super::eigentrust::{LocalTrust, Trust, TrustError, TrustParams};
use super::selection;
use crate::pbft::Instance;
use dwcp_core::{Digest, NodeId, View};
use std::collections::{BTreeMap, BTreeSet};

/// A member whose trust is below this share of its committee's mean trust is not
/// eligible for the next committee: `1/2`, as numerator and denominator.
pub const DEMOTION_SHARE: (u64, u64) = (1, 2);

/// Epochs a demoted member is not eligible for a committee.
pub const BENCH_EPOCHS: u64 = 4;

/// One piece of committed evidence, its signatures already verified.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Evidence {
    /// A batch proposed by `proposer` committed with commit votes from `signers`.
    Committed {
        /// Who proposed it.
        proposer: NodeId,
        /// Who signed its commit.
        signers: Vec<NodeId>,
    },
    /// The proposer of a view failed; `signers` signed the view change that
    /// replaced it.
    Replaced {
        /// The failed proposer.
        proposer: NodeId,
        /// Who signed the view change.
        signers: Vec<NodeId>,
    },
    /// `node` was proven to have signed two conflicting statements or proposed an
    /// invalid batch.
    Misbehaved {
        /// The offender.
        node: NodeId,
    },
}

/// Local-trust counts from committed evidence, and the committees they elect.
///
/// It serialises whole (T-PBFT's epoch snapshot stores it): a ledger read back is
/// equal (`==`) to the one written, so it computes bit-identical trust and the same
/// committees; decoding refuses parameters or a genesis set that
/// [`TrustLedger::new`] would refuse.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "LedgerWire", try_from = "LedgerWire")]
pub struct TrustLedger {
    local: LocalTrust,
    genesis: Vec<NodeId>,
    params: TrustParams,
    /// The highest view a recorded commit proof showed, and its epoch.
    last_view: Option<(u64, View)>,
    /// Demoted members: the first epoch each is eligible again, and how many
    /// times it was demoted.
    benched: BTreeMap<NodeId, (u64, u32)>,
    /// Each member of the newest committee computed that joined it after genesis,
    /// with the epoch from which it has sat without a break.
    seated_since: BTreeMap<NodeId, u64>,
}

/// Most failed views one commit proof records (a bound on the work a proof
/// causes; real view changes come one timeout each).
pub const MAX_FAILED_VIEWS: u64 = 64;
/// [`TrustLedger`] as stored.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct LedgerWire {
    local: LocalTrust,
    genesis: Vec<NodeId>,
    params: TrustParams,
    last_view: Option<(u64, View)>,
    benched: BTreeMap<NodeId, (u64, u32)>,
    seated_since: BTreeMap<NodeId, u64>,
}

impl From<TrustLedger> for LedgerWire {
    fn from(l: TrustLedger) -> Self {
        LedgerWire {
            local: l.local,
            genesis: l.genesis,
            params: l.params,
            last_view: l.last_view,
            benched: l.benched,
            seated_since: l.seated_since,
        }
    }
}

impl TryFrom<LedgerWire> for TrustLedger {
    type Error = String;

    fn try_from(w: LedgerWire) -> Result<Self, String> {
        w.params.validate().map_err(|e| e.to_string())?;
        if w.genesis.is_empty()
            || w.genesis.windows(2).any(|p| p[0] >= p[1])
            || w.genesis.iter().any(|id| id.index() >= w.local.len())
        {
            return Err("bad genesis committee in a stored trust ledger".into());
        }
        if w.benched
            .keys()
            .chain(w.seated_since.keys())
            .any(|id| id.index() >= w.local.len())
        {
            return Err("a benched node outside the ledger in a stored trust ledger".into());
        }
        Ok(TrustLedger {
            local: w.local,
            genesis: w.genesis,
            params: w.params,
            last_view: w.last_view,
            benched: w.benched,
            seated_since: w.seated_since,
        })
    }
}

impl TrustLedger {
    /// A ledger for `n` nodes whose genesis committee (the pre-trusted set) is
    /// `genesis`.
    pub fn new(n: usize, genesis: &[NodeId], params: TrustParams) -> Result<Self, TrustError> {
        params.validate()?;
        let local = LocalTrust::new(n)?;
        let set: BTreeSet<NodeId> = genesis.iter().copied().collect();
        let ledger = TrustLedger {
            local,
            seated_since: BTreeMap::new(),
            genesis: set.into_iter().collect(),
            params,
            last_view: None,
            benched: BTreeMap::new(),
        };
        ledger.local.pre_trust(&ledger.genesis)?;
        Ok(ledger)
    }

    /// Records one piece of evidence from a batch of epoch committee `committee`.
    pub fn record(&mut self, committee: &[NodeId], e: &Evidence) -> Result<(), TrustError> {
        match e {
            Evidence::Committed { proposer, signers } => {
                let signed: BTreeSet<NodeId> = signers.iter().copied().collect();
                let raters: BTreeSet<NodeId> = signed.iter().copied().chain([*proposer]).collect();
                for &i in &raters {
                    for &j in &signed {
                        if i != j {
                            self.local.add_satisfied(i, j)?;
                        }
                    }
                }
                for &j in committee {
                    if j != *proposer && !signed.contains(&j) {
                        self.local.add_unsatisfied(*proposer, j)?;
                    }
                }
            }
            Evidence::Replaced { proposer, signers } => {
                let signed: BTreeSet<NodeId> = signers.iter().copied().collect();
                for &i in &signed {
                    if i != *proposer {
                        self.local.add_unsatisfied(i, *proposer)?;
                    }
                }
            }
            Evidence::Misbehaved { node } => self.local.exclude(*node)?,
        }
        Ok(())
    }

    /// Records the views a commit proof shows were failed: a batch of epoch
    /// `epoch` (whose instance is `schedule`) committed in `view` with commit votes
    /// from `signers`. Views only advance by view changes, so every view from the
    /// highest one an earlier proof of the epoch showed (or the epoch's first view)
    /// up to `view` was left because its proposer did not get a batch committed:
    /// each is [`Evidence::Replaced`], rated by `signers`, who took part in the
    /// view that followed. Each view counts once however many proofs show it, and
    /// the record depends only on committed proofs, so every node records the same.
    pub fn record_views(
        &mut self,
        epoch: u64,
        schedule: &Instance,
        view: View,
        signers: &[NodeId],
    ) -> Result<(), TrustError> {
        let from = match self.last_view {
            Some((e, v)) if e == epoch => v,
            Some((e, _)) if e > epoch => return Ok(()),
            Some(_) => {
                // The first proof of a new epoch: older evidence weighs half.
                self.local.decay();
                schedule.first_view
            }
            None => schedule.first_view,
        };
        self.last_view = Some((epoch, view.max(from)));
        for w in from.max(view.saturating_sub(MAX_FAILED_VIEWS))..view {
            let e = Evidence::Replaced {
                proposer: schedule.leader(w),
                signers: signers.to_vec(),
            };
            self.record(&schedule.members, &e)?;
        }
        Ok(())
    }

    /// Global trust from everything recorded so far. Pre-trust is uniform over the
    /// genesis committee less excluded nodes; once every genesis member is excluded
    /// (far past the fault assumption, but the chain must still choose), over every
    /// node not excluded.
    pub fn trust(&self) -> Result<Vec<Trust>, TrustError> {
        if self.genesis.iter().all(|id| self.local.is_excluded(*id)) {
            let rest: Vec<NodeId> = (0..self.local.len())
                .filter_map(|i| u16::try_from(i).ok().map(NodeId))
                .filter(|id| !self.local.is_excluded(*id))
                .collect();
            return self.local.global_trust(&rest, &self.params);
        }
        self.local.global_trust(&self.genesis, &self.params)
    }

    /// The local-trust counts.
    pub fn local(&self) -> &LocalTrust {
        &self.local
    }

    /// The genesis committee (the pre-trusted set), in id order.
    pub fn genesis(&self) -> &[NodeId] {
        &self.genesis
    }

    /// The committee of `size` for `epoch`, after `current`: the highest trust among
    /// nodes neither excluded nor demoted (see the module docs), and its digest.
    pub fn next_committee(
        &mut self,
        current: &[NodeId],
        size: usize,
        epoch: u64,
    ) -> Result<(Vec<NodeId>, Digest), TrustError> {
        let trust = self.trust()?;
        let mut ineligible: BTreeSet<NodeId> = self.local.excluded().into_iter().collect();
        ineligible.extend(
            self.benched
                .iter()
                .filter(|(_, (until, _))| *until > epoch)
                .map(|(id, _)| *id),
        );
        let members: Vec<NodeId> = current
            .iter()
            .copied()
            .filter(|id| id.index() < trust.len())
            .collect();
        if !members.is_empty() {
            let total: u128 = members
                .iter()
                .map(|id| u128::from(trust[id.index()].0))
                .sum();
            let (num, den) = DEMOTION_SHARE;
            // t < share · total / |members|, in integers.
            for id in &members {
                // A member that joined in the epoch now ending had only part of it
                // to earn evidence: it is judged at the next epoch's end.
                if self.seated_since.get(id).is_some_and(|e| *e + 1 >= epoch) {
                    continue;
                }
                let t = u128::from(trust[id.index()].0);
                if t * u128::from(den) * (members.len() as u128) < total * u128::from(num) {
                    ineligible.insert(*id);
                    let (until, times) = self.benched.entry(*id).or_insert((0, 0));
                    *until = epoch + (BENCH_EPOCHS << (*times).min(16));
                    *times += 1;
                }
            }
        }
        let mut chosen = selection::committee(
            &trust,
            size,
            epoch,
            &ineligible.iter().copied().collect::<Vec<_>>(),
        );
        if chosen.len() < size {
            // Too few eligible nodes (N close to the committee size): the seats
            // left go to the best demoted ones, never to an excluded one.
            let mut skip: Vec<NodeId> = self.local.excluded();
            skip.extend(&chosen);
            chosen.extend(selection::committee(
                &trust,
                size - chosen.len(),
                epoch,
                &skip,
            ));
            chosen.sort_unstable();
        }
        self.seated_since.retain(|id, _| chosen.contains(id));
        for id in chosen.iter().filter(|id| !current.contains(id)) {
            self.seated_since.insert(*id, epoch);
        }
        let digest = selection::committee_digest(epoch, &chosen);
        Ok((chosen, digest))
    }
}

#[cfg(test)]
mod tests;
