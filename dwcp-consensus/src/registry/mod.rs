//! The engines, listed once. Every tool that runs an engine by name (the daemon,
//! its config loader, the bench harness, the simulator's sweeps) reads this list.
//!
//! An engine joins in three steps: its module (`crate::<engine>`, a sans-IO
//! [`Engine`]), a [`Protocol`] implementation beside the others in this folder
//! (its name, config table, how to build one, its simulator and bench settings),
//! and one line in the `registry!` invocation below.
//!
//! Code that works for any engine is generic over [`Protocol`]; code that starts
//! from a name visits it with [`with_protocol`] and a [`ProtocolVisitor`], so the
//! name is matched in one place only.

mod bullshark;
mod pbft;
pub mod pbft_actors;
mod probft;
pub mod probft_actors;
mod simulate;
mod tpbft;

pub use bullshark::BullsharkProtocol;
pub use pbft::PbftProtocol;
pub use probft::ProbftProtocol;
pub use simulate::{
    check_seeds, run_simulation, run_twins, simulate, simulation, simulation_with,
    twins_random_sweep, twins_sweep,
};
pub use tpbft::TpbftProtocol;

use crate::statement::Adversarial;
use dwcp_core::{Committee, Engine, MessageKind, NodeKeys, Recovered, Time};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;
use std::time::Duration;

/// One engine as the tools see it.
pub trait Protocol: 'static {
    /// Its name in node configs and on the command line.
    const NAME: &'static str;
    /// One line on what it is, for listings.
    const SUMMARY: &'static str;
    /// The node parameters of [`BenchParams`] it reads (Narwhal's names).
    const BENCH_USES: &'static [&'static str];
    /// How long a Twins case runs in virtual time: long enough for every
    /// transaction to commit at every honest node after the network heals.
    const TWINS_END: Time = Time(15_000_000);

    /// Its parameters: the `[<name>]` table of a node's config, each field
    /// optional (missing ones take the defaults), unknown ones refused.
    type Config: Clone + Debug + Default + PartialEq + Serialize + DeserializeOwned + Send + Sync;
    /// The engine.
    type Engine: Engine<Message: Adversarial + MessageKind + Send> + Send + 'static;

    /// Why `cfg` cannot run, if it cannot.
    fn validate(cfg: &Self::Config) -> Result<(), String>;

    /// The engine for `keys.id`, rebuilt from `recovered` (empty for a fresh
    /// node), or why its store cannot restart it.
    fn build(
        keys: NodeKeys,
        committee: Committee,
        cfg: &Self::Config,
        recovered: Recovered,
    ) -> Result<Self::Engine, String>;

    /// The engine of a member of the colluding group `colluders`
    /// ([`crate::sim::Behaviour::Collude`]): honest code that shapes whatever
    /// evidence about other nodes its proposals carry in the group's favour. The
    /// honest engine (the default) where proposals carry none.
    fn build_colluding(
        keys: NodeKeys,
        committee: Committee,
        cfg: &Self::Config,
        recovered: Recovered,
        _colluders: &std::collections::BTreeSet<dwcp_core::NodeId>,
    ) -> Result<Self::Engine, String> {
        Self::build(keys, committee, cfg, recovered)
    }

    /// How many of the newest committed batches it needs back from its store on a
    /// restart ([`dwcp_core::storage::Storage::recover`]).
    fn restore_tail(cfg: &Self::Config) -> usize;

    /// Its parameters in the simulator, whose client sends every transaction to
    /// every node.
    fn sim_config() -> Self::Config;

    /// Its parameters under a benchmark's node parameters, or why they do not fit.
    fn bench_config(p: &BenchParams) -> Result<Self::Config, String>;

    /// The parameters a benchmark summary lists, one per line.
    fn describe(cfg: &Self::Config) -> Vec<String>;

    /// Whether a committed transaction is the engine's own record rather than a
    /// client's (T-PBFT's evidence); none by default.
    fn is_engine_record(_tx: &[u8]) -> bool {
        false
    }
}

