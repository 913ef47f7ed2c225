//! How often a correct ProBFT replica prepares and decides a slot on its own, with
//! `f` silent replicas, beside the start-up check's prediction.
//!
//! Each run has `f` silent replicas (never the leader of view 0) and a correct
//! leader; every correct replica's counters say how many slots it prepared and
//! decided from its own samples' votes, and how many it took from a peer's
//! decision certificate instead. The start-up check predicts both phases: the
//! chance that a replica gets `q` PREPAREs, `P[Bin(n − f − 1, p) ≥ q]`, and that it
//! also gets `q` COMMITs, which only prepared replicas send,
//! `P[Bin(n − f − 1, p·P(prepared)) ≥ q]`. A replica that sees the next slot
//! before its own votes complete fetches the decision and counts as not deciding
//! on its own, so the measured rates are lower bounds.
//!
//! ```text
//! cargo run --release --example probft_decide_rate -- [nodes] [faulty] [seeds]
//! ```

use dwcp::consensus::probft::{Binomial, ProbftConfig};
use dwcp::consensus::registry::{simulate, ProbftProtocol, Protocol};
use dwcp::consensus::sim::{scenario, Behaviour};
use dwcp::core::crypto::SignatureScheme;

fn counter(s: &dwcp::core::EngineStatus, name: &str) -> u64 {
    s.counters
        .iter()
        .find(|(k, _)| k == name)
        .map_or(0, |(_, v)| *v)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let f: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(n / 5);
    let seeds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let cfg: ProbftConfig = ProbftProtocol::sim_config();
    let checked = cfg.quorum(n).expect("the defaults pass the start-up check");
    let fig = checked.figures();
    let predicted = Binomial::new(n - f - 1, fig.p).at_least(fig.q);
    let predicted_decide = Binomial::new(n - f - 1, fig.p * predicted).at_least(fig.q);
    let (mut slots, mut prepared, mut decided, mut runs_safe) = (0u64, 0u64, 0u64, 0u64);
    for seed in 0..seeds {
        let mut sim = scenario(n, 0, "honest", seed).expect("scenario");
        sim.scheme = SignatureScheme::InsecureFast;
        for b in &mut sim.behaviours[n - f..] {
            *b = Behaviour::Silent;
        }
        let r = simulate::<ProbftProtocol>(sim);
        if r.violations.is_empty() {
            runs_safe += 1;
        }
        for s in r.node_status.iter().flatten() {
            let own = counter(s, "decided_here");
            slots += own + counter(s, "decided_caught_up") + counter(s, "state_transfers");
            prepared += counter(s, "prepared_here");
            decided += own;
        }
    }
    println!(
        "ProBFT n = {n}, {f} silent, f_max = {}, q = {}, s = {}, p = {:.4}; {seeds} runs, {runs_safe} without a violation",
        fig.f_max, fig.q, fig.s, fig.p
    );
    println!(
        "predicted: prepared {predicted:.4}, decided {predicted_decide:.4}; measured over {slots} replica-slots: prepared on its own {:.4}, decided on its own {:.4}",
        prepared as f64 / slots.max(1) as f64,
        decided as f64 / slots.max(1) as f64
    );
}
