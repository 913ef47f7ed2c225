//! Twins (Bano, Sonnino, Chursin, Perelman and Malkhi, "Twins: BFT Systems Made
//! Robust", OPODIS 2021): a Byzantine node is two honest instances of the engine
//! sharing one identity and key, each with its own state. Put in different
//! partitions they equivocate, vote twice and forget what the other promised, all
//! with validly signed messages, without a line of attack code.
//!
//! A [`TwinsCase`] fixes, for each of the first `k` rounds (PBFT views, Bullshark
//! DAG rounds; see [`super::Adversarial::round`]), how the `n + t` instances are
//! split into at most two components: a message of round `r` crosses between
//! components only if round `r` puts both ends in one. After the `k` scripted
//! rounds, or at [`GLOBAL_STABILISATION`] whichever comes first, the network is
//! whole, and the run must still commit every transaction at every honest node. Leaders are the engines' own
//! (round-robin), so the space is enumerated over which identity is twinned
//! instead: with one twin there are `n · (2^(n))^k` cases (instance 0 is pinned to
//! the first component, so each round has `2^(n)` canonical splits of `n + 1`
//! instances). [`TwinsCase::unrank`] numbers them, so a sweep is a range of ranks
//! and any case reruns from its rank alone; [`TwinsCase::random`] draws cases for
//! spaces too large to enumerate. A case may also crash one honest node at a
//! chosen effect of a chosen round ([`TwinsCrash`]): Twins splits what peers know,
//! a crash loses what the node had not stored, and bugs of restart live where the
//! two meet.

use super::adversary::Behaviour;
use super::config::{CrashPlan, SimConfig, SimReport, Workload};
use super::network::{LinkModel, Network};
use super::script::{Endpoint, Fate, Script, ScriptCtx};
use dwcp_core::crypto::SignatureScheme;
use dwcp_core::{Effect, Time};
use rand::Rng;
use std::time::Duration;

/// One Twins scenario: which identities run twice, and how each scripted round
/// splits the instances.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TwinsCase {
    /// Committee size.
    pub nodes: usize,
    /// The twinned identities (at most `f` of them for the run to be fair).
    pub twins: Vec<u16>,
    /// For each scripted round, the instances in the second component, as a bit
    /// mask over instance indices ([`TwinsCase::instance_index`]).
    pub partitions: Vec<u64>,
    /// An honest node that crashes once and restarts from its store: what Twins
    /// adds to a crash, a state the node's twin-free peers cannot see.
    #[serde(default)]
    pub crash: Option<TwinsCrash>,
    /// Steps per round: 0 or 1 scripts whole rounds; `w > 1` gives each round `w`
    /// entries of [`TwinsCase::partitions`], one per proposal slot
    /// ([`super::Adversarial::slot`]): slot 0 (a round's own messages, such as view
    /// changes), slots 1 to `w - 2`, and every later slot in the last. A PBFT view
    /// holds many proposals, and a Byzantine primary can show each to another
    /// part of the committee.
    #[serde(default)]
    pub slots: u64,
}

/// Where an honest node of a [`TwinsCase`] crashes: right after the `effect`-th
/// effect (from 0) it carries out while its round (that of the last message it
/// sent) is `round`. It restarts from its store after the crash plan's downtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TwinsCrash {
    /// The node (not a twin).
    pub node: u16,
    /// Its round when it crashes.
    pub round: u64,
    /// How many of its effects in that round it carries out before, less one.
    pub effect: u32,
}

impl TwinsCase {
    /// Number of instances: every node once, every twin a second time.
    pub fn instances(&self) -> usize {
        self.nodes + self.twins.len()
    }

    /// The bit of `e` in a partition mask: node `i` is instance `i`, the second
    /// instance of the `j`-th twin is `nodes + j`.
    pub fn instance_index(&self, e: Endpoint) -> usize {
        if e.instance == 0 {
            return e.node.index();
        }
        let j = self.twins.iter().position(|t| *t == e.node.0).unwrap_or(0);
        self.nodes + j
    }

