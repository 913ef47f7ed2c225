//! ProBFT (D. Avelãs, H. Heydari, E. Alchieri, T. Distler, A. Bessani,
//! "Probabilistic Byzantine Fault Tolerance", PODC 2024, pp. 170–181): leader-based
//! BFT whose PREPARE and COMMIT votes go to VRF-chosen samples of `s = ⌈o·q⌉`
//! replicas instead of to everyone, and whose quorums are `q = ⌈l·√n⌉` matching
//! votes, for O(n√n) messages with safety and liveness holding with high
//! probability.
//!
//! Only the paper's abstract was available; the choices below follow
//! `notes/probft.md` and issue 19 and say where they are made. The engine is not
//! written yet. What exists are its pure foundations:
//!
//! - [`params`]: the configuration (`n`, `f_max`, `l`, `o`, `ε_safe`, `π_live`) and
//!   the start-up check [`ProbftParams::check`], which refuses a configuration
//!   whose safety risk `P[Bin(2·f_max, p) ≥ q]` exceeds `ε_safe` or whose
//!   liveness `P[Bin(n − f_max − 1, p) ≥ q]` falls below `π_live`, with
//!   `p = s/(n − 1)` exact; the counting rule (a replica's own vote never counts
//!   towards `q`); the cost model against PBFT; the parameter [`table`] and the
//!   [`cheapest`] accepted setting. `f_max = ⌊(n − 1)/3⌋` never passes, on
//!   purpose (the "view-change wall").
//! - [`mod@sample`]: the VRF input [`alpha`] (tag, instance, epoch seed, view, phase;
//!   no value, no sequence number) and the [`sample()`] of recipients that a VRF
//!   output selects, by partial Fisher–Yates over ChaCha20, with fixed test vectors.
//! - [`binomial`]: the one routine behind every probability, [`Binomial`] tails
//!   accurate to many digits far into the tail.

pub mod binomial;
mod config;
mod engine;
pub mod messages;
pub mod params;
pub mod sample;
pub mod verify;

pub use binomial::Binomial;
pub use config::ProbftConfig;
pub use engine::{Probft, ProbftError};
pub use messages::ProbftMessage;
pub use params::{
    cheapest, pbft_messages_per_decision, table, Checked, Figures, ParamsError, ProbftParams,
    Rejection, DEFAULT_EPS_SAFE, DEFAULT_PI_LIVE,
};
pub use sample::{alpha, sample, Phase, Sample, SampleError, ALPHA_LEN, ALPHA_TAG};
