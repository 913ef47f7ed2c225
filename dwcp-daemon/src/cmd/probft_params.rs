//! `dwcpd probft-params`: the cheapest ProBFT parameters the start-up check accepts,
//! and the settings around them, so an operator can choose.
//!
//! The figures come from `dwcp_consensus::probft::params`; this module prints them.

use anyhow::bail;
use clap::Args;
use dwcp_consensus::probft::{
    cheapest, pbft_messages_per_decision, table, Figures, ParamsError, ProbftParams,
    DEFAULT_EPS_SAFE, DEFAULT_PI_LIVE,
};

/// Rows shown on each side of the cheapest accepted setting, in cost order.
const AROUND: usize = 3;

/// Arguments of `dwcpd probft-params`.
#[derive(Debug, Args)]
pub struct ProbftParamsArgs {
    /// Committee size n.
    #[arg(long)]
    pub nodes: usize,
    /// Declared Byzantine bound f_max [default: ⌊n/5⌋]. ⌊(n − 1)/3⌋ never passes.
    #[arg(long)]
    pub f_max: Option<usize>,
    /// Largest accepted safety risk P[Bin(2·f_max, p) ≥ q] per replica and view.
    #[arg(long, default_value_t = DEFAULT_EPS_SAFE)]
    pub eps: f64,
    /// Smallest accepted liveness P[Bin(n − f_max − 1, p) ≥ q] per view.
    #[arg(long, default_value_t = DEFAULT_PI_LIVE)]
    pub live: f64,
}

/// Prints the cheapest accepted `l`, `o` on the search grid and a short table
/// around it with the design note's `l = o = 2` row; fails if nothing passes.
pub fn run(args: ProbftParamsArgs) -> anyhow::Result<()> {
    let n = args.nodes;
    let f_max = args.f_max.unwrap_or(n / 5);
    let (eps, live) = (args.eps, args.live);
    println!(
        "ProBFT at n = {n}, f_max = {f_max}: safety risk ≤ {eps:e} per replica and view, \
         P(decide) ≥ {live} per replica and view; p = s/(n − 1)"
    );
    let note_row = Figures::evaluate(n, f_max, 2.0, 2.0).ok();
    let Some(params) = cheapest(n, f_max, eps, live) else {
        let reference = ProbftParams {
            n,
            f_max,
            l: 2.0,
            o: 2.0,
            eps_safe: eps,
            pi_live: live,
        };
        match reference.check() {
            Err(ParamsError::Rejected(rejection)) => {
                print_table(&[rejection.figures], eps, live, None, note_row.as_ref());
                bail!(
                    "no l in [1, 8] and o in [1.05, 4] passes at n = {n}, f_max = {f_max}; \
                     at l = o = 2: {rejection}"
                )
            }
            Err(e) => bail!("{e}"),
            Ok(_) => bail!("no setting on the grid passes at n = {n}, f_max = {f_max}"),
        }
    };
    let best = *params.check()?.figures();
    println!(
        "cheapest accepted: l = {}, o = {} (q = {}, s = {}): {} messages per decision, \
         {:.3} of PBFT's {}",
        best.l,
        best.o,
        best.q,
        best.s,
        best.messages_per_decision(),
        best.ratio_vs_pbft(),
        pbft_messages_per_decision(n),
    );
    let rows = table(n, f_max);
    let at = rows.iter().position(|r| same(r, &best)).unwrap_or(0);
    let mut shown: Vec<Figures> =
        rows[at.saturating_sub(AROUND)..(at + AROUND + 1).min(rows.len())].to_vec();
    if let Some(row) = note_row {
        if !shown.iter().any(|r| same(r, &row)) {
            shown.push(row);
        }
    }
    print_table(&shown, eps, live, Some(&best), note_row.as_ref());
    Ok(())
}

/// Whether two rows have the same quorum and sample, hence the same figures (the
/// table lists each pair once, under its smallest `l` and `o`).
fn same(a: &Figures, b: &Figures) -> bool {
    (a.q, a.s) == (b.q, b.s)
}

/// One line per row: knobs, sizes, both probabilities, the ratio and the verdict,
/// marking the cheapest accepted row and the design note's `l = o = 2` row.
fn print_table(
    rows: &[Figures],
    eps: f64,
    live: f64,
    best: Option<&Figures>,
    note_row: Option<&Figures>,
) {
    println!(
        "{:>5} {:>5} {:>5} {:>5} {:>10} {:>10} {:>9} {:>7}  verdict",
        "l", "o", "q", "s", "risk", "P(prep.)", "P(decide)", "ratio"
    );
    for r in rows {
        let mut verdict = Vec::new();
        if r.risk > eps {
            verdict.push("risk too high");
        }
        if r.p_decide < live {
            verdict.push("liveness too low");
        }
        if verdict.is_empty() {
            verdict.push("ok");
        }
        if best.is_some_and(|b| same(b, r)) {
            verdict.push("<- cheapest");
        }
        if note_row.is_some_and(|x| same(x, r)) {
            verdict.push("(the design note's l = o = 2)");
        }
        println!(
            "{:>5.2} {:>5.2} {:>5} {:>5} {:>10.3e} {:>10.4} {:>9.4} {:>7.4}  {}",
            r.l,
            r.o,
            r.q,
            r.s,
            r.risk,
            r.p_live,
            r.p_decide,
            r.ratio_vs_pbft(),
            verdict.join(", ")
        );
    }
}