    /// Canonical splits of `instances` into at most two components per round.
    fn splits(instances: usize) -> u64 {
        1u64 << (instances - 1)
    }

    /// Cases with one twin, `nodes` members and `rounds` scripted rounds.
    pub fn space(nodes: usize, rounds: usize) -> u64 {
        (nodes as u64).saturating_mul(Self::splits(nodes + 1).saturating_pow(rounds as u32))
    }

    /// Case number `rank` (below [`TwinsCase::space`]) of the one-twin space.
    pub fn unrank(nodes: usize, rounds: usize, rank: u64) -> TwinsCase {
        let splits = Self::splits(nodes + 1);
        let twin = (rank % nodes as u64) as u16;
        let mut rest = rank / nodes as u64;
        let partitions = (0..rounds)
            .map(|_| {
                let m = rest % splits;
                rest /= splits;
                m << 1 // instance 0 stays in the first component
            })
            .collect();
        TwinsCase {
            nodes,
            twins: vec![twin],
            partitions,
            crash: None,
            slots: 0,
        }
    }

    /// A case drawn uniformly: `twins` distinct twinned identities, `rounds`
    /// scripted rounds.
    pub fn random(nodes: usize, twins: usize, rounds: usize, rng: &mut impl Rng) -> TwinsCase {
        let mut ids: Vec<u16> = (0..nodes as u16).collect();
        for i in 0..twins.min(nodes) {
            let j = rng.gen_range(i..nodes);
            ids.swap(i, j);
        }
        ids.truncate(twins.min(nodes));
        ids.sort_unstable();
        let splits = Self::splits(nodes + ids.len());
        let partitions = (0..rounds).map(|_| rng.gen_range(0..splits) << 1).collect();
        TwinsCase {
            nodes,
            twins: ids,
            partitions,
            crash: None,
            slots: 0,
        }
    }

    /// Whether the two instances of some twin sit in different components in some
    /// scripted round (otherwise they see the same messages and act as one node).
    pub fn splits_a_twin(&self) -> bool {
        self.partitions.iter().any(|m| {
            self.twins
                .iter()
                .enumerate()
                .any(|(j, t)| (m >> *t as usize) & 1 != (m >> (self.nodes + j)) & 1)
        })
    }

    /// The simulation this case runs: the twinned nodes get [`Behaviour::Twin`], the
    /// fast signature stand-in keeps hundreds of thousands of cases affordable, the
    /// client sends 4 transactions every 50 ms for 2.5 s, and the run ends at 15 s.
    pub fn sim_config(&self, seed: u64) -> SimConfig {
        let mut behaviours = vec![Behaviour::Honest; self.nodes];
        for t in &self.twins {
            behaviours[*t as usize] = Behaviour::Twin;
        }
        SimConfig {
            nodes: self.nodes,
            seed,
            scheme: SignatureScheme::InsecureFast,
            network: Network {
                link: LinkModel::default(),
                partitions: Vec::new(),
            },
            behaviours,
            crash: CrashPlan {
                mean_uptime: Duration::from_secs(3600),
                mean_downtime: Duration::from_millis(100),
                until: Time::ZERO,
                crash_all_at: None,
            },
            workload: Workload {
                burst_interval: Duration::from_millis(50),
                burst_size: 4,
                tx_size: 32,
                until: Time(2_500_000),
            },
            end: Time(15_000_000),
            restore_tail: 4096,
            keep_log: false,
            store_dir: None,
        }
    }

    /// Scripts `w` steps per round (see [`TwinsCase::slots`]).
    pub fn with_slots(mut self, w: u64) -> TwinsCase {
        self.slots = w;
        self
    }