/// Node parameters of a benchmark, named as in Narwhal's benchmark harness, each
/// `None` to keep the engine's default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BenchParams {
    /// Bytes per client transaction.
    pub tx_size: usize,
    /// Workers per node.
    pub workers: Option<usize>,
    /// Batch size: bytes for a DAG worker, transactions for a PBFT primary.
    pub batch_size: Option<usize>,
    /// Longest wait before sealing a batch.
    pub max_batch_delay: Option<Duration>,
    /// Bytes of batch digests that let a header go out early.
    pub header_size: Option<usize>,
    /// Longest wait between headers.
    pub max_header_delay: Option<Duration>,
    /// Rounds of the DAG kept below the last commit.
    pub gc_depth: Option<u64>,
    /// Wait before asking again for what is missing.
    pub sync_retry_delay: Option<Duration>,
    /// Leader or view-change timeout.
    pub timeout_delay: Option<Duration>,
}

/// Something done with one engine, chosen by name at run time.
pub trait ProtocolVisitor {
    /// What it returns.
    type Output;
    /// Does it with engine `P`.
    fn visit<P: Protocol>(self) -> Self::Output;
}

/// A name that is not an engine's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown engine {name:?} (known engines: {})", ENGINES.join(", "))]
pub struct UnknownEngine {
    /// The name given.
    pub name: String,
}

/// Lists the engines: [`ENGINES`] and [`with_protocol`] both come from this list.
macro_rules! registry {
    ($($p:ty),+ $(,)?) => {
        /// The names of the engines, in the order listed.
        pub const ENGINES: &[&str] = &[$(<$p as Protocol>::NAME),+];

        /// Runs `visitor` with the engine called `name`.
        pub fn with_protocol<V: ProtocolVisitor>(
            name: &str,
            visitor: V,
        ) -> Result<V::Output, UnknownEngine> {
            $(
                if name == <$p as Protocol>::NAME {
                    return Ok(visitor.visit::<$p>());
                }
            )+
            Err(UnknownEngine { name: name.to_string() })
        }
    };
}

registry!(
    PbftProtocol,
    BullsharkProtocol,
    TpbftProtocol,
    ProbftProtocol
);

/// The engine called `name`, if there is one (for arguments checked early).
pub fn check_name(name: &str) -> Result<&'static str, UnknownEngine> {
    struct Name;
    impl ProtocolVisitor for Name {
        type Output = &'static str;
        fn visit<P: Protocol>(self) -> &'static str {
            P::NAME
        }
    }
    with_protocol(name, Name)
}

/// `n` with thousands separators (`1234567` as `1,234,567`), as benchmark
/// summaries print figures.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(500_000), "500,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }

    #[test]
    fn names_are_unique_and_each_visits_its_own_engine() {
        let mut names = ENGINES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ENGINES.len());
        for name in ENGINES {
            assert_eq!(check_name(name), Ok(*name));
        }
    }

    #[test]
    fn an_unknown_name_lists_the_known_ones() {
        let e = check_name("raft").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "unknown engine \"raft\" (known engines: {})",
                ENGINES.join(", ")
            )
        );
    }

    struct Defaults;
    impl ProtocolVisitor for Defaults {
        type Output = Result<(), String>;
        fn visit<P: Protocol>(self) -> Result<(), String> {
            P::validate(&P::Config::default())?;
            P::validate(&P::sim_config())?;
            P::validate(&P::bench_config(&BenchParams::default())?)?;
            if P::restore_tail(&P::Config::default()) == 0 {
                return Err(format!("{}: restore_tail of 0", P::NAME));
            }
            Ok(())
        }
    }

    #[test]
    fn every_engine_runs_on_its_defaults() {
        for name in ENGINES {
            with_protocol(name, Defaults)
                .expect("registered")
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}