    /// The entry of [`TwinsCase::partitions`] for messages of `round` and `slot`.
    fn step(&self, round: u64, slot: u64) -> u64 {
        if self.slots <= 1 {
            round
        } else {
            round
                .saturating_mul(self.slots)
                .saturating_add(slot.min(self.slots - 1))
        }
    }

    fn component(&self, round: u64, slot: u64, e: Endpoint) -> Option<bool> {
        let step = self.step(round, slot);
        let mask = *self.partitions.get(usize::try_from(step).ok()?)?;
        Some((mask >> self.instance_index(e)) & 1 == 1)
    }
}

/// The shape of a Twins case space: committee size and what is scripted before
/// the network heals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TwinsShape {
    /// Committee size.
    pub nodes: usize,
    /// Scripted steps: rounds, or round slots if `slots > 1`.
    pub rounds: usize,
    /// Steps per round ([`TwinsCase::slots`]); 0 scripts whole rounds.
    pub slots: u64,
}

impl TwinsShape {
    /// `rounds` whole rounds of a committee of `nodes`.
    pub fn new(nodes: usize, rounds: usize) -> TwinsShape {
        TwinsShape {
            nodes,
            rounds,
            slots: 0,
        }
    }

    /// Case `rank` of the one-twin space of this shape.
    pub fn unrank(&self, rank: u64) -> TwinsCase {
        TwinsCase::unrank(self.nodes, self.rounds, rank).with_slots(self.slots)
    }
}

/// When the network becomes whole whatever round the nodes are in: a round the
/// engines never leave (a view that keeps committing) must not partition a node
/// forever.
pub const GLOBAL_STABILISATION: Time = Time(4_000_000);

impl TwinsCase {
    /// The script that runs this case in a [`super::Simulation`].
    pub fn script(&self) -> TwinsScript {
        TwinsScript {
            case: self.clone(),
            crash_round: 0,
            effects: 0,
            crashed: false,
        }
    }
}

/// A [`TwinsCase`] being run: its partitions, and its crash once due.
#[derive(Clone, Debug)]
pub struct TwinsScript {
    case: TwinsCase,
    /// Round of the crashing node's last message.
    crash_round: u64,
    /// Its effects carried out in the crash round so far.
    effects: u32,
    crashed: bool,
}

impl<M> Script<M> for TwinsScript {
    fn route(&mut self, ctx: &mut ScriptCtx<'_, M>, from: Endpoint, to: Endpoint, _: &M) -> Fate {
        let (r, slot) = (ctx.round(), ctx.slot());
        if self.case.crash.is_some_and(|c| c.node == from.node.0) {
            self.crash_round = r;
        }
        if ctx.now() >= GLOBAL_STABILISATION {
            return Fate::Deliver;
        }
        match (
            self.case.component(r, slot, from),
            self.case.component(r, slot, to),
        ) {
            (Some(a), Some(b)) if a != b => Fate::Drop,
            _ => Fate::Deliver,
        }
    }

    fn crash_after(&mut self, node: Endpoint, _: &Effect<M>) -> bool {
        let Some(c) = self.case.crash else {
            return false;
        };
        if self.crashed || node.node.0 != c.node || self.crash_round != c.round {
            return false;
        }
        self.effects += 1;
        self.crashed = self.effects > c.effect;
        self.crashed
    }
}

/// Totals of a Twins sweep.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TwinsSummary {
    /// Cases run.
    pub cases: u64,
    /// Cases in which some twin's instances were split in some round.
    pub split_cases: u64,
    /// Cases with a safety violation.
    pub unsafe_cases: u64,
    /// Cases in which some transaction was not committed by every honest node.
    pub liveness_failures: u64,
    /// Cases that went through at least one view change or leader timeout.
    pub view_change_cases: u64,
    /// Batches committed, over all cases.
    pub decisions: u64,
    /// Up to five failing cases, each with what failed.
    pub examples: Vec<String>,
}

impl TwinsSummary {
    /// Adds the report of `case` (identified by `label`, e.g. its rank).
    pub fn add(&mut self, label: &str, case: &TwinsCase, r: &SimReport) {
        self.cases += 1;
        self.split_cases += u64::from(case.splits_a_twin());
        self.view_change_cases += u64::from(r.view_changes > 0);
        self.decisions += r.decisions;
        let failed = if !r.violations.is_empty() {
            self.unsafe_cases += 1;
            Some(format!(
                "{label}: {:?}",
                &r.violations[..r.violations.len().min(3)]
            ))
        } else if !r.live {
            self.liveness_failures += 1;
            Some(format!(
                "{label}: not live ({} of {} committed)",
                r.transactions_committed, r.transactions_submitted
            ))
        } else {
            None
        };
        if let Some(f) = failed {
            if self.examples.len() < 5 {
                self.examples.push(f);
            }
        }
    }

    /// Adds another summary's totals.
    pub fn merge(&mut self, o: TwinsSummary) {
        self.cases += o.cases;
        self.split_cases += o.split_cases;
        self.unsafe_cases += o.unsafe_cases;
        self.liveness_failures += o.liveness_failures;
        self.view_change_cases += o.view_change_cases;
        self.decisions += o.decisions;
        for e in o.examples {
            if self.examples.len() < 5 {
                self.examples.push(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dwcp_core::NodeId;
    use rand::SeedableRng;

    #[test]
    fn unrank_covers_the_space_without_repeats() {
        let (n, k) = (4, 2);
        let space = TwinsCase::space(n, k);
        assert_eq!(space, 4 * 16 * 16);
        let mut seen = std::collections::HashSet::new();
        for rank in 0..space {
            let c = TwinsCase::unrank(n, k, rank);
            assert_eq!(c.partitions.len(), k);
            assert!(c.partitions.iter().all(|m| m & 1 == 0 && *m < 1 << 5));
            assert!(seen.insert((c.twins.clone(), c.partitions.clone())));
        }
    }

    #[test]
    fn a_split_round_drops_only_messages_across_components() {
        // Twin of node 1: its second instance is index 4; round 0 puts node 1's
        // first instance and node 3 in the second component.
        let case = TwinsCase {
            nodes: 4,
            twins: vec![1],
            partitions: vec![0b01010],
            crash: None,
            slots: 0,
        };
        let e = |node, instance| Endpoint {
            node: NodeId(node),
            instance,
        };
        assert_eq!(case.component(0, 0, e(1, 0)), Some(true));
        assert_eq!(case.component(0, 0, e(1, 1)), Some(false));
        assert_eq!(case.component(0, 0, e(3, 0)), Some(true));
        assert_eq!(case.component(0, 0, e(0, 0)), Some(false));
        assert_eq!(case.component(0, 7, e(3, 0)), Some(true), "slots off");
        assert_eq!(
            case.component(1, 0, e(0, 0)),
            None,
            "past the script: whole"
        );
        assert!(case.splits_a_twin());
    }

    #[test]
    fn slots_give_each_proposal_of_a_round_its_own_step() {
        let case = TwinsCase::unrank(4, 6, 0).with_slots(3);
        assert_eq!(case.step(0, 0), 0);
        assert_eq!(case.step(0, 1), 1);
        assert_eq!(case.step(0, 2), 2);
        assert_eq!(case.step(0, 900), 2, "later slots share the last step");
        assert_eq!(case.step(1, 0), 3);
        assert_eq!(case.step(1, 5), 5);
        assert_eq!(TwinsCase::unrank(4, 6, 0).step(1, 5), 1, "slots off");
    }

    #[test]
    fn random_cases_are_well_formed() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..100 {
            let c = TwinsCase::random(7, 2, 5, &mut rng);
            assert_eq!(c.twins.len(), 2);
            assert!(c.twins[0] < c.twins[1]);
            assert!(c.partitions.iter().all(|m| m & 1 == 0 && *m < 1 << 9));
        }
    }
}
